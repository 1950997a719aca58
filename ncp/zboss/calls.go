package zboss

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/otabridge/otabridge/zcl"
)

// CallID is a high-level call (command) id.
type CallID uint16

// Call ids used by the driver and answered by the fake NCP (ZBOSS NCP serial protocol; the same ids
// zigbee-herdsman 10.9.5's zboss adapter sends).
const (
	CallGetModuleVersion    CallID = 0x0001
	CallNCPReset            CallID = 0x0002
	CallGetZigbeeRole       CallID = 0x0004
	CallSetZigbeeRole       CallID = 0x0005
	CallGetChannelMask      CallID = 0x0006
	CallSetChannelMask      CallID = 0x0007
	CallGetChannel          CallID = 0x0008
	CallGetPANID            CallID = 0x0009
	CallSetPANID            CallID = 0x000A
	CallGetLocalIEEE        CallID = 0x000B
	CallGetTxPower          CallID = 0x0010
	CallSetTxPower          CallID = 0x0011
	CallSetRxOnWhenIdle     CallID = 0x0013
	CallGetJoined           CallID = 0x0014
	CallSetNWKKey           CallID = 0x001B
	CallGetNWKKeys          CallID = 0x001E
	CallGetExtendedPANID    CallID = 0x0023
	CallGetCoordinatorVer   CallID = 0x0024
	CallGetShortAddress     CallID = 0x0025
	CallNCPResetInd         CallID = 0x002B
	CallSetTCPolicy         CallID = 0x0032
	CallSetExtendedPANID    CallID = 0x0033
	CallAFSetSimpleDesc     CallID = 0x0101
	CallZDONWKAddrReq       CallID = 0x0201
	CallZDOIEEEAddrReq      CallID = 0x0202
	CallZDOPowerDescReq     CallID = 0x0203
	CallZDONodeDescReq      CallID = 0x0204
	CallZDOSimpleDescReq    CallID = 0x0205
	CallZDOActiveEPReq      CallID = 0x0206
	CallZDOMatchDescReq     CallID = 0x0207
	CallZDOBindReq          CallID = 0x0208
	CallZDOUnbindReq        CallID = 0x0209
	CallZDOMgmtLeaveReq     CallID = 0x020A
	CallZDOPermitJoiningReq CallID = 0x020B
	CallZDODevAnnceInd      CallID = 0x020C
	CallZDOMgmtBindReq      CallID = 0x020F
	CallZDOMgmtLQIReq       CallID = 0x0210
	CallZDOMgmtNWKUpdateReq CallID = 0x0211
	CallZDODevAuthorizedInd CallID = 0x0214
	CallZDODevUpdateInd     CallID = 0x0215
	CallZDOSetNodeDescManuf CallID = 0x0216
	CallAPSDEDataReq        CallID = 0x0301
	CallAPSDEDataInd        CallID = 0x0306
	CallNWKFormation        CallID = 0x0401
	CallNWKPermitJoining    CallID = 0x0404
	CallNWKGetIEEEByShort   CallID = 0x0405
	CallNWKGetShortByIEEE   CallID = 0x0406
	CallNWKLeaveInd         CallID = 0x040B
	CallNWKAddressUpdateInd CallID = 0x041C
	CallNWKStartWithoutForm CallID = 0x041D
)

