package ezsp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/ncp/fifo"
	"github.com/otabridge/otabridge/ncp/serialport"
	"github.com/otabridge/otabridge/zcl"
	"github.com/rs/zerolog"
)

// MaxAPSPayloadCap is the largest APS payload the driver ever reports: EmberZNet's unfragmented limit for a
// NWK-secured unicast without APS encryption and without a source route (82 bytes; herdsman's
// MAXIMUM_APS_PAYLOAD_LENGTH). The driver reports min(maximumPayloadLength from the stick, this cap).
// otabridge never sets APS encryption on OTA traffic; with it, the APS auxiliary header and MIC would cost
// another 9 bytes, and each source-route relay 2 bytes.
const MaxAPSPayloadCap = 82

// Errors of the driver.
var (
	ErrUnsupportedStick = errors.New("unsupported stick")
	ErrNotReady         = errors.New("radio not ready")
)

// Driver is the EZSP coordinator driver: an ncp.Radio over a serial port (or any byte stream, WithOpener).
//
// Goroutines: per connection, the ASH link's reader and writer and a watcher of the port; for the driver's
// life (Start to Close), one callback goroutine (stick callbacks in order), one event pump (to Events) and one
// supervisor (resets, network down/up, reconnects). Close stops all of them.
type Driver struct {
	cfg    Config
	cfgErr error
	log    zerolog.Logger
	open   Opener
	to     Timeouts

	events    chan ncp.Event
	evq       *fifo.Queue[ncp.Event]
	sendSlots chan struct{} // one token per send waiting in the stick (Config.MaxInFlight)
	callbacks *fifo.Queue[callbackItem]

	life   *ncp.Lifecycle
	link   *ncp.Supervisor[*session] // the current session, whether it is ready, and its repair
	ctx    context.Context           // life.Ctx: cancelled by Close
	fragMu sync.Mutex                // one fragmented sender at a time takes a window's send slots

	mu         sync.Mutex
	netUp      bool
	netChanged chan struct{}
	info       ncp.NetworkInfo
	network    NetworkSettings
	maxPayload int
	pending    map[uint16]chan sendResult
	nextTag    uint16
	eui        map[uint16]zcl.IEEE
	euiMiss    ncp.LookupMisses
	nextSender zcl.IEEE // v13: incomingSenderEui64Handler announces the next message's sender
	zdoSeq     uint8
}

type sendResult struct {
	m   MessageSent
	err error
}

// New makes a driver; nothing is opened until Start. Close must be called, also after a failed Start.
func New(cfg Config, log zerolog.Logger, opts ...Option) *Driver {
	cfg, err := cfg.withDefaults()
	life := ncp.NewLifecycle("ezsp")
	d := &Driver{
		cfg:        cfg,
		cfgErr:     err,
		log:        log.With().Str("radio", "ezsp").Str("port", cfg.Port).Logger(),
		to:         DefaultTimeouts,
		events:     make(chan ncp.Event),
		evq:        fifo.New[ncp.Event](),
		callbacks:  fifo.New[callbackItem](),
		life:       life,
		link:       ncp.NewSupervisor[*session](life, ErrNotReady),
		ctx:        life.Ctx,
		netChanged: make(chan struct{}),
		maxPayload: MaxAPSPayloadCap,
		pending:    make(map[uint16]chan sendResult),
		sendSlots:  make(chan struct{}, max(cfg.MaxInFlight, 1)),
		eui:        make(map[uint16]zcl.IEEE),
	}
	d.open = func(context.Context) (io.ReadWriteCloser, error) {
		return serialport.Open(serialport.Config{Port: d.cfg.Port, Baud: d.cfg.Baud, FlowControl: d.cfg.FlowControl})
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

var _ ncp.Radio = (*Driver)(nil)

// Events returns the event stream; it is closed by Close.
func (d *Driver) Events() <-chan ncp.Event { return d.events }

// MaxAPSPayload returns the largest unfragmented APS payload (see MaxAPSPayloadCap).
func (d *Driver) MaxAPSPayload() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.maxPayload
}

// Network returns the network in use after Start: the one formed (with the chosen channel, PAN ids and key)
// or the one resumed. The bridge saves it in its data directory and passes it back in Config.Network.
func (d *Driver) Network() NetworkSettings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.network
}

