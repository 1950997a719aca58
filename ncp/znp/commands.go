package znp

import (
	"encoding/binary"
	"fmt"

	"github.com/otabridge/otabridge/zcl"
)

// Command is an MT command: subsystem and id (the type is the frame's).
type Command struct {
	Subsystem Subsystem
	ID        uint8
}

// Commands the driver and the fake stick use (TI Z-Stack Monitor and Test API).
var (
	SysResetReq         = Command{SubSYS, 0x00}
	SysPing             = Command{SubSYS, 0x01}
	SysVersion          = Command{SubSYS, 0x02}
	SysGetExtAddr       = Command{SubSYS, 0x04}
	SysNVItemInit       = Command{SubSYS, 0x07}
	SysNVRead           = Command{SubSYS, 0x08}
	SysNVWrite          = Command{SubSYS, 0x09}
	SysNVDelete         = Command{SubSYS, 0x12}
	SysNVLength         = Command{SubSYS, 0x13}
	SysResetInd         = Command{SubSYS, 0x80}
	AFRegister          = Command{SubAF, 0x00}
	AFDataRequest       = Command{SubAF, 0x01}
	AFDataRequestExt    = Command{SubAF, 0x02}
	AFDataConfirm       = Command{SubAF, 0x80}
	AFIncomingMsg       = Command{SubAF, 0x81}
	AFIncomingMsgExt    = Command{SubAF, 0x82}
	ZDOMgmtPermitJoin   = Command{SubZDO, 0x36}
	ZDOMsgCBRegister    = Command{SubZDO, 0x3E}
	ZDOStartupFromApp   = Command{SubZDO, 0x40}
	ZDOExtNwkInfo       = Command{SubZDO, 0x50}
	ZDOMgmtPermitRsp    = Command{SubZDO, 0xB6}
	ZDOStateChangeInd   = Command{SubZDO, 0xC0}
	ZDOEndDeviceAnnce   = Command{SubZDO, 0xC1}
	ZDOLeaveInd         = Command{SubZDO, 0xC9}
	ZDOTCDevInd         = Command{SubZDO, 0xCA}
	ZDOPermitJoinInd    = Command{SubZDO, 0xCB}
	UtilGetDeviceInfo   = Command{SubUTIL, 0x00}
	UtilLEDControl      = Command{SubUTIL, 0x0A}
	UtilAddrMgrNwkAddr  = Command{SubUTIL, 0x41}
	AppCnfBDBStartComm  = Command{SubAPPCNF, 0x05}
	AppCnfBDBSetChan    = Command{SubAPPCNF, 0x08}
	AppCnfBDBCommNotif  = Command{SubAPPCNF, 0x80}
	AppCnfAllowRejoinTC = Command{SubAPPCNF, 0x03}
	AppCnfBDBTCKeyExch  = Command{SubAPPCNF, 0x09}
	RPCError            = Command{SubRPCError, 0x00}
)

var commandNames = map[Command]string{
	SysResetReq: "SYS_RESET_REQ", SysPing: "SYS_PING", SysVersion: "SYS_VERSION", SysGetExtAddr: "SYS_GET_EXTADDR",
	SysNVItemInit: "SYS_OSAL_NV_ITEM_INIT", SysNVRead: "SYS_OSAL_NV_READ", SysNVWrite: "SYS_OSAL_NV_WRITE",
	SysNVDelete: "SYS_OSAL_NV_DELETE", SysNVLength: "SYS_OSAL_NV_LENGTH", SysResetInd: "SYS_RESET_IND",
	AFRegister: "AF_REGISTER", AFDataRequest: "AF_DATA_REQUEST", AFDataRequestExt: "AF_DATA_REQUEST_EXT",
	AFDataConfirm: "AF_DATA_CONFIRM", AFIncomingMsg: "AF_INCOMING_MSG", AFIncomingMsgExt: "AF_INCOMING_MSG_EXT",
	ZDOMgmtPermitJoin: "ZDO_MGMT_PERMIT_JOIN_REQ", ZDOMsgCBRegister: "ZDO_MSG_CB_REGISTER", ZDOStartupFromApp: "ZDO_STARTUP_FROM_APP",
	ZDOExtNwkInfo: "ZDO_EXT_NWK_INFO", ZDOMgmtPermitRsp: "ZDO_MGMT_PERMIT_JOIN_RSP", ZDOStateChangeInd: "ZDO_STATE_CHANGE_IND",
	ZDOEndDeviceAnnce: "ZDO_END_DEVICE_ANNCE_IND", ZDOLeaveInd: "ZDO_LEAVE_IND", ZDOTCDevInd: "ZDO_TC_DEV_IND",
	ZDOPermitJoinInd: "ZDO_PERMIT_JOIN_IND", UtilGetDeviceInfo: "UTIL_GET_DEVICE_INFO", UtilLEDControl: "UTIL_LED_CONTROL",
	UtilAddrMgrNwkAddr: "UTIL_ADDRMGR_NWK_ADDR_LOOKUP", AppCnfBDBStartComm: "APP_CNF_BDB_START_COMMISSIONING",
	AppCnfBDBSetChan: "APP_CNF_BDB_SET_CHANNEL", AppCnfBDBCommNotif: "APP_CNF_BDB_COMMISSIONING_NOTIFICATION", RPCError: "RPC_ERROR",
	AppCnfAllowRejoinTC: "APP_CNF_SET_ALLOWREJOIN_TC_POLICY", AppCnfBDBTCKeyExch: "APP_CNF_BDB_SET_TC_REQUIRE_KEY_EXCHANGE",
}

