// Package zboss owns otabridge's ZBOSS NCP driver: the ZBOSS NCP serial protocol (DSR/Nordic) that the
// esp-coordinator firmware for ESP32-C6/C5/H2 and Nordic's ZBOSS NCP firmware for nRF52840 speak — the
// low-level frames (signature, length, type, flags with packet/ACK numbers and the retransmit bit, header
// CRC8, body CRC16) with ACKs and retransmission, the high-level packets (version, type, call id, TSN,
// status category and code) with requests matched to responses by TSN, and indications — and an ncp.Radio
// on top: reset, version check, resume of the network in the stick's NVRAM or formation, trust-center
// policies, endpoint 1, permit join, APSDE data requests and indications, device join/announce/leave, and
// recovery from a stick reset or a lost port. The fake NCP that hosts ncp/sim is in ncp/zboss/fakestick.
package zboss

import (
	"context"
	"crypto/rand"
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

// MaxAPSPayload is the largest APS payload the driver reports for an unfragmented unicast one hop away:
// a 127-byte PHY frame less the MAC header and FCS (11), the NWK header (8) with its security auxiliary
// header and MIC (18), and the APS header (8) — the same 82 bytes as an EmberZNet NCP; otabridge sets no APS
// encryption on OTA traffic.
const MaxAPSPayload = 82

// DefaultBaud is the UART speed of esp-coordinator and nRF52840 ZBOSS NCP firmware.
const DefaultBaud = 115200

// Errors of the driver.
var (
	ErrUnsupportedStick = errors.New("unsupported stick")
	ErrNotReady         = errors.New("radio not ready")
)

// Config configures the driver (the `radio:` section when `type: zboss`).
type Config struct {
	Port        string
	Baud        int    // default 115200
	FlowControl string // none (default) or hardware (RTS/CTS)
	// Network is the network to form when the stick has none (or another one); zero fields are chosen at
	// random. After Start, Driver.Network returns the network in use, which the bridge saves.
	Network ncp.NetworkSettings
}

// Timeouts are the driver's waits; zero fields take DefaultTimeouts.
type Timeouts struct {
	Reset        time.Duration // NCP_RESET until its response (10 s)
	Command      time.Duration // any other call (5 s)
	Formation    time.Duration // NWK_FORMATION (20 s)
	Send         time.Duration // APSDE-DATA.request until its confirm (30 s: sleepy end devices)
	ReconnectMin time.Duration // first back-off after the port vanished (0.5 s)
	ReconnectMax time.Duration // longest back-off (30 s)
	AckTimeout   time.Duration // low-level ACK wait before a retransmission (500 ms)
}

// DefaultTimeouts are the production waits.
var DefaultTimeouts = Timeouts{Reset: 10 * time.Second, Command: 5 * time.Second, Formation: 20 * time.Second, Send: 30 * time.Second,
	ReconnectMin: 500 * time.Millisecond, ReconnectMax: 30 * time.Second, AckTimeout: 500 * time.Millisecond}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	for _, p := range []struct{ v, def *time.Duration }{{&t.Reset, &d.Reset}, {&t.Command, &d.Command}, {&t.Formation, &d.Formation},
		{&t.Send, &d.Send}, {&t.ReconnectMin, &d.ReconnectMin}, {&t.ReconnectMax, &d.ReconnectMax}, {&t.AckTimeout, &d.AckTimeout}} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return t
}

// Opener opens the byte stream to the stick.
type Opener func(ctx context.Context) (io.ReadWriteCloser, error)

// Option changes how a Driver is built.
type Option func(*Driver)

// WithOpener replaces the serial port (an in-memory pipe to a fake NCP in tests); it is called again to
// reconnect.
func WithOpener(open Opener) Option { return func(d *Driver) { d.open = open } }

// WithTimeouts replaces the default waits.
func WithTimeouts(t Timeouts) Option { return func(d *Driver) { d.to = t.withDefaults() } }

