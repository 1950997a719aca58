package discovery

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var testInstance = Instance{BaseTopic: "otabridge", DiscoveryPrefix: "homeassistant", Version: "1.2.3"}

var testDevice = Device{
	IEEE:            "0x00124b0012345678",
	FriendlyName:    "kitchen/light",
	Manufacturer:    "Espressif",
	Model:           "ESP32H2-Light",
	SWBuildID:       "1.0.3",
	HardwareVersion: "1",
}

func TestDeviceConfigRules(t *testing.T) {
	devices := []Device{
		testDevice,
		{IEEE: "0x0000000000000001"}, // nothing known yet: friendly name defaults to the IEEE
		{IEEE: "0xffffffffffffffff", FriendlyName: "Bäder Licht 2", Manufacturer: "_TZ3000_abc", Model: "TS011F"},
		{IEEE: "0x00124b0000000002", FriendlyName: "a/b/c", Model: "x\"y"},
	}
	instances := []Instance{
		testInstance,
		{BaseTopic: "home/otabridge-2", DiscoveryPrefix: "ha", Version: "dev", OriginURL: "not a url"},
	}
	for _, in := range instances {
		seen := map[string]bool{}
		for _, d := range devices {
			m, err := in.DeviceConfig(d)
			require.NoError(t, err)
			uids := checkDiscovery(t, in, m)
			for domain, ids := range uids {
				for _, id := range ids {
					key := domain + "/" + id
					assert.False(t, seen[key], "unique_id %s used twice in domain %s", id, domain)
					seen[key] = true
				}
			}
		}
		b, err := in.BridgeConfig()
		require.NoError(t, err)
		for domain, ids := range checkDiscovery(t, in, b) {
			for _, id := range ids {
				assert.False(t, seen[domain+"/"+id], "unique_id %s used twice", id)
				seen[domain+"/"+id] = true
			}
		}
	}
}

func TestDeviceConfigContents(t *testing.T) {
	m, err := testInstance.DeviceConfig(testDevice)
	require.NoError(t, err)
	assert.Equal(t, "homeassistant/device/otabridge_0x00124b0012345678/config", m.Topic)
	var p struct {
		Dev  map[string]any            `json:"dev"`
		O    map[string]any            `json:"o"`
		Cmps map[string]map[string]any `json:"cmps"`
	}
	require.NoError(t, json.Unmarshal(m.Payload, &p))
	assert.Equal(t, "otabridge_bridge", p.Dev["via_device"])
	assert.Equal(t, []any{"otabridge_0x00124b0012345678"}, p.Dev["identifiers"])
	assert.Equal(t, map[string]any{"name": "otabridge", "sw_version": "1.2.3", "support_url": DefaultOriginURL}, p.O)

	u := p.Cmps["update"]
	assert.Equal(t, "update", u["p"])
	assert.Equal(t, "firmware", u["device_class"])
	assert.Equal(t, "config", u["entity_category"])
	assert.Equal(t, "otabridge/kitchen/light/update", u["state_topic"])
	assert.Equal(t, "otabridge/kitchen/light/ota", u["json_attributes_topic"])
	assert.Equal(t, "otabridge/bridge/request/device/ota_update/update", u["command_topic"])
	assert.Equal(t, `{"id":"0x00124b0012345678"}`, u["payload_install"])
	assert.Equal(t, float64(1), u["display_precision"])
	assert.Equal(t, "update.kitchen_light_firmware", u["default_entity_id"])

	b := p.Cmps["check"]
	assert.Equal(t, "button", b["p"])
	assert.Equal(t, "otabridge/bridge/request/device/ota_update/check", b["command_topic"])
	assert.Equal(t, `{"id":"0x00124b0012345678"}`, b["payload_press"])
	assert.Equal(t, "config", b["entity_category"])

	s := p.Cmps["ota_state"]
	assert.Equal(t, "sensor", s["p"])
	assert.Equal(t, "enum", s["device_class"])
	assert.Equal(t, "diagnostic", s["entity_category"])
	assert.Equal(t, "otabridge/kitchen/light/ota", s["state_topic"])
	assert.Equal(t, "{{ value_json.state }}", s["value_template"])
	assert.Equal(t, "otabridge/kitchen/light/ota", s["json_attributes_topic"], "the README: the full OTA state as attributes")
	assert.Len(t, s["options"], 9)
}

