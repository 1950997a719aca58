package ezsp_test

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
)

// TestFragmentGroupID: the fragment's number in groupId's low byte; the first fragment (number 0) carries
// the count in the high byte (EmberApsFrame.groupId with EMBER_APS_OPTION_FRAGMENT).
func TestFragmentGroupID(t *testing.T) {
	assert.Equal(t, uint16(0x0300), ezsp.FragmentGroupID(0, 3))
	assert.Equal(t, uint16(0x0001), ezsp.FragmentGroupID(1, 3))
	assert.Equal(t, uint16(0x0002), ezsp.FragmentGroupID(2, 3))
	assert.Equal(t, uint16(0xFF00), ezsp.FragmentGroupID(0, 255))
}

// TestFragmentedSendUnicastBytes: the second fragment of three, as sendUnicast parameters, byte for byte
// (EmberApsFrame: profile, cluster, endpoints, options 0x9140 = FRAGMENT|ADDRESS_DISCOVERY|ROUTE_DISCOVERY|
// RETRY, groupId 0x0001, sequence 0x9A of the first fragment; tag u8 and message length u8 up to v13, tag
// u16 from v14).
func TestFragmentedSendUnicastBytes(t *testing.T) {
	aps := ezsp.ApsFrame{ProfileID: 0x0104, ClusterID: 0x0019, SrcEndpoint: 1, DstEndpoint: 1,
		Options: ezsp.APSOptionFragment | ezsp.APSOptionEnableAddressDiscover | ezsp.APSOptionEnableRouteDiscovery | ezsp.APSOptionRetry,
		GroupID: ezsp.FragmentGroupID(1, 3), Sequence: 0x9A}
	su := ezsp.SendUnicast{Type: ezsp.OutgoingDirect, Dest: 0x3A01, Aps: aps, Tag: 0x42, Message: []byte{0xAA, 0xBB}}
	apsBytes := "04 01 19 00 01 01 40 91 01 00 9a"
	v13, v14 := ezsp.Version(13), ezsp.Version(14)
	assert.Equal(t, unhexStr(t, "00 01 3a "+apsBytes+" 42 02 aa bb"), su.Append(nil, v13))
	assert.Equal(t, unhexStr(t, "00 01 3a "+apsBytes+" 42 00 02 aa bb"), su.Append(nil, v14))
	for _, v := range []ezsp.Version{v13, v14} {
		got, err := ezsp.DecodeSendUnicast(su.Append(nil, v), v)
		require.NoError(t, err)
		assert.Equal(t, su, got)
	}
	// The first fragment: groupId 0x0300 (count 3, number 0), sequence 0 (the stick chooses it).
	aps.GroupID, aps.Sequence = ezsp.FragmentGroupID(0, 3), 0
	assert.Equal(t, unhexStr(t, "04 01 19 00 01 01 40 91 00 03 00"), aps.Append(nil))
}

