package bridge

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"

	"github.com/otabridge/otabridge/ncp"
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

// gateRadio records the order frames reach the radio; a frame to gated waits for release.
type gateRadio struct {
	mu      sync.Mutex
	order   []uint16
	gated   uint16
	release chan struct{}
	entered chan struct{}
}

func (g *gateRadio) Send(ctx context.Context, f ncp.Frame) error {
	g.mu.Lock()
	g.order = append(g.order, f.DstShort)
	g.mu.Unlock()
	if f.DstShort == g.gated {
		g.entered <- struct{}{}
		<-g.release
	}
	return nil
}

// An interview frame waits while a firmware frame is queued or being sent, and goes out after it.
func TestLowPriorityFramesWaitForFirmwareFrames(t *testing.T) {
	radio := &gateRadio{gated: 0x0001, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	s := newSender(radio, zerolog.Nop())
	s.start()
	defer s.close()
	low := newLowPrioritySender(radio, s)
	low.maxWait = time.Hour // only the firmware traffic ending lets it through

	s.enqueue(1, ncp.Frame{DstShort: 0x0001}) // a block response, held in the radio
	<-radio.entered
	sent := make(chan error, 1)
	go func() { sent <- low.Send(context.Background(), ncp.Frame{DstShort: 0x0002}) }()
	select {
	case <-sent:
		t.Fatal("the interview frame went out while a firmware frame was in flight")
	case <-time.After(50 * time.Millisecond): // gives a wrong implementation the chance to send
	}
	close(radio.release)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	radio.mu.Lock()
	defer radio.mu.Unlock()
	assert.Equal(t, []uint16{0x0001, 0x0002}, radio.order)
}
