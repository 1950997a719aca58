package fakestick

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/zcl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callback waits for the next callback with the frame id (skipping others).
func (h *host) callback(id uint16) ezsp.Frame {
	h.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case b := <-h.in:
			f, err := ezsp.ParseFrame(b, false)
			require.NoError(h.t, err)
			if f.IsCallback() && f.FrameID == id {
				return f
			}
		case <-timeout:
			h.t.Fatalf("no %s callback", ezsp.FrameName(id))
		}
	}
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

var (
	testNetworkKey = [16]byte{0x01, 0x03, 0x05, 0x07, 0x09, 0x0B, 0x0D, 0x0F, 0x00, 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C, 0x0D}
	testTCLinkKey  = [16]byte{0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF}
	networkContext = ezsp.SecManContext{CoreKeyType: ezsp.SecManKeyNetwork}
)

// TestFormBackupResumeAcrossSessions: formNetwork needs the security state; the backup commands (network key
// info, exportKey, the link key table) answer in each version's layout; a second host session resumes the
// network from the stick's NVRAM.
func TestFormBackupResumeAcrossSessions(t *testing.T) {
	for _, v := range []ezsp.Version{13, 14} {
		t.Run(map[ezsp.Version]string{13: "v13", 14: "v14"}[v], func(t *testing.T) {
			h, st, _ := newHost(t, Config{ProtocolVersion: uint8(v)})
			h.call(false, ezsp.IDVersion, []byte{uint8(v)})
			np := ezsp.NetworkParameters{ExtendedPANID: 0x00124B0000004E21, PANID: 0x4E21, RadioTxPower: 5, RadioChannel: 20, Channels: 0x07FFF800}

			// No security state yet: EMBER_SECURITY_STATE_NOT_SET 0xA8 / SL_STATUS_ZIGBEE_SECURITY_STATE_NOT_SET 0x0C0B.
			f := h.call(false, ezsp.IDFormNetwork, np.Append(nil))
			assert.Equal(t, map[ezsp.Version][]byte{13: {0xA8}, 14: {0x0B, 0x0C, 0, 0}}[v], f.Params)

			sec := ezsp.InitialSecurityState{Bitmask: ezsp.SecurityHavePreconfiguredKey | ezsp.SecurityHaveNetworkKey,
				PreconfiguredKey: testTCLinkKey, NetworkKey: testNetworkKey, NetworkKeySequence: 0}
			h.call(false, ezsp.IDSetInitialSecurityState, sec.Append(nil))
			f = h.call(false, ezsp.IDFormNetwork, np.Append(nil))
			assert.Equal(t, ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusOK)), f.Params)
			h.callback(ezsp.IDStackStatusHandler)

			// getNetworkKeyInfo: sl_Status, then networkKeySet, alternateSet, sequence, alt sequence, frame counter.
			f = h.call(false, ezsp.IDGetNetworkKeyInfo, nil)
			assert.Equal(t, []byte{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, f.Params)

			// exportKey: v13 key then sl_Status; v14 sl_Status, key, context.
			f = h.call(false, ezsp.IDExportKey, networkContext.Append(nil))
			want := append(testNetworkKey[:], 0, 0, 0, 0)
			if v.Wide() {
				want = networkContext.Append(append([]byte{0, 0, 0, 0}, testNetworkKey[:]...))
			}
			assert.Equal(t, want, f.Params)
			f = h.call(false, ezsp.IDExportKey, ezsp.SecManContext{CoreKeyType: ezsp.SecManKeyTCLink}.Append(nil))
			assert.Contains(t, string(f.Params), string(testTCLinkKey[:]))

			// The link key table: import at 0, export 0 (v13: eui64, key, metadata, status) and 1 (empty).
			linkKey := [16]byte{0x5A, 0x69, 0x67, 0x42, 0x65, 0x65, 0x41, 0x6C, 0x6C, 0x69, 0x61, 0x6E, 0x63, 0x65, 0x30, 0x39}
			ieee := zcl.IEEE(0x00124B00000000C1)
			f = h.call(false, ezsp.IDImportLinkKey, append(binary.LittleEndian.AppendUint64([]byte{0}, uint64(ieee)), linkKey[:]...))
			assert.Equal(t, []byte{0, 0, 0, 0}, f.Params)
			f = h.call(false, ezsp.IDExportLinkKeyByIndex, []byte{0})
			if v.Wide() {
				ctx := ezsp.SecManContext{CoreKeyType: ezsp.SecManKeyAppLink, EUI64: ieee}
				assert.Equal(t, append(append(ctx.Append([]byte{0, 0, 0, 0}), linkKey[:]...), make([]byte, 12)...), f.Params)
			} else {
				want := append(binary.LittleEndian.AppendUint64(nil, uint64(ieee)), linkKey[:]...)
				assert.Equal(t, append(append(want, make([]byte, 12)...), 0, 0, 0, 0), f.Params)
			}
			f = h.call(false, ezsp.IDExportLinkKeyByIndex, []byte{1})
			status := f.Params[len(f.Params)-4:]
			if v.Wide() {
				status = f.Params[:4]
			}
			assert.Equal(t, u32(0x2D), status, "SL_STATUS_NOT_FOUND for an empty slot")

			// Configuration reads: a 7.4 NCP's default for what the host did not set; unknown ids refused
			// (EZSP_ERROR_INVALID_ID 0x37 up to v13).
			f = h.call(false, ezsp.IDGetConfigurationValue, []byte{ezsp.ConfigKeyTableSize})
			assert.Equal(t, map[ezsp.Version][]byte{13: {0, 12, 0}, 14: {0, 0, 0, 0, 12, 0}}[v], f.Params)
			f = h.call(false, ezsp.IDGetConfigurationValue, []byte{0xFE})
			assert.Equal(t, map[ezsp.Version][]byte{13: {0x37, 0, 0}, 14: {0x21, 0, 0, 0, 0, 0}}[v], f.Params)

			// The host goes away and comes back: the stick's NVRAM resumes the network.
			h.detach()
			h2 := attach(t, st)
			h2.call(false, ezsp.IDVersion, []byte{uint8(v)})
			f = h2.call(false, ezsp.IDNetworkInit, []byte{0, 0})
			assert.Equal(t, ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusOK)), f.Params)
			h2.callback(ezsp.IDStackStatusHandler)
			f = h2.call(false, ezsp.IDGetNetworkParameters, nil)
			got, err := ezsp.DecodeGetNetworkParametersResponse(f.Params, v)
			require.NoError(t, err)
			assert.Equal(t, np, got.Parameters)
			f = h2.call(false, ezsp.IDExportKey, networkContext.Append(nil))
			assert.Contains(t, string(f.Params), string(testNetworkKey[:]), "the network key survived the session")
		})
	}
}

