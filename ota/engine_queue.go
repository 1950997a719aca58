package ota

import (
	"fmt"
	"time"

	"github.com/otabridge/otabridge/zcl"
)

// The queue: approved updates wait for one of the slots (capLocked), unless held (engine_policy.go); mains-powered devices go first, then by
// the time they were queued. A device in the queue that asks for blocks is told WAIT_FOR_DATA.

func (e *Engine) enqueueLocked(d *device) {
	if d.queued.IsZero() {
		d.queued = e.clk.Now()
	}
	if d.state != StateQueued && !d.slot {
		e.setStateLocked(d, StateQueued)
	}
}

// queueLess orders the queue: mains-powered first, then first come, then by address for determinism.
func queueLess(a, b *device) bool {
	if a.info.Sleepy != b.info.Sleepy {
		return !a.info.Sleepy
	}
	if !a.queued.Equal(b.queued) {
		return a.queued.Before(b.queued)
	}
	return a.info.IEEE < b.info.IEEE
}

// firstQueuedLocked returns the queued device that gets the next free slot (nil: none ready).
func (e *Engine) firstQueuedLocked() *device {
	now := e.clk.Now()
	var best *device
	for _, d := range e.devices {
		if d.state != StateQueued || d.slot || d.notBef.After(now) || e.holdLocked(d).reason != "" {
			continue
		}
		if best == nil || queueLess(d, best) {
			best = d
		}
	}
	return best
}

func (e *Engine) queuePositionLocked(d *device) int {
	pos := 1
	for _, o := range e.devices {
		if o != d && o.state == StateQueued && !o.slot && queueLess(o, d) {
			pos++
		}
	}
	return pos
}

func (e *Engine) grantSlotLocked(d *device) {
	if d.slot {
		return
	}
	d.slot = true
	e.active++
	d.notBef, d.queued = time.Time{}, time.Time{}
	if d.startedAt.IsZero() {
		d.startedAt = e.wall()
		d.from = d.info.FileVersion
		d.to = d.target.Header.FileVersion
	}
	e.log.Info().Stringer("ieee", d.info.IEEE).Str("image", d.target.ID).Int("active", e.active).
		Int("retry", d.retries).Msg("transfer slot granted")
	e.setStateLocked(d, StateUpdating)
	e.eventLocked(EventStarted, d, map[string]any{"from_version": VersionString(d.from),
		"to_version": VersionString(d.to), "to_display_version": d.target.DisplayVersion(), "image": d.target.ID,
		"size": d.target.Size()})
	if d.session == nil {
		d.notifies = 0
		e.sendNotifyLocked(d)
	}
	e.ensureTickerLocked()
}

func (e *Engine) releaseSlotLocked(d *device) {
	if d.notifyTimer != nil {
		d.notifyTimer.Stop()
		d.notifyTimer = nil
	}
	if !d.slot {
		return
	}
	d.slot = false
	e.active--
}

// pumpLocked gives free slots to the queue and arms a timer for retries that wait for their back-off.
func (e *Engine) pumpLocked() {
	for e.active < e.capLocked() {
		d := e.firstQueuedLocked()
		if d == nil {
			break
		}
		e.grantSlotLocked(d)
	}
	if e.aimd != nil && e.active >= e.capLocked() && e.firstQueuedLocked() != nil {
		e.aimd.saturated = true
	}
	now := e.clk.Now()
	var next time.Time
	for _, d := range e.devices {
		if d.state != StateQueued || d.slot {
			continue
		}
		var at time.Time
		if d.notBef.After(now) {
			at = d.notBef
		}
		if h := e.holdLocked(d); h.until.After(now) && h.until.After(at) {
			at = h.until // a maintenance window opens
		}
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if next.IsZero() || e.closed {
		return
	}
	if e.pumpTimer != nil {
		if !e.pumpAt.After(next) && e.pumpAt.After(now) {
			return
		}
		e.pumpTimer.Stop()
	}
	e.pumpAt = next
	e.pumpTimer = e.clk.AfterFunc(next.Sub(now), func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.pumpTimer = nil
		if !e.closed {
			e.pumpLocked()
		}
	})
}

// sendNotifyLocked sends a unicast Image Notify (payload type 0, jitter 100, as zigbee-herdsman and deCONZ
// do) and waits NotifyTimeout for the query.
func (e *Engine) sendNotifyLocked(d *device) {
	d.notifies++
	n := zcl.ImageNotify{PayloadType: 0, QueryJitter: 100}
	e.scratch = zcl.AppendFrame(e.scratch[:0], zcl.ServerToClientClusterHeader(e.nextTSN(), zcl.CmdImageNotify), n)
	e.sendLocked(d.info.IEEE, e.scratch, true)
	e.log.Debug().Stringer("ieee", d.info.IEEE).Int("attempt", d.notifies).Msg("image notify sent")
	if d.notifyTimer != nil {
		d.notifyTimer.Stop()
	}
	d.notifyTimer = e.clk.AfterFunc(e.cfg.NotifyTimeout, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.closed || d.notifyTimer == nil {
			return
		}
		d.notifyTimer = nil
		if d.state != StateUpdating || d.session != nil || !d.slot {
			return
		}
		if d.notifies < e.cfg.NotifyAttempts {
			e.sendNotifyLocked(d)
			return
		}
		// Many clients ignore Image Notify and only query on their own timer: keep the approval and serve
		// the device when it asks, without holding a slot meanwhile.
		e.releaseSlotLocked(d)
		d.lastError = fmt.Sprintf("device did not answer %d Image Notify; waiting for its own query", d.notifies)
		e.log.Warn().Stringer("ieee", d.info.IEEE).Int("notifies", d.notifies).Msg("no query after Image Notify: scheduled for the device's own query")
		e.setStateLocked(d, StateScheduled)
		e.pumpLocked()
	})
}

