package zboss

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/otabridge/otabridge/ncp/fifo"
)

// CallError is a call the NCP answered with a failure status.
type CallError struct {
	Call   CallID
	Status Status
}

func (e *CallError) Error() string { return fmt.Sprintf("zboss: %s: %s", e.Call, e.Status) }

// ErrTimeout says the NCP did not answer a call in time.
var ErrTimeout = errors.New("no answer from the stick")

// session is the host side of one connection: requests matched to responses by TSN, indications handed on
// in order. Its reader goroutine runs until the link stops.
type session struct {
	link *Link

	mu      sync.Mutex
	tsn     uint8
	pending map[uint8]*waiter // by TSN
	reset   *waiter           // the NCP_RESET in flight: its response may carry any TSN

	indications *fifo.Queue[Packet]
	done        chan struct{}
}

type waiter struct {
	call CallID
	ch   chan answer
}

type answer struct {
	p   Packet
	err error
}

func newSession(link *Link) *session {
	s := &session{link: link, pending: make(map[uint8]*waiter), indications: fifo.New[Packet](), done: make(chan struct{})}
	go s.readLoop()
	return s
}

func (s *session) close() { s.link.Close() }

// readLoop is owned by the session: it ends when the link stops (close closes the link).
func (s *session) readLoop() {
	defer close(s.done)
	for {
		body, ok := s.link.Recv(nil)
		if !ok {
			return
		}
		p, err := DecodePacket(body)
		if err != nil {
			s.link.log.Warn().Err(err).Hex("packet", body).Msg("zboss: undecodable packet from the stick")
			continue
		}
		switch p.Type {
		case Response:
			p.Params = append([]byte(nil), p.Params...)
			s.mu.Lock()
			w := s.pending[p.TSN]
			if w != nil && w.call == p.CallID {
				delete(s.pending, p.TSN)
			} else if s.reset != nil && p.CallID == CallNCPReset {
				w, s.reset = s.reset, nil
			} else {
				w = nil
			}
			s.mu.Unlock()
			if w == nil {
				s.link.log.Debug().Stringer("call", p.CallID).Uint8("tsn", p.TSN).Msg("zboss: response nobody waits for")
				continue
			}
			w.ch <- answer{p: p}
		case Indication:
			p.Params = append([]byte(nil), p.Params...)
			s.indications.Push(p)
		default:
			s.link.log.Debug().Stringer("call", p.CallID).Msg("zboss: request from the stick ignored")
		}
	}
}

// failPending ends every call waiting for its response with err (the stick reset: no answer will come).
func (s *session) failPending(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tsn, w := range s.pending {
		select {
		case w.ch <- answer{err: err}:
		default:
		}
		delete(s.pending, tsn)
	}
	s.reset = nil
}

// call sends a request and waits for its response; a failure status is a *CallError (the packet is also
// returned).
func (s *session) call(ctx context.Context, id CallID, params []byte, timeout time.Duration) (Packet, error) {
	w := &waiter{call: id, ch: make(chan answer, 1)}
	s.mu.Lock()
	var tsn uint8
	if id == CallNCPReset {
		s.reset = w
	}
	for range 256 {
		s.tsn++
		if _, busy := s.pending[s.tsn]; !busy {
			break
		}
	}
	tsn = s.tsn
	s.pending[tsn] = w
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.pending[tsn] == w {
			delete(s.pending, tsn)
		}
		if s.reset == w {
			s.reset = nil
		}
		s.mu.Unlock()
	}()
	req := AppendPacket(nil, Packet{Version: ProtocolVersion, Type: Request, CallID: id, TSN: tsn, Params: params})
	if err := s.link.Send(ctx, req); err != nil {
		return Packet{}, fmt.Errorf("zboss: %s: %w", id, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-w.ch:
		if a.err != nil {
			return Packet{}, fmt.Errorf("zboss: %s: %w", id, a.err)
		}
		p := a.p
		if !p.Status.OK() {
			return p, &CallError{Call: id, Status: p.Status}
		}
		return p, nil
	case <-t.C:
		return Packet{}, fmt.Errorf("zboss: %s: %w in %v", id, ErrTimeout, timeout)
	case <-ctx.Done():
		return Packet{}, fmt.Errorf("zboss: %s: %w", id, ctx.Err())
	case <-s.link.Done():
		return Packet{}, fmt.Errorf("zboss: %s: %w", id, s.link.Err())
	}
}
