package bridge_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/bridge/brokertest"
	"github.com/otabridge/otabridge/discovery"
)

// Integration tests: the bridge on the simulated network of config.yaml against a real broker (mosquitto
// when installed), judged by what it publishes. See bridge/bridgetest.

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
}

var demoDevices = []string{bridgetest.LightIEEE, bridgetest.BulbIEEE, bridgetest.DoorIEEE, bridgetest.HueIEEE}

func deviceConfigTopic(ieee string) string {
	return discovery.Instance{BaseTopic: bridgetest.BaseTopic, DiscoveryPrefix: bridgetest.HAPrefix}.DeviceConfigTopic(ieee)
}

func bridgeConfigTopic() string {
	return discovery.Instance{BaseTopic: bridgetest.BaseTopic, DiscoveryPrefix: bridgetest.HAPrefix}.BridgeConfigTopic()
}

// waitDiscovery waits for the device's discovery config after mark and checks it against HA's rules.
func waitDiscovery(t *testing.T, rec *bridgetest.Recorder, topic string, after int) bridgetest.DiscoveryConfig {
	t.Helper()
	m := rec.WaitFor("a discovery config", topic, after, func(m bridgetest.Message) bool { return len(m.Payload) > 0 })
	dc, err := bridgetest.CheckDiscoveryConfig(bridgetest.HAPrefix, bridgetest.BaseTopic, m.Topic, m.Payload)
	if err != nil {
		t.Fatalf("discovery config breaks HA's rules: %v\n%s", err, m.Payload)
	}
	return dc
}

// waitUpdateState waits for a `<base>/<ieee>/update` state after mark that satisfies pred, checked against
// HA's update schema.
func waitUpdateState(t *testing.T, h *bridgetest.Harness, ieee, what string, after int,
	pred func(bridgetest.UpdateState) bool) bridgetest.UpdateState {
	t.Helper()
	m := h.Rec.WaitFor(what, h.Topic(ieee+"/update"), after, func(m bridgetest.Message) bool {
		us, err := bridgetest.CheckUpdateState(m.Payload)
		return err == nil && pred(us)
	})
	us, _ := bridgetest.CheckUpdateState(m.Payload)
	return us
}

// otaState is the part of `<base>/<name>/ota` the tests read.
type otaState struct {
	State            string   `json:"state"`
	Progress         *float64 `json:"progress"`
	Bytes            uint32   `json:"bytes"`
	Size             uint32   `json:"size"`
	LastError        string   `json:"last_error"`
	InstalledVersion string   `json:"installed_version"`
	LatestVersion    string   `json:"latest_version"`
	StartedAt        *string  `json:"started_at"`
	Target           *struct {
		ID string `json:"id"`
	} `json:"target"`
	InstalledDisplayVersion string `json:"installed_display_version"`
	LatestDisplayVersion    string `json:"latest_display_version"`
	FromVersion             string `json:"from_version"`
	ToVersion               string `json:"to_version"`
}

func parseOTA(m bridgetest.Message) (otaState, bool) {
	var st otaState
	return st, json.Unmarshal(m.Payload, &st) == nil && st.State != ""
}

// waitOTA waits for a `<base>/<ieee>/ota` state after mark that satisfies pred.
func waitOTA(t *testing.T, h *bridgetest.Harness, ieee, what string, after int, pred func(otaState) bool) otaState {
	t.Helper()
	m := h.Rec.WaitFor(what, h.Topic(ieee+"/ota"), after, func(m bridgetest.Message) bool {
		st, ok := parseOTA(m)
		return ok && pred(st)
	})
	st, _ := parseOTA(m)
	return st
}

