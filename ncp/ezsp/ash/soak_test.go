package ash

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// soakMode selects the size of TestSoakLossyLink: "" (seven runs, seconds under -race) or "long" (200 runs,
// half of them with windows of 7, about ten minutes): go test -run TestSoakLossyLink ./ncp/ezsp/ash -ash.soak=long
var soakMode = flag.String("ash.soak", "", `"long": run the ASH soak test with 200 seeds instead of 7`)

// soakSeed runs TestSoakLossyLink with one seed only, to chase a failing one (timing-dependent: with -count):
// go test -race -count=30 -run TestSoakLossyLink ./ncp/ezsp/ash -ash.seed=2063 -ash.window=7
var (
	soakSeed   = flag.Uint64("ash.seed", 0, "run the ASH soak test with this seed only")
	soakWindow = flag.Int("ash.window", 0, "with -ash.seed: both sides' window (0: drawn from the seed)")
	soakTrace  = flag.String("ash.trace", "", "write a failing soak run's frame log to this file")
)

// lineFaults are the per-chunk probabilities of what a lossyLine does to the bytes of one write.
type lineFaults struct {
	drop      float64 // the whole chunk vanishes
	dropBytes float64 // 1-3 bytes of it vanish
	flip      float64 // one bit of it flips
	dup       float64 // it arrives twice in a row
	merge     float64 // it arrives together with the chunks written after it that wait already
	split     float64 // it arrives in two reads, a little apart
	delay     float64 // it arrives up to maxDelay late (and everything behind it with it: a line keeps order)
	maxDelay  time.Duration
}

// lineStats counts what a lossyLine did.
type lineStats struct {
	chunks, dropped, bytesDropped, flipped, duplicated, merged, split, delayed, vetoed atomic.Int64
}

func (s *lineStats) String() string {
	return fmt.Sprintf("chunks=%d dropped=%d bytesDropped=%d flipped=%d duplicated=%d merged=%d split=%d delayed=%d vetoed=%d",
		s.chunks.Load(), s.dropped.Load(), s.bytesDropped.Load(), s.flipped.Load(), s.duplicated.Load(), s.merged.Load(),
		s.split.Load(), s.delayed.Load(), s.vetoed.Load())
}

// lineDirection is one direction of a lossyLine: chunks written at one end, bytes read at the other, and the
// goroutine between them that spoils them (seeded: the goroutine alone uses rng).
type lineDirection struct {
	faults lineFaults
	rng    *rand.Rand
	in     chan []byte
	stats  lineStats
	// shadow decodes exactly what the reading end's Decoder gets, to keep CRC collisions off the line.
	shadow Decoder

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte // delivered, not read yet
	closed bool   // the reading end was closed
}

// lossyLine is an in-memory serial line between two ends (Conn ports) that drops bytes and chunks, flips bits,
// duplicates, splits, merges and delays what is written, in order, with seeded randomness. It never hands a
// reader a valid frame that was not written (a CRC-16 collision of spoiled bytes would be corruption ASH cannot
// see, not the link bug the soak looks for): when the spoiled bytes would decode to one, it delivers the chunk
// unspoiled after a Cancel byte instead (counted as vetoed). Close stops its goroutines.
type lossyLine struct {
	dirs [2]*lineDirection // 0: a writes, b reads; 1: b writes, a reads
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newLossyLine(seed uint64, ab, ba lineFaults) (line *lossyLine, a, b io.ReadWriteCloser) {
	line = &lossyLine{stop: make(chan struct{})}
	for i, f := range []lineFaults{ab, ba} {
		d := &lineDirection{faults: f, rng: rand.New(rand.NewPCG(seed, uint64(i)+0x50a4)), in: make(chan []byte, 256)}
		d.cond = sync.NewCond(&d.mu)
		line.dirs[i] = d
		line.wg.Add(1)
		go func() {
			defer line.wg.Done()
			d.run(line.stop)
		}()
	}
	a = &lineEnd{line: line, tx: line.dirs[0], rx: line.dirs[1], closed: make(chan struct{})}
	b = &lineEnd{line: line, tx: line.dirs[1], rx: line.dirs[0], closed: make(chan struct{})}
	return line, a, b
}

// Close stops the line's goroutines; reads at both ends end with io.EOF.
func (l *lossyLine) Close() {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		for _, d := range l.dirs {
			d.closeReader()
		}
	})
}

