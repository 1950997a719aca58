package ash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp/serialport"
)

// Role says which end of the link a Conn is.
type Role uint8

// Roles.
const (
	// RoleHost sends RST and waits for RSTACK; it takes a DATA frame only after its own reset succeeded.
	RoleHost Role = iota
	// RoleNCP answers RST with RSTACK and can announce a reset of its own (the fake stick). After a reset it
	// sends no DATA frame until the host has sent a frame of the new link (see Conn).
	RoleNCP
)

// UG101 timer defaults.
const (
	DefaultAckTimeoutInit = 1600 * time.Millisecond
	DefaultAckTimeoutMin  = 400 * time.Millisecond
	DefaultAckTimeoutMax  = 3200 * time.Millisecond
	DefaultMaxAckTimeouts = 4
)

// Link errors.
var (
	// ErrNotConnected: Send before Reset succeeded, or after the link went down.
	ErrNotConnected = errors.New("ASH link not connected")
	// ErrAckTimeout: a DATA frame was not acknowledged after the maximum number of retransmissions.
	ErrAckTimeout = errors.New("ASH DATA frame not acknowledged")
	// ErrClosed: the Conn was closed.
	ErrClosed = errors.New("ASH link closed")
	// ErrLinkReset: the link was reset while a DATA frame waited for its ACK.
	ErrLinkReset = errors.New("ASH link reset")
	// ErrPortFailed wraps the read or write error that ended the link (the port vanished).
	ErrPortFailed = errors.New("serial port failed")
)

// ResetError reports that the NCP reset on its own (an RSTACK the host did not ask for) or reported a fatal
// error (ERROR frame): everything above ASH must start again.
type ResetError struct {
	Failed bool  // true: an ERROR frame (the NCP is in its FAILED state); false: an RSTACK
	Code   uint8 // reset or error code
}

func (e *ResetError) Error() string {
	if e.Failed {
		return fmt.Sprintf("NCP reported ASH ERROR (%s)", ResetCodeName(e.Code))
	}
	return fmt.Sprintf("NCP reset (%s)", ResetCodeName(e.Code))
}

// Config configures a Conn.
type Config struct {
	Role Role
	// Adaptive ACK timer (T_RX_ACK): initial value, lower and upper bound. Zero: the UG101 values.
	AckTimeoutInit, AckTimeoutMin, AckTimeoutMax time.Duration
	// MaxAckTimeouts is how many ACK timeouts in a row fail a DATA frame (UG101 ACK_TIMEOUTS, default 4).
	MaxAckTimeouts int
	// OnData receives the payload of every DATA frame in order, exactly once, on the reader goroutine. It must
	// not block for long (queue the work); the slice is owned by the callee.
	OnData func([]byte)
	// OnLinkDown (host) is called once per event, on the reader goroutine, when the NCP resets on its own or
	// sends ERROR (*ResetError), or when a DATA frame exhausted its retransmissions (ErrAckTimeout, from the
	// sending goroutine). The link stays down until Reset.
	OnLinkDown func(error)
	// OnReset (NCP) is called on the reader goroutine after the host's RST was answered with RSTACK.
	OnReset func()
	// ResetCode (NCP) is the code the RSTACK answering a RST carries (default ResetSoftware).
	ResetCode uint8
	// Window is the number of DATA frames this side keeps in flight (1..7; 0: 1, as bellows). UG101 allows up
	// to 7; an EmberZNet NCP sends with up to 5 (TX_K) and takes any in-order window from the host.
	Window int
	// Baud, when > 0, paces the writer to 10 bits per byte at this rate: it models the UART on links that have
	// none (a pseudo-terminal, a pipe); a frame reaches the peer when its last byte would have.
	Baud int
	// PrecisePacing busy-waits the end of each paced write (serialport.Pacer.Precise): for measurements.
	PrecisePacing bool
	// AckDelay, when > 0, holds an ACK back this long when nothing else waits to be written, so that a DATA
	// frame sent meanwhile carries the acknowledgement instead (UG101 T_TX_ACK_DELAY; the NCP answers every
	// command, so its ACK rides on the response). An ACK with a DATA or ACK frame already queued behind it is
	// always folded into that frame.
	AckDelay time.Duration
	// TxFilter, when set, sees (and may alter) every chunk of bytes just before it is written. Fault injection.
	TxFilter func([]byte) []byte
	// Log receives one debug line per frame and warnings for link trouble.
	Log zerolog.Logger
	// LogData, when set, renders the payload of a DATA frame for the debug log instead of plain hex (the
	// EZSP layer hides network keys with it).
	LogData func(data []byte) string
}

