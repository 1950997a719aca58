package znp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/fifo"
	"github.com/otabridge/otabridge/ncp/serialport"
	"github.com/otabridge/otabridge/zcl"
)

// MaxAPSPayloadCap is the largest APS payload the driver reports: the unfragmented limit of a NWK-secured
// unicast without APS encryption or source route on an 802.15.4 frame (82 bytes, the same air format as
// EmberZNet's figure). Z-Stack has no MT command that reports it.
const MaxAPSPayloadCap = 82

// Errors of the driver.
var (
	ErrUnsupportedStick = errors.New("unsupported stick")
	ErrNotReady         = errors.New("radio not ready")
)

// Driver is the Z-Stack ZNP coordinator driver: an ncp.Radio over a serial port (or any byte stream,
// WithOpener).
//
// Goroutines: per connection, the Conn's reader and a watcher of the port; for the driver's life (Start to
// Close), one callback goroutine (AREQs in order), one event pump (to Events) and one supervisor (stick
// resets and reconnects). Close stops all of them.
type Driver struct {
	cfg    Config
	cfgErr error
	log    zerolog.Logger
	open   Opener
	to     Timeouts

	events    chan ncp.Event
	evq       *fifo.Queue[ncp.Event]
	callbacks *fifo.Queue[callbackItem]

	life *ncp.Lifecycle
	ctx  context.Context        // life.Ctx: cancelled by Close
	link *ncp.Supervisor[*Conn] // the current connection, whether it is ready, and its repair

	mu        sync.Mutex
	info      ncp.NetworkInfo
	network   ncp.NetworkSettings
	version   Version
	waiters   []*waiter
	pending   map[uint8]chan DataConfirm
	zdoTSN    map[uint32]uint8 // (destination, response cluster) → the TSN of the last request
	nextTrans uint8
	ieee      map[uint16]zcl.IEEE
	ieeeMiss  ncp.LookupMisses
}

type callbackItem struct {
	c *Conn
	f Frame
}

// waiter is a bring-up step waiting for a callback.
type waiter struct {
	c     *Conn
	match func(Frame) bool
	ch    chan Frame
}

// New makes a driver; nothing is opened until Start. Close must be called, also after a failed Start.
func New(cfg Config, log zerolog.Logger, opts ...Option) *Driver {
	cfg, err := cfg.withDefaults()
	life := ncp.NewLifecycle("znp")
	d := &Driver{
		cfg: cfg, cfgErr: err,
		log:       log.With().Str("radio", "znp").Str("port", cfg.Port).Logger(),
		to:        DefaultTimeouts,
		events:    make(chan ncp.Event),
		evq:       fifo.New[ncp.Event](),
		callbacks: fifo.New[callbackItem](),
		life:      life, ctx: life.Ctx,
		link:    ncp.NewSupervisor[*Conn](life, ErrNotReady),
		pending: make(map[uint8]chan DataConfirm),
		ieee:    make(map[uint16]zcl.IEEE),
		zdoTSN:  make(map[uint32]uint8),
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

// MaxAPSPayload returns the largest unfragmented APS payload (MaxAPSPayloadCap).
func (d *Driver) MaxAPSPayload() int { return MaxAPSPayloadCap }

// Info returns the NetworkInfo of the last successful initialisation.
func (d *Driver) Info() ncp.NetworkInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info
}

// Network returns the network in use after Start: the one formed or the one resumed (its key as the stick's
// NV holds it). The bridge saves it in its data directory and passes it back in Config.Network.
func (d *Driver) Network() ncp.NetworkSettings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.network
}

// Version returns what SYS_VERSION reported at the last initialisation.
func (d *Driver) Version() Version {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Start opens the port, finds a Z-Stack 3.x stick, resets it, resumes the stored network or forms one, and
// registers endpoint 1. Each failure names its step.
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
	if c, ok := d.link.Take(); ok {
		c.Close()
	}
	d.failPending()
	d.life.Wait()
	close(d.events)
	return nil
}

// sessionHooks are the driver's part in the supervisor's keeping of its connection: an MT Conn on a newly
// opened port, initialised by initialize.
func (d *Driver) sessionHooks() ncp.SessionHooks[*Conn] {
	return ncp.SessionHooks[*Conn]{
		OpenPort: d.open,
		NewSession: func(port io.ReadWriteCloser) *Conn {
			var c *Conn
			c = NewConn(port, d.to.Command, func(f Frame) { d.onFrame(c, f) }, d.log)
			return c
		},
		Initialize:   d.initialize,
		Done:         (*Conn).Done,
		Err:          (*Conn).Err,
		ErrClosed:    ErrConnClosed,
		Close:        func(c *Conn) { c.Close() },
		FailPending:  func(*Conn, error) { d.failPending() },
		Emit:         d.emit,
		ReconnectMin: d.to.ReconnectMin,
		ReconnectMax: d.to.ReconnectMax,
		Log:          d.log,
	}
}