// Driver is the ZBOSS coordinator driver.
//
// Goroutines: per connection, the link's reader and the session's reader (both end when the port closes);
// for the driver's life (Start to Close), the indication handler, the event pump and the supervisor
// (resets, reconnects). Close stops all of them.
type Driver struct {
	cfg    Config
	cfgErr error
	log    zerolog.Logger
	open   Opener
	to     Timeouts

	events chan ncp.Event
	evq    *fifo.Queue[ncp.Event]

	life *ncp.Lifecycle
	ctx  context.Context           // life.Ctx: cancelled by Close
	link *ncp.Supervisor[*session] // the current session, whether it is ready, and its repair

	mu      sync.Mutex
	info    ncp.NetworkInfo
	network ncp.NetworkSettings
	eui     map[uint16]zcl.IEEE
	euiMiss ncp.LookupMisses
}

// New makes a driver; nothing is opened until Start. Close must be called, also after a failed Start.
func New(cfg Config, log zerolog.Logger, opts ...Option) *Driver {
	var err error
	if cfg.Baud == 0 {
		cfg.Baud = DefaultBaud
	}
	if cfg.FlowControl, err = serialport.ParseFlow(cfg.FlowControl); err == nil {
		switch {
		case cfg.Network.Channel != 0 && (cfg.Network.Channel < 11 || cfg.Network.Channel > 26):
			err = fmt.Errorf("radio network channel %d: want 11-26 (or 0 for a random one)", cfg.Network.Channel)
		case cfg.Network.PANID >= 0xFFF7:
			err = fmt.Errorf("radio network pan_id 0x%04x: 0xFFF7-0xFFFF are reserved", cfg.Network.PANID)
		}
	}
	life := ncp.NewLifecycle("zboss")
	d := &Driver{cfg: cfg, cfgErr: err, log: log.With().Str("radio", "zboss").Str("port", cfg.Port).Logger(), to: DefaultTimeouts,
		events: make(chan ncp.Event), evq: fifo.New[ncp.Event](), life: life, ctx: life.Ctx,
		link: ncp.NewSupervisor[*session](life, ErrNotReady), eui: make(map[uint16]zcl.IEEE)}
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

// MaxAPSPayload returns the largest unfragmented APS payload (see the constant).
func (d *Driver) MaxAPSPayload() int { return MaxAPSPayload }

// Info returns the NetworkInfo of the last successful initialisation.
func (d *Driver) Info() ncp.NetworkInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.info
}

// Network returns the network in use after Start (formed or resumed); the bridge saves it.
func (d *Driver) Network() ncp.NetworkSettings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.network
}

// Start opens the port, resets the stick, checks its versions, resumes the network in its NVRAM when it is
// the wanted one or forms the wanted one, sets the trust-center policies and registers endpoint 1. Each
// failure names its step.
func (d *Driver) Start(ctx context.Context) (ncp.NetworkInfo, error) {
	if d.cfgErr != nil {
		return ncp.NetworkInfo{}, d.cfgErr
	}
	return d.link.Start(ctx, d.sessionHooks(), d.Info, d.pumpEvents)
}

// Close stops the driver, closes the port and then the Events channel.
func (d *Driver) Close() error {
	if !d.life.Close() {
		return nil
	}
	if s, ok := d.link.Take(); ok {
		s.close()
		<-s.done
	}
	d.life.Wait()
	close(d.events)
	return nil
}

// sessionHooks are the driver's part in the supervisor's keeping of its session: a low-level link and a
// session on a newly opened port, with its indication handler, initialised by initialize.
func (d *Driver) sessionHooks() ncp.SessionHooks[*session] {
	return ncp.SessionHooks[*session]{
		OpenPort: d.open,
		NewSession: func(port io.ReadWriteCloser) *session {
			return newSession(NewLink(port, LinkConfig{AckTimeout: d.to.AckTimeout, Log: d.log}))
		},
		Attached:     func(s *session) { d.life.Go(func() { d.handleIndications(s) }) },
		Initialize:   d.initialize,
		Done:         func(s *session) <-chan struct{} { return s.link.Done() },
		Err:          func(s *session) error { return s.link.Err() },
		ErrClosed:    ErrLinkClosed,
		Close:        (*session).close,
		FailPending:  (*session).failPending,
		Emit:         d.emit,
		ReconnectMin: d.to.ReconnectMin,
		ReconnectMax: d.to.ReconnectMax,
		Log:          d.log,
	}
}