// Stats counts what happened on a link.
type Stats struct {
	DataSent, DataReceived         uint64
	Retransmits                    uint64
	AcksSent, NaksSent             uint64
	AcksFolded                     uint64 // of AcksSent, not written: a later frame carried the acknowledgement
	NaksReceived                   uint64
	FrameErrors                    uint64
	AckTimeouts                    uint64
	Resets                         uint64
	BytesWritten, BytesRead        uint64
	DuplicatesDropped, OutOfOrders uint64
}

type outstanding struct {
	frm    uint8
	data   []byte
	acked  chan struct{} // closed when ACKed
	nak    chan struct{} // one token per NAK
	broken chan error    // the link reset under it
	done   bool
	reset  bool // the link was reset (or failed) under it: its frame is no longer written
}

// MaxWindow is the largest number of DATA frames in flight ASH allows: frame numbers count modulo 8, and
// an acknowledgement number must tell "all acknowledged" from "none" (UG101).
const MaxWindow = 7

// Conn is one ASH link over a byte stream. Up to Config.Window DATA frames are in flight at once (sliding
// window, go-back-N: a NAK or an ACK timeout resends the frame and every later one still unacknowledged, in
// order); the receiving side takes frames strictly in order, ACKs each, NAKs the first out-of-order one and
// re-ACKs retransmissions it already took. It owns the port: Close closes it. Its reader and writer
// goroutines stop on Close or when the port fails.
//
// Resets. ASH cannot tell which RST an RSTACK answers: a host whose RSTACK was slow sends RST again (and a
// line could repeat one), the NCP resets twice and answers twice, and the host takes the first RSTACK as its
// answer while the NCP already runs the link the second one starts. Three rules keep a frame from being
// acknowledged on a link that never carried it:
//   - host: the first RSTACK with the software-reset code after its RST was written answers it (one that came
//     before cannot, nor one of a reset of the NCP's own: power-on, watchdog); any later
//     RSTACK is an NCP reset: every frame in flight fails with *ResetError and OnLinkDown reports it, as
//     when the NCP resets on its own;
//   - host: after such an NCP reset (or ERROR) no frame of the ended link is written any more: its ACKs and
//     acknowledgement numbers would reach the NCP's new link and acknowledge frames the host never took;
//     after its own RSTACK the host sends an ACK at once (as zigbee-herdsman does), so that the NCP knows;
//   - NCP: after a reset it sends no DATA frame until the host sent a frame of the new link (an EmberZNet
//     NCP only answers after a reset): frames sent between two resets would be taken and acknowledged by a
//     host that took the first RSTACK, and that acknowledgement would land on the second link. The host's
//     frames that follow its first RSTACK always reach the NCP after the second RST, so once the NCP
//     heard the host its link is the one the host is on.
//
// A reset also cuts the frame being written (the pacer's wait models its bytes on the way): a DATA frame
// whose Send failed with the reset, or any frame of a link the NCP ended, never reaches the peer whole.
type Conn struct {
	cfg  Config
	port io.ReadWriteCloser
	log  zerolog.Logger

	txq     chan txItem
	sendSem chan struct{} // one token per DATA frame in flight (Window)
	txMu    sync.Mutex    // DATA frames reach txq in frame-number order (first sends and resends)

	mu         sync.Mutex
	connected  bool
	txFrm      uint8
	rxExpect   uint8
	rejecting  bool
	outs       []*outstanding // in flight, oldest first
	gen        uint64         // link generation: +1 at every reset (frame numbers start again)
	txFloor    uint64         // frames of an older generation are never written: the NCP reset under them
	ackTimeout time.Duration
	resetWait  *resetWaiter // the Reset whose RST is on the wire, waiting for its RSTACK
	// NCP: hostHeard says the host sent a frame since the last reset; heard is closed then.
	hostHeard bool
	heard     chan struct{}

	stop      chan struct{}
	done      chan struct{}
	failOnce  sync.Once
	err       error
	closeOnce sync.Once
	wg        sync.WaitGroup

	st struct {
		dataSent, dataRecv, retx, acks, naks, naksRecv, frameErr, ackTO, resets, wrote, read, dups, ooo atomic.Uint64
		acksFolded                                                                                      atomic.Uint64
	}
}

