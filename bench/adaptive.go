package main

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/bench/internal/simrig"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
)

// Adaptive concurrency (ota.max_concurrent: auto) against the fixed default cap of 2, on a healthy mesh and
// on a busy, lossy one. The fleet's clients take 40 ms to handle each block (a flash write; many real
// clients also ask for a minimum block period), so one transfer leaves the channel mostly idle: that
// headroom is what auto uses, and what the busy mesh's other traffic takes away. The simulator reports
// each frame's wait for the channel and its MAC retries (ncp.StatsSender); auto halves its limit when the
// wait exceeds ota.adaptive.channel_wait, so on the busy mesh it runs fewer transfers than cap 2 and the
// other traffic waits less for the channel than it does under cap 2 (the "other traffic waited" figures).

// adaptiveMesh is one link configuration of the comparison.
type adaptiveMesh struct {
	name string
	link sim.LinkConfig
}

var adaptiveMeshes = []adaptiveMesh{
	{"healthy mesh", sim.LinkConfig{Mode: sim.ModeRealistic}},
	{"busy, lossy mesh (8 % loss per attempt, 80 frames/s of 60 B other traffic)", sim.LinkConfig{Mode: sim.ModeRealistic,
		Loss: 0.08, Background: sim.BackgroundConfig{Rate: 80, Payload: 60}}},
}

// adaptiveResult is one fleet run of the comparison.
type adaptiveResult struct {
	mesh      string
	policy    string // "cap 2" or "auto"
	devices   int
	imageSize int
	modelled  time.Duration
	upgraded  int
	stats     ota.AdaptiveStats
	maxActive int
	// bgWait is the mean time a frame of the other traffic waited for the channel (busy mesh only).
	bgWait time.Duration
}

// runAdaptiveFleet upgrades devices on the mesh with engine configuration cfg and measures the modelled
// time until every device is done, the most transfers seen at once and the adaptive controller's figures.
func runAdaptiveFleet(dir string, mesh adaptiveMesh, policy string, cfg ota.EngineConfig, devices, size int) (adaptiveResult, error) {
	store, err := imageStore(dir, 1, size)
	if err != nil {
		return adaptiveResult{}, err
	}
	defer store.Close()
	simCfg := sim.Config{Seed: 7, Link: mesh.link}
	for i := 0; i < devices; i++ {
		d := benchDevice(i, 1)
		d.ProcessingDelay = 40 * time.Millisecond
		simCfg.Devices = append(simCfg.Devices, d)
	}
	rig, err := simrig.New(simCfg, cfg, store, simrig.Observer{}, zerolog.Nop())
	if err != nil {
		return adaptiveResult{}, err
	}
	defer rig.Close()
	for _, d := range simCfg.Devices {
		if _, err := rig.Engine.Update(d.IEEE, nil); err != nil {
			return adaptiveResult{}, fmt.Errorf("update %s: %w", d.IEEE, err)
		}
	}
	res := adaptiveResult{mesh: mesh.name, policy: policy, devices: devices, imageSize: int(store.Images()[0].Size())}
	start := rig.Now()
	steps := 0
	done := func() bool {
		steps++
		if a, _ := rig.Engine.Counts(); a > res.maxActive {
			res.maxActive = a
		}
		if steps%500 != 0 && rig.Clock.Pending() > 0 {
			return false
		}
		for _, st := range rig.Engine.States() {
			if st.State != ota.StateIdle && st.State != ota.StateFailed {
				return false
			}
		}
		return true
	}
	if !rig.RunUntil(done, 100*time.Hour) {
		return adaptiveResult{}, fmt.Errorf("adaptive fleet %s, %s: not done within 100 modelled hours", mesh.name, policy)
	}
	res.modelled = rig.Now() - start
	res.stats = rig.Engine.Adaptive()
	if ls := rig.Net.Stats(); ls.BackgroundFrames > 0 {
		res.bgWait = ls.BackgroundWait / time.Duration(ls.BackgroundFrames)
	}
	for _, st := range rig.Engine.States() {
		if st.State == ota.StateIdle && st.InstalledVersion != nil && *st.InstalledVersion == newVersion {
			res.upgraded++
		}
	}
	return res, nil
}

// measureAdaptive runs cap 2 and auto on each mesh.
func measureAdaptive(sub func(string) (string, error), devices, size int, logf func(string, ...any)) ([]adaptiveResult, error) {
	var out []adaptiveResult
	for _, mesh := range adaptiveMeshes {
		for _, pol := range []struct {
			name string
			cfg  ota.EngineConfig
		}{{"cap 2", ota.EngineConfig{MaxConcurrent: 2}}, {"auto", ota.EngineConfig{MaxConcurrent: ota.ConcurrencyAuto}}} {
			logf("adaptive: %s, %s, %d devices × %d B", mesh.name, pol.name, devices, size)
			d, err := sub("adaptive")
			if err != nil {
				return nil, err
			}
			r, err := runAdaptiveFleet(d, mesh, pol.name, pol.cfg, devices, size)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// adaptiveRows renders the comparison: per mesh, cap 2 then auto with the ratio of their times.
func adaptiveRows(results []adaptiveResult) []row {
	var rows []row
	for i := 0; i+1 < len(results); i += 2 {
		fixed, auto := results[i], results[i+1]
		fleet := fmt.Sprintf("%d × %s, clients 40 ms per block", fixed.devices, kb(fixed.imageSize))
		note := func(r adaptiveResult) string {
			s := hms(r.modelled)
			if r.bgWait > 0 {
				s += fmt.Sprintf("; other traffic waited %.1f ms a frame for the channel", float64(r.bgWait)/float64(time.Millisecond))
			}
			if r.upgraded < r.devices {
				s += fmt.Sprintf(", %d of %d NOT upgraded", r.devices-r.upgraded, r.devices)
			}
			return s
		}
		rows = append(rows,
			row{fmt.Sprintf("Adaptive concurrency, %s, fleet %s: max_concurrent 2, modelled total", fixed.mesh, fleet),
				note(fixed), fmt.Sprintf("at most %d transfers at once", fixed.maxActive), "—"},
			row{fmt.Sprintf("Adaptive concurrency, %s, same fleet: max_concurrent auto, modelled total", auto.mesh),
				note(auto), fmt.Sprintf("limit peaked at %d, ended at %d; %d raises, %d decreases; %.1f transfers at once on average",
					auto.stats.Peak, auto.stats.Limit, auto.stats.Increases, auto.stats.Decreases, auto.stats.MeanActive),
				fmt.Sprintf("%.2f× the cap-2 time", auto.modelled.Seconds()/fixed.modelled.Seconds())},
		)
	}
	return rows
}
