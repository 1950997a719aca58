package ota

import (
	"github.com/otabridge/otabridge/redact"
	"github.com/otabridge/otabridge/zcl"
)

// ImageInfo describes an image for `otabridge/bridge/images`. Optional fields that are empty are left out.
type ImageInfo struct {
	ID               string `json:"id"`
	Source           string `json:"source"`
	FileName         string `json:"file_name,omitempty"`
	ManufacturerCode uint16 `json:"manufacturer_code"`
	ImageType        uint16 `json:"image_type"`
	FileVersion      uint32 `json:"file_version"`
	// Version is the human-readable version, when the index gives one.
	Version string `json:"version,omitempty"`
	// Size is the header's total image size: what a device downloads.
	Size uint32 `json:"size"`
	// FileSize is the file's length (known once the file is local).
	FileSize     int64  `json:"file_size,omitempty"`
	HeaderString string `json:"header_string,omitempty"`
	SHA512       string `json:"sha512,omitempty"`
	Local        bool   `json:"local"`
	// The hardware-version range the image accepts: the header's range narrowed by the index entry's.
	MinHardwareVersion *uint16  `json:"min_hardware_version,omitempty"`
	MaxHardwareVersion *uint16  `json:"max_hardware_version,omitempty"`
	ModelID            string   `json:"model_id,omitempty"`
	ManufacturerNames  []string `json:"manufacturer_names,omitempty"`
	MinFileVersion     *uint32  `json:"min_file_version,omitempty"`
	MaxFileVersion     *uint32  `json:"max_file_version,omitempty"`
	ReleaseNotes       string   `json:"release_notes,omitempty"`
	ReleaseURL         string   `json:"release_url,omitempty"`
	Force              bool     `json:"force,omitempty"`
	// Destination is the only device a device-specific file is for.
	Destination *zcl.IEEE `json:"upgrade_file_destination,omitempty"`
	// Index is the index file or URL that lists the image.
	Index string `json:"index,omitempty"`
}

// Info describes the image for `otabridge/bridge/images`.
func (img *Image) Info() ImageInfo {
	h := img.effectiveHeader()
	m := img.Meta
	info := ImageInfo{
		ID: img.ID, Source: img.Source, FileName: img.FileName,
		ManufacturerCode: h.ManufacturerCode, ImageType: h.ImageType, FileVersion: h.FileVersion,
		Version: m.Version, Size: h.TotalImageSize, FileSize: img.FileSize,
		HeaderString: h.HeaderStringText(), SHA512: img.SHA512, Local: img.Local(),
		ModelID: m.ModelID, ManufacturerNames: m.ManufacturerNames,
		MinFileVersion: m.MinFileVersion, MaxFileVersion: m.MaxFileVersion,
		ReleaseNotes: m.ReleaseNotes, ReleaseURL: redact.URLs(m.ReleaseURL), Force: m.Force, Index: redact.URLs(img.Index),
	}
	if f := img.File(); f != nil {
		info.FileSize = f.FileLength
	}
	if h.FieldControl&HeaderFieldDeviceSpecific != 0 {
		dst := h.UpgradeFileDestination
		info.Destination = &dst
	}
	lo, hi := m.HardwareMin, m.HardwareMax
	if h.HasHardwareVersions() {
		if lo == nil || *lo < h.MinHardwareVersion {
			v := h.MinHardwareVersion
			lo = &v
		}
		if hi == nil || *hi > h.MaxHardwareVersion {
			v := h.MaxHardwareVersion
			hi = &v
		}
	}
	info.MinHardwareVersion, info.MaxHardwareVersion = lo, hi
	return info
}
