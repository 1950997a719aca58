package bridge

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otabridge/otabridge/zcl"
)

// A second job of a device that has one running joins it (same result, f runs once); past the limit a
// refusable job is refused busy, a non-refusable one runs.
func TestRadioJobsCoalesceAndRefuse(t *testing.T) {
	jobs := newRadioJobs(2)
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	runs := 0
	var mu sync.Mutex
	slow := func() error {
		mu.Lock()
		runs++
		mu.Unlock()
		started <- struct{}{}
		<-release
		return nil
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make(chan bool, 2)
	wg.Add(2)
	go func() { defer wg.Done(); _, joined := jobs.do(ctx, 1, true, slow); results <- joined }()
	<-started
	go func() { defer wg.Done(); _, joined := jobs.do(ctx, 1, true, slow); results <- joined }()
	for jobs.joined(1) == 0 {
		runtime.Gosched()
	}
	go func() { _, _ = jobs.do(ctx, 2, true, slow) }()
	<-started
	// Two devices busy: a third device is refused, unless it may not be refused.
	err, _ := jobs.do(ctx, zcl.IEEE(3), true, slow)
	assert.Equal(t, errRadioBusy, err)
	go func() { _, _ = jobs.do(ctx, 4, false, slow) }()
	<-started
	close(release)
	wg.Wait()
	close(results)
	var joins int
	for j := range results {
		if j {
			joins++
		}
	}
	assert.Equal(t, 1, joins, "the second interview of device 1 joined the first")
	mu.Lock()
	assert.Equal(t, 3, runs, "device 1 once, device 2, device 4")
	mu.Unlock()
}
