package ota

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/otabridge/otabridge/zcl"
)

// Errors of the engine's operations; they reach the user in MQTT responses.
var (
	ErrUnknownDevice = errors.New("unknown device")
	ErrNoImage       = errors.New("no image")
	ErrBusy          = errors.New("an update is already running")
	ErrWrongState    = errors.New("not possible in this state")
)

// handleQueryLocked answers a Query Next Image Request: always with a response (reference/zcl-ota.md §2.3).
func (e *Engine) handleQueryLocked(src zcl.IEEE, tsn uint8, req zcl.QueryNextImageRequest) {
	d := e.deviceLocked(src)
	d.info.ManufacturerCode, d.info.ImageType = req.ManufacturerCode, req.ImageType
	d.info.FileVersion, d.info.FileVersionKnown = req.FileVersion, true
	if req.HasHardwareVersion() {
		d.info.HardwareVersion, d.info.HasHardwareVersion = req.HardwareVersion, true
	}
	data := map[string]any{"manufacturer_code": req.ManufacturerCode, "image_type": req.ImageType,
		"file_version": req.FileVersion, "installed_version": VersionString(req.FileVersion)}
	if req.HasHardwareVersion() {
		data["hardware_version"] = req.HardwareVersion
	}
	e.eventLocked(EventQuery, d, data)
	e.versionReportedLocked(d, d.state == StateVerifying)

	var offer *Image
	switch d.state {
	case StateScheduled, StateQueued, StateUpdating:
		if !d.approved || d.target == nil {
			break
		}
		if h := e.holdLocked(d); h.reason != "" && !d.slot && d.session == nil {
			// Held (battery, window, paused campaign): not now. A battery device is read again so that a
			// recharged one is served at a later query.
			e.log.Info().Stringer("ieee", src).Str("hold", h.reason).Msg("query of a held update: NO_IMAGE_AVAILABLE for now")
			if br, ok := e.out.(BatteryReader); ok && d.batteryKnown {
				br.ReadBattery(src)
			}
			e.publishLocked(d)
			break
		}
		offer = d.target
	case StateWaitingReboot, StateVerifying:
		// The device asks again before it reports the new version; nothing more to offer.
	default:
		img := e.matchLocked(d, nil)
		e.setAvailableLocked(d, img)
		if img == nil {
			break
		}
		switch {
		case e.cfg.Approval == "auto" && e.allowedLocked(d):
			e.log.Info().Stringer("ieee", src).Str("image", img.ID).Msg("auto policy: device allowed, serving")
			d.target, d.approved, d.pending, d.retries, d.lastError = img, true, nil, 0, ""
			offer = img
		case e.cfg.Approval == "deny":
		default:
			if d.state != StateApprovalPending || d.pending != img {
				d.pending = img
				e.setStateLocked(d, StateApprovalPending)
				e.eventLocked(EventApprovalNeeded, d, imageEventData(img, d))
			}
		}
	}
	resp := zcl.QueryNextImageResponse{Status: zcl.StatusNoImageAvailable}
	if offer != nil {
		if offer.Local() {
			e.offerLocked(d, offer)
			resp = zcl.QueryNextImageResponse{Status: zcl.StatusSuccess, ManufacturerCode: offer.Header.ManufacturerCode,
				ImageType: offer.Header.ImageType, FileVersion: offer.Header.FileVersion, ImageSize: offer.Size()}
		} else {
			e.log.Warn().Stringer("ieee", src).Str("image", offer.ID).Msg("approved image is not downloaded yet: NO_IMAGE_AVAILABLE for now")
		}
	}
	e.scratch = zcl.AppendFrame(e.scratch[:0], zcl.ServerToClientClusterHeader(tsn, zcl.CmdQueryNextImageResponse), resp)
	e.sendLocked(src, e.scratch, true)
}

func imageEventData(img *Image, d *device) map[string]any {
	ref := imageRef(img)
	m := map[string]any{"image": ref.ID, "version": ref.Version, "file_version": ref.FileVersion, "size": ref.Size}
	if d.info.FileVersionKnown {
		m["installed_version"] = VersionString(d.info.FileVersion)
	}
	if ref.ReleaseNotes != "" {
		m["release_notes"] = ref.ReleaseNotes
	}
	if d.info.Model != "" {
		m["model"] = d.info.Model
	}
	return m
}