// NewConn starts a link over port. A host must call Reset before Send; an NCP is connected once the host's
// RST arrives (or right away, see AnnounceReset).
func NewConn(port io.ReadWriteCloser, cfg Config) *Conn {
	if cfg.AckTimeoutInit <= 0 {
		cfg.AckTimeoutInit = DefaultAckTimeoutInit
	}
	if cfg.AckTimeoutMin <= 0 {
		cfg.AckTimeoutMin = DefaultAckTimeoutMin
	}
	if cfg.AckTimeoutMax <= 0 {
		cfg.AckTimeoutMax = DefaultAckTimeoutMax
	}
	if cfg.AckTimeoutMin > cfg.AckTimeoutInit {
		cfg.AckTimeoutMin = cfg.AckTimeoutInit
	}
	if cfg.AckTimeoutMax < cfg.AckTimeoutInit {
		cfg.AckTimeoutMax = cfg.AckTimeoutInit
	}
	if cfg.MaxAckTimeouts <= 0 {
		cfg.MaxAckTimeouts = DefaultMaxAckTimeouts
	}
	if cfg.ResetCode == 0 {
		cfg.ResetCode = ResetSoftware
	}
	cfg.Window = max(1, min(cfg.Window, MaxWindow))
	c := &Conn{
		cfg:        cfg,
		port:       port,
		log:        cfg.Log,
		txq:        make(chan txItem, 64),
		sendSem:    make(chan struct{}, cfg.Window),
		ackTimeout: cfg.AckTimeoutInit,
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		heard:      make(chan struct{}),
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c
}

// Done is closed when the link is finished: Close was called or the port failed (see Err).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why Done was closed (nil while the link runs).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close stops the goroutines and closes the port. It is safe to call more than once.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.fail(ErrClosed)
		close(c.stop)
		err = c.port.Close()
		c.wg.Wait()
	})
	return err
}

func (c *Conn) fail(err error) {
	c.failOnce.Do(func() {
		c.err = err
		c.mu.Lock()
		c.connected = false
		c.breakOutstanding(err)
		c.mu.Unlock()
		close(c.done)
	})
}

// Stats returns the link's counters.
func (c *Conn) Stats() Stats {
	return Stats{
		DataSent: c.st.dataSent.Load(), DataReceived: c.st.dataRecv.Load(), Retransmits: c.st.retx.Load(),
		AcksSent: c.st.acks.Load(), NaksSent: c.st.naks.Load(), AcksFolded: c.st.acksFolded.Load(), NaksReceived: c.st.naksRecv.Load(),
		FrameErrors: c.st.frameErr.Load(), AckTimeouts: c.st.ackTO.Load(), Resets: c.st.resets.Load(),
		BytesWritten: c.st.wrote.Load(), BytesRead: c.st.read.Load(),
		DuplicatesDropped: c.st.dups.Load(), OutOfOrders: c.st.ooo.Load(),
	}
}

// AckTimeout returns the current value of the adaptive ACK timer.
func (c *Conn) AckTimeout() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ackTimeout
}

// Connected reports whether DATA frames can be sent: the link is up and, on an NCP, the host has sent a
// frame since the last reset.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected && (c.cfg.Role != RoleNCP || c.hostHeard)
}

// Reset (host) sends Cancel + RST and waits for the NCP's RSTACK; then both sides start again at frame 0.
// It returns the RSTACK's reset code. A DATA frame in flight fails with ErrLinkReset.
func (c *Conn) Reset(ctx context.Context) (uint8, error) {
	w := &resetWaiter{answer: make(chan Frame, 1)}
	ch := w.answer
	c.mu.Lock()
	c.connected = false
	c.breakOutstanding(ErrLinkReset)
	c.resetWait = nil // an RSTACK from now until the RST is written cannot answer it
	next := c.gen + 1 // the RSTACK starts it
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		w.gone = true
		if c.resetWait == w {
			c.resetWait = nil
		}
		c.mu.Unlock()
	}()
	c.log.Debug().Msg("ASH tx RST")
	c.enqueueReset(Frame{Type: FrameRST}.Append([]byte{Cancel}), next, w)
	var f Frame
	select {
	case f = <-ch:
	case <-ctx.Done():
		select {
		case f = <-ch: // the RSTACK came as the wait ended: the link is up
		default:
			return 0, ctx.Err()
		}
	case <-c.done:
		return 0, c.err
	}
	if f.Version != Version {
		return f.Code, fmt.Errorf("RSTACK with ASH version %d, want %d", f.Version, Version)
	}
	return f.Code, nil
}

// resetWaiter is a Reset waiting for the RSTACK that answers its RST. The writer arms it (Conn.resetWait)
// as it writes the RST: an RSTACK that arrived before cannot be the answer (the NCP sent it before it got
// the RST), and taking it would start a link whose frames go out ahead of the RST.
type resetWaiter struct {
	answer chan Frame // buffered: the RSTACK taken
	gone   bool       // Reset returned; c.mu
}

