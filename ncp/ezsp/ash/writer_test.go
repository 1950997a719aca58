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

// wireTap is a Conn's TxFilter that decodes every frame the Conn writes, and can hold the writer at the
// next DATA frame until released (so that the test can line frames up behind it in the writer's queue).
type wireTap struct {
	mu     sync.Mutex
	dec    Decoder
	frames []Frame
	hold   chan struct{} // non-nil: the next DATA frame waits for it to be closed
	held   chan struct{} // closed when the writer is held
}

func (w *wireTap) filter(b []byte) []byte {
	var fs []Frame
	var probe Decoder
	probe.Feed(b, func(f Frame, err error) {
		if err == nil {
			fs = append(fs, f)
		}
	})
	w.mu.Lock()
	hold, held := w.hold, w.held
	if hold != nil && len(fs) == 1 && fs[0].Type == FrameData {
		w.hold, w.held = nil, nil
	} else {
		hold = nil
	}
	w.mu.Unlock()
	if hold != nil {
		close(held)
		<-hold
	}
	w.mu.Lock()
	w.dec.Feed(b, func(f Frame, err error) {
		if err == nil {
			w.frames = append(w.frames, f)
		}
	})
	w.mu.Unlock()
	return b
}

// holdNextData makes the writer wait at its next DATA frame; it returns a channel closed once it waits
// there and the function that lets it go on.
func (w *wireTap) holdNextData() (held <-chan struct{}, release func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hold, w.held = make(chan struct{}), make(chan struct{})
	hold := w.hold
	return w.held, func() { close(hold) }
}

// count returns how many frames of each type were written.
func (w *wireTap) count() map[FrameType]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := map[FrameType]int{}
	for _, f := range w.frames {
		n[f.Type]++
	}
	return n
}

// ncpUnderTest is an NCP Conn on one end of a pipe, with a tap on what it writes, reset by a scripted host on
// the other end, which then sends ACK(0) as a host does once it took the RSTACK.
func ncpUnderTest(t *testing.T, cfg Config) (*Conn, *peer, *wireTap) {
	t.Helper()
	a, b := net.Pipe()
	tap := &wireTap{}
	cfg.Role, cfg.TxFilter = RoleNCP, tap.filter
	ncp := NewConn(a, cfg)
	t.Cleanup(func() { ncp.Close() })
	host := &peer{t: t, rw: b}
	t.Cleanup(func() { b.Close() })
	host.write(wire(Frame{Type: FrameRST}))
	assert.Equal(t, "1a"+wire(Frame{Type: FrameRSTACK, Version: Version, Code: ResetSoftware}), host.readWire())
	host.write(wire(Frame{Type: FrameAck, AckNum: 0})) // the host's first frame after RSTACK: the NCP may send
	return ncp, host, tap
}

// answerer answers every command the NCP gets at once (on the reader goroutine, as a fake stick whose
// response is ready), and collects the results of the responses' waits.
type answerer struct {
	ncp     *Conn
	results chan error
}

func (a *answerer) onData(cmd []byte) {
	resp := append([]byte{0xA5}, cmd...)
	wait, err := a.ncp.Start(context.Background(), resp)
	if err != nil {
		a.results <- err
		return
	}
	go func() { a.results <- wait() }() // ends when the host ACKs the response, or at Close
}

// TestAckFoldedIntoResponse: with AckDelay on the NCP, a command answered at once is acknowledged by the
// response (its ackNum), never by an ACK frame of its own: on the wire the NCP writes one DATA frame per
// command and nothing else, and Stats.AcksFolded counts the ACKs it did not write.
func TestAckFoldedIntoResponse(t *testing.T) {
	ans := &answerer{results: make(chan error, 8)}
	// The delay only has to outlast the moment between the ACK being queued and the response being queued
	// on the same goroutine; a long one keeps the test deterministic on a loaded machine.
	ncp, host, tap := ncpUnderTest(t, Config{Window: 3, AckDelay: 10 * time.Second, OnData: ans.onData})
	ans.ncp = ncp
	const commands = 3
	for i := range uint8(commands) {
		cmd := []byte{i, 0x00, 0x01, 0x02}
		host.write(wire(Frame{Type: FrameData, FrmNum: i, AckNum: i, Data: cmd}))
		// The next frame on the wire is the response, carrying ackNum i+1: no ACK(i+1) before it.
		assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: i, AckNum: i + 1, Data: append([]byte{0xA5}, cmd...)}), host.readWire(), "response %d", i)
		host.write(wire(Frame{Type: FrameAck, AckNum: i + 1}))
		require.NoError(t, <-ans.results)
	}
	st := ncp.Stats()
	assert.Equal(t, uint64(commands), st.DataReceived)
	assert.Equal(t, uint64(commands), st.AcksSent)
	assert.Equal(t, uint64(commands), st.AcksFolded, "every ACK rode on a response")
	assert.Equal(t, map[FrameType]int{FrameRSTACK: 1, FrameData: commands}, tap.count(), "frames the NCP wrote")
}

