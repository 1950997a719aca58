package znp_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	ezspfake "github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/znp"
	"github.com/otabridge/otabridge/ncp/znp/fakestick"
	"github.com/otabridge/otabridge/zcl"
)

var fastTimeouts = znp.Timeouts{Command: 2 * time.Second, Ping: 200 * time.Millisecond, Reset: 2 * time.Second, NetworkUp: 3 * time.Second,
	Send: 3 * time.Second, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}

const (
	devShort = 0x1234
	devIEEE  = zcl.IEEE(0x00124B0001020304)
)

func testLog(t *testing.T) zerolog.Logger {
	if os.Getenv("ZNP_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewConsoleWriter(func(w *zerolog.ConsoleWriter) { w.Out = os.Stderr })).Level(zerolog.TraceLevel).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// rig is a fake ZNP stick in front of an in-memory network, reached by drivers over in-memory pipes.
type rig struct {
	t        *testing.T
	net      *ezspfake.MemNetwork
	stick    *fakestick.Stick
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	portGone atomic.Bool
}

func newRig(t *testing.T, cfg fakestick.Config) *rig {
	r := &rig{t: t, net: ezspfake.NewMemNetwork(ncp.NetworkInfo{IEEE: 0x00124B0024C00001})}
	r.net.AddDevice(ezspfake.MemDevice{Short: devShort, IEEE: devIEEE})
	cfg.Log = testLog(t)
	r.stick = fakestick.New(r.net, cfg)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() {
		r.cancel()
		r.stick.Close()
		r.net.Close()
		r.wg.Wait()
	})
	return r
}

func (r *rig) open(context.Context) (io.ReadWriteCloser, error) {
	if r.portGone.Load() {
		return nil, errors.New("no such port")
	}
	host, stickSide := net.Pipe()
	r.wg.Add(1)
	go func() { defer r.wg.Done(); _ = r.stick.Serve(r.ctx, stickSide) }()
	return host, nil
}

func (r *rig) driver(network ncp.NetworkSettings) *znp.Driver {
	d := znp.New(znp.Config{Port: "pipe", Network: network}, testLog(r.t), znp.WithOpener(r.open), znp.WithTimeouts(fastTimeouts))
	r.t.Cleanup(func() { d.Close() })
	return d
}

func nextEvent(t *testing.T, d *znp.Driver, kind ncp.EventKind) ncp.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
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

var testNetwork = ncp.NetworkSettings{Channel: 15, PANID: 0x1A62, ExtendedPANID: 0xDDDDDDDDDDDDDDDD,
	NetworkKey: ncp.NetworkKey{1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 13}}

// TestStartFormsThenResumes: a fresh stick is formed through NV items and BDB commissioning; a second host
// session on the same stick resumes the network from NV with ZDO_STARTUP_FROM_APP, without forming again.
func TestStartFormsThenResumes(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(testNetwork)
	info, err := d.Start(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "znp", info.Type)
	assert.Equal(t, uint8(15), info.Channel)
	assert.Equal(t, uint16(0x1A62), info.PANID)
	assert.Equal(t, zcl.IEEE(0xDDDDDDDDDDDDDDDD), info.ExtendedPANID)
	assert.Equal(t, zcl.IEEE(0x00124B0024C00001), info.IEEE)
	assert.Contains(t, info.Firmware, "Z-Stack 3.x.0 2.7.1 build 20240710")
	assert.Equal(t, testNetwork, d.Network())
	cmds := r.stick.Commands()
	assert.Equal(t, 1, cmds["APP_CNF_BDB_START_COMMISSIONING"])
	assert.Equal(t, 2, cmds["APP_CNF_BDB_SET_CHANNEL"])
	assert.Equal(t, 1, cmds["AF_REGISTER"])
	assert.Equal(t, 1, cmds["UTIL_LED_CONTROL"])
	assert.Equal(t, []byte{0x55}, r.stick.NVItem(znp.NVHasConfigured))
	rejoin, ok := r.stick.Policy("APP_CNF_SET_ALLOWREJOIN_TC_POLICY")
	assert.True(t, ok)
	assert.Equal(t, uint8(1), rejoin, "trust-center rejoins allowed")
	keyExchange, ok := r.stick.Policy("APP_CNF_BDB_SET_TC_REQUIRE_KEY_EXCHANGE")
	assert.True(t, ok)
	assert.Equal(t, uint8(0), keyExchange, "devices without a TCLK exchange are kept")
	assert.Equal(t, testNetwork.NetworkKey[:], r.stick.NVItem(znp.NVPreCfgKey))
	require.NoError(t, d.Close())

	// A host that knows nothing (empty configuration) resumes what the stick holds.
	d2 := r.driver(ncp.NetworkSettings{})
	info2, err := d2.Start(context.Background())
	require.NoError(t, err)
	assert.Equal(t, info.PANID, info2.PANID)
	assert.Equal(t, testNetwork, d2.Network(), "the key comes from the stick's NV")
	cmds = r.stick.Commands()
	assert.Equal(t, 1, cmds["APP_CNF_BDB_START_COMMISSIONING"], "resumed, not formed again")
	assert.Equal(t, 1, cmds["ZDO_STARTUP_FROM_APP"])
}

// TestStartFormsAgainForAnotherNetwork: a configured network that differs from the stick's NV is formed.
func TestStartFormsAgainForAnotherNetwork(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(testNetwork)
	_, err := d.Start(context.Background())
	require.NoError(t, err)
	require.NoError(t, d.Close())
	other := testNetwork
	other.PANID = 0x2222
	d2 := r.driver(other)
	info, err := d2.Start(context.Background())
	require.NoError(t, err)
	assert.Equal(t, uint16(0x2222), info.PANID)
	assert.Equal(t, 2, r.stick.Commands()["APP_CNF_BDB_START_COMMISSIONING"])
}

// TestRandomNetworkWhenNothingConfigured: zero settings on a fresh stick form a random network on one of
// the channels 11, 15, 20, 25, which Network reports for saving.
func TestRandomNetworkWhenNothingConfigured(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(ncp.NetworkSettings{})
	info, err := d.Start(context.Background())
	require.NoError(t, err)
	n := d.Network()
	assert.Contains(t, []uint8{11, 15, 20, 25}, n.Channel)
	assert.Equal(t, info.PANID, n.PANID)
	assert.NotZero(t, n.ExtendedPANID)
	assert.False(t, n.NetworkKey.IsZero())
}

// TestRefusesOtherZStackGenerations: Z-Stack Home 1.2 and unknown products are refused by name.
func TestRefusesOtherZStackGenerations(t *testing.T) {
	for _, tc := range []struct {
		product znp.Product
		want    string
	}{{znp.ProductZStack12, "Z-Stack Home 1.2"}, {7, "unknown Z-Stack product 7"}} {
		v := fakestick.DefaultVersion
		v.Product = tc.product
		r := newRig(t, fakestick.Config{Version: v})
		d := r.driver(testNetwork)
		_, err := d.Start(context.Background())
		require.ErrorIs(t, err, znp.ErrUnsupportedStick)
		assert.Contains(t, err.Error(), tc.want)
	}
}

// TestZStack30xAccepted: product 2 (Z-Stack 3.0.x) is driven like 3.x.0.
func TestZStack30xAccepted(t *testing.T) {
	v := fakestick.DefaultVersion
	v.Product, v.Revision = znp.ProductZStack30x, 20190608
	r := newRig(t, fakestick.Config{Version: v})
	info, err := r.driver(testNetwork).Start(context.Background())
	require.NoError(t, err)
	assert.Contains(t, info.Firmware, "Z-Stack 3.0.x")
}

// TestSilentPortIsNotZNP: a device that never answers SYS_PING (not a ZNP stick, or another baud rate)
// fails Start with an error naming the cause, after the bootloader-skip byte was tried.
func TestSilentPortIsNotZNP(t *testing.T) {
	var got []byte
	var mu sync.Mutex
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	open := func(context.Context) (io.ReadWriteCloser, error) {
		host, other := net.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				n, err := other.Read(buf)
				mu.Lock()
				got = append(got, buf[:n]...)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		return host, nil
	}
	d := znp.New(znp.Config{Port: "/dev/ttyUSB9"}, testLog(t), znp.WithOpener(open), znp.WithTimeouts(fastTimeouts))
	defer d.Close()
	_, err := d.Start(context.Background())
	require.ErrorIs(t, err, znp.ErrUnsupportedStick)
	assert.Contains(t, err.Error(), "/dev/ttyUSB9")
	assert.Contains(t, err.Error(), "SYS_PING")
	mu.Lock()
	defer mu.Unlock()
	// ping, the skip byte, ping again
	assert.Equal(t, []byte{0xFE, 0x00, 0x21, 0x01, 0x20, 0xEF, 0xFE, 0x00, 0x21, 0x01, 0x20}, got)
}

// TestBootloaderSkip: a stick waiting in its bootloader starts after the 0xEF byte.
func TestBootloaderSkip(t *testing.T) {
	r := newRig(t, fakestick.Config{NeedsBootloaderSkip: true})
	_, err := r.driver(testNetwork).Start(context.Background())
	require.NoError(t, err)
}

// TestMissingPortError: the serial port that does not exist is named in the error.
func TestMissingPortError(t *testing.T) {
	d := znp.New(znp.Config{Port: "/dev/does-not-exist-znp"}, testLog(t))
	defer d.Close()
	_, err := d.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "/dev/does-not-exist-znp does not exist")
}

