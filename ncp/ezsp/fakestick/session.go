package fakestick

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/zcl"
)

// session is the stick's state for one port: the ASH link and the EZSP state the NCP loses on reset.
type session struct {
	st   *Stick
	conn *ash.Conn

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	cmds     chan []byte
	tx       chan outFrame
	dropped  chan struct{}
	dropOnce sync.Once

	mu        sync.Mutex
	epoch     uint64 // bumped by every reset: frames of an older epoch are not sent
	version   ezsp.Version
	up        bool
	lastSeq   uint8
	config    map[uint8]uint16
	policies  map[uint8]uint8
	values    map[uint8][]byte
	endpoints map[uint8]ezsp.AddEndpoint
	inFlight  int
	fragments map[fragmentKey]*reassembly // fragmented messages the host is sending (fragment.go)
	// What the NCP holds in RAM only (lost on reset): the security state set for the next formNetwork, the
	// transient link keys, the multicast table, the manufacturer code and counters.
	security     *ezsp.InitialSecurityState
	transient    map[zcl.IEEE][16]byte
	multicast    map[uint8]ezsp.MulticastTableEntry
	manufacturer uint16
	counters     [ezsp.EmberCounterCount]uint16
}

type outFrame struct {
	epoch uint64
	b     []byte
}

func (s *Stick) newSession(port io.ReadWriteCloser) *session {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{st: s, ctx: ctx, cancel: cancel, cmds: make(chan []byte, 64), tx: make(chan outFrame, 1024), dropped: make(chan struct{})}
	ss.clearLocked()
	ss.conn = ash.NewConn(port, ash.Config{
		Role:          ash.RoleNCP,
		Window:        NCPWindow,
		OnData:        ss.onData,
		OnReset:       func() { ss.reset(ash.ResetSoftware, false) },
		Baud:          s.cfg.Baud,
		PrecisePacing: s.cfg.PrecisePacing,
		AckDelay:      NCPAckDelay,
		TxFilter:      s.txFilter,
		Log:           s.log,
	})
	return ss
}

// NCPWindow is how many DATA frames the fake stick keeps in flight towards the host: 5, an EmberZNet NCP's
// TX_K (UG101). Its receive side takes any in-order window the host sends.
const NCPWindow = 5

// NCPAckDelay is how long the fake stick holds an ACK back for a DATA frame to carry it (UG101
// T_TX_ACK_DELAY): every command's response goes out within it, so the response acknowledges the command.
const NCPAckDelay = 20 * time.Millisecond

func (ss *session) clearLocked() {
	ss.epoch++
	ss.version = 0
	ss.up = false
	ss.config = make(map[uint8]uint16)
	for _, r := range ss.fragments {
		ss.inFlight -= r.got - r.finished
	}
	ss.fragments = make(map[fragmentKey]*reassembly)
	ss.policies = make(map[uint8]uint8)
	ss.values = make(map[uint8][]byte)
	ss.endpoints = make(map[uint8]ezsp.AddEndpoint)
	ss.security = nil
	ss.transient = make(map[zcl.IEEE][16]byte)
	ss.multicast = make(map[uint8]ezsp.MulticastTableEntry)
	ss.manufacturer = 0
	ss.counters = [ezsp.EmberCounterCount]uint16{}
}

// reset forgets the EZSP state; announce: the stick reset on its own and says so with RSTACK.
func (ss *session) reset(code uint8, announce bool) {
	ss.mu.Lock()
	ss.clearLocked()
	ss.mu.Unlock()
	ss.st.mu.Lock()
	ss.st.resets++
	ss.st.mu.Unlock()
	if announce {
		ss.st.log.Info().Str("code", ash.ResetCodeName(code)).Msg("fault: stick reset")
		ss.conn.AnnounceReset(code)
	}
}

func (ss *session) ver() ezsp.Version {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.version
}

func (ss *session) isUp() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.up && ss.version != 0
}

func (ss *session) onData(b []byte) {
	select {
	case ss.cmds <- b:
	case <-ss.ctx.Done():
	}
}

