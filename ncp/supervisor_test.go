package ncp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	errTestNotReady = errors.New("radio not ready")
	errTestClosed   = errors.New("port closed by the driver")
)

// testSession is a session of a fake driver: a port that can die.
type testSession struct {
	id   int
	done chan struct{}
	once sync.Once
	err  error // why the port died
}

func (s *testSession) kill(err error) {
	s.once.Do(func() { s.err = err; close(s.done) })
}

// testDriver drives a Supervisor as a driver does, recording what happens.
type testDriver struct {
	life *Lifecycle
	sup  *Supervisor[*testSession]

	mu       sync.Mutex
	opened   []*testSession
	inits    map[int]int // initialisations per session id
	failInit map[int]int // how many initialisations of a session fail before one works
	failOpen int         // how many opens fail before one works
	failed   []string    // FailPending reasons
	events   chan EventKind
	other    chan TroubleKind
}

func newTestDriver() *testDriver {
	life := NewLifecycle("test")
	return &testDriver{life: life, sup: NewSupervisor[*testSession](life, errTestNotReady), inits: map[int]int{},
		failInit: map[int]int{}, events: make(chan EventKind, 16), other: make(chan TroubleKind, 4)}
}

func (d *testDriver) hooks() SessionHooks[*testSession] {
	return SessionHooks[*testSession]{
		OpenPort: func(context.Context) (io.ReadWriteCloser, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.failOpen > 0 {
				d.failOpen--
				return nil, errors.New("no such device")
			}
			return nil, nil
		},
		NewSession: func(io.ReadWriteCloser) *testSession {
			d.mu.Lock()
			defer d.mu.Unlock()
			s := &testSession{id: len(d.opened) + 1, done: make(chan struct{})}
			d.opened = append(d.opened, s)
			return s
		},
		Initialize: func(_ context.Context, s *testSession) error {
			d.sup.BeginInit()
			defer d.sup.EndInit()
			d.mu.Lock()
			d.inits[s.id]++
			fail := d.failInit[s.id] > 0
			if fail {
				d.failInit[s.id]--
			}
			d.mu.Unlock()
			if fail {
				return fmt.Errorf("session %d: no answer to the reset", s.id)
			}
			d.sup.SetReady()
			return nil
		},
		Done:      func(s *testSession) <-chan struct{} { return s.done },
		Err:       func(s *testSession) error { return s.err },
		ErrClosed: errTestClosed,
		Close:     func(s *testSession) { s.kill(errTestClosed) },
		FailPending: func(_ *testSession, err error) {
			d.mu.Lock()
			d.failed = append(d.failed, err.Error())
			d.mu.Unlock()
		},
		Emit:         func(ev Event) { d.events <- ev.Kind },
		Other:        func(t Trouble[*testSession]) { d.other <- t.Kind },
		ReconnectMin: time.Millisecond,
		ReconnectMax: 2 * time.Millisecond,
		Log:          zerolog.Nop(),
	}
}

func (d *testDriver) start(t *testing.T) {
	t.Helper()
	_, err := d.sup.Start(context.Background(), d.hooks(), func() NetworkInfo { return NetworkInfo{} })
	require.NoError(t, err)
}

func (d *testDriver) stop() {
	if d.life.Close() {
		if s, ok := d.sup.Take(); ok {
			s.kill(errTestClosed)
		}
		d.life.Wait()
	}
}

func (d *testDriver) nextEvent(t *testing.T) EventKind {
	t.Helper()
	select {
	case k := <-d.events:
		return k
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return 0
	}
}

func (d *testDriver) initsOf(id int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inits[id]
}

