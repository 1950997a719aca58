package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/otabridge/otabridge/clock"
)

// Issue 19.3: bridge/devices is coalesced to at most one publish per interval, on a virtual clock.
func TestCoalescerAtMostOncePerInterval(t *testing.T) {
	clk := clock.NewVirtual()
	var runs []time.Duration
	c := newCoalescer(clk, time.Second, func() { runs = append(runs, clk.Elapsed()) })

	c.trigger()
	clk.RunFor(0)
	assert.Equal(t, []time.Duration{0}, runs, "the first trigger runs at once")

	// A burst right after the run: one run, a second after the first.
	for range 50 {
		c.trigger()
		clk.RunFor(10 * time.Millisecond)
	}
	clk.RunFor(time.Second)
	assert.Equal(t, []time.Duration{0, time.Second}, runs, "a burst is one run, an interval after the last")

	// A trigger long after the last run runs at once.
	clk.RunFor(10 * time.Second)
	at := clk.Elapsed()
	c.trigger()
	clk.RunFor(0)
	assert.Equal(t, []time.Duration{0, time.Second, at}, runs)

	// Triggers every 300 ms for 3 s: runs are at least an interval apart.
	runs = nil
	for range 10 {
		clk.RunFor(300 * time.Millisecond)
		c.trigger()
	}
	clk.RunFor(2 * time.Second)
	for i := 1; i < len(runs); i++ {
		assert.GreaterOrEqual(t, runs[i]-runs[i-1], time.Second, "runs %v", runs)
	}
	assert.NotEmpty(t, runs)
	assert.Greater(t, runs[len(runs)-1], at+2700*time.Millisecond, "the last trigger was served: %v", runs)
}

// close runs a pending run at once (the last device list is not lost at shutdown) and ends the triggers.
func TestCoalescerCloseRunsPending(t *testing.T) {
	clk := clock.NewVirtual()
	n := 0
	c := newCoalescer(clk, time.Second, func() { n++ })
	c.trigger()
	clk.RunFor(0)
	c.trigger() // pending for a second
	c.close()
	assert.Equal(t, 2, n, "the pending run ran at close")
	c.trigger()
	clk.RunFor(time.Minute)
	assert.Equal(t, 2, n, "no run after close")
	assert.Zero(t, clk.Pending())
}
