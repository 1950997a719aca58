package brokertest

import (
	"net"
	"strings"
	"testing"
	"time"
)

// dialable reports whether addr accepts TCP connections. After a successful probe it waits a moment: mochi's
// Close races (inside mochi, on its clients WaitGroup) with a connection it is still setting up, which the
// race detector reports; a real client never connects and vanishes within microseconds of a Stop.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	time.Sleep(100 * time.Millisecond)
	return true
}

func TestStartStopRestart(t *testing.T) {
	for _, kind := range []string{"", KindEmbedded} {
		t.Run("kind="+kind, func(t *testing.T) {
			if kind != "" {
				t.Setenv("OTABRIDGE_BROKERTEST", kind)
			}
			b := New(t)
			if kind == KindEmbedded && b.Kind() != KindEmbedded {
				t.Fatalf("kind %s, want embedded", b.Kind())
			}
			if !strings.HasPrefix(b.URL(), "mqtt://127.0.0.1:") {
				t.Fatalf("url %s", b.URL())
			}
			if !dialable(b.Addr()) {
				t.Fatal("broker does not accept connections")
			}
			b.Stop()
			if dialable(b.Addr()) {
				t.Fatal("stopped broker still accepts connections")
			}
			b.StartAgain()
			if !dialable(b.Addr()) {
				t.Fatal("restarted broker does not accept connections on the same port")
			}
			b.Restart()
			if !dialable(b.Addr()) {
				t.Fatal("Restart left the broker down")
			}
			url, stop := Start(t)
			if url == b.URL() {
				t.Fatal("two brokers on one port")
			}
			stop()
			stop()
		})
	}
}
