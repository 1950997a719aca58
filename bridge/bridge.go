package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/discovery"
	"github.com/otabridge/otabridge/importer"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/netscan"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/web"
	"github.com/otabridge/otabridge/zcl"
)

// Options are what the command line (or a test) adds to the configuration.
type Options struct {
	// Version is otabridge's version, published in bridge/info and discovery.
	Version string
	// Log is the bridge's logger.
	Log zerolog.Logger
	// Radio, when set, replaces the radio the configuration describes (tests). NewRadio, when set, replaces
	// the builder of serial radios (radio.type other than "sim").
	Radio    ncp.Radio
	NewRadio func(cfg RadioConfig, dataDir string, log zerolog.Logger) (ncp.Radio, error)
	// HealthInterval is how often the health file is written (default 30s; <0 disables it).
	HealthInterval time.Duration
	// Import, when set, is applied after the radio started (`otabridge import`), and with ImportOnly the
	// bridge stops right after (no MQTT).
	Import     *importer.Import
	ImportOnly bool
	// SupervisorToken authenticates existing.stop_addon's Supervisor calls (default $SUPERVISOR_TOKEN).
	SupervisorToken string
	// BirthDelay bounds the random delay before re-publishing after Home Assistant's birth message
	// (default 5s).
	BirthDelay time.Duration
}

// StateFile is the name of the bridge's state file in the data directory.
const StateFile = "state.json"

// stateVersion is the version of the state file this bridge writes; it refuses newer ones (written by a
// newer otabridge) rather than dropping what it does not understand.
const stateVersion = 1

// persistedState is the content of the state file.
type persistedState struct {
	Version  int              `json:"version"`
	SavedAt  time.Time        `json:"saved_at"`
	Registry RegistrySnapshot `json:"registry"`
	OTA      ota.Durable      `json:"ota"`
}

// Bridge connects the radio, the OTA engine and MQTT.
type Bridge struct {
	cfg  Config
	opts Options
	log  zerolog.Logger

	clk      clock.Clock
	vclock   *clock.Virtual // the simulated network's clock
	radio    ncp.Radio
	simNet   *sim.Network
	mqtt     *MQTT
	pub      *publisher
	send     *sender
	engine   *ota.Engine
	store    *ota.Store
	registry *Registry
	iv       *Interviewer
	scan     *netscan.Scanner
	saver    *Saver
	disc     discovery.Instance
	health   *Health
	dirLock  *dataDirLock
	hub      *web.Hub    // the web console's live state (nil: console off)
	webSrv   *web.Server // guarded by mu

	ctx context.Context
	wg  sync.WaitGroup
	// runMu guards stopping: once shutdown waits for the bridge's goroutines, goRun starts no more (a
	// WaitGroup must not be added to while it is waited on).
	runMu    sync.Mutex
	stopping bool

	mu            sync.Mutex
	info          ncp.NetworkInfo
	radioState    string
	permitUntil   time.Time
	permitTimer   *time.Timer
	names         map[zcl.IEEE]string // friendly name last used in state topics, to clear them on rename
	otaStates     map[zcl.IEEE]ota.State
	fetching      map[string]bool // images being downloaded by prefetch
	jobs          *radioJobs      // interviews and reads, bounded (radiowork.go)
	requests      atomic.Int32    // requests being handled
	started       bool
	staleScan     bool
	staleConfigs  map[string]bool
	stateCorrupt  *CorruptFile // the state file refused at start, told on bridge/event after connecting
	tsn           uint8
	lastInfo      []byte
	infoDirty     chan struct{}
	devicesPub    *coalescer // publishes bridge/devices at most once a second
	discoveryDone bool
	existing      existing         // a network otabridge did not form (existing.go)
	scanRunning   atomic.Bool      // a network scan runs
	pendingEvents []map[string]any // events from the start, published once MQTT is ready (guarded by mu)
	share         stickShare       // handing the stick over to another add-on (stickshare.go)
	// campaignSensors: campaigns whose HA sensor is published (true while running); batteryReads:
	// devices whose battery is being read (campaign.go).
	campaignSensors map[string]bool
	batteryReads    map[zcl.IEEE]bool
	// campaignLatest holds campaign states not yet published; campaignsPub publishes them at most once a
	// second on the wall clock, however fast the simulated network runs.
	campaignLatest map[string]ota.CampaignStatus
	campaignsPub   *coalescer

	largeRequests chan struct{} // slots of large requests (uploads) in progress; see handleRequest
}

