package ncp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// TroubleKind is what went wrong with a serial driver's session with its stick.
type TroubleKind uint8

const (
	// TroubleReset: the stick reset (or failed in a way only a re-initialisation repairs) under a live port.
	TroubleReset TroubleKind = iota + 1
	// TroublePortLost: the port failed; a new one must be opened.
	TroublePortLost
	// TroubleNetworkDown: the stack reports its network down (EZSP's stackStatusHandler); the driver's
	// Other hook decides.
	TroubleNetworkDown
)

// Trouble is one report to a Supervisor.
type Trouble[S comparable] struct {
	Kind    TroubleKind
	Session S
	Err     error
	epoch   uint64
}

// SessionHooks are a driver's part in keeping its session: what the Supervisor cannot know of the protocol.
type SessionHooks[S comparable] struct {
	// OpenPort opens the port; NewSession makes a session on it (nothing is sent yet).
	OpenPort   func(ctx context.Context) (io.ReadWriteCloser, error)
	NewSession func(port io.ReadWriteCloser) S
	// Attached, if set, starts the session's own goroutines (with Lifecycle.Go) once it is current.
	Attached func(s S)
	// Initialize brings the stick up on s; it calls BeginInit first and SetReady when the stick is ready.
	Initialize func(ctx context.Context, s S) error
	// Done is closed when the session's link ends; Err then says why (nil while it lives). ErrClosed is what
	// Err says when the driver closed it: not trouble.
	Done      func(s S) <-chan struct{}
	Err       func(s S) error
	ErrClosed error
	// Close closes the session's port.
	Close func(s S)
	// FailPending fails what waits for the stick on s with err (a reset or a lost port).
	FailPending func(s S, err error)
	// Emit queues an event for the driver's Events.
	Emit func(Event)
	// Other handles the kinds of trouble other than a reset and a lost port (may be nil).
	Other func(t Trouble[S])

	ReconnectMin, ReconnectMax time.Duration
	Log                        zerolog.Logger
}

// linkErr is why the session's link failed: nil while it lives or when the driver closed it.
func (h SessionHooks[S]) linkErr(s S) error {
	if err := h.Err(s); !errors.Is(err, h.ErrClosed) {
		return err
	}
	return nil
}

// Supervisor keeps a serial driver's session with its stick (S is the driver's own session type): which
// session is current, whether calls may use it and, if not, why; and it repairs it. Sessions report trouble
// (Raise) from any goroutine and never block; Run handles it one report at a time until Close: a stick reset
// under a live port re-initialises the stick on the same session (three tries, then a new port), a lost port
// opens a new one with back-off. Trouble from a session that is no longer current, or raised before the
// session was last (re)initialised, is stale and dropped: the recovery since has dealt with it.
type Supervisor[S comparable] struct {
	life        *Lifecycle
	errNotReady error
	trouble     chan Trouble[S]

	mu           sync.Mutex
	sess         S
	ready        bool
	initializing bool
	notReady     string
	epoch        uint64
}

// NewSupervisor makes the supervisor of a driver with lifecycle life; errNotReady is the driver's error for
// calls made while the stick is not ready (Ready wraps it with the reason).
func NewSupervisor[S comparable](life *Lifecycle, errNotReady error) *Supervisor[S] {
	return &Supervisor[S]{life: life, errNotReady: errNotReady, trouble: make(chan Trouble[S], 16), notReady: "not started"}
}

// Start starts the driver (Lifecycle.Start): its loops, a first session (Connect) and, once that works, Run
// until Close. info is the network the driver runs.
func (v *Supervisor[S]) Start(ctx context.Context, h SessionHooks[S], info func() NetworkInfo, loops ...func()) (NetworkInfo, error) {
	return v.life.Start(ctx, DriverHooks{Loops: loops, Connect: func(ctx context.Context) error { return v.Connect(ctx, h) },
		Supervise: func() { v.Run(h) }, Info: info})
}

// Connect opens a new session and initialises the stick on it (Lifecycle's DriverHooks.Connect, and each
// reconnect). The session is current while Initialize runs; when that fails it is closed and forgotten.
func (v *Supervisor[S]) Connect(ctx context.Context, h SessionHooks[S]) error {
	port, err := h.OpenPort(ctx)
	if err != nil {
		return err
	}
	s := h.NewSession(port)
	v.mu.Lock()
	if v.life.Closed() { // Close takes the session after it marked the driver closed: one of us closes s
		v.mu.Unlock()
		h.Close(s)
		return ErrClosed
	}
	v.sess = s
	v.mu.Unlock()
	if h.Attached != nil {
		h.Attached(s)
	}
	v.life.Go(func() { v.watch(s, h) })
	if err := h.Initialize(ctx, s); err != nil {
		v.Detach(s)
		h.Close(s)
		return err
	}
	return nil
}

// watch reports the session's port failing until Close.
func (v *Supervisor[S]) watch(s S, h SessionHooks[S]) {
	select {
	case <-h.Done(s):
		if err := h.linkErr(s); err != nil {
			v.Raise(s, TroublePortLost, err)
		}
	case <-v.life.Ctx.Done():
	}
}

