package sim_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim/simtest"
)

// SendWithStats (ncp.StatsSender) reports what each frame cost on the coordinator's hop: on an idle,
// lossless channel one attempt and no wait; with the home's other traffic (link.background) the frames
// wait for the channel; with losses the MAC retries show.
func TestSendStats(t *testing.T) {
	type totals struct {
		frames, attempts, retries int
		wait                      time.Duration
	}
	run := func(link string) totals {
		t.Helper()
		h := simtest.New(t, fmt.Sprintf(`
seed: 7
link: %s
devices:
  - ieee: 0x00124b0000000001
    file_version: 0x10012000
    query_interval: 1h
`, link))
		h.Run(2 * time.Second)
		var tot totals
		var next func()
		next = func() {
			if tot.frames == 200 {
				return
			}
			h.SendClusterStats(0x00124b0000000001, 0x0006, []byte{0x01, byte(tot.frames), 0x02}, true,
				func(st ncp.SendStats, err error) {
					if err == nil {
						tot.frames++
						tot.attempts += st.Attempts
						tot.retries += st.MACRetries
						tot.wait += st.ChannelWait
					}
					next()
				})
		}
		next()
		require.True(t, h.RunUntil(func() bool { return tot.frames == 200 }, time.Hour))
		return tot
	}
	idle := run("{mode: realistic}")
	assert.Equal(t, 200, idle.attempts, "one attempt a frame")
	assert.Zero(t, idle.retries)
	// The only other traffic is the device's answers (Default Responses) to our frames.
	assert.Less(t, idle.wait/time.Duration(idle.frames), 5*time.Millisecond)

	busy := run("{mode: realistic, background: {rate: 150, payload: 60}}")
	assert.Zero(t, busy.retries)
	assert.Greater(t, busy.wait/time.Duration(busy.frames), idle.wait/time.Duration(idle.frames)+time.Millisecond,
		"frames wait behind the other traffic")

	lossy := run("{mode: realistic, loss: 0.2}")
	assert.GreaterOrEqual(t, lossy.attempts-lossy.retries, 200, "a first attempt per frame (and per APS retry)")
	assert.InDelta(t, 0.2, float64(lossy.retries)/float64(lossy.attempts), 0.07, "about a fifth of the attempts are retries")
}
