package ota

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/otabridge/otabridge/zcl"
)

// Campaigns: a named set of updates started together (update_all with a filter), with progress, pause,
// resume and cancel, kept across restarts, ending with a report of every device's result.

// CampaignState is a campaign's lifecycle state.
type CampaignState string

// Campaign states.
const (
	CampaignRunning   CampaignState = "running"
	CampaignPaused    CampaignState = "paused"
	CampaignCancelled CampaignState = "cancelled" // no new transfer starts; ends when the running ones do
	CampaignFinished  CampaignState = "finished"
)

// Valid reports whether s is a campaign state.
func (s CampaignState) Valid() bool {
	return slices.Contains([]CampaignState{CampaignRunning, CampaignPaused, CampaignCancelled, CampaignFinished}, s)
}

// Device results in a campaign.
const (
	ResultPending   = "pending"
	ResultDone      = "done"
	ResultFailed    = "failed"
	ResultCancelled = "cancelled"
)

// EventCampaignFinished is published when every device of a campaign has a result; its data is the report.
const EventCampaignFinished = "campaign_finished"

// Campaign is a campaign's durable record (part of Durable).
type Campaign struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Filter     map[string]string `json:"filter,omitempty"`
	State      CampaignState     `json:"state"`
	CreatedAt  time.Time         `json:"created_at"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	// Sealed is set once every device was added (CommitCampaign): only then can the campaign end.
	Sealed  bool             `json:"sealed"`
	Devices []CampaignDevice `json:"devices"`
}

// CampaignDevice is one device's part of a campaign.
type CampaignDevice struct {
	IEEE       zcl.IEEE   `json:"ieee"`
	Image      string     `json:"image"`
	Size       uint32     `json:"size"`
	Result     string     `json:"result"`
	Reason     string     `json:"reason,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// CampaignStatus is what `<base>/bridge/campaign/<id>` carries: the record and its progress.
