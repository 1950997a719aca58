// Package brokertest owns the MQTT broker that tests run against: Debian's mosquitto (/usr/sbin/mosquitto)
// with a generated configuration on a free 127.0.0.1 port and no persistence when it is installed, otherwise
// an in-process mochi-mqtt broker. Tests can stop and start it on the same port to simulate a broker outage.
//
// NewWithAccess makes a broker that refuses one user's subscriptions to given filters (mosquitto's dynamic
// security plugin, or a hook of the embedded broker), for tests of refused SUBACKs.
//
// When CI=true and mosquitto is missing the test fails ("CI must install mosquitto"), so CI never silently
// tests against the embedded broker only. OTABRIDGE_BROKERTEST=embedded forces the embedded broker.
package brokertest

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// MosquittoPath is where Debian installs the broker.
const MosquittoPath = "/usr/sbin/mosquitto"

// Kinds of broker.
const (
	KindMosquitto = "mosquitto"
	KindEmbedded  = "embedded"
)

// Broker is a running test broker. Its methods may be called from any goroutine.
type Broker struct {
	t    testing.TB
	kind string
	addr string // 127.0.0.1:port
	dir  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	waitErr chan error
	stderr  *bytes.Buffer
	server  *mochi.Server
	running bool
	access  *Access
}

// Access restricts one user of a broker made by NewWithAccess: clients that log in as Username with
// Password may do everything except subscribe to the filters in DenySubscribe, which the broker refuses
// (a SUBACK failure code). Every other client, anonymous ones too, may do everything.
type Access struct {
	Username, Password string
	DenySubscribe      []string
}

// DynsecPlugin finds mosquitto's dynamic security plugin ("" when it is not installed). mosquitto's
// acl_file cannot be used to refuse a subscription: mosquitto 2.0 grants it and filters the messages.
func DynsecPlugin() string {
	paths, _ := filepath.Glob("/usr/lib/*/mosquitto_dynamic_security.so")
	paths = append(paths, "/usr/lib/mosquitto_dynamic_security.so", "/usr/local/lib/mosquitto_dynamic_security.so")
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// NewWithAccess starts a broker like New that enforces access. With mosquitto it configures the dynamic
// security plugin; the test is skipped when mosquitto runs without that plugin installed.
func NewWithAccess(t testing.TB, access Access) *Broker {
	t.Helper()
	return newBroker(t, &access)
}

// Start starts a broker for the test and returns its URL (mqtt://127.0.0.1:port) and a function that stops
// it (also registered with t.Cleanup; calling it twice is fine).
func Start(t testing.TB) (url string, stop func()) {
	b := New(t)
	return b.URL(), b.Stop
}

// New starts a broker for the test; it is stopped at the end of the test.
func New(t testing.TB) *Broker {
	t.Helper()
	return newBroker(t, nil)
}

func newBroker(t testing.TB, access *Access) *Broker {
	t.Helper()
	kind := KindEmbedded
	if os.Getenv("OTABRIDGE_BROKERTEST") != KindEmbedded {
		if _, err := os.Stat(MosquittoPath); err == nil {
			kind = KindMosquitto
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("brokertest: %s not found: CI must install mosquitto", MosquittoPath)
		}
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("brokertest: find a free port: %v", err)
	}
	if access != nil && kind == KindMosquitto && DynsecPlugin() == "" {
		t.Skip("brokertest: mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) is not installed")
	}
	b := &Broker{t: t, kind: kind, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: t.TempDir(), access: access}
	if err := b.start(); err != nil {
		t.Fatalf("brokertest: start %s: %v", kind, err)
	}
	t.Cleanup(b.Stop)
	return b
}

// URL is mqtt://127.0.0.1:port.
func (b *Broker) URL() string { return "mqtt://" + b.addr }

// Addr is 127.0.0.1:port.
func (b *Broker) Addr() string { return b.addr }

// Kind says which broker runs: KindMosquitto or KindEmbedded.
func (b *Broker) Kind() string { return b.kind }

// Stop stops the broker (an outage: clients lose their connections). It returns when the port is closed.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.running {
		return
	}
	b.running = false
	switch b.kind {
	case KindMosquitto:
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.waitErr:
		case <-time.After(5 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.waitErr
		}
	case KindEmbedded:
		_ = b.server.Close()
	}
	// Wait until nothing accepts on the port any more.
	for range 100 {
		c, err := net.DialTimeout("tcp", b.addr, 50*time.Millisecond)
		if err != nil {
			return
		}
		_ = c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// StartAgain starts a stopped broker on the same port. Retained messages do not survive (no persistence).
func (b *Broker) StartAgain() {
	b.t.Helper()
	if err := b.start(); err != nil {
		b.t.Fatalf("brokertest: restart %s: %v", b.kind, err)
	}
}

// Restart stops the broker and starts it again on the same port.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.StartAgain()
}