// New validates cfg and prepares a bridge; nothing runs until Run.
func New(cfg Config, opts Options) (*Bridge, error) {
	cfg.FillDerived()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.HealthInterval == 0 {
		opts.HealthInterval = 30 * time.Second
	}
	if opts.BirthDelay <= 0 {
		opts.BirthDelay = 5 * time.Second
	}
	b := &Bridge{cfg: cfg, opts: opts, log: opts.Log, names: map[zcl.IEEE]string{}, otaStates: map[zcl.IEEE]ota.State{}, fetching: map[string]bool{},
		jobs: newRadioJobs(maxRadioJobs), infoDirty: make(chan struct{}, 1), radioState: "starting",
		largeRequests: make(chan struct{}, maxLargeRequests)}
	// bridge/devices is the whole list, retained: it goes out on a listed change (see Registry), at most
	// once a second on the wall clock, however fast the simulated network runs.
	b.devicesPub = newCoalescer(clock.Real{}, DevicesInterval, b.publishDevices)
	b.campaignsPub = newCoalescer(clock.Real{}, DevicesInterval, b.flushCampaigns)
	b.disc = discovery.Instance{BaseTopic: cfg.MQTT.BaseTopic, DiscoveryPrefix: cfg.MQTT.DiscoveryPrefix, Version: opts.Version}
	b.health = NewHealth(b.healthChanged)
	b.health.Down(HealthMQTT, "not connected yet")
	b.health.Down(HealthRadio, "not started yet")
	return b, nil
}

func (b *Bridge) topic(suffix string) string { return b.cfg.MQTT.BaseTopic + "/" + suffix }

func hex16(v uint16) string { return fmt.Sprintf("0x%04x", v) }

