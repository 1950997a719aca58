package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/sim"
)

// seedTunedGoodput is the goodput the seed (esp-zigbee-sdk OTA chapter) reports for its tuned client: 8.1 KB/s.
const seedTunedGoodput = 8100.0

// row is one line of the table.
type row struct{ measure, result, reference, ratio string }

func (m *measurements) rows() []row {
	var rows []row
	if e := m.engine; e != nil {
		rows = append(rows, row{
			"Engine: one 64 B Image Block Request served (HandleFrame, image read from its file)",
			fmt.Sprintf("%.0f ns/block, %d allocs/block, %d B/block", e.nsPerBlock, e.allocsPerBlock, e.bytesPerBlock),
			fmt.Sprintf("%.0f blocks/s of one core", 1e9/e.nsPerBlock), "—",
		})
	}
	for _, g := range m.goodput {
		name := fmt.Sprintf("Modelled goodput, 1 device, block client asking %d B (served %d B blocks)", g.clientMax, g.block)
		ref := fmt.Sprintf("link-model limit %.0f B/s (request–response, APS acks, 1 hop)", g.linkLimit)
		if g.paged {
			name = fmt.Sprintf("Modelled goodput, 1 device, page client (%d B blocks, 4096 B pages, 5 ms spacing)", g.block)
			ref = fmt.Sprintf("block-by-block limit %.0f B/s", g.linkLimit)
		}
		ratio := fmt.Sprintf("%.3f", g.goodput/g.linkLimit)
		if !g.paged && g.block > sim.MaxAPSPayload-17 {
			name = fmt.Sprintf("Modelled goodput, 1 device, esp-v2 client asking %d B (served %d B blocks, APS-fragmented, window %d)",
				g.clientMax, g.block, sim.DefaultFragmentWindow)
			ref = fmt.Sprintf("fragmented link-model limit %.0f B/s; the seed's tuned %.0f B/s; unfragmented 64 B blocks %.0f B/s",
				g.linkLimit, seedTunedGoodput, sim.LinkModel{}.BlockGoodput(64, true, 1))
			ratio += fmt.Sprintf(" of the model, %.2f of the seed, %.2f× unfragmented", g.goodput/seedTunedGoodput,
				g.goodput/sim.LinkModel{}.BlockGoodput(64, true, 1))
		}
		rows = append(rows, row{name, fmt.Sprintf("%.0f B/s", g.goodput), ref, ratio})
	}
	var ours time.Duration
	for i, f := range m.fleets {
		name := fmt.Sprintf("Fleet %d × %s, otabridge defaults (%d B blocks, %d at once): modelled total",
			f.devices, kb(f.imageSize), f.block, f.parallel)
		ratio := fmt.Sprintf("%.3f", f.modelled.Seconds()/f.minimum.Seconds())
		if i == 0 {
			ours = f.modelled
		} else {
			name = fmt.Sprintf("Fleet %d × %s, zigbee2mqtt-like (%d B blocks, 250 ms response delay, %d at once): modelled total",
				f.devices, kb(f.imageSize), f.block, f.parallel)
			ratio += fmt.Sprintf(" (%.1f× otabridge)", f.modelled.Seconds()/ours.Seconds())
		}
		result := hms(f.modelled)
		if f.failed > 0 {
			result += fmt.Sprintf(", %d of %d NOT upgraded", f.failed, f.devices)
		}
		rows = append(rows, row{name, result, "channel minimum " + hms(f.minimum) + " (every byte at the 64 B block limit)", ratio})
	}
	rows = append(rows, adaptiveRows(m.adaptive)...)
	if b := m.bridge; b != nil {
		fleet := fmt.Sprintf("%d × %s", b.devices, kb(b.imageSize))
		rows = append(rows,
			row{fmt.Sprintf("Bridge binary, %s sim fleet at sim speed %g, update_all over MQTT: peak RSS (VmHWM)", fleet, b.speed),
				fmt.Sprintf("%.1f MB", float64(b.peakRSS)/1e6), fmt.Sprintf("%d of %d ota_finished, %d failed", b.finished, b.devices, b.failed), "—"},
			row{"Bridge binary, same run: CPU time (user + system, start to exit)",
				fmt.Sprintf("%.1f s", b.cpu.Seconds()), fmt.Sprintf("wall %s from update_all to the last ota_finished", b.wall.Round(time.Second)),
				fmt.Sprintf("%.2f cores", b.cpu.Seconds()/b.wall.Seconds())},
		)
		if b.virtual > 0 && len(m.fleets) > 0 && m.fleets[0].devices == b.devices {
			rows = append(rows, row{"Bridge binary, same run: simulated time of the fleet (sim_time of the first download start to the last upgrade)",
				hms(b.virtual), "the discrete-event run above: " + hms(m.fleets[0].modelled),
				fmt.Sprintf("%.3f (paced clock at %g×; target within 5 %%)", b.virtual.Seconds()/m.fleets[0].modelled.Seconds(), b.speed)})
		}
	}
	for _, s := range m.serial {
		blocks, how, radio := fmt.Sprintf("%d B blocks", s.block), "", sim.LinkModel{}.BlockGoodput(s.block, true, 1)
		if s.fragmented() {
			frags := sim.Fragments(s.block + sim.BlockResponseOverhead)
			blocks += fmt.Sprintf(" APS-fragmented (%d sendUnicast fragments per block, one window)", frags)
			how = "fragmented "
		}
		rate := s.blocksPerSecond()
		reference := fmt.Sprintf("UART bound %.0f blocks/s = %.0f B/s (busier direction never idle)", s.uartBlocksS, s.uartBlocksS*float64(s.block))
		ratio := fmt.Sprintf("%.2f of UART", rate/s.uartBlocksS)
		if s.streams == 1 {
			reference += fmt.Sprintf("; one stream alternates directions: ≤ %.0f blocks/s", s.alternatingBlocksS())
			ratio += fmt.Sprintf(", %.2f of alternating", rate/s.alternatingBlocksS())
		} else if turn := s.commandTurnBlocksS(); turn > 0 {
			reference += fmt.Sprintf("; one command outstanding (the host waits for each %.0f B response): ≤ %.0f blocks/s",
				responseWireBytes(s.protocol), turn)
			ratio += fmt.Sprintf(", %.2f of the command-turn bound", rate/turn)
		} else {
			reference += fmt.Sprintf("; stop-and-wait link layer (each frame waits for the peer's ACK, which queues behind the peer's own frame): about the alternating %.0f blocks/s",
				s.alternatingBlocksS())
			ratio += fmt.Sprintf(", %.2f of alternating", rate/s.alternatingBlocksS())
		}
		reference += fmt.Sprintf("; radio 1-hop %slimit %.0f B/s", how, radio)
		ratio += fmt.Sprintf(", %.1f× radio", rate*float64(s.block)/radio)
		rows = append(rows, row{
			fmt.Sprintf("Serial: %s through %s + fake stick, %d baud paced both ways, %d transfer(s) at once (send, confirm, next request)",
				blocks, serialStack[s.protocol], s.baud, s.streams),
			fmt.Sprintf("%.0f blocks/s = %.0f B/s (wire bytes per block: %.0f to the stick, %.0f back)", rate,
				rate*float64(s.block), s.hostToStick, s.stickToHost),
			reference, ratio,
		})
	}
	rows = append(rows, m.fleetThroughStickRow()...)
	return rows
}