// Info returns the NetworkInfo of the last successful initialisation.
func (d *Driver) Info() ncp.NetworkInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info
}

// Start opens the port, resets the stick, negotiates the EZSP version, configures the stack, resumes the
// stored network or forms one, and registers endpoint 1. Each failure names its step.
func (d *Driver) Start(ctx context.Context) (ncp.NetworkInfo, error) {
	if d.cfgErr != nil {
		return ncp.NetworkInfo{}, d.cfgErr
	}
	return d.link.Start(ctx, d.sessionHooks(), d.Info, d.callbackLoop, d.pumpEvents)
}

// Close stops the driver, fails the sends in flight, closes the port and then the Events channel.
func (d *Driver) Close() error {
	if !d.life.Close() {
		return nil
	}
	if s, ok := d.link.Take(); ok {
		s.close()
	}
	d.failPending(ncp.ErrClosed)
	d.life.Wait()
	close(d.events)
	return nil
}

// sessionHooks are the driver's part in the supervisor's keeping of its session: an ASH session on a newly
// opened port, initialised by initialize; a stack status of network down is the EZSP driver's own trouble.
func (d *Driver) sessionHooks() ncp.SessionHooks[*session] {
	return ncp.SessionHooks[*session]{
		OpenPort:     d.open,
		NewSession:   d.newSession,
		Initialize:   d.initialize,
		Done:         func(s *session) <-chan struct{} { return s.conn.Done() },
		Err:          func(s *session) error { return s.conn.Err() },
		ErrClosed:    ash.ErrClosed,
		Close:        (*session).close,
		FailPending:  func(_ *session, err error) { d.failPending(err) },
		Emit:         d.emit,
		Other:        func(t ncp.Trouble[*session]) { d.networkDown(t.Session) },
		ReconnectMin: d.to.ReconnectMin,
		ReconnectMax: d.to.ReconnectMax,
		Log:          d.log,
	}
}

// networkDown waits a little for the stack to bring the network back by itself, else re-initialises.
func (d *Driver) networkDown(s *session) {
	d.link.SetNotReady("network down")
	d.failPending(fmt.Errorf("%w: the network went down", ErrNotReady))
	d.log.Warn().Msg("stack status: network down")
	deadline := time.NewTimer(d.to.NetworkDownGrace)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		up, ch := d.netUp, d.netChanged
		d.mu.Unlock()
		if up {
			d.link.SetReady()
			d.log.Info().Msg("stack status: network up again")
			d.emit(ncp.Event{Kind: ncp.EventRadioReset, Reason: "network went down and came back up"})
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			d.link.Reinit(s, fmt.Sprintf("network down for %v", d.to.NetworkDownGrace), d.sessionHooks())
			return
		case <-d.ctx.Done():
			return
		}
	}
}

// emit queues an event for Events; it never blocks.
func (d *Driver) emit(ev ncp.Event) {
	d.log.Debug().Stringer("event", ev.Kind).Uint16("short", ev.Short).Stringer("ieee", ev.IEEE).Str("reason", ev.Reason).Msg("event")
	d.evq.Push(ev)
}

// pumpEvents hands the queued events to Events until Close.
func (d *Driver) pumpEvents() { d.evq.PumpTo(d.events, d.ctx.Done()) }

func (d *Driver) failPending(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for tag, ch := range d.pending {
		select {
		case ch <- sendResult{err: err}:
		default:
		}
		delete(d.pending, tag)
	}
}

// allocTag reserves a message tag (u8 up to v13, u16 from v14) and its result channel; d.mu held.
func (d *Driver) allocTag(v Version) (uint16, chan sendResult) {
	limit := uint32(0xFF)
	if v.Wide() {
		limit = 0xFFFF
	}
	for {
		d.nextTag++
		if uint32(d.nextTag) > limit || d.nextTag == 0 {
			d.nextTag = 1
		}
		if _, busy := d.pending[d.nextTag]; !busy {
			ch := make(chan sendResult, 1)
			d.pending[d.nextTag] = ch
			return d.nextTag, ch
		}
	}
}