func TestBridgeConfigContents(t *testing.T) {
	m, err := testInstance.BridgeConfig()
	require.NoError(t, err)
	assert.Equal(t, "homeassistant/device/otabridge_bridge/config", m.Topic)
	var p struct {
		Dev  map[string]any            `json:"dev"`
		Cmps map[string]map[string]any `json:"cmps"`
	}
	require.NoError(t, json.Unmarshal(m.Payload, &p))
	assert.Equal(t, []any{"otabridge_bridge"}, p.Dev["identifiers"])
	assert.NotContains(t, p.Dev, "via_device")

	c := p.Cmps[ComponentConnectionState]
	assert.Equal(t, "binary_sensor", c["p"])
	assert.Equal(t, "connectivity", c["device_class"])
	assert.Equal(t, "otabridge/bridge/state", c["state_topic"])
	assert.Equal(t, "online", c["payload_on"])
	assert.Equal(t, "offline", c["payload_off"])
	assert.NotContains(t, c, "availability", "made unavailable by the topic it reads, it could never show offline")
	for id, other := range p.Cmps {
		if id != ComponentConnectionState {
			assert.Contains(t, other, "availability", id)
		}
	}

	for id, key := range map[string]string{ComponentActiveTransfers: "active_transfers", ComponentQueueLength: "queue_length"} {
		s := p.Cmps[id]
		assert.Equal(t, "sensor", s["p"], id)
		assert.Equal(t, "otabridge/bridge/info", s["state_topic"], id)
		assert.Equal(t, "{{ value_json."+key+" }}", s["value_template"], id)
	}
	ca := p.Cmps[ComponentCheckAll]
	assert.Equal(t, "button", ca["p"])
	assert.Equal(t, "otabridge/bridge/request/ota/check_all", ca["command_topic"])
	assert.Equal(t, "{}", ca["payload_press"])

	pj := p.Cmps[ComponentPermitJoin]
	assert.Equal(t, "switch", pj["p"])
	assert.Equal(t, "otabridge/bridge/request/permit_join", pj["command_topic"])
	assert.Equal(t, `{"time":254}`, pj["payload_on"])
	assert.Equal(t, `{"time":0}`, pj["payload_off"])
	assert.Equal(t, "otabridge/bridge/info", pj["state_topic"])
}

func TestRemove(t *testing.T) {
	m := testInstance.RemoveDevice("0x00124b0012345678")
	assert.Equal(t, "homeassistant/device/otabridge_0x00124b0012345678/config", m.Topic)
	assert.Empty(t, m.Payload)
	b := testInstance.RemoveBridge()
	assert.Equal(t, "homeassistant/device/otabridge_bridge/config", b.Topic)
	assert.Empty(t, b.Payload)
}

func TestInstancesDoNotCollide(t *testing.T) {
	a := testInstance
	b := Instance{BaseTopic: "otabridge2", DiscoveryPrefix: "homeassistant"}
	ma, err := a.DeviceConfig(Device{IEEE: "0x0000000000000001"})
	require.NoError(t, err)
	mb, err := b.DeviceConfig(Device{IEEE: "0x0000000000000001"})
	require.NoError(t, err)
	assert.NotEqual(t, ma.Topic, mb.Topic)
	ua, ub := checkDiscovery(t, a, ma), checkDiscovery(t, b, mb)
	for domain, ids := range ua {
		for _, id := range ids {
			assert.NotContains(t, ub[domain], id)
		}
	}
	ba, _ := a.BridgeConfig()
	bb, _ := b.BridgeConfig()
	assert.NotEqual(t, ba.Topic, bb.Topic)
}

func TestBadInput(t *testing.T) {
	_, err := testInstance.DeviceConfig(Device{})
	assert.Error(t, err)
	_, err = testInstance.DeviceConfig(Device{IEEE: "0x0000000000000001", FriendlyName: "a/+/b"})
	assert.ErrorContains(t, err, "wildcard")
	_, err = Instance{BaseTopic: "x/#", DiscoveryPrefix: "homeassistant"}.BridgeConfig()
	assert.Error(t, err)
	_, err = Instance{BaseTopic: "x"}.BridgeConfig()
	assert.Error(t, err)
}

