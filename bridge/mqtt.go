package bridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/redact"
)

// ErrMQTTClosed is returned by an MQTT used after Close.
var ErrMQTTClosed = errors.New("mqtt client closed")

// ErrMQTTNotConnected is returned by Publish of an event (not retained) while the broker is unreachable; the
// event is dropped.
var ErrMQTTNotConnected = errors.New("mqtt not connected")

// Bridge state payloads on `<base>/bridge/state`.
var (
	StateOnline  = []byte(`{"state":"online"}`)
	StateOffline = []byte(`{"state":"offline"}`)
)

// MQTT is the bridge's MQTT client (paho underneath): TLS and credentials from MQTTConfig, the last will
// `<base>/bridge/state` = {"state":"offline"} (retained), automatic reconnect, subscriptions that survive
// reconnects, retained publishes that survive broker outages, and OnConnect hooks. With mqtt.server
// "embedded" it also owns the embedded broker.
//
// On every (re)connect, in this order: every subscription is made again and the MQTT waits for the
// broker's SUBACK of each; only when every one is granted is `<base>/bridge/state` = {"state":"online"}
// published (retained) — "online" means the API is listening — then the retained messages held during the
// outage are flushed (the last value per topic) and the OnConnect hooks run (on one goroutine, in
// registration order). A subscription the broker refuses (a SUBACK failure code, e.g. an ACL) or does not
// answer is logged with its filter and the reason, the state stays {"state":"offline"} (published again, in
// case a broker that kept its retained messages over a restart still holds "online"), Ready reports false,
// and the refused subscriptions are tried again with back-off (1 s doubling to 30 s) until granted.
//
// Message handlers run one at a time, in arrival order, on a goroutine the MQTT owns; a handler may publish
// and subscribe. All methods are safe for concurrent use.
type MQTT struct {
	cfg            MQTTConfig
	log            zerolog.Logger // component=mqtt
	baseLog        zerolog.Logger // the logger NewMQTT was given, for the embedded broker's own component
	publishTimeout time.Duration
	retryMax       time.Duration // longest wait between first-connect attempts
	// wrapConn, when set (tests), wraps every network connection the client opens.
	wrapConn func(net.Conn) net.Conn

	pubMu sync.Mutex // orders client.Publish calls with flushes, so an older value never overtakes a newer one

	mu         sync.Mutex // guards everything below
	client     paho.Client
	broker     *Broker
	serverURL  string
	connected  bool
	ready      bool // connected and every subscription granted: the state is online
	gen        int  // connection generation: counts connects and losses, so a stale retry gives up
	outage     bool // the connection was lost since the last flush (not set before the first connection)
	closed     bool
	started    bool
	connects   int
	subs       []subscription
	hooks      []func()
	status     func(up bool, reason string)
	pending    map[string]pendingPublish // retained messages held while disconnected
	seq        map[string]uint64         // latest Publish per retained topic
	inbox      []inboxMessage
	inboxBytes int // payload bytes in inbox
	inboxWake  chan struct{}
	done       chan struct{}
	wg         sync.WaitGroup
}

type subscription struct {
	filter  string
	handler func(Message)
}

// Message is one message the broker delivered to a subscription.
type Message struct {
	Topic   string
	Payload []byte
	// Retained is the message's retain flag: set when the broker delivers a stored retained message (on
	// subscribing, so after every start and reconnect), clear for a message published while subscribed.
	Retained bool
	// Truncated, when not 0, is the size of a large message that arrived while the messages waiting for their
	// handlers already held maxInboxBytes: Payload is only its first inboxKeepBytes (enough to find a
	// request's transaction), and the handler should refuse it as busy.
	Truncated int
}

// The handlers' inbox holds at most maxInboxBytes of payloads; a message above inboxSmallMessage that
// does not fit keeps only its first inboxKeepBytes (see Message.Truncated), so a flood of large publishes
// cannot make the bridge hold them all.
const (
	maxInboxBytes     = 64 << 20
	inboxSmallMessage = 64 << 10
	inboxKeepBytes    = 4 << 10
)

