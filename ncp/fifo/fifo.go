// Package fifo owns the unbounded queue the serial drivers (ncp/ezsp, ncp/znp) hand callbacks and events
// through: producers never block (a reader goroutine must not wait for a slow consumer), the consumer's Pop
// blocks until an item comes or it is told to stop.
package fifo

import "sync"

// Queue is an unbounded FIFO whose Pop blocks. The zero value is not usable; make one with New.
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{}
}

// New makes an empty queue.
func New[T any]() *Queue[T] { return &Queue[T]{signal: make(chan struct{}, 1)} }

// Push appends v; it never blocks.
func (q *Queue[T]) Push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// Pop returns the oldest item, waiting for one until stop is closed (then ok is false).
func (q *Queue[T]) Pop(stop <-chan struct{}) (v T, ok bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			v = q.items[0]
			var zero T
			q.items[0] = zero
			q.items = q.items[1:]
			q.mu.Unlock()
			return v, true
		}
		q.mu.Unlock()
		select {
		case <-q.signal:
		case <-stop:
			return v, false
		}
	}
}
