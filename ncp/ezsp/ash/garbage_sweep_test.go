package ash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The bad-input sweep of the serial line: garbage between ASH frames. The decoder drops what it cannot
// read with a *DecodeError that says why, resynchronises at the next Flag and never loses a frame the
// garbage did not touch; the link (Conn) recovers every DATA frame the garbage destroyed, so both sides get
// every payload exactly once, in order.

// sweepGarbagePatterns returns the garbage the sweep puts between frames: every byte value alone, every pair of
// reserved bytes, a valid frame cut at every byte (without its Flag), runs longer than any frame, and
// random runs (seeded). A pattern that by itself decodes to a valid frame is left out: it is not garbage
// but a frame (a random run passes the 16-bit CRC once in 65536).
func sweepGarbagePatterns(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for b := 0; b < 256; b++ {
		out = append(out, []byte{byte(b)})
	}
	reserved := []byte{Flag, Escape, XON, XOFF, Substitute, Cancel}
	for _, a := range reserved {
		for _, b := range reserved {
			out = append(out, []byte{a, b})
		}
	}
	frame := Frame{Type: FrameData, FrmNum: 3, AckNum: 5, Data: []byte("a partial frame of an earlier exchange")}.Append(nil)
	for n := 1; n < len(frame)-1; n++ {
		out = append(out, bytes.Clone(frame[:n]))
	}
	out = append(out, bytes.Repeat([]byte{0x55}, 2*maxRawFrameLen), bytes.Repeat([]byte{Escape}, 40))
	rng := rand.New(rand.NewPCG(8, 8))
	for i := 0; i < 300; i++ {
		g := make([]byte, 1+rng.IntN(300))
		for j := range g {
			g[j] = byte(rng.Uint32())
		}
		out = append(out, g)
	}
	kept := out[:0]
	for _, g := range out {
		valid := 0
		var d Decoder
		d.Feed(append(bytes.Clone(g), Flag), func(_ Frame, err error) {
			if err == nil {
				valid++
			}
		})
		if valid == 0 {
			kept = append(kept, g)
		}
	}
	require.Greater(t, len(kept), 500)
	return kept
}

// sweepNeutral reports whether garbage leaves the frame after it intact: after its last Flag or Cancel there are
// only XON/XOFF bytes (which the decoder skips).
func sweepNeutral(g []byte) bool {
	i := bytes.LastIndexAny(g, string([]byte{Flag, Cancel}))
	for _, b := range g[i+1:] {
		if b != XON && b != XOFF {
			return false
		}
	}
	return true
}

// sweepDecodeAll feeds the stream in chunks of size (0: at once) and returns the frames and errors in order.
func sweepDecodeAll(stream []byte, size int) (frames []Frame, errs []error) {
	var d Decoder
	fn := func(f Frame, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		frames = append(frames, f)
	}
	if size <= 0 {
		d.Feed(stream, fn)
		return
	}
	for len(stream) > 0 {
		n := min(size, len(stream))
		d.Feed(stream[:n], fn)
		stream = stream[n:]
	}
	return
}

// TestSweepDecoderGarbageBetweenFrames puts every garbage pattern between two frames of a three-frame
// stream, fed at once, byte by byte and in 7-byte chunks.
func TestSweepDecoderGarbageBetweenFrames(t *testing.T) {
	f1 := Frame{Type: FrameData, FrmNum: 1, AckNum: 2, Data: []byte{0x01, 0x80, 0x45, 0x7E, 0x11, 0x1A}}
	f2 := Frame{Type: FrameData, FrmNum: 2, AckNum: 2, ReTx: true, Data: []byte("the frame after the garbage")}
	f3 := Frame{Type: FrameAck, AckNum: 4}
	var stream []byte
	patterns := sweepGarbagePatterns(t)
	survived, dropped := 0, 0
	for _, g := range patterns {
		stream = append(append(append(append(stream[:0], f1.Append(nil)...), g...), f2.Append(nil)...), f3.Append(nil)...)
		var first []Frame
		for i, size := range []int{0, 1, 7} {
			frames, errs := sweepDecodeAll(stream, size)
			if i == 0 {
				first = frames
			} else {
				require.Equal(t, fmt.Sprint(first), fmt.Sprint(frames), "garbage %x: chunking changes nothing", g)
			}
			require.GreaterOrEqual(t, len(frames), 2, "garbage %x: frames %v, errors %v", g, frames, errs)
			assert.Equal(t, f1.String(), frames[0].String(), "garbage %x: the frame before it is intact", g)
			assert.Equal(t, f1.Data, frames[0].Data)
			assert.Equal(t, f3.String(), frames[len(frames)-1].String(), "garbage %x: the decoder resynchronised", g)
			if sweepNeutral(g) {
				require.Len(t, frames, 3, "garbage %x is skipped: the frame after it survives (errors %v)", g, errs)
				assert.Equal(t, f2.Data, frames[1].Data)
			} else {
				require.Len(t, frames, 2, "garbage %x merges with the next frame, which is dropped: %v", g, frames)
				require.NotEmpty(t, errs, "garbage %x: the dropped frame is reported", g)
			}
			// Every Flag of the garbage ends at most one dropped frame, plus the frame it spoiled.
			assert.LessOrEqual(t, len(errs), bytes.Count(g, []byte{Flag})+1, "garbage %x", g)
			for _, err := range errs {
				var de *DecodeError
				require.True(t, errors.As(err, &de), "%T %v", err, err)
				assert.Contains(t, err.Error(), "dropped: ")
				assert.True(t, sweepAnyOf(err, ErrBadCRC, ErrShortFrame, ErrLongFrame, ErrBadControl, ErrBadLength, ErrBadEscape, ErrSubstituted),
					"%v wraps a known reason", err)
			}
		}
		if sweepNeutral(g) {
			survived++
		} else {
			dropped++
		}
	}
	t.Logf("%d garbage patterns × 3 chunkings: %d skipped harmlessly, %d spoiled the next frame (reported, resynchronised)",
		len(patterns), survived, dropped)
}

