package bridge

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

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
	log = log.With().Str("component", "broker").Logger()
	srv := mochi.New(&mochi.Options{
		InlineClient: false,
		Logger:       slog.New(zerologHandler{log: log}),
	})
	if err := srv.AddHook(&brokerAuth{username: cfg.Username, password: cfg.Password}, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: add auth hook: %w", err)
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
