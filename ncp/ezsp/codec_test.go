package ezsp

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/zcl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// ashData decodes one recorded ASH DATA frame from the wire and returns its (de-randomised) EZSP frame.
func ashData(t *testing.T, wire string) []byte {
	t.Helper()
	var out []byte
	var d ash.Decoder
	d.Feed(unhex(t, wire), func(f ash.Frame, err error) {
		require.NoError(t, err)
		require.Equal(t, ash.FrameData, f.Type)
		out = f.Data
	})
	require.NotNil(t, out)
	return out
}

var v13, v14 = Version(13), Version(14)

// The recorded frames below come from zigbee-herdsman test/adapter/ember/consts.ts (captured from a
// SkyConnect / Sonoff Dongle-E running EmberZNet 8.x, so they use the v14+ layouts), as cited in
// reference/ezsp-znp.md §2.1 and §4. Re-typed by hand.

func TestRecordedSendUnicast(t *testing.T) {
	// herdsman SEND_UNICAST_ASH_RAW: "[FRAME: ID=52:"SEND_UNICAST" Seq=39 Len=25]", ZCL to 51678, cluster 6,
	// options 4416, tag 3 (from the reply's log line), ZCL frame 01 04 00 (cluster-specific, TSN 4, command 0).
	raw := ashData(t, "706521a9602a156c90904b23aa5493098d4e27abeece648af9c677b97e")
	f, err := ParseFrame(raw, false)
	require.NoError(t, err)
	assert.Equal(t, uint8(39), f.Seq)
	assert.Equal(t, uint8(0x00), f.Control)
	assert.Equal(t, IDSendUnicast, f.FrameID)
	c, err := DecodeSendUnicast(f.Params, v14)
	require.NoError(t, err)
	want := SendUnicast{Type: OutgoingDirect, Dest: 51678, Aps: ApsFrame{ProfileID: 0x0104, ClusterID: 6, SrcEndpoint: 1, DstEndpoint: 1, Options: 4416}, Tag: 3, Message: []byte{0x01, 0x04, 0x00}}
	assert.Equal(t, want, c)
	assert.Equal(t, raw, Frame{Seq: 39, FrameID: IDSendUnicast, Params: want.Append(nil, v14)}.Append(nil), "re-encoded byte for byte")

	// herdsman SEND_UNICAST_REPLY_FN0_EZSP: status OK (sl_Status, 4 bytes), APS sequence 154.
	reply := unhex(t, "2780013400000000009a")
	assert.Equal(t, reply, ashData(t, "0065a1a9602a15b25994d0954c7e"))
	f, err = ParseFrame(reply, false)
	require.NoError(t, err)
	assert.True(t, f.IsResponse())
	assert.False(t, f.IsCallback())
	r, err := DecodeSendResponse(f.Params, v14)
	require.NoError(t, err)
	assert.Equal(t, SendResponse{Status: Status{Value: 0, Wide: true}, Sequence: 154}, r)
	assert.True(t, r.Status.OK())
}

func TestRecordedMessageSentHandler(t *testing.T) {
	for _, tc := range []struct {
		wire, ezsp string
		seq        uint8
	}{
		{"1065b1a96b2a15b259944afb6351934f9c4f26ebfcce677d31fec66357897e", "2790013f000000000000dec9040106000101401100009a030000", 154},
		{"0065b1a96b2a15b259944afb6351934f9c4f26ebfcce6766fec66302907e", "2790013f000000000000dec904010600010140110000ed030000", 237},
	} {
		raw := ashData(t, tc.wire)
		assert.Equal(t, unhex(t, tc.ezsp), raw)
		f, err := ParseFrame(raw, false)
		require.NoError(t, err)
		assert.True(t, f.IsCallback(), "async callback bit 0x10")
		m, err := DecodeMessageSent(f.Params, v14)
		require.NoError(t, err)
		want := MessageSent{Status: Status{Wide: true}, Type: OutgoingDirect, Dest: 51678,
			Aps: ApsFrame{ProfileID: 0x0104, ClusterID: 6, SrcEndpoint: 1, DstEndpoint: 1, Options: 4416, Sequence: tc.seq}, Tag: 3, Message: []byte{}}
		assert.Equal(t, want, m)
		assert.Equal(t, f.Params, want.Append(nil, v14))
	}
}

