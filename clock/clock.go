// Package clock owns time for otabridge: the Clock interface that the OTA engine and the simulated radio
// schedule their timers on, the real-time clock used in production, and a virtual clock (a discrete-event
// scheduler) on which a simulated hour of transfers runs in milliseconds, deterministically.
package clock

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Clock tells the time and runs functions later.
type Clock interface {
	// Now returns the current time of this clock.
	Now() time.Time
	// AfterFunc runs f once, d from now. On the real clock f runs on its own goroutine; on the virtual clock it
	// runs inside Virtual.Run / Step, on the goroutine that drives the clock.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the function from running; it reports whether it did (false: it already ran or was stopped).
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Virtual is a discrete-event clock: time stands still until the owner calls Step, Run, RunFor or RunUntil,
// which pop events in time order (FIFO among equal times), set Now to the event's time and call it.
// It is safe for concurrent use; the event functions run on the goroutine that drives it.
type Virtual struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	events eventHeap
	fired  uint64

	// pacing (see Pace): while paced, Now follows the wall clock times speed.
	paced    bool
	speed    float64
	wallBase time.Time
	virtBase time.Time
	wake     chan struct{}
}

// Epoch is where every virtual clock starts: 2026-01-01 00:00:00 UTC.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewVirtual returns a virtual clock at Epoch.
func NewVirtual() *Virtual { return &Virtual{now: Epoch, wake: make(chan struct{}, 1)} }

// Now returns the virtual time.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.nowLocked()
}

func (v *Virtual) nowLocked() time.Time {
	if v.paced {
		t := v.virtBase.Add(time.Duration(float64(time.Since(v.wallBase)) * v.speed))
		if t.After(v.now) {
			v.now = t
		}
	}
	return v.now
}

// Elapsed returns the virtual time since Epoch.
func (v *Virtual) Elapsed() time.Duration { return v.Now().Sub(Epoch) }

// AfterFunc schedules f at Now()+d (d < 0 counts as 0).
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	if d < 0 {
		d = 0
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seq++
	e := &event{at: v.nowLocked().Add(d), seq: v.seq, f: f, clock: v}
	heap.Push(&v.events, e)
	if v.paced && e.index == 0 {
		select {
		case v.wake <- struct{}{}:
		default:
		}
	}
	return e
}

// Pace drives the clock in (scaled) real time until ctx ends: Now follows the wall clock multiplied by
// speed (1 = real time), and each event runs, on the calling goroutine, when its time comes. This is how
// the simulated network runs for `go run .` (speed 1) and for bridge-level tests (speed > 1) while keeping
// every event of the simulation on one goroutine. Pace returns ctx.Err().
func (v *Virtual) Pace(ctx context.Context, speed float64) error {
	if speed <= 0 {
		speed = 1
	}
	v.mu.Lock()
	v.paced, v.speed, v.wallBase, v.virtBase = true, speed, time.Now(), v.now
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.nowLocked()
		v.paced = false
		v.mu.Unlock()
	}()
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	for {
		v.mu.Lock()
		var delay time.Duration = time.Hour
		if len(v.events) > 0 {
			delay = time.Duration(float64(v.events[0].at.Sub(v.nowLocked())) / speed)
		}
		v.mu.Unlock()
		if delay <= 0 {
			v.step(v.Now(), true)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		wait.Reset(delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-v.wake:
		case <-wait.C:
		}
		if !wait.Stop() {
			select {
			case <-wait.C:
			default:
			}
		}
	}
}

// Pending returns the number of scheduled events.
func (v *Virtual) Pending() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.events)
}

// Fired returns how many events have run since the clock was made.
func (v *Virtual) Fired() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fired
}

// Step runs the earliest event, if any, and reports whether it ran one.
func (v *Virtual) Step() bool { return v.step(time.Time{}, false) }

func (v *Virtual) step(limit time.Time, bounded bool) bool {
	v.mu.Lock()
	if len(v.events) == 0 {
		v.mu.Unlock()
		return false
	}
	e := v.events[0]
	if bounded && e.at.After(limit) {
		v.mu.Unlock()
		return false
	}
	heap.Pop(&v.events)
	if e.at.After(v.now) {
		v.now = e.at
	}
	v.fired++
	f := e.f
	e.f = nil
	v.mu.Unlock()
	f()
	return true
}

// RunUntil runs events until cond returns true (checked before each event), no event is left, or the next
// event lies after deadline; it returns cond's last answer. Time is left at the last event run.
func (v *Virtual) RunUntil(deadline time.Time, cond func() bool) bool {
	for {
		if cond != nil && cond() {
			return true
		}
		if !v.step(deadline, true) {
			return cond != nil && cond()
		}
	}
}

// RunFor runs every event due within d from now and then sets the time to now+d.
func (v *Virtual) RunFor(d time.Duration) {
	end := v.Now().Add(d)
	for v.step(end, true) {
	}
	v.mu.Lock()
	if end.After(v.now) {
		v.now = end
	}
	v.mu.Unlock()
}

type event struct {
	at    time.Time
	seq   uint64
	f     func()
	index int
	clock *Virtual
}

// Stop removes the event from the schedule.
func (e *event) Stop() bool {
	v := e.clock
	v.mu.Lock()
	defer v.mu.Unlock()
	if e.f == nil || e.index < 0 {
		return false
	}
	heap.Remove(&v.events, e.index)
	e.f = nil
	return true
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h eventHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *eventHeap) Push(x any) {
	e := x.(*event)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *eventHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	e.index = -1
	*h = old[:n-1]
	return e
}
