package bridge

import (
	"sync"
	"time"

	"github.com/otabridge/otabridge/clock"
)

// coalescer runs fn after a trigger, at most once per interval (on the clock's timer goroutine, never on the
// caller's): a trigger within interval of the last run waits until interval after it, and every trigger
// that comes while a run is pending is served by that run. close runs a pending run at once and waits for
// a running one; the coalescer owns its timer.
type coalescer struct {
	clk      clock.Clock
	interval time.Duration
	fn       func()

	runMu   sync.Mutex // one run at a time, even when one outlasts the interval
	mu      sync.Mutex
	last    time.Time // start of the last run (zero: never ran)
	timer   clock.Timer
	stopped bool
	wg      sync.WaitGroup // the pending or running run
}

func newCoalescer(clk clock.Clock, interval time.Duration, fn func()) *coalescer {
	return &coalescer{clk: clk, interval: interval, fn: fn}
}

// trigger asks for a run. It never blocks and may be called with any lock held.
func (c *coalescer) trigger() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.timer != nil {
		return
	}
	wait := time.Duration(0)
	if !c.last.IsZero() {
		wait = max(0, c.last.Add(c.interval).Sub(c.clk.Now()))
	}
	c.wg.Add(1)
	c.timer = c.clk.AfterFunc(wait, c.run)
}

func (c *coalescer) run() {
	defer c.wg.Done()
	c.mu.Lock()
	c.timer = nil
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.last = c.clk.Now()
	c.mu.Unlock()
	c.runMu.Lock()
	defer c.runMu.Unlock()
	c.fn()
}

// close runs a pending run now (on the caller), waits for a running one, and makes later triggers do
// nothing.
func (c *coalescer) close() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	pending := c.timer != nil && c.timer.Stop()
	if pending {
		c.timer = nil
		c.wg.Done()
	}
	c.mu.Unlock()
	c.wg.Wait()
	if pending {
		c.runMu.Lock()
		defer c.runMu.Unlock()
		c.fn()
	}
}
