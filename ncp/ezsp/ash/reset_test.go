package ash

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The NCP answers one RST twice: the host's RSTACK was slow and it sent RST again, or a line repeated the
// RST. ASH cannot tell which RST an RSTACK answers, so the host takes the first as its answer while the NCP
// already runs the link of the second. These tests play both orders byte by byte (soak seed 2063 found it:
// TestSoakLossyLink -ash.seed=2063 -ash.window=7).

// linkDown returns what OnLinkDown reported (failure guard: 5 s).
func linkDown(t *testing.T, down <-chan error) error {
	t.Helper()
	select {
	case err := <-down:
		return err
	case <-time.After(5 * time.Second):
		require.FailNow(t, "OnLinkDown was not called")
		return nil
	}
}

// rstackWire is the RSTACK of a software reset (herdsman RECD_RSTACK_BYTES).
const rstackWire = "1A C1 02 0B 0A 52 7E"

// TestSecondRSTACKEndsTheLink plays the NCP of the double reset against a host: after the RSTACK the host
// takes, the NCP sends a DATA frame and then a second RSTACK. The host delivers the frame (the NCP's link
// then was the one the host was on) and then reports an NCP reset: the frame it had in flight fails with
// *ResetError and OnLinkDown says so. The ACK of the NCP's frame, held back by AckDelay, is never written:
// it would reach the NCP's second link and acknowledge that link's first frame, which the host never takes
// (the NCP's Send returned nil for a frame never delivered). The next thing on the wire is the host's RST.
func TestSecondRSTACKEndsTheLink(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	cfg := fastConfig(RoleHost)
	cfg.AckTimeoutInit, cfg.AckTimeoutMin, cfg.AckTimeoutMax = time.Hour, time.Hour, time.Hour // no retransmission
	cfg.AckDelay = time.Hour                                                                   // the ACK of one frame waits for a frame of the host's to carry it
	cfg.OnData = func(d []byte) { mu.Lock(); got = append(got, d); mu.Unlock() }
	host, ncp, down := hostOnPipe(t, cfg)
	ctx := context.Background()

	reset := make(chan error, 1)
	go func() { _, err := host.Reset(ctx); reset <- err }()
	assert.Equal(t, "1ac038bc7e", ncp.readWire())
	ncp.write(rstackWire)
	require.NoError(t, <-reset)

	cmd := []byte{0x00, 0x00, 0x00, 0x0D}
	wait, err := host.Start(ctx, cmd)
	require.NoError(t, err)
	first := ncp.readWire()
	if first == ackZeroWire { // the host's first frame after the RSTACK
		first = ncp.readWire()
	}
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, Data: cmd}), first)

	// Between its two resets the NCP sent a frame; then the RSTACK of its second reset.
	between := []byte{0x42, 0x00, 0x01}
	ncp.write(wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, Data: between}) + rstackWire)
	var re *ResetError
	require.ErrorAs(t, linkDown(t, down), &re, "the second RSTACK is an NCP reset")
	assert.Equal(t, uint8(ResetSoftware), re.Code)
	require.ErrorAs(t, wait(), &re, "the frame in flight fails with the reset")
	assert.False(t, host.Connected())
	mu.Lock()
	assert.Equal(t, [][]byte{between}, got, "the frame before the second RSTACK was delivered")
	mu.Unlock()

	go func() { _, err := host.Reset(ctx); reset <- err }()
	assert.Equal(t, "1ac038bc7e", ncp.readWire(), "the RST, and no ACK of the link the NCP ended before it")
	ncp.write(rstackWire)
	require.NoError(t, <-reset)
	assert.Equal(t, ackZeroWire, ncp.readWire(), "the new link starts at frame 0")
}

// TestRSTACKTwiceInARow: both RSTACKs arrive together. The first answers the host's RST; the second is an
// NCP reset (the host must not take it for the same answer and run a link the NCP has ended).
func TestRSTACKTwiceInARow(t *testing.T) {
	host, ncp, down := hostOnPipe(t, fastConfig(RoleHost))
	reset := make(chan error, 1)
	go func() { _, err := host.Reset(context.Background()); reset <- err }()
	assert.Equal(t, "1ac038bc7e", ncp.readWire())
	ncp.write(rstackWire + rstackWire)
	require.NoError(t, <-reset)
	var re *ResetError
	require.ErrorAs(t, linkDown(t, down), &re, "the second RSTACK is an NCP reset")
	assert.False(t, host.Connected())
	assert.Equal(t, uint64(1), host.Stats().Resets, "one RSTACK answered the RST")
}