// Detach forgets s if it is the current session and reports whether it was.
func (v *Supervisor[S]) Detach(s S) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sess != s {
		return false
	}
	var none S
	v.sess, v.ready = none, false
	return true
}

// Take forgets the current session and returns it (Close; ok false when there was none).
func (v *Supervisor[S]) Take() (s S, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var none S
	s, v.sess, v.ready = v.sess, none, false
	return s, s != none
}

// Current reports whether s is the current session.
func (v *Supervisor[S]) Current(s S) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sess == s
}

// Healthy reports whether s is the current session, ready and not being initialised: what it reports then is
// news, not a side effect of the bring-up (the reset the driver asked for, a network still forming).
func (v *Supervisor[S]) Healthy(s S) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sess == s && v.ready && !v.initializing
}

// BeginInit marks an initialisation under way: calls wait, and trouble raised before now is stale.
func (v *Supervisor[S]) BeginInit() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.initializing, v.ready = true, false
	v.epoch++
}

// EndInit marks the initialisation over, whether it succeeded (SetReady) or not.
func (v *Supervisor[S]) EndInit() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.initializing = false
}

// SetReady allows calls again; trouble raised before now is stale.
func (v *Supervisor[S]) SetReady() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ready, v.notReady = true, ""
	v.epoch++
}

// SetNotReady makes calls fail with the driver's not-ready error and reason.
func (v *Supervisor[S]) SetNotReady(reason string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ready, v.notReady = false, reason
}

// NotReady returns the driver's not-ready error with the reason the stick is not ready now.
func (v *Supervisor[S]) NotReady() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Errorf("%w: %s", v.errNotReady, v.notReady)
}

// Ready returns the current session when calls may use it; otherwise ErrClosed, ErrNotStarted or the
// driver's not-ready error with the reason.
func (v *Supervisor[S]) Ready() (S, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var none S
	switch {
	case v.life.Closed():
		return none, ErrClosed
	case !v.life.Started() && v.sess == none:
		return none, ErrNotStarted
	case !v.ready || v.sess == none:
		return none, fmt.Errorf("%w: %s", v.errNotReady, v.notReady)
	}
	return v.sess, nil
}

// Raise reports trouble with session s; it never blocks (a full queue already has trouble waiting).
func (v *Supervisor[S]) Raise(s S, kind TroubleKind, err error) {
	v.mu.Lock()
	t := Trouble[S]{Kind: kind, Session: s, Err: err, epoch: v.epoch}
	v.mu.Unlock()
	select {
	case v.trouble <- t:
	default:
	}
}

// Run handles trouble until Close (Lifecycle's DriverHooks.Supervise).
func (v *Supervisor[S]) Run(h SessionHooks[S]) {
	for {
		select {
		case <-v.life.Ctx.Done():
			return
		case t := <-v.trouble:
			v.mu.Lock()
			stale := t.Session != v.sess || t.epoch != v.epoch
			v.mu.Unlock()
			if stale {
				continue
			}
			switch t.Kind {
			case TroublePortLost:
				v.Reconnect(t.Session, t.Err, h)
			case TroubleReset:
				v.Reinit(t.Session, t.Err.Error(), h)
			default:
				if h.Other != nil {
					h.Other(t)
				}
			}
		}
	}
}

// Reinit brings the stick back after it reset (or failed) under a live port s; when it does not come back,
// or the port fails meanwhile, Reconnect.
func (v *Supervisor[S]) Reinit(s S, reason string, h SessionHooks[S]) {
	v.SetNotReady("stick reset: " + reason)
	h.FailPending(s, fmt.Errorf("%w: the stick reset (%s)", v.errNotReady, reason))
	h.Log.Warn().Str("reason", reason).Msg("stick reset: re-initialising")
	err := v.life.Reinit(func(ctx context.Context) error { return h.Initialize(ctx, s) }, func() error { return h.linkErr(s) },
		h.ReconnectMin, h.ReconnectMax, h.Log)
	switch {
	case err == nil:
		h.Emit(Event{Kind: EventRadioReset, Reason: reason})
	case !errors.Is(err, ErrClosed):
		v.Reconnect(s, fmt.Errorf("%w (the stick reset: %s)", err, reason), h)
	}
}

// Reconnect replaces the dead port of s: EventDisconnected, then a new session with back-off until it works
// (EventReconnected) or Close.
func (v *Supervisor[S]) Reconnect(s S, reason error, h SessionHooks[S]) {
	v.SetNotReady("disconnected")
	v.Detach(s)
	h.Close(s)
	h.FailPending(s, fmt.Errorf("%w: the port vanished: %v", v.errNotReady, reason))
	h.Log.Error().Err(reason).Msg("lost the stick; reconnecting")
	h.Emit(Event{Kind: EventDisconnected, Reason: reason.Error()})
	connect := func(ctx context.Context) error { return v.Connect(ctx, h) }
	if attempts, ok := v.life.Reconnect(connect, h.ReconnectMin, h.ReconnectMax, h.Log); ok {
		h.Emit(Event{Kind: EventReconnected, Reason: fmt.Sprintf("after %d attempts", attempts)})
	}
}
