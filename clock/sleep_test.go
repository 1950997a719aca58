package clock

import (
	"context"
	"testing"
	"time"
)

func TestSleepOnVirtualClockAndCancel(t *testing.T) {
	v := NewVirtual()
	done := make(chan error, 1)
	go func() { done <- Sleep(context.Background(), v, time.Minute) }()
	for v.Pending() == 0 {
		time.Sleep(time.Millisecond)
	}
	v.RunFor(time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("Sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, v, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep after cancel: %v, want context.Canceled", err)
	}
	if v.Pending() != 0 {
		t.Errorf("%d timers left behind", v.Pending())
	}
}