type pendingPublish struct {
	payload []byte
	seq     uint64
}

type inboxMessage struct {
	handler func(Message)
	msg     Message
}

// NewMQTT returns a client for cfg (already validated by LoadConfig); nothing happens until Connect.
func NewMQTT(cfg MQTTConfig, log zerolog.Logger) *MQTT {
	if cfg.ClientID == "" {
		cfg.ClientID = "otabridge-" + cfg.BaseTopic
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = 60 * time.Second
	}
	return &MQTT{
		cfg:            cfg,
		log:            log.With().Str("component", "mqtt").Logger(),
		baseLog:        log,
		publishTimeout: 10 * time.Second,
		retryMax:       30 * time.Second,
		pending:        make(map[string]pendingPublish),
		seq:            make(map[string]uint64),
		inboxWake:      make(chan struct{}, 1),
		done:           make(chan struct{}),
	}
}

// StateTopic is `<base>/bridge/state`, the topic of the last will.
func (m *MQTT) StateTopic() string { return m.cfg.BaseTopic + "/bridge/state" }

// BaseTopic is mqtt.base_topic.
func (m *MQTT) BaseTopic() string { return m.cfg.BaseTopic }

// Connected reports whether the client is connected to the broker now.
func (m *MQTT) Connected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connected
}

// Ready reports whether the client is connected and the broker granted every subscription, i.e. whether
// `<base>/bridge/state` says online (health reports use it).
func (m *MQTT) Ready() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

// Connects returns how many times the client has connected (first connect and reconnects).
func (m *MQTT) Connects() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connects
}

// OnConnect registers f to run after every (re)connect, once every subscription is granted and the held
// retained messages are restored. If the client is ready already, f also runs once now, on a new goroutine.
func (m *MQTT) OnConnect(f func()) {
	m.mu.Lock()
	m.hooks = append(m.hooks, f)
	ready := m.ready
	m.mu.Unlock()
	if ready {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			f()
		}()
	}
}

// OnStatus registers f to hear whether the client is connected (up) or not, and why not (the last connect
// error, the embedded broker that could not start, the lost connection). Call it before Connect.
func (m *MQTT) OnStatus(f func(up bool, reason string)) {
	m.mu.Lock()
	m.status = f
	m.mu.Unlock()
}

func (m *MQTT) reportStatus(up bool, reason string) {
	m.mu.Lock()
	f := m.status
	m.mu.Unlock()
	if f != nil {
		f(up, reason)
	}
}

