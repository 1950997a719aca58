package ezsp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/zcl"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var fastTimeouts = ezsp.Timeouts{
	Reset: time.Second, Command: 2 * time.Second, NetworkUp: 2 * time.Second, Send: 3 * time.Second,
	NetworkDownGrace: 500 * time.Millisecond, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
	AckInit: 100 * time.Millisecond, AckMin: 20 * time.Millisecond, AckMax: 400 * time.Millisecond,
}

const (
	devShort = 0x1234
	devIEEE  = zcl.IEEE(0x00124B0001020304)
)

// rig is a driver talking to a fake stick over in-memory pipes, with a MemNetwork behind the stick.
type rig struct {
	t        *testing.T
	net      *fakestick.MemNetwork
	stick    *fakestick.Stick
	drv      *ezsp.Driver
	portGone atomic.Bool
	opens    atomic.Int32
	ctx      context.Context
	cancel   context.CancelFunc
	serves   sync.WaitGroup
	events   chan ncp.Event
	pumpDone chan struct{}
}

func newRig(t *testing.T, scfg fakestick.Config, cfg ezsp.Config) *rig {
	t.Helper()
	r := &rig{t: t, events: make(chan ncp.Event, 1000), pumpDone: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.net = fakestick.NewMemNetwork(ncp.NetworkInfo{Type: "mem", IEEE: 0x00124B00FA4E0001})
	r.net.AddDevice(fakestick.MemDevice{Short: devShort, IEEE: devIEEE})
	scfg.Log = testLog(t)
	r.stick = fakestick.New(r.net, scfg)
	r.drv = r.newDriver(cfg)
	t.Cleanup(r.close)
	return r
}

func testLog(t *testing.T) zerolog.Logger {
	if os.Getenv("EZSP_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewConsoleWriter(func(w *zerolog.ConsoleWriter) { w.Out = os.Stderr })).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

func (r *rig) open(context.Context) (io.ReadWriteCloser, error) {
	if r.portGone.Load() {
		return nil, errors.New("open /dev/ttyFAKE: no such device")
	}
	r.opens.Add(1)
	host, ncpSide := net.Pipe()
	r.serves.Add(1)
	go func() {
		defer r.serves.Done()
		_ = r.stick.Serve(r.ctx, ncpSide)
	}()
	return host, nil
}

func (r *rig) newDriver(cfg ezsp.Config) *ezsp.Driver {
	if cfg.Port == "" {
		cfg.Port = "/dev/ttyFAKE"
	}
	return ezsp.New(cfg, testLog(r.t), ezsp.WithOpener(r.open), ezsp.WithTimeouts(fastTimeouts))
}

// collect forwards the driver's events to r.events until the channel closes.
func (r *rig) collect(d *ezsp.Driver) {
	go func() {
		defer close(r.pumpDone)
		for ev := range d.Events() {
			r.events <- ev
		}
	}()
}

func (r *rig) start() ncp.NetworkInfo {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := r.drv.Start(ctx)
	require.NoError(r.t, err)
	r.collect(r.drv)
	return info
}

func (r *rig) close() {
	r.drv.Close()
	r.cancel()
	r.stick.Close()
	r.net.Close()
	r.serves.Wait()
}

func (r *rig) waitEvent(kind ncp.EventKind) ncp.Event {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			r.t.Fatalf("no %v event", kind)
		}
	}
}

func (r *rig) sendOK(f ncp.Frame) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(r.t, r.drv.Send(ctx, f))
}

func otaFrame(payload ...byte) ncp.Frame {
	return ncp.Frame{DstShort: devShort, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: payload}
}

func forVersions(t *testing.T, f func(t *testing.T, version uint8)) {
	for _, v := range []uint8{13, 14, 18} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) { f(t, v) })
	}
}

