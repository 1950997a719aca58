package bridge

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"
)

// Broker is the embedded MQTT broker (mochi-mqtt) that `mqtt.server: embedded` runs inside the bridge, for
// users with no broker of their own. It keeps retained messages in memory only.
type Broker struct {
	server *mochi.Server
	addr   string
	log    zerolog.Logger
	final  *finalDelivery // nil without BrokerConfig.FinalTopic
}

// Memory bounds of the embedded broker. A packet holds at most the largest request the API accepts (an
// image upload in base64: maxRequestPayload) plus its topic and properties; a larger one is refused before
// it is read (the client is disconnected). Retained messages are capped per message and in total: a
// retained publish above a cap is still delivered, but not kept.
const (
	MaxBrokerPacket         = maxRequestPayload + 64<<10
	maxRetainedMessage      = 4 << 20
	maxRetainedTotal        = 64 << 20
	maxRetainedMessageCount = 20000
	retainLimitWarnEvery    = time.Minute
)

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Listen is the TCP address, e.g. "127.0.0.1:1883" (port 0: any free port; see Broker.Addr).
	Listen string
	// TLS, when set, makes the listener TLS-only.
	TLS *tls.Config
	// Username and Password, when Username is set, are the only credentials the broker accepts; otherwise
	// every client may connect.
	Username, Password string
	// FinalTopic, when set, is the topic whose latest message Close delivers to every subscriber before it
	// stops (the bridge's state topic, so that its {"state":"offline"} is not cut off by the shutdown).
	FinalTopic string
}

// finalDeliveryWait bounds how long Close waits for the final message to reach the subscribers.
const finalDeliveryWait = 5 * time.Second

// StartBroker starts the embedded broker listening on cfg.Listen. Close stops it.
func StartBroker(cfg BrokerConfig, log zerolog.Logger) (*Broker, error) {
	if cfg.Username != "" && cfg.Password == "" {
		return nil, fmt.Errorf("embedded broker: a username without a password would let anyone in with that name")
	}
	log = log.With().Str("component", "broker").Logger() // log must not carry a component already
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = MaxBrokerPacket
	srv := mochi.New(&mochi.Options{
		InlineClient: false,
		Logger:       slog.New(zerologHandler{log: log}),
		Capabilities: caps,
	})
	if err := srv.AddHook(&brokerAuth{username: cfg.Username, password: cfg.Password}, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: add auth hook: %w", err)
	}
	var final *finalDelivery
	if cfg.FinalTopic != "" {
		final = &finalDelivery{server: srv, topic: cfg.FinalTopic, pending: map[string]bool{}}
		if err := srv.AddHook(final, nil); err != nil {
			return nil, fmt.Errorf("embedded broker: add delivery hook: %w", err)
		}
	}
	if err := srv.AddHook(newRetainLimit(log), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: add retained-message limit: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", cfg.Listen, err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	gate := newPacketGate(gateSlots, gateLargePacket, MaxBrokerPacket, gateWait)
	tcp := listeners.NewNet("otabridge", gatedListener{Listener: ln, gate: gate})
	if err := srv.AddListener(tcp); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", cfg.Listen, err)
	}
	if err := srv.Serve(); err != nil { // Serve starts the listener goroutines and returns
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: serve on %s: %w", cfg.Listen, err)
	}
	b := &Broker{server: srv, addr: tcp.Address(), log: log, final: final}
	log.Info().Str("addr", b.addr).Bool("tls", cfg.TLS != nil).Bool("auth", cfg.Username != "").Msg("embedded MQTT broker started")
	return b, nil
}

// Addr is the address the broker listens on (with the real port when Listen asked for port 0).
func (b *Broker) Addr() string { return b.addr }

