package ota

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The controller's rules, interval by interval, on synthetic signals.
func TestAIMDRules(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newAIMD(AdaptiveConfig{}, t0)
	at := t0
	interval := func(blocks, retries int, rtt time.Duration, active float64, saturated bool) decision {
		t.Helper()
		for range blocks {
			a.block(rtt, false)
		}
		for range retries {
			a.block(0, true)
		}
		a.ivActive, a.ivTime, a.saturated = active*10, 10, saturated
		at = at.Add(10 * time.Second)
		d, ok := a.step(at)
		assert.True(t, ok)
		return d
	}
	_, ok := a.step(t0.Add(time.Second))
	assert.False(t, ok, "no decision before the interval is over")

	assert.Equal(t, 3, interval(200, 0, 50*time.Millisecond, 2, true).to, "clean and saturated: one more")
	assert.Equal(t, 3, interval(200, 0, 50*time.Millisecond, 2.2, true).to, "the interval after a raise settles")
	assert.Equal(t, 4, interval(300, 0, 50*time.Millisecond, 3, true).to, "the raise paid: one more")
	interval(300, 0, 50*time.Millisecond, 3.3, true) // settling
	d := interval(310, 0, 50*time.Millisecond, 4, true)
	assert.Equal(t, 3, d.to, "a raise that brought no more blocks is taken back")
	for range holdIntervals - 1 {
		assert.Equal(t, 3, interval(300, 0, 50*time.Millisecond, 3, true).to, "and held")
	}
	assert.Equal(t, 4, interval(300, 0, 50*time.Millisecond, 3, true).to, "probing again after the hold")
	assert.Equal(t, 2, interval(300, 30, 50*time.Millisecond, 4, true).to, "10 % repeated offsets: halved")
	assert.Equal(t, 1, interval(300, 0, 120*time.Millisecond, 2, true).to, "round trips over 2 × the best: halved")
	assert.Equal(t, 1, interval(300, 0, 150*time.Millisecond, 1, true).to, "never below min")
	a.failures = 50
	assert.True(t, interval(100, 0, 50*time.Millisecond, 1, true).congested, "send failures count")
	assert.Equal(t, 1, interval(100, 0, 50*time.Millisecond, 1, false).to, "not saturated: no raise")
	assert.Equal(t, 3, a.Decreases, "three decreases lowered the limit")
}