var callNames = map[CallID]string{
	CallGetModuleVersion: "GET_MODULE_VERSION", CallNCPReset: "NCP_RESET", CallGetZigbeeRole: "GET_ZIGBEE_ROLE",
	CallSetZigbeeRole: "SET_ZIGBEE_ROLE", CallGetChannelMask: "GET_ZIGBEE_CHANNEL_MASK", CallSetChannelMask: "SET_ZIGBEE_CHANNEL_MASK",
	CallGetChannel: "GET_ZIGBEE_CHANNEL", CallGetPANID: "GET_PAN_ID", CallSetPANID: "SET_PAN_ID", CallGetLocalIEEE: "GET_LOCAL_IEEE_ADDR",
	CallGetTxPower: "GET_TX_POWER", CallSetTxPower: "SET_TX_POWER", CallSetRxOnWhenIdle: "SET_RX_ON_WHEN_IDLE", CallGetJoined: "GET_JOINED",
	CallSetNWKKey: "SET_NWK_KEY", CallGetNWKKeys: "GET_NWK_KEYS", CallGetExtendedPANID: "GET_EXTENDED_PAN_ID",
	CallGetCoordinatorVer: "GET_COORDINATOR_VERSION", CallGetShortAddress: "GET_SHORT_ADDRESS", CallNCPResetInd: "NCP_RESET_IND",
	CallSetTCPolicy: "SET_TC_POLICY", CallSetExtendedPANID: "SET_EXTENDED_PAN_ID", CallAFSetSimpleDesc: "AF_SET_SIMPLE_DESC",
	CallZDONWKAddrReq: "ZDO_NWK_ADDR_REQ", CallZDOIEEEAddrReq: "ZDO_IEEE_ADDR_REQ", CallZDOPowerDescReq: "ZDO_POWER_DESC_REQ",
	CallZDONodeDescReq: "ZDO_NODE_DESC_REQ", CallZDOSimpleDescReq: "ZDO_SIMPLE_DESC_REQ", CallZDOActiveEPReq: "ZDO_ACTIVE_EP_REQ",
	CallZDOMatchDescReq: "ZDO_MATCH_DESC_REQ", CallZDOBindReq: "ZDO_BIND_REQ", CallZDOUnbindReq: "ZDO_UNBIND_REQ",
	CallZDOMgmtLeaveReq: "ZDO_MGMT_LEAVE_REQ", CallZDOPermitJoiningReq: "ZDO_PERMIT_JOINING_REQ", CallZDODevAnnceInd: "ZDO_DEV_ANNCE_IND",
	CallZDOMgmtBindReq: "ZDO_MGMT_BIND_REQ", CallZDOMgmtLQIReq: "ZDO_MGMT_LQI_REQ", CallZDOMgmtNWKUpdateReq: "ZDO_MGMT_NWK_UPDATE_REQ",
	CallZDODevAuthorizedInd: "ZDO_DEV_AUTHORIZED_IND", CallZDODevUpdateInd: "ZDO_DEV_UPDATE_IND",
	CallZDOSetNodeDescManuf: "ZDO_SET_NODE_DESC_MANUF_CODE", CallAPSDEDataReq: "APSDE_DATA_REQ", CallAPSDEDataInd: "APSDE_DATA_IND",
	CallNWKFormation: "NWK_FORMATION", CallNWKPermitJoining: "NWK_PERMIT_JOINING", CallNWKGetIEEEByShort: "NWK_GET_IEEE_BY_SHORT",
	CallNWKGetShortByIEEE: "NWK_GET_SHORT_BY_IEEE", CallNWKLeaveInd: "NWK_LEAVE_IND", CallNWKAddressUpdateInd: "NWK_ADDRESS_UPDATE_IND",
	CallNWKStartWithoutForm: "NWK_START_WITHOUT_FORMATION",
}

func (c CallID) String() string {
	if n, ok := callNames[c]; ok {
		return n
	}
	return fmt.Sprintf("call 0x%04x", uint16(c))
}

// ZDOCallCluster maps the ZDO request calls to their ZDO request cluster (the NCP runs ZDO itself and
// answers with a response packet of the same call id).
var ZDOCallCluster = map[CallID]uint16{
	CallZDONWKAddrReq: 0x0000, CallZDOIEEEAddrReq: 0x0001, CallZDONodeDescReq: 0x0002, CallZDOPowerDescReq: 0x0003,
	CallZDOSimpleDescReq: 0x0004, CallZDOActiveEPReq: 0x0005, CallZDOMatchDescReq: 0x0006, CallZDOBindReq: 0x0021,
	CallZDOUnbindReq: 0x0022, CallZDOMgmtLQIReq: 0x0031, CallZDOMgmtBindReq: 0x0033, CallZDOMgmtLeaveReq: 0x0034,
	CallZDOPermitJoiningReq: 0x0036, CallZDOMgmtNWKUpdateReq: 0x0038,
}

