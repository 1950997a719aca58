// Package fakestick owns otabridge's fake Texas Instruments Z-Stack stick: the ZNP side of the MT protocol,
// written in Go, serving a network behind it (in production the simulated network of ncp/sim, which the
// host's formation and resume move onto the host's network). It speaks real bytes on an io.ReadWriteCloser:
// one end of a pseudo-terminal (otabridge simstick --protocol znp) or an in-memory pipe in tests. It behaves
// as Koenkk's Z-Stack 3.x.0 coordinator firmware (build 20240710) does for hosts: ping, version, soft reset
// with SYS_RESET_IND, OSAL NV items that outlive host sessions (so a stopped host resumes), BDB formation
// with the state-change and commissioning callbacks, startup from app, AF endpoints, AF data requests with
// their confirms, ZDO requests as MT commands answered by ZDO callbacks, join/announce/leave indications,
// permit join, and the RPC error for commands it does not know. It injects faults on request: a reset
// mid-traffic and the port vanishing.
package fakestick

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/serialport"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/znp"
	"github.com/otabridge/otabridge/zcl"
)

// Network is what the stick needs from the network behind it (a subset of ncp.Radio; *sim.Network fits).
type Network interface {
	Start(ctx context.Context) (ncp.NetworkInfo, error)
	PermitJoin(ctx context.Context, seconds uint8) error
	Send(ctx context.Context, f ncp.Frame) error
	Events() <-chan ncp.Event
	MaxAPSPayload() int
}

// networkFormer is a network the host's formation moves (ncp/sim's Network).
type networkFormer interface {
	Form(p sim.NetworkParams) error
}

// endpointRegistrar is a network whose coordinator answers ZDO descriptor requests from the endpoints the
// host registered.
type endpointRegistrar interface {
	SetCoordinatorEndpoints(eps []sim.EndpointDesc)
}

// Config describes the stick.
type Config struct {
	// Version is what SYS_VERSION reports (default: Z-Stack 3.x.0 2.7.1, build 20240710, Koenkk's firmware).
	Version znp.Version
	// EUI64 is the stick's IEEE address (default 0x00124B0024C00001).
	EUI64 zcl.IEEE
	// Baud, when > 0, paces the stick's transmissions to 10 bits per byte at this rate, like a UART.
	Baud int
	// PrecisePacing busy-waits the end of each paced write (serialport.Pacer.Precise): for measurements.
	PrecisePacing bool
	// NeedsBootloaderSkip makes the stick stay silent until it receives the bootloader-skip byte 0xEF.
	NeedsBootloaderSkip bool
	Log                 zerolog.Logger
}

// DefaultVersion is Koenkk's Z-Stack 3.x.0 coordinator firmware of 2024-07-10 as it reports itself.
var DefaultVersion = znp.Version{TransportRev: 2, Product: znp.ProductZStack3x0, Major: 2, Minor: 7, Maint: 1, Revision: 20240710}

// Stick is the fake ZNP stick. Make it with New, serve a port with Serve, stop it with Close.
type Stick struct {
	cfg Config
	net Network
	log zerolog.Logger

	mu         sync.Mutex
	nv         map[uint16][]byte
	state      uint8 // device state (znp.State*)
	netStarted bool
	primary    uint32 // BDB primary channel mask
	endpoints  map[uint8]znp.AFRegisterReq
	eui        map[uint16]zcl.IEEE
	commands   map[string]int
	resets     int
	zdoSeq     uint8
	groups     map[uint32]struct{} // endpoint<<16 | group id
	policies   map[string]uint8    // trust-center policy commands and the value last set
	booted     bool                // the bootloader was skipped (NeedsBootloaderSkip)
	sess       *session

	bytesRead, bytesWritten atomic.Int64

	serving   chan struct{}
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New makes a stick in front of net and starts reading the network's events (until Close).
func New(net Network, cfg Config) *Stick {
	if cfg.Version == (znp.Version{}) {
		cfg.Version = DefaultVersion
	}
	if cfg.EUI64 == 0 {
		cfg.EUI64 = 0x00124B0024C00001
	}
	s := &Stick{cfg: cfg, net: net, log: cfg.Log.With().Str("component", "fakestick-znp").Logger(),
		nv: factoryNV(), endpoints: make(map[uint8]znp.AFRegisterReq), eui: make(map[uint16]zcl.IEEE),
		commands: make(map[string]int), groups: make(map[uint32]struct{}), policies: make(map[string]uint8), serving: make(chan struct{}, 1), stop: make(chan struct{})}
	s.wg.Add(1)
	go s.pumpNetworkEvents()
	return s
}

// factoryNV is the NV of a freshly flashed stick: Z-Stack's defaults for the items hosts read.
func factoryNV() map[uint16][]byte {
	return map[uint16][]byte{
		znp.NVStartupOption:    {0},
		znp.NVLogicalType:      {0},
		znp.NVZDODirectCB:      {0},
		znp.NVPANID:            {0xFF, 0xFF},
		znp.NVChanList:         {0x00, 0x08, 0x00, 0x00}, // channel 11
		znp.NVExtendedPANID:    {0xDD, 0xDD, 0xDD, 0xDD, 0xDD, 0xDD, 0xDD, 0xDD},
		znp.NVAPSUseExtPANID:   make([]byte, 8),
		znp.NVPreCfgKeysEnable: {0},
		nvNwkKey:               nwkKeyItem([16]byte{}),
		znp.NVPreCfgKey:        {0x01, 0x03, 0x05, 0x07, 0x09, 0x0B, 0x0D, 0x0F, 0x00, 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C, 0x0D},
	}
}

// Close ends Serve and the event reader.
func (s *Stick) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}

