package ncp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Lifecycle is the part of a serial driver's life that every protocol shares: Start runs once at a time and
// succeeds once (a second Start is refused, as is a Start after Close); a connection attempt ends when its
// caller's context ends or Close is called; the driver's goroutines are tracked so that Close returns only
// when they have stopped. The driver keeps what is its own (the session, its state, the tear-down).
type Lifecycle struct {
	name string
	// Ctx ends when Close begins: the drivers' loops, reconnects and sends stop on it.
	Ctx    context.Context
	cancel context.CancelFunc

	startMu sync.Mutex // one Start at a time; Close waits for it
	mu      sync.Mutex
	started bool
	closed  bool
	loops   bool
	wg      sync.WaitGroup
}

// NewLifecycle makes the lifecycle of a driver; name prefixes its errors ("ezsp: already started").
func NewLifecycle(name string) *Lifecycle {
	ctx, cancel := context.WithCancel(context.Background())
	return &Lifecycle{name: name, Ctx: ctx, cancel: cancel}
}

// Go runs f on a goroutine that Wait waits for.
func (l *Lifecycle) Go(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// DriverHooks are what a driver does at the steps of its Start.
type DriverHooks struct {
	Loops     []func()                        // long-lived goroutines (callbacks, events), started on the first Start only
	Connect   func(ctx context.Context) error // open the port and initialise the stick
	Supervise func()                          // after a successful Start, until Close: resets, port loss, reconnects
	Info      func() NetworkInfo              // the network the driver runs
}

// Start brings a driver up: the loops start on the first call only, Connect runs with a context that ends
// with ctx or Close, and once it succeeded Supervise runs until Close. A failed Start can be tried again; a
// second Start after a successful one is refused with the network in use.
func (l *Lifecycle) Start(ctx context.Context, h DriverHooks) (NetworkInfo, error) {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return NetworkInfo{}, ErrClosed
	case l.started:
		l.mu.Unlock()
		return h.Info(), fmt.Errorf("%s: already started", l.name)
	}
	if !l.loops {
		l.loops = true
		for _, f := range h.Loops {
			l.Go(f)
		}
	}
	l.mu.Unlock()

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(l.Ctx, stop)()
	if err := h.Connect(cctx); err != nil {
		return NetworkInfo{}, err
	}
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
	l.Go(h.Supervise)
	return h.Info(), nil
}

// Close ends Ctx, waits for a Start in progress to give up, and marks the driver closed. It reports whether
// this was the first Close: that caller tears the driver down and then calls Wait.
func (l *Lifecycle) Close() (first bool) {
	l.cancel()
	l.startMu.Lock()
	defer l.startMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	return true
}

// Wait waits for every goroutine started with Go (and the loops and supervisor of Start).
func (l *Lifecycle) Wait() { l.wg.Wait() }

// Closed reports whether Close was called.
func (l *Lifecycle) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Started reports whether a Start succeeded.
func (l *Lifecycle) Started() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.started
}

// Sleep waits d, or until Close (false).
func (l *Lifecycle) Sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.Ctx.Done():
		return false
	}
}

// Reconnect opens the stick again after its port failed: connect, after a back-off that starts at minWait
// and doubles up to maxWait, until it succeeds (true, with the number of attempts; logged) or Close (false).
func (l *Lifecycle) Reconnect(connect func(context.Context) error, minWait, maxWait time.Duration, log zerolog.Logger) (attempts int, ok bool) {
	backoff := minWait
	for attempt := 1; ; attempt++ {
		if !l.Sleep(backoff) {
			return attempt, false
		}
		err := connect(l.Ctx)
		if err == nil {
			log.Info().Int("attempt", attempt).Msg("reconnected to the stick")
			return attempt, true
		}
		if l.Ctx.Err() != nil {
			return attempt, false
		}
		backoff = min(2*backoff, maxWait)
		log.Warn().Err(err).Int("attempt", attempt).Dur("next_ms", backoff).Msg("reconnect failed")
	}
}

// Reinit brings a stick back that reset (or failed) under a live port: up to three tries of initialize,
// with the reconnect back-off between them. It returns nil once the stick is initialised again, ErrClosed on
// Close, and otherwise the error to reconnect with: the port's own (portErr, checked after each failed try)
// or, after three failures, one saying the stick did not come back.
func (l *Lifecycle) Reinit(initialize func(context.Context) error, portErr func() error, minWait, maxWait time.Duration, log zerolog.Logger) error {
	backoff := minWait
	for attempt := 1; attempt <= 3; attempt++ {
		err := initialize(l.Ctx)
		if err == nil {
			return nil
		}
		if l.Ctx.Err() != nil {
			return ErrClosed
		}
		if perr := portErr(); perr != nil {
			return perr
		}
		log.Warn().Err(err).Int("attempt", attempt).Msg("re-initialising the stick failed")
		if !l.Sleep(backoff) {
			return ErrClosed
		}
		backoff = min(2*backoff, maxWait)
	}
	return errors.New("the stick did not come back after a reset")
}