// Connect starts the embedded broker when mqtt.server is "embedded", then connects. Both are retried with
// back-off (1 s doubling to 30 s) until they succeed or ctx ends — the embedded broker's port may be taken
// for a while, the broker may not be up yet — and every failure is logged with its reason and reported to
// OnStatus; after the first connection paho reconnects by itself. Connect can be called once.
func (m *MQTT) Connect(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrMQTTClosed
	}
	if m.started {
		m.mu.Unlock()
		return errors.New("mqtt: Connect called twice")
	}
	m.started = true
	m.mu.Unlock()

	m.wg.Add(1)
	go m.dispatch()

	var (
		serverURL string
		tlsCfg    *tls.Config
	)
	err := m.retry(ctx, "MQTT setup failed", "", func() (err error) {
		serverURL, tlsCfg, err = m.prepare()
		return err
	})
	if err != nil {
		return err
	}
	shown := redact.URLs(serverURL) // for logs and errors: mqtt://user:password@host works, and must not show
	opts := paho.NewClientOptions().
		AddBroker(serverURL).
		SetClientID(m.cfg.ClientID).
		SetUsername(m.cfg.Username).
		SetPassword(m.cfg.Password).
		SetCleanSession(true).
		SetStore(noStore{}). // see noStore
		SetResumeSubs(false).
		SetOrderMatters(true). // our callbacks only queue the message: they never block paho
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetMaxReconnectInterval(m.retryMax).
		SetConnectTimeout(10*time.Second).
		SetWriteTimeout(m.publishTimeout).
		SetKeepAlive(m.cfg.Keepalive).
		SetPingTimeout(10*time.Second).
		SetBinaryWill(m.StateTopic(), StateOffline, byte(m.cfg.QoS), true).
		SetOnConnectHandler(m.onConnect).
		SetConnectionLostHandler(m.onConnectionLost).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			m.log.Info().Str("server", shown).Msg("MQTT reconnecting")
		}).
		SetCustomOpenConnectionFn(func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
			return m.dial(u, tlsCfg, o.ConnectTimeout)
		})
	client := paho.NewClient(opts)
	m.mu.Lock()
	m.client = client
	m.serverURL = shown
	m.mu.Unlock()

	return m.retry(ctx, "MQTT connect failed", shown, func() error {
		tok := client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return ctx.Err()
		}
		if tok.Error() != nil {
			return tok.Error()
		}
		// paho runs the OnConnect handler on its own goroutine; mark the connection now so that what the
		// caller publishes right after Connect goes out instead of being held.
		m.mu.Lock()
		if !m.closed && client.IsConnectionOpen() {
			m.connected = true
		}
		m.mu.Unlock()
		return nil
	})
}

// retry runs attempt until it succeeds or ctx ends, waiting 1 s doubling to retryMax between attempts;
// every failure is logged (msg, the reason, the next wait) and reported to OnStatus as down.
func (m *MQTT) retry(ctx context.Context, msg, server string, attempt func() error) error {
	backoff := time.Second
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		err = redact.Error(err) // a broker error may quote the server URL with its credentials
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %v)", msg, ctx.Err(), err)
		}
		ev := m.log.Warn().Err(err).Int("attempt", n).Dur("retry_in_ms", backoff)
		if server != "" {
			ev = ev.Str("server", server)
		}
		ev.Msg(msg)
		m.reportStatus(false, err.Error())
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", msg, ctx.Err(), err)
		}
		backoff = min(backoff*2, m.retryMax)
	}
}

// prepare starts the embedded broker if configured, and returns the URL to connect to and the TLS
// configuration (nil for plain TCP).
func (m *MQTT) prepare() (string, *tls.Config, error) {
	if m.cfg.Server == ServerEmbedded {
		b, err := StartBroker(BrokerConfig{Listen: m.cfg.EmbeddedListen, Username: m.cfg.Username, Password: m.cfg.Password,
			FinalTopic: m.StateTopic()}, m.baseLog)
		if err != nil {
			return "", nil, err
		}
		m.mu.Lock()
		m.broker = b
		m.mu.Unlock()
		host, port, err := net.SplitHostPort(b.Addr())
		if err != nil {
			return "", nil, fmt.Errorf("embedded broker address %s: %w", b.Addr(), err)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		return "mqtt://" + net.JoinHostPort(host, port), nil, nil
	}
	u, secure, err := ParseServerURL(m.cfg.Server)
	if err != nil {
		return "", nil, fmt.Errorf("mqtt.server: %w", err)
	}
	if !secure {
		return u.String(), nil, nil
	}
	tlsCfg, err := m.cfg.TLSConfig(u.Hostname())
	if err != nil {
		return "", nil, err
	}
	return u.String(), tlsCfg, nil
}

// TLSConfig builds the client TLS configuration: the system roots plus mqtt.ca_file, the client certificate
// mqtt.cert_file / mqtt.key_file, and mqtt.insecure_skip_verify.
func (c MQTTConfig) TLSConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // the user asked for it
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.ca_file %s: no PEM certificate in it", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.cert_file %s / mqtt.key_file %s: %w", c.CertFile, c.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (m *MQTT) dial(u *url.URL, tlsCfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", u.Host, err)
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	if m.wrapConn != nil {
		conn = m.wrapConn(conn)
	}
	return conn, nil
}

func (m *MQTT) onConnect(client paho.Client) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.connected = true
	m.ready = false
	m.connects++
	m.gen++
	gen, n := m.gen, m.connects
	subs := append([]subscription(nil), m.subs...)
	server := m.serverURL
	m.mu.Unlock()
	m.log.Info().Str("server", server).Str("client_id", m.cfg.ClientID).Int("connects", n).
		Int("subscriptions", len(subs)).Msg("MQTT connected; subscribing before announcing online")
	m.reportStatus(true, "")
	m.establish(client, gen, subs, subscribeRetryFirst)
}

