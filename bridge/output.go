package bridge

import (
	"bytes"
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
	if ev.IEEE == 0 {
		b.campaignEvent(ev)
		return
	}
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
	out := map[string]any{"id": d.IEEE.String(), "friendly_name": d.FriendlyName}
	for k, v := range data {
		out[k] = v
	}
	out["id"] = d.IEEE.String()
	b.pub.event(b.topic("bridge/event"), mustJSON(map[string]any{"type": typ, "data": out}))
}

// otaStatePayload is `<base>/<friendly_name>/ota`: the engine's state plus the names a user reads.
type otaStatePayload struct {
	ota.DeviceState
	FriendlyName     string `json:"friendly_name"`
	InstalledVersion string `json:"installed_version"`
	LatestVersion    string `json:"latest_version"`
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
	installed := d.InstalledVersion()
	if st.InstalledVersion != nil {
		installed = ota.VersionString(*st.InstalledVersion)
	}
	latest := installed
	var ref *ota.ImageRef
	switch st.State {
	case ota.StateAvailable, ota.StateApprovalPending:
		ref = st.Available
	case ota.StateScheduled, ota.StateQueued, ota.StateUpdating, ota.StateWaitingReboot, ota.StateVerifying:
		ref = st.Target
	case ota.StateFailed:
		ref = st.Available
		if ref == nil {
			ref = st.Target
		}
	}
	us := discovery.UpdateState{InstalledVersion: installed}
	if ref != nil && installed != "" {
		latest = ref.Version
		us.LatestVersion = latest
		if strings.HasPrefix(ref.ReleaseNotes, "http://") || strings.HasPrefix(ref.ReleaseNotes, "https://") {
			us.ReleaseURL = ref.ReleaseNotes
		} else {
			us.ReleaseSummary = ref.ReleaseNotes
		}
		if ref.ReleaseURL != "" {
			us.ReleaseURL = ref.ReleaseURL
		}
	}
	if d.Model != "" {
		us.Title = strings.TrimSpace(d.Manufacturer + " " + d.Model + " firmware")
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
	if installed != "" {
		b.pub.retained(b.topic(d.FriendlyName+"/update"), discovery.UpdatePayload(us))
	}
	b.pub.retained(b.topic(d.FriendlyName+"/ota"), mustJSON(otaStatePayload{DeviceState: st,
		FriendlyName: d.FriendlyName, InstalledVersion: installed, LatestVersion: latest}))
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
	b.publishCampaigns()
}
