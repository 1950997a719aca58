package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/otabridge/otabridge/bridge"
)

// README, Command line: `health` exits 0 while <data_dir>/health is younger than --max-age (default 1m30s),
// else 1 with the reason; a component that is down fails it too.
func TestHealthCommandAsDocumented(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := runMain(append([]string{"health", "--data-dir", dir}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, msg := run(); code != 1 || !strings.Contains(msg, "no heartbeat") {
		t.Errorf("no heartbeat yet: exit %d %q, want 1 and the reason", code, msg)
	}
	// Heartbeats written well inside and well outside the default 90 s.
	if err := bridge.WriteHealth(dir, time.Now().Add(-60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if code, msg := run(); code != 0 || !strings.Contains(msg, "healthy") {
		t.Errorf("60 s old heartbeat: exit %d %q, want 0", code, msg)
	}
	if err := bridge.WriteHealth(dir, time.Now().Add(-150*time.Second)); err != nil {
		t.Fatal(err)
	}
	if code, msg := run(); code != 1 || !strings.Contains(msg, "allowed 1m30s") {
		t.Errorf("150 s old heartbeat: exit %d %q, want 1 naming the default max age 1m30s", code, msg)
	}
	if code, msg := run("--max-age", "5m"); code != 0 {
		t.Errorf("150 s old heartbeat, --max-age 5m: exit %d %q, want 0", code, msg)
	}
	if err := bridge.WriteHealthStatus(dir, time.Now(), []string{"mqtt: connection refused"}); err != nil {
		t.Fatal(err)
	}
	if code, msg := run(); code != 1 || !strings.Contains(msg, "mqtt: connection refused") {
		t.Errorf("MQTT down: exit %d %q, want 1 with the reason", code, msg)
	}
}

// README, Memory bounds: the Go runtime's soft memory limit is 256 MiB unless GOMEMLIMIT sets another.
func TestDefaultMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(1 << 40)
	setMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != 256<<20 {
		t.Errorf("without GOMEMLIMIT: limit %d, want 256 MiB", got)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30) // what the runtime read from GOMEMLIMIT at start
	setMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("with GOMEMLIMIT: limit %d, want it left alone", got)
	}
}