// Run starts everything and serves until ctx ends; then it stops in order (engine, radio, state file,
// MQTT with the offline state) and returns nil. An error means the bridge could not start.
func (b *Bridge) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.ctx = ctx
	if err := os.MkdirAll(b.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data directory %s: %w", b.cfg.DataDir, err)
	}
	lock, err := lockDataDir(b.cfg.DataDir)
	if err != nil {
		return err
	}
	b.dirLock = lock
	defer lock.release()
	var state persistedState
	statePath := filepath.Join(b.cfg.DataDir, StateFile)
	_, corrupt, err := LoadJSONStrict(statePath, &state, state.check, b.log)
	if err != nil {
		b.log.Error().Err(err).Msg("state file unreadable: starting empty")
	}
	b.stateCorrupt = corrupt

	// Images.
	storeCfg := b.cfg.Images
	store, err := ota.NewStore(storeCfg, b.log.With().Str("component", "images").Logger())
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	b.store = store
	defer store.Close()
	if err := store.Load(ctx); err != nil {
		b.log.Warn().Err(err).Msg("loading images")
	}
	// The store logs each refused file itself ("image refused"), once per scan.

	// Radio and clock.
	if err := b.makeRadio(ctx); err != nil {
		return err
	}

	// Registry, interview, engine, persistence.
	b.registry = NewRegistry(clock.Real{}, func(listed bool) {
		b.saveSoon()
		if listed {
			b.devicesChanged()
		}
	})
	// The MQTT client exists (not yet connected) before anything can publish: retained state published
	// before the first connection is held and sent when it comes.
	b.mqtt = NewMQTT(b.cfg.MQTT, b.log)
	b.pub = newPublisher(b.publishNow, b.log.With().Str("component", "publisher").Logger())
	b.startWeb()
	b.send = newSender(b.radio, b.log.With().Str("component", "send").Logger())
	b.iv = NewInterviewer(newLowPrioritySender(b.radio, b.send), b.clk, InterviewConfig{MaxAPSPayload: b.radio.MaxAPSPayload(), NextTSN: b.nextTSN},
		b.log) // NewInterviewer adds its component
	b.scan = netscan.New(b.radio, b.clk, netscan.Config{}, b.log)
	b.existing.resolving, b.existing.failed = map[uint16][]ncp.Incoming{}, map[uint16]time.Time{}
	b.existing.interviewing, b.existing.slots = map[zcl.IEEE]bool{}, make(chan struct{}, foundInterviewSlots)
	b.engine = ota.NewEngine(b.cfg.OTA, store, &engineOutput{b: b}, b.clk, b.log)
	b.engine.SetMaxAPSPayload(b.radio.MaxAPSPayload())
	if f, ok := b.radio.(ncp.Fragmenter); ok {
		b.engine.SetMaxFragmentedPayload(f.MaxFragmentedPayload())
	}
	b.engine.SetWallClock(time.Now)
	b.send.onSent = func(dst zcl.IEEE, st ncp.SendStats, failed bool) { // congestion signals for max_concurrent: auto
		b.engine.SendDone(dst, ota.SendReport{Failed: failed, Attempts: st.Attempts, MACRetries: st.MACRetries,
			CCAFailures: st.CCAFailures, ChannelWait: st.ChannelWait})
	}
	b.saver = NewSaver(SaverConfig{Path: statePath, Snapshot: b.snapshot, Log: b.log})
	restored := b.registry.Restore(state.Registry)
	b.engine.Restore(state.OTA)
	for _, d := range b.registry.All() {
		b.engine.SetDevice(d.EngineInfo())
		b.names[d.IEEE] = d.FriendlyName
	}
	store.OnChange(func() { b.engine.Refresh(); b.publishImages() })
	b.log.Info().Int("devices", restored).Int("ota_records", len(state.OTA.Devices)).Msg("state restored")
	if b.opts.ImportOnly {
		err := b.runImportOnly(ctx)
		cancel()
		b.wg.Wait()
		return err
	}

	// MQTT: connecting runs in the background, so OTA transfers go on while the broker is away.
	b.mqtt.OnConnect(b.onConnect)
	b.mqtt.OnStatus(func(up bool, reason string) {
		if up {
			b.health.Up(HealthMQTT)
		} else {
			b.health.Down(HealthMQTT, reason)
		}
	})
	if err := b.mqtt.SubscribeMessages(b.topic("bridge/request/#"), b.onRequest); err != nil {
		return err
	}
	if b.cfg.MQTT.Discovery {
		if err := b.mqtt.Subscribe(b.cfg.MQTT.DiscoveryPrefix+"/status", b.onHAStatus); err != nil {
			return err
		}
		b.staleConfigs = map[string]bool{}
		b.staleScan = true
		if err := b.mqtt.Subscribe(b.cfg.MQTT.DiscoveryPrefix+"/device/+/config", b.onDiscoveryConfig); err != nil {
			return err
		}
	}
	b.goRun(func() {
		if err := b.mqtt.Connect(ctx); err != nil && ctx.Err() == nil {
			b.log.Error().Err(err).Msg("MQTT connect")
		}
	})

	// Start the radio (after the other add-on let go of the stick).
	if err := b.takeStick(ctx); err != nil {
		b.shutdown()
		return err
	}
	info, err := b.radio.Start(ctx)
	if err != nil {
		b.shutdown()
		return fmt.Errorf("start radio (%s): %w", b.cfg.Radio.Type, err)
	}
	b.mu.Lock()
	b.info, b.radioState, b.started = info, "online", true
	b.mu.Unlock()
	b.health.Up(HealthRadio)
	b.send.start()
	b.log.Info().Str("radio", info.Type).Str("port", info.Port).Str("firmware", info.Firmware).
		Uint8("channel", info.Channel).Str("pan_id", hex16(info.PANID)).Stringer("ieee", info.IEEE).Msg("radio up")
	autoScan := b.loadNetworkRecord(info)
	b.stickHeld()
	if b.cfg.Existing.StopAddon != "" {
		b.goRun(func() { b.watchQueue(2 * time.Second) })
	}
	_ = b.importAtStart(info) // a refused import is told on bridge/event; the bridge runs on
	b.goRun(b.eventLoop)
	b.goRun(b.housekeeping)
	b.goRun(func() { store.Run(ctx) })
	if mc := macCounterOf(b.radio); mc != nil && b.engine.AdaptiveInterval() > 0 {
		b.goRun(func() { b.readMACCounters(ctx, mc, b.engine.AdaptiveInterval()/2, b.engine.MACCounted) })
	}
	b.publishAll()
	b.flushStartEvents()
	if autoScan {
		b.startScan("first start on a network otabridge did not form")
	}

	<-ctx.Done()
	b.shutdown()
	return nil
}

