// Package fakestick owns otabridge's fake ZBOSS NCP: the NCP side of the ZBOSS NCP serial protocol (the
// low-level frames with ACKs and retransmission, the high-level calls), written in Go, serving a network
// behind it (in production the simulated network of ncp/sim, which NWK_FORMATION and
// NWK_START_WITHOUT_FORMATION move onto the host's network). It answers the calls otabridge's driver and
// zigbee-herdsman 10.9.5's zboss adapter send: versions, role, channel mask, PAN ids, network key,
// trust-center policies, simple descriptors, formation and start without formation, permit join, APSDE
// data requests (answered with the APS confirm), ZDO requests (run against the network; the responses in the
// NCP's layouts), address lookups, and NCP reset (with NVRAM erase); it reports the network's frames, joins,
// announcements and leaves as indications. Its "NVRAM" (the formed network) outlives host sessions, so a
// host that stops and starts again resumes. Faults on request: a reset mid-traffic, the port vanishing.
package fakestick

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/zboss"
	"github.com/otabridge/otabridge/zcl"
)

// Network is what the stick needs from the network behind it (a subset of ncp.Radio; *sim.Network fits).
type Network = sim.StickNetwork

// Versions a default stick reports in GET_MODULE_VERSION: firmware 1.0.0.0, ZBOSS stack 3.11.2.0 (the
// ZBOSS 3.x line of nRF Connect SDK and esp-zigbee-lib 1.x), NCP protocol 2.0.0.0.
const (
	DefaultFirmware uint32 = 0x01000000
	DefaultStack    uint32 = 0x030B0200
	DefaultProtocol uint32 = 0x02000000
)

// Config describes the stick.
type Config struct {
	// EUI64 is the stick's IEEE address (default 0xF4CE36FFFE000001).
	EUI64 zcl.IEEE
	// Firmware, Stack, Protocol are the versions it reports (defaults above).
	Firmware, Stack, Protocol uint32
	// Baud, when > 0, paces the stick's link like a UART of this speed.
	Baud int
	// PrecisePacing busy-waits the end of each paced write (serialport.Pacer.Precise): for measurements.
	PrecisePacing bool
	Log           zerolog.Logger
}

// nvram is what survives resets and host sessions.
type nvram struct {
	joined     bool
	role       uint8
	channel    uint8
	channelMsk uint32
	panID      uint16
	extPANID   zcl.IEEE
	key        [16]byte
}

// Stick is the fake NCP. Make it with New, serve a port with Serve, stop it with Close.
type Stick struct {
	cfg Config
	net Network
	log zerolog.Logger

	mu         sync.Mutex
	nv         nvram
	up         bool // the network runs (since formation or start without formation, until a reset)
	netStarted bool
	link       *zboss.Link
	session    context.Context
	eui        sim.AddressBook
	zdoWait    map[zdoKey]*zdoWaiter
	zdoSeq     uint8
	eps        []sim.EndpointDesc // endpoints the host registered
	apsCounter uint8
	calls      map[string]int
	resets     int
	serving    chan struct{}

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// zdoWaiter answers one ZDO call exactly once: with the device's response (sent from the network event
// pump, so the response goes out before the indications that follow it, as the device sent them) or with a
// failure.
type zdoWaiter struct {
	once    sync.Once
	respond func(zboss.Status, []byte)
	done    chan struct{}
}

func (w *zdoWaiter) answer(st zboss.Status, params []byte) {
	w.once.Do(func() {
		w.respond(st, params)
		close(w.done)
	})
}

type zdoKey struct {
	cluster uint16
	seq     uint8
}

// New makes a stick in front of net and starts reading the network's events (until Close).
func New(net Network, cfg Config) *Stick {
	if cfg.EUI64 == 0 {
		cfg.EUI64 = 0xF4CE36FFFE000001
	}
	if cfg.Firmware == 0 {
		cfg.Firmware = DefaultFirmware
	}
	if cfg.Stack == 0 {
		cfg.Stack = DefaultStack
	}
	if cfg.Protocol == 0 {
		cfg.Protocol = DefaultProtocol
	}
	s := &Stick{cfg: cfg, net: net, log: cfg.Log.With().Str("component", "zboss-fakestick").Logger(),
		zdoWait: make(map[zdoKey]*zdoWaiter), calls: make(map[string]int),
		serving: make(chan struct{}, 1), stop: make(chan struct{})}
	s.nv = factoryNVRAM()
	s.wg.Add(1)
	go s.pumpNetworkEvents()
	return s
}

func factoryNVRAM() nvram { return nvram{role: zboss.RoleNone, panID: 0xFFFF, channelMsk: 0x07FFF800} }

// Close ends Serve and the event reader.
func (s *Stick) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}