// TestNakNeverFolded: a NAK with a DATA frame queued behind it is still written (folding it would turn the
// request for a retransmission into a mere acknowledgement), while an ACK in the same place is folded.
func TestNakNeverFolded(t *testing.T) {
	ans := &answerer{results: make(chan error, 8)}
	ncp, host, tap := ncpUnderTest(t, Config{Window: 3, AckDelay: 10 * time.Second, OnData: ans.onData})
	ans.ncp = ncp

	// Command 0 is answered at once; the writer is held at the response, so what follows queues up behind it.
	held, release := tap.holdNextData()
	cmd0 := []byte{0x00, 0x00, 0x01, 0x02}
	host.write(wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, Data: cmd0}))
	<-held
	// Frame 2 before frame 1: NAK(1). Then a spoiled ACK: once the NCP counted its frame error, the NAK
	// (queued on the same goroutine before) waits in the writer's queue.
	host.write(wire(Frame{Type: FrameData, FrmNum: 2, AckNum: 0, Data: []byte{0x02, 0x00, 0x01, 0x02}}))
	host.write("81 00 00 7E")
	require.Eventually(t, func() bool { return ncp.Stats().FrameErrors == 1 }, 10*time.Second, time.Millisecond)
	// A DATA frame of the NCP's own behind the NAK.
	own := []byte{0x5A, 0x00, 0x01, 0x02}
	wait, err := ncp.Start(context.Background(), own)
	require.NoError(t, err)
	release()

	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 1, Data: append([]byte{0xA5}, cmd0...)}), host.readWire(), "response 0, carrying the ACK of command 0")
	assert.Equal(t, wire(Frame{Type: FrameNak, AckNum: 1}), host.readWire(), "the NAK, not folded into the DATA frame behind it")
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 1, AckNum: 1, Data: own}), host.readWire())
	host.write(wire(Frame{Type: FrameAck, AckNum: 2}))
	require.NoError(t, <-ans.results)
	require.NoError(t, wait())

	st := ncp.Stats()
	assert.Equal(t, uint64(1), st.NaksSent)
	assert.Equal(t, uint64(1), st.AcksSent)
	assert.Equal(t, uint64(1), st.AcksFolded)
	assert.Equal(t, map[FrameType]int{FrameRSTACK: 1, FrameData: 2, FrameNak: 1}, tap.count(), "frames the NCP wrote")
}

// TestStaleNakNotWrittenBehindNewerAck: a NAK queued while a frame of ours waited for the writer must not
// go out after that frame if the frame it asks for arrived meanwhile: the frame, written later, carries the
// newer ackNum, and a NAK with the older one behind it would move the acknowledgement back by one, which a
// peer with 7 frames in flight takes (modulo 8) as acknowledging all 7. It goes out as an ACK of where the
// receiver is.
func TestStaleNakNotWrittenBehindNewerAck(t *testing.T) {
	ncp, host, tap := ncpUnderTest(t, Config{Window: 3})
	ctx := context.Background()

	// The writer is held at DATA 0 (its ackNum 0 already set); DATA 1 queues behind it.
	held, release := tap.holdNextData()
	d0, d1 := []byte{0x10, 0x00, 0x01}, []byte{0x11, 0x00, 0x01}
	wait0, err := ncp.Start(ctx, d0)
	require.NoError(t, err)
	<-held
	wait1, err := ncp.Start(ctx, d1)
	require.NoError(t, err)
	// The host's frame 1 arrives before its frame 0: NAK(0) queues behind DATA 1. Then frame 0 (resent)
	// arrives: ACK(1) queues. The spoiled frame after them shows that both are queued.
	host.write(wire(Frame{Type: FrameData, FrmNum: 1, AckNum: 0, Data: []byte{0x21, 0x00, 0x01}}))
	host.write(wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, ReTx: true, Data: []byte{0x20, 0x00, 0x01}}))
	host.write("81 00 00 7E")
	require.Eventually(t, func() bool { return ncp.Stats().FrameErrors == 1 }, 10*time.Second, time.Millisecond)
	release()

	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, Data: d0}), host.readWire())
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 1, AckNum: 1, Data: d1}), host.readWire(), "DATA 1 acknowledges the host's frame 0")
	assert.Equal(t, wire(Frame{Type: FrameAck, AckNum: 1}), host.readWire(), "the NAK(0) asked for a frame that arrived: ACK(1), never an ackNum of 0 again")
	assert.Equal(t, wire(Frame{Type: FrameAck, AckNum: 1}), host.readWire())
	host.write(wire(Frame{Type: FrameAck, AckNum: 2}))
	require.NoError(t, wait0())
	require.NoError(t, wait1())
	tap.mu.Lock()
	defer tap.mu.Unlock()
	for _, f := range tap.frames[2:] { // after RSTACK and DATA 0
		assert.Equal(t, uint8(1), f.AckNum, "%v: acknowledgement numbers never go back", f)
	}
}

