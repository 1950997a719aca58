package bridge_test

import (
	"encoding/json"
	"os"
	"path/filepath"
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