// emit queues an event for Events; it never blocks.
func (d *Driver) emit(ev ncp.Event) {
	d.log.Debug().Stringer("event", ev.Kind).Uint16("short", ev.Short).Stringer("ieee", ev.IEEE).Str("reason", ev.Reason).Msg("event")
	d.evq.Push(ev)
}

// pumpEvents hands the queued events to Events until Close.
func (d *Driver) pumpEvents() { d.evq.PumpTo(d.events, d.ctx.Done()) }

// Send transmits one APS frame with APSDE-DATA.request and waits for its confirm (for an APS-acked unicast:
// the APS ack or its failure). A failure the stick reports is an *ncp.SendError.
func (d *Driver) Send(ctx context.Context, f ncp.Frame) error {
	s, err := d.link.Ready()
	if err != nil {
		return err
	}
	if f.ProfileID == 0 {
		if c, ok := zdoCallOf[f.ClusterID]; ok {
			return d.sendZDO(ctx, s, c, f)
		}
	}
	if len(f.Payload) > MaxAPSPayload {
		return fmt.Errorf("zboss: send to 0x%04x: payload of %d bytes exceeds %d", f.DstShort, len(f.Payload), MaxAPSPayload)
	}
	req := DataRequest{DstAddr: zcl.IEEE(f.DstShort), ProfileID: f.ProfileID, ClusterID: f.ClusterID, DstEndpoint: f.DstEndpoint,
		SrcEndpoint: f.SrcEndpoint, Radius: f.Radius, AddrMode: AddrModeShort, Payload: f.Payload}
	if f.APSAck && !f.IsBroadcast() {
		req.TxOptions |= TxOptAck
	}
	_, err = s.call(ctx, CallAPSDEDataReq, req.Append(nil), d.to.Send)
	var ce *CallError
	if errors.As(err, &ce) {
		d.log.Debug().Uint16("short", f.DstShort).Uint16("cluster", f.ClusterID).Stringer("status", ce.Status).Msg("send failed")
		return &ncp.SendError{DstShort: f.DstShort, Status: ce.Status.String()}
	}
	return err
}

// zdoCallOf maps a ZDO request cluster to its NCP call.
var zdoCallOf = func() map[uint16]CallID {
	m := make(map[uint16]CallID, len(ZDOCallCluster))
	for c, cl := range ZDOCallCluster {
		m[cl] = c
	}
	return m
}()

// sendZDO runs a ZDO request (f.Payload: sequence number, then the standard request) through the NCP's ZDO
// call, as ZBOSS NCPs run ZDO themselves, and delivers the response as the frame a device would have sent:
// an EventFrame of profile 0, the response cluster, the same sequence number and the standard layout.
func (d *Driver) sendZDO(ctx context.Context, s *session, c CallID, f ncp.Frame) error {
	if len(f.Payload) < 1 {
		return fmt.Errorf("zboss: ZDO request 0x%04x to 0x%04x without a sequence number", f.ClusterID, f.DstShort)
	}
	seq, req := f.Payload[0], f.Payload[1:]
	params := req
	if ZDOPrefixedByDestination(c) {
		params = append(AppendU16(nil, f.DstShort), req...)
	}
	p, err := s.call(ctx, c, params, d.to.Send)
	var ce *CallError
	if errors.As(err, &ce) && ce.Status.Category != CategoryZDO {
		return &ncp.SendError{DstShort: f.DstShort, Status: ce.Status.String()}
	} else if err != nil && ce == nil {
		return err
	}
	rspCluster := f.ClusterID | 0x8000
	payload := append([]byte{seq}, ZDOResponseFromNCP(rspCluster, p.Status, p.Params)...)
	d.mu.Lock()
	ieee := d.eui[f.DstShort]
	d.mu.Unlock()
	d.emit(ncp.Event{Kind: ncp.EventFrame, Short: f.DstShort, IEEE: ieee, Frame: ncp.Incoming{SrcShort: f.DstShort, SrcIEEE: ieee,
		ClusterID: rspCluster, LQI: 255, Payload: payload}})
	return nil
}