func TestITDiscovery(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})

	bridgeDC := waitDiscovery(t, h.Rec, bridgeConfigTopic(), 0)
	for _, id := range []string{discovery.ComponentConnectionState, discovery.ComponentActiveTransfers,
		discovery.ComponentQueueLength, discovery.ComponentCheckAll, discovery.ComponentPermitJoin} {
		if bridgeDC.Components[id] == nil {
			t.Errorf("bridge discovery lacks the component %s", id)
		}
	}
	configs := []bridgetest.DiscoveryConfig{bridgeDC}
	for _, ieee := range demoDevices {
		dc := waitDiscovery(t, h.Rec, deviceConfigTopic(ieee), 0)
		configs = append(configs, dc)
		up := dc.Components[discovery.ComponentUpdate]
		if up == nil || up["p"] != "update" {
			t.Fatalf("%s: no update component in %v", ieee, dc.Components)
		}
		if up["state_topic"] != h.Topic(ieee+"/update") {
			t.Errorf("%s: update state_topic %v, want %s", ieee, up["state_topic"], h.Topic(ieee+"/update"))
		}
		if up["command_topic"] != h.Topic("bridge/request/device/ota_update/update") {
			t.Errorf("%s: update command_topic %v", ieee, up["command_topic"])
		}
		var install map[string]any
		if err := json.Unmarshal([]byte(up["payload_install"].(string)), &install); err != nil ||
			len(install) != 1 || install["id"] != ieee {
			t.Errorf("%s: payload_install %v, want {\"id\":%q}", ieee, up["payload_install"], ieee)
		}
		if up["device_class"] != "firmware" {
			t.Errorf("%s: update device_class %v, want firmware", ieee, up["device_class"])
		}
		if _, ok := up["display_precision"]; !ok {
			t.Errorf("%s: update without display_precision", ieee)
		}
		if c := dc.Components[discovery.ComponentCheck]; c == nil || c["p"] != "button" {
			t.Errorf("%s: no check button", ieee)
		}
		if c := dc.Components[discovery.ComponentOTAState]; c == nil || c["p"] != "sensor" {
			t.Errorf("%s: no OTA state sensor", ieee)
		}
		if dc.Device["via_device"] != bridgeDC.Device["identifiers"].([]any)[0] {
			t.Errorf("%s: via_device %v is not the bridge", ieee, dc.Device["via_device"])
		}
	}
	if err := bridgetest.UniqueIDsUnique(configs); err != nil {
		t.Error(err)
	}

	// Update states: the light has an image (latest is the image's file version, 0x%08x like the installed
	// one, the human-readable 1.1.0 in the title); the Hue bulb has none, so its latest version equals the
	// installed one.
	light := waitUpdateState(t, h, bridgetest.LightIEEE, "the light's update state with its image", 0,
		func(us bridgetest.UpdateState) bool { return us.LatestVersion == "0x01010000" })
	if light.InstalledVersion != "0x01000000" || light.InProgress || light.UpdatePercentage != nil {
		t.Errorf("light update state %+v: want installed 0x01000000, not in progress", light)
	}
	if !strings.HasPrefix(light.ReleaseSummary, "1.0.0 → 1.1.0: ") || light.Title != "Espressif ESP32C6.Light firmware 1.1.0" {
		t.Errorf("light update state %+v: want release_summary and title", light)
	}
	hue := waitUpdateState(t, h, bridgetest.HueIEEE, "the Hue bulb's update state", 0,
		func(bridgetest.UpdateState) bool { return true })
	if hue.LatestVersion != hue.InstalledVersion || hue.InstalledVersion != "0x01001f00" {
		t.Errorf("Hue update state %+v: latest must equal installed 0x01001f00 when nothing is available", hue)
	}
	bulb := waitUpdateState(t, h, bridgetest.BulbIEEE, "the IKEA bulb's update state", 0,
		func(us bridgetest.UpdateState) bool { return us.LatestVersion == "0x24054631" })
	if bulb.ReleaseURL == "" || bulb.ReleaseSummary != "2.3.093 → 2.4.5" {
		t.Errorf("IKEA bulb update state %+v: its release notes are a URL: want release_url, and the versions as summary", bulb)
	}

	// Everything above is retained: a client that connects now gets it from the broker.
	late := bridgetest.NewRecorder(t, h.Broker.URL())
	for _, topic := range []string{bridgeConfigTopic(), deviceConfigTopic(bridgetest.LightIEEE),
		h.Topic(bridgetest.LightIEEE + "/update"), h.Topic(bridgetest.HueIEEE + "/update"), h.Topic("bridge/state")} {
		late.WaitFor("the retained message", topic, 0, func(m bridgetest.Message) bool { return m.Retained })
	}
	if st, _ := late.Last(h.Topic("bridge/state")); string(st.Payload) != `{"state":"online"}` {
		t.Errorf("bridge/state %s, want online", st.Payload)
	}
}

