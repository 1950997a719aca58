package sim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/sim/simtest"
	"github.com/otabridge/otabridge/zcl"
)

const us = time.Microsecond

// TestLinkModelByHand checks the link model against the hand computation written out here.
//
// Per frame: PHY 6 + MAC 11 + NWK 8 + NWK security 18 + APS 8 = 51 bytes of overhead, 32 µs a byte.
// Largest unfragmented APS payload: 127 − 11 − 8 − 18 − 8 = 82 B. A fragment carries the 2-byte APS
// extended header, so at most 80 B of payload.
//
// Frames:
//
//	Image Block Request, ZCL 3 + 14 = 17 B:      (51 + 17) × 32 = 68 × 32  = 2176 µs
//	Block response, 48 B data: 17 + 48 = 65 B:   (51 + 65) × 32 = 116 × 32 = 3712 µs
//	Block response, 64 B data: 17 + 64 = 81 B:   (51 + 81) × 32 = 132 × 32 = 4224 µs
//	Block response, 223 B data: 17 + 223 = 240 B > 82 → 3 fragments of 80 B, each (51 + 2 + 80) × 32 =
//	    133 × 32 = 4256 µs (PSDU 127 B exactly) → 3 × 4256 = 12768 µs
//	MAC ack: 11 B × 32 = 352 µs
//	APS ack: (51 + 0) × 32 = 1632 µs; APS ack of a fragmented message (3-byte extended header): 54 × 32 = 1728 µs
//
// One unicast hop adds to each frame: mean backoff 3.5 × 320 = 1120 µs, CCA 128 µs, turnaround 192 µs,
// turnaround 192 µs and the MAC ack 352 µs = 1984 µs.
//
//	hop(request)       = 1984 + 2176 = 4160 µs
//	hop(48-byte block) = 1984 + 3712 = 5696 µs
//	hop(64-byte block) = 1984 + 4224 = 6208 µs
//	hop(223-byte block)= 3 × (1984 + 4256) = 18720 µs
//	hop(APS ack)       = 1984 + 1632 = 3616 µs; hop(fragment ack) = 1984 + 1728 = 3712 µs
//
// Block round trip (request + response, one hop, idle channel, no processing) and goodput = data / round trip:
//
//	48 B,  no APS ack: 4160 + 5696                      =  9856 µs → 48 / 0.009856  = 4870.1 B/s
//	48 B,  APS ack:    9856 + 2 × 3616                  = 17088 µs → 48 / 0.017088  = 2809.0 B/s
//	64 B,  no APS ack: 4160 + 6208                      = 10368 µs → 64 / 0.010368  = 6172.8 B/s
//	64 B,  APS ack:    10368 + 2 × 3616                 = 17600 µs → 64 / 0.017600  = 3636.4 B/s
//	223 B, no APS ack: 4160 + 18720 + 3712 (frag. ack)  = 26592 µs → 223 / 0.026592 = 8386.0 B/s
//	223 B, APS ack:    4160 + 3616 + 18720 + 3712       = 30208 µs → 223 / 0.030208 = 7382.2 B/s
//
// (A fragmented response is acknowledged by APS whether or not the sender asked: one ack per window.)
func TestLinkModelByHand(t *testing.T) {
	var l sim.LinkModel
	assert.Equal(t, 82, sim.MaxAPSPayload)
	assert.Equal(t, 80, sim.MaxFragmentPayload)
	assert.Equal(t, 1120*us, sim.MeanBackoff)

	// Air time of one frame of each kind.
	assert.Equal(t, 2176*us, l.FrameAirTime(17), "block request")
	assert.Equal(t, 3712*us, l.FrameAirTime(17+48), "48-byte block response")
	assert.Equal(t, 4224*us, l.FrameAirTime(17+64), "64-byte block response")
	assert.Equal(t, 1, sim.Fragments(17+64))
	assert.Equal(t, 4256*us, l.FrameAirTime(82), "largest unfragmented frame: (51 + 82) × 32 µs, PSDU 127 B")
	assert.Equal(t, 3, sim.Fragments(17+223))
	assert.Equal(t, 12768*us, l.FrameAirTime(17+223), "223-byte block response in 3 fragments")
	assert.Equal(t, 352*us, l.MACAckAirTime())
	assert.Equal(t, 1632*us, l.APSAckAirTime(false))
	assert.Equal(t, 1728*us, l.APSAckAirTime(true))

	// Hop times.
	assert.Equal(t, 4160*us, l.HopTime(17))
	assert.Equal(t, 5696*us, l.HopTime(65))
	assert.Equal(t, 6208*us, l.HopTime(81))
	assert.Equal(t, 18720*us, l.HopTime(240))

	// Round trips and goodput.
	cases := []struct {
		data      int
		apsAck    bool
		roundTrip time.Duration
		goodput   float64
	}{
		{48, false, 9856 * us, 4870.1},
		{48, true, 17088 * us, 2809.0},
		{64, false, 10368 * us, 6172.8},
		{64, true, 17600 * us, 3636.4},
		{223, false, 26592 * us, 8386.0},
		{223, true, 30208 * us, 7382.2},
	}
	for _, c := range cases {
		assert.Equal(t, c.roundTrip, l.BlockRoundTrip(c.data, c.apsAck, 1), "round trip %d B ack=%v", c.data, c.apsAck)
		assert.InDelta(t, c.goodput, l.BlockGoodput(c.data, c.apsAck, 1), 0.05, "goodput %d B ack=%v", c.data, c.apsAck)
		t.Logf("block %3d B, APS ack %-5v: round trip %v, goodput %.1f B/s", c.data, c.apsAck, l.BlockRoundTrip(c.data, c.apsAck, 1), l.BlockGoodput(c.data, c.apsAck, 1))
	}
	// Hops multiply.
	assert.Equal(t, 3*l.BlockRoundTrip(64, true, 1), l.BlockRoundTrip(64, true, 3))
	// Fast mode has no time at all.
	fast := sim.LinkModel{Fast: true}
	assert.Zero(t, fast.BlockRoundTrip(223, true, 3))
}