// macCounterOf returns the radio's MAC counters when they are its only MAC-level signal: a radio that
// counts (ncp.MACCounter: EZSP) but cannot tell what each frame cost (ncp.StatsSender: the simulator).
func macCounterOf(radio ncp.Radio) ncp.MACCounter {
	if w, ok := radio.(interface{ Driver() ncp.Radio }); ok {
		radio = w.Driver()
	}
	if _, perFrame := radio.(ncp.StatsSender); perFrame {
		return nil
	}
	mc, _ := radio.(ncp.MACCounter)
	return mc
}

// readMACCounters reads the stick's MAC counters every period until ctx ends and reports them (to
// max_concurrent: auto).
func (b *Bridge) readMACCounters(ctx context.Context, mc ncp.MACCounter, every time.Duration, report func(ota.MACReport)) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		m, err := mc.MACCounters(rctx)
		cancel()
		if err != nil {
			if !failing && ctx.Err() == nil {
				b.log.Warn().Err(err).Msg("reading the stick's MAC counters failed; max_concurrent: auto goes on without them")
			}
			failing = true
			continue
		}
		if failing {
			b.log.Info().Msg("reading the stick's MAC counters again")
		}
		failing = false
		report(ota.MACReport{Frames: m.Unicasts, Retries: m.Retries, CCAFailures: m.CCAFailures})
	}
}

// goRun starts a goroutine the bridge owns; shutdown waits for it. Once shutdown has begun waiting, f
// does not run.
func (b *Bridge) goRun(f func()) {
	b.runMu.Lock()
	defer b.runMu.Unlock()
	if b.stopping {
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
}

func (b *Bridge) shutdown() {
	b.log.Info().Msg("stopping")
	b.stopWeb()
	if b.engine != nil {
		b.engine.Close()
	}
	if b.send != nil {
		b.send.close()
	}
	if b.share.slug != "" {
		b.releaseStick("otabridge stops")
	}
	if b.radio != nil {
		_ = b.radio.Close()
	}
	b.mu.Lock()
	if b.permitTimer != nil {
		b.permitTimer.Stop()
	}
	b.mu.Unlock()
	if b.saver != nil {
		_ = b.saver.Close()
	}
	if b.registry != nil {
		b.devicesPub.close() // a pending device list goes out now
		b.campaignsPub.close()
	}
	if b.pub != nil {
		b.pub.close()
	}
	if b.mqtt != nil {
		_ = b.mqtt.Close()
	}
	b.runMu.Lock()
	b.stopping = true
	b.runMu.Unlock()
	b.wg.Wait()
	b.log.Info().Msg("stopped")
}

// makeRadio builds the configured radio and the clock the engine runs on.
func (b *Bridge) makeRadio(ctx context.Context) error {
	if b.opts.Radio != nil {
		b.radio = b.opts.Radio
		if n, ok := b.opts.Radio.(*sim.Network); ok {
			b.simNet, b.vclock, b.clk = n, n.Clock(), n.Clock()
		} else {
			b.clk = clock.Real{}
		}
		b.wireOracle()
		return nil
	}
	switch b.cfg.Radio.Type {
	case "sim":
		vclk := clock.NewVirtual()
		n, err := sim.New(b.cfg.Radio.Sim, vclk, b.log.With().Str("component", "sim").Logger())
		if err != nil {
			return fmt.Errorf("radio.sim: %w", err)
		}
		b.radio, b.simNet, b.vclock, b.clk = n, n, vclk, vclk
		speed := b.cfg.Radio.SimSpeed
		b.goRun(func() { _ = vclk.Pace(ctx, speed) })
	default:
		newRadio := b.opts.NewRadio
		if newRadio == nil {
			newRadio = newSerialRadio
		}
		r, err := newRadio(b.cfg.Radio, b.cfg.DataDir, b.log.With().Str("component", "radio").Logger())
		if err != nil {
			return fmt.Errorf("radio (%s): %w", b.cfg.Radio.Type, err)
		}
		b.radio, b.clk = r, clock.Real{}
	}
	b.wireOracle()
	return nil
}

// wireOracle lets simulated devices check what they received against the image the bridge served.
func (b *Bridge) wireOracle() {
	if b.simNet == nil {
		return
	}
	store := b.store
	b.simNet.SetImageOracle(func(id zcl.ImageID) ([32]byte, bool) {
		if img := store.ByImageID(id); img != nil {
			return img.SHA256()
		}
		return [32]byte{}, false
	})
}

func (b *Bridge) nextTSN() uint8 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tsn++
	return b.tsn
}

