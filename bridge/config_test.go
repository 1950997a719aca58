package bridge

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig("", nil)
	require.NoError(t, err)
	assert.Equal(t, "sim", cfg.Radio.Type)
	assert.Equal(t, 115200, cfg.Radio.Baud)
	assert.Equal(t, "none", cfg.Radio.FlowControl)
	assert.Equal(t, 1.0, cfg.Radio.SimSpeed)
	assert.Equal(t, ServerEmbedded, cfg.MQTT.Server)
	assert.Equal(t, "127.0.0.1:1883", cfg.MQTT.EmbeddedListen)
	assert.Equal(t, "otabridge", cfg.MQTT.BaseTopic)
	assert.Equal(t, "homeassistant", cfg.MQTT.DiscoveryPrefix)
	assert.True(t, cfg.MQTT.Discovery)
	assert.Equal(t, "otabridge-otabridge", cfg.MQTT.ClientID)
	assert.Equal(t, 60*time.Second, cfg.MQTT.Keepalive)
	assert.Equal(t, 1, cfg.MQTT.QoS)
	assert.Equal(t, "data", cfg.DataDir)
	assert.Equal(t, filepath.Join("data", "ota-cache"), cfg.Images.CacheDir)
	assert.Equal(t, ota.DefaultImageFolder, cfg.Images.Folder)
	assert.Equal(t, "info", cfg.Log.Level)
	assert.Equal(t, "console", cfg.Log.Format)
}

func TestConfigFile(t *testing.T) {
	path := writeConfig(t, `
radio:
  type: ezsp
  port: /dev/ttyUSB0
  baud: 460800
  flow_control: hardware
  network: {channel: 20, pan_id: 0x1a2b, extended_pan_id: "00124b0001020304", network_key: generate}
mqtt:
  server: mqtts://broker.local
  base_topic: ota2
  discovery: false
  username: ha
  password: pw
  ca_file: `+writeTemp(t, "ca")+`
  keepalive: 90s
  qos: 2
ota:
  approval: auto
  allow: {ieee: ["0x00124b0012345678"], models: [lumi.plug], manufacturer_codes: [0x115f]}
  max_concurrent: 4
  stall_timeout: 3m
images:
  folder: /share/ota
  indexes: [index.json, "https://example.com/index.json"]
data_dir: /data
log: {level: debug, format: json}
`)
	cfg, err := LoadConfig(path, nil)
	require.NoError(t, err)
	assert.Equal(t, "ezsp", cfg.Radio.Type)
	assert.Equal(t, 460800, cfg.Radio.Baud)
	assert.Equal(t, uint8(20), cfg.Radio.Network.Channel)
	assert.Equal(t, uint16(0x1a2b), cfg.Radio.Network.PANID)
	assert.Equal(t, "mqtts://broker.local", cfg.MQTT.Server)
	assert.Equal(t, "otabridge-ota2", cfg.MQTT.ClientID, "client id follows the base topic")
	assert.False(t, cfg.MQTT.Discovery)
	assert.Equal(t, 90*time.Second, cfg.MQTT.Keepalive)
	assert.Equal(t, 2, cfg.MQTT.QoS)
	assert.Equal(t, "homeassistant", cfg.MQTT.DiscoveryPrefix, "keys not in the file keep their defaults")
	assert.Equal(t, "auto", cfg.OTA.Approval)
	assert.Equal(t, []zcl.IEEE{0x00124b0012345678}, cfg.OTA.Allow.IEEE)
	assert.Equal(t, []string{"lumi.plug"}, cfg.OTA.Allow.Models)
	assert.Equal(t, []uint16{0x115f}, cfg.OTA.Allow.ManufacturerCodes)
	assert.Equal(t, ota.Concurrency(4), cfg.OTA.MaxConcurrent)
	assert.Equal(t, 3*time.Minute, cfg.OTA.StallTimeout)
	assert.Equal(t, []string{"index.json", "https://example.com/index.json"}, cfg.Images.Indexes)
	assert.Equal(t, filepath.Join("/data", "ota-cache"), cfg.Images.CacheDir)
	assert.Equal(t, "json", cfg.Log.Format)
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "file")
	require.NoError(t, err)
	_, err = f.WriteString(content)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return f.Name()
}