// TestSupervisorReady: before Start calls are refused as not started, a failed connect forgets its session,
// a ready session is handed out, and after Close calls are refused as closed.
func TestSupervisorReady(t *testing.T) {
	d := newTestDriver()
	defer d.stop()
	_, err := d.sup.Ready()
	assert.ErrorIs(t, err, ErrNotStarted)

	d.failInit[1] = 1
	h := d.hooks()
	require.EqualError(t, d.sup.Connect(context.Background(), h), "session 1: no answer to the reset")
	assert.False(t, d.sup.Current(d.opened[0]), "a session whose initialisation failed is forgotten")
	select {
	case <-d.opened[0].done:
	default:
		t.Fatal("a session whose initialisation failed is closed")
	}

	d.start(t)
	s, err := d.sup.Ready()
	require.NoError(t, err)
	assert.Equal(t, 2, s.id)
	assert.True(t, d.sup.Healthy(s))

	d.sup.SetNotReady("network down")
	_, err = d.sup.Ready()
	assert.ErrorIs(t, err, errTestNotReady)
	assert.EqualError(t, err, "radio not ready: network down")
	assert.False(t, d.sup.Healthy(s))

	d.stop()
	_, err = d.sup.Ready()
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, d.sup.Connect(context.Background(), h), ErrClosed, "no session is attached after Close")
}

// TestSupervisorReset: a reset re-initialises the same session (pending calls failed with the reason, then
// EventRadioReset); trouble from before that recovery, or from a session no longer current, is dropped;
// kinds other than reset and port loss go to the driver's Other hook.
func TestSupervisorReset(t *testing.T) {
	d := newTestDriver()
	defer d.stop()
	d.start(t)
	s, err := d.sup.Ready()
	require.NoError(t, err)

	d.sup.Raise(s, TroubleReset, errors.New("RSTACK while connected"))
	d.sup.Raise(s, TroubleReset, errors.New("the same reset, seen twice")) // raised before the recovery: stale
	assert.Equal(t, EventRadioReset, d.nextEvent(t))
	assert.Equal(t, 2, d.initsOf(1), "one re-initialisation for the reset, none for the stale report")
	d.mu.Lock()
	assert.Equal(t, []string{"radio not ready: the stick reset (RSTACK while connected)"}, d.failed)
	d.mu.Unlock()

	d.sup.Raise(&testSession{id: 99}, TroubleReset, errors.New("from an old port"))
	d.sup.Raise(s, TroubleNetworkDown, nil)
	select {
	case k := <-d.other:
		assert.Equal(t, TroubleNetworkDown, k)
	case <-time.After(10 * time.Second):
		t.Fatal("network down did not reach the Other hook")
	}
	assert.Equal(t, 2, d.initsOf(1), "trouble of a session that is not current is dropped")
	select {
	case k := <-d.events:
		t.Fatalf("unexpected event %v", k)
	default:
	}
}

// TestSupervisorReconnect: a dead port is replaced (EventDisconnected, then EventReconnected once a new
// session initialises, after failed opens); a stick that does not come back after a reset three times is
// treated as a dead port.
func TestSupervisorReconnect(t *testing.T) {
	d := newTestDriver()
	defer d.stop()
	d.start(t)
	d.mu.Lock()
	d.failOpen = 2
	d.mu.Unlock()
	d.opened[0].kill(errors.New("read /dev/ttyUSB0: input/output error"))
	assert.Equal(t, EventDisconnected, d.nextEvent(t))
	assert.Equal(t, EventReconnected, d.nextEvent(t))
	s, err := d.sup.Ready()
	require.NoError(t, err)
	assert.Equal(t, 2, s.id)
	d.mu.Lock()
	assert.Equal(t, []string{"radio not ready: the port vanished: read /dev/ttyUSB0: input/output error"}, d.failed)
	d.failInit[2] = 3
	d.mu.Unlock()

	d.sup.Raise(s, TroubleReset, errors.New("NCP_RESET_IND"))
	assert.Equal(t, EventDisconnected, d.nextEvent(t), "three failed re-initialisations give the port up")
	assert.Equal(t, EventReconnected, d.nextEvent(t))
	assert.Equal(t, 4, d.initsOf(2), "the first initialisation and three tries after the reset")
	s, err = d.sup.Ready()
	require.NoError(t, err)
	assert.Equal(t, 3, s.id)
	select {
	case <-d.opened[1].done:
	default:
		t.Fatal("the given-up session is closed")
	}
}
