package ezsp_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/pty"
	"github.com/otabridge/otabridge/zcl"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ptyStick serves a fake stick on a pseudo-terminal reached through a symlink (like /dev/serial/by-id/…), and
// can pull the plug and plug a new pty in under the same link.
type ptyStick struct {
	t     testing.TB
	stick *fakestick.Stick
	link  string
	ctx   context.Context
	wg    sync.WaitGroup
}

func newPtyStick(t testing.TB, stick *fakestick.Stick) *ptyStick {
	p := &ptyStick{t: t, stick: stick, link: filepath.Join(t.TempDir(), "usb-Fake_EZSP_Stick-if00-port0")}
	var cancel context.CancelFunc
	p.ctx, cancel = context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); p.wg.Wait() })
	p.plugIn()
	return p
}

func (p *ptyStick) plugIn() {
	master, path, err := pty.Open()
	require.NoError(p.t, err)
	_ = os.Remove(p.link)
	require.NoError(p.t, os.Symlink(path, p.link))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = p.stick.Serve(p.ctx, master)
	}()
}

// TestOverRealPty runs the driver with its default go.bug.st/serial opener (hardware flow control set through
// termios) against the fake stick on a pseudo-terminal: bring-up, join, traffic, the port vanishing and
// coming back under the same path.
func TestOverRealPty(t *testing.T) {
	memnet := fakestick.NewMemNetwork(ncp.NetworkInfo{IEEE: 0x00124B00FA4E0001})
	defer memnet.Close()
	stick := fakestick.New(memnet, fakestick.Config{ProtocolVersion: 14, Baud: 460800, Log: testLog(t)})
	defer stick.Close()
	p := newPtyStick(t, stick)

	drv := ezsp.New(ezsp.Config{Port: p.link, Baud: 460800, FlowControl: ezsp.FlowHardware}, testLog(t), ezsp.WithTimeouts(fastTimeouts))
	defer drv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := drv.Start(ctx)
	require.NoError(t, err)
	assert.Equal(t, p.link, info.Port)
	assert.Equal(t, "EmberZNet 8.0.0.0 (EZSP v14)", info.Firmware)

	dev := fakestick.MemDevice{Short: 0x4242, IEEE: 0x00124B0099887766, Capabilities: 0x8E}
	memnet.AddJoiner(dev)
	memnet.SetResponder(func(f ncp.Frame) []ncp.Event {
		return []ncp.Event{{Kind: ncp.EventFrame, Frame: ncp.Incoming{SrcShort: f.DstShort, SrcIEEE: dev.IEEE, SrcEndpoint: 1, DstEndpoint: 1,
			ClusterID: f.ClusterID, ProfileID: f.ProfileID, LQI: 180, Payload: []byte{0x18, f.Payload[1], 0x0b, 0x05, 0x00}}}}
	})
	require.NoError(t, drv.PermitJoin(ctx, 60))
	want := map[ncp.EventKind]bool{ncp.EventJoined: true, ncp.EventAnnounced: true}
	for len(want) > 0 {
		select {
		case ev := <-drv.Events():
			assert.Equal(t, dev.IEEE, ev.IEEE)
			delete(want, ev.Kind)
		case <-ctx.Done():
			t.Fatalf("missing events %v", want)
		}
	}
	require.NoError(t, drv.Send(ctx, ncp.Frame{DstShort: dev.Short, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: []byte{0x19, 9, 5, 0}}))
	ev := <-drv.Events()
	require.Equal(t, ncp.EventFrame, ev.Kind)
	assert.Equal(t, []byte{0x18, 9, 0x0b, 0x05, 0x00}, ev.Frame.Payload)

	// Unplug: the master closes, /dev/pts/N disappears, the host's read fails.
	stick.DropPort()
	ev = nextEvent(t, drv, ncp.EventDisconnected)
	t.Logf("disconnected: %s", ev.Reason)
	time.Sleep(50 * time.Millisecond) // the reconnect loop fails against the dead path meanwhile
	p.plugIn()
	nextEvent(t, drv, ncp.EventReconnected)
	require.NoError(t, drv.Send(ctx, ncp.Frame{DstShort: dev.Short, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: []byte{0x19, 10, 5, 0}}))
	require.NoError(t, drv.Close())
}

func nextEvent(t *testing.T, d *ezsp.Driver, kind ncp.EventKind) ncp.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-d.Events():
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event", kind)
		}
	}
}