func TestConfigEnvOverrides(t *testing.T) {
	path := writeConfig(t, "mqtt:\n  server: mqtt://from-file\n  qos: 0\nota:\n  max_concurrent: 3\n")
	env := []string{
		"PATH=/usr/bin", // not ours
		"OTABRIDGE_MQTT_SERVER=mqtt://from-env:1884",                          // string, wins over the file
		"OTABRIDGE_MQTT_QOS=2",                                                // int
		"OTABRIDGE_MQTT_DISCOVERY=false",                                      // bool
		"OTABRIDGE_MQTT_KEEPALIVE=2m30s",                                      // duration
		"OTABRIDGE_OTA_MAX_CONCURRENT=5",                                      // int in another section
		"OTABRIDGE_OTA_APPROVAL=auto",                                         // string
		"OTABRIDGE_OTA_ALLOW_MODELS=lumi.plug, TS011F",                        // list of strings
		"OTABRIDGE_OTA_ALLOW_IEEE=0x00124b0012345678,00:12:4b:00:00:00:00:01", // list of TextUnmarshaler
		"OTABRIDGE_OTA_ALLOW_MANUFACTURER_CODES=0x115f,4660",                  // list of uint16, hex and decimal
		"OTABRIDGE_IMAGES_INDEXES=a.json,https://x/index.json",                // list (the brief's example)
		"OTABRIDGE_IMAGES_MAX_IMAGE_SIZE=1048576",                             // int64
		"OTABRIDGE_IMAGES_REFRESH_INTERVAL=1h",                                // duration in another section
		"OTABRIDGE_RADIO_NETWORK_CHANNEL=25",                                  // uint8, nested struct
		"OTABRIDGE_RADIO_NETWORK_PAN_ID=0x1234",                               // uint16 hex
		"OTABRIDGE_RADIO_SIM_SPEED=50",                                        // float64
		"OTABRIDGE_RADIO_SIM_EXTENDED_PAN_ID=0x00000000000000aa",              // IEEE scalar, two levels down
		"OTABRIDGE_RADIO_SIM_LINK_MODE=fast",                                  // three levels down
		"OTABRIDGE_RADIO_SIM_LINK_LOSS=0.05",                                  // float
		"OTABRIDGE_LOG_LEVEL=debug",
		"OTABRIDGE_DATA_DIR=/var/lib/otabridge",
	}
	cfg, err := LoadConfig(path, env)
	require.NoError(t, err)
	assert.Equal(t, "mqtt://from-env:1884", cfg.MQTT.Server)
	assert.Equal(t, 2, cfg.MQTT.QoS)
	assert.False(t, cfg.MQTT.Discovery)
	assert.Equal(t, 150*time.Second, cfg.MQTT.Keepalive)
	assert.Equal(t, ota.Concurrency(5), cfg.OTA.MaxConcurrent)
	assert.Equal(t, "auto", cfg.OTA.Approval)
	assert.Equal(t, []string{"lumi.plug", "TS011F"}, cfg.OTA.Allow.Models)
	assert.Equal(t, []zcl.IEEE{0x00124b0012345678, 0x00124b0000000001}, cfg.OTA.Allow.IEEE)
	assert.Equal(t, []uint16{0x115f, 4660}, cfg.OTA.Allow.ManufacturerCodes)
	assert.Equal(t, []string{"a.json", "https://x/index.json"}, cfg.Images.Indexes)
	assert.Equal(t, int64(1<<20), cfg.Images.MaxImageSize)
	assert.Equal(t, time.Hour, cfg.Images.RefreshInterval)
	assert.Equal(t, uint8(25), cfg.Radio.Network.Channel)
	assert.Equal(t, uint16(0x1234), cfg.Radio.Network.PANID)
	assert.Equal(t, 50.0, cfg.Radio.SimSpeed)
	assert.Equal(t, zcl.IEEE(0xaa), cfg.Radio.Sim.ExtendedPANID)
	assert.Equal(t, "fast", cfg.Radio.Sim.Link.Mode)
	assert.Equal(t, 0.05, cfg.Radio.Sim.Link.Loss)
	assert.Equal(t, "debug", cfg.Log.Level)
	assert.Equal(t, "/var/lib/otabridge", cfg.DataDir)
	assert.Equal(t, filepath.Join("/var/lib/otabridge", "ota-cache"), cfg.Images.CacheDir)

	// An empty list variable empties the list.
	cfg, err = LoadConfig("", []string{"OTABRIDGE_IMAGES_INDEXES="})
	require.NoError(t, err)
	assert.Empty(t, cfg.Images.Indexes)
}

