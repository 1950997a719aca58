package ota

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/zcl"
)

// State is a device's OTA state as published on `<base>/<friendly_name>/ota`.
type State string

// The OTA states of a device, as published on `<base>/<friendly_name>/ota` (README.md "MQTT topics").
const (
	StateIdle            State = "idle"             // nothing to do: up to date, or no image known
	StateAvailable       State = "available"        // an image newer than the installed version exists
	StateApprovalPending State = "approval_pending" // the device asked for an image; waiting for approve/reject
	StateScheduled       State = "scheduled"        // approved; served on the device's next own query
	StateQueued          State = "queued"           // approved; waiting for a transfer slot
	StateUpdating        State = "updating"         // the transfer runs
	StateWaitingReboot   State = "waiting_reboot"   // Upgrade End Response sent; the device applies the image
	StateVerifying       State = "verifying"        // the device is back; its version is being read
	StateFailed          State = "failed"           // the last update failed; LastError says why
)

// States lists every state, in lifecycle order (the HA sensor's options).
var States = []State{StateIdle, StateAvailable, StateApprovalPending, StateScheduled, StateQueued,
	StateUpdating, StateWaitingReboot, StateVerifying, StateFailed}

// Valid reports whether s is one of States.
func (s State) Valid() bool { return slices.Contains(States, s) }

// Event types published on `<base>/bridge/event`.
const (
	EventQuery          = "ota_query"
	EventAvailable      = "ota_available"
	EventApprovalNeeded = "approval_needed"
	EventStarted        = "ota_started"
	EventFinished       = "ota_finished"
	EventFailed         = "ota_failed"
	EventAborted        = "ota_aborted"
)

// Event is something automations react to.
type Event struct {
	Type string
	IEEE zcl.IEEE
	Data map[string]any
}

// SendOptions qualify an outgoing frame.
type SendOptions struct {
	// APSAck asks for an APS acknowledgement. Block responses of a page stream go without it, like the
	// Silicon Labs server (reference/zcl-ota.md §2.6).
	APSAck bool
}

// Output is what the engine's owner provides: the way out for frames, events and state. The engine calls
// it while holding its own lock, so an implementation must not block for long and must never call back
// into the engine synchronously; frame bytes are only valid during the call (copy them to keep them).
type Output interface {
	// SendZCL sends one ZCL frame of the OTA cluster to the device's OTA endpoint.
	SendZCL(dst zcl.IEEE, frame []byte, opt SendOptions)
	// BroadcastZCL sends one ZCL frame of the OTA cluster to every device (broadcast Image Notify).
	BroadcastZCL(frame []byte)
	// Event reports an event for `<base>/bridge/event`.
	Event(ev Event)
	// State reports a device's new OTA state (on every change; progress at most every ProgressInterval).
	State(st DeviceState)
	// Interview asks the owner to read the device's Basic and OTA attributes again and call SetDevice.
	Interview(dst zcl.IEEE)
	// DurableChanged says Snapshot would now return something new worth saving.
	DurableChanged()
}

// Catalog is the engine's view of the image store.
type Catalog interface {
	Match(dev DeviceInfo, q MatchQuery) *Image
	ByImageID(id zcl.ImageID) *Image
	Get(id string) *Image
}

// OTA frames have 3 bytes of ZCL header and 14 bytes of Image Block Response fields before the data.
const blockResponseOverhead = 17

// readAhead is how much of an image a session reads at once: one ReadAt serves many blocks.
const readAhead = 4096

// Engine is the OTA Upgrade Server. All methods are safe for concurrent use.
type Engine struct {
	cfg EngineConfig
	cat Catalog
	out Output
	clk clock.Clock
	// wall tells the time users see (changed_at, started_at, finished_at and durations): the wall clock in
	// the bridge even when clk is the simulated network's virtual clock (SetWallClock); clk by default.
	wall  func() time.Time
	log   zerolog.Logger
	quirk map[uint16]int

	mu            sync.Mutex
	devices       map[zcl.IEEE]*device
	maxAPSPayload int
	maxFragmented int // largest APS payload the radio sends fragmented (0: it cannot)
	tsn           uint8
	scratch       []byte
	active        int
	ticker        clock.Timer
	pumpTimer     clock.Timer
	pumpAt        time.Time
	closed        bool

	windows   Windows
	aimd      *aimd // nil unless max_concurrent: auto
	campaigns map[string]*campaign
}

