package zboss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp/fifo"
	"github.com/otabridge/otabridge/ncp/serialport"
)

// ErrLinkClosed is returned by a Link used after Close.
var ErrLinkClosed = errors.New("zboss: link closed")

// LinkConfig tunes a Link.
type LinkConfig struct {
	// AckTimeout is how long a data frame waits for its ACK before it is retransmitted (default 500 ms).
	AckTimeout time.Duration
	// Retries is how many times a data frame is retransmitted before Send gives up (default 3).
	Retries int
	// Baud, when > 0, paces the link's writes like a UART of that speed (10 bits a byte): the fake NCP's
	// transmissions take the time they take on a real line.
	Baud int
	// PrecisePacing busy-waits the end of each paced write (serialport.Pacer.Precise): for measurements.
	PrecisePacing bool
	// WriteFilter, when set, may alter the bytes of each write (fault injection in the fake NCP).
	WriteFilter func([]byte) []byte
	// Trace, when set, sees every decoded data frame body ("rx") and every body sent ("tx").
	Trace func(dir string, body []byte)
	Log   zerolog.Logger
}

// LinkStats counts what a Link did.
type LinkStats struct {
	Sent, Received, Retransmitted, Duplicates, BadFrames, AcksSent, AcksReceived uint64
	BytesWritten, BytesRead                                                      uint64 // on the wire, ACKs included
}

// Link is the ZBOSS low-level transport over a byte stream, the same code on both ends (the driver and the
// fake NCP): it frames high-level packets, acknowledges every valid data frame it receives, drops
// retransmitted duplicates, and sends one data frame at a time, retransmitting it (retransmit bit set)
// until the peer acknowledges it. A reader goroutine owned by the Link runs until Close or a read error.
type Link struct {
	rw  io.ReadWriteCloser
	cfg LinkConfig
	log zerolog.Logger

	writeMu sync.Mutex // one write at a time (data frames and ACKs interleave whole)
	pacer   serialport.Pacer
	sendMu  sync.Mutex // one unacknowledged data frame at a time
	seq     uint8      // number of the last data frame sent (1-3, cycling)
	acks    chan uint8

	in        *fifo.Queue[[]byte]
	acks2send *fifo.Queue[[]byte] // ACKs the reader hands to the ACK writer: the reader never blocks on a write

	stats struct {
		sent, received, retransmitted, duplicates, bad, acksSent, acksReceived atomic.Uint64
		wrote, read                                                            atomic.Uint64
	}

	done      chan struct{}
	errMu     sync.Mutex
	err       error
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// NewLink starts a link on rw. Close it to stop its reader and close rw.
func NewLink(rw io.ReadWriteCloser, cfg LinkConfig) *Link {
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 500 * time.Millisecond
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 3
	}
	l := &Link{rw: rw, cfg: cfg, log: cfg.Log, pacer: serialport.Pacer{Baud: cfg.Baud, Precise: cfg.PrecisePacing}, acks: make(chan uint8, 8), in: fifo.New[[]byte](), acks2send: fifo.New[[]byte](),
		done: make(chan struct{})}
	l.wg.Add(2)
	go l.readLoop()
	go l.ackLoop()
	return l
}

// Done is closed when the link stops (Close or a port error); Err then says why.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err returns why the link stopped (nil while it runs).
func (l *Link) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// Stats returns the link's counters.
func (l *Link) Stats() LinkStats {
	return LinkStats{Sent: l.stats.sent.Load(), Received: l.stats.received.Load(), Retransmitted: l.stats.retransmitted.Load(),
		Duplicates: l.stats.duplicates.Load(), BadFrames: l.stats.bad.Load(), AcksSent: l.stats.acksSent.Load(),
		AcksReceived: l.stats.acksReceived.Load(), BytesWritten: l.stats.wrote.Load(), BytesRead: l.stats.read.Load()}
}

// Close stops the reader and closes the port. It is safe to call more than once.
func (l *Link) Close() error {
	l.stop(ErrLinkClosed)
	l.wg.Wait()
	return nil
}

func (l *Link) stop(err error) {
	l.closeOnce.Do(func() {
		l.errMu.Lock()
		l.err = err
		l.errMu.Unlock()
		close(l.done)
		l.rw.Close()
	})
}

// Recv returns the next high-level packet body received, waiting until one comes, stop is closed or the
// link stops (ok false).
func (l *Link) Recv(stop <-chan struct{}) (body []byte, ok bool) {
	for {
		if v, ok := l.in.TryPop(); ok {
			return v, true
		}
		select {
		case <-stop:
			return nil, false
		case <-l.done:
			return nil, false
		case <-l.in.Pushed():
		}
	}
}

