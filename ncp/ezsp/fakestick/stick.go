// Package fakestick owns otabridge's fake Silicon Labs EZSP stick: the NCP side of ASH and EZSP, written in Go,
// serving a network behind it (in production the simulated network of ncp/sim, which formNetwork and
// networkInit move onto the host's network). It speaks real bytes on an io.ReadWriteCloser: one end of a
// pseudo-terminal (otabridge simstick) or an in-memory pipe in tests. It is an EmberZNet NCP as other hosts
// see it too — 7.4.1 at EZSP v13, 8.x at v14 to v18 (and an old version to test the refusal): the commands
// zigbee-herdsman's ember and ezsp adapters send (start-up configuration with a 7.4 NCP's defaults, form and
// resume, backup and the key table, permit join with the trust-center and child join callbacks, ZDO and ZCL
// traffic, multicast, counters, radio settings, reset) with the NCP's semantics and statuses; an "NVRAM"
// (network, keys, key table) that outlives host sessions; invalidCommand for unknown frame ids, commands
// before the version handshake, wrong direction and unsupported frame control; and a ring of its last frames
// to explain a host's failure. It injects faults on request: a reset mid-traffic, the network going down and
// up, corrupted bytes, the port vanishing.
package fakestick

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
	"github.com/rs/zerolog"
)

// Network is what the stick needs from the network behind it (a subset of ncp.Radio; *sim.Network fits).
type Network = sim.StickNetwork

// Config describes the stick.
type Config struct {
	// ProtocolVersion is the EZSP version the stick speaks (default 13; 14 for the v14 layouts; 8 to test the
	// host's refusal of old sticks).
	ProtocolVersion uint8
	// StackVersion is the EmberZNet version it reports (nibbles, default by protocol: 8→0x6A30, 13→0x7410,
	// 14→0x8000, later→0x8200).
	StackVersion uint16
	// EUI64 is the stick's IEEE address (default: the network's coordinator IEEE once started, else
	// 0x00124B00FA4E0001).
	EUI64 zcl.IEEE
	// Stored is the network in the stick's NVRAM: networkInit resumes it; nil: the host must form one. The
	// stick keeps what formNetwork stores for its later sessions.
	Stored *ezsp.NetworkParameters
	// Baud, when > 0, paces the stick's transmissions to 10 bits per byte at this rate, like a UART.
	Baud int
	// PrecisePacing busy-waits the end of each paced write (serialport.Pacer.Precise): for measurements.
	PrecisePacing bool
	// MaxInFlight caps concurrent sends (default 16); more get MAX_MESSAGE_LIMIT_REACHED.
	MaxInFlight int
	Log         zerolog.Logger
}

// Stick is the fake NCP. Make it with New, serve a port with Serve, stop it with Close.
type Stick struct {
	cfg Config
	net Network
	log zerolog.Logger

	mu         sync.Mutex
	nv         nvram
	netStarted bool
	trace      frameRing
	netInfo    ncp.NetworkInfo
	sess       *session
	eui        sim.AddressBook
	children   []zcl.IEEE
	commands   map[string]int
	unknown    int
	resets     int

	corrupt     atomic.Int64
	corruptData atomic.Int64
	serving     chan struct{}
	apsSeq      atomic.Uint32

	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New makes a stick in front of net and starts reading the network's events (until Close).
func New(net Network, cfg Config) *Stick {
	if cfg.ProtocolVersion == 0 {
		cfg.ProtocolVersion = 13
	}
	if cfg.StackVersion == 0 {
		switch {
		case cfg.ProtocolVersion < 13:
			cfg.StackVersion = 0x6A30
		case cfg.ProtocolVersion == 13:
			cfg.StackVersion = 0x7410
		case cfg.ProtocolVersion == 14:
			cfg.StackVersion = 0x8000
		default:
			cfg.StackVersion = 0x8200
		}
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 16
	}
	s := &Stick{cfg: cfg, net: net, log: cfg.Log.With().Str("component", "fakestick").Logger(),
		commands: make(map[string]int), stop: make(chan struct{}), serving: make(chan struct{}, 1)}
	s.nv.network = cfg.Stored
	s.nv.keyTable = make([]keyTableEntry, keyTableSize)
	s.trace.init(64)
	s.wg.Add(1)
	go s.pumpNetworkEvents()
	return s
}

// Close ends Serve and the event reader.
func (s *Stick) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}

// Stored returns the network in the stick's NVRAM (nil when it has none).
func (s *Stick) Stored() *ezsp.NetworkParameters {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nv.network == nil {
		return nil
	}
	p := *s.nv.network
	return &p
}

// Commands returns how many commands of each name the stick answered (unknown ids under "unknown").
func (s *Stick) Commands() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.commands)+1)
	for k, v := range s.commands {
		out[k] = v
	}
	if s.unknown > 0 {
		out["unknown"] = s.unknown
	}
	return out
}

// LinkStats returns the ASH counters of the current session (zero when none).
func (s *Stick) LinkStats() ash.Stats {
	s.mu.Lock()
	ss := s.sess
	s.mu.Unlock()
	if ss == nil {
		return ash.Stats{}
	}
	return ss.conn.Stats()
}

