package zboss

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/zcl"
)

// The request vectors below were produced by zigbee-herdsman 10.9.5's zboss adapter (uart.makePack and
// frame.writeZBOSSFrame, run under node against test/herdsman/node_modules): what a real host sends. The
// response and indication vectors were checked by decoding them with herdsman's frame.readZBOSSFrame.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestCRCCheckValues(t *testing.T) {
	// The catalogue check values of CRC-8/KOOP and CRC-16/KERMIT over "123456789".
	assert.Equal(t, byte(0xD8), CRC8([]byte("123456789")))
	assert.Equal(t, uint16(0x2189), CRC16([]byte("123456789")))
}

func TestLowFrameVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    LowFrame
		want string
	}{
		{"ACK of packet 1", LowFrame{ACK: true, ACKSeq: 1}, "dead05000611c0"},
		{"ACK of packet 3", LowFrame{ACK: true, ACKSeq: 3}, "dead050006315e"},
		{"GET_JOINED, packet 1, tsn 1", LowFrame{Seq: 1, First: true, Last: true, Body: unhex(t, "0000140001")}, "dead0c0006c4847df70000140001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendLowFrame(nil, tc.f)
			assert.Equal(t, tc.want, hex.EncodeToString(got))
			back, n, err := DecodeLowFrame(got)
			require.NoError(t, err)
			assert.Equal(t, len(got), n)
			assert.Equal(t, tc.f.Flags(), back.Flags())
			assert.Equal(t, hex.EncodeToString(tc.f.Body), hex.EncodeToString(back.Body))
		})
	}
}

func TestLowFrameErrors(t *testing.T) {
	good := unhex(t, "dead0c0006c4847df70000140001")
	_, _, err := DecodeLowFrame(good[:10])
	assert.ErrorIs(t, err, ErrShortFrame)
	bad := append([]byte(nil), good...)
	bad[6] ^= 1
	_, _, err = DecodeLowFrame(bad)
	assert.ErrorIs(t, err, ErrHeaderCRC)
	bad = append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	_, _, err = DecodeLowFrame(bad)
	assert.ErrorIs(t, err, ErrBodyCRC)
	bad = append([]byte(nil), good...)
	bad[4] = 0x07
	bad[6] = CRC8(bad[2:6])
	_, _, err = DecodeLowFrame(bad)
	assert.ErrorIs(t, err, ErrBadType)
}

func TestFlags(t *testing.T) {
	f := parseFlags(0xC0 | 2<<2 | FlagRetransmit)
	assert.True(t, f.First && f.Last && f.Retransmit && !f.ACK)
	assert.Equal(t, uint8(2), f.Seq)
	assert.Equal(t, byte(0xCA), f.Flags())
}

func TestRequestVectors(t *testing.T) {
	req := func(c CallID, tsn uint8, params []byte) string {
		return hex.EncodeToString(AppendPacket(nil, Packet{Type: Request, CallID: c, TSN: tsn, Params: params}))
	}
	assert.Equal(t, "0000140001", req(CallGetJoined, 1, nil))
	assert.Equal(t, "00000404093c", req(CallNWKPermitJoining, 9, []byte{60}))
	assert.Equal(t, "0000320005020001", req(CallSetTCPolicy, 5, []byte{2, 0, 1}))
	key := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	assert.Equal(t, "00001b00060102030405060708090a0b0c0d0e0f1000", req(CallSetNWKKey, 6, append(key, 0)))
	// herdsman writes the extended PAN id bytes as given; read little endian that is 0x01dddddddddddddd.
	form := Formation{ChannelMask: 1 << 15, ScanDuration: 5, ExtendedPANID: 0x01DDDDDDDDDDDDDD}
	assert.Equal(t, "000001040701000080000005000000dddddddddddddd01", req(CallNWKFormation, 7, form.Append(nil)))
	sd := SimpleDesc{Endpoint: 1, ProfileID: 260, DeviceID: 0xBEEF, InClusters: []uint16{0, 0x19}, OutClusters: []uint16{6}}
	assert.Equal(t, "0000010103010401efbe000201000019000600", req(CallAFSetSimpleDesc, 3, sd.Append(nil)))
	dr := DataRequest{DstAddr: 0x00124B0001020304, ProfileID: 260, ClusterID: 0x19, DstEndpoint: 1, SrcEndpoint: 1, Radius: 3,
		AddrMode: AddrModeIEEE, TxOptions: 2, Payload: []byte{0x19, 0x05, 0x00}}
	assert.Equal(t, "000001030415030004030201004b120004011900010103030200000000190500", req(CallAPSDEDataReq, 4, dr.Append(nil)))

	// And back: the decoders read what herdsman wrote.
	p, err := DecodePacket(unhex(t, "000001030415030004030201004b120004011900010103030200000000190500"))
	require.NoError(t, err)
	assert.Equal(t, CallAPSDEDataReq, p.CallID)
	assert.Equal(t, uint8(4), p.TSN)
	got, err := DecodeDataRequest(p.Params)
	require.NoError(t, err)
	assert.Equal(t, dr, got)
	p, err = DecodePacket(unhex(t, "000001040701000080000005000000dddddddddddddd01"))
	require.NoError(t, err)
	f, err := DecodeFormation(p.Params)
	require.NoError(t, err)
	assert.Equal(t, form, f)
	p, err = DecodePacket(unhex(t, "0000010103010401efbe000201000019000600"))
	require.NoError(t, err)
	s, err := DecodeSimpleDesc(p.Params)
	require.NoError(t, err)
	assert.Equal(t, sd, s)
}