// blockSizeQuirks are manufacturers whose clients need smaller blocks than they ask for
// (reference/zcl-ota.md §2.5: zigbee-herdsman and deCONZ both cap these at 40 bytes).
var blockSizeQuirks = map[uint16]int{
	0x117A: 40, // Insta
	0x1135: 40, // Dresden Elektronik
	0x112E: 40, // Busch-Jaeger
}

// DefaultEngineConfig returns the engine defaults (documented in config.yaml).
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{
		Approval:         "manual",
		MaxConcurrent:    2,
		MaxBlockSize:     223,
		Fragmentation:    FragmentationConfig{Failures: 2},
		MinPageSpacing:   20 * time.Millisecond,
		NotifyTimeout:    30 * time.Second,
		NotifyAttempts:   3,
		StallTimeout:     2 * time.Minute,
		Retries:          3,
		RetryBackoff:     time.Minute,
		QueueWait:        30 * time.Second,
		VerifyTimeout:    5 * time.Minute,
		VerifyAttempts:   3,
		ProgressInterval: time.Second,
		MinBattery:       50,
		Adaptive:         AdaptiveConfig{}.withDefaults(),
		WindowEnd:        "finish",
	}
}

// withDefaults fills zero values from DefaultEngineConfig.
func (c EngineConfig) withDefaults() EngineConfig {
	d := DefaultEngineConfig()
	if c.Approval == "" {
		c.Approval = d.Approval
	}
	if c.MaxConcurrent == 0 || c.MaxConcurrent < ConcurrencyAuto {
		c.MaxConcurrent = d.MaxConcurrent
	}
	c.Adaptive = c.Adaptive.withDefaults()
	if c.WindowEnd == "" {
		c.WindowEnd = "finish"
	}
	if c.MaxBlockSize <= 0 {
		c.MaxBlockSize = d.MaxBlockSize
	}
	if c.MinPageSpacing <= 0 {
		c.MinPageSpacing = d.MinPageSpacing
	}
	if c.NotifyTimeout <= 0 {
		c.NotifyTimeout = d.NotifyTimeout
	}
	if c.NotifyAttempts <= 0 {
		c.NotifyAttempts = d.NotifyAttempts
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = d.StallTimeout
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = d.RetryBackoff
	}
	if c.QueueWait <= 0 {
		c.QueueWait = d.QueueWait
	}
	if c.VerifyTimeout <= 0 {
		c.VerifyTimeout = d.VerifyTimeout
	}
	if c.VerifyAttempts <= 0 {
		c.VerifyAttempts = d.VerifyAttempts
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = d.ProgressInterval
	}
	if c.Fragmentation.Failures <= 0 {
		c.Fragmentation.Failures = d.Fragmentation.Failures
	}
	return c
}

// Validate checks the configuration; errors name the key under `ota`.
func (c EngineConfig) Validate() error {
	switch c.Approval {
	case "", "manual", "auto", "deny":
	default:
		return fmt.Errorf("ota.approval: %q is not allowed (want manual, auto or deny)", c.Approval)
	}
	if (c.MaxConcurrent < 0 && c.MaxConcurrent != ConcurrencyAuto) || c.MaxConcurrent > 64 {
		return fmt.Errorf("ota.max_concurrent: %d is out of range (1..64, or auto)", c.MaxConcurrent)
	}
	if err := c.Adaptive.validate(); err != nil {
		return err
	}
	if _, err := CompileWindows(c.Window, c.WindowTimezone); err != nil {
		return err
	}
	switch c.WindowEnd {
	case "", "finish", "pause":
	default:
		return fmt.Errorf("ota.window_end: %q is not allowed (want finish or pause)", c.WindowEnd)
	}
	if c.MinBattery < 0 || c.MinBattery > 100 {
		return fmt.Errorf("ota.min_battery: %d is out of range (0..100 %%)", c.MinBattery)
	}
	if c.MaxBlockSize < 0 || c.MaxBlockSize > 255 {
		return fmt.Errorf("ota.max_block_size: %d is out of range (1..255)", c.MaxBlockSize)
	}
	if c.UpgradeDelay < 0 || c.UpgradeDelay > 0xFFFFFFFE*time.Second {
		return fmt.Errorf("ota.upgrade_delay: %s is out of range", c.UpgradeDelay)
	}
	if c.MinimumBlockPeriod < 0 || c.MinimumBlockPeriod > 0xFFFE*time.Millisecond {
		return fmt.Errorf("ota.minimum_block_period: %s is out of range (0..65.534s)", c.MinimumBlockPeriod)
	}
	if c.Retries < 0 {
		return fmt.Errorf("ota.retries: %d must not be negative", c.Retries)
	}
	return nil
}