// Commands returns how many commands of each name the stick answered.
func (s *Stick) Commands() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.commands))
	for k, v := range s.commands {
		out[k] = v
	}
	return out
}

// NVItem returns a copy of an NV item (nil when absent).
func (s *Stick) NVItem(id uint16) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.nv[id]...)
}

// Policy returns the value a host last set with a trust-center policy command (by name) and whether it did.
func (s *Stick) Policy(name string) (uint8, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.policies[name]
	return v, ok
}

// WireBytes returns how many bytes the stick read from hosts and wrote to them, over all sessions.
func (s *Stick) WireBytes() (read, written int64) { return s.bytesRead.Load(), s.bytesWritten.Load() }

// Resets returns how many times the stick reset (asked or not).
func (s *Stick) Resets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resets
}

func (s *Stick) String() string {
	return fmt.Sprintf("fake ZNP stick (%s)", s.cfg.Version)
}

// Serve speaks MT on port until ctx ends, Close, DropPort, or the port fails; it closes the port. One port at
// a time (a second Serve waits for the first to end): the stick's NV and network outlive the sessions.
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
	ss := s.newSession(ctx, port)
	s.mu.Lock()
	s.sess = ss
	s.mu.Unlock()
	ss.wg.Add(1)
	go ss.readLoop()
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-s.stop:
		err = errors.New("fakestick closed")
	case <-ss.failed:
		err = ss.err
	case <-ss.dropped:
		err = errors.New("port dropped")
	}
	ss.cancel()
	port.Close()
	ss.wg.Wait()
	s.mu.Lock()
	s.sess = nil
	s.mu.Unlock()
	return err
}

// Reset makes the stick reset as if its watchdog fired mid-traffic: SYS_RESET_IND unasked, endpoints gone,
// the network down until the host starts it again (its NV keeps it).
func (s *Stick) Reset() {
	if ss := s.current(); ss != nil {
		ss.reset(2)
	}
}

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

func (s *Stick) count(name string) {
	s.mu.Lock()
	s.commands[name]++
	s.mu.Unlock()
}

func (s *Stick) isUp() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == znp.StateCoordinator
}

// session is one host connection.
type session struct {
	st     *Stick
	port   io.ReadWriteCloser
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	wmu   sync.Mutex
	pacer serialport.Pacer // the UART's timing when Config.Baud is set

	mu    sync.Mutex
	epoch uint64 // bumped by a reset: confirms of older sends are dropped

	failed   chan struct{}
	failOnce sync.Once
	err      error
	dropped  chan struct{}
	dropOnce sync.Once
}

func (s *Stick) newSession(ctx context.Context, port io.ReadWriteCloser) *session {
	cctx, cancel := context.WithCancel(ctx)
	return &session{st: s, port: port, ctx: cctx, cancel: cancel, failed: make(chan struct{}), dropped: make(chan struct{}),
		pacer: serialport.Pacer{Baud: s.cfg.Baud, Precise: s.cfg.PrecisePacing}}
}

func (ss *session) fail(err error) {
	ss.failOnce.Do(func() {
		ss.err = err
		close(ss.failed)
	})
}