// takeRSTACKLocked (host, reader goroutine, c.mu held) starts the link the RSTACK f answering Reset's RST
// begins, at once, so that the frames behind it are taken on the new link and a second RSTACK is not
// mistaken for the answer too.
func (c *Conn) takeRSTACKLocked(f Frame) {
	c.newGenLocked()
	c.txFrm, c.rxExpect, c.rejecting, c.connected = 0, 0, false, true
	c.ackTimeout = c.cfg.AckTimeoutInit
	c.resetWait.answer <- f // buffered, and only one RSTACK is taken for it
	c.resetWait = nil
	c.st.resets.Add(1)
}

// AnnounceReset (NCP) behaves as if the NCP had just reset: frame numbers start again and an RSTACK with
// code goes out unasked. The fake stick uses it at power-on and to inject a reset mid-traffic.
func (c *Conn) AnnounceReset(code uint8) {
	c.mu.Lock()
	c.newGenLocked()
	c.txFrm, c.rxExpect, c.rejecting, c.connected = 0, 0, false, true
	c.breakOutstanding(ErrLinkReset)
	if c.hostHeard {
		c.hostHeard, c.heard = false, make(chan struct{})
	}
	gen := c.gen
	c.mu.Unlock()
	c.st.resets.Add(1)
	c.log.Debug().Str("code", ResetCodeName(code)).Msg("ASH tx RSTACK")
	c.enqueueReset(Frame{Type: FrameRSTACK, Version: Version, Code: code}.Append([]byte{Cancel}), gen, nil)
}

// SendError (NCP) sends an ERROR frame and leaves the link down until the host resets it.
func (c *Conn) SendError(code uint8) {
	c.mu.Lock()
	c.connected = false
	c.breakOutstanding(ErrLinkReset)
	c.mu.Unlock()
	c.enqueue(Frame{Type: FrameError, Version: Version, Code: code}.Append(nil))
}

// Send transmits one DATA frame (3-128 bytes) and returns when the peer acknowledged it. Up to Window calls
// have their frames in flight at once; more wait for a free slot (an NCP's also for the host's first frame
// after a reset). It retransmits (go-back-N from its frame)
// on NAK and on ACK timeout (doubling the timer each time), and gives up with ErrAckTimeout after
// MaxAckTimeouts timeouts in a row, which leaves the link down (the host must Reset).
func (c *Conn) Send(ctx context.Context, data []byte) error {
	wait, err := c.Start(ctx, data)
	if err != nil {
		return err
	}
	return wait()
}

// Start queues data as the next DATA frame once a window slot is free, and returns without waiting for the
// acknowledgement: wait (which must be called, once, from any goroutine) does that, with Send's
// retransmissions, and frees the slot. Frames go out in the order Start was called, so one goroutine can keep
// the whole window busy.
func (c *Conn) Start(ctx context.Context, data []byte) (wait func() error, err error) {
	if len(data) < minDataLen || len(data) > MaxDataLen {
		return nil, fmt.Errorf("ASH DATA field of %d bytes: must be %d-%d", len(data), minDataLen, MaxDataLen)
	}
	select {
	case c.sendSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.err
	}

	c.txMu.Lock()
	c.mu.Lock()
	for c.connected && c.cfg.Role == RoleNCP && !c.hostHeard {
		heard := c.heard
		c.mu.Unlock()
		c.txMu.Unlock()
		select {
		case <-heard:
		case <-ctx.Done():
			<-c.sendSem
			return nil, ctx.Err()
		case <-c.done:
			<-c.sendSem
			return nil, c.err
		}
		c.txMu.Lock()
		c.mu.Lock()
	}
	if !c.connected {
		c.mu.Unlock()
		c.txMu.Unlock()
		<-c.sendSem
		return nil, ErrNotConnected
	}
	o := &outstanding{frm: c.txFrm, data: data, acked: make(chan struct{}), nak: make(chan struct{}, 1), broken: make(chan error, 1)}
	c.txFrm = (c.txFrm + 1) & 7
	c.outs = append(c.outs, o)
	f := Frame{Type: FrameData, FrmNum: o.frm, AckNum: c.rxExpect, Data: data}
	ackWait := c.ackTimeout
	gen := c.gen
	c.mu.Unlock()
	c.st.dataSent.Add(1)
	sent := time.Now()
	c.enqueueFrame(f, gen, o)
	c.txMu.Unlock()
	return func() error {
		defer func() { <-c.sendSem }()
		defer c.forget(o)
		return c.awaitAck(ctx, o, sent, ackWait)
	}, nil
}