// Send transmits one APS frame and waits for the stick's messageSentHandler: for an APS-acked unicast that
// is the APS ack (or its failure), otherwise the MAC-level send.
func (d *Driver) Send(ctx context.Context, f ncp.Frame) error {
	s, err := d.link.Ready()
	if err != nil {
		return err
	}
	v := s.ver()
	if frag := d.MaxFragmentedPayload(); len(f.Payload) > d.MaxAPSPayload() && frag > 0 && !f.IsBroadcast() && f.APSAck {
		if len(f.Payload) > frag {
			return fmt.Errorf("send to 0x%04x: payload of %d bytes exceeds the fragmented limit (%d)", f.DstShort, len(f.Payload), frag)
		}
		return d.sendFragmented(ctx, s, f)
	}
	if len(f.Payload) > MaxDataLenForSend {
		return fmt.Errorf("send to 0x%04x: payload of %d bytes exceeds what one EZSP frame carries (%d)", f.DstShort, len(f.Payload), MaxDataLenForSend)
	}
	// Serial-aware pacing: at most MaxInFlight frames wait in the stick; the rest wait here.
	select {
	case d.sendSlots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("send to 0x%04x: waiting for room in the stick: %w", f.DstShort, ctx.Err())
	case <-d.ctx.Done():
		return ncp.ErrClosed
	}
	defer func() { <-d.sendSlots }()
	d.mu.Lock()
	tag, ch := d.allocTag(v)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, tag)
		d.mu.Unlock()
	}()
	aps := ApsFrame{ProfileID: f.ProfileID, ClusterID: f.ClusterID, SrcEndpoint: f.SrcEndpoint, DstEndpoint: f.DstEndpoint}
	var id uint16
	var params []byte
	if f.IsBroadcast() {
		id = IDSendBroadcast
		params = SendBroadcast{Alias: 0xFFFF, Dest: f.DstShort, Aps: aps, Radius: f.Radius, Tag: tag, Message: f.Payload}.Append(nil, v)
	} else {
		id = IDSendUnicast
		aps.Options = APSOptionEnableRouteDiscovery | APSOptionEnableAddressDiscover
		if f.APSAck {
			aps.Options |= APSOptionRetry
		}
		params = SendUnicast{Type: OutgoingDirect, Dest: f.DstShort, Aps: aps, Tag: tag, Message: f.Payload}.Append(nil, v)
	}
	rf, err := s.command(ctx, id, params)
	if err != nil {
		return fmt.Errorf("send to 0x%04x: %w", f.DstShort, err)
	}
	r, err := DecodeSendResponse(rf.Params, v)
	if err != nil {
		return fmt.Errorf("send to 0x%04x: %w", f.DstShort, err)
	}
	if !r.Status.OK() {
		return &ncp.SendError{DstShort: f.DstShort, Status: fmt.Sprintf("%s refused: %s", FrameName(id), r.Status)}
	}
	t := time.NewTimer(d.to.Send)
	defer t.Stop()
	return d.awaitSent(ctx, f, ch, t.C, "")
}

// awaitSent waits for the messageSentHandler of one sendUnicast/sendBroadcast (what names a fragment, or "").
func (d *Driver) awaitSent(ctx context.Context, f ncp.Frame, ch <-chan sendResult, timeout <-chan time.Time, what string) error {
	select {
	case res := <-ch:
		if res.err != nil {
			return fmt.Errorf("send to 0x%04x%s: %w", f.DstShort, what, res.err)
		}
		if !res.m.Status.OK() {
			status := res.m.Status.String()
			if f.APSAck && !f.IsBroadcast() {
				status += " (no APS ack)"
			}
			status += what
			d.log.Debug().Uint16("short", f.DstShort).Uint16("cluster", f.ClusterID).Str("status", status).Msg("send failed")
			return &ncp.SendError{DstShort: f.DstShort, Status: status}
		}
		return nil
	case <-timeout:
		return &ncp.SendError{DstShort: f.DstShort, Status: fmt.Sprintf("no messageSentHandler within %v%s", d.to.Send, what)}
	case <-ctx.Done():
		return fmt.Errorf("send to 0x%04x%s: %w", f.DstShort, what, ctx.Err())
	case <-d.ctx.Done():
		return ncp.ErrClosed
	}
}