func TestObjectIDAndSlug(t *testing.T) {
	assert.Equal(t, "home_otabridge_0x01", ObjectID("home/otabridge_0x01"))
	assert.Equal(t, "a-b_c", ObjectID("a-b c"))
	assert.Equal(t, "_", ObjectID(""))
	assert.Equal(t, "kitchen_light_2", Slug("Kitchen / Light #2"))
	assert.Equal(t, "b_der", Slug("Bäder"))
	assert.Equal(t, "unnamed", Slug("ÄÖÜ"))
	assert.Equal(t, "0x00124b0012345678", Slug("0x00124b0012345678"))
}

func TestGolden(t *testing.T) {
	dev, err := testInstance.DeviceConfig(testDevice)
	require.NoError(t, err)
	br, err := testInstance.BridgeConfig()
	require.NoError(t, err)
	for name, m := range map[string]Message{"device.golden.json": dev, "bridge.golden.json": br} {
		var buf bytes.Buffer
		require.NoError(t, json.Indent(&buf, m.Payload, "", "  "))
		buf.WriteByte('\n')
		path := filepath.Join("testdata", name)
		if *update {
			require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err, "run go test ./discovery -run TestGolden -update to create it")
		assert.Equal(t, string(want), buf.String(), name)
	}
}

func pct(v float64) *float64 { return &v }

