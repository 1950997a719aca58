package ota

import "github.com/otabridge/otabridge/zcl"

// Magic is the OTA upgrade file identifier 0x0BEEF11E (bytes 1E F1 EE 0B on disk).
const Magic uint32 = 0x0BEEF11E

// MinHeaderLength is the length of an OTA header without optional fields.
const MinHeaderLength = 56

// Header field-control bits.
const (
	HeaderFieldSecurityCredential uint16 = 0x0001
	HeaderFieldDeviceSpecific     uint16 = 0x0002
	HeaderFieldHardwareVersions   uint16 = 0x0004
)

// Header is the OTA upgrade file header (reference/zcl-ota.md §3), with its optional fields.
type Header struct {
	HeaderVersion             uint16
	HeaderLength              uint16
	FieldControl              uint16
	ManufacturerCode          uint16
	ImageType                 uint16
	FileVersion               uint32
	StackVersion              uint16
	HeaderString              [32]byte
	TotalImageSize            uint32
	SecurityCredentialVersion uint8    // when FieldControl&HeaderFieldSecurityCredential
	UpgradeFileDestination    zcl.IEEE // when FieldControl&HeaderFieldDeviceSpecific
	MinHardwareVersion        uint16   // when FieldControl&HeaderFieldHardwareVersions
	MaxHardwareVersion        uint16
}

// ImageID returns the header's image id.
func (h Header) ImageID() zcl.ImageID {
	return zcl.ImageID{ManufacturerCode: h.ManufacturerCode, ImageType: h.ImageType, FileVersion: h.FileVersion}
}

// HasHardwareVersions reports field-control bit 2.
func (h Header) HasHardwareVersions() bool { return h.FieldControl&HeaderFieldHardwareVersions != 0 }

// Layout says how the bytes after the header were understood.
type Layout string

// Sub-element layouts.
const (
	LayoutStandard   Layout = "standard"    // 6-byte element headers tile the image exactly
	LayoutTelinkF000 Layout = "telink_f000" // tag 0xF000 has 2 extra bytes after its length
	LayoutLoose      Layout = "loose"       // the bytes do not form sub-elements; see File.Unparsed
)

// SubElement is one sub-element of the image.
type SubElement struct {
	Tag    uint16 `json:"tag"`
	Length uint32 `json:"length"` // the length field's value
	Offset int64  `json:"offset"` // offset of the element's tag from the start of the file
}

// Region is a byte range of the file.
type Region struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}