func TestResponseAndIndicationVectors(t *testing.T) {
	// GET_MODULE_VERSION response, tsn 2, OK: fw 1.0.0.0, stack 3.11.2.0, protocol 2.0.0.0.
	rsp := AppendPacket(nil, Packet{Type: Response, CallID: CallGetModuleVersion, TSN: 2,
		Params: ModuleVersion{Firmware: 0x01000000, Stack: 0x030B0200, Protocol: 0x02000000}.Append(nil)})
	assert.Equal(t, "000101000200000000000100020b0300000002", hex.EncodeToString(rsp))
	p, err := DecodePacket(rsp)
	require.NoError(t, err)
	assert.True(t, p.Status.OK())
	mv, err := DecodeModuleVersion(p.Params)
	require.NoError(t, err)
	assert.Equal(t, "3.11.2.0", VersionString(mv.Stack))

	// An APS NO_ACK response to APSDE_DATA_REQ.
	p, err = DecodePacket(unhex(t, "000101030904a7"))
	require.NoError(t, err)
	assert.Equal(t, StatusAPSNoAck, p.Status)
	assert.Equal(t, "APS NO_ACK (0xa7)", p.Status.String())

	ind := DataIndication{SrcShort: 0x1234, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: 0x19, ProfileID: 0x104, LQI: 200, RSSI: -60,
		Payload: []byte{1, 2, 3}}
	b := AppendPacket(nil, Packet{Type: Indication, CallID: CallAPSDEDataInd, Params: ind.Append(nil)})
	assert.Equal(t, "00020603150300003412000000000101190004010000000000c8c400010203", hex.EncodeToString(b))
	p, err = DecodePacket(b)
	require.NoError(t, err)
	v, err := DecodeIndication(p.CallID, p.Params)
	require.NoError(t, err)
	assert.Equal(t, ind, v)

	up := DevUpdate{IEEE: zcl.IEEE(0x00124B0001020304), Short: 0x5678, Status: UpdateUnsecuredJoin}
	v, err = DecodeIndication(CallZDODevUpdateInd, up.Append(nil))
	require.NoError(t, err)
	assert.Equal(t, up, v)
	_, err = DecodeIndication(CallZDODevUpdateInd, up.Append(nil)[:5])
	assert.ErrorIs(t, err, ErrShortParams)
}

// TestEveryCallRequestVector: each request the driver sends, as the driver builds its parameters, against
// the bytes herdsman 10.9.5 writes for the same call (frame.writeZBOSSFrame under node).
func TestEveryCallRequestVector(t *testing.T) {
	for _, tc := range []struct {
		call   CallID
		tsn    uint8
		params []byte
		want   string
	}{
		{CallNCPReset, 1, []byte{ResetNoOptions}, "000002000100"},
		{CallNCPReset, 2, []byte{ResetFactory}, "000002000202"},
		{CallGetModuleVersion, 3, nil, "0000010003"},
		{CallGetZigbeeRole, 4, nil, "0000040004"},
		{CallSetZigbeeRole, 5, []byte{RoleCoordinator}, "000005000500"},
		{CallSetChannelMask, 6, []byte{0, 0, 0, 0x10, 0}, "00000700060000001000"},
		{CallGetChannel, 7, nil, "0000080007"},
		{CallGetPANID, 8, nil, "0000090008"},
		{CallSetPANID, 9, AppendU16(nil, 0x4E21), "00000a0009214e"},
		{CallGetLocalIEEE, 10, []byte{0}, "00000b000a00"},
		{CallSetRxOnWhenIdle, 11, []byte{1}, "000013000b01"},
		{CallGetExtendedPANID, 12, nil, "000023000c"},
		{CallGetNWKKeys, 13, nil, "00001e000d"},
		{CallNWKStartWithoutForm, 14, nil, "00001d040e"},
		{CallNWKGetIEEEByShort, 15, AppendU16(nil, 0x3A01), "000005040f013a"},
		{CallSetTCPolicy, 16, append(AppendU16(nil, PolicyLinkKeyRequired), 0), "0000320010000000"},
	} {
		t.Run(tc.call.String(), func(t *testing.T) {
			got := AppendPacket(nil, Packet{Type: Request, CallID: tc.call, TSN: tc.tsn, Params: tc.params})
			assert.Equal(t, tc.want, hex.EncodeToString(got))
		})
	}
}

func TestZDOResponseLayouts(t *testing.T) {
	// Active_EP_rsp from a device 0x3A01 with endpoints 1 and 2: the NCP puts the address last.
	std := []byte{0x00, 0x01, 0x3A, 0x02, 0x01, 0x02}
	st, params := ZDOResponseToNCP(0x8005, std)
	assert.Equal(t, StatusOK, st)
	assert.Equal(t, "020102013a", hex.EncodeToString(params))
	assert.Equal(t, std, ZDOResponseFromNCP(0x8005, st, params))
	// Simple_Desc_rsp: endpoint 1, profile 0x0104, device 0x0100, version 1, in {0x0000, 0x0019}, out {0x0006}.
	std = []byte{0x00, 0x01, 0x3A, 14, 1, 0x04, 0x01, 0x00, 0x01, 1, 2, 0x00, 0x00, 0x19, 0x00, 1, 0x06, 0x00}
	st, params = ZDOResponseToNCP(0x8004, std)
	assert.Equal(t, "0104010001010201000019000600013a", hex.EncodeToString(params))
	assert.Equal(t, std, ZDOResponseFromNCP(0x8004, st, params))
	// A failed request: the ZDO status becomes the packet's status.
	st, params = ZDOResponseToNCP(0x8002, []byte{0x81, 0x01, 0x3A})
	assert.Equal(t, Status{CategoryZDO, 0x81}, st)
	assert.Equal(t, "013a", hex.EncodeToString(params))
}
