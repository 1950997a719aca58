package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMeasureSmall runs every in-process section at a tiny size and checks the figures make sense.
func TestMeasureSmall(t *testing.T) {
	p := plan{goodputSize: 6_000, fleetDevices: 4, fleetImages: 2, fleetSize: 4_000, serialTime: 300 * time.Millisecond,
		only: map[string]bool{"engine": true, "goodput": true, "fleet": true, "serial": true}}
	m, err := measure(p, t.TempDir(), t.Logf)
	require.NoError(t, err)

	require.NotNil(t, m.engine)
	assert.Positive(t, m.engine.nsPerBlock)
	require.Len(t, m.goodput, 4)
	for _, g := range m.goodput[:3] {
		assert.GreaterOrEqual(t, g.goodput/g.linkLimit, 0.9, "block client %d B", g.clientMax)
	}
	assert.Equal(t, 48, m.goodput[0].block)
	assert.Equal(t, 64, m.goodput[1].block)
	assert.Equal(t, 223, m.goodput[2].block, "the esp-v2 client gets the 223 B it asks for, APS-fragmented")
	assert.Greater(t, m.goodput[2].goodput, 1.9*m.goodput[1].goodput, "fragmented 223 B blocks against 64 B blocks")
	assert.Greater(t, m.goodput[3].goodput, m.goodput[3].linkLimit, "page requests beat request-response")

	require.Len(t, m.fleets, 2)
	for _, f := range m.fleets {
		assert.Equal(t, p.fleetDevices, f.upgraded, "%s: every device upgraded", f.policy)
		assert.Zero(t, f.failed)
	}
	assert.Equal(t, 64, m.fleets[0].block)
	assert.Equal(t, 50, m.fleets[1].block)
	assert.Equal(t, 1, m.fleets[1].parallel)
	assert.Greater(t, m.fleets[1].modelled, 5*m.fleets[0].modelled, "250 ms per block is far slower")

	require.Len(t, m.serial, 16, "EZSP, ZNP and ZBOSS with 1 and 4 transfers at 115200 and 460800 baud, EZSP with 223 B fragmented blocks")
	for _, s := range m.serial {
		assert.Positive(t, s.blocks)
		assert.LessOrEqual(t, s.blocksPerSecond(), s.uartBlocksS*1.05, "%s %d baud: paced below the UART bound", s.protocol, s.baud)
		// A faithful line: a stick cannot answer a frame before it has crossed, so one stream stays under the
		// bound of directions taking turns, and concurrent transfers under the one-command-outstanding bound.
		if s.streams == 1 {
			assert.LessOrEqual(t, s.blocksPerSecond(), s.alternatingBlocksS()*1.05, "%s %d baud, one stream: directions take turns", s.protocol, s.baud)
		} else if turn := s.commandTurnBlocksS(); turn > 0 {
			assert.LessOrEqual(t, s.blocksPerSecond(), turn*1.05, "%s %d baud, %d streams: one command outstanding", s.protocol, s.baud, s.streams)
		}
		t.Logf("%s at %d baud: %.0f blocks/s of %d B, UART bound %.0f blocks/s (%.0f wire bytes per block to the stick, %.0f back)",
			s.protocol, s.baud, s.blocksPerSecond(), s.block, s.uartBlocksS, s.hostToStick, s.stickToHost)
	}
	assert.Equal(t, 4, m.serial[2].streams)
	assert.Greater(t, m.serial[2].blocksPerSecond(), m.serial[0].blocksPerSecond(), "EZSP: four transfers at once fill the line better than one")
	frag := m.serial[12]
	assert.True(t, frag.fragmented())
	assert.Equal(t, 223, frag.block)
	assert.Greater(t, frag.blocksPerSecond()*223, m.serial[0].blocksPerSecond()*64, "fragmented 223 B blocks carry more bytes per second than 64 B ones")
	assert.Greater(t, responseWireBytes("ezsp"), 10.0)
	assert.Equal(t, 6.0, responseWireBytes("znp"), "SOF, length, CMD0, CMD1, status, FCS")
	for i := 0; i+1 < len(m.serial); i += 2 {
		assert.Greater(t, m.serial[i+1].blocksPerSecond(), m.serial[i].blocksPerSecond(), "%s: 460800 baud is faster", m.serial[i].protocol)
	}

	var out bytes.Buffer
	m.render(&out)
	table := out.String()
	assert.Contains(t, table, "| measure | result | reference | ratio |")
	assert.Equal(t, 1+4+2+len(m.serial)+1, strings.Count(table, "\n| ")-1, "a row per figure (engine, goodput, fleets, serial, fleet through the stick):\n%s", table)
}

// TestBridgeBinaryFleet builds the bridge and runs a tiny fleet through it over MQTT.
func TestBridgeBinaryFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the otabridge binary")
	}
	res, err := bridgeRun{dir: t.TempDir(), devices: 3, images: 2, imageSize: 5_000, speed: 500,
		timeout: 2 * time.Minute, logf: t.Logf}.run()
	require.NoError(t, err)
	assert.Equal(t, 3, res.queued)
	assert.Equal(t, 3, res.finished)
	assert.Zero(t, res.failed)
	assert.Positive(t, res.peakRSS)
	assert.Positive(t, res.cpu)
	assert.Positive(t, res.virtual)
}

func TestRunRejectsUnknownSection(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, run([]string{"-only", "nope"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), `unknown section "nope"`)
	assert.Empty(t, stdout.String())
}