func (c Command) String() string {
	if n, ok := commandNames[c]; ok {
		return n
	}
	return fmt.Sprintf("%s_%02X", c.Subsystem, c.ID)
}

// Request is an SREQ frame of the command with data.
func (c Command) Request(data []byte) Frame {
	return Frame{Type: TypeSREQ, Subsystem: c.Subsystem, ID: c.ID, Data: data}
}

// Response is an SRSP frame of the command with data.
func (c Command) Response(data []byte) Frame {
	return Frame{Type: TypeSRSP, Subsystem: c.Subsystem, ID: c.ID, Data: data}
}

// Callback is an AREQ frame of the command with data.
func (c Command) Callback(data []byte) Frame {
	return Frame{Type: TypeAREQ, Subsystem: c.Subsystem, ID: c.ID, Data: data}
}

// Z-Stack status codes the driver names.
const (
	StatusSuccess        uint8 = 0x00
	StatusFailure        uint8 = 0x01
	StatusInvalidParam   uint8 = 0x02
	StatusNVItemUninit   uint8 = 0x09
	StatusNVOperFailed   uint8 = 0x0A
	StatusNVBadItemLen   uint8 = 0x0C
	StatusMemError       uint8 = 0x10
	StatusBufferFull     uint8 = 0x11
	StatusAFDuplicateEP  uint8 = 0xB8
	StatusAPSNoAck       uint8 = 0xB7
	StatusNWKNoRoute     uint8 = 0xCD
	StatusMACNoAck       uint8 = 0xE9
	StatusMACTransExpire uint8 = 0xF0
)

var statusNames = map[uint8]string{
	0x00: "SUCCESS", 0x01: "FAILURE", 0x02: "INVALID_PARAMETER", 0x09: "NV_ITEM_UNINIT", 0x0A: "NV_OPER_FAILED",
	0x0C: "NV_BAD_ITEM_LEN", 0x10: "MEM_ERROR", 0x11: "BUFFER_FULL", 0x1A: "MAC_TRANSACTION_OVERFLOW",
	0xB7: "APS_NO_ACK", 0xB8: "AF_DUPLICATE_ENDPOINT", 0xC2: "NWK_INVALID_REQUEST", 0xC7: "NWK_NOT_PERMITTED", 0xCD: "NWK_NO_ROUTE",
	0xE1: "MAC_CHANNEL_ACCESS_FAILURE", 0xE9: "MAC_NO_ACK", 0xF0: "MAC_TRANSACTION_EXPIRED",
}

// StatusName names a Z-Stack status byte.
func StatusName(s uint8) string {
	if n, ok := statusNames[s]; ok {
		return fmt.Sprintf("%s (0x%02X)", n, s)
	}
	return fmt.Sprintf("status 0x%02X", s)
}

// Product is SYS_VERSION's product byte: which Z-Stack generation the stick runs.
type Product uint8

// Products.
const (
	ProductZStack12  Product = 0 // Z-Stack Home 1.2 (CC2530/CC2531)
	ProductZStack3x0 Product = 1 // Z-Stack 3.x.0 (CC2652/CC1352)
	ProductZStack30x Product = 2 // Z-Stack 3.0.x (CC2531/CC2538)
)

