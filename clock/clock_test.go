package clock

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestVirtualRunsEventsInTimeOrderFIFOOnTies(t *testing.T) {
	v := NewVirtual()
	var got []string
	v.AfterFunc(3*time.Second, func() { got = append(got, "c") })
	v.AfterFunc(time.Second, func() { got = append(got, "a1") })
	v.AfterFunc(time.Second, func() { got = append(got, "a2") })
	stopped := v.AfterFunc(2*time.Second, func() { got = append(got, "never") })
	v.AfterFunc(2*time.Second, func() {
		got = append(got, "b")
		v.AfterFunc(0, func() { got = append(got, "b-now") }) // scheduled from inside an event
	})
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop must report true once, then false")
	}
	v.RunFor(10 * time.Second)
	want := []string{"a1", "a2", "b", "b-now", "c"}
	if len(got) != len(want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ran %v, want %v", got, want)
		}
	}
	if e := v.Elapsed(); e != 10*time.Second {
		t.Fatalf("elapsed %s after RunFor(10s)", e)
	}
	if v.Fired() != 5 || v.Pending() != 0 {
		t.Fatalf("fired %d pending %d", v.Fired(), v.Pending())
	}
}

func TestVirtualRunUntil(t *testing.T) {
	v := NewVirtual()
	n := 0
	var tick func()
	tick = func() { n++; v.AfterFunc(time.Minute, tick) }
	v.AfterFunc(time.Minute, tick)
	if !v.RunUntil(Epoch.Add(time.Hour), func() bool { return n == 10 }) {
		t.Fatal("condition not reached")
	}
	if v.Elapsed() != 10*time.Minute {
		t.Fatalf("time %s at the 10th tick", v.Elapsed())
	}
	if v.RunUntil(Epoch.Add(20*time.Minute), func() bool { return n == 100 }) {
		t.Fatal("condition reached past the deadline")
	}
	if n != 20 {
		t.Fatalf("%d ticks by the deadline, want 20", n)
	}
}

func TestPaceRunsEventsInScaledRealTime(t *testing.T) {
	v := NewVirtual()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fired atomic.Int32
	done := make(chan struct{})
	go func() { _ = v.Pace(ctx, 1000); close(done) }()
	// An hour of virtual time at 1000× is 3.6 s of wall time; ten events a virtual second apart take 10 ms.
	for i := 1; i <= 10; i++ {
		v.AfterFunc(time.Duration(i)*time.Second, func() { fired.Add(1) })
	}
	deadline := time.Now().Add(10 * time.Second) // failure guard only
	for fired.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if fired.Load() != 10 {
		t.Fatalf("%d of 10 events ran", fired.Load())
	}
	if now := v.Elapsed(); now < 10*time.Second {
		t.Fatalf("virtual time %s after the last event at 10s", now)
	}
	cancel()
	<-done
}

// chain schedules n events, each step after the previous one ran (as a transfer's frames do), and records
// the virtual time from the first to the last.
func chain(v *Virtual, n int, step time.Duration, last *atomic.Int64, done chan<- struct{}) {
	var first time.Time
	var next func(i int)
	next = func(i int) {
		if i == 0 {
			first = v.Now()
		}
		if i == n {
			last.Store(int64(v.Now().Sub(first)))
			close(done)
			return
		}
		v.AfterFunc(step, func() { next(i + 1) })
	}
	v.AfterFunc(0, func() { next(0) })
}