func TestRecordedIncomingMessageHandler(t *testing.T) {
	// herdsman INCOMING_MESSAGE_HANDLER_FN2: a Default Response (18 04 0b 00 00) from 51678, LQI 3, timestamp 6,
	// with one trailing byte (02) after the message that the parser must tolerate.
	raw := ashData(t, "2065b1a97d312a15b658924a24ab5593499c3ef962edce678bfdc6638903813ca7edcdde6f8ae7c3d0d5d26b68937e")
	assert.Equal(t, unhex(t, "2790014500000401060001010001000070dec90000000000000000ffff0300060000000518040b000002"), raw)
	f, err := ParseFrame(raw, false)
	require.NoError(t, err)
	assert.Equal(t, IDIncomingMessageHandler, f.FrameID)
	m, err := DecodeIncomingMessage(f.Params, v14)
	require.NoError(t, err)
	want := IncomingMessage{Type: IncomingUnicast, Aps: ApsFrame{ProfileID: 0x0104, ClusterID: 6, SrcEndpoint: 1, DstEndpoint: 1, Options: 0x0100, Sequence: 0x70},
		Sender: 51678, BindingIndex: 0xFF, AddressIndex: 0xFF, LQI: 3, RSSI: 0, Timestamp: 6, Message: unhex(t, "18040b0000")}
	assert.Equal(t, want, m)
	assert.Equal(t, f.Params[:len(f.Params)-1], want.Append(nil, v14))
}

func TestRecordedSetPolicy(t *testing.T) {
	// herdsman SET_POLICY_ASH_RAW / SET_POLICY_REPLY_FN1: setPolicy(TRUST_CENTER_POLICY 0x00, 0x02) and its
	// sl_Status OK answer.
	raw := ashData(t, "700d21a9012a15b0f5667e")
	f, err := ParseFrame(raw, false)
	require.NoError(t, err)
	assert.Equal(t, IDSetPolicy, f.FrameID)
	p, err := DecodePolicy(f.Params)
	require.NoError(t, err)
	assert.Equal(t, Policy{ID: PolicyTrustCenter, Decision: 0x02}, p)
	assert.Equal(t, raw, Frame{Seq: 0x4f, FrameID: IDSetPolicy, Params: p.Append(nil)}.Append(nil))

	f, err = ParseFrame(ashData(t, "100da1a9012a15b259944fb87e"), false)
	require.NoError(t, err)
	s, err := DecodeStatus(f.Params, v14, "setPolicy")
	require.NoError(t, err)
	assert.True(t, s.OK())
	assert.Equal(t, "SL_STATUS_OK (0x0000)", s.String())
}

func TestVersionExchange(t *testing.T) {
	// UG101: version command 00 00 00 02 and its answer 00 80 00 02 02 11 30 (protocol 2, mesh stack 0x3011).
	f, err := ParseFrame(unhex(t, "00 00 00 02"), true)
	require.NoError(t, err)
	assert.True(t, IsLegacyVersionCommand(unhex(t, "00 00 00 02")))
	c, err := DecodeVersionCommand(f.Params)
	require.NoError(t, err)
	assert.Equal(t, uint8(2), c.Desired)
	f, err = ParseFrame(unhex(t, "00 80 00 02 02 11 30"), true)
	require.NoError(t, err)
	r, err := DecodeVersionResponse(f.Params)
	require.NoError(t, err)
	assert.Equal(t, VersionResponse{ProtocolVersion: 2, StackType: 2, StackVersion: 0x3011}, r)

	// herdsman SEND_DATA_VERSION / RCED_DATA_VERSION: version(13) → 13, mesh, 0x7410 (EmberZNet 7.4.1.0).
	req := ashData(t, "004221a8597c057e")
	assert.Equal(t, Frame{Legacy: true, Params: VersionCommand{Desired: 13}.Append(nil)}.Append(nil), req)
	f, err = ParseFrame(ashData(t, "0142a1a8592805c6a8777e"), true)
	require.NoError(t, err)
	assert.True(t, f.IsResponse())
	r, err = DecodeVersionResponse(f.Params)
	require.NoError(t, err)
	assert.Equal(t, VersionResponse{ProtocolVersion: 13, StackType: 2, StackVersion: 29712}, r)
	assert.Equal(t, "7.4.1.0", r.EmberZNet())

	// The extended header: seq, FC low, FC high 0x01, frame id LE.
	assert.Equal(t, unhex(t, "05 00 01 00 00 0d"), Frame{Seq: 5, Params: []byte{13}}.Append(nil))
	assert.False(t, IsLegacyVersionCommand(unhex(t, "05 00 01 00 00 0d")))
}