// awaitAck waits for o's acknowledgement, retransmitting on NAK and ACK timeout.
func (c *Conn) awaitAck(ctx context.Context, o *outstanding, sent time.Time, wait time.Duration) error {
	reTx := false
	timeouts := 0
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-o.acked:
			if !reTx {
				c.adaptAckTimer(time.Since(sent))
			}
			return nil
		case <-o.nak:
			reTx = true
		case <-timer.C:
			timeouts++
			c.st.ackTO.Add(1)
			c.mu.Lock()
			c.ackTimeout = min(2*c.ackTimeout, c.cfg.AckTimeoutMax)
			c.mu.Unlock()
			if timeouts >= c.cfg.MaxAckTimeouts {
				c.mu.Lock()
				wasUp := c.connected
				c.connected = false
				c.mu.Unlock()
				err := fmt.Errorf("frame %d after %d tries: %w", o.frm, timeouts, ErrAckTimeout)
				c.log.Warn().Int("frm", int(o.frm)).Int("tries", timeouts).Msg("ASH link failed: no ACK")
				if wasUp && c.cfg.OnLinkDown != nil {
					c.cfg.OnLinkDown(err)
				}
				return err
			}
			reTx = true
		case err := <-o.broken:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return c.err
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		c.mu.Lock()
		wait = c.ackTimeout
		c.mu.Unlock()
		c.resendFrom(o)
		timer.Reset(wait)
	}
}

// resendFrom retransmits o and every later frame still in flight, in order (go-back-N). Nothing when o was
// acknowledged meanwhile.
func (c *Conn) resendFrom(o *outstanding) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	c.mu.Lock()
	i := slices.Index(c.outs, o)
	if i < 0 || o.done {
		c.mu.Unlock()
		return
	}
	outs := slices.Clone(c.outs[i:])
	frames := make([]Frame, 0, len(outs))
	for _, r := range outs {
		frames = append(frames, Frame{Type: FrameData, FrmNum: r.frm, AckNum: c.rxExpect, ReTx: true, Data: r.data})
	}
	gen := c.gen
	c.mu.Unlock()
	for i, f := range frames {
		c.st.retx.Add(1)
		c.enqueueFrame(f, gen, outs[i])
	}
}

// forget drops o from the frames in flight (acknowledged, failed or abandoned).
func (c *Conn) forget(o *outstanding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.outs, o); i >= 0 {
		c.outs = slices.Delete(c.outs, i, i+1)
	}
}

// adaptAckTimer applies UG101's T_RX_ACK = 7/8·T_RX_ACK + 1/2·measured, within [min, max].
func (c *Conn) adaptAckTimer(measured time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.ackTimeout*7/8 + measured/2
	c.ackTimeout = max(c.cfg.AckTimeoutMin, min(t, c.cfg.AckTimeoutMax))
}

// breakOutstanding fails every DATA frame in flight; c.mu held.
func (c *Conn) breakOutstanding(err error) {
	for _, o := range c.outs {
		if !o.done {
			o.done, o.reset = true, true
			o.broken <- err
		}
	}
	c.outs = nil
}

// txItem is one thing for the writer: raw bytes, or a DATA, ACK or NAK frame whose acknowledgement number
// the writer fills in when it writes it, so that no frame ever carries an older ackNum than one sent before
// it (with several frames in flight a stale ackNum would acknowledge frames modulo 8 that never arrived).
// A frame queued before a reset keeps the ackNum it was made with (an ACK the NCP queued just before it
// rebooted still acknowledges the command that made it reboot).
//
// A frame of an older generation is never written after the RST or RSTACK that ended its link: the peer
// would take its frame and acknowledgement numbers for the new link's (a DATA frame numbered 0 delivered
// as the new link's first, an ackNum acknowledging new frames that never arrived). Start and resendFrom
// queue a frame a moment after they checked the link under c.mu, so a reset can come in between.
type txItem struct {
	raw    []byte
	frame  Frame
	gen    uint64       // frame: its link generation; reset: the first generation allowed after it
	reset  bool         // raw is a RST or RSTACK
	waiter *resetWaiter // RST: the Reset to arm once it is written
	out    *outstanding // DATA: the frame in flight it sends
	now    bool         // an ACK never held back (AckDelay)
}

// newGenLocked starts a link generation (reset); c.mu held.
func (c *Conn) newGenLocked() { c.gen++ }