// NewEngine makes an engine. maxAPSPayload is the radio's unfragmented APS payload limit (0: unknown).
func NewEngine(cfg EngineConfig, cat Catalog, out Output, clk clock.Clock, log zerolog.Logger) *Engine {
	cfg = cfg.withDefaults()
	windows, err := CompileWindows(cfg.Window, cfg.WindowTimezone)
	if err != nil {
		// Validate reports this to the user before an engine is made; an engine never runs half-configured.
		log.Error().Err(err).Msg("maintenance windows ignored")
	}
	var ctl *aimd
	if cfg.MaxConcurrent == ConcurrencyAuto {
		ctl = newAIMD(cfg.Adaptive, clk.Now())
	}
	return &Engine{
		windows:   windows,
		aimd:      ctl,
		campaigns: make(map[string]*campaign),
		cfg:       cfg,
		cat:       cat,
		out:       out,
		clk:       clk,
		wall:      clk.Now,
		log:       log.With().Str("component", "ota").Logger(),
		quirk:     blockSizeQuirks,
		devices:   make(map[zcl.IEEE]*device),
		scratch:   make([]byte, 0, 512),
	}
}

// Config returns the effective configuration (defaults filled in).
func (e *Engine) Config() EngineConfig { return e.cfg }

// SetWallClock sets the clock of the timestamps users see (changed_at, started_at, finished_at, durations);
// timers, rates and the queue stay on the engine's clock. Call it before Restore.
func (e *Engine) SetWallClock(now func() time.Time) {
	e.mu.Lock()
	e.wall = now
	e.mu.Unlock()
}

// since is the non-negative wall time from t to now (the wall clock may have been set back, or t may come
// from a state file written by a machine with another clock).
func (e *Engine) since(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return max(e.wall().Sub(t), 0)
}

// SetMaxAPSPayload tells the engine the radio's unfragmented APS payload limit; blocks are capped at it
// minus the 17 bytes of ZCL and block-response overhead, unless they go out fragmented
// (SetMaxFragmentedPayload).
func (e *Engine) SetMaxAPSPayload(n int) {
	e.mu.Lock()
	e.maxAPSPayload = n
	e.mu.Unlock()
}

// SetMaxFragmentedPayload tells the engine the largest APS payload the radio sends APS-fragmented (0: the
// radio cannot fragment). Clients that ask for larger blocks than the unfragmented limit get them up to
// this limit minus 17 (see FragmentationConfig).
func (e *Engine) SetMaxFragmentedPayload(n int) {
	e.mu.Lock()
	e.maxFragmented = n
	e.mu.Unlock()
}

// Close stops the engine's timers. Later calls do nothing.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if e.ticker != nil {
		e.ticker.Stop()
		e.ticker = nil
	}
	if e.pumpTimer != nil {
		e.pumpTimer.Stop()
		e.pumpTimer = nil
	}
	for _, d := range e.devices {
		d.stopTimers()
		if d.session != nil {
			d.session.stopPage()
		}
	}
}

// device is the engine's record of one OTA client.
type device struct {
	info  DeviceInfo
	state State

	available *Image // the best image for the device, when newer than installed
	pending   *Image // the image a device asked for that awaits approval
	target    *Image // the approved image: scheduled, queued, being served, being verified
	approved  bool   // target may be served on the device's query
	rejected  map[zcl.ImageID]bool

	session *session
	slot    bool // holds one of the transfer slots (capLocked)
	queued  time.Time
	notBef  time.Time // queued for a retry: not before this time
	retries int

	notifyTimer clock.Timer
	notifies    int
	verifyTimer clock.Timer
	verifies    int

	from, to uint32
	// awaited is the image of an approved update restored from the state file that the store does not
	// have (yet): the folder may not be mounted, the cache unwritable. The approval is kept; Refresh picks
	// the image up when it is back. requeue: the update was queued or running, so it queues again then.
	awaited    *DurableImage
	requeue    bool
	lastError  string
	startedAt  time.Time
	finishedAt time.Time
	changedAt  time.Time

	// now overrides the maintenance windows for this update; campaign names the campaign it belongs to.
	now      bool
	campaign string
	// battery is the last Power Configuration reading in percent (batteryKnown), held under MinBattery.
	battery      float64
	batteryKnown bool

	publishedAt time.Time
	progressed  bool // progress changed since the last publish
	toldPeriod  bool // the client was told the configured minimum block period

	// noFragments: the device failed with fragmented blocks and gets unfragmented ones for good (durable).
	noFragments bool
}