// senderLoop sends the stick's frames in order, keeping up to NCPWindow ASH DATA frames in flight (an
// EmberZNet NCP does not wait for the host's ACK of one frame before sending the next: TX_K is 5).
func (ss *session) senderLoop() {
	defer ss.wg.Done()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case f := <-ss.tx:
			ss.mu.Lock()
			stale := f.epoch != ss.epoch
			ss.mu.Unlock()
			if stale {
				continue
			}
			wait, err := ss.conn.Start(ss.ctx, f.b)
			if err != nil {
				if ss.ctx.Err() == nil {
					ss.st.log.Debug().Err(err).Msg("frame to the host not delivered")
				}
				continue
			}
			ss.wg.Add(1)
			go func() {
				defer ss.wg.Done()
				if err := wait(); err != nil && ss.ctx.Err() == nil {
					ss.st.log.Debug().Err(err).Msg("frame to the host not delivered")
				}
			}()
		}
	}
}

func (ss *session) queue(b []byte) {
	ss.st.trace.add(false, b)
	ss.mu.Lock()
	e := ss.epoch
	ss.mu.Unlock()
	select {
	case ss.tx <- outFrame{epoch: e, b: b}:
	case <-ss.ctx.Done():
	}
}

func (ss *session) respond(req ezsp.Frame, params []byte) {
	ss.queue(ezsp.Frame{Seq: req.Seq, Control: ezsp.FCResponse, FrameID: req.FrameID, Legacy: req.Legacy, Params: params}.Append(nil))
}

func (ss *session) callback(id uint16, params []byte) {
	ss.mu.Lock()
	seq := ss.lastSeq
	ss.mu.Unlock()
	ss.queue(ezsp.Frame{Seq: seq, Control: ezsp.FCResponse | ezsp.FCAsyncCallback, FrameID: id, Params: params}.Append(nil))
}

func (ss *session) commandLoop() {
	defer ss.wg.Done()
	for {
		select {
		case <-ss.ctx.Done():
			return
		case b := <-ss.cmds:
			ss.handle(b)
		}
	}
}

// maxEzspFrame is EZSP_MAX_FRAME_LENGTH: a command's fields are read from a buffer of this size.
const maxEzspFrame = 200

