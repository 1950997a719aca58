package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge"
)

// supervisorStub answers GET /services/mqtt with the Mosquitto add-on's service for the token "tok".
func supervisorStub(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/services/mqtt" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "403: Forbidden", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(`{"result":"ok","data":{"addon":"core_mosquitto","host":"core-mosquitto","port":1883,` +
			`"ssl":false,"username":"addons","password":"svc-secret","protocol":"3.1.1"}}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeOptions(t *testing.T, dir, js string) string {
	t.Helper()
	path := filepath.Join(dir, "options.json")
	require.NoError(t, os.WriteFile(path, []byte(js), 0o600))
	return path
}

func TestAddonDryRun(t *testing.T) {
	srv := supervisorStub(t)
	dir := t.TempDir()
	opts := writeOptions(t, dir, `{"radio_type":"ezsp","serial_port":"/dev/ttyACM0","baud_rate":"115200",`+
		`"flow_control":"hardware","approval":"manual","allow_ieee":[],"allow_models":[],"allow_manufacturer_codes":[],`+
		`"max_concurrent":3,"upgrade_delay":5,"index_urls":[],"local_indexes":["index.json"],"base_topic":"otabridge",`+
		`"log_level":"info"}`)
	t.Setenv("SUPERVISOR_TOKEN", "tok")

	var stdout, stderr bytes.Buffer
	code := runMain([]string{"addon", "--options", opts, "--config", filepath.Join(dir, "none.yaml"),
		"--supervisor", srv.URL, "--dry-run"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())

	var out struct {
		Source string `json:"mqtt_source"`
		Config struct {
			Radio   map[string]any `json:"radio"`
			MQTT    map[string]any `json:"mqtt"`
			OTA     map[string]any `json:"ota"`
			Images  map[string]any `json:"images"`
			DataDir string         `json:"data_dir"`
		} `json:"config"`
	}
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), stdout.String())
	assert.Equal(t, "supervisor service core_mosquitto", out.Source)
	assert.Equal(t, "/dev/ttyACM0", out.Config.Radio["port"])
	assert.Equal(t, "hardware", out.Config.Radio["flow_control"])
	assert.Equal(t, "mqtt://core-mosquitto:1883", out.Config.MQTT["server"])
	assert.Equal(t, "addons", out.Config.MQTT["username"])
	assert.Equal(t, "<set>", out.Config.MQTT["password"])
	assert.NotContains(t, stdout.String(), "svc-secret", "the dry run prints no secret")
	assert.NotContains(t, stderr.String(), "svc-secret", "the log shows no secret")
	assert.Equal(t, float64(3), out.Config.OTA["max_concurrent"])
	assert.Equal(t, "5s", out.Config.OTA["upgrade_delay"])
	assert.Equal(t, []any{"/config/index.json"}, out.Config.Images["indexes"])
	assert.Equal(t, "/config/images", out.Config.Images["folder"])
	assert.Equal(t, "/data", out.Config.DataDir)
	assert.Contains(t, stderr.String(), "add-on configuration")
}

// The optional configuration file in the add-on config folder is used when it exists.
func TestAddonConfigFile(t *testing.T) {
	dir := t.TempDir()
	opts := writeOptions(t, dir, `{"radio_type":"sim","mqtt_server":"mqtt://10.0.0.2:1883"}`)
	conf := filepath.Join(dir, "otabridge.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("radio:\n  network:\n    channel: 25\n"), 0o600))
	t.Setenv("SUPERVISOR_TOKEN", "")

	var stdout, stderr bytes.Buffer
	code := runMain([]string{"addon", "--options", opts, "--config", conf, "--dry-run"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	assert.Contains(t, stdout.String(), `"channel": 25`)
	assert.Contains(t, stdout.String(), `"mqtt_source": "options"`)

	require.NoError(t, os.WriteFile(conf, []byte("radio:\n  chanel: 25\n"), 0o600))
	stdout.Reset()
	stderr.Reset()
	code = runMain([]string{"addon", "--options", opts, "--config", conf, "--dry-run"}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "radio.chanel: unknown key")
}

func TestAddonErrors(t *testing.T) {
	dir := t.TempDir()
	noConf := filepath.Join(dir, "none.yaml")
	t.Run("no broker outside Home Assistant", func(t *testing.T) {
		t.Setenv("SUPERVISOR_TOKEN", "")
		opts := writeOptions(t, t.TempDir(), `{"radio_type":"sim"}`)
		var stdout, stderr bytes.Buffer
		code := runMain([]string{"addon", "--options", opts, "--config", noConf, "--dry-run"}, &stdout, &stderr)
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr.String(), "no MQTT broker: install the Mosquitto add-on or set mqtt_server")
		assert.Contains(t, stderr.String(), "SUPERVISOR_TOKEN is not set")
	})
	t.Run("supervisor refuses the token", func(t *testing.T) {
		srv := supervisorStub(t)
		t.Setenv("SUPERVISOR_TOKEN", "wrong")
		opts := writeOptions(t, t.TempDir(), `{"radio_type":"sim"}`)
		var stdout, stderr bytes.Buffer
		code := runMain([]string{"addon", "--options", opts, "--config", noConf, "--supervisor", srv.URL, "--dry-run"}, &stdout, &stderr)
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr.String(), "403 Forbidden")
	})
	t.Run("invalid option", func(t *testing.T) {
		t.Setenv("SUPERVISOR_TOKEN", "")
		opts := writeOptions(t, t.TempDir(), `{"radio_type":"sim","mqtt_server":"mqtt://b","max_concurrent":12}`)
		var stdout, stderr bytes.Buffer
		code := runMain([]string{"addon", "--options", opts, "--config", noConf, "--dry-run"}, &stdout, &stderr)
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr.String(), "add-on option max_concurrent: 12 is not allowed (want 1..8 transfers at once)")
	})
	t.Run("missing options file", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := runMain([]string{"addon", "--options", filepath.Join(dir, "nope.json"), "--dry-run"}, &stdout, &stderr)
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr.String(), "read add-on options")
	})
	t.Run("stray argument", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 2, runMain([]string{"addon", "extra"}, &stdout, &stderr))
	})
}

// Without --dry-run the configuration goes to the bridge runner.
func TestAddonRunsBridge(t *testing.T) {
	dir := t.TempDir()
	opts := writeOptions(t, dir, `{"radio_type":"sim","mqtt_server":"mqtt://10.0.0.2"}`)
	t.Setenv("SUPERVISOR_TOKEN", "")
	var got bridge.Config
	saved := addonRunBridge
	t.Cleanup(func() { addonRunBridge = saved })
	addonRunBridge = func(ctx context.Context, cfg bridge.Config, stdout, stderr io.Writer) error {
		got = cfg
		return nil
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, runMain([]string{"addon", "--options", opts, "--config", filepath.Join(dir, "none.yaml")}, &stdout, &stderr), stderr.String())
	assert.Equal(t, "mqtt://10.0.0.2", got.MQTT.Server)
	assert.Equal(t, "/data", got.DataDir)
}

func TestHealthCommand(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 1, runMain([]string{"health", "--data-dir", dir}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "no heartbeat")

	require.NoError(t, bridge.WriteHealth(dir, time.Now()))
	stdout.Reset()
	stderr.Reset()
	assert.Equal(t, 0, runMain([]string{"health", "--data-dir", dir, "--max-age", "90s"}, &stdout, &stderr), stderr.String())
	assert.Equal(t, "healthy\n", stdout.String())

	assert.Equal(t, 2, runMain([]string{"health", "--max-age", "0s"}, &stdout, &stderr))
}

// The release build command (the one the Dockerfiles and CI run) builds a binary that reports the version
// it was given.
func TestBuildScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole program")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool on PATH")
	}
	out := filepath.Join(t.TempDir(), "otabridge")
	cmd := exec.Command("sh", filepath.Join("scripts", "build.sh"), out, "1.2.3-test")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	ver, err := exec.Command(out, "version").CombinedOutput()
	require.NoError(t, err, string(ver))
	assert.Equal(t, "otabridge 1.2.3-test\n", string(ver))

	b, err = exec.Command("sh", filepath.Join("scripts", "build.sh"), out, "1.0; rm -rf /").CombinedOutput()
	assert.Error(t, err)
	assert.True(t, strings.Contains(string(b), "only letters, digits"), string(b))
}

// At boot the add-on can start before the Supervisor is ready or before the Mosquitto add-on registered the
// MQTT service: it waits with back-off, logging why, instead of exiting for good.
func TestAddonWaitsForTheMQTTService(t *testing.T) {
	pause, maxPause := addonLookupPause, addonLookupMaxPause
	addonLookupPause, addonLookupMaxPause = time.Millisecond, 4*time.Millisecond
	t.Cleanup(func() { addonLookupPause, addonLookupMaxPause = pause, maxPause })
	var calls atomic.Int32
	answers := []struct {
		status int
		body   string
	}{
		{http.StatusBadRequest, `{"result":"error","message":"System is not ready with state: setup"}`},
		{http.StatusBadGateway, `{"result":"error","message":"upstream"}`},
		{http.StatusBadRequest, `{"result":"error","message":"Service not enabled"}`},
		{http.StatusBadRequest, `{"result":"error","message":"Service not enabled"}`},
	}
	stub := supervisorStub(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1)) - 1
		if n < len(answers) {
			w.WriteHeader(answers[n].status)
			_, _ = w.Write([]byte(answers[n].body))
			return
		}
		stub.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	log := zerolog.New(&logs)
	svc, err := addonLookupMQTT(context.Background(), srv.URL, "tok", log)
	require.NoError(t, err)
	assert.Equal(t, "core-mosquitto", svc.Host)
	assert.Equal(t, int32(len(answers)+1), calls.Load())
	out := logs.String()
	assert.Contains(t, out, "waiting for the MQTT broker: the Supervisor is not ready yet")
	assert.Contains(t, out, "System is not ready")
	assert.Contains(t, out, "waiting for the MQTT broker: no MQTT service yet: start (or install) the Mosquitto broker add-on")
	assert.Contains(t, out, `"retry_in_ms":4`, "the pause doubles up to its limit")
	assert.Contains(t, out, `"attempt":5,"message":"supervisor MQTT service"`)

	// A refused token does not change by waiting: at once an error.
	_, err = addonLookupMQTT(context.Background(), stub.URL, "wrong", log)
	assert.ErrorContains(t, err, "403 Forbidden")

	// A stop while waiting ends the wait.
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"result":"error","message":"Service not enabled"}`))
	}))
	t.Cleanup(never.Close)
	ctx, cancel := context.WithCancel(context.Background())
	stop := time.AfterFunc(20*time.Millisecond, cancel)
	defer stop.Stop()
	_, err = addonLookupMQTT(ctx, never.URL, "tok", zerolog.Nop())
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorContains(t, err, "addon: stopped while", "a stop during a lookup or during a pause")
}

// Logs written to a file or a pipe (the add-on log view) carry no ANSI colour codes.
func TestLogsPlainWhenNotATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	require.NoError(t, err)
	defer f.Close()
	for _, w := range []io.Writer{f, &bytes.Buffer{}} {
		log, err := newLogger(bridge.LogConfig{Level: "info"}, w)
		require.NoError(t, err)
		log.Warn().Str("ieee", "0x00124b0000000001").Dur("took_ms", 1500*time.Millisecond).Msg("hello")
		assert.False(t, isTerminal(w))
	}
	b, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	assert.NotContains(t, string(b), "\x1b[")
	assert.Contains(t, string(b), "WRN hello ieee=0x00124b0000000001 took_ms=1500")
}