// PermitJoin opens the network for joining for seconds (0 closes it).
func (d *Driver) PermitJoin(ctx context.Context, seconds uint8) error {
	s, err := d.link.Ready()
	if err != nil {
		return err
	}
	if _, err := s.call(ctx, CallNWKPermitJoining, []byte{seconds}, d.to.Command); err != nil {
		return fmt.Errorf("permit join %d s: %w", seconds, err)
	}
	d.log.Info().Uint8("seconds", seconds).Msg("permit join")
	return nil
}

// LookupIEEE returns the IEEE address of a short address from the stick's address table.
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
	p, err := s.call(ctx, CallNWKGetIEEEByShort, AppendU16(nil, short), d.to.Command)
	if err != nil {
		if errors.As(err, new(*CallError)) {
			d.euiMiss.Missed(short) // the stick answered: it does not know the address
		}
		return 0, fmt.Errorf("look up 0x%04x: %w", short, err)
	}
	ieee, err = ReadIEEE(p.Params)
	if err != nil {
		return 0, fmt.Errorf("look up 0x%04x: %w", short, err)
	}
	if ieee == 0 || ieee == zcl.IEEE(^uint64(0)) {
		d.euiMiss.Missed(short)
		return 0, fmt.Errorf("look up 0x%04x: the stick does not know the device", short)
	}
	d.learn(short, ieee)
	return ieee, nil
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

// handleIndications turns the stick's indications into events, in order, until the session ends.
func (d *Driver) handleIndications(s *session) {
	for {
		p, ok := s.indications.Pop(s.done)
		if !ok {
			// Drain what arrived before the reader stopped.
			for {
				p, ok := s.indications.TryPop()
				if !ok {
					return
				}
				d.onIndication(s, p)
			}
		}
		d.onIndication(s, p)
	}
}

func (d *Driver) onIndication(s *session, p Packet) {
	v, err := DecodeIndication(p.CallID, p.Params)
	if err != nil {
		d.log.Warn().Err(err).Stringer("call", p.CallID).Hex("params", p.Params).Msg("undecodable indication dropped")
		return
	}
	switch m := v.(type) {
	case DataIndication:
		d.mu.Lock()
		ieee := d.eui[m.SrcShort]
		d.mu.Unlock()
		d.emit(ncp.Event{Kind: ncp.EventFrame, Short: m.SrcShort, IEEE: ieee, Frame: ncp.Incoming{SrcShort: m.SrcShort, SrcIEEE: ieee,
			SrcEndpoint: m.SrcEndpoint, DstEndpoint: m.DstEndpoint, ClusterID: m.ClusterID, ProfileID: m.ProfileID,
			Broadcast: m.DstShort >= 0xFFF8, LQI: m.LQI, RSSI: m.RSSI, Payload: append([]byte(nil), m.Payload...)}})
	case DevUpdate:
		if m.Status == UpdateLeft {
			d.log.Info().Stringer("ieee", m.IEEE).Uint16("short", m.Short).Msg("device left")
			d.emit(ncp.Event{Kind: ncp.EventLeft, Short: m.Short, IEEE: m.IEEE})
			return
		}
		d.learn(m.Short, m.IEEE)
		d.log.Info().Stringer("ieee", m.IEEE).Uint16("short", m.Short).Uint8("status", m.Status).Msg("device joined")
		d.emit(ncp.Event{Kind: ncp.EventJoined, Short: m.Short, IEEE: m.IEEE, Rejoin: m.Status != UpdateUnsecuredJoin})
	case DevAnnce:
		d.learn(m.Short, m.IEEE)
		d.emit(ncp.Event{Kind: ncp.EventAnnounced, Short: m.Short, IEEE: m.IEEE, Capabilities: m.Capabilities})
	case LeaveInd:
		d.log.Info().Stringer("ieee", m.IEEE).Bool("rejoin", m.Rejoin).Msg("device left (NWK leave)")
		var short uint16
		d.mu.Lock()
		for sh, ie := range d.eui {
			if ie == m.IEEE {
				short = sh
			}
		}
		d.mu.Unlock()
		d.emit(ncp.Event{Kind: ncp.EventLeft, Short: short, IEEE: m.IEEE})
	case uint8: // NCP_RESET_IND
		if !d.link.Healthy(s) {
			return // the reset the driver asked for
		}
		d.link.Raise(s, ncp.TroubleReset, fmt.Errorf("NCP_RESET_IND, reset source %d", m))
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
