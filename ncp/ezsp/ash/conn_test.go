package ash

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// peer is the test's side of a pipe: it reads whole wire frames (up to the Flag) and writes raw bytes.
type peer struct {
	t  *testing.T
	rw net.Conn
}

// hostOnPipe is a host Conn with cfg (OnLinkDown reports to down) and the scripted NCP at the other end of an
// in-memory pipe; both close at the end of the test.
func hostOnPipe(t *testing.T, cfg Config) (host *Conn, ncp *peer, down chan error) {
	t.Helper()
	a, b := net.Pipe()
	down = make(chan error, 1)
	cfg.OnLinkDown = func(err error) { down <- err }
	host = NewConn(a, cfg)
	t.Cleanup(func() { host.Close(); b.Close() })
	return host, &peer{t: t, rw: b}, down
}

func (p *peer) readWire() string {
	p.t.Helper()
	require.NoError(p.t, p.rw.SetReadDeadline(time.Now().Add(5*time.Second)))
	var out []byte
	b := make([]byte, 1)
	for {
		_, err := p.rw.Read(b)
		require.NoError(p.t, err)
		out = append(out, b[0])
		if b[0] == Flag {
			return hex.EncodeToString(out)
		}
	}
}

func (p *peer) write(s string) {
	p.t.Helper()
	_, err := p.rw.Write(unhex(p.t, s))
	require.NoError(p.t, err)
}

func wire(f Frame) string { return hex.EncodeToString(f.Append(nil)) }

// ackZeroWire is ACK(0) (UG101 vector 80 70 78 7E): a host's first frame after it took the RSTACK.
const ackZeroWire = "8070787e"

func fastConfig(role Role) Config {
	return Config{Role: role, AckTimeoutInit: 40 * time.Millisecond, AckTimeoutMin: 10 * time.Millisecond, AckTimeoutMax: 160 * time.Millisecond}
}

// TestHostNakRetransmitSequence plays the NCP byte by byte: RST/RSTACK, a DATA frame answered by NAK and
// retransmitted with reTx set, the NCP's DATA answered by ACK, a retransmitted duplicate re-ACKed and not
// delivered twice, and a corrupted DATA frame answered by NAK.
func TestHostNakRetransmitSequence(t *testing.T) {
	a, b := net.Pipe()
	var got [][]byte
	var mu sync.Mutex
	host := NewConn(a, Config{Role: RoleHost, OnData: func(d []byte) { mu.Lock(); got = append(got, d); mu.Unlock() }})
	defer host.Close()
	ncp := &peer{t: t, rw: b}
	defer b.Close()

	ctx := context.Background()
	reset := make(chan uint8, 1)
	go func() {
		code, err := host.Reset(ctx)
		assert.NoError(t, err)
		reset <- code
	}()
	assert.Equal(t, "1ac038bc7e", ncp.readWire()) // Cancel + RST (herdsman SEND_RST_BYTES)
	ncp.write("1A C1 02 0B 0A 52 7E")             // RSTACK software (herdsman RECD_RSTACK_BYTES)
	assert.Equal(t, uint8(ResetSoftware), <-reset)
	assert.Equal(t, ackZeroWire, ncp.readWire()) // the host's first frame of the new link: ACK(0)

	sent := make(chan error, 1)
	go func() { sent <- host.Send(ctx, []byte{0x00, 0x00, 0x00, 0x0D}) }()
	assert.Equal(t, "004221a8597c057e", ncp.readWire()) // DATA(0,0,0) version(13): herdsman SEND_DATA_VERSION
	ncp.write(wire(Frame{Type: FrameNak, AckNum: 0}))   // NAK(0): please send frame 0 again
	retx := ncp.readWire()
	assert.Equal(t, wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 0, ReTx: true, Data: []byte{0, 0, 0, 0x0D}}), retx)
	assert.Equal(t, "08", retx[:2], "reTx bit set in the control byte")
	ncp.write("81 60 59 7E") // ACK(1)
	require.NoError(t, <-sent)

	// The NCP's version response (herdsman RCED_DATA_VERSION) is ACKed with ACK(1) and delivered.
	ncp.write("01 42 A1 A8 59 28 05 C6 A8 77 7E")
	assert.Equal(t, "8160597e", ncp.readWire())
	// The same frame again with reTx set (our ACK was "lost"): ACKed again, not delivered twice.
	ncp.write(wire(Frame{Type: FrameData, FrmNum: 0, AckNum: 1, ReTx: true, Data: []byte{0x00, 0x80, 0x00, 0x0D, 0x02, 0x10, 0x74}}))
	assert.Equal(t, "8160597e", ncp.readWire())
	// A DATA frame with a corrupted byte: NAK(1) asks for frame 1.
	bad := Frame{Type: FrameData, FrmNum: 1, AckNum: 1, Data: []byte{0x01, 0x80, 0x00, 0x05, 0x00}}.Append(nil)
	bad[2] ^= 0x01
	ncp.write(hex.EncodeToString(bad))
	assert.Equal(t, wire(Frame{Type: FrameNak, AckNum: 1}), ncp.readWire())
	assert.Equal(t, "a1", wire(Frame{Type: FrameNak, AckNum: 1})[:2])
	// Its retransmission is taken.
	ncp.write(wire(Frame{Type: FrameData, FrmNum: 1, AckNum: 1, ReTx: true, Data: []byte{0x01, 0x80, 0x00, 0x05, 0x00}}))
	assert.Equal(t, wire(Frame{Type: FrameAck, AckNum: 2}), ncp.readWire())

	// The ACK is queued before the frame is handed to OnData, so it can be on the wire first.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 2 }, 5*time.Second, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2)
	assert.Equal(t, []byte{0x00, 0x80, 0x00, 0x0D, 0x02, 0x10, 0x74}, got[0])
	assert.Equal(t, []byte{0x01, 0x80, 0x00, 0x05, 0x00}, got[1])
	st := host.Stats()
	assert.Equal(t, uint64(1), st.Retransmits)
	assert.Equal(t, uint64(1), st.NaksReceived)
	assert.Equal(t, uint64(1), st.NaksSent)
	assert.Equal(t, uint64(1), st.DuplicatesDropped)
	assert.Equal(t, uint64(1), st.FrameErrors)
}