// TestSendConfirmedAndFailed: AF_DATA_CONFIRM success ends Send; a failed delivery is an *ncp.SendError
// naming Z-Stack's status; payloads past AF_DATA_REQUEST's limit go as AF_DATA_REQUEST_EXT.
func TestSendConfirmedAndFailed(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(testNetwork)
	_, err := d.Start(context.Background())
	require.NoError(t, err)
	ctx := context.Background()
	f := ncp.Frame{DstShort: devShort, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation,
		APSAck: true, Payload: []byte{0x19, 0x01, 0x05, 0x00}}
	require.NoError(t, d.Send(ctx, f))
	f.DstShort = 0x9999
	err = d.Send(ctx, f)
	var se *ncp.SendError
	require.ErrorAs(t, err, &se)
	assert.Contains(t, se.Status, "APS_NO_ACK")
	big := f
	big.DstShort = devShort
	big.Payload = make([]byte, znp.MaxDataRequestLen+1)
	require.NoError(t, d.Send(ctx, big))
	bc := f
	bc.DstShort, bc.DstEndpoint, bc.APSAck = ncp.BroadcastRxOnWhenIdle, 0xFF, false
	require.NoError(t, d.Send(ctx, bc))
	cmds := r.stick.Commands()
	assert.Equal(t, 2, cmds["AF_DATA_REQUEST"])
	assert.Equal(t, 2, cmds["AF_DATA_REQUEST_EXT"])
	// A broadcast ends with its SRSP; the stick puts it on the air after that.
	require.Eventually(t, func() bool { return len(r.net.Sent()) == 4 }, 5*time.Second, 5*time.Millisecond)
	sent := r.net.Sent()
	assert.Equal(t, len(big.Payload), len(sent[2].Payload))
	assert.Equal(t, ncp.BroadcastRxOnWhenIdle, sent[3].DstShort)
}

