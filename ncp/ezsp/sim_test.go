package ezsp_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const simYAML = `
link: {mode: fast}
devices:
  - ieee: "0x00124b00000000a1"
    nwk: 0x3A01
    model: ESP32H2-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    power: mains
`

// TestSimReadAttributesThroughFakeStick: the simulated network behind the fake stick, the driver in front
// (in-memory pipe, EZSP v13 and v14): the device's announcement arrives, and a Read Attributes of the Basic
// cluster makes the round trip through real ASH+EZSP bytes.
func TestSimReadAttributesThroughFakeStick(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		cfg, err := sim.ParseConfig([]byte(simYAML))
		require.NoError(t, err)
		network, err := sim.New(cfg, clock.NewVirtual(), testLog(t))
		require.NoError(t, err)
		drv, info := simDriver(t, network, network, version)
		assert.Equal(t, network.Config().CoordinatorIEEE, info.IEEE)
		ctx := context.Background()

		dev := network.Devices()[0]
		devIEEE := zcl.IEEE(0x00124b00000000a1)
		require.NotNil(t, network.Device(devIEEE), "device %v", dev)
		ann := nextEvent(t, drv, ncp.EventAnnounced)
		assert.Equal(t, devIEEE, ann.IEEE)
		assert.Equal(t, uint16(0x3A01), ann.Short)

		req := zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ClientToServer, false, 0x42, zcl.CmdReadAttributes),
			zcl.ReadAttributes{AttributeIDs: []uint16{zcl.AttrBasicManufacturerName, zcl.AttrBasicModelIdentifier}})
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		require.NoError(t, drv.Send(sctx, ncp.Frame{DstShort: 0x3A01, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterBasic,
			ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: req}))
		var rsp zcl.ReadAttributesResponse
		for {
			ev := nextEvent(t, drv, ncp.EventFrame)
			if ev.Frame.ClusterID != zcl.ClusterBasic {
				continue
			}
			f, err := zcl.DecodeFrame(ev.Frame.Payload)
			require.NoError(t, err)
			if f.Header.CommandID != zcl.CmdReadAttributesResponse {
				continue
			}
			assert.Equal(t, uint8(0x42), f.Header.TSN)
			assert.Equal(t, devIEEE, ev.Frame.SrcIEEE)
			rsp, err = zcl.DecodeReadAttributesResponse(f.Payload)
			require.NoError(t, err)
			break
		}
		require.Len(t, rsp.Records, 2)
		assert.Equal(t, "Espressif", rsp.Records[0].Value.String)
		assert.Equal(t, "ESP32H2-Light", rsp.Records[1].Value.String)
	})
}

// networkOf is the driver's network setting for a simulated network.
func networkOf(p sim.NetworkParams) ezsp.NetworkSettings {
	return ezsp.NetworkSettings{Channel: p.Channel, PANID: p.PANID, ExtendedPANID: p.ExtendedPANID, NetworkKey: ezsp.NetworkKey(p.NetworkKey)}
}

// driverThroughFakeStick starts an EZSP driver (dcfg) in front of a fake stick (scfg) that hosts network and
// sends into behind (network itself, or a wrapper of it), over an in-memory pipe, with network's virtual
// clock paced at 50×. Everything stops at the end of the test.
func driverThroughFakeStick(t *testing.T, network *sim.Network, behind fakestick.Network, scfg fakestick.Config, dcfg ezsp.Config) (*ezsp.Driver, *fakestick.Stick, ncp.NetworkInfo) {
	t.Helper()
	clk := network.Clock()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = clk.Pace(ctx, 50) }()
	scfg.EUI64, scfg.Log = network.Config().CoordinatorIEEE, testLog(t)
	stick := fakestick.New(behind, scfg)
	open := func(context.Context) (io.ReadWriteCloser, error) {
		host, ncpSide := net.Pipe()
		wg.Add(1)
		go func() { defer wg.Done(); _ = stick.Serve(ctx, ncpSide) }()
		return host, nil
	}
	dcfg.Port = "pipe"
	drv := ezsp.New(dcfg, testLog(t), ezsp.WithOpener(open), ezsp.WithTimeouts(fastTimeouts))
	t.Cleanup(func() {
		drv.Close()
		cancel()
		stick.Close()
		network.Close()
		wg.Wait()
	})
	info, err := drv.Start(ctx)
	require.NoError(t, err)
	return drv, stick, info
}

// simDriver is driverThroughFakeStick with the stick behind network directly and the driver forming the
// network the simulated devices are members of (the stick moves the simulated coordinator onto whatever
// network the host forms).
func simDriver(t *testing.T, network *sim.Network, behind fakestick.Network, version uint8) (*ezsp.Driver, ncp.NetworkInfo) {
	drv, _, info := driverThroughFakeStick(t, network, behind, fakestick.Config{ProtocolVersion: version},
		ezsp.Config{Network: networkOf(network.Params())})
	return drv, info
}