// check refuses a state file this bridge must not load: no version (`{}`, `null`), a version from a newer
// otabridge, an OTA state it does not know.
func (s *persistedState) check() error {
	switch {
	case s.Version == 0:
		return errors.New(`no "version": not an otabridge state file`)
	case s.Version < 0 || s.Version > stateVersion:
		return fmt.Errorf("version %d is not one this otabridge reads (it reads %d; a newer otabridge wrote it?)", s.Version, stateVersion)
	}
	return s.OTA.Check()
}

// publishStateCorrupt tells bridge/event (once, after the first connect) that the state file was refused.
// flushStartEvents publishes the events of the start (an import applied or refused) once MQTT is ready —
// from Run when it is already, else from the first connect — so that they are not dropped as events sent
// while disconnected are.
func (b *Bridge) addStartEvent(ev map[string]any) {
	b.mu.Lock()
	b.pendingEvents = append(b.pendingEvents, ev)
	b.mu.Unlock()
}

func (b *Bridge) flushStartEvents() {
	if b.mqtt == nil || !b.mqtt.Ready() {
		return
	}
	b.mu.Lock()
	evs := b.pendingEvents
	b.pendingEvents = nil
	b.mu.Unlock()
	for _, ev := range evs {
		b.pub.event(b.topic("bridge/event"), mustJSON(ev))
	}
}

func (b *Bridge) publishStateCorrupt() {
	b.mu.Lock()
	c := b.stateCorrupt
	b.stateCorrupt = nil
	b.mu.Unlock()
	if c == nil {
		return
	}
	b.pub.event(b.topic("bridge/event"), mustJSON(map[string]any{"type": "state_corrupt",
		"data": map[string]any{"path": c.Path, "moved_to": c.MovedTo, "reason": c.Reason.Error()}}))
}

func (b *Bridge) snapshot() any {
	return persistedState{Version: stateVersion, SavedAt: time.Now().UTC(), Registry: b.registry.Snapshot(), OTA: b.engine.Snapshot()}
}

func (b *Bridge) saveSoon() {
	if b.saver != nil {
		b.saver.Trigger()
	}
}

// eventLoop handles the radio's events in order.
func (b *Bridge) eventLoop() {
	for ev := range b.radio.Events() {
		b.handleEvent(ev)
	}
}

