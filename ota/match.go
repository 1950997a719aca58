package ota

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/otabridge/otabridge/zcl"
)

// MatchQuery narrows Match. The zero value asks for the best upgrade.
type MatchQuery struct {
	// Version, when set, asks for exactly that file version (install, reinstall or downgrade) instead of an
	// upgrade.
	Version *uint32
	// Skip, when set, excludes images (the engine passes the versions a device rejected).
	Skip func(*Image) bool
}

// Match returns the image to offer the device, or nil. Candidates are the images Compatible with the
// device that are an upgrade (Matches), or, with q.Version, that have exactly that file version; q.Skip
// excludes images. The highest file version wins; on a tie a folder, upload or URL image wins over an
// index image, then the catalogue order (Images) decides.
func (s *Store) Match(dev DeviceInfo, q MatchQuery) *Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *storeEntry
	for _, e := range s.entries {
		h := e.img.Header
		if h.ManufacturerCode != dev.ManufacturerCode || h.ImageType != dev.ImageType {
			continue
		}
		if q.Version != nil && h.FileVersion != *q.Version {
			continue
		}
		var ok bool
		if q.Version != nil {
			ok, _ = Compatible(e.img, dev)
		} else {
			ok, _ = Matches(e.img, dev)
		}
		if !ok || q.Skip != nil && q.Skip(e.img) {
			continue
		}
		if best == nil || better(e, best) {
			best = e
		}
	}
	if best == nil {
		return nil
	}
	return best.img
}

// Explain says why Match found nothing for the device, when an image of its kind (manufacturer code and
// image type; with q.Version, of that version) is in the store: the newest such image and the rule it fails,
// or that the device rejected it; with q.Version and no image of that version, the versions there are. It
// returns "" when the store has no image of the device's kind, or when the newest is only not newer than
// the installed version (the caller says that already).
func (s *Store) Explain(dev DeviceInfo, q MatchQuery) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var newest *storeEntry
	var versions []uint32
	for _, e := range s.entries {
		h := e.img.Header
		if h.ManufacturerCode != dev.ManufacturerCode || h.ImageType != dev.ImageType {
			continue
		}
		if !slices.Contains(versions, h.FileVersion) {
			versions = append(versions, h.FileVersion)
		}
		if q.Version != nil && h.FileVersion != *q.Version {
			continue
		}
		if newest == nil || better(e, newest) {
			newest = e
		}
	}
	switch {
	case newest == nil && len(versions) > 0:
		slices.Sort(versions)
		have := make([]string, len(versions))
		for i, v := range versions {
			have[i] = VersionString(v)
		}
		return "the store has " + strings.Join(have, ", ")
	case newest == nil:
		return ""
	}
	img := newest.img
	if ok, why := Compatible(img, dev); !ok {
		return fmt.Sprintf("%s does not fit: %s", img.ID, why)
	}
	if q.Skip != nil && q.Skip(img) {
		return fmt.Sprintf("the device rejected %s before", img.ID)
	}
	return ""
}

// better reports whether a is preferred to b: higher file version, then lower rank. Entries are visited in
// catalogue order, so the first of equals stays.
func better(a, b *storeEntry) bool {
	va, vb := a.img.Header.FileVersion, b.img.Header.FileVersion
	if va != vb {
		return va > vb
	}
	return a.rank < b.rank
}

// ByImageID returns the image with exactly that manufacturer code, image type and file version (to resume
// a transfer), preferring a local image, then a folder, upload or URL image; nil when there is none.
func (s *Store) ByImageID(id zcl.ImageID) *Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *storeEntry
	bestLocal := false
	for _, e := range s.entries {
		if e.img.ImageID() != id {
			continue
		}
		local := e.img.Local()
		if best == nil || local && !bestLocal || local == bestLocal && e.rank < best.rank {
			best, bestLocal = e, local
		}
	}
	if best == nil {
		return nil
	}
	return best.img
}

// Versions returns one image per file version among the images Compatible with the device, whatever the
// installed version, newest first (for "install a specific version"): for each version the image Match
// would pick with MatchQuery.Version set.
func (s *Store) Versions(dev DeviceInfo) []*Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	byVersion := map[uint32]*storeEntry{}
	for _, e := range s.entries {
		if ok, _ := Compatible(e.img, dev); !ok {
			continue
		}
		v := e.img.Header.FileVersion
		if cur := byVersion[v]; cur == nil || better(e, cur) {
			byVersion[v] = e
		}
	}
	out := make([]*Image, 0, len(byVersion))
	for _, e := range byVersion {
		out = append(out, e.img)
	}
	slices.SortFunc(out, func(a, b *Image) int { return cmp.Compare(b.Header.FileVersion, a.Header.FileVersion) })
	return out
}