func TestFormThenResume(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		want := ezsp.NetworkSettings{Channel: 20, PANID: 0x1A2B}
		r := newRig(t, fakestick.Config{ProtocolVersion: version}, ezsp.Config{Network: want})
		info := r.start()
		assert.Equal(t, "ezsp", info.Type)
		assert.Equal(t, uint8(20), info.Channel)
		assert.Equal(t, uint16(0x1A2B), info.PANID)
		assert.Equal(t, zcl.IEEE(0x00124B00FA4E0001), info.IEEE)
		assert.Contains(t, info.Firmware, fmt.Sprintf("EZSP v%d", version))
		got := r.drv.Network()
		assert.Equal(t, want.Channel, got.Channel)
		assert.Equal(t, want.PANID, got.PANID)
		assert.NotZero(t, got.ExtendedPANID, "a random extended PAN id was chosen")
		assert.False(t, got.NetworkKey.IsZero(), "a random network key was chosen")
		stored := r.stick.Stored()
		require.NotNil(t, stored, "formNetwork stored the network")
		assert.Equal(t, got.ExtendedPANID, stored.ExtendedPANID)
		assert.Equal(t, 82, r.drv.MaxAPSPayload())
		cmds := r.stick.Commands()
		assert.Equal(t, 1, cmds["formNetwork"])
		assert.Equal(t, 1, cmds["addEndpoint"])
		assert.Equal(t, 2, cmds["version"], "legacy version(4), then version(n) in the extended header")
		require.NoError(t, r.drv.Close())

		// A second driver (a restart of otabridge) resumes the stored network instead of forming.
		d2 := r.newDriver(ezsp.Config{Network: ezsp.NetworkSettings{NetworkKey: got.NetworkKey}})
		defer d2.Close()
		info2, err := d2.Start(context.Background())
		require.NoError(t, err)
		assert.Equal(t, info.PANID, info2.PANID)
		assert.Equal(t, info.ExtendedPANID, info2.ExtendedPANID)
		assert.Equal(t, got, d2.Network(), "resumed network reported with the configured key")
		assert.Equal(t, 1, r.stick.Commands()["formNetwork"], "no second formation")
		assert.Equal(t, 2, r.stick.Commands()["networkInit"])
		assert.Equal(t, 1, r.net.Starts())
	})
}