// offerLocked is called when the device is told (Query Next Image Response SUCCESS) to download img.
func (e *Engine) offerLocked(d *device, img *Image) {
	if d.notifyTimer != nil {
		d.notifyTimer.Stop()
		d.notifyTimer = nil
	}
	// A successful Query Next Image Response starts a new download on the client: a new session (a client
	// that resumes sends its own offset, and is served from there).
	if d.session != nil {
		d.session.stopPage()
	}
	d.session = newSession(img, e.clk.Now())
	switch {
	case d.slot:
		e.setStateLocked(d, StateUpdating)
	case e.active < e.capLocked() && e.holdLocked(d).reason == "" && (d.state == StateQueued && e.firstQueuedLocked() == d || e.firstQueuedLocked() == nil):
		e.enqueueLocked(d)
		e.grantSlotLocked(d)
	default:
		// No slot: the device waits with WAIT_FOR_DATA on its block requests.
		e.enqueueLocked(d)
	}
}

func (e *Engine) matchLocked(d *device, version *uint32) *Image {
	if !d.info.FileVersionKnown && version == nil {
		return nil
	}
	return e.cat.Match(d.info, matchQueryOf(d, version))
}

// matchQueryOf is what the engine asks the catalogue for a device: that version, or an upgrade that is not
// one of the images the device rejected.
func matchQueryOf(d *device, version *uint32) MatchQuery {
	q := MatchQuery{Version: version}
	if len(d.rejected) > 0 && version == nil {
		q.Skip = func(img *Image) bool { return d.rejected[img.ImageID()] }
	}
	return q
}

func (e *Engine) allowedLocked(d *device) bool {
	a := e.cfg.Allow
	return slices.Contains(a.IEEE, d.info.IEEE) ||
		(d.info.Model != "" && slices.Contains(a.Models, d.info.Model)) ||
		slices.Contains(a.ManufacturerCodes, d.info.ManufacturerCode)
}

// setAvailableLocked records the best image for an idle device and moves it between idle and available.
func (e *Engine) setAvailableLocked(d *device, img *Image) {
	prev := d.available
	d.available = img
	switch d.state {
	case StateIdle, StateAvailable, StateFailed:
	default:
		return
	}
	if img == nil {
		if d.state == StateAvailable {
			e.setStateLocked(d, StateIdle)
		}
		return
	}
	if d.state != StateAvailable || prev != img {
		if d.state == StateFailed {
			// A new check after a failure or an abort: the failed attempt's target is history.
			d.lastError, d.target = "", nil
		}
		e.setStateLocked(d, StateAvailable)
		e.eventLocked(EventAvailable, d, imageEventData(img, d))
	}
}

// refreshAvailableLocked re-matches an idle or available device against the catalogue.
func (e *Engine) refreshAvailableLocked(d *device) {
	if d.state != StateIdle && d.state != StateAvailable {
		return
	}
	e.setAvailableLocked(d, e.matchLocked(d, nil))
}

// Refresh re-matches every idle or available device (after the image set changed).
func (e *Engine) Refresh() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.devices {
		e.resumeAwaitedLocked(d)
		e.refreshAvailableLocked(d)
	}
	e.pumpLocked()
}

// resumeAwaitedLocked gives an approved update whose image was missing at start its image, once the store
// has it again; an update that was queued or running queues again.
func (e *Engine) resumeAwaitedLocked(d *device) {
	if d.awaited == nil || d.target != nil {
		return
	}
	img := e.lookupDurable(d.awaited)
	if img == nil {
		return
	}
	e.log.Info().Stringer("ieee", d.info.IEEE).Str("image", img.ID).Str("state", string(d.state)).
		Msg("image of an approved update is available again")
	d.target, d.awaited = img, nil
	if d.requeue && d.state == StateScheduled && !d.info.Sleepy {
		e.enqueueLocked(d)
	}
	d.requeue = false
	e.out.DurableChanged()
	e.publishLocked(d)
}

// CheckResult answers a check.
type CheckResult struct {
	UpdateAvailable  bool      `json:"update_available"`
	InstalledVersion string    `json:"installed_version"`
	Image            *ImageRef `json:"image,omitempty"`
	State            State     `json:"state"`
}

// Check looks up an image for the device now. The device's file version must be known (the bridge reads
// its OTA attributes first).
func (e *Engine) Check(ieee zcl.IEEE) (CheckResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil {
		return CheckResult{}, fmt.Errorf("%s: %w", ieee, ErrUnknownDevice)
	}
	if !d.info.FileVersionKnown {
		return CheckResult{}, fmt.Errorf("%s: installed file version unknown (the device did not answer a read of its OTA attributes)", ieee)
	}
	img := e.matchLocked(d, nil)
	e.setAvailableLocked(d, img)
	res := CheckResult{UpdateAvailable: img != nil, InstalledVersion: VersionString(d.info.FileVersion),
		Image: imageRef(img), State: d.state}
	return res, nil
}

