package bridge_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/otabridge/otabridge/bridge/bridgetest"
)

// devicesListing is a bridge/devices payload without what changes without re-publishing it (last_seen,
// ota_state), as canonical JSON.
func devicesListing(t *testing.T, m bridgetest.Message) string {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal(m.Payload, &list); err != nil {
		t.Fatalf("bridge/devices #%d: %v: %s", m.Seq, err, m.Payload)
	}
	for _, d := range list {
		delete(d, "last_seen")
		delete(d, "ota_state")
	}
	out, _ := json.Marshal(list)
	return string(out)
}

// Issue 19.3: an OTA update of a device changes its state topics many times, but bridge/devices (the whole
// list, retained) is re-published only when what it lists changes: here once, when the interview after the
// upgrade reads the new file version. Every publish differs from the one before in more than last_seen and
// ota_state.
func TestITDevicesListPublishedOnListedChangesOnly(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE, bridgetest.HueIEEE)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	light := bridgetest.LightIEEE
	waitDiscovery(t, h.Rec, deviceConfigTopic(light), 0)
	waitDiscovery(t, h.Rec, deviceConfigTopic(bridgetest.HueIEEE), 0)
	h.Rec.Settle(300 * time.Millisecond)
	mark := h.Rec.Mark()
	ok(t, h.Request("device/ota_update/update", map[string]any{"id": light}))
	h.Rec.WaitEvent(h.Base, "ota_finished", light, mark)
	h.Rec.WaitFor("bridge/devices with the light's new version", h.Topic("bridge/devices"), mark, func(m bridgetest.Message) bool {
		var list []struct {
			IEEE        string  `json:"ieee"`
			FileVersion *uint32 `json:"file_version"`
		}
		if json.Unmarshal(m.Payload, &list) != nil {
			return false
		}
		for _, d := range list {
			if d.IEEE == light && d.FileVersion != nil && *d.FileVersion == bridgetest.LightNew {
				return true
			}
		}
		return false
	})
	states := len(h.Rec.Messages(h.Topic(light+"/ota"), mark))
	all := h.Rec.Messages(h.Topic("bridge/devices"), 0)
	var before []bridgetest.Message
	for _, m := range all {
		if m.Seq <= mark {
			before = append(before, m)
		}
	}
	if len(before) == 0 {
		t.Fatal("no bridge/devices before the update")
	}
	prev := devicesListing(t, before[len(before)-1])
	after := 0
	for _, m := range all[len(before):] {
		after++
		cur := devicesListing(t, m)
		if cur == prev {
			t.Errorf("bridge/devices #%d re-published with nothing listed changed (only last_seen/ota_state): %s", m.Seq, m.Payload)
		}
		prev = cur
	}
	t.Logf("during the update: %d ota state messages, %d bridge/devices publishes", states, after)
}