// lineEnd is one end of a lossyLine: the port of one Conn.
type lineEnd struct {
	line      *lossyLine
	tx, rx    *lineDirection
	closed    chan struct{}
	closeOnce sync.Once
}

func (e *lineEnd) Write(p []byte) (int, error) {
	select {
	case <-e.closed:
		return 0, io.ErrClosedPipe
	default:
	}
	select {
	case e.tx.in <- bytes.Clone(p):
		return len(p), nil
	case <-e.closed:
		return 0, io.ErrClosedPipe
	case <-e.line.stop:
		return 0, io.ErrClosedPipe
	}
}

func (e *lineEnd) Read(p []byte) (int, error) {
	d := e.rx
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.buf) == 0 && !d.closed {
		d.cond.Wait()
	}
	if len(d.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (e *lineEnd) Close() error {
	e.closeOnce.Do(func() {
		close(e.closed)
		e.rx.closeReader()
	})
	return nil
}

func (d *lineDirection) closeReader() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cond.Broadcast()
}

func (d *lineDirection) deliver(b []byte) {
	d.mu.Lock()
	if !d.closed {
		d.buf = append(d.buf, b...)
	}
	d.mu.Unlock()
	d.cond.Broadcast()
}

func (d *lineDirection) chance(p float64) bool { return p > 0 && d.rng.Float64() < p }

