package ash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// resetHost runs the RST/RSTACK handshake of host against the scripted NCP.
func resetHost(t *testing.T, host *Conn, ncp *peer) {
	t.Helper()
	reset := make(chan error, 1)
	go func() { _, err := host.Reset(context.Background()); reset <- err }()
	assert.Equal(t, "1ac038bc7e", ncp.readWire())
	ncp.write("1A C1 02 0B 0A 52 7E")
	require.NoError(t, <-reset)
	assert.Equal(t, ackZeroWire, ncp.readWire(), "the host's first frame of the new link")
}

// noWire asserts that nothing arrives from the host for a while (a blocked sender stays off the wire).
func noWire(t *testing.T, ncp *peer) {
	t.Helper()
	require.NoError(t, ncp.rw.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	b := make([]byte, 1)
	n, err := ncp.rw.Read(b)
	assert.Zero(t, n, "unexpected bytes on the wire")
	assert.Error(t, err)
}

// TestWindowOfThreeByteByByte plays the NCP against a host with a window of 3: three DATA frames go out
// back to back with frame numbers 0, 1, 2 (a fourth waits), one cumulative ACK(2) acknowledges two of
// them, a NAK(2) makes the host resend frame 2 (reTx), and an ACK timeout on frame 3 resends it.
func TestWindowOfThreeByteByByte(t *testing.T) {
	a, b := net.Pipe()
	cfg := fastConfig(RoleHost)
	cfg.Window = 3
	cfg.AckTimeoutInit, cfg.AckTimeoutMin, cfg.AckTimeoutMax = time.Second, time.Second, 2*time.Second
	host := NewConn(a, cfg)
	defer host.Close()
	ncp := &peer{t: t, rw: b}
	defer b.Close()
	resetHost(t, host, ncp)

	ctx := context.Background()
	results := make([]chan error, 4)
	payloads := [][]byte{{0x00, 0x00, 0x00, 0x0D}, {0x01, 0x00, 0x00, 0x0D}, {0x02, 0x00, 0x00, 0x0D}, {0x03, 0x00, 0x00, 0x0D}}
	for i := range 3 {
		results[i] = make(chan error, 1)
		go func() { results[i] <- host.Send(ctx, payloads[i]) }()
		got := ncp.readWire()
		if i == 0 {
			// DATA(0,0,0) version(13), the herdsman SEND_DATA_VERSION capture.
			assert.Equal(t, "004221a8597c057e", got)
		}
		assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: uint8(i), AckNum: 0, Data: payloads[i]}), got, "frame %d", i)
	}
	results[3] = make(chan error, 1)
	go func() { results[3] <- host.Send(ctx, payloads[3]) }()
	noWire(t, ncp) // the window is full: frame 3 waits

	// ACK(2): frames 0 and 1 are acknowledged at once; frame 3 may go.
	assert.Equal(t, "8160597e", wire(Frame{Type: FrameAck, AckNum: 1}), "ACK(1), UG101 vector")
	ncp.write(wire(Frame{Type: FrameAck, AckNum: 2}))
	require.NoError(t, <-results[0])
	require.NoError(t, <-results[1])
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 3, AckNum: 0, Data: payloads[3]}), ncp.readWire())

	// NAK(2): frame 2 was lost; go-back-N resends 2 and then 3, both with reTx set.
	ncp.write(wire(Frame{Type: FrameNak, AckNum: 2}))
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 2, AckNum: 0, ReTx: true, Data: payloads[2]}), ncp.readWire())
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 3, AckNum: 0, ReTx: true, Data: payloads[3]}), ncp.readWire())
	ncp.write(wire(Frame{Type: FrameAck, AckNum: 3}))
	require.NoError(t, <-results[2])

	// No ACK for frame 3: after the ACK timer it goes again.
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 3, AckNum: 0, ReTx: true, Data: payloads[3]}), ncp.readWire())
	ncp.write(wire(Frame{Type: FrameAck, AckNum: 4}))
	require.NoError(t, <-results[3])
	st := host.Stats()
	assert.Equal(t, uint64(4), st.DataSent)
	assert.Equal(t, uint64(3), st.Retransmits)
}