type CampaignStatus struct {
	Campaign
	Total     int `json:"total"`
	Done      int `json:"done"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
	Remaining int `json:"remaining"`
	Running   int `json:"running"`
	// Failures lists the failed devices with their reasons.
	Failures []CampaignDevice `json:"failures"`
	// Bytes served of TotalBytes; Rate is the mean rate since the campaign started (B/s); ETA is when the
	// remaining bytes are expected to be served at that rate (or the next window's start, when later).
	Bytes      uint64     `json:"bytes"`
	TotalBytes uint64     `json:"total_bytes"`
	Percent    float64    `json:"percent"`
	Rate       float64    `json:"rate"`
	ETA        *time.Time `json:"eta,omitempty"`
}

// CampaignOutput is implemented by an Output that publishes campaigns; the engine calls it (under its lock,
// like Output) when a campaign changes and with progress while transfers run.
type CampaignOutput interface {
	CampaignChanged(st CampaignStatus)
}

// campaign is the engine's live campaign.
type campaign struct {
	Campaign
	publishedAt time.Time
}

func (c *campaign) add(ieee zcl.IEEE, img *Image) {
	for i := range c.Devices {
		if c.Devices[i].IEEE == ieee {
			c.Devices[i] = CampaignDevice{IEEE: ieee, Image: img.ID, Size: img.Size(), Result: ResultPending}
			return
		}
	}
	c.Devices = append(c.Devices, CampaignDevice{IEEE: ieee, Image: img.ID, Size: img.Size(), Result: ResultPending})
}

// CreateCampaign starts an empty campaign; devices join it with UpdateWith(…, UpdateOptions{Campaign: id})
// and CommitCampaign says they all did.
func (e *Engine) CreateCampaign(id, name string, filter map[string]string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.campaigns[id]; c != nil && c.State != CampaignFinished {
		return fmt.Errorf("campaign %q exists and is %s", id, c.State)
	}
	e.campaigns[id] = &campaign{Campaign: Campaign{ID: id, Name: name, Filter: filter, State: CampaignRunning,
		CreatedAt: e.wall().UTC(), Devices: []CampaignDevice{}}}
	e.log.Info().Str("campaign", id).Str("name", name).Msg("campaign created")
	e.out.DurableChanged()
	return nil
}

// CommitCampaign marks the campaign complete in membership; a campaign with no device ends at once.
func (e *Engine) CommitCampaign(id string) (CampaignStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.campaigns[id]
	if c == nil {
		return CampaignStatus{}, fmt.Errorf("unknown campaign %q", id)
	}
	c.Sealed = true
	e.finishCampaignIfDoneLocked(c)
	e.publishCampaignLocked(c)
	return e.campaignStatusLocked(c), nil
}

// CampaignStatus returns a campaign's record and progress.
func (e *Engine) CampaignStatus(id string) (CampaignStatus, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.campaigns[id]
	if c == nil {
		return CampaignStatus{}, false
	}
	return e.campaignStatusLocked(c), true
}

// Campaigns returns every campaign the engine keeps, oldest first.
func (e *Engine) Campaigns() []CampaignStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]CampaignStatus, 0, len(e.campaigns))
	for _, c := range e.campaigns {
		out = append(out, e.campaignStatusLocked(c))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// PauseCampaign stops the campaign's updates from starting; its running transfers pause at their next block.
func (e *Engine) PauseCampaign(id string) (CampaignStatus, error) {
	return e.campaignOp(id, func(c *campaign) error {
		if c.State != CampaignRunning {
			return fmt.Errorf("campaign %q is %s, not running", id, c.State)
		}
		c.State = CampaignPaused
		return nil
	})
}

// ResumeCampaign lets a paused campaign's updates start again.
func (e *Engine) ResumeCampaign(id string) (CampaignStatus, error) {
	return e.campaignOp(id, func(c *campaign) error {
		if c.State != CampaignPaused {
			return fmt.Errorf("campaign %q is %s, not paused", id, c.State)
		}
		c.State = CampaignRunning
		return nil
	})
}

// CancelCampaign withdraws the campaign's updates that have not started; running transfers finish.
func (e *Engine) CancelCampaign(id string) (CampaignStatus, error) {
	return e.campaignOp(id, func(c *campaign) error {
		if c.State != CampaignRunning && c.State != CampaignPaused {
			return fmt.Errorf("campaign %q is %s: nothing to cancel", id, c.State)
		}
		c.State = CampaignCancelled
		for _, cd := range c.Devices {
			d := e.devices[cd.IEEE]
			if cd.Result != ResultPending || d == nil || d.campaign != id {
				continue
			}
			if d.slot || d.state != StateQueued && d.state != StateScheduled {
				continue // running or past its transfer: it finishes, and counts
			}
			e.cancelLocked(d, "campaign "+c.Name+" cancelled")
		}
		return nil
	})
}

func (e *Engine) campaignOp(id string, op func(c *campaign) error) (CampaignStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.campaigns[id]
	if c == nil {
		return CampaignStatus{}, fmt.Errorf("unknown campaign %q", id)
	}
	if err := op(c); err != nil {
		return CampaignStatus{}, err
	}
	e.log.Info().Str("campaign", id).Str("state", string(c.State)).Msg("campaign state")
	e.out.DurableChanged()
	for _, cd := range c.Devices {
		if d := e.devices[cd.IEEE]; d != nil && d.campaign == id {
			e.publishLocked(d)
		}
	}
	e.finishCampaignIfDoneLocked(c)
	e.publishCampaignLocked(c)
	e.pumpLocked()
	return e.campaignStatusLocked(c), nil
}

// campaignResultLocked records the end of d's update in its campaign.
func (e *Engine) campaignResultLocked(d *device, result, reason string) {
	c := e.campaigns[d.campaign]
	d.campaign = ""
	if c == nil {
		return
	}
	for i := range c.Devices {
		cd := &c.Devices[i]
		if cd.IEEE != d.info.IEEE || cd.Result != ResultPending {
			continue
		}
		t := e.wall().UTC()
		cd.Result, cd.Reason, cd.FinishedAt = result, reason, &t
	}
	e.out.DurableChanged()
	e.finishCampaignIfDoneLocked(c)
	e.publishCampaignLocked(c)
}

func (e *Engine) finishCampaignIfDoneLocked(c *campaign) {
	if !c.Sealed || c.State == CampaignFinished {
		return
	}
	for _, cd := range c.Devices {
		if cd.Result == ResultPending {
			return
		}
	}
	t := e.wall().UTC()
	c.FinishedAt = &t
	cancelled := c.State == CampaignCancelled
	c.State = CampaignFinished
	st := e.campaignStatusLocked(c)
	e.log.Info().Str("campaign", c.ID).Int("done", st.Done).Int("failed", st.Failed).Int("cancelled", st.Cancelled).
		Uint64("bytes", st.Bytes).Float64("rate", st.Rate).Msg("campaign finished")
	e.out.DurableChanged()
	e.out.Event(Event{Type: EventCampaignFinished, Data: map[string]any{"id": c.ID, "name": c.Name,
		"cancelled": cancelled, "done": st.Done, "failed": st.Failed, "cancelled_devices": st.Cancelled,
		"bytes": st.Bytes, "seconds": t.Sub(c.CreatedAt).Seconds(), "devices": c.Devices}})
}

// campaignStatusLocked computes a campaign's progress from its devices.
func (e *Engine) campaignStatusLocked(c *campaign) CampaignStatus {
	st := CampaignStatus{Campaign: c.Campaign, Failures: []CampaignDevice{}}
	st.Devices = slices.Clone(c.Devices)
	var heldUntil time.Time
	for _, cd := range c.Devices {
		st.Total++
		st.TotalBytes += uint64(cd.Size)
		switch cd.Result {
		case ResultDone:
			st.Done++
			st.Bytes += uint64(cd.Size)
		case ResultFailed:
			st.Failed++
			st.Failures = append(st.Failures, cd)
		case ResultCancelled:
			st.Cancelled++
		default:
			st.Remaining++
			d := e.devices[cd.IEEE]
			if d == nil {
				continue
			}
			if d.slot {
				st.Running++
			}
			if s := d.session; s != nil && s.img != nil && s.img.ID == cd.Image {
				st.Bytes += uint64(s.highWater)
			}
			if h := e.holdLocked(d); !h.until.IsZero() && (heldUntil.IsZero() || h.until.Before(heldUntil)) {
				heldUntil = h.until
			}
		}
	}
	if st.TotalBytes > 0 {
		st.Percent = float64(st.Bytes) * 100 / float64(st.TotalBytes)
	}
	end := e.wall()
	if c.FinishedAt != nil {
		end = *c.FinishedAt
	}
	if el := end.Sub(c.CreatedAt).Seconds(); el > 0 {
		st.Rate = float64(st.Bytes) / el
	}
	if c.State == CampaignRunning && st.Remaining > 0 {
		left := st.TotalBytes - min(st.Bytes, st.TotalBytes)
		var eta time.Time
		if st.Rate > 0 {
			eta = e.wall().Add(time.Duration(float64(left) / st.Rate * float64(time.Second))).UTC()
		}
		if !heldUntil.IsZero() {
			if w := e.wallAt(heldUntil); eta.IsZero() || w.After(eta) {
				eta = w
			}
		}
		if !eta.IsZero() {
			st.ETA = &eta
		}
	}
	return st
}

func (e *Engine) publishCampaignLocked(c *campaign) {
	co, ok := e.out.(CampaignOutput)
	if !ok {
		return
	}
	c.publishedAt = e.clk.Now()
	co.CampaignChanged(e.campaignStatusLocked(c))
}

// publishCampaignsLocked publishes the progress of running campaigns (at most every ProgressInterval).
func (e *Engine) publishCampaignsLocked(force bool) {
	now := e.clk.Now()
	for _, c := range e.campaigns {
		if c.State == CampaignFinished {
			continue
		}
		if force || now.Sub(c.publishedAt) >= e.cfg.ProgressInterval {
			e.publishCampaignLocked(c)
		}
	}
}

// ForgetCampaign drops a finished campaign from the engine (and the state file).
func (e *Engine) ForgetCampaign(id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.campaigns[id]
	if c == nil {
		return fmt.Errorf("unknown campaign %q", id)
	}
	if c.State != CampaignFinished {
		return fmt.Errorf("campaign %q is %s; cancel it first", id, c.State)
	}
	delete(e.campaigns, id)
	e.out.DurableChanged()
	return nil
}
