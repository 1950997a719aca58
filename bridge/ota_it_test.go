package bridge_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/discovery"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// waitSim polls the simulated device until pred holds (DefaultTimeout is a failure guard only).
func waitSim(t *testing.T, h *bridgetest.Harness, ieee, what string, pred func(sim.DeviceStatus) bool) sim.DeviceStatus {
	t.Helper()
	d := h.Device(ieee)
	deadline := time.Now().Add(bridgetest.DefaultTimeout)
	for {
		st := d.Status()
		if pred(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for the simulated device %s: %s; status %+v", ieee, what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ok(t *testing.T, resp bridgetest.Response) {
	t.Helper()
	if resp.Status != "ok" {
		t.Fatalf("%s: status %s, error %q", resp.Topic, resp.Status, resp.Error)
	}
}

// progressValues returns the update_percentage values (HA's progress bar) of the device's update states
// after mark, and fails the test when one breaks HA's schema or the percentage goes down.
func progressValues(t *testing.T, h *bridgetest.Harness, ieee string, after int) []float64 {
	t.Helper()
	var out []float64
	for _, m := range h.Rec.Messages(h.Topic(ieee+"/update"), after) {
		us, err := bridgetest.CheckUpdateState(m.Payload)
		if err != nil {
			t.Fatalf("%v", err)
		}
		if us.UpdatePercentage == nil {
			continue
		}
		if len(out) > 0 && *us.UpdatePercentage < out[len(out)-1] {
			t.Errorf("update_percentage went down: %v after %v", *us.UpdatePercentage, out)
		}
		out = append(out, *us.UpdatePercentage)
	}
	return out
}

// checkUpgraded checks that the device's update state shows version (installed == latest, not in
// progress), its OTA state is idle, and that the simulated device runs version.
func checkUpgraded(t *testing.T, h *bridgetest.Harness, ieee string, version uint32, after int) {
	t.Helper()
	want := ota.VersionString(version)
	us := waitUpdateState(t, h, ieee, "the update state with the new version", after,
		func(us bridgetest.UpdateState) bool { return us.InstalledVersion == want })
	if us.LatestVersion != want || us.InProgress || us.UpdatePercentage != nil {
		t.Errorf("%s update state after the upgrade %+v: want installed == latest == %s, not in progress", ieee, us, want)
	}
	waitOTA(t, h, ieee, "the OTA state idle", after, func(st otaState) bool { return st.State == "idle" })
	st := h.Device(ieee).Status()
	if st.FileVersion != version || st.Upgrades != 1 {
		t.Errorf("simulated device %s runs 0x%08x after %d upgrades, want %s after 1", ieee, st.FileVersion, st.Upgrades, want)
	}
}

func TestITCheck(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE, bridgetest.HueIEEE)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	waitDiscovery(t, h.Rec, deviceConfigTopic(bridgetest.LightIEEE), 0)
	waitDiscovery(t, h.Rec, deviceConfigTopic(bridgetest.HueIEEE), 0)

	resp := h.Request("device/ota_update/check", map[string]any{"id": bridgetest.LightIEEE})
	ok(t, resp)
	if resp.Data["update_available"] != true || resp.Data["state"] != "available" || resp.Data["id"] != bridgetest.LightIEEE {
		t.Errorf("check of the light: data %v, want update_available true, state available", resp.Data)
	}
	if resp.Data["installed_version"] != "0x01000000" || resp.Data["latest_version"] != "0x01010000" ||
		resp.Data["latest_display_version"] != "1.1.0" {
		t.Errorf("check of the light: data %v, want installed 0x01000000, latest 0x01010000 (1.1.0)", resp.Data)
	}
	waitOTA(t, h, bridgetest.LightIEEE, "the light's OTA state available", 0, func(st otaState) bool {
		return st.State == "available" && st.LatestVersion == "0x01010000" && st.LatestDisplayVersion == "1.1.0" &&
			st.InstalledDisplayVersion == "1.0.0"
	})
	us := waitUpdateState(t, h, bridgetest.LightIEEE, "the light's update state", 0,
		func(us bridgetest.UpdateState) bool { return us.LatestVersion == "0x01010000" })
	if us.InstalledVersion != "0x01000000" || us.InProgress {
		t.Errorf("light update state %+v", us)
	}

	// By friendly name (the IEEE by default) works too; a device with no image is up to date.
	resp = h.Request("device/ota_update/check", map[string]any{"id": bridgetest.HueIEEE})
	ok(t, resp)
	if resp.Data["update_available"] != false || resp.Data["state"] != "idle" ||
		resp.Data["latest_version"] != resp.Data["installed_version"] {
		t.Errorf("check of the Hue bulb: data %v, want no update, idle, latest == installed", resp.Data)
	}
}

func TestITManualApproval(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	// The door sensor (sleepy, periodic client: it asks every minute by itself) and the light, which must
	// not be touched.
	bridgetest.KeepDevices(t, &cfg, bridgetest.DoorIEEE, bridgetest.LightIEEE)
	bridgetest.SimDevice(t, &cfg, bridgetest.DoorIEEE).QueryInterval = time.Minute
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	door := bridgetest.DoorIEEE

	// Nothing installs unless asked: the device's own query is refused and approval is needed.
	ev := h.Rec.WaitEvent(h.Base, "approval_needed", door, 0)
	// The README's and DOCS' automation conditions read type, data.id and data.model.
	if ev.Data["version"] != "0.0.0_0027" || ev.Data["installed_version"] != "0x0000001a" || ev.Data["model"] != "lumi.sensor_magnet.aq2" {
		t.Errorf("approval_needed data %v", ev.Data)
	}
	waitOTA(t, h, door, "approval_pending", 0, func(st otaState) bool { return st.State == "approval_pending" })
	// The sleepy device gets the refusal at its next poll.
	waitSim(t, h, door, "its query refused", func(s sim.DeviceStatus) bool {
		return s.Queries > 0 && s.LastQueryStatus == zcl.StatusNoImageAvailable && s.State == sim.StateIdle
	})

	mark := h.Rec.Mark()
	resp := h.Request("device/ota_update/approve", map[string]any{"id": door})
	ok(t, resp)
	if resp.Data["to"] != "0x0000001b" || resp.Data["to_display_version"] != "0.0.0_0027" || resp.Data["id"] != door {
		t.Errorf("approve response data %v", resp.Data)
	}
	h.Rec.WaitEvent(h.Base, "ota_started", door, mark)
	waitUpdateState(t, h, door, "an update state in progress", mark, func(us bridgetest.UpdateState) bool {
		return us.InProgress && us.UpdatePercentage != nil && *us.UpdatePercentage > 0
	})
	fin := h.Rec.WaitEvent(h.Base, "ota_finished", door, mark)
	if fin.Data["to_version"] != "0x0000001b" || fin.Data["from_version"] != "0x0000001a" || fin.Data["to_display_version"] != "0.0.0_0027" {
		t.Errorf("ota_finished data %v", fin.Data)
	}
	checkUpgraded(t, h, door, bridgetest.DoorNew, mark)
	// The ota topic says the same in the same format; the update entity keeps the release summary.
	waitOTA(t, h, door, "idle with the last update's versions", mark, func(st otaState) bool {
		return st.State == "idle" && st.FromVersion == "0x0000001a" && st.ToVersion == "0x0000001b" &&
			st.InstalledDisplayVersion == "0.0.0_0027"
	})
	waitUpdateState(t, h, door, "the release summary after the upgrade", mark, func(us bridgetest.UpdateState) bool {
		return us.InstalledVersion == "0x0000001b" && us.ReleaseSummary == "0.0.0_0027: Demo: lower battery drain while idle."
	})

	// Progress went up in steps while the transfer ran.
	pct := progressValues(t, h, door, mark)
	if len(pct) < 3 || pct[len(pct)-1] <= pct[0] {
		t.Errorf("update_percentage values %v: want several, increasing", pct)
	}
	// The light was never offered anything.
	if st := h.Device(bridgetest.LightIEEE).Status(); st.FileVersion != bridgetest.LightOld || st.Queries != 0 {
		t.Errorf("light: version 0x%08x after %d queries: nothing should have happened", st.FileVersion, st.Queries)
	}
}

func TestITUpdateFromHACommandTopic(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	light := bridgetest.LightIEEE

	dc := waitDiscovery(t, h.Rec, deviceConfigTopic(light), 0)
	waitUpdateState(t, h, light, "the light's update state", 0,
		func(us bridgetest.UpdateState) bool { return us.LatestVersion == "0x01010000" })
	up := dc.Components[discovery.ComponentUpdate]
	commandTopic, _ := up["command_topic"].(string)
	install, _ := up["payload_install"].(string)

	// What HA does when the user presses Install: publish payload_install on command_topic.
	mark := h.Rec.Mark()
	h.Rec.Publish(commandTopic, []byte(install), false)
	resp := h.Rec.WaitFor("the response to HA's install", h.Topic("bridge/response/device/ota_update/update"), mark, nil)
	if r, err := bridgetest.ParseResponse(resp); err != nil || r.Status != "ok" {
		t.Fatalf("response to HA's install: %s (%v)", resp.Payload, err)
	}
	h.Rec.WaitEvent(h.Base, "ota_started", light, mark)
	h.Rec.WaitEvent(h.Base, "ota_finished", light, mark)
	checkUpgraded(t, h, light, bridgetest.LightNew, mark)
	if pct := progressValues(t, h, light, mark); len(pct) == 0 {
		t.Errorf("no update_percentage while the light updated")
	}
	if st := h.Device(light).Status(); st.SWBuildID != "1.1.0" {
		t.Errorf("light SW build id %q after the upgrade, want 1.1.0", st.SWBuildID)
	}
}

func TestITAbort(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	cfg.OTA.MaxBlockSize = 32 // a longer transfer, so there is a middle to abort in
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{Speed: 10})
	light := bridgetest.LightIEEE
	waitDiscovery(t, h.Rec, deviceConfigTopic(light), 0)

	mark := h.Rec.Mark()
	ok(t, h.Request("device/ota_update/update", map[string]any{"id": light}))
	waitOTA(t, h, light, "progress past 10%", mark, func(st otaState) bool {
		return st.State == "updating" && st.Progress != nil && *st.Progress > 10
	})
	resp := h.Request("device/ota_update/abort", map[string]any{"id": light})
	ok(t, resp)
	if resp.Data["state"] != "failed" {
		t.Errorf("abort response data %v, want state failed", resp.Data)
	}
	h.Rec.WaitEvent(h.Base, "ota_aborted", light, mark)
	st := waitOTA(t, h, light, "state failed", mark, func(st otaState) bool { return st.State == "failed" })
	if st.LastError != "aborted" {
		t.Errorf("last_error %q, want aborted", st.LastError)
	}
	us := waitUpdateState(t, h, light, "an update state not in progress", mark,
		func(us bridgetest.UpdateState) bool { return !us.InProgress })
	if us.InstalledVersion != "0x01000000" || us.UpdatePercentage != nil {
		t.Errorf("update state after the abort %+v", us)
	}

	// The device got ABORT on its next block request and gave the download up; it keeps its old version.
	dev := waitSim(t, h, light, "download given up", func(s sim.DeviceStatus) bool { return s.State == sim.StateIdle })
	if dev.FileVersion != bridgetest.LightOld || dev.Upgrades != 0 || dev.Offset >= dev.ImageSize {
		t.Errorf("device after the abort: %+v", dev)
	}
	if dev.LastEndStatus != zcl.StatusAbort {
		t.Errorf("device's download ended with %s, want ABORT", dev.LastEndStatus)
	}
	// No finish and no failure event besides the abort.
	for _, m := range h.Rec.Messages(h.Topic("bridge/event"), mark) {
		if ev, _ := bridgetest.ParseEvent(m); ev.Type == "ota_finished" || ev.Type == "ota_failed" {
			t.Errorf("event %s after the abort", m.Payload)
		}
	}
	aborted := h.Rec.WaitEvent(h.Base, "ota_aborted", light, mark)
	if aborted.Data["reason"] != "aborted" || aborted.Data["to_version"] != "0x01010000" || aborted.Data["to_display_version"] != "1.1.0" {
		t.Errorf("ota_aborted data %v", aborted.Data)
	}

	// A check after the abort makes the image available again, and the aborted attempt's target is gone.
	mark = h.Rec.Mark()
	ok(t, h.Request("ota/check_all", map[string]any{}))
	st = waitOTA(t, h, light, "available after check_all", mark, func(st otaState) bool { return st.State == "available" })
	if st.Target != nil || st.LastError != "" || st.LatestVersion != "0x01010000" {
		t.Errorf("OTA state after abort and check_all: %+v (target %+v), want no target, no error", st, st.Target)
	}
}

