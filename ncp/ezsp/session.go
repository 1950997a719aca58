package ezsp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
)

// session is one connection to the stick: an ASH link and the EZSP command channel on top of it. A new
// session is made for every (re)connection; a reset of the stick keeps the session and re-initialises it.
type session struct {
	d    *Driver
	conn *ash.Conn

	cmdMu sync.Mutex // one command outstanding at a time

	mu      sync.Mutex
	seq     uint8
	legacy  bool    // the next frames use the legacy header (version handshake)
	version Version // the negotiated version, 0 before the handshake
	wait    *pendingCommand
}

type pendingCommand struct {
	seq uint8
	ch  chan Frame
}

// callbackItem is an NCP callback waiting for the driver's callback goroutine.
type callbackItem struct {
	s       *session
	version Version
	f       Frame
}

func (d *Driver) newSession(port io.ReadWriteCloser) *session {
	s := &session{d: d}
	s.conn = ash.NewConn(port, ash.Config{
		Role:           ash.RoleHost,
		Window:         d.cfg.ASHWindow,
		AckTimeoutInit: d.to.AckInit,
		AckTimeoutMin:  d.to.AckMin,
		AckTimeoutMax:  d.to.AckMax,
		OnData:         s.onData,
		OnLinkDown:     func(err error) { d.link.Raise(s, ncp.TroubleReset, err) },
		AckDelay:       HostAckDelay,
		Log:            d.log,
		LogData:        s.logFrame,
	})
	return s
}

// HostAckDelay is how long the driver holds the ACK of a stick frame back for a DATA frame to carry it: the
// next command usually follows a response within a fraction of a millisecond (another transfer was waiting
// for its turn), and an ACK it carries costs no frame of its own on the line. A millisecond is nothing to the
// stick's window of 5 frames and its ACK timer (400 ms at least, UG101).
const HostAckDelay = time.Millisecond

// logFrame renders an EZSP frame for the ASH debug log, with the keys of setInitialSecurityState hidden.
func (s *session) logFrame(b []byte) string {
	s.mu.Lock()
	legacy := s.legacy
	s.mu.Unlock()
	f, err := ParseFrame(b, legacy)
	if err != nil || len(f.Params) > len(b) {
		return hex.EncodeToString(b)
	}
	head := b[:len(b)-len(f.Params)]
	return hex.EncodeToString(head) + logParams(f.FrameID, f.Params)
}

func (s *session) close() { s.conn.Close() }

func (s *session) ver() Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// onData runs on the ASH reader goroutine: it hands answers to the waiting command and queues callbacks.
func (s *session) onData(b []byte) {
	s.mu.Lock()
	legacy, v, w := s.legacy, s.version, s.wait
	s.mu.Unlock()
	f, err := ParseFrame(b, legacy)
	if err != nil {
		s.d.log.Warn().Err(err).Hex("frame", b).Msg("EZSP: undecodable frame from the stick")
		return
	}
	if e := s.d.log.Debug(); e.Enabled() {
		e.Uint8("seq", f.Seq).Str("frame", FrameName(f.FrameID)).Hex("params", f.Params).Msg("EZSP rx")
	}
	if !f.IsResponse() {
		s.d.log.Warn().Str("frame", FrameName(f.FrameID)).Msg("EZSP: stick sent a frame without the response bit")
		return
	}
	if f.Control&FCOverflow != 0 {
		s.d.log.Warn().Msg("EZSP: the stick dropped callbacks (overflow)")
	}
	if f.Control&FCTruncated != 0 {
		s.d.log.Warn().Str("frame", FrameName(f.FrameID)).Msg("EZSP: the stick truncated a frame")
	}
	if f.IsCallback() {
		f.Params = append([]byte(nil), f.Params...)
		s.d.callbacks.Push(callbackItem{s: s, version: v, f: f})
		return
	}
	if w != nil && w.seq == f.Seq {
		select {
		case w.ch <- f:
		default:
		}
		return
	}
	s.d.log.Debug().Uint8("seq", f.Seq).Str("frame", FrameName(f.FrameID)).Msg("EZSP: answer nobody waits for")
}

// ErrCommandTimeout: the stick acknowledged a command at the ASH level but never answered it.
var ErrCommandTimeout = errors.New("no answer from the stick")

// command sends one EZSP command and waits for its answer. The answer to a command the stick does not know
// is invalidCommand, returned as an error naming the stick's status.
func (s *session) command(ctx context.Context, id uint16, params []byte) (Frame, error) {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	ch := make(chan Frame, 1)
	s.mu.Lock()
	seq := s.seq
	s.seq++
	legacy := s.legacy
	s.wait = &pendingCommand{seq: seq, ch: ch}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.wait = nil
		s.mu.Unlock()
	}()
	out := Frame{Seq: seq, FrameID: id, Legacy: legacy, Params: params}.Append(nil)
	if e := s.d.log.Debug(); e.Enabled() {
		e.Uint8("seq", seq).Str("frame", FrameName(id)).Str("params", logParams(id, params)).Msg("EZSP tx")
	}
	// Once a DATA frame is on the wire it must be acknowledged (frame numbers): the caller's cancellation
	// stops the wait for the answer below, not the ASH delivery, which ends by ACK, by MaxAckTimeouts, or
	// when the link goes down.
	if err := s.conn.Send(context.WithoutCancel(ctx), out); err != nil {
		return Frame{}, fmt.Errorf("EZSP %s: %w", FrameName(id), err)
	}
	t := time.NewTimer(s.d.to.Command)
	defer t.Stop()
	select {
	case f := <-ch:
		if f.FrameID == IDInvalidCommand {
			st, _ := DecodeU8(f.Params, "invalidCommand", "status")
			return f, fmt.Errorf("EZSP %s: the stick rejected it: %s", FrameName(id), EzspStatusName(st))
		}
		if f.FrameID != id {
			return f, fmt.Errorf("EZSP %s: the stick answered with %s", FrameName(id), FrameName(f.FrameID))
		}
		return f, nil
	case <-t.C:
		return Frame{}, fmt.Errorf("EZSP %s after %v: %w", FrameName(id), s.d.to.Command, ErrCommandTimeout)
	case <-ctx.Done():
		return Frame{}, fmt.Errorf("EZSP %s: %w", FrameName(id), ctx.Err())
	case <-s.conn.Done():
		return Frame{}, fmt.Errorf("EZSP %s: %w", FrameName(id), s.conn.Err())
	}
}

// statusCommand runs a command whose answer is a single status and turns a failure status into an error.
func (s *session) statusCommand(ctx context.Context, id uint16, params []byte) (Status, error) {
	f, err := s.command(ctx, id, params)
	if err != nil {
		return Status{}, err
	}
	v := s.ver()
	if id == IDImportTransientKey {
		v = WideVersion
	}
	st, err := DecodeStatus(f.Params, v, FrameName(id))
	if err != nil {
		return Status{}, err
	}
	st = StatusOfFrame(id, st)
	if !st.OK() {
		return st, fmt.Errorf("EZSP %s: %s", FrameName(id), st)
	}
	return st, nil
}

// linkErrors are the errors that mean the link, not the command, failed.
var linkErrors = []error{ash.ErrAckTimeout, ash.ErrClosed, ash.ErrLinkReset, ash.ErrNotConnected, ash.ErrPortFailed}
