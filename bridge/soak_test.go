package bridge_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/bridge/brokertest"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// The fleet soak (issue 8): a night of updates under real-world faults must end with every device on its
// new firmware or failed with a reason, and nothing lost.
//
// A fleet of simulated devices (a mix of client profiles, 30 % sleepy, 1 to 4 hops, 5 % of all transmissions
// lost with no MAC retry, some rebooting by themselves mid-download), already known to the bridge from its
// state file (a network that has been running), is upgraded with ota/update_all while the test reboots
// random devices mid-transfer, resets the radio twice, restarts the broker twice and crashes the bridge once
// (kill -9: the bridge stops without its orderly state write and starts again from the state file as it
// was at the crash). The harness gives the restarted bridge a fresh simulated network; its devices boot
// with the firmware they ran at the crash (a bridge crash does not touch the devices' firmware, but the
// downloads in progress are lost, as if those devices rebooted too). Then it checks: every device is idle on
// the new version (and runs it, received byte-exact) or failed with a reason; the retained `update` and
// `ota` states on the broker agree with the engine; the state file is valid and agrees too; no goroutine
// leaked; the live heap stayed bounded.
//
//	go test ./bridge -run TestSoakShort                                   # CI form: 60 devices
//	OTABRIDGE_SOAK=long go test ./bridge -run TestSoakLong -timeout 60m  # 200 devices
//
// OTABRIDGE_SOAK_HEAPPROFILE=FILE writes a heap profile when the fleet has settled. OTABRIDGE_SOAK_TIMEOUT
// (a Go duration) replaces the wall-time failure guard. The MQTT traffic table (messages and payload bytes
// per topic kind) is logged at the end of every run, a failed one too.

// soakPlan sizes one soak.
type soakPlan struct {
	devices   int
	images    int // distinct image types (one per model)
	imageSize int
	speed     float64       // simulation speed (virtual seconds per wall second)
	reboots   time.Duration // wall time between two test-driven reboots of a downloading device
	heapEvery time.Duration // wall time between two heap samples (each forces a GC)
	timeout   time.Duration // wall-time failure guard of the whole run
	heapLimit uint64        // bound of the live heap (bytes)
}

// TestSoakShort is the CI form of the soak.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	runSoak(t, soakPlan{devices: 60, images: 6, imageSize: 16_000, speed: 400, reboots: 2 * time.Second, heapEvery: 2 * time.Second,
		timeout: 4 * time.Minute, heapLimit: 64 << 20})
}

// TestSoakLong is the long form: 200 devices; run with OTABRIDGE_SOAK=long.
func TestSoakLong(t *testing.T) {
	if os.Getenv("OTABRIDGE_SOAK") != "long" {
		t.Skip("the long soak runs with OTABRIDGE_SOAK=long (go test ./bridge -run TestSoakLong -timeout 60m)")
	}
	runSoak(t, soakPlan{devices: 200, images: 10, imageSize: 60_000, speed: 300, reboots: 2 * time.Second, heapEvery: 10 * time.Second,
		timeout: 50 * time.Minute, heapLimit: 128 << 20})
}

// soakModel is image group g of the fleet: manufacturer 0x1234, image type 0x0100+g, version 1 → 2.
func soakModel(g int) string { return fmt.Sprintf("SoakModel-%d", g) }

const (
	soakOld uint32 = 1
	soakNew uint32 = 2
)

// soakFleet builds the simulated network: profile, power, hops and faults per device, deterministic.
func soakFleet(p soakPlan) sim.Config {
	rng := rand.New(rand.NewPCG(42, 8))
	cfg := sim.Config{Seed: 42, Link: sim.LinkConfig{Mode: sim.ModeRealistic, Loss: 0.05, MACRetries: -1}}
	mains := []string{sim.ProfileESPv2, sim.ProfileESPv2, sim.ProfilePeriodic, sim.ProfilePage, sim.ProfileSilabs, sim.ProfileRestartOnLoss}
	sleepy := []string{sim.ProfilePeriodic, sim.ProfileSilabs, sim.ProfilePage}
	for i := 0; i < p.devices; i++ {
		g := i % p.images
		d := sim.DeviceConfig{IEEE: zcl.IEEE(0x00124b0000500000 + uint64(i)), Model: soakModel(g), Manufacturer: "SoakCo",
			ManufacturerCode: 0x1234, ImageType: 0x0100 + uint16(g), FileVersion: soakOld, Hops: 1 + i%4,
			QueryInterval: time.Duration(5+rng.IntN(10)) * time.Minute}
		if i%10 < 3 { // 30 % sleepy: they poll, and ask for images by themselves
			d.Power, d.Profile = sim.PowerBattery, sleepy[i%len(sleepy)]
		} else {
			d.Power, d.Profile = sim.PowerMains, mains[i%len(mains)]
		}
		if i%13 == 5 { // some reboot by themselves in the middle of their first download
			d.RebootAtPercent = float64(20 + rng.IntN(60))
		}
		cfg.Devices = append(cfg.Devices, d)
	}
	return cfg
}

