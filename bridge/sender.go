package bridge

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// frameSender is the consumer side of the radio for outgoing frames.
type frameSender interface {
	Send(ctx context.Context, f ncp.Frame) error
}

// sender queues outgoing frames per destination and sends each destination's frames in order on its own
// goroutine, so one slow or asleep device never holds up another's transfer. The sender owns those
// goroutines; close waits for them.
type sender struct {
	radio   frameSender
	log     zerolog.Logger
	timeout time.Duration

	mu     sync.Mutex
	queues map[uint64]*sendQueue // by destination (IEEE, or the broadcast address)
	closed bool
	// paused holds frames until the radio is up (start): the engine restores transfers, and sends their
	// Image Notifies, before the radio has started.
	paused bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// failures counts frames the radio could not deliver (for bridge/info and tests); onSent, when set
	// before start, hears how each unicast went: its statistics when the radio reports them
	// (ncp.StatsSender) and whether the stick failed it (the OTA engine's congestion signals).
	failures int
	onSent   func(dst zcl.IEEE, st ncp.SendStats, failed bool)
	// inFlight counts frames queued or being sent; idle is closed while it is 0 (see waitIdle).
	inFlight int
	idle     chan struct{}
}

type sendQueue struct {
	frames []ncp.Frame
}

// maxQueued bounds one destination's queue; past it the oldest frames are dropped (a device that stopped
// listening: the OTA client retries what it misses).
const maxQueued = 256

func newSender(radio frameSender, log zerolog.Logger) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	idle := make(chan struct{})
	close(idle)
	return &sender{radio: radio, log: log, timeout: 15 * time.Second, queues: map[uint64]*sendQueue{},
		ctx: ctx, cancel: cancel, paused: true, idle: idle}
}

// start sends what was queued while paused, and everything after.
func (s *sender) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused || s.closed {
		return
	}
	s.paused = false
	for key, q := range s.queues {
		s.wg.Add(1)
		go s.run(key, q)
	}
}

// enqueue adds a frame for dst (0 = broadcast); it never blocks.
func (s *sender) enqueue(dst zcl.IEEE, f ncp.Frame) {
	key := uint64(dst)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	q := s.queues[key]
	if q == nil {
		q = &sendQueue{}
		s.queues[key] = q
		if !s.paused {
			s.wg.Add(1)
			go s.run(key, q)
		}
	}
	if len(q.frames) >= maxQueued {
		s.log.Warn().Stringer("ieee", dst).Msg("send queue full: oldest frame dropped")
		q.frames = q.frames[1:]
		s.doneLocked(1)
	}
	q.frames = append(q.frames, f)
	if s.inFlight == 0 {
		s.idle = make(chan struct{})
	}
	s.inFlight++
}

func (s *sender) run(key uint64, q *sendQueue) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(q.frames) == 0 || s.closed {
			s.doneLocked(len(q.frames))
			delete(s.queues, key)
			s.mu.Unlock()
			return
		}
		f := q.frames[0]
		q.frames = q.frames[1:]
		s.mu.Unlock()

		ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
		var (
			st  ncp.SendStats
			err error
		)
		if ss, ok := s.radio.(ncp.StatsSender); ok {
			st, err = ss.SendWithStats(ctx, f)
		} else {
			err = s.radio.Send(ctx, f)
		}
		cancel()
		deliveryFailed := errors.As(err, new(*ncp.SendError))
		if s.onSent != nil && key != 0 && (err == nil || deliveryFailed) {
			s.onSent(zcl.IEEE(key), st, deliveryFailed)
		}
		s.mu.Lock()
		s.doneLocked(1)
		if err != nil {
			s.failures++
		}
		s.mu.Unlock()
		if err != nil {
			lvl := s.log.Debug()
			if !deliveryFailed {
				lvl = s.log.Warn()
			}
			lvl.Err(err).Stringer("ieee", zcl.IEEE(key)).Str("nwk", hex16(f.DstShort)).
				Uint16("cluster", f.ClusterID).Msg("frame not delivered")
		}
	}
}

// doneLocked counts n frames as sent or dropped.
func (s *sender) doneLocked(n int) {
	if n <= 0 || s.inFlight == 0 {
		return
	}
	s.inFlight = max(s.inFlight-n, 0)
	if s.inFlight == 0 {
		close(s.idle)
	}
}

// waitIdle waits until no frame is queued or being sent, at most maxWait; only ctx ending is an error.
func (s *sender) waitIdle(ctx context.Context, maxWait time.Duration) error {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// close drops what is queued and waits for the sending goroutines.
func (s *sender) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}
