package ota

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Sub-element tags (reference/zcl-ota.md §3).
const (
	TagUpgradeImage            uint16 = 0x0000
	TagECDSASignature          uint16 = 0x0001
	TagECDSACertificate        uint16 = 0x0002
	TagImageIntegrityCode      uint16 = 0x0003
	TagPictureData             uint16 = 0x0004
	TagECDSASignatureSuite2    uint16 = 0x0005
	TagECDSACertificateSuite2  uint16 = 0x0006
	TagManufacturerSpecificMin uint16 = 0xF000
)

// DefaultHeaderVersion is the OTA header version Build writes when the header gives none.
const DefaultHeaderVersion uint16 = 0x0100

// knownFieldControl holds the field-control bits this package can write.
const knownFieldControl = HeaderFieldSecurityCredential | HeaderFieldDeviceSpecific | HeaderFieldHardwareVersions

// BuildElement is one sub-element to write: tag and data (the length field is len(Data)).
type BuildElement struct {
	Tag  uint16
	Data []byte
}

// Build writes an OTA upgrade file: h, then the elements in order with standard 6-byte element headers.
// It sets HeaderLength from the field control (56, +1 security credential version, +8 upgrade file
// destination, +4 hardware versions), TotalImageSize from the elements, and HeaderVersion to 0x0100 when
// it is zero. It refuses reserved field-control bits, a minimum hardware version above the maximum, and
// an image that does not fit the 32-bit total image size.
func Build(h Header, elements []BuildElement) ([]byte, error) {
	if fc := h.FieldControl &^ knownFieldControl; fc != 0 {
		return nil, fmt.Errorf("build OTA file: field control 0x%04X has reserved bits 0x%04X set", h.FieldControl, fc)
	}
	if h.HasHardwareVersions() && h.MinHardwareVersion > h.MaxHardwareVersion {
		return nil, fmt.Errorf("build OTA file: minimum hardware version 0x%04X above maximum 0x%04X",
			h.MinHardwareVersion, h.MaxHardwareVersion)
	}
	headerLength := NeededHeaderLength(h.FieldControl)
	total := uint64(headerLength)
	for i, e := range elements {
		if uint64(len(e.Data)) > math.MaxUint32 {
			return nil, fmt.Errorf("build OTA file: element %d (tag 0x%04X) has %d bytes, more than a 32-bit length",
				i, e.Tag, len(e.Data))
		}
		total += 6 + uint64(len(e.Data))
		if total > math.MaxUint32 {
			return nil, fmt.Errorf("build OTA file: image of %d bytes or more does not fit the 32-bit total image size", total)
		}
	}
	h.HeaderLength = uint16(headerLength)
	h.TotalImageSize = uint32(total)
	if h.HeaderVersion == 0 {
		h.HeaderVersion = DefaultHeaderVersion
	}
	out := make([]byte, 0, total)
	out = h.AppendTo(out)
	for _, e := range elements {
		out = binary.LittleEndian.AppendUint16(out, e.Tag)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e.Data)))
		out = append(out, e.Data...)
	}
	return out, nil
}

// TagName is a short description of a sub-element tag for people.
func TagName(tag uint16) string {
	switch tag {
	case TagUpgradeImage:
		return "upgrade image"
	case TagECDSASignature:
		return "ECDSA signature"
	case TagECDSACertificate:
		return "ECDSA certificate"
	case TagImageIntegrityCode:
		return "image integrity code"
	case TagPictureData:
		return "picture data"
	case TagECDSASignatureSuite2:
		return "ECDSA signature (suite 2)"
	case TagECDSACertificateSuite2:
		return "ECDSA certificate (suite 2)"
	}
	if tag >= TagManufacturerSpecificMin {
		return "manufacturer specific"
	}
	return "reserved"
}
