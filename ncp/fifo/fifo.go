// Package fifo owns the unbounded queue the serial drivers (ncp/ezsp, ncp/znp, ncp/zboss) hand callbacks and events
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

// TryPop returns the oldest item, or ok false at once when the queue is empty.
func (q *Queue[T]) TryPop() (v T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return v, false
	}
	v = q.items[0]
	var zero T
	q.items[0] = zero
	q.items = q.items[1:]
	return v, true
}

// Pushed is signalled after a Push, for a consumer that waits on other channels too: after a receive from it,
// TryPop until it reports empty.
func (q *Queue[T]) Pushed() <-chan struct{} { return q.signal }

// Pop returns the oldest item, waiting for one until stop is closed (then ok is false).
func (q *Queue[T]) Pop(stop <-chan struct{}) (v T, ok bool) {
	for {
		if v, ok := q.TryPop(); ok {
			return v, true
		}
		select {
		case <-q.signal:
		case <-stop:
			return v, false
		}
	}
}

// PumpTo hands the items to out in order, each as soon as out takes it, until stop is closed.
func (q *Queue[T]) PumpTo(out chan<- T, stop <-chan struct{}) {
	for {
		v, ok := q.Pop(stop)
		if !ok {
			return
		}
		select {
		case out <- v:
		case <-stop:
			return
		}
	}
}
