package fakestick

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	ezspfake "github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/zboss"
)

// host is a bare host side: a link on a pipe to the stick, and raw calls.
type host struct {
	link *zboss.Link
	tsn  uint8
}

func newHost(t testing.TB, s *Stick) *host {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.Serve(ctx, b) }()
	h := &host{link: zboss.NewLink(a, zboss.LinkConfig{Log: zerolog.Nop()})}
	t.Cleanup(func() {
		h.link.Close()
		cancel()
		wg.Wait()
	})
	return h
}

func (h *host) call(t testing.TB, c zboss.CallID, params []byte) zboss.Packet {
	t.Helper()
	h.tsn++
	require.NoError(t, h.link.Send(context.Background(), zboss.AppendPacket(nil, zboss.Packet{Type: zboss.Request, CallID: c, TSN: h.tsn, Params: params})))
	stop := make(chan struct{})
	timer := time.AfterFunc(5*time.Second, func() { close(stop) })
	defer timer.Stop()
	for {
		body, ok := h.link.Recv(stop)
		require.True(t, ok, "no response to %s", c)
		p, err := zboss.DecodePacket(body)
		require.NoError(t, err)
		if p.Type == zboss.Response && p.TSN == h.tsn {
			require.Equal(t, c, p.CallID)
			return p
		}
	}
}

func newMemStick(t testing.TB) (*Stick, *ezspfake.MemNetwork) {
	t.Helper()
	mem := ezspfake.NewMemNetwork(ncp.NetworkInfo{IEEE: 0x00124B00FA4E0001})
	s := New(mem, Config{EUI64: 0x00124B00FA4E0001})
	t.Cleanup(func() {
		s.Close()
		mem.Close()
	})
	return s, mem
}

// TestStickStatesAndNVRAM: what an NCP refuses before it has a network, formation, the NVRAM that outlives
// the host session, the factory reset that erases it, and unknown calls.
func TestStickStatesAndNVRAM(t *testing.T) {
	s, mem := newMemStick(t)
	h := newHost(t, s)
	mv, err := zboss.DecodeModuleVersion(h.call(t, zboss.CallGetModuleVersion, nil).Params)
	require.NoError(t, err)
	assert.Equal(t, DefaultStack, mv.Stack)
	assert.Equal(t, zboss.StatusNotImplemented, h.call(t, zboss.CallID(0x0999), nil).Status)
	assert.Equal(t, []byte{0}, h.call(t, zboss.CallGetJoined, nil).Params)
	assert.Equal(t, zboss.StatusInvalidState, h.call(t, zboss.CallNWKStartWithoutForm, nil).Status)
	data := zboss.DataRequest{DstAddr: 0x4242, ProfileID: 0x104, ClusterID: 6, DstEndpoint: 1, SrcEndpoint: 1, AddrMode: zboss.AddrModeShort, Payload: []byte{1}}
	assert.Equal(t, zboss.StatusInvalidState, h.call(t, zboss.CallAPSDEDataReq, data.Append(nil)).Status, "no network yet")
	form := zboss.Formation{ChannelMask: 1 << 15, ScanDuration: 5, ExtendedPANID: 0x00124B0000001A62}
	assert.Equal(t, zboss.StatusInvalidState, h.call(t, zboss.CallNWKFormation, form.Append(nil)).Status, "not a coordinator yet")

	require.True(t, h.call(t, zboss.CallSetZigbeeRole, []byte{zboss.RoleCoordinator}).Status.OK())
	require.True(t, h.call(t, zboss.CallSetPANID, zboss.AppendU16(nil, 0x1A62)).Status.OK())
	require.True(t, h.call(t, zboss.CallNWKFormation, form.Append(nil)).Status.OK())
	assert.Equal(t, []byte{0, 15}, h.call(t, zboss.CallGetChannel, nil).Params)
	assert.Equal(t, "00124b0000001a62", func() string {
		return zcl16(h.call(t, zboss.CallGetExtendedPANID, nil).Params)
	}())
	assert.Equal(t, 1, mem.Starts())

	mem.AddDevice(ezspfake.MemDevice{Short: 0x4242, IEEE: 0x00124B0099887766})
	assert.True(t, h.call(t, zboss.CallAPSDEDataReq, data.Append(nil)).Status.OK())
	require.Len(t, mem.Sent(), 1)
	assert.Equal(t, uint16(0x4242), mem.Sent()[0].DstShort)
	mem.FailNext(1)
	assert.Equal(t, zboss.StatusAPSNoAck, h.call(t, zboss.CallAPSDEDataReq, data.Append(nil)).Status)
	assert.True(t, h.call(t, zboss.CallNWKPermitJoining, []byte{60}).Status.OK())
	assert.Equal(t, uint8(60), mem.Permitted())

	// A new host session (the first one closed its port) sees the network in NVRAM; a factory reset erases it.
	h.link.Close()
	h2 := newHost(t, s)
	assert.Equal(t, []byte{1}, h2.call(t, zboss.CallGetJoined, nil).Params)
	joined, n := s.Joined()
	assert.True(t, joined)
	assert.Equal(t, uint16(0x1A62), n.PANID)
	assert.True(t, h2.call(t, zboss.CallNCPReset, []byte{zboss.ResetFactory}).Status.OK())
	assert.Equal(t, []byte{0}, h2.call(t, zboss.CallGetJoined, nil).Params)
}

func zcl16(b []byte) string {
	if len(b) < 8 {
		return ""
	}
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], binary.BigEndian.Uint64(b))
	const digits = "0123456789abcdef"
	s := make([]byte, 0, 16)
	for _, x := range out {
		s = append(s, digits[x>>4], digits[x&15])
	}
	return string(s)
}

// FuzzStickRequest: any request packet the host sends is answered or ignored, never a panic.
func FuzzStickRequest(f *testing.F) {
	f.Add(uint16(zboss.CallAPSDEDataReq), zboss.DataRequest{DstAddr: 0x4242, ProfileID: 0x104, ClusterID: 6, DstEndpoint: 1,
		AddrMode: zboss.AddrModeShort, Payload: []byte{1}}.Append(nil))
	f.Add(uint16(zboss.CallNWKFormation), zboss.Formation{ChannelMask: 1 << 15}.Append(nil))
	f.Add(uint16(zboss.CallAFSetSimpleDesc), zboss.SimpleDesc{Endpoint: 1, InClusters: []uint16{0, 0x19}}.Append(nil))
	f.Add(uint16(zboss.CallZDONodeDescReq), []byte{0x42, 0x42})
	f.Add(uint16(zboss.CallZDOPermitJoiningReq), []byte{0xFC, 0xFF, 60, 1})
	f.Add(uint16(zboss.CallSetNWKKey), make([]byte, 17))
	s, _ := newMemStick(f)
	h := newHost(f, s)
	f.Fuzz(func(t *testing.T, call uint16, params []byte) {
		if len(params) > zboss.MaxBody-8 {
			return // the host's link refuses such a packet before it reaches the stick
		}
		p := h.call(t, zboss.CallID(call), params)
		_ = p.Status.String()
	})
}