// Serve speaks ASH+EZSP on port until ctx ends, Close, DropPort, or the port fails; it closes the port. One
// port at a time (a second Serve waits for the first to end): the stick's network and NVRAM outlive the
// sessions.
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
	ss := s.newSession(port)
	s.mu.Lock()
	s.sess = ss
	s.mu.Unlock()
	ss.wg.Add(2)
	go ss.commandLoop()
	go ss.senderLoop()
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.stop:
		err = errors.New("fakestick closed")
	case <-ss.conn.Done():
		err = ss.conn.Err()
	case <-ss.dropped:
		err = errors.New("port dropped")
	}
	ss.cancel()
	ss.conn.Close()
	ss.wg.Wait()
	s.mu.Lock()
	s.sess = nil
	s.mu.Unlock()
	return err
}

// Reset makes the stick reset as if its watchdog fired mid-traffic: it announces RSTACK(watchdog) unasked,
// forgets the EZSP version, configuration and endpoints, and its network is down until networkInit.
func (s *Stick) Reset() {
	if ss := s.current(); ss != nil {
		ss.reset(ash.ResetWatchdog, true)
	}
}

// NetworkDownUp reports stackStatus NETWORK_DOWN, and NETWORK_UP after gap (like a stack that lost and
// regained its network). Sends in between fail with NETWORK_DOWN.
func (s *Stick) NetworkDownUp(gap time.Duration) {
	ss := s.current()
	if ss == nil {
		return
	}
	ss.mu.Lock()
	if !ss.up {
		ss.mu.Unlock()
		return
	}
	ss.up = false
	ss.mu.Unlock()
	ss.callback(ezsp.IDStackStatusHandler, ezsp.AppendStatusParams(nil, ss.ver(), ss.ver().StatusOf(ezsp.StatusNetworkDown)))
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		t := time.NewTimer(gap)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ss.ctx.Done():
			return
		}
		ss.mu.Lock()
		ss.up = true
		ss.mu.Unlock()
		ss.callback(ezsp.IDStackStatusHandler, ezsp.AppendStatusParams(nil, ss.ver(), ss.ver().StatusOf(ezsp.StatusNetworkUp)))
	}()
}

// CorruptNext flips one bit in each of the next n chunks of bytes the stick writes (frames or ACKs): the host
// sees CRC errors and must recover (a lost ACK is covered by the next frame's ackNum or a retransmission).
func (s *Stick) CorruptNext(n int) { s.corrupt.Add(int64(n)) }

// CorruptNextData flips one bit in each of the next n DATA frames the stick writes: the host NAKs them and
// the stick retransmits.
func (s *Stick) CorruptNextData(n int) { s.corruptData.Add(int64(n)) }

// DropPort closes the port under the host, as when the stick is unplugged. Serve returns.
func (s *Stick) DropPort() {
	if ss := s.current(); ss != nil {
		ss.dropOnce.Do(func() { close(ss.dropped) })
	}
}

func (s *Stick) current() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sess
}

