package fakestick

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// host is a bare ASH host for talking to the stick frame by frame.
type host struct {
	t     *testing.T
	conn  *ash.Conn
	in    chan []byte
	seq   uint8
	stick *Stick
	down  chan error // the NCP reset on its own (OnLinkDown)

	detachOnce sync.Once
	detach     func()
}

func newHost(t *testing.T, cfg Config) (*host, *Stick, *MemNetwork) {
	memnet := NewMemNetwork(ncp.NetworkInfo{})
	st := New(memnet, cfg)
	t.Cleanup(func() { st.Close(); memnet.Close() })
	return attach(t, st), st, memnet
}

// attach starts a host session on the stick (a new port, as when the host software restarts); end it with
// detach.
func attach(t *testing.T, st *Stick) *host {
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = st.Serve(ctx, b) }()
	h := &host{t: t, in: make(chan []byte, 64), stick: st, down: make(chan error, 4)}
	h.conn = ash.NewConn(a, ash.Config{Role: ash.RoleHost, OnData: func(d []byte) { h.in <- d }, OnLinkDown: func(err error) { h.down <- err }})
	h.detach = func() { h.detachOnce.Do(func() { h.conn.Close(); cancel(); <-done }) }
	t.Cleanup(h.detach)
	_, err := h.conn.Reset(context.Background())
	require.NoError(t, err)
	return h
}

func (h *host) call(legacy bool, id uint16, params []byte) ezsp.Frame {
	h.t.Helper()
	h.seq++
	require.NoError(h.t, h.conn.Send(context.Background(), ezsp.Frame{Seq: h.seq, FrameID: id, Legacy: legacy, Params: params}.Append(nil)))
	for {
		select {
		case b := <-h.in:
			f, err := ezsp.ParseFrame(b, legacy)
			require.NoError(h.t, err)
			if f.IsCallback() {
				continue
			}
			assert.Equal(h.t, h.seq, f.Seq)
			return f
		case <-time.After(5 * time.Second):
			h.t.Fatalf("no answer to %s", ezsp.FrameName(id))
		}
	}
}

func TestVersionHandshakeAndUnknownFrame(t *testing.T) {
	h, st, _ := newHost(t, Config{ProtocolVersion: 14})

	// Before the version is set, commands are refused with EZSP_ERROR_VERSION_NOT_SET.
	f := h.call(false, ezsp.IDNetworkState, nil)
	assert.Equal(t, ezsp.IDInvalidCommand, f.FrameID)
	assert.Equal(t, []byte{ezsp.EzspErrorVersionNotSet}, f.Params)

	// Legacy version(4): the stick answers in the legacy format with its own version and does not switch.
	f = h.call(true, ezsp.IDVersion, []byte{4})
	assert.True(t, f.Legacy)
	vr, err := ezsp.DecodeVersionResponse(f.Params)
	require.NoError(t, err)
	assert.Equal(t, ezsp.VersionResponse{ProtocolVersion: 14, StackType: 2, StackVersion: 0x8000}, vr)
	f = h.call(false, ezsp.IDNetworkState, nil)
	assert.Equal(t, ezsp.IDInvalidCommand, f.FrameID)

	// version(14) in the extended header sets it.
	f = h.call(false, ezsp.IDVersion, []byte{14})
	assert.Equal(t, ezsp.IDVersion, f.FrameID)
	assert.Equal(t, byte(0x01), f.Append(nil)[2], "extended header")
	f = h.call(false, ezsp.IDNetworkState, nil)
	assert.Equal(t, []byte{ezsp.NetworkStateNoNetwork}, f.Params)

	// An unknown frame id gets invalidCommand(EZSP_ERROR_INVALID_FRAME_ID), not silence.
	f = h.call(false, 0x0123, []byte{1, 2, 3})
	assert.Equal(t, ezsp.IDInvalidCommand, f.FrameID)
	assert.Equal(t, []byte{ezsp.EzspErrorInvalidFrameID}, f.Params)
	// A known command cut short runs with its missing fields read as zeros, as an NCP reads past the frame
	// (herdsman's legacy adapter sends networkInit without its bitmask): setPolicy(1, 0) succeeds.
	f = h.call(false, ezsp.IDSetPolicy, []byte{1})
	assert.Equal(t, ezsp.IDSetPolicy, f.FrameID)
	assert.Equal(t, []byte{0, 0, 0, 0}, f.Params)

	// networkInit without a stored network: NOT_JOINED as a 32-bit sl_Status.
	f = h.call(false, ezsp.IDNetworkInit, []byte{0, 0})
	assert.Equal(t, []byte{0x17, 0, 0, 0}, f.Params)
	assert.Equal(t, 1, st.Commands()["unknown"], "unknown ids counted")
}

func TestResumeStoredNetworkV13(t *testing.T) {
	stored := &ezsp.NetworkParameters{ExtendedPANID: 0xDDDDDDDDDDDDDDDD, PANID: 0x1234, RadioChannel: 15, Channels: 1 << 15}
	h, _, memnet := newHost(t, Config{ProtocolVersion: 13, Stored: stored})
	h.call(false, ezsp.IDVersion, []byte{13})
	f := h.call(false, ezsp.IDNetworkInit, []byte{0, 0})
	assert.Equal(t, []byte{0x00}, f.Params, "EmberStatus SUCCESS, one byte")
	// NETWORK_UP (0x90) follows as a callback.
	select {
	case b := <-h.in:
		cb, err := ezsp.ParseFrame(b, false)
		require.NoError(t, err)
		assert.True(t, cb.IsCallback())
		assert.Equal(t, ezsp.IDStackStatusHandler, cb.FrameID)
		assert.Equal(t, []byte{0x90}, cb.Params)
	case <-time.After(5 * time.Second):
		t.Fatal("no stackStatusHandler")
	}
	assert.Equal(t, 1, memnet.Starts())
	f = h.call(false, ezsp.IDGetNetworkParameters, nil)
	np, err := ezsp.DecodeGetNetworkParametersResponse(f.Params, 13)
	require.NoError(t, err)
	assert.Equal(t, *stored, np.Parameters)
	// Configuration is refused once the network is up, with the EzspStatus EZSP_ERROR_INVALID_CALL (v13).
	f = h.call(false, ezsp.IDSetConfigurationValue, ezsp.ConfigurationValue{ID: ezsp.ConfigMaxHops, Value: 30}.Append(nil))
	assert.Equal(t, []byte{ezsp.EzspErrorInvalidCall}, f.Params)
}