func TestAckTimeoutFailsLink(t *testing.T) {
	host, ncp, down := hostOnPipe(t, fastConfig(RoleHost))

	go func() { _, _ = host.Reset(context.Background()) }()
	ncp.readWire()
	ncp.write(rstackWire)
	assert.Equal(t, ackZeroWire, ncp.readWire())
	require.True(t, host.Connected())

	sent := make(chan error, 1)
	go func() { sent <- host.Send(context.Background(), []byte{1, 2, 3}) }()
	first := ncp.readWire()
	assert.Equal(t, "00", first[:2])
	for range DefaultMaxAckTimeouts - 1 {
		assert.Equal(t, "08", ncp.readWire()[:2], "retransmission with reTx")
	}
	err := <-sent
	assert.ErrorIs(t, err, ErrAckTimeout)
	assert.ErrorIs(t, <-down, ErrAckTimeout)
	assert.False(t, host.Connected())
	assert.ErrorIs(t, host.Send(context.Background(), []byte{1, 2, 3}), ErrNotConnected)
	assert.Equal(t, uint64(DefaultMaxAckTimeouts), host.Stats().AckTimeouts)
}

func TestUnsolicitedRSTACKAndError(t *testing.T) {
	for _, tc := range []struct {
		wire   string
		failed bool
		code   uint8
	}{
		{"1A C1 02 0B 0A 52 7E", false, ResetSoftware},
		{"C2 02 03 D2 0A 7E", true, ResetWatchdog},
	} {
		host, ncp, down := hostOnPipe(t, fastConfig(RoleHost))
		go func() { _, _ = host.Reset(context.Background()) }()
		ncp.readWire()
		ncp.write(rstackWire)
		assert.Equal(t, ackZeroWire, ncp.readWire())
		require.True(t, host.Connected())
		ncp.write(tc.wire)
		var re *ResetError
		require.ErrorAs(t, <-down, &re)
		assert.Equal(t, tc.failed, re.Failed)
		assert.Equal(t, tc.code, re.Code)
		assert.False(t, host.Connected())
	}
}

// corrupter flips one bit in every n-th chunk written.
type corrupter struct {
	n, i atomic.Int64
}

