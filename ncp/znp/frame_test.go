package znp

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/zcl"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// TestFrameVectors: frames from the reference (herdsman's unpi tests, zigpy-znp's command tests) encode and
// decode byte for byte.
func TestFrameVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Frame
		wire string
	}{
		{"SYS_PING request", SysPing.Request(nil), "FE 00 21 01 20"},
		{"SYS_VERSION request", SysVersion.Request(nil), "FE 00 21 02 23"},
		{"SYS_RESET_REQ soft", SysResetReq.Callback([]byte{1}), "FE 01 41 00 01 41"},
		{"BDB start formation", AppCnfBDBStartComm.Request([]byte{4}), "FE 01 2F 05 04 2F"},
		{"SYS_OSAL_NV_READ response", SysNVRead.Response([]byte{0x00, 0x01, 0x55}), "FE 03 61 08 00 01 55 3E"},
		{"SYS_VERSION response (CC2531 Z-Stack 1.2)", SysVersion.Response(unhex(t, "02 00 02 06 03 D9 14 34 01 02 00 00 00 00")),
			"FE 0E 61 02 02 00 02 06 03 D9 14 34 01 02 00 00 00 00 92"},
		{"RPC error", RPCError.Response([]byte{0x01, 0xCD, 0xAB}), "FE 03 60 00 01 CD AB 04"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wire := unhex(t, tc.wire)
			assert.Equal(t, wire, tc.f.Append(nil))
			got, err := ParseFrame(wire)
			require.NoError(t, err)
			assert.Equal(t, tc.f.Type, got.Type)
			assert.Equal(t, tc.f.Command(), got.Command())
			assert.Equal(t, len(tc.f.Data), len(got.Data))
		})
	}
	v, err := DecodeVersion(unhex(t, "02 00 02 06 03 D9 14 34 01 02 00 00 00 00"))
	require.NoError(t, err)
	assert.Equal(t, Version{TransportRev: 2, Product: ProductZStack12, Major: 2, Minor: 6, Maint: 3, Revision: 20190425}, v)
	nv, err := DecodeNVValue(unhex(t, "00 01 55"))
	require.NoError(t, err)
	assert.Equal(t, NVValue{Status: 0, Value: []byte{0x55}}, nv)
	rpc, err := DecodeRPCError([]byte{0x01, 0xCD, 0xAB})
	require.NoError(t, err)
	assert.Equal(t, "unknown subsystem for SUB0D_AB", rpc.String())
}

// TestParseFrameRejects: a wrong FCS (the herdsman vector with 0x3F), a missing SOF, a length that does not
// match, and too few bytes are errors.
func TestParseFrameRejects(t *testing.T) {
	_, err := ParseFrame(unhex(t, "FE 03 61 08 00 01 55 3F"))
	assert.ErrorIs(t, err, ErrBadFCS)
	_, err = ParseFrame(unhex(t, "FF 00 21 01 20"))
	assert.ErrorIs(t, err, ErrNoSOF)
	_, err = ParseFrame(unhex(t, "FE 02 21 01 20"))
	assert.ErrorIs(t, err, ErrBadLength)
	_, err = ParseFrame(unhex(t, "FE 00 21"))
	assert.ErrorIs(t, err, ErrShortFrame)
}

// TestDecoderResyncs: noise, a frame with a bad FCS and a frame split across reads: the decoder drops what
// is not a frame and returns the good frames whole.
func TestDecoderResyncs(t *testing.T) {
	var d Decoder
	stream := unhex(t, "00 11 FE 03 61 08 00 01 55 3F FE 00 21 01 20 FE 03 61 08")
	frames := d.Feed(stream)
	require.Len(t, frames, 1)
	assert.Equal(t, SysPing, frames[0].Command())
	frames = d.Feed(unhex(t, "00 01 55 3E"))
	require.Len(t, frames, 1)
	assert.Equal(t, []byte{0x00, 0x01, 0x55}, frames[0].Data)
	assert.Equal(t, 10, d.Dropped(), "two noise bytes and the 8 bytes of the bad frame")
	assert.Empty(t, d.Feed([]byte{0xFE, 0xFF}), "a length above 250 is no frame")
}

