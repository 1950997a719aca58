package sim

import (
	"math"
	"time"
)

// The 802.15.4 / Zigbee PRO link model.
//
// Every frame on the air is
//
//	PHY header 6 B (preamble 4, SFD 1, length 1; outside the 127-byte PSDU but on the air)
//	MAC header + FCS 11 B (frame control 2, sequence 1, PAN id 2, destination 2, source 2, FCS 2)
//	NWK header 8 B, NWK security 18 B (auxiliary header 14 + MIC 4)
//	APS header 8 B (frame control 1, destination endpoint 1, cluster 2, profile 2, source endpoint 1, counter 1)
//	APS payload (the ZCL or ZDO frame)
//
// at 250 kbit/s, 32 µs a byte. The PSDU is at most 127 B, so the largest unfragmented APS payload is
// 127 − 11 − 8 − 18 − 8 = 82 B. A larger payload is fragmented by APS: each fragment carries the APS extended
// header (extended frame control 1 + block number 1 = 2 B), so a fragment holds at most 80 B; every fragment
// is its own frame. Fragmented messages are always acknowledged by APS: one APS ack per window of
// link.fragment_window fragments (apsMaxWindowSize, default 8, which covers every message the OTA cluster
// sends, ≤ 4 fragments, with one ack), each ack carrying the 3-byte extended header (extended frame control,
// block number, ack bitfield); the sender sends the next window when the previous one is acknowledged, and
// waits link.fragment_interval (apsInterframeDelay, default 0) between two fragments of a window, counted
// as channel time. A fragment lost after its MAC retries leaves its window unacknowledged: after the APS ack
// wait the sender resends from that window on (the windows acknowledged before stay delivered). A device
// without APS fragmentation support (aps_fragmentation: false) drops fragments and never acknowledges them,
// so the sender gives up after its APS retries with "no APS ack".
//
// Sending one frame on one hop (unicast) costs
//
//	CSMA-CA (unslotted): a random backoff of 0..2^BE−1 unit periods of 320 µs with BE = macMinBE = 3
//	                      (mean 3.5 × 320 µs = 1120 µs), then CCA 128 µs, then RX→TX turnaround 192 µs
//	the frame             (51 + payload) × 32 µs (6 + 11 + 8 + 18 + 8 = 51 B of overhead)
//	TX→RX turnaround      192 µs, then the MAC ack: 11 B incl. PHY header = 352 µs
//
// so the expected hop time of an unfragmented frame is 1984 µs + (51 + payload) × 32 µs. A failed attempt
// costs the backoff, CCA, turnaround, the frame and macAckWaitDuration (864 µs) instead of the turnaround and
// ack; the MAC retries up to MACRetries times (default 3, macMaxFrameRetries) per hop, then the frame is lost
// on that hop. Broadcasts have no MAC ack (and so no turnaround or ack time); relays re-broadcast them, which
// the model counts as one more transmission per hop level.
//
// The channel is one shared resource: a hop's transmission occupies it from the start of its backoff to the
// end of its ack, and a frame that finds it busy waits until it is free (frames of all devices serialise;
// counting the backoff as occupied time is the conservative simplification of this model). A frame over h
// hops takes h such transmissions.
//
// APS acks (when asked for, and after every fragmented message) go back end to end: a frame with the APS
// header (8 B, or 11 B with the fragmentation extended header) and no payload, over the same hops. A sender
// that gets no APS ack within apsAckWaitDuration (1.5 s, apscAckWaitDuration = 0.05 s × 2 × 15; plus the
// destination's current poll interval for a sleepy device) resends, up to 3 times (apscMaxFrameRetries).
//
// Sleepy end devices: frames for them wait at their parent (the coordinator for a one-hop device, else the
// last router) until the device polls with a MAC data request (12 B MAC + 6 B PHY, acked); the parent then
// sends the held frames one by one.
//
// In fast mode every time above is zero (losses and duplicates still apply).
const (
	ByteTime               = 32 * time.Microsecond
	PHYHeaderBytes         = 6
	MACOverheadBytes       = 11
	NWKHeaderBytes         = 8
	NWKSecurityBytes       = 18
	APSHeaderBytes         = 8
	MaxPSDUBytes           = 127
	FrameOverheadBytes     = PHYHeaderBytes + MACOverheadBytes + NWKHeaderBytes + NWKSecurityBytes + APSHeaderBytes // 51
	MaxAPSPayload          = MaxPSDUBytes - MACOverheadBytes - NWKHeaderBytes - NWKSecurityBytes - APSHeaderBytes   // 82
	APSFragmentHeaderBytes = 2
	MaxFragmentPayload     = MaxAPSPayload - APSFragmentHeaderBytes // 80
	APSFragmentAckExtra    = 3                                      // extended header of an APS ack of fragments
	MACAckBytes            = 11                                     // PHY 6 + MAC 5, incl. PHY header
	DataRequestBytes       = PHYHeaderBytes + 12                    // MAC data request command
	UnitBackoffPeriod      = 320 * time.Microsecond
	MacMinBE               = 3
	CCATime                = 128 * time.Microsecond
	TurnaroundTime         = 192 * time.Microsecond
	MACAckWaitDuration     = 864 * time.Microsecond
	APSAckWaitDuration     = 1500 * time.Millisecond
	APSMaxFrameRetries     = 3
	// MeanBackoff is the expected CSMA-CA backoff: (2^macMinBE − 1) / 2 unit periods = 1120 µs.
	MeanBackoff = (1<<MacMinBE - 1) * UnitBackoffPeriod / 2
)

