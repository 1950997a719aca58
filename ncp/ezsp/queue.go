package ezsp

import "sync"

// queue is an unbounded FIFO whose Pop blocks. Producers never block: the ASH reader goroutine and the
// callback goroutine hand work over without waiting for a slow consumer.
type queue[T any] struct {
	mu     sync.Mutex
	items  []T
	signal chan struct{}
}

func newQueue[T any]() *queue[T] { return &queue[T]{signal: make(chan struct{}, 1)} }

func (q *queue[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// pop returns the oldest item, waiting for one until stop is closed (then ok is false).
func (q *queue[T]) pop(stop <-chan struct{}) (v T, ok bool) {
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