// TestCommandVectors: each command the driver sends or decodes, against bytes laid out from TI's Monitor
// and Test API (little-endian fields; IEEE addresses LSB first).
func TestCommandVectors(t *testing.T) {
	const ieee = zcl.IEEE(0x00124B0001020304)
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"AF_REGISTER ep 1 HA, in 0x0000 0x0019", AFRegisterReq{Endpoint: 1, ProfileID: 0x0104, DeviceID: 0x0005, InClusters: []uint16{0, 0x19}}.Append(nil),
			"01 04 01 05 00 00 00 02 00 00 19 00 00"},
		{"AF_DATA_REQUEST APS ack", DataRequest{DstAddr: 0x1234, DstEP: 1, SrcEP: 1, ClusterID: 0x0019, TransID: 7, Options: TxOptionAPSAck, Radius: 30, Data: []byte{0xAA, 0xBB}}.Append(nil),
			"34 12 01 01 19 00 07 10 1E 02 AA BB"},
		{"AF_DATA_REQUEST_EXT broadcast", DataRequestExt{AddrMode: AddrModeBroadcast, DstAddr: 0xFFFD, DstEP: 0xFF, SrcEP: 1, ClusterID: 0x0019, TransID: 8, Radius: 30, Data: []byte{0xCC}}.Append(nil),
			"0F FD FF 00 00 00 00 00 00 FF 00 00 01 19 00 08 00 1E 01 00 CC"},
		{"AF_DATA_CONFIRM", DataConfirm{Status: StatusAPSNoAck, Endpoint: 1, TransID: 7}.Append(nil), "B7 01 07"},
		{"AF_INCOMING_MSG", IncomingMsg{ClusterID: 0x0019, SrcAddr: 0x1234, SrcEP: 1, DstEP: 1, LQI: 0xC8, Timestamp: 0x01020304, TransSeq: 5,
			Data: []byte{0x01, 0x02}, MacSrcAddr: 0x1234, Radius: 0x1D}.Append(nil),
			"00 00 19 00 34 12 01 01 00 C8 00 04 03 02 01 05 02 01 02 34 12 1D"},
		{"AF_INCOMING_MSG_EXT", IncomingMsg{ClusterID: 0x0019, SrcAddrMode: AddrModeShort, SrcAddr: 0x1234, SrcEP: 1, DstEP: 1, LQI: 0xC8, Data: []byte{0x09}}.AppendExt(nil),
			"00 00 19 00 02 34 12 00 00 00 00 00 00 01 00 00 01 00 C8 00 00 00 00 00 00 01 00 09"},
		{"ZDO_TC_DEV_IND", TCDevInd{NwkAddr: 0x1234, IEEE: ieee, ParentAddr: 0}.Append(nil), "34 12 04 03 02 01 00 4B 12 00 00 00"},
		{"ZDO_END_DEVICE_ANNCE_IND", EndDeviceAnnce{SrcAddr: 0x1234, NwkAddr: 0x1234, IEEE: ieee, Capabilities: 0x8E}.Append(nil),
			"34 12 34 12 04 03 02 01 00 4B 12 00 8E"},
		{"ZDO_LEAVE_IND", LeaveInd{NwkAddr: 0x1234, IEEE: ieee}.Append(nil), "34 12 04 03 02 01 00 4B 12 00 00 00 00"},
		{"ZDO_MGMT_PERMIT_JOIN_REQ all routers 254 s", PermitJoinReq{AddrMode: AddrModeBroadcast, DstAddr: 0xFFFC, Duration: 254, TCSignificance: 1}.Append(nil),
			"0F FC FF FE 01"},
		{"SYS_OSAL_NV_READ PANID", NVRead{ID: NVPANID}.Append(nil), "83 00 00"},
		{"SYS_OSAL_NV_WRITE has-configured", NVWrite{ID: NVHasConfigured, Value: []byte{0x55}}.Append(nil), "60 00 00 01 55"},
		{"SYS_OSAL_NV_ITEM_INIT", NVItemInit{ID: NVHasConfigured, Length: 1, Init: []byte{0x55}}.Append(nil), "60 00 01 00 01 55"},
		{"SYS_RESET_IND watchdog", ResetInd{Reason: 2, TransportRev: 2, Product: ProductZStack3x0, Major: 2, Minor: 7, Maint: 1}.Append(nil), "02 02 01 02 07 01"},
		{"SYS_VERSION Z-Stack 3.x.0 20240710", Version{TransportRev: 2, Product: ProductZStack3x0, Major: 2, Minor: 7, Maint: 1, Revision: 20240710}.Append(nil),
			"02 01 02 07 01 46 D9 34 01"},
		{"ZDO_EXT_NWK_INFO", ExtNwkInfo{ShortAddr: 0, DevState: StateCoordinator, PANID: 0x1A62, ParentAddr: 0xFFFE, ExtendedPANID: 0xDDDDDDDDDDDDDDDD, Channel: 15}.Append(nil),
			"00 00 09 62 1A FE FF DD DD DD DD DD DD DD DD 00 00 00 00 00 00 00 00 0F"},
		{"UTIL_GET_DEVICE_INFO", DeviceInfo{IEEE: ieee, DeviceType: 7, State: StateCoordinator, Assoc: []uint16{0x1234}}.Append(nil),
			"00 04 03 02 01 00 4B 12 00 00 00 07 09 01 34 12"},
	} {
		assert.Equal(t, unhex(t, tc.want), tc.got, tc.name)
	}
}