// subscribeRetryFirst is the first wait before subscriptions the broker refused are tried again; it
// doubles up to retryMax.
const subscribeRetryFirst = time.Second

// establish makes the subscriptions of connection generation gen and waits for their SUBACKs. When every
// one is granted it announces online, flushes the held retained messages and runs the hooks; otherwise it
// keeps the state offline and tries the refused ones again after backoff, on a goroutine the MQTT owns.
func (m *MQTT) establish(client paho.Client, gen int, subs []subscription, backoff time.Duration) {
	refused := m.subscribeAll(client, subs)
	m.mu.Lock()
	if m.closed || m.gen != gen {
		m.mu.Unlock()
		return // closed, or the connection this was for is gone: the next connect starts again
	}
	if len(refused) > 0 {
		m.wg.Add(1)
		m.mu.Unlock()
		retry := make([]subscription, 0, len(refused))
		for _, r := range refused {
			retry = append(retry, r.sub)
			m.log.Error().Str("filter", r.sub.filter).Str("reason", r.reason).Dur("retry_in_ms", backoff).
				Msg("MQTT subscription refused: bridge/state stays offline, the API is not listening")
		}
		if backoff == subscribeRetryFirst { // once per connection
			if err := m.publishDirect(client, StateOffline); err != nil {
				m.log.Warn().Err(err).Msg("publishing offline state failed")
			}
		}
		go func() {
			defer m.wg.Done()
			t := time.NewTimer(backoff)
			defer t.Stop()
			select {
			case <-t.C:
			case <-m.done:
				return
			}
			m.establish(client, gen, retry, min(backoff*2, m.retryMax))
		}()
		return
	}
	m.ready = true
	hooks := append([]func(){}, m.hooks...)
	m.mu.Unlock()

	if err := m.Publish(m.StateTopic(), StateOnline, true); err != nil {
		m.log.Warn().Err(err).Msg("publishing online state failed")
	}
	m.log.Info().Str("topic", m.StateTopic()).Msg("MQTT subscriptions granted: bridge online")
	m.flush()
	for _, h := range hooks {
		h()
	}
}

// refusedSubscription is a subscription the broker did not grant, and why.
type refusedSubscription struct {
	sub    subscription
	reason string
}

// subscribeAll sends every subscription at once, waits for the SUBACKs and returns the ones not granted.
func (m *MQTT) subscribeAll(client paho.Client, subs []subscription) []refusedSubscription {
	toks := make([]paho.Token, len(subs))
	for i, s := range subs {
		toks[i] = m.sendSubscribe(client, s)
	}
	var refused []refusedSubscription
	for i, s := range subs {
		if err := m.subscribeResult(s, toks[i]); err != nil {
			refused = append(refused, refusedSubscription{sub: s, reason: err.Error()})
		}
	}
	return refused
}

// publishDirect publishes a bridge state now (retained), bypassing the held messages, and waits for the
// broker's acknowledgement.
func (m *MQTT) publishDirect(client paho.Client, state []byte) error {
	m.pubMu.Lock()
	tok := client.Publish(m.StateTopic(), byte(m.cfg.QoS), true, state)
	m.pubMu.Unlock()
	return waitToken(tok, m.publishTimeout)
}

