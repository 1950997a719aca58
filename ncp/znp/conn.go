package znp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Errors of the command channel.
var (
	ErrCommandTimeout = errors.New("no answer from the stick")
	ErrConnClosed     = errors.New("connection closed")
)

// CommandError is an SREQ the stick refused with an RPC error SRSP.
type CommandError struct {
	Command Command
	RPC     RPCErrorInfo
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("ZNP %s: the stick refused it: %s", e.Command, e.RPC)
}

// Conn is one connection to a ZNP stick: MT frames over a byte stream, one SREQ outstanding at a time (as
// Z-Stack requires), SRSPs matched by subsystem and id, and AREQs handed to OnCallback in arrival order.
//
// Goroutines: one reader, stopped by Close or when the stream fails (Done is closed then).
type Conn struct {
	port       io.ReadWriteCloser
	log        zerolog.Logger
	onCallback func(Frame)
	timeout    time.Duration

	reqMu sync.Mutex // one SREQ at a time
	wmu   sync.Mutex // whole frames on the wire

	mu   sync.Mutex
	wait *pendingSREQ

	done      chan struct{}
	err       error
	closeOnce sync.Once
	wg        sync.WaitGroup

	rxFrames, txFrames, dropped int
}

type pendingSREQ struct {
	cmd Command
	ch  chan Frame
}

// ConnStats counts a connection's traffic.
type ConnStats struct{ RxFrames, TxFrames, DroppedBytes int }

// NewConn starts reading port. onCallback runs on the reader goroutine and must not block for long (queue).
func NewConn(port io.ReadWriteCloser, timeout time.Duration, onCallback func(Frame), log zerolog.Logger) *Conn {
	c := &Conn{port: port, log: log, onCallback: onCallback, timeout: timeout, done: make(chan struct{})}
	c.wg.Add(1)
	go c.readLoop()
	return c
}

// Done is closed when the connection ended (Close, or the stream failed: Err says why).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (ErrConnClosed after Close), nil while it runs.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Stats returns the frame counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConnStats{RxFrames: c.rxFrames, TxFrames: c.txFrames, DroppedBytes: c.dropped}
}

func (c *Conn) fail(err error) {
	c.closeOnce.Do(func() {
		c.err = err
		close(c.done)
		c.port.Close()
	})
}

// Close closes the port and waits for the reader.
func (c *Conn) Close() {
	c.fail(ErrConnClosed)
	c.wg.Wait()
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	var dec Decoder
	buf := make([]byte, 512)
	for {
		n, err := c.port.Read(buf)
		if n > 0 {
			before := dec.Dropped()
			frames := dec.Feed(buf[:n])
			c.mu.Lock()
			c.rxFrames += len(frames)
			c.dropped += dec.Dropped() - before
			c.mu.Unlock()
			if dec.Dropped() > before {
				c.log.Debug().Int("bytes", dec.Dropped()-before).Msg("ZNP: dropped bytes that were not a valid MT frame")
			}
			for _, f := range frames {
				c.dispatch(f)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the port closed: %w", err)
			}
			c.fail(err)
			return
		}
	}
}

func (c *Conn) dispatch(f Frame) {
	if e := c.log.Trace(); e.Enabled() {
		e.Stringer("type", f.Type).Stringer("cmd", f.Command()).Hex("data", f.Data).Msg("ZNP rx")
	}
	switch f.Type {
	case TypeSRSP:
		c.mu.Lock()
		w := c.wait
		c.mu.Unlock()
		if w != nil && (f.Command() == w.cmd || rpcErrorFor(f, w.cmd)) {
			select {
			case w.ch <- f:
			default:
			}
			return
		}
		c.log.Debug().Stringer("cmd", f.Command()).Msg("ZNP: SRSP nobody waits for")
	case TypeAREQ:
		if c.onCallback != nil {
			c.onCallback(f)
		}
	default:
		c.log.Debug().Stringer("type", f.Type).Stringer("cmd", f.Command()).Msg("ZNP: unexpected frame type from the stick")
	}
}

// rpcErrorFor reports whether f is the RPC error SRSP about an SREQ of cmd (it names the command).
func rpcErrorFor(f Frame, cmd Command) bool {
	if f.Command() != RPCError {
		return false
	}
	info, err := DecodeRPCError(f.Data)
	return err == nil && Subsystem(info.CMD0&0x1F) == cmd.Subsystem && info.CMD1 == cmd.ID
}

// WriteRaw writes bytes as they are (the bootloader-skip byte).
func (c *Conn) WriteRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.port.Write(b); err != nil {
		c.fail(err)
		return err
	}
	return nil
}

// Write sends one frame.
func (c *Conn) Write(f Frame) error {
	if len(f.Data) > MaxDataLen {
		return fmt.Errorf("ZNP %s: %d data bytes exceed an MT frame (%d)", f.Command(), len(f.Data), MaxDataLen)
	}
	if err := c.Err(); err != nil {
		return err
	}
	if e := c.log.Trace(); e.Enabled() {
		e.Stringer("type", f.Type).Stringer("cmd", f.Command()).Hex("data", f.Data).Msg("ZNP tx")
	}
	c.mu.Lock()
	c.txFrames++
	c.mu.Unlock()
	return c.WriteRaw(f.Append(nil))
}

// Request sends an SREQ and returns the SRSP's data; it waits for timeout (0: the connection's default).
// An RPC error SRSP is a *CommandError.
func (c *Conn) Request(ctx context.Context, cmd Command, data []byte, timeout time.Duration) ([]byte, error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if timeout <= 0 {
		timeout = c.timeout
	}
	ch := make(chan Frame, 1)
	c.mu.Lock()
	c.wait = &pendingSREQ{cmd: cmd, ch: ch}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.wait = nil
		c.mu.Unlock()
	}()
	if err := c.Write(cmd.Request(data)); err != nil {
		return nil, fmt.Errorf("ZNP %s: %w", cmd, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case f := <-ch:
		if f.Command() == RPCError {
			info, err := DecodeRPCError(f.Data)
			if err != nil {
				return nil, fmt.Errorf("ZNP %s: %w", cmd, err)
			}
			return nil, &CommandError{Command: cmd, RPC: info}
		}
		return f.Data, nil
	case <-t.C:
		return nil, fmt.Errorf("ZNP %s after %v: %w", cmd, timeout, ErrCommandTimeout)
	case <-ctx.Done():
		return nil, fmt.Errorf("ZNP %s: %w", cmd, ctx.Err())
	case <-c.done:
		return nil, fmt.Errorf("ZNP %s: %w", cmd, c.err)
	}
}

// StatusRequest sends an SREQ whose SRSP is a status and turns a failure status into an error.
func (c *Conn) StatusRequest(ctx context.Context, cmd Command, data []byte) error {
	b, err := c.Request(ctx, cmd, data, 0)
	if err != nil {
		return err
	}
	st, err := DecodeStatus(b, cmd.String())
	if err != nil {
		return err
	}
	if st != StatusSuccess {
		return &StatusError{Command: cmd, Status: st}
	}
	return nil
}

// StatusError is a command the stick answered with a failure status.
type StatusError struct {
	Command Command
	Status  uint8
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("ZNP %s: %s", e.Command, StatusName(e.Status))
}