func TestPaceLateWakeUpsDoNotInventTime(t *testing.T) {
	// A discrete-event run of 2000 chained events 1 ms apart ends at exactly 2 s.
	des := NewVirtual()
	var desLast atomic.Int64
	desDone := make(chan struct{})
	chain(des, 2000, time.Millisecond, &desLast, desDone)
	for des.Step() {
	}
	<-desDone

	// At speed 1000 an event is due every microsecond of wall time, far below timer resolution: every wake-up
	// is late. The paced run must still end at the discrete-event time.
	for _, speed := range []float64{1, 100, 1000} {
		v := NewVirtual()
		ctx, cancel := context.WithCancel(context.Background())
		paced := make(chan struct{})
		go func() { _ = v.Pace(ctx, speed); close(paced) }()
		var last atomic.Int64
		done := make(chan struct{})
		n := 2000
		if speed < 1000 {
			n = 20 // 20 ms of virtual time at speed 1, 0.2 ms at 100: the same chain, shorter
		}
		chain(v, n, time.Millisecond, &last, done)
		<-done
		cancel()
		<-paced
		want := time.Duration(n) * time.Millisecond
		if speed == 1000 && want != time.Duration(desLast.Load()) {
			t.Fatalf("discrete-event run ended at %s, want %s", time.Duration(desLast.Load()), want)
		}
		if got := time.Duration(last.Load()); got != want {
			t.Fatalf("speed %g: paced run ended at %s of virtual time, the discrete-event run at %s", speed, got, want)
		}
	}
}

// pingPong runs rounds of a device request (air time 10 ms) answered by a host (air time 8 ms), next to an
// unrelated beacon every 3 ms, and returns the virtual time of the last answer. The host works 200 µs of
// wall time on each request. With a paced clock the host is a goroutine and the device side holds the clock
// while it works, as ncp/sim does; in the discrete-event run the host answers inside the event.
func pingPong(t *testing.T, v *Virtual, rounds int, speed float64) time.Duration {
	t.Helper()
	type request struct {
		round   int
		release func()
	}
	toHost := make(chan request, 1)
	finished := make(chan time.Duration, 1)
	stop := make(chan struct{})
	var beacon func()
	beacon = func() {
		select {
		case <-stop:
		default:
			v.AfterFunc(3*time.Millisecond, beacon)
		}
	}
	v.AfterFunc(0, beacon)
	var send func(round int)
	host := func(r request) {
		busy := time.Now().Add(200 * time.Microsecond) // the host's processing, in wall time
		for time.Now().Before(busy) {
		}
		round := r.round
		v.AfterFunc(8*time.Millisecond, func() {
			if round+1 == rounds {
				finished <- v.Now().Sub(Epoch)
				return
			}
			send(round + 1)
		})
		r.release()
	}
	send = func(round int) {
		v.AfterFunc(10*time.Millisecond, func() {
			r := request{round: round, release: v.Hold(time.Second)}
			if speed == 0 {
				host(r)
				return
			}
			toHost <- r
		})
	}
	hostDone := make(chan struct{})
	go func() {
		defer close(hostDone)
		for {
			select {
			case <-stop:
				return
			case r := <-toHost:
				host(r)
			}
		}
	}()
	send(0)
	if speed == 0 {
		for len(finished) == 0 && v.Step() {
		}
		close(stop)
		<-hostDone
		return <-finished
	}
	ctx, cancel := context.WithCancel(context.Background())
	paced := make(chan struct{})
	go func() { _ = v.Pace(ctx, speed); close(paced) }()
	got := <-finished
	close(stop)
	cancel()
	<-hostDone
	<-paced
	return got
}

func TestPaceWithHoldsMatchesTheDiscreteEventRun(t *testing.T) {
	const rounds = 100
	desTime := pingPong(t, NewVirtual(), rounds, 0)
	if want := rounds * 18 * time.Millisecond; desTime != want {
		t.Fatalf("discrete-event run: last answer at %s, want %s", desTime, want)
	}
	for _, speed := range []float64{10, 1000} {
		paced := pingPong(t, NewVirtual(), rounds, speed)
		ratio := float64(paced) / float64(desTime)
		t.Logf("speed %g: paced %s, discrete-event %s, ratio %.4f", speed, paced, desTime, ratio)
		if ratio < 0.95 || ratio > 1.05 {
			t.Fatalf("speed %g: paced run took %s of virtual time, the discrete-event run %s (ratio %.3f, want within 5 %%)",
				speed, paced, desTime, ratio)
		}
	}
}