// enqueueFrame queues a DATA (of o), ACK or NAK frame of link generation gen; its AckNum is set at write time.
func (c *Conn) enqueueFrame(f Frame, gen uint64, o *outstanding) {
	select {
	case c.txq <- txItem{frame: f, gen: gen, out: o}:
	case <-c.done:
	}
}

func (c *Conn) enqueue(b []byte) {
	select {
	case c.txq <- txItem{raw: b}:
	case <-c.done:
	}
}

// enqueueReset queues a RST or RSTACK after which only frames of generation gen or later are written; w
// (RST) is armed when it is written.
func (c *Conn) enqueueReset(b []byte, gen uint64, w *resetWaiter) {
	select {
	case c.txq <- txItem{raw: b, gen: gen, reset: true, waiter: w}:
	case <-c.done:
	}
}

func (c *Conn) writeLoop() {
	defer c.wg.Done()
	pacer := serialport.Pacer{Baud: c.cfg.Baud, Precise: c.cfg.PrecisePacing}
	var queued []txItem // taken from txq, not yet written: the writer looks ahead to fold ACKs into later frames
	var minGen uint64   // frames of an older generation were ended by a RST or RSTACK already written
	var ackOnWire uint8 // the acknowledgement number last written, in link generation ackGen
	var ackGen uint64
	take := func(block bool) bool {
		for {
			if block && len(queued) == 0 {
				select {
				case <-c.done:
					return false
				case it := <-c.txq:
					queued = append(queued, it)
				}
				continue
			}
			select {
			case it := <-c.txq:
				queued = append(queued, it)
			default:
				return true
			}
		}
	}
	for {
		if !take(true) {
			return
		}
		it := queued[0]
		if it.raw == nil && it.frame.Type == FrameAck && !it.now && len(queued) == 1 && c.cfg.AckDelay > 0 && c.unackedOnWire(it.gen, ackOnWire, ackGen) <= 1 {
			// UG101 lets a side hold an ACK back (T_TX_ACK_DELAY) so that a DATA frame it is about to
			// send carries the acknowledgement instead; only the ACK of a single frame waits, so that a
			// peer whose window may be full is never kept waiting.
			t := time.NewTimer(c.cfg.AckDelay)
			select {
			case next := <-c.txq:
				queued = append(queued, next)
			case <-t.C:
			case <-c.done:
				t.Stop()
				return
			}
			t.Stop()
			if !take(false) {
				return
			}
		}
		queued = queued[1:]
		if it.raw == nil && it.gen < minGen {
			c.log.Debug().Stringer("frame", it.frame).Msg("ASH tx dropped: the link was reset since it was queued")
			continue
		}
		if it.raw == nil && c.superseded(it, queued) {
			c.st.acksFolded.Add(1)
			continue
		}
		b := it.raw
		var f Frame
		if b == nil {
			f = it.frame
			c.mu.Lock()
			// A DATA frame whose link was reset since it was queued is not written: its sender has
			// failed already, and a backlog of dead frames would hold back the RST or RSTACK behind it
			// (an RSTACK that comes after the host gave up waiting is taken for the answer to its next
			// RST, and the two ends then run different links; see TestSoakLossyLink). Nor is any frame of a
			// link the NCP ended by resetting (txFloor): the NCP's new link would take it.
			dead := c.cutLocked(it)
			if !dead && it.gen == c.gen {
				// Acknowledgement numbers on the wire never go back: with 7 frames in flight the peer
				// takes an ackNum one behind the last it got as acknowledging all 7 (modulo 8), frames it
				// never received among them. A NAK asks for the frame that was next when it was queued; if
				// that frame arrived since, a frame written before this one may already carry the newer
				// number, so the NAK goes out as an ACK of where we are now.
				if f.Type == FrameNak && f.AckNum != c.rxExpect {
					f.Type = FrameAck
				}
				f.AckNum = c.rxExpect
			}
			c.mu.Unlock()
			if dead {
				c.log.Debug().Stringer("frame", f).Msg("ASH tx dropped: the link was reset since it was queued")
				continue
			}
			b = f.Append(nil)
		}
		if c.cfg.TxFilter != nil {
			b = c.cfg.TxFilter(b)
		}
		// The bytes reach the peer when a UART would have finished sending them (no pacing on a real port).
		if !pacer.Wait(len(b), c.done) {
			return
		}
		if it.raw == nil && c.cutByReset(it) {
			// The link was reset while the frame was on its way out (the pacer's wait, a TxFilter): a
			// reset cuts the frame the UART is sending, and the peer, on the new link by now, must not
			// take its numbers for the new link's.
			c.log.Debug().Stringer("frame", f).Msg("ASH tx cut: the link was reset while it was sent")
			continue
		}
		if it.raw == nil {
			c.debugFrame("tx", f)
		}
		if it.waiter != nil {
			// The RST goes out now: the next RSTACK may answer it (one that came before could not).
			c.mu.Lock()
			if !it.waiter.gone {
				c.resetWait = it.waiter
			}
			c.mu.Unlock()
		}
		if _, err := c.port.Write(b); err != nil {
			c.fail(fmt.Errorf("%w: write: %w", ErrPortFailed, err))
			return
		}
		c.st.wrote.Add(uint64(len(b)))
		if it.raw == nil {
			ackOnWire, ackGen = f.AckNum, it.gen
		}
		if it.reset {
			minGen = max(minGen, it.gen)
		}
	}
}