func TestConfigEnvNames(t *testing.T) {
	assert.Equal(t, "OTABRIDGE_MQTT_SERVER", EnvName("mqtt.server"))
	assert.Equal(t, "OTABRIDGE_OTA_MAX_CONCURRENT", EnvName("ota.max_concurrent"))
	assert.Equal(t, "OTABRIDGE_RADIO_SIM_LINK_MODE", EnvName("radio.sim.link.mode"))
}

func TestConfigEnvErrors(t *testing.T) {
	tests := []struct{ env, want string }{
		{"OTABRIDGE_OTA_MAX_CONCURRENT=many", `config ota.max_concurrent (environment OTABRIDGE_OTA_MAX_CONCURRENT): "many" is not a whole number`},
		{"OTABRIDGE_MQTT_DISCOVERY=perhaps", `config mqtt.discovery (environment OTABRIDGE_MQTT_DISCOVERY): "perhaps" is not allowed (want true or false)`},
		{"OTABRIDGE_MQTT_KEEPALIVE=60", `config mqtt.keepalive (environment OTABRIDGE_MQTT_KEEPALIVE): "60" is not a duration`},
		{"OTABRIDGE_RADIO_NETWORK_CHANNEL=300", `config radio.network.channel (environment OTABRIDGE_RADIO_NETWORK_CHANNEL): "300" is not a whole number from 0 to 255`},
		{"OTABRIDGE_OTA_ALLOW_IEEE=0x1,0x2", `config ota.allow.ieee (environment OTABRIDGE_OTA_ALLOW_IEEE): item 1: IEEE address "0x1"`},
		{"OTABRIDGE_MQTT_QOS=3", `config mqtt.qos: 3 is not allowed (want 0, 1 or 2)`},
		// Unknown variables are errors like unknown keys, with the closest name.
		{"OTABRIDGE_OTA_MAX_CONCURENT=4", `config environment OTABRIDGE_OTA_MAX_CONCURENT: unknown variable (no configuration key ota.max.concurent); did you mean OTABRIDGE_OTA_MAX_CONCURRENT (ota.max_concurrent)?`},
		{"OTABRIDGE_VERBOSE=1", `config environment OTABRIDGE_VERBOSE: unknown variable (no configuration key verbose)`},
		{"OTABRIDGE_RADIO_SIM_DEVICES=x", `config environment OTABRIDGE_RADIO_SIM_DEVICES: radio.sim.devices cannot be set from the environment (set it in the config file)`},
	}
	for _, tt := range tests {
		_, err := LoadConfig("", []string{tt.env})
		require.Error(t, err, tt.env)
		assert.Contains(t, err.Error(), tt.want, tt.env)
	}
}

func TestConfigPasswordFile(t *testing.T) {
	pw := writeTemp(t, "  s3cret\n")
	cfg, err := LoadConfig(writeConfig(t, "mqtt:\n  server: mqtt://b\n  username: u\n  password_file: "+pw+"\n"), nil)
	require.NoError(t, err)
	assert.Equal(t, "s3cret", cfg.MQTT.Password, "read and trimmed")

	_, err = LoadConfig(writeConfig(t, "mqtt:\n  password: x\n  password_file: "+pw+"\n"), nil)
	assert.ErrorContains(t, err, ": config mqtt.password_file: set either mqtt.password or mqtt.password_file, not both")

	// The loaded configuration is usable: validating it again (bridge.New does) passes, with the password.
	_, err = New(cfg, Options{})
	require.NoError(t, err, "password_file must not count as a second password once read")
	cfg.FillDerived()
	require.NoError(t, cfg.Validate())

	_, err = LoadConfig("", []string{"OTABRIDGE_MQTT_USERNAME=u", "OTABRIDGE_MQTT_PASSWORD_FILE=/nonexistent/pw"})
	assert.ErrorContains(t, err, "config mqtt.password_file:")
	_, err = LoadConfig("", []string{"OTABRIDGE_MQTT_SERVER=mqtt://b", "OTABRIDGE_MQTT_PASSWORD_FILE=" + writeTemp(t, "\n")})
	assert.ErrorContains(t, err, "config mqtt.password_file: ")
	assert.ErrorContains(t, err, "is empty")

	// The password never reaches the summary.
	cfg.MQTT.Password = "s3cret"
	b, err := json.Marshal(cfg.Summary())
	require.NoError(t, err)
	assert.NotContains(t, string(b), "s3cret")
}