func TestUpdatePayload(t *testing.T) {
	long := strings.Repeat("é", 300)
	tests := []struct {
		name string
		in   UpdateState
		want string
	}{
		{"nothing known", UpdateState{}, `{"in_progress":false,"update_percentage":null}`},
		{"idle: latest equals installed", UpdateState{InstalledVersion: "0x01020304"},
			`{"installed_version":"0x01020304","latest_version":"0x01020304","in_progress":false,"update_percentage":null}`},
		{"available", UpdateState{InstalledVersion: "0x00000001", LatestVersion: "0x00000002", Title: "ESP light", ReleaseSummary: "fixes", ReleaseURL: "https://example.com/notes"},
			`{"installed_version":"0x00000001","latest_version":"0x00000002","in_progress":false,"update_percentage":null,"release_summary":"fixes","release_url":"https://example.com/notes","title":"ESP light"}`},
		{"updating", UpdateState{InstalledVersion: "0x00000001", LatestVersion: "0x00000002", InProgress: true, Percentage: pct(12.3456)},
			`{"installed_version":"0x00000001","latest_version":"0x00000002","in_progress":true,"update_percentage":12.35}`},
		{"updating, indeterminate", UpdateState{InstalledVersion: "1", LatestVersion: "2", InProgress: true},
			`{"installed_version":"1","latest_version":"2","in_progress":true,"update_percentage":null}`},
		{"percentage ignored when not in progress", UpdateState{InstalledVersion: "1", Percentage: pct(50)},
			`{"installed_version":"1","latest_version":"1","in_progress":false,"update_percentage":null}`},
		{"percentage clamped", UpdateState{InstalledVersion: "1", InProgress: true, Percentage: pct(140)},
			`{"installed_version":"1","latest_version":"1","in_progress":true,"update_percentage":100}`},
		{"relative release url dropped", UpdateState{InstalledVersion: "1", ReleaseURL: "/notes.html"},
			`{"installed_version":"1","latest_version":"1","in_progress":false,"update_percentage":null}`},
		{"ftp release url dropped", UpdateState{InstalledVersion: "1", ReleaseURL: "ftp://x/y"},
			`{"installed_version":"1","latest_version":"1","in_progress":false,"update_percentage":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := UpdatePayload(tt.in)
			assert.JSONEq(t, tt.want, string(got))
			checkUpdatePayload(t, got)
		})
	}
	got := UpdatePayload(UpdateState{InstalledVersion: "1", ReleaseSummary: long})
	var p map[string]any
	require.NoError(t, json.Unmarshal(got, &p))
	assert.Equal(t, 255, utf8.RuneCountInString(p["release_summary"].(string)))
}

// updateKeys is MQTT_JSON_UPDATE_SCHEMA (PREVENT_EXTRA).
var updateKeys = []string{"installed_version", "latest_version", "title", "release_summary", "release_url",
	"entity_picture", "in_progress", "update_percentage"}

// checkUpdatePayload applies the "Update state payload" rules of ha-mqtt-rules.md.
func checkUpdatePayload(t *testing.T, b []byte) {
	t.Helper()
	require.True(t, utf8.Valid(b))
	var p map[string]any
	require.NoError(t, json.Unmarshal(b, &p), "a JSON object")
	require.NotEmpty(t, p, "{} is ignored by HA")
	for k, v := range p {
		assert.True(t, slices.Contains(updateKeys, k), "unknown key %q drops the message", k)
		switch k {
		case "installed_version", "latest_version", "title", "release_summary":
			_, ok := v.(string)
			assert.True(t, ok, "%s must be a string, not %v (null is E)", k, v)
		case "release_url":
			s, _ := v.(string)
			assert.True(t, isHTTPURL(s), "release_url %q", s)
		case "in_progress":
			_, ok := v.(bool)
			assert.True(t, ok, "in_progress boolean")
		case "update_percentage":
			if v != nil {
				f, ok := v.(float64)
				assert.True(t, ok && f >= 0 && f <= 100, "update_percentage 0..100 or null: %v", v)
			}
		}
	}
	assert.Contains(t, p, "update_percentage", "always present")
	assert.Contains(t, p, "in_progress", "always present")
	if s, ok := p["release_summary"].(string); ok {
		assert.LessOrEqual(t, utf8.RuneCountInString(s), 255)
	}
	if iv, ok := p["installed_version"]; ok {
		assert.Contains(t, p, "latest_version", "latest present when installed is known")
		_ = iv
	}
}

func FuzzUpdatePayload(f *testing.F) {
	f.Add("0x01020304", "", "notes", "https://example.com", "title", true, 55.5)
	f.Add("", "0x2", "", "javascript:alert(1)", "", false, -1.0)
	f.Add("\xff\xfe", "v2", strings.Repeat("x", 400), "http://", "\x00", true, 1e300)
	f.Fuzz(func(t *testing.T, installed, latest, summary, rurl, title string, inProgress bool, percentage float64) {
		b := UpdatePayload(UpdateState{InstalledVersion: installed, LatestVersion: latest, ReleaseSummary: summary,
			ReleaseURL: rurl, Title: title, InProgress: inProgress, Percentage: &percentage})
		checkUpdatePayload(t, b)
	})
}

func FuzzDeviceConfig(f *testing.F) {
	f.Add("otabridge", "0x00124b0012345678", "kitchen/light", "Espressif", "ESP32H2", "1.0", "1")
	f.Add("a/b", "0x0000000000000001", "", "", "", "", "")
	f.Add("x", "0x1", "Bäder \"Licht\"", "\xff", "{{ x }}", "\x00", "")
	f.Fuzz(func(t *testing.T, base, ieee, name, mfr, model, sw, hw string) {
		in := Instance{BaseTopic: base, DiscoveryPrefix: "homeassistant", Version: "dev"}
		m, err := in.DeviceConfig(Device{IEEE: ieee, FriendlyName: name, Manufacturer: mfr, Model: model, SWBuildID: sw, HardwareVersion: hw})
		if err != nil {
			return
		}
		var v map[string]any
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			t.Fatalf("payload is not a JSON object: %v", err)
		}
		if !utf8.Valid(m.Payload) {
			t.Fatal("payload is not UTF-8")
		}
		parts := strings.Split(m.Topic, "/")
		if !idCharset.MatchString(parts[len(parts)-2]) {
			t.Fatalf("object id %q", parts[len(parts)-2])
		}
	})
}

func BenchmarkDeviceConfig(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := testInstance.DeviceConfig(testDevice); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUpdatePayload(b *testing.B) {
	b.ReportAllocs()
	s := UpdateState{InstalledVersion: "0x01000000", LatestVersion: "0x01010000", InProgress: true, Percentage: pct(42.5),
		ReleaseSummary: "Fixes", ReleaseURL: "https://example.com/notes", Title: "ESP32H2-Light"}
	for b.Loop() {
		_ = UpdatePayload(s)
	}
}