func (p Product) String() string {
	switch p {
	case ProductZStack12:
		return "Z-Stack Home 1.2"
	case ProductZStack3x0:
		return "Z-Stack 3.x.0"
	case ProductZStack30x:
		return "Z-Stack 3.0.x"
	}
	return fmt.Sprintf("unknown Z-Stack product %d", uint8(p))
}

// reader takes little-endian fields off a payload and remembers the first shortage.
type reader struct {
	b    []byte
	what string
	err  error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return make([]byte, n)
	}
	if len(r.b) < n {
		r.err = fmt.Errorf("%s: payload too short (%d bytes missing)", r.what, n-len(r.b))
		r.b = nil
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8   { return r.take(1)[0] }
func (r *reader) u16() uint16 { return binary.LittleEndian.Uint16(r.take(2)) }
func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.take(8)) }

// bytes takes n bytes as a fresh copy.
func (r *reader) bytes(n int) []byte { return append([]byte(nil), r.take(n)...) }

func (r *reader) u16s(n int) []uint16 {
	out := make([]uint16, 0, n)
	for range n {
		out = append(out, r.u16())
	}
	return out
}

func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// ResetInd is SYS_RESET_IND: the stick (re)started.
type ResetInd struct {
	Reason       uint8 // 0 power-up, 1 external, 2 watchdog
	TransportRev uint8
	Product      Product
	Major        uint8
	Minor        uint8
	Maint        uint8
}

// Append encodes the indication.
func (m ResetInd) Append(b []byte) []byte {
	return append(b, m.Reason, m.TransportRev, byte(m.Product), m.Major, m.Minor, m.Maint)
}

// DecodeResetInd decodes SYS_RESET_IND.
func DecodeResetInd(b []byte) (ResetInd, error) {
	r := reader{b: b, what: "SYS_RESET_IND"}
	m := ResetInd{Reason: r.u8(), TransportRev: r.u8(), Product: Product(r.u8()), Major: r.u8(), Minor: r.u8(), Maint: r.u8()}
	return m, r.err
}

// Version is SYS_VERSION's answer.
type Version struct {
	TransportRev uint8
	Product      Product
	Major        uint8
	Minor        uint8
	Maint        uint8
	Revision     uint32 // firmware build, e.g. 20240710
}

// Append encodes the answer.
func (v Version) Append(b []byte) []byte {
	b = append(b, v.TransportRev, byte(v.Product), v.Major, v.Minor, v.Maint)
	return le32(b, v.Revision)
}

// DecodeVersion decodes SYS_VERSION's SRSP; the build revision is optional (old firmware leaves it out).
func DecodeVersion(b []byte) (Version, error) {
	r := reader{b: b, what: "SYS_VERSION"}
	v := Version{TransportRev: r.u8(), Product: Product(r.u8()), Major: r.u8(), Minor: r.u8(), Maint: r.u8()}
	if r.err == nil && len(r.b) >= 4 {
		v.Revision = r.u32()
	}
	return v, r.err
}

func (v Version) String() string {
	s := fmt.Sprintf("%s %d.%d.%d", v.Product, v.Major, v.Minor, v.Maint)
	if v.Revision != 0 {
		s += fmt.Sprintf(" build %d", v.Revision)
	}
	return s
}

// NVRead is SYS_OSAL_NV_READ's request.
type NVRead struct {
	ID     uint16
	Offset uint8
}

// Append encodes the request.
func (m NVRead) Append(b []byte) []byte { return append(le16(b, m.ID), m.Offset) }

// DecodeNVRead decodes the request.
func DecodeNVRead(b []byte) (NVRead, error) {
	r := reader{b: b, what: "SYS_OSAL_NV_READ"}
	m := NVRead{ID: r.u16(), Offset: r.u8()}
	return m, r.err
}

// NVValue is SYS_OSAL_NV_READ's answer: status and value.
type NVValue struct {
	Status uint8
	Value  []byte
}

// Append encodes the answer.
func (m NVValue) Append(b []byte) []byte {
	b = append(b, m.Status, byte(len(m.Value)))
	return append(b, m.Value...)
}