// armVerifyLocked waits for the device to come back with its new version.
func (e *Engine) armVerifyLocked(d *device, after time.Duration) {
	if d.verifyTimer != nil {
		d.verifyTimer.Stop()
	}
	d.verifyTimer = e.clk.AfterFunc(after, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.closed || d.verifyTimer == nil {
			return
		}
		d.verifyTimer = nil
		switch d.state {
		case StateWaitingReboot, StateVerifying:
		default:
			return
		}
		if d.verifies >= e.cfg.VerifyAttempts {
			e.failLocked(d, fmt.Sprintf("device did not report the new version %s after %d reads",
				VersionString(d.to), d.verifies))
			return
		}
		e.startVerifyLocked(d)
	})
}

// startVerifyLocked asks the bridge to read the device's version again.
func (e *Engine) startVerifyLocked(d *device) {
	d.verifies++
	if d.state != StateVerifying {
		e.setStateLocked(d, StateVerifying)
	}
	e.out.Interview(d.info.IEEE)
	interval := e.cfg.VerifyTimeout / time.Duration(e.cfg.VerifyAttempts)
	if interval < 10*time.Second {
		interval = 10 * time.Second
	}
	e.armVerifyLocked(d, interval)
}

// ensureTickerLocked runs the progress and stall ticker while any transfer is active.
func (e *Engine) ensureTickerLocked() {
	if e.ticker != nil || e.closed {
		return
	}
	e.ticker = e.clk.AfterFunc(e.cfg.ProgressInterval, e.tick)
}

func (e *Engine) tick() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ticker = nil
	if e.closed {
		return
	}
	now := e.clk.Now()
	busy, durable := false, false
	for _, d := range e.devices {
		s := d.session
		if s == nil || (d.state != StateUpdating && d.state != StateQueued) {
			continue
		}
		if d.slot {
			busy = true
			if idle := now.Sub(s.lastActive); idle >= e.cfg.StallTimeout && s.page == nil {
				e.stallLocked(d, idle)
				continue
			}
		}
		if dt := now.Sub(s.rateAt); dt >= time.Second {
			inst := float64(s.highWater-s.rateMark) / dt.Seconds()
			if s.highWater < s.rateMark {
				inst = 0
			}
			if s.rate == 0 {
				s.rate = inst
			} else {
				s.rate = 0.7*s.rate + 0.3*inst
			}
			if s.highWater != s.rateMark {
				durable = true
			}
			s.rateAt, s.rateMark = now, s.highWater
		}
		if d.progressed && now.Sub(d.publishedAt) >= e.cfg.ProgressInterval {
			e.publishLocked(d)
		}
	}
	if durable {
		e.out.DurableChanged()
	}
	e.adaptLocked(now)
	if e.aimd != nil && e.active >= e.capLocked() && e.firstQueuedLocked() != nil {
		e.aimd.saturated = true
	}
	e.publishCampaignsLocked(false)
	if busy || e.active > 0 {
		e.ensureTickerLocked()
	}
}

// stallLocked frees the slot of a transfer whose device went quiet, and retries it with back-off.
func (e *Engine) stallLocked(d *device, idle time.Duration) {
	e.fragmentsFailedLocked(d, d.session, "the transfer stalled after a fragmented block")
	if d.session != nil {
		d.session.stopPage()
		d.session = nil
	}
	e.releaseSlotLocked(d)
	d.retries++
	if d.retries > e.cfg.Retries {
		e.failLocked(d, fmt.Sprintf("transfer stalled: no request for %s (after %d retries)", idle.Round(time.Second), e.cfg.Retries))
		return
	}
	backoff := e.cfg.RetryBackoff << (d.retries - 1)
	d.lastError = fmt.Sprintf("transfer stalled: no request for %s; retry %d of %d", idle.Round(time.Second), d.retries, e.cfg.Retries)
	e.log.Warn().Stringer("ieee", d.info.IEEE).Int("retry", d.retries).Dur("backoff_ms", backoff).Msg("transfer stalled")
	if d.info.Sleepy {
		e.setStateLocked(d, StateScheduled)
	} else {
		d.notBef = e.clk.Now().Add(backoff)
		d.queued = e.clk.Now()
		e.setStateLocked(d, StateQueued)
	}
	e.pumpLocked()
}