// sleep waits up to maxDelay (false: the line stopped).
func (d *lineDirection) sleep(stop <-chan struct{}) bool {
	t := time.NewTimer(time.Duration(d.rng.Int64N(int64(d.faults.maxDelay) + 1)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}

func (d *lineDirection) run(stop <-chan struct{}) {
	for {
		var orig []byte
		select {
		case orig = <-d.in:
		case <-stop:
			return
		}
		if d.chance(d.faults.delay) {
			d.stats.delayed.Add(1)
			if !d.sleep(stop) {
				return
			}
		}
		out := d.spoil(orig)
		// Chunks written meanwhile (while this one was late) may arrive in the same read.
		for d.chance(d.faults.merge) {
			var next []byte
			select {
			case next = <-d.in:
			default:
			}
			if next == nil {
				break
			}
			d.stats.merged.Add(1)
			orig = append(orig, next...)
			out = append(out, d.spoil(next)...)
		}
		out = d.guard(out, orig)
		if len(out) > 1 && d.chance(d.faults.split) {
			d.stats.split.Add(1)
			cut := 1 + d.rng.IntN(len(out)-1)
			d.deliver(out[:cut])
			if !d.sleep(stop) {
				return
			}
			out = out[cut:]
		}
		d.deliver(out)
	}
}

// spoil applies the faults to one written chunk. A duplicate repeats the chunk at once: a line never replays
// an older frame after a newer one (ASH could not tell an old acknowledgement from a new one).
func (d *lineDirection) spoil(chunk []byte) []byte {
	d.stats.chunks.Add(1)
	f := d.faults
	if d.chance(f.drop) {
		d.stats.dropped.Add(1)
		return nil
	}
	b := bytes.Clone(chunk)
	if d.chance(f.dropBytes) {
		for range 1 + d.rng.IntN(3) {
			if len(b) == 0 {
				break
			}
			i := d.rng.IntN(len(b))
			b = append(b[:i], b[i+1:]...)
			d.stats.bytesDropped.Add(1)
		}
	}
	if len(b) > 0 && d.chance(f.flip) {
		b[d.rng.IntN(len(b))] ^= 1 << d.rng.IntN(8)
		d.stats.flipped.Add(1)
	}
	if d.chance(f.dup) {
		b = append(b, b...)
		d.stats.duplicated.Add(1)
	}
	return b
}

// guard returns out when the reader's decoder, fed out, yields no valid frame that was not written (orig),
// and otherwise Cancel followed by orig: what was spoiled is discarded whole instead.
func (d *lineDirection) guard(out, orig []byte) []byte {
	written := map[string]bool{}
	var fresh Decoder
	fresh.Feed(orig, func(f Frame, err error) {
		if err == nil {
			written[string(f.AppendRaw(nil))] = true
		}
	})
	trial := d.shadow
	forged := false
	trial.Feed(out, func(f Frame, err error) {
		if err == nil && !written[string(f.AppendRaw(nil))] {
			forged = true
		}
	})
	if forged {
		d.stats.vetoed.Add(1)
		out = append([]byte{Cancel}, orig...)
		trial = d.shadow
		trial.Feed(out, func(Frame, error) {})
	}
	d.shadow = trial
	return out
}

// soakParams is one soak run's configuration, drawn from its seed.
type soakParams struct {
	seed                      uint64
	hostWindow, ncpWindow     int
	hostAckDelay, ncpAckDelay time.Duration
	baud                      int
	hostFaults, ncpFaults     lineFaults    // of what the host (NCP) writes
	resetEvery                time.Duration // 0: the host resets only when the link went down
	senders, each             int           // Send goroutines per side, messages per goroutine (the Start goroutine sends 2·each)
}

func (p soakParams) String() string {
	return fmt.Sprintf("seed=%d window host=%d ncp=%d ackDelay host=%v ncp=%v baud=%d loss host=%.3f ncp=%.3f resetEvery=%v",
		p.seed, p.hostWindow, p.ncpWindow, p.hostAckDelay, p.ncpAckDelay, p.baud, p.hostFaults.drop, p.ncpFaults.drop, p.resetEvery)
}

// drawSoakParams draws a run's configuration from seed; window, when not 0, sets both windows instead.
func drawSoakParams(seed uint64, window int) soakParams {
	rng := rand.New(rand.NewPCG(seed, 0x50a6))
	delays := []time.Duration{0, time.Millisecond, 20 * time.Millisecond}
	faults := func() lineFaults {
		loss := 0.005 + rng.Float64()*0.025 // 0.5-3 % of chunks for each kind of damage
		return lineFaults{drop: loss, dropBytes: loss, flip: loss, dup: loss, merge: 0.1, split: 0.1, delay: 0.05,
			maxDelay: 3 * time.Millisecond}
	}
	p := soakParams{
		seed:         seed,
		hostWindow:   1 + rng.IntN(MaxWindow),
		ncpWindow:    1 + rng.IntN(MaxWindow),
		hostAckDelay: delays[rng.IntN(len(delays))],
		ncpAckDelay:  delays[rng.IntN(len(delays))],
		baud:         []int{0, 115200, 460800}[rng.IntN(3)],
		hostFaults:   faults(),
		ncpFaults:    faults(),
		senders:      4,
		each:         15,
	}
	if window != 0 {
		p.hostWindow, p.ncpWindow = window, window
	}
	if rng.IntN(2) == 0 {
		p.resetEvery = time.Duration(150+rng.IntN(250)) * time.Millisecond
	}
	return p
}

// soakPayload is a DATA field of the soak: sender id, sequence number, filler, CRC-32 of all that.
func soakPayload(rng *rand.Rand, sender byte, seq uint32) []byte {
	n := 9 + rng.IntN(32)
	if rng.IntN(2) == 0 {
		n = 9 + rng.IntN(MaxDataLen-9+1)
	}
	b := make([]byte, 5, n)
	b[0] = sender
	binary.BigEndian.PutUint32(b[1:], seq)
	for len(b) < n-4 {
		b = append(b, byte(rng.Uint32())) // every byte value, reserved ones too (stuffing)
	}
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func parseSoakPayload(b []byte) (sender byte, seq uint32, err error) {
	if len(b) < 9 {
		return 0, 0, fmt.Errorf("payload of %d bytes", len(b))
	}
	if crc32.ChecksumIEEE(b[:len(b)-4]) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return 0, 0, fmt.Errorf("payload % x: bad checksum", b)
	}
	return b[0], binary.BigEndian.Uint32(b[1:5]), nil
}

// soakSender is what one sending goroutine did: every payload it made, by sequence number, and which of them
// Send (or Start's wait) reported acknowledged.
type soakSender struct {
	id    byte
	sent  [][]byte
	acked []bool
}

// soakReceiver records what one side's OnData got, in order.
type soakReceiver struct {
	mu  sync.Mutex
	got [][]byte
}

func (r *soakReceiver) onData(d []byte) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
}

func (r *soakReceiver) snapshot() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...)
}