// TestWindowedReceiverTakesFramesInOrder plays a host that sends a window of three frames to an NCP Conn:
// each in-order frame is ACKed and delivered once; a gap is NAKed once; the go-back-N retransmissions
// are taken or re-ACKed.
func TestWindowedReceiverTakesFramesInOrder(t *testing.T) {
	a, b := net.Pipe()
	var mu sync.Mutex
	var got []string
	cfg := fastConfig(RoleNCP)
	cfg.OnData = func(d []byte) { mu.Lock(); got = append(got, string(d)); mu.Unlock() }
	n := NewConn(a, cfg)
	defer n.Close()
	host := &peer{t: t, rw: b}
	defer b.Close()
	host.write(wire(Frame{Type: FrameRST}))
	assert.Equal(t, "1a"+wire(Frame{Type: FrameRSTACK, Version: Version, Code: ResetSoftware}), host.readWire())

	data := func(frm uint8, reTx bool) string {
		return wire(Frame{Type: FrameData, FrmNum: frm, AckNum: 0, ReTx: reTx, Data: []byte(fmt.Sprintf("frame-%d", frm))})
	}
	host.write(data(0, false))
	assert.Equal(t, wire(Frame{Type: FrameAck, AckNum: 1}), host.readWire())
	host.write(data(2, false)) // frame 1 lost: NAK(1)
	assert.Equal(t, wire(Frame{Type: FrameNak, AckNum: 1}), host.readWire())
	host.write(data(3, false)) // still rejecting: no second NAK
	host.write(data(1, true))  // go-back-N from 1
	assert.Equal(t, wire(Frame{Type: FrameAck, AckNum: 2}), host.readWire())
	host.write(data(2, true))
	assert.Equal(t, wire(Frame{Type: FrameAck, AckNum: 3}), host.readWire())
	host.write(data(1, true)) // an old retransmission: re-ACKed, not delivered
	assert.Equal(t, wire(Frame{Type: FrameAck, AckNum: 3}), host.readWire())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"frame-0", "frame-1", "frame-2"}, got)
}

// TestWindowedLinkOverALossyPipe runs a host and an NCP with windows of 5 against each other with every
// 7th (9th) chunk corrupted, five senders on each side: every message arrives exactly once, each sender's
// messages in order.
func TestWindowedLinkOverALossyPipe(t *testing.T) {
	a, b := net.Pipe()
	// Chunks are corrupted at random (1 in 7 from the host, 1 in 9 from the NCP; fixed seeds): a periodic
	// pattern can line up with the go-back-N retransmission cycle and hit the same frame every time, which
	// no real line does. The timeouts allow for a loaded machine: the test is about what arrives, not when.
	hc, nc := newRandomCorrupter(7, 1), newRandomCorrupter(9, 2)
	var mu sync.Mutex
	hostGot, ncpGot := []string{}, []string{}
	hcfg := fastConfig(RoleHost)
	hcfg.AckTimeoutMax, hcfg.MaxAckTimeouts = 400*time.Millisecond, 50
	hcfg.Window, hcfg.TxFilter = 5, hc.filter
	hcfg.OnData = func(d []byte) { mu.Lock(); hostGot = append(hostGot, string(d)); mu.Unlock() }
	ncfg := fastConfig(RoleNCP)
	ncfg.AckTimeoutMax, ncfg.MaxAckTimeouts = 400*time.Millisecond, 50
	ncfg.Window, ncfg.TxFilter = 5, nc.filter
	ncfg.OnData = func(d []byte) { mu.Lock(); ncpGot = append(ncpGot, string(d)); mu.Unlock() }
	host := NewConn(a, hcfg)
	defer host.Close()
	ncp := NewConn(b, ncfg)
	defer ncp.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resetOverLossyLink(ctx, t, host)
	const senders, each = 5, 20
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := range each {
				assert.NoError(t, host.Send(ctx, []byte(fmt.Sprintf("h%d-%02d", s, i))))
			}
		}()
		go func() {
			defer wg.Done()
			for i := range each {
				assert.NoError(t, ncp.Send(ctx, []byte(fmt.Sprintf("n%d-%02d", s, i))))
			}
		}()
	}
	wg.Wait()
	// A frame is ACKed just before OnData runs: wait for the last deliveries (failure guard only).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		all := len(hostGot) >= senders*each && len(ncpGot) >= senders*each
		mu.Unlock()
		if all {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range []struct {
		prefix string
		got    []string
	}{{"h", ncpGot}, {"n", hostGot}} {
		require.Len(t, c.got, senders*each, "%s messages delivered once", c.prefix)
		last := map[string]string{}
		for _, m := range c.got {
			sender, _, _ := strings.Cut(m, "-")
			assert.Less(t, last[sender], m, "%s after %s: in order per sender", m, last[sender])
			last[sender] = m
		}
		sorted := append([]string(nil), c.got...)
		sort.Strings(sorted)
		for i := 1; i < len(sorted); i++ {
			assert.NotEqual(t, sorted[i-1], sorted[i], "no duplicate")
		}
	}
	hs, ns := host.Stats(), ncp.Stats()
	t.Logf("host %+v", hs)
	t.Logf("ncp  %+v", ns)
	assert.NotZero(t, hs.Retransmits+ns.Retransmits)
	assert.NotZero(t, hs.FrameErrors+ns.FrameErrors)
}

// randomCorrupter flips one bit in a chunk written with probability 1/n, from a seeded generator.
type randomCorrupter struct {
	mu  sync.Mutex
	n   int
	rng *rand.Rand
}

func newRandomCorrupter(n int, seed uint64) *randomCorrupter {
	return &randomCorrupter{n: n, rng: rand.New(rand.NewPCG(seed, seed+1))}
}

func (c *randomCorrupter) filter(b []byte) []byte {
	c.mu.Lock()
	hit := c.rng.IntN(c.n) == 0
	c.mu.Unlock()
	if hit && len(b) > 2 {
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 0x04
	}
	return b
}