// MACCounters reads and clears the stick's counters (readAndClearCounters) and returns its MAC unicast counts
// since the previous read (ncp.MACCounter). Nothing else in otabridge clears them.
func (d *Driver) MACCounters(ctx context.Context) (ncp.MACCounts, error) {
	s, err := d.link.Ready()
	if err != nil {
		return ncp.MACCounts{}, err
	}
	rf, err := s.command(ctx, IDReadAndClearCounters, nil)
	if err != nil {
		return ncp.MACCounts{}, fmt.Errorf("read the stick's counters: %w", err)
	}
	c, err := DecodeCounters(rf.Params)
	if err != nil {
		return ncp.MACCounts{}, err
	}
	m := c.MAC()
	d.log.Debug().Int("mac_unicasts", m.Unicasts).Int("mac_retries", m.Retries).Int("mac_failed", m.Failed).
		Int("cca_failures", m.CCAFailures).Msg("stick counters")
	return m, nil
}

var _ ncp.MACCounter = (*Driver)(nil)

// MaxFragmentedPayload returns the largest APS payload Send carries APS-fragmented (ncp.Fragmenter; 0 when
// max_fragmented_payload turned host fragmentation off).
func (d *Driver) MaxFragmentedPayload() int { return max(d.cfg.MaxFragmentedPayload, 0) }

var _ ncp.Fragmenter = (*Driver)(nil)

// sendFragmented sends a payload larger than the unfragmented limit as an EmberZNet host does: fragments of
// MaxAPSPayload − 2 bytes, each a sendUnicast with EMBER_APS_OPTION_FRAGMENT set and the fragment's number
// in the low byte of the APS frame's groupId (the first fragment, number 0, carries the fragment count in the
// high byte), every fragment with the APS sequence number the stick chose for the first. Fragments go out a
// window (fragment_window) at a time; the stick confirms each fragment of a window (messageSentHandler) when
// the destination's APS ack of that window arrives, and the next window follows. The Frame is confirmed when
// the last window is, or fails with the first fragment's failure.
func (d *Driver) sendFragmented(ctx context.Context, s *session, f ncp.Frame) error {
	v := s.ver()
	size := d.MaxAPSPayload() - FragmentHeaderBytes
	count := (len(f.Payload) + size - 1) / size
	window := d.fragmentWindow()
	aps := ApsFrame{ProfileID: f.ProfileID, ClusterID: f.ClusterID, SrcEndpoint: f.SrcEndpoint, DstEndpoint: f.DstEndpoint,
		Options: APSOptionEnableRouteDiscovery | APSOptionEnableAddressDiscover | APSOptionRetry | APSOptionFragment}
	for base := 0; base < count; base += window {
		n := min(window, count-base)
		if err := d.sendWindow(ctx, s, v, f, &aps, base, n, count, size); err != nil {
			return err
		}
	}
	if e := d.log.Debug(); e.Enabled() {
		d.mu.Lock()
		ieee := d.eui[f.DstShort]
		d.mu.Unlock()
		e.Stringer("ieee", ieee).Uint16("short", f.DstShort).Uint16("cluster", f.ClusterID).Int("bytes", len(f.Payload)).
			Int("fragments", count).Int("window", window).Uint8("aps_seq", aps.Sequence).Msg("fragmented send confirmed")
	}
	return nil
}

