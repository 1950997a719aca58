package zboss_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/zboss"
	"github.com/otabridge/otabridge/ncp/zboss/fakestick"
	"github.com/otabridge/otabridge/zcl"
)

const simYAML = `
link: {mode: fast}
devices:
  - ieee: "0x00124b00000000a1"
    nwk: 0x3A01
    model: ESP32C6-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    power: mains
`

var fastTimeouts = zboss.Timeouts{Reset: 2 * time.Second, Command: 2 * time.Second, Formation: 3 * time.Second, Send: 5 * time.Second,
	ReconnectMin: 20 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, AckTimeout: 200 * time.Millisecond}

type rig struct {
	network *sim.Network
	stick   *fakestick.Stick
	open    zboss.Opener
	ctx     context.Context
}

// newRig runs a simulated network behind a fake ZBOSS NCP; open gives the host side of a fresh in-memory
// port each time (a reconnect opens a new one).
func newRig(t *testing.T, cfg fakestick.Config) *rig {
	t.Helper()
	simCfg, err := sim.ParseConfig([]byte(simYAML))
	require.NoError(t, err)
	clk := clock.NewVirtual()
	network, err := sim.New(simCfg, clk, zerolog.Nop())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = clk.Pace(ctx, 50) }()
	if cfg.EUI64 == 0 {
		cfg.EUI64 = network.Config().CoordinatorIEEE
	}
	stick := fakestick.New(network, cfg)
	r := &rig{network: network, stick: stick, ctx: ctx}
	r.open = func(context.Context) (io.ReadWriteCloser, error) {
		host, ncpSide := net.Pipe()
		wg.Add(1)
		go func() { defer wg.Done(); _ = stick.Serve(ctx, ncpSide) }()
		return host, nil
	}
	t.Cleanup(func() {
		cancel()
		stick.Close()
		network.Close()
		wg.Wait()
	})
	return r
}

func networkOf(p sim.NetworkParams) ncp.NetworkSettings {
	return ncp.NetworkSettings{Channel: p.Channel, PANID: p.PANID, ExtendedPANID: p.ExtendedPANID, NetworkKey: ncp.NetworkKey(p.NetworkKey)}
}

func nextEvent(t *testing.T, d *zboss.Driver, kind ncp.EventKind) ncp.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-d.Events():
			require.True(t, ok, "events closed while waiting for %v", kind)
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event", kind)
		}
	}
}

func readBasic(t *testing.T, ctx context.Context, d *zboss.Driver, tsn uint8) zcl.ReadAttributesResponse {
	t.Helper()
	req := zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ClientToServer, false, tsn, zcl.CmdReadAttributes),
		zcl.ReadAttributes{AttributeIDs: []uint16{zcl.AttrBasicManufacturerName, zcl.AttrBasicModelIdentifier}})
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, d.Send(sctx, ncp.Frame{DstShort: 0x3A01, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterBasic,
		ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: req}))
	for {
		ev := nextEvent(t, d, ncp.EventFrame)
		if ev.Frame.ClusterID != zcl.ClusterBasic {
			continue
		}
		f, err := zcl.DecodeFrame(ev.Frame.Payload)
		require.NoError(t, err)
		if f.Header.CommandID != zcl.CmdReadAttributesResponse || f.Header.TSN != tsn {
			continue
		}
		assert.Equal(t, zcl.IEEE(0x00124b00000000a1), ev.Frame.SrcIEEE)
		assert.NotZero(t, ev.Frame.LQI)
		rsp, err := zcl.DecodeReadAttributesResponse(f.Payload)
		require.NoError(t, err)
		return rsp
	}
}