// DecodeNVValue decodes SYS_OSAL_NV_READ's SRSP.
func DecodeNVValue(b []byte) (NVValue, error) {
	r := reader{b: b, what: "SYS_OSAL_NV_READ response"}
	m := NVValue{Status: r.u8()}
	n := int(r.u8())
	m.Value = r.bytes(n)
	return m, r.err
}

// NVWrite is SYS_OSAL_NV_WRITE's request.
type NVWrite struct {
	ID     uint16
	Offset uint8
	Value  []byte
}

// Append encodes the request.
func (m NVWrite) Append(b []byte) []byte {
	b = append(le16(b, m.ID), m.Offset, byte(len(m.Value)))
	return append(b, m.Value...)
}

// DecodeNVWrite decodes the request.
func DecodeNVWrite(b []byte) (NVWrite, error) {
	r := reader{b: b, what: "SYS_OSAL_NV_WRITE"}
	m := NVWrite{ID: r.u16(), Offset: r.u8()}
	n := int(r.u8())
	m.Value = r.bytes(n)
	return m, r.err
}

// NVItemInit is SYS_OSAL_NV_ITEM_INIT's request: create an item of Length bytes with initial data.
type NVItemInit struct {
	ID     uint16
	Length uint16
	Init   []byte
}

// Append encodes the request.
func (m NVItemInit) Append(b []byte) []byte {
	b = le16(le16(b, m.ID), m.Length)
	b = append(b, byte(len(m.Init)))
	return append(b, m.Init...)
}

// DecodeNVItemInit decodes the request.
func DecodeNVItemInit(b []byte) (NVItemInit, error) {
	r := reader{b: b, what: "SYS_OSAL_NV_ITEM_INIT"}
	m := NVItemInit{ID: r.u16(), Length: r.u16()}
	n := int(r.u8())
	m.Init = r.bytes(n)
	return m, r.err
}

// AFRegisterReq is AF_REGISTER's request: an application endpoint.
type AFRegisterReq struct {
	Endpoint      uint8
	ProfileID     uint16
	DeviceID      uint16
	DeviceVersion uint8
	Latency       uint8
	InClusters    []uint16
	OutClusters   []uint16
}

// Append encodes the request.
func (m AFRegisterReq) Append(b []byte) []byte {
	b = append(b, m.Endpoint)
	b = le16(le16(b, m.ProfileID), m.DeviceID)
	b = append(b, m.DeviceVersion, m.Latency, byte(len(m.InClusters)))
	for _, c := range m.InClusters {
		b = le16(b, c)
	}
	b = append(b, byte(len(m.OutClusters)))
	for _, c := range m.OutClusters {
		b = le16(b, c)
	}
	return b
}

// DecodeAFRegister decodes the request.
func DecodeAFRegister(b []byte) (AFRegisterReq, error) {
	r := reader{b: b, what: "AF_REGISTER"}
	m := AFRegisterReq{Endpoint: r.u8(), ProfileID: r.u16(), DeviceID: r.u16(), DeviceVersion: r.u8(), Latency: r.u8()}
	m.InClusters = r.u16s(int(r.u8()))
	m.OutClusters = r.u16s(int(r.u8()))
	return m, r.err
}

// TX option bits of AF_DATA_REQUEST.
const (
	TxOptionAPSAck          uint8 = 0x10
	TxOptionSuppressRouteDs uint8 = 0x20
)

// DefaultRadius is the radius Z-Stack hosts use.
const DefaultRadius uint8 = 0x1E

// DataRequest is AF_DATA_REQUEST: one APS frame to a short address.
type DataRequest struct {
	DstAddr   uint16
	DstEP     uint8
	SrcEP     uint8
	ClusterID uint16
	TransID   uint8
	Options   uint8
	Radius    uint8
	Data      []byte
}

// dataRequestOverhead is AF_DATA_REQUEST's bytes before the data.
const dataRequestOverhead = 10

// MaxDataRequestLen is the largest payload the driver sends with AF_DATA_REQUEST: the whole request then
// fits a 128-byte MT receive buffer (the default of Z-Stack's UART transport on the smaller chips). Longer
// payloads go in AF_DATA_REQUEST_EXT, whose 16-bit length Z-Stack handles in the same code.
const MaxDataRequestLen = 128 - dataRequestOverhead

