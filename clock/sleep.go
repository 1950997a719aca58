package clock

import (
	"context"
	"time"
)

// Sleep waits d on clk (a virtual clock's time passes only as it runs), or until ctx ends; then it returns
// ctx's error. d <= 0 returns at once.
func Sleep(ctx context.Context, clk Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	ch := make(chan struct{})
	t := clk.AfterFunc(d, func() { close(ch) })
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
