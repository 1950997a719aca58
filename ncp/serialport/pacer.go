package serialport

import (
	"runtime"
	"sync"
	"time"
)

// Pacer models a UART's transmitter on a link that has none (an in-memory pipe, a pseudo-terminal): every
// byte takes 10 bit times (8N1) at Baud, bytes go out one after another, and a write reaches the far end
// only when its last byte would have: Wait holds the writer until then. Latency and throughput are both
// those of the line, so a peer cannot react to a frame before it has been sent in full. The zero Baud
// means no pacing.
type Pacer struct {
	Baud int
	// Precise busy-waits the last stretch of every wait instead of trusting a timer: on many machines a
	// timer fires up to a millisecond late, which at 115200 baud is 11 bytes added to every frame's latency.
	// It costs CPU while the line is busy, so only line models that are measured (the benchmark) set it.
	Precise bool

	mu   sync.Mutex
	free time.Time // when the transmitter has sent everything handed to it so far
}

// pacerSlack is the largest early delivery Wait allows instead of sleeping: a timer that fires late for a
// tiny sleep would slow the modelled line more than delivering a fraction of a frame early speeds it up.
const pacerSlack = 200 * time.Microsecond

// ByteTime is how long one byte takes on a line at baud (10 bits: start, 8 data, stop).
func ByteTime(baud int) time.Duration { return 10 * time.Second / time.Duration(baud) }

// Wait queues n bytes behind everything the transmitter already has and blocks until the last of them has
// gone out, or stop is closed (false). Callers write the bytes after Wait returns true.
func (p *Pacer) Wait(n int, stop <-chan struct{}) bool {
	if p == nil || p.Baud <= 0 || n <= 0 {
		return true
	}
	p.mu.Lock()
	now := time.Now()
	if p.free.Before(now) {
		p.free = now
	}
	p.free = p.free.Add(time.Duration(n) * ByteTime(p.Baud))
	until := p.free
	p.mu.Unlock()
	return sleepUntil(until, p.Precise, stop)
}

// spinBelow is the part of a precise wait spent busy-waiting: more than a late timer's overshoot.
const spinBelow = 2 * time.Millisecond

func sleepUntil(until time.Time, precise bool, stop <-chan struct{}) bool {
	d := time.Until(until)
	if !precise && d <= pacerSlack {
		return true
	}
	if precise {
		d -= spinBelow
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return false
		}
	}
	for precise && time.Now().Before(until) {
		select {
		case <-stop:
			return false
		default:
		}
		runtime.Gosched()
	}
	return true
}