// Append encodes the request.
func (m DataRequest) Append(b []byte) []byte {
	b = append(le16(b, m.DstAddr), m.DstEP, m.SrcEP)
	b = append(le16(b, m.ClusterID), m.TransID, m.Options, m.Radius, byte(len(m.Data)))
	return append(b, m.Data...)
}

// DecodeDataRequest decodes AF_DATA_REQUEST.
func DecodeDataRequest(b []byte) (DataRequest, error) {
	r := reader{b: b, what: "AF_DATA_REQUEST"}
	m := DataRequest{DstAddr: r.u16(), DstEP: r.u8(), SrcEP: r.u8(), ClusterID: r.u16(), TransID: r.u8(), Options: r.u8(), Radius: r.u8()}
	m.Data = r.bytes(int(r.u8()))
	return m, r.err
}

// Address modes of AF_DATA_REQUEST_EXT and AF_INCOMING_MSG_EXT.
const (
	AddrModeGroup     uint8 = 0x01
	AddrModeShort     uint8 = 0x02
	AddrModeIEEE      uint8 = 0x03
	AddrModeBroadcast uint8 = 0x0F
)

// DataRequestExt is AF_DATA_REQUEST_EXT: one APS frame with extended addressing and a 16-bit length.
type DataRequestExt struct {
	AddrMode  uint8
	DstAddr   uint64 // a short or group address in the low 16 bits, or an IEEE address
	DstEP     uint8
	DstPANID  uint16 // 0: this PAN
	SrcEP     uint8
	ClusterID uint16
	TransID   uint8
	Options   uint8
	Radius    uint8
	Data      []byte
}

// dataRequestExtOverhead is AF_DATA_REQUEST_EXT's bytes before the data.
const dataRequestExtOverhead = 20

// MaxDataRequestExtLen is the largest payload AF_DATA_REQUEST_EXT carries in one MT frame (larger ones
// would need AF_DATA_STORE staging, which OTA traffic never needs).
const MaxDataRequestExtLen = MaxDataLen - dataRequestExtOverhead

// Append encodes the request.
func (m DataRequestExt) Append(b []byte) []byte {
	b = le64(append(b, m.AddrMode), m.DstAddr)
	b = append(b, m.DstEP)
	b = append(le16(b, m.DstPANID), m.SrcEP)
	b = append(le16(b, m.ClusterID), m.TransID, m.Options, m.Radius)
	b = le16(b, uint16(len(m.Data)))
	return append(b, m.Data...)
}

// DecodeDataRequestExt decodes AF_DATA_REQUEST_EXT.
func DecodeDataRequestExt(b []byte) (DataRequestExt, error) {
	r := reader{b: b, what: "AF_DATA_REQUEST_EXT"}
	m := DataRequestExt{AddrMode: r.u8(), DstAddr: r.u64(), DstEP: r.u8(), DstPANID: r.u16(), SrcEP: r.u8(), ClusterID: r.u16(),
		TransID: r.u8(), Options: r.u8(), Radius: r.u8()}
	m.Data = r.bytes(int(r.u16()))
	return m, r.err
}

// DataConfirm is AF_DATA_CONFIRM: the result of one data request.
type DataConfirm struct {
	Status   uint8
	Endpoint uint8
	TransID  uint8
}

// Append encodes the confirm.
func (m DataConfirm) Append(b []byte) []byte { return append(b, m.Status, m.Endpoint, m.TransID) }

// DecodeDataConfirm decodes AF_DATA_CONFIRM.
func DecodeDataConfirm(b []byte) (DataConfirm, error) {
	r := reader{b: b, what: "AF_DATA_CONFIRM"}
	m := DataConfirm{Status: r.u8(), Endpoint: r.u8(), TransID: r.u8()}
	return m, r.err
}

// IncomingMsg is AF_INCOMING_MSG or AF_INCOMING_MSG_EXT: an APS frame for a registered endpoint.
type IncomingMsg struct {
	GroupID      uint16
	ClusterID    uint16
	SrcAddrMode  uint8  // _EXT only (AddrModeShort or AddrModeIEEE)
	SrcAddr      uint64 // the sender's short address (or IEEE address in _EXT with AddrModeIEEE)
	SrcEP        uint8
	SrcPANID     uint16 // _EXT only
	DstEP        uint8
	WasBroadcast uint8
	LQI          uint8
	SecurityUse  uint8
	Timestamp    uint32
	TransSeq     uint8
	Data         []byte
	MacSrcAddr   uint16 // trailing fields of AF_INCOMING_MSG (Z-Stack 3.x)
	Radius       uint8
}