func (s *Stick) String() string {
	return fmt.Sprintf("ZBOSS NCP fw %s stack %s protocol %s", zboss.VersionString(s.cfg.Firmware), zboss.VersionString(s.cfg.Stack),
		zboss.VersionString(s.cfg.Protocol))
}

// Calls returns how many calls of each name the stick answered.
func (s *Stick) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// Joined reports whether the stick's NVRAM holds a network, and which.
func (s *Stick) Joined() (bool, ncp.NetworkSettings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nv.joined, ncp.NetworkSettings{Channel: s.nv.channel, PANID: s.nv.panID, ExtendedPANID: s.nv.extPANID, NetworkKey: s.nv.key}
}

// LinkStats returns the low-level counters of the current session (zero when none).
func (s *Stick) LinkStats() zboss.LinkStats {
	s.mu.Lock()
	l := s.link
	s.mu.Unlock()
	if l == nil {
		return zboss.LinkStats{}
	}
	return l.Stats()
}

// Serve speaks the ZBOSS NCP protocol on port until ctx ends, Close, DropPort, or the port fails; it closes
// the port. One port at a time: the stick's network and NVRAM outlive the sessions.
func (s *Stick) Serve(ctx context.Context, port io.ReadWriteCloser) error {
	select {
	case s.serving <- struct{}{}:
	case <-ctx.Done():
		port.Close()
		return ctx.Err()
	case <-s.stop:
		port.Close()
		return errors.New("fakestick closed")
	}
	defer func() { <-s.serving }()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	link := zboss.NewLink(port, zboss.LinkConfig{Baud: s.cfg.Baud, PrecisePacing: s.cfg.PrecisePacing, Log: s.log})
	s.mu.Lock()
	s.link, s.session = link, sctx
	s.mu.Unlock()
	var handlers sync.WaitGroup
	defer func() {
		cancel()
		link.Close()
		handlers.Wait()
		s.mu.Lock()
		if s.link == link {
			s.link, s.session = nil, nil
		}
		s.mu.Unlock()
	}()
	stop := make(chan struct{})
	go func() {
		select {
		case <-sctx.Done():
		case <-s.stop:
		}
		close(stop)
	}()
	for {
		body, ok := link.Recv(stop)
		if !ok {
			break
		}
		p, err := zboss.DecodePacket(body)
		if err != nil || p.Type != zboss.Request {
			s.log.Debug().Err(err).Hex("packet", body).Msg("not a request: ignored")
			continue
		}
		s.handle(sctx, link, p, &handlers)
	}
	select {
	case <-s.stop:
		return errors.New("fakestick closed")
	case <-ctx.Done():
		return ctx.Err()
	default:
	}
	if err := link.Err(); err != nil && !errors.Is(err, zboss.ErrLinkClosed) {
		return err
	}
	return errors.New("port dropped")
}

// Reset makes the stick reset as if its watchdog fired mid-traffic: the network is down until the host
// starts it again (NVRAM is kept), and the stick announces NCP_RESET_IND unasked.
func (s *Stick) Reset() {
	s.mu.Lock()
	s.up = false
	s.resets++
	l, ctx := s.link, s.session
	s.mu.Unlock()
	s.log.Warn().Msg("fault: NCP reset")
	if l != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = l.Send(ctx, zboss.AppendPacket(nil, zboss.Packet{Type: zboss.Indication, CallID: zboss.CallNCPResetInd, Params: []byte{5}}))
		}()
	}
}