// TestNCPAnswersToOddFrames: wrong direction, unsupported frame control, a parameterless networkInit, the
// answerless setManufacturerCode, endpoint flags, counters and the token count's width.
func TestNCPAnswersToOddFrames(t *testing.T) {
	h, _, _ := newHost(t, Config{ProtocolVersion: 13})
	h.call(false, ezsp.IDVersion, []byte{13})

	// A frame with the response bit set, sent by the host: EZSP_ERROR_WRONG_DIRECTION.
	h.seq++
	require.NoError(t, h.conn.Send(t.Context(), ezsp.Frame{Seq: h.seq, Control: ezsp.FCResponse, FrameID: ezsp.IDNop}.Append(nil)))
	f := h.nextAnswer()
	assert.Equal(t, ezsp.IDInvalidCommand, f.FrameID)
	assert.Equal(t, []byte{ezsp.EzspErrorWrongDirection}, f.Params)
	// Frame format version 2 in the high control byte: EZSP_ERROR_UNSUPPORTED_CONTROL.
	h.seq++
	require.NoError(t, h.conn.Send(t.Context(), []byte{h.seq, 0x00, 0x02, 0x05, 0x00}))
	f = h.nextAnswer()
	assert.Equal(t, ezsp.IDInvalidCommand, f.FrameID)
	assert.Equal(t, []byte{ezsp.EzspErrorUnsupportedControl}, f.Params)

	// herdsman's legacy adapter: networkInit with no parameters runs (no network yet: EMBER_NOT_JOINED).
	f = h.call(false, ezsp.IDNetworkInit, nil)
	assert.Equal(t, []byte{0x93}, f.Params)

	// setManufacturerCode has no answer parameters.
	f = h.call(false, ezsp.IDSetManufacturerCode, []byte{0x49, 0x10})
	assert.Equal(t, ezsp.IDSetManufacturerCode, f.FrameID)
	assert.Empty(t, f.Params)

	// getExtendedValue(ENDPOINT_FLAGS, 1): before addEndpoint an error with a two-byte zero value (herdsman
	// needs the two bytes), after it EZSP_ENDPOINT_ENABLED.
	q := []byte{ezsp.ExtValueEndpointFlags, 1, 0, 0, 0}
	f = h.call(false, ezsp.IDGetExtendedValue, q)
	assert.Equal(t, []byte{ezsp.EzspErrorInvalidValue, 2, 0, 0}, f.Params)
	h.call(false, ezsp.IDAddEndpoint, ezsp.AddEndpoint{Endpoint: 1, ProfileID: 0x0104, DeviceID: 0x0005, InputClusters: []uint16{0, 0x19}}.Append(nil))
	f = h.call(false, ezsp.IDGetExtendedValue, q)
	assert.Equal(t, []byte{0, 2, 1, 0}, f.Params)

	// readAndClearCounters: EMBER_COUNTER_TYPE_COUNT (42) 16-bit counters.
	f = h.call(false, ezsp.IDReadAndClearCounters, nil)
	assert.Len(t, f.Params, 84)
	// getTokenCount is one byte up to v17 (four from v18).
	f = h.call(false, ezsp.IDGetTokenCount, nil)
	assert.Equal(t, []byte{0}, f.Params)
	h18, _, _ := newHost(t, Config{ProtocolVersion: 18})
	h18.call(false, ezsp.IDVersion, []byte{18})
	f = h18.call(false, ezsp.IDGetTokenCount, nil)
	assert.Equal(t, []byte{0, 0, 0, 0}, f.Params)
}