// TestNoFrameOfTheOldLinkAfterReset: a DATA frame of a link that was reset while it waited in the writer's
// queue, or while it was on its way out, is not written (its Send failed already), and neither is a frame of the old link queued behind the
// RSTACK: the host would take it for the new link's (here: a retransmission numbered 0, delivered as the
// first frame of the new link, and the NCP's real first frame refused). That frame is queued by hand, as
// resendFrom queues it when the host's RST arrives between its look at the frames in flight and its
// queueing them.
func TestNoFrameOfTheOldLinkAfterReset(t *testing.T) {
	ncp, host, tap := ncpUnderTest(t, Config{Window: 3})
	ctx := context.Background()
	old := []byte{0x01, 0x00, 0x01}
	wait, err := ncp.Start(ctx, old)
	require.NoError(t, err)
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, Data: old}), host.readWire())
	ncp.mu.Lock()
	oldGen := ncp.gen
	ncp.mu.Unlock()

	// The writer is held at a DATA frame of the old link while the host's RST arrives; the spoiled frame
	// after it shows that the RSTACK is queued.
	held, release := tap.holdNextData()
	wait2, err := ncp.Start(ctx, []byte{0x02, 0x00, 0x01})
	require.NoError(t, err)
	<-held
	wait2b, err := ncp.Start(ctx, []byte{0x02, 0x00, 0x02}) // queued behind it: dead after the reset
	require.NoError(t, err)
	host.write(wire(Frame{Type: FrameRST}))
	host.write("81 00 00 7E")
	require.Eventually(t, func() bool { return ncp.Stats().FrameErrors == 1 }, 10*time.Second, time.Millisecond)
	assert.ErrorIs(t, wait(), ErrLinkReset)
	assert.ErrorIs(t, wait2(), ErrLinkReset)
	assert.ErrorIs(t, wait2b(), ErrLinkReset)
	ncp.enqueueFrame(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, ReTx: true, Data: old}, oldGen, nil)
	// The NCP sends on the new link once the host has sent a frame of it (the host's ACK(0) is written
	// early here: the host could not read the RSTACK behind the held frame).
	host.write(wire(Frame{Type: FrameAck, AckNum: 0}))
	require.Eventually(t, ncp.Connected, 10*time.Second, time.Millisecond)
	fresh := []byte{0x03, 0x00, 0x01}
	wait3, err := ncp.Start(ctx, fresh)
	require.NoError(t, err)
	release()

	// The frame held on its way out when the RST arrived is cut (a reset cuts the frame being sent).
	assert.Equal(t, "1a"+wire(Frame{Type: FrameRSTACK, Version: Version, Code: ResetSoftware}), host.readWire(), "the RSTACK next: the frame queued before it failed with the reset and is not written")
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, Data: fresh}), host.readWire(), "the new link's first frame, and nothing of the old one before it")
	host.write(wire(Frame{Type: FrameAck, AckNum: 1}))
	require.NoError(t, wait3())
}

// TestAckOfSeveralFramesNotHeld: AckDelay holds back the ACK of one frame only. With two frames taken and
// neither acknowledged on the wire, the ACK goes out at once (a peer with a full window must not wait for
// the delay), acknowledging both.
func TestAckOfSeveralFramesNotHeld(t *testing.T) {
	// An hour of delay: were the ACK held, readWire's 5 s deadline would fail the test.
	ncp, host, tap := ncpUnderTest(t, Config{Window: 3, AckDelay: time.Hour})
	host.write(wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, Data: []byte{0x00, 0x00, 0x01}}))
	require.Eventually(t, func() bool { return ncp.Stats().DataReceived == 1 }, 10*time.Second, time.Millisecond)
	host.write(wire(Frame{Type: FrameData, FrmNum: 1, AckNum: 0, Data: []byte{0x01, 0x00, 0x01}}))
	assert.Equal(t, wire(Frame{Type: FrameAck, AckNum: 2}), host.readWire(), "one ACK for both frames, not held")
	assert.Equal(t, map[FrameType]int{FrameRSTACK: 1, FrameAck: 1}, tap.count(), "frames the NCP wrote")
	assert.Equal(t, uint64(1), ncp.Stats().AcksFolded, "the first frame's ACK rode on the second's")
}
