package sim_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/sim/simtest"
	"github.com/otabridge/otabridge/zcl"
)

// fragmentNet is one device with the given link settings and device settings.
func fragmentNet(t *testing.T, link, device string) *simtest.Harness {
	cfg := oneDevice("realistic", device)
	cfg = strings.Replace(cfg, "link: {mode: realistic}", "link: {mode: realistic"+link+"}", 1)
	return simtest.New(t, cfg)
}

// sendLarge sends n fragmented frames of 240 B (an Image Block Response of 223 B: 3 fragments) to dev1 one
// after the other and returns their confirmations.
func sendLarge(t *testing.T, h *simtest.Harness, n int) []error {
	t.Helper()
	short := h.Device(dev1).Status().NWK
	var errs []error
	for i := 0; i < n; i++ {
		payload := make([]byte, 240)
		payload[0], payload[1], payload[2] = 0x11, byte(i), 0x7F // a cluster command the device ignores, no default response
		done := false
		h.Send(ncp.Frame{DstShort: short, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: 0xFC00,
			ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: payload}, func(err error) { errs, done = append(errs, err), true })
		require.True(t, h.RunUntil(func() bool { return done }, time.Minute), "frame %d confirmed", i)
	}
	return errs
}

func TestFragmentedFrameOneAckPerWindow(t *testing.T) {
	for _, c := range []struct {
		window   int
		interval time.Duration
		acks     int
	}{{8, 0, 1}, {2, 0, 2}, {1, 5 * time.Millisecond, 3}} {
		t.Run(fmt.Sprintf("window %d", c.window), func(t *testing.T) {
			h := fragmentNet(t, fmt.Sprintf(", fragment_window: %d, fragment_interval: %s", c.window, c.interval), "")
			h.Run(2 * time.Second) // boot and announce
			before := h.Net.Stats()
			start := h.Now()
			errs := sendLarge(t, h, 1)
			require.NoError(t, errs[0])
			st := h.Net.Stats()
			assert.Equal(t, c.acks, st.APSAcks-before.APSAcks, "APS acks of one 3-fragment message")
			kind := "zcl.cluster_0xfc00_cmd_0x7f"
			assert.Equal(t, 3, st.PerKind[kind].Frames-before.PerKind[kind].Frames, "3 fragments on the air (no losses)")
			assert.Equal(t, c.acks, st.PerKind["aps_ack"].Frames-before.PerKind["aps_ack"].Frames, "APS ack frames")
			assert.Equal(t, before.Polls, st.Polls)
			// The modelled time of the message (random backoff aside) follows the link model with the same
			// window and interval: within the backoff spread of 4 + acks frames.
			took := h.Now() - start
			model := h.Net.Link().UnicastTime(240, 1, true)
			assert.InDelta(t, model.Seconds(), took.Seconds(), (time.Duration(3+c.acks) * 4 * sim.UnitBackoffPeriod).Seconds())
		})
	}
}

func TestFragmentedFrameToADeviceWithoutFragmentationFails(t *testing.T) {
	h := fragmentNet(t, "", "    aps_fragmentation: false\n")
	h.Run(2 * time.Second)
	received := h.Device(dev1).Status().FramesReceived
	errs := sendLarge(t, h, 1)
	var se *ncp.SendError
	require.ErrorAs(t, errs[0], &se)
	assert.Equal(t, "no APS ack", se.Status)
	assert.Equal(t, sim.APSMaxFrameRetries+1, h.Net.Stats().FragmentedDropped, "every APS try reached the device and was dropped")
	assert.Equal(t, received, h.Device(dev1).Status().FramesReceived)
}

func TestLostFragmentIsResentFromItsWindow(t *testing.T) {
	// Every attempt is lost with probability 0.1 and there are no MAC retries: fragments get lost, their
	// windows go unacknowledged and are sent again after the APS ack wait; the windows acknowledged
	// before are not resent.
	h := fragmentNet(t, ", loss: 0.1, mac_retries: -1, fragment_window: 1", "")
	h.Run(2 * time.Second)
	received := h.Device(dev1).Status().FramesReceived
	before := h.Net.Stats()
	errs := sendLarge(t, h, 30)
	delivered := 0
	for _, err := range errs {
		if err == nil {
			delivered++
		}
	}
	st := h.Net.Stats()
	t.Logf("delivered %d of 30, APS retries %d, frames %d, lost %d", delivered, st.APSRetries-before.APSRetries, st.Frames-before.Frames, st.Lost-before.Lost)
	assert.GreaterOrEqual(t, delivered, 27)
	assert.Positive(t, st.APSRetries-before.APSRetries, "lost fragments were resent")
	assert.Equal(t, received+delivered, h.Device(dev1).Status().FramesReceived, "each delivered message reached the device once")
}