func (h *host) nextAnswer() ezsp.Frame {
	h.t.Helper()
	for {
		select {
		case b := <-h.in:
			f, err := ezsp.ParseFrame(b, false)
			require.NoError(h.t, err)
			if !f.IsCallback() {
				return f
			}
		case <-time.After(5 * time.Second):
			h.t.Fatal("no answer")
		}
	}
}

// TestJoinCallbacks: a trust-center join becomes trustCenterJoinHandler (with the parent), and an end device
// that joined through the coordinator also childJoinHandler; a router only the former; a rejoin is a secured
// rejoin with no policy action.
func TestJoinCallbacks(t *testing.T) {
	h, memnet := formedHost(t, 14)

	ieee := zcl.IEEE(0x00124B00000000E1)
	le := binary.LittleEndian.AppendUint64(nil, uint64(ieee))
	// A sleepy end device (capabilities 0x80: allocate address, not FFD, rx off) through the coordinator.
	memnet.Emit(ncp.Event{Kind: ncp.EventJoined, Short: 0x1234, IEEE: ieee, Parent: 0x0000, Capabilities: 0x80})
	f := h.callback(ezsp.IDTrustCenterJoinHandler)
	assert.Equal(t, append(append([]byte{0x34, 0x12}, le...), ezsp.DeviceUnsecuredJoin, ezsp.JoinUsePreconfiguredKey, 0x00, 0x00), f.Params)
	f = h.callback(ezsp.IDChildJoinHandler)
	assert.Equal(t, append(append([]byte{0, 1, 0x34, 0x12}, le...), 4), f.Params, "child 0, joining, sleepy end device")

	// A router through router 0x5678: the trust-center join names the parent; no child join.
	router := zcl.IEEE(0x00124B00000000E2)
	memnet.Emit(ncp.Event{Kind: ncp.EventJoined, Short: 0x2345, IEEE: router, Parent: 0x5678, Capabilities: 0x8E})
	f = h.callback(ezsp.IDTrustCenterJoinHandler)
	assert.Equal(t, []byte{0x78, 0x56}, f.Params[len(f.Params)-2:])
	// A rejoin: secured rejoin (0), no action (3).
	memnet.Emit(ncp.Event{Kind: ncp.EventJoined, Short: 0x1234, IEEE: ieee, Capabilities: 0x80, Rejoin: true})
	f = h.callback(ezsp.IDTrustCenterJoinHandler)
	assert.Equal(t, []byte{ezsp.DeviceSecuredRejoin, ezsp.JoinNoAction}, f.Params[10:12])
}

// TestLeaveCallbacks: a child's leave is a trust-center DEVICE_LEFT and frees its child table slot.
func TestLeaveCallbacks(t *testing.T) {
	h, memnet := formedHost(t, 13)
	ieee := zcl.IEEE(0x00124B00000000E3)
	le := binary.LittleEndian.AppendUint64(nil, uint64(ieee))
	memnet.Emit(ncp.Event{Kind: ncp.EventJoined, Short: 0x4321, IEEE: ieee, Capabilities: 0x88})
	f := h.callback(ezsp.IDChildJoinHandler)
	assert.Equal(t, append(append([]byte{0, 1, 0x21, 0x43}, le...), 3), f.Params, "child 0, joining, end device with rx on")
	memnet.Emit(ncp.Event{Kind: ncp.EventLeft, Short: 0x4321, IEEE: ieee})
	f = h.callback(ezsp.IDTrustCenterJoinHandler)
	assert.Equal(t, append(append([]byte{0x21, 0x43}, le...), ezsp.DeviceLeft, ezsp.JoinNoAction, 0, 0), f.Params)
	f = h.callback(ezsp.IDChildJoinHandler)
	assert.Equal(t, append(append([]byte{0, 0, 0x21, 0x43}, le...), 0), f.Params, "child 0 left")
}

