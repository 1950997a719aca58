// Package ezsp owns the Silicon Labs EmberZNet Serial Protocol host side for otabridge: EZSP frames and the
// subset of commands and callbacks a coordinator that serves OTA needs (version 13 and later, with the v14
// layout changes), and Driver, the ncp.Radio that brings an EZSP stick up over ASH (package ash) and moves
// APS frames through it. The NCP side used by the fake stick (package fakestick) shares these codecs, and the
// layouts of the further commands other hosts send (ncpcommands.go) live here too.
package ezsp

import (
	"errors"
	"fmt"
)

// Version is an EZSP protocol version. otabridge speaks 13 and later; from 14 on, statuses are 32-bit
// sl_Status values and message tags are 16-bit (see Wide).
type Version uint8

// Protocol versions that matter.
const (
	MinVersion      Version = 13 // EmberZNet 7.4
	LegacyProbe     Version = 4  // what the first, legacy-format version command asks for
	WideVersion     Version = 14 // EmberZNet 8.0: sl_Status, 16-bit tags, new incomingMessageHandler
	MaxKnownVersion Version = 18
)

// Wide reports whether this version uses the v14 layouts (32-bit status, 16-bit tags).
func (v Version) Wide() bool { return v >= WideVersion }

// Frame IDs of the commands and callbacks otabridge uses (UG100; bellows ezsp/v4 and v14 command tables).
const (
	IDVersion                     uint16 = 0x0000
	IDAddEndpoint                 uint16 = 0x0002
	IDNop                         uint16 = 0x0005
	IDSetConcentrator             uint16 = 0x0010
	IDNetworkInit                 uint16 = 0x0017
	IDNetworkState                uint16 = 0x0018
	IDStackStatusHandler          uint16 = 0x0019
	IDFormNetwork                 uint16 = 0x001E
	IDLeaveNetwork                uint16 = 0x0020
	IDPermitJoining               uint16 = 0x0022
	IDChildJoinHandler            uint16 = 0x0023
	IDTrustCenterJoinHandler      uint16 = 0x0024
	IDGetEUI64                    uint16 = 0x0026
	IDGetNodeID                   uint16 = 0x0027
	IDGetNetworkParameters        uint16 = 0x0028
	IDMaximumPayloadLength        uint16 = 0x0033
	IDSendUnicast                 uint16 = 0x0034
	IDSendBroadcast               uint16 = 0x0036
	IDMessageSentHandler          uint16 = 0x003F
	IDIncomingMessageHandler      uint16 = 0x0045
	IDGetConfigurationValue       uint16 = 0x0052
	IDSetConfigurationValue       uint16 = 0x0053
	IDSetPolicy                   uint16 = 0x0055
	IDInvalidCommand              uint16 = 0x0058
	IDIncomingRouteRecordHandler  uint16 = 0x0059
	IDSetSourceRouteDiscoveryMode uint16 = 0x005A
	IDLookupEUI64ByNodeID         uint16 = 0x0061
	IDIncomingSenderEUI64Handler  uint16 = 0x0062
	IDSetInitialSecurityState     uint16 = 0x0068
	IDGetValue                    uint16 = 0x00AA
	IDSetValue                    uint16 = 0x00AB
	IDImportTransientKey          uint16 = 0x0111

	// Commands a host such as zigbee-herdsman sends that otabridge's driver does not; the fake stick
	// answers them (frame ids from ezsp-enum/herdsman's EzspFrameID).
	IDGetExtendedValue          uint16 = 0x0003
	IDCallback                  uint16 = 0x0006
	IDSetManufacturerCode       uint16 = 0x0015
	IDSendMulticast             uint16 = 0x0038
	IDSendRawMessage            uint16 = 0x0051
	IDLookupNodeIDByEUI64       uint16 = 0x0060
	IDGetMulticastTableEntry    uint16 = 0x0063
	IDSetMulticastTableEntry    uint16 = 0x0064
	IDReadAndClearCounters      uint16 = 0x0065
	IDClearTransientLinkKeys    uint16 = 0x006B
	IDBroadcastNextNetworkKey   uint16 = 0x0073
	IDBroadcastNetworkKeySwitch uint16 = 0x0074
	IDEraseKeyTableEntry        uint16 = 0x0076
	IDTokenFactoryReset         uint16 = 0x0077
	IDSetExtendedTimeout        uint16 = 0x007E
	IDGetCurrentSecurityState   uint16 = 0x0069
	IDSetRadioIeee802154CcaMode uint16 = 0x0095
	IDSetRadioPower             uint16 = 0x0099
	IDClearKeyTable             uint16 = 0x00B1
	IDSetLogicalAndRadioChannel uint16 = 0x00B9
	IDGetTokenCount             uint16 = 0x0100
	IDGetTokenInfo              uint16 = 0x0101
	IDGetTokenData              uint16 = 0x0102
	IDSetTokenData              uint16 = 0x0103
	IDResetNode                 uint16 = 0x0104
	IDGetApsKeyInfo             uint16 = 0x010C
	IDImportLinkKey             uint16 = 0x010E
	IDExportLinkKeyByIndex      uint16 = 0x010F
	IDExportKey                 uint16 = 0x0114
	IDImportKey                 uint16 = 0x0115
	IDGetNetworkKeyInfo         uint16 = 0x0116
)

