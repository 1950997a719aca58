package ncp

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

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
