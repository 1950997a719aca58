package bridge_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/ncp/sim"
)

// existingConfig is config.yaml with the simulated network started "existing" (devices joined, silent,
// unknown to the coordinator's address table) with n mixed devices 1-4 hops away.
func existingConfig(t *testing.T, n int) bridge.Config {
	cfg := bridgetest.RepoConfig(t)
	cfg.Radio.Sim.Existing = true
	cfg.Radio.Sim.Devices = sim.MeshDevices(n, 4)
	return cfg
}

// Issue 18.1/18.5: on a resumed network nobody announces. The first start on a network otabridge did not form
// scans it by itself: every one of 50 devices (routers and sleepy end devices, 1-4 hops) is found,
// interviewed and shown in HA, within a bounded simulated time.
func TestITExistingNetworkFoundWithoutImport(t *testing.T) {
	skipShort(t)
	const count = 50
	cfg := existingConfig(t, count)
	hops := map[int]int{}
	sleepy := 0
	for _, d := range cfg.Radio.Sim.Devices {
		hops[d.Hops]++
		if d.Power == sim.PowerBattery {
			sleepy++
		}
	}
	if len(hops) != 4 || sleepy == 0 || sleepy == count {
		t.Fatalf("network not mixed: hops %v, %d sleepy", hops, sleepy)
	}
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{Speed: 200})
	fin := h.Rec.WaitFor("the automatic scan's end", h.Topic("bridge/event"), 0, func(m bridgetest.Message) bool {
		ev, ok := bridgetest.ParseEvent(m)
		return ok && ev.Type == "network_scan" && ev.Data["state"] == "finished"
	})
	ev, _ := bridgetest.ParseEvent(fin)
	if got := ev.Data["devices"]; got != float64(count) {
		t.Fatalf("scan listed %v devices, want %d: %s", got, count, fin.Payload)
	}
	scanDone := h.Net.Clock().Elapsed()
	for _, d := range cfg.Radio.Sim.Devices {
		dc := waitDiscovery(t, h.Rec, deviceConfigTopic(d.IEEE.String()), 0)
		if dc.Device["model"] != d.Model {
			t.Errorf("%s shown in HA with model %v, want %q", d.IEEE, dc.Device["model"], d.Model)
		}
	}
	all := h.Net.Clock().Elapsed()
	t.Logf("50 devices (%v by hops, %d sleepy): scan finished at %s simulated, all interviewed and in HA at %s simulated (%d requests)",
		hops, sleepy, scanDone.Round(time.Second), all.Round(time.Second), int(ev.Data["requests"].(float64)))
	if all > 15*time.Minute {
		t.Errorf("finding the network took %s simulated, want at most 15 min", all)
	}
	// Recorded: the network was not formed by otabridge, and it was scanned.
	var rec map[string]any
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, bridge.NetworkRecordFile))
	if err != nil || json.Unmarshal(b, &rec) != nil {
		t.Fatalf("network record: %v %s", err, b)
	}
	if rec["formed_by_otabridge"] != false || rec["scanned_at"] == nil {
		t.Errorf("network record %s: want formed_by_otabridge false and scanned_at set", b)
	}
}

