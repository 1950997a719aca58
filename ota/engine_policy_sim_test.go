package ota

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// ReadBattery reads the device's Power Configuration cluster, as the bridge's interview does; the answer
// goes to SetBattery (see watchBattery).
func (o *simOutput) ReadBattery(dst zcl.IEEE) {
	o.tsn++
	frame := zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ClientToServer, false, o.tsn, zcl.CmdReadAttributes),
		zcl.ReadAttributes{AttributeIDs: []uint16{zcl.AttrPowerBatteryPercentageRemaining}})
	o.h.SendCluster(dst, zcl.ClusterPowerConfig, frame, true)
}

// watchBattery feeds Power Configuration read responses to the engine.
func (r *simRig) watchBattery() {
	r.h.OnFrame(func(src zcl.IEEE, in ncp.Incoming) {
		if in.ClusterID != zcl.ClusterPowerConfig {
			return
		}
		h, payload, err := zcl.DecodeHeader(in.Payload)
		if err != nil || h.CommandID != zcl.CmdReadAttributesResponse {
			return
		}
		resp, err := zcl.DecodeReadAttributesResponse(payload)
		require.NoError(r.t, err)
		for _, rec := range resp.Records {
			if rec.AttributeID == zcl.AttrPowerBatteryPercentageRemaining && rec.Status == zcl.StatusSuccess {
				r.eng.SetBattery(src, float64(rec.Value.Uint)/2)
			}
		}
	})
}

// restart replaces the engine by a new one restored from the old one's snapshot (a bridge restart; the
// simulated network keeps running).
func (r *simRig) restart(cfg EngineConfig) {
	snap := r.eng.Snapshot()
	r.eng.Close()
	r.eng = NewEngine(cfg, r.cat, r.out, r.h.Clock, zerolog.Nop())
	r.eng.SetMaxAPSPayload(r.h.Net.MaxAPSPayload())
	r.t.Cleanup(r.eng.Close)
	r.eng.Restore(snap)
}

func TestWindowParsing(t *testing.T) {
	for _, bad := range []string{"", "1-5", "25:00-26:00", "01:00-01:00", "xyz 01:00-02:00", "mon 01:00", "01:60-02:00",
		"a b c", "24:00-01:00", "mon-fri,sun 1:00-2:0"} {
		_, err := ParseWindow(bad)
		assert.Error(t, err, bad)
	}
	w, err := CompileWindows([]string{"mon-fri 22:30-06:00", "sat,sun 10:00-16:00"}, "Europe/Berlin")
	require.NoError(t, err)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		require.NoError(t, err)
		return tm
	}
	// 2026-12-04 is a Friday.
	for _, c := range []struct {
		at   string
		open bool
		next string
	}{
		{"2026-12-04 22:29", false, "2026-12-04 22:30"},
		{"2026-12-04 23:00", true, "2026-12-04 23:00"},
		{"2026-12-05 05:59", true, "2026-12-05 05:59"}, // Friday night runs into Saturday
		{"2026-12-05 06:00", false, "2026-12-05 10:00"},
		{"2026-12-06 16:00", false, "2026-12-07 22:30"}, // Sunday afternoon: Monday night is next
		{"2026-12-08 03:00", true, "2026-12-08 03:00"},
	} {
		open, _ := w.Open(at(c.at))
		assert.Equal(t, c.open, open, c.at)
		assert.Equal(t, at(c.next), w.NextOpen(at(c.at)).In(berlin), c.at)
	}
	_, err = CompileWindows([]string{"01:00-02:00"}, "Mars/Olympus")
	assert.ErrorContains(t, err, "ota.window_timezone")
}

// FuzzParseWindow: a window string never panics the parser, and an accepted one answers Open and NextOpen.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"01:00-05:00", "mon-fri 22:00-06:00", "sat,sun 00:00-24:00", "x", "24:00-00:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := ParseWindow(s); err != nil {
			return
		}
		w, err := CompileWindows([]string{s}, "UTC")
		if err != nil {
			t.Fatalf("parsed but did not compile: %v", err)
		}
		now := clock.Epoch.Add(5 * time.Hour)
		next := w.NextOpen(now)
		if next.IsZero() {
			t.Fatalf("%q: a window that never opens", s)
		}
		if open, _ := w.Open(next); !open {
			t.Fatalf("%q: not open at its next opening %s", s, next)
		}
	})
}