func (ss *session) readLoop() {
	defer ss.wg.Done()
	var dec znp.Decoder
	buf := make([]byte, 512)
	for {
		n, err := ss.port.Read(buf)
		if n > 0 {
			ss.st.bytesRead.Add(int64(n))
			chunk := buf[:n]
			ss.st.mu.Lock()
			if ss.st.cfg.NeedsBootloaderSkip && !ss.st.booted {
				for i, c := range chunk {
					if c == znp.SkipBootloaderByte {
						ss.st.booted = true
						chunk = chunk[i+1:]
						break
					}
				}
				if !ss.st.booted {
					chunk = nil
				}
			}
			ss.st.mu.Unlock()
			for _, f := range dec.Feed(chunk) {
				ss.handle(f)
			}
		}
		if err != nil {
			ss.fail(err)
			return
		}
	}
}

// write sends one frame, paced like a UART when Config.Baud is set: it reaches the host when its last byte
// would have.
func (ss *session) write(f znp.Frame) {
	b := f.Append(nil)
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	if ss.ctx.Err() != nil {
		return
	}
	if !ss.pacer.Wait(len(b), ss.ctx.Done()) {
		return
	}
	if _, err := ss.port.Write(b); err != nil {
		ss.fail(err)
		return
	}
	ss.st.bytesWritten.Add(int64(len(b)))
}

func (ss *session) callback(cmd znp.Command, data []byte) { ss.write(cmd.Callback(data)) }

func (ss *session) respond(cmd znp.Command, data []byte) { ss.write(cmd.Response(data)) }

func (ss *session) currentEpoch() uint64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.epoch
}

// go runs f on a goroutine the session owns.
func (ss *session) spawn(f func()) {
	ss.wg.Add(1)
	go func() {
		defer ss.wg.Done()
		f()
	}()
}

// reset restarts Z-Stack: startup options applied, endpoints and network state gone, SYS_RESET_IND.
func (ss *session) reset(reason uint8) {
	st := ss.st
	ss.mu.Lock()
	ss.epoch++
	ss.mu.Unlock()
	st.mu.Lock()
	st.resets++
	st.state = znp.StateHold
	st.endpoints = make(map[uint8]znp.AFRegisterReq)
	if opt := st.nv[znp.NVStartupOption]; len(opt) > 0 && opt[0]&(znp.StartupClearConfig|znp.StartupClearState) != 0 {
		fresh := factoryNV()
		if opt[0]&znp.StartupClearState != 0 {
			delete(st.nv, znp.NVNIB)
			delete(st.nv, znp.NVActiveKeyInfo)
			delete(st.nv, znp.NVAltKeyInfo)
		}
		if opt[0]&znp.StartupClearConfig != 0 {
			for id, v := range fresh {
				st.nv[id] = v
			}
			delete(st.nv, znp.NVHasConfigured)
		}
		st.nv[znp.NVStartupOption] = []byte{0}
	}
	v := st.cfg.Version
	st.mu.Unlock()
	st.log.Info().Uint8("reason", reason).Msg("stick reset")
	ss.callback(znp.SysResetInd, znp.ResetInd{Reason: reason, TransportRev: v.TransportRev, Product: v.Product, Major: v.Major,
		Minor: v.Minor, Maint: v.Maint}.Append(nil))
}

// sortedEndpoints returns the registered endpoints in endpoint order; st.mu held.
func (s *Stick) sortedEndpoints() []sim.EndpointDesc {
	keys := make([]int, 0, len(s.endpoints))
	for k := range s.endpoints {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	out := make([]sim.EndpointDesc, 0, len(keys))
	for _, k := range keys {
		e := s.endpoints[uint8(k)]
		out = append(out, sim.EndpointDesc{Endpoint: e.Endpoint, ProfileID: e.ProfileID, DeviceID: e.DeviceID, DeviceVersion: e.DeviceVersion,
			InClusters: e.InClusters, OutClusters: e.OutClusters})
	}
	return out
}

// networkParams reads the network the NV holds.
func (s *Stick) networkParams() sim.NetworkParams {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p sim.NetworkParams
	if v := s.nv[znp.NVPANID]; len(v) >= 2 {
		p.PANID = binary.LittleEndian.Uint16(v)
	}
	if v := s.nv[znp.NVExtendedPANID]; len(v) >= 8 {
		p.ExtendedPANID = zcl.IEEE(binary.LittleEndian.Uint64(v))
	}
	mask := s.primary
	if v := s.nv[znp.NVChanList]; mask == 0 && len(v) >= 4 {
		mask = binary.LittleEndian.Uint32(v)
	}
	for ch := uint8(11); ch <= 26; ch++ {
		if mask&(1<<ch) != 0 {
			p.Channel = ch
			break
		}
	}
	if v := s.nv[znp.NVPreCfgKey]; len(v) >= 16 {
		copy(p.NetworkKey[:], v)
	}
	return p
}