// TestDecodersRoundTrip: each decoder reads back what its encoder wrote.
func TestDecodersRoundTrip(t *testing.T) {
	const ieee = zcl.IEEE(0x00124B0001020304)
	reg := AFRegisterReq{Endpoint: 1, ProfileID: 0x0104, DeviceID: 5, InClusters: []uint16{0, 0x19}, OutClusters: []uint16{}}
	gotReg, err := DecodeAFRegister(reg.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, reg, gotReg)
	dr := DataRequest{DstAddr: 1, DstEP: 2, SrcEP: 3, ClusterID: 4, TransID: 5, Options: 6, Radius: 7, Data: []byte{8}}
	gotDR, err := DecodeDataRequest(dr.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, dr, gotDR)
	dx := DataRequestExt{AddrMode: 2, DstAddr: 0x1234, DstEP: 1, SrcEP: 1, ClusterID: 0x19, TransID: 9, Radius: 30, Data: []byte{1, 2}}
	gotDX, err := DecodeDataRequestExt(dx.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, dx, gotDX)
	in := IncomingMsg{ClusterID: 0x19, SrcAddrMode: AddrModeShort, SrcAddr: 0x1234, SrcEP: 1, DstEP: 1, LQI: 99, Data: []byte{7}, MacSrcAddr: 0x1234, Radius: 3}
	gotIn, err := DecodeIncomingMsg(in.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, in, gotIn)
	in.MacSrcAddr, in.Radius = 0, 0
	gotExt, err := DecodeIncomingMsgExt(in.AppendExt(nil))
	require.NoError(t, err)
	assert.Equal(t, in, gotExt)
	tc := TCDevInd{NwkAddr: 1, IEEE: ieee, ParentAddr: 2}
	gotTC, err := DecodeTCDevInd(tc.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, tc, gotTC)
	ann := EndDeviceAnnce{SrcAddr: 1, NwkAddr: 1, IEEE: ieee, Capabilities: 0x8E}
	gotAnn, err := DecodeEndDeviceAnnce(ann.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, ann, gotAnn)
	lv := LeaveInd{NwkAddr: 1, IEEE: ieee, Rejoin: 1}
	gotLv, err := DecodeLeaveInd(lv.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, lv, gotLv)
	di := DeviceInfo{IEEE: ieee, State: 9, Assoc: []uint16{}}
	gotDI, err := DecodeDeviceInfo(di.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, di, gotDI)
	_, err = DecodeIncomingMsgExt(unhex(t, "00 00 19 00 02 34 12 00 00 00 00 00 00 01 00 00 01 00 C8 00 00 00 00 00 00 01 F0 00"))
	assert.ErrorContains(t, err, "AF_DATA_STORE")
	_, err = DecodeTCDevInd([]byte{1, 2, 3})
	assert.ErrorContains(t, err, "ZDO_TC_DEV_IND: payload too short")
}

// TestZDOThroughMT: ZDO request frames become their ZDO_*_REQ commands and ZDO_*_RSP callbacks become
// response frames again.
func TestZDOThroughMT(t *testing.T) {
	cmd, data, err := ZDORequest(0x1234, 0x0005, []byte{0x11, 0x34, 0x12})
	require.NoError(t, err)
	assert.Equal(t, Command{SubZDO, 0x05}, cmd)
	assert.Equal(t, []byte{0x34, 0x12, 0x34, 0x12}, data, "Active_EP_req: destination, NWKAddrOfInterest")
	cmd, data, err = ZDORequest(0x1234, 0x0001, []byte{0x12, 0x34, 0x12, 0, 0})
	require.NoError(t, err)
	assert.Equal(t, Command{SubZDO, 0x01}, cmd)
	assert.Equal(t, []byte{0x34, 0x12, 0, 0}, data)
	_, data, err = ZDORequest(0xFFFC, 0x0036, []byte{0x13, 60, 1})
	require.NoError(t, err)
	assert.Equal(t, []byte{0x0F, 0xFC, 0xFF, 60, 1}, data)
	_, _, err = ZDORequest(0, 0x8005, []byte{1})
	require.Error(t, err)

	src, cluster, payload, err := ZDOResponse(Frame{Type: TypeAREQ, Subsystem: SubZDO, ID: 0x85, Data: []byte{0x34, 0x12, 0x00, 0x34, 0x12, 0x01, 0x0B}})
	require.NoError(t, err)
	assert.Equal(t, uint16(0x1234), src)
	assert.Equal(t, uint16(0x8005), cluster)
	assert.Equal(t, []byte{0x00, 0x34, 0x12, 0x01, 0x0B}, payload)
	src, cluster, _, err = ZDOResponse(Frame{Type: TypeAREQ, Subsystem: SubZDO, ID: 0x81, Data: unhex(t, "00 04 03 02 01 00 4B 12 00 34 12 00 00")})
	require.NoError(t, err)
	assert.Equal(t, uint16(0x1234), src)
	assert.Equal(t, uint16(0x8001), cluster)
}
