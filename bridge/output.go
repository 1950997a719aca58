package bridge

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/otabridge/otabridge/discovery"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// engineOutput is the OTA engine's way out. The engine calls it under its own lock: everything here only
// queues (frames to the sender, messages to the publisher) and never calls back into the engine.
type engineOutput struct{ b *Bridge }

func (o *engineOutput) SendZCL(dst zcl.IEEE, frame []byte, opt ota.SendOptions) {
	b := o.b
	d, ok := b.registry.ByIEEE(dst)
	if !ok {
		b.log.Warn().Stringer("ieee", dst).Msg("frame for a device the registry does not know dropped")
		return
	}
	ep := d.Endpoint
	if ep == 0 {
		ep = 1
	}
	if b.log.Debug().Enabled() {
		b.log.Debug().Stringer("ieee", dst).Str("nwk", hex16(d.NWK)).Hex("zcl", frame).Msg("frame out")
	}
	b.send.enqueue(dst, ncp.Frame{DstShort: d.NWK, DstEndpoint: ep, SrcEndpoint: ncp.CoordinatorEndpoint,
		ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, APSAck: opt.APSAck, Payload: bytes.Clone(frame)})
}

func (o *engineOutput) BroadcastZCL(frame []byte) {
	o.b.send.enqueue(0, ncp.Frame{DstShort: ncp.BroadcastRxOnWhenIdle, DstEndpoint: 0xFF, SrcEndpoint: ncp.CoordinatorEndpoint,
		ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, Radius: 30, Payload: bytes.Clone(frame)})
}

func (o *engineOutput) Event(ev ota.Event) {
	b := o.b
	d, ok := b.registry.ByIEEE(ev.IEEE)
	if !ok {
		d = Device{IEEE: ev.IEEE, FriendlyName: ev.IEEE.String()}
	}
	b.publishEvent(ev.Type, d, ev.Data)
	if ev.Type == ota.EventAvailable || ev.Type == ota.EventApprovalNeeded {
		if id, _ := ev.Data["image"].(string); id != "" {
			b.prefetch(id)
		}
	}
}

// prefetch downloads an image from a remote index in the background once a device needs it, so that an
// approval (or the auto policy at the device's next query) finds it ready.
func (b *Bridge) prefetch(id string) {
	img := b.store.Get(id)
	if img == nil || img.Local() {
		return
	}
	b.mu.Lock()
	if b.fetching[id] || b.ctx == nil {
		b.mu.Unlock()
		return
	}
	b.fetching[id] = true
	b.mu.Unlock()
	b.goRun(func() {
		defer func() {
			b.mu.Lock()
			delete(b.fetching, id)
			b.mu.Unlock()
		}()
		if err := b.store.Ensure(b.ctx, img); err != nil {
			if b.ctx.Err() == nil {
				b.log.Warn().Err(err).Str("image", id).Msg("image download failed")
			}
			return
		}
		b.log.Info().Str("image", id).Msg("image downloaded")
		b.publishImages()
	})
}

func (o *engineOutput) State(st ota.DeviceState) {
	b := o.b
	d, ok := b.registry.ByIEEE(st.IEEE)
	if !ok {
		return
	}
	b.publishStateOf(d, st)
	b.mu.Lock()
	changed := b.otaStates[st.IEEE] != st.State
	b.otaStates[st.IEEE] = st.State
	b.mu.Unlock()
	if changed { // bridge/info counts transfers; bridge/devices is not re-published for a state (see Registry)
		b.markInfoDirty()
	}
}

func (o *engineOutput) Interview(dst zcl.IEEE) { o.b.interviewAsync(dst) }

func (o *engineOutput) DurableChanged() { o.b.saveSoon() }

// publishEvent publishes `<base>/bridge/event` {"type", "data"} with the device's id and friendly name.
func (b *Bridge) publishEvent(typ string, d Device, data map[string]any) {
	if typ == "ota_started" {
		b.share.hadWork.Store(true)
	}
	out := map[string]any{"id": d.IEEE.String(), "friendly_name": d.FriendlyName}
	for k, v := range data {
		out[k] = v
	}
	out["id"] = d.IEEE.String()
	b.pub.event(b.topic("bridge/event"), mustJSON(map[string]any{"type": typ, "data": out}))
}

// otaStatePayload is `<base>/<friendly_name>/ota`: the engine's state plus the names a user reads. Both
// versions are 0x%08x like the update entity's; the display versions are the human-readable ones (the
// index's `version`, else the device's sw_build_id for the installed one, else the same 0x%08x).
type otaStatePayload struct {
	ota.DeviceState
	FriendlyName            string `json:"friendly_name"`
	InstalledVersion        string `json:"installed_version"`
	LatestVersion           string `json:"latest_version"`
	InstalledDisplayVersion string `json:"installed_display_version"`
	LatestDisplayVersion    string `json:"latest_display_version"`
	// The versions of the last update, as 0x%08x like every other version (null before the first one).
	FromVersion *string `json:"from_version"`
	ToVersion   *string `json:"to_version"`
}