// Resolve picks the image an update of the device would install: the named file version (an install,
// reinstall or downgrade), else the image awaiting approval, else the newest newer one.
func (e *Engine) Resolve(ieee zcl.IEEE, version *uint32) (*Image, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil {
		return nil, fmt.Errorf("%s: %w", ieee, ErrUnknownDevice)
	}
	return e.resolveLocked(d, version)
}

func (e *Engine) resolveLocked(d *device, version *uint32) (*Image, error) {
	if version == nil && d.state == StateApprovalPending && d.pending != nil {
		return d.pending, nil
	}
	if version == nil && !d.info.FileVersionKnown {
		return nil, fmt.Errorf("%s: installed file version unknown: cannot pick a newer image", d.info.IEEE)
	}
	var img *Image
	if version != nil {
		img = e.matchLocked(d, version)
	} else {
		img = e.matchLocked(d, nil)
	}
	if img == nil {
		why := e.explainLocked(d, version)
		if version != nil {
			return nil, fmt.Errorf("%s: %w for file version %s (manufacturer 0x%04x, image type 0x%04x)%s",
				d.info.IEEE, ErrNoImage, VersionString(*version), d.info.ManufacturerCode, d.info.ImageType, why)
		}
		return nil, fmt.Errorf("%s: %w newer than %s (manufacturer 0x%04x, image type 0x%04x)%s",
			d.info.IEEE, ErrNoImage, VersionString(d.info.FileVersion), d.info.ManufacturerCode, d.info.ImageType, why)
	}
	return img, nil
}

// explainLocked is ": " and why no image matched the device, when the catalogue can tell (the store can:
// the newest image of the device's kind and the rule it fails), else "".
func (e *Engine) explainLocked(d *device, version *uint32) string {
	ex, ok := e.cat.(interface {
		Explain(dev DeviceInfo, q MatchQuery) string
	})
	if !ok {
		return ""
	}
	if why := ex.Explain(d.info, matchQueryOf(d, version)); why != "" {
		return ": " + why
	}
	return ""
}

// Update approves an update and starts it as soon as a slot is free: a mains-powered device gets a unicast
// Image Notify and is served on its query; a sleepy device is scheduled for its next own query.
func (e *Engine) Update(ieee zcl.IEEE, version *uint32) (*Image, error) {
	return e.approve(ieee, version, false, UpdateOptions{})
}

// Schedule approves an update to be served on the device's next own query (no Image Notify).
func (e *Engine) Schedule(ieee zcl.IEEE, version *uint32) (*Image, error) {
	return e.approve(ieee, version, true, UpdateOptions{})
}

// Approve answers a device's pending request with yes: the next query succeeds, and a mains-powered device
// gets a unicast Image Notify to make it come now.
func (e *Engine) Approve(ieee zcl.IEEE) (*Image, error) {
	e.mu.Lock()
	d := e.devices[ieee]
	if d != nil && d.state != StateApprovalPending {
		st := d.state
		e.mu.Unlock()
		return nil, fmt.Errorf("%s has no pending request (state %s): %w", ieee, st, ErrWrongState)
	}
	e.mu.Unlock()
	return e.approve(ieee, nil, false, UpdateOptions{})
}

