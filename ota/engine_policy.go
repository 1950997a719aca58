package ota

import (
	"fmt"
	"time"

	"github.com/otabridge/otabridge/zcl"
)

// Queue policy: maintenance windows, battery holds, campaign pauses and the adaptive concurrency limit
// decide whether a queued update may take a slot now.

// BatteryReader is implemented by an Output that can read a device's Power Configuration cluster; the
// engine asks before serving a battery device whose last reading it holds (the answer comes back through
// SetBattery).
type BatteryReader interface {
	ReadBattery(dst zcl.IEEE)
}

// hold is why a queued update may not start now: reason for the user, until when it is expected to lift
// (zero: unknown), pause says a running transfer stops at its next block for it.
type hold struct {
	reason string
	until  time.Time
	pause  bool
}

// holdLocked returns what keeps d from starting now (reason "" when nothing does).
func (e *Engine) holdLocked(d *device) hold {
	if c := e.campaigns[d.campaign]; c != nil && c.State == CampaignPaused {
		return hold{reason: "campaign " + c.Name + " paused", pause: true}
	}
	if d.batteryKnown && e.cfg.MinBattery > 0 && d.battery < float64(e.cfg.MinBattery) {
		return hold{reason: fmt.Sprintf("battery %.0f %% < %d %%", d.battery, e.cfg.MinBattery)}
	}
	if !d.now && e.windows.Any() {
		now := e.clk.Now()
		if open, _ := e.windows.Open(now); !open {
			return hold{reason: "outside the maintenance window", until: e.windows.NextOpen(now),
				pause: e.cfg.WindowEnd == "pause"}
		}
	}
	return hold{}
}

// capLocked is the number of transfers allowed at once: the fixed cap, or the adaptive limit.
func (e *Engine) capLocked() int {
	if e.aimd != nil {
		return e.aimd.limit
	}
	return int(e.cfg.MaxConcurrent)
}

// Concurrency returns the current limit on parallel transfers (the adaptive one under auto) and the most
// the adaptive controller has allowed so far.
func (e *Engine) Concurrency() (limit, peak int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.aimd != nil {
		return e.aimd.limit, e.aimd.Peak
	}
	return int(e.cfg.MaxConcurrent), int(e.cfg.MaxConcurrent)
}

// AdaptiveStats are the adaptive controller's figures (zero without max_concurrent: auto).
type AdaptiveStats struct {
	Limit, Peak          int
	Increases, Decreases int
	// MeanActive is the time-weighted mean number of running transfers while any ran.
	MeanActive float64
}

// Adaptive returns the adaptive controller's figures.
func (e *Engine) Adaptive() AdaptiveStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.aimd == nil {
		return AdaptiveStats{}
	}
	a := e.aimd
	st := AdaptiveStats{Limit: a.limit, Peak: a.Peak, Increases: a.Increases, Decreases: a.Decreases}
	if a.busyTime > 0 {
		st.MeanActive = a.activeTime / a.busyTime.Seconds()
	}
	return st
}

// wallAt converts a time on the engine's clock to the wall clock users see.
func (e *Engine) wallAt(t time.Time) time.Time {
	return e.wall().Add(t.Sub(e.clk.Now())).UTC()
}

// SetBattery records a battery reading in percent (0..100) from the device's Power Configuration cluster.
// A device held for a low battery is released when the reading is at or above ota.min_battery.
func (e *Engine) SetBattery(ieee zcl.IEEE, percent float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil || e.closed {
		return
	}
	percent = min(max(percent, 0), 100)
	was := e.holdLocked(d).reason
	changed := !d.batteryKnown || d.battery != percent
	d.battery, d.batteryKnown = percent, true
	now := e.holdLocked(d).reason
	if !changed {
		return
	}
	e.log.Info().Stringer("ieee", ieee).Float64("battery", percent).Int("min_battery", e.cfg.MinBattery).
		Str("hold", now).Msg("battery reading")
	e.out.DurableChanged()
	e.publishLocked(d)
	if was != now {
		e.pumpLocked()
	}
}

