package sim_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/sim/simtest"
	"github.com/otabridge/otabridge/zcl"
)

const (
	joiner   = zcl.IEEE(0x00124b00000000a1)
	router   = zcl.IEEE(0x00124b00000000b1)
	sleeper  = zcl.IEEE(0x00124b00000000c1)
	coordIEE = sim.DefaultCoordinatorIEEE
)

// joinNet is a realistic network: a router that starts joined (nwk 0x1111), a mains device that is not
// joined (nwk 0x2222, rejoin: true) and a sleepy device that is not joined and joins through the router
// (nwk 0x3333).
const joinNet = `
seed: 7
devices:
  - ieee: "0x00124b00000000b1"
    nwk: 0x1111
  - ieee: "0x00124b00000000a1"
    nwk: 0x2222
    joined: false
    rejoin: true
  - ieee: "0x00124b00000000c1"
    nwk: 0x3333
    power: battery
    hops: 2
    joined: false
    parent: "0x00124b00000000b1"
`

// eventsOf returns the join, announce and leave events of one device, in order.
func eventsOf(h *simtest.Harness, ieee zcl.IEEE) []ncp.Event {
	var out []ncp.Event
	for _, ev := range h.Events {
		if ev.IEEE == ieee {
			out = append(out, ev)
		}
	}
	return out
}

func permitJoin(t *testing.T, h *simtest.Harness, seconds uint8) {
	t.Helper()
	require.NoError(t, h.Net.PermitJoin(context.Background(), seconds))
}

func TestJoinOnlyWhilePermitJoinOpen(t *testing.T) {
	h := simtest.New(t, joinNet)
	h.Run(5 * time.Minute)
	assert.Empty(t, eventsOf(h, joiner), "joined while permit join was closed")
	assert.Empty(t, eventsOf(h, sleeper))
	assert.False(t, h.Device(joiner).Status().Joined)
	assert.True(t, h.Device(router).Status().Joined, "the pre-joined router is a member")

	// A unicast to a device outside the network fails.
	var sendErr error
	h.Send(ncp.Frame{DstShort: 0x2222, DstEndpoint: 1, SrcEndpoint: 1, ProfileID: zcl.ProfileHomeAutomation,
		ClusterID: zcl.ClusterBasic, Payload: simtest.ReadAttributesFrame(1, zcl.AttrBasicModelIdentifier)},
		func(err error) { sendErr = err })
	require.True(t, h.RunUntil(func() bool { return sendErr != nil }, time.Minute))
	var se *ncp.SendError
	require.ErrorAs(t, sendErr, &se)
	assert.Equal(t, uint16(0x2222), se.DstShort)

	permitJoin(t, h, 60)
	require.True(t, h.RunUntil(func() bool { return len(eventsOf(h, joiner)) >= 2 && len(eventsOf(h, sleeper)) >= 2 }, 30*time.Second))
	evs := eventsOf(h, joiner)
	require.Len(t, evs, 2)
	assert.Equal(t, ncp.Event{Kind: ncp.EventJoined, Short: 0x2222, IEEE: joiner, Parent: 0x0000,
		Capabilities: sim.CapabilityAllocateAddr | sim.CapabilityFFD | sim.CapabilityMainsPowered | sim.CapabilityRxOnWhenIdle}, evs[0])
	assert.Equal(t, ncp.Event{Kind: ncp.EventAnnounced, Short: 0x2222, IEEE: joiner, Capabilities: evs[0].Capabilities}, evs[1])

	// the sleepy device joined through the router
	evs = eventsOf(h, sleeper)
	require.Len(t, evs, 2)
	assert.Equal(t, ncp.Event{Kind: ncp.EventJoined, Short: 0x3333, IEEE: sleeper, Parent: 0x1111,
		Capabilities: sim.CapabilityAllocateAddr}, evs[0])
	assert.Equal(t, ncp.EventAnnounced, evs[1].Kind)
	assert.Equal(t, uint16(0x1111), h.Device(sleeper).Status().Parent)

	// the air carried the join exchanges
	kinds := h.Net.Stats().PerKind
	for _, k := range []string{"mac.beacon_request", "mac.beacon", "mac.association_request", "mac.association_response",
		"aps.update_device", "aps.transport_key", "zdo.mgmt_permit_joining_req"} {
		assert.NotZero(t, kinds[k].Frames, k)
	}

	// both now live in the network: they answer reads
	assert.Equal(t, uint64(0), h.ReadUint(joiner, zcl.ClusterOTA, zcl.AttrOTACurrentFileVersion))
	recs, err := h.ReadAttributes(sleeper, zcl.ClusterBasic, zcl.AttrBasicModelIdentifier)
	require.NoError(t, err)
	assert.Equal(t, sim.DefaultModel, recs[0].Value.String)
}

