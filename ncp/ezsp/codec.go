package ezsp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/otabridge/otabridge/zcl"
)

// ErrShort is wrapped by every decoding error of a parameter list that ends too early.
var ErrShort = errors.New("too short")

// DecodeError names the frame and the field a decoder stopped at.
type DecodeError struct {
	Frame string
	Field string
	Err   error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode EZSP %s: field %s: %v", e.Frame, e.Field, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// reader reads little-endian fields and remembers the first error; reads after an error return zero values.
// Trailing bytes are tolerated (some NCPs append some; bellows tolerates them too).
type reader struct {
	frame string
	b     []byte
	err   error
}

func newReader(frame string, b []byte) *reader { return &reader{frame: frame, b: b} }

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = &DecodeError{Frame: r.frame, Field: field, Err: fmt.Errorf("%w: need %d bytes, have %d", ErrShort, n, len(r.b))}
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) uint8 {
	if b := r.take(1, field); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) i8(field string) int8 { return int8(r.u8(field)) }

func (r *reader) bool(field string) bool { return r.u8(field) != 0 }

func (r *reader) u16(field string) uint16 {
	if b := r.take(2, field); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.take(4, field); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) eui64(field string) zcl.IEEE {
	if b := r.take(8, field); b != nil {
		return zcl.IEEE(binary.LittleEndian.Uint64(b))
	}
	return 0
}

func (r *reader) key(field string) (k [16]byte) {
	if b := r.take(16, field); b != nil {
		copy(k[:], b)
	}
	return k
}

// lvBytes reads a u8 length and that many bytes (copied).
func (r *reader) lvBytes(field string) []byte {
	n := int(r.u8(field + " length"))
	if b := r.take(n, field); b != nil {
		return append([]byte{}, b...)
	}
	return nil
}

func (r *reader) status(v Version, field string) Status {
	if v.Wide() {
		return Status{Value: r.u32(field), Wide: true}
	}
	return Status{Value: uint32(r.u8(field))}
}

// tag reads a message tag: u8 up to v13, u16 from v14.
func (r *reader) tag(v Version, field string) uint16 {
	if v.Wide() {
		return r.u16(field)
	}
	return uint16(r.u8(field))
}

func (r *reader) aps(field string) ApsFrame {
	return ApsFrame{
		ProfileID:   r.u16(field + ".profileId"),
		ClusterID:   r.u16(field + ".clusterId"),
		SrcEndpoint: r.u8(field + ".sourceEndpoint"),
		DstEndpoint: r.u8(field + ".destinationEndpoint"),
		Options:     r.u16(field + ".options"),
		GroupID:     r.u16(field + ".groupId"),
		Sequence:    r.u8(field + ".sequence"),
	}
}

func le16(dst []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(dst, v) }
func le32(dst []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(dst, v) }
func le64(dst []byte, v zcl.IEEE) []byte {
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}

func appendStatus(dst []byte, v Version, s Status) []byte {
	if v.Wide() {
		return le32(dst, s.Value)
	}
	return append(dst, byte(s.Value))
}

func appendTag(dst []byte, v Version, tag uint16) []byte {
	if v.Wide() {
		return le16(dst, tag)
	}
	return append(dst, byte(tag))
}

