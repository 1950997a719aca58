package ezsp_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecodeCounters: readAndClearCounters' response is one little-endian u16 per EmberCounterType, in
// order (EmberZNet 7.x: 42 of them); the MAC unicast counts are indexes 3, 4 and 5, CCA failures 32.
func TestDecodeCounters(t *testing.T) {
	b := make([]byte, 2*ezsp.EmberCounterCount)
	put := func(i int, v uint16) { binary.LittleEndian.PutUint16(b[2*i:], v) }
	put(ezsp.CounterMACTxUnicastSuccess, 0x0102)
	put(ezsp.CounterMACTxUnicastRetry, 40)
	put(ezsp.CounterMACTxUnicastFailed, 3)
	put(ezsp.CounterPHYCCAFail, 7)
	put(ezsp.CounterAPSTxUnicastOK, 0xFFFF)
	c, err := ezsp.DecodeCounters(b)
	require.NoError(t, err)
	require.Len(t, c, ezsp.EmberCounterCount)
	assert.Equal(t, uint16(0xFFFF), c[ezsp.CounterAPSTxUnicastOK])
	assert.Equal(t, ncp.MACCounts{Unicasts: 0x0102 + 3, Retries: 40, Failed: 3, CCAFailures: 7}, c.MAC())
	assert.Equal(t, b, c.Append(nil))

	_, err = ezsp.DecodeCounters(b[:65])
	assert.EqualError(t, err, "readAndClearCounters: 65 bytes: want an even number, at least 66")
	_, err = ezsp.DecodeCounters(b[:64])
	assert.Error(t, err, "a stack without the CCA counter")
	c, err = ezsp.DecodeCounters(b[:66])
	require.NoError(t, err, "an older stack with fewer counters")
	assert.Equal(t, 7, c.MAC().CCAFailures)
}

// TestMACCountersThroughFakeStick: the fake stick counts what the simulated network reports each unicast
// cost the MAC (a lossy link: retries), the driver reads them with readAndClearCounters, and a second read
// finds them cleared.
func TestMACCountersThroughFakeStick(t *testing.T) {
	cfg, err := sim.ParseConfig([]byte(`
seed: 7
link: {mode: realistic, loss: 0.3}
devices:
  - ieee: "0x00124b00000000a1"
    nwk: 0x3A01
    model: ESP32H2-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    power: mains
`))
	require.NoError(t, err)
	network, err := sim.New(cfg, clock.NewVirtual(), testLog(t))
	require.NoError(t, err)
	drv, _ := simDriver(t, network, network, 14)
	nextEvent(t, drv, ncp.EventAnnounced)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = drv.MACCounters(ctx) // what the bring-up cost
	require.NoError(t, err)

	const frames = 20
	delivered := 0
	for i := range frames {
		req := zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ClientToServer, false, uint8(i), zcl.CmdReadAttributes),
			zcl.ReadAttributes{AttributeIDs: []uint16{zcl.AttrBasicModelIdentifier}})
		if drv.Send(ctx, ncp.Frame{DstShort: 0x3A01, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterBasic,
			ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: req}) == nil {
			delivered++
		}
	}
	m, err := drv.MACCounters(ctx)
	require.NoError(t, err)
	t.Logf("%d of %d delivered; MAC counters %+v", delivered, frames, m)
	assert.GreaterOrEqual(t, m.Unicasts, frames, "every unicast (and each APS retry of one) is a MAC frame")
	assert.Positive(t, m.Retries, "30 %% loss per attempt makes the MAC retry")
	assert.LessOrEqual(t, m.Failed, m.Unicasts)

	m, err = drv.MACCounters(ctx)
	require.NoError(t, err)
	assert.Equal(t, ncp.MACCounts{}, m, "readAndClearCounters cleared them")
}