func (b *Bridge) handleEvent(ev ncp.Event) {
	switch ev.Kind {
	case ncp.EventFrame:
		b.handleFrame(ev.Frame)
	case ncp.EventJoined:
		if ev.IEEE == 0 {
			return
		}
		d, created := b.registry.Seen(ev.IEEE, ev.Short, 0)
		b.log.Info().Stringer("ieee", ev.IEEE).Str("nwk", hex16(ev.Short)).Str("parent", hex16(ev.Parent)).
			Bool("rejoin", ev.Rejoin).Bool("new", created).Msg("device joined")
		b.publishEvent("device_joined", d, nil)
	case ncp.EventAnnounced:
		if ev.IEEE == 0 {
			return
		}
		d, created := b.registry.Announced(ev.IEEE, ev.Short, ev.Capabilities)
		b.log.Info().Stringer("ieee", ev.IEEE).Str("nwk", hex16(ev.Short)).Bool("new", created).
			Bool("sleepy", d.Sleepy).Msg("device announced")
		b.engine.SetDevice(d.EngineInfo())
		b.engine.DeviceAnnounced(ev.IEEE)
		b.publishEvent("device_announce", d, nil)
		b.interviewAsync(ev.IEEE)
	case ncp.EventLeft:
		d, ok := b.registry.ByIEEE(ev.IEEE)
		if !ok && ev.Short != 0 {
			d, ok = b.registry.ByNWK(ev.Short)
		}
		if !ok {
			return
		}
		b.removeDevice(d)
	case ncp.EventRadioReset, ncp.EventDisconnected, ncp.EventReconnected:
		state := map[ncp.EventKind]string{ncp.EventRadioReset: "online", ncp.EventDisconnected: "disconnected",
			ncp.EventReconnected: "online"}[ev.Kind]
		b.mu.Lock()
		b.radioState = state
		b.mu.Unlock()
		if ev.Kind == ncp.EventDisconnected {
			b.health.Down(HealthRadio, "disconnected: "+ev.Reason)
		} else {
			b.health.Up(HealthRadio)
		}
		b.log.Warn().Str("event", ev.Kind.String()).Str("reason", ev.Reason).Msg("radio")
		typ := map[ncp.EventKind]string{ncp.EventRadioReset: "radio_reset", ncp.EventDisconnected: "radio_disconnected",
			ncp.EventReconnected: "radio_reconnected"}[ev.Kind]
		b.pub.event(b.topic("bridge/event"), mustJSON(map[string]any{"type": typ,
			"data": map[string]any{"reason": ev.Reason}}))
		b.markInfoDirty()
	}
}

func (b *Bridge) handleFrame(in ncp.Incoming) {
	var (
		d  Device
		ok bool
	)
	if b.scan.HandleResponse(in) {
		return
	}
	if in.SrcIEEE != 0 {
		var created bool
		d, created = b.registry.Seen(in.SrcIEEE, in.SrcShort, in.LQI)
		ok = true
		if created && in.SrcShort != 0x0000 {
			b.deviceFound(d.IEEE, in.SrcShort, in.LQI, false, "frame")
		}
	} else if d, ok = b.registry.ByNWK(in.SrcShort); ok {
		d, _ = b.registry.Seen(d.IEEE, in.SrcShort, in.LQI)
	}
	if !ok {
		b.handleUnknownSender(in)
		return
	}
	if b.log.Debug().Enabled() {
		b.log.Debug().Stringer("ieee", d.IEEE).Str("nwk", hex16(in.SrcShort)).Uint16("cluster", in.ClusterID).
			Uint8("lqi", in.LQI).Hex("zcl", in.Payload).Msg("frame in")
	}
	if b.iv.HandleResponse(d.IEEE, in) {
		return
	}
	if in.ClusterID != zcl.ClusterOTA || in.ProfileID != zcl.ProfileHomeAutomation {
		return
	}
	if d.Endpoint != in.SrcEndpoint {
		ep := in.SrcEndpoint
		d, _ = b.registry.Update(d.IEEE, func(x *Device) { x.Endpoint = ep })
	}
	b.engine.HandleFrame(d.IEEE, in.Payload)
}

// removeDevice forgets a device that left: registry, engine, discovery and its retained topics.
func (b *Bridge) removeDevice(d Device) {
	b.log.Info().Stringer("ieee", d.IEEE).Str("friendly_name", d.FriendlyName).Msg("device left")
	b.registry.Remove(d.IEEE)
	b.engine.RemoveDevice(d.IEEE)
	b.mu.Lock()
	name := b.names[d.IEEE]
	delete(b.names, d.IEEE)
	b.mu.Unlock()
	if name == "" {
		name = d.FriendlyName
	}
	b.pub.retained(b.topic(name+"/update"), nil)
	b.pub.retained(b.topic(name+"/ota"), nil)
	if b.cfg.MQTT.Discovery {
		m := b.disc.RemoveDevice(d.IEEE.String())
		b.pub.retained(m.Topic, nil)
	}
	b.publishEvent("device_left", d, nil)
}

