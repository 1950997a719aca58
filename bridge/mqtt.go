package bridge

import (
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
// On every (re)connect, in this order: `<base>/bridge/state` = {"state":"online"} is published (retained),
// every subscription is made again, retained messages held during the outage are flushed (the last value
// per topic), then the OnConnect hooks run (on one goroutine, in registration order).
//
// Message handlers run one at a time, in arrival order, on a goroutine the MQTT owns; a handler may publish
// and subscribe. All methods are safe for concurrent use.
type MQTT struct {
	cfg            MQTTConfig
	log            zerolog.Logger
	publishTimeout time.Duration
	retryMax       time.Duration // longest wait between first-connect attempts
	// wrapConn, when set (tests), wraps every network connection the client opens.
	wrapConn func(net.Conn) net.Conn

	pubMu sync.Mutex // orders client.Publish calls with flushes, so an older value never overtakes a newer one

	mu        sync.Mutex // guards everything below
	client    paho.Client
	broker    *Broker
	serverURL string
	connected bool
	outage    bool // the connection was lost since the last flush (not set before the first connection)
	closed    bool
	started   bool
	connects  int
	subs      []subscription
	hooks     []func()
	pending   map[string]pendingPublish // retained messages held while disconnected
	seq       map[string]uint64         // latest Publish per retained topic
	inbox     []inboxMessage
	inboxWake chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
}

type subscription struct {
	filter  string
	handler func(topic string, payload []byte)
}

type pendingPublish struct {
	payload []byte
	seq     uint64
}

type inboxMessage struct {
	handler func(topic string, payload []byte)
	topic   string
	payload []byte
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

// Connects returns how many times the client has connected (first connect and reconnects).
func (m *MQTT) Connects() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connects
}

// OnConnect registers f to run after every (re)connect, after subscriptions and held retained messages are
// restored. If the client is connected already, f also runs once now, on a new goroutine.
func (m *MQTT) OnConnect(f func()) {
	m.mu.Lock()
	m.hooks = append(m.hooks, f)
	connected := m.connected
	m.mu.Unlock()
	if connected {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			f()
		}()
	}
}

// Connect starts the embedded broker when mqtt.server is "embedded", then connects. The first connection is
// retried with back-off (1 s doubling to 30 s) until it succeeds or ctx ends, and every failure is logged
// with its reason; after that paho reconnects by itself. Connect can be called once.
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

	serverURL, tlsCfg, err := m.prepare()
	if err != nil {
		return err
	}
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
			m.log.Info().Str("server", serverURL).Msg("MQTT reconnecting")
		}).
		SetCustomOpenConnectionFn(func(u *url.URL, o paho.ClientOptions) (net.Conn, error) {
			return m.dial(u, tlsCfg, o.ConnectTimeout)
		})
	client := paho.NewClient(opts)
	m.mu.Lock()
	m.client = client
	m.serverURL = serverURL
	m.mu.Unlock()

	backoff := time.Second
	for attempt := 1; ; attempt++ {
		tok := client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return fmt.Errorf("connect to MQTT %s: %w", serverURL, ctx.Err())
		}
		if tok.Error() == nil {
			// paho runs the OnConnect handler on its own goroutine; mark the connection now so that what the
			// caller publishes right after Connect goes out instead of being held.
			m.mu.Lock()
			if !m.closed && client.IsConnectionOpen() {
				m.connected = true
			}
			m.mu.Unlock()
			return nil
		}
		m.log.Warn().Err(tok.Error()).Str("server", serverURL).Int("attempt", attempt).
			Dur("retry_in_ms", backoff).Msg("MQTT connect failed")
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("connect to MQTT %s: %w (last error: %v)", serverURL, ctx.Err(), tok.Error())
		}
		backoff = min(backoff*2, m.retryMax)
	}
}

// prepare starts the embedded broker if configured, and returns the URL to connect to and the TLS
// configuration (nil for plain TCP).
func (m *MQTT) prepare() (string, *tls.Config, error) {
	if m.cfg.Server == ServerEmbedded {
		b, err := StartBroker(BrokerConfig{Listen: m.cfg.EmbeddedListen, Username: m.cfg.Username, Password: m.cfg.Password}, m.log)
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
	m.connects++
	n := m.connects
	subs := append([]subscription(nil), m.subs...)
	hooks := append([]func(){}, m.hooks...)
	server := m.serverURL
	m.mu.Unlock()
	m.log.Info().Str("server", server).Str("client_id", m.cfg.ClientID).Int("connects", n).Msg("MQTT connected")

	if err := m.Publish(m.StateTopic(), StateOnline, true); err != nil {
		m.log.Warn().Err(err).Msg("publishing online state failed")
	}
	for _, s := range subs {
		if err := m.subscribe(client, s); err != nil {
			m.log.Error().Err(err).Str("filter", s.filter).Msg("MQTT re-subscribe failed")
		}
	}
	m.flush()
	for _, h := range hooks {
		h()
	}
}

func (m *MQTT) onConnectionLost(_ paho.Client, err error) {
	m.mu.Lock()
	m.connected = false
	closed := m.closed
	if !closed {
		m.outage = true
	}
	m.mu.Unlock()
	if !closed {
		m.log.Warn().Err(err).Msg("MQTT connection lost; reconnecting")
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
	m.log.Trace().Str("topic", topic).Bool("retained", retained).Bytes("payload", payload).Msg("MQTT publish")

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
	tok := client.Subscribe(s.filter, byte(m.cfg.QoS), func(_ paho.Client, msg paho.Message) {
		m.enqueue(inboxMessage{handler: s.handler, topic: msg.Topic(), payload: msg.Payload()})
	})
	if err := waitToken(tok, m.publishTimeout); err != nil {
		return fmt.Errorf("subscribe %q: %w", s.filter, err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code == 0x80 {
				return fmt.Errorf("subscribe %q: the broker refused it", f)
			}
		}
	}
	m.log.Debug().Str("filter", s.filter).Msg("MQTT subscribed")
	return nil
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
				m.inbox = nil
				m.mu.Unlock()
				break
			}
			msg := m.inbox[0]
			m.inbox[0] = inboxMessage{}
			m.inbox = m.inbox[1:]
			m.mu.Unlock()
			m.log.Trace().Str("topic", msg.topic).Bytes("payload", msg.payload).Msg("MQTT message")
			msg.handler(msg.topic, msg.payload)
		}
	}
}

// Close publishes {"state":"offline"} to the state topic (retained), disconnects, stops the handler
// goroutine and the embedded broker. Messages held for a reconnect are dropped. Safe to call twice.
func (m *MQTT) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	client, connected := m.client, m.connected
	m.mu.Unlock()
	if client != nil && connected {
		m.pubMu.Lock()
		tok := client.Publish(m.StateTopic(), byte(m.cfg.QoS), true, StateOffline)
		m.pubMu.Unlock()
		if err := waitToken(tok, 5*time.Second); err != nil {
			m.log.Warn().Err(err).Msg("publishing offline state failed")
		}
	}
	m.mu.Lock()
	m.closed = true
	m.connected = false
	m.pending = nil
	broker := m.broker
	started := m.started
	m.mu.Unlock()
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