// onFrame runs on the reader goroutine: bring-up waiters first, then the callback queue.
func (d *Driver) onFrame(c *Conn, f Frame) {
	d.mu.Lock()
	for i, w := range d.waiters {
		if w.c == c && w.match(f) {
			d.waiters = append(d.waiters[:i:i], d.waiters[i+1:]...)
			d.mu.Unlock()
			w.ch <- f
			return
		}
	}
	d.mu.Unlock()
	d.callbacks.Push(callbackItem{c: c, f: f})
}

// expect registers a wait for a callback that matches; call it before the request that causes it.
func (d *Driver) expect(c *Conn, match func(Frame) bool) *waiter {
	w := &waiter{c: c, match: match, ch: make(chan Frame, 1)}
	d.mu.Lock()
	d.waiters = append(d.waiters, w)
	d.mu.Unlock()
	return w
}

func (d *Driver) cancelWait(w *waiter) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, x := range d.waiters {
		if x == w {
			d.waiters = append(d.waiters[:i:i], d.waiters[i+1:]...)
			return
		}
	}
}

// await waits for the waiter's callback.
func (d *Driver) await(ctx context.Context, w *waiter, timeout time.Duration, what string) (Frame, error) {
	defer d.cancelWait(w)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f := <-w.ch:
		return f, nil
	case <-t.C:
		return Frame{}, fmt.Errorf("%s: nothing within %v", what, timeout)
	case <-ctx.Done():
		return Frame{}, fmt.Errorf("%s: %w", what, ctx.Err())
	case <-w.c.Done():
		return Frame{}, fmt.Errorf("%s: %w", what, w.c.Err())
	}
}

func isCallback(cmd Command) func(Frame) bool {
	return func(f Frame) bool { return f.Type == TypeAREQ && f.Command() == cmd }
}

// emit queues an event for Events; it never blocks.
func (d *Driver) emit(ev ncp.Event) { d.evq.Push(ev) }

// pumpEvents hands the queued events to Events until Close.
func (d *Driver) pumpEvents() { d.evq.PumpTo(d.events, d.ctx.Done()) }

// failPending ends every send waiting for a confirm (the stick reset or the port went).
func (d *Driver) failPending() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, ch := range d.pending {
		close(ch)
		delete(d.pending, id)
	}
}

// allocTrans reserves a transaction id and its confirm channel; d.mu held.
func (d *Driver) allocTrans() (uint8, chan DataConfirm, error) {
	for range 256 {
		d.nextTrans++
		if _, busy := d.pending[d.nextTrans]; !busy {
			ch := make(chan DataConfirm, 1)
			d.pending[d.nextTrans] = ch
			return d.nextTrans, ch, nil
		}
	}
	return 0, nil, errors.New("256 sends already wait for AF_DATA_CONFIRM")
}

