package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// importFixture writes a config (simulated existing network) and a Zigbee2MQTT data directory whose backup
// is on channel `channel`; database is database.db's content.
func importFixture(t *testing.T, channel int, database string) (cfgPath, z2mDir, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	dataDir, z2mDir = filepath.Join(dir, "data"), filepath.Join(dir, "z2m")
	images := filepath.Join(dir, "images")
	for _, d := range []string{z2mDir, images} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath = filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf(`radio:
  type: sim
  sim:
    existing: true
    link: {mode: fast}
    devices:
      - {ieee: "0x00124b0000000001", nwk: 0x1001, model: ESP32C6.Light}
mqtt: {server: "mqtt://127.0.0.1:1"}
images: {folder: %q}
data_dir: %q
`, images, dataDir)
	files := map[string]string{
		cfgPath:                              cfg,
		filepath.Join(z2mDir, "database.db"): database,
		filepath.Join(z2mDir, "configuration.yaml"): "devices:\n  '0x00124b0000000001':\n    friendly_name: kitchen light\n",
		filepath.Join(z2mDir, "coordinator_backup.json"): fmt.Sprintf(`{"metadata":{"format":"zigpy/open-coordinator-backup","version":1},`+
			`"pan_id":"1a62","extended_pan_id":"dddddddddddddddd","channel":%d}`, channel),
	}
	for p, body := range files {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cfgPath, z2mDir, dataDir
}

const importDatabase = `{"id":1,"type":"Coordinator","ieeeAddr":"0x00124b00c0dec0de","nwkAddr":0}
{"id":2,"type":"Router","ieeeAddr":"0x00124b0000000001","nwkAddr":4097,"manufId":4891,"manufName":"Espressif","modelId":"ESP32C6.Light","powerSource":"Mains (single phase)","endpoints":{"1":{"epId":1,"outClusterList":[25]}}}
`

// Issue 18.2: `otabridge import z2m DIR` checks the stick's network, then writes the devices into the state
// file; a damaged file or another network's backup is refused with a clear error and nothing is written.
func TestCmdImportZ2M(t *testing.T) {
	cfgPath, z2mDir, dataDir := importFixture(t, 15, importDatabase)
	var out, errb syncWriter
	if code := runMain([]string{"import", "z2m", z2mDir, "--config", cfgPath}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "imported 1 devices") {
		t.Errorf("output %q", out.String())
	}
	state, err := os.ReadFile(filepath.Join(dataDir, "state.json"))
	if err != nil || !strings.Contains(string(state), `"friendly_name": "kitchen light"`) && !strings.Contains(string(state), `"friendly_name":"kitchen light"`) {
		t.Fatalf("state file after the import: %v %s", err, state)
	}

	for _, c := range []struct {
		name     string
		channel  int
		database string
		want     string
	}{
		{"damaged database", 15, importDatabase[:120], "database.db: line 2: not a JSON device record"},
		{"another network", 20, importDatabase, "channel: the stick's is 15, the backup's 20"},
	} {
		cfgPath, z2mDir, dataDir := importFixture(t, c.channel, c.database)
		out.Reset()
		errb.Reset()
		if code := runMain([]string{"import", "z2m", z2mDir, "--config", cfgPath}, &out, &errb); code != 1 {
			t.Errorf("%s: exit %d, want 1", c.name, code)
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%s: error %q does not say %q", c.name, errb.String(), c.want)
		}
		if _, err := os.Stat(filepath.Join(dataDir, "state.json")); err == nil {
			t.Errorf("%s: a refused import wrote the state file", c.name)
		}
	}
	if code := runMain([]string{"import", "deconz", "x"}, &out, &errb); code != 2 {
		t.Errorf("unknown source: exit %d, want 2", code)
	}
}