func TestJoinStopsWhenWindowClosesOrExpires(t *testing.T) {
	// One second is shorter than the active scan over 16 channels (2.2 s): the association is refused.
	h := simtest.New(t, joinNet)
	permitJoin(t, h, 1)
	h.Run(5 * time.Minute)
	assert.Empty(t, eventsOf(h, joiner), "joined after the window expired")
	assert.Empty(t, eventsOf(h, sleeper))

	// Opened until closed, then closed before any device could associate.
	permitJoin(t, h, 255)
	h.Run(10 * time.Millisecond)
	permitJoin(t, h, 0)
	h.Run(5 * time.Minute)
	assert.Empty(t, eventsOf(h, joiner), "joined after the window was closed")

	// Opened until closed: they join.
	permitJoin(t, h, 255)
	require.True(t, h.RunUntil(func() bool { return h.Device(joiner).Status().Joined && h.Device(sleeper).Status().Joined }, time.Minute))
}

func TestFormOtherNetworkCutsOffMembers(t *testing.T) {
	h := simtest.New(t, joinNet)
	cfg := h.Net.Params()
	assert.Equal(t, sim.NetworkParams{Channel: 15, PANID: 0x1A62, ExtendedPANID: 0xDDDDDDDDDDDDDDDD,
		NetworkKey: sim.DefaultNetworkKey}, cfg)
	require.Error(t, h.Net.Form(sim.NetworkParams{Channel: 27}))

	other := sim.NetworkParams{Channel: 20, PANID: 0x4242, ExtendedPANID: 0x0102030405060708, NetworkKey: [16]byte{9}}
	require.NoError(t, h.Net.Form(other))
	assert.Equal(t, other, h.Net.Params())
	var sendErr error
	done := false
	h.Send(ncp.Frame{DstShort: 0x1111, DstEndpoint: 1, SrcEndpoint: 1, ProfileID: zcl.ProfileHomeAutomation,
		ClusterID: zcl.ClusterBasic, APSAck: true, Payload: simtest.ReadAttributesFrame(9, zcl.AttrBasicModelIdentifier)},
		func(err error) { sendErr, done = err, true })
	require.True(t, h.RunUntil(func() bool { return done }, time.Minute))
	var se *ncp.SendError
	require.ErrorAs(t, sendErr, &se, "unicast to a member of another network")

	// its own frames never arrive
	frames := len(h.Frames)
	h.Device(router).QueryNow()
	h.Run(time.Minute)
	assert.Equal(t, frames, len(h.Frames), "a frame from another network arrived")
	assert.False(t, h.Device(router).Status().Joined)

	// an unjoined device joins the formed network, on its channel
	permitJoin(t, h, 60)
	require.True(t, h.RunUntil(func() bool { return h.Device(joiner).Status().Joined }, time.Minute))
	// the sleepy device's parent router is not in this network: it joins through the coordinator
	require.True(t, h.RunUntil(func() bool { return h.Device(sleeper).Status().Joined }, time.Minute))
	assert.Equal(t, uint16(0x0000), eventsOf(h, sleeper)[0].Parent)

	// resuming the configured network brings the router back
	require.NoError(t, h.Net.Form(cfg))
	assert.Equal(t, uint64(0), h.ReadUint(router, zcl.ClusterOTA, zcl.AttrOTACurrentFileVersion))
	assert.False(t, h.Device(joiner).Status().Joined, "the joiner is a member of the other network")
}