// Append encodes AF_INCOMING_MSG.
func (m IncomingMsg) Append(b []byte) []byte {
	b = le16(le16(le16(b, m.GroupID), m.ClusterID), uint16(m.SrcAddr))
	b = append(b, m.SrcEP, m.DstEP, m.WasBroadcast, m.LQI, m.SecurityUse)
	b = append(le32(b, m.Timestamp), m.TransSeq, byte(len(m.Data)))
	b = append(b, m.Data...)
	return append(le16(b, m.MacSrcAddr), m.Radius)
}

// AppendExt encodes AF_INCOMING_MSG_EXT.
func (m IncomingMsg) AppendExt(b []byte) []byte {
	b = le16(le16(b, m.GroupID), m.ClusterID)
	b = le64(append(b, m.SrcAddrMode), m.SrcAddr)
	b = append(b, m.SrcEP)
	b = append(le16(b, m.SrcPANID), m.DstEP, m.WasBroadcast, m.LQI, m.SecurityUse)
	b = append(le32(b, m.Timestamp), m.TransSeq)
	b = le16(b, uint16(len(m.Data)))
	return append(b, m.Data...)
}

// DecodeIncomingMsg decodes AF_INCOMING_MSG (the trailing MAC source and radius are optional).
func DecodeIncomingMsg(b []byte) (IncomingMsg, error) {
	r := reader{b: b, what: "AF_INCOMING_MSG"}
	m := IncomingMsg{GroupID: r.u16(), ClusterID: r.u16(), SrcAddrMode: AddrModeShort, SrcAddr: uint64(r.u16()), SrcEP: r.u8(), DstEP: r.u8(),
		WasBroadcast: r.u8(), LQI: r.u8(), SecurityUse: r.u8(), Timestamp: r.u32(), TransSeq: r.u8()}
	m.Data = r.bytes(int(r.u8()))
	if r.err == nil && len(r.b) >= 3 {
		m.MacSrcAddr, m.Radius = r.u16(), r.u8()
	}
	return m, r.err
}

// DecodeIncomingMsgExt decodes AF_INCOMING_MSG_EXT. A payload too large for the frame (to be fetched with
// AF_DATA_RETRIEVE) is an error: OTA traffic never needs it.
func DecodeIncomingMsgExt(b []byte) (IncomingMsg, error) {
	r := reader{b: b, what: "AF_INCOMING_MSG_EXT"}
	m := IncomingMsg{GroupID: r.u16(), ClusterID: r.u16(), SrcAddrMode: r.u8(), SrcAddr: r.u64(), SrcEP: r.u8(), SrcPANID: r.u16(),
		DstEP: r.u8(), WasBroadcast: r.u8(), LQI: r.u8(), SecurityUse: r.u8(), Timestamp: r.u32(), TransSeq: r.u8()}
	n := int(r.u16())
	if r.err == nil && n > len(r.b) {
		return m, fmt.Errorf("AF_INCOMING_MSG_EXT: %d-byte payload not in the frame (staged with AF_DATA_STORE; not supported)", n)
	}
	m.Data = r.bytes(n)
	return m, r.err
}

// TCDevInd is ZDO_TC_DEV_IND: a device joined or rejoined through the trust center.
type TCDevInd struct {
	NwkAddr    uint16
	IEEE       zcl.IEEE
	ParentAddr uint16
}

// Append encodes the indication.
func (m TCDevInd) Append(b []byte) []byte {
	return le16(le64(le16(b, m.NwkAddr), uint64(m.IEEE)), m.ParentAddr)
}

// DecodeTCDevInd decodes ZDO_TC_DEV_IND.
func DecodeTCDevInd(b []byte) (TCDevInd, error) {
	r := reader{b: b, what: "ZDO_TC_DEV_IND"}
	m := TCDevInd{NwkAddr: r.u16(), IEEE: zcl.IEEE(r.u64()), ParentAddr: r.u16()}
	return m, r.err
}

// EndDeviceAnnce is ZDO_END_DEVICE_ANNCE_IND: a device's Device_annce.
type EndDeviceAnnce struct {
	SrcAddr      uint16
	NwkAddr      uint16
	IEEE         zcl.IEEE
	Capabilities uint8
}