// writeZ2MDataDir writes a Zigbee2MQTT data directory that knows the simulated devices (database.db as
// zigbee-herdsman writes it, friendly names in configuration.yaml, coordinator_backup.json of the network
// on channel `channel`).
func writeZ2MDataDir(t *testing.T, devs []sim.DeviceConfig, channel int) string {
	t.Helper()
	dir := t.TempDir()
	var db, names strings.Builder
	db.WriteString(`{"id":1,"type":"Coordinator","ieeeAddr":"0x00124b00c0dec0de","nwkAddr":0,"epList":[],"endpoints":{}}` + "\n")
	names.WriteString("homeassistant: true\ndevices:\n")
	for i, d := range devs {
		typ, power := "Router", "Mains (single phase)"
		if d.Power == sim.PowerBattery {
			typ, power = "EndDevice", "Battery"
		}
		rec := map[string]any{"id": i + 2, "type": typ, "ieeeAddr": d.IEEE.String(), "nwkAddr": d.NWK, "manufId": d.ManufacturerCode,
			"manufName": d.Manufacturer, "powerSource": power, "modelId": d.Model, "epList": []int{1},
			"endpoints": map[string]any{"1": map[string]any{"profId": 260, "epId": 1, "inClusterList": []int{0}, "outClusterList": []int{25},
				"clusters": map[string]any{"genOta": map[string]any{"attributes": map[string]any{
					"currentFileVersion": d.FileVersion, "imageTypeID": d.ImageType, "manufacturerID": d.ManufacturerCode}}}}},
			"interviewCompleted": true}
		line, _ := json.Marshal(rec)
		db.Write(append(line, '\n'))
		fmt.Fprintf(&names, "  '%s':\n    friendly_name: z2m device %d\n", d.IEEE, i)
	}
	backup := fmt.Sprintf(`{"metadata":{"format":"zigpy/open-coordinator-backup","version":1,"source":"zigbee-herdsman@10.9.5"},
"coordinator_ieee":"dec0dec0004b1200","pan_id":"1a62","extended_pan_id":"dddddddddddddddd","channel":%d,"channel_mask":[%d],
"network_key":{"key":"01030507090b0d0f00020406080a0c0d","sequence_number":0,"frame_counter":0},"devices":[]}`, channel, channel)
	for name, body := range map[string]string{"database.db": db.String(), "configuration.yaml": names.String(), "coordinator_backup.json": backup} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Issue 18.2: with a Zigbee2MQTT import, names and models appear at once (before any interview) and the light
// upgrades at once, on the same silent 50-device network.
func TestITExistingNetworkWithZ2MImport(t *testing.T) {
	skipShort(t)
	cfg := existingConfig(t, 50)
	cfg.Existing.Import = bridge.ImportConfig{Source: "z2m", Path: writeZ2MDataDir(t, cfg.Radio.Sim.Devices, 15)}
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	h.Rec.WaitFor("import_applied", h.Topic("bridge/event"), 0, func(m bridgetest.Message) bool {
		ev, ok := bridgetest.ParseEvent(m)
		return ok && ev.Type == "import_applied" && ev.Data["devices"] == float64(50)
	})
	light := cfg.Radio.Sim.Devices[0]
	dc := waitDiscovery(t, h.Rec, deviceConfigTopic(light.IEEE.String()), 0)
	shownAt := h.Net.Clock().Elapsed()
	if dc.Device["model"] != light.Model || dc.Device["name"] != "z2m device 0" {
		t.Fatalf("light shown as %v / %v, want the imported name and model", dc.Device["name"], dc.Device["model"])
	}
	// At once: every device is in HA before the network scan has read a single neighbor table.
	firstProgress := h.Rec.WaitFor("scan progress", h.Topic("bridge/event"), 0, func(m bridgetest.Message) bool {
		ev, ok := bridgetest.ParseEvent(m)
		return ok && ev.Type == "network_scan" && ev.Data["state"] == "progress"
	})
	for _, d := range cfg.Radio.Sim.Devices {
		m := h.Rec.WaitFor("discovery", deviceConfigTopic(d.IEEE.String()), 0, nil)
		if m.Seq > firstProgress.Seq {
			t.Errorf("%s appeared in HA only after the scan began (message #%d, scan progress #%d)", d.IEEE, m.Seq, firstProgress.Seq)
		}
	}
	mark := h.Rec.Mark()
	ok(t, h.Request("device/ota_update/update", map[string]any{"id": "z2m device 0"}))
	h.Rec.WaitEvent(h.Base, "ota_finished", light.IEEE.String(), mark)
	t.Logf("all 50 imported devices in HA before the scan read a table (light's config seen at %s simulated); light upgraded by %s simulated",
		shownAt.Round(time.Second), h.Net.Clock().Elapsed().Round(time.Second))
	if got := h.Device(light.IEEE.String()).Status().FileVersion; got != bridgetest.LightNew {
		t.Errorf("light runs 0x%08x after the upgrade, want 0x%08x", got, bridgetest.LightNew)
	}
}

// Issue 18.2: a backup of another network (here another channel) is refused, naming the difference, and
// nothing is imported.
func TestITExistingImportOfAnotherNetworkRefused(t *testing.T) {
	skipShort(t)
	cfg := existingConfig(t, 3)
	cfg.Existing.Import = bridge.ImportConfig{Source: "z2m", Path: writeZ2MDataDir(t, cfg.Radio.Sim.Devices, 20)}
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	m := h.Rec.WaitFor("import_refused", h.Topic("bridge/event"), 0, func(m bridgetest.Message) bool {
		ev, ok := bridgetest.ParseEvent(m)
		return ok && ev.Type == "import_refused"
	})
	if !strings.Contains(string(m.Payload), "channel: the stick's is 15, the backup's 20") {
		t.Errorf("refusal does not name the difference: %s", m.Payload)
	}
	last, _ := h.Rec.Last(h.Topic("bridge/devices"))
	if strings.Contains(string(last.Payload), "z2m device") {
		t.Errorf("a refused import changed the devices: %s", last.Payload)
	}
}

// Issue 18.1: on a network already scanned (no automatic scan), a frame from a short address nobody
// announced is not dropped: the bridge resolves it (ZDO IEEE_addr_req), interviews the device and serves it.
func TestITUnknownSenderResolvedAndInterviewed(t *testing.T) {
	skipShort(t)
	cfg := existingConfig(t, 0)
	light := sim.MeshDevices(1, 1)[0]
	light.Profile, light.QueryInterval = sim.ProfilePeriodic, time.Minute
	cfg.Radio.Sim.Devices = []sim.DeviceConfig{light}
	rec := `{"channel":15,"pan_id":6754,"extended_pan_id":"0xdddddddddddddddd","formed_by_otabridge":false,` +
		`"first_seen":"2026-01-01T00:00:00Z","scanned_at":"2026-01-01T00:00:00Z"}`
	if err := os.WriteFile(filepath.Join(cfg.DataDir, bridge.NetworkRecordFile), []byte(rec), 0o644); err != nil {
		t.Fatal(err)
	}
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	ev := h.Rec.WaitEvent(h.Base, "device_found", light.IEEE.String(), 0)
	if ev.Data["how"] != "resolve" {
		t.Errorf("device found by %v, want resolve: %v", ev.Data["how"], ev.Data)
	}
	dc := waitDiscovery(t, h.Rec, deviceConfigTopic(light.IEEE.String()), 0)
	if dc.Device["model"] != light.Model {
		t.Errorf("resolved device shown with model %v, want %s", dc.Device["model"], light.Model)
	}
	if _, scanned := h.Rec.TryWaitFor(10*time.Millisecond, h.Topic("bridge/event"), 0, func(m bridgetest.Message) bool {
		e, ok := bridgetest.ParseEvent(m)
		return ok && e.Type == "network_scan"
	}); scanned {
		t.Error("a scan ran on a network already scanned")
	}
}
