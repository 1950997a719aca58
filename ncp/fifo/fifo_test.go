package fifo

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestQueueOrderAndStop: items come out in order from another goroutine, Pop waits for a Push, and a closed
// stop ends a waiting Pop.
func TestQueueOrderAndStop(t *testing.T) {
	q := New[int]()
	stop := make(chan struct{})
	var got []int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			v, ok := q.Pop(stop)
			if !ok {
				return
			}
			got = append(got, v)
			if len(got) == 100 {
				return
			}
		}
	}()
	for i := range 100 {
		q.Push(i)
	}
	wg.Wait()
	for i, v := range got {
		assert.Equal(t, i, v)
	}
	close(stop)
	_, ok := q.Pop(stop)
	assert.False(t, ok)
}

// TestQueueTryPopAndPump: TryPop reports an empty queue at once, Pushed is signalled by a Push, and PumpTo
// hands the items on in order until stop is closed.
func TestQueueTryPopAndPump(t *testing.T) {
	q := New[int]()
	_, ok := q.TryPop()
	assert.False(t, ok)
	q.Push(1)
	<-q.Pushed()
	v, ok := q.TryPop()
	assert.True(t, ok)
	assert.Equal(t, 1, v)

	out := make(chan int)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); q.PumpTo(out, stop) }()
	for i := range 10 {
		q.Push(i)
	}
	for i := range 10 {
		assert.Equal(t, i, <-out)
	}
	close(stop)
	<-done
}