// Matches reports whether img is an upgrade for the device: Compatible, and strictly newer than the
// installed file version, or forced by its index entry (force: offered whatever the installed version).
// An unknown installed version counts as older than any image. When it does not match, why says which
// rule failed, for check responses and logs.
func Matches(img *Image, dev DeviceInfo) (ok bool, why string) {
	if ok, why := Compatible(img, dev); !ok {
		return false, why
	}
	v := img.Header.FileVersion
	if !img.Meta.Force && dev.FileVersionKnown && v <= dev.FileVersion {
		return false, fmt.Sprintf("file version 0x%08x is not newer than the installed 0x%08x", v, dev.FileVersion)
	}
	return true, ""
}

// Compatible reports whether img may be installed on the device, whatever the versions: manufacturer code
// and image type equal; the device's hardware version (when known) inside the header's range (when the
// header has one) and the index entry's hardwareVersionMin/Max; the installed file version inside the
// entry's minFileVersion/maxFileVersion (an unknown installed version fails a bound); the entry's modelId
// equal to the device model and its manufacturerName list holding the device's manufacturer name, when
// the entry gives them; and a device-specific file (header upgrade file destination) only for the device
// with that IEEE address. When it is not, why says which rule failed.
func Compatible(img *Image, dev DeviceInfo) (ok bool, why string) {
	h := img.effectiveHeader()
	m := img.Meta
	switch {
	case h.ManufacturerCode != dev.ManufacturerCode:
		return false, fmt.Sprintf("manufacturer code 0x%04x is not the device's 0x%04x", h.ManufacturerCode, dev.ManufacturerCode)
	case h.ImageType != dev.ImageType:
		return false, fmt.Sprintf("image type 0x%04x is not the device's 0x%04x", h.ImageType, dev.ImageType)
	case h.FieldControl&HeaderFieldDeviceSpecific != 0 && h.UpgradeFileDestination != dev.IEEE:
		return false, fmt.Sprintf("file is for device %s only", h.UpgradeFileDestination)
	}
	if dev.HasHardwareVersion {
		hw := dev.HardwareVersion
		if h.HasHardwareVersions() && (hw < h.MinHardwareVersion || hw > h.MaxHardwareVersion) {
			return false, fmt.Sprintf("hardware version 0x%04x is outside the file's range 0x%04x–0x%04x",
				hw, h.MinHardwareVersion, h.MaxHardwareVersion)
		}
		if m.HardwareMin != nil && hw < *m.HardwareMin {
			return false, fmt.Sprintf("hardware version 0x%04x is below the index's hardwareVersionMin 0x%04x", hw, *m.HardwareMin)
		}
		if m.HardwareMax != nil && hw > *m.HardwareMax {
			return false, fmt.Sprintf("hardware version 0x%04x is above the index's hardwareVersionMax 0x%04x", hw, *m.HardwareMax)
		}
	}
	if m.MinFileVersion != nil || m.MaxFileVersion != nil {
		if !dev.FileVersionKnown {
			return false, "installed file version unknown; the index entry limits it"
		}
		if m.MinFileVersion != nil && dev.FileVersion < *m.MinFileVersion {
			return false, fmt.Sprintf("installed file version 0x%08x is below the index's minFileVersion 0x%08x", dev.FileVersion, *m.MinFileVersion)
		}
		if m.MaxFileVersion != nil && dev.FileVersion > *m.MaxFileVersion {
			return false, fmt.Sprintf("installed file version 0x%08x is above the index's maxFileVersion 0x%08x", dev.FileVersion, *m.MaxFileVersion)
		}
	}
	if m.ModelID != "" && m.ModelID != dev.Model {
		return false, fmt.Sprintf("model %q is not the index's modelId %q", dev.Model, m.ModelID)
	}
	if len(m.ManufacturerNames) > 0 && !slices.Contains(m.ManufacturerNames, dev.ManufacturerName) {
		return false, fmt.Sprintf("manufacturer name %q is not in the index's list [%s]", dev.ManufacturerName, strings.Join(m.ManufacturerNames, ", "))
	}
	return true, ""
}

// effectiveHeader is the file's header once the image is local, else Header (for a remote index image,
// built from its entry).
func (img *Image) effectiveHeader() Header {
	if f := img.File(); f != nil {
		return f.Header
	}
	return img.Header
}
