package ncp

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLifecycle: loops start once across a failed and a good Start, a second Start is refused with the
// network in use, Close ends a connection attempt and the supervisor, and nothing starts after Close.
func TestLifecycle(t *testing.T) {
	l := NewLifecycle("test")
	var loops, supervisors atomic.Int32
	info := NetworkInfo{Type: "test", Channel: 15}
	fail := true
	hooks := DriverHooks{
		Loops: []func(){func() { loops.Add(1); <-l.Ctx.Done() }},
		Connect: func(context.Context) error {
			if fail {
				return errors.New("no stick")
			}
			return nil
		},
		Supervise: func() { supervisors.Add(1); <-l.Ctx.Done() },
		Info:      func() NetworkInfo { return info },
	}
	_, err := l.Start(context.Background(), hooks)
	require.EqualError(t, err, "no stick")
	assert.False(t, l.Started())
	fail = false
	got, err := l.Start(context.Background(), hooks)
	require.NoError(t, err)
	assert.Equal(t, info, got)
	assert.True(t, l.Started())
	got, err = l.Start(context.Background(), hooks)
	require.EqualError(t, err, "test: already started")
	assert.Equal(t, info, got, "a second Start names the network in use")

	require.True(t, l.Close())
	assert.False(t, l.Close(), "only the first Close tears down")
	l.Wait()
	assert.Equal(t, int32(1), loops.Load(), "the loops start once")
	assert.Equal(t, int32(1), supervisors.Load())
	_, err = l.Start(context.Background(), hooks)
	assert.ErrorIs(t, err, ErrClosed)
}

// TestLifecycleCloseEndsConnect: a Start blocked in Connect gives up when Close is called, and Close waits
// for it.
func TestLifecycleCloseEndsConnect(t *testing.T) {
	l := NewLifecycle("test")
	entered := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := l.Start(context.Background(), DriverHooks{
			Connect:   func(ctx context.Context) error { close(entered); <-ctx.Done(); return ctx.Err() },
			Supervise: func() {},
			Info:      func() NetworkInfo { return NetworkInfo{} },
		})
		done <- err
	}()
	<-entered
	assert.True(t, l.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not give up on Close")
	}
	assert.True(t, l.Closed())
	assert.False(t, l.Started())
}

// TestLifecycleReinitAndReconnect: Reinit retries initialisation up to three times and hands back the port's
// error or "did not come back"; Reconnect retries until connect works and counts the attempts.
func TestLifecycleReinitAndReconnect(t *testing.T) {
	l := NewLifecycle("test")
	defer l.Close()
	log := zerolog.Nop()
	tries := 0
	err := l.Reinit(func(context.Context) error {
		tries++
		if tries < 2 {
			return errors.New("timeout")
		}
		return nil
	}, func() error { return nil }, time.Millisecond, 2*time.Millisecond, log)
	require.NoError(t, err)
	assert.Equal(t, 2, tries)

	portGone := errors.New("read: EOF")
	err = l.Reinit(func(context.Context) error { return errors.New("timeout") }, func() error { return portGone }, time.Millisecond, time.Millisecond, log)
	assert.ErrorIs(t, err, portGone, "a dead port ends the retries at once")

	tries = 0
	err = l.Reinit(func(context.Context) error { tries++; return errors.New("timeout") }, func() error { return nil }, time.Millisecond, time.Millisecond, log)
	assert.EqualError(t, err, "the stick did not come back after a reset")
	assert.Equal(t, 3, tries)

	tries = 0
	attempts, ok := l.Reconnect(func(context.Context) error {
		tries++
		if tries < 4 {
			return errors.New("no such device")
		}
		return nil
	}, time.Millisecond, 4*time.Millisecond, log)
	assert.True(t, ok)
	assert.Equal(t, 4, attempts)

	l.Close()
	_, ok = l.Reconnect(func(context.Context) error { return errors.New("no such device") }, time.Millisecond, time.Millisecond, log)
	assert.False(t, ok, "Close ends the retries")
	assert.ErrorIs(t, l.Reinit(func(context.Context) error { return errors.New("x") }, func() error { return nil }, time.Millisecond, time.Millisecond, log), ErrClosed)
}
