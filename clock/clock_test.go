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