var frameNames = map[uint16]string{
	IDVersion: "version", IDAddEndpoint: "addEndpoint", IDNop: "nop", IDSetConcentrator: "setConcentrator",
	IDNetworkInit: "networkInit", IDNetworkState: "networkState", IDStackStatusHandler: "stackStatusHandler",
	IDFormNetwork: "formNetwork", IDLeaveNetwork: "leaveNetwork", IDPermitJoining: "permitJoining",
	IDChildJoinHandler: "childJoinHandler", IDTrustCenterJoinHandler: "trustCenterJoinHandler",
	IDGetEUI64: "getEui64", IDGetNodeID: "getNodeId", IDGetNetworkParameters: "getNetworkParameters",
	IDMaximumPayloadLength: "maximumPayloadLength", IDSendUnicast: "sendUnicast", IDSendBroadcast: "sendBroadcast",
	IDMessageSentHandler: "messageSentHandler", IDIncomingMessageHandler: "incomingMessageHandler",
	IDGetConfigurationValue: "getConfigurationValue", IDSetConfigurationValue: "setConfigurationValue",
	IDSetPolicy: "setPolicy", IDInvalidCommand: "invalidCommand", IDIncomingRouteRecordHandler: "incomingRouteRecordHandler",
	IDSetSourceRouteDiscoveryMode: "setSourceRouteDiscoveryMode", IDLookupEUI64ByNodeID: "lookupEui64ByNodeId",
	IDIncomingSenderEUI64Handler: "incomingSenderEui64Handler", IDSetInitialSecurityState: "setInitialSecurityState",
	IDGetValue: "getValue", IDSetValue: "setValue", IDImportTransientKey: "importTransientKey",
	IDGetExtendedValue: "getExtendedValue", IDCallback: "callback", IDSetManufacturerCode: "setManufacturerCode",
	IDSendMulticast: "sendMulticast", IDSendRawMessage: "sendRawMessage", IDLookupNodeIDByEUI64: "lookupNodeIdByEui64",
	IDGetMulticastTableEntry: "getMulticastTableEntry", IDSetMulticastTableEntry: "setMulticastTableEntry", IDReadAndClearCounters: "readAndClearCounters",
	IDClearTransientLinkKeys: "clearTransientLinkKeys", IDBroadcastNextNetworkKey: "broadcastNextNetworkKey",
	IDBroadcastNetworkKeySwitch: "broadcastNetworkKeySwitch", IDEraseKeyTableEntry: "eraseKeyTableEntry",
	IDTokenFactoryReset: "tokenFactoryReset", IDSetExtendedTimeout: "setExtendedTimeout",
	IDGetCurrentSecurityState: "getCurrentSecurityState", IDSetRadioIeee802154CcaMode: "setRadioIeee802154CcaMode", IDSetRadioPower: "setRadioPower",
	IDClearKeyTable: "clearKeyTable", IDSetLogicalAndRadioChannel: "setLogicalAndRadioChannel",
	IDGetTokenCount: "getTokenCount", IDGetTokenInfo: "getTokenInfo", IDGetTokenData: "getTokenData",
	IDSetTokenData: "setTokenData", IDResetNode: "resetNode", IDGetApsKeyInfo: "getApsKeyInfo",
	IDImportLinkKey: "importLinkKey", IDExportLinkKeyByIndex: "exportLinkKeyByIndex", IDExportKey: "exportKey",
	IDImportKey: "importKey", IDGetNetworkKeyInfo: "getNetworkKeyInfo",
}