// soakImages writes the fleet's images into a new folder and returns it with the SHA-256 of each image's
// servable bytes by image type.
func soakImages(t *testing.T, p soakPlan) (string, map[uint16][32]byte) {
	t.Helper()
	dir := t.TempDir()
	sums := map[uint16][32]byte{}
	for g := 0; g < p.images; g++ {
		payload := make([]byte, p.imageSize)
		r := rand.New(rand.NewPCG(uint64(g), 7))
		for i := range payload {
			payload[i] = byte(r.Uint32())
		}
		typ := 0x0100 + uint16(g)
		h := ota.Header{ManufacturerCode: 0x1234, ImageType: typ, FileVersion: soakNew, StackVersion: 2}
		copy(h.HeaderString[:], "soak "+soakModel(g))
		b, err := ota.Build(h, []ota.BuildElement{{Tag: ota.TagUpgradeImage, Data: payload}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("soak-%04x.ota", typ)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[typ] = sha256.Sum256(b) // Build puts the magic at 0 and nothing after the image
	}
	return dir, sums
}

// soakState is what the soak reads of a device's `<base>/<name>/ota` state.
type soakState struct {
	State            string `json:"state"`
	InstalledVersion string `json:"installed_version"`
	LatestVersion    string `json:"latest_version"`
	LastError        string `json:"last_error"`
}

// soakHeap samples the live heap after a forced GC, every `every`. The test process holds more than the
// bridge: each harness's Recorder keeps a copy of every MQTT message it saw (the first one goes on recording
// after its bridge was killed), so the bound applies to the live heap minus the bytes the Recorders hold
// (the harness's in-memory log stays counted).
type soakHeap struct {
	sample   []metrics.Sample
	peak     uint64 // raw live heap
	peakNet  uint64 // live heap minus the recorders' copies, at the same moment
	recBytes uint64 // bytes held by the recorders (payload capacity, topic, record)
	traffic  uint64 // payload bytes of the MQTT traffic (counted once, from the current recorder)
	recMsgs  int
	byTopic  map[string]uint64 // payload bytes per topic kind, for the traffic summary
	msgTopic map[string]int    // messages per topic kind
	marks    map[*bridgetest.Recorder]int
	every    time.Duration
	last     time.Time
}

// take samples when a sample is due; recs are every recorder of the run, the current one last.
func (h *soakHeap) take(recs ...*bridgetest.Recorder) {
	if time.Since(h.last) < h.every {
		return
	}
	h.last = time.Now()
	runtime.GC()
	if h.sample == nil {
		h.sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		h.byTopic = map[string]uint64{}
		h.msgTopic = map[string]int{}
		h.marks = map[*bridgetest.Recorder]int{}
	}
	for i, rec := range recs {
		current := i == len(recs)-1
		for _, m := range rec.Messages("", h.marks[rec]) {
			h.marks[rec] = m.Seq
			h.recBytes += uint64(cap(m.Payload) + len(m.Topic) + 64)
			if current {
				h.traffic += uint64(len(m.Payload))
				h.recMsgs++
				h.byTopic[soakTopicKind(m.Topic)] += uint64(len(m.Payload))
				h.msgTopic[soakTopicKind(m.Topic)]++
			}
		}
	}
	metrics.Read(h.sample)
	if h.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	live := h.sample[0].Value.Uint64()
	h.peak = max(h.peak, live)
	if live > h.recBytes {
		h.peakNet = max(h.peakNet, live-h.recBytes)
	}
}

// summary describes the MQTT traffic the recorders saw: the total, then one row per topic kind (messages,
// payload bytes, share of the bytes), the heaviest first.
func (h *soakHeap) summary() string {
	kinds := make([]string, 0, len(h.byTopic))
	for k := range h.byTopic {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool {
		if h.byTopic[kinds[i]] != h.byTopic[kinds[j]] {
			return h.byTopic[kinds[i]] > h.byTopic[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%d messages, %.1f MB\n", h.recMsgs, float64(h.traffic)/1e6)
	fmt.Fprintf(&b, "  | %-28s | %9s | %12s | %6s |\n", "topic", "messages", "bytes", "share")
	for _, k := range kinds {
		share := 0.0
		if h.traffic > 0 {
			share = 100 * float64(h.byTopic[k]) / float64(h.traffic)
		}
		fmt.Fprintf(&b, "  | %-28s | %9d | %12d | %5.1f%% |\n", k, h.msgTopic[k], h.byTopic[k], share)
	}
	return b.String()
}

// writeHeapProfile writes the heap profile of the moment (go tool pprof -sample_index=inuse_space).
func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Errorf("heap profile: %v", err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Errorf("heap profile: %v", err)
	}
	t.Logf("heap profile written to %s", path)
}

// soakTopicKind groups topics: `<base>/<device>/ota` → "<device>/ota", `<base>/bridge/event` stays.
func soakTopicKind(topic string) string {
	parts := strings.Split(topic, "/")
	switch {
	case len(parts) >= 3 && parts[1] == "bridge" && (parts[2] == "request" || parts[2] == "response"):
		return strings.Join(parts[1:3], "/")
	case len(parts) == 3 && parts[1] != "bridge":
		return "<device>/" + parts[2]
	case len(parts) >= 2 && parts[0] == bridgetest.HAPrefix:
		return bridgetest.HAPrefix + "/…"
	}
	return strings.Join(parts[1:], "/")
}

// soakRun is one soak in progress.
type soakRun struct {
	t      *testing.T
	plan   soakPlan
	broker *brokertest.Broker
	cfg    bridge.Config
	h      *bridgetest.Harness
	ieees  []string
	sums   map[uint16][32]byte
	heap   soakHeap
	recs   []*bridgetest.Recorder // every harness's recorder, the current one last
	rng    *rand.Rand
	faults []string // what happened, for the log
	start  time.Time
	// received is, for the devices that ran the new version when the bridge was killed, what they had
	// received (the restarted network's devices boot with that firmware and download nothing).
	received map[zcl.IEEE][32]byte
	// failures are the reasons of the ota_failed events published for each device (over both bridge lives).
	failures  map[string]string
	eventsRec *bridgetest.Recorder // the recorder failures was read from, and how far
	eventsAt  int
}

// failureReason returns the reason of the last ota_failed event published for the device ("" when none).
func (s *soakRun) failureReason(ieee string) string {
	if s.eventsRec != s.h.Rec {
		s.eventsRec, s.eventsAt = s.h.Rec, 0
	}
	ms := s.h.Rec.Messages(s.h.Topic("bridge/event"), s.eventsAt)
	for _, m := range ms {
		s.eventsAt = m.Seq
		if ev, ok := bridgetest.ParseEvent(m); ok && ev.Type == "ota_failed" {
			id, _ := ev.Data["id"].(string)
			reason, _ := ev.Data["reason"].(string)
			s.failures[id] = reason
		}
	}
	return s.failures[ieee]
}

// failedWithReason: failed with its reason; or — a failed device whose client asked for the image again by
// itself — waiting for approval after an ota_failed event that gave the reason (the engine drops the reason
// from the state then: see the report).
func (s *soakRun) failedWithReason(ieee, state, lastError string) bool {
	switch state {
	case string(ota.StateFailed):
		return lastError != ""
	case string(ota.StateApprovalPending):
		return lastError != "" || s.failureReason(ieee) != ""
	}
	return false
}

func (s *soakRun) logf(format string, args ...any) {
	msg := fmt.Sprintf("[%5.1fs] ", time.Since(s.start).Seconds()) + fmt.Sprintf(format, args...)
	s.faults = append(s.faults, msg)
	s.t.Log(msg)
}

// upgraded counts the devices of the current simulated network that run the new version.
func (s *soakRun) upgraded() int {
	n := 0
	for _, d := range s.h.Net.Devices() {
		if d.Status().FileVersion == soakNew {
			n++
		}
	}
	return n
}

// otaState returns the latest `<ieee>/ota` state the recorder has.
func (s *soakRun) otaState(ieee string) (soakState, bool) {
	m, ok := s.h.Rec.Last(s.h.Topic(ieee + "/ota"))
	if !ok {
		return soakState{}, false
	}
	var st soakState
	return st, json.Unmarshal(m.Payload, &st) == nil && st.State != ""
}

// settled reports whether every device is idle on the new version or failed, by the latest published
// states; it returns the states counted.
func (s *soakRun) settled() (bool, map[string]int) {
	count := map[string]int{}
	done := true
	for _, ieee := range s.ieees {
		st, ok := s.otaState(ieee)
		switch {
		case !ok:
			count["unknown"]++
			done = false
		case st.State == "idle" && st.InstalledVersion == ota.VersionString(soakNew):
			count["idle(new)"]++
		case s.failedWithReason(ieee, st.State, st.LastError):
			count["failed"]++
		default:
			count[st.State]++
			done = false
		}
	}
	return done, count
}

// describeUnsettled shows the OTA state history of up to n devices that have not settled.
func (s *soakRun) describeUnsettled(n int) string {
	var b strings.Builder
	for _, ieee := range s.ieees {
		st, ok := s.otaState(ieee)
		if ok && (st.State == "idle" && st.InstalledVersion == ota.VersionString(soakNew) || s.failedWithReason(ieee, st.State, st.LastError)) {
			continue
		}
		if n--; n < 0 {
			break
		}
		d := s.h.Net.Device(soakIEEE(ieee))
		fmt.Fprintf(&b, "%s %+v\n%s", ieee, d.Config(), soakLastStates(s.h.Rec, s.h.Topic(ieee+"/ota"), 10))
		var events []string
		for _, m := range s.h.Rec.Messages(s.h.Topic("bridge/event"), 0) {
			if ev, _ := bridgetest.ParseEvent(m); ev.Data["id"] == ieee && ev.Type != "ota_query" {
				events = append(events, fmt.Sprintf("  event #%d %s\n", m.Seq, m.Payload))
			}
		}
		b.WriteString(strings.Join(events[max(0, len(events)-12):], ""))
	}
	return b.String()
}

func soakIEEE(s string) zcl.IEEE {
	a, err := zcl.ParseIEEE(s)
	if err != nil {
		panic(err)
	}
	return a
}

// waitDevicesKnown waits until `bridge/devices` lists every device with its file version.
func (s *soakRun) waitDevicesKnown() {
	s.t.Helper()
	s.h.Rec.WaitFor(fmt.Sprintf("bridge/devices with all %d devices interviewed", len(s.ieees)), s.h.Topic("bridge/devices"), 0,
		func(m bridgetest.Message) bool {
			var list []struct {
				FileVersion *uint32 `json:"file_version"`
			}
			if json.Unmarshal(m.Payload, &list) != nil || len(list) != len(s.ieees) {
				return false
			}
			for _, d := range list {
				if d.FileVersion == nil {
					return false
				}
			}
			return true
		})
}

// updateAll sends ota/update_all and logs what it queued.
func (s *soakRun) updateAll() {
	s.t.Helper()
	resp := s.h.Request("ota/update_all", nil)
	if resp.Status != "ok" {
		s.t.Fatalf("update_all: %s", resp.Payload)
	}
	q, _ := resp.Data["queued"].([]any)
	sk, _ := resp.Data["skipped"].([]any)
	s.logf("update_all: %d queued, %d skipped", len(q), len(sk))
}

// crash stops the bridge the way kill -9 does: the state file keeps what was on disk at the crash (the
// orderly shutdown's final write is undone), and MQTT sees the connection drop. It returns the configuration
// for the restart: the devices' firmware as it was at the crash.
func (s *soakRun) crash() bridge.Config {
	s.t.Helper()
	path := filepath.Join(s.cfg.DataDir, bridge.StateFile)
	atCrash, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatalf("state file at the crash: %v", err)
	}
	next := s.cfg
	next.Radio.Sim.Devices = append([]sim.DeviceConfig(nil), s.cfg.Radio.Sim.Devices...)
	upgraded := 0
	for i := range next.Radio.Sim.Devices {
		d := &next.Radio.Sim.Devices[i]
		st := s.h.Net.Device(d.IEEE).Status()
		d.FileVersion = st.FileVersion
		if d.FileVersion == soakNew {
			s.received[d.IEEE] = st.ReceivedSHA256
			upgraded++
		}
	}
	s.h.Stop()
	if err := os.WriteFile(path, atCrash, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.logf("bridge killed (state file of %d bytes kept as it was at the crash; %d devices run the new version)",
		len(atCrash), upgraded)
	return next
}

// soakSeedState writes the state file of a bridge that has known the fleet for a while: every device
// interviewed, nothing about OTA yet.
func soakSeedState(t *testing.T, cfg bridge.Config) {
	t.Helper()
	var devices []bridge.Device
	for _, d := range cfg.Radio.Sim.WithDefaults().Devices {
		power := bridge.PowerMains
		if d.Power == sim.PowerBattery {
			power = bridge.PowerBattery
		}
		devices = append(devices, bridge.Device{IEEE: d.IEEE, NWK: d.NWK, Endpoint: d.Endpoint, FriendlyName: d.IEEE.String(),
			Manufacturer: d.Manufacturer, Model: d.Model, PowerSource: power, ManufacturerCode: d.ManufacturerCode,
			ImageType: d.ImageType, HasImageID: true, FileVersion: d.FileVersion, FileVersionKnown: true,
			Sleepy: d.Power == sim.PowerBattery, Interview: bridge.InterviewOK})
	}
	state := map[string]any{"version": 1, "saved_at": time.Now().UTC(),
		"registry": bridge.RegistrySnapshot{Devices: devices}, "ota": ota.Durable{Devices: []ota.DurableDevice{}}}
	if err := bridge.SaveJSON(filepath.Join(cfg.DataDir, bridge.StateFile), state); err != nil {
		t.Fatal(err)
	}
}

func runSoak(t *testing.T, p soakPlan) {
	goroutinesBefore := runtime.NumGoroutine()
	// Registered first, so it runs last: after the harness, the recorder and the broker have stopped.
	t.Cleanup(func() { soakCheckGoroutines(t, goroutinesBefore) })

	s := &soakRun{t: t, plan: p, heap: soakHeap{every: p.heapEvery}, rng: rand.New(rand.NewPCG(7, 7)), start: time.Now(), received: map[zcl.IEEE][32]byte{},
		failures: map[string]string{}}
	t.Cleanup(func() { // before the goroutine check; the recorders keep what they saw after disconnecting
		if s.h == nil {
			return
		}
		s.heap.last = time.Time{}
		s.heap.take(s.recs...)
		t.Logf("MQTT traffic recorded in %s (%d devices on the new version): %s", time.Since(s.start).Round(time.Second),
			s.upgraded(), s.heap.summary())
	})
	if d, err := time.ParseDuration(os.Getenv("OTABRIDGE_SOAK_TIMEOUT")); err == nil && d > 0 {
		p.timeout = d
		s.plan.timeout = d
	}
	s.broker = brokertest.New(t)
	cfg := bridgetest.RepoConfig(t)
	cfg.Radio.Sim = soakFleet(p)
	cfg.Images.Folder, s.sums = soakImages(t, p)
	cfg.Images.Indexes = nil
	s.cfg = cfg
	for _, d := range cfg.Radio.Sim.Devices {
		s.ieees = append(s.ieees, d.IEEE.String())
	}
	soakSeedState(t, cfg)
	opts := bridgetest.Options{Speed: p.speed}
	s.h = bridgetest.Start(t, s.broker, cfg, opts)
	s.recs = append(s.recs, s.h.Rec)
	s.logf("bridge up: %d devices (%d sleepy), %d images of %d B, speed %g×, 5 %% loss per transmission", p.devices,
		p.devices*3/10, p.images, p.imageSize, p.speed)
	s.waitDevicesKnown()
	s.updateAll()

	// The faults, each once its share of the fleet runs the new version.
	type fault struct {
		at   float64
		name string
		do   func()
	}
	phase1 := []fault{
		{0.10, "radio reset", func() { s.h.Net.ResetRadio() }},
		{0.20, "broker restart", func() { s.broker.Restart() }},
		{0.35, "bridge kill -9", func() {
			next := s.crash()
			s.h = bridgetest.Start(t, s.broker, next, opts) // with a recorder of its own
			s.recs = append(s.recs, s.h.Rec)
			s.logf("bridge restarted")
			s.waitDevicesKnown()
			s.updateAll()
		}},
	}
	phase2 := []fault{
		{0.55, "radio reset", func() { s.h.Net.ResetRadio() }},
		{0.75, "broker restart", func() { s.broker.Restart() }},
	}
	deadline := time.Now().Add(p.timeout)
	lastReboot, lastReport := time.Now(), time.Now()
	reboots := 0
	run := func(faults []fault, finish bool) {
		for {
			s.heap.take(s.recs...)
			if time.Now().After(deadline) {
				_, count := s.settled()
				t.Fatalf("soak did not settle within %s: %v; faults so far:\n%s\nunsettled devices:\n%s", p.timeout, count,
					strings.Join(s.faults, "\n"), s.describeUnsettled(3))
			}
			up := s.upgraded()
			for len(faults) > 0 && float64(up) >= faults[0].at*float64(p.devices) {
				f := faults[0]
				faults = faults[1:]
				s.logf("%s (%d of %d devices on the new version)", f.name, up, p.devices)
				f.do()
			}
			if time.Since(lastReboot) >= p.reboots {
				lastReboot = time.Now()
				var downloading []*sim.Device
				for _, d := range s.h.Net.Devices() {
					if d.Status().State == sim.StateDownloading {
						downloading = append(downloading, d)
					}
				}
				if len(downloading) > 0 {
					d := downloading[s.rng.IntN(len(downloading))]
					d.Reboot()
					reboots++
				}
			}
			if time.Since(lastReport) >= 10*time.Second {
				lastReport = time.Now()
				_, count := s.settled()
				t.Logf("[%5.1fs] %d devices run the new version; published states %v", time.Since(s.start).Seconds(), up, count)
			}
			if len(faults) == 0 {
				if !finish {
					return
				}
				if done, _ := s.settled(); done {
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	run(phase1, false)
	run(phase2, true)
	_, count := s.settled()
	s.logf("settled: %v; %d devices rebooted mid-download by the test", count, reboots)

	s.heap.last = time.Time{} // a last sample now
	s.heap.take(s.recs...)
	if path := os.Getenv("OTABRIDGE_SOAK_HEAPPROFILE"); path != "" {
		writeHeapProfile(t, path)
	}
	s.checkFinal(count)
	t.Logf("peak live heap %.1f MB; without the recorders' copies of the MQTT traffic %.1f MB (limit %.0f MB); wall %s",
		float64(s.heap.peak)/1e6, float64(s.heap.peakNet)/1e6, float64(p.heapLimit)/1e6, time.Since(s.start).Round(time.Second))
	if s.heap.peakNet > p.heapLimit {
		t.Errorf("live heap (without the recorders' copies) peaked at %.1f MB, above %.0f MB", float64(s.heap.peakNet)/1e6,
			float64(p.heapLimit)/1e6)
	}
}

// checkFinal checks the invariants at the end. It stops the bridge (orderly) first, so that the engine's
// final state — in the state file — and the retained states on the broker can be compared exactly.
func (s *soakRun) checkFinal(count map[string]int) {
	t, h := s.t, s.h
	if count["idle(new)"] < len(s.ieees)/2 {
		t.Errorf("only %d of %d devices upgraded: the soak hardly exercised the bridge", count["idle(new)"], len(s.ieees))
	}
	h.Stop()

	// The state file: valid, every device in it, each idle on the new version or failed with a reason.
	var onDisk struct {
		Version  int                     `json:"version"`
		SavedAt  time.Time               `json:"saved_at"`
		Registry bridge.RegistrySnapshot `json:"registry"`
		OTA      ota.Durable             `json:"ota"`
	}
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, bridge.StateFile))
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&onDisk); err != nil {
		t.Fatalf("state file is not valid: %v", err)
	}
	if onDisk.Version != 1 || len(onDisk.Registry.Devices) != len(s.ieees) || len(onDisk.OTA.Devices) != len(s.ieees) {
		t.Errorf("state file: version %d, %d registry devices, %d OTA records; want 1, %d, %d", onDisk.Version,
			len(onDisk.Registry.Devices), len(onDisk.OTA.Devices), len(s.ieees), len(s.ieees))
	}
	engine := map[string]ota.DurableDevice{}
	var reasons []string
	for _, d := range onDisk.OTA.Devices {
		ieee := d.IEEE.String()
		engine[ieee] = d
		switch {
		case d.State == ota.StateIdle:
			if !d.FileKnown || d.Info.FileVersion != soakNew {
				t.Errorf("%s: idle in the state file on version %d (known %v)", ieee, d.Info.FileVersion, d.FileKnown)
			}
		case s.failedWithReason(ieee, string(d.State), d.LastError):
			reason := d.LastError
			if reason == "" {
				reason = "ota_failed: " + s.failures[ieee]
			}
			reasons = append(reasons, fmt.Sprintf("%s (%s): %s", ieee, d.State, reason))
		default:
			t.Errorf("%s: state %q (last error %q) at the end", ieee, d.State, d.LastError)
		}
	}
	sort.Strings(reasons)
	if len(reasons) > 0 {
		t.Logf("failed with a reason:\n  %s", strings.Join(reasons, "\n  "))
	}

	// The retained states as a newcomer (Home Assistant after its restart) reads them from the broker: the
	// same as the engine's, and update agrees with ota.
	fresh := bridgetest.NewRecorder(t, s.broker.URL())
	retained := func(m bridgetest.Message) bool { return m.Retained }
	for _, ieee := range s.ieees {
		om := fresh.WaitFor("the retained ota state of "+ieee, h.Topic(ieee+"/ota"), 0, retained)
		um := fresh.WaitFor("the retained update state of "+ieee, h.Topic(ieee+"/update"), 0, retained)
		var st soakState
		if err := json.Unmarshal(om.Payload, &st); err != nil {
			t.Errorf("%s ota: %v", ieee, err)
			continue
		}
		us, err := bridgetest.CheckUpdateState(um.Payload)
		if err != nil {
			t.Errorf("%s update: %v", ieee, err)
			continue
		}
		if e := engine[ieee]; st.State != string(e.State) || st.LastError != e.LastError {
			t.Errorf("%s: retained ota state %q (%q), engine %q (%q); the live recorder's last states:\n%s", ieee,
				st.State, st.LastError, e.State, e.LastError, soakLastStates(h.Rec, h.Topic(ieee+"/ota"), 6))
		}
		if us.InstalledVersion != st.InstalledVersion || us.InProgress || us.UpdatePercentage != nil {
			t.Errorf("%s: retained update state %s disagrees with ota state %s", ieee, um.Payload, om.Payload)
		}
		dev := h.Device(ieee)
		ds := dev.Status()
		if st.State == "idle" {
			if st.InstalledVersion != ota.VersionString(soakNew) || us.LatestVersion != us.InstalledVersion {
				t.Errorf("%s: idle but %s / update %s", ieee, om.Payload, um.Payload)
			}
			if ds.FileVersion != soakNew {
				t.Errorf("%s: idle on %s but the device runs 0x%08x", ieee, st.InstalledVersion, ds.FileVersion)
			}
			got := ds.ReceivedSHA256
			if ds.Upgrades == 0 {
				got = s.received[dev.IEEE()] // upgraded before the crash
			}
			if got != s.sums[dev.Config().ImageType] {
				t.Errorf("%s: the device did not receive its image byte for byte", ieee)
			}
		}
	}
}

// soakLastStates describes the last n messages of a topic.
func soakLastStates(r *bridgetest.Recorder, topic string, n int) string {
	ms := r.Messages(topic, 0)
	if len(ms) > n {
		ms = ms[len(ms)-n:]
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "  #%d retained=%v %s\n", m.Seq, m.Retained, m.Payload)
	}
	return b.String()
}

// soakCheckGoroutines waits (a failure guard, no timing asserted) for the goroutine count to come back to
// what it was before the soak, and dumps the goroutines when it does not.
func soakCheckGoroutines(t *testing.T, before int) {
	deadline := time.Now().Add(15 * time.Second)
	n := runtime.NumGoroutine()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutine leak: %d goroutines before the soak, %d after it:\n%s", before, n, buf)
		return
	}
	t.Logf("goroutines: %d before the soak, %d after", before, n)
}