// TestDriverThroughFakeNCP: the driver forms the network on the fake NCP (real ZBOSS frames over an
// in-memory pipe), a Read Attributes makes the round trip, the stick's reset is recovered (EventRadioReset),
// a lost port is reconnected (EventDisconnected, EventReconnected), and a second driver resumes the network
// in the stick's NVRAM instead of forming again.
func TestDriverThroughFakeNCP(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	want := networkOf(r.network.Params())
	drv := zboss.New(zboss.Config{Port: "pipe", Network: want}, zerolog.Nop(), zboss.WithOpener(r.open), zboss.WithTimeouts(fastTimeouts))
	info, err := drv.Start(r.ctx)
	require.NoError(t, err)
	assert.Equal(t, "zboss", info.Type)
	assert.Equal(t, want.Channel, info.Channel)
	assert.Equal(t, want.PANID, info.PANID)
	assert.Equal(t, want.ExtendedPANID, info.ExtendedPANID)
	assert.Equal(t, r.network.Config().CoordinatorIEEE, info.IEEE)
	assert.Contains(t, info.Firmware, "ZBOSS 3.11.2.0")
	assert.Equal(t, want, drv.Network())
	assert.Equal(t, 82, drv.MaxAPSPayload())
	assert.Equal(t, 1, r.stick.Calls()["NWK_FORMATION"])
	assert.Equal(t, 6, r.stick.Calls()["SET_TC_POLICY"])

	rsp := readBasic(t, r.ctx, drv, 0x42)
	require.Len(t, rsp.Records, 2)
	assert.Equal(t, "Espressif", rsp.Records[0].Value.String)
	assert.Equal(t, "ESP32C6-Light", rsp.Records[1].Value.String)
	ieee, err := drv.LookupIEEE(r.ctx, 0x3A01)
	require.NoError(t, err)
	assert.Equal(t, zcl.IEEE(0x00124b00000000a1), ieee)

	// A delivery failure reported by the stick is an *ncp.SendError.
	err = drv.Send(r.ctx, ncp.Frame{DstShort: 0x7777, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: 6, ProfileID: 0x0104, APSAck: true, Payload: []byte{1, 2, 3}})
	var se *ncp.SendError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, uint16(0x7777), se.DstShort)

	r.stick.Reset()
	ev := nextEvent(t, drv, ncp.EventRadioReset)
	assert.Contains(t, ev.Reason, "NCP_RESET_IND")
	assert.Equal(t, 1, r.stick.Calls()["NWK_START_WITHOUT_FORMATION"], "after a reset the stick resumes its network")
	readBasic(t, r.ctx, drv, 0x43)

	r.stick.DropPort()
	nextEvent(t, drv, ncp.EventDisconnected)
	nextEvent(t, drv, ncp.EventReconnected)
	readBasic(t, r.ctx, drv, 0x44)
	require.NoError(t, drv.Close())
	require.NoError(t, drv.Close())
	assert.ErrorIs(t, drv.Send(r.ctx, ncp.Frame{DstShort: 0x3A01}), ncp.ErrClosed)

	// A second host with the saved network resumes; one with another network makes the stick form that one.
	drv2 := zboss.New(zboss.Config{Port: "pipe", Network: want}, zerolog.Nop(), zboss.WithOpener(r.open), zboss.WithTimeouts(fastTimeouts))
	_, err = drv2.Start(r.ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, r.stick.Calls()["NWK_FORMATION"])
	require.NoError(t, drv2.PermitJoin(r.ctx, 30))
	require.NoError(t, drv2.Close())
	other := want
	other.Channel = 25
	drv3 := zboss.New(zboss.Config{Port: "pipe", Network: other}, zerolog.Nop(), zboss.WithOpener(r.open), zboss.WithTimeouts(fastTimeouts))
	info, err = drv3.Start(r.ctx)
	require.NoError(t, err)
	assert.Equal(t, uint8(25), info.Channel)
	assert.Equal(t, 2, r.stick.Calls()["NWK_FORMATION"])
	require.NoError(t, drv3.Close())
}

// TestDriverRefusesUnknownStack: a stick reporting another ZBOSS generation is refused with a message that
// names what it reported.
func TestDriverRefusesUnknownStack(t *testing.T) {
	r := newRig(t, fakestick.Config{Stack: 0x02050000})
	drv := zboss.New(zboss.Config{Port: "pipe"}, zerolog.Nop(), zboss.WithOpener(r.open), zboss.WithTimeouts(fastTimeouts))
	defer drv.Close()
	_, err := drv.Start(r.ctx)
	require.ErrorIs(t, err, zboss.ErrUnsupportedStick)
	assert.Contains(t, err.Error(), "ZBOSS 2.5.0.0")
}
