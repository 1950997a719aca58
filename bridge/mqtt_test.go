package bridge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/brokertest"
)

// waitLimit bounds every wait in these tests; it is a safety net, never an assertion about speed.
const waitLimit = 20 * time.Second

// observer is a plain paho client that records what it receives.
type observer struct {
	t      *testing.T
	client paho.Client
	mu     sync.Mutex
	msgs   []receivedMessage
	wake   chan struct{}
}

type receivedMessage struct {
	topic    string
	payload  string
	retained bool
}

func newObserver(t *testing.T, serverURL, filter string) *observer {
	t.Helper()
	o := &observer{t: t, wake: make(chan struct{}, 1)}
	opts := paho.NewClientOptions().AddBroker(strings.Replace(serverURL, "mqtt://", "tcp://", 1)).
		SetClientID(fmt.Sprintf("observer-%d", time.Now().UnixNano())).SetAutoReconnect(false)
	o.client = paho.NewClient(opts)
	tok := o.client.Connect()
	require.True(t, tok.WaitTimeout(waitLimit), "observer connect")
	require.NoError(t, tok.Error())
	tok = o.client.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
		o.mu.Lock()
		o.msgs = append(o.msgs, receivedMessage{m.Topic(), string(m.Payload()), m.Retained()})
		o.mu.Unlock()
		select {
		case o.wake <- struct{}{}:
		default:
		}
	})
	require.True(t, tok.WaitTimeout(waitLimit), "observer subscribe")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { o.client.Disconnect(50) })
	return o
}

// waitFor waits until a message with topic and payload arrived (after index from) and returns its index.
func (o *observer) waitFor(topic, payload string, from int) int {
	o.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		for i := from; i < len(o.msgs); i++ {
			if o.msgs[i].topic == topic && o.msgs[i].payload == payload {
				o.mu.Unlock()
				return i
			}
		}
		got := append([]receivedMessage(nil), o.msgs...)
		o.mu.Unlock()
		select {
		case <-o.wake:
		case <-deadline.C:
			o.t.Fatalf("no %s = %s; got %v", topic, payload, got)
		}
	}
}

func (o *observer) publish(topic, payload string, retained bool) {
	o.t.Helper()
	tok := o.client.Publish(topic, 1, retained, payload)
	require.True(o.t, tok.WaitTimeout(waitLimit))
	require.NoError(o.t, tok.Error())
}

