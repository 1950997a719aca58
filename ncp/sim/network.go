package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// Network is the simulated coordinator and its virtual devices. It implements ncp.Radio.
//
// Everything the simulation does runs in callbacks of the virtual clock (one goroutine: the one that drives
// the clock), so the model itself has no locks. The public methods are safe to call from any goroutine:
// they schedule work on the clock with AfterFunc and read snapshots guarded by small mutexes.
type Network struct {
	cfg  Config
	clk  *clock.Virtual
	log  zerolog.Logger
	link LinkModel

	devices []*Device
	byIEEE  map[zcl.IEEE]*Device
	byShort map[uint16]*Device

	// Clock-goroutine state.
	rng         *rand.Rand
	freeAt      time.Time // when the shared channel is free
	macRetries  int
	gen         uint64 // radio generation, bumped by ResetRadio
	inflight    map[uint64]*message
	nextID      uint64
	zdoSeq      uint8
	coordOnline bool // Start has run on the clock
	// learned holds the short addresses whose IEEE address the coordinator's address table knows (only
	// consulted for an `existing` network; clock goroutine).
	learned     map[uint16]bool
	permitUntil time.Time // permit join is open until then (PermitJoin)
	permitOpen  bool      // permit join is open until closed (PermitJoin 255)

	closed atomic.Bool

	mu       sync.Mutex // guards the fields below
	started  bool
	params   NetworkParams  // the network the coordinator runs (config until Form)
	coordEPs []EndpointDesc // the coordinator's endpoints (SetCoordinatorEndpoints)
	coordMfr uint16         // manufacturer code of the coordinator's node descriptor
	handler  func(ncp.Event)
	oracle   func(zcl.ImageID) ([32]byte, bool)
	stats    LinkStats

	// Event delivery to Events(): an unbounded queue drained by one goroutine owned by the Network.
	qmu   sync.Mutex
	queue []ncp.Event
	// hostHolds are the clock holds of events handed to the host and not yet answered (see emit).
	hostHolds []func()
	qwake     chan struct{}
	events    chan ncp.Event
	stop      chan struct{}
	wg        sync.WaitGroup
	once      sync.Once
}

var _ ncp.Radio = (*Network)(nil)

// simTimeHook adds the virtual time since clock.Epoch to every log line of the simulation.
type simTimeHook struct{ clk *clock.Virtual }

func (h simTimeHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str("sim_time", h.clk.Elapsed().String())
}

// LinkStats counts what went over the simulated air since New.
type LinkStats struct {
	Messages   int           // APS messages handed to the link (incl. APS acks, excl. MAC data requests)
	Frames     int           // PHY data frames sent, incl. fragments and MAC retries (not MAC acks)
	Bytes      int           // bytes on the air, incl. PHY headers, MAC acks and data requests
	AirTime    time.Duration // time the air carried a frame or MAC ack
	BusyTime   time.Duration // time the channel was occupied (air time + backoff, CCA, turnarounds, ack waits)
	MACAcks    int
	MACRetries int
	APSAcks    int
	APSRetries int
	Lost       int // messages lost on a hop after all MAC retries (or not heard by a broadcast recipient)
	Duplicated int // messages delivered twice
	Polls      int // MAC data requests of sleepy devices
	// BackgroundFrames of link.background traffic were sent; BackgroundWait is the sum of the time each
	// waited for the channel (how much the OTA traffic delays the home's other traffic).
	BackgroundFrames int
	BackgroundWait   time.Duration
	// FragmentedDropped counts fragmented messages that reached a device without APS fragmentation support.
	FragmentedDropped int
	PerKind           map[string]KindStats
}

// KindStats is the share of one kind of message ("ota.image_block_response", "zdo.match_desc_req",
// "aps_ack", "mac_data_request" …).
type KindStats struct {
	Messages int
	Frames   int
	Bytes    int
	AirTime  time.Duration
}

// New builds a simulated network on clk. The configuration is validated and its defaults filled in (see
// the Defaults block). Nothing happens on the air until Start.
func New(cfg Config, clk *clock.Virtual, log zerolog.Logger) (*Network, error) {
	if clk == nil {
		return nil, fmt.Errorf("sim: nil clock")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	n := &Network{
		cfg: cfg,
		clk: clk,
		log: log.With().Str("radio", "sim").Logger().Hook(simTimeHook{clk}),
		link: LinkModel{Fast: cfg.Link.Mode == ModeFast, FragmentWindow: cfg.Link.FragmentWindow,
			FragmentInterval: cfg.Link.FragmentInterval},
		byIEEE:     make(map[zcl.IEEE]*Device, len(cfg.Devices)),
		byShort:    make(map[uint16]*Device, len(cfg.Devices)),
		rng:        rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6f74616272696467)), // "otabridg"
		macRetries: max(cfg.Link.MACRetries, 0),
		inflight:   make(map[uint64]*message),
		learned:    make(map[uint16]bool),
		qwake:      make(chan struct{}, 1),
		events:     make(chan ncp.Event, 64),
		stop:       make(chan struct{}),
	}
	n.stats.PerKind = make(map[string]KindStats)
	n.params = cfg.networkParams()
	n.coordEPs = defaultCoordinatorEndpoints()
	n.coordMfr = DefaultCoordinatorManufacturerCode
	for i := range cfg.Devices {
		d := newDevice(n, cfg.Devices[i])
		n.devices = append(n.devices, d)
		n.byIEEE[d.cfg.IEEE] = d
		n.byShort[d.cfg.NWK] = d
	}
	for _, d := range n.devices {
		d.initMembership()
	}
	n.wg.Add(1)
	go n.drain()
	return n, nil
}