// A night window on the virtual clock: queued at midnight, the update waits with the window's start as
// its ETA, starts when the window opens and finishes; "now" overrides the window for one update.
func TestEngineOnSimWindowOpensAtNight(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 8_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, ""), deviceYAML(devB, "")),
		EngineConfig{Window: WindowList{"22:00-23:30"}, WindowTimezone: "UTC"}, img)
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	st := r.state(devA)
	assert.Equal(t, StateQueued, st.State)
	assert.Equal(t, "outside the maintenance window", st.Hold)
	require.NotNil(t, st.ETA)
	assert.Equal(t, clock.Epoch.Add(22*time.Hour), *st.ETA, "the window's start is the ETA")

	// One update told "now" runs at once.
	_, err = r.eng.UpdateWith(devB, nil, UpdateOptions{Now: true})
	require.NoError(t, err)
	require.Equal(t, StateIdle, r.runUntilState(devB, time.Hour, StateIdle, StateFailed))
	r.assertUpgraded(devB, img)

	r.h.Run(21*time.Hour + 50*time.Minute - r.h.Now())
	assert.Equal(t, StateQueued, r.state(devA).State, "nothing starts before 22:00")
	assert.Zero(t, r.h.Device(devA).Status().Offset)
	require.Equal(t, StateUpdating, r.runUntilState(devA, time.Hour, StateUpdating))
	assert.False(t, r.h.Clock.Now().Before(clock.Epoch.Add(22*time.Hour)), "started inside the window")
	r.runUntilState(devA, time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, img)
}

// window_end: pause stops a running transfer at a block boundary when the window closes; it resumes at its
// offset when the next one opens.
func TestEngineOnSimWindowEndPausesAtBlockBoundary(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 60_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, "      processing_delay: 200ms\n")),
		EngineConfig{Window: WindowList{"00:00-00:01", "02:00-04:00"}, WindowTimezone: "UTC", WindowEnd: "pause"}, img)
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	require.Equal(t, StateUpdating, r.runUntilState(devA, time.Minute, StateUpdating))
	r.h.Run(time.Minute + 30*time.Second)
	st := r.state(devA)
	require.Equal(t, StateQueued, st.State, "paused when the window closed")
	assert.Equal(t, "outside the maintenance window", st.Hold)
	off := r.h.Device(devA).Status().Offset
	assert.Positive(t, off)
	assert.Less(t, off, img.Size())
	r.h.Run(time.Hour)
	assert.Equal(t, off, r.h.Device(devA).Status().Offset, "no block served outside the window")
	r.runUntilState(devA, 4*time.Hour, StateIdle, StateFailed)
	assert.False(t, r.h.Clock.Now().Before(clock.Epoch.Add(2*time.Hour)), "finished in the second window")
	r.assertUpgraded(devA, img)
	assert.Zero(t, r.h.Device(devA).Status().Restarts, "resumed, not restarted")
}

// A battery device below ota.min_battery is held with the reason; recharged, it is served at a later query.
func TestEngineOnSimBatteryTooLowThenRecharged(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 4_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA,
		"      profile: periodic\n      query_interval: 10m\n      power: battery\n      poll_interval: 7s\n      battery: 23\n")),
		EngineConfig{MinBattery: 50}, img)
	r.watchBattery()
	r.out.ReadBattery(devA) // the interview's read
	r.h.RunUntil(func() bool { return r.state(devA).Battery != nil }, time.Minute)
	require.NotNil(t, r.state(devA).Battery)
	assert.Equal(t, 23.0, *r.state(devA).Battery)

	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	st := r.state(devA)
	assert.Equal(t, StateScheduled, st.State)
	assert.Equal(t, "battery 23 % < 50 %", st.Hold)
	r.h.Run(35 * time.Minute)
	assert.Positive(t, r.h.Device(devA).Status().Queries, "the device asked")
	assert.Equal(t, zcl.StatusNoImageAvailable, r.h.Device(devA).Status().LastQueryStatus, "held: no image for now")
	assert.Equal(t, "battery 23 % < 50 %", r.state(devA).Hold)

	r.h.Device(devA).SetBattery(80) // recharged
	r.runUntilState(devA, 2*time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, img)
	assert.Equal(t, 80.0, *r.state(devA).Battery, "the reading taken at a query released it")
}