func appendLV(dst, b []byte) []byte {
	if len(b) > 255 {
		b = b[:255]
	}
	return append(append(dst, byte(len(b))), b...)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// APS options (EmberApsOption).
const (
	APSOptionEncryption            uint16 = 0x0020
	APSOptionRetry                 uint16 = 0x0040
	APSOptionEnableRouteDiscovery  uint16 = 0x0100
	APSOptionForceRouteDiscovery   uint16 = 0x0200
	APSOptionSourceEUI64           uint16 = 0x0400
	APSOptionDestinationEUI64      uint16 = 0x0800
	APSOptionEnableAddressDiscover uint16 = 0x1000
	APSOptionFragment              uint16 = 0x8000
)

// ApsFrame is EmberApsFrame (11 bytes).
type ApsFrame struct {
	ProfileID   uint16
	ClusterID   uint16
	SrcEndpoint uint8
	DstEndpoint uint8
	Options     uint16
	GroupID     uint16
	Sequence    uint8
}

// Append appends the 11-byte struct.
func (a ApsFrame) Append(dst []byte) []byte {
	dst = le16(dst, a.ProfileID)
	dst = le16(dst, a.ClusterID)
	dst = append(dst, a.SrcEndpoint, a.DstEndpoint)
	dst = le16(dst, a.Options)
	dst = le16(dst, a.GroupID)
	return append(dst, a.Sequence)
}

// NetworkParameters is EmberNetworkParameters (20 bytes).
type NetworkParameters struct {
	ExtendedPANID zcl.IEEE
	PANID         uint16
	RadioTxPower  int8
	RadioChannel  uint8
	JoinMethod    uint8
	NwkManagerID  uint16
	NwkUpdateID   uint8
	Channels      uint32
}

// Append appends the 20-byte struct.
func (p NetworkParameters) Append(dst []byte) []byte {
	dst = le64(dst, p.ExtendedPANID)
	dst = le16(dst, p.PANID)
	dst = append(dst, byte(p.RadioTxPower), p.RadioChannel, p.JoinMethod)
	dst = le16(dst, p.NwkManagerID)
	dst = append(dst, p.NwkUpdateID)
	return le32(dst, p.Channels)
}

func (r *reader) networkParameters(field string) NetworkParameters {
	return NetworkParameters{
		ExtendedPANID: r.eui64(field + ".extendedPanId"),
		PANID:         r.u16(field + ".panId"),
		RadioTxPower:  r.i8(field + ".radioTxPower"),
		RadioChannel:  r.u8(field + ".radioChannel"),
		JoinMethod:    r.u8(field + ".joinMethod"),
		NwkManagerID:  r.u16(field + ".nwkManagerId"),
		NwkUpdateID:   r.u8(field + ".nwkUpdateId"),
		Channels:      r.u32(field + ".channels"),
	}
}

// InitialSecurityState is EmberInitialSecurityState (43 bytes).
type InitialSecurityState struct {
	Bitmask              uint16
	PreconfiguredKey     [16]byte
	NetworkKey           [16]byte
	NetworkKeySequence   uint8
	PreconfiguredTCEUI64 zcl.IEEE
}

// Initial security bitmask bits (EmberInitialSecurityBitmask).
const (
	SecurityTrustCenterGlobalLinkKey uint16 = 0x0004
	SecurityHavePreconfiguredKey     uint16 = 0x0100
	SecurityHaveNetworkKey           uint16 = 0x0200
	SecurityRequireEncryptedKey      uint16 = 0x0800
	SecurityNoFrameCounterReset      uint16 = 0x1000
)

// WellKnownLinkKey is the global trust-center link key "ZigBeeAlliance09".
var WellKnownLinkKey = [16]byte{'Z', 'i', 'g', 'B', 'e', 'e', 'A', 'l', 'l', 'i', 'a', 'n', 'c', 'e', '0', '9'}

// Append appends the 43-byte struct.
func (s InitialSecurityState) Append(dst []byte) []byte {
	dst = le16(dst, s.Bitmask)
	dst = append(dst, s.PreconfiguredKey[:]...)
	dst = append(dst, s.NetworkKey[:]...)
	dst = append(dst, s.NetworkKeySequence)
	return le64(dst, s.PreconfiguredTCEUI64)
}

// ---- commands (host to NCP) ----

// VersionCommand asks the NCP to speak a protocol version.
type VersionCommand struct{ Desired uint8 }

// VersionResponse is the NCP's answer to version.
type VersionResponse struct {
	ProtocolVersion uint8
	StackType       uint8  // 2 = mesh
	StackVersion    uint16 // nibbles: 0x7410 = 7.4.1.0
}

// EmberZNet formats StackVersion as the EmberZNet release it encodes ("7.4.1.0").
func (r VersionResponse) EmberZNet() string {
	s := r.StackVersion
	return fmt.Sprintf("%d.%d.%d.%d", s>>12, s>>8&0xF, s>>4&0xF, s&0xF)
}

// ConfigurationValue is setConfigurationValue's parameters.
type ConfigurationValue struct {
	ID    uint8
	Value uint16
}

// Policy is setPolicy's parameters.
type Policy struct {
	ID       uint8
	Decision uint8
}

// ValueSetting is setValue's parameters (and getValue's answer value).
type ValueSetting struct {
	ID    uint8
	Value []byte
}

// AddEndpoint is addEndpoint's parameters.
type AddEndpoint struct {
	Endpoint       uint8
	ProfileID      uint16
	DeviceID       uint16
	DeviceVersion  uint8
	InputClusters  []uint16
	OutputClusters []uint16
}

// SendUnicast is sendUnicast's parameters.
type SendUnicast struct {
	Type    uint8 // 0 = direct
	Dest    uint16
	Aps     ApsFrame
	Tag     uint16 // u8 on the wire up to v13
	Message []byte
}

// SendBroadcast is sendBroadcast's parameters. Alias and NwkSequence exist from v14 on (alias 0xFFFF = none).
type SendBroadcast struct {
	Alias       uint16
	Dest        uint16
	NwkSequence uint8
	Aps         ApsFrame
	Radius      uint8
	Tag         uint16
	Message     []byte
}

// SetConcentrator is setConcentrator's parameters.
type SetConcentrator struct {
	On                       bool
	Type                     uint16 // 0xFFF8 low-RAM, 0xFFF9 high-RAM
	MinTime, MaxTime         uint16
	RouteErrorThreshold      uint8
	DeliveryFailureThreshold uint8
	MaxHops                  uint8
}

// AnyEUI64 is the wildcard EUI64 (all ones) a transient link key is imported for when any joining device may
// use it (herdsman's ember adapter imports the well-known key this way before permit join).
const AnyEUI64 zcl.IEEE = 0xFFFFFFFFFFFFFFFF

// ImportTransientKey is importTransientKey's parameters (v13+). Flags (sl_zb_sec_man_flags_t) is on the wire
// in v13 only: EmberZNet 8.x (EZSP v14+) dropped it.
type ImportTransientKey struct {
	EUI64 zcl.IEEE
	Key   [16]byte
	Flags uint8
}

// ---- responses and callbacks (NCP to host) ----

// SendResponse answers sendUnicast and sendBroadcast.
type SendResponse struct {
	Status   Status
	Sequence uint8 // APS sequence number
}

// GetNetworkParametersResponse answers getNetworkParameters.
type GetNetworkParametersResponse struct {
	Status     Status
	NodeType   uint8
	Parameters NetworkParameters
}

// GetValueResponse answers getValue.
type GetValueResponse struct {
	Status Status
	Value  []byte
}

// GetConfigurationValueResponse answers getConfigurationValue.
type GetConfigurationValueResponse struct {
	Status Status
	Value  uint16
}

// LookupEUI64Response answers lookupEui64ByNodeId.
type LookupEUI64Response struct {
	Status Status
	EUI64  zcl.IEEE
}

// Incoming message types (EmberIncomingMessageType).
const (
	IncomingUnicast           uint8 = 0
	IncomingUnicastReply      uint8 = 1
	IncomingMulticast         uint8 = 2
	IncomingMulticastLoopback uint8 = 3
	IncomingBroadcast         uint8 = 4
	IncomingBroadcastLoopback uint8 = 5
)

// IncomingMessage is incomingMessageHandler. SenderEUI64 and Timestamp exist from v14 on (the RxPacketInfo
// struct); up to v13 the EUI64 comes, when at all, in an incomingSenderEui64Handler just before.
type IncomingMessage struct {
	Type         uint8
	Aps          ApsFrame
	LQI          uint8
	RSSI         int8
	Sender       uint16
	SenderEUI64  zcl.IEEE
	BindingIndex uint8
	AddressIndex uint8
	Timestamp    uint32
	Message      []byte
}

// Outgoing message types (EmberOutgoingMessageType).
const (
	OutgoingDirect    uint8 = 0
	OutgoingMulticast uint8 = 3
	OutgoingBroadcast uint8 = 6
)

// MessageSent is messageSentHandler: the final fate of a sendUnicast/sendBroadcast.
type MessageSent struct {
	Status  Status
	Type    uint8
	Dest    uint16
	Aps     ApsFrame
	Tag     uint16
	Message []byte
}

// Trust-center device update statuses (EmberDeviceUpdate).
const (
	DeviceSecuredRejoin   uint8 = 0
	DeviceUnsecuredJoin   uint8 = 1
	DeviceLeft            uint8 = 2
	DeviceUnsecuredRejoin uint8 = 3
)

// Join decisions (EmberJoinDecision).
const (
	JoinUsePreconfiguredKey uint8 = 0
	JoinSendKeyInTheClear   uint8 = 1
	JoinDeny                uint8 = 2
	JoinNoAction            uint8 = 3
)

// TrustCenterJoin is trustCenterJoinHandler.
type TrustCenterJoin struct {
	NodeID   uint16
	EUI64    zcl.IEEE
	Status   uint8 // Device*
	Decision uint8 // Join*
	ParentID uint16
}

// ChildJoin is childJoinHandler.
type ChildJoin struct {
	Index    uint8
	Joining  bool
	ChildID  uint16
	EUI64    zcl.IEEE
	NodeType uint8
}

// ---- encoders ----

// Append appends the parameters.
func (c VersionCommand) Append(dst []byte) []byte { return append(dst, c.Desired) }

// Append appends the parameters.
func (r VersionResponse) Append(dst []byte) []byte {
	return le16(append(dst, r.ProtocolVersion, r.StackType), r.StackVersion)
}

// Append appends the parameters.
func (c ConfigurationValue) Append(dst []byte) []byte { return le16(append(dst, c.ID), c.Value) }

// Append appends the parameters.
func (c Policy) Append(dst []byte) []byte { return append(dst, c.ID, c.Decision) }

// Append appends the parameters.
func (c ValueSetting) Append(dst []byte) []byte { return appendLV(append(dst, c.ID), c.Value) }

// Append appends the parameters.
func (c AddEndpoint) Append(dst []byte) []byte {
	dst = append(dst, c.Endpoint)
	dst = le16(dst, c.ProfileID)
	dst = le16(dst, c.DeviceID)
	dst = append(dst, c.DeviceVersion, byte(len(c.InputClusters)), byte(len(c.OutputClusters)))
	for _, id := range c.InputClusters {
		dst = le16(dst, id)
	}
	for _, id := range c.OutputClusters {
		dst = le16(dst, id)
	}
	return dst
}

// Append appends the parameters in version v's layout.
func (c SendUnicast) Append(dst []byte, v Version) []byte {
	dst = le16(append(dst, c.Type), c.Dest)
	dst = c.Aps.Append(dst)
	dst = appendTag(dst, v, c.Tag)
	return appendLV(dst, c.Message)
}

// Append appends the parameters in version v's layout.
func (c SendBroadcast) Append(dst []byte, v Version) []byte {
	if v.Wide() {
		dst = le16(dst, c.Alias)
		dst = le16(dst, c.Dest)
		dst = append(dst, c.NwkSequence)
	} else {
		dst = le16(dst, c.Dest)
	}
	dst = c.Aps.Append(dst)
	dst = append(dst, c.Radius)
	dst = appendTag(dst, v, c.Tag)
	return appendLV(dst, c.Message)
}

// Append appends the parameters.
func (c SetConcentrator) Append(dst []byte) []byte {
	dst = append(dst, boolByte(c.On))
	dst = le16(dst, c.Type)
	dst = le16(dst, c.MinTime)
	dst = le16(dst, c.MaxTime)
	return append(dst, c.RouteErrorThreshold, c.DeliveryFailureThreshold, c.MaxHops)
}

// Append appends the parameters in version v's layout (no flags byte from v14 on).
func (c ImportTransientKey) Append(dst []byte, v Version) []byte {
	dst = le64(dst, c.EUI64)
	dst = append(dst, c.Key[:]...)
	if v.Wide() {
		return dst
	}
	return append(dst, c.Flags)
}

// Append appends the parameters in version v's layout.
func (r SendResponse) Append(dst []byte, v Version) []byte {
	return append(appendStatus(dst, v, r.Status), r.Sequence)
}

// Append appends the parameters in version v's layout.
func (r GetNetworkParametersResponse) Append(dst []byte, v Version) []byte {
	return r.Parameters.Append(append(appendStatus(dst, v, r.Status), r.NodeType))
}

// Append appends the parameters in version v's layout.
func (r GetValueResponse) Append(dst []byte, v Version) []byte {
	return appendLV(appendStatus(dst, v, r.Status), r.Value)
}

// Append appends the parameters in version v's layout.
func (r GetConfigurationValueResponse) Append(dst []byte, v Version) []byte {
	return le16(appendStatus(dst, v, r.Status), r.Value)
}

// Append appends the parameters in version v's layout.
func (r LookupEUI64Response) Append(dst []byte, v Version) []byte {
	return le64(appendStatus(dst, v, r.Status), r.EUI64)
}

// Append appends the parameters in version v's layout.
func (m IncomingMessage) Append(dst []byte, v Version) []byte {
	dst = append(dst, m.Type)
	dst = m.Aps.Append(dst)
	if v.Wide() {
		dst = le16(dst, m.Sender)
		dst = le64(dst, m.SenderEUI64)
		dst = append(dst, m.BindingIndex, m.AddressIndex, m.LQI, byte(m.RSSI))
		dst = le32(dst, m.Timestamp)
	} else {
		dst = append(dst, m.LQI, byte(m.RSSI))
		dst = le16(dst, m.Sender)
		dst = append(dst, m.BindingIndex, m.AddressIndex)
	}
	return appendLV(dst, m.Message)
}

// Append appends the parameters in version v's layout.
func (m MessageSent) Append(dst []byte, v Version) []byte {
	if v.Wide() {
		dst = appendStatus(dst, v, m.Status)
	}
	dst = le16(append(dst, m.Type), m.Dest)
	dst = m.Aps.Append(dst)
	dst = appendTag(dst, v, m.Tag)
	if !v.Wide() {
		dst = appendStatus(dst, v, m.Status)
	}
	return appendLV(dst, m.Message)
}

// Append appends the parameters.
func (m TrustCenterJoin) Append(dst []byte) []byte {
	dst = le64(le16(dst, m.NodeID), m.EUI64)
	return le16(append(dst, m.Status, m.Decision), m.ParentID)
}

// Append appends the parameters.
func (m ChildJoin) Append(dst []byte) []byte {
	dst = le16(append(dst, m.Index, boolByte(m.Joining)), m.ChildID)
	return append(le64(dst, m.EUI64), m.NodeType)
}

// AppendStatusParams appends a status-only parameter list.
func AppendStatusParams(dst []byte, v Version, s Status) []byte { return appendStatus(dst, v, s) }

// ---- decoders ----

func done[T any](r *reader, v T) (T, error) {
	if r.err != nil {
		var zero T
		return zero, r.err
	}
	return v, nil
}

// DecodeVersionCommand decodes version's parameters.
func DecodeVersionCommand(b []byte) (VersionCommand, error) {
	r := newReader("version", b)
	return done(r, VersionCommand{Desired: r.u8("desiredProtocolVersion")})
}

// DecodeVersionResponse decodes version's answer.
func DecodeVersionResponse(b []byte) (VersionResponse, error) {
	r := newReader("version response", b)
	return done(r, VersionResponse{ProtocolVersion: r.u8("protocolVersion"), StackType: r.u8("stackType"), StackVersion: r.u16("stackVersion")})
}

// DecodeStatus decodes a status-only parameter list (or the leading status of one).
func DecodeStatus(b []byte, v Version, frame string) (Status, error) {
	r := newReader(frame, b)
	return done(r, r.status(v, "status"))
}

// DecodeConfigurationValue decodes setConfigurationValue's parameters.
func DecodeConfigurationValue(b []byte) (ConfigurationValue, error) {
	r := newReader("setConfigurationValue", b)
	return done(r, ConfigurationValue{ID: r.u8("configId"), Value: r.u16("value")})
}

// DecodePolicy decodes setPolicy's parameters.
func DecodePolicy(b []byte) (Policy, error) {
	r := newReader("setPolicy", b)
	return done(r, Policy{ID: r.u8("policyId"), Decision: r.u8("decisionId")})
}

// DecodeValueSetting decodes setValue's parameters.
func DecodeValueSetting(b []byte) (ValueSetting, error) {
	r := newReader("setValue", b)
	return done(r, ValueSetting{ID: r.u8("valueId"), Value: r.lvBytes("value")})
}

// DecodeAddEndpoint decodes addEndpoint's parameters.
func DecodeAddEndpoint(b []byte) (AddEndpoint, error) {
	r := newReader("addEndpoint", b)
	c := AddEndpoint{Endpoint: r.u8("endpoint"), ProfileID: r.u16("profileId"), DeviceID: r.u16("deviceId"), DeviceVersion: r.u8("deviceVersion")}
	nIn, nOut := int(r.u8("inputClusterCount")), int(r.u8("outputClusterCount"))
	for range nIn {
		if r.err != nil {
			break
		}
		c.InputClusters = append(c.InputClusters, r.u16("inputClusterList"))
	}
	for range nOut {
		if r.err != nil {
			break
		}
		c.OutputClusters = append(c.OutputClusters, r.u16("outputClusterList"))
	}
	return done(r, c)
}

// DecodeSendUnicast decodes sendUnicast's parameters.
func DecodeSendUnicast(b []byte, v Version) (SendUnicast, error) {
	r := newReader("sendUnicast", b)
	return done(r, SendUnicast{Type: r.u8("type"), Dest: r.u16("indexOrDestination"), Aps: r.aps("apsFrame"), Tag: r.tag(v, "messageTag"), Message: r.lvBytes("message")})
}

// DecodeSendBroadcast decodes sendBroadcast's parameters.
func DecodeSendBroadcast(b []byte, v Version) (SendBroadcast, error) {
	r := newReader("sendBroadcast", b)
	var c SendBroadcast
	if v.Wide() {
		c.Alias, c.Dest, c.NwkSequence = r.u16("alias"), r.u16("destination"), r.u8("nwkSequence")
	} else {
		c.Alias, c.Dest = 0xFFFF, r.u16("destination")
	}
	c.Aps, c.Radius, c.Tag, c.Message = r.aps("apsFrame"), r.u8("radius"), r.tag(v, "messageTag"), r.lvBytes("message")
	return done(r, c)
}

// DecodeNetworkParameters decodes formNetwork's parameters.
func DecodeNetworkParameters(b []byte) (NetworkParameters, error) {
	r := newReader("formNetwork", b)
	return done(r, r.networkParameters("parameters"))
}

// DecodeInitialSecurityState decodes setInitialSecurityState's parameters.
func DecodeInitialSecurityState(b []byte) (InitialSecurityState, error) {
	r := newReader("setInitialSecurityState", b)
	return done(r, InitialSecurityState{Bitmask: r.u16("bitmask"), PreconfiguredKey: r.key("preconfiguredKey"),
		NetworkKey: r.key("networkKey"), NetworkKeySequence: r.u8("networkKeySequenceNumber"), PreconfiguredTCEUI64: r.eui64("preconfiguredTrustCenterEui64")})
}

// DecodeSetConcentrator decodes setConcentrator's parameters.
func DecodeSetConcentrator(b []byte) (SetConcentrator, error) {
	r := newReader("setConcentrator", b)
	return done(r, SetConcentrator{On: r.bool("on"), Type: r.u16("concentratorType"), MinTime: r.u16("minTime"), MaxTime: r.u16("maxTime"),
		RouteErrorThreshold: r.u8("routeErrorThreshold"), DeliveryFailureThreshold: r.u8("deliveryFailureThreshold"), MaxHops: r.u8("maxHops")})
}

// DecodeImportTransientKey decodes importTransientKey's parameters in version v's layout.
func DecodeImportTransientKey(b []byte, v Version) (ImportTransientKey, error) {
	r := newReader("importTransientKey", b)
	c := ImportTransientKey{EUI64: r.eui64("eui64"), Key: r.key("plaintextKey")}
	if !v.Wide() {
		c.Flags = r.u8("flags")
	}
	return done(r, c)
}

// DecodeU8 decodes a one-byte parameter list (networkState, maximumPayloadLength, permitJoining's duration …).
func DecodeU8(b []byte, frame, field string) (uint8, error) {
	r := newReader(frame, b)
	return done(r, r.u8(field))
}

// DecodeU16 decodes a two-byte parameter list (getNodeId, lookupEui64ByNodeId's node id, networkInit's bitmask).
func DecodeU16(b []byte, frame, field string) (uint16, error) {
	r := newReader(frame, b)
	return done(r, r.u16(field))
}

// DecodeU32 decodes a four-byte parameter list (setSourceRouteDiscoveryMode's answer).
func DecodeU32(b []byte, frame, field string) (uint32, error) {
	r := newReader(frame, b)
	return done(r, r.u32(field))
}

// DecodeEUI64 decodes an EUI64-only parameter list (getEui64, incomingSenderEui64Handler).
func DecodeEUI64(b []byte, frame string) (zcl.IEEE, error) {
	r := newReader(frame, b)
	return done(r, r.eui64("eui64"))
}

// DecodeSendResponse decodes sendUnicast's or sendBroadcast's answer.
func DecodeSendResponse(b []byte, v Version) (SendResponse, error) {
	r := newReader("send response", b)
	return done(r, SendResponse{Status: r.status(v, "status"), Sequence: r.u8("sequence")})
}

// DecodeGetNetworkParametersResponse decodes getNetworkParameters' answer.
func DecodeGetNetworkParametersResponse(b []byte, v Version) (GetNetworkParametersResponse, error) {
	r := newReader("getNetworkParameters response", b)
	return done(r, GetNetworkParametersResponse{Status: r.status(v, "status"), NodeType: r.u8("nodeType"), Parameters: r.networkParameters("parameters")})
}

// DecodeGetValueResponse decodes getValue's answer.
func DecodeGetValueResponse(b []byte, v Version) (GetValueResponse, error) {
	r := newReader("getValue response", b)
	return done(r, GetValueResponse{Status: r.status(v, "status"), Value: r.lvBytes("value")})
}

// DecodeGetConfigurationValueResponse decodes getConfigurationValue's answer.
func DecodeGetConfigurationValueResponse(b []byte, v Version) (GetConfigurationValueResponse, error) {
	r := newReader("getConfigurationValue response", b)
	return done(r, GetConfigurationValueResponse{Status: r.status(v, "status"), Value: r.u16("value")})
}

// DecodeLookupEUI64Response decodes lookupEui64ByNodeId's answer.
func DecodeLookupEUI64Response(b []byte, v Version) (LookupEUI64Response, error) {
	r := newReader("lookupEui64ByNodeId response", b)
	return done(r, LookupEUI64Response{Status: r.status(v, "status"), EUI64: r.eui64("eui64")})
}

// DecodeIncomingMessage decodes incomingMessageHandler in version v's layout.
func DecodeIncomingMessage(b []byte, v Version) (IncomingMessage, error) {
	r := newReader("incomingMessageHandler", b)
	m := IncomingMessage{Type: r.u8("type"), Aps: r.aps("apsFrame")}
	if v.Wide() {
		m.Sender, m.SenderEUI64 = r.u16("packetInfo.senderShortId"), r.eui64("packetInfo.senderLongId")
		m.BindingIndex, m.AddressIndex = r.u8("packetInfo.bindingIndex"), r.u8("packetInfo.addressIndex")
		m.LQI, m.RSSI, m.Timestamp = r.u8("packetInfo.lastHopLqi"), r.i8("packetInfo.lastHopRssi"), r.u32("packetInfo.lastHopTimestamp")
	} else {
		m.LQI, m.RSSI, m.Sender = r.u8("lastHopLqi"), r.i8("lastHopRssi"), r.u16("sender")
		m.BindingIndex, m.AddressIndex = r.u8("bindingIndex"), r.u8("addressIndex")
	}
	m.Message = r.lvBytes("message")
	return done(r, m)
}

// DecodeMessageSent decodes messageSentHandler in version v's layout.
func DecodeMessageSent(b []byte, v Version) (MessageSent, error) {
	r := newReader("messageSentHandler", b)
	var m MessageSent
	if v.Wide() {
		m.Status = r.status(v, "status")
	}
	m.Type, m.Dest, m.Aps, m.Tag = r.u8("type"), r.u16("indexOrDestination"), r.aps("apsFrame"), r.tag(v, "messageTag")
	if !v.Wide() {
		m.Status = r.status(v, "status")
	}
	m.Message = r.lvBytes("message")
	return done(r, m)
}

// DecodeTrustCenterJoin decodes trustCenterJoinHandler.
func DecodeTrustCenterJoin(b []byte) (TrustCenterJoin, error) {
	r := newReader("trustCenterJoinHandler", b)
	return done(r, TrustCenterJoin{NodeID: r.u16("newNodeId"), EUI64: r.eui64("newNodeEui64"), Status: r.u8("status"),
		Decision: r.u8("policyDecision"), ParentID: r.u16("parentOfNewNodeId")})
}

// DecodeChildJoin decodes childJoinHandler.
func DecodeChildJoin(b []byte) (ChildJoin, error) {
	r := newReader("childJoinHandler", b)
	return done(r, ChildJoin{Index: r.u8("index"), Joining: r.bool("joining"), ChildID: r.u16("childId"), EUI64: r.eui64("childEui64"), NodeType: r.u8("childType")})
}

// DecodeResponse decodes the parameters of an NCP-to-host frame (a command's answer or a callback) of one of
// the frame IDs otabridge uses into its Go type. It is what the driver and the fuzz target use; an unknown
// ID gives an error.
func DecodeResponse(id uint16, b []byte, v Version) (any, error) {
	name := FrameName(id)
	switch id {
	case IDVersion:
		return DecodeVersionResponse(b)
	case IDAddEndpoint, IDSetConcentrator, IDNetworkInit, IDFormNetwork, IDLeaveNetwork, IDPermitJoining,
		IDSetConfigurationValue, IDSetPolicy, IDSetValue, IDSetInitialSecurityState, IDStackStatusHandler:
		return DecodeStatus(b, v, name)
	case IDImportTransientKey:
		return DecodeStatus(b, WideVersion, name) // sl_Status in every version that has the command
	case IDInvalidCommand, IDNetworkState, IDMaximumPayloadLength:
		return DecodeU8(b, name, "value")
	case IDGetNodeID:
		return DecodeU16(b, name, "nodeId")
	case IDSetSourceRouteDiscoveryMode:
		return DecodeU32(b, name, "remainingTime")
	case IDGetEUI64, IDIncomingSenderEUI64Handler:
		return DecodeEUI64(b, name)
	case IDSendUnicast, IDSendBroadcast:
		return DecodeSendResponse(b, v)
	case IDReadAndClearCounters:
		return DecodeCounters(b)
	case IDGetNetworkParameters:
		return DecodeGetNetworkParametersResponse(b, v)
	case IDGetValue:
		return DecodeGetValueResponse(b, v)
	case IDGetConfigurationValue:
		return DecodeGetConfigurationValueResponse(b, v)
	case IDLookupEUI64ByNodeID:
		return DecodeLookupEUI64Response(b, v)
	case IDIncomingMessageHandler:
		return DecodeIncomingMessage(b, v)
	case IDMessageSentHandler:
		return DecodeMessageSent(b, v)
	case IDTrustCenterJoinHandler:
		return DecodeTrustCenterJoin(b)
	case IDChildJoinHandler:
		return DecodeChildJoin(b)
	case IDNop:
		return struct{}{}, nil
	}
	return nil, fmt.Errorf("decode EZSP response: unknown frame id 0x%04x", id)
}

// DecodeCommand decodes the parameters of a host-to-NCP command otabridge sends (the fake stick's side).
func DecodeCommand(id uint16, b []byte, v Version) (any, error) {
	name := FrameName(id)
	switch id {
	case IDVersion:
		return DecodeVersionCommand(b)
	case IDAddEndpoint:
		return DecodeAddEndpoint(b)
	case IDSetConfigurationValue:
		return DecodeConfigurationValue(b)
	case IDGetConfigurationValue, IDGetValue, IDPermitJoining, IDSetSourceRouteDiscoveryMode:
		return DecodeU8(b, name, "id")
	case IDSetPolicy:
		return DecodePolicy(b)
	case IDSetValue:
		return DecodeValueSetting(b)
	case IDNetworkInit, IDLookupEUI64ByNodeID:
		return DecodeU16(b, name, "value")
	case IDFormNetwork:
		return DecodeNetworkParameters(b)
	case IDSetInitialSecurityState:
		return DecodeInitialSecurityState(b)
	case IDSetConcentrator:
		return DecodeSetConcentrator(b)
	case IDImportTransientKey:
		return DecodeImportTransientKey(b, v)
	case IDSendUnicast:
		return DecodeSendUnicast(b, v)
	case IDSendBroadcast:
		return DecodeSendBroadcast(b, v)
	case IDNop, IDNetworkState, IDGetEUI64, IDGetNodeID, IDGetNetworkParameters, IDMaximumPayloadLength, IDLeaveNetwork,
		IDCallback, IDReadAndClearCounters, IDClearTransientLinkKeys, IDBroadcastNetworkKeySwitch, IDClearKeyTable,
		IDGetTokenCount, IDResetNode, IDGetNetworkKeyInfo, IDGetCurrentSecurityState:
		return struct{}{}, nil
	case IDGetExtendedValue:
		return DecodeExtendedValueQuery(b)
	case IDSetManufacturerCode, IDTokenFactoryReset:
		return DecodeU16(b, name, "value")
	case IDSendMulticast:
		return DecodeSendMulticast(b, v)
	case IDSendRawMessage:
		return DecodeRawMessage(b, v)
	case IDLookupNodeIDByEUI64:
		return DecodeEUI64(b, name)
	case IDSetMulticastTableEntry:
		return DecodeMulticastTableEntry(b)
	case IDBroadcastNextNetworkKey:
		r := newReader(name, b)
		return done(r, r.key("key"))
	case IDEraseKeyTableEntry, IDGetMulticastTableEntry, IDSetRadioIeee802154CcaMode, IDSetRadioPower, IDSetLogicalAndRadioChannel,
		IDGetTokenInfo, IDExportLinkKeyByIndex:
		return DecodeU8(b, name, "value")
	case IDSetExtendedTimeout:
		return DecodeSetExtendedTimeout(b)
	case IDGetTokenData:
		return DecodeTokenQuery(b, false)
	case IDSetTokenData:
		return DecodeTokenQuery(b, true)
	case IDGetApsKeyInfo, IDExportKey:
		return DecodeSecManContextCommand(b, name)
	case IDImportLinkKey:
		return DecodeImportLinkKey(b)
	case IDImportKey:
		return DecodeImportKey(b)
	}
	return nil, fmt.Errorf("decode EZSP command 0x%04x: %w", id, ErrUnknownFrameID)
}

// ErrUnknownFrameID is wrapped by DecodeCommand for a frame id it has no layout for.
var ErrUnknownFrameID = errors.New("unknown frame id")