// FrameIDByName returns the frame id of a command or callback name as FrameName spells it.
func FrameIDByName(name string) (uint16, bool) {
	for id, n := range frameNames {
		if n == name {
			return id, true
		}
	}
	return 0, false
}

// FrameName names a frame ID for logs ("0x1234" when otabridge does not know it).
func FrameName(id uint16) string {
	if n, ok := frameNames[id]; ok {
		return n
	}
	return fmt.Sprintf("0x%04x", id)
}

// Frame control, low byte.
const (
	FCResponse        uint8 = 0x80 // set in responses and callbacks (NCP to host)
	FCNetworkIndex    uint8 = 0x60 // bits 6-5
	FCAsyncCallback   uint8 = 0x10 // response: an unsolicited callback
	FCSyncCallback    uint8 = 0x08
	FCCallbackPending uint8 = 0x04
	FCTruncated       uint8 = 0x02
	FCOverflow        uint8 = 0x01
)

// Frame control, high byte (extended format).
const (
	fcHighFormatMask = 0x03
	fcHighFormat1    = 0x01
	fcHighReserved   = 0x3C
	fcHighSecurity   = 0x80
	fcHighPadding    = 0x40
)

// Frame is one EZSP frame: header and parameters.
type Frame struct {
	Seq     uint8
	Control uint8 // frame control, low byte (FC* flags)
	FrameID uint16
	Legacy  bool   // the 3-byte header of EZSP v4-v7 (only the first version command uses it here)
	Params  []byte // parameters, after the header
}

// IsResponse reports whether the frame goes NCP to host.
func (f Frame) IsResponse() bool { return f.Control&FCResponse != 0 }

// IsCallback reports whether an NCP-to-host frame is an unsolicited callback rather than the answer to a command.
func (f Frame) IsCallback() bool {
	if f.Control&FCAsyncCallback != 0 {
		return true
	}
	switch f.FrameID {
	case IDStackStatusHandler, IDChildJoinHandler, IDTrustCenterJoinHandler, IDMessageSentHandler,
		IDIncomingMessageHandler, IDIncomingRouteRecordHandler, IDIncomingSenderEUI64Handler:
		return true
	}
	return false
}

// Append appends the frame's bytes.
func (f Frame) Append(dst []byte) []byte {
	if f.Legacy {
		dst = append(dst, f.Seq, f.Control, byte(f.FrameID))
	} else {
		dst = append(dst, f.Seq, f.Control, fcHighFormat1, byte(f.FrameID), byte(f.FrameID>>8))
	}
	return append(dst, f.Params...)
}

// Header errors.
var (
	ErrShortFrame    = errors.New("EZSP frame shorter than its header")
	ErrFrameFormat   = errors.New("EZSP frame control: unsupported format version or reserved bits set")
	ErrFrameSecurity = errors.New("EZSP frame control: security or padding bit set (secure EZSP is not supported)")
)

// ParseFrame decodes a frame in the extended (v8+) format, or, when legacy is true, in the 3-byte legacy
// format. Params aliases b.
func ParseFrame(b []byte, legacy bool) (Frame, error) {
	if legacy {
		if len(b) < 3 {
			return Frame{}, ErrShortFrame
		}
		return Frame{Seq: b[0], Control: b[1], FrameID: uint16(b[2]), Legacy: true, Params: b[3:]}, nil
	}
	if len(b) < 5 {
		return Frame{}, ErrShortFrame
	}
	hi := b[2]
	if hi&fcHighFormatMask != fcHighFormat1 || hi&fcHighReserved != 0 {
		return Frame{}, fmt.Errorf("%w (0x%02x)", ErrFrameFormat, hi)
	}
	if hi&(fcHighSecurity|fcHighPadding) != 0 {
		return Frame{}, ErrFrameSecurity
	}
	return Frame{Seq: b[0], Control: b[1], FrameID: uint16(b[3]) | uint16(b[4])<<8, Params: b[5:]}, nil
}

// IsLegacyVersionCommand reports whether a host-to-NCP frame is the legacy-format version command (the first
// thing a host sends: seq, 0x00, 0x00, desired version). Extended frames carry 0x01 in their third byte.
func IsLegacyVersionCommand(b []byte) bool {
	return len(b) == 4 && b[1]&FCResponse == 0 && b[2] == 0x00
}
