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

	// pacing (see Pace): while paced, Now follows the wall clock times speed, but never past the next event,
	// never while an event runs and never while a hold is taken.
	paced     bool
	speed     float64
	wallBase  time.Time
	virtBase  time.Time
	running   bool                 // an event function runs on the pacing goroutine
	holds     map[uint64]holdEntry // Hold id → its wall deadline and virtual time
	holdSeq   uint64
	waits     int       // WaitFor calls in progress: holds do not stop time meanwhile
	lastRun   time.Time // wall time the last paced event ended
	heldSince time.Time // wall time the holds went from none to some
	rebases   uint64    // times Pace gave up wall time (late wake-up or hold) instead of inventing virtual time
	wake      chan struct{}
}

// Epoch is where every virtual clock starts: 2026-01-01 00:00:00 UTC.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewVirtual returns a virtual clock at Epoch.
func NewVirtual() *Virtual {
	return &Virtual{now: Epoch, wake: make(chan struct{}, 1), holds: make(map[uint64]holdEntry)}
}

// Now returns the virtual time.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.nowLocked()
}

// pacedTarget is where scaled wall time says the virtual clock should be.
func (v *Virtual) pacedTarget(wall time.Time) time.Time {
	return v.virtBase.Add(time.Duration(float64(wall.Sub(v.wallBase)) * v.speed))
}

// nowLocked advances a paced clock towards scaled wall time, but only when the simulation is idle (no
// event ran for idleAfter of wall time): while events run, only they move time, so work done outside the
// clock (the host answering a frame) is stamped at the time of the last event, as in a discrete-event run.
// Never past the earliest pending event (that event has to run first, at its own time), never while an
// event runs (its Now is its own time) and never while a hold is taken.
func (v *Virtual) nowLocked() time.Time {
	if v.paced && !v.running && !v.heldLocked() && time.Since(v.lastRun) >= idleAfter {
		t := v.pacedTarget(time.Now())
		if len(v.events) > 0 && t.After(v.events[0].at) {
			t = v.events[0].at
		}
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
		v.signal()
	}
	return e
}

func (v *Virtual) signal() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// Hold stops a paced clock's time until release is called or, at the latest, until limit of wall time has
// passed (a safety net for a holder that never answers; 0 means 1 s). The simulated network takes a hold
// when it hands a frame to the host and releases it when the host sends its answer, so the host's
// processing time, multiplied by the speed, is never counted as air time. Release may be called more than
// once. On a clock that is not paced (a discrete-event run) Hold does nothing.
func (v *Virtual) Hold(limit time.Duration) (release func()) {
	if limit <= 0 {
		limit = time.Second
	}
	v.mu.Lock()
	if !v.paced {
		v.mu.Unlock()
		return func() {}
	}
	v.nowLocked()
	v.holdSeq++
	id := v.holdSeq
	now := time.Now()
	if len(v.holds) == 0 {
		v.heldSince = now
	}
	v.holds[id] = holdEntry{deadline: now.Add(limit), at: v.now}
	v.mu.Unlock()
	return func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		if _, ok := v.holds[id]; !ok {
			return
		}
		delete(v.holds, id)
		if len(v.holds) == 0 {
			v.unheldLocked(time.Now())
			v.signal()
		}
	}
}

// holdEntry is one Hold: until when (wall) at most, and the virtual time it was taken at.
type holdEntry struct{ deadline, at time.Time }

// holdHorizon is how far past the oldest hold the simulation may run while the host waits for it
// (WaitFor): enough for the air time of the frames the host waits on, not for the timers further out.
const holdHorizon = 100 * time.Millisecond

// heldLocked reports whether a hold stops wall-driven time (Now).
func (v *Virtual) heldLocked() bool { return len(v.holds) > 0 }

// runLimitLocked is the latest virtual time an event may run at because of holds (ok false: no limit):
// none beyond now while the host works, up to holdHorizon past the oldest hold while it also waits.
func (v *Virtual) runLimitLocked() (limit time.Time, ok bool) {
	if len(v.holds) == 0 {
		return time.Time{}, false
	}
	if v.waits == 0 {
		return v.now, true
	}
	oldest := time.Time{}
	for _, h := range v.holds {
		if oldest.IsZero() || h.at.Before(oldest) {
			oldest = h.at
		}
	}
	return oldest.Add(holdHorizon), true
}

// WaitFor says that the holder of the clock's holds (the host) now waits for the simulation itself (for
// example for a send confirmation): until done is called, holds do not stop time, or both would stall.
// done may be called more than once.
func (v *Virtual) WaitFor() (done func()) {
	v.mu.Lock()
	if !v.paced {
		v.mu.Unlock()
		return func() {}
	}
	v.nowLocked()
	v.waits++
	v.signal()
	v.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			v.mu.Lock()
			v.nowLocked()
			v.waits--
			v.mu.Unlock()
		})
	}
}