func TestJoinSendReceive(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		r := newRig(t, fakestick.Config{ProtocolVersion: version}, ezsp.Config{})
		r.start()
		joiner := fakestick.MemDevice{Short: 0x5678, IEEE: 0x00158D0000ABCDEF, Capabilities: 0x80}
		r.net.AddJoiner(joiner)
		require.NoError(t, r.drv.PermitJoin(context.Background(), 120))
		assert.Equal(t, uint8(120), r.net.Permitted())
		// The well-known key went in as a transient key for any EUI64 (all ones), with the flags byte only in v13.
		params := "ff ff ff ff ff ff ff ff 5a 69 67 42 65 65 41 6c 6c 69 61 6e 63 65 30 39"
		if version == 13 {
			params += " 00"
		}
		assert.True(t, slices.ContainsFunc(r.stick.RecentFrames(), func(l string) bool {
			return strings.Contains(l, "host -> stick importTransientKey") && strings.HasSuffix(l, " 11 01 "+params)
		}), "importTransientKey(%s) in\n%s", params, strings.Join(r.stick.RecentFrames(), "\n"))
		ev := r.waitEvent(ncp.EventJoined)
		assert.Equal(t, joiner.Short, ev.Short)
		assert.Equal(t, joiner.IEEE, ev.IEEE)
		ev = r.waitEvent(ncp.EventAnnounced)
		assert.Equal(t, joiner.Short, ev.Short)
		assert.Equal(t, joiner.IEEE, ev.IEEE)
		assert.Equal(t, uint8(0x80), ev.Capabilities)

		// A unicast with APS ack is confirmed; the device answers with a Default Response.
		r.net.SetResponder(func(f ncp.Frame) []ncp.Event {
			if f.IsBroadcast() {
				return nil
			}
			return []ncp.Event{{Kind: ncp.EventFrame, Short: f.DstShort, Frame: ncp.Incoming{SrcShort: f.DstShort, SrcEndpoint: f.DstEndpoint,
				DstEndpoint: f.SrcEndpoint, ClusterID: f.ClusterID, ProfileID: f.ProfileID, LQI: 200, RSSI: -50, Payload: []byte{0x18, f.Payload[1], 0x0b, f.Payload[2], 0x00}}}}
		})
		r.sendOK(ncp.Frame{DstShort: joiner.Short, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: []byte{0x19, 0x07, 0x05, 0x00}})
		ev = r.waitEvent(ncp.EventFrame)
		assert.Equal(t, joiner.Short, ev.Frame.SrcShort)
		assert.Equal(t, joiner.IEEE, ev.Frame.SrcIEEE, "IEEE from the join (v13: driver cache; v14: also in the callback)")
		assert.Equal(t, zcl.ClusterOTA, ev.Frame.ClusterID)
		assert.Equal(t, uint8(200), ev.Frame.LQI)
		assert.Equal(t, int8(-50), ev.Frame.RSSI)
		assert.Equal(t, []byte{0x18, 0x07, 0x0b, 0x05, 0x00}, ev.Frame.Payload)

		// The pre-existing device is not in the driver's cache: its IEEE comes from lookupEui64ByNodeId (v13)
		// or from the v14 callback.
		r.net.Emit(ncp.Event{Kind: ncp.EventFrame, Frame: ncp.Incoming{SrcShort: devShort, SrcIEEE: devIEEE, SrcEndpoint: 1, DstEndpoint: 1,
			ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, LQI: 100, Payload: []byte{0x01, 0x02, 0x01, 0x00}}})
		ev = r.waitEvent(ncp.EventFrame)
		assert.Equal(t, devIEEE, ev.Frame.SrcIEEE)
		if version == 13 {
			assert.Equal(t, 1, r.stick.Commands()["lookupEui64ByNodeId"])
		}

		// A broadcast (Image Notify to everyone) is confirmed too.
		r.sendOK(ncp.Frame{DstShort: ncp.BroadcastRxOnWhenIdle, DstEndpoint: 0xFF, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, Payload: []byte{0x19, 0x08, 0x00, 0x00, 0x64}})

		// A unicast the network cannot deliver fails with the stick's status.
		err := r.drv.Send(context.Background(), ncp.Frame{DstShort: 0x7777, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: []byte{1, 2, 3}})
		var se *ncp.SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, uint16(0x7777), se.DstShort)
		assert.Contains(t, se.Status, "DELIVERY_FAILED")
		assert.Contains(t, se.Status, "no APS ack")

		sent := r.net.Sent()
		require.GreaterOrEqual(t, len(sent), 3)
		assert.Equal(t, ncp.Frame{DstShort: joiner.Short, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: []byte{0x19, 0x07, 0x05, 0x00}}, sent[0])
		assert.Equal(t, ncp.BroadcastRxOnWhenIdle, sent[1].DstShort)

		// Closing the network again.
		require.NoError(t, r.drv.PermitJoin(context.Background(), 0))
		assert.Equal(t, uint8(0), r.net.Permitted())

		// Concurrent sends are serialised by the driver and all confirmed.
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.NoError(t, r.drv.Send(context.Background(), ncp.Frame{DstShort: joiner.Short, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: []byte{0x19, byte(i), 0x05, 0x00}}))
			}()
		}
		wg.Wait()
	})
}

func TestStickResetMidTraffic(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		r := newRig(t, fakestick.Config{ProtocolVersion: version}, ezsp.Config{})
		r.start()
		r.sendOK(otaFrame(0x19, 1, 5, 0))

		// Traffic in flight while the stick resets: some sends fail, none hang.
		stop := make(chan struct{})
		var failed, ok atomic.Int32
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := r.drv.Send(ctx, otaFrame(0x19, 2, 5, 0)); err != nil {
					failed.Add(1)
					time.Sleep(5 * time.Millisecond)
				} else {
					ok.Add(1)
				}
				cancel()
			}
		}()
		time.Sleep(50 * time.Millisecond)
		r.stick.Reset()
		ev := r.waitEvent(ncp.EventRadioReset)
		assert.Contains(t, ev.Reason, "NCP reset (watchdog)")
		close(stop)
		wg.Wait()
		t.Logf("sends during the reset: %d ok, %d failed", ok.Load(), failed.Load())

		// The driver re-initialised the stick: version, config, endpoint, networkInit again; traffic resumes.
		cmds := r.stick.Commands()
		assert.Equal(t, 4, cmds["version"])
		assert.Equal(t, 2, cmds["addEndpoint"])
		assert.Equal(t, 2, cmds["networkInit"], "NOT_JOINED at the first start, resumed after the reset")
		assert.Equal(t, 1, cmds["formNetwork"])
		r.sendOK(otaFrame(0x19, 3, 5, 0))
	})
}

