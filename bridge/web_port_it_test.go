package bridge_test

import (
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/bridgetest"
)

// README, Web console: "If the port is taken, otabridge logs an error and runs on without the console."
func TestITWebConsolePortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = taken.Close() })

	cfg := bridgetest.RepoConfig(t)
	cfg.Web.Listen = taken.Addr().String()
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})

	assert.Empty(t, h.Bridge.WebAddr(), "no console on a taken port")
	assert.True(t, strings.Contains(h.Logs(), "web console off: cannot listen"), "the log says why the console is off")
	r := h.Request("permit_join", map[string]any{"time": 0})
	assert.Equal(t, "ok", r.Status, "the MQTT API runs on: %s", r.Error)
}