// unheldLocked moves the paced base past the wall time the holds lasted (that time is given up, not turned
// into virtual time), keeping any lag the clock had to catch up before; never behind the virtual time.
func (v *Virtual) unheldLocked(wall time.Time) {
	if !v.paced {
		return
	}
	v.wallBase = v.wallBase.Add(wall.Sub(v.heldSince))
	if v.pacedTarget(wall).Before(v.now) {
		v.wallBase, v.virtBase = wall, v.now
	}
	v.rebases++
}

// rebaseLocked makes scaled wall time start again from the current virtual time: the wall time since the
// last base that the simulation could not use (a hold, a late wake-up) is given up, not turned into
// virtual time.
func (v *Virtual) rebaseLocked(wall time.Time) {
	if !v.paced {
		return
	}
	v.wallBase, v.virtBase = wall, v.now
	v.rebases++
}

// idleAfter is how long (wall time) a paced clock must have run no event before Now follows the wall clock.
const idleAfter = 20 * time.Millisecond

// maxLag is how far (in wall time) Pace may fall behind scaled wall time and still catch up by running
// events back to back; further behind, it rebases (slows down) rather than racing.
const maxLag = 20 * time.Millisecond

// Pace drives the clock in (scaled) real time until ctx ends: virtual time follows the wall clock
// multiplied by speed (1 = real time), and each event runs, on the calling goroutine, when its time comes,
// with Now equal to its own time. Pace never invents virtual time: a late wake-up runs the event at its own
// time (catching up while less than 20 ms behind, slowing down beyond); while events run, only they move
// Now (wall time moves it only when the simulation is idle); and while a Hold is taken no event runs beyond
// the current time (or, while the host also waits for the simulation with WaitFor, beyond 100 ms past the
// oldest hold). So the simulated durations are those of the discrete-event run of the same events.
// This is how the simulated network runs for `go run .` (speed 1) and for bridge-level tests (speed > 1)
// while keeping every event of the simulation on one goroutine. Pace returns ctx.Err().
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
		if err := ctx.Err(); err != nil {
			return err
		}
		delay := v.paceStep()
		if delay == 0 {
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

// paceStep runs the next event if it is due and returns 0, or returns how long to wait.
func (v *Virtual) paceStep() time.Duration {
	v.mu.Lock()
	wall := time.Now()
	holdWait := time.Duration(-1) // until the earliest hold deadline
	hadHolds := len(v.holds) > 0
	for id, h := range v.holds {
		if !wall.Before(h.deadline) {
			delete(v.holds, id)
			continue
		}
		if left := h.deadline.Sub(wall); holdWait < 0 || left < holdWait {
			holdWait = left
		}
	}
	if hadHolds && len(v.holds) == 0 {
		v.unheldLocked(wall)
	}
	if len(v.events) == 0 {
		v.mu.Unlock()
		if holdWait > 0 {
			return holdWait
		}
		return time.Hour
	}
	e := v.events[0]
	if limit, ok := v.runLimitLocked(); ok && e.at.After(limit) {
		v.mu.Unlock()
		return holdWait // the host first: wait for its answer (Hold's release signals) or the deadline
	}
	target := v.pacedTarget(wall)
	if e.at.After(target) {
		v.mu.Unlock()
		d := max(time.Duration(float64(e.at.Sub(target))/v.speed), time.Microsecond)
		if holdWait > 0 {
			d = min(d, holdWait)
		}
		return d
	}
	if lag := time.Duration(float64(target.Sub(e.at)) / v.speed); lag > maxLag {
		if e.at.After(v.now) {
			v.now = e.at
		}
		v.rebaseLocked(wall)
	}
	v.mu.Unlock()
	v.runNext()
	return 0
}

// runNext runs the earliest event with Now frozen at its time.
func (v *Virtual) runNext() {
	v.mu.Lock()
	if len(v.events) == 0 {
		v.mu.Unlock()
		return
	}
	e := heap.Pop(&v.events).(*event)
	if e.at.After(v.now) {
		v.now = e.at
	}
	v.fired++
	f := e.f
	e.f = nil
	v.running = true
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.running = false
		v.lastRun = time.Now()
		v.mu.Unlock()
	}()
	f()
}

// Rebases returns how often a paced clock gave up wall time (late wake-ups beyond the catch-up window, and
// holds) instead of inventing virtual time.
func (v *Virtual) Rebases() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rebases
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
