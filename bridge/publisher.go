package bridge

import (
	"sync"

	"github.com/rs/zerolog"
)

// publisher decouples the producers of MQTT messages (the engine, which must never block, the event loop,
// request handlers) from the broker: retained state is coalesced per topic (only the newest value of a topic
// waiting to go out is sent), events keep their order. One goroutine, owned by the publisher, drains it.
type publisher struct {
	out publishFunc
	log zerolog.Logger
	tap tapFunc // sees every message as it is queued (the web console); never blocks

	mu      sync.Mutex
	order   []string          // retained topics waiting, in first-queued order
	pending map[string][]byte // newest payload per waiting retained topic
	events  []queuedMessage   // non-retained messages, in order
	wake    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
	closed  bool
	maxEvts int
}

type publishFunc func(topic string, payload []byte, retained bool) error

// tapFunc sees a message as it is queued.
type tapFunc func(topic string, payload []byte, retained bool)

type queuedMessage struct {
	topic   string
	payload []byte
}

func newPublisher(out publishFunc, log zerolog.Logger) *publisher {
	p := &publisher{out: out, log: log, pending: map[string][]byte{}, wake: make(chan struct{}, 1),
		done: make(chan struct{}), maxEvts: 10000}
	p.wg.Add(1)
	go p.run()
	return p
}

// setTap makes tap see every message from now on, when it is queued (before any coalescing).
func (p *publisher) setTap(tap tapFunc) {
	p.mu.Lock()
	p.tap = tap
	p.mu.Unlock()
}

// retained queues a retained message; a newer one for the same topic replaces it.
func (p *publisher) retained(topic string, payload []byte) {
	p.tapped(topic, payload, true)
	p.mu.Lock()
	if _, ok := p.pending[topic]; !ok {
		p.order = append(p.order, topic)
	}
	p.pending[topic] = payload
	p.mu.Unlock()
	p.signal()
}

// event queues a non-retained message. Past maxEvts waiting events the oldest are dropped with a warning
// (the broker has been unreachable for long; retained state is never dropped).
func (p *publisher) event(topic string, payload []byte) {
	p.tapped(topic, payload, false)
	p.mu.Lock()
	if len(p.events) >= p.maxEvts {
		p.log.Warn().Str("topic", p.events[0].topic).Msg("event dropped: too many waiting for the broker")
		p.events = p.events[1:]
	}
	p.events = append(p.events, queuedMessage{topic, payload})
	p.mu.Unlock()
	p.signal()
}

func (p *publisher) tapped(topic string, payload []byte, retained bool) {
	p.mu.Lock()
	tap := p.tap
	p.mu.Unlock()
	if tap != nil {
		tap(topic, payload, retained)
	}
}

func (p *publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *publisher) run() {
	defer p.wg.Done()
	for {
		select {
		case <-p.wake:
		case <-p.done:
			p.drain()
			return
		}
		p.drain()
	}
}

func (p *publisher) drain() {
	for {
		p.mu.Lock()
		var (
			topic    string
			payload  []byte
			retained bool
		)
		switch {
		case len(p.order) > 0:
			topic, retained = p.order[0], true
			payload = p.pending[topic]
			p.order = p.order[1:]
			delete(p.pending, topic)
		case len(p.events) > 0:
			topic, payload = p.events[0].topic, p.events[0].payload
			p.events = p.events[1:]
		default:
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		if err := p.out(topic, payload, retained); err != nil {
			p.log.Debug().Err(err).Str("topic", topic).Msg("publish failed")
		}
	}
}

// close publishes what is waiting and stops the goroutine.
func (p *publisher) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.done)
	p.wg.Wait()
}