// cutByReset says a frame is not written: a DATA frame that failed with a reset of its link, or any frame of
// a link the NCP ended.
func (c *Conn) cutByReset(it txItem) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cutLocked(it)
}

// cutLocked is cutByReset with c.mu held.
func (c *Conn) cutLocked(it txItem) bool { return it.out != nil && it.out.reset || it.gen < c.txFloor }

// unackedOnWire is how many DATA frames of link generation gen this side took that no frame on the wire
// acknowledged yet (ackOnWire, written in generation ackGen).
func (c *Conn) unackedOnWire(gen uint64, ackOnWire uint8, ackGen uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return 0
	}
	if ackGen != gen {
		ackOnWire = 0
	}
	return int((c.rxExpect - ackOnWire) & 7)
}

// superseded says an ACK need not be written: a DATA or ACK frame of the same link generation waits behind
// it, and that frame's acknowledgement number, set when it is written, acknowledges at least as much
// (acknowledgements are cumulative). A NAK, a frame of an older generation and raw bytes are never folded.
func (c *Conn) superseded(it txItem, later []txItem) bool {
	if it.frame.Type != FrameAck {
		return false
	}
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	if it.gen != gen {
		return false
	}
	for _, l := range later {
		if l.reset {
			return false // what follows a reset belongs to another link
		}
		if l.raw == nil && l.gen == gen && (l.frame.Type == FrameData || l.frame.Type == FrameAck) {
			return true
		}
	}
	return false
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	var dec Decoder
	buf := make([]byte, 512)
	for {
		n, err := c.port.Read(buf)
		if n > 0 {
			c.st.read.Add(uint64(n))
			dec.Feed(buf[:n], c.handle)
		}
		if err != nil {
			c.fail(fmt.Errorf("%w: read: %w", ErrPortFailed, err))
			return
		}
		if n == 0 {
			select {
			case <-c.done:
				return
			default:
			}
		}
	}
}

func (c *Conn) debugFrame(dir string, f Frame) {
	if e := c.log.Debug(); e.Enabled() {
		if c.cfg.LogData != nil {
			e.Str("dir", dir).Stringer("frame", f).Str("data", c.cfg.LogData(f.Data)).Msg("ASH frame")
			return
		}
		e.Str("dir", dir).Stringer("frame", f).Hex("data", f.Data).Msg("ASH frame")
	}
}

