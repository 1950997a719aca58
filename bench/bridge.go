package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// bridgeResult is the real bridge binary upgrading a simulated fleet.
type bridgeResult struct {
	devices   int
	imageSize int
	speed     float64
	queued    int
	finished  int
	failed    int
	wall      time.Duration // from update_all to the last ota_finished
	virtual   time.Duration // simulated time from the first started_at to the last finished_at (ota topics)
	peakRSS   int64         // VmHWM, bytes
	cpu       time.Duration // user + system of the bridge process, start to exit
}

// bridgeRun configures one run of the bridge binary.
type bridgeRun struct {
	dir       string // scratch directory
	devices   int
	images    int
	imageSize int
	speed     float64
	timeout   time.Duration
	logf      func(format string, args ...any)
}

// moduleRoot returns the directory of otabridge's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the otabridge module (run from the repository)")
	}
	return filepath.Dir(mod), nil
}

// buildBridge builds the otabridge binary into dir.
func buildBridge(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "otabridge")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build otabridge: %w\n%s", err, out)
	}
	return bin, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// bridgeConfig is the generated config.yaml: the simulated fleet at the given speed, the embedded broker on
// port, the bench images, and info-level JSON logs (the simulated devices' lines carry sim_time).
func (r bridgeRun) bridgeConfig(port int, images, data string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "radio:\n  type: sim\n  sim_speed: %g\n  sim:\n    seed: 7\n    link:\n      mode: realistic\n    devices:\n", r.speed)
	for i := 0; i < r.devices; i++ {
		d := benchDevice(i, r.images)
		fmt.Fprintf(&b, "      - {ieee: %q, model: %s, manufacturer: %s, manufacturer_code: 0x%04x, image_type: 0x%04x, file_version: %d, profile: %s, max_data_size: %d}\n",
			d.IEEE.String(), d.Model, d.Manufacturer, d.ManufacturerCode, d.ImageType, d.FileVersion, d.Profile, d.MaxDataSize)
	}
	fmt.Fprintf(&b, "mqtt:\n  server: embedded\n  embedded_listen: 127.0.0.1:%d\n  base_topic: otabridge\n", port)
	fmt.Fprintf(&b, "ota:\n  max_concurrent: 2\nimages:\n  folder: %q\ndata_dir: %q\nlog:\n  level: info\n  format: json\n", images, data)
	return b.String()
}

// run builds the bridge, starts it on a generated configuration, waits until it knows every device, sends
// ota/update_all over MQTT and waits for every ota_finished; then it reads the process's peak RSS, stops it
// with SIGTERM and reads its CPU time.
func (r bridgeRun) run() (bridgeResult, error) {
	res := bridgeResult{devices: r.devices, speed: r.speed}
	bin, err := buildBridge(r.dir)
	if err != nil {
		return res, err
	}
	images := filepath.Join(r.dir, "images")
	if err := writeImages(images, r.images, r.imageSize); err != nil {
		return res, err
	}
	res.imageSize = r.imageSize
	port, err := freePort()
	if err != nil {
		return res, err
	}
	cfgPath := filepath.Join(r.dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(r.bridgeConfig(port, images, filepath.Join(r.dir, "data"))), 0o644); err != nil {
		return res, fmt.Errorf("write bridge config: %w", err)
	}
	logFile, err := os.Create(filepath.Join(r.dir, "bridge.log"))
	if err != nil {
		return res, fmt.Errorf("bridge log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start bridge: %w", err)
	}
	// exited is closed when the bridge process has exited (waitErr is then its result): a closed channel, so
	// that the observer noticing an early exit and stop below both see it.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return waitErr
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("bridge did not stop within 30s of SIGTERM: killed")
		}
	}
	defer stop() //nolint:errcheck // the error path already has a better error to report

	obs, err := newFleetObserver(fmt.Sprintf("tcp://127.0.0.1:%d", port), exited, &waitErr)
	if err != nil {
		return res, fmt.Errorf("%w (bridge log: %s)", err, logFile.Name())
	}
	defer obs.close()
	if err := obs.waitDevices(r.devices, 2*time.Minute); err != nil {
		return res, fmt.Errorf("%w (bridge log: %s)", err, logFile.Name())
	}
	if err := obs.waitServing(time.Minute); err != nil {
		return res, err
	}
	start := time.Now()
	queued, err := obs.updateAll(time.Minute)
	if err != nil {
		return res, err
	}
	res.queued = queued
	if r.logf != nil {
		r.logf("bridge: update_all queued %d devices; waiting for ota_finished", queued)
	}
	finished, failed := obs.waitFinished(r.devices, r.timeout, r.logf)
	res.wall = time.Since(start)
	res.finished, res.failed = finished, failed
	hwm, err := peakRSS(cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	res.peakRSS = hwm
	if err := stop(); err != nil {
		return res, fmt.Errorf("stop bridge: %w", err)
	}
	res.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if span, err := simulatedSpan(logFile.Name()); err == nil {
		res.virtual = span
	} else {
		r.logf("bridge: simulated time not measured: %v", err)
	}
	if finished < r.devices {
		return res, fmt.Errorf("bridge fleet: %d of %d devices finished, %d failed, within %s (bridge log: %s)",
			finished, r.devices, failed, r.timeout, logFile.Name())
	}
	return res, nil
}