func TestParseFrameRejects(t *testing.T) {
	_, err := ParseFrame(unhex(t, "01 80 01 00"), false)
	assert.ErrorIs(t, err, ErrShortFrame)
	_, err = ParseFrame(unhex(t, "01 80 05 00 00"), false)
	assert.ErrorIs(t, err, ErrFrameFormat)
	_, err = ParseFrame(unhex(t, "01 80 00 00 00"), false)
	assert.ErrorIs(t, err, ErrFrameFormat)
	_, err = ParseFrame(unhex(t, "01 80 81 00 00"), false)
	assert.ErrorIs(t, err, ErrFrameSecurity)
	_, err = ParseFrame(unhex(t, "01 80"), true)
	assert.ErrorIs(t, err, ErrShortFrame)
}

// v13 layouts, written out by hand from UG100 / bellows ezsp/v4 commands.py (EmberStatus u8, tag u8, the old
// incomingMessageHandler order).
func TestV13Layouts(t *testing.T) {
	aps := ApsFrame{ProfileID: 0x0104, ClusterID: 0x0019, SrcEndpoint: 1, DstEndpoint: 1, Options: 0x1140, Sequence: 7}
	apsBytes := "04 01 19 00 01 01 40 11 00 00 07"

	su := SendUnicast{Dest: 0x1234, Aps: aps, Tag: 0x42, Message: []byte{0x19, 0x05, 0x05}}
	assert.Equal(t, unhex(t, "00 34 12"+apsBytes+"42 03 19 05 05"), su.Append(nil, v13))
	assert.Equal(t, unhex(t, "00 34 12"+apsBytes+"42 00 03 19 05 05"), su.Append(nil, v14))

	sb := SendBroadcast{Alias: 0xFFFF, Dest: 0xFFFC, Aps: aps, Radius: 0, Tag: 9, Message: []byte{0xAA}}
	assert.Equal(t, unhex(t, "FC FF"+apsBytes+"00 09 01 AA"), sb.Append(nil, v13))
	assert.Equal(t, unhex(t, "FF FF FC FF 00"+apsBytes+"00 09 00 01 AA"), sb.Append(nil, v14))
	got, err := DecodeSendBroadcast(sb.Append(nil, v14), v14)
	require.NoError(t, err)
	assert.Equal(t, sb, got)

	ms := unhex(t, "00 34 12"+apsBytes+"42 66 00")
	m, err := DecodeMessageSent(ms, v13)
	require.NoError(t, err)
	assert.Equal(t, MessageSent{Type: 0, Dest: 0x1234, Aps: aps, Tag: 0x42, Status: Status{Value: 0x66}, Message: []byte{}}, m)
	assert.True(t, m.Status.Is(StatusDeliveryFailed))
	assert.Equal(t, "EMBER_DELIVERY_FAILED (0x66)", m.Status.String())
	assert.Equal(t, ms, m.Append(nil, v13))

	im := unhex(t, "00"+apsBytes+"C8 D6 34 12 FF FF 03 01 02 03")
	in, err := DecodeIncomingMessage(im, v13)
	require.NoError(t, err)
	assert.Equal(t, IncomingMessage{Type: 0, Aps: aps, LQI: 200, RSSI: -42, Sender: 0x1234, BindingIndex: 0xFF, AddressIndex: 0xFF, Message: []byte{1, 2, 3}}, in)
	assert.Equal(t, im, in.Append(nil, v13))

	st, err := DecodeStatus(unhex(t, "90"), v13, "stackStatusHandler")
	require.NoError(t, err)
	assert.True(t, st.Is(StatusNetworkUp))
	st, err = DecodeStatus(unhex(t, "15 00 00 00"), v14, "stackStatusHandler")
	require.NoError(t, err)
	assert.True(t, st.Is(StatusNetworkUp))
	assert.False(t, st.Is(StatusNetworkDown))
	assert.Equal(t, v14.StatusOf(StatusNotJoined), Status{Value: 0x17, Wide: true})
	assert.Equal(t, v13.StatusOf(StatusNotJoined), Status{Value: 0x93})
}

