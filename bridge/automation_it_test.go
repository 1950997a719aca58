package bridge_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/zcl"
)

// The automations of README.md and addon/DOCS.md, exercised with exactly their topics and payloads.

// "Update everything at 3 am": {} on ota/update_all queues every device with a newer image; the mains ones
// run through the queue, the sleepy one is scheduled for its next query; all end on the new version.
func TestITAutomationUpdateAll(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	for _, ieee := range []string{bridgetest.LightIEEE, bridgetest.BulbIEEE, bridgetest.DoorIEEE, bridgetest.HueIEEE} {
		waitDiscovery(t, h.Rec, deviceConfigTopic(ieee), 0)
	}
	mark := h.Rec.Mark()
	h.Rec.Publish(h.Topic("bridge/request/ota/update_all"), []byte("{}"), false)
	m := h.Rec.WaitFor("the update_all response", h.Topic("bridge/response/ota/update_all"), mark, nil)
	resp, err := bridgetest.ParseResponse(m)
	if err != nil || resp.Status != "ok" {
		t.Fatalf("update_all: %s (%v)", m.Payload, err)
	}
	queued := map[string]bool{}
	for _, q := range resp.Data["queued"].([]any) {
		queued[q.(map[string]any)["id"].(string)] = true
	}
	for _, ieee := range []string{bridgetest.LightIEEE, bridgetest.BulbIEEE, bridgetest.DoorIEEE} {
		if !queued[ieee] {
			t.Errorf("update_all did not queue %s: %s", ieee, m.Payload)
		}
	}
	skipped := resp.Data["skipped"].([]any)
	if len(skipped) != 1 || skipped[0].(map[string]any)["id"] != bridgetest.HueIEEE {
		t.Errorf("update_all skipped %v, want only the Hue bulb (no image)", skipped)
	}
	for _, ieee := range []string{bridgetest.LightIEEE, bridgetest.BulbIEEE, bridgetest.DoorIEEE} {
		h.Rec.WaitEvent(h.Base, "ota_finished", ieee, mark)
	}
	checkUpgraded(t, h, bridgetest.LightIEEE, bridgetest.LightNew, mark)
	checkUpgraded(t, h, bridgetest.DoorIEEE, bridgetest.DoorNew, mark)
	if st := h.Device(bridgetest.HueIEEE).Status(); st.Upgrades != 0 {
		t.Errorf("the Hue bulb was upgraded: %+v", st)
	}
	// Never more than the cap (2) at once: bridge/info's active_transfers.
	for _, m := range h.Rec.Messages(h.Topic("bridge/info"), mark) {
		if n, _ := m.JSON()["active_transfers"].(float64); n > 2 {
			t.Errorf("active_transfers %v > 2", n)
		}
	}
}

// "Notify when an update fails": the ota_failed event carries data.friendly_name and data.reason.
func TestITAutomationFailureEvent(t *testing.T) {
	skipShort(t)
	h, light := startWithLightOnly(t, bridgetest.Options{})
	// The device compares what it received with a different hash: it answers INVALID_IMAGE at the end.
	h.Net.SetImageOracle(func(zcl.ImageID) ([32]byte, bool) { return sha256.Sum256([]byte("not this image")), true })
	mark := h.Rec.Mark()
	ok(t, h.Request("device/ota_update/update", map[string]any{"id": light}))
	ev := h.Rec.WaitEvent(h.Base, "ota_failed", light, mark)
	if ev.Data["friendly_name"] != light || !strings.Contains(ev.Data["reason"].(string), "INVALID_IMAGE") {
		t.Errorf("ota_failed data %v: want friendly_name and a reason naming INVALID_IMAGE", ev.Data)
	}
	waitOTA(t, h, light, "the OTA state failed with the reason", mark, func(st otaState) bool {
		return st.State == "failed" && strings.Contains(st.LastError, "INVALID_IMAGE")
	})
	if st := h.Device(light).Status(); st.FileVersion != bridgetest.LightOld {
		t.Errorf("the light runs 0x%08x after a failed update", st.FileVersion)
	}
}