// sendWindow sends fragments base..base+n-1 of count and waits for their messageSentHandlers. The window's
// slots in the stick are taken together (one fragmented sender at a time takes several), so two fragmented
// senders never each hold part of a window the stick cannot finish.
func (d *Driver) sendWindow(ctx context.Context, s *session, v Version, f ncp.Frame, aps *ApsFrame, base, n, count, size int) error {
	if err := d.takeSlots(ctx, f.DstShort, n); err != nil {
		return err
	}
	defer func() {
		d.releaseSlots(n)
	}()
	tags := make([]uint16, 0, n)
	chans := make([]chan sendResult, 0, n)
	defer func() {
		d.mu.Lock()
		for _, tag := range tags {
			delete(d.pending, tag)
		}
		d.mu.Unlock()
	}()
	for i := base; i < base+n; i++ {
		what := fmt.Sprintf(" (fragment %d of %d)", i+1, count)
		d.mu.Lock()
		tag, ch := d.allocTag(v)
		d.mu.Unlock()
		tags, chans = append(tags, tag), append(chans, ch)
		aps.GroupID = FragmentGroupID(i, count)
		part := f.Payload[i*size : min((i+1)*size, len(f.Payload))]
		rf, err := s.command(ctx, IDSendUnicast, SendUnicast{Type: OutgoingDirect, Dest: f.DstShort, Aps: *aps, Tag: tag, Message: part}.Append(nil, v))
		if err != nil {
			return fmt.Errorf("send to 0x%04x%s: %w", f.DstShort, what, err)
		}
		r, err := DecodeSendResponse(rf.Params, v)
		if err != nil {
			return fmt.Errorf("send to 0x%04x%s: %w", f.DstShort, what, err)
		}
		if !r.Status.OK() {
			return &ncp.SendError{DstShort: f.DstShort, Status: fmt.Sprintf("%s refused%s: %s", FrameName(IDSendUnicast), what, r.Status)}
		}
		if i == 0 {
			aps.Sequence = r.Sequence
		}
	}
	t := time.NewTimer(d.to.Send)
	defer t.Stop()
	for k, ch := range chans {
		if err := d.awaitSent(ctx, f, ch, t.C, fmt.Sprintf(" (fragment %d of %d)", base+k+1, count)); err != nil {
			return err
		}
	}
	return nil
}

// takeSlots takes n send slots at once (see sendWindow).
func (d *Driver) takeSlots(ctx context.Context, dst uint16, n int) error {
	d.fragMu.Lock()
	defer d.fragMu.Unlock()
	for k := range n {
		select {
		case d.sendSlots <- struct{}{}:
		case <-ctx.Done():
			d.releaseSlots(k)
			return fmt.Errorf("send to 0x%04x: waiting for room in the stick: %w", dst, ctx.Err())
		case <-d.ctx.Done():
			d.releaseSlots(k)
			return ncp.ErrClosed
		}
	}
	return nil
}

func (d *Driver) releaseSlots(n int) {
	for range n {
		<-d.sendSlots
	}
}

// fragmentWindow is the window the driver keeps and sets in the stick: fragment_window, but no more than
// max_in_flight (a window's fragments all wait in the stick).
func (d *Driver) fragmentWindow() int { return min(d.cfg.FragmentWindow, d.cfg.MaxInFlight) }

// FragmentGroupID is the EmberApsFrame groupId of fragment i (from 0) of count: i in the low byte, and for
// the first fragment the count in the high byte.
func FragmentGroupID(i, count int) uint16 {
	if i == 0 {
		return uint16(count) << 8
	}
	return uint16(i)
}

// MaxDataLenForSend is the largest payload one sendUnicast frame can carry over ASH (a DATA field is at most
// 128 bytes; the v14 sendBroadcast header takes 27 of them).
const MaxDataLenForSend = 100

// PermitJoin opens (seconds > 0) or closes (0) the network for joining: the trust-center policy, the well-known
// link key as transient key for any EUI64 (v13+), permitJoining on the coordinator, and a broadcast ZDO
// Mgmt_Permit_Joining_req so that routers open too (EZSP has no network-wide permit command).
func (d *Driver) PermitJoin(ctx context.Context, seconds uint8) error {
	s, err := d.link.Ready()
	if err != nil {
		return err
	}
	decision := DecisionAllowUnsecuredRejoins
	if seconds > 0 {
		if _, err := s.statusCommand(ctx, IDImportTransientKey, ImportTransientKey{EUI64: AnyEUI64, Key: WellKnownLinkKey}.Append(nil, s.ver())); err != nil {
			d.log.Warn().Err(err).Msg("importTransientKey failed; joining relies on the trust-center policy")
		}
		decision |= DecisionAllowJoins
	}
	if _, err := s.statusCommand(ctx, IDSetPolicy, Policy{ID: PolicyTrustCenter, Decision: decision}.Append(nil)); err != nil {
		return fmt.Errorf("permit join: %w", err)
	}
	if _, err := s.statusCommand(ctx, IDPermitJoining, []byte{seconds}); err != nil {
		return fmt.Errorf("permit join: %w", err)
	}
	d.mu.Lock()
	d.zdoSeq++
	seq := d.zdoSeq
	d.mu.Unlock()
	err = d.Send(ctx, ncp.Frame{DstShort: ncp.BroadcastRouters, ProfileID: 0x0000, ClusterID: zdoMgmtPermitJoinReq, Payload: []byte{seq, seconds, 1}})
	if err != nil {
		return fmt.Errorf("permit join: broadcast Mgmt_Permit_Joining_req: %w", err)
	}
	d.log.Info().Uint8("seconds", seconds).Msg("permit join")
	return nil
}