func unhexStr(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// sentFragments decodes the sendUnicast frames with EMBER_APS_OPTION_FRAGMENT the stick received.
func sentFragments(t *testing.T, stick *fakestick.Stick, v ezsp.Version) []ezsp.SendUnicast {
	t.Helper()
	var out []ezsp.SendUnicast
	for _, line := range stick.RecentFrames() {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "host" || f[4] != "sendUnicast" {
			continue
		}
		fr, err := ezsp.ParseFrame(unhexStr(t, strings.Join(f[5:], "")), false)
		require.NoError(t, err)
		su, err := ezsp.DecodeSendUnicast(fr.Params, v)
		require.NoError(t, err)
		if su.Aps.Options&ezsp.APSOptionFragment != 0 {
			out = append(out, su)
		}
	}
	return out
}

// block223 is an Image Block Response carrying 223 bytes of data (240 bytes of ZCL: three fragments).
func block223() []byte {
	p := []byte{0x19, 0x07, 0x05, 0x00, 0x1b, 0x13, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 223}
	for i := range 223 {
		p = append(p, byte(i*7+1))
	}
	return p
}

// TestFragmentedSendThroughFakeStick: a 240-byte payload goes to the stick as three sendUnicast fragments
// (option FRAGMENT, groupId count/number, the first fragment's APS sequence on all three), the stick hands the
// reassembled payload to the network as one frame, and Send returns when every fragment is confirmed; with
// a window of 1 the same takes three windows.
func TestFragmentedSendThroughFakeStick(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		for _, window := range []int{8, 1} {
			r := newRig(t, fakestick.Config{ProtocolVersion: version}, ezsp.Config{FragmentWindow: window})
			r.start()
			assert.Equal(t, ezsp.DefaultMaxFragmentedPayload, r.drv.MaxFragmentedPayload())
			payload := block223()
			r.sendOK(otaFrame(payload...))
			sent := r.net.Sent()
			require.Len(t, sent, 1, "one frame reaches the network")
			assert.Equal(t, payload, sent[0].Payload, "reassembled byte for byte")
			assert.True(t, sent[0].APSAck)
			frags := sentFragments(t, r.stick, ezsp.Version(version))
			require.Len(t, frags, 3)
			for i, f := range frags {
				assert.Equal(t, ezsp.FragmentGroupID(i, 3), f.Aps.GroupID, "fragment %d", i)
				assert.NotZero(t, f.Aps.Options&ezsp.APSOptionRetry)
				assert.Equal(t, payload[i*80:min((i+1)*80, len(payload))], f.Message, "fragment %d carries its 80 bytes", i)
				if i > 0 {
					assert.Equal(t, frags[1].Aps.Sequence, f.Aps.Sequence, "every later fragment reuses the first's APS sequence")
				}
			}
			r.close()
		}
	})
}

// TestFragmentConfigSetAtStartUp: the driver sets the stick's fragment window (no more than max_in_flight)
// and delay before the network starts.
func TestFragmentConfigSetAtStartUp(t *testing.T) {
	for _, c := range []struct {
		cfg           ezsp.Config
		window, delay uint16
	}{{ezsp.Config{}, 8, 0}, {ezsp.Config{FragmentWindow: 4, FragmentDelayMS: 20}, 4, 20}, {ezsp.Config{MaxInFlight: 2}, 2, 0}} {
		r := newRig(t, fakestick.Config{ProtocolVersion: 14}, c.cfg)
		r.start()
		w, ok := r.stick.ConfigValue(ezsp.ConfigFragmentWindowSize)
		require.True(t, ok)
		assert.Equal(t, c.window, w, "FRAGMENT_WINDOW_SIZE for %+v", c.cfg)
		d, ok := r.stick.ConfigValue(ezsp.ConfigFragmentDelayMS)
		require.True(t, ok)
		assert.Equal(t, c.delay, d, "FRAGMENT_DELAY_MS for %+v", c.cfg)
		r.sendOK(otaFrame(block223()...))
		r.close()
	}
}