func (m *MQTT) onConnectionLost(_ paho.Client, err error) {
	m.mu.Lock()
	m.connected = false
	m.ready = false
	m.gen++
	closed := m.closed
	if !closed {
		m.outage = true
	}
	m.mu.Unlock()
	if !closed {
		m.log.Warn().Err(err).Msg("MQTT connection lost; reconnecting")
		m.reportStatus(false, fmt.Sprintf("connection lost: %v", err))
	}
}

// Publish sends payload to topic with the configured QoS. It never blocks longer than the publish timeout
// (10 s). While the broker is unreachable a retained publish is held (the last value per topic) and sent
// after the reconnect, and Publish returns nil; an event (not retained) is dropped with a warning and
// ErrMQTTNotConnected. The payload is copied.
func (m *MQTT) Publish(topic string, payload []byte, retained bool) error {
	payload = append([]byte(nil), payload...)
	m.pubMu.Lock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.pubMu.Unlock()
		return ErrMQTTClosed
	}
	var seq uint64
	if retained {
		m.seq[topic]++
		seq = m.seq[topic]
	}
	client := m.client
	if !m.connected || client == nil || !client.IsConnectionOpen() {
		if retained {
			m.pending[topic] = pendingPublish{payload: payload, seq: seq}
		}
		m.mu.Unlock()
		m.pubMu.Unlock()
		if retained {
			m.log.Debug().Str("topic", topic).Int("bytes", len(payload)).Msg("MQTT not connected: retained message held until reconnect")
			return nil
		}
		m.log.Warn().Str("topic", topic).Int("bytes", len(payload)).Msg("MQTT not connected: event dropped")
		return ErrMQTTNotConnected
	}
	if retained {
		delete(m.pending, topic)
	}
	m.mu.Unlock()
	tok := client.Publish(topic, byte(m.cfg.QoS), retained, payload)
	m.pubMu.Unlock()
	if e := m.log.Trace(); e.Enabled() {
		e.Str("topic", topic).Bool("retained", retained).Str("payload", redact.URLs(string(payload))).Msg("MQTT publish")
	}

	err := waitToken(tok, m.publishTimeout)
	if err == nil {
		return nil
	}
	if !retained {
		m.log.Warn().Err(err).Str("topic", topic).Msg("MQTT publish failed: event dropped")
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	m.hold(topic, payload, seq)
	m.log.Warn().Err(err).Str("topic", topic).Msg("MQTT publish failed: retained message held until reconnect")
	if m.Connected() {
		m.flush()
	}
	return nil
}

// hold keeps a retained message for the next flush unless a newer Publish of the topic came since.
func (m *MQTT) hold(topic string, payload []byte, seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.seq[topic] != seq {
		return
	}
	m.pending[topic] = pendingPublish{payload: payload, seq: seq}
}

// flush publishes the held retained messages.
func (m *MQTT) flush() {
	m.pubMu.Lock()
	m.mu.Lock()
	if !m.connected || m.closed || len(m.pending) == 0 {
		m.mu.Unlock()
		m.pubMu.Unlock()
		return
	}
	held := m.pending
	m.pending = make(map[string]pendingPublish)
	client := m.client
	outage := m.outage
	m.outage = false
	m.mu.Unlock()
	type sent struct {
		topic string
		p     pendingPublish
		tok   paho.Token
	}
	toks := make([]sent, 0, len(held))
	for topic, p := range held {
		toks = append(toks, sent{topic, p, client.Publish(topic, byte(m.cfg.QoS), true, p.payload)})
	}
	m.pubMu.Unlock()
	failed := 0
	for _, s := range toks {
		if err := waitToken(s.tok, m.publishTimeout); err != nil {
			failed++
			m.hold(s.topic, s.p.payload, s.p.seq)
		}
	}
	if outage {
		m.log.Info().Int("messages", len(toks)).Int("failed", failed).Msg("MQTT flushed retained messages held during the outage")
		return
	}
	// Retained state published before the first connection (or while a publish failed): nothing the user
	// needs to hear about.
	m.log.Debug().Int("messages", len(toks)).Int("failed", failed).Msg("MQTT sent retained messages held before the connection")
}