// TestSimulatedGoodputMatchesModel: a single device on an idle channel, no processing delay, measured
// from the first block request to the Upgrade End Request, achieves the modelled goodput (random backoff
// averages out over ~190 blocks).
func TestSimulatedGoodputMatchesModel(t *testing.T) {
	for _, tc := range []struct {
		profile string
		data    int
		apsAck  bool
	}{
		{"periodic", 64, true},
		{"periodic", 64, false},
		{"esp-v2", 223, true},
		{"esp-v2", 223, false},
	} {
		ack := "true"
		if !tc.apsAck {
			ack = "false"
		}
		h := simtest.New(t, oneDevice("realistic", "    profile: "+tc.profile+"\n    aps_ack: "+ack+"\n"))
		srv := simtest.NewMinimalServer(h, newImage())
		srv.APSAck = tc.apsAck
		var first, last time.Duration
		h.OnFrame(func(src zcl.IEEE, in ncp.Incoming) {
			hd, _, err := zcl.DecodeHeader(in.Payload)
			if err != nil || hd.FrameType != zcl.FrameTypeCluster {
				return
			}
			switch hd.CommandID {
			case zcl.CmdImageBlockRequest:
				if first == 0 {
					first = h.Now()
				}
			case zcl.CmdUpgradeEndRequest:
				last = h.Now()
			}
		})
		srv.Notify(dev1)
		require.True(t, upgraded(h, dev1, time.Hour))
		blocks := (imgBytes + tc.data - 1) / tc.data
		// From the arrival of the first request to the arrival of the Upgrade End Request: blocks round trips.
		measured := float64(imgBytes) / (last - first).Seconds()
		model := h.Net.Link().BlockGoodput(tc.data, tc.apsAck, 1)
		t.Logf("%s %d B blocks, APS ack %v: %d blocks, measured %.0f B/s, model %.0f B/s", tc.profile, tc.data, tc.apsAck, blocks, measured, model)
		assert.InEpsilon(t, model, measured, 0.05)
	}
}