func TestITHomeAssistantBirth(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE, bridgetest.HueIEEE)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{BirthDelay: 20 * time.Millisecond})
	// The bridge's start: the bridge config comes only from the full publication after connecting (the one
	// the birth message repeats); let that burst end first.
	waitDiscovery(t, h.Rec, bridgeConfigTopic(), 0)
	for _, ieee := range []string{bridgetest.LightIEEE, bridgetest.HueIEEE} {
		waitDiscovery(t, h.Rec, deviceConfigTopic(ieee), 0)
		h.Rec.WaitFor("the update state", h.Topic(ieee+"/update"), 0, nil)
	}
	h.Rec.Settle(300 * time.Millisecond)

	mark := h.Rec.Mark()
	h.Rec.Publish(bridgetest.HAPrefix+"/status", []byte("online"), false)
	waitDiscovery(t, h.Rec, bridgeConfigTopic(), mark)
	for _, ieee := range []string{bridgetest.LightIEEE, bridgetest.HueIEEE} {
		waitDiscovery(t, h.Rec, deviceConfigTopic(ieee), mark)
		h.Rec.WaitFor("the update state again", h.Topic(ieee+"/update"), mark, nil)
		h.Rec.WaitFor("the OTA state again", h.Topic(ieee+"/ota"), mark, nil)
	}
	h.Rec.WaitFor("bridge/info again", h.Topic("bridge/info"), mark, nil)

	// Anything but "online" (HA's will is "offline") re-publishes nothing.
	h.Rec.Settle(300 * time.Millisecond)
	mark = h.Rec.Mark()
	h.Rec.Publish(bridgetest.HAPrefix+"/status", []byte("offline"), false)
	if m, ok := h.Rec.TryWaitFor(500*time.Millisecond, deviceConfigTopic(bridgetest.LightIEEE), mark, nil); ok {
		t.Errorf("discovery re-published after HA's offline status: #%d (mark %d) %s", m.Seq, mark, m.Payload)
	}
}

// Retained discovery configs of this instance for devices it no longer knows are cleared on start; those of
// another otabridge instance (another base topic) are left alone.
func TestITStaleDiscoveryCleared(t *testing.T) {
	skipShort(t)
	broker := brokertest.New(t)
	pre := bridgetest.NewRecorder(t, broker.URL())
	stale := bridgetest.HAPrefix + "/device/" + bridgetest.BaseTopic + "_0x00124b00deadbeef/config"
	other := bridgetest.HAPrefix + "/device/otherbridge_0x00124b00deadbeef/config"
	// An instance whose base topic starts with ours ("<base>_garage"): its configs are not ours either.
	garage := bridgetest.HAPrefix + "/device/" + bridgetest.BaseTopic + "_garage_0x00124b00deadbeef/config"
	garageBridge := bridgetest.HAPrefix + "/device/" + bridgetest.BaseTopic + "_garage_bridge/config"
	pre.Publish(stale, []byte(`{"dev":{"ids":["x"]},"o":{"name":"otabridge"},"cmps":{}}`), true)
	pre.Publish(other, []byte(`{"dev":{"ids":["y"]},"o":{"name":"otabridge"},"cmps":{}}`), true)
	pre.Publish(garage, []byte(`{"dev":{"ids":["z"]},"o":{"name":"otabridge"},"cmps":{}}`), true)
	pre.Publish(garageBridge, []byte(`{"dev":{"ids":["g"]},"o":{"name":"otabridge"},"cmps":{}}`), true)

	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	h := bridgetest.Start(t, broker, cfg, bridgetest.Options{})
	h.Rec.WaitFor("the stale config cleared", stale, 0, func(m bridgetest.Message) bool { return len(m.Payload) == 0 })
	waitDiscovery(t, h.Rec, deviceConfigTopic(bridgetest.LightIEEE), 0)
	// Stopping drains everything the bridge queued; its offline state is the last thing it publishes.
	mark := len(h.Rec.Messages("", 0))
	h.Stop()
	h.Rec.WaitFor("the offline state", h.Topic("bridge/state"), mark, func(m bridgetest.Message) bool {
		return string(m.Payload) == string(bridge.StateOffline)
	})
	for _, topic := range []string{other, garage, garageBridge} {
		for _, m := range h.Rec.Messages(topic, 0) {
			if len(m.Payload) == 0 {
				t.Errorf("the other instance's discovery config %s was cleared", topic)
			}
		}
	}
}