// ZDOPrefixedByDestination says which ZDO request calls carry the destination short address before the
// standard ZDO payload (the others are sent to their NWKAddrOfInterest).
func ZDOPrefixedByDestination(c CallID) bool {
	switch c {
	case CallZDONWKAddrReq, CallZDOIEEEAddrReq, CallZDOBindReq, CallZDOUnbindReq, CallZDOMgmtLQIReq, CallZDOMgmtBindReq,
		CallZDOMgmtLeaveReq, CallZDOPermitJoiningReq, CallZDOMgmtNWKUpdateReq:
		return true
	}
	return false
}

// Device roles (GET/SET_ZIGBEE_ROLE).
const (
	RoleCoordinator uint8 = 0
	RoleRouter      uint8 = 1
	RoleEndDevice   uint8 = 2
	RoleNone        uint8 = 3
)

// NCP_RESET options.
const (
	ResetNoOptions   uint8 = 0
	ResetEraseNVRAM  uint8 = 1
	ResetFactory     uint8 = 2
	ResetLockingKeys uint8 = 3
)

// Trust-center policy types (SET_TC_POLICY).
const (
	PolicyLinkKeyRequired       uint16 = 0
	PolicyICRequired            uint16 = 1
	PolicyTCRejoinEnabled       uint16 = 2
	PolicyIgnoreTCRejoin        uint16 = 3
	PolicyAPSInsecureJoin       uint16 = 4
	PolicyDisableNWKMgmtChanUpd uint16 = 5
)

// ZDO_DEV_UPDATE_IND statuses.
const (
	UpdateSecuredRejoin uint8 = 0
	UpdateUnsecuredJoin uint8 = 1
	UpdateLeft          uint8 = 2
	UpdateTCRejoin      uint8 = 3
)

// APSDE-DATA.request address modes and transmit options.
const (
	AddrModeGroup uint8 = 1
	AddrModeShort uint8 = 2
	AddrModeIEEE  uint8 = 3

	TxOptSecurity     uint8 = 0x01
	TxOptUseNWKKey    uint8 = 0x02
	TxOptAck          uint8 = 0x04
	TxOptFragmentPerm uint8 = 0x08
)

// ErrShortParams says a packet's parameters end early.
var ErrShortParams = errors.New("zboss: parameters truncated")

// reader reads little-endian fields; after the first short read every read returns zero and err is set.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = ErrShortParams
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) ieee() zcl.IEEE {
	if v := r.take(8); v != nil {
		return zcl.IEEE(binary.LittleEndian.Uint64(v))
	}
	return 0
}

func (r *reader) rest() []byte {
	v := r.b
	r.b = nil
	return v
}

func appendIEEE(b []byte, v zcl.IEEE) []byte { return binary.LittleEndian.AppendUint64(b, uint64(v)) }

// ModuleVersion is the answer to GET_MODULE_VERSION: each a u32 of four bytes major.minor.revision.commit.
type ModuleVersion struct {
	Firmware, Stack, Protocol uint32
}

// VersionString formats a ZBOSS u32 version.
func VersionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&0xFF, v>>8&0xFF, v&0xFF)
}

// Append encodes the response parameters.
func (m ModuleVersion) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, m.Firmware)
	b = binary.LittleEndian.AppendUint32(b, m.Stack)
	return binary.LittleEndian.AppendUint32(b, m.Protocol)
}

// DecodeModuleVersion decodes GET_MODULE_VERSION's response parameters.
func DecodeModuleVersion(p []byte) (ModuleVersion, error) {
	r := reader{b: p}
	m := ModuleVersion{Firmware: r.u32(), Stack: r.u32(), Protocol: r.u32()}
	return m, wrapShort(r.err, CallGetModuleVersion)
}