// Append encodes the indication.
func (m EndDeviceAnnce) Append(b []byte) []byte {
	return append(le64(le16(le16(b, m.SrcAddr), m.NwkAddr), uint64(m.IEEE)), m.Capabilities)
}

// DecodeEndDeviceAnnce decodes ZDO_END_DEVICE_ANNCE_IND.
func DecodeEndDeviceAnnce(b []byte) (EndDeviceAnnce, error) {
	r := reader{b: b, what: "ZDO_END_DEVICE_ANNCE_IND"}
	m := EndDeviceAnnce{SrcAddr: r.u16(), NwkAddr: r.u16(), IEEE: zcl.IEEE(r.u64()), Capabilities: r.u8()}
	return m, r.err
}

// LeaveInd is ZDO_LEAVE_IND: a device left.
type LeaveInd struct {
	NwkAddr uint16
	IEEE    zcl.IEEE
	Request uint8
	Remove  uint8
	Rejoin  uint8
}

// Append encodes the indication.
func (m LeaveInd) Append(b []byte) []byte {
	return append(le64(le16(b, m.NwkAddr), uint64(m.IEEE)), m.Request, m.Remove, m.Rejoin)
}

// DecodeLeaveInd decodes ZDO_LEAVE_IND.
func DecodeLeaveInd(b []byte) (LeaveInd, error) {
	r := reader{b: b, what: "ZDO_LEAVE_IND"}
	m := LeaveInd{NwkAddr: r.u16(), IEEE: zcl.IEEE(r.u64()), Request: r.u8(), Remove: r.u8(), Rejoin: r.u8()}
	return m, r.err
}

// Device states of ZDO_STATE_CHANGE_IND and UTIL_GET_DEVICE_INFO.
const (
	StateHold          uint8 = 0x00
	StateInit          uint8 = 0x01
	StateCoordStarting uint8 = 0x08
	StateCoordinator   uint8 = 0x09 // started as coordinator
)

// DecodeStateChangeInd decodes ZDO_STATE_CHANGE_IND: the new device state.
func DecodeStateChangeInd(b []byte) (uint8, error) {
	r := reader{b: b, what: "ZDO_STATE_CHANGE_IND"}
	s := r.u8()
	return s, r.err
}

// PermitJoinReq is ZDO_MGMT_PERMIT_JOIN_REQ.
type PermitJoinReq struct {
	AddrMode       uint8 // AddrModeShort (one router or the coordinator) or AddrModeBroadcast
	DstAddr        uint16
	Duration       uint8 // seconds; 0 closes
	TCSignificance uint8
}

// Append encodes the request.
func (m PermitJoinReq) Append(b []byte) []byte {
	return append(le16(append(b, m.AddrMode), m.DstAddr), m.Duration, m.TCSignificance)
}

// DecodePermitJoinReq decodes the request.
func DecodePermitJoinReq(b []byte) (PermitJoinReq, error) {
	r := reader{b: b, what: "ZDO_MGMT_PERMIT_JOIN_REQ"}
	m := PermitJoinReq{AddrMode: r.u8(), DstAddr: r.u16(), Duration: r.u8(), TCSignificance: r.u8()}
	return m, r.err
}

// ExtNwkInfo is ZDO_EXT_NWK_INFO's answer (herdsman's layout).
type ExtNwkInfo struct {
	ShortAddr     uint16
	DevState      uint8
	PANID         uint16
	ParentAddr    uint16
	ExtendedPANID zcl.IEEE
	ParentIEEE    zcl.IEEE
	Channel       uint8
}

// Append encodes the answer.
func (m ExtNwkInfo) Append(b []byte) []byte {
	b = append(le16(b, m.ShortAddr), m.DevState)
	b = le16(le16(b, m.PANID), m.ParentAddr)
	b = le64(le64(b, uint64(m.ExtendedPANID)), uint64(m.ParentIEEE))
	return append(b, m.Channel)
}

// DecodeExtNwkInfo decodes ZDO_EXT_NWK_INFO's SRSP.
func DecodeExtNwkInfo(b []byte) (ExtNwkInfo, error) {
	r := reader{b: b, what: "ZDO_EXT_NWK_INFO"}
	m := ExtNwkInfo{ShortAddr: r.u16(), DevState: r.u8(), PANID: r.u16(), ParentAddr: r.u16(), ExtendedPANID: zcl.IEEE(r.u64()),
		ParentIEEE: zcl.IEEE(r.u64()), Channel: r.u8()}
	return m, r.err
}

