package bridge_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
)

// eventually polls cond until it holds; it fails the test after a generous bound (never a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runBridge runs a bridge with cfg until the test ends; wait returns Run's result once Run has returned.
func runBridge(t *testing.T, cfg bridge.Config, log *strings.Builder) (wait func() error) {
	t.Helper()
	w := zerolog.New(zerolog.SyncWriter(&lockedBuilder{b: log}))
	b, err := bridge.New(cfg, bridge.Options{Version: "it", Log: w, HealthInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return func() error {
		<-done
		return runErr
	}
}

// With the embedded broker's port taken the bridge keeps trying (with back-off, saying why) and reports
// unhealthy; once the port is free it starts the broker, connects and reports healthy.
func TestITHealthEmbeddedBrokerPortTaken(t *testing.T) {
	skipShort(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	cfg.MQTT.Server = bridge.ServerEmbedded
	cfg.MQTT.EmbeddedListen = taken.Addr().String()
	var log strings.Builder
	runBridge(t, cfg, &log)

	var last error
	eventually(t, "an unhealthy heartbeat naming MQTT", func() bool {
		last = bridge.CheckHealth(cfg.DataDir, time.Minute, time.Now())
		return last != nil && strings.Contains(last.Error(), "mqtt: embedded broker") && !strings.Contains(last.Error(), "radio:")
	})
	eventually(t, "a retry logged with its reason", func() bool {
		return strings.Contains(lockedString(&log), `"retry_in_ms"`) && strings.Contains(lockedString(&log), "embedded broker")
	})
	_ = taken.Close()
	eventually(t, "a healthy heartbeat after the port was freed", func() bool {
		last = bridge.CheckHealth(cfg.DataDir, time.Minute, time.Now())
		return last == nil
	})
}

// With the broker unreachable the bridge reports unhealthy (the radio is up, MQTT is not).
func TestITHealthBrokerUnreachable(t *testing.T) {
	skipShort(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	cfg.MQTT.Server = "mqtt://" + addr
	var log strings.Builder
	runBridge(t, cfg, &log)
	var last error
	eventually(t, "an unhealthy heartbeat naming MQTT", func() bool {
		last = bridge.CheckHealth(cfg.DataDir, time.Minute, time.Now())
		return last != nil && strings.Contains(last.Error(), "mqtt:") && strings.Contains(last.Error(), "refused") &&
			!strings.Contains(last.Error(), "radio:")
	})
}

// lockedBuilder lets the bridge's logger and the test share a strings.Builder.
type lockedBuilder struct{ b *strings.Builder }

var logMu sync.Mutex

func (l *lockedBuilder) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return l.b.Write(p)
}

func lockedString(b *strings.Builder) string {
	logMu.Lock()
	defer logMu.Unlock()
	return b.String()
}