// Unschedule is a cancellation: ota_aborted (reason unscheduled), then the image is available again.
func TestITUnschedule(t *testing.T) {
	skipShort(t)
	h, light := startWithLightOnly(t, bridgetest.Options{})

	ok(t, h.Request("device/ota_update/schedule", map[string]any{"id": light}))
	waitOTA(t, h, light, "scheduled", 0, func(st otaState) bool { return st.State == "scheduled" })
	mark := h.Rec.Mark()
	ok(t, h.Request("device/ota_update/unschedule", map[string]any{"id": light}))
	ev := h.Rec.WaitEvent(h.Base, "ota_aborted", light, mark)
	if ev.Data["reason"] != "unscheduled" || ev.Data["to_version"] != "0x01010000" {
		t.Errorf("ota_aborted data %v", ev.Data)
	}
	h.Rec.WaitEvent(h.Base, "ota_available", light, mark)
	st := waitOTA(t, h, light, "available", mark, func(st otaState) bool { return st.State == "available" })
	if st.Target != nil {
		t.Errorf("target %+v after unschedule", st.Target)
	}
}

// startLightTransfer starts the bridge on cfg (32-byte blocks, 20× real time), starts the light's update and
// returns once its progress is past pct; mark is where the update request began.
func startLightTransfer(t *testing.T, cfg bridge.Config, pct float64) (h *bridgetest.Harness, mark int) {
	t.Helper()
	cfg.OTA.MaxBlockSize = 32
	h = bridgetest.Start(t, nil, cfg, bridgetest.Options{Speed: 20})
	light := bridgetest.LightIEEE
	waitDiscovery(t, h.Rec, deviceConfigTopic(light), 0)
	mark = h.Rec.Mark()
	ok(t, h.Request("device/ota_update/update", map[string]any{"id": light}))
	waitOTA(t, h, light, fmt.Sprintf("progress past %g%%", pct), mark, func(st otaState) bool {
		return st.State == "updating" && st.Progress != nil && *st.Progress > pct
	})
	return h, mark
}