func TestNetworkDownThenUp(t *testing.T) {
	r := newRig(t, fakestick.Config{ProtocolVersion: 14}, ezsp.Config{})
	r.start()
	r.stick.NetworkDownUp(100 * time.Millisecond)
	ev := r.waitEvent(ncp.EventRadioReset)
	assert.Equal(t, "network went down and came back up", ev.Reason)
	r.sendOK(otaFrame(0x19, 1, 5, 0))

	// Down for longer than the grace period: a full re-initialisation.
	r.stick.NetworkDownUp(5 * time.Second)
	ev = r.waitEvent(ncp.EventRadioReset)
	assert.Contains(t, ev.Reason, "network down for")
	r.sendOK(otaFrame(0x19, 2, 5, 0))
}

func TestCorruptedBytesRecovered(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		r := newRig(t, fakestick.Config{ProtocolVersion: version}, ezsp.Config{})
		r.start()
		before := r.stick.LinkStats()
		for i := range 30 {
			switch i % 3 {
			case 0:
				r.stick.CorruptNextData(1) // the host NAKs, the stick retransmits
			case 1:
				r.stick.CorruptNext(1) // usually an ACK: the ackNum of the next DATA frame covers it
			}
			r.sendOK(otaFrame(0x19, byte(i), 5, 0))
		}
		st := r.stick.LinkStats()
		t.Logf("stick link: %+v", st)
		assert.Greater(t, st.NaksReceived+st.AckTimeouts, before.NaksReceived+before.AckTimeouts, "the host NAKed corrupted frames (or their ACKs timed out)")
		assert.Greater(t, st.Retransmits, before.Retransmits, "the stick retransmitted")
		select {
		case ev := <-r.events:
			t.Fatalf("unexpected event %v (%s): CRC errors must be recovered by the link", ev.Kind, ev.Reason)
		default:
		}
	})
}

func TestPortVanishes(t *testing.T) {
	r := newRig(t, fakestick.Config{ProtocolVersion: 13}, ezsp.Config{})
	r.start()
	r.sendOK(otaFrame(0x19, 1, 5, 0))
	r.portGone.Store(true)
	r.stick.DropPort()
	ev := r.waitEvent(ncp.EventDisconnected)
	assert.Contains(t, ev.Reason, "serial port failed")
	err := r.drv.Send(context.Background(), otaFrame(0x19, 2, 5, 0))
	assert.ErrorIs(t, err, ezsp.ErrNotReady)
	time.Sleep(100 * time.Millisecond) // a few reconnect attempts fail
	opens := r.opens.Load()
	r.portGone.Store(false)
	r.waitEvent(ncp.EventReconnected)
	assert.Greater(t, r.opens.Load(), opens)
	r.sendOK(otaFrame(0x19, 3, 5, 0))
	assert.Equal(t, 1, r.stick.Commands()["formNetwork"], "the stored network was resumed after the reconnect")
}

func TestOldStickRefused(t *testing.T) {
	r := newRig(t, fakestick.Config{ProtocolVersion: 8}, ezsp.Config{})
	_, err := r.drv.Start(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, ezsp.ErrUnsupportedStick)
	assert.Contains(t, err.Error(), "stick speaks EZSP v8 (EmberZNet 6.10); otabridge needs EZSP v13+ (EmberZNet 7.4 or later): update the stick firmware")
	_, err = r.drv.Start(context.Background())
	assert.ErrorIs(t, err, ezsp.ErrUnsupportedStick, "Start may be tried again")
}

func TestNotAnEZSPStick(t *testing.T) {
	var wg sync.WaitGroup
	opener := func(context.Context) (io.ReadWriteCloser, error) {
		host, other := net.Pipe()
		wg.Add(1)
		go func() { // a ZNP stick: reads whatever comes, answers nothing ASH understands
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				if _, err := other.Read(buf); err != nil {
					return
				}
				_, _ = other.Write([]byte{0xFE, 0x00, 0x21, 0x01, 0x20})
			}
		}()
		return host, nil
	}
	to := fastTimeouts
	to.Reset = 300 * time.Millisecond
	d := ezsp.New(ezsp.Config{Port: "/dev/ttyUSB0"}, zerolog.Nop(), ezsp.WithOpener(opener), ezsp.WithTimeouts(to))
	_, err := d.Start(context.Background())
	require.Error(t, err)
	assert.Equal(t, "no ASH RSTACK from /dev/ttyUSB0 within 300ms: is this a Silicon Labs EZSP stick (not Z-Stack/ZBOSS)?", err.Error())
	require.NoError(t, d.Close())
	wg.Wait()
}