func (c *corrupter) filter(b []byte) []byte {
	if c.i.Add(1)%c.n.Load() == 0 && len(b) > 2 {
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 0x04
	}
	return b
}

// TestLinkRecoversFromCorruption runs a host and an NCP link against each other with every 4th (5th) chunk from
// either side corrupted: everything arrives once and in order, through NAKs and retransmissions.
func TestLinkRecoversFromCorruption(t *testing.T) {
	a, b := net.Pipe()
	var hc, nc corrupter
	hc.n.Store(4)
	nc.n.Store(5)
	hostGot := make(chan []byte, 1000)
	ncpGot := make(chan []byte, 1000)
	hcfg := fastConfig(RoleHost)
	hcfg.OnData = func(d []byte) { hostGot <- d }
	hcfg.TxFilter = hc.filter
	hcfg.MaxAckTimeouts = 20
	ncfg := fastConfig(RoleNCP)
	ncfg.OnData = func(d []byte) { ncpGot <- d }
	ncfg.TxFilter = nc.filter
	ncfg.MaxAckTimeouts = 20
	host := NewConn(a, hcfg)
	defer host.Close()
	ncp := NewConn(b, ncfg)
	defer ncp.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resetOverLossyLink(ctx, t, host)
	const n = 60
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range n {
			assert.NoError(t, host.Send(ctx, []byte(fmt.Sprintf("host->ncp %03d", i))))
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			assert.NoError(t, ncp.Send(ctx, []byte(fmt.Sprintf("ncp->host %03d", i))))
		}
	}()
	wg.Wait()
	for i := range n {
		assert.Equal(t, fmt.Sprintf("host->ncp %03d", i), string(<-ncpGot))
		assert.Equal(t, fmt.Sprintf("ncp->host %03d", i), string(<-hostGot))
	}
	assert.Empty(t, ncpGot)
	assert.Empty(t, hostGot)
	hs, ns := host.Stats(), ncp.Stats()
	t.Logf("host %+v", hs)
	t.Logf("ncp  %+v", ns)
	assert.NotZero(t, hs.Retransmits+ns.Retransmits)
	assert.NotZero(t, hs.NaksSent+ns.NaksSent)
	assert.NotZero(t, hs.FrameErrors+ns.FrameErrors)
}

func TestAdaptiveAckTimer(t *testing.T) {
	a, b := net.Pipe()
	host := NewConn(a, Config{Role: RoleHost})
	defer host.Close()
	ncp := NewConn(b, Config{Role: RoleNCP})
	defer ncp.Close()
	_, err := host.Reset(context.Background())
	require.NoError(t, err)
	assert.Equal(t, DefaultAckTimeoutInit, host.AckTimeout())
	for range 20 {
		require.NoError(t, host.Send(context.Background(), []byte{1, 2, 3}))
	}
	// Fast ACKs pull T_RX_ACK down (7/8 of the old value + half the measured round trip), never below the minimum.
	assert.Less(t, host.AckTimeout(), DefaultAckTimeoutInit)
	assert.GreaterOrEqual(t, host.AckTimeout(), DefaultAckTimeoutMin)
}

func TestCloseStopsOnPortError(t *testing.T) {
	a, b := net.Pipe()
	host := NewConn(a, Config{Role: RoleHost})
	b.Close()
	select {
	case <-host.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("link did not notice the closed port")
	}
	assert.True(t, errors.Is(host.Err(), io.EOF) || errors.Is(host.Err(), io.ErrClosedPipe), "%v", host.Err())
	assert.NoError(t, host.Close())
	assert.NoError(t, host.Close())
	_, err := host.Reset(context.Background())
	assert.Error(t, err)
}

func TestSendRejectsBadLength(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	host := NewConn(a, Config{Role: RoleHost})
	defer host.Close()
	assert.Error(t, host.Send(context.Background(), []byte{1}))
	assert.Error(t, host.Send(context.Background(), bytes.Repeat([]byte{1}, 129)))
}

// resetOverLossyLink resets host until an RSTACK gets through the corrupted link (or ctx ends).
func resetOverLossyLink(ctx context.Context, t *testing.T, host *Conn) {
	t.Helper()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := host.Reset(rctx)
		rcancel()
		if err == nil {
			return
		}
		require.NoError(t, ctx.Err())
	}
}