func (ss *session) handle(b []byte) {
	st := ss.st
	st.trace.add(true, b)
	ours := st.cfg.ProtocolVersion
	vr := ezsp.VersionResponse{ProtocolVersion: ours, StackType: 2, StackVersion: st.cfg.StackVersion}
	if ezsp.IsLegacyVersionCommand(b) {
		st.count("version")
		req := ezsp.Frame{Seq: b[0], Legacy: true}
		ss.mu.Lock()
		ss.lastSeq = req.Seq
		if b[3] == ours {
			ss.version = ezsp.Version(ours)
		}
		ss.mu.Unlock()
		ss.respond(req, vr.Append(nil))
		return
	}
	if len(b) < 5 {
		// Shorter than an extended header: the NCP cannot even tell what it is and drops it.
		st.log.Warn().Hex("frame", b).Msg("EZSP frame shorter than its header from the host: dropped")
		return
	}
	f, err := ezsp.ParseFrame(b, false)
	if err != nil {
		// A header whose frame control the NCP does not support (format version, reserved or security bits).
		st.log.Warn().Err(err).Hex("frame", b).Msg("unsupported EZSP frame control from the host")
		ss.invalid(ezsp.Frame{Seq: b[0], FrameID: uint16(b[3]) | uint16(b[4])<<8}, ezsp.EzspErrorUnsupportedControl)
		return
	}
	ss.mu.Lock()
	ss.lastSeq = f.Seq
	v := ss.version
	ss.mu.Unlock()
	if f.IsResponse() {
		ss.invalid(f, ezsp.EzspErrorWrongDirection)
		return
	}
	if f.FrameID == ezsp.IDVersion {
		st.count("version")
		c, err := ezsp.DecodeVersionCommand(f.Params)
		if err == nil && c.Desired == ours {
			ss.mu.Lock()
			ss.version = ezsp.Version(ours)
			ss.mu.Unlock()
		}
		ss.respond(f, vr.Append(nil))
		return
	}
	if v == 0 {
		ss.invalid(f, ezsp.EzspErrorVersionNotSet)
		return
	}
	name := ezsp.FrameName(f.FrameID)
	cmd, err := ezsp.DecodeCommand(f.FrameID, f.Params, v)
	if errors.Is(err, ezsp.ErrUnknownFrameID) {
		st.mu.Lock()
		st.unknown++
		st.mu.Unlock()
		st.log.Info().Str("frame", name).Msg("unknown frame id: answering invalidCommand")
		ss.invalid(f, ezsp.EzspErrorInvalidFrameID)
		return
	}
	if errors.Is(err, ezsp.ErrShort) {
		// An EmberZNet NCP does not check a command's length: it reads the missing fields past the end of the
		// frame (zeros here) and runs the command. Hosts rely on it: herdsman's legacy ezsp adapter sends
		// networkInit without its bitmask.
		st.log.Debug().Err(err).Str("frame", name).Msg("short command: missing fields read as zeros")
		cmd, err = ezsp.DecodeCommand(f.FrameID, append(append([]byte(nil), f.Params...), make([]byte, maxEzspFrame)...), v)
	}
	if err != nil {
		st.log.Warn().Err(err).Str("frame", name).Msg("bad parameters from the host")
		ss.invalid(f, ezsp.EzspErrorInvalidValue)
		return
	}
	st.count(name)
	if ss.handleMore(f, cmd, v) {
		return
	}
	ok := v.StatusOf(ezsp.StatusOK)
	status := func(k ezsp.StatusKind) { ss.respond(f, ezsp.AppendStatusParams(nil, v, v.StatusOf(k))) }
	// ezspStatus answers the configuration, policy and value commands: EzspStatus up to v13, sl_Status from v14.
	ezspStatus := func(e uint8, k ezsp.StatusKind) { ss.respond(f, ezsp.AppendStatusParams(nil, v, v.EzspStatusOf(e, k))) }
	switch c := cmd.(type) {
	case ezsp.ConfigurationValue:
		ss.mu.Lock()
		up := ss.up
		_, known := ncpConfigDefaults[c.ID]
		if !up && known {
			ss.config[c.ID] = c.Value
		}
		ss.mu.Unlock()
		switch {
		case !known:
			ezspStatus(ezsp.EzspErrorInvalidID, ezsp.StatusInvalidParameter)
		case up:
			ezspStatus(ezsp.EzspErrorInvalidCall, ezsp.StatusInvalidCall)
		default:
			ezspStatus(ezsp.EzspSuccess, ezsp.StatusOK)
		}
	case ezsp.Policy:
		ss.mu.Lock()
		ss.policies[c.ID] = c.Decision
		ss.mu.Unlock()
		ezspStatus(ezsp.EzspSuccess, ezsp.StatusOK)
	case ezsp.ValueSetting:
		ss.mu.Lock()
		ss.values[c.ID] = c.Value
		ss.mu.Unlock()
		if c.ID == valueNwkFrameCount && len(c.Value) == 4 {
			st.mu.Lock()
			st.nv.nwkFrameCounter = binary.LittleEndian.Uint32(c.Value)
			st.mu.Unlock()
		}
		ezspStatus(ezsp.EzspSuccess, ezsp.StatusOK)
	case ezsp.AddEndpoint:
		ss.mu.Lock()
		_, dup := ss.endpoints[c.Endpoint]
		if !dup {
			ss.endpoints[c.Endpoint] = c
		}
		eps := ss.endpointList()
		ss.mu.Unlock()
		if dup {
			ezspStatus(ezsp.EzspErrorInvalidCall, ezsp.StatusInvalidCall)
			return
		}
		st.setCoordinatorEndpoints(eps)
		ezspStatus(ezsp.EzspSuccess, ezsp.StatusOK)
	case ezsp.InitialSecurityState:
		ss.mu.Lock()
		up := ss.up
		if !up {
			sec := c
			ss.security = &sec
		}
		ss.mu.Unlock()
		if up {
			status(ezsp.StatusInvalidCall)
			return
		}
		status(ezsp.StatusOK)
	case ezsp.NetworkParameters: // formNetwork
		ss.mu.Lock()
		up, sec := ss.up, ss.security
		ss.mu.Unlock()
		switch {
		case up:
			status(ezsp.StatusInvalidCall)
			return
		case sec == nil:
			status(ezsp.StatusSecurityStateNotSet)
			return
		case c.RadioChannel < 11 || c.RadioChannel > 26:
			status(ezsp.StatusInvalidParameter)
			return
		}
		st.mu.Lock()
		p := c
		st.nv.network = &p
		st.nv.networkKey, st.nv.haveNetworkKey = sec.NetworkKey, sec.Bitmask&ezsp.SecurityHaveNetworkKey != 0
		st.nv.keySequence = sec.NetworkKeySequence
		st.nv.tcLinkKey = sec.PreconfiguredKey
		if sec.Bitmask&ezsp.SecurityNoFrameCounterReset == 0 {
			st.nv.nwkFrameCounter = 0
		}
		st.mu.Unlock()
		status(ezsp.StatusOK)
		ss.bringUp()
	case ezsp.SetConcentrator:
		status(ezsp.StatusOK)
	case ezsp.ImportTransientKey:
		ss.mu.Lock()
		ss.transient[c.EUI64] = c.Key
		ss.mu.Unlock()
		// sl_Status in every version that has the command.
		ss.respond(f, ezsp.AppendStatusParams(nil, ezsp.WideVersion, ezsp.Status{Wide: true}))
	case ezsp.SendUnicast:
		if c.Aps.Options&ezsp.APSOptionFragment != 0 {
			ss.sendFragment(f, v, c)
			return
		}
		ss.send(f, v, ncp.Frame{DstShort: c.Dest, DstEndpoint: c.Aps.DstEndpoint, SrcEndpoint: c.Aps.SrcEndpoint, ClusterID: c.Aps.ClusterID,
			ProfileID: c.Aps.ProfileID, APSAck: c.Aps.Options&ezsp.APSOptionRetry != 0, Payload: c.Message}, c.Aps, c.Tag, ezsp.OutgoingDirect)
	case ezsp.SendBroadcast:
		ss.send(f, v, ncp.Frame{DstShort: c.Dest, DstEndpoint: c.Aps.DstEndpoint, SrcEndpoint: c.Aps.SrcEndpoint, ClusterID: c.Aps.ClusterID,
			ProfileID: c.Aps.ProfileID, Radius: c.Radius, Payload: c.Message}, c.Aps, c.Tag, ezsp.OutgoingBroadcast)
	case uint8:
		switch f.FrameID {
		case ezsp.IDPermitJoining:
			if !ss.isUp() {
				status(ezsp.StatusNetworkDown)
				return
			}
			if err := st.net.PermitJoin(ss.ctx, c); err != nil {
				st.log.Warn().Err(err).Msg("network refused permit join")
				status(ezsp.StatusFail)
				return
			}
			status(ezsp.StatusOK)
		case ezsp.IDGetConfigurationValue:
			ss.mu.Lock()
			val, have := ss.config[c]
			ss.mu.Unlock()
			if !have {
				val, have = ncpConfigDefaults[c]
			}
			r := ezsp.GetConfigurationValueResponse{Status: v.EzspStatusOf(ezsp.EzspSuccess, ezsp.StatusOK), Value: val}
			if !have {
				r.Status = v.EzspStatusOf(ezsp.EzspErrorInvalidID, ezsp.StatusInvalidParameter)
			}
			ss.respond(f, r.Append(nil, v))
		case ezsp.IDGetValue:
			val, have := ss.value(c)
			r := ezsp.GetValueResponse{Status: v.EzspStatusOf(ezsp.EzspSuccess, ezsp.StatusOK), Value: val}
			if !have {
				r = ezsp.GetValueResponse{Status: v.EzspStatusOf(ezsp.EzspErrorInvalidID, ezsp.StatusInvalidParameter), Value: []byte{}}
			}
			ss.respond(f, r.Append(nil, v))
		case ezsp.IDSetSourceRouteDiscoveryMode:
			// The time until the next many-to-one route request: the first goes out at once.
			ss.respond(f, binary.LittleEndian.AppendUint32(nil, 0))
		}
	case uint16:
		switch f.FrameID {
		case ezsp.IDNetworkInit:
			st.mu.Lock()
			stored := st.nv.network != nil
			st.mu.Unlock()
			ss.mu.Lock()
			up := ss.up
			ss.mu.Unlock()
			switch {
			case up:
				status(ezsp.StatusInvalidCall)
			case !stored:
				status(ezsp.StatusNotJoined)
			default:
				status(ezsp.StatusOK)
				ss.bringUp()
			}
		case ezsp.IDLookupEUI64ByNodeID:
			ieee, have := st.eui.IEEE(c)
			if c == 0 && ss.isUp() {
				ieee, have = st.eui64(), true
			}
			r := ezsp.LookupEUI64Response{Status: ok, EUI64: ieee}
			if !have {
				r.Status = v.StatusOf(ezsp.StatusFail)
			}
			ss.respond(f, r.Append(nil, v))
		}
	case struct{}:
		switch f.FrameID {
		case ezsp.IDNop:
			ss.respond(f, nil)
		case ezsp.IDNetworkState:
			state := ezsp.NetworkStateNoNetwork
			if ss.isUp() {
				state = ezsp.NetworkStateJoined
			}
			ss.respond(f, []byte{state})
		case ezsp.IDGetEUI64:
			ss.respond(f, le64(st.eui64()))
		case ezsp.IDGetNodeID:
			id := uint16(0xFFFE) // EMBER_NULL_NODE_ID until the network is up
			if ss.isUp() {
				id = 0x0000
			}
			ss.respond(f, binary.LittleEndian.AppendUint16(nil, id))
		case ezsp.IDGetNetworkParameters:
			p := st.Stored()
			r := ezsp.GetNetworkParametersResponse{Status: ok, NodeType: ezsp.NodeTypeCoordinator}
			if p == nil || !ss.isUp() {
				r.Status = v.StatusOf(ezsp.StatusNotJoined)
				r.NodeType = 0 // EMBER_UNKNOWN_DEVICE
			} else {
				r.Parameters = *p
			}
			ss.respond(f, r.Append(nil, v))
		case ezsp.IDMaximumPayloadLength:
			n := st.net.MaxAPSPayload()
			if n <= 0 || n > 255 {
				n = 82
			}
			ss.respond(f, []byte{uint8(n)})
		case ezsp.IDLeaveNetwork:
			if !ss.isUp() {
				status(ezsp.StatusInvalidCall)
				return
			}
			st.mu.Lock()
			st.nv.network = nil
			st.mu.Unlock()
			ss.mu.Lock()
			ss.up = false
			ss.mu.Unlock()
			status(ezsp.StatusOK)
			ss.callback(ezsp.IDStackStatusHandler, ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusNetworkDown)))
		}
	default:
		st.log.Warn().Str("frame", name).Msg("decoded command without a handler")
		ss.invalid(f, ezsp.EzspErrorInvalidFrameID)
	}
}

