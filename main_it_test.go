package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/bridge/brokertest"
)

// Integration tests of the real binary, run the way a user runs it: `go build` once (TestMain), then
// `otabridge run` as a subprocess on the simulated network, driven over MQTT.

// otabridgeBin is the binary built by TestMain ("" when the build was skipped: -short).
var otabridgeBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if !isShort() {
		dir, err := os.MkdirTemp("", "otabridge-it-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "main_it_test: temp dir:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		otabridgeBin = filepath.Join(dir, "otabridge")
		build := exec.Command("go", "build", "-o", otabridgeBin, ".")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "main_it_test: go build: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// isShort reads -test.short before m.Run parses the flags.
func isShort() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" || a == "--test.short" || a == "--test.short=true" {
			return true
		}
	}
	return false
}

// bridgeProcess is one `otabridge` subprocess; the test that starts it owns it (killed at the end).
type bridgeProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	state   *os.ProcessState
	mu      sync.Mutex
}

// startBinary runs the built binary with args in dir, with env added to an environment cleared of
// OTABRIDGE_* variables; stdout and stderr go to a log file that is printed when the test fails.
func startBinary(t *testing.T, dir, name string, env []string, args ...string) *bridgeProcess {
	t.Helper()
	if otabridgeBin == "" {
		t.Skip("integration test: skipped with -short")
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(otabridgeBin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTABRIDGE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", otabridgeBin, err)
	}
	p := &bridgeProcess{t: t, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { // owned by p: ends when the process exits
		_ = cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() || os.Getenv("BRIDGETEST_LOG") != "" {
			b, _ := os.ReadFile(logPath)
			if len(b) > 48<<10 {
				b = b[len(b)-48<<10:]
			}
			t.Logf("%s log (%s, last 48 KiB):\n%s", name, logPath, b)
		}
	})
	return p
}

// kill sends SIGKILL and waits for the exit.
func (p *bridgeProcess) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits (at most 30 s, a failure guard) for a clean exit.
func (p *bridgeProcess) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("otabridge did not exit within 30s of SIGTERM")
		p.kill()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.state.Success() {
		p.t.Errorf("otabridge exited with %v after SIGTERM, want 0", p.state)
	}
}

// lightConfig is a configuration with the ESP32-C6 light of config.yaml only.
const lightConfig = `radio:
  type: sim
  sim_speed: %g
  sim:
    seed: 7
    link: {mode: realistic}
    devices:
      - ieee: "0x00124b0000000001"
        model: ESP32C6.Light
        manufacturer: Espressif
        manufacturer_code: 0x131b
        image_type: 0x0001
        hardware_version: 1
        file_version: 0x01000000
        sw_build_id: "1.0.0"
        new_sw_build_id: "1.1.0"
        power: mains
        profile: esp-v2
mqtt:
  server: %s
  client_id: %s
ota:
  max_block_size: %d
images:
  folder: %s
  indexes: [index.json]
data_dir: %s
log:
  level: info
  format: json
`

// durableOTA is the light's record in the state file (bridge.persistedState.ota).
type durableOTA struct {
	IEEE      string `json:"ieee"`
	State     string `json:"state"`
	HighWater uint32 `json:"high_water"`
	StartedAt string `json:"started_at"`
	To        uint32 `json:"to_version"`
}