// TestFragmentedSendFailure: the network's failure of the reassembled frame reaches Send as a *SendError
// naming the fragment, and an unfragmented send works after it.
func TestFragmentedSendFailure(t *testing.T) {
	r := newRig(t, fakestick.Config{ProtocolVersion: 14}, ezsp.Config{})
	r.start()
	r.net.FailNext(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.drv.Send(ctx, otaFrame(block223()...))
	var se *ncp.SendError
	require.True(t, errors.As(err, &se), "got %v", err)
	assert.Contains(t, se.Status, "DELIVERY_FAILED")
	assert.Contains(t, se.Status, "fragment 1 of 3")
	r.sendOK(otaFrame(0x19, 0x08, 0x05))
}

// TestFragmentationOff: max_fragmented_payload < 0 turns host fragmentation off; a payload over the
// unfragmented limit is refused before it reaches the stick.
func TestFragmentationOff(t *testing.T) {
	r := newRig(t, fakestick.Config{ProtocolVersion: 14}, ezsp.Config{MaxFragmentedPayload: -1})
	r.start()
	assert.Equal(t, 0, r.drv.MaxFragmentedPayload())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.Error(t, r.drv.Send(ctx, otaFrame(block223()...)))
	assert.Empty(t, r.net.Sent())
	bad := ezsp.New(ezsp.Config{FragmentWindow: 9}, testLog(t))
	_, err := bad.Start(ctx)
	assert.EqualError(t, err, "radio.fragment_window: 9 is not allowed (want 1..8)")
	bad.Close()
}

const fragmentSimYAML = `
link: {mode: realistic}
devices:
  - ieee: "0x00124b00000000a1"
    nwk: 0x3A01
    model: ESP32H2-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    power: mains
    profile: esp-v2
  - ieee: "0x00124b00000000a2"
    nwk: 0x3A02
    model: ESP32H2-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    power: mains
    profile: esp-v2
    aps_fragmentation: false
`

// recordingNet is the simulated network behind the stick, recording the frames the stick sends into it.
type recordingNet struct {
	*sim.Network
	mu   sync.Mutex
	sent []ncp.Frame
}

func (n *recordingNet) Send(ctx context.Context, f ncp.Frame) error {
	n.record(f)
	return n.Network.Send(ctx, f)
}

// SendWithStats is what the stick calls (the network reports what each frame cost: ncp.StatsSender).
func (n *recordingNet) SendWithStats(ctx context.Context, f ncp.Frame) (ncp.SendStats, error) {
	n.record(f)
	return n.Network.SendWithStats(ctx, f)
}

func (n *recordingNet) record(f ncp.Frame) {
	n.mu.Lock()
	n.sent = append(n.sent, ncp.Frame{DstShort: f.DstShort, ClusterID: f.ClusterID, APSAck: f.APSAck, Payload: append([]byte(nil), f.Payload...)})
	n.mu.Unlock()
}

// TestFragmentedBlockToSimulatedDevices: driver → fake stick → simulated network (realistic link). A
// 223-byte block goes to an ESP v2 light as one APS-fragmented transfer and arrives (the device's APS acks
// its window, the payload the network carried is the block byte for byte); the same block to a light without
// APS fragmentation support fails with a *SendError (no APS ack), and an unfragmented block to it then works.
func TestFragmentedBlockToSimulatedDevices(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		cfg, err := sim.ParseConfig([]byte(fragmentSimYAML))
		require.NoError(t, err)
		network, err := sim.New(cfg, clock.NewVirtual(), testLog(t))
		require.NoError(t, err)
		rec := &recordingNet{Network: network}
		drv, _ := simDriver(t, network, rec, version)
		ctx := context.Background()
		nextEvent(t, drv, ncp.EventAnnounced)

		esp := network.Device(zcl.IEEE(0x00124b00000000a1))
		before := esp.Status().FramesReceived
		acks := network.Stats().APSAcks
		block := block223()
		frame := ncp.Frame{DstShort: 0x3A01, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA,
			ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: block}
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		require.NoError(t, drv.Send(sctx, frame))
		assert.Equal(t, before+1, esp.Status().FramesReceived, "the device got one frame")
		assert.Equal(t, acks+1, network.Stats().APSAcks, "one APS ack for the window of three fragments")
		rec.mu.Lock()
		last := rec.sent[len(rec.sent)-1]
		rec.mu.Unlock()
		assert.Equal(t, block, last.Payload, "the network carried the block byte for byte")

		plain := network.Device(zcl.IEEE(0x00124b00000000a2))
		before = plain.Status().FramesReceived
		frame.DstShort = 0x3A02
		err = drv.Send(sctx, frame)
		var se *ncp.SendError
		require.True(t, errors.As(err, &se), "got %v", err)
		assert.Contains(t, se.Status, "no APS ack")
		assert.Equal(t, before, plain.Status().FramesReceived)
		small := append(append([]byte(nil), block[:16]...), 48)
		small = append(small, block[17:17+48]...)
		frame.Payload = small
		require.NoError(t, drv.Send(sctx, frame), "an unfragmented 48-byte block works")
		assert.Equal(t, before+1, plain.Status().FramesReceived)
	})
}