// TestSoakLossyLink runs a host and an NCP Conn against each other over a lossyLine, for a table of seeds,
// with both sides sending at once from several goroutines (Send, and one goroutine keeping its window full
// with Start), windows, ACK delays and line speed drawn from the seed. The host resets the link whenever it
// went down (and, for some seeds, now and then anyway). It checks what ASH promises: every payload whose
// Send returned nil was delivered exactly once; nothing was delivered that was not sent, nor twice; each
// goroutine's payloads arrived in the order it sent them. A failing seed is named in the sub-test.
func TestSoakLossyLink(t *testing.T) {
	type soakCase struct {
		seed   uint64
		window int // both sides' window; 0: drawn from the seed
	}
	cases := []soakCase{
		{seed: 1}, {seed: 2}, {seed: 3}, {seed: 4},
		// Regressions, timing-dependent: with windows of 7 on both sides these seeds lost frames silently
		// (Send returned nil, never delivered; 2 of 50 seeds tried) until a NAK that waited in the writer's
		// queue while its frame arrived went out as an ACK (conn.go writeLoop; byte by byte:
		// TestStaleNakNotWrittenBehindNewerAck). Seed 130 then lost frames about one run in 30 to the RSTACK
		// ambiguity (soakRSTACKWait). Seed 2063 lost frames about one run in two when the line repeated an
		// RST: the NCP answered twice and an ACK of its first link acknowledged a frame of its second (the
		// reset rules in Conn's comment; byte by byte: reset_test.go).
		{seed: 111, window: MaxWindow}, {seed: 130, window: MaxWindow}, {seed: 2063, window: MaxWindow},
	}
	if *soakMode == "long" {
		cases = cases[:0]
		for s := range uint64(100) {
			cases = append(cases, soakCase{seed: 1000 + s}, soakCase{seed: 2000 + s, window: MaxWindow})
		}
	}
	if *soakSeed != 0 {
		cases = []soakCase{{seed: *soakSeed, window: *soakWindow}}
	}
	for _, c := range cases {
		p := drawSoakParams(c.seed, c.window)
		name := fmt.Sprintf("seed=%d", c.seed)
		if c.window != 0 {
			name += fmt.Sprintf(",window=%d", c.window)
		}
		t.Run(name, func(t *testing.T) { runSoak(t, p) })
	}
}