// handle runs on the reader goroutine for every decoded frame or frame error.
func (c *Conn) handle(f Frame, err error) {
	if err != nil {
		c.st.frameErr.Add(1)
		var fe *DecodeError
		errors.As(err, &fe)
		c.log.Debug().Err(err).Msg("ASH frame error")
		c.mu.Lock()
		nak := c.connected && fe != nil && fe.MaybeData() && !c.rejecting
		if nak {
			c.rejecting = true
		}
		ack := c.rxExpect
		c.mu.Unlock()
		if nak {
			c.sendAckNak(FrameNak, ack)
		}
		return
	}
	c.debugFrame("rx", f)
	if f.Type == FrameData || f.Type == FrameAck || f.Type == FrameNak {
		c.mu.Lock()
		if c.connected && c.cfg.Role == RoleNCP && !c.hostHeard {
			c.hostHeard = true
			close(c.heard)
		}
		c.mu.Unlock()
	}
	switch f.Type {
	case FrameData:
		c.mu.Lock()
		if !c.connected {
			c.mu.Unlock()
			return
		}
		c.takeAckNum(f.AckNum)
		switch {
		case f.FrmNum == c.rxExpect:
			c.rxExpect = (c.rxExpect + 1) & 7
			c.rejecting = false
			ack := c.rxExpect
			c.mu.Unlock()
			c.st.dataRecv.Add(1)
			c.sendAckNak(FrameAck, ack)
			if c.cfg.OnData != nil {
				c.cfg.OnData(f.Data)
			}
		case f.ReTx:
			// A retransmission of a frame we already took (our ACK got lost), or of one after a frame we
			// are still missing (go-back-N resends from the lost one; it comes again): ACK where we are,
			// deliver nothing.
			ack := c.rxExpect
			c.mu.Unlock()
			c.st.dups.Add(1)
			c.sendAckNak(FrameAck, ack)
		default:
			c.st.ooo.Add(1)
			nak := !c.rejecting
			c.rejecting = true
			ack := c.rxExpect
			c.mu.Unlock()
			if nak {
				c.sendAckNak(FrameNak, ack)
			}
		}
	case FrameAck:
		c.mu.Lock()
		if c.connected { // not connected: a frame of a link that ended (none is in flight)
			c.takeAckNum(f.AckNum)
		}
		c.mu.Unlock()
	case FrameNak:
		c.st.naksRecv.Add(1)
		c.mu.Lock()
		if !c.connected {
			c.mu.Unlock()
			return
		}
		c.takeAckNum(f.AckNum)
		for _, o := range c.outs {
			if !o.done && f.AckNum == o.frm {
				select {
				case o.nak <- struct{}{}:
				default:
				}
			}
		}
		c.mu.Unlock()
	case FrameRST:
		if c.cfg.Role != RoleNCP {
			return
		}
		c.AnnounceReset(c.cfg.ResetCode)
		if c.cfg.OnReset != nil {
			c.cfg.OnReset()
		}
	case FrameRSTACK, FrameError:
		if c.cfg.Role != RoleHost {
			return
		}
		c.mu.Lock()
		if f.Type == FrameRSTACK && c.resetWait != nil && f.Code != ResetSoftware {
			// An NCP answers RST with a software reset; another code is a reset of its own (power-on,
			// watchdog) that happened before it got our RST, whose answer is still to come. zigbee-herdsman
			// and Silicon Labs' ash-host ignore it the same way.
			c.mu.Unlock()
			c.log.Debug().Str("code", ResetCodeName(f.Code)).Msg("ASH: RSTACK of a reset before our RST: ignored")
			return
		}
		if f.Type == FrameRSTACK && c.resetWait != nil {
			c.takeRSTACKLocked(f)
			c.mu.Unlock()
			// The first frame of the new link: the NCP sends nothing before it has one (see Conn).
			c.queueAckNak(FrameAck, 0, true)
			return
		}
		// An RSTACK nobody waits for (the NCP reset on its own, or answered a RST a second time) or an
		// ERROR: the link ends, and nothing of it is written any more.
		wasUp := c.connected
		c.connected = false
		c.txFloor = c.gen + 1
		rerr := &ResetError{Failed: f.Type == FrameError, Code: f.Code}
		c.breakOutstanding(rerr)
		c.mu.Unlock()
		if wasUp {
			c.log.Warn().Str("frame", f.String()).Msg("ASH: NCP reset or failed")
			if c.cfg.OnLinkDown != nil {
				c.cfg.OnLinkDown(rerr)
			}
		}
	}
}

// takeAckNum processes an acknowledgement number (ACK, NAK or piggybacked on DATA): it acknowledges every
// frame in flight before ack (cumulative, modulo 8); c.mu held.
func (c *Conn) takeAckNum(ack uint8) {
	for len(c.outs) > 0 {
		o := c.outs[0]
		if k := int((ack - o.frm) & 7); k == 0 || k > len(c.outs) {
			return // ack is o's own number (o not yet taken) or a stale one
		}
		if !o.done {
			o.done = true
			close(o.acked)
		}
		c.outs = c.outs[1:]
	}
}

func (c *Conn) sendAckNak(t FrameType, ack uint8) { c.queueAckNak(t, ack, false) }

// queueAckNak queues an ACK or NAK of the current link; now: an ACK never held back by AckDelay.
func (c *Conn) queueAckNak(t FrameType, ack uint8, now bool) {
	if t == FrameNak {
		c.st.naks.Add(1)
	} else {
		c.st.acks.Add(1)
	}
	// An ACK's number is set when it is written (never older than a DATA frame's written before it); a NAK
	// keeps the frame it asks for, unless that frame arrived meanwhile (then it goes out as an ACK).
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	select {
	case c.txq <- txItem{frame: Frame{Type: t, AckNum: ack}, gen: gen, now: now}:
	case <-c.done:
	}
}
