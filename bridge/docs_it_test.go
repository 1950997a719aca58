package bridge_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/bridgetest"
)

// README, Web console: "If the port is taken, otabridge logs an error and runs on without the console."
func TestITWebConsolePortTaken(t *testing.T) {
	skipShort(t)
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

// README, MQTT topics: the example `otabridge/0x00158d0000000003/ota` while waiting for approval has the keys
// and values the bridge publishes for the demo door sensor (changed_at, shown "…", is a time).
func TestITReadmeOTAStateExample(t *testing.T) {
	skipShort(t)
	raw, err := os.ReadFile(filepath.Join(bridgetest.RepoRoot(), "README.md"))
	require.NoError(t, err)
	readme := string(raw)
	i := strings.Index(readme, "Example `otabridge/0x00158d0000000003/ota` while waiting for approval:")
	require.GreaterOrEqual(t, i, 0, "README.md lost the example")
	block := readme[i:]
	block = block[strings.Index(block, "```json\n")+len("```json\n"):]
	block = block[:strings.Index(block, "```")]
	var want map[string]any
	require.NoError(t, json.Unmarshal([]byte(block), &want), "the README example is not JSON")

	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.DoorIEEE)
	bridgetest.SimDevice(t, &cfg, bridgetest.DoorIEEE).QueryInterval = time.Minute
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	m := h.Rec.WaitFor("the door sensor approval_pending", h.Topic(bridgetest.DoorIEEE+"/ota"), 0,
		func(m bridgetest.Message) bool { return bridgetest.Field(m, "state") == "approval_pending" })
	got := m.JSON()

	assert.ElementsMatch(t, keys(want), keys(got), "README example keys vs the published payload %s", m.Payload)
	for k, v := range want {
		if k == "changed_at" {
			_, err := time.Parse(time.RFC3339Nano, got[k].(string))
			assert.NoError(t, err, "changed_at")
			continue
		}
		assert.Equal(t, v, got[k], "key %s", k)
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