// ZCL sizes of the OTA block exchange.
const (
	ZCLHeaderBytes         = 3
	BlockRequestPayload    = ZCLHeaderBytes + 14 // Image Block Request without optional fields
	BlockResponseOverhead  = ZCLHeaderBytes + 14 // + data
	maxBackoffPeriodsDrawn = 1 << MacMinBE
)

// LinkModel computes the air times of the link model; see the package's link documentation above. The zero
// value is the realistic model; Fast makes every time zero.
type LinkModel struct {
	Fast bool
	// FragmentWindow is the number of fragments per APS ack (0: one window for the whole message);
	// FragmentInterval the gap between two fragments of a window.
	FragmentWindow   int
	FragmentInterval time.Duration
}

// windows returns the number of APS windows (acks) of a fragmented message of frags fragments.
func (l LinkModel) windows(frags int) int {
	if l.FragmentWindow <= 0 || frags <= l.FragmentWindow {
		return 1
	}
	return (frags + l.FragmentWindow - 1) / l.FragmentWindow
}

// fragmentSize is the APS bytes after the basic header of fragment i of an apsPayload-byte message.
func fragmentSize(apsPayload, i int) int {
	return APSFragmentHeaderBytes + min(apsPayload-i*MaxFragmentPayload, MaxFragmentPayload)
}

// Fragments returns how many frames an APS payload of n bytes takes (1 when it fits unfragmented).
func Fragments(apsPayload int) int {
	if apsPayload <= MaxAPSPayload {
		return 1
	}
	return (apsPayload + MaxFragmentPayload - 1) / MaxFragmentPayload
}

// fragmentPayloads calls f with the APS bytes after the basic APS header of each frame of a payload:
// the payload itself, or 2 + the fragment's share.
func fragmentBytes(apsPayload int, f func(extraAndData int)) {
	if apsPayload <= MaxAPSPayload {
		f(apsPayload)
		return
	}
	for left := apsPayload; left > 0; left -= MaxFragmentPayload {
		f(APSFragmentHeaderBytes + min(left, MaxFragmentPayload))
	}
}

// bytesTime is the air time of n bytes.
func (l LinkModel) bytesTime(n int) time.Duration {
	if l.Fast {
		return 0
	}
	return time.Duration(n) * ByteTime
}