func (b *Broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running {
		return nil
	}
	var err error
	// The port was free a moment ago, and after a Stop it may take a moment to be usable again: retry.
	for attempt := range 50 {
		if b.kind == KindMosquitto {
			err = b.startMosquitto()
		} else {
			err = b.startEmbedded()
		}
		if err == nil {
			b.running = true
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return err
}

func (b *Broker) startMosquitto() error {
	conf := filepath.Join(b.dir, "mosquitto.conf")
	_, port, _ := net.SplitHostPort(b.addr)
	text := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
	if os.Geteuid() == 0 {
		text += "user root\n" // otherwise mosquitto drops to a user that cannot read the test's temp dir
	}
	if b.access != nil {
		dynsec := filepath.Join(b.dir, "dynamic-security.json")
		if err := writeDynsec(dynsec, *b.access); err != nil {
			return err
		}
		text += fmt.Sprintf("plugin %s\nplugin_opt_config_file %s\n", DynsecPlugin(), dynsec)
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(MosquittoPath, "-c", conf)
	cmd.SysProcAttr = childAttr()
	stderr := &bytes.Buffer{}
	cmd.Stdout = io.Discard
	cmd.Stderr = &lockedWriter{w: stderr}
	if err := cmd.Start(); err != nil {
		return err
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }() // owned by the Broker: ends when the process it waits for exits
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-waitErr:
			return fmt.Errorf("mosquitto exited: %v: %s", err, stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", b.addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			b.cmd, b.waitErr, b.stderr = cmd, waitErr, stderr
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-waitErr
	return errors.New("mosquitto did not accept connections within 5s")
}

func (b *Broker) startEmbedded() error {
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var hook mochi.Hook = &allowAll{}
	if b.access != nil {
		hook = &accessHook{access: *b.access}
	}
	if err := srv.AddHook(hook, nil); err != nil {
		return err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "brokertest", Address: b.addr})); err != nil {
		return err
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return err
	}
	b.server = srv
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// allowAll lets every client connect, publish and subscribe.
type allowAll struct{ mochi.HookBase }

func (allowAll) ID() string { return "brokertest-allow-all" }

func (allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// accessHook enforces an Access in the embedded broker.
type accessHook struct {
	mochi.HookBase
	access Access
}

func (*accessHook) ID() string { return "brokertest-access" }

func (*accessHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *accessHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if string(cl.Properties.Username) != h.access.Username {
		return true
	}
	return string(pk.Connect.Password) == h.access.Password
}

// OnACLCheck is asked for subscriptions (the filter, write false) and deliveries (the topic, write false).
func (h *accessHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if write || string(cl.Properties.Username) != h.access.Username {
		return true
	}
	return !slices.Contains(h.access.DenySubscribe, topic)
}

// writeDynsec writes the dynamic security plugin's configuration for access: the user with its password
// (PBKDF2-SHA512, as mosquitto_ctrl writes it) and a role that denies its subscriptions; everything else is
// allowed by default.
func writeDynsec(path string, access Access) error {
	salt := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	const iterations = 101
	hash, err := pbkdf2.Key(sha512.New, access.Password, salt, iterations, sha512.Size)
	if err != nil {
		return err
	}
	type acl struct {
		Type  string `json:"acltype"`
		Topic string `json:"topic"`
		Allow bool   `json:"allow"`
	}
	acls := []acl{}
	for _, f := range access.DenySubscribe {
		acls = append(acls, acl{Type: "subscribeLiteral", Topic: f, Allow: false})
	}
	cfg := map[string]any{
		"clients": []map[string]any{{"username": access.Username, "password": base64.StdEncoding.EncodeToString(hash),
			"salt": base64.StdEncoding.EncodeToString(salt), "iterations": iterations,
			"roles": []map[string]any{{"rolename": "restricted"}}}},
		"roles": []map[string]any{{"rolename": "restricted", "acls": acls}},
		"defaultACLAccess": map[string]bool{"publishClientSend": true, "publishClientReceive": true,
			"subscribe": true, "unsubscribe": true},
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}