func (d *device) stopTimers() {
	if d.notifyTimer != nil {
		d.notifyTimer.Stop()
		d.notifyTimer = nil
	}
	if d.verifyTimer != nil {
		d.verifyTimer.Stop()
		d.verifyTimer = nil
	}
}

// deviceLocked returns the record for ieee, creating it.
func (e *Engine) deviceLocked(ieee zcl.IEEE) *device {
	d := e.devices[ieee]
	if d == nil {
		d = &device{info: DeviceInfo{IEEE: ieee}, state: StateIdle, changedAt: e.wall()}
		e.devices[ieee] = d
	}
	return d
}

// SetDevice tells the engine what the bridge's interview found. A device that is waiting for its reboot or
// being verified is judged by the file version reported here.
func (e *Engine) SetDevice(info DeviceInfo) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.deviceLocked(info.IEEE)
	old := d.info
	d.info = info
	if !info.FileVersionKnown && old.FileVersionKnown {
		d.info.FileVersion, d.info.FileVersionKnown = old.FileVersion, true
	}
	if !info.HasHardwareVersion && old.HasHardwareVersion {
		d.info.HardwareVersion, d.info.HasHardwareVersion = old.HardwareVersion, true
	}
	if d.info.FileVersionKnown {
		e.versionReportedLocked(d, d.state == StateVerifying)
	}
	if d.state == StateIdle || d.state == StateAvailable {
		e.refreshAvailableLocked(d)
	}
}

// DeviceAnnounced tells the engine the device (re)joined or rebooted: a device waiting for its reboot is now
// verified by reading its version. A device whose transfer holds a slot (running, or restored after a bridge
// restart) and announces itself has most likely rebooted and lost its download; many clients (the ESP one)
// only ask again after an Image Notify, so it gets one at once instead of after the stall timeout. A client
// that is still downloading ignores it and keeps asking for blocks.
func (e *Engine) DeviceAnnounced(ieee zcl.IEEE) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil || e.closed {
		return
	}
	switch d.state {
	case StateWaitingReboot:
		d.verifies = 0
		e.startVerifyLocked(d)
	case StateUpdating:
		if !d.slot || !d.approved || d.target == nil {
			return
		}
		e.log.Info().Stringer("ieee", ieee).Str("image", d.target.ID).
			Msg("device announced itself during its transfer: Image Notify so that it asks again")
		d.notifies = 0
		e.sendNotifyLocked(d)
	}
}

// RemoveDevice forgets a device (it left the network). A running transfer frees its slot.
func (e *Engine) RemoveDevice(ieee zcl.IEEE) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil {
		return
	}
	d.stopTimers()
	if d.session != nil {
		d.session.stopPage()
	}
	e.releaseSlotLocked(d)
	e.campaignResultLocked(d, ResultFailed, "the device left the network")
	delete(e.devices, ieee)
	e.out.DurableChanged()
	e.pumpLocked()
}

