package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/zcl"
)

// supervisorOptionsJSON is an options.json as the Supervisor writes it after validating the schema of
// addon/config.yaml: list-typed options (baud_rate) come out as strings, optional options the user set are
// present, the rest absent.
const supervisorOptionsJSON = `{
  "radio_type": "ezsp",
  "serial_port": "/dev/serial/by-id/usb-Nabu_Casa_SkyConnect_v1.0_3c1a-if00-port0",
  "baud_rate": "460800",
  "flow_control": "hardware",
  "approval": "auto",
  "allow_ieee": ["0x00124b0012345678", "00:15:8d:00:01:02:03:04"],
  "allow_models": ["TRADFRI bulb E27 WS opal 980lm"],
  "allow_manufacturer_codes": ["0x117C", "4447"],
  "max_concurrent": 4,
  "upgrade_delay": 30,
  "index_urls": ["https://raw.githubusercontent.com/Koenkk/zigbee-OTA/master/index.json"],
  "local_indexes": ["index.json", "/share/ota/index.json"],
  "mqtt_server": "mqtts://broker.example:8884",
  "mqtt_user": "ota",
  "mqtt_password": "s3cret",
  "base_topic": "otabridge-upstairs",
  "log_level": "debug"
}`

func TestParseAddonOptionsSupervisorFile(t *testing.T) {
	o, err := ParseAddonOptions([]byte(supervisorOptionsJSON))
	require.NoError(t, err)
	assert.Equal(t, AddonOptions{
		RadioType:              "ezsp",
		SerialPort:             "/dev/serial/by-id/usb-Nabu_Casa_SkyConnect_v1.0_3c1a-if00-port0",
		BaudRate:               460800,
		FlowControl:            "hardware",
		Approval:               "auto",
		AllowIEEE:              []string{"0x00124b0012345678", "00:15:8d:00:01:02:03:04"},
		AllowModels:            []string{"TRADFRI bulb E27 WS opal 980lm"},
		AllowManufacturerCodes: []string{"0x117C", "4447"},
		MaxConcurrent:          4,
		UpgradeDelay:           30,
		IndexURLs:              []string{"https://raw.githubusercontent.com/Koenkk/zigbee-OTA/master/index.json"},
		LocalIndexes:           []string{"index.json", "/share/ota/index.json"},
		MQTTServer:             "mqtts://broker.example:8884",
		MQTTUser:               "ota",
		MQTTPassword:           "s3cret",
		BaseTopic:              "otabridge-upstairs",
		LogLevel:               "debug",
		ImportFrom:             "none",
	}, o)
}

// Every option lands in its configuration key.
func TestAddonOptionsApplyMapsEveryOption(t *testing.T) {
	o, err := ParseAddonOptions([]byte(supervisorOptionsJSON))
	require.NoError(t, err)
	cfg := DefaultConfig()
	require.NoError(t, o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883, Username: "addons", Password: "x"}))

	assert.Equal(t, "ezsp", cfg.Radio.Type)
	assert.Equal(t, "/dev/serial/by-id/usb-Nabu_Casa_SkyConnect_v1.0_3c1a-if00-port0", cfg.Radio.Port)
	assert.Equal(t, 460800, cfg.Radio.Baud)
	assert.Equal(t, "hardware", cfg.Radio.FlowControl)

	assert.Equal(t, "auto", cfg.OTA.Approval)
	assert.Equal(t, []zcl.IEEE{0x00124b0012345678, 0x00158d0001020304}, cfg.OTA.Allow.IEEE)
	assert.Equal(t, []string{"TRADFRI bulb E27 WS opal 980lm"}, cfg.OTA.Allow.Models)
	assert.Equal(t, []uint16{0x117C, 4447}, cfg.OTA.Allow.ManufacturerCodes)
	assert.Equal(t, 4, cfg.OTA.MaxConcurrent)
	assert.Equal(t, 30*time.Second, cfg.OTA.UpgradeDelay)
	assert.Equal(t, []string{
		"/config/index.json",
		"/share/ota/index.json",
		"https://raw.githubusercontent.com/Koenkk/zigbee-OTA/master/index.json",
	}, cfg.Images.Indexes)

	// The user's broker wins over the Supervisor's service, with the user's credentials.
	assert.Equal(t, "mqtts://broker.example:8884", cfg.MQTT.Server)
	assert.Equal(t, "ota", cfg.MQTT.Username)
	assert.Equal(t, "s3cret", cfg.MQTT.Password)
	assert.Equal(t, "otabridge-upstairs", cfg.MQTT.BaseTopic)
	assert.Equal(t, "otabridge-otabridge-upstairs", cfg.MQTT.ClientID)

	assert.Equal(t, "debug", cfg.Log.Level)
	assert.Equal(t, "/data", cfg.DataDir)
	assert.Equal(t, "/config/images", cfg.Images.Folder)
	assert.Equal(t, "/data/ota-cache", cfg.Images.CacheDir)
}