func wrapShort(err error, c CallID) error {
	if err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	return nil
}

// Formation is NWK_FORMATION's request (one channel page and mask).
type Formation struct {
	ChannelMask   uint32 // page 0
	ScanDuration  uint8
	ExtendedPANID zcl.IEEE // little endian on the wire
}

// Append encodes the request parameters.
func (f Formation) Append(b []byte) []byte {
	b = append(b, 1, 0) // one channel list entry: page 0
	b = binary.LittleEndian.AppendUint32(b, f.ChannelMask)
	b = append(b, f.ScanDuration, 0) // duration, distributed network flag off
	b = binary.LittleEndian.AppendUint16(b, 0)
	return appendIEEE(b, f.ExtendedPANID)
}

// DecodeFormation decodes NWK_FORMATION's request; masks of page 0 are or-ed.
func DecodeFormation(p []byte) (Formation, error) {
	r := reader{b: p}
	var f Formation
	n := r.u8()
	for range n {
		page, mask := r.u8(), r.u32()
		if page == 0 {
			f.ChannelMask |= mask
		}
	}
	f.ScanDuration = r.u8()
	r.u8()
	r.u16()
	f.ExtendedPANID = r.ieee()
	return f, wrapShort(r.err, CallNWKFormation)
}

// SimpleDesc is AF_SET_SIMPLE_DESC's request.
type SimpleDesc struct {
	Endpoint    uint8
	ProfileID   uint16
	DeviceID    uint16
	Version     uint8
	InClusters  []uint16
	OutClusters []uint16
}

