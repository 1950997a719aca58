package ota

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/otabridge/otabridge/zcl"
)

// Durable is the engine's state that must survive a restart: approvals, rejections, schedules, the queue,
// the transfer each device was last given and where it got to, and the last results. The bridge stores it
// crash-safely with its registry.
type Durable struct {
	Devices   []DurableDevice `json:"devices"`
	Campaigns []Campaign      `json:"campaigns,omitempty"`
}

// Check refuses durable state this engine must not load: unknown device or campaign states, campaigns
// without an id or with devices of unknown results.
func (s Durable) Check() error {
	for _, d := range s.Devices {
		if !d.State.Valid() {
			return fmt.Errorf("device %s: unknown OTA state %q", d.IEEE, d.State)
		}
		if d.Battery != nil && (*d.Battery < 0 || *d.Battery > 100) {
			return fmt.Errorf("device %s: battery %g %% is out of range", d.IEEE, *d.Battery)
		}
	}
	seen := map[string]bool{}
	for _, c := range s.Campaigns {
		switch {
		case c.ID == "":
			return errors.New("a campaign without an id")
		case seen[c.ID]:
			return fmt.Errorf("campaign %q twice", c.ID)
		case !c.State.Valid():
			return fmt.Errorf("campaign %q: unknown state %q", c.ID, c.State)
		}
		seen[c.ID] = true
		for _, cd := range c.Devices {
			switch cd.Result {
			case ResultPending, ResultDone, ResultFailed, ResultCancelled:
			default:
				return fmt.Errorf("campaign %q: device %s: unknown result %q", c.ID, cd.IEEE, cd.Result)
			}
		}
	}
	return nil
}

// DurableDevice is one device's durable OTA state.
type DurableDevice struct {
	IEEE       zcl.IEEE      `json:"ieee"`
	State      State         `json:"state"`
	Info       DeviceInfo    `json:"info"`
	FileKnown  bool          `json:"file_version_known"`
	HWKnown    bool          `json:"hardware_version_known"`
	Target     *DurableImage `json:"target,omitempty"`
	Pending    *DurableImage `json:"pending,omitempty"`
	Approved   bool          `json:"approved,omitempty"`
	Rejected   []zcl.ImageID `json:"rejected,omitempty"`
	HighWater  uint32        `json:"high_water,omitempty"`
	Retries    int           `json:"retries,omitempty"`
	Queued     time.Time     `json:"queued"`
	NotBefore  time.Time     `json:"not_before"`
	From       uint32        `json:"from_version,omitempty"`
	To         uint32        `json:"to_version,omitempty"`
	LastError  string        `json:"last_error,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at"`
	Now        bool          `json:"now,omitempty"`
	Campaign   string        `json:"campaign,omitempty"`
	Battery    *float64      `json:"battery,omitempty"`
	// NoFragments: the device failed with APS-fragmented blocks and gets unfragmented ones.
	NoFragments bool `json:"no_fragments,omitempty"`
}

// DurableImage names an image across restarts.
type DurableImage struct {
	ID      string      `json:"id"`
	ImageID zcl.ImageID `json:"image_id"`
}

func durableImage(img *Image) *DurableImage {
	if img == nil {
		return nil
	}
	return &DurableImage{ID: img.ID, ImageID: img.ImageID()}
}

func (e *Engine) lookupDurable(di *DurableImage) *Image {
	if di == nil {
		return nil
	}
	if img := e.cat.Get(di.ID); img != nil {
		return img
	}
	return e.cat.ByImageID(di.ImageID)
}

// Snapshot returns the durable state.
func (e *Engine) Snapshot() Durable {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := Durable{Devices: make([]DurableDevice, 0, len(e.devices))}
	for _, d := range e.devices {
		target := durableImage(d.target)
		if target == nil && d.awaited != nil {
			target = d.awaited // not there yet: the approval is kept, and saved
		}
		dd := DurableDevice{IEEE: d.info.IEEE, State: d.state, Info: d.info, FileKnown: d.info.FileVersionKnown,
			HWKnown: d.info.HasHardwareVersion, Target: target, Pending: durableImage(d.pending),
			Approved: d.approved, Retries: d.retries, Queued: d.queued, NotBefore: d.notBef, From: d.from,
			To: d.to, LastError: d.lastError, StartedAt: d.startedAt, FinishedAt: d.finishedAt, NoFragments: d.noFragments}
		dd.Now, dd.Campaign = d.now, d.campaign
		if d.batteryKnown {
			b := d.battery
			dd.Battery = &b
		}
		for id := range d.rejected {
			dd.Rejected = append(dd.Rejected, id)
		}
		sort.Slice(dd.Rejected, func(i, j int) bool { return dd.Rejected[i].FileVersion < dd.Rejected[j].FileVersion })
		if d.session != nil {
			dd.HighWater = d.session.highWater
		}
		out.Devices = append(out.Devices, dd)
	}
	sort.Slice(out.Devices, func(i, j int) bool { return out.Devices[i].IEEE < out.Devices[j].IEEE })
	for _, c := range e.campaigns {
		cc := c.Campaign
		cc.Devices = slices.Clone(c.Devices)
		out.Campaigns = append(out.Campaigns, cc)
	}
	sort.Slice(out.Campaigns, func(i, j int) bool { return out.Campaigns[i].ID < out.Campaigns[j].ID })
	return out
}

