package bridge

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
)

// TestWebConsoleSecretsStayHidden: the console's password and token appear in bridge/info's configuration
// summary only as "<set>", and come from the environment like every key.
func TestWebConsoleSecretsStayHidden(t *testing.T) {
	const password, token = "hunter2-hunter2", "tok-0123456789abcdef"
	cfg, err := parseConfig([]byte("web:\n  listen: 0.0.0.0:8099\n"),
		[]string{"OTABRIDGE_WEB_PASSWORD=" + password, "OTABRIDGE_WEB_TOKEN=" + token})
	require.NoError(t, err)
	assert.Equal(t, password, cfg.Web.Password)
	out, err := json.Marshal(cfg.Summary())
	require.NoError(t, err)
	assert.NotContains(t, string(out), password)
	assert.NotContains(t, string(out), token)
	web := cfg.Summary()["web"].(map[string]any)
	assert.Equal(t, "<set>", web["password"])
	assert.Equal(t, "<set>", web["token"])
	assert.Equal(t, "0.0.0.0:8099", web["listen"])

	_, err = parseConfig([]byte("web:\n  listen: 0.0.0.0:8099\n"), nil)
	require.Error(t, err, "a console reachable from the network without a password")
	assert.Contains(t, err.Error(), "config web.listen")
}

// TestWebRequesterIsTheMQTTRequestCode: a request from the console gets the same response as over MQTT,
// and an oversized payload the same sentence.
func TestWebRequesterIsTheMQTTRequestCode(t *testing.T) {
	b := &Bridge{log: zerolog.Nop(), registry: NewRegistry(clock.Real{}, func(bool) {}), largeRequests: make(chan struct{}, maxLargeRequests)}
	r := webRequester{b}
	for _, c := range []struct{ path, payload string }{
		{"permit_join", `{"time":"soon"}`},
		{"device/ota_update/update", `{"id":"0x00124b0012345678","colour":1}`},
		{"no/such/request", `{}`},
		{"image/add", `[1,2]`},
	} {
		got := string(r.Request(t.Context(), c.path, []byte(c.payload)))
		want := string(b.runRequest(t.Context(), "mqtt", c.path, []byte(c.payload)))
		assert.Equal(t, want, got, c.path)
		assert.Contains(t, got, `"status":"error"`, c.path)
	}
	big := []byte(`{"data":"` + strings.Repeat("A", maxRequestPayload) + `"}`)
	viaMQTT := string(b.runRequest(t.Context(), "mqtt", "image/add", big))
	assert.Equal(t, viaMQTT, string(r.TooLarge(int64(len(big)))), "the console's size refusal is MQTT's")
	assert.Equal(t, int64(maxRequestPayload), r.MaxRequestBytes())

	// Uploads from the console take the MQTT API's upload slots: with both taken, the console is told busy.
	for range maxLargeRequests {
		b.largeRequests <- struct{}{}
	}
	upload := []byte(`{"transaction":"w1","data":"` + strings.Repeat("A", largeRequest) + `","file_name":"a.ota"}`)
	busy := string(r.Request(t.Context(), "image/add", upload))
	assert.Contains(t, busy, `"error":"busy: 2 large requests`)
	assert.Contains(t, busy, `"transaction":"w1"`)
}