// simulatedSpan reads the bridge's JSON log and returns the simulated time from the first device's
// "download starts" to the last device's "upgraded" (the sim_time of those lines of the simulated network;
// the OTA timestamps are wall-clock time).
func simulatedSpan(logPath string) (time.Duration, error) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return 0, fmt.Errorf("read bridge log: %w", err)
	}
	var first, last time.Duration = -1, -1
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `"sim_time"`) {
			continue
		}
		var l struct {
			Message string `json:"message"`
			SimTime string `json:"sim_time"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		t, err := time.ParseDuration(l.SimTime)
		if err != nil {
			continue
		}
		switch l.Message {
		case "download starts":
			if first < 0 || t < first {
				first = t
			}
		case "upgraded":
			last = max(last, t)
		}
	}
	if first < 0 || last < first {
		return 0, errors.New("no download starts / upgraded lines with sim_time in the bridge log")
	}
	return last - first, nil
}

// peakRSS reads VmHWM (the resident set's high-water mark) of a running process.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", rest, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("VmHWM not in /proc/<pid>/status")
}

// response is one message on `<base>/bridge/response/<path>`.
type response struct {
	topic   string
	payload []byte
}

// fleetObserver is the bench's MQTT client: it watches the bridge's device list and events.
type fleetObserver struct {
	client  mqtt.Client
	exited  <-chan struct{}
	waitErr *error // the bridge's exit status once exited is closed

	mu        sync.Mutex
	known     int       // devices with a known installed version
	first     time.Time // earliest started_at of a transfer (simulated time)
	last      time.Time // latest finished_at
	finished  map[string]bool
	failed    map[string]string
	responses chan response
	changed   chan struct{}
}

func newFleetObserver(broker string, exited <-chan struct{}, waitErr *error) (*fleetObserver, error) {
	o := &fleetObserver{exited: exited, waitErr: waitErr, finished: map[string]bool{}, failed: map[string]string{},
		responses: make(chan response, 16), changed: make(chan struct{}, 1)}
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID("otabridge-bench").SetAutoReconnect(true).
		SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).SetOrderMatters(false)
	o.client = mqtt.NewClient(opts)
	if err := o.wait(o.client.Connect()); err != nil {
		return nil, fmt.Errorf("connect to the bridge's broker: %w", err)
	}
	// One SUBSCRIBE for every filter: the embedded broker (mochi) refuses a later SUBSCRIBE whose packet id
	// equals the id of a retained message it is still delivering to us (reason 0x91), so filters subscribed
	// one by one after the first can silently fail.
	filters := map[string]byte{"otabridge/bridge/devices": 1, "otabridge/bridge/event": 1, "otabridge/+/ota": 1,
		"otabridge/bridge/response/#": 1}
	tok := o.client.SubscribeMultiple(filters, o.route)
	if err := o.wait(tok); err != nil {
		o.close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	for f, code := range tok.(*mqtt.SubscribeToken).Result() {
		if code > 2 {
			o.close()
			return nil, fmt.Errorf("subscribe %s: refused by the broker (code 0x%02x)", f, code)
		}
	}
	return o, nil
}

// wait waits for an MQTT operation, the bridge's exit, or a minute.
func (o *fleetObserver) wait(tok mqtt.Token) error {
	deadline := time.After(time.Minute)
	for !tok.WaitTimeout(100 * time.Millisecond) {
		select {
		case <-o.exited:
			return fmt.Errorf("the bridge exited: %v", *o.waitErr)
		case <-deadline:
			return errors.New("no answer from the bridge's embedded broker within a minute")
		default:
		}
	}
	return tok.Error()
}

func (o *fleetObserver) close() { o.client.Disconnect(250) }

// route hands a message to its handler.
func (o *fleetObserver) route(c mqtt.Client, m mqtt.Message) {
	switch t := m.Topic(); {
	case t == "otabridge/bridge/devices":
		o.onDevices(c, m)
	case t == "otabridge/bridge/event":
		o.onEvent(c, m)
	case strings.HasPrefix(t, "otabridge/bridge/response/"):
		select {
		case o.responses <- response{t, append([]byte(nil), m.Payload()...)}:
		default:
		}
	case strings.HasSuffix(t, "/ota"):
		o.onOTAState(c, m)
	}
}

func (o *fleetObserver) signal() {
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

func (o *fleetObserver) onDevices(_ mqtt.Client, m mqtt.Message) {
	var list []struct {
		FileVersion *uint32 `json:"file_version"`
	}
	if json.Unmarshal(m.Payload(), &list) != nil {
		return
	}
	n := 0
	for _, d := range list {
		if d.FileVersion != nil {
			n++
		}
	}
	o.mu.Lock()
	o.known = n
	o.mu.Unlock()
	o.signal()
}

// onOTAState tracks the simulated time span of the transfers from the devices' ota state topics.
func (o *fleetObserver) onOTAState(_ mqtt.Client, m mqtt.Message) {
	var st struct {
		StartedAt  *time.Time `json:"started_at"`
		FinishedAt *time.Time `json:"finished_at"`
	}
	if json.Unmarshal(m.Payload(), &st) != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if st.StartedAt != nil && (o.first.IsZero() || st.StartedAt.Before(o.first)) {
		o.first = *st.StartedAt
	}
	if st.FinishedAt != nil && st.FinishedAt.After(o.last) {
		o.last = *st.FinishedAt
	}
}

func (o *fleetObserver) virtualSpan() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.first.IsZero() || o.last.Before(o.first) {
		return 0
	}
	return o.last.Sub(o.first)
}

func (o *fleetObserver) onEvent(_ mqtt.Client, m mqtt.Message) {
	var ev struct {
		Type string `json:"type"`
		Data struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		} `json:"data"`
	}
	if json.Unmarshal(m.Payload(), &ev) != nil {
		return
	}
	o.mu.Lock()
	switch ev.Type {
	case "ota_finished":
		o.finished[ev.Data.ID] = true
		delete(o.failed, ev.Data.ID)
	case "ota_failed", "ota_aborted":
		o.failed[ev.Data.ID] = ev.Data.Error
	}
	o.mu.Unlock()
	o.signal()
}

// waitFor waits until cond holds, the bridge exits, or timeout passes.
func (o *fleetObserver) waitFor(cond func() bool, timeout time.Duration, tick func()) error {
	deadline := time.After(timeout)
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	for {
		o.mu.Lock()
		ok := cond()
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-o.changed:
		case <-progress.C:
			if tick != nil {
				tick()
			}
		case <-o.exited:
			return fmt.Errorf("the bridge exited: %v", *o.waitErr)
		case <-deadline:
			return fmt.Errorf("timed out after %s", timeout)
		}
	}
}

func (o *fleetObserver) waitDevices(n int, timeout time.Duration) error {
	if err := o.waitFor(func() bool { return o.known >= n }, timeout, nil); err != nil {
		o.mu.Lock()
		defer o.mu.Unlock()
		return fmt.Errorf("waiting for the bridge to know %d devices (%d known): %w", n, o.known, err)
	}
	return nil
}

// request publishes a request and waits for its response.
func (o *fleetObserver) request(path, payload string, timeout time.Duration) ([]byte, error) {
	tok := o.client.Publish("otabridge/bridge/request/"+path, 1, false, payload)
	if !tok.WaitTimeout(timeout) || tok.Error() != nil {
		return nil, fmt.Errorf("publish %s: %v", path, tok.Error())
	}
	deadline := time.After(timeout)
	for {
		select {
		case r := <-o.responses:
			if r.topic == "otabridge/bridge/response/"+path {
				return r.payload, nil
			}
		case <-deadline:
			return nil, fmt.Errorf("no response to %s within %s", path, timeout)
		}
	}
}

// waitServing waits until the bridge answers requests: it publishes its state as soon as it is connected,
// before its request subscription is active, and a request sent in that window is lost. The probe is an
// unknown request path, which changes nothing.
func (o *fleetObserver) waitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := o.request("bench/ping", "{}", time.Second); err == nil {
			return nil
		}

	}
	return fmt.Errorf("the bridge did not answer requests within %s", timeout)
}

// updateAll sends ota/update_all and returns how many devices it queued.
func (o *fleetObserver) updateAll(timeout time.Duration) (int, error) {
	p, err := o.request("ota/update_all", `{"transaction":"bench"}`, timeout)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Queued []json.RawMessage `json:"queued"`
		} `json:"data"`
	}
	if err := json.Unmarshal(p, &resp); err != nil {
		return 0, fmt.Errorf("update_all response %s: %w", p, err)
	}
	if resp.Status != "ok" {
		return 0, fmt.Errorf("update_all refused: %s", resp.Error)
	}
	return len(resp.Data.Queued), nil
}

// waitFinished waits until n devices finished (or the timeout) and returns finished and failed counts.
func (o *fleetObserver) waitFinished(n int, timeout time.Duration, logf func(string, ...any)) (int, int) {
	tick := func() {
		if logf != nil {
			o.mu.Lock()
			f, x := len(o.finished), len(o.failed)
			o.mu.Unlock()
			logf("bridge: %d finished, %d failed so far", f, x)
		}
	}
	_ = o.waitFor(func() bool { return len(o.finished) >= n }, timeout, tick)
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.finished), len(o.failed)
}