func TestITBrokerRestartMidTransfer(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	h, mark := startLightTransfer(t, cfg, 20)
	light := bridgetest.LightIEEE

	// The broker goes away: the OTA traffic does not depend on MQTT, the download goes on meanwhile.
	h.Broker.Stop()
	offline := h.Device(light).Status().Offset
	waitSim(t, h, light, "download progress while the broker is down", func(s sim.DeviceStatus) bool {
		return s.Offset > offline+1024 || s.FileVersion == bridgetest.LightNew
	})
	// It comes back empty (no persistence).
	h.Broker.StartAgain()
	dev := waitSim(t, h, light, "the new version", func(s sim.DeviceStatus) bool { return s.FileVersion == bridgetest.LightNew })
	if dev.Upgrades != 1 || dev.Failures != 0 || dev.Restarts != 0 {
		t.Errorf("device after the outage: %d upgrades, %d failed downloads, %d restarts; want 1, 0, 0",
			dev.Upgrades, dev.Failures, dev.Restarts)
	}
	// The test's own recorder reconnected too and sees the new version (events published while the broker
	// was away are gone; retained state is sent again after the reconnect).
	h.Rec.WaitFor("the new version after the outage", h.Topic(light+"/update"), mark, func(m bridgetest.Message) bool {
		us, err := bridgetest.CheckUpdateState(m.Payload)
		return err == nil && us.InstalledVersion == "0x01010000"
	})

	// After the reconnect the broker holds the bridge's current retained state again: a new client gets it.
	late := bridgetest.NewRecorder(t, h.Broker.URL())
	m := late.WaitFor("the retained update state", h.Topic(light+"/update"), 0, nil)
	us, err := bridgetest.CheckUpdateState(m.Payload)
	if err != nil || !m.Retained || us.InstalledVersion != "0x01010000" || us.LatestVersion != "0x01010000" || us.InProgress {
		t.Errorf("retained update state after the broker restart: %s (retained %v, %v)", m.Payload, m.Retained, err)
	}
	late.WaitFor("bridge/state online", h.Topic("bridge/state"), 0, func(m bridgetest.Message) bool {
		return m.Retained && string(m.Payload) == `{"state":"online"}`
	})
	late.WaitFor("bridge/info without active transfers", h.Topic("bridge/info"), 0, func(m bridgetest.Message) bool {
		return bridgetest.Field(m, "active_transfers") == float64(0) && bridgetest.Field(m, "radio_state") == "online"
	})
	for _, m := range h.Rec.Messages(h.Topic("bridge/event"), mark) {
		if ev, _ := bridgetest.ParseEvent(m); ev.Type == "ota_failed" || ev.Type == "ota_aborted" {
			t.Errorf("event %s during the broker outage test", m.Payload)
		}
	}
}

