package bridge_test

import (
	"encoding/json"
	"testing"

	"github.com/otabridge/otabridge/bridge/bridgetest"
)

type campaignState struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	State     string `json:"state"`
	Total     int    `json:"total"`
	Done      int    `json:"done"`
	Failed    int    `json:"failed"`
	Remaining int    `json:"remaining"`
	Devices   []struct {
		IEEE   string `json:"ieee"`
		Result string `json:"result"`
	} `json:"devices"`
}

func waitCampaign(t *testing.T, h *bridgetest.Harness, id, what string, after int, pred func(campaignState) bool) campaignState {
	t.Helper()
	m := h.Rec.WaitFor(what, h.Topic("bridge/campaign/"+id), after, func(m bridgetest.Message) bool {
		var st campaignState
		return json.Unmarshal(m.Payload, &st) == nil && pred(st)
	})
	var st campaignState
	_ = json.Unmarshal(m.Payload, &st)
	return st
}

// update_all with a filter makes a named campaign: progress retained on bridge/campaign/<id>, an HA sensor
// while it runs, paused over MQTT, still paused after a bridge restart, resumed, and ended with a report
// event listing each device's result (the sensor is removed then).
func TestITCampaignPauseResumeAcrossRestart(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE, bridgetest.BulbIEEE)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	light := bridgetest.LightIEEE
	for _, ieee := range []string{light, bridgetest.BulbIEEE} {
		waitDiscovery(t, h.Rec, deviceConfigTopic(ieee), 0)
	}
	mark := h.Rec.Mark()
	resp := h.Request("ota/update_all", map[string]any{"name": "Night lights", "filter": map[string]any{"model": "ESP32C6.Light"}})
	ok(t, resp)
	if resp.Data["campaign"] != "night_lights" || len(resp.Data["queued"].([]any)) != 1 {
		t.Fatalf("update_all: %v", resp.Data)
	}
	waitCampaign(t, h, "night_lights", "the running campaign", mark, func(st campaignState) bool {
		return st.State == "running" && st.Total == 1 && st.Name == "Night lights"
	})
	sensorTopic := cfg.MQTT.DiscoveryPrefix + "/device/otabridge_campaign_night_lights/config"
	h.Rec.WaitFor("the campaign's HA sensor", sensorTopic, mark, func(m bridgetest.Message) bool { return len(m.Payload) > 0 })

	ok(t, h.Request("campaign/pause", map[string]any{"id": "night_lights"}))
	waitCampaign(t, h, "night_lights", "the paused campaign", mark, func(st campaignState) bool { return st.State == "paused" })
	waitOTA(t, h, light, "the light held by the pause", mark, func(st otaState) bool { return st.State == "queued" })
	h.Stop()

	h = bridgetest.Start(t, h.Broker, cfg, bridgetest.Options{})
	mark = h.Rec.Mark()
	st := waitCampaign(t, h, "night_lights", "the campaign after the restart", 0, func(st campaignState) bool { return true })
	if st.State != "paused" || st.Done != 0 {
		t.Fatalf("after the restart the campaign is %+v, want paused with nothing done", st)
	}
	ok(t, h.Request("campaign/resume", map[string]any{"id": "night_lights"}))
	ev := h.Rec.WaitEvent(h.Base, "campaign_finished", "night_lights", mark)
	devices, _ := ev.Data["devices"].([]any)
	if len(devices) != 1 || devices[0].(map[string]any)["result"] != "done" || devices[0].(map[string]any)["ieee"] != light {
		t.Errorf("campaign report %v: want the light done", ev.Data)
	}
	waitCampaign(t, h, "night_lights", "the finished campaign", mark, func(st campaignState) bool {
		return st.State == "finished" && st.Done == 1 && st.Remaining == 0
	})
	h.Rec.WaitFor("the campaign's HA sensor removed", sensorTopic, mark, func(m bridgetest.Message) bool { return len(m.Payload) == 0 })
	checkUpgraded(t, h, light, bridgetest.LightNew, mark)
	if st := h.Device(bridgetest.BulbIEEE).Status(); st.Upgrades != 0 {
		t.Errorf("the bulb, outside the filter, was upgraded")
	}
	ok(t, h.Request("campaign/remove", map[string]any{"id": "night_lights"}))
	h.Rec.WaitFor("the campaign topic cleared", h.Topic("bridge/campaign/night_lights"), mark, func(m bridgetest.Message) bool { return len(m.Payload) == 0 })
}

// A sleepy device's battery is read at the interview and shown in <name>/ota; below ota.min_battery an
// update is held with the reason, and goes on once the device reports a recharged battery.
func TestITBatteryHold(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.DoorIEEE)
	low := 23.0
	bridgetest.SimDevice(t, &cfg, bridgetest.DoorIEEE).Battery = &low
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	door := bridgetest.DoorIEEE
	waitDiscovery(t, h.Rec, deviceConfigTopic(door), 0)
	h.Rec.WaitFor("the door's battery", h.Topic(door+"/ota"), 0, func(m bridgetest.Message) bool {
		return bridgetest.Field(m, "battery") == 23.0
	})
	mark := h.Rec.Mark()
	ok(t, h.Request("device/ota_update/update", map[string]any{"id": door}))
	h.Rec.WaitFor("the battery hold", h.Topic(door+"/ota"), mark, func(m bridgetest.Message) bool {
		return bridgetest.Field(m, "hold") == "battery 23 % < 50 %" && bridgetest.Field(m, "state") == "scheduled"
	})
	h.Device(door).SetBattery(90) // recharged
	h.Rec.WaitEvent(h.Base, "ota_finished", door, mark)
	checkUpgraded(t, h, door, bridgetest.DoorNew, mark)
}