// DropPort closes the port under the host, as when the stick is unplugged. Serve returns.
func (s *Stick) DropPort() {
	s.mu.Lock()
	l := s.link
	s.mu.Unlock()
	if l != nil {
		l.Close()
	}
}

func (s *Stick) respond(ctx context.Context, l *zboss.Link, req zboss.Packet, st zboss.Status, params []byte) {
	b := zboss.AppendPacket(nil, zboss.Packet{Type: zboss.Response, CallID: req.CallID, TSN: req.TSN, Status: st, Params: params})
	if err := l.Send(ctx, b); err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Stringer("call", req.CallID).Msg("response not delivered")
	}
}

func (s *Stick) indicate(c zboss.CallID, params []byte) {
	s.mu.Lock()
	l, ctx, up := s.link, s.session, s.up
	s.mu.Unlock()
	if l == nil || !up {
		s.log.Debug().Stringer("call", c).Msg("indication while no host is attached or the network is down: dropped")
		return
	}
	if err := l.Send(ctx, zboss.AppendPacket(nil, zboss.Packet{Type: zboss.Indication, CallID: c, Params: params})); err != nil && ctx.Err() == nil {
		s.log.Warn().Err(err).Stringer("call", c).Msg("indication not delivered")
	}
}

// handle answers one request; data and ZDO requests answer later from their own goroutine.
func (s *Stick) handle(ctx context.Context, l *zboss.Link, req zboss.Packet, handlers *sync.WaitGroup) {
	s.mu.Lock()
	s.calls[req.CallID.String()]++
	s.mu.Unlock()
	ok := func(params []byte) { s.respond(ctx, l, req, zboss.StatusOK, params) }
	fail := func(st zboss.Status) { s.respond(ctx, l, req, st, nil) }
	p := req.Params
	switch req.CallID {
	case zboss.CallGetModuleVersion:
		ok(zboss.ModuleVersion{Firmware: s.cfg.Firmware, Stack: s.cfg.Stack, Protocol: s.cfg.Protocol}.Append(nil))
	case zboss.CallNCPReset:
		opt, _ := zboss.ReadU8(p)
		s.mu.Lock()
		s.up = false
		s.resets++
		if opt == zboss.ResetEraseNVRAM || opt == zboss.ResetFactory {
			s.nv = factoryNVRAM()
		}
		s.mu.Unlock()
		s.log.Info().Uint8("options", opt).Msg("NCP reset by the host")
		ok(nil) // after the reboot the NCP answers the reset request
	case zboss.CallGetZigbeeRole:
		s.mu.Lock()
		r := s.nv.role
		s.mu.Unlock()
		ok([]byte{r})
	case zboss.CallSetZigbeeRole:
		r, err := zboss.ReadU8(p)
		if err != nil || r > zboss.RoleNone {
			fail(zboss.StatusInvalidParam)
			return
		}
		s.mu.Lock()
		s.nv.role = r
		s.mu.Unlock()
		ok(nil)
	case zboss.CallGetChannelMask:
		s.mu.Lock()
		m := s.nv.channelMsk
		s.mu.Unlock()
		ok(binary.LittleEndian.AppendUint32([]byte{1, 0}, m))
	case zboss.CallSetChannelMask:
		if len(p) < 5 || p[0] != 0 {
			fail(zboss.StatusInvalidParam)
			return
		}
		s.mu.Lock()
		s.nv.channelMsk = binary.LittleEndian.Uint32(p[1:5])
		s.mu.Unlock()
		ok(nil)
	case zboss.CallGetChannel:
		s.mu.Lock()
		c := s.nv.channel
		s.mu.Unlock()
		ok([]byte{0, c})
	case zboss.CallGetPANID:
		s.mu.Lock()
		v := s.nv.panID
		s.mu.Unlock()
		ok(zboss.AppendU16(nil, v))
	case zboss.CallSetPANID:
		v, err := zboss.ReadU16(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		s.mu.Lock()
		s.nv.panID = v
		s.mu.Unlock()
		ok(nil)
	case zboss.CallGetLocalIEEE:
		ok(zboss.AppendIEEE([]byte{0}, s.cfg.EUI64))
	case zboss.CallGetShortAddress:
		ok(zboss.AppendU16(nil, 0x0000))
	case zboss.CallGetTxPower:
		ok([]byte{8})
	case zboss.CallSetTxPower:
		v, _ := zboss.ReadU8(p)
		ok([]byte{v})
	case zboss.CallSetRxOnWhenIdle, zboss.CallSetTCPolicy:
		ok(nil)
	case zboss.CallGetJoined:
		s.mu.Lock()
		j := s.nv.joined
		s.mu.Unlock()
		if j {
			ok([]byte{1})
		} else {
			ok([]byte{0})
		}
	case zboss.CallSetNWKKey:
		if len(p) < 17 {
			fail(zboss.StatusInvalidParam)
			return
		}
		s.mu.Lock()
		copy(s.nv.key[:], p[:16])
		s.mu.Unlock()
		ok(nil)
	case zboss.CallGetNWKKeys:
		s.mu.Lock()
		k := s.nv.key
		s.mu.Unlock()
		out := append(append([]byte(nil), k[:]...), 0)
		out = append(out, make([]byte, 16)...)
		out = append(out, 1)
		out = append(out, make([]byte, 16)...)
		ok(append(out, 2))
	case zboss.CallGetExtendedPANID:
		// Most significant byte first: herdsman 10.9.5 reverses what NCPs return here before comparing it with
		// the bytes it wrote in NWK_FORMATION.
		s.mu.Lock()
		v := s.nv.extPANID
		s.mu.Unlock()
		ok(binary.BigEndian.AppendUint64(nil, uint64(v)))
	case zboss.CallSetExtendedPANID:
		v, err := zboss.ReadIEEE(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		s.mu.Lock()
		s.nv.extPANID = v
		s.mu.Unlock()
		ok(nil)
	case zboss.CallGetCoordinatorVer:
		ok([]byte{1})
	case zboss.CallAFSetSimpleDesc:
		sd, err := zboss.DecodeSimpleDesc(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		s.addEndpoint(sd)
		ok(nil)
	case zboss.CallZDOSetNodeDescManuf:
		v, err := zboss.ReadU16(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		if m, isSim := s.net.(interface{ SetCoordinatorManufacturerCode(uint16) }); isSim {
			m.SetCoordinatorManufacturerCode(v)
		}
		ok(nil)
	case zboss.CallNWKFormation:
		f, err := zboss.DecodeFormation(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		if st := s.form(ctx, f); !st.OK() {
			fail(st)
			return
		}
		ok(zboss.AppendU16(nil, 0x0000))
	case zboss.CallNWKStartWithoutForm:
		s.mu.Lock()
		joined := s.nv.joined
		s.mu.Unlock()
		if !joined {
			fail(zboss.StatusInvalidState)
			return
		}
		if err := s.bringUp(ctx); err != nil {
			fail(zboss.StatusError)
			return
		}
		ok(nil)
	case zboss.CallNWKPermitJoining:
		d, err := zboss.ReadU8(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		if !s.isUp() {
			fail(zboss.StatusInvalidState)
			return
		}
		if err := s.net.PermitJoin(ctx, d); err != nil {
			fail(zboss.StatusError)
			return
		}
		ok(nil)
	case zboss.CallNWKGetIEEEByShort:
		short, err := zboss.ReadU16(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		if short == 0 {
			ok(zboss.AppendIEEE(nil, s.cfg.EUI64))
			return
		}
		ieee, found := s.eui.IEEE(short)
		if !found {
			fail(zboss.StatusNotFound)
			return
		}
		ok(zboss.AppendIEEE(nil, ieee))
	case zboss.CallNWKGetShortByIEEE:
		ieee, err := zboss.ReadIEEE(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		if short, found := s.shortOf(ieee); found {
			ok(zboss.AppendU16(nil, short))
			return
		}
		fail(zboss.StatusNotFound)
	case zboss.CallAPSDEDataReq:
		dr, err := zboss.DecodeDataRequest(p)
		if err != nil {
			fail(zboss.StatusInvalidParam)
			return
		}
		dr.Payload = append([]byte(nil), dr.Payload...)
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			st, conf := s.dataRequest(ctx, dr)
			s.respond(ctx, l, req, st, conf)
		}()
	default:
		if cluster, isZDO := zboss.ZDOCallCluster[req.CallID]; isZDO {
			zp := append([]byte(nil), p...)
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				s.zdoRequest(ctx, req.CallID, cluster, zp, func(st zboss.Status, params []byte) { s.respond(ctx, l, req, st, params) })
			}()
			return
		}
		s.log.Debug().Stringer("call", req.CallID).Msg("call not implemented")
		fail(zboss.StatusNotImplemented)
	}
}

func (s *Stick) isUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

func (s *Stick) shortOf(ieee zcl.IEEE) (uint16, bool) {
	if ieee == s.cfg.EUI64 {
		return 0, true
	}
	return s.eui.Short(ieee)
}

func (s *Stick) addEndpoint(sd zboss.SimpleDesc) {
	r, isSim := s.net.(interface{ SetCoordinatorEndpoints([]sim.EndpointDesc) })
	if !isSim {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	eps := append([]sim.EndpointDesc(nil), s.eps...)
	ep := sim.EndpointDesc{Endpoint: sd.Endpoint, ProfileID: sd.ProfileID, DeviceID: sd.DeviceID, DeviceVersion: sd.Version,
		InClusters: sd.InClusters, OutClusters: sd.OutClusters}
	replaced := false
	for i := range eps {
		if eps[i].Endpoint == sd.Endpoint {
			eps[i], replaced = ep, true
		}
	}
	if !replaced {
		eps = append(eps, ep)
	}
	s.eps = eps
	r.SetCoordinatorEndpoints(eps)
}

// form stores the network the host asked for in NVRAM and brings it up.
func (s *Stick) form(ctx context.Context, f zboss.Formation) zboss.Status {
	s.mu.Lock()
	if s.nv.role != zboss.RoleCoordinator {
		s.mu.Unlock()
		return zboss.StatusInvalidState
	}
	mask := f.ChannelMask
	if mask == 0 {
		mask = s.nv.channelMsk
	}
	mask &= 0x07FFF800
	if mask == 0 {
		s.mu.Unlock()
		return zboss.StatusInvalidParam
	}
	s.nv.channel = uint8(bits.TrailingZeros32(mask))
	if s.nv.panID == 0 || s.nv.panID >= 0xFFF7 {
		s.nv.panID = uint16(randomUint64()%0xFFF0) + 1
	}
	if f.ExtendedPANID != 0 {
		s.nv.extPANID = f.ExtendedPANID
	} else if s.nv.extPANID == 0 {
		s.nv.extPANID = s.cfg.EUI64
	}
	if s.nv.key == [16]byte{} {
		_, _ = rand.Read(s.nv.key[:])
	}
	s.nv.joined = true
	s.mu.Unlock()
	if err := s.bringUp(ctx); err != nil {
		return zboss.StatusError
	}
	return zboss.StatusOK
}

// bringUp moves the network behind the stick onto the network in NVRAM and starts it.
func (s *Stick) bringUp(ctx context.Context) error {
	s.mu.Lock()
	nv := s.nv
	started := s.netStarted
	s.mu.Unlock()
	if f, isSim := s.net.(interface{ Form(sim.NetworkParams) error }); isSim {
		if err := f.Form(sim.NetworkParams{Channel: nv.channel, PANID: nv.panID, ExtendedPANID: nv.extPANID, NetworkKey: nv.key}); err != nil {
			s.log.Error().Err(err).Msg("network behind the stick refused the network the host formed")
			return err
		}
	}
	if !started {
		if _, err := s.net.Start(ctx); err != nil {
			s.log.Error().Err(err).Msg("network behind the stick failed to start")
			return err
		}
	}
	s.mu.Lock()
	s.netStarted, s.up = true, true
	s.mu.Unlock()
	s.log.Info().Uint8("channel", nv.channel).Str("pan_id", fmt.Sprintf("0x%04X", nv.panID)).Msg("network up")
	return nil
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// dataRequest sends one APSDE-DATA.request into the network and returns the APS confirm.
func (s *Stick) dataRequest(ctx context.Context, dr zboss.DataRequest) (zboss.Status, []byte) {
	conf := zboss.DataConfirm{DstAddr: dr.DstAddr, DstEndpoint: dr.DstEndpoint, SrcEndpoint: dr.SrcEndpoint, AddrMode: dr.AddrMode}
	if !s.isUp() {
		return zboss.StatusInvalidState, conf.Append(nil)
	}
	f := ncp.Frame{DstEndpoint: dr.DstEndpoint, SrcEndpoint: dr.SrcEndpoint, ClusterID: dr.ClusterID, ProfileID: dr.ProfileID,
		Radius: dr.Radius, APSAck: dr.TxOptions&zboss.TxOptAck != 0, Payload: dr.Payload}
	switch dr.AddrMode {
	case zboss.AddrModeShort:
		f.DstShort = uint16(dr.DstAddr)
	case zboss.AddrModeIEEE:
		short, found := s.shortOf(dr.DstAddr)
		if !found {
			return zboss.StatusAPSNoShortAddr, conf.Append(nil)
		}
		f.DstShort = short
	case zboss.AddrModeGroup:
		// The simulated network has no group members: the multicast goes out and nobody answers.
		return zboss.StatusOK, conf.Append(nil)
	default:
		return zboss.StatusInvalidParam, conf.Append(nil)
	}
	if f.IsBroadcast() {
		f.APSAck = false
	}
	if len(f.Payload) > s.net.MaxAPSPayload() {
		return zboss.StatusAPSASDUTooLong, conf.Append(nil)
	}
	start := time.Now()
	err := s.net.Send(ctx, f)
	conf.TxTime = uint32(time.Since(start).Milliseconds())
	if err != nil {
		var se *ncp.SendError
		st := zboss.StatusError
		if errors.As(err, &se) {
			st = zboss.StatusAPSNoAck
			if se.Status == "MAC no ack" {
				st = zboss.StatusMACNoAck
			} else if se.Status == "no route to destination" {
				st = zboss.StatusNWKRouteError
			}
		}
		s.log.Debug().Err(err).Uint16("short", f.DstShort).Msg("APSDE-DATA.confirm failure")
		return st, conf.Append(nil)
	}
	return zboss.StatusOK, conf.Append(nil)
}

// zdoRequest runs a ZDO request of the host against the network (the coordinator answers its own) and
// answers the call with the response in the NCP's layout.
func (s *Stick) zdoRequest(ctx context.Context, c zboss.CallID, cluster uint16, p []byte, respond func(zboss.Status, []byte)) {
	var dst uint16
	if len(p) < 2 {
		respond(zboss.StatusInvalidParam, nil)
		return
	}
	dst = binary.LittleEndian.Uint16(p)
	if zboss.ZDOPrefixedByDestination(c) {
		p = p[2:]
	}
	if !s.isUp() {
		respond(zboss.StatusInvalidState, nil)
		return
	}
	if c == zboss.CallZDOPermitJoiningReq && (dst == 0x0000 || dst >= 0xFFF8) && len(p) >= 1 {
		// The NCP opens its own permit join (and the network's, for a broadcast).
		if err := s.net.PermitJoin(ctx, p[0]); err != nil {
			respond(zboss.StatusError, nil)
			return
		}
		respond(zboss.StatusOK, nil)
		return
	}
	w := &zdoWaiter{respond: respond, done: make(chan struct{})}
	s.mu.Lock()
	s.zdoSeq++
	seq := s.zdoSeq
	key := zdoKey{cluster: cluster | 0x8000, seq: seq}
	s.zdoWait[key] = w
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.zdoWait, key)
		s.mu.Unlock()
	}()
	f := ncp.Frame{DstShort: dst, ClusterID: cluster, Payload: append([]byte{seq}, p...), APSAck: dst < 0xFFF8 && dst != 0}
	if err := s.net.Send(ctx, f); err != nil {
		s.log.Debug().Err(err).Uint16("short", dst).Stringer("call", c).Msg("ZDO request not delivered")
		w.answer(zboss.StatusAPSNoAck, nil)
		return
	}
	t := time.NewTimer(8 * time.Second)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		w.answer(zboss.Status{Category: zboss.CategoryGeneric, Code: 30}, nil) // TIMEOUT
	case <-ctx.Done():
		w.answer(zboss.StatusError, nil)
	}
}

// pumpNetworkEvents turns the network's events into indications for the current session.
func (s *Stick) pumpNetworkEvents() {
	defer s.wg.Done()
	sim.PumpEvents(s.stop, s.net.Events(), s.onNetworkEvent)
}

func (s *Stick) onNetworkEvent(ev ncp.Event) {
	s.eui.Learn(ev)
	switch ev.Kind {
	case ncp.EventFrame:
		in := ev.Frame
		if in.ProfileID == 0 {
			// ZDO runs inside the NCP: responses answer the host's ZDO calls, the rest stays in the stack.
			if in.ClusterID&0x8000 != 0 && len(in.Payload) >= 1 {
				s.mu.Lock()
				w, waiting := s.zdoWait[zdoKey{cluster: in.ClusterID, seq: in.Payload[0]}]
				s.mu.Unlock()
				if waiting {
					w.answer(zboss.ZDOResponseToNCP(in.ClusterID, in.Payload[1:]))
				}
			}
			return
		}
		s.mu.Lock()
		s.apsCounter++
		cnt := s.apsCounter
		s.mu.Unlock()
		dst := uint16(0x0000)
		if in.Broadcast {
			dst = 0xFFFD
		}
		s.indicate(zboss.CallAPSDEDataInd, zboss.DataIndication{SrcShort: in.SrcShort, DstShort: dst, DstEndpoint: in.DstEndpoint,
			SrcEndpoint: in.SrcEndpoint, ClusterID: in.ClusterID, ProfileID: in.ProfileID, APSCounter: cnt, SrcMAC: in.SrcShort,
			DstMAC: dst, LQI: in.LQI, RSSI: in.RSSI, Payload: in.Payload}.Append(nil))
	case ncp.EventJoined:
		st := zboss.UpdateUnsecuredJoin
		if ev.Rejoin {
			st = zboss.UpdateTCRejoin
		}
		s.indicate(zboss.CallZDODevUpdateInd, zboss.DevUpdate{IEEE: ev.IEEE, Short: ev.Short, Status: st}.Append(nil))
	case ncp.EventAnnounced:
		s.indicate(zboss.CallZDODevAnnceInd, zboss.DevAnnce{Short: ev.Short, IEEE: ev.IEEE, Capabilities: ev.Capabilities}.Append(nil))
	case ncp.EventLeft:
		s.indicate(zboss.CallZDODevUpdateInd, zboss.DevUpdate{IEEE: ev.IEEE, Short: ev.Short, Status: zboss.UpdateLeft}.Append(nil))
	case ncp.EventRadioReset:
		s.Reset()
	}
}