// A campaign paused across a bridge restart stays paused, resumes on request, and ends with a report.
func TestEngineOnSimCampaignPauseResumeAcrossRestart(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 6_000)
	var devs []string
	var ieees []zcl.IEEE
	for i := range 4 {
		ieee := zcl.IEEE(0x00124b0000002000 + i)
		ieees = append(ieees, ieee)
		devs = append(devs, deviceYAML(ieee, ""))
	}
	// 64-byte blocks: each download takes long enough that the pause after the first device comes while
	// the others still wait (with 223-byte fragmented blocks all four are through before the first reboots).
	cfg := EngineConfig{MaxConcurrent: 1, MaxBlockSize: 64}
	r := newSimRig(t, netYAML(realisticLink, devs...), cfg, img)
	camps := &campaignRecorder{}
	r.out.onCampaign = camps.record
	require.NoError(t, r.eng.CreateCampaign("night", "night", map[string]string{"model": "SimModel"}))
	for _, ieee := range ieees {
		_, err := r.eng.UpdateWith(ieee, nil, UpdateOptions{Campaign: "night"})
		require.NoError(t, err)
	}
	st, err := r.eng.CommitCampaign("night")
	require.NoError(t, err)
	assert.Equal(t, 4, st.Total)
	r.h.RunUntil(func() bool { s, _ := r.eng.CampaignStatus("night"); return s.Done == 1 }, time.Hour)
	_, err = r.eng.PauseCampaign("night")
	require.NoError(t, err)

	r.restart(cfg)
	r.h.Run(30 * time.Minute)
	st, ok := r.eng.CampaignStatus("night")
	require.True(t, ok, "the campaign survived the restart")
	assert.Equal(t, CampaignPaused, st.State)
	assert.Less(t, st.Done, 4, "nothing more finishes while paused")
	doneWhilePaused := st.Done
	for _, ieee := range ieees {
		if s := r.state(ieee); s.State == StateQueued {
			assert.Equal(t, "campaign night paused", s.Hold)
		}
	}
	r.h.Run(30 * time.Minute)
	st, _ = r.eng.CampaignStatus("night")
	assert.Equal(t, doneWhilePaused, st.Done)

	_, err = r.eng.ResumeCampaign("night")
	require.NoError(t, err)
	r.h.RunUntil(func() bool { s, _ := r.eng.CampaignStatus("night"); return s.State == CampaignFinished }, 3*time.Hour)
	st, _ = r.eng.CampaignStatus("night")
	assert.Equal(t, CampaignFinished, st.State)
	assert.Equal(t, 4, st.Done)
	assert.Equal(t, uint64(4*img.Size()), st.Bytes)
	assert.Positive(t, st.Rate)
	for _, ieee := range ieees {
		r.assertUpgraded(ieee, img)
	}
	var report *Event
	for _, ev := range r.out.events {
		if ev.Type == EventCampaignFinished {
			report = &ev
		}
	}
	require.NotNil(t, report, "a campaign_finished report")
	devices := report.Data["devices"].([]CampaignDevice)
	require.Len(t, devices, 4)
	for _, cd := range devices {
		assert.Equal(t, ResultDone, cd.Result, cd.IEEE.String())
	}
	assert.NotEmpty(t, camps.seen, "progress was published")
}

// Cancel withdraws what has not started and ends the campaign with a report.
func TestEngineCampaignCancel(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 6_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, ""), deviceYAML(devB, "")), EngineConfig{MaxConcurrent: 1}, img)
	startCampaign(t, r, "c1", devA, devB)
	st, err := r.eng.CancelCampaign("c1")
	require.NoError(t, err)
	assert.Equal(t, 1, st.Cancelled, "the queued one is withdrawn")
	r.h.RunUntil(func() bool { s, _ := r.eng.CampaignStatus("c1"); return s.State == CampaignFinished }, time.Hour)
	st, _ = r.eng.CampaignStatus("c1")
	assert.Equal(t, CampaignFinished, st.State)
	assert.Equal(t, 1, st.Done, "the running one finished")
	_, err = r.eng.ResumeCampaign("c1")
	assert.ErrorContains(t, err, "not paused")
}