func TestConfigValidation(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"mqtt: {qos: 3}", "config mqtt.qos: 3 is not allowed (want 0, 1 or 2)"},
		{"radio: {type: zigate}", `config radio.type: "zigate" is not allowed (want sim, ezsp, znp or zboss)`},
		{"radio: {type: ezsp}", "config radio.port: required for radio.type ezsp"},
		{"radio: {type: ezsp, port: /dev/ttyUSB0, ash_window: 9}", "config radio.ash_window: 9 is not allowed (want 1..7)"},
		{"radio: {type: ezsp, port: /dev/ttyUSB0, fragment_window: 9}", "config radio.fragment_window: 9 is not allowed (want 1..8)"},
		{"radio: {type: ezsp, port: /dev/ttyUSB0, max_in_flight: 65}", "config radio.max_in_flight: 65 is not allowed (want 1..64)"},
		{"radio: {type: ezsp, port: /dev/ttyUSB0, fragment_delay_ms: 300}", "config radio.fragment_delay_ms: 300 is not allowed (want 0..255)"},
		{"radio: {flow_control: rts}", `config radio.flow_control: "rts" is not allowed (want none, hardware or software)`},
		{"radio: {network: {channel: 27}}", "config radio.network.channel: 27 is not allowed"},
		{"radio: {network: {network_key: abc}}", "config radio.network.network_key: not allowed (want 32 hex digits"},
		{"radio: {network: {extended_pan_id: xyz}}", `config radio.network.extended_pan_id: "xyz" is not allowed`},
		{"radio: {sim_speed: 0}", "config radio.sim_speed: 0 is not allowed"},
		{"radio: {sim: {devices: [{ieee: '0x0000000000000001', profile: warp}]}}", `config radio.sim.devices[0].profile: unknown profile "warp"`},
		{"mqtt: {server: 'ws://x:9001'}", "config mqtt.server:"},
		{"mqtt: {server: 'http://x'}", `config mqtt.server: "http://x" is not allowed (want embedded, mqtt://host:1883 or mqtts://host:8883)`},
		{"mqtt: {server: 'mqtt://'}", "has no host"},
		{"mqtt: {embedded_listen: nope}", `config mqtt.embedded_listen: "nope" is not allowed`},
		{"mqtt: {base_topic: 'a/#'}", "config mqtt.base_topic: \"a/#\" is not allowed (no MQTT wildcards + or #)"},
		{"mqtt: {base_topic: '/a'}", "config mqtt.base_topic: \"/a\" is not allowed (no / at either end)"},
		{"mqtt: {base_topic: ''}", "config mqtt.base_topic: empty"},
		{"mqtt: {discovery_prefix: '+'}", "config mqtt.discovery_prefix:"},
		{"mqtt: {keepalive: 0s}", "config mqtt.keepalive: 0s is not allowed"},
		{"mqtt: {cert_file: /x}", "config mqtt.cert_file: mqtt.cert_file and mqtt.key_file go together"},
		{"mqtt: {ca_file: /x}", "config mqtt.ca_file: TLS settings need an mqtts:// server"},
		{"mqtt: {server: 'mqtt://b', ca_file: /x}", "config mqtt.ca_file: TLS settings need an mqtts:// server, not mqtt://b"},
		{"ota: {max_concurrent: -1}", "config ota.max_concurrent:"},
		{"ota: {stall_timeout: -1s}", "config ota.stall_timeout: -1s is not allowed"},
		{"images: {indexes: ['']}", "config images.indexes[0]: empty"},
		{"data_dir: ''", "config data_dir: empty"},
		{"log: {level: verbose}", `config log.level: "verbose" is not allowed (want trace, debug, info, warn or error)`},
		{"log: {format: xml}", `config log.format: "xml" is not allowed (want console or json)`},
		// unknown keys name the key path
		{"mqtt: {servr: x}", "config mqtt.servr: unknown key (line 1)"},
		{"radio:\n  sim:\n    devices:\n      - ieee: '0x0000000000000001'\n        colour: red\n", "config radio.sim.devices[0].colour: unknown key (line 5)"},
		{"verbose: true", "config verbose: unknown key (line 1)"},
		{"ota: {allow: {names: [x]}}", "config ota.allow.names: unknown key"},
		// type errors say what is allowed, with the line
		{"mqtt: {qos: high}", `config mqtt.qos: "high" is not a whole number (line 1)`},
		{"ota: {max_concurrent: two}", `config ota.max_concurrent: "two" is not a whole number (line 1)`},
		{"mqtt: {discovery: maybe}", `config mqtt.discovery: "maybe" is not allowed (want true or false) (line 1)`},
		{"radio: {network: {channel: 300}}", `config radio.network.channel: "300" is not a whole number from 0 to 255`},
		{"radio: {sim_speed: fast}", `config radio.sim_speed: "fast" is not a number (line 1)`},
		// the embedded broker's unsafe setups
		{"mqtt: {embedded_listen: '0.0.0.0:1883'}", "config mqtt.embedded_listen: the embedded broker on 0.0.0.0:1883 would accept anyone on the network without credentials"},
		{"mqtt: {embedded_listen: ':1883'}", "mqtt.embedded_allow_anonymous_network: true"},
		{"mqtt: {embedded_listen: '192.168.1.5:1883'}", "would accept anyone on the network"},
		{"mqtt: {username: u}", "config mqtt.password: the embedded broker needs a password with mqtt.username"},
		{"mqtt: {password: p}", "config mqtt.username: the embedded broker needs a username with the password"},
		{"radio: [1, 2]", "cannot unmarshal"},
		{"ota: {allow: {ieee: ['0x12']}}", `config ota.allow.ieee: line 1: IEEE address "0x12": want 16 hex digits`},
		{"mqtt: {keepalive: forever}", `config mqtt.keepalive: "forever" is not a duration (like 90s, 5m, 1h30m) (line 1)`},
		{"radio:\n  sim:\n    devices:\n      - {ieee: '0x0000000000000001', hops: many}\n", `config radio.sim.devices[0].hops: "many" is not a whole number`},
		{"a: [", "config: yaml:"},
	}
	for _, tt := range tests {
		_, err := parseConfig([]byte(tt.yaml), nil)
		if assert.Error(t, err, tt.yaml) {
			assert.Contains(t, err.Error(), tt.want, tt.yaml)
		}
	}
}