// Restore loads durable state (at start, before any frame is handled). Transfers that were running continue
// when their devices ask for the next block; devices waiting for their reboot are verified again.
func (e *Engine) Restore(s Durable) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clk.Now()
	for _, c := range s.Campaigns {
		if c.ID == "" || !c.State.Valid() {
			continue
		}
		cc := c
		cc.Devices = slices.Clone(c.Devices)
		e.campaigns[c.ID] = &campaign{Campaign: cc}
	}
	var running []*device
	for _, dd := range s.Devices {
		d := e.deviceLocked(dd.IEEE)
		d.info = dd.Info
		d.info.IEEE = dd.IEEE
		d.info.FileVersionKnown, d.info.HasHardwareVersion = dd.FileKnown, dd.HWKnown
		d.state, d.approved, d.retries = dd.State, dd.Approved, dd.Retries
		d.queued, d.notBef, d.from, d.to = dd.Queued, dd.NotBefore, dd.From, dd.To
		d.lastError, d.startedAt, d.finishedAt, d.changedAt = dd.LastError, dd.StartedAt, dd.FinishedAt, e.wall()
		d.target, d.pending = e.lookupDurable(dd.Target), e.lookupDurable(dd.Pending)
		d.now, d.campaign = dd.Now, dd.Campaign
		if dd.Battery != nil {
			d.battery, d.batteryKnown = min(max(*dd.Battery, 0), 100), true
		}
		d.noFragments = dd.NoFragments
		if len(dd.Rejected) > 0 {
			d.rejected = make(map[zcl.ImageID]bool, len(dd.Rejected))
			for _, id := range dd.Rejected {
				d.rejected[id] = true
			}
		}
		switch d.state {
		case StateUpdating, StateQueued, StateScheduled, StateWaitingReboot, StateVerifying:
			waiting := d.state == StateWaitingReboot || d.state == StateVerifying
			if d.target == nil && dd.Target != nil && (d.approved || waiting) {
				// The image may only be missing for now (images folder not mounted yet, cache unwritable):
				// keep the approval, and wait for the image (see Refresh).
				d.awaited = dd.Target
				d.requeue = d.state == StateUpdating || d.state == StateQueued
				if d.requeue {
					d.state = StateScheduled
				}
				e.log.Warn().Stringer("ieee", dd.IEEE).Str("image", dd.Target.ID).Str("state", string(d.state)).
					Msg("image of an approved update not available yet: approval kept, waiting for it")
			} else if d.target == nil {
				d.approved = false
				d.lastError = "the image of the interrupted update is no longer available"
				d.state = StateFailed
				e.campaignResultLocked(d, ResultFailed, d.lastError)
				continue
			}
		case StateApprovalPending:
			if d.pending == nil {
				d.state = StateIdle
			}
		}
		switch d.state {
		case StateUpdating:
			if d.target.Local() {
				d.session = newSession(d.target, now)
				d.session.highWater = dd.HighWater
				d.session.rateMark = dd.HighWater
			}
			running = append(running, d)
		case StateWaitingReboot, StateVerifying:
			d.state = StateWaitingReboot
			e.armVerifyLocked(d, e.cfg.VerifyTimeout)
		}
	}
	// The transfers that ran before the restart get their slots back first, in start order.
	sort.Slice(running, func(i, j int) bool { return running[i].startedAt.Before(running[j].startedAt) })
	for i, d := range running {
		if e.active < e.capLocked() {
			d.slot = true
			e.active++
			continue
		}
		d.state = StateQueued
		if d.queued.IsZero() {
			// The queue runs on the engine's clock (startedAt is wall-clock time); keep the start order.
			d.queued = now.Add(time.Duration(i))
		}
	}
	for _, d := range e.devices {
		if d.slot && d.session == nil {
			d.notifies = 0
			e.sendNotifyLocked(d)
		}
		e.publishLocked(d)
	}
	for _, c := range e.campaigns {
		e.finishCampaignIfDoneLocked(c)
	}
	e.publishCampaignsLocked(true)
	e.pumpLocked()
	if e.active > 0 {
		e.ensureTickerLocked()
	}
}