func TestStructs(t *testing.T) {
	np := NetworkParameters{ExtendedPANID: zcl.IEEE(0xDDDDDDDDDDDDDDDD), PANID: 0x1A62, RadioTxPower: 5, RadioChannel: 11, NwkManagerID: 0, Channels: 1 << 11}
	b := np.Append(nil)
	assert.Equal(t, unhex(t, "DD DD DD DD DD DD DD DD 62 1A 05 0B 00 00 00 00 00 08 00 00"), b)
	got, err := DecodeNetworkParameters(b)
	require.NoError(t, err)
	assert.Equal(t, np, got)

	gnp := GetNetworkParametersResponse{Status: v14.StatusOf(StatusOK), NodeType: 1, Parameters: np}
	g, err := DecodeGetNetworkParametersResponse(gnp.Append(nil, v14), v14)
	require.NoError(t, err)
	assert.Equal(t, gnp, g)

	iss := InitialSecurityState{Bitmask: 0x0B04, PreconfiguredKey: WellKnownLinkKey, NetworkKey: [16]byte{1, 2, 3}, PreconfiguredTCEUI64: 0}
	ib := iss.Append(nil)
	require.Len(t, ib, 43)
	assert.Equal(t, unhex(t, "04 0B 5A 69 67 42 65 65 41 6C 6C 69 61 6E 63 65 30 39"), ib[:18])
	gi, err := DecodeInitialSecurityState(ib)
	require.NoError(t, err)
	assert.Equal(t, iss, gi)

	ae := AddEndpoint{Endpoint: 1, ProfileID: 0x0104, DeviceID: 0x0005, InputClusters: []uint16{0x0000, 0x0019}, OutputClusters: []uint16{0x0019}}
	ab := ae.Append(nil)
	assert.Equal(t, unhex(t, "01 04 01 05 00 00 02 01 00 00 19 00 19 00"), ab)
	ga, err := DecodeAddEndpoint(ab)
	require.NoError(t, err)
	assert.Equal(t, ae, ga)

	tc := TrustCenterJoin{NodeID: 0x1234, EUI64: 0x00124B0001020304, Status: DeviceUnsecuredJoin, Decision: JoinUsePreconfiguredKey, ParentID: 0}
	tb := tc.Append(nil)
	assert.Equal(t, unhex(t, "34 12 04 03 02 01 00 4B 12 00 01 00 00 00"), tb)
	gt, err := DecodeTrustCenterJoin(tb)
	require.NoError(t, err)
	assert.Equal(t, tc, gt)
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	_, err := DecodeIncomingMessage(unhex(t, "00 04 01 19 00"), v14)
	var de *DecodeError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "apsFrame.sourceEndpoint", de.Field)
	assert.ErrorIs(t, err, ErrShort)
	_, err = DecodeMessageSent(unhex(t, "00 00 00 00 00 34 12"+"04 01 19 00 01 01 40 11 00 00 07"+"01 00 05 AA"), v14)
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "message", de.Field)
}