// interviewAsync interviews a device in the background (one at a time per device; never refused busy).
func (b *Bridge) interviewAsync(ieee zcl.IEEE) {
	if b.jobs.active(ieee) {
		return
	}
	b.goRun(func() {
		err, joined := b.jobs.do(b.ctx, ieee, false, func() error { return b.interviewNow(b.ctx, ieee) })
		if err != nil && !joined && b.ctx.Err() == nil {
			b.log.Warn().Stringer("ieee", ieee).Err(err).Msg("interview failed")
		}
	})
}

// interviewShared interviews a device for a request: it joins the device's interview when one runs, and
// with refusable set it is refused (errRadioBusy) when enough devices are being interviewed already.
func (b *Bridge) interviewShared(ctx context.Context, ieee zcl.IEEE, refusable bool) error {
	err, joined := b.jobs.do(ctx, ieee, refusable, func() error { return b.interviewNow(ctx, ieee) })
	if joined {
		b.log.Debug().Stringer("ieee", ieee).Msg("request joined the running interview")
	}
	return err
}

// interviewNow reads the device's Basic and OTA attributes and tells the engine.
func (b *Bridge) interviewNow(ctx context.Context, ieee zcl.IEEE) error {
	d, ok := b.registry.ByIEEE(ieee)
	if !ok {
		return fmt.Errorf("unknown device %s", ieee)
	}
	if _, err := b.registry.SetInterviewPending(ieee); err != nil {
		return err
	}
	res := b.iv.Interview(ctx, TargetOf(d))
	nd, err := b.registry.SetInterviewResult(ieee, res)
	if err != nil {
		return err
	}
	b.engine.SetDevice(nd.EngineInfo())
	if res.OK && nd.Sleepy && b.cfg.OTA.MinBattery > 0 {
		b.readBattery(ctx, ieee) // for ota.min_battery
	}
	b.publishDeviceDiscovery(nd)
	b.publishDeviceState(nd)
	if !res.OK {
		return errors.New(res.Reason)
	}
	return nil
}

// renamed moves a device's state topics and discovery to its new friendly name.
func (b *Bridge) renamed(ieee zcl.IEEE, oldName string) {
	d, ok := b.registry.ByIEEE(ieee)
	if !ok {
		return
	}
	b.pub.retained(b.topic(oldName+"/update"), nil)
	b.pub.retained(b.topic(oldName+"/ota"), nil)
	b.mu.Lock()
	b.names[ieee] = d.FriendlyName
	b.mu.Unlock()
	b.publishDeviceDiscovery(d)
	b.publishDeviceState(d)
}

// setPermitJoin records until when joining is open, for bridge/info.
func (b *Bridge) setPermitJoin(d time.Duration) {
	b.mu.Lock()
	if b.permitTimer != nil {
		b.permitTimer.Stop()
		b.permitTimer = nil
	}
	if d > 0 {
		b.permitUntil = time.Now().Add(d)
		b.permitTimer = time.AfterFunc(d, b.markInfoDirty)
	} else {
		b.permitUntil = time.Time{}
	}
	b.mu.Unlock()
	b.markInfoDirty()
}

func (b *Bridge) markInfoDirty() {
	select {
	case b.infoDirty <- struct{}{}:
	default:
	}
}

// housekeeping publishes bridge/info when it changes and writes the health file.
func (b *Bridge) housekeeping() {
	var health <-chan time.Time
	if b.opts.HealthInterval > 0 {
		t := time.NewTicker(b.opts.HealthInterval)
		defer t.Stop()
		health = t.C
		b.writeHealth()
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.infoDirty:
			b.publishInfo(false)
		case <-tick.C:
			b.publishInfo(false)
			b.publishWebStatus()
		case <-health:
			b.writeHealth()
		}
	}
}

func (b *Bridge) writeHealth() {
	if err := WriteHealthStatus(b.cfg.DataDir, time.Now(), b.health.Problems()); err != nil {
		b.log.Warn().Err(err).Msg("health file")
	}
}

