package ota

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// The radio's per-frame statistics (ncp.StatsSender through SendDone): time waiting for a busy channel
// and MAC retries / CCA failures above their thresholds halve the limit; below them the clean,
// saturated interval raises it.
func TestAIMDRadioSignals(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newAIMD(AdaptiveConfig{Start: 4, ChannelWait: 10 * time.Millisecond, MACRetryRatio: 0.2}, t0)
	at := t0
	interval := func(frames int, r SendReport) decision {
		t.Helper()
		for range frames {
			a.block(50*time.Millisecond, false)
			a.sent(r)
		}
		a.ivActive, a.ivTime, a.saturated = float64(a.limit)*10, 10, true
		at = at.Add(10 * time.Second)
		d, ok := a.step(at)
		assert.True(t, ok)
		return d
	}
	d := interval(100, SendReport{Attempts: 1, ChannelWait: 25 * time.Millisecond})
	assert.Equal(t, 2, d.to, "frames waited 25 ms for the channel (> 10 ms): halved")
	assert.Equal(t, "channel busy", d.reason)
	assert.Equal(t, 25*time.Millisecond, d.meanWait)

	d = interval(100, SendReport{Attempts: 1, ChannelWait: 4 * time.Millisecond})
	assert.Equal(t, 3, d.to, "4 ms is below the threshold: one more")
	assert.False(t, d.congested)
	interval(100, SendReport{Attempts: 1, ChannelWait: 4 * time.Millisecond}) // the interval after a raise settles

	d = interval(100, SendReport{Attempts: 4, MACRetries: 1, CCAFailures: 1})
	assert.InDelta(t, 0.4, d.macRetryShare, 1e-9, "(1 retry + 1 CCA failure) / (4 attempts + 1 CCA failure)")
	assert.Equal(t, "MAC retries", d.reason)
	assert.Equal(t, 1, d.to, "40 % of the transmissions were retries or found the channel busy: halved")

	d = interval(100, SendReport{Attempts: 10, MACRetries: 1})
	assert.False(t, d.congested, "10 % retries is below mac_retry_ratio")
	assert.Equal(t, 2, d.to)

	// A radio without statistics reports zeros: no signal, the interval is judged on blocks alone.
	b := newAIMD(AdaptiveConfig{}, t0)
	for range 100 {
		b.block(50*time.Millisecond, false)
		b.sent(SendReport{})
	}
	b.saturated, b.ivActive, b.ivTime = true, 20, 10
	d, _ = b.step(t0.Add(10 * time.Second))
	assert.Zero(t, b.sends)
	assert.Equal(t, time.Duration(0), d.meanWait)
	assert.Equal(t, 3, d.to, "no radio statistics: raised on clean blocks")
	b.sent(SendReport{Failed: true})
	assert.Equal(t, 1, b.failures, "a failed send without statistics still counts as a failure")
}

// The stick's MAC counters (MACCounted, from a radio that cannot tell what each frame cost): retries and
// CCA failures above mac_retry_ratio of the interval's transmissions halve the limit; below it the clean,
// saturated interval raises it. The counters give no channel-wait signal.
func TestAIMDMACCounters(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newAIMD(AdaptiveConfig{Start: 4, MACRetryRatio: 0.25}, t0)
	at := t0
	interval := func(reports ...MACReport) decision {
		t.Helper()
		for range 100 {
			a.block(50*time.Millisecond, false)
			a.sent(SendReport{}) // the radio tells nothing per frame
		}
		for _, r := range reports {
			a.counted(r)
		}
		a.ivActive, a.ivTime, a.saturated = float64(a.limit)*10, 10, true
		at = at.Add(10 * time.Second)
		d, ok := a.step(at)
		require.True(t, ok)
		return d
	}
	d := interval(MACReport{Frames: 60, Retries: 20, CCAFailures: 5}, MACReport{Frames: 60, Retries: 20, CCAFailures: 5})
	assert.InDelta(t, 50.0/170, d.macRetryShare, 1e-9, "(40 retries + 10 CCA failures) / (160 transmissions + 10 CCA failures)")
	assert.Equal(t, "MAC retries", d.reason)
	assert.Equal(t, 2, d.to, "halved")
	assert.Equal(t, time.Duration(0), d.meanWait, "counters say nothing of the wait for the channel")

	d = interval(MACReport{Frames: 120, Retries: 10})
	assert.False(t, d.congested, "10 of 130 transmissions were retries: below the ratio")
	assert.Equal(t, 3, d.to)
	d = interval()
	assert.Zero(t, d.macRetryShare, "no report in the interval: no signal")
}

// MAC counter reports reach the controller only while transfers run: the counts of an idle stretch (the
// home's own traffic for hours) would outweigh the first interval that has transfers.
func TestMACCountedOnlyWhileTransfersRun(t *testing.T) {
	r := newEngineRig(t, EngineConfig{MaxConcurrent: ConcurrencyAuto})
	r.eng.MACCounted(MACReport{Frames: 1000, Retries: 900})
	r.eng.mu.Lock()
	assert.Zero(t, r.eng.aimd.attempts, "no transfer runs: dropped")
	r.eng.active = 1
	r.eng.mu.Unlock()
	r.eng.MACCounted(MACReport{Frames: 10, Retries: 2, CCAFailures: 1})
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	assert.Equal(t, 12, r.eng.aimd.attempts)
	assert.Equal(t, 2, r.eng.aimd.macRetries)
	assert.Equal(t, 1, r.eng.aimd.ccaFailures)
	r.eng.active = 0
}