func TestMgmtLeaveAndRejoin(t *testing.T) {
	h := simtest.New(t, joinNet+`
  - ieee: "0x00124b00000000d1"
    nwk: 0x4444
`)
	stay := zcl.IEEE(0x00124b00000000d1)
	permitJoin(t, h, 60)
	require.True(t, h.RunUntil(func() bool { return h.Device(joiner).Status().Joined }, time.Minute))
	permitJoin(t, h, 0)

	leaveReq := func(seq uint8, ieee zcl.IEEE, flags uint8) []byte {
		return append(binary.LittleEndian.AppendUint64([]byte{seq}, uint64(ieee)), flags)
	}
	rspOf := func(src uint16, seq uint8) []byte {
		for _, f := range h.Frames {
			if f.In.SrcShort == src && f.In.ClusterID == 0x8034 && len(f.In.Payload) > 0 && f.In.Payload[0] == seq {
				return f.In.Payload
			}
		}
		return nil
	}
	left := func(ieee zcl.IEEE) bool {
		for _, ev := range eventsOf(h, ieee) {
			if ev.Kind == ncp.EventLeft {
				return true
			}
		}
		return false
	}
	// a request for another device is refused
	h.Send(ncp.Frame{DstShort: 0x2222, ClusterID: 0x0034, Payload: leaveReq(0x40, stay, 0)}, nil)
	require.True(t, h.RunUntil(func() bool { return rspOf(0x2222, 0x40) != nil }, 10*time.Second))
	assert.Equal(t, []byte{0x40, 0xC8}, rspOf(0x2222, 0x40))
	assert.False(t, left(joiner))

	for _, ieee := range []zcl.IEEE{joiner, stay} {
		short := h.Device(ieee).NWK()
		h.Send(ncp.Frame{DstShort: short, ClusterID: 0x0034, Payload: leaveReq(0x41, ieee, 0)}, nil)
		require.True(t, h.RunUntil(func() bool { return left(ieee) }, 10*time.Second))
		assert.Equal(t, []byte{0x41, 0x00}, rspOf(short, 0x41), "Mgmt_Leave_rsp SUCCESS before leaving")
		evs := eventsOf(h, ieee)
		assert.Equal(t, ncp.Event{Kind: ncp.EventLeft, Short: short, IEEE: ieee}, evs[len(evs)-1])
		assert.False(t, h.Device(ieee).Status().Joined)
	}
	h.Run(2 * time.Minute)
	before := len(h.Events)
	h.Run(5 * time.Minute)
	assert.Len(t, h.Events, before, "a device came back while permit join was closed")

	// permit join reopens: the rejoin: true device comes back as a rejoin with its address, the other stays out
	permitJoin(t, h, 60)
	require.True(t, h.RunUntil(func() bool { return h.Device(joiner).Status().Joined }, time.Minute))
	h.Run(time.Minute)
	var rejoined []ncp.Event
	for _, ev := range h.Events[before:] {
		if ev.IEEE == joiner {
			rejoined = append(rejoined, ev)
		}
	}
	require.Len(t, rejoined, 2, "%+v", rejoined)
	assert.Equal(t, ncp.Event{Kind: ncp.EventJoined, Short: 0x2222, IEEE: joiner, Capabilities: rejoined[0].Capabilities, Rejoin: true}, rejoined[0])
	assert.Equal(t, ncp.EventAnnounced, rejoined[1].Kind)
	assert.False(t, h.Device(stay).Status().Joined, "rejoin: false device came back")
}

func TestMgmtLeaveWithRejoinFlagAndRemoveDevice(t *testing.T) {
	h := simtest.New(t, joinNet)
	before := len(h.Events)
	// rejoin flag: the device leaves and comes back at once by a secured rejoin (no permit join needed)
	h.Send(ncp.Frame{DstShort: 0x1111, ClusterID: 0x0034,
		Payload: append(binary.LittleEndian.AppendUint64([]byte{0x50}, uint64(router)), 0x80)}, nil)
	require.True(t, h.RunUntil(func() bool { return len(h.Events) >= before+3 }, time.Minute))
	evs := h.Events[before:]
	assert.Equal(t, ncp.Event{Kind: ncp.EventLeft, Short: 0x1111, IEEE: router}, evs[0])
	assert.Equal(t, ncp.Event{Kind: ncp.EventJoined, Short: 0x1111, IEEE: router, Capabilities: evs[1].Capabilities, Rejoin: true}, evs[1])
	assert.Equal(t, ncp.EventAnnounced, evs[2].Kind)

	require.Error(t, h.Net.RemoveDevice(0x1234))
	require.NoError(t, h.Net.RemoveDevice(router))
	h.Run(time.Second)
	last := h.Events[len(h.Events)-1]
	assert.Equal(t, ncp.Event{Kind: ncp.EventLeft, Short: 0x1111, IEEE: router}, last)
	assert.False(t, h.Device(router).Status().Joined)
}

// TestJoinDeterministic: the same seed replays the same joins at the same virtual times.
func TestJoinDeterministic(t *testing.T) {
	run := func() []time.Duration {
		h := simtest.New(t, joinNet)
		permitJoin(t, h, 60)
		var at []time.Duration
		h.OnEvent(func(ev ncp.Event) { at = append(at, h.Now()) })
		h.Run(time.Minute)
		return at
	}
	a, b := run(), run()
	require.Len(t, a, 4)
	assert.Equal(t, a, b)
}
