// Package zcl owns the Zigbee Cluster Library frames otabridge speaks: the ZCL frame header, status codes,
// the general commands it needs (Read Attributes, Read Attributes Response, Default Response), the ten
// commands of the OTA Upgrade cluster (0x0019), and the attribute ids of the Basic and OTA clusters.
// It is pure encode/decode: no I/O, no imports from the rest of the project. Decoders never panic; a short
// or inconsistent frame gives a *DecodeError that names the field.
package zcl

import (
	"fmt"
	"strconv"
	"strings"
)

// Profile and cluster ids.
const (
	ProfileHomeAutomation uint16 = 0x0104
	ClusterBasic          uint16 = 0x0000
	ClusterPowerConfig    uint16 = 0x0001
	ClusterOTA            uint16 = 0x0019
)

// Power Configuration cluster attribute ids (ZCL 3.3.2.2.3): BatteryVoltage in units of 100 mV,
// BatteryPercentageRemaining in half percent (0..200; 0xFF invalid).
const (
	AttrPowerBatteryVoltage             uint16 = 0x0020
	AttrPowerBatteryPercentageRemaining uint16 = 0x0021
)

// IEEE is a 64-bit IEEE (EUI-64) address. On the air it is 8 bytes, least significant first.
type IEEE uint64

// String formats the address as 0x + 16 lower-case hex digits, the way zigbee2mqtt and Home Assistant show it.
func (a IEEE) String() string { return fmt.Sprintf("0x%016x", uint64(a)) }

// MarshalText makes IEEE addresses JSON strings.
func (a IEEE) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText accepts what ParseIEEE accepts.
func (a *IEEE) UnmarshalText(b []byte) error {
	v, err := ParseIEEE(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseIEEE reads "0x00124b0012345678", "00124b0012345678" or "00:12:4b:00:12:34:56:78".
func ParseIEEE(s string) (IEEE, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "0x"), "0X")
	t = strings.ReplaceAll(t, ":", "")
	if len(t) != 16 {
		return 0, fmt.Errorf("IEEE address %q: want 16 hex digits", s)
	}
	v, err := strconv.ParseUint(t, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("IEEE address %q: %w", s, err)
	}
	return IEEE(v), nil
}

// FrameType is bits 0-1 of the frame control field.
type FrameType uint8

// Frame types.
const (
	FrameTypeGlobal  FrameType = 0 // profile-wide ("foundation") command, e.g. Default Response
	FrameTypeCluster FrameType = 1 // cluster-specific command
)

// Direction is bit 3 of the frame control field.
type Direction uint8

// Directions.
const (
	ClientToServer Direction = 0
	ServerToClient Direction = 1
)

// Header is the ZCL frame header: frame control, optional manufacturer code, TSN, command id.
type Header struct {
	FrameType              FrameType
	ManufacturerSpecific   bool
	Direction              Direction
	DisableDefaultResponse bool
	ManufacturerCode       uint16 // only meaningful when ManufacturerSpecific
	TSN                    uint8
	CommandID              uint8
}

// Status is a ZCL status code.
type Status uint8

// ZCL status codes (reference/zcl-ota.md §1).
const (
	StatusSuccess                  Status = 0x00
	StatusFailure                  Status = 0x01
	StatusNotAuthorized            Status = 0x7E
	StatusMalformedCommand         Status = 0x80
	StatusUnsupCommand             Status = 0x81
	StatusUnsupGeneralCommand      Status = 0x82
	StatusUnsupManufClusterCommand Status = 0x83
	StatusUnsupManufGeneralCommand Status = 0x84
	StatusInvalidField             Status = 0x85
	StatusUnsupportedAttribute     Status = 0x86
	StatusInvalidValue             Status = 0x87
	StatusReadOnly                 Status = 0x88
	StatusInsufficientSpace        Status = 0x89
	StatusNotFound                 Status = 0x8B
	StatusTimeout                  Status = 0x94
	StatusAbort                    Status = 0x95
	StatusInvalidImage             Status = 0x96
	StatusWaitForData              Status = 0x97
	StatusNoImageAvailable         Status = 0x98
	StatusRequireMoreImage         Status = 0x99
	StatusNotificationPending      Status = 0x9A
	StatusUnsupportedCluster       Status = 0xC3
)