func runSoak(t *testing.T, p soakParams) {
	t.Log(p)
	line, hostPort, ncpPort := newLossyLine(p.seed, p.hostFaults, p.ncpFaults)
	defer line.Close()

	// Both sides report a link that went down; the supervisor below resets it.
	down := make(chan struct{}, 1)
	var unasked atomic.Int64 // RSTACKs the host did not wait for
	linkDown := func(err error) {
		var re *ResetError
		if errors.As(err, &re) {
			unasked.Add(1)
		}
		select {
		case down <- struct{}{}:
		default:
		}
	}
	var hostGot, ncpGot soakReceiver
	// With -ash.trace, both sides log every frame (JSON lines, "side" host or ncp), written out if the run fails.
	var trace bytes.Buffer
	traceLog := zerolog.Nop()
	if *soakTrace != "" {
		traceLog = zerolog.New(zerolog.SyncWriter(&trace)).With().Timestamp().Logger()
		defer func() {
			if t.Failed() {
				assert.NoError(t, os.WriteFile(*soakTrace, trace.Bytes(), 0o644))
			}
		}()
	}
	cfg := func(role Role, window int, ackDelay time.Duration, rx *soakReceiver, side string) Config {
		return Config{Role: role, Window: window, AckDelay: ackDelay, Baud: p.baud, OnData: rx.onData, OnLinkDown: linkDown,
			AckTimeoutInit: 20 * time.Millisecond, AckTimeoutMin: 5 * time.Millisecond, AckTimeoutMax: 80 * time.Millisecond,
			MaxAckTimeouts: 6, Log: traceLog.With().Str("side", side).Logger()}
	}
	host := NewConn(hostPort, cfg(RoleHost, p.hostWindow, p.hostAckDelay, &hostGot, "host"))
	defer host.Close()
	ncp := NewConn(ncpPort, cfg(RoleNCP, p.ncpWindow, p.ncpAckDelay, &ncpGot, "ncp"))
	defer ncp.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a failure guard, no more
	defer cancel()
	resetOverLossyLink(ctx, t, host)

	// The supervisor (the host's driver) resets the link when it went down, and every resetEvery.
	var resets, resetRetries atomic.Int64
	supDone := make(chan struct{})
	supStop := make(chan struct{})
	go func() {
		defer close(supDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		lastReset := time.Now()
		for {
			select {
			case <-supStop:
				return
			case <-down:
			case <-tick.C:
				forced := p.resetEvery > 0 && time.Since(lastReset) > p.resetEvery
				if !forced && host.Connected() && ncp.Connected() {
					continue
				}
			}
			for ctx.Err() == nil {
				rctx, rcancel := context.WithTimeout(ctx, soakRSTACKWait)
				_, err := host.Reset(rctx)
				rcancel()
				if err == nil {
					break
				}
				resetRetries.Add(1)
			}
			resets.Add(1)
			lastReset = time.Now()
		}
	}()

	// Senders: id = side<<4 | goroutine; goroutine p.senders uses Start + wait.
	var senders []*soakSender
	var wg sync.WaitGroup
	for side, c := range []*Conn{host, ncp} {
		window := []int{p.hostWindow, p.ncpWindow}[side]
		for g := range p.senders + 1 {
			s := &soakSender{id: byte(side<<4 | g)}
			senders = append(senders, s)
			rng := rand.New(rand.NewPCG(p.seed, uint64(s.id)))
			wg.Add(1)
			if g < p.senders {
				go func() {
					defer wg.Done()
					for seq := range uint32(p.each) {
						b := soakPayload(rng, s.id, seq)
						s.sent = append(s.sent, b)
						err := c.Send(ctx, b)
						s.acked = append(s.acked, err == nil)
						soakPause(ctx, t, c, err)
					}
				}()
				continue
			}
			go func() {
				defer wg.Done()
				// Up to window-1 frames of this goroutine wait for their ACK while it starts the next: it
				// keeps the window full without holding every slot (Start would wait for itself).
				type started struct {
					seq  int
					wait func() error
				}
				var pending []started
				finish := func() {
					err := pending[0].wait()
					s.acked[pending[0].seq] = err == nil
					pending = pending[1:]
					soakPause(ctx, t, c, err)
				}
				for seq := range uint32(2 * p.each) {
					b := soakPayload(rng, s.id, seq)
					s.sent = append(s.sent, b)
					s.acked = append(s.acked, false)
					wait, err := c.Start(ctx, b)
					if err != nil {
						soakPause(ctx, t, c, err)
						continue
					}
					pending = append(pending, started{int(seq), wait})
					for len(pending) >= window {
						finish()
					}
				}
				for len(pending) > 0 {
					finish()
				}
			}()
		}
	}
	wg.Wait()
	close(supStop)
	<-supDone
	require.NoError(t, ctx.Err(), "the soak did not finish")

	// A frame is acknowledged just before OnData delivers it: wait for the last deliveries (failure guard).
	wantDelivered := func(got *soakReceiver, side int) bool {
		have := map[string]bool{}
		for _, d := range got.snapshot() {
			have[string(d)] = true
		}
		for _, s := range senders {
			if int(s.id>>4) != side {
				continue
			}
			for seq, ok := range s.acked {
				if ok && !have[string(s.sent[seq])] {
					return false
				}
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if wantDelivered(&ncpGot, 0) && wantDelivered(&hostGot, 1) {
			break
		}
	}

	bySender := map[byte]*soakSender{}
	for _, s := range senders {
		bySender[s.id] = s
	}
	acked, failed := 0, 0
	for _, s := range senders {
		for _, ok := range s.acked {
			if ok {
				acked++
			} else {
				failed++
			}
		}
	}
	for side, got := range []*soakReceiver{&ncpGot, &hostGot} {
		delivered := map[byte][]uint32{}
		for _, d := range got.snapshot() {
			id, seq, err := parseSoakPayload(d)
			if !assert.NoError(t, err, "delivered to side %d", 1-side) {
				continue
			}
			s := bySender[id]
			if !assert.True(t, s != nil && int(id>>4) == side && int(seq) < len(s.sent), "delivered a payload never sent: sender %#x seq %d", id, seq) {
				continue
			}
			assert.Equal(t, s.sent[seq], d, "sender %#x seq %d delivered altered", id, seq)
			delivered[id] = append(delivered[id], seq)
		}
		for _, s := range senders {
			if int(s.id>>4) != side {
				continue
			}
			seqs := delivered[s.id]
			for i := 1; i < len(seqs); i++ {
				assert.Less(t, seqs[i-1], seqs[i], "sender %#x: seq %d delivered after seq %d (duplicate or out of order)", s.id, seqs[i], seqs[i-1])
			}
			have := map[uint32]bool{}
			for _, seq := range seqs {
				have[seq] = true
			}
			for seq, ok := range s.acked {
				if ok {
					assert.True(t, have[uint32(seq)], "sender %#x seq %d: Send returned nil but it was never delivered", s.id, seq)
				}
			}
		}
	}
	hs, ns := host.Stats(), ncp.Stats()
	t.Logf("acked %d, failed %d (link resets %d, RST sent again %d times, RSTACK unasked %d times)", acked, failed, resets.Load(), resetRetries.Load(), unasked.Load())
	t.Logf("line host->ncp %s", &line.dirs[0].stats)
	t.Logf("line ncp->host %s", &line.dirs[1].stats)
	t.Logf("host %+v", hs)
	t.Logf("ncp  %+v", ns)
	assert.Positive(t, acked, "the link carried nothing")
	assert.NotZero(t, hs.FrameErrors+ns.FrameErrors, "the line spoiled nothing")
}

// soakRSTACKWait is how long the soak's host waits for an RSTACK before it sends RST again. ASH cannot tell
// which RST an RSTACK answers: one that comes after the host gave up on its RST and sent another is taken for
// the answer to the second, and until the second RSTACK (then unasked: the link goes down) the two ends run
// different links, the NCP taking the host's frame and acknowledgement numbers of the first link for its
// own (frames it sent acknowledged though the host never took them). The wait is a driver's (UG101
// T_RSTACK_MAX is 3.2 s), well beyond the line's delays; with 100 ms, and before a reset dropped the dead
// DATA frames queued ahead of the RST or RSTACK (conn.go writeLoop), the soak lost frames that way about one
// run in 30 (seeds 111 and 130 with windows of 7).
const soakRSTACKWait = time.Second

// soakPause lets a sender whose frame failed wait for the supervisor to bring the link back up (c connected
// again), so that it does not use up its messages on a link that is down. Only link trouble may fail a frame.
func soakPause(ctx context.Context, t *testing.T, c *Conn, err error) {
	if err == nil {
		return
	}
	var re *ResetError
	if !errors.Is(err, ErrAckTimeout) && !errors.Is(err, ErrNotConnected) && !errors.Is(err, ErrLinkReset) && !errors.As(err, &re) {
		t.Errorf("send failed: %v", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Millisecond):
		}
		if c.Connected() {
			return
		}
	}
}
