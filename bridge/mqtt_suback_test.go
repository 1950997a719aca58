package bridge

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/brokertest"
)

// Issue 19.2: a subscription the broker refuses (SUBACK failure code: here the broker denies the request
// filter to the bridge's user) is an error: logged with the filter and the reason, the state stays offline,
// the client is not ready, and it tries again with growing back-off.
func TestMQTTRefusedSubscriptionKeepsOffline(t *testing.T) {
	const user, pass = "otabridge", "bridge-secret"
	request := "otabridge-test/bridge/request/#"
	b := brokertest.NewWithAccess(t, brokertest.Access{Username: user, Password: pass, DenySubscribe: []string{request}})
	obs := newObserver(t, b.URL(), "otabridge-test/bridge/state")
	cfg := testMQTTConfig(b.URL())
	cfg.Username, cfg.Password = user, pass
	logs := &logBuffer{}
	m := NewMQTT(cfg, zerolog.New(logs))
	var hookRuns atomic.Int32
	m.OnConnect(func() { hookRuns.Add(1) })
	require.NoError(t, m.Subscribe(request, func(string, []byte) {}))
	require.NoError(t, m.Subscribe("otabridge-test/allowed/#", func(string, []byte) {}))
	require.NoError(t, m.Connect(context.Background()))
	defer m.Close()

	// Two refusals: the first subscription and its first retry.
	refusals := func() []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(logs.String(), "\n") {
			var ev map[string]any
			if json.Unmarshal([]byte(line), &ev) == nil && ev["message"] != nil &&
				strings.HasPrefix(ev["message"].(string), "MQTT subscription refused") {
				out = append(out, ev)
			}
		}
		return out
	}
	eventually(t, func() bool { return len(refusals()) >= 2 }, "the refusal and its retry")
	got := refusals()
	for _, ev := range got[:2] {
		assert.Equal(t, "error", ev["level"])
		assert.Equal(t, request, ev["filter"], "the refused filter is named")
		assert.Contains(t, ev["reason"], "refused it", "the reason is given")
		assert.Contains(t, ev["reason"], "0x8", "the SUBACK code is given")
	}
	first, _ := got[0]["retry_in_ms"].(float64) // zerolog writes durations in milliseconds
	second, _ := got[1]["retry_in_ms"].(float64)
	assert.Greater(t, second, first, "the back-off grows: %v ms then %v ms", first, second)
	for _, ev := range got {
		assert.NotEqual(t, "otabridge-test/allowed/#", ev["filter"], "the granted subscription is not refused")
	}

	assert.False(t, m.Ready(), "not ready while a subscription is refused")
	assert.Zero(t, hookRuns.Load(), "the OnConnect hooks wait for every subscription")
	assert.True(t, m.Connected())
	obs.waitFor("otabridge-test/bridge/state", `{"state":"offline"}`, 0)
	obs.mu.Lock()
	for _, msg := range obs.msgs {
		assert.NotEqual(t, `{"state":"online"}`, msg.payload, "online announced while the API cannot listen")
	}
	obs.mu.Unlock()
}