func (e *Engine) approve(ieee zcl.IEEE, version *uint32, schedule bool, opt UpdateOptions) (*Image, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil {
		return nil, fmt.Errorf("%s: %w", ieee, ErrUnknownDevice)
	}
	switch d.state {
	case StateUpdating, StateWaitingReboot, StateVerifying:
		return nil, fmt.Errorf("%s: %w (state %s)", ieee, ErrBusy, d.state)
	}
	img, err := e.resolveLocked(d, version)
	if err != nil {
		return nil, err
	}
	if !img.Local() {
		return nil, fmt.Errorf("%s: image %s: %w", ieee, img.ID, ErrImageNotLocal)
	}
	var camp *campaign
	if opt.Campaign != "" {
		if camp = e.campaigns[opt.Campaign]; camp == nil || camp.State != CampaignRunning && camp.State != CampaignPaused {
			return nil, fmt.Errorf("campaign %q is not running", opt.Campaign)
		}
	}
	if d.campaign != "" && d.campaign != opt.Campaign {
		e.campaignResultLocked(d, ResultCancelled, "replaced by a new update request")
	}
	d.now, d.campaign = opt.Now, opt.Campaign
	if camp != nil {
		camp.add(d.info.IEEE, img)
	}
	if d.session != nil && d.session.img != img {
		d.session.stopPage()
		d.session = nil
	}
	d.target, d.approved, d.pending, d.awaited, d.requeue = img, true, nil, nil, false
	d.retries, d.lastError, d.notifies, d.notBef = 0, "", 0, time.Time{}
	d.startedAt, d.finishedAt = time.Time{}, time.Time{}
	delete(d.rejected, img.ImageID())
	e.log.Info().Stringer("ieee", ieee).Str("image", img.ID).Str("version", VersionString(img.Header.FileVersion)).
		Bool("schedule", schedule).Bool("sleepy", d.info.Sleepy).Msg("update approved")
	if schedule || d.info.Sleepy {
		if d.slot {
			e.releaseSlotLocked(d)
		}
		e.setStateLocked(d, StateScheduled)
		e.pumpLocked()
		return img, nil
	}
	e.enqueueLocked(d)
	e.pumpLocked()
	return img, nil
}

// Unschedule cancels a scheduled update.
func (e *Engine) Unschedule(ieee zcl.IEEE) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil {
		return fmt.Errorf("%s: %w", ieee, ErrUnknownDevice)
	}
	if d.state != StateScheduled {
		return fmt.Errorf("%s is not scheduled (state %s): %w", ieee, d.state, ErrWrongState)
	}
	e.cancelLocked(d, "unscheduled")
	return nil
}

// Reject answers a device's pending request with no: that version is not offered again until a newer one
// appears.
func (e *Engine) Reject(ieee zcl.IEEE) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil {
		return fmt.Errorf("%s: %w", ieee, ErrUnknownDevice)
	}
	if d.state != StateApprovalPending || d.pending == nil {
		return fmt.Errorf("%s has no pending request (state %s): %w", ieee, d.state, ErrWrongState)
	}
	if d.rejected == nil {
		d.rejected = make(map[zcl.ImageID]bool)
	}
	d.rejected[d.pending.ImageID()] = true
	e.log.Info().Stringer("ieee", ieee).Str("image", d.pending.ID).Msg("update rejected")
	d.pending = nil
	d.state = StateIdle
	d.changedAt = e.wall()
	e.out.DurableChanged()
	e.refreshAvailableLocked(d)
	e.publishLocked(d)
	return nil
}

// Abort stops a running transfer (its next block response carries ABORT; state failed) or cancels a
// queued or scheduled one.
func (e *Engine) Abort(ieee zcl.IEEE) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil {
		return fmt.Errorf("%s: %w", ieee, ErrUnknownDevice)
	}
	switch d.state {
	case StateUpdating:
		if d.session != nil {
			d.session.stopPage()
			d.session.aborted = true
		}
		e.releaseSlotLocked(d)
		d.approved = false
		d.lastError = "aborted"
		d.finishedAt = e.wall()
		e.setStateLocked(d, StateFailed)
		e.eventLocked(EventAborted, d, targetEventData(d, "aborted"))
		e.pumpLocked()
	case StateQueued, StateScheduled, StateApprovalPending:
		e.cancelLocked(d, "aborted")
	default:
		return fmt.Errorf("%s: nothing to abort (state %s): %w", ieee, d.state, ErrWrongState)
	}
	return nil
}

// cancelLocked withdraws an approval that has not started a transfer (abort of a queued, scheduled or
// pending update, or unschedule): ota_aborted with the reason, then the device is idle or, when an image
// still matches, available (with its ota_available). The state change is logged from the real state.
func (e *Engine) cancelLocked(d *device, reason string) {
	if d.session != nil {
		d.session.stopPage()
		d.session = nil
	}
	e.releaseSlotLocked(d)
	data := targetEventData(d, reason)
	if d.target == nil && d.pending != nil {
		data["image"] = d.pending.ID
	}
	d.approved, d.target, d.pending, d.notBef, d.queued = false, nil, nil, time.Time{}, time.Time{}
	d.awaited, d.requeue, d.now = nil, false, false
	e.campaignResultLocked(d, ResultCancelled, reason)
	e.log.Info().Stringer("ieee", d.info.IEEE).Str("state", string(d.state)).Str("reason", reason).Msg("update cancelled")
	e.eventLocked(EventAborted, d, data)
	img := e.matchLocked(d, nil)
	d.available = img
	if img == nil {
		e.setStateLocked(d, StateIdle)
	} else {
		e.setStateLocked(d, StateAvailable)
		e.eventLocked(EventAvailable, d, imageEventData(img, d))
	}
	e.pumpLocked()
}

