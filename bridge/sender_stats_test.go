package bridge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// statsRadio is a radio that reports per-frame statistics (ncp.StatsSender); frames to 0x0002 fail.
type statsRadio struct{}

func (statsRadio) Send(ctx context.Context, f ncp.Frame) error {
	_, err := statsRadio{}.SendWithStats(ctx, f)
	return err
}

func (statsRadio) SendWithStats(_ context.Context, f ncp.Frame) (ncp.SendStats, error) {
	st := ncp.SendStats{Attempts: 3, MACRetries: 2, ChannelWait: 12 * time.Millisecond}
	if f.DstShort == 0x0002 {
		return st, &ncp.SendError{DstShort: f.DstShort, Status: "MAC no ack"}
	}
	return st, nil
}

// The sender hands each unicast's statistics and outcome to onSent (the engine's congestion signals):
// from a radio that implements ncp.StatsSender, and as zeros from one that does not.
func TestSenderPassesSendStats(t *testing.T) {
	type report struct {
		dst    zcl.IEEE
		st     ncp.SendStats
		failed bool
	}
	collect := func(radio frameSender, frames ...ncp.Frame) []report {
		t.Helper()
		s := newSender(radio, zerolog.Nop())
		var mu sync.Mutex
		var got []report
		s.onSent = func(dst zcl.IEEE, st ncp.SendStats, failed bool) {
			mu.Lock()
			got = append(got, report{dst, st, failed})
			mu.Unlock()
		}
		s.start()
		for i, f := range frames {
			s.enqueue(zcl.IEEE(i+1), f)
		}
		s.enqueue(0, ncp.Frame{DstShort: ncp.BroadcastAll}) // broadcasts are no device's signal
		require.NoError(t, s.waitIdle(context.Background(), time.Minute))
		s.close()
		mu.Lock()
		defer mu.Unlock()
		return got
	}
	got := collect(statsRadio{}, ncp.Frame{DstShort: 0x0001, APSAck: true}, ncp.Frame{DstShort: 0x0002, APSAck: true})
	want := ncp.SendStats{Attempts: 3, MACRetries: 2, ChannelWait: 12 * time.Millisecond}
	assert.ElementsMatch(t, []report{{1, want, false}, {2, want, true}}, got)

	got = collect(&gateRadio{}, ncp.Frame{DstShort: 0x0001})
	assert.Equal(t, []report{{1, ncp.SendStats{}, false}}, got, "a radio without statistics: zeros")
}

// counterRadio is a radio whose stick counts its MAC work (ncp.MACCounter) but reports nothing per frame;
// its reads fail while fail is set.
type counterRadio struct {
	ncp.Radio
	mu    sync.Mutex
	reads int
	fail  bool
}

func (r *counterRadio) MACCounters(context.Context) (ncp.MACCounts, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	if r.fail {
		return ncp.MACCounts{}, errors.New("radio not ready: stick reset")
	}
	return ncp.MACCounts{Unicasts: 10 * r.reads, Retries: r.reads, Failed: 1, CCAFailures: 2}, nil
}

// The stick's MAC counters are read only from a radio that has no per-frame statistics, and each read
// reaches the adaptive concurrency as a MACReport; a failing read is logged once, not at every period.
func TestMACCountersReachTheEngine(t *testing.T) {
	cr := &counterRadio{fail: true}
	assert.Nil(t, macCounterOf(perFrameRadio{cr}), "per-frame statistics win")
	assert.Equal(t, ncp.MACCounter(cr), macCounterOf(cr))
	assert.Equal(t, ncp.MACCounter(cr), macCounterOf(&savingRadio{Radio: cr}), "the driver behind the radio that saves its network")
	assert.Nil(t, macCounterOf(&savingRadio{Radio: plainRadio{}}), "a radio without counters")

	logs := &logBuffer{}
	b := &Bridge{log: zerolog.New(logs)}
	reports := make(chan ota.MACReport, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.readMACCounters(ctx, cr, time.Millisecond, func(r ota.MACReport) { reports <- r })
	}()
	require.Eventually(t, func() bool { cr.mu.Lock(); defer cr.mu.Unlock(); return cr.reads >= 5 }, 10*time.Second, time.Millisecond)
	cr.mu.Lock()
	cr.fail = false
	cr.mu.Unlock()
	var got ota.MACReport
	select {
	case got = <-reports:
	case <-time.After(10 * time.Second):
		t.Fatal("no report after the reads worked again")
	}
	cancel()
	<-done
	assert.Positive(t, got.Frames)
	assert.Equal(t, got.Frames/10, got.Retries)
	assert.Equal(t, 2, got.CCAFailures)
	out := logs.String()
	assert.Equal(t, 1, strings.Count(out, "reading the stick's MAC counters failed"), out)
	assert.Equal(t, 1, strings.Count(out, "reading the stick's MAC counters again"), out)
}

// plainRadio has neither per-frame statistics nor counters.
type plainRadio struct{ ncp.Radio }

// perFrameRadio counts and reports per-frame statistics too (as the simulator does).
type perFrameRadio struct{ *counterRadio }

func (perFrameRadio) SendWithStats(context.Context, ncp.Frame) (ncp.SendStats, error) {
	return ncp.SendStats{}, nil
}