func takeOne(c *atomic.Int64) bool {
	for {
		n := c.Load()
		if n <= 0 {
			return false
		}
		if c.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func (s *Stick) txFilter(b []byte) []byte {
	isData := len(b) > 0 && b[0]&0x80 == 0
	if !(isData && takeOne(&s.corruptData)) && !takeOne(&s.corrupt) {
		return b
	}
	c := append([]byte(nil), b...)
	i := len(c) / 2
	if c[i] == ash.Flag || c[i] == ash.Escape || i == len(c)-1 {
		i = 0
	}
	c[i] ^= 0x01
	if c[i] == ash.Flag || c[i] == ash.Cancel || c[i] == ash.Substitute {
		c[i] ^= 0x03
	}
	s.log.Debug().Hex("sent", c).Hex("meant", b).Msg("fault: corrupted bytes")
	return c
}

func (s *Stick) count(name string) {
	s.mu.Lock()
	s.commands[name]++
	s.mu.Unlock()
}

// pumpNetworkEvents turns the network's events into EZSP callbacks for the current session.
func (s *Stick) pumpNetworkEvents() {
	defer s.wg.Done()
	sim.PumpEvents(s.stop, s.net.Events(), s.onNetworkEvent)
}

func (s *Stick) onNetworkEvent(ev ncp.Event) {
	s.eui.Learn(ev)
	ss := s.current()
	if ss == nil || !ss.isUp() {
		s.log.Debug().Stringer("event", ev.Kind).Msg("network event while no host is attached: dropped")
		return
	}
	v := ss.ver()
	switch ev.Kind {
	case ncp.EventFrame:
		in := ev.Frame
		typ := ezsp.IncomingUnicast
		if in.Broadcast {
			typ = ezsp.IncomingBroadcast
			ss.countUp(ezsp.CounterAPSRxBroadcast)
		} else {
			ss.countUp(ezsp.CounterAPSRxUnicast)
		}
		m := ezsp.IncomingMessage{Type: typ, Aps: ezsp.ApsFrame{ProfileID: in.ProfileID, ClusterID: in.ClusterID, SrcEndpoint: in.SrcEndpoint,
			DstEndpoint: in.DstEndpoint, Sequence: uint8(s.apsSeq.Add(1))}, LQI: in.LQI, RSSI: in.RSSI, Sender: in.SrcShort,
			BindingIndex: 0xFF, AddressIndex: 0xFF, Message: in.Payload}
		if v.Wide() {
			m.SenderEUI64 = in.SrcIEEE
			m.Timestamp = uint32(time.Now().UnixMicro())
		}
		ss.callback(ezsp.IDIncomingMessageHandler, m.Append(nil, v))
	case ncp.EventJoined:
		// The trust center admits the device (it sends it the network key under the well-known link key) ...
		tc := ezsp.TrustCenterJoin{NodeID: ev.Short, EUI64: ev.IEEE, Status: ezsp.DeviceUnsecuredJoin, Decision: ezsp.JoinUsePreconfiguredKey,
			ParentID: ev.Parent}
		if ev.Rejoin {
			tc.Status, tc.Decision = ezsp.DeviceSecuredRejoin, ezsp.JoinNoAction
		}
		ss.callback(ezsp.IDTrustCenterJoinHandler, tc.Append(nil))
		// ... and an end device that associated with the coordinator itself becomes its child.
		if ev.Parent == 0x0000 && ev.Capabilities&capDeviceTypeFFD == 0 && !ev.Rejoin {
			ss.callback(ezsp.IDChildJoinHandler, ezsp.ChildJoin{Index: s.childIndex(ev.IEEE), Joining: true, ChildID: ev.Short, EUI64: ev.IEEE,
				NodeType: childNodeType(ev.Capabilities)}.Append(nil))
		}
	case ncp.EventLeft:
		ss.callback(ezsp.IDTrustCenterJoinHandler, ezsp.TrustCenterJoin{NodeID: ev.Short, EUI64: ev.IEEE, Status: ezsp.DeviceLeft,
			Decision: ezsp.JoinNoAction}.Append(nil))
		// A child of the coordinator leaves its child table.
		if i, ok := s.removeChild(ev.IEEE); ok {
			ss.callback(ezsp.IDChildJoinHandler, ezsp.ChildJoin{Index: i, Joining: false, ChildID: ev.Short, EUI64: ev.IEEE}.Append(nil))
		}
	case ncp.EventAnnounced:
		// The NCP passes ZDO up as an incoming message (APPLICATION_ZDO_FLAGS): Device_annce on profile 0.
		msg := []byte{uint8(s.apsSeq.Add(1)), byte(ev.Short), byte(ev.Short >> 8)}
		msg = append(msg, le64(ev.IEEE)...)
		msg = append(msg, ev.Capabilities)
		m := ezsp.IncomingMessage{Type: ezsp.IncomingBroadcast, Aps: ezsp.ApsFrame{ProfileID: 0, ClusterID: 0x0013, Sequence: msg[0]},
			LQI: 255, Sender: ev.Short, BindingIndex: 0xFF, AddressIndex: 0xFF, Message: msg}
		if v.Wide() {
			m.SenderEUI64 = ev.IEEE
		}
		ss.callback(ezsp.IDIncomingMessageHandler, m.Append(nil, v))
	case ncp.EventRadioReset:
		// The simulated coordinator reset: the stick resets.
		ss.reset(ash.ResetWatchdog, true)
	}
}

// MAC capability bits of a joining device.
const (
	capDeviceTypeFFD uint8 = 0x02 // a router
	capRxOnWhenIdle  uint8 = 0x08
)

// childNodeType is the EmberNodeType of an end device child: 3 end device (rx on), 4 sleepy end device.
func childNodeType(capabilities uint8) uint8 {
	if capabilities&capRxOnWhenIdle != 0 {
		return 3
	}
	return 4
}

// childIndex is the coordinator's child table slot of a device (the first free one when it is new).
func (s *Stick) childIndex(ieee zcl.IEEE) uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.children, ieee); i >= 0 {
		return uint8(i)
	}
	if i := slices.Index(s.children, 0); i >= 0 {
		s.children[i] = ieee
		return uint8(i)
	}
	s.children = append(s.children, ieee)
	return uint8(len(s.children) - 1)
}

// removeChild frees a device's child table slot; it reports the slot and whether the device was a child.
func (s *Stick) removeChild(ieee zcl.IEEE) (uint8, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.children, ieee)
	if i < 0 {
		return 0, false
	}
	s.children[i] = 0
	return uint8(i), true
}

func le64(v zcl.IEEE) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(uint64(v) >> (8 * i))
	}
	return b
}

func (s *Stick) String() string {
	vr := ezsp.VersionResponse{StackVersion: s.cfg.StackVersion}
	return fmt.Sprintf("fake EZSP v%d stick (EmberZNet %s)", s.cfg.ProtocolVersion, vr.EmberZNet())
}