// Send transmits one APS frame with AF_DATA_REQUEST (AF_DATA_REQUEST_EXT for broadcasts and payloads too
// long for it) and waits for AF_DATA_CONFIRM: for an APS-acked unicast that is the APS ack or its failure.
func (d *Driver) Send(ctx context.Context, f ncp.Frame) error {
	c, err := d.link.Ready()
	if err != nil {
		return err
	}
	if f.ProfileID == 0 && f.DstEndpoint == 0 {
		return d.sendZDO(ctx, c, f)
	}
	if len(f.Payload) > MaxDataRequestExtLen {
		return fmt.Errorf("send to 0x%04x: payload of %d bytes exceeds what one MT frame carries (%d)", f.DstShort, len(f.Payload), MaxDataRequestExtLen)
	}
	d.mu.Lock()
	trans, ch, err := d.allocTrans()
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("send to 0x%04x: %w", f.DstShort, err)
	}
	defer func() {
		d.mu.Lock()
		if d.pending[trans] == ch {
			delete(d.pending, trans)
		}
		d.mu.Unlock()
	}()
	radius := f.Radius
	if radius == 0 {
		radius = DefaultRadius
	}
	var options uint8
	if f.APSAck && !f.IsBroadcast() {
		options |= TxOptionAPSAck
	}
	src := f.SrcEndpoint
	if src == 0 {
		src = ncp.CoordinatorEndpoint
	}
	cmd, data := AFDataRequest, DataRequest{DstAddr: f.DstShort, DstEP: f.DstEndpoint, SrcEP: src, ClusterID: f.ClusterID,
		TransID: trans, Options: options, Radius: radius, Data: f.Payload}.Append(nil)
	if f.IsBroadcast() || len(f.Payload) > MaxDataRequestLen {
		mode := AddrModeShort
		if f.IsBroadcast() {
			mode = AddrModeBroadcast
		}
		cmd, data = AFDataRequestExt, DataRequestExt{AddrMode: mode, DstAddr: uint64(f.DstShort), DstEP: f.DstEndpoint, SrcEP: src,
			ClusterID: f.ClusterID, TransID: trans, Options: options, Radius: radius, Data: f.Payload}.Append(nil)
	}
	if err := c.StatusRequest(ctx, cmd, data); err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			return &ncp.SendError{DstShort: f.DstShort, Status: fmt.Sprintf("%s refused: %s", cmd, StatusName(se.Status))}
		}
		return fmt.Errorf("send to 0x%04x: %w", f.DstShort, err)
	}
	if f.IsBroadcast() {
		return nil // Z-Stack's confirm of a broadcast says only that it went out; the SRSP says as much
	}
	t := time.NewTimer(d.to.Send)
	defer t.Stop()
	select {
	case conf, ok := <-ch:
		if !ok {
			return fmt.Errorf("send to 0x%04x: %w", f.DstShort, d.link.NotReady())
		}
		if conf.Status != StatusSuccess {
			d.log.Debug().Uint16("short", f.DstShort).Uint16("cluster", f.ClusterID).Str("status", StatusName(conf.Status)).Msg("send failed")
			return &ncp.SendError{DstShort: f.DstShort, Status: StatusName(conf.Status)}
		}
		return nil
	case <-t.C:
		return &ncp.SendError{DstShort: f.DstShort, Status: fmt.Sprintf("no AF_DATA_CONFIRM within %v", d.to.Send)}
	case <-ctx.Done():
		return fmt.Errorf("send to 0x%04x: %w", f.DstShort, ctx.Err())
	case <-d.ctx.Done():
		return ncp.ErrClosed
	}
}

// PermitJoin opens (seconds > 0) or closes (0) the whole network for joining: ZDO_MGMT_PERMIT_JOIN_REQ
// broadcast to the coordinator and every router, with trust-center significance.
func (d *Driver) PermitJoin(ctx context.Context, seconds uint8) error {
	c, err := d.link.Ready()
	if err != nil {
		return err
	}
	req := PermitJoinReq{AddrMode: AddrModeBroadcast, DstAddr: ncp.BroadcastRouters, Duration: seconds, TCSignificance: 1}
	if err := c.StatusRequest(ctx, ZDOMgmtPermitJoin, req.Append(nil)); err != nil {
		return fmt.Errorf("permit join: %w", err)
	}
	d.log.Info().Uint8("seconds", seconds).Msg("permit join")
	return nil
}

// LookupIEEE returns the IEEE address of a short address: from the joins and announcements seen, else from
// the stick's address manager (UTIL_ADDRMGR_NWK_ADDR_LOOKUP).
func (d *Driver) LookupIEEE(ctx context.Context, short uint16) (zcl.IEEE, error) {
	d.mu.Lock()
	ieee, ok := d.ieee[short]
	d.mu.Unlock()
	if ok {
		return ieee, nil
	}
	if err := d.ieeeMiss.Recent(short); err != nil {
		return 0, err
	}
	c, err := d.link.Ready()
	if err != nil {
		return 0, err
	}
	b, err := c.Request(ctx, UtilAddrMgrNwkAddr, le16(nil, short), 0)
	if err != nil {
		return 0, err
	}
	ieee, err = DecodeIEEE(b, UtilAddrMgrNwkAddr.String())
	if err != nil {
		return 0, err
	}
	if ieee == 0 || ieee == zcl.IEEE(^uint64(0)) {
		d.ieeeMiss.Missed(short)
		return 0, fmt.Errorf("lookup IEEE of 0x%04x: the stick does not know the device", short)
	}
	d.learn(short, ieee)
	return ieee, nil
}

func (d *Driver) learn(short uint16, ieee zcl.IEEE) {
	if ieee == 0 {
		return
	}
	d.mu.Lock()
	d.ieee[short] = ieee
	d.mu.Unlock()
	d.ieeeMiss.Forget(short)
}

// callbackLoop handles the stick's AREQs in order.
func (d *Driver) callbackLoop() {
	for {
		it, ok := d.callbacks.Pop(d.ctx.Done())
		if !ok {
			return
		}
		d.handleCallback(it.c, it.f)
	}
}