// Close delivers the latest message of BrokerConfig.FinalTopic to every subscriber still connected (waiting
// at most 5 s), then disconnects every client and stops the broker.
func (b *Broker) Close() error {
	if b.final != nil {
		if waiting := b.final.wait(finalDeliveryWait); len(waiting) > 0 {
			b.log.Warn().Str("topic", b.final.topic).Strs("clients", waiting).Dur("waited_ms", finalDeliveryWait).
				Msg("stopping before the final message reached every subscriber")
		}
	}
	err := b.server.Close()
	b.log.Info().Str("addr", b.addr).Msg("embedded MQTT broker stopped")
	return err
}

// zerologHandler forwards mochi's slog records to zerolog, one line each. mochi logs every client connect
// and disconnect at info; those go to debug so the bridge's info log stays about devices and firmware.
type zerologHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
	group string
}

func (h zerologHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= zerologLevel(l)
}

func zerologLevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	default:
		return zerolog.DebugLevel
	}
}

func (h zerologHandler) Handle(_ context.Context, r slog.Record) error {
	level := zerologLevel(r.Level)
	if level >= zerolog.WarnLevel && closedConnRecord(r) {
		// A read on a connection the broker itself closed (a normal stop, a client taken over): not a
		// problem worth a warning.
		level = zerolog.DebugLevel
		if h.log.GetLevel() > level {
			return nil
		}
	}
	ev := h.log.WithLevel(level)
	// One key per field: mochi's attributes may repeat a key (its own, or one of the line's fixed fields);
	// a repeat gets a numbered key instead of a duplicate that log shippers reject.
	used := map[string]bool{zerolog.LevelFieldName: true, zerolog.TimestampFieldName: true,
		zerolog.MessageFieldName: true, zerolog.CallerFieldName: true, "component": true}
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		ev = ev.Str(uniqueKey(used, key), a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	msg := r.Message
	if msg == "" { // mochi logs some listener errors without a message; every line has one
		msg = "embedded broker"
	}
	ev.Msg(msg)
	return nil
}

// uniqueKey returns key, or key_2, key_3… when it is in used already, and marks the result used.
func uniqueKey(used map[string]bool, key string) string {
	k := key
	for i := 2; used[k]; i++ {
		k = fmt.Sprintf("%s_%d", key, i)
	}
	used[k] = true
	return k
}

// closedConnRecord reports whether a record carries the error of an I/O on a closed network connection.
func closedConnRecord(r slog.Record) bool {
	closed := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, net.ErrClosed) {
			closed = true
			return false
		}
		return true
	})
	return closed
}

func (h zerologHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return h
}

func (h zerologHandler) WithGroup(name string) slog.Handler {
	if h.group != "" {
		name = h.group + "." + name
	}
	h.group = name
	return h
}

// brokerAuth lets every client in when no username is configured, otherwise only clients with the
// configured username and password. Every connected client may publish and subscribe to every topic.
type brokerAuth struct {
	mochi.HookBase
	username, password string
}

func (h *brokerAuth) ID() string { return "otabridge-auth" }

func (h *brokerAuth) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *brokerAuth) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if h.username == "" {
		return true
	}
	userOK := subtle.ConstantTimeCompare(cl.Properties.Username, []byte(h.username)) == 1
	passOK := subtle.ConstantTimeCompare(pk.Connect.Password, []byte(h.password)) == 1
	return userOK && passOK
}

func (h *brokerAuth) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// finalDelivery tracks which subscribers have not yet been sent the latest message of one topic: the set
// is taken when the message arrives (before the broker routes it) and a client leaves it when the message
// has been written to its connection, or when it disconnects.
type finalDelivery struct {
	mochi.HookBase
	server *mochi.Server
	topic  string

	mu      sync.Mutex
	payload []byte
	pending map[string]bool // client ids
	changed chan struct{}   // closed and replaced when pending shrinks
}

func (h *finalDelivery) ID() string { return "otabridge-final-delivery" }

func (h *finalDelivery) Provides(b byte) bool {
	return b == mochi.OnPublish || b == mochi.OnPacketSent || b == mochi.OnDisconnect
}