// Send transmits one high-level packet body and waits for its ACK, retransmitting on timeout. It returns
// once acknowledged, or an error when the peer never acknowledged it, ctx ended or the link stopped.
func (l *Link) Send(ctx context.Context, body []byte) error {
	if len(body) > MaxBody {
		return fmt.Errorf("zboss: packet of %d bytes exceeds %d", len(body), MaxBody)
	}
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.seq = l.seq%3 + 1
	f := LowFrame{Seq: l.seq, First: true, Last: true, Body: body}
	for {
		select {
		case <-l.acks:
		default:
			goto drained
		}
	}
drained:
	if l.cfg.Trace != nil {
		l.cfg.Trace("tx", body)
	}
	for attempt := 0; attempt <= l.cfg.Retries; attempt++ {
		if attempt > 0 {
			f.Retransmit = true
			l.stats.retransmitted.Add(1)
			l.log.Debug().Uint8("seq", f.Seq).Int("attempt", attempt).Msg("zboss: no ACK; retransmitting")
		}
		if err := l.write(AppendLowFrame(nil, f)); err != nil {
			return err
		}
		t := time.NewTimer(l.cfg.AckTimeout)
	wait:
		for {
			select {
			case a := <-l.acks:
				if a == f.Seq {
					t.Stop()
					l.stats.sent.Add(1)
					return nil
				}
			case <-t.C:
				break wait
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-l.done:
				t.Stop()
				return fmt.Errorf("zboss: send: %w", l.Err())
			}
		}
	}
	return fmt.Errorf("zboss: no ACK for packet %d after %d transmissions", f.Seq, l.cfg.Retries+1)
}

func (l *Link) write(b []byte) error {
	if l.cfg.WriteFilter != nil {
		b = l.cfg.WriteFilter(b)
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	select {
	case <-l.done:
		return fmt.Errorf("zboss: write: %w", l.Err())
	default:
	}
	// The bytes reach the peer when a UART would have finished sending them (Baud set: a modelled line).
	if !l.pacer.Wait(len(b), l.done) {
		return fmt.Errorf("zboss: write: %w", l.Err())
	}
	if _, err := l.rw.Write(b); err != nil {
		l.stop(fmt.Errorf("zboss: write: %w", err))
		return l.Err()
	}
	l.stats.wrote.Add(uint64(len(b)))
	return nil
}

// ackLoop writes the ACKs the reader queued, until the link stops. (Were the reader to write them itself,
// two links on an unbuffered stream that both got a frame at once would each wait for the other to read.)
func (l *Link) ackLoop() {
	defer l.wg.Done()
	for {
		b, ok := l.acks2send.Pop(l.done)
		if !ok {
			return
		}
		if err := l.write(b); err != nil {
			return
		}
	}
}

var signature = []byte{Signature0, Signature1}

func (l *Link) readLoop() {
	defer l.wg.Done()
	buf := make([]byte, 0, 1024)
	chunk := make([]byte, 512)
	lastRx := -1
	for {
		n, err := l.rw.Read(chunk)
		if n > 0 {
			l.stats.read.Add(uint64(n))
			buf = append(buf, chunk[:n]...)
			buf = l.consume(buf, &lastRx)
		}
		if err != nil {
			l.stop(fmt.Errorf("zboss: read: %w", err))
			return
		}
	}
}

// consume decodes every whole frame at the front of buf and returns what is left.
func (l *Link) consume(buf []byte, lastRx *int) []byte {
	for {
		i := bytes.Index(buf, signature)
		if i < 0 {
			// Keep a trailing 0xDE: it may start the next signature.
			if len(buf) > 0 && buf[len(buf)-1] == Signature0 {
				return append(buf[:0], Signature0)
			}
			return buf[:0]
		}
		if i > 0 {
			buf = append(buf[:0], buf[i:]...)
		}
		f, used, err := DecodeLowFrame(buf)
		if errors.Is(err, ErrShortFrame) {
			return buf
		}
		if err != nil {
			l.stats.bad.Add(1)
			l.log.Debug().Err(err).Msg("zboss: bad frame skipped")
			buf = append(buf[:0], buf[1:]...)
			continue
		}
		body := append([]byte(nil), f.Body...)
		buf = append(buf[:0], buf[used:]...)
		if f.ACK {
			l.stats.acksReceived.Add(1)
			select {
			case l.acks <- f.ACKSeq:
			default:
			}
			continue
		}
		// Acknowledge every valid data frame, also a duplicate (its first ACK may have been lost).
		l.acks2send.Push(AppendLowFrame(nil, LowFrame{ACK: true, ACKSeq: f.Seq}))
		l.stats.acksSent.Add(1)
		if f.Retransmit && int(f.Seq) == *lastRx {
			l.stats.duplicates.Add(1)
			continue
		}
		*lastRx = int(f.Seq)
		l.stats.received.Add(1)
		if l.cfg.Trace != nil {
			l.cfg.Trace("rx", body)
		}
		l.in.Push(body)
	}
}