// FrameAirTime is the air time of the frame(s) that carry an APS payload of apsPayload bytes, PHY header
// included: (51 + payload) × 32 µs for one frame; for a fragmented payload the sum over its fragments, each
// with the 2-byte extended APS header. No CSMA, turnaround or acks.
func (l LinkModel) FrameAirTime(apsPayload int) time.Duration {
	var t time.Duration
	fragmentBytes(apsPayload, func(n int) { t += l.bytesTime(FrameOverheadBytes + n) })
	return t
}

// MACAckAirTime is the air time of a MAC ack: 11 B = 352 µs.
func (l LinkModel) MACAckAirTime() time.Duration { return l.bytesTime(MACAckBytes) }

// APSAckAirTime is the air time of an APS ack frame: an APS header and no payload, 51 B = 1632 µs (54 B with
// the extended header of a fragmented message's ack).
func (l LinkModel) APSAckAirTime(fragmented bool) time.Duration {
	if fragmented {
		return l.bytesTime(FrameOverheadBytes + APSFragmentAckExtra)
	}
	return l.bytesTime(FrameOverheadBytes)
}

// attemptOverhead is the expected time of one unicast attempt besides the frame itself: mean backoff, CCA,
// two turnarounds and the MAC ack = 1120 + 128 + 192 + 192 + 352 = 1984 µs.
func (l LinkModel) attemptOverhead() time.Duration {
	if l.Fast {
		return 0
	}
	return MeanBackoff + CCATime + 2*TurnaroundTime + l.MACAckAirTime()
}

// HopTime is the expected time to send an APS payload over one hop, unicast, without losses: for each frame
// (or fragment) the mean backoff, CCA, turnaround, the frame, turnaround and MAC ack; for a fragmented
// payload also the fragment interval between the fragments of a window.
func (l LinkModel) HopTime(apsPayload int) time.Duration {
	var t time.Duration
	fragmentBytes(apsPayload, func(n int) { t += l.attemptOverhead() + l.bytesTime(FrameOverheadBytes+n) })
	if frags := Fragments(apsPayload); frags > 1 && !l.Fast {
		t += time.Duration(frags-l.windows(frags)) * l.FragmentInterval
	}
	return t
}

// apsAckHopTime is the expected time of an APS ack over one hop.
func (l LinkModel) apsAckHopTime(fragmented bool) time.Duration {
	return l.attemptOverhead() + l.APSAckAirTime(fragmented)
}

// UnicastTime is the expected time from the first backoff until the sender knows the frame arrived: hops ×
// HopTime, plus, when an APS ack is asked for or the payload is fragmented, the APS ack's way back (hops ×
// its hop time; one ack per window of a fragmented payload). No losses.
func (l LinkModel) UnicastTime(apsPayload, hops int, apsAck bool) time.Duration {
	if hops < 1 {
		hops = 1
	}
	t := time.Duration(hops) * l.HopTime(apsPayload)
	frags := Fragments(apsPayload)
	frag := frags > 1
	if apsAck || frag {
		acks := 1
		if frag {
			acks = l.windows(frags)
		}
		t += time.Duration(hops*acks) * l.apsAckHopTime(frag)
	}
	return t
}

// BlockRoundTrip is the expected time of one Image Block Request (ZCL 3 + 14 B) and its Image Block Response
// (ZCL 3 + 14 + data), each sent with or without APS ack over hops hops, with no processing time and an
// idle channel.
func (l LinkModel) BlockRoundTrip(blockData int, apsAck bool, hops int) time.Duration {
	return l.UnicastTime(BlockRequestPayload, hops, apsAck) + l.UnicastTime(BlockResponseOverhead+blockData, hops, apsAck)
}

// BlockGoodput is the modelled single-device goodput in bytes per second of a request-response block
// transfer: blockData / BlockRoundTrip. It is +Inf in fast mode.
func (l LinkModel) BlockGoodput(blockData int, apsAck bool, hops int) float64 {
	rt := l.BlockRoundTrip(blockData, apsAck, hops)
	if rt <= 0 {
		return math.Inf(1)
	}
	return float64(blockData) / rt.Seconds()
}