// An empty options file is the manifest's defaults; with a serial port (which has no default) and the
// Supervisor's broker they make a valid configuration.
func TestAddonOptionsDefaults(t *testing.T) {
	o, err := ParseAddonOptions([]byte(`{}`))
	require.NoError(t, err)
	assert.Equal(t, DefaultAddonOptions(), o)

	cfg := DefaultConfig()
	err = o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "add-on option serial_port: required for radio_type ezsp")

	o.SerialPort = "/dev/ttyACM0"
	cfg = DefaultConfig()
	require.NoError(t, o.Apply(&cfg, &SupervisorMQTT{Addon: "core_mosquitto", Host: "core-mosquitto", Port: 1883,
		Username: "addons", Password: "pw", Protocol: "3.1.1"}))
	assert.Equal(t, RadioConfig{Type: "ezsp", Port: "/dev/ttyACM0", Baud: 115200, FlowControl: "none", SimSpeed: 1}, cfg.Radio)
	assert.Equal(t, "manual", cfg.OTA.Approval)
	assert.Empty(t, cfg.OTA.Allow.IEEE)
	assert.Empty(t, cfg.OTA.Allow.Models)
	assert.Empty(t, cfg.OTA.Allow.ManufacturerCodes)
	assert.Equal(t, 2, cfg.OTA.MaxConcurrent)
	assert.Equal(t, time.Duration(0), cfg.OTA.UpgradeDelay)
	assert.Empty(t, cfg.Images.Indexes)
	assert.Equal(t, "mqtt://core-mosquitto:1883", cfg.MQTT.Server)
	assert.Equal(t, "addons", cfg.MQTT.Username)
	assert.Equal(t, "pw", cfg.MQTT.Password)
	assert.Equal(t, "otabridge", cfg.MQTT.BaseTopic)
	assert.Equal(t, "otabridge-otabridge", cfg.MQTT.ClientID)
	assert.Equal(t, "homeassistant", cfg.MQTT.DiscoveryPrefix)
	assert.True(t, cfg.MQTT.Discovery)
	assert.Equal(t, "info", cfg.Log.Level)
	assert.Equal(t, "supervisor service core_mosquitto", o.MQTTSource(&SupervisorMQTT{Addon: "core_mosquitto"}))
}

// The simulated radio needs no serial port.
func TestAddonOptionsSimRadio(t *testing.T) {
	o := DefaultAddonOptions()
	o.RadioType = "sim"
	cfg := DefaultConfig()
	require.NoError(t, o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883}))
	assert.Equal(t, "sim", cfg.Radio.Type)
	assert.Empty(t, cfg.Radio.Port)
}

// Keys the options do not cover keep the value of the configuration file the options are applied to, and a
// client id the user chose is kept.
func TestAddonOptionsKeepFileKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "otabridge.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
radio:
  network:
    channel: 20
mqtt:
  client_id: my-bridge
  discovery_prefix: ha
ota:
  approval: deny
  max_block_size: 48
images:
  refresh_interval: 6h
log:
  format: json