func testMQTTConfig(server string) MQTTConfig {
	return MQTTConfig{Server: server, BaseTopic: "otabridge-test", ClientID: fmt.Sprintf("otabridge-test-%d", time.Now().UnixNano()),
		Keepalive: 10 * time.Second, QoS: 1, EmbeddedListen: "127.0.0.1:0"}
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestMQTTConnectPublishSubscribe(t *testing.T) {
	b := brokertest.New(t)
	t.Logf("broker: %s", b.Kind())
	obs := newObserver(t, b.URL(), "otabridge-test/#")
	m := NewMQTT(testMQTTConfig(b.URL()), zerolog.Nop())
	var hookRuns atomic.Int32
	m.OnConnect(func() { hookRuns.Add(1) })
	got := make(chan string, 10)
	require.NoError(t, m.Subscribe("otabridge-test/bridge/request/#", func(topic string, payload []byte) {
		got <- topic + " " + string(payload)
	}))
	require.NoError(t, m.Connect(context.Background()))
	defer m.Close()
	assert.True(t, m.Connected())

	obs.waitFor("otabridge-test/bridge/state", `{"state":"online"}`, 0)
	require.NoError(t, m.Publish("otabridge-test/bridge/info", []byte(`{"version":"x"}`), true))
	require.NoError(t, m.Publish("otabridge-test/bridge/event", []byte(`{"type":"device_joined"}`), false))
	obs.waitFor("otabridge-test/bridge/info", `{"version":"x"}`, 0)
	obs.waitFor("otabridge-test/bridge/event", `{"type":"device_joined"}`, 0)
	eventually(t, func() bool { return hookRuns.Load() == 1 }, "the OnConnect hook")

	obs.publish("otabridge-test/bridge/request/permit_join", `{"time":10}`, false)
	select {
	case s := <-got:
		assert.Equal(t, `otabridge-test/bridge/request/permit_join {"time":10}`, s)
	case <-time.After(waitLimit):
		t.Fatal("subscription got nothing")
	}

	// A handler that publishes does not deadlock the client.
	require.NoError(t, m.Subscribe("otabridge-test/ping", func(string, []byte) {
		_ = m.Publish("otabridge-test/pong", []byte("1"), false)
	}))
	obs.publish("otabridge-test/ping", "x", false)
	obs.waitFor("otabridge-test/pong", "1", 0)

	assert.Error(t, m.Subscribe("a/b#", func(string, []byte) {}))

	// Close publishes the offline state.
	require.NoError(t, m.Close())
	obs.waitFor("otabridge-test/bridge/state", `{"state":"offline"}`, 0)
	assert.ErrorIs(t, m.Publish("x", nil, true), ErrMQTTClosed)
	require.NoError(t, m.Close())
}

func TestMQTTLastWillOnAbruptDisconnect(t *testing.T) {
	b := brokertest.New(t)
	obs := newObserver(t, b.URL(), "otabridge-test/bridge/state")
	m := NewMQTT(testMQTTConfig(b.URL()), zerolog.Nop())
	var connMu sync.Mutex
	var conns []*brokenConn
	allowReconnect := make(chan struct{})
	m.wrapConn = func(c net.Conn) net.Conn {
		connMu.Lock()
		defer connMu.Unlock()
		if len(conns) > 0 {
			// Hold the reconnect until the observer saw the will: a broker may drop the will of a session
			// that a new connection takes over.
			select {
			case <-allowReconnect:
			case <-time.After(waitLimit):
			}
		}
		bc := &brokenConn{Conn: c}
		conns = append(conns, bc)
		return bc
	}
	require.NoError(t, m.Connect(context.Background()))
	defer m.Close()
	i := obs.waitFor("otabridge-test/bridge/state", `{"state":"online"}`, 0)

	// Kill the TCP connection without an MQTT DISCONNECT: the broker publishes the last will.
	connMu.Lock()
	require.Len(t, conns, 1)
	conns[0].breakNow()
	connMu.Unlock()
	i = obs.waitFor("otabridge-test/bridge/state", `{"state":"offline"}`, i)
	close(allowReconnect)

	// The client reconnects by itself and says it is online again.
	obs.waitFor("otabridge-test/bridge/state", `{"state":"online"}`, i)
	eventually(t, func() bool { return m.Connects() == 2 }, "the reconnect")
}

// brokenConn is a connection the test can break the way a network does: the socket closes and the client
// reads an error that is not net.ErrClosed (paho takes net.ErrClosed for its own deliberate close).
type brokenConn struct {
	net.Conn
	broken atomic.Bool
}

func (c *brokenConn) breakNow() {
	c.broken.Store(true)
	_ = c.Conn.Close()
}

func (c *brokenConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.broken.Load() {
		return n, errConnectionReset
	}
	return n, err
}

func (c *brokenConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && c.broken.Load() {
		return n, errConnectionReset
	}
	return n, err
}

var errConnectionReset = errors.New("connection reset (test)")

func TestMQTTBrokerOutage(t *testing.T) {
	b := brokertest.New(t)
	var logs logBuffer
	m := NewMQTT(testMQTTConfig(b.URL()), zerolog.New(&logs).Level(zerolog.InfoLevel))
	m.retryMax = time.Second // reconnect quickly in the test
	var hookRuns atomic.Int32
	m.OnConnect(func() { hookRuns.Add(1) })
	got := make(chan string, 10)
	require.NoError(t, m.Subscribe("otabridge-test/bridge/request/+", func(topic string, payload []byte) {
		got <- string(payload)
	}))
	// Retained state published before the first connection is sent when it comes: that is no outage.
	require.NoError(t, m.Publish("otabridge-test/early", []byte("e"), true))
	require.NoError(t, m.Connect(context.Background()))
	defer m.Close()
	eventually(t, func() bool { return hookRuns.Load() == 1 }, "the first OnConnect")
	assert.NotContains(t, logs.String(), "outage", "no outage was logged at the first connection")

	b.Stop()
	eventually(t, func() bool { return !m.Connected() }, "the client to notice the outage")
	require.NoError(t, m.Publish("otabridge-test/dev/update", []byte("v1"), true))
	require.NoError(t, m.Publish("otabridge-test/dev/update", []byte("v2"), true), "held, not an error")
	require.NoError(t, m.Publish("otabridge-test/other", []byte("o"), true))
	assert.ErrorIs(t, m.Publish("otabridge-test/bridge/event", []byte("e"), false), ErrMQTTNotConnected)

	b.StartAgain() // a fresh broker: no retained messages survive on its side
	eventually(t, func() bool { return hookRuns.Load() == 2 }, "the reconnect hook")
	assert.Contains(t, logs.String(), "MQTT flushed retained messages held during the outage")

	// A client that connects after the outage sees the last retained values.
	obs := newObserver(t, b.URL(), "otabridge-test/#")
	obs.waitFor("otabridge-test/dev/update", "v2", 0)
	obs.waitFor("otabridge-test/other", "o", 0)
	obs.waitFor("otabridge-test/bridge/state", `{"state":"online"}`, 0)
	obs.mu.Lock()
	for _, msg := range obs.msgs {
		assert.NotEqual(t, "v1", msg.payload, "the older held value is not published")
		assert.NotEqual(t, "otabridge-test/bridge/event", msg.topic)
	}
	obs.mu.Unlock()

	// The subscription was made again.
	obs.publish("otabridge-test/bridge/request/check", `{"id":"x"}`, false)
	select {
	case s := <-got:
		assert.Equal(t, `{"id":"x"}`, s)
	case <-time.After(waitLimit):
		t.Fatal("no message after the reconnect: subscription lost")
	}
}

func TestMQTTFirstConnectRetries(t *testing.T) {
	b := brokertest.New(t)
	b.Stop()
	var logs logBuffer
	m := NewMQTT(testMQTTConfig(b.URL()), zerolog.New(&logs))
	m.retryMax = 500 * time.Millisecond
	defer m.Close()
	done := make(chan error, 1)
	go func() { done <- m.Connect(context.Background()) }()
	eventually(t, func() bool { return strings.Count(logs.String(), "MQTT connect failed") >= 2 }, "two failed attempts")
	assert.Contains(t, logs.String(), "connection refused", "each failure logs its reason")
	b.StartAgain()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitLimit):
		t.Fatal("Connect did not succeed after the broker came up")
	}
	assert.True(t, m.Connected())
}

func TestMQTTConnectGivesUpWithContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	m := NewMQTT(testMQTTConfig("mqtt://"+addr), zerolog.Nop())
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = m.Connect(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), addr)
}

func TestMQTTEmbeddedBroker(t *testing.T) {
	cfg := testMQTTConfig(ServerEmbedded)
	m := NewMQTT(cfg, zerolog.Nop())
	require.NoError(t, m.Connect(context.Background()))
	addr := m.broker.Addr()
	obs := newObserver(t, "mqtt://"+addr, "otabridge-test/#")
	obs.waitFor("otabridge-test/bridge/state", `{"state":"online"}`, 0)
	require.NoError(t, m.Publish("otabridge-test/x", []byte("y"), true))
	obs.waitFor("otabridge-test/x", "y", 0)
	require.NoError(t, m.Close())
	eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, "the embedded broker to stop")
}

func TestEmbeddedBrokerAuth(t *testing.T) {
	b, err := StartBroker(BrokerConfig{Listen: "127.0.0.1:0", Username: "u", Password: "secret"}, zerolog.Nop())
	require.NoError(t, err)
	defer b.Close()
	connect := func(user, pass string) error {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetUsername(user).SetPassword(pass).
			SetClientID(fmt.Sprintf("c-%d", time.Now().UnixNano())))
		tok := c.Connect()
		tok.WaitTimeout(waitLimit)
		if tok.Error() == nil {
			c.Disconnect(10)
		}
		return tok.Error()
	}
	assert.NoError(t, connect("u", "secret"))
	assert.Error(t, connect("u", "wrong"))
	assert.Error(t, connect("", ""))
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client certificate, written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	serverTLS                 *tls.Config
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "otabridge test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (tls.Certificate, []byte, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		require.NoError(t, err)
		keyDER, err := x509.MarshalECPrivateKey(key)
		require.NoError(t, err)
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		require.NoError(t, err)
		return pair, certPEM, keyPEM
	}
	serverPair, _, _ := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	_, clientCert, clientKey := issue(3, "otabridge", x509.ExtKeyUsageClientAuth, nil)

	p := testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "client.pem"), keyFile: filepath.Join(dir, "client.key")}
	require.NoError(t, os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	require.NoError(t, os.WriteFile(p.certFile, clientCert, 0o600))
	require.NoError(t, os.WriteFile(p.keyFile, clientKey, 0o600))
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	p.serverTLS = &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	return p
}