type campaignRecorder struct{ seen []CampaignStatus }

func (c *campaignRecorder) record(st CampaignStatus) { c.seen = append(c.seen, st) }

// fleetYAML is n mains devices whose clients wait between blocks (flash writes, a minimum block period):
// one transfer leaves the channel mostly idle.
func fleetYAML(n int, link string) (string, []zcl.IEEE) {
	var devs []string
	var ieees []zcl.IEEE
	for i := range n {
		ieee := zcl.IEEE(0x00124b0000003000 + i)
		ieees = append(ieees, ieee)
		devs = append(devs, deviceYAML(ieee, "      profile: periodic\n      query_interval: 1h\n      processing_delay: 40ms\n"))
	}
	return netYAML(link, devs...), ieees
}

// fleetRun is one fleet of runSimFleet: the virtual time it took, the adaptive figures, and the mean time
// a frame of the home's other traffic (link.background) waited for the channel.
type fleetRun struct {
	took   time.Duration
	stats  AdaptiveStats
	bgWait time.Duration
}

// runSimFleet updates every device and returns how the fleet went.
func runSimFleet(t *testing.T, yaml string, ieees []zcl.IEEE, cfg EngineConfig, img *Image) fleetRun {
	r := newSimRig(t, yaml, cfg, img)
	for _, ieee := range ieees {
		_, err := r.eng.Update(ieee, nil)
		require.NoError(t, err)
	}
	start := r.h.Now()
	require.True(t, r.h.RunUntil(func() bool {
		for _, ieee := range ieees {
			if s := r.state(ieee).State; s != StateIdle && s != StateFailed {
				return false
			}
		}
		return true
	}, 24*time.Hour))
	for _, ieee := range ieees {
		r.assertUpgraded(ieee, img)
	}
	run := fleetRun{took: r.h.Now() - start, stats: r.eng.Adaptive()}
	if ls := r.h.Net.Stats(); ls.BackgroundFrames > 0 {
		run.bgWait = ls.BackgroundWait / time.Duration(ls.BackgroundFrames)
	}
	return run
}

// max_concurrent: auto finishes a fleet sooner than cap 2 on a healthy mesh, and backs off on a busy, lossy
// one (other devices' traffic on the channel, 8 % loss per attempt): the simulator reports each frame's wait
// for the channel (ncp.StatsSender), so auto runs fewer transfers than cap 2 and the other traffic waits
// less than it does under cap 2.
func TestEngineOnSimAdaptiveConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates four fleets")
	}
	img := makeImage(t, 0x1234, 1, 2, 12_000)
	auto := EngineConfig{MaxConcurrent: ConcurrencyAuto}
	healthy, ieees := fleetYAML(16, realisticLink)
	fixed := runSimFleet(t, healthy, ieees, EngineConfig{MaxConcurrent: 2}, img)
	adaptive := runSimFleet(t, healthy, ieees, auto, img)
	t.Logf("healthy: cap 2 %s, auto %s %+v", fixed.took, adaptive.took, adaptive.stats)
	assert.Less(t, adaptive.took, fixed.took, "auto finishes sooner on a healthy mesh")
	assert.Greater(t, adaptive.stats.Peak, 2)
	assert.Greater(t, adaptive.stats.MeanActive, 2.0)

	busy, _ := fleetYAML(16, "  mode: realistic\n  loss: 0.08\n  background:\n    rate: 80\n    payload: 60")
	busyFixed := runSimFleet(t, busy, ieees, EngineConfig{MaxConcurrent: 2}, img)
	busyAuto := runSimFleet(t, busy, ieees, auto, img)
	t.Logf("busy, lossy: cap 2 %s, other traffic waited %s a frame; auto %s, %s a frame, %+v",
		busyFixed.took, busyFixed.bgWait, busyAuto.took, busyAuto.bgWait, busyAuto.stats)
	assert.Positive(t, busyAuto.stats.Decreases, "auto backs off on a busy, lossy mesh")
	assert.Less(t, busyAuto.stats.MeanActive, 2.0, "fewer transfers at once than cap 2 on the busy mesh")
	assert.Less(t, busyAuto.stats.MeanActive, adaptive.stats.MeanActive, "fewer transfers at once than on the healthy mesh")
	assert.LessOrEqual(t, busyAuto.bgWait, busyFixed.bgWait, "the home's other traffic waits no longer than under cap 2")

	// Without the channel signal (a threshold no wait reaches) auto holds its own against the losses alone
	// and the other traffic waits longer: the signal is what backs it off.
	blind := runSimFleet(t, busy, ieees, EngineConfig{MaxConcurrent: ConcurrencyAuto,
		Adaptive: AdaptiveConfig{ChannelWait: time.Hour, MACRetryRatio: 0.99}}, img)
	t.Logf("busy, lossy, auto without the channel signal: %s, other traffic waited %s a frame, %+v", blind.took, blind.bgWait, blind.stats)
	assert.Greater(t, blind.stats.MeanActive, busyAuto.stats.MeanActive)
	assert.Greater(t, blind.bgWait, busyAuto.bgWait)
}

