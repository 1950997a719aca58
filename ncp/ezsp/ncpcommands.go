package ezsp

import (
	"encoding/binary"
	"fmt"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// This file holds the layouts of the commands other EZSP hosts (zigbee-herdsman's ember and ezsp adapters)
// send and otabridge's own driver does not: the security manager (v13+), key table, multicast table,
// extended values, tokens and radio settings. The fake stick decodes them with DecodeCommand and answers with
// the encoders here. Layouts: UG100 / ezsp-protocol, checked against herdsman 10.9.5's EZSP layer.

// Security manager key types (sl_zb_sec_man_key_type_t).
const (
	SecManKeyNone      uint8 = 0
	SecManKeyNetwork   uint8 = 1
	SecManKeyTCLink    uint8 = 2
	SecManKeyAppLink   uint8 = 4
	SecManKeyInternal  uint8 = 8 // not exportable
	SecManKeyZLLEncryp uint8 = 5
)

// SecManContext is sl_zb_sec_man_context_t (18 bytes).
type SecManContext struct {
	CoreKeyType         uint8
	KeyIndex            uint8
	DerivedType         uint16
	EUI64               zcl.IEEE
	MultiNetworkIndex   uint8
	Flags               uint8
	PSAKeyAlgPermission uint32
}

// Append appends the 18-byte struct.
func (c SecManContext) Append(dst []byte) []byte {
	dst = le16(append(dst, c.CoreKeyType, c.KeyIndex), c.DerivedType)
	dst = append(le64(dst, c.EUI64), c.MultiNetworkIndex, c.Flags)
	return le32(dst, c.PSAKeyAlgPermission)
}

func (r *reader) secManContext(field string) SecManContext {
	return SecManContext{CoreKeyType: r.u8(field + ".coreKeyType"), KeyIndex: r.u8(field + ".keyIndex"),
		DerivedType: r.u16(field + ".derivedType"), EUI64: r.eui64(field + ".eui64"),
		MultiNetworkIndex: r.u8(field + ".multiNetworkIndex"), Flags: r.u8(field + ".flags"),
		PSAKeyAlgPermission: r.u32(field + ".psaKeyAlgPermission")}
}

// NetworkKeyInfo is sl_zb_sec_man_network_key_info_t (8 bytes).
type NetworkKeyInfo struct {
	KeySet          bool
	AltKeySet       bool
	KeySequence     uint8
	AltKeySequence  uint8
	KeyFrameCounter uint32
}

// Append appends the 8-byte struct.
func (k NetworkKeyInfo) Append(dst []byte) []byte {
	dst = append(dst, boolByte(k.KeySet), boolByte(k.AltKeySet), k.KeySequence, k.AltKeySequence)
	return le32(dst, k.KeyFrameCounter)
}

// APSKeyMetadata is sl_zb_sec_man_aps_key_metadata_t (12 bytes).
type APSKeyMetadata struct {
	Bitmask              uint16
	OutgoingFrameCounter uint32
	IncomingFrameCounter uint32
	TTLSeconds           uint16
}

// Append appends the 12-byte struct.
func (m APSKeyMetadata) Append(dst []byte) []byte {
	dst = le32(le16(dst, m.Bitmask), m.OutgoingFrameCounter)
	return le16(le32(dst, m.IncomingFrameCounter), m.TTLSeconds)
}

// ExportKey is exportKey's and getApsKeyInfo's parameters.
type ExportKey struct{ Context SecManContext }

// ImportKey is importKey's parameters.
type ImportKey struct {
	Context SecManContext
	Key     [16]byte
}

// ImportLinkKey is importLinkKey's parameters.
type ImportLinkKey struct {
	Index uint8
	EUI64 zcl.IEEE
	Key   [16]byte
}

// ExtendedValueQuery is getExtendedValue's parameters.
type ExtendedValueQuery struct {
	ValueID         uint8
	Characteristics uint32
}

// Extended value ids (EzspExtendedValueId).
const ExtValueEndpointFlags uint8 = 0x00

// MulticastTableEntry is setMulticastTableEntry's parameters.
type MulticastTableEntry struct {
	Index        uint8
	MulticastID  uint16
	Endpoint     uint8
	NetworkIndex uint8
}

// SetExtendedTimeout is setExtendedTimeout's parameters.
type SetExtendedTimeout struct {
	EUI64    zcl.IEEE
	Extended bool
}

// TokenQuery is getTokenData's parameters (and the head of setTokenData's).
type TokenQuery struct {
	Token uint32
	Index uint32
	Data  []byte // setTokenData only
}

// SendMulticast is sendMulticast's parameters (v13: nonmember radius; v14+: broadcast address, alias and NWK
// sequence, 16-bit tag).
type SendMulticast struct {
	Aps             ApsFrame
	Hops            uint8
	NonmemberRadius uint8
	BroadcastAddr   uint16
	Alias           uint16
	NwkSequence     uint8
	Tag             uint16
	Message         []byte
}

// RawMessage is sendRawMessage's parameters (v14+ adds priority and useCca).
type RawMessage struct {
	Message  []byte
	Priority uint8
	UseCCA   bool
}

// EmberCounterCount is the number of counters readAndClearCounters returns (EMBER_COUNTER_TYPE_COUNT).
const EmberCounterCount = 42

// Counter indexes (EmberCounterType) in readAndClearCounters' response.
const (
	CounterMACTxUnicastSuccess = 3  // unicasts the MAC delivered (a MAC ack came)
	CounterMACTxUnicastRetry   = 4  // retransmissions after a missing MAC ack (CSMA failures not counted)
	CounterMACTxUnicastFailed  = 5  // unicasts the MAC gave up on
	CounterAPSRxBroadcast      = 6  // APS data broadcasts received
	CounterAPSTxBroadcast      = 7  // APS data broadcasts sent
	CounterAPSRxUnicast        = 8  // APS data unicasts received
	CounterAPSTxUnicastOK      = 9  // APS data unicasts delivered
	CounterAPSTxUnicastFailed  = 11 // APS data unicasts that failed
	CounterPHYCCAFail          = 32 // transmissions not made because CCA found the channel busy
)

// Counters is readAndClearCounters' response: one saturating u16 per EmberCounterType, in order. Stacks
// differ in how many they have; every index up to CounterPHYCCAFail is required.
type Counters []uint16

// DecodeCounters decodes readAndClearCounters' (or readCounters') response.
func DecodeCounters(b []byte) (Counters, error) {
	if len(b)%2 != 0 || len(b)/2 <= CounterPHYCCAFail {
		return nil, fmt.Errorf("readAndClearCounters: %d bytes: want an even number, at least %d", len(b), 2*(CounterPHYCCAFail+1))
	}
	c := make(Counters, len(b)/2)
	for i := range c {
		c[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return c, nil
}

// Append encodes the counters.
func (c Counters) Append(b []byte) []byte {
	for _, v := range c {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

// MAC returns the MAC unicast counts (ncp.MACCounts).
func (c Counters) MAC() ncp.MACCounts {
	return ncp.MACCounts{Unicasts: int(c[CounterMACTxUnicastSuccess]) + int(c[CounterMACTxUnicastFailed]),
		Retries: int(c[CounterMACTxUnicastRetry]), Failed: int(c[CounterMACTxUnicastFailed]), CCAFailures: int(c[CounterPHYCCAFail])}
}

// DecodeSecManContextCommand decodes exportKey's or getApsKeyInfo's parameters.
func DecodeSecManContextCommand(b []byte, frame string) (ExportKey, error) {
	r := newReader(frame, b)
	return done(r, ExportKey{Context: r.secManContext("context")})
}

// DecodeImportKey decodes importKey's parameters.
func DecodeImportKey(b []byte) (ImportKey, error) {
	r := newReader("importKey", b)
	return done(r, ImportKey{Context: r.secManContext("context"), Key: r.key("plaintextKey")})
}

// DecodeImportLinkKey decodes importLinkKey's parameters.
func DecodeImportLinkKey(b []byte) (ImportLinkKey, error) {
	r := newReader("importLinkKey", b)
	return done(r, ImportLinkKey{Index: r.u8("index"), EUI64: r.eui64("address"), Key: r.key("plaintextKey")})
}

// DecodeExtendedValueQuery decodes getExtendedValue's parameters.
func DecodeExtendedValueQuery(b []byte) (ExtendedValueQuery, error) {
	r := newReader("getExtendedValue", b)
	return done(r, ExtendedValueQuery{ValueID: r.u8("valueId"), Characteristics: r.u32("characteristics")})
}

// DecodeMulticastTableEntry decodes setMulticastTableEntry's parameters.
func DecodeMulticastTableEntry(b []byte) (MulticastTableEntry, error) {
	r := newReader("setMulticastTableEntry", b)
	return done(r, MulticastTableEntry{Index: r.u8("index"), MulticastID: r.u16("value.multicastId"),
		Endpoint: r.u8("value.endpoint"), NetworkIndex: r.u8("value.networkIndex")})
}

// DecodeSetExtendedTimeout decodes setExtendedTimeout's parameters.
func DecodeSetExtendedTimeout(b []byte) (SetExtendedTimeout, error) {
	r := newReader("setExtendedTimeout", b)
	return done(r, SetExtendedTimeout{EUI64: r.eui64("remoteEui64"), Extended: r.bool("extendedTimeout")})
}

// DecodeTokenQuery decodes getTokenData's (withData false) or setTokenData's (true) parameters.
func DecodeTokenQuery(b []byte, withData bool) (TokenQuery, error) {
	name := "getTokenData"
	if withData {
		name = "setTokenData"
	}
	r := newReader(name, b)
	q := TokenQuery{Token: r.u32("token"), Index: r.u32("index")}
	if withData {
		n := int(r.u32("tokenData.size"))
		if d := r.take(n, "tokenData.data"); d != nil {
			q.Data = append([]byte{}, d...)
		}
	}
	return done(r, q)
}

// DecodeSendMulticast decodes sendMulticast's parameters in version v's layout.
func DecodeSendMulticast(b []byte, v Version) (SendMulticast, error) {
	r := newReader("sendMulticast", b)
	c := SendMulticast{Aps: r.aps("apsFrame"), Hops: r.u8("hops")}
	if v.Wide() {
		c.BroadcastAddr, c.Alias, c.NwkSequence = r.u16("broadcastAddr"), r.u16("alias"), r.u8("nwkSequence")
	} else {
		c.NonmemberRadius = r.u8("nonmemberRadius")
	}
	c.Tag, c.Message = r.tag(v, "messageTag"), r.lvBytes("message")
	return done(r, c)
}

// DecodeRawMessage decodes sendRawMessage's parameters in version v's layout.
func DecodeRawMessage(b []byte, v Version) (RawMessage, error) {
	r := newReader("sendRawMessage", b)
	c := RawMessage{Message: r.lvBytes("messageContents")}
	if v.Wide() {
		c.Priority, c.UseCCA = r.u8("priority"), r.bool("useCca")
	}
	return done(r, c)
}

// Append appends the parameters in version v's layout.
func (c SendMulticast) Append(dst []byte, v Version) []byte {
	dst = append(c.Aps.Append(dst), c.Hops)
	if v.Wide() {
		dst = append(le16(le16(dst, c.BroadcastAddr), c.Alias), c.NwkSequence)
	} else {
		dst = append(dst, c.NonmemberRadius)
	}
	return appendLV(appendTag(dst, v, c.Tag), c.Message)
}

// ExportKeyResponse answers exportKey: v13 puts the key before its sl_Status, v14+ the status first and the
// context after the key.
type ExportKeyResponse struct {
	Status  uint32 // sl_Status in every version
	Key     [16]byte
	Context SecManContext
}

// Append appends the answer in version v's layout.
func (r ExportKeyResponse) Append(dst []byte, v Version) []byte {
	if !v.Wide() {
		return le32(append(dst, r.Key[:]...), r.Status)
	}
	return r.Context.Append(append(le32(dst, r.Status), r.Key[:]...))
}

// ExportLinkKeyResponse answers exportLinkKeyByIndex.
type ExportLinkKeyResponse struct {
	Status   uint32
	Context  SecManContext
	Key      [16]byte
	Metadata APSKeyMetadata
}

// Append appends the answer in version v's layout (v13: eui64, key, metadata, status; v14+: status, context,
// key, metadata).
func (r ExportLinkKeyResponse) Append(dst []byte, v Version) []byte {
	if !v.Wide() {
		dst = append(le64(dst, r.Context.EUI64), r.Key[:]...)
		return le32(r.Metadata.Append(dst), r.Status)
	}
	dst = r.Context.Append(le32(dst, r.Status))
	return r.Metadata.Append(append(dst, r.Key[:]...))
}

// ApsKeyInfoResponse answers getApsKeyInfo.
type ApsKeyInfoResponse struct {
	Status   uint32
	Context  SecManContext
	Metadata APSKeyMetadata
}

// Append appends the answer in version v's layout (v13: eui64, metadata, status; v14+: status, metadata,
// context).
func (r ApsKeyInfoResponse) Append(dst []byte, v Version) []byte {
	if !v.Wide() {
		return le32(r.Metadata.Append(le64(dst, r.Context.EUI64)), r.Status)
	}
	return r.Context.Append(r.Metadata.Append(le32(dst, r.Status)))
}

// AppendExtendedValue appends getExtendedValue's or getValue's answer: status (an EzspStatus byte up to v13,
// sl_Status from v14), length, value.
func AppendExtendedValue(dst []byte, v Version, status Status, value []byte) []byte {
	return appendLV(appendStatus(dst, v, status), value)
}

// AppendTokenCount appends getTokenCount's answer: u8 up to v17, u32 from v18.
func AppendTokenCount(dst []byte, v Version, n uint32) []byte {
	if v >= 18 {
		return le32(dst, n)
	}
	return append(dst, byte(n))
}

// EzspStatusOf returns the status the configuration, policy and value commands carry: an EzspStatus byte up
// to v13 (ezsp in the name: EZSP_SUCCESS, EZSP_ERROR_INVALID_ID ...), an sl_Status from v14 (ezsp mapped to
// the sl code given).
func (v Version) EzspStatusOf(ezsp uint8, sl StatusKind) Status {
	if v.Wide() {
		if ezsp == EzspSuccess {
			return Status{Wide: true}
		}
		return v.StatusOf(sl)
	}
	return Status{Value: uint32(ezsp), Ezsp: true}
}