func sweepAnyOf(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// sweepGarbageInjector puts the sweep's patterns, in turn, before every fourth chunk a Conn writes, never making a
// valid frame of garbage and the real frame together (a CRC collision would be data corruption, not noise).
type sweepGarbageInjector struct {
	patterns [][]byte
	stride   int // patterns skipped after each use, so that a short run samples them all
	mu       sync.Mutex
	chunks   int
	next     int
	injected atomic.Int64
}

func (g *sweepGarbageInjector) filter(b []byte) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.chunks++
	if g.chunks%4 != 0 {
		return b
	}
	for tries := 0; tries < len(g.patterns); tries++ {
		p := g.patterns[g.next%len(g.patterns)]
		g.next += g.stride
		out := append(bytes.Clone(p), b...)
		frames, _ := sweepDecodeAll(out, 0)
		want, _ := sweepDecodeAll(b, 0)
		if sweepNeutral(p) && len(frames) == len(want) || !sweepNeutral(p) && len(frames) == 0 {
			g.injected.Add(1)
			return out
		}
	}
	return b
}

// TestSweepConnGarbageBetweenFrames runs a host and an NCP link against each other, each putting garbage
// before every fourth chunk it writes, while both send a stream of DATA frames: everything arrives exactly
// once and in order, through NAKs and retransmissions, and neither side resets the link.
func TestSweepConnGarbageBetweenFrames(t *testing.T) {
	patterns := sweepGarbagePatterns(t)
	a, b := net.Pipe()
	hg := &sweepGarbageInjector{patterns: patterns, stride: 7}
	ng := &sweepGarbageInjector{patterns: patterns, stride: 5, next: len(patterns) / 2}
	hostGot := make(chan []byte, 1000)
	ncpGot := make(chan []byte, 1000)
	// An in-memory line needs no long ACK timer; many timeouts in a row are allowed (a slow -race run).
	cfg := func(role Role) Config {
		return Config{Role: role, AckTimeoutInit: 20 * time.Millisecond, AckTimeoutMin: 10 * time.Millisecond,
			AckTimeoutMax: 80 * time.Millisecond, MaxAckTimeouts: 50}
	}
	hcfg := cfg(RoleHost)
	hcfg.OnData = func(d []byte) { hostGot <- d }
	hcfg.TxFilter = hg.filter
	ncfg := cfg(RoleNCP)
	ncfg.OnData = func(d []byte) { ncpGot <- d }
	ncfg.TxFilter = ng.filter
	host := NewConn(a, hcfg)
	defer host.Close()
	ncp := NewConn(b, ncfg)
	defer ncp.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err := host.Reset(rctx)
		rcancel()
		if err == nil {
			break
		}
		require.NoError(t, ctx.Err(), "the host's reset never got through")
	}
	resetsBefore := host.Stats().Resets + ncp.Stats().Resets
	const n = 100
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range n {
			if err := host.Send(ctx, []byte(fmt.Sprintf("host->ncp %03d", i))); err != nil {
				t.Errorf("host send %d: %v", i, err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			if err := ncp.Send(ctx, []byte(fmt.Sprintf("ncp->host %03d", i))); err != nil {
				t.Errorf("ncp send %d: %v", i, err)
				return
			}
		}
	}()
	wg.Wait()
	for i := range n {
		assert.Equal(t, fmt.Sprintf("host->ncp %03d", i), string(<-ncpGot))
		assert.Equal(t, fmt.Sprintf("ncp->host %03d", i), string(<-hostGot))
	}
	assert.Empty(t, ncpGot, "nothing delivered twice")
	assert.Empty(t, hostGot, "nothing delivered twice")
	hs, ns := host.Stats(), ncp.Stats()
	t.Logf("garbage runs injected: host %d, ncp %d", hg.injected.Load(), ng.injected.Load())
	t.Logf("host %+v", hs)
	t.Logf("ncp  %+v", ns)
	assert.Positive(t, hg.injected.Load()+ng.injected.Load())
	assert.NotZero(t, hs.FrameErrors+ns.FrameErrors, "the garbage was noticed")
	assert.NotZero(t, hs.Retransmits+ns.Retransmits, "spoiled frames were sent again")
	assert.Equal(t, resetsBefore, hs.Resets+ns.Resets, "no reset: garbage never takes the link down")
	assert.True(t, host.Connected() && ncp.Connected())
}
