package sim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim/simtest"
)

// An existing network: nobody announces, frames arrive without the sender's IEEE address until the device
// answered an IEEE_addr_req, and routers answer Mgmt_Lqi_req with their neighbor table (parent, children).
func TestExistingNetworkSilentUntilResolved(t *testing.T) {
	h := simtest.New(t, `
existing: true
link: {mode: fast}
devices:
  - ieee: "0x00124b00000000b1"
    nwk: 0x1111
    profile: periodic
    query_interval: 1m
  - ieee: "0x00124b00000000c1"
    nwk: 0x3333
    power: battery
    hops: 2
    parent: "0x00124b00000000b1"
`)
	h.Run(3 * time.Minute)
	for _, ev := range h.Events {
		assert.NotEqual(t, ncp.EventAnnounced, ev.Kind, "a device of an existing network announced")
	}
	var fromRouter []ncp.Incoming
	for _, f := range h.Frames {
		if f.In.SrcShort == 0x1111 {
			fromRouter = append(fromRouter, f.In)
		}
	}
	require.NotEmpty(t, fromRouter, "the periodic client never sent")
	assert.Zero(t, fromRouter[0].SrcIEEE, "the coordinator knew the IEEE address of a device it never heard of")

	// Mgmt_Lqi_req to the router: its parent (the coordinator) and its sleepy child.
	n := len(h.Frames)
	h.Send(ncp.Frame{DstShort: 0x1111, ClusterID: 0x0031, Payload: []byte{0x41, 0x00}}, nil)
	h.Run(2 * time.Second)
	var rsp *ncp.Incoming
	for _, f := range h.Frames[n:] {
		if f.In.ClusterID == 0x8031 {
			rsp = &f.In
		}
	}
	require.NotNil(t, rsp, "no Mgmt_Lqi_rsp from the router")
	assert.Equal(t, []byte{0x41, 0x00, 0x02, 0x00, 0x02,
		0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xde, 0xc0, 0xde, 0xc0, 0x00, 0x4b, 0x12, 0x00, 0x00, 0x00, 0x04, 0x02, 0x00, 0xff,
		0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xc1, 0x00, 0x00, 0x00, 0x00, 0x4b, 0x12, 0x00, 0x33, 0x33, 0x12, 0x02, 0x02, 0xff,
	}, rsp.Payload)

	// IEEE_addr_req teaches the coordinator the router's address.
	n = len(h.Frames)
	h.Send(ncp.Frame{DstShort: 0x1111, ClusterID: 0x0001, Payload: []byte{0x42, 0x11, 0x11, 0x00, 0x00}}, nil)
	h.Run(2 * time.Minute)
	var learned bool
	for _, f := range h.Frames[n:] {
		if f.In.SrcShort == 0x1111 && f.In.ClusterID != 0x8001 {
			learned = f.In.SrcIEEE == 0x00124b00000000b1
		}
	}
	assert.True(t, learned, "frames after the IEEE_addr_rsp still come without the IEEE address")
}