// General (profile-wide) command ids.
const (
	CmdReadAttributes         uint8 = 0x00
	CmdReadAttributesResponse uint8 = 0x01
	CmdDefaultResponse        uint8 = 0x0B
)

// OTA Upgrade cluster command ids (reference/zcl-ota.md §2.2).
const (
	CmdImageNotify                     uint8 = 0x00
	CmdQueryNextImageRequest           uint8 = 0x01
	CmdQueryNextImageResponse          uint8 = 0x02
	CmdImageBlockRequest               uint8 = 0x03
	CmdImagePageRequest                uint8 = 0x04
	CmdImageBlockResponse              uint8 = 0x05
	CmdUpgradeEndRequest               uint8 = 0x06
	CmdUpgradeEndResponse              uint8 = 0x07
	CmdQueryDeviceSpecificFileRequest  uint8 = 0x08
	CmdQueryDeviceSpecificFileResponse uint8 = 0x09
)

// Basic cluster attribute ids.
const (
	AttrBasicZCLVersion         uint16 = 0x0000
	AttrBasicApplicationVersion uint16 = 0x0001
	AttrBasicStackVersion       uint16 = 0x0002
	AttrBasicHWVersion          uint16 = 0x0003
	AttrBasicManufacturerName   uint16 = 0x0004
	AttrBasicModelIdentifier    uint16 = 0x0005
	AttrBasicDateCode           uint16 = 0x0006
	AttrBasicPowerSource        uint16 = 0x0007
	AttrBasicSWBuildID          uint16 = 0x4000
)

// OTA Upgrade cluster attribute ids (client side; reference/zcl-ota.md §2.1).
const (
	AttrOTAUpgradeServerID              uint16 = 0x0000
	AttrOTAFileOffset                   uint16 = 0x0001
	AttrOTACurrentFileVersion           uint16 = 0x0002
	AttrOTACurrentZigbeeStackVersion    uint16 = 0x0003
	AttrOTADownloadedFileVersion        uint16 = 0x0004
	AttrOTADownloadedZigbeeStackVersion uint16 = 0x0005
	AttrOTAImageUpgradeStatus           uint16 = 0x0006
	AttrOTAManufacturerID               uint16 = 0x0007
	AttrOTAImageTypeID                  uint16 = 0x0008
	AttrOTAMinimumBlockPeriod           uint16 = 0x0009
	AttrOTAImageStamp                   uint16 = 0x000A
	AttrOTAUpgradeActivationPolicy      uint16 = 0x000B
	AttrOTAUpgradeTimeoutPolicy         uint16 = 0x000C
)

// DataType is a ZCL attribute data type id.
type DataType uint8

// The attribute data types the Basic and OTA clusters use.
const (
	TypeNoData     DataType = 0x00
	TypeBool       DataType = 0x10
	TypeBitmap8    DataType = 0x18
	TypeUint8      DataType = 0x20
	TypeUint16     DataType = 0x21
	TypeUint24     DataType = 0x22
	TypeUint32     DataType = 0x23
	TypeEnum8      DataType = 0x30
	TypeEnum16     DataType = 0x31
	TypeCharString DataType = 0x42
	TypeIEEE       DataType = 0xF0
)

// ImageID identifies an OTA image: manufacturer code, image type and file version.
type ImageID struct {
	ManufacturerCode uint16
	ImageType        uint16
	FileVersion      uint32
}

// Wildcards of the OTA cluster.
const (
	WildcardManufacturer uint16 = 0xFFFF
	WildcardImageType    uint16 = 0xFFFF
	WildcardFileVersion  uint32 = 0xFFFFFFFF
)