// Config returns the configuration with defaults filled in.
func (n *Network) Config() Config { return n.cfg }

// Link returns the link model the network uses.
func (n *Network) Link() LinkModel { return n.link }

// Clock returns the virtual clock the network runs on.
func (n *Network) Clock() *clock.Virtual { return n.clk }

// Device returns the device with that IEEE address, or nil.
func (n *Network) Device(ieee zcl.IEEE) *Device { return n.byIEEE[ieee] }

// DeviceByShort returns the device with that short address, or nil.
func (n *Network) DeviceByShort(short uint16) *Device { return n.byShort[short] }

// Devices returns every device in configuration order.
func (n *Network) Devices() []*Device { return append([]*Device(nil), n.devices...) }

// SetImageOracle installs the function devices use to check a downloaded image: when it knows the image
// id, the SHA-256 of the received bytes must equal its answer, else the device answers INVALID_IMAGE.
// The bridge wires it to its image store. It is called on the clock goroutine.
func (n *Network) SetImageOracle(f func(zcl.ImageID) ([32]byte, bool)) {
	n.mu.Lock()
	n.oracle = f
	n.mu.Unlock()
}

func (n *Network) imageOracle() func(zcl.ImageID) ([32]byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.oracle
}

// SetHandler makes the network deliver events by calling h on the clock goroutine instead of through
// Events (for single-goroutine harnesses). h must not block; it may call SendAsync. nil restores the channel.
func (n *Network) SetHandler(h func(ncp.Event)) {
	n.mu.Lock()
	n.handler = h
	n.mu.Unlock()
}

// Stats returns a copy of the link counters.
func (n *Network) Stats() LinkStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.PerKind = make(map[string]KindStats, len(n.stats.PerKind))
	for k, v := range n.stats.PerKind {
		s.PerKind[k] = v
	}
	return s
}

// Start powers the simulated network on: the coordinator registers endpoint 1 (profile 0x0104, input
// clusters 0x0000 and 0x0019) and the devices come up shortly after (announcing themselves when
// announce_on_start). It does not wait for the clock; calling it again returns the same information.
func (n *Network) Start(ctx context.Context) (ncp.NetworkInfo, error) {
	if err := ctx.Err(); err != nil {
		return ncp.NetworkInfo{}, err
	}
	if n.closed.Load() {
		return ncp.NetworkInfo{}, ncp.ErrClosed
	}
	n.mu.Lock()
	first := !n.started
	n.started = true
	n.mu.Unlock()
	if first {
		n.clk.AfterFunc(0, n.powerOn)
	}
	return n.info(), nil
}

func (n *Network) info() ncp.NetworkInfo {
	return ncp.NetworkInfo{
		Type: "sim", Firmware: "otabridge-sim 1", Channel: n.cfg.Channel, PANID: n.cfg.PANID,
		ExtendedPANID: n.cfg.ExtendedPANID, IEEE: n.cfg.CoordinatorIEEE, Formed: !n.cfg.Existing,
	}
}

func (n *Network) isStarted() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.started
}

// powerOn runs on the clock: the coordinator is up and every device boots after a random 10..500 ms.
func (n *Network) powerOn() {
	if n.closed.Load() {
		return
	}
	n.coordOnline = true
	n.log.Info().Uint8("channel", n.cfg.Channel).Str("pan_id", fmt.Sprintf("0x%04X", n.cfg.PANID)).
		Int("devices", len(n.devices)).Str("link", n.cfg.Link.Mode).Msg("simulated network up")
	for _, d := range n.devices {
		delay := 10*time.Millisecond + time.Duration(n.rng.Int64N(int64(490*time.Millisecond)))
		d.after(delay, func() { d.boot(*d.cfg.AnnounceOnStart) })
	}
	if n.cfg.Link.Background.Rate > 0 {
		n.background()
	}
}

// background puts one frame of the home's other traffic on the channel and schedules the next at an
// exponentially distributed gap (Poisson arrivals at link.background.rate). It runs until Close.
func (n *Network) background() {
	if n.closed.Load() {
		return
	}
	bg := n.cfg.Link.Background
	n.countMessage("background")
	wait := max(n.freeAt.Sub(n.clk.Now()), 0)
	n.addStats(func(s *LinkStats) { s.BackgroundFrames++; s.BackgroundWait += wait })
	n.occupy("background", bg.Payload, true, n.cfg.Link.Loss, true)
	gap := time.Duration(n.rng.ExpFloat64() / bg.Rate * float64(time.Second))
	n.clk.AfterFunc(gap, n.background)
}