// TestConfigEmbeddedBrokerNetwork: the embedded broker may face the network with credentials, or without
// them when explicitly allowed; loopback needs neither.
func TestConfigEmbeddedBrokerNetwork(t *testing.T) {
	for _, text := range []string{
		"mqtt: {embedded_listen: '0.0.0.0:1883', username: u, password: p}",
		"mqtt: {embedded_listen: '0.0.0.0:1883', embedded_allow_anonymous_network: true}",
		"mqtt: {embedded_listen: '[::1]:1883'}",
		"mqtt: {embedded_listen: 'localhost:1883'}",
		"mqtt: {server: 'mqtt://broker', username: u}", // an external broker decides for itself
	} {
		_, err := parseConfig([]byte(text), nil)
		assert.NoError(t, err, text)
	}
	_, err := LoadConfig("", []string{"OTABRIDGE_MQTT_EMBEDDED_LISTEN=0.0.0.0:1883", "OTABRIDGE_MQTT_USERNAME=u",
		"OTABRIDGE_MQTT_PASSWORD_FILE=" + writeTemp(t, "pw\n")})
	assert.NoError(t, err, "password_file counts as the password")
}

func TestConfigFileErrorsNameTheFile(t *testing.T) {
	path := writeConfig(t, "mqtt: {qos: 7}\n")
	_, err := LoadConfig(path, nil)
	assert.ErrorContains(t, err, path+": config mqtt.qos: 7 is not allowed")
	_, err = LoadConfig(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	assert.ErrorContains(t, err, "missing.yaml")
}

func TestConfigSummary(t *testing.T) {
	cfg, err := parseConfig([]byte(`
radio:
  network: {network_key: "000102030405060708090a0b0c0d0e0f"}
  sim:
    devices:
      - {ieee: "0x0000000000000001"}
      - {ieee: "0x0000000000000002"}
mqtt: {password: hunter2, username: ha}
`), nil)
	require.NoError(t, err)
	s := cfg.Summary()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	text := string(b)
	assert.NotContains(t, text, "hunter2")
	assert.NotContains(t, text, "0a0b0c0d")
	mq := s["mqtt"].(map[string]any)
	assert.Equal(t, "<set>", mq["password"])
	assert.Equal(t, "ha", mq["username"])
	assert.Equal(t, "1m0s", mq["keepalive"], "durations as strings")
	assert.Equal(t, "embedded", mq["server"])
	radio := s["radio"].(map[string]any)
	assert.Equal(t, map[string]any{"devices": 2, "link_mode": ""}, radio["sim"])
	assert.Equal(t, "<set>", radio["network"].(map[string]any)["network_key"])
	assert.Contains(t, s, "ota")
	assert.Contains(t, s, "images")
	assert.Equal(t, "data", s["data_dir"])

	cfg.Radio.Type, cfg.Radio.Port = "ezsp", "/dev/ttyACM0"
	s = cfg.Summary()
	assert.NotContains(t, s["radio"], "sim")
	assert.Equal(t, "/dev/ttyACM0", s["radio"].(map[string]any)["port"])
}

// TestRepoConfigYAML checks that the documented config.yaml at the repository root loads and documents the
// defaults: apart from the demo (the devices of radio.sim and the index of images/), it must equal
// DefaultConfig.
func TestRepoConfigYAML(t *testing.T) {
	path := filepath.Join("..", "config.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Skip("no config.yaml at the repository root yet")
	}
	cfg, err := LoadConfig(path, nil)
	require.NoError(t, err)
	def, err := LoadConfig("", nil)
	require.NoError(t, err)
	assert.NotEmpty(t, cfg.Radio.Sim.Devices, "config.yaml has demo devices")
	cfg.Radio.Sim = def.Radio.Sim
	cfg.Images.Indexes = def.Images.Indexes // the demo lists images/index.json
	// Compare the summaries: they treat an empty list or map ("[]", "{}" in the file) like a missing one.
	assert.Equal(t, def.Summary(), cfg.Summary(), "config.yaml documents exactly the defaults")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(raw), "OTABRIDGE_"), "config.yaml explains the environment overrides")
}