// TestEventsJoinAnnounceFrameLeave: ZDO_TC_DEV_IND, ZDO_END_DEVICE_ANNCE_IND, AF_INCOMING_MSG (with LQI
// and the sender's IEEE address learnt from the join) and ZDO_LEAVE_IND become radio events.
func TestEventsJoinAnnounceFrameLeave(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(testNetwork)
	_, err := d.Start(context.Background())
	require.NoError(t, err)
	const short, ieee = 0x5678, zcl.IEEE(0x00124B00AABBCCDD)
	r.net.AddJoiner(ezspfake.MemDevice{Short: short, IEEE: ieee, Capabilities: 0x8E})
	require.NoError(t, d.PermitJoin(context.Background(), 60))
	j := nextEvent(t, d, ncp.EventJoined)
	assert.Equal(t, uint8(60), r.net.Permitted())
	assert.Equal(t, ncp.Event{Kind: ncp.EventJoined, Short: short, IEEE: ieee}, j)
	a := nextEvent(t, d, ncp.EventAnnounced)
	assert.Equal(t, uint8(0x8E), a.Capabilities)
	r.net.Emit(ncp.Event{Kind: ncp.EventFrame, Frame: ncp.Incoming{SrcShort: short, SrcEndpoint: 1, DstEndpoint: 1, ClusterID: zcl.ClusterOTA,
		ProfileID: zcl.ProfileHomeAutomation, LQI: 201, Payload: []byte{1, 2, 3}}})
	fr := nextEvent(t, d, ncp.EventFrame)
	assert.Equal(t, ieee, fr.Frame.SrcIEEE)
	assert.Equal(t, uint8(201), fr.Frame.LQI)
	assert.Equal(t, []byte{1, 2, 3}, fr.Frame.Payload)
	assert.Equal(t, zcl.ProfileHomeAutomation, fr.Frame.ProfileID)
	r.net.Emit(ncp.Event{Kind: ncp.EventLeft, Short: short, IEEE: ieee})
	l := nextEvent(t, d, ncp.EventLeft)
	assert.Equal(t, ieee, l.IEEE)
	require.NoError(t, d.PermitJoin(context.Background(), 0))
	require.Eventually(t, func() bool { return r.net.Permitted() == 0 }, 5*time.Second, 5*time.Millisecond)
}