// PermitJoin opens joining on the coordinator and every router for seconds (0 closes, 255 until closed).
// Devices that are not members of any network and may join find the network by an active scan and join it
// at a small random delay (see join.go). It does not wait for the clock.
func (n *Network) PermitJoin(ctx context.Context, seconds uint8) error {
	if n.closed.Load() {
		return ncp.ErrClosed
	}
	if !n.isStarted() {
		return ncp.ErrNotStarted
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n.clk.AfterFunc(0, func() {
		if !n.closed.Load() {
			n.setPermit(seconds, "host")
		}
	})
	return nil
}

// MaxAPSPayload is the largest unfragmented APS payload (82 B).
func (n *Network) MaxAPSPayload() int { return MaxAPSPayload }

var _ ncp.Fragmenter = (*Network)(nil)

// MaxFragmentedPayload is the largest APS payload the coordinator sends fragmented (link
// max_fragmented_payload; 0 when fragmentation is off).
func (n *Network) MaxFragmentedPayload() int { return max(n.cfg.Link.MaxFragmentedPayload, 0) }

// Events returns the event channel (closed after Close). Unused when a handler is set.
func (n *Network) Events() <-chan ncp.Event { return n.events }

// Close stops the network: later clock callbacks do nothing, pending Send calls return ErrClosed and the
// event channel is closed. It is safe to call more than once.
func (n *Network) Close() error {
	n.once.Do(func() {
		n.closed.Store(true)
		close(n.stop)
		n.releaseHostHolds()
		n.wg.Wait()
	})
	return nil
}

// Send transmits one APS frame and waits for its confirmation (see ncp.Radio). Someone must drive the
// virtual clock meanwhile (Pace); single-goroutine harnesses use SendAsync.
func (n *Network) Send(ctx context.Context, f ncp.Frame) error {
	_, err := n.SendWithStats(ctx, f)
	return err
}

var _ ncp.StatsSender = (*Network)(nil)

// SendWithStats is Send that also reports what the frame cost on the coordinator's hop (ncp.StatsSender):
// the time it waited for the channel (other devices' traffic and the coordinator's own frames before it),
// its MAC attempts and retries, summed over APS retries.
func (n *Network) SendWithStats(ctx context.Context, f ncp.Frame) (ncp.SendStats, error) {
	if n.closed.Load() {
		return ncp.SendStats{}, ncp.ErrClosed
	}
	if !n.isStarted() {
		return ncp.SendStats{}, ncp.ErrNotStarted
	}
	if err := ctx.Err(); err != nil {
		return ncp.SendStats{}, err
	}
	type result struct {
		st  ncp.SendStats
		err error
	}
	ch := make(chan result, 1)
	// The host now waits for the simulation (this sender is blocked until the confirmation): the clock
	// holds of events it has not answered yet must not stop time meanwhile, or both would stall.
	waited := n.clk.WaitFor()
	defer waited()
	n.SendAsyncStats(f, func(st ncp.SendStats, err error) { ch <- result{st, err} })
	select {
	case r := <-ch:
		return r.st, r.err
	case <-ctx.Done():
		return ncp.SendStats{}, ctx.Err()
	case <-n.stop:
		return ncp.SendStats{}, ncp.ErrClosed
	}
}

// SendAsync schedules the transmission of f and calls done (on the clock goroutine; nil allowed) with its
// confirmation: nil, or an error saying what failed (*ncp.SendError for a delivery failure). The payload is
// copied.
func (n *Network) SendAsync(f ncp.Frame, done func(error)) {
	if done == nil {
		n.SendAsyncStats(f, nil)
		return
	}
	n.SendAsyncStats(f, func(_ ncp.SendStats, err error) { done(err) })
}

// SendAsyncStats is SendAsync whose confirmation also carries the frame's SendStats (see SendWithStats).
func (n *Network) SendAsyncStats(f ncp.Frame, done func(ncp.SendStats, error)) {
	if done == nil {
		done = func(ncp.SendStats, error) {}
	}
	if n.closed.Load() {
		n.clk.AfterFunc(0, func() { done(ncp.SendStats{}, ncp.ErrClosed) })
		return
	}
	if !n.isStarted() {
		n.clk.AfterFunc(0, func() { done(ncp.SendStats{}, ncp.ErrNotStarted) })
		return
	}
	f.Payload = append([]byte(nil), f.Payload...)
	defer n.hostAnswered() // after scheduling: the frame leaves at the time the host answered
	n.clk.AfterFunc(0, func() {
		if n.closed.Load() {
			done(ncp.SendStats{}, ncp.ErrClosed)
			return
		}
		n.send(f, done)
	})
}

// ResetRadio simulates a coordinator reset: every frame the coordinator has in flight fails, frames held for
// sleepy devices are dropped, and EventRadioReset is reported.
func (n *Network) ResetRadio() {
	n.clk.AfterFunc(0, func() {
		if n.closed.Load() {
			return
		}
		n.gen++
		failed := 0
		for id, m := range n.inflight {
			delete(n.inflight, id)
			m.finish(&ncp.SendError{DstShort: m.dstShort, Status: "radio reset"})
			failed++
		}
		for _, d := range n.devices {
			kept := d.held[:0]
			for _, m := range d.held {
				if m.up || m.gen == n.gen {
					kept = append(kept, m)
				}
			}
			d.held = kept
		}
		n.log.Warn().Int("failed_frames", failed).Msg("coordinator reset")
		n.emit(ncp.Event{Kind: ncp.EventRadioReset, Reason: "simulated coordinator reset"})
	})
}

// emit delivers an event: to the handler on this (clock) goroutine, or through the queue to Events.
func (n *Network) emit(ev ncp.Event) {
	n.mu.Lock()
	h := n.handler
	n.mu.Unlock()
	if h != nil {
		h(ev)
		return
	}
	// The host works on the event in wall time; a paced clock stands still until it answers (its next Send)
	// or hostHoldLimit has passed, so its processing is never counted as simulated air time.
	release := n.clk.Hold(hostHoldLimit)
	n.qmu.Lock()
	n.queue = append(n.queue, ev)
	n.hostHolds = append(n.hostHolds, release)
	n.qmu.Unlock()
	select {
	case n.qwake <- struct{}{}:
	default:
	}
}

// hostHoldLimit bounds one hold of the paced clock for an event the host does not answer (a join, a
// report): the clock waits this long in wall time, never in simulated time.
const hostHoldLimit = 5 * time.Millisecond

// hostAnswered releases the oldest clock hold: the host sent something, so it is done with an event.
func (n *Network) hostAnswered() {
	n.qmu.Lock()
	var release func()
	if len(n.hostHolds) > 0 {
		release = n.hostHolds[0]
		n.hostHolds[0] = nil
		n.hostHolds = n.hostHolds[1:]
	}
	n.qmu.Unlock()
	if release != nil {
		release()
	}
}

// releaseHostHolds releases every clock hold (Close).
func (n *Network) releaseHostHolds() {
	n.qmu.Lock()
	holds := n.hostHolds
	n.hostHolds = nil
	n.qmu.Unlock()
	for _, release := range holds {
		release()
	}
}

// drain moves queued events to the Events channel until Close.
func (n *Network) drain() {
	defer n.wg.Done()
	defer close(n.events)
	for {
		n.qmu.Lock()
		for len(n.queue) == 0 {
			n.qmu.Unlock()
			select {
			case <-n.qwake:
			case <-n.stop:
				return
			}
			n.qmu.Lock()
		}
		ev := n.queue[0]
		n.queue[0] = ncp.Event{}
		n.queue = n.queue[1:]
		n.qmu.Unlock()
		select {
		case n.events <- ev:
		case <-n.stop:
			return
		}
	}
}

// message is one APS message on its way between the coordinator and a device.
type message struct {
	id         uint64
	kind       string
	dev        *Device // the device end of the path
	up         bool    // device → coordinator
	profile    uint16
	cluster    uint16
	srcEP      uint8
	dstEP      uint8
	dstShort   uint16
	broadcast  bool
	payload    []byte
	needAck    bool // APS ack asked for, or fragmented
	fragmented bool
	windows    int // fragmented: APS windows acknowledged so far (a retry resends from the next one)
	tries      int
	delivered  bool
	acked      bool
	done       func(error) // the coordinator's send confirmation; nil for device frames and ZDO answers
	ackTimer   clock.Timer
	gen        uint64
	stats      ncp.SendStats // coordinator frames: what its first hop cost (every APS try), for SendWithStats
	epoch      uint64        // the sending device's life (device frames)
	isAck      bool          // this message is an APS ack of ackOf
	ackOf      *message      // for isAck
}

// finish confirms the message once.
func (m *message) finish(err error) {
	if m.done != nil {
		done := m.done
		m.done = nil
		done(err)
	}
}

// send starts a coordinator frame from the bridge (clock goroutine).
func (n *Network) send(f ncp.Frame, doneStats func(ncp.SendStats, error)) {
	done := func(err error) { doneStats(ncp.SendStats{}, err) }
	if !n.coordOnline {
		done(ncp.ErrNotStarted)
		return
	}
	if f.DstShort == 0x0000 && f.ProfileID == 0 {
		n.hostZDO(f, done)
		return
	}
	kind := kindOf(f.ProfileID, f.ClusterID, f.Payload)
	if f.IsBroadcast() {
		n.broadcastDown(f, kind, done)
		return
	}
	d := n.byShort[f.DstShort]
	if d != nil && !d.inNetwork() {
		n.routeDiscoveryFails(f, d, done)
		return
	}
	if d == nil {
		n.log.Debug().Str("dst", fmt.Sprintf("0x%04X", f.DstShort)).Msg("send to unknown short address")
		done(&ncp.SendError{DstShort: f.DstShort, Status: "no route to destination"})
		return
	}
	m := &message{
		kind: kind, dev: d, profile: f.ProfileID, cluster: f.ClusterID, srcEP: f.SrcEndpoint, dstEP: f.DstEndpoint,
		dstShort: f.DstShort, payload: f.Payload,
	}
	n.nextID++
	m.id = n.nextID
	n.inflight[m.id] = m
	m.done = func(err error) { delete(n.inflight, m.id); doneStats(m.stats, err) }
	if e := n.log.Debug(); e.Enabled() {
		e.Str("ieee", d.cfg.IEEE.String()).Str("kind", kind).Uint16("cluster", f.ClusterID).
			Bool("aps_ack", f.APSAck).Hex("payload", f.Payload).Msg("tx frame")
	}
	n.startMessage(m, f.APSAck)
}

// startMessage sends a unicast message between the coordinator and m.dev, with APS ack handling.
func (n *Network) startMessage(m *message, apsAck bool) {
	m.gen = n.gen
	m.fragmented = Fragments(len(m.payload)) > 1
	m.needAck = apsAck || m.fragmented
	n.countMessage(m.kind)
	if m.needAck {
		m.ackTimer = n.clk.AfterFunc(n.apsAckWait(m.dev), func() { n.apsAckTimeout(m) })
	}
	n.hop(m, 0)
}

func (n *Network) apsAckWait(d *Device) time.Duration {
	w := APSAckWaitDuration
	if d.sleepy() {
		w += d.pollInterval()
	}
	return w
}

func (n *Network) apsAckTimeout(m *message) {
	if n.closed.Load() || m.acked {
		return
	}
	if (!m.up && m.gen != n.gen) || (m.up && m.epoch != m.dev.epoch) {
		return
	}
	m.tries++
	if m.tries > APSMaxFrameRetries {
		n.log.Debug().Str("ieee", m.dev.cfg.IEEE.String()).Str("kind", m.kind).Bool("up", m.up).Msg("no APS ack")
		m.finish(&ncp.SendError{DstShort: m.dstShort, Status: "no APS ack"})
		return
	}
	n.addStats(func(s *LinkStats) { s.APSRetries++ })
	m.ackTimer = n.clk.AfterFunc(n.apsAckWait(m.dev), func() { n.apsAckTimeout(m) })
	n.hop(m, 0)
}

// hop sends m over its hop number done+1 (done hops are behind it).
func (n *Network) hop(m *message, done int) {
	d := m.dev
	last := done == d.cfg.Hops-1
	if !m.up && last && d.sleepy() {
		// The parent holds the frame until the device polls.
		d.held = append(d.held, m)
		return
	}
	n.transmitHop(m, done, last)
}

// transmitHop puts one hop of m on the channel and continues when it is over.
func (n *Network) transmitHop(m *message, done int, last bool) {
	d := m.dev
	rxOnline := true
	if !m.up && last {
		rxOnline = d.online
	}
	if m.up && done == 0 && !d.online {
		return // a device that is off the air sends nothing
	}
	var ok bool
	own := !m.up && done == 0 && m.done != nil // the coordinator's own hop of a frame the host sent
	var framesBefore, retriesBefore int
	if own {
		m.stats.ChannelWait += max(n.freeAt.Sub(n.clk.Now()), 0)
		framesBefore, retriesBefore = n.macCounts()
	}
	if m.fragmented && !m.broadcast {
		ok = n.occupyFragments(m, n.lossRate(d), rxOnline, last)
	} else {
		_, ok = n.occupy(m.kind, len(m.payload), !m.broadcast, n.lossRate(d), rxOnline)
	}
	if own {
		frames, retries := n.macCounts()
		m.stats.Attempts += frames - framesBefore
		m.stats.MACRetries += retries - retriesBefore
	}
	n.afterReservation(func() { n.hopDone(m, done, ok) })
}

// afterReservation runs f when the channel reservation just made by occupy ends (occupy has moved freeAt
// to its end).
func (n *Network) afterReservation(f func()) {
	n.clk.AfterFunc(n.freeAt.Sub(n.clk.Now()), func() {
		if n.closed.Load() {
			return
		}
		f()
	})
}

func (n *Network) hopDone(m *message, done int, ok bool) {
	if !m.up && m.gen != n.gen {
		return // the coordinator was reset; the frame is gone
	}
	first := done == 0
	if !ok {
		n.addStats(func(s *LinkStats) { s.Lost++ })
		n.log.Debug().Str("ieee", m.dev.cfg.IEEE.String()).Str("kind", m.kind).Bool("up", m.up).Int("hop", done+1).Msg("frame lost")
		if !m.up && first && !m.needAck {
			m.finish(&ncp.SendError{DstShort: m.dstShort, Status: "MAC no ack"})
		}
		return // with APS ack the ack timer retries
	}
	if !m.up && first && !m.needAck {
		m.finish(nil)
	}
	if done+1 < m.dev.cfg.Hops {
		n.hop(m, done+1)
		return
	}
	n.arrive(m)
}

// arrive hands m to its destination (with APS duplicate rejection and the duplicate fault) and sends the
// APS ack back.
func (n *Network) arrive(m *message) {
	if m.isAck {
		o := m.ackOf
		if !o.acked {
			o.acked = true
			if o.ackTimer != nil {
				o.ackTimer.Stop()
			}
			o.finish(nil)
		}
		return
	}
	if m.fragmented && !m.up && !m.dev.fragmentation() {
		n.log.Debug().Str("ieee", m.dev.cfg.IEEE.String()).Str("kind", m.kind).Int("bytes", len(m.payload)).
			Msg("fragmented frame dropped: the device has no APS fragmentation")
		n.addStats(func(s *LinkStats) { s.FragmentedDropped++ })
		return
	}
	if m.needAck {
		n.sendAPSAck(m)
		if m.delivered {
			return // APS duplicate rejection
		}
	}
	m.delivered = true
	copies := 1
	if r := n.dupRate(m.dev); r > 0 && n.rng.Float64() < r {
		copies = 2
		n.addStats(func(s *LinkStats) { s.Duplicated++ })
	}
	for i := 0; i < copies; i++ {
		if m.up {
			n.coordReceive(m)
		} else {
			m.dev.receive(m)
		}
	}
}

// sendAPSAck sends the APS ack of m back over the same path.
func (n *Network) sendAPSAck(m *message) {
	ack := &message{kind: "aps_ack", dev: m.dev, up: !m.up, isAck: true, ackOf: m, gen: m.gen, dstShort: m.dstShort}
	size := 0
	if m.fragmented {
		size = APSFragmentAckExtra
	}
	ack.payload = make([]byte, size)
	n.countMessage(ack.kind)
	n.addStats(func(s *LinkStats) { s.APSAcks++ })
	n.hop(ack, 0)
}

// broadcastDown sends a coordinator broadcast: one transmission by the coordinator, one more per extra hop
// level by relays; every device the address covers hears it with probability 1 − loss; sleepy devices get
// it from their parent at their next poll (0xFFFF only).
func (n *Network) broadcastDown(f ncp.Frame, kind string, done func(error)) {
	n.countMessage(kind)
	n.occupy(kind, len(f.Payload), false, 0, true)
	coordEnd := n.freeAt.Sub(n.clk.Now())
	n.clk.AfterFunc(coordEnd, func() {
		if !n.closed.Load() {
			done(nil)
		}
	})
	maxHops := 1
	for _, d := range n.devices {
		maxHops = max(maxHops, d.cfg.Hops)
	}
	levelEnd := []time.Duration{coordEnd}
	for l := 2; l <= maxHops; l++ {
		n.occupy(kind, len(f.Payload), false, 0, true)
		levelEnd = append(levelEnd, n.freeAt.Sub(n.clk.Now()))
	}
	gen := n.gen
	for _, d := range n.devices {
		if !d.inNetwork() {
			continue
		}
		switch f.DstShort {
		case ncp.BroadcastRxOnWhenIdle:
			if d.sleepy() {
				continue
			}
		case ncp.BroadcastRouters:
			if d.sleepy() {
				continue
			}
		}
		if p := n.lossRate(d); p > 0 && n.rng.Float64() < p {
			n.addStats(func(s *LinkStats) { s.Lost++ })
			continue
		}
		m := &message{
			kind: kind, dev: d, profile: f.ProfileID, cluster: f.ClusterID, srcEP: f.SrcEndpoint, dstEP: f.DstEndpoint,
			dstShort: f.DstShort, broadcast: true, payload: f.Payload, gen: gen,
		}
		d := d
		if d.sleepy() {
			// the parent has it once the broadcast reached the parent's level
			at := levelEnd[max(d.cfg.Hops-2, 0)]
			if d.cfg.Hops == 1 {
				at = coordEnd
			}
			n.clk.AfterFunc(at, func() {
				if !n.closed.Load() {
					d.held = append(d.held, m)
				}
			})
			continue
		}
		n.clk.AfterFunc(levelEnd[d.cfg.Hops-1], func() {
			if n.closed.Load() || !d.online {
				return
			}
			d.receive(m)
		})
	}
}

// deviceSend sends a frame from a device to the coordinator (dstShort 0x0000 or a broadcast address).
func (n *Network) deviceSend(d *Device, dstShort, profile, cluster uint16, srcEP, dstEP uint8, payload []byte, apsAck bool) {
	if !d.online || !d.inNetwork() {
		return // off the air, or on another network: the coordinator never hears it
	}
	kind := kindOf(profile, cluster, payload)
	if dstShort != 0x0000 && dstShort < 0xFFF8 {
		n.log.Debug().Str("ieee", d.cfg.IEEE.String()).Str("kind", kind).Msg("device frame to a non-coordinator dropped")
		return
	}
	m := &message{
		kind: kind, dev: d, up: true, profile: profile, cluster: cluster, srcEP: srcEP, dstEP: dstEP,
		dstShort: dstShort, broadcast: dstShort >= 0xFFF8, payload: payload, epoch: d.epoch,
	}
	if d.sleepy() {
		d.kickFastPoll()
	}
	if m.broadcast {
		n.countMessage(kind)
		n.upBroadcastHop(m, 0)
		return
	}
	n.startMessage(m, apsAck)
}

// upBroadcastHop relays a device broadcast toward the coordinator, hop by hop, without acks.
func (n *Network) upBroadcastHop(m *message, done int) {
	_, ok := n.occupy(m.kind, len(m.payload), false, n.lossRate(m.dev), true)
	n.afterReservation(func() {
		if !ok {
			n.addStats(func(s *LinkStats) { s.Lost++ })
			return
		}
		if done+1 < m.dev.cfg.Hops {
			n.upBroadcastHop(m, done+1)
			return
		}
		n.coordReceive(m)
	})
}

// poll is one MAC data request of a sleepy device; the parent answers with the oldest held frame.
func (n *Network) poll(d *Device, then func()) {
	if !d.inNetwork() {
		then() // its parent is on another network: nothing on this channel
		return
	}
	n.addStats(func(s *LinkStats) { s.Polls++ })
	_, ok := n.occupyRaw("mac_data_request", DataRequestBytes, true, n.lossRate(d), true)
	n.afterReservation(func() {
		if !ok || !d.online {
			then()
			return
		}
		if len(d.held) > 0 {
			m := d.held[0]
			copy(d.held, d.held[1:])
			d.held[len(d.held)-1] = nil
			d.held = d.held[:len(d.held)-1]
			if m.broadcast {
				// broadcast copy held for the sleepy child: one indirect unicast hop
				_, ok := n.occupy(m.kind, len(m.payload), true, n.lossRate(d), d.online)
				n.afterReservation(func() {
					if ok && d.online {
						d.receive(m)
					}
				})
			} else {
				n.transmitHop(m, d.cfg.Hops-1, true)
			}
		}
		then()
	})
}

// occupy reserves the channel for one hop of an APS payload of the given size (all its fragments, with
// MAC retries) and returns how long the reservation lasts and whether the frame got through. The
// reservation starts when the channel is free; n.freeAt moves to its end.
func (n *Network) occupy(kind string, apsPayload int, unicast bool, loss float64, rxOnline bool) (time.Duration, bool) {
	var (
		dur time.Duration
		ok  = true
		acc hopAccount
	)
	fragmentBytes(apsPayload, func(extra int) {
		if !ok {
			return
		}
		d, delivered := n.attempts(FrameOverheadBytes+extra, unicast, loss, rxOnline, &acc)
		dur += d
		ok = delivered
	})
	n.book(kind, dur, &acc)
	return dur, ok
}

// occupyFragments books one hop of a fragmented unicast message window by window (see the link model):
// the fragments of each window not yet acknowledged, the fragment interval between them, and, on the last
// hop, the APS ack of every window but the last back over all hops (the last window's ack is the message's
// own APS ack, sent on arrival). It reports whether every remaining fragment got over this hop.
func (n *Network) occupyFragments(m *message, loss float64, rxOnline, lastHop bool) bool {
	var (
		dur, ackDur time.Duration
		acc, ackAcc hopAccount
		ok          = true
	)
	size := len(m.payload)
	frags := Fragments(size)
	window := n.cfg.Link.FragmentWindow
	if window <= 0 {
		window = frags
	}
	windowAcks := lastHop && (m.up || m.dev.fragmentation()) // a device that does not reassemble never acks
	for first := m.windows * window; ok && first < frags; first += window {
		end := min(first+window, frags)
		for i := first; i < end; i++ {
			if i > first {
				dur += ifReal(n.link, n.cfg.Link.FragmentInterval)
			}
			d, delivered := n.attempts(FrameOverheadBytes+fragmentSize(size, i), true, loss, rxOnline, &acc)
			dur += d
			if !delivered {
				ok = false
				break
			}
		}
		if !ok || end == frags || !windowAcks {
			continue
		}
		// The window's APS ack, back over every hop (the last window's ack is the message's own APS ack).
		for h := 0; h < m.dev.cfg.Hops && ok; h++ {
			d, delivered := n.attempts(FrameOverheadBytes+APSFragmentAckExtra, true, loss, true, &ackAcc)
			ackDur += d
			ok = delivered
		}
		if ok {
			m.windows++
			n.countMessage("aps_ack")
			n.addStats(func(s *LinkStats) { s.APSAcks++ })
		}
	}
	n.book(m.kind, dur, &acc)
	if ackAcc.frames > 0 {
		n.book("aps_ack", ackDur, &ackAcc)
	}
	return ok
}

// occupyRaw is occupy for a frame of a fixed size on the air (a MAC command).
func (n *Network) occupyRaw(kind string, frameBytes int, unicast bool, loss float64, rxOnline bool) (time.Duration, bool) {
	var acc hopAccount
	dur, ok := n.attempts(frameBytes, unicast, loss, rxOnline, &acc)
	n.book(kind, dur, &acc)
	return dur, ok
}

type hopAccount struct {
	frames, bytes, acks, retries int
	air                          time.Duration
}

// attempts sends one frame of frameBytes (PHY header included) with up to 1 + macRetries attempts.
func (n *Network) attempts(frameBytes int, unicast bool, loss float64, rxOnline bool, acc *hopAccount) (time.Duration, bool) {
	var dur time.Duration
	l := n.link
	frameAir := l.bytesTime(frameBytes)
	for attempt := 0; attempt <= n.macRetries; attempt++ {
		if attempt > 0 {
			acc.retries++
		}
		if !l.Fast {
			dur += time.Duration(n.rng.IntN(maxBackoffPeriodsDrawn))*UnitBackoffPeriod + CCATime + TurnaroundTime
		}
		dur += frameAir
		acc.frames++
		acc.bytes += frameBytes
		acc.air += frameAir
		success := rxOnline && (loss <= 0 || n.rng.Float64() >= loss)
		if unicast {
			if success {
				dur += ifReal(l, TurnaroundTime) + l.MACAckAirTime()
				acc.acks++
				acc.bytes += MACAckBytes
				acc.air += l.MACAckAirTime()
			} else {
				dur += ifReal(l, MACAckWaitDuration)
			}
		}
		if success {
			return dur, true
		}
	}
	return dur, false
}

func ifReal(l LinkModel, d time.Duration) time.Duration {
	if l.Fast {
		return 0
	}
	return d
}

// book moves the channel's free time past a reservation of dur and counts it.
func (n *Network) book(kind string, dur time.Duration, acc *hopAccount) {
	now := n.clk.Now()
	if n.freeAt.Before(now) {
		n.freeAt = now
	}
	n.freeAt = n.freeAt.Add(dur)
	n.mu.Lock()
	s := &n.stats
	s.Frames += acc.frames
	s.Bytes += acc.bytes
	s.AirTime += acc.air
	s.BusyTime += dur
	s.MACAcks += acc.acks
	s.MACRetries += acc.retries
	k := s.PerKind[kind]
	k.Frames += acc.frames
	k.Bytes += acc.bytes
	k.AirTime += acc.air
	s.PerKind[kind] = k
	n.mu.Unlock()
}

func (n *Network) countMessage(kind string) {
	n.mu.Lock()
	n.stats.Messages++
	k := n.stats.PerKind[kind]
	k.Messages++
	n.stats.PerKind[kind] = k
	n.mu.Unlock()
}

// macCounts returns the frames and MAC retries put on the air so far.
func (n *Network) macCounts() (frames, retries int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats.Frames, n.stats.MACRetries
}

func (n *Network) addStats(f func(*LinkStats)) {
	n.mu.Lock()
	f(&n.stats)
	n.mu.Unlock()
}

// lossRate combines the network-wide and the device's loss: 1 − (1 − a)(1 − b).
func (n *Network) lossRate(d *Device) float64 {
	return 1 - (1-n.cfg.Link.Loss)*(1-d.cfg.Loss)
}

func (n *Network) dupRate(d *Device) float64 {
	return 1 - (1-n.cfg.Link.Duplicate)*(1-d.cfg.Duplicate)
}

// coordReceive handles a frame that reached the coordinator: ZDO requests the stack answers itself,
// Device_annce as EventAnnounced, everything else as EventFrame.
func (n *Network) coordReceive(m *message) {
	if !n.coordOnline {
		return
	}
	d := m.dev
	if m.profile == 0 && m.dstEP == 0 {
		if n.coordZDO(m) {
			return
		}
	}
	if m.profile == 0 && (m.cluster == zdoIEEEAddrRsp || m.cluster == zdoNWKAddrRsp) {
		n.learnAddress(d.cfg.NWK)
	}
	srcIEEE := d.cfg.IEEE
	if !n.knowsAddress(d.cfg.NWK) {
		srcIEEE = 0
	}
	lqi := hopLQI(d.cfg.Hops)
	if e := n.log.Debug(); e.Enabled() {
		e.Str("ieee", d.cfg.IEEE.String()).Str("kind", m.kind).Uint16("cluster", m.cluster).Hex("payload", m.payload).Msg("rx frame")
	}
	n.emit(ncp.Event{
		Kind: ncp.EventFrame, Short: d.cfg.NWK, IEEE: srcIEEE,
		Frame: ncp.Incoming{
			SrcShort: d.cfg.NWK, SrcIEEE: srcIEEE, SrcEndpoint: m.srcEP, DstEndpoint: m.dstEP,
			ClusterID: m.cluster, ProfileID: m.profile, Broadcast: m.broadcast, LQI: lqi,
			RSSI: int8(-40 - 8*d.cfg.Hops), Payload: append([]byte(nil), m.payload...),
		},
	})
}

// coordSend sends a frame the coordinator's stack generates itself (ZDO answers).
func (n *Network) coordSend(d *Device, profile, cluster uint16, srcEP, dstEP uint8, payload []byte) {
	m := &message{
		kind: kindOf(profile, cluster, payload), dev: d, profile: profile, cluster: cluster, srcEP: srcEP, dstEP: dstEP,
		dstShort: d.cfg.NWK, payload: payload,
	}
	n.startMessage(m, false)
}