// value is what getValue reads: the version info, the node id, what the host set, else the NCP's default.
func (ss *session) value(id uint8) ([]byte, bool) {
	st := ss.st
	switch id {
	case ezsp.ValueVersionInfo:
		// EmberVersion: build (u16), major, minor, patch, special, type (0xAA = GA).
		sv := st.cfg.StackVersion
		return []byte{0x00, 0x01, byte(sv >> 12), byte(sv >> 8 & 0xF), byte(sv >> 4 & 0xF), byte(sv & 0xF), 0xAA}, true
	case valueNodeShortID:
		if ss.isUp() {
			return []byte{0, 0}, true
		}
		return []byte{0xFE, 0xFF}, true
	case valueNwkFrameCount:
		st.mu.Lock()
		defer st.mu.Unlock()
		return binary.LittleEndian.AppendUint32(nil, st.nv.nwkFrameCounter), true
	}
	ss.mu.Lock()
	val, have := ss.values[id]
	ss.mu.Unlock()
	if have {
		return val, true
	}
	val, have = ncpValueDefaults[id]
	return val, have
}

// invalid answers a frame the stick refuses with invalidCommand and an EzspStatus byte (in every version,
// as herdsman reads it).
func (ss *session) invalid(f ezsp.Frame, status uint8) {
	ss.queue(ezsp.Frame{Seq: f.Seq, Control: ezsp.FCResponse, FrameID: ezsp.IDInvalidCommand, Params: []byte{status}}.Append(nil))
}

