package bridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/bridgetest/jsonlog"
)

// Issue 19.4: the embedded broker's lines have one key per field, whatever keys mochi's attributes use.
func TestBrokerLogLinesHaveOneKeyPerField(t *testing.T) {
	out := &logBuffer{}
	m := NewMQTT(testMQTTConfig(ServerEmbedded), zerolog.New(out).With().Timestamp().Logger())
	require.NoError(t, m.Connect(context.Background()))
	require.NoError(t, m.Close())
	assert.Contains(t, out.String(), `"component":"broker"`)
	// mochi's attributes repeating a fixed field and each other, and a record without a message.
	h := zerologHandler{log: zerolog.New(out).With().Timestamp().Str("component", "broker").Logger()}
	lg := slog.New(h).With("client", "a")
	lg.Warn("client error", "client", "b", "component", "c", "level", "d", "message", "e", "client", "f")
	lg.Warn("")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.GreaterOrEqual(t, len(lines), 4)
	require.NoError(t, jsonlog.Check([]byte(out.String())))
	var ev map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-2]), &ev))
	assert.Equal(t, map[string]any{"level": "warn", "component": "broker", "time": ev["time"], "message": "client error",
		"client": "a", "client_2": "b", "component_2": "c", "level_2": "d", "message_2": "e", "client_3": "f"}, ev)
	for _, l := range lines[:len(lines)-2] {
		assert.Equal(t, 1, strings.Count(l, `"component":`), "the MQTT client's and the broker's lines: %s", l)
	}
}