// Append encodes the request parameters.
func (s SimpleDesc) Append(b []byte) []byte {
	b = append(b, s.Endpoint)
	b = binary.LittleEndian.AppendUint16(b, s.ProfileID)
	b = binary.LittleEndian.AppendUint16(b, s.DeviceID)
	b = append(b, s.Version, uint8(len(s.InClusters)), uint8(len(s.OutClusters)))
	for _, c := range s.InClusters {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	for _, c := range s.OutClusters {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

// DecodeSimpleDesc decodes AF_SET_SIMPLE_DESC's request.
func DecodeSimpleDesc(p []byte) (SimpleDesc, error) {
	r := reader{b: p}
	s := SimpleDesc{Endpoint: r.u8(), ProfileID: r.u16(), DeviceID: r.u16(), Version: r.u8()}
	nIn, nOut := int(r.u8()), int(r.u8())
	for range nIn {
		s.InClusters = append(s.InClusters, r.u16())
	}
	for range nOut {
		s.OutClusters = append(s.OutClusters, r.u16())
	}
	return s, wrapShort(r.err, CallAFSetSimpleDesc)
}

// DataRequest is APSDE_DATA_REQ's request.
type DataRequest struct {
	DstAddr     zcl.IEEE // IEEE (mode 3) or the short/group address in the low 16 bits
	ProfileID   uint16
	ClusterID   uint16
	DstEndpoint uint8 // not on the wire for group addressing
	SrcEndpoint uint8
	Radius      uint8
	AddrMode    uint8
	TxOptions   uint8
	Payload     []byte
}

// Append encodes the request parameters.
func (d DataRequest) Append(b []byte) []byte {
	params := 21
	if d.AddrMode == AddrModeGroup {
		params = 20
	}
	b = append(b, uint8(params))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(d.Payload)))
	b = appendIEEE(b, d.DstAddr)
	b = binary.LittleEndian.AppendUint16(b, d.ProfileID)
	b = binary.LittleEndian.AppendUint16(b, d.ClusterID)
	if d.AddrMode != AddrModeGroup {
		b = append(b, d.DstEndpoint)
	}
	b = append(b, d.SrcEndpoint, d.Radius, d.AddrMode, d.TxOptions, 0) // no alias
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = append(b, 0)
	return append(b, d.Payload...)
}

// DecodeDataRequest decodes APSDE_DATA_REQ's request. The payload aliases p.
func DecodeDataRequest(p []byte) (DataRequest, error) {
	r := reader{b: p}
	params := r.u8()
	n := int(r.u16())
	d := DataRequest{DstAddr: r.ieee(), ProfileID: r.u16(), ClusterID: r.u16()}
	if params >= 21 {
		d.DstEndpoint = r.u8()
	}
	d.SrcEndpoint, d.Radius, d.AddrMode, d.TxOptions = r.u8(), r.u8(), r.u8(), r.u8()
	r.u8()  // use alias
	r.u16() // alias address
	r.u8()  // alias sequence
	d.Payload = r.take(n)
	if r.err == nil && (params < 20 || params > 21 || (params == 20) != (d.AddrMode == AddrModeGroup)) {
		return d, fmt.Errorf("%s: parameter length %d with address mode %d", CallAPSDEDataReq, params, d.AddrMode)
	}
	return d, wrapShort(r.err, CallAPSDEDataReq)
}

// DataConfirm is APSDE_DATA_REQ's response parameters (the APS confirm).
type DataConfirm struct {
	DstAddr     zcl.IEEE
	DstEndpoint uint8
	SrcEndpoint uint8
	TxTime      uint32
	AddrMode    uint8
}

// Append encodes the response parameters.
func (c DataConfirm) Append(b []byte) []byte {
	b = appendIEEE(b, c.DstAddr)
	b = append(b, c.DstEndpoint, c.SrcEndpoint)
	b = binary.LittleEndian.AppendUint32(b, c.TxTime)
	return append(b, c.AddrMode)
}

// DataIndication is APSDE_DATA_IND.
type DataIndication struct {
	APSFC       uint8
	SrcShort    uint16
	DstShort    uint16
	GroupAddr   uint16
	DstEndpoint uint8
	SrcEndpoint uint8
	ClusterID   uint16
	ProfileID   uint16
	APSCounter  uint8
	SrcMAC      uint16
	DstMAC      uint16
	LQI         uint8
	RSSI        int8
	APSKey      uint8
	Payload     []byte
}

// Append encodes the indication parameters.
func (d DataIndication) Append(b []byte) []byte {
	b = append(b, 21)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(d.Payload)))
	b = append(b, d.APSFC)
	b = binary.LittleEndian.AppendUint16(b, d.SrcShort)
	b = binary.LittleEndian.AppendUint16(b, d.DstShort)
	b = binary.LittleEndian.AppendUint16(b, d.GroupAddr)
	b = append(b, d.DstEndpoint, d.SrcEndpoint)
	b = binary.LittleEndian.AppendUint16(b, d.ClusterID)
	b = binary.LittleEndian.AppendUint16(b, d.ProfileID)
	b = append(b, d.APSCounter)
	b = binary.LittleEndian.AppendUint16(b, d.SrcMAC)
	b = binary.LittleEndian.AppendUint16(b, d.DstMAC)
	b = append(b, d.LQI, byte(d.RSSI), d.APSKey)
	return append(b, d.Payload...)
}

// DecodeDataIndication decodes APSDE_DATA_IND. The payload aliases p.
func DecodeDataIndication(p []byte) (DataIndication, error) {
	r := reader{b: p}
	params := int(r.u8())
	n := int(r.u16())
	d := DataIndication{APSFC: r.u8(), SrcShort: r.u16(), DstShort: r.u16(), GroupAddr: r.u16(), DstEndpoint: r.u8(),
		SrcEndpoint: r.u8(), ClusterID: r.u16(), ProfileID: r.u16(), APSCounter: r.u8(), SrcMAC: r.u16(), DstMAC: r.u16(),
		LQI: r.u8(), RSSI: int8(r.u8()), APSKey: r.u8()}
	if params > 21 {
		r.take(params - 21) // parameters a later firmware added
	}
	d.Payload = r.take(n)
	return d, wrapShort(r.err, CallAPSDEDataInd)
}