// Subscribe subscribes filter now (when connected) and again after every reconnect; handler gets the
// messages (see MQTT for the goroutine it runs on). Subscribing a filter again replaces its handler.
func (m *MQTT) Subscribe(filter string, handler func(topic string, payload []byte)) error {
	return m.SubscribeMessages(filter, func(msg Message) {
		if msg.Truncated == 0 { // only requests are ever large; a cut message is no use to these handlers
			handler(msg.Topic, msg.Payload)
		}
	})
}

// SubscribeMessages is Subscribe with a handler that also sees the retain flag.
func (m *MQTT) SubscribeMessages(filter string, handler func(Message)) error {
	if err := checkFilter(filter); err != nil {
		return fmt.Errorf("subscribe %q: %w", filter, err)
	}
	s := subscription{filter: filter, handler: handler}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrMQTTClosed
	}
	replaced := false
	for i := range m.subs {
		if m.subs[i].filter == filter {
			m.subs[i] = s
			replaced = true
		}
	}
	if !replaced {
		m.subs = append(m.subs, s)
	}
	client, connected := m.client, m.connected
	m.mu.Unlock()
	if !connected {
		return nil // made on the next connect
	}
	return m.subscribe(client, s)
}

func (m *MQTT) subscribe(client paho.Client, s subscription) error {
	return m.subscribeResult(s, m.sendSubscribe(client, s))
}

func (m *MQTT) sendSubscribe(client paho.Client, s subscription) paho.Token {
	return client.Subscribe(s.filter, byte(m.cfg.QoS), func(_ paho.Client, msg paho.Message) {
		m.enqueue(inboxMessage{handler: s.handler, msg: Message{Topic: msg.Topic(), Payload: msg.Payload(), Retained: msg.Retained()}})
	})
}

// subscribeResult waits for a subscription's SUBACK and returns an error unless the broker granted it.
func (m *MQTT) subscribeResult(s subscription, tok paho.Token) error {
	if err := waitToken(tok, m.publishTimeout); err != nil {
		return fmt.Errorf("subscribe %q: %w", s.filter, err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		code, answered := st.Result()[s.filter]
		if !answered {
			return fmt.Errorf("subscribe %q: the broker's SUBACK does not answer it", s.filter)
		}
		if code > 2 {
			return fmt.Errorf("subscribe %q: the broker refused it: %s", s.filter, subackReason(code))
		}
		m.log.Debug().Str("filter", s.filter).Uint8("granted_qos", code).Msg("MQTT subscribed")
	}
	return nil
}

// subackReason explains a SUBACK return code that is not a granted QoS (MQTT 3.1.1 §3.9.3 has only 0x80;
// MQTT 5 reason codes, which some brokers send, are named too).
func subackReason(code byte) string {
	reasons := map[byte]string{
		0x80: "failure (0x80; usually the broker's ACL denies this filter to our user)",
		0x83: "implementation specific error (0x83)",
		0x87: "not authorized (0x87)",
		0x8F: "topic filter invalid (0x8F)",
		0x91: "packet identifier in use (0x91)",
		0x97: "quota exceeded (0x97)",
		0x9E: "shared subscriptions not supported (0x9E)",
		0xA1: "subscription identifiers not supported (0xA1)",
		0xA2: "wildcard subscriptions not supported (0xA2)",
	}
	if r, ok := reasons[code]; ok {
		return r
	}
	return fmt.Sprintf("SUBACK return code 0x%02x", code)
}

func checkFilter(f string) error {
	if f == "" {
		return errors.New("empty filter")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "+") && l != "+" {
			return errors.New("+ must fill a whole level")
		}
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return errors.New("# must be the last level")
		}
	}
	return nil
}