func TestSerialPortBusy(t *testing.T) {
	memnet := fakestick.NewMemNetwork(ncp.NetworkInfo{})
	defer memnet.Close()
	stick := fakestick.New(memnet, fakestick.Config{})
	defer stick.Close()
	p := newPtyStick(t, stick)
	d1 := ezsp.New(ezsp.Config{Port: p.link}, zerolog.Nop(), ezsp.WithTimeouts(fastTimeouts))
	defer d1.Close()
	_, err := d1.Start(context.Background())
	require.NoError(t, err)
	if os.Geteuid() == 0 {
		t.Skip("root ignores TIOCEXCL, so the second open is not refused")
	}
	d2 := ezsp.New(ezsp.Config{Port: p.link}, zerolog.Nop(), ezsp.WithTimeouts(fastTimeouts))
	defer d2.Close()
	_, err = d2.Start(context.Background())
	assert.ErrorContains(t, err, "is busy")
}

// BenchmarkOTABlockOverPty measures OTA-like traffic through ASH+EZSP over a real pty: per iteration, one
// Image Block Response with 64 data bytes (81-byte ZCL frame, APS-acked unicast, confirmed by
// messageSentHandler) and the device's next Image Block Request coming back as incomingMessageHandler.
// "unpaced" is the pty's raw speed; "stick-paced-N" paces the stick's transmissions to 10 bits per byte at N
// baud (a pty does not enforce baud; the host's direction stays unpaced). uart_blocks/s is the UART-limited
// figure computed from the wire bytes of both directions at N baud, as if they were serialised (window 1).
func BenchmarkOTABlockOverPty(b *testing.B) {
	for _, bc := range []struct {
		name string
		baud int
	}{{"unpaced", 0}, {"stick-paced-115200", 115200}, {"stick-paced-460800", 460800}} {
		b.Run(bc.name, func(b *testing.B) {
			memnet := fakestick.NewMemNetwork(ncp.NetworkInfo{})
			defer memnet.Close()
			memnet.AddDevice(fakestick.MemDevice{Short: 0x4242, IEEE: 0x00124B0099887766})
			offset := uint32(0)
			memnet.SetResponder(func(f ncp.Frame) []ncp.Event {
				offset += 64
				req := []byte{0x01, 0x10, 0x03, 0x00, 0x02, 0x11, 0x10, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, byte(offset), byte(offset >> 8), byte(offset >> 16), 0, 64}
				return []ncp.Event{{Kind: ncp.EventFrame, Frame: ncp.Incoming{SrcShort: 0x4242, SrcEndpoint: 1, DstEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, Payload: req}}}
			})
			stick := fakestick.New(memnet, fakestick.Config{ProtocolVersion: 14, Baud: bc.baud})
			defer stick.Close()
			p := newPtyStick(b, stick)
			drv := ezsp.New(ezsp.Config{Port: p.link, Baud: 115200}, zerolog.Nop())
			defer drv.Close()
			_, err := drv.Start(context.Background())
			require.NoError(b, err)
			block := make([]byte, 17+64)
			block[0], block[2] = 0x19, 0x05
			ctx := context.Background()
			before := stick.LinkStats()
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				block[1] = byte(i)
				if err := drv.Send(ctx, ncp.Frame{DstShort: 0x4242, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: block}); err != nil {
					b.Fatal(err)
				}
				if ev := <-drv.Events(); ev.Kind != ncp.EventFrame {
					b.Fatalf("got %v", ev.Kind)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			st := stick.LinkStats()
			hostToStick := float64(st.BytesRead-before.BytesRead) / float64(b.N)
			stickToHost := float64(st.BytesWritten-before.BytesWritten) / float64(b.N)
			wire := hostToStick + stickToHost
			b.ReportMetric(hostToStick, "host_to_stick_B/block")
			b.ReportMetric(stickToHost, "stick_to_host_B/block")
			blocks := float64(b.N) / elapsed.Seconds()
			b.ReportMetric(blocks, "blocks/s")
			b.ReportMetric(blocks*64, "goodput_B/s")
			b.ReportMetric(wire, "wire_B/block")
			b.ReportMetric(blocks*wire, "wire_B/s")
			b.ReportMetric(115200/10/wire, "uart115200_blocks/s")
			b.ReportMetric(460800/10/wire, "uart460800_blocks/s")
		})
	}
}