// ZDO clusters.
const (
	zdoDeviceAnnce       uint16 = 0x0013
	zdoMgmtPermitJoinReq uint16 = 0x0036
)

// LookupIEEE returns the IEEE address of a short address: from the cache of joins and announcements, else by
// asking the stick (lookupEui64ByNodeId; a failed answer is remembered for ncp.LookupMissTTL).
func (d *Driver) LookupIEEE(ctx context.Context, short uint16) (zcl.IEEE, error) {
	d.mu.Lock()
	ieee, ok := d.eui[short]
	d.mu.Unlock()
	if ok {
		return ieee, nil
	}
	if err := d.euiMiss.Recent(short); err != nil {
		return 0, err
	}
	s, err := d.link.Ready()
	if err != nil {
		return 0, err
	}
	f, err := s.command(ctx, IDLookupEUI64ByNodeID, le16(nil, short))
	if err != nil {
		return 0, err
	}
	r, err := DecodeLookupEUI64Response(f.Params, s.ver())
	if err != nil {
		return 0, err
	}
	if !r.Status.OK() || r.EUI64 == 0 {
		d.euiMiss.Missed(short)
		return 0, fmt.Errorf("lookup IEEE of 0x%04x: %s", short, r.Status)
	}
	d.learn(short, r.EUI64)
	return r.EUI64, nil
}

func (d *Driver) learn(short uint16, ieee zcl.IEEE) {
	if ieee == 0 {
		return
	}
	d.mu.Lock()
	d.eui[short] = ieee
	d.mu.Unlock()
	d.euiMiss.Forget(short)
}

// callbackLoop handles the stick's callbacks in order.
func (d *Driver) callbackLoop() {
	for {
		it, ok := d.callbacks.Pop(d.ctx.Done())
		if !ok {
			return
		}
		d.handleCallback(it)
	}
}

func (d *Driver) handleCallback(it callbackItem) {
	f, v := it.f, it.version
	switch f.FrameID {
	case IDStackStatusHandler:
		st, err := DecodeStatus(f.Params, v, "stackStatusHandler")
		if err != nil {
			d.log.Warn().Err(err).Msg("bad callback")
			return
		}
		d.onStackStatus(it.s, st)
	case IDMessageSentHandler:
		m, err := DecodeMessageSent(f.Params, v)
		if err != nil {
			d.log.Warn().Err(err).Msg("bad callback")
			return
		}
		d.mu.Lock()
		ch := d.pending[m.Tag]
		d.mu.Unlock()
		if ch == nil {
			d.log.Debug().Uint16("tag", m.Tag).Msg("messageSentHandler for a send nobody waits for")
			return
		}
		select {
		case ch <- sendResult{m: m}:
		default:
		}
	case IDIncomingMessageHandler:
		m, err := DecodeIncomingMessage(f.Params, v)
		if err != nil {
			d.log.Warn().Err(err).Msg("bad callback")
			return
		}
		d.onIncoming(it.s, m)
	case IDIncomingSenderEUI64Handler:
		eui, err := DecodeEUI64(f.Params, "incomingSenderEui64Handler")
		if err == nil {
			d.mu.Lock()
			d.nextSender = eui
			d.mu.Unlock()
		}
	case IDTrustCenterJoinHandler:
		m, err := DecodeTrustCenterJoin(f.Params)
		if err != nil {
			d.log.Warn().Err(err).Msg("bad callback")
			return
		}
		d.onTrustCenterJoin(m)
	case IDChildJoinHandler:
		m, err := DecodeChildJoin(f.Params)
		if err == nil && m.Joining {
			d.learn(m.ChildID, m.EUI64)
		}
	default:
		d.log.Debug().Str("frame", FrameName(f.FrameID)).Hex("params", f.Params).Msg("callback ignored")
	}
}