func (h *finalDelivery) OnPublish(_ *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.TopicName != h.topic {
		return pk, nil
	}
	subs := h.server.Topics.Subscribers(pk.TopicName)
	h.mu.Lock()
	h.payload = bytes.Clone(pk.Payload)
	h.pending = make(map[string]bool, len(subs.Subscriptions))
	for id := range subs.Subscriptions {
		h.pending[id] = true
	}
	h.signalLocked()
	h.mu.Unlock()
	return pk, nil
}

func (h *finalDelivery) OnPacketSent(cl *mochi.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type != packets.Publish || pk.TopicName != h.topic {
		return
	}
	h.mu.Lock()
	if h.pending[cl.ID] && bytes.Equal(pk.Payload, h.payload) {
		delete(h.pending, cl.ID)
		h.signalLocked()
	}
	h.mu.Unlock()
}

func (h *finalDelivery) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	h.mu.Lock()
	if h.pending[cl.ID] {
		delete(h.pending, cl.ID)
		h.signalLocked()
	}
	h.mu.Unlock()
}

func (h *finalDelivery) signalLocked() {
	if h.changed != nil {
		close(h.changed)
	}
	h.changed = make(chan struct{})
}

// wait waits until no subscriber waits for the latest message, at most d; it returns the ids still waiting.
func (h *finalDelivery) wait(d time.Duration) []string {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		if h.changed == nil {
			h.changed = make(chan struct{})
		}
		waiting := make([]string, 0, len(h.pending))
		for id := range h.pending {
			waiting = append(waiting, id)
		}
		changed := h.changed
		h.mu.Unlock()
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			sort.Strings(waiting)
			return waiting
		}
	}
}

// retainLimit keeps the embedded broker's retained messages within maxRetainedMessage each and
// maxRetainedTotal / maxRetainedMessageCount in all: a retained publish that would pass a cap loses its retain
// flag (subscribers still get it; nothing is kept). It counts what it let through per topic.
type retainLimit struct {
	mochi.HookBase
	log zerolog.Logger

	mu       sync.Mutex
	sizes    map[string]int // retained payload bytes per topic
	total    int
	lastWarn time.Time
}

func newRetainLimit(log zerolog.Logger) *retainLimit {
	return &retainLimit{log: log, sizes: map[string]int{}}
}

func (h *retainLimit) ID() string { return "otabridge-retain-limit" }

func (h *retainLimit) Provides(b byte) bool { return b == mochi.OnPublish }

func (h *retainLimit) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if !pk.FixedHeader.Retain {
		return pk, nil
	}
	n := len(pk.Payload)
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.sizes[pk.TopicName]
	if n == 0 { // clears the retained message
		delete(h.sizes, pk.TopicName)
		h.total -= old
		return pk, nil
	}
	count := len(h.sizes)
	if !had {
		count++
	}
	reason := ""
	switch {
	case n > maxRetainedMessage:
		reason = fmt.Sprintf("payload of %d bytes is above the %d bytes a retained message may have", n, maxRetainedMessage)
	case h.total-old+n > maxRetainedTotal:
		reason = fmt.Sprintf("the retained messages would hold more than %d bytes", maxRetainedTotal)
	case count > maxRetainedMessageCount:
		reason = fmt.Sprintf("more than %d topics would hold a retained message", maxRetainedMessageCount)
	}
	if reason != "" {
		pk.FixedHeader.Retain = false
		if now := time.Now(); now.Sub(h.lastWarn) >= retainLimitWarnEvery {
			h.lastWarn = now
			h.log.Warn().Str("client", cl.ID).Str("topic", pk.TopicName).Int("bytes", n).Int("retained_bytes", h.total).
				Int("retained_topics", len(h.sizes)).Str("reason", reason).Msg("retained publish delivered but not kept")
		}
		return pk, nil
	}
	h.sizes[pk.TopicName] = n
	h.total += n - old
	return pk, nil
}
