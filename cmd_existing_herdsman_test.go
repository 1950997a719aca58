package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/bridge/brokertest"
	"github.com/otabridge/otabridge/ota"
)

// runHarnessScenario runs test/herdsman/harness.mjs with --scenario on the port and DIR and returns its steps;
// a failed step fails the test.
func runHarnessScenario(t *testing.T, node, port, scenario, dir string) []stepResult {
	t.Helper()
	devicesJSON, err := json.Marshal(conformanceDevices)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	n := conformanceNetwork
	cmd := exec.CommandContext(ctx, node, "harness.mjs", "--scenario", scenario, "--port", port, "--adapter", "ember", "--dir", dir,
		"--channel", fmt.Sprint(n.Channel), "--pan-id", fmt.Sprintf("0x%04x", n.PANID),
		"--ext-pan-id", fmt.Sprintf("%016x", uint64(n.ExtendedPANID)), "--network-key", n.NetworkKey.String(),
		"--devices", string(devicesJSON))
	cmd.Dir = herdsmanDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var results []stepResult
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r stepResult
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue
		}
		results = append(results, r)
		if !r.OK && !r.Done {
			t.Errorf("herdsman %s: step %q failed: %s\n  %s", scenario, r.Step, r.Error, strings.Join(r.Frames, "\n  "))
		} else if r.Step != "" {
			t.Logf("herdsman %s: %s: %s", scenario, r.Step, r.Detail)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("herdsman %s: harness exited: %v\n%s", scenario, err, tail(stderr.String(), 3000))
	}
	return results
}

// writeUpgradeImage writes an OTA file for conformance device i at version into dir.
func writeUpgradeImage(t *testing.T, dir string, i int, version uint32) {
	t.Helper()
	h := ota.Header{ManufacturerCode: conformanceManufacturer, ImageType: conformanceImageType(i), FileVersion: version, StackVersion: 2}
	copy(h.HeaderString[:], fmt.Sprintf("handover test %d", i))
	file, err := ota.Build(h, []ota.BuildElement{{Tag: ota.TagUpgradeImage, Data: []byte(strings.Repeat(fmt.Sprintf("firmware %d ", i), 150))}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("device-%d.ota", i)), file, 0o644))
}

// Issue 18.3: the stick is shared. zigbee-herdsman 10.9.5 (ember adapter, as Zigbee2MQTT runs it) forms the
// network and interviews every device; otabridge then runs on the same stick with herdsman's data directory
// imported, upgrades two devices, and stops; herdsman starts again on the stick and resumes the same network
// with every device present and answering (the upgraded ones at their new versions).
func TestHerdsmanResumesAfterOtabridge(t *testing.T) {
	if testing.Short() {
		t.Skip("herdsman handover: -short")
	}
	node := herdsmanAvailable(t)
	port, stick := startConformanceStick(t, 13)
	z2mDir := t.TempDir()
	runHarnessScenario(t, node, port, "build", z2mDir)
	if t.Failed() {
		return
	}

	// otabridge takes the stick, importing what herdsman knows.
	broker := brokertest.New(t)
	rec := bridgetest.NewRecorder(t, broker.URL())
	images := t.TempDir()
	upgraded := map[int]uint32{0: conformanceDevices[0].FileVersion + 1, 1: conformanceDevices[1].FileVersion + 1}
	for i, v := range upgraded {
		writeUpgradeImage(t, images, i, v)
	}
	dataDir := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`radio: {type: ezsp, port: %q}
mqtt: {server: %q, client_id: otabridge-handover, base_topic: otabridge}
images: {folder: %q}
data_dir: %q
existing: {import: {source: z2m, path: %q}}
`, port, broker.URL(), images, dataDir, z2mDir)), 0o600))
	cfg, err := bridge.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	logs := &syncWriter{}
	b, err := bridge.New(cfg, bridge.Options{Version: "handover", Log: zerolog.New(logs).Level(zerolog.InfoLevel), HealthInterval: -1})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stopBridge := func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("otabridge did not stop")
		}
	}
	defer func() {
		if ctx.Err() == nil {
			stopBridge()
		}
		if t.Failed() {
			t.Logf("otabridge log:\n%s", tail(logs.String(), 20000))
		}
	}()
	rec.WaitFor("the import", "otabridge/bridge/event", 0, func(m bridgetest.Message) bool {
		ev, ok := bridgetest.ParseEvent(m)
		return ok && ev.Type == "import_applied" && ev.Data["devices"] == float64(len(conformanceDevices))
	})
	rec.WaitBridgeReady("otabridge")
	mark := rec.Mark()
	for i := range upgraded {
		resp := rec.Request("otabridge", "device/ota_update/update", map[string]any{"id": conformanceDevices[i].IEEE})
		require.Equal(t, "ok", resp.Status, "update %s: %s", conformanceDevices[i].IEEE, resp.Payload)
	}
	for i := range upgraded {
		rec.WaitEvent("otabridge", "ota_finished", conformanceDevices[i].IEEE, mark)
	}
	stopBridge()
	if n := stick.Commands()["formNetwork"]; n != 1 {
		t.Errorf("formNetwork sent %d times over the whole handover, want 1 (herdsman's)", n)
	}
	for _, c := range []string{"leaveNetwork", "setInitialSecurityState"} {
		if n := stick.Commands()[c]; n > 1 {
			t.Errorf("%s sent %d times: otabridge changed the network", c, n)
		}
	}

	// herdsman takes the stick back.
	results := runHarnessScenario(t, node, port, "resume", z2mDir)
	for _, r := range results {
		for i, v := range upgraded {
			if r.Step == "present "+conformanceDevices[i].IEEE && !strings.Contains(r.Detail, fmt.Sprintf(`"currentFileVersion":%d`, v)) {
				t.Errorf("%s after the handover: %s, want currentFileVersion %d", conformanceDevices[i].IEEE, r.Detail, v)
			}
		}
	}
	if got := len(reachedSteps(results)); got != len(conformanceDevices)+2 {
		t.Errorf("herdsman resume reached %d steps, want %d", got, len(conformanceDevices)+2)
	}
}

// syncWriter is a buffer several goroutines write to (the bridge logs from several).
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *syncWriter) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
}
