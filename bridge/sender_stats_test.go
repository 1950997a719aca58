package bridge

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
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