func (d *Driver) handleCallback(c *Conn, f Frame) {
	var err error
	switch f.Command() {
	case SysResetInd:
		var m ResetInd
		if m, err = DecodeResetInd(f.Data); err == nil {
			d.onReset(c, m)
		}
	case AFDataConfirm:
		var m DataConfirm
		if m, err = DecodeDataConfirm(f.Data); err == nil {
			d.mu.Lock()
			ch := d.pending[m.TransID]
			delete(d.pending, m.TransID)
			d.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	case AFIncomingMsg, AFIncomingMsgExt:
		var m IncomingMsg
		if f.Command() == AFIncomingMsg {
			m, err = DecodeIncomingMsg(f.Data)
		} else {
			m, err = DecodeIncomingMsgExt(f.Data)
		}
		if err == nil {
			d.onIncoming(m)
		}
	case ZDOTCDevInd:
		var m TCDevInd
		if m, err = DecodeTCDevInd(f.Data); err == nil {
			d.learn(m.NwkAddr, m.IEEE)
			d.log.Info().Stringer("ieee", m.IEEE).Uint16("short", m.NwkAddr).Uint16("parent", m.ParentAddr).Msg("device joined")
			d.emit(ncp.Event{Kind: ncp.EventJoined, Short: m.NwkAddr, IEEE: m.IEEE, Parent: m.ParentAddr})
		}
	case ZDOEndDeviceAnnce:
		var m EndDeviceAnnce
		if m, err = DecodeEndDeviceAnnce(f.Data); err == nil {
			d.learn(m.NwkAddr, m.IEEE)
			d.log.Info().Stringer("ieee", m.IEEE).Uint16("short", m.NwkAddr).Uint8("capabilities", m.Capabilities).Msg("device announce")
			d.emit(ncp.Event{Kind: ncp.EventAnnounced, Short: m.NwkAddr, IEEE: m.IEEE, Capabilities: m.Capabilities})
		}
	case ZDOLeaveInd:
		var m LeaveInd
		if m, err = DecodeLeaveInd(f.Data); err == nil && m.Rejoin == 0 {
			d.mu.Lock()
			delete(d.ieee, m.NwkAddr)
			d.mu.Unlock()
			d.log.Info().Stringer("ieee", m.IEEE).Uint16("short", m.NwkAddr).Msg("device left")
			d.emit(ncp.Event{Kind: ncp.EventLeft, Short: m.NwkAddr, IEEE: m.IEEE})
		}
	case ZDOStateChangeInd:
		var st uint8
		if st, err = DecodeStateChangeInd(f.Data); err == nil {
			d.log.Info().Uint8("state", st).Msg("device state changed")
		}
	default:
		if f.Subsystem == SubZDO && f.ID >= 0x80 && f.ID < 0xC0 {
			err = d.onZDOResponse(f)
			break
		}
		d.log.Debug().Stringer("cmd", f.Command()).Hex("data", f.Data).Msg("callback ignored")
	}
	if err != nil {
		d.log.Warn().Err(err).Hex("data", f.Data).Msg("undecodable callback from the stick")
	}
}

// onReset: a SYS_RESET_IND nobody asked for means the stick restarted under us.
func (d *Driver) onReset(c *Conn, m ResetInd) {
	trouble := d.link.Healthy(c)
	d.log.Warn().Uint8("reason", m.Reason).Msg("the stick reset")
	if trouble {
		d.link.Raise(c, ncp.TroubleReset, fmt.Errorf("SYS_RESET_IND reason %d", m.Reason))
	}
}

func (d *Driver) onIncoming(m IncomingMsg) {
	short := uint16(m.SrcAddr)
	var ieee zcl.IEEE
	if m.SrcAddrMode == AddrModeIEEE {
		ieee, short = zcl.IEEE(m.SrcAddr), 0xFFFE
		d.mu.Lock()
		for s, v := range d.ieee {
			if v == ieee {
				short = s
			}
		}
		d.mu.Unlock()
	} else {
		d.mu.Lock()
		ieee = d.ieee[short]
		d.mu.Unlock()
		if ieee == 0 {
			ctx, cancel := context.WithTimeout(d.ctx, time.Second)
			if got, err := d.LookupIEEE(ctx, short); err == nil {
				ieee = got
			}
			cancel()
		}
	}
	if e := d.log.Debug(); e.Enabled() {
		e.Stringer("ieee", ieee).Uint16("short", short).Uint16("cluster", m.ClusterID).Uint8("lqi", m.LQI).Hex("payload", m.Data).Msg("frame in")
	}
	d.emit(ncp.Event{Kind: ncp.EventFrame, Short: short, IEEE: ieee, Frame: ncp.Incoming{
		SrcShort: short, SrcIEEE: ieee, SrcEndpoint: m.SrcEP, DstEndpoint: m.DstEP, ClusterID: m.ClusterID,
		ProfileID: zcl.ProfileHomeAutomation, // AF carries no profile: it is the registered endpoint's
		Broadcast: m.WasBroadcast != 0, LQI: m.LQI, Payload: m.Data,
	}})
}