func TestSendBeforeStartAndAfterClose(t *testing.T) {
	r := newRig(t, fakestick.Config{}, ezsp.Config{})
	assert.ErrorIs(t, r.drv.Send(context.Background(), otaFrame(1, 2, 3)), ncp.ErrNotStarted)
	assert.ErrorIs(t, r.drv.PermitJoin(context.Background(), 10), ncp.ErrNotStarted)
	r.start()
	require.NoError(t, r.drv.Close())
	require.NoError(t, r.drv.Close())
	assert.ErrorIs(t, r.drv.Send(context.Background(), otaFrame(1, 2, 3)), ncp.ErrClosed)
	_, err := r.drv.Start(context.Background())
	assert.ErrorIs(t, err, ncp.ErrClosed)
	select {
	case <-r.pumpDone:
	case <-time.After(5 * time.Second):
		t.Fatal("Events channel not closed by Close")
	}
}

func TestConfigValidation(t *testing.T) {
	d := ezsp.New(ezsp.Config{Port: "/dev/null", FlowControl: "maybe"}, zerolog.Nop())
	defer d.Close()
	_, err := d.Start(context.Background())
	assert.ErrorContains(t, err, `flow_control "maybe"`)
	d2 := ezsp.New(ezsp.Config{Port: "/dev/ttyDOES-NOT-EXIST"}, zerolog.Nop())
	defer d2.Close()
	_, err = d2.Start(context.Background())
	assert.ErrorContains(t, err, "serial port /dev/ttyDOES-NOT-EXIST does not exist: is the stick plugged in?")

	var k ezsp.NetworkKey
	require.NoError(t, k.UnmarshalText([]byte("01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef")))
	assert.Equal(t, "0123456789abcdef0123456789abcdef", k.String())
	assert.Error(t, k.UnmarshalText([]byte("0123")))
}

// TestNoGoroutineLeak runs a whole life (start, traffic, reset, reconnect) and checks that Close leaves no
// goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		r := newRig(t, fakestick.Config{ProtocolVersion: 14}, ezsp.Config{})
		r.start()
		r.sendOK(otaFrame(0x19, 1, 5, 0))
		r.stick.Reset()
		r.waitEvent(ncp.EventRadioReset)
		r.stick.DropPort()
		r.waitEvent(ncp.EventReconnected)
		r.sendOK(otaFrame(0x19, 2, 5, 0))
		r.close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if runtime.NumGoroutine() > base {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after\n%s", base, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// TestUnknownSenderLookedUpOnce: frames from a short address the stick cannot name (a device of an existing
// network) are handed on without an IEEE address, and the stick is asked once, not once per frame.
func TestUnknownSenderLookedUpOnce(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		r := newRig(t, fakestick.Config{ProtocolVersion: version}, ezsp.Config{})
		r.start()
		const stranger = 0x6666
		for i := range 5 {
			r.net.Emit(ncp.Event{Kind: ncp.EventFrame, Frame: ncp.Incoming{SrcShort: stranger, SrcEndpoint: 1, DstEndpoint: 1,
				ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, Payload: []byte{0x01, byte(i), 0x01, 0x00}}})
			ev := r.waitEvent(ncp.EventFrame)
			assert.Equal(t, uint16(stranger), ev.Frame.SrcShort)
			assert.Equal(t, byte(i), ev.Frame.Payload[1])
			assert.Zero(t, ev.Frame.SrcIEEE)
		}
		assert.Equal(t, 1, r.stick.Commands()["lookupEui64ByNodeId"], "one lookup for five frames")
		_, err := r.drv.LookupIEEE(context.Background(), stranger)
		assert.ErrorContains(t, err, "did not know")
		assert.Equal(t, 1, r.stick.Commands()["lookupEui64ByNodeId"], "a direct lookup within a minute is answered from the miss")
	})
}
