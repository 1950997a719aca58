package bridge

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
)

func TestHealthHeartbeat(t *testing.T) {
	dir := t.TempDir()
	beat := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))

	err := CheckHealth(dir, 90*time.Second, beat)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no heartbeat")

	require.NoError(t, WriteHealth(dir, beat))
	b, err := os.ReadFile(filepath.Join(dir, HealthFile))
	require.NoError(t, err)
	assert.Equal(t, "2026-11-27T09:00:00.123456789Z\n", string(b))

	tests := []struct {
		name    string
		now     time.Time
		healthy bool
	}{
		{"just written", beat, true},
		{"at the limit", beat.Add(90 * time.Second), true},
		{"too old", beat.Add(90*time.Second + time.Nanosecond), false},
		{"an hour old", beat.Add(time.Hour), false},
		{"clock set back", beat.Add(-time.Hour), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckHealth(dir, 90*time.Second, tc.now)
			if tc.healthy {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "last heartbeat")
			assert.Contains(t, err.Error(), "allowed 1m30s")
		})
	}

	// A newer beat replaces the old one and leaves no temporary file behind.
	require.NoError(t, WriteHealth(dir, beat.Add(time.Hour)))
	assert.NoError(t, CheckHealth(dir, 90*time.Second, beat.Add(time.Hour+time.Minute)))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1)
}

func TestHealthBadFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, HealthFile), []byte("yesterday\n"), 0o600))
	err := CheckHealth(dir, time.Minute, time.Now())
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"yesterday" is not an RFC 3339 time`)

	err = WriteHealth(filepath.Join(dir, "missing"), time.Now())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "write health")
}

// A heartbeat that names a component that is down is unhealthy, with the reason; when it comes back up the
// next beat is healthy again.
func TestHealthComponentsDown(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	writes := 0
	h := NewHealth(func() { writes++ })
	h.Down(HealthMQTT, "embedded broker: listen on 127.0.0.1:1883: address already in use")
	h.Down(HealthMQTT, "embedded broker: listen on 127.0.0.1:1883: address already in use") // no change
	h.Down(HealthRadio, "disconnected: serial port gone")
	assert.Equal(t, 2, writes)
	require.NoError(t, WriteHealthStatus(dir, now, h.Problems()))
	err := CheckHealth(dir, time.Minute, now)
	require.Error(t, err)
	assert.Equal(t, "unhealthy: mqtt: embedded broker: listen on 127.0.0.1:1883: address already in use; "+
		"radio: disconnected: serial port gone", err.Error())

	h.Up(HealthRadio)
	require.NoError(t, WriteHealthStatus(dir, now, h.Problems()))
	err = CheckHealth(dir, time.Minute, now)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "radio")

	h.Up(HealthMQTT)
	assert.Empty(t, h.Problems())
	require.NoError(t, WriteHealthStatus(dir, now, h.Problems()))
	assert.NoError(t, CheckHealth(dir, time.Minute, now))
}

// The radio going away marks it down in the health set (so the heartbeat is unhealthy) until it is back.
func TestRadioDisconnectMarksUnhealthy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	b, err := New(cfg, Options{Log: zerolog.Nop()})
	require.NoError(t, err)
	b.pub = newPublisher(func(string, []byte, bool) error { return nil }, zerolog.Nop())
	defer b.pub.close()
	b.health.Up(HealthMQTT)
	b.health.Up(HealthRadio)

	b.handleEvent(ncp.Event{Kind: ncp.EventDisconnected, Reason: "serial port gone"})
	assert.Equal(t, []string{"radio: disconnected: serial port gone"}, b.health.Problems())
	require.NoError(t, WriteHealthStatus(cfg.DataDir, time.Now(), b.health.Problems()))
	err = CheckHealth(cfg.DataDir, time.Minute, time.Now())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "radio: disconnected: serial port gone")

	b.handleEvent(ncp.Event{Kind: ncp.EventReconnected})
	assert.Empty(t, b.health.Problems())
}