func BenchmarkDecodeIncomingMessage(b *testing.B) {
	m := IncomingMessage{Aps: ApsFrame{ProfileID: 0x0104, ClusterID: 0x0019}, Message: make([]byte, 64)}
	buf := m.Append(nil, v14)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeIncomingMessage(buf, v14); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEzspStatusCodes checks the EzspStatus enum against ezsp-enum.h (as herdsman 10.9.5 carries it).
func TestEzspStatusCodes(t *testing.T) {
	for code, name := range map[uint8]string{0x00: "EZSP_SUCCESS", 0x30: "EZSP_ERROR_VERSION_NOT_SET", 0x31: "EZSP_ERROR_INVALID_FRAME_ID",
		0x32: "EZSP_ERROR_WRONG_DIRECTION", 0x33: "EZSP_ERROR_TRUNCATED", 0x34: "EZSP_ERROR_OVERFLOW", 0x35: "EZSP_ERROR_OUT_OF_MEMORY",
		0x36: "EZSP_ERROR_INVALID_VALUE", 0x37: "EZSP_ERROR_INVALID_ID", 0x38: "EZSP_ERROR_INVALID_CALL", 0x39: "EZSP_ERROR_NO_RESPONSE",
		0x40: "EZSP_ERROR_COMMAND_TOO_LONG", 0x41: "EZSP_ERROR_QUEUE_FULL", 0x42: "EZSP_ERROR_COMMAND_FILTERED",
		0x49: "EZSP_ERROR_UNSUPPORTED_CONTROL", 0x4A: "EZSP_ERROR_UNSECURE_FRAME"} {
		assert.Equal(t, name, EzspStatusName(code), "0x%02x", code)
	}
	assert.Equal(t, uint8(0x36), EzspErrorInvalidValue)
	assert.Equal(t, uint8(0x37), EzspErrorInvalidID)
	// The status the configuration commands carry: the EzspStatus byte in v13, an sl_Status from v14.
	assert.Equal(t, Status{Value: 0x37, Ezsp: true}, v13.EzspStatusOf(EzspErrorInvalidID, StatusInvalidParameter))
	assert.Equal(t, "EZSP_ERROR_INVALID_ID (0x37)", v13.EzspStatusOf(EzspErrorInvalidID, StatusInvalidParameter).String())
	assert.Equal(t, "EZSP_ERROR_INVALID_CALL (0x38)", StatusOfFrame(IDSetConfigurationValue, Status{Value: 0x38}).String())
	assert.Equal(t, "EMBER_INVALID_CALL (0x70)", StatusOfFrame(IDFormNetwork, Status{Value: 0x70}).String())
	assert.Equal(t, Status{Value: 0x21, Wide: true}, v14.EzspStatusOf(EzspErrorInvalidID, StatusInvalidParameter))
	assert.Equal(t, Status{Wide: true}, v14.EzspStatusOf(EzspSuccess, StatusOK))
}

// TestImportTransientKeyLayout: eui64, key and a flags byte in v13; no flags byte from v14 (EmberZNet 8.x).
func TestImportTransientKeyLayout(t *testing.T) {
	c := ImportTransientKey{EUI64: 0x0102030405060708, Key: WellKnownLinkKey}
	want := append([]byte{8, 7, 6, 5, 4, 3, 2, 1}, WellKnownLinkKey[:]...)
	assert.Equal(t, append(append([]byte{}, want...), 0x00), c.Append(nil, v13))
	assert.Equal(t, want, c.Append(nil, v14))
	assert.Equal(t, want, c.Append(nil, 18))
	got, err := DecodeImportTransientKey(want, v14)
	require.NoError(t, err)
	assert.Equal(t, c, got)
	_, err = DecodeImportTransientKey(want, v13)
	assert.ErrorIs(t, err, ErrShort, "v13 needs the flags byte")
}

// TestSecurityManagerLayouts: exportKey's and exportLinkKeyByIndex's answers moved the status first in v14.
func TestSecurityManagerLayouts(t *testing.T) {
	ctx := SecManContext{CoreKeyType: SecManKeyNetwork, KeyIndex: 0, DerivedType: 0, EUI64: 0x1122334455667788, MultiNetworkIndex: 0, Flags: 0x02, PSAKeyAlgPermission: 0x01020304}
	assert.Equal(t, []byte{1, 0, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0, 2, 4, 3, 2, 1}, ctx.Append(nil))
	dec, err := DecodeSecManContextCommand(ctx.Append(nil), "exportKey")
	require.NoError(t, err)
	assert.Equal(t, ctx, dec.Context)
	key := [16]byte{0xAA, 15: 0xBB}
	r := ExportKeyResponse{Status: 0x2D, Key: key, Context: ctx}
	assert.Equal(t, append(key[:], 0x2D, 0, 0, 0), r.Append(nil, v13))
	assert.Equal(t, ctx.Append(append([]byte{0x2D, 0, 0, 0}, key[:]...)), r.Append(nil, v14))
	info := NetworkKeyInfo{KeySet: true, KeySequence: 3, KeyFrameCounter: 0x01020304}
	assert.Equal(t, []byte{1, 0, 3, 0, 4, 3, 2, 1}, info.Append(nil))
}