func (s *Stick) eui64() zcl.IEEE {
	if s.cfg.EUI64 != 0 {
		return s.cfg.EUI64
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.netInfo.IEEE != 0 {
		return s.netInfo.IEEE
	}
	return 0x00124B00FA4E0001
}

// bringUp starts the network behind the stick (once per stick) and reports NETWORK_UP.
func (ss *session) bringUp() {
	st := ss.st
	v := ss.ver()
	if err := st.formNetwork(); err != nil {
		st.log.Error().Err(err).Msg("network behind the stick refused the network the host formed")
		ss.callback(ezsp.IDStackStatusHandler, ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusNetworkDown)))
		return
	}
	st.mu.Lock()
	started := st.netStarted
	st.mu.Unlock()
	if !started {
		info, err := st.net.Start(ss.ctx)
		if err != nil {
			st.log.Error().Err(err).Msg("network behind the stick failed to start")
			ss.callback(ezsp.IDStackStatusHandler, ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusNetworkDown)))
			return
		}
		st.mu.Lock()
		st.netStarted = true
		st.netInfo = info
		st.mu.Unlock()
	}
	ss.mu.Lock()
	ss.up = true
	ss.mu.Unlock()
	ss.callback(ezsp.IDStackStatusHandler, ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusNetworkUp)))
}