// DeviceInfo is UTIL_GET_DEVICE_INFO's answer.
type DeviceInfo struct {
	Status     uint8
	IEEE       zcl.IEEE
	ShortAddr  uint16
	DeviceType uint8
	State      uint8
	Assoc      []uint16
}

// Append encodes the answer.
func (m DeviceInfo) Append(b []byte) []byte {
	b = le16(le64(append(b, m.Status), uint64(m.IEEE)), m.ShortAddr)
	b = append(b, m.DeviceType, m.State, byte(len(m.Assoc)))
	for _, a := range m.Assoc {
		b = le16(b, a)
	}
	return b
}

// DecodeDeviceInfo decodes UTIL_GET_DEVICE_INFO's SRSP.
func DecodeDeviceInfo(b []byte) (DeviceInfo, error) {
	r := reader{b: b, what: "UTIL_GET_DEVICE_INFO"}
	m := DeviceInfo{Status: r.u8(), IEEE: zcl.IEEE(r.u64()), ShortAddr: r.u16(), DeviceType: r.u8(), State: r.u8()}
	m.Assoc = r.u16s(int(r.u8()))
	return m, r.err
}

// DecodeIEEE decodes an answer that is one IEEE address (SYS_GET_EXTADDR, UTIL_ADDRMGR_NWK_ADDR_LOOKUP).
func DecodeIEEE(b []byte, what string) (zcl.IEEE, error) {
	r := reader{b: b, what: what}
	v := zcl.IEEE(r.u64())
	return v, r.err
}

// DecodeStatus decodes an answer whose first byte is a status.
func DecodeStatus(b []byte, what string) (uint8, error) {
	r := reader{b: b, what: what}
	s := r.u8()
	return s, r.err
}

// RPCErrorInfo is the RPC error SRSP the stick sends for an SREQ it cannot handle.
type RPCErrorInfo struct {
	Code uint8 // 1 bad subsystem, 2 bad command id, 3 bad parameter, 4 bad length
	CMD0 uint8
	CMD1 uint8
}

// Append encodes the error.
func (m RPCErrorInfo) Append(b []byte) []byte { return append(b, m.Code, m.CMD0, m.CMD1) }

// DecodeRPCError decodes the RPC error SRSP.
func DecodeRPCError(b []byte) (RPCErrorInfo, error) {
	r := reader{b: b, what: "RPC error"}
	m := RPCErrorInfo{Code: r.u8(), CMD0: r.u8(), CMD1: r.u8()}
	return m, r.err
}

func (m RPCErrorInfo) String() string {
	what := map[uint8]string{1: "unknown subsystem", 2: "unknown command", 3: "bad parameter", 4: "bad length"}[m.Code]
	if what == "" {
		what = fmt.Sprintf("error %d", m.Code)
	}
	return fmt.Sprintf("%s for %s", what, Command{Subsystem(m.CMD0 & 0x1F), m.CMD1})
}

// NV item ids the driver reads and writes (Z-Stack 3.x OSAL NV).
const (
	NVStartupOption     uint16 = 0x0003
	NVNIB               uint16 = 0x0021
	NVExtendedPANID     uint16 = 0x002D
	NVActiveKeyInfo     uint16 = 0x003A
	NVAltKeyInfo        uint16 = 0x003B
	NVAPSUseExtPANID    uint16 = 0x0047
	NVHasConfigured     uint16 = 0x0060 // a host convention (herdsman, zigpy-znp), not Z-Stack's: 0x55 once formed
	NVPreCfgKey         uint16 = 0x0062
	NVPreCfgKeysEnable  uint16 = 0x0063
	NVPANID             uint16 = 0x0083
	NVChanList          uint16 = 0x0084
	NVLogicalType       uint16 = 0x0087
	NVZDODirectCB       uint16 = 0x008F
	NVTCLKTableStart    uint16 = 0x0101
	HasConfiguredMarker byte   = 0x55
)

// Startup option bits of NVStartupOption.
const (
	StartupClearConfig uint8 = 0x01
	StartupClearState  uint8 = 0x02
)