// Notify sends an Image Notify: unicast to one device (payload type 0, jitter 100: the device queries), or,
// with ieee 0, broadcast with payload type 3 for img (or type 0 without one) and the given jitter (1..100).
func (e *Engine) Notify(ieee zcl.IEEE, img *Image, jitter uint8) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if jitter == 0 || jitter > 100 {
		jitter = 100
	}
	n := zcl.ImageNotify{PayloadType: 0, QueryJitter: jitter}
	if img != nil {
		id := img.ImageID()
		n = zcl.ImageNotify{PayloadType: 3, QueryJitter: jitter, ManufacturerCode: id.ManufacturerCode,
			ImageType: id.ImageType, FileVersion: id.FileVersion}
	}
	e.scratch = zcl.AppendFrame(e.scratch[:0], zcl.ServerToClientClusterHeader(e.nextTSN(), zcl.CmdImageNotify), n)
	if ieee == 0 {
		e.out.BroadcastZCL(e.scratch)
		return nil
	}
	if e.devices[ieee] == nil {
		return fmt.Errorf("%s: %w", ieee, ErrUnknownDevice)
	}
	// A unicast notify always makes the client query; the payload type only filters broadcasts.
	e.sendLocked(ieee, e.scratch, true)
	return nil
}

// versionReportedLocked judges an update by the file version the device now reports.
func (e *Engine) versionReportedLocked(d *device, judge bool) {
	if d.state != StateWaitingReboot && d.state != StateVerifying {
		return
	}
	var want uint32
	switch {
	case d.target != nil:
		want = d.target.Header.FileVersion
	case d.awaited != nil:
		want = d.awaited.ImageID.FileVersion // restored; its file is not back yet, but the version is known
	default:
		return
	}
	if d.info.FileVersion == want {
		e.succeedLocked(d)
		return
	}
	if judge {
		e.failLocked(d, fmt.Sprintf("device reports version %s after the upgrade, expected %s",
			VersionString(d.info.FileVersion), VersionString(want)))
	}
}

func (e *Engine) succeedLocked(d *device) {
	d.stopTimers()
	took := e.since(d.startedAt)
	d.finishedAt = e.wall()
	d.lastError = ""
	data := map[string]any{"from_version": VersionString(d.from), "to_version": VersionString(d.to),
		"seconds": math.Round(took.Seconds()*100) / 100}
	if d.target != nil {
		data["to_display_version"] = d.target.DisplayVersion()
	}
	d.approved, d.target, d.retries, d.awaited, d.now = false, nil, 0, nil, false
	d.available = nil
	e.campaignResultLocked(d, ResultDone, "")
	e.log.Info().Stringer("ieee", d.info.IEEE).Str("from", VersionString(d.from)).Str("to", VersionString(d.to)).
		Int64("took_ms", took.Milliseconds()).Msg("update verified: device runs the new version")
	e.setStateLocked(d, StateIdle)
	e.eventLocked(EventFinished, d, data)
	e.refreshAvailableLocked(d)
}

// targetEventData is the data of ota_failed and ota_aborted: the reason and, when the device has a
// target, its image id and version (0x%08x and human-readable).
func targetEventData(d *device, reason string) map[string]any {
	data := map[string]any{"reason": reason}
	if d.target != nil {
		data["image"] = d.target.ID
		data["to_version"] = VersionString(d.target.Header.FileVersion)
		data["to_display_version"] = d.target.DisplayVersion()
	}
	return data
}

// failLocked ends the device's update as failed.
func (e *Engine) failLocked(d *device, reason string) {
	d.stopTimers()
	if d.session != nil {
		d.session.stopPage()
		d.session = nil
	}
	e.releaseSlotLocked(d)
	d.approved, d.awaited, d.requeue, d.now = false, nil, false, false
	e.campaignResultLocked(d, ResultFailed, reason)
	d.lastError = reason
	d.finishedAt = e.wall()
	e.log.Warn().Stringer("ieee", d.info.IEEE).Str("reason", reason).Msg("update failed")
	e.setStateLocked(d, StateFailed)
	e.eventLocked(EventFailed, d, targetEventData(d, reason))
	e.pumpLocked()
}