// DevUpdate is ZDO_DEV_UPDATE_IND: a device joined, rejoined or left through the trust center.
type DevUpdate struct {
	IEEE   zcl.IEEE
	Short  uint16
	Status uint8
}

// Append encodes the indication parameters.
func (u DevUpdate) Append(b []byte) []byte {
	b = appendIEEE(b, u.IEEE)
	b = binary.LittleEndian.AppendUint16(b, u.Short)
	return append(b, u.Status)
}

// DecodeDevUpdate decodes ZDO_DEV_UPDATE_IND.
func DecodeDevUpdate(p []byte) (DevUpdate, error) {
	r := reader{b: p}
	u := DevUpdate{IEEE: r.ieee(), Short: r.u16(), Status: r.u8()}
	return u, wrapShort(r.err, CallZDODevUpdateInd)
}

// DevAnnce is ZDO_DEV_ANNCE_IND.
type DevAnnce struct {
	Short        uint16
	IEEE         zcl.IEEE
	Capabilities uint8
}

// Append encodes the indication parameters.
func (a DevAnnce) Append(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, a.Short)
	b = appendIEEE(b, a.IEEE)
	return append(b, a.Capabilities)
}

// DecodeDevAnnce decodes ZDO_DEV_ANNCE_IND.
func DecodeDevAnnce(p []byte) (DevAnnce, error) {
	r := reader{b: p}
	a := DevAnnce{Short: r.u16(), IEEE: r.ieee(), Capabilities: r.u8()}
	return a, wrapShort(r.err, CallZDODevAnnceInd)
}

// LeaveInd is NWK_LEAVE_IND.
type LeaveInd struct {
	IEEE   zcl.IEEE
	Rejoin bool
}

// Append encodes the indication parameters.
func (l LeaveInd) Append(b []byte) []byte {
	b = appendIEEE(b, l.IEEE)
	if l.Rejoin {
		return append(b, 1)
	}
	return append(b, 0)
}

// DecodeLeaveInd decodes NWK_LEAVE_IND.
func DecodeLeaveInd(p []byte) (LeaveInd, error) {
	r := reader{b: p}
	l := LeaveInd{IEEE: r.ieee(), Rejoin: r.u8() != 0}
	return l, wrapShort(r.err, CallNWKLeaveInd)
}

// DecodeIndication decodes the parameters of any indication the driver handles into its typed value
// (DataIndication, DevUpdate, DevAnnce, LeaveInd, or the reset source byte for NCP_RESET_IND). Unknown
// calls return (nil, nil).
func DecodeIndication(c CallID, p []byte) (any, error) {
	switch c {
	case CallAPSDEDataInd:
		return DecodeDataIndication(p)
	case CallZDODevUpdateInd:
		return DecodeDevUpdate(p)
	case CallZDODevAnnceInd:
		return DecodeDevAnnce(p)
	case CallNWKLeaveInd:
		return DecodeLeaveInd(p)
	case CallNCPResetInd:
		r := reader{b: p}
		src := r.u8()
		return src, wrapShort(r.err, c)
	}
	return nil, nil
}

// ReadU8, ReadU16, ReadIEEE decode the single-value response parameters (GET_JOINED, GET_PAN_ID …).
func ReadU8(p []byte) (uint8, error) {
	r := reader{b: p}
	v := r.u8()
	return v, r.err
}

// ReadU16 reads a u16 parameter.
func ReadU16(p []byte) (uint16, error) {
	r := reader{b: p}
	v := r.u16()
	return v, r.err
}

// ReadIEEE reads a little-endian 64-bit address parameter.
func ReadIEEE(p []byte) (zcl.IEEE, error) {
	r := reader{b: p}
	v := r.ieee()
	return v, r.err
}

// AppendU16 and AppendIEEE encode single-value parameters.
func AppendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }

// AppendIEEE appends a little-endian 64-bit address.
func AppendIEEE(b []byte, v zcl.IEEE) []byte { return appendIEEE(b, v) }