// DeviceState is a device's full OTA state, published on `<base>/<friendly_name>/ota`.
type DeviceState struct {
	IEEE             zcl.IEEE  `json:"ieee"`
	State            State     `json:"state"`
	InstalledVersion *uint32   `json:"installed_version"`
	Available        *ImageRef `json:"available"`
	Target           *ImageRef `json:"target"`
	Progress         *float64  `json:"progress"`  // percent, while a transfer runs or waits
	Bytes            uint32    `json:"bytes"`     // bytes of the image served so far (high-water mark)
	Size             uint32    `json:"size"`      // image size
	Rate             float64   `json:"rate"`      // B/s, moving average
	Remaining        *float64  `json:"remaining"` // seconds, estimated
	FromVersion      *uint32   `json:"from_version"`
	ToVersion        *uint32   `json:"to_version"`
	QueuePosition    int       `json:"queue_position,omitempty"`
	// Hold says why a queued or scheduled update does not start yet ("outside the maintenance window",
	// "battery 23 % < 50 %", "campaign night paused"); ETA is when it is expected to start (a window's start).
	Hold       string     `json:"hold,omitempty"`
	ETA        *time.Time `json:"eta,omitempty"`
	Battery    *float64   `json:"battery,omitempty"` // percent, last reading
	Campaign   string     `json:"campaign,omitempty"`
	Retries    int        `json:"retries,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	ChangedAt  time.Time  `json:"changed_at"`
}

// ImageRef names an image in a device state.
type ImageRef struct {
	ID           string `json:"id"`
	FileVersion  uint32 `json:"file_version"`
	Version      string `json:"version"` // human-readable when the index gives one, else 0x%08x
	Size         uint32 `json:"size"`
	ReleaseNotes string `json:"release_notes,omitempty"`
	ReleaseURL   string `json:"release_url,omitempty"`
	HeaderString string `json:"header_string,omitempty"`
}

// VersionString formats a file version the way otabridge publishes it everywhere (the update entity, the
// ota topic, events and responses): "0x" and 8 lower-case hex digits, the format ZHA uses. Home Assistant's
// AwesomeVersion reads it as a HexVer and orders any two such strings by their numeric value.
func VersionString(v uint32) string { return fmt.Sprintf("0x%08x", v) }

func imageRef(img *Image) *ImageRef {
	if img == nil {
		return nil
	}
	return &ImageRef{ID: img.ID, FileVersion: img.Header.FileVersion, Version: img.DisplayVersion(), Size: img.Size(),
		ReleaseNotes: img.Meta.ReleaseNotes, ReleaseURL: img.Meta.ReleaseURL,
		HeaderString: img.Header.HeaderStringText()}
}

// State returns a device's current OTA state; ok is false for a device the engine has never seen.
func (e *Engine) State(ieee zcl.IEEE) (DeviceState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.devices[ieee]
	if d == nil {
		return DeviceState{}, false
	}
	return e.snapshotLocked(d), true
}

// States returns every device's state, ordered by IEEE.
func (e *Engine) States() []DeviceState {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]DeviceState, 0, len(e.devices))
	for _, d := range e.devices {
		out = append(out, e.snapshotLocked(d))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IEEE < out[j].IEEE })
	return out
}

// Counts returns the number of running transfers and of devices waiting in the queue.
func (e *Engine) Counts() (active, queued int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.devices {
		if d.state == StateQueued {
			queued++
		}
	}
	return e.active, queued
}

func (e *Engine) snapshotLocked(d *device) DeviceState {
	st := DeviceState{IEEE: d.info.IEEE, State: d.state, LastError: d.lastError, Retries: d.retries,
		ChangedAt: d.changedAt, Available: imageRef(d.available), Target: imageRef(d.target)}
	if d.info.FileVersionKnown {
		v := d.info.FileVersion
		st.InstalledVersion = &v
	}
	if d.state == StateApprovalPending {
		st.Available = imageRef(d.pending)
	}
	if !d.startedAt.IsZero() {
		t := d.startedAt
		st.StartedAt = &t
		from, to := d.from, d.to
		st.FromVersion, st.ToVersion = &from, &to
	}
	if !d.finishedAt.IsZero() {
		t := d.finishedAt
		st.FinishedAt = &t
	}
	if s := d.session; s != nil && (d.state == StateUpdating || d.state == StateQueued) {
		st.Bytes, st.Size = s.highWater, s.size
		p := 0.0
		if s.size > 0 {
			p = float64(s.highWater) * 100 / float64(s.size)
		}
		st.Progress = &p
		st.Rate = s.rate
		if s.rate > 0 {
			r := float64(s.size-s.highWater) / s.rate
			st.Remaining = &r
		}
	} else if d.target != nil && (d.state == StateQueued || d.state == StateScheduled) {
		st.Size = d.target.Size()
	}
	if d.state == StateQueued {
		st.QueuePosition = e.queuePositionLocked(d)
	}
	if d.batteryKnown {
		b := d.battery
		st.Battery = &b
	}
	st.Campaign = d.campaign
	if d.approved && (d.state == StateQueued || d.state == StateScheduled) {
		if h := e.holdLocked(d); h.reason != "" {
			st.Hold = h.reason
			if !h.until.IsZero() {
				t := e.wallAt(h.until)
				st.ETA = &t
			}
		}
	}
	return st
}

// setStateLocked changes a device's state and publishes it.
func (e *Engine) setStateLocked(d *device, s State) {
	if d.state != s {
		ev := e.log.Info().Stringer("ieee", d.info.IEEE).Str("from", string(d.state)).Str("to", string(s))
		if d.lastError != "" {
			ev = ev.Str("error", d.lastError)
		}
		ev.Msg("OTA state")
		d.state = s
		d.changedAt = e.wall()
		e.out.DurableChanged()
	}
	e.publishLocked(d)
}

func (e *Engine) publishLocked(d *device) {
	d.publishedAt = e.clk.Now()
	d.progressed = false
	e.out.State(e.snapshotLocked(d))
}

func (e *Engine) eventLocked(typ string, d *device, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["id"] = d.info.IEEE.String()
	e.out.Event(Event{Type: typ, IEEE: d.info.IEEE, Data: data})
}

func (e *Engine) nextTSN() uint8 {
	e.tsn++
	return e.tsn
}