// startWithLightOnly starts the bridge on the repository's configuration with only the ESP32-C6 light and
// waits for its discovery; it returns the harness and the light's IEEE address.
func startWithLightOnly(t *testing.T, opts bridgetest.Options) (*bridgetest.Harness, string) {
	t.Helper()
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	h := bridgetest.Start(t, nil, cfg, opts)
	waitDiscovery(t, h.Rec, deviceConfigTopic(bridgetest.LightIEEE), 0)
	return h, bridgetest.LightIEEE
}

// A normal start and stop logs what happened once and nothing that is not a problem: a refused image once
// (not twice), no "outage" flush when there was no outage, no closed-connection warning at the stop.
func TestITStartAndStopLogs(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	good, err := os.ReadFile(filepath.Join(cfg.Images.Folder, "esp32c6-light-1.1.0.ota"))
	require.NoError(t, err)
	// A file whose header promises more bytes than it has: refused.
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Images.Folder, "truncated.ota"), good[:len(good)/2], 0o644))
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	waitDiscovery(t, h.Rec, deviceConfigTopic(bridgetest.LightIEEE), 0)
	h.Stop()
	log := h.Log()
	assert.Equal(t, 1, strings.Count(log, `"message":"image refused"`), "image refused once per start:\n%s", log)
	assert.Contains(t, log, "truncated.ota")
	assert.NotContains(t, log, "outage")
	assert.NotContains(t, log, "use of closed network connection")
}