func versionPtr(v *uint32) *string {
	if v == nil {
		return nil
	}
	s := ota.VersionString(*v)
	return &s
}

// publishDeviceState publishes the device's update and ota topics from the engine's current state.
func (b *Bridge) publishDeviceState(d Device) {
	st, ok := b.engine.State(d.IEEE)
	if !ok {
		st = ota.DeviceState{IEEE: d.IEEE, State: ota.StateIdle}
	}
	b.publishStateOf(d, st)
}

func (b *Bridge) publishStateOf(d Device, st ota.DeviceState) {
	b.mu.Lock()
	b.names[d.IEEE] = d.FriendlyName
	b.mu.Unlock()
	var installedImage *ota.Image
	if offeredImage(st) == nil && d.HasImageID {
		if v, ok := installedFileVersion(d, st); ok {
			installedImage = b.store.ByImageID(zcl.ImageID{ManufacturerCode: d.ManufacturerCode, ImageType: d.ImageType, FileVersion: v})
		}
	}
	us, names := deviceUpdateState(d, st, installedImage)
	if us.InstalledVersion != "" {
		b.pub.retained(b.topic(d.FriendlyName+"/update"), discovery.UpdatePayload(us))
	}
	b.pub.retained(b.topic(d.FriendlyName+"/ota"), mustJSON(otaStatePayload{DeviceState: roundedState(st),
		FriendlyName: d.FriendlyName, InstalledVersion: us.InstalledVersion, LatestVersion: names.latest,
		InstalledDisplayVersion: names.installedDisplay, LatestDisplayVersion: names.latestDisplay,
		FromVersion: versionPtr(st.FromVersion), ToVersion: versionPtr(st.ToVersion)}))
}

// offeredImage is the image a device's state is about: the one available or pending approval, the target
// of an approved or running update, or, after a failure, the one that failed.
func offeredImage(st ota.DeviceState) *ota.ImageRef {
	switch st.State {
	case ota.StateAvailable, ota.StateApprovalPending:
		return st.Available
	case ota.StateScheduled, ota.StateQueued, ota.StateUpdating, ota.StateWaitingReboot, ota.StateVerifying:
		return st.Target
	case ota.StateFailed:
		if st.Available != nil {
			return st.Available
		}
		return st.Target
	}
	return nil
}

// installedFileVersion is the device's installed file version: the engine's (newest) or the registry's.
func installedFileVersion(d Device, st ota.DeviceState) (uint32, bool) {
	if st.InstalledVersion != nil {
		return *st.InstalledVersion, true
	}
	return d.FileVersion, d.FileVersionKnown
}

// versionNames are the versions of `<name>/ota`: latest as 0x%08x, and both human-readable.
type versionNames struct {
	latest, installedDisplay, latestDisplay string
}

// deviceUpdateState builds a device's update entity state from its OTA state. installedImage is the image
// of the installed version when the store has it (nil otherwise): after an upgrade it keeps the release
// summary and URL of what the device now runs.
//
// Both versions are ota.VersionString (0x%08x): AwesomeVersion, which Home Assistant uses to decide whether
// latest is newer, orders two such strings by value, while a hex string against a dotted version
// ("0x01000000" against "1.1.0") compares the hex value with the first dotted number and says "not newer".
// The human-readable versions go where HA shows text: the title names the latest one, the release summary
// starts with "installed → latest" while an update is pending.
func deviceUpdateState(d Device, st ota.DeviceState, installedImage *ota.Image) (discovery.UpdateState, versionNames) {
	var us discovery.UpdateState
	var names versionNames
	v, known := installedFileVersion(d, st)
	if !known {
		return us, names
	}
	us.InstalledVersion = ota.VersionString(v)
	names.installedDisplay = us.InstalledVersion
	switch {
	case installedImage != nil && installedImage.Meta.Version != "":
		names.installedDisplay = installedImage.Meta.Version
	case d.SWBuildID != "" && v == d.FileVersion:
		names.installedDisplay = d.SWBuildID
	}
	notes, url := "", ""
	names.latest, names.latestDisplay = us.InstalledVersion, names.installedDisplay
	if ref := offeredImage(st); ref != nil {
		us.LatestVersion = ota.VersionString(ref.FileVersion)
		names.latest, names.latestDisplay = us.LatestVersion, ref.Version
		notes, url = ref.ReleaseNotes, ref.ReleaseURL
	} else if installedImage != nil {
		notes, url = installedImage.Meta.ReleaseNotes, installedImage.Meta.ReleaseURL
	}
	if strings.HasPrefix(notes, "http://") || strings.HasPrefix(notes, "https://") {
		if url == "" {
			url = notes
		}
		notes = ""
	}
	us.ReleaseURL = url
	summary := names.latestDisplay
	if names.latest != us.InstalledVersion {
		summary = names.installedDisplay + " → " + names.latestDisplay
	}
	if notes != "" {
		summary += ": " + notes
	}
	us.ReleaseSummary = summary
	if d.Model != "" {
		us.Title = strings.TrimSpace(d.Manufacturer+" "+d.Model+" firmware") + " " + names.latestDisplay
	}
	switch st.State {
	case ota.StateUpdating:
		us.InProgress = true
		us.Percentage = st.Progress
		if us.Percentage == nil {
			zero := 0.0
			us.Percentage = &zero
		}
	case ota.StateQueued, ota.StateWaitingReboot, ota.StateVerifying:
		us.InProgress = true // indeterminate progress in HA
	}
	return us, names
}