// TestIEEELookupThroughStick: a frame from a device the driver never saw join gets its IEEE address from
// the stick's address manager.
func TestIEEELookupThroughStick(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(testNetwork)
	_, err := d.Start(context.Background())
	require.NoError(t, err)
	r.net.Emit(ncp.Event{Kind: ncp.EventFrame, Frame: ncp.Incoming{SrcShort: devShort, SrcIEEE: devIEEE, SrcEndpoint: 1, DstEndpoint: 1,
		ClusterID: zcl.ClusterBasic, ProfileID: zcl.ProfileHomeAutomation, LQI: 90, Payload: []byte{0x18, 1, 1}}})
	fr := nextEvent(t, d, ncp.EventFrame)
	assert.Equal(t, devIEEE, fr.Frame.SrcIEEE)
	assert.Equal(t, 1, r.stick.Commands()["UTIL_ADDRMGR_NWK_ADDR_LOOKUP"])
}

// TestStickResetMidTraffic: an unasked SYS_RESET_IND fails the sends in flight, the driver re-initialises
// (resuming from NV) and reports EventRadioReset; sends work again.
func TestStickResetMidTraffic(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(testNetwork)
	_, err := d.Start(context.Background())
	require.NoError(t, err)
	r.stick.Reset()
	ev := nextEvent(t, d, ncp.EventRadioReset)
	assert.Contains(t, ev.Reason, "SYS_RESET_IND reason 2")
	require.NoError(t, d.Send(context.Background(), ncp.Frame{DstShort: devShort, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA,
		ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: []byte{1}}))
	assert.Equal(t, 1, r.stick.Commands()["APP_CNF_BDB_START_COMMISSIONING"], "the reset resumed the network, it did not form again")
	assert.Equal(t, 2, r.stick.Commands()["AF_REGISTER"], "endpoint 1 registered again after the reset")
}

// TestPortLossReconnects: the port vanishing gives EventDisconnected, sends fail clearly, and the driver
// comes back (EventReconnected) once the port is there again.
func TestPortLossReconnects(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(testNetwork)
	_, err := d.Start(context.Background())
	require.NoError(t, err)
	r.portGone.Store(true)
	r.stick.DropPort()
	nextEvent(t, d, ncp.EventDisconnected)
	err = d.Send(context.Background(), ncp.Frame{DstShort: devShort, DstEndpoint: 1, SrcEndpoint: 1, Payload: []byte{1}})
	require.ErrorIs(t, err, znp.ErrNotReady)
	r.portGone.Store(false)
	nextEvent(t, d, ncp.EventReconnected)
	require.NoError(t, d.Send(context.Background(), ncp.Frame{DstShort: devShort, DstEndpoint: 1, SrcEndpoint: 1, Payload: []byte{1}}))
}

// TestCloseBeforeStartAndTwice: Close is safe without Start and more than once; Send after Close fails.
func TestCloseBeforeStartAndTwice(t *testing.T) {
	d := znp.New(znp.Config{Port: "x"}, testLog(t))
	require.NoError(t, d.Close())
	require.NoError(t, d.Close())
	assert.ErrorIs(t, d.Send(context.Background(), ncp.Frame{}), ncp.ErrClosed)
	_, ok := <-d.Events()
	assert.False(t, ok)
}

// TestUnknownSenderLookedUpOnce: frames from a short address the stick cannot name are handed on without an
// IEEE address, and the stick is asked once, not once per frame (each ask is a round trip on the serial link).
func TestUnknownSenderLookedUpOnce(t *testing.T) {
	r := newRig(t, fakestick.Config{})
	d := r.driver(testNetwork)
	_, err := d.Start(context.Background())
	require.NoError(t, err)
	const stranger = 0x6666
	for i := range 5 {
		r.net.Emit(ncp.Event{Kind: ncp.EventFrame, Frame: ncp.Incoming{SrcShort: stranger, SrcEndpoint: 1, DstEndpoint: 1,
			ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, Payload: []byte{0x01, byte(i), 0x01, 0x00}}})
		fr := nextEvent(t, d, ncp.EventFrame)
		assert.Equal(t, byte(i), fr.Frame.Payload[1])
		assert.Zero(t, fr.Frame.SrcIEEE)
	}
	assert.Equal(t, 1, r.stick.Commands()["UTIL_ADDRMGR_NWK_ADDR_LOOKUP"], "one lookup for five frames")
}