// send answers sendUnicast/sendBroadcast at once and reports the network's verdict in messageSentHandler.
func (ss *session) send(req ezsp.Frame, v ezsp.Version, fr ncp.Frame, aps ezsp.ApsFrame, tag uint16, typ uint8) {
	st := ss.st
	if !ss.isUp() {
		ss.respond(req, ezsp.SendResponse{Status: v.StatusOf(ezsp.StatusNetworkDown)}.Append(nil, v))
		return
	}
	ss.mu.Lock()
	if ss.inFlight >= st.cfg.MaxInFlight {
		ss.mu.Unlock()
		ss.respond(req, ezsp.SendResponse{Status: v.StatusOf(ezsp.StatusMaxMessageLimit)}.Append(nil, v))
		return
	}
	ss.inFlight++
	epoch := ss.epoch
	ss.mu.Unlock()
	aps.Sequence = uint8(st.apsSeq.Add(1))
	ss.respond(req, ezsp.SendResponse{Status: v.StatusOf(ezsp.StatusOK), Sequence: aps.Sequence}.Append(nil, v))
	sent := ezsp.MessageSent{Type: typ, Dest: fr.DstShort, Aps: aps, Tag: tag, Message: []byte{}}
	// The ZDO permit-join broadcast only opens routers; the network behind the stick opened already. A
	// multicast goes on the air, but the simulated devices are members of no group.
	if (fr.ProfileID == 0 && fr.ClusterID == 0x0036) || typ == ezsp.OutgoingMulticast {
		ss.finishSend(epoch, sent, v, nil)
		return
	}
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		ss.finishSend(epoch, sent, v, ss.netSend(fr, typ == ezsp.OutgoingDirect))
	}()
}

// netSend sends a frame into the network behind the stick; a unicast's cost is counted in the MAC counters
// (from the network's own report when it gives one: *sim.Network does).
func (ss *session) netSend(fr ncp.Frame, unicast bool) error {
	var stats ncp.SendStats
	var err error
	if ws, ok := ss.st.net.(ncp.StatsSender); ok {
		stats, err = ws.SendWithStats(ss.ctx, fr)
	} else {
		err = ss.st.net.Send(ss.ctx, fr)
	}
	if unicast && ss.ctx.Err() == nil {
		ss.countMAC(stats, err != nil)
	}
	return err
}

func (ss *session) finishSend(epoch uint64, m ezsp.MessageSent, v ezsp.Version, err error) {
	ss.mu.Lock()
	ss.inFlight--
	stale := epoch != ss.epoch
	ss.mu.Unlock()
	if stale || ss.ctx.Err() != nil {
		return
	}
	m.Status = v.StatusOf(ezsp.StatusOK)
	switch {
	case m.Type != ezsp.OutgoingDirect:
		ss.countUp(ezsp.CounterAPSTxBroadcast)
	case err != nil:
		ss.countUp(ezsp.CounterAPSTxUnicastFailed)
	default:
		ss.countUp(ezsp.CounterAPSTxUnicastOK)
	}
	if err != nil {
		m.Status = v.StatusOf(ezsp.StatusDeliveryFailed)
		ss.st.log.Debug().Err(err).Uint16("dest", m.Dest).Msg("send failed in the network")
	}
	ss.callback(ezsp.IDMessageSentHandler, m.Append(nil, v))
}