func (d *Driver) onStackStatus(s *session, st Status) {
	current := d.link.Current(s)
	d.mu.Lock()
	if current {
		switch {
		case st.Is(StatusNetworkUp):
			d.netUp = true
		case st.Is(StatusNetworkDown):
			d.netUp = false
		}
		close(d.netChanged)
		d.netChanged = make(chan struct{})
	}
	d.mu.Unlock()
	trouble := current && st.Is(StatusNetworkDown) && d.link.Healthy(s)
	d.log.Info().Str("status", st.String()).Msg("stack status")
	if trouble {
		d.link.Raise(s, ncp.TroubleNetworkDown, nil)
	}
}

func (d *Driver) onTrustCenterJoin(m TrustCenterJoin) {
	switch {
	case m.Status == DeviceLeft:
		d.mu.Lock()
		delete(d.eui, m.NodeID)
		d.mu.Unlock()
		d.log.Info().Stringer("ieee", m.EUI64).Uint16("short", m.NodeID).Msg("device left")
		d.emit(ncp.Event{Kind: ncp.EventLeft, Short: m.NodeID, IEEE: m.EUI64})
	case m.Decision == JoinDeny:
		d.log.Info().Stringer("ieee", m.EUI64).Uint16("short", m.NodeID).Msg("join denied by the trust-center policy")
	default:
		d.learn(m.NodeID, m.EUI64)
		d.log.Info().Stringer("ieee", m.EUI64).Uint16("short", m.NodeID).Uint16("parent", m.ParentID).Uint8("status", m.Status).Msg("device joined")
		d.emit(ncp.Event{Kind: ncp.EventJoined, Short: m.NodeID, IEEE: m.EUI64})
	}
}

func (d *Driver) onIncoming(s *session, m IncomingMessage) {
	if m.Type == IncomingBroadcastLoopback || m.Type == IncomingMulticastLoopback {
		return
	}
	ieee := m.SenderEUI64
	d.mu.Lock()
	if ieee == 0 && d.nextSender != 0 {
		ieee = d.nextSender
	}
	d.nextSender = 0
	if ieee == 0 {
		ieee = d.eui[m.Sender]
	}
	d.mu.Unlock()
	if m.Aps.ProfileID == 0 && m.Aps.ClusterID == zdoDeviceAnnce && len(m.Message) >= 12 {
		short := binary.LittleEndian.Uint16(m.Message[1:3])
		annIEEE := zcl.IEEE(binary.LittleEndian.Uint64(m.Message[3:11]))
		d.learn(short, annIEEE)
		d.log.Info().Stringer("ieee", annIEEE).Uint16("short", short).Uint8("capabilities", m.Message[11]).Msg("device announce")
		d.emit(ncp.Event{Kind: ncp.EventAnnounced, Short: short, IEEE: annIEEE, Capabilities: m.Message[11]})
		return
	}
	if ieee == 0 {
		ctx, cancel := context.WithTimeout(d.ctx, time.Second)
		if got, err := d.LookupIEEE(ctx, m.Sender); err == nil {
			ieee = got
		}
		cancel()
	} else {
		d.learn(m.Sender, ieee)
	}
	if e := d.log.Debug(); e.Enabled() {
		e.Stringer("ieee", ieee).Uint16("short", m.Sender).Uint16("cluster", m.Aps.ClusterID).Uint8("lqi", m.LQI).Int8("rssi", m.RSSI).Hex("payload", m.Message).Msg("frame in")
	}
	d.emit(ncp.Event{Kind: ncp.EventFrame, Short: m.Sender, IEEE: ieee, Frame: ncp.Incoming{
		SrcShort: m.Sender, SrcIEEE: ieee, SrcEndpoint: m.Aps.SrcEndpoint, DstEndpoint: m.Aps.DstEndpoint,
		ClusterID: m.Aps.ClusterID, ProfileID: m.Aps.ProfileID,
		Broadcast: m.Type == IncomingBroadcast || m.Type == IncomingMulticast,
		LQI:       m.LQI, RSSI: m.RSSI, Payload: m.Message,
	}})
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
