package ota

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/otabridge/otabridge/zcl"
)

// Inspection is what `otabridge ota inspect --json` prints for one file. The optional header fields are
// present only when the field control says so.
type Inspection struct {
	MagicOffset               int64        `json:"magic_offset"`
	HeaderVersion             uint16       `json:"header_version"`
	HeaderLength              uint16       `json:"header_length"`
	FieldControl              uint16       `json:"field_control"`
	ManufacturerCode          uint16       `json:"manufacturer_code"`
	ImageType                 uint16       `json:"image_type"`
	FileVersion               uint32       `json:"file_version"`
	StackVersion              uint16       `json:"stack_version"`
	HeaderString              string       `json:"header_string"`
	TotalImageSize            uint32       `json:"total_image_size"`
	SecurityCredentialVersion *uint8       `json:"security_credential_version,omitempty"`
	UpgradeFileDestination    *zcl.IEEE    `json:"upgrade_file_destination,omitempty"` // 0x + 16 hex digits
	MinHardwareVersion        *uint16      `json:"min_hw_version,omitempty"`
	MaxHardwareVersion        *uint16      `json:"max_hw_version,omitempty"`
	SubElements               []SubElement `json:"sub_elements"`
	FileLength                int64        `json:"file_length"`
	SHA512                    string       `json:"sha512"` // lower-case hex of the whole file
}

// Inspect parses the OTA file of size bytes read through r and hashes the whole file with SHA-512.
// The error is Parse's, or a read error.
func Inspect(r io.ReaderAt, size int64) (Inspection, *File, error) {
	f, err := Parse(r, size)
	if err != nil {
		return Inspection{}, nil, err
	}
	sum := sha512.New()
	if _, err := io.Copy(sum, io.NewSectionReader(r, 0, size)); err != nil {
		return Inspection{}, nil, fmt.Errorf("hash OTA file: %w", err)
	}
	h := f.Header
	in := Inspection{
		MagicOffset:      f.MagicOffset,
		HeaderVersion:    h.HeaderVersion,
		HeaderLength:     h.HeaderLength,
		FieldControl:     h.FieldControl,
		ManufacturerCode: h.ManufacturerCode,
		ImageType:        h.ImageType,
		FileVersion:      h.FileVersion,
		StackVersion:     h.StackVersion,
		HeaderString:     h.HeaderStringText(),
		TotalImageSize:   h.TotalImageSize,
		SubElements:      append([]SubElement{}, f.SubElements...),
		FileLength:       f.FileLength,
		SHA512:           hex.EncodeToString(sum.Sum(nil)),
	}
	if h.FieldControl&HeaderFieldSecurityCredential != 0 {
		v := h.SecurityCredentialVersion
		in.SecurityCredentialVersion = &v
	}
	if h.FieldControl&HeaderFieldDeviceSpecific != 0 {
		v := h.UpgradeFileDestination
		in.UpgradeFileDestination = &v
	}
	if h.HasHardwareVersions() {
		lo, hi := h.MinHardwareVersion, h.MaxHardwareVersion
		in.MinHardwareVersion, in.MaxHardwareVersion = &lo, &hi
	}
	return in, f, nil
}