func (m *MQTT) enqueue(msg inboxMessage) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	if n := len(msg.msg.Payload); n > inboxSmallMessage && m.inboxBytes+n > maxInboxBytes {
		msg.msg.Payload, msg.msg.Truncated = bytes.Clone(msg.msg.Payload[:inboxKeepBytes]), n
		m.log.Warn().Str("topic", msg.msg.Topic).Int("bytes", n).Int("waiting_bytes", m.inboxBytes).
			Msg("large MQTT message arrived while the handlers are behind: kept only its start, it is refused as busy")
	}
	m.inboxBytes += len(msg.msg.Payload)
	m.inbox = append(m.inbox, msg)
	m.mu.Unlock()
	select {
	case m.inboxWake <- struct{}{}:
	default:
	}
}

// dispatch runs message handlers one at a time until Close.
func (m *MQTT) dispatch() {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case <-m.inboxWake:
		}
		for {
			m.mu.Lock()
			if len(m.inbox) == 0 || m.closed {
				m.inbox, m.inboxBytes = nil, 0
				m.mu.Unlock()
				break
			}
			msg := m.inbox[0]
			m.inbox[0] = inboxMessage{}
			m.inbox = m.inbox[1:]
			m.inboxBytes -= len(msg.msg.Payload)
			m.mu.Unlock()
			if e := m.log.Trace(); e.Enabled() {
				e.Str("topic", msg.msg.Topic).Bool("retained", msg.msg.Retained).
					Str("payload", redact.URLs(string(msg.msg.Payload))).Msg("MQTT message")
			}
			msg.handler(msg.msg)
		}
	}
}

// Close publishes {"state":"offline"} to the state topic (retained, QoS 1 at least) and waits for the
// broker's acknowledgement (at most 5 s), disconnects, stops the handler goroutine, and stops the embedded
// broker once it has delivered the offline state to every subscriber (see BrokerConfig.FinalTopic).
// Messages held for a reconnect are dropped. Safe to call twice.
func (m *MQTT) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	// Closed first: from now on nothing publishes (an online state of a reconnect in progress cannot
	// overtake the offline one), and no retry starts.
	m.closed = true
	client, connected := m.client, m.connected
	m.connected = false
	m.ready = false
	m.pending = nil
	broker := m.broker
	started := m.started
	m.mu.Unlock()
	if client != nil && connected {
		m.pubMu.Lock()
		// QoS 1 at least: the PUBACK says the broker has the message (with QoS 0 Close could stop the
		// embedded broker before it even read it).
		tok := client.Publish(m.StateTopic(), byte(max(m.cfg.QoS, 1)), true, StateOffline)
		m.pubMu.Unlock()
		if err := waitToken(tok, 5*time.Second); err != nil {
			m.log.Warn().Err(err).Msg("publishing offline state failed")
		}
	}
	if client != nil {
		client.Disconnect(250)
	}
	if started {
		close(m.done)
	}
	m.wg.Wait()
	if broker != nil {
		if err := broker.Close(); err != nil {
			return fmt.Errorf("stop embedded broker: %w", err)
		}
	}
	m.log.Info().Msg("MQTT closed")
	return nil
}

// noStore is a paho message store that keeps nothing. paho's own store re-sends unacknowledged messages
// after a reconnect, but it races with publishes made while it does so (it sets the DUP flag on a packet
// the writer goroutine is sending, and sends it twice). The MQTT keeps what must survive an outage itself
// (the latest retained message per topic), so paho needs no store.
type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}

// waitToken waits for a paho token at most d.
func waitToken(tok paho.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %s", d)
	}
}
