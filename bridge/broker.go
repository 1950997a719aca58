package bridge

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"log/slog"
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
}

// StartBroker starts the embedded broker listening on cfg.Listen. Close stops it.
func StartBroker(cfg BrokerConfig, log zerolog.Logger) (*Broker, error) {
	if cfg.Username != "" && cfg.Password == "" {
		return nil, fmt.Errorf("embedded broker: a username without a password would let anyone in with that name")
	}
	log = log.With().Str("component", "broker").Logger()
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
	if err := srv.AddHook(newRetainLimit(log), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: add retained-message limit: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "otabridge", Address: cfg.Listen, TLSConfig: cfg.TLS})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", cfg.Listen, err)
	}
	if err := srv.Serve(); err != nil { // Serve starts the listener goroutines and returns
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: serve on %s: %w", cfg.Listen, err)
	}
	b := &Broker{server: srv, addr: tcp.Address(), log: log}
	log.Info().Str("addr", b.addr).Bool("tls", cfg.TLS != nil).Bool("auth", cfg.Username != "").Msg("embedded MQTT broker started")
	return b, nil
}

// Addr is the address the broker listens on (with the real port when Listen asked for port 0).
func (b *Broker) Addr() string { return b.addr }

// Close disconnects every client and stops the broker.
func (b *Broker) Close() error {
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
	ev := h.log.WithLevel(zerologLevel(r.Level))
	add := func(a slog.Attr) bool {
		key := a.Key
		if h.group != "" {
			key = h.group + "." + key
		}
		ev = ev.Str(key, a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	ev.Msg(r.Message)
	return nil
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