// fleetThroughStickRow combines the modelled fleet (otabridge defaults) with the measured serial throughput
// of concurrent transfers at 115200 baud: the fleet's blocks must pass both the channel and the serial link,
// so its modelled total through a stick is the longer of the two.
func (m *measurements) fleetThroughStickRow() []row {
	if len(m.fleets) == 0 {
		return nil
	}
	var serial *serialResult
	for i := range m.serial {
		if s := &m.serial[i]; s.protocol == "ezsp" && s.baud == 115200 && s.block == 64 && (serial == nil || s.streams > serial.streams) {
			serial = s
		}
	}
	if serial == nil {
		return nil
	}
	f := m.fleets[0]
	blocks := float64(f.devices) * float64((f.imageSize+f.block-1)/f.block)
	serialTime := time.Duration(blocks / serial.blocksPerSecond() * float64(time.Second))
	total := max(f.modelled, serialTime)
	return []row{{
		fmt.Sprintf("Fleet %d × %s through EZSP driver + fake stick at 115200 baud (%d B blocks; serial throughput measured with %d transfers at once): modelled total",
			f.devices, kb(f.imageSize), f.block, serial.streams),
		hms(total) + fmt.Sprintf(" (serial link alone %s, radio alone %s)", hms(serialTime), hms(f.modelled)),
		"radio-only figure " + hms(f.modelled) + "; channel minimum " + hms(f.minimum),
		fmt.Sprintf("%.3f of the radio-only speed", f.modelled.Seconds()/total.Seconds()),
	}}
}

func (m *measurements) render(w io.Writer) {
	mode := "full"
	if m.plan.fleetDevices < fullPlan().fleetDevices {
		mode = "quick"
	}
	fmt.Fprintf(w, "otabridge bench (%s run, %s, %s/%s, %d CPUs, %s, took %s)\n\n", mode, m.started.Format(time.DateTime),
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), m.took.Round(time.Second))
	fmt.Fprintln(w, "| measure | result | reference | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range m.rows() {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", cell(r.measure), cell(r.result), cell(r.reference), cell(r.ratio))
	}
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func kb(n int) string {
	if n >= 1000 {
		return fmt.Sprintf("%d KB", n/1000)
	}
	return fmt.Sprintf("%d B", n)
}

// hms formats a modelled duration to the second.
func hms(d time.Duration) string { return d.Round(time.Second).String() }

// serialStack names what a serial bench row goes through.
var serialStack = map[string]string{"ezsp": fmt.Sprintf("EZSP driver + ASH (host window %d, stick %d)", ezsp.DefaultASHWindow, fakestick.NCPWindow), "znp": "ZNP driver + MT frames", "zboss": "ZBOSS driver + ZBOSS NCP frames"}