func TestMQTTTLS(t *testing.T) {
	pki := newTestPKI(t)
	b, err := StartBroker(BrokerConfig{Listen: "127.0.0.1:0", TLS: pki.serverTLS}, zerolog.Nop())
	require.NoError(t, err)
	defer b.Close()
	_, port, _ := net.SplitHostPort(b.Addr())

	// CA file + client certificate: connects.
	cfg := testMQTTConfig("mqtts://127.0.0.1:" + port)
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = pki.caFile, pki.certFile, pki.keyFile
	m := NewMQTT(cfg, zerolog.Nop())
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(t, m.Connect(ctx))
	got := make(chan string, 1)
	require.NoError(t, m.Subscribe("otabridge-test/echo", func(_ string, p []byte) { got <- string(p) }))
	require.NoError(t, m.Publish("otabridge-test/echo", []byte("over TLS"), false))
	select {
	case s := <-got:
		assert.Equal(t, "over TLS", s)
	case <-time.After(waitLimit):
		t.Fatal("no echo over TLS")
	}
	require.NoError(t, m.Close())

	// Without the CA the server certificate is not trusted: every attempt fails with a certificate error.
	cfg2 := testMQTTConfig("mqtts://127.0.0.1:" + port)
	cfg2.CertFile, cfg2.KeyFile = pki.certFile, pki.keyFile
	var logs logBuffer
	m2 := NewMQTT(cfg2, zerolog.New(&logs))
	defer m2.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel2()
	require.Error(t, m2.Connect(ctx2))
	assert.Contains(t, logs.String(), "certificate")

	// Without a client certificate the broker refuses the handshake.
	cfg3 := testMQTTConfig("mqtts://127.0.0.1:" + port)
	cfg3.CAFile = pki.caFile
	m3 := NewMQTT(cfg3, zerolog.Nop())
	defer m3.Close()
	ctx3, cancel3 := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel3()
	require.Error(t, m3.Connect(ctx3))

	// A broken CA file is reported.
	bad := filepath.Join(t.TempDir(), "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("not pem"), 0o600))
	_, err = MQTTConfig{CAFile: bad}.TLSConfig("x")
	assert.ErrorContains(t, err, "no PEM certificate")
}

// A read on a connection the embedded broker closed itself (every client's, at a normal stop) is not a
// warning; other warnings of the broker stay warnings.
func TestBrokerLogClosedConnectionIsDebug(t *testing.T) {
	var logs logBuffer
	h := zerologHandler{log: zerolog.New(&logs).Level(zerolog.InfoLevel)}
	closedErr := &net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}
	r := slog.NewRecord(time.Now(), slog.LevelWarn, "", 0)
	r.AddAttrs(slog.Any("error", closedErr), slog.String("listener", "otabridge"))
	require.NoError(t, h.Handle(context.Background(), r))
	assert.Empty(t, logs.String(), "closed connection at info level: nothing")

	r = slog.NewRecord(time.Now(), slog.LevelWarn, "", 0)
	r.AddAttrs(slog.Any("error", errors.New("connection reset by peer")))
	require.NoError(t, h.Handle(context.Background(), r))
	assert.Contains(t, logs.String(), `"level":"warn"`)

	var debugLogs logBuffer
	h = zerologHandler{log: zerolog.New(&debugLogs).Level(zerolog.DebugLevel)}
	r = slog.NewRecord(time.Now(), slog.LevelWarn, "", 0)
	r.AddAttrs(slog.Any("error", closedErr))
	require.NoError(t, h.Handle(context.Background(), r))
	assert.Contains(t, debugLogs.String(), `"level":"debug"`)
}