`), 0o600))
	cfg, err := LoadConfig(path, nil)
	require.NoError(t, err)
	o := DefaultAddonOptions()
	o.SerialPort = "/dev/ttyUSB0"
	require.NoError(t, o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883}))
	assert.Equal(t, uint8(20), cfg.Radio.Network.Channel)
	assert.Equal(t, "my-bridge", cfg.MQTT.ClientID)
	assert.Equal(t, "ha", cfg.MQTT.DiscoveryPrefix)
	assert.Equal(t, 48, cfg.OTA.MaxBlockSize)
	assert.Equal(t, 6*time.Hour, cfg.Images.RefreshInterval)
	assert.Equal(t, "json", cfg.Log.Format)
	assert.Equal(t, "manual", cfg.OTA.Approval, "an option wins over the file")
}

func TestAddonOptionsMQTTSelection(t *testing.T) {
	service := &SupervisorMQTT{Addon: "core_mosquitto", Host: "core-mosquitto", Port: 1883, Username: "addons", Password: "svcpw"}
	tests := []struct {
		name                 string
		server, user, pass   string
		svc                  *SupervisorMQTT
		wantServer, wantUser string
		wantPass, wantSource string
	}{
		{"service", "", "", "", service, "mqtt://core-mosquitto:1883", "addons", "svcpw", "supervisor service core_mosquitto"},
		{"service with ssl", "", "", "", &SupervisorMQTT{Host: "core-mosquitto", Port: 8883, SSL: true, Username: "addons", Password: "svcpw"},
			"mqtts://core-mosquitto:8883", "addons", "svcpw", "supervisor service"},
		{"service, user's credentials", "", "me", "mine", service, "mqtt://core-mosquitto:1883", "me", "mine", "supervisor service core_mosquitto"},
		{"user's server wins", "mqtt://10.0.0.2", "me", "mine", service, "mqtt://10.0.0.2", "me", "mine", "options"},
		{"user's server, anonymous", "mqtt://10.0.0.2:1884", "", "", service, "mqtt://10.0.0.2:1884", "", "", "options"},
		{"user's server, no service", "tcp://broker.lan", "", "", nil, "tcp://broker.lan", "", "", "options"},
		{"IPv6 service host", "", "", "", &SupervisorMQTT{Host: "fd00::2", Port: 1883}, "mqtt://[fd00::2]:1883", "", "", "supervisor service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultAddonOptions()
			o.RadioType = "sim"
			o.MQTTServer, o.MQTTUser, o.MQTTPassword = tc.server, tc.user, tc.pass
			cfg := DefaultConfig()
			require.NoError(t, o.Apply(&cfg, tc.svc))
			assert.Equal(t, tc.wantServer, cfg.MQTT.Server)
			assert.Equal(t, tc.wantUser, cfg.MQTT.Username)
			assert.Equal(t, tc.wantPass, cfg.MQTT.Password)
			assert.Equal(t, tc.wantSource, o.MQTTSource(tc.svc))
		})
	}
}

func TestAddonOptionsNoBroker(t *testing.T) {
	o := DefaultAddonOptions()
	o.RadioType = "sim"
	cfg := DefaultConfig()
	err := o.Apply(&cfg, nil)
	require.ErrorIs(t, err, ErrNoMQTTBroker)
	assert.Equal(t, "no MQTT broker: install the Mosquitto add-on or set mqtt_server", err.Error())
	assert.Equal(t, "none", o.MQTTSource(nil))
}

// An invalid value is rejected with an error that names the option and says what is allowed.
func TestAddonOptionsApplyRejectsInvalidValues(t *testing.T) {
	tests := []struct {
		name   string
		modify func(o *AddonOptions)
		want   string
	}{
		{"radio type", func(o *AddonOptions) { o.RadioType = "znp" }, `add-on option radio_type: "znp" is not allowed (want ezsp or sim)`},
		{"serial port missing", func(o *AddonOptions) { o.SerialPort = " " }, "add-on option serial_port: required for radio_type ezsp"},
		{"serial port not a device", func(o *AddonOptions) { o.SerialPort = "COM3" }, `add-on option serial_port: "COM3" is not allowed (want a device path under /dev/)`},
		{"baud rate", func(o *AddonOptions) { o.BaudRate = 0 }, "add-on option baud_rate: 0 is not allowed"},
		{"flow control", func(o *AddonOptions) { o.FlowControl = "rtscts" }, `add-on option flow_control: "rtscts" is not allowed (want none, hardware or software)`},
		{"approval", func(o *AddonOptions) { o.Approval = "always" }, `add-on option approval: "always" is not allowed (want manual, auto or deny)`},
		{"ieee", func(o *AddonOptions) { o.AllowIEEE = []string{"0x00124b0012345678", "0x1234"} }, "add-on option allow_ieee: item 2: "},
		{"model", func(o *AddonOptions) { o.AllowModels = []string{""} }, "add-on option allow_models: item 1 is empty"},
		{"manufacturer code too big", func(o *AddonOptions) { o.AllowManufacturerCodes = []string{"0x10000"} }, `add-on option allow_manufacturer_codes: item 1: "0x10000" is not allowed`},
		{"manufacturer code text", func(o *AddonOptions) { o.AllowManufacturerCodes = []string{"IKEA"} }, `add-on option allow_manufacturer_codes: item 1: "IKEA" is not allowed`},
		{"max concurrent 0", func(o *AddonOptions) { o.MaxConcurrent = 0 }, "add-on option max_concurrent: 0 is not allowed (want 1..8 transfers at once)"},
		{"max concurrent 9", func(o *AddonOptions) { o.MaxConcurrent = 9 }, "add-on option max_concurrent: 9 is not allowed"},
		{"upgrade delay negative", func(o *AddonOptions) { o.UpgradeDelay = -1 }, "add-on option upgrade_delay: -1 is not allowed (want 0..86400 seconds)"},
		{"upgrade delay too long", func(o *AddonOptions) { o.UpgradeDelay = 86401 }, "add-on option upgrade_delay: 86401 is not allowed"},
		{"index url scheme", func(o *AddonOptions) { o.IndexURLs = []string{"ftp://example.com/index.json"} }, `add-on option index_urls: item 1: "ftp://example.com/index.json" is not allowed`},
		{"index url no host", func(o *AddonOptions) { o.IndexURLs = []string{"https:///index.json"} }, "add-on option index_urls: item 1:"},
		{"local index empty", func(o *AddonOptions) { o.LocalIndexes = []string{""} }, "add-on option local_indexes: item 1 is empty"},
		{"local index is a URL", func(o *AddonOptions) { o.LocalIndexes = []string{"https://x/index.json"} }, "add-on option local_indexes: item 1: \"https://x/index.json\" is a URL"},
		{"mqtt server scheme", func(o *AddonOptions) { o.MQTTServer = "http://broker" }, `add-on option mqtt_server: "http://broker" is not allowed`},
		{"mqtt server websockets", func(o *AddonOptions) { o.MQTTServer = "ws://broker:9001" }, "add-on option mqtt_server: \"ws://broker:9001\": MQTT over websockets is not supported"},
		{"mqtt password alone", func(o *AddonOptions) { o.MQTTPassword = "pw" }, "add-on option mqtt_password: set mqtt_user too"},
		{"base topic wildcard", func(o *AddonOptions) { o.BaseTopic = "ota/#" }, `add-on option base_topic: "ota/#" is not allowed (no MQTT wildcards + or #)`},
		{"base topic empty", func(o *AddonOptions) { o.BaseTopic = "" }, "add-on option base_topic: empty"},
		{"base topic slash", func(o *AddonOptions) { o.BaseTopic = "/ota" }, "add-on option base_topic: \"/ota\" is not allowed (no / at either end)"},
		{"log level", func(o *AddonOptions) { o.LogLevel = "verbose" }, `add-on option log_level: "verbose" is not allowed (want trace, debug, info, warn or error)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultAddonOptions()
			o.SerialPort = "/dev/ttyACM0"
			tc.modify(&o)
			cfg := DefaultConfig()
			before := cfg
			err := o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, before.Summary(), cfg.Summary(), "rejected options leave the configuration unchanged")
		})
	}
}

// A malformed options file is rejected with the option's name and the JSON type it wants.
func TestParseAddonOptionsRejectsBadTypes(t *testing.T) {
	tests := []struct{ in, want string }{
		{`[]`, "not a JSON object"},
		{`null`, "not a JSON object: null"},
		{`{"radio_type": "ezsp"} {}`, "data after the object"},
		{`{"radio_type": 1.5e3, "baud_rate": true}`, "option baud_rate: want an integer, got a boolean"},
		{`{"baud_rate": "fast"}`, `option baud_rate: "fast" is not an integer`},
		{`{"max_concurrent": 2.5}`, "option max_concurrent: 2.5 is not an integer"},
		{`{"upgrade_delay": 1e12}`, "option upgrade_delay: 1e12 is not an integer"},
		{`{"allow_ieee": "0x00124b0012345678"}`, "option allow_ieee: want a list, got a string"},
		{`{"allow_models": [["nested"]]}`, "option allow_models: item 1: want a string, got a list"},
		{`{"approval": {"mode": "auto"}}`, "option approval: want a string, got an object"},
		{`{"mqtt_sever": "mqtt://x"}`, `option "mqtt_sever": unknown option`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseAddonOptions([]byte(tc.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// Tolerated shapes: null keeps the default, numbers for strings (a manufacturer code typed as a number, a
// numeric user name) become their text.
func TestParseAddonOptionsTolerance(t *testing.T) {
	o, err := ParseAddonOptions([]byte(`{"mqtt_server": null, "allow_manufacturer_codes": [4447, "0x117C"], "mqtt_user": 1234, "baud_rate": 115200}`))
	require.NoError(t, err)
	assert.Empty(t, o.MQTTServer)
	assert.Equal(t, []string{"4447", "0x117C"}, o.AllowManufacturerCodes)
	assert.Equal(t, "1234", o.MQTTUser)
	assert.Equal(t, 115200, o.BaudRate)
}

func TestLoadAddonOptions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "options.json")
	require.NoError(t, os.WriteFile(path, []byte(supervisorOptionsJSON), 0o600))
	o, err := LoadAddonOptions(path)
	require.NoError(t, err)
	assert.Equal(t, "otabridge-upstairs", o.BaseTopic)

	_, err = LoadAddonOptions(filepath.Join(dir, "missing.json"))
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "read add-on options")

	require.NoError(t, os.WriteFile(path, []byte(`{"max_concurrent": "many"}`), 0o600))
	_, err = LoadAddonOptions(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Contains(t, err.Error(), "option max_concurrent")
}

// fakeSupervisor answers GET /services/mqtt like the Supervisor: 401 without a token (security
// middleware), 403 with another token, 400 {"result":"error"} without a provider, else the service data.
type fakeSupervisor struct {
	token   string
	service map[string]any // nil: no MQTT service
	status  int            // when set, answer this status with body
	body    string
}

func (f *fakeSupervisor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/services/mqtt" {
		http.NotFound(w, r)
		return
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
		return
	}
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case token == "":
		http.Error(w, "401: Unauthorized", http.StatusUnauthorized)
		return
	case token != f.token:
		http.Error(w, "403: Forbidden", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if f.service == nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{"result": "error", "message": "Service not enabled"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"result": "ok", "data": f.service})
}

func TestAddonLookupSupervisorMQTT(t *testing.T) {
	mosquitto := map[string]any{"addon": "core_mosquitto", "host": "core-mosquitto", "port": 1883, "ssl": false,
		"username": "addons", "password": "Aiph7ohg", "protocol": "3.1.1"}
	tlsService := map[string]any{"addon": "core_mosquitto", "host": "core-mosquitto", "port": 8883, "ssl": true,
		"username": "addons", "password": "Aiph7ohg", "protocol": "3.1.1"}

	t.Run("ok", func(t *testing.T) {
		srv := httptest.NewServer(&fakeSupervisor{token: "tok", service: mosquitto})
		defer srv.Close()
		svc, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL, "tok")
		require.NoError(t, err)
		assert.Equal(t, &SupervisorMQTT{Addon: "core_mosquitto", Host: "core-mosquitto", Port: 1883,
			Username: "addons", Password: "Aiph7ohg", Protocol: "3.1.1"}, svc)
		assert.Equal(t, "mqtt://core-mosquitto:1883", svc.ServerURL())
	})
	t.Run("ssl", func(t *testing.T) {
		srv := httptest.NewServer(&fakeSupervisor{token: "tok", service: tlsService})
		defer srv.Close()
		svc, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL+"/", "tok")
		require.NoError(t, err)
		assert.True(t, svc.SSL)
		assert.Equal(t, "mqtts://core-mosquitto:8883", svc.ServerURL())
		o := DefaultAddonOptions()
		o.RadioType = "sim"
		cfg := DefaultConfig()
		require.NoError(t, o.Apply(&cfg, svc))
		assert.Equal(t, "mqtts://core-mosquitto:8883", cfg.MQTT.Server)
	})
	t.Run("no service", func(t *testing.T) {
		srv := httptest.NewServer(&fakeSupervisor{token: "tok"})
		defer srv.Close()
		svc, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL, "tok")
		require.ErrorIs(t, err, ErrNoSupervisorMQTT)
		assert.Nil(t, svc)
		assert.Contains(t, err.Error(), "Service not enabled")
	})
	t.Run("supervisor not ready", func(t *testing.T) {
		for _, c := range []struct {
			status int
			body   string
		}{
			{http.StatusBadRequest, `{"result":"error","message":"System is not ready with state: setup"}`},
			{http.StatusServiceUnavailable, `upstream not ready`},
		} {
			srv := httptest.NewServer(&fakeSupervisor{status: c.status, body: c.body})
			_, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL, "tok")
			srv.Close()
			require.ErrorIs(t, err, ErrSupervisorNotReady, c.body)
			assert.NotErrorIs(t, err, ErrNoSupervisorMQTT)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		srv := httptest.NewServer(&fakeSupervisor{token: "tok", service: mosquitto})
		defer srv.Close()
		_, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL, "")
		require.Error(t, err)
		assert.NotErrorIs(t, err, ErrNoSupervisorMQTT)
		assert.Contains(t, err.Error(), "401 Unauthorized")
		assert.Contains(t, err.Error(), "SUPERVISOR_TOKEN")
	})
	t.Run("wrong token", func(t *testing.T) {
		srv := httptest.NewServer(&fakeSupervisor{token: "tok", service: mosquitto})
		defer srv.Close()
		_, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL, "other")
		require.Error(t, err)
		assert.NotErrorIs(t, err, ErrNoSupervisorMQTT)
		assert.Contains(t, err.Error(), "403 Forbidden")
	})
	t.Run("no access to the service", func(t *testing.T) {
		srv := httptest.NewServer(&fakeSupervisor{status: http.StatusForbidden,
			body: `{"result":"error","message":"No access to mqtt service!"}`})
		defer srv.Close()
		_, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL, "tok")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "No access to mqtt service!")
		assert.Contains(t, err.Error(), "mqtt:want")
	})
	t.Run("server error", func(t *testing.T) {
		srv := httptest.NewServer(&fakeSupervisor{status: http.StatusInternalServerError, body: "<html>oops</html>"})
		defer srv.Close()
		_, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL, "tok")
		require.Error(t, err)
		assert.NotErrorIs(t, err, ErrNoSupervisorMQTT)
		assert.Contains(t, err.Error(), "500 Internal Server Error")
	})
	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", "ok", "reply is not JSON"},
		{"result not ok", `{"result":"error","message":"System is not ready"}`, `result "error": System is not ready`},
		{"no data", `{"result":"ok"}`, "reply has no data"},
		{"no host", `{"result":"ok","data":{"port":1883}}`, "reply has no host"},
		{"bad port", `{"result":"ok","data":{"host":"h","port":0}}`, "port 0 is not a TCP port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeSupervisor{status: http.StatusOK, body: tc.body})
			defer srv.Close()
			_, err := LookupSupervisorMQTT(context.Background(), srv.Client(), srv.URL, "tok")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := LookupSupervisorMQTT(context.Background(), nil, url, "tok")
		require.Error(t, err)
		assert.NotErrorIs(t, err, ErrNoSupervisorMQTT)
	})
	t.Run("cancelled", func(t *testing.T) {
		srv := httptest.NewServer(&fakeSupervisor{token: "tok", service: mosquitto})
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := LookupSupervisorMQTT(ctx, srv.Client(), srv.URL, "tok")
		require.ErrorIs(t, err, context.Canceled)
	})
}

func FuzzParseAddonOptions(f *testing.F) {
	f.Add([]byte(supervisorOptionsJSON))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"baud_rate":"115200","allow_manufacturer_codes":[4447,"0xFFFF"]}`))
	f.Add([]byte(`{"allow_ieee":["00:12:4b:00:12:34:56:78"],"radio_type":"sim"}`))
	f.Add([]byte(`{"upgrade_delay":-1e308}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseAddonOptions(data)
		if err != nil {
			return
		}
		cfg := DefaultConfig()
		err = o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883})
		if err == nil {
			// Whatever got through is a configuration the bridge accepts.
			if verr := cfg.Validate(); verr != nil {
				t.Fatalf("Apply accepted options that make an invalid configuration: %v", verr)
			}
			if cfg.OTA.MaxConcurrent < 1 || cfg.OTA.MaxConcurrent > addonMaxConcurrentMax {
				t.Fatalf("max_concurrent %d out of range", cfg.OTA.MaxConcurrent)
			}
		} else if !strings.Contains(err.Error(), "add-on option") && !errors.Is(err, ErrNoMQTTBroker) &&
			!strings.Contains(err.Error(), "add-on options: config") {
			t.Fatalf("error does not name an option: %v", err)
		}
	})
}

// The repository's documented config.yaml works as the add-on's configuration file (DOCS.md suggests it for
// trying the simulated network): the options take over the broker and the folders.
func TestAddonOptionsOverRepositoryConfig(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "config.yaml"), nil)
	require.NoError(t, err)
	o := DefaultAddonOptions()
	o.RadioType = "sim"
	require.NoError(t, o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883}))
	assert.NotEmpty(t, cfg.Radio.Sim.Devices)
	assert.Equal(t, "mqtt://core-mosquitto:1883", cfg.MQTT.Server)
	assert.Equal(t, "/data", cfg.DataDir)
	assert.Equal(t, "/config/images", cfg.Images.Folder)
}