// TestNCPSendsNothingBeforeTheHostSpeaks plays the host of the double reset against an NCP: the NCP has a
// frame to send right after its first RSTACK, but it holds it until a frame of the host arrives. The host's
// frames after the first RSTACK reach the NCP after the second RST, so the frame goes out on the second
// link, the one the host's acknowledgement numbers are about; sent on the first link it would be taken and
// acknowledged by the host, and that acknowledgement would land on the second link.
func TestNCPSendsNothingBeforeTheHostSpeaks(t *testing.T) {
	a, b := net.Pipe()
	cfg := fastConfig(RoleNCP)
	cfg.AckTimeoutInit, cfg.AckTimeoutMin, cfg.AckTimeoutMax = time.Hour, time.Hour, time.Hour // no retransmission
	ncp := NewConn(a, cfg)
	defer ncp.Close()
	host := &peer{t: t, rw: b}
	defer b.Close()

	host.write(wire(Frame{Type: FrameRST}))
	assert.Equal(t, "1a"+wire(Frame{Type: FrameRSTACK, Version: Version, Code: ResetSoftware}), host.readWire())
	assert.False(t, ncp.Connected(), "no frame of the host yet")
	data := []byte{0x42, 0x00, 0x01}
	sent := make(chan error, 1)
	go func() { sent <- ncp.Send(context.Background(), data) }()

	host.write(wire(Frame{Type: FrameRST})) // the RST again
	assert.Equal(t, "1a"+wire(Frame{Type: FrameRSTACK, Version: Version, Code: ResetSoftware}), host.readWire(),
		"the second RSTACK next: no DATA frame on the first link")
	host.write(ackZeroWire) // the host took an RSTACK
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, Data: data}), host.readWire(), "sent on the second link")
	assert.True(t, ncp.Connected())
	host.write(wire(Frame{Type: FrameAck, AckNum: 1}))
	require.NoError(t, <-sent)
	assert.Equal(t, uint64(2), ncp.Stats().Resets)
}

// TestRSTACKBeforeTheRSTIsNotItsAnswer: an RSTACK that arrives while the host's RST is still on its way out
// (a slow UART: 100 baud, half a second for the RST's 5 bytes) was sent before the NCP got that RST, so it
// cannot answer it: the host waits for the next one, and its link starts only then.
func TestRSTACKBeforeTheRSTIsNotItsAnswer(t *testing.T) {
	cfg := fastConfig(RoleHost)
	cfg.Baud = 100
	host, ncp, _ := hostOnPipe(t, cfg)
	reset := make(chan error, 1)
	go func() { _, err := host.Reset(context.Background()); reset <- err }()
	ncp.write(rstackWire) // the NCP reset by itself just before
	assert.Equal(t, "1ac038bc7e", ncp.readWire(), "the RST, written after the early RSTACK was read")
	select {
	case err := <-reset:
		t.Fatalf("Reset took the RSTACK sent before its RST (err %v)", err)
	default:
	}
	assert.False(t, host.Connected())
	assert.Zero(t, host.Stats().Resets)

	ncp.write(rstackWire) // the answer
	require.NoError(t, <-reset)
	assert.Equal(t, ackZeroWire, ncp.readWire(), "the new link starts at frame 0")
	assert.Equal(t, uint64(1), host.Stats().Resets)
}

// TestRSTACKOfTheNCPsOwnResetIsNotTheAnswer: an NCP answers RST with a software reset; an RSTACK with
// another code (here power-on: the stick was just plugged in) reports a reset of its own from before it got
// the RST, and the host waits for the answer, as zigbee-herdsman and Silicon Labs' ash-host do.
func TestRSTACKOfTheNCPsOwnResetIsNotTheAnswer(t *testing.T) {
	host, ncp, _ := hostOnPipe(t, fastConfig(RoleHost))
	reset := make(chan uint8, 1)
	go func() {
		code, err := host.Reset(context.Background())
		assert.NoError(t, err)
		reset <- code
	}()
	assert.Equal(t, "1ac038bc7e", ncp.readWire())
	ncp.write("C1 02 02 9B 7B 7E") // RSTACK, power-on
	ncp.write(rstackWire)          // the answer: software reset
	assert.Equal(t, uint8(ResetSoftware), <-reset)
	assert.Equal(t, ackZeroWire, ncp.readWire(), "one link starts, at frame 0")
	assert.Equal(t, uint64(1), host.Stats().Resets)
	assert.True(t, host.Connected())
}