// formedHost is a host session of a stick of the version whose network is formed and up.
func formedHost(t *testing.T, version uint8) (*host, *MemNetwork) {
	h, _, memnet := newHost(t, Config{ProtocolVersion: version})
	h.call(false, ezsp.IDVersion, []byte{version})
	h.call(false, ezsp.IDSetInitialSecurityState, ezsp.InitialSecurityState{Bitmask: ezsp.SecurityHaveNetworkKey, NetworkKey: testNetworkKey}.Append(nil))
	h.call(false, ezsp.IDFormNetwork, ezsp.NetworkParameters{PANID: 0x1A62, RadioChannel: 15}.Append(nil))
	h.callback(ezsp.IDStackStatusHandler)
	return h, memnet
}

// TestChannelPowerAndReset: setLogicalAndRadioChannel and setRadioPower change the network in NVRAM;
// resetNode reboots the NCP (RSTACK, no answer) and keeps the network; tokenFactoryReset erases it.
func TestChannelPowerAndReset(t *testing.T) {
	h, _ := formedHost(t, 13)
	st := h.stick
	f := h.call(false, ezsp.IDSetLogicalAndRadioChannel, []byte{27})
	assert.Equal(t, []byte{0x02}, f.Params, "EMBER_BAD_ARGUMENT for channel 27")
	f = h.call(false, ezsp.IDSetLogicalAndRadioChannel, []byte{25})
	assert.Equal(t, []byte{0x00}, f.Params)
	f = h.call(false, ezsp.IDSetRadioPower, []byte{0xFD}) // -3 dBm
	assert.Equal(t, []byte{0x00}, f.Params)
	f = h.call(false, ezsp.IDGetNetworkParameters, nil)
	np, err := ezsp.DecodeGetNetworkParametersResponse(f.Params, 13)
	require.NoError(t, err)
	assert.Equal(t, uint8(25), np.Parameters.RadioChannel)
	assert.Equal(t, int8(-3), np.Parameters.RadioTxPower)

	// resetNode: the NCP reboots and says so with an unasked RSTACK (software reset); the host resets the
	// link and starts again, and the network is still there.
	h.sendUnanswered(ezsp.IDResetNode, nil)
	h.expectNCPReset()
	h.call(false, ezsp.IDVersion, []byte{13})
	f = h.call(false, ezsp.IDNetworkInit, []byte{0, 0})
	assert.Equal(t, []byte{0x00}, f.Params, "the network survived the reboot")
	h.callback(ezsp.IDStackStatusHandler)

	// tokenFactoryReset erases the stack tokens and reboots: nothing to resume.
	h.sendUnanswered(ezsp.IDTokenFactoryReset, []byte{0, 0})
	h.expectNCPReset()
	h.call(false, ezsp.IDVersion, []byte{13})
	f = h.call(false, ezsp.IDNetworkInit, []byte{0, 0})
	assert.Equal(t, []byte{0x93}, f.Params, "EMBER_NOT_JOINED after the factory reset")
	assert.Nil(t, st.Stored())
}

// sendUnanswered sends a command the NCP answers with a reboot instead of a response.
func (h *host) sendUnanswered(id uint16, params []byte) {
	h.t.Helper()
	h.seq++
	require.NoError(h.t, h.conn.Send(h.t.Context(), ezsp.Frame{Seq: h.seq, FrameID: id, Params: params}.Append(nil)))
}

// expectNCPReset waits for the NCP's unasked RSTACK (software reset) and resets the link from the host side.
func (h *host) expectNCPReset() {
	h.t.Helper()
	select {
	case err := <-h.down:
		var rerr *ash.ResetError
		require.ErrorAs(h.t, err, &rerr)
		assert.False(h.t, rerr.Failed)
		assert.Equal(h.t, uint8(ash.ResetSoftware), rerr.Code)
	case <-time.After(5 * time.Second):
		h.t.Fatal("no RSTACK from the NCP")
	}
	_, err := h.conn.Reset(h.t.Context())
	require.NoError(h.t, err)
}