// readDurable returns the device's OTA record in dataDir/state.json (ok false when there is none yet).
func readDurable(t *testing.T, dataDir, ieee string) (durableOTA, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "state.json"))
	if err != nil {
		return durableOTA{}, false
	}
	var st struct {
		OTA struct {
			Devices []durableOTA `json:"devices"`
		} `json:"ota"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state.json is not valid JSON (it is written atomically): %v", err)
	}
	for _, d := range st.OTA.Devices {
		if d.IEEE == ieee {
			return d, true
		}
	}
	return durableOTA{}, false
}

type otaTopicState struct {
	State     string   `json:"state"`
	Progress  *float64 `json:"progress"`
	Bytes     uint32   `json:"bytes"`
	Size      uint32   `json:"size"`
	StartedAt *string  `json:"started_at"`
}

func parseOTATopic(m bridgetest.Message) (otaTopicState, bool) {
	var st otaTopicState
	return st, json.Unmarshal(m.Payload, &st) == nil && st.State != ""
}

// TestITKillMidTransfer kills the bridge with SIGKILL in the middle of a transfer and starts it again with
// the same data directory. The simulated network lives in the bridge process, so the restarted bridge has a
// fresh network whose light boots at its old version and has lost its download; what must survive is the
// bridge's own state: the approval, the target image, the transfer's record (state updating, start time,
// progress). The restarted bridge must finish the upgrade of the rebooted light with no new request.
func TestITKillMidTransfer(t *testing.T) {
	if otabridgeBin == "" {
		t.Skip("integration test: skipped with -short")
	}
	broker := brokertest.New(t)
	rec := bridgetest.NewRecorder(t, broker.URL())
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	images := bridgetest.CopyImages(t, filepath.Join(bridgetest.RepoRoot(), "images"))
	cfgPath := filepath.Join(dir, "config.yaml")
	// 32-byte blocks at 10× real time: a transfer of a few seconds, with a middle to kill it in.
	cfg := fmt.Sprintf(lightConfig, 10.0, broker.URL(), "otabridge-kill-test", 32, images, dataDir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	const base, light = bridgetest.BaseTopic, bridgetest.LightIEEE
	otaTopic, updateTopic := base+"/"+light+"/ota", base+"/"+light+"/update"
	testStart := time.Now()

	first := startBinary(t, dir, "first", nil, "run", "--config", cfgPath)
	rec.WaitFor("the light's update state", updateTopic, 0, func(m bridgetest.Message) bool {
		return bridgetest.Field(m, "latest_version") == "0x01010000"
	})
	rec.WaitBridgeReady(base)
	mark := rec.Mark()
	if resp := rec.Request(base, "device/ota_update/update", map[string]any{"id": light}); resp.Status != "ok" {
		t.Fatalf("update: %s", resp.Payload)
	}
	rec.WaitFor("progress past 30%", otaTopic, mark, func(m bridgetest.Message) bool {
		st, ok := parseOTATopic(m)
		return ok && st.State == "updating" && st.Progress != nil && *st.Progress > 30
	})
	// Kill once the state file (written at most every 500 ms) has recorded progress past 30 %.
	deadline := time.Now().Add(bridgetest.DefaultTimeout)
	for {
		d, ok := readDurable(t, dataDir, light)
		if ok && d.State == "updating" && d.HighWater > 0 {
			if size := uint32(41026); d.HighWater*100 > 30*size {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the state file never recorded the transfer past 30%%: %+v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.kill()
	onDisk, ok := readDurable(t, dataDir, light)
	if !ok || onDisk.State != "updating" || onDisk.HighWater == 0 || onDisk.HighWater >= 41026 || onDisk.StartedAt == "" {
		t.Fatalf("state file after SIGKILL: %+v, want a transfer in the middle", onDisk)
	}
	if onDisk.To != bridgetest.LightNew {
		t.Errorf("state file: target version 0x%08x, want 0x%08x", onDisk.To, bridgetest.LightNew)
	}
	t.Logf("killed with %d of 41026 bytes recorded", onDisk.HighWater)

	// The broker publishes the last will.
	rec.WaitFor("the last will", base+"/bridge/state", mark, func(m bridgetest.Message) bool {
		return string(m.Payload) == `{"state":"offline"}`
	})
	restart := rec.Mark()
	second := startBinary(t, dir, "second", nil, "run", "--config", cfgPath)
	rec.WaitFor("online again", base+"/bridge/state", restart, func(m bridgetest.Message) bool {
		return string(m.Payload) == `{"state":"online"}`
	})
	// The restored state: the transfer as it was on disk (updating, same start). Its bytes are the saved
	// progress, or already the offset the device asks for now: the simulated light is a new process that
	// starts its download again, and on a busy machine its first requests can come before the bridge's MQTT
	// connection, so the first state published may show that offset.
	m := rec.WaitFor("the restored OTA state", otaTopic, restart, nil)
	st, _ := parseOTATopic(m)
	if st.State != "updating" || st.StartedAt == nil || *st.StartedAt != onDisk.StartedAt || st.Size != 41026 || st.Progress == nil {
		t.Errorf("first OTA state after the restart %s: want updating since %s", m.Payload, onDisk.StartedAt)
	}
	t.Logf("first state after the restart: %d of 41026 bytes (%d saved)", st.Bytes, onDisk.HighWater)
	// The restarted bridge finishes the upgrade by itself: no request is sent after the restart.
	fin := rec.WaitEvent(base, "ota_finished", light, restart)
	if fin.Data["from_version"] != "0x01000000" || fin.Data["to_version"] != "0x01010000" {
		t.Errorf("ota_finished data %v", fin.Data)
	}
	// The duration spans the restart and is never negative, though the simulated network's virtual clock
	// started again at its epoch.
	if secs, ok := fin.Data["seconds"].(float64); !ok || secs < 0 {
		t.Errorf("ota_finished seconds %v: want a duration ≥ 0", fin.Data["seconds"])
	}
	// What users see is wall-clock time, not the simulated network's virtual clock.
	checkWallClockTimes(t, rec, base, light, testStart)
	rec.WaitFor("the new version", updateTopic, restart, func(m bridgetest.Message) bool {
		us, err := bridgetest.CheckUpdateState(m.Payload)
		return err == nil && us.InstalledVersion == "0x01010000" && us.LatestVersion == "0x01010000" && !us.InProgress
	})
	for _, m := range rec.Messages(base+"/bridge/event", restart) {
		if ev, _ := bridgetest.ParseEvent(m); ev.Type == "ota_failed" || ev.Type == "approval_needed" {
			t.Errorf("event after the restart: %s", m.Payload)
		}
	}
	if err := bridgetest.CheckAllUpdateStates(rec, base); err != nil {
		t.Error(err)
	}
	second.stop()
	rec.WaitFor("the offline state", base+"/bridge/state", restart, func(m bridgetest.Message) bool {
		return string(m.Payload) == `{"state":"offline"}`
	})
}

// TestITGoRun runs the binary the way README.md's quick start does (`go run .`: no arguments, the
// repository's config.yaml and images/ in the working directory, the embedded broker), with the embedded
// broker's port and the simulation speed overridden from the environment, and publishes README's request.
func TestITGoRun(t *testing.T) {
	if otabridgeBin == "" {
		t.Skip("integration test: skipped with -short")
	}
	dir, proc, rec := startGoRun(t)
	const light = goRunLight
	// README: mosquitto_pub -t otabridge/bridge/request/device/ota_update/update -m '{"id":"0x00124b0000000001"}'
	mark := rec.Mark()
	rec.Publish("otabridge/bridge/request/device/ota_update/update", []byte(`{"id":"0x00124b0000000001"}`), false)
	resp := rec.WaitFor("the response", "otabridge/bridge/response/device/ota_update/update", mark, nil)
	if r, err := bridgetest.ParseResponse(resp); err != nil || r.Status != "ok" {
		t.Fatalf("response: %s", resp.Payload)
	}
	rec.WaitEvent("otabridge", "ota_finished", light, mark)
	rec.WaitFor("the new version", "otabridge/"+light+"/update", mark, func(m bridgetest.Message) bool {
		us, err := bridgetest.CheckUpdateState(m.Payload)
		return err == nil && us.InstalledVersion == "0x01010000" && us.LatestVersion == "0x01010000" && !us.InProgress
	})
	if err := bridgetest.CheckAllUpdateStates(rec, "otabridge"); err != nil {
		t.Error(err)
	}
	proc.stop()
	if _, err := os.Stat(filepath.Join(dir, "data", "state.json")); err != nil {
		t.Errorf("no state file in the working directory's data/: %v", err)
	}
}

// goRunLight is the demo light of config.yaml.
const goRunLight = "0x00124b0000000001"

// startGoRun starts the binary as `go run .` runs (see goRunDir), with the embedded broker on a free port,
// the simulation at 20× and env added, and returns once the light's update is known and the bridge answers
// requests: the working directory, the process and a Recorder on its broker.
func startGoRun(t *testing.T, env ...string) (string, *bridgeProcess, *bridgetest.Recorder) {
	t.Helper()
	dir := goRunDir(t)
	addr := freeAddr(t)
	proc := startBinary(t, dir, "otabridge", append([]string{"OTABRIDGE_MQTT_EMBEDDED_LISTEN=" + addr,
		"OTABRIDGE_RADIO_SIM_SPEED=20"}, env...))
	rec := bridgetest.NewRecorder(t, "mqtt://"+addr)
	rec.WaitFor("the light's update state", "otabridge/"+goRunLight+"/update", 0, func(m bridgetest.Message) bool {
		return bridgetest.Field(m, "latest_version") == "0x01010000"
	})
	rec.WaitBridgeReady("otabridge")
	return dir, proc, rec
}

// goRunDir returns a new working directory laid out as `go run .` sees the repository: its config.yaml and
// a copy of its images/.
func goRunDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := bridgetest.RepoRoot()
	cfg, err := os.ReadFile(filepath.Join(root, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	images := bridgetest.CopyImages(t, filepath.Join(root, "images"))
	if err := os.Rename(images, filepath.Join(dir, "images")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freeAddr returns 127.0.0.1:<a port that was free a moment ago>.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// checkWallClockTimes checks the timestamps of the device's last OTA state (changed_at, started_at,
// finished_at) and of bridge/devices (last_seen): each must lie between the test's start and now.
func checkWallClockTimes(t *testing.T, rec *bridgetest.Recorder, base, ieee string, testStart time.Time) {
	t.Helper()
	now := time.Now()
	check := func(where, s string) {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || ts.Before(testStart.Add(-time.Second)) || ts.After(now.Add(time.Second)) {
			t.Errorf("%s = %q: want a wall-clock time between %s and %s", where, s,
				testStart.Format(time.RFC3339), now.Format(time.RFC3339))
		}
	}
	m, ok := rec.Last(base + "/" + ieee + "/ota")
	if !ok {
		t.Fatalf("no OTA state of %s", ieee)
	}
	var st map[string]any
	if err := json.Unmarshal(m.Payload, &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"changed_at", "started_at", "finished_at"} {
		s, _ := st[k].(string)
		check(ieee+"/ota "+k, s)
	}
	if m, ok = rec.Last(base + "/bridge/devices"); !ok || !strings.Contains(string(m.Payload), ieee) {
		t.Fatalf("no bridge/devices naming %s", ieee)
	}
	var devs []map[string]any
	if err := json.Unmarshal(m.Payload, &devs); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d["ieee"] == ieee {
			s, _ := d["last_seen"].(string)
			check("bridge/devices last_seen", s)
		}
	}
}