func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte("mqtt: {qos: 1}\n"), "OTABRIDGE_MQTT_QOS", "2")
	f.Add([]byte("radio:\n  sim:\n    devices:\n      - {ieee: '0x0000000000000001', profile: page}\n"), "OTABRIDGE_RADIO_SIM_LINK_MODE", "fast")
	f.Add([]byte("a: &x {b: 1}\nc: *x\n"), "OTABRIDGE_OTA_ALLOW_IEEE", "0x1,,")
	f.Add([]byte("ota: {allow: {manufacturer_codes: [0x1, 70000]}}"), "OTABRIDGE_OTA_ALLOW_MANUFACTURER_CODES", "-1")
	f.Add([]byte("radio: {<<: {type: sim}}"), "OTABRIDGE_MQTT_KEEPALIVE", "1e9h")
	f.Fuzz(func(t *testing.T, data []byte, key, value string) {
		cfg, err := parseConfig(data, []string{key + "=" + value})
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parseConfig returned a config that does not validate: %v", err)
		}
		_ = cfg.Summary()
	})
}

func TestConfigCampaignKeys(t *testing.T) {
	cfg, err := parseConfig([]byte("ota:\n  max_concurrent: auto\n  window: \"01:00-05:00\"\n  window_timezone: Europe/Berlin\n  window_end: pause\n  min_battery: 30\n  adaptive: {max: 12}\n"), nil)
	require.NoError(t, err)
	assert.Equal(t, ota.ConcurrencyAuto, cfg.OTA.MaxConcurrent)
	assert.Equal(t, ota.WindowList{"01:00-05:00"}, cfg.OTA.Window)
	assert.Equal(t, "pause", cfg.OTA.WindowEnd)
	assert.Equal(t, 30, cfg.OTA.MinBattery)
	assert.Equal(t, 12, cfg.OTA.Adaptive.Max)
	cfg, err = parseConfig([]byte("ota:\n  window: [\"mon-fri 22:00-06:00\", \"sat-sun 00:00-24:00\"]\n"), []string{"OTABRIDGE_OTA_MAX_CONCURRENT=auto"})
	require.NoError(t, err)
	assert.Equal(t, ota.ConcurrencyAuto, cfg.OTA.MaxConcurrent)
	assert.Len(t, cfg.OTA.Window, 2)
	for _, bad := range []string{"ota:\n  window: \"9-5\"\n", "ota:\n  window_end: stop\n", "ota:\n  min_battery: 101\n",
		"ota:\n  max_concurrent: lots\n", "ota:\n  window_timezone: Mars/Base\n  window: 01:00-02:00\n"} {
		_, err := parseConfig([]byte(bad), nil)
		assert.Error(t, err, bad)
	}
}