func TestConcurrencyConfig(t *testing.T) {
	var c Concurrency
	require.NoError(t, c.UnmarshalText([]byte("auto")))
	assert.Equal(t, ConcurrencyAuto, c)
	require.NoError(t, c.UnmarshalText([]byte(" 4 ")))
	assert.Equal(t, Concurrency(4), c)
	assert.Error(t, c.UnmarshalText([]byte("fast")))
	b, _ := ConcurrencyAuto.MarshalJSON()
	assert.JSONEq(t, `"auto"`, string(b))
	assert.ErrorContains(t, EngineConfig{MaxConcurrent: -5}.Validate(), "max_concurrent")
	assert.ErrorContains(t, EngineConfig{MinBattery: 120}.Validate(), "min_battery")
	assert.ErrorContains(t, EngineConfig{WindowEnd: "stop"}.Validate(), "window_end")
	assert.ErrorContains(t, EngineConfig{Window: WindowList{"9-5"}}.Validate(), "ota.window")
	assert.ErrorContains(t, EngineConfig{Adaptive: AdaptiveConfig{Min: 5, Max: 2}}.Validate(), "ota.adaptive")
	assert.ErrorContains(t, EngineConfig{Adaptive: AdaptiveConfig{MACRetryRatio: 1.5}}.Validate(), "mac_retry_ratio")
	assert.ErrorContains(t, EngineConfig{Adaptive: AdaptiveConfig{ChannelWait: -time.Second}}.Validate(), "channel_wait")
	assert.NoError(t, EngineConfig{MaxConcurrent: ConcurrencyAuto, Window: WindowList{"mon-fri 01:00-05:00"}}.Validate())
}

// A device that leaves the network ends its part of a campaign as failed, so the campaign still ends.
func TestEngineCampaignDeviceLeaves(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 6_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, ""), deviceYAML(devB, "")), EngineConfig{MaxConcurrent: 1}, img)
	startCampaign(t, r, "c2", devA, devB)
	r.eng.RemoveDevice(devB)
	r.h.RunUntil(func() bool { s, _ := r.eng.CampaignStatus("c2"); return s.State == CampaignFinished }, time.Hour)
	st, _ := r.eng.CampaignStatus("c2")
	assert.Equal(t, CampaignFinished, st.State)
	assert.Equal(t, 1, st.Done)
	require.Len(t, st.Failures, 1)
	assert.Equal(t, "the device left the network", st.Failures[0].Reason)
}

// startCampaign makes campaign id of the devices' updates and commits it.
func startCampaign(t *testing.T, r *simRig, id string, ieees ...zcl.IEEE) CampaignStatus {
	t.Helper()
	require.NoError(t, r.eng.CreateCampaign(id, id, nil))
	for _, ieee := range ieees {
		_, err := r.eng.UpdateWith(ieee, nil, UpdateOptions{Campaign: id})
		require.NoError(t, err)
	}
	st, err := r.eng.CommitCampaign(id)
	require.NoError(t, err)
	return st
}