// roundedState rounds the numbers of `<name>/ota` as Home Assistant shows them: progress to 2 decimals (as
// the update entity's update_percentage), rate to whole B/s, remaining to whole seconds.
func roundedState(st ota.DeviceState) ota.DeviceState {
	if st.Progress != nil {
		p := discovery.RoundPercentage(*st.Progress)
		st.Progress = &p
	}
	st.Rate = math.Round(st.Rate)
	if st.Remaining != nil {
		r := math.Round(*st.Remaining)
		st.Remaining = &r
	}
	return st
}

// DevicesInterval is the shortest time between two publishes of `<base>/bridge/devices`.
const DevicesInterval = time.Second

// devicesChanged asks for `<base>/bridge/devices` to be re-published (coalesced: at most once per
// DevicesInterval); callers may hold the engine's or the registry's lock.
func (b *Bridge) devicesChanged() {
	b.devicesPub.trigger()
}

func (b *Bridge) publishDevices() {
	devices := b.registry.All()
	list := make([]DeviceJSON, 0, len(devices))
	for _, d := range devices {
		j := d.JSON()
		if st, ok := b.engine.State(d.IEEE); ok {
			j.OTAState = st.State
		}
		list = append(list, j)
	}
	b.pub.retained(b.topic("bridge/devices"), mustJSON(list))
	b.publishWebImages() // which devices each image matches
}

func (b *Bridge) publishImages() {
	if b.pub == nil {
		return
	}
	imgs := b.store.Images()
	list := make([]ota.ImageInfo, 0, len(imgs))
	for _, img := range imgs {
		list = append(list, img.Info())
	}
	b.pub.retained(b.topic("bridge/images"), mustJSON(list))
	b.publishWebImages()
}

// publishInfo publishes `<base>/bridge/info` when it changed (or always with force).
func (b *Bridge) publishInfo(force bool) {
	active, queued := b.engine.Counts()
	b.mu.Lock()
	permit := !b.permitUntil.IsZero() && time.Now().Before(b.permitUntil)
	var permitEnd any
	if permit {
		permitEnd = b.permitUntil.UTC().Format(time.RFC3339)
	}
	info := map[string]any{
		"version":          b.opts.Version,
		"radio":            b.info,
		"radio_state":      b.radioState,
		"permit_join":      permit,
		"permit_join_end":  permitEnd,
		"active_transfers": active,
		"queue_length":     queued,
		"devices":          b.registry.Len(),
		"images":           len(b.store.Images()),
		"config":           b.cfg.Summary(),
	}
	payload := mustJSON(info)
	same := bytes.Equal(payload, b.lastInfo)
	b.lastInfo = payload
	b.mu.Unlock()
	if same && !force {
		return
	}
	b.pub.retained(b.topic("bridge/info"), payload)
}

// publishDeviceDiscovery publishes the device's Home Assistant discovery config.
func (b *Bridge) publishDeviceDiscovery(d Device) {
	if !b.cfg.MQTT.Discovery || !d.FileVersionKnown && !d.HasImageID {
		return
	}
	dd := discovery.Device{IEEE: d.IEEE.String(), FriendlyName: d.FriendlyName, Manufacturer: d.Manufacturer,
		Model: d.Model, SWBuildID: d.SWBuildID}
	if d.HasHardwareVersion {
		dd.HardwareVersion = strconv.Itoa(int(d.HardwareVersion))
	}
	m, err := b.disc.DeviceConfig(dd)
	if err != nil {
		b.log.Warn().Err(err).Stringer("ieee", d.IEEE).Msg("discovery config")
		return
	}
	b.pub.retained(m.Topic, m.Payload)
}

// publishAll publishes every retained topic: info, devices, images, discovery and every device's state.
func (b *Bridge) publishAll() {
	if b.pub == nil {
		return
	}
	b.publishInfo(true)
	b.publishImages()
	b.devicesChanged()
	if b.cfg.MQTT.Discovery {
		if m, err := b.disc.BridgeConfig(); err == nil {
			b.pub.retained(m.Topic, m.Payload)
		} else {
			b.log.Warn().Err(err).Msg("bridge discovery config")
		}
	}
	for _, d := range b.registry.All() {
		b.publishDeviceDiscovery(d)
		b.publishDeviceState(d)
	}
}