// healthChanged writes the heartbeat at once when a component goes up or down (once the bridge runs), so
// `otabridge health` does not wait for the next beat to tell.
func (b *Bridge) healthChanged() {
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if started && b.opts.HealthInterval > 0 {
		b.writeHealth()
	}
}

// onRequest runs a request on its own goroutine: a long one (an interview, a download) never holds up the
// others.
//
// A large request (an upload) is admitted here, before it is copied or a goroutine holds it: beyond
// maxLargeRequests in progress it is answered "busy" at once and its payload let go (see admitLarge). A
// large payload is not copied: paho allocates each message's payload, and nothing else keeps it.
func (b *Bridge) onRequest(msg Message) {
	path := strings.TrimPrefix(msg.Topic, b.topic("bridge/request/"))
	payload := msg.Payload
	if msg.Retained {
		b.refuseRetainedRequest(path, payload)
		return
	}
	if msg.Truncated > 0 { // a large request that arrived while others filled the inbox
		b.respond(path, peekTransaction(payload), nil, errBusyUploads)
		return
	}
	if b.requests.Add(1) > maxRequestsInFlight {
		b.requests.Add(-1)
		b.log.Warn().Str("request", path).Int("in_flight", maxRequestsInFlight).Msg("request refused: busy")
		b.respond(path, peekTransaction(payload), nil, errRequestsBusy)
		return
	}
	release, ok := b.admitLarge(path, payload)
	if !ok {
		b.requests.Add(-1)
		return
	}
	if len(payload) <= largeRequest {
		payload = bytes.Clone(payload)
	}
	b.goRun(func() {
		defer b.requests.Add(-1)
		defer release()
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
		defer cancel()
		b.handleRequest(ctx, path, payload)
	})
}

// onHAStatus re-publishes discovery and state after Home Assistant's birth message, after a short random
// delay so that several bridges do not publish at once.
func (b *Bridge) onHAStatus(_ string, payload []byte) {
	if strings.TrimSpace(string(payload)) != "online" {
		return
	}
	delay := time.Duration(rand.Int64N(int64(b.opts.BirthDelay)))
	b.log.Info().Dur("delay_ms", delay).Msg("Home Assistant is online: re-publishing discovery")
	b.goRun(func() {
		select {
		case <-time.After(delay):
			b.publishAll()
		case <-b.ctx.Done():
		}
	})
}

// onDiscoveryConfig collects our retained discovery configs seen right after connecting, to clear the stale
// ones (devices that are no longer known).
func (b *Bridge) onDiscoveryConfig(topic string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.staleScan || len(payload) == 0 {
		return
	}
	if _, own := b.disc.OwnsConfigTopic(topic); own {
		b.staleConfigs[topic] = true
	}
}

// onConnect publishes everything retained after every (re)connect.
func (b *Bridge) onConnect() {
	b.publishAll()
	b.publishStateCorrupt()
	b.flushStartEvents()
	b.mu.Lock()
	scan := b.staleScan
	b.mu.Unlock()
	if !scan {
		return
	}
	b.goRun(func() {
		select {
		case <-time.After(2 * time.Second):
		case <-b.ctx.Done():
			return
		}
		b.clearStaleDiscovery()
	})
}

func (b *Bridge) clearStaleDiscovery() {
	keep := map[string]bool{b.disc.BridgeConfigTopic(): true}
	for _, d := range b.registry.All() {
		keep[b.disc.DeviceConfigTopic(d.IEEE.String())] = true
	}
	b.mu.Lock()
	b.staleScan = false
	var stale []string
	for t := range b.staleConfigs {
		if !keep[t] {
			stale = append(stale, t)
		}
	}
	b.staleConfigs = nil
	b.mu.Unlock()
	for _, t := range stale {
		b.log.Info().Str("topic", t).Msg("clearing stale discovery config")
		b.pub.retained(t, nil)
	}
}

func (b *Bridge) publishNow(topic string, payload []byte, retained bool) error {
	if b.mqtt == nil {
		return nil
	}
	return b.mqtt.Publish(topic, payload, retained)
}

func mustJSON(v any) []byte {
	out, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return out
}