// pauseAtBlockLocked stops a running transfer at a block boundary when a hold that pauses applies (the
// maintenance window closed with window_end: pause, or its campaign was paused): the slot is freed and
// the device queues again; it resumes at its offset when the hold lifts.
func (e *Engine) pauseAtBlockLocked(d *device) bool {
	h := e.holdLocked(d)
	if h.reason == "" || !h.pause || !d.slot {
		return false
	}
	e.releaseSlotLocked(d)
	d.queued = e.clk.Now()
	var off uint32
	if d.session != nil {
		d.session.stopPage()
		off = d.session.highWater
	}
	e.log.Info().Stringer("ieee", d.info.IEEE).Uint32("offset", off).Str("reason", h.reason).
		Msg("transfer paused at a block boundary")
	e.setStateLocked(d, StateQueued)
	e.pumpLocked()
	return true
}

// SendFailed tells the engine that a frame to the device could not be delivered (the radio's send
// confirmation failed): a congestion signal for max_concurrent: auto.
func (e *Engine) SendFailed(ieee zcl.IEEE) {
	e.SendDone(ieee, SendReport{Failed: true})
}

// SendReport is the radio's confirmation of one frame to a device, with what it cost when the radio
// tells (ncp.SendStats; zero otherwise).
type SendReport struct {
	Failed bool // the radio could not deliver it
	// Attempts and MACRetries are its MAC transmissions and the retries among them, CCAFailures the
	// channel access attempts that found the channel busy, ChannelWait its wait for the channel.
	Attempts, MACRetries, CCAFailures int
	ChannelWait                       time.Duration
}

// SendDone tells the engine how a frame to the device went: congestion signals for max_concurrent: auto
// (send failures, MAC retries, channel access failures, time waiting for a busy channel).
func (e *Engine) SendDone(ieee zcl.IEEE, r SendReport) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.aimd != nil {
		e.aimd.sent(r)
	}
}

// MACReport is what the stick's MAC counters say of a span of time: the unicast frames the MAC finished
// (delivered or given up), the retransmissions among their transmissions, and the transmissions a busy
// channel prevented. They count all the coordinator's unicasts, not only OTA frames.
type MACReport struct {
	Frames, Retries, CCAFailures int
}

// MACCounted tells the engine what the stick's MAC counters say since the last report: the MAC-retry signal
// of max_concurrent: auto from a radio that cannot tell what each frame cost. Reports while no transfer runs
// are dropped: the controller judges only intervals with transfers, and hours of idle counts would outweigh
// the first of them.
func (e *Engine) MACCounted(r MACReport) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.aimd != nil && e.active > 0 {
		e.aimd.counted(r)
	}
}

// AdaptiveInterval returns how often max_concurrent: auto decides (0 without it).
func (e *Engine) AdaptiveInterval() time.Duration {
	if e.aimd == nil {
		return 0
	}
	return e.aimd.cfg.Interval
}

// adaptLocked runs the adaptive controller at the end of each interval.
func (e *Engine) adaptLocked(now time.Time) {
	if e.aimd == nil {
		return
	}
	if dt := now.Sub(e.aimd.sampledAt); e.active > 0 && dt > 0 && !e.aimd.sampledAt.IsZero() {
		e.aimd.activeTime += float64(e.active) * dt.Seconds()
		e.aimd.busyTime += dt
		e.aimd.ivActive += float64(e.active) * dt.Seconds()
		e.aimd.ivTime += dt.Seconds()
	}
	e.aimd.sampledAt = now
	dec, ok := e.aimd.step(now)
	if !ok || dec.from == dec.to {
		return
	}
	e.log.Info().Int("from", dec.from).Int("to", dec.to).Int("active", e.active).Int("blocks", dec.blocks).
		Int("retries", dec.retries).Int("send_failures", dec.failures).Dur("mean_rtt", dec.meanRTT).
		Dur("base_rtt", dec.baseRTT).Dur("mean_channel_wait", dec.meanWait).
		Float64("mac_retry_share", dec.macRetryShare).Str("signal", dec.reason).Bool("congested", dec.congested).
		Msg("adaptive concurrency")
	if dec.to > dec.from {
		e.pumpLocked()
	}
}

// UpdateOptions qualify an update request.
type UpdateOptions struct {
	// Now starts the update outside the maintenance windows.
	Now bool
	// Campaign adds the update to a campaign made with CreateCampaign.
	Campaign string
}

// UpdateWith is Update with options (the request's "now", the campaign it belongs to).
func (e *Engine) UpdateWith(ieee zcl.IEEE, version *uint32, opt UpdateOptions) (*Image, error) {
	return e.approve(ieee, version, false, opt)
}
