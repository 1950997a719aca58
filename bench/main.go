// Command bench measures otabridge on this machine and prints one markdown table: the engine's cost per
// served block, modelled single-device goodput against the link model's limit, a 100-device fleet's modelled
// time against the channel minimum (otabridge's defaults and a zigbee2mqtt-like policy side by side), the
// real bridge binary's peak RSS and CPU time for that fleet on the simulated network, and OTA block
// throughput through the EZSP driver and the fake stick at 115200 and 460800 baud.
//
//	go run ./bench          # the full run (a few minutes)
//	go run ./bench -quick   # smaller fleets and images, shorter serial runs (well under a minute)
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/otabridge/otabridge/ota"
)

// plan is what one run measures.
type plan struct {
	goodputSize   int     // image bytes of the single-device goodput runs
	fleetDevices  int     // devices of the modelled fleets and the bridge fleet
	fleetImages   int     // distinct images of a fleet
	fleetSize     int     // image bytes of a fleet
	bridgeSpeed   float64 // radio.sim_speed of the bridge run
	bridgeTimeout time.Duration
	serialTime    time.Duration   // per baud rate
	only          map[string]bool // sections to run; nil: all
	// adaptiveDevices and adaptiveSize: the fleet of the adaptive-concurrency comparison (adaptive.go).
	adaptiveDevices, adaptiveSize int
}

// sections of a run, in order.
var sections = []string{"engine", "goodput", "fleet", "adaptive", "bridge", "serial"}

func (p plan) runs(section string) bool { return p.only == nil || p.only[section] }

func fullPlan() plan {
	return plan{goodputSize: 100_000, fleetDevices: 100, fleetImages: 10, fleetSize: 300_000, bridgeSpeed: 1000,
		bridgeTimeout: 10 * time.Minute, serialTime: 3 * time.Second, adaptiveDevices: 40, adaptiveSize: 40_000}
}

func quickPlan() plan {
	return plan{goodputSize: 30_000, fleetDevices: 10, fleetImages: 5, fleetSize: 30_000, bridgeSpeed: 1000,
		bridgeTimeout: 3 * time.Minute, serialTime: time.Second, adaptiveDevices: 12, adaptiveSize: 12_000}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "smaller fleets and images, shorter serial runs")
	speed := fs.Float64("sim-speed", 0, "radio.sim_speed of the bridge run (default 1000)")
	only := fs.String("only", "", "comma-separated sections to run: "+strings.Join(sections, ","))
	keep := fs.Bool("keep", false, "keep the scratch directory (bridge log, config, images) and print its path")
	verbose := fs.Bool("v", false, "progress on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p := fullPlan()
	if *quick {
		p = quickPlan()
	}
	if *speed > 0 {
		p.bridgeSpeed = *speed
	}
	if *only != "" {
		p.only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(sections, s) {
				fmt.Fprintf(stderr, "bench: -only: unknown section %q (want %s)\n", s, strings.Join(sections, ","))
				return 2
			}
			p.only[s] = true
		}
	}
	logf := func(format string, a ...any) {
		if *verbose {
			fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		}
	}
	dir, err := os.MkdirTemp("", "otabridge-bench-")
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if *keep {
		fmt.Fprintf(stderr, "bench: scratch directory %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	m, err := measure(p, dir, logf)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	m.render(stdout)
	return 0
}

// measurements are the results of one run.
type measurements struct {
	plan    plan
	started time.Time
	took    time.Duration
	engine  *engineResult
	goodput []goodputResult
	fleets  []fleetResult // otabridge defaults, then zigbee2mqtt-like
	// adaptive: cap 2 then auto, on a healthy then a busy, lossy mesh.
	adaptive []adaptiveResult
	bridge   *bridgeResult
	serial   []serialResult
}

func measure(p plan, dir string, logf func(string, ...any)) (*measurements, error) {
	m := &measurements{plan: p, started: time.Now()}
	sub := func(name string) (string, error) { return tempDir(dir, name) }

	if p.runs("engine") {
		logf("engine: serving blocks")
		d, err := sub("engine")
		if err != nil {
			return nil, err
		}
		r, err := benchEngineBlock(d)
		if err != nil {
			return nil, err
		}
		m.engine = &r
	}

	for _, c := range []struct {
		max   int
		paged bool
	}{{48, false}, {64, false}, {223, false}, {64, true}} {
		if !p.runs("goodput") {
			break
		}
		logf("goodput: client max %d, paged %v", c.max, c.paged)
		d, err := sub("goodput")
		if err != nil {
			return nil, err
		}
		r, err := measureGoodput(d, c.max, c.paged, p.goodputSize)
		if err != nil {
			return nil, err
		}
		m.goodput = append(m.goodput, r)
	}

	for _, f := range []struct {
		name string
		cfg  ota.EngineConfig
	}{
		{"otabridge", ota.EngineConfig{}},
		{"zigbee2mqtt-like", ota.EngineConfig{MaxBlockSize: 50, BlockResponseDelay: 250 * time.Millisecond, MaxConcurrent: 1}},
	} {
		if !p.runs("fleet") {
			break
		}
		logf("fleet: %s, %d devices × %d B", f.name, p.fleetDevices, p.fleetSize)
		d, err := sub("fleet")
		if err != nil {
			return nil, err
		}
		r, err := runFleet(d, f.name, f.cfg, p.fleetDevices, p.fleetImages, p.fleetSize)
		if err != nil {
			return nil, err
		}
		logf("fleet: %s modelled %s in %s wall", f.name, r.modelled.Round(time.Second), r.wall.Round(time.Millisecond))
		m.fleets = append(m.fleets, r)
	}

	if p.runs("adaptive") && p.adaptiveDevices > 0 {
		r, err := measureAdaptive(sub, p.adaptiveDevices, p.adaptiveSize, logf)
		if err != nil {
			return nil, err
		}
		m.adaptive = r
	}

	if p.runs("bridge") {
		d, err := sub("bridge")
		if err != nil {
			return nil, err
		}
		logf("bridge: building and running the binary, %d devices at sim speed %g", p.fleetDevices, p.bridgeSpeed)
		r, err := bridgeRun{dir: d, devices: p.fleetDevices, images: p.fleetImages, imageSize: p.fleetSize,
			speed: p.bridgeSpeed, timeout: p.bridgeTimeout, logf: logf}.run()
		if err != nil {
			return nil, err
		}
		m.bridge = &r
	}

	type serialRun struct {
		protocol             string
		baud, streams, block int
	}
	var serialRuns []serialRun
	for _, protocol := range serialProtocols {
		for _, streams := range []int{1, 4} { // one request-response stream; four transfers at once fill the line
			for _, baud := range []int{115200, 460800} {
				serialRuns = append(serialRuns, serialRun{protocol, baud, streams, 64})
			}
		}
	}
	for _, streams := range []int{1, 4} { // EZSP host APS fragmentation: 223 B blocks, 3 fragments each
		for _, baud := range []int{115200, 460800} {
			serialRuns = append(serialRuns, serialRun{"ezsp", baud, streams, 223})
		}
	}
	for _, c := range serialRuns {
		if !p.runs("serial") {
			break
		}
		logf("serial: %s, %d baud, %d transfer(s) at once, %d B blocks", c.protocol, c.baud, c.streams, c.block)
		r, err := benchSerial(c.protocol, c.baud, c.streams, c.block, p.serialTime)
		if err != nil {
			return nil, err
		}
		m.serial = append(m.serial, r)
	}
	m.took = time.Since(m.started)
	return m, nil
}
