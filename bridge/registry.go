package bridge

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/importer"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// Power sources of a device (from the Basic cluster's PowerSource attribute).
const (
	PowerMains   = importer.PowerMains
	PowerBattery = importer.PowerBattery
	PowerUnknown = importer.PowerUnknown
)

// Interview states.
const (
	InterviewPending = "pending"
	InterviewOK      = "ok"
	InterviewFailed  = "failed"
)

// Device is what the bridge knows about one Zigbee device. Values are copies: change a device through the
// Registry. Fields with a Has/Known flag are valid only when the flag is set.
type Device struct {
	IEEE         zcl.IEEE `json:"ieee"`
	NWK          uint16   `json:"nwk"`
	Endpoint     uint8    `json:"endpoint,omitempty"` // endpoint of the OTA client cluster; 0 = not known yet
	FriendlyName string   `json:"friendly_name"`

	Manufacturer       string `json:"manufacturer,omitempty"`
	Model              string `json:"model,omitempty"`
	SWBuildID          string `json:"sw_build_id,omitempty"`
	DateCode           string `json:"date_code,omitempty"`
	PowerSource        string `json:"power_source"`
	HardwareVersion    uint8  `json:"hardware_version,omitempty"`
	HasHardwareVersion bool   `json:"has_hardware_version,omitempty"`

	ManufacturerCode uint16 `json:"manufacturer_code,omitempty"`
	ImageType        uint16 `json:"image_type,omitempty"`
	HasImageID       bool   `json:"has_image_id,omitempty"` // manufacturer code and image type are known
	FileVersion      uint32 `json:"file_version,omitempty"`
	FileVersionKnown bool   `json:"file_version_known,omitempty"`

	// Sleepy: the device's receiver is off when idle (Device_annce capabilities bit 3 clear).
	Sleepy bool `json:"sleepy,omitempty"`

	LastSeen time.Time `json:"last_seen,omitzero"`
	LQI      uint8     `json:"lqi,omitempty"`

	Interview       string    `json:"interview"` // pending, ok or failed
	InterviewReason string    `json:"interview_reason,omitempty"`
	InterviewedAt   time.Time `json:"interviewed_at,omitzero"`
}

// EngineInfo is the device as the OTA engine needs it.
func (d Device) EngineInfo() ota.DeviceInfo {
	return ota.DeviceInfo{
		IEEE:               d.IEEE,
		Model:              d.Model,
		ManufacturerName:   d.Manufacturer,
		ManufacturerCode:   d.ManufacturerCode,
		ImageType:          d.ImageType,
		HardwareVersion:    uint16(d.HardwareVersion),
		HasHardwareVersion: d.HasHardwareVersion,
		FileVersion:        d.FileVersion,
		FileVersionKnown:   d.FileVersionKnown,
		Sleepy:             d.Sleepy,
	}
}

// InstalledVersion is the installed file version as "0x%08x", or "" when it is not known.
func (d Device) InstalledVersion() string {
	if !d.FileVersionKnown {
		return ""
	}
	return ota.VersionString(d.FileVersion)
}

// DeviceJSON is one entry of `<base>/bridge/devices`, with exactly the keys of DESIGN.md. Values the bridge
// does not know yet are null.
type DeviceJSON struct {
	IEEE             zcl.IEEE `json:"ieee"`
	NWK              uint16   `json:"nwk"`
	FriendlyName     string   `json:"friendly_name"`
	Manufacturer     *string  `json:"manufacturer"`
	Model            *string  `json:"model"`
	ManufacturerCode *uint16  `json:"manufacturer_code"`
	ImageType        *uint16  `json:"image_type"`
	HardwareVersion  *uint8   `json:"hardware_version"`
	FileVersion      *uint32  `json:"file_version"`
	InstalledVersion *string  `json:"installed_version"` // "0x%08x" of file_version
	PowerSource      string   `json:"power_source"`      // mains, battery or unknown
	LastSeen         *string  `json:"last_seen"`         // RFC 3339
	// OTAState is filled by the bridge from the engine (nil: null).
	OTAState any `json:"ota_state"`
}

// JSON returns the device's entry of `<base>/bridge/devices` (OTAState left nil for the caller to fill).
func (d Device) JSON() DeviceJSON {
	j := DeviceJSON{IEEE: d.IEEE, NWK: d.NWK, FriendlyName: d.FriendlyName, PowerSource: d.PowerSource}
	if j.PowerSource == "" {
		j.PowerSource = PowerUnknown
	}
	if d.Manufacturer != "" {
		j.Manufacturer = ptr(d.Manufacturer)
	}
	if d.Model != "" {
		j.Model = ptr(d.Model)
	}
	if d.HasImageID {
		j.ManufacturerCode, j.ImageType = ptr(d.ManufacturerCode), ptr(d.ImageType)
	}
	if d.HasHardwareVersion {
		j.HardwareVersion = ptr(d.HardwareVersion)
	}
	if d.FileVersionKnown {
		j.FileVersion = ptr(d.FileVersion)
		j.InstalledVersion = ptr(d.InstalledVersion())
	}
	if !d.LastSeen.IsZero() {
		j.LastSeen = ptr(d.LastSeen.UTC().Format(time.RFC3339))
	}
	return j
}

func ptr[T any](v T) *T { return &v }

// PowerSourceFromBasic maps the Basic cluster's PowerSource attribute (0x0007) to mains, battery or unknown
// (the importer's mapping: the same words as PowerMains, PowerBattery, PowerUnknown).
func PowerSourceFromBasic(v uint8) string { return importer.PowerSourceFromBasic(v) }

// Capability bits of a Device_annce.
const (
	capabilityReceiverOnIdle = 0x08 // receiver on when idle
	capabilityMainsPowerFlag = 0x04 // power source: mains
)

// Registry errors.
var (
	ErrDeviceNotFound = errors.New("no such device")
	ErrInvalidName    = errors.New("invalid friendly name")
)

// Registry is the set of known devices, keyed by IEEE address, with lookup by IEEE, friendly name or short
// address. It is safe for concurrent use; onChange (if set) is called after every change, outside the lock.
// Its argument, listed, says whether what `<base>/bridge/devices` shows changed apart from last_seen and
// the OTA state: a device added or removed, renamed, a new short address or power source, or what an
// interview learned. A change of last_seen (at most once a minute per device) or of the link quality alone
// is not listed: the bridge saves it but does not re-publish the device list for it.
type Registry struct {
	clk      clock.Clock
	onChange func(listed bool)

	mu     sync.RWMutex
	byIEEE map[zcl.IEEE]*Device
}

// NewRegistry returns an empty registry. clk stamps last_seen (nil: clock.Real).
func NewRegistry(clk clock.Clock, onChange func(listed bool)) *Registry {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Registry{clk: clk, onChange: onChange, byIEEE: make(map[zcl.IEEE]*Device)}
}

func (r *Registry) changed(listed bool) {
	if r.onChange != nil {
		r.onChange(listed)
	}
}

// listing is what the device list shows of d, without last_seen (reported at most once a minute) and the
// OTA state (the bridge fills it, and it has its own topic).
func (d Device) listing() DeviceJSON {
	j := d.JSON()
	j.LastSeen = nil
	return j
}

// listingChanged reports whether the device list shows before and after differently.
func listingChanged(before, after Device) bool {
	return !reflect.DeepEqual(before.listing(), after.listing())
}

// Len returns the number of devices.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byIEEE)
}

// Lookup finds a device by IEEE address (any form ParseIEEE accepts) or friendly name.
func (r *Registry) Lookup(idOrName string) (Device, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d := r.lookupLocked(idOrName)
	if d == nil {
		return Device{}, false
	}
	return *d, true
}

func (r *Registry) lookupLocked(idOrName string) *Device {
	if a, err := zcl.ParseIEEE(idOrName); err == nil {
		if d := r.byIEEE[a]; d != nil {
			return d
		}
	}
	for _, d := range r.byIEEE {
		if d.FriendlyName == idOrName {
			return d
		}
	}
	return nil
}

// ByIEEE returns the device with that address.
func (r *Registry) ByIEEE(a zcl.IEEE) (Device, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d := r.byIEEE[a]
	if d == nil {
		return Device{}, false
	}
	return *d, true
}

// ByNWK returns the device that has the short address now.
func (r *Registry) ByNWK(nwk uint16) (Device, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, d := range r.byIEEE {
		if d.NWK == nwk {
			return *d, true
		}
	}
	return Device{}, false
}

// All returns every device, sorted by IEEE address.
func (r *Registry) All() []Device {
	r.mu.RLock()
	out := make([]Device, 0, len(r.byIEEE))
	for _, d := range r.byIEEE {
		out = append(out, *d)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].IEEE < out[j].IEEE })
	return out
}

// Seen records that a device was heard: it is added if unknown (interview pending, friendly name = IEEE),
// its short address and LQI are updated and last_seen set to now. nwk 0xFFFF means unknown (kept as is).
// created reports a new device.
func (r *Registry) Seen(a zcl.IEEE, nwk uint16, lqi uint8) (d Device, created bool) {
	r.mu.Lock()
	dev, created := r.ensureLocked(a)
	moved := false
	if nwk != 0xFFFF && dev.NWK != nwk {
		// A short address belongs to one device: a device that rejoined elsewhere gives it up.
		r.releaseNWKLocked(a, nwk)
		dev.NWK, moved = nwk, true
	}
	if lqi != 0 {
		dev.LQI = lqi
	}
	now := r.clk.Now()
	// Every frame of a transfer passes here: last_seen alone is reported (and saved) at most once a minute.
	stale := now.Sub(dev.LastSeen) >= seenResolution
	dev.LastSeen = now
	d = *dev
	r.mu.Unlock()
	if created || moved || stale {
		r.changed(created || moved)
	}
	return d, created
}

// seenResolution is how fresh last_seen is in the published device list and the state file.
const seenResolution = time.Minute

// Announced records a Device_annce: like Seen, plus sleepy from the capability flags (receiver on when
// idle clear ⇒ sleepy).
func (r *Registry) Announced(a zcl.IEEE, nwk uint16, capabilities uint8) (d Device, created bool) {
	r.mu.Lock()
	dev, created := r.ensureLocked(a)
	before := *dev
	r.releaseNWKLocked(a, nwk)
	dev.NWK = nwk
	dev.Sleepy = capabilities&capabilityReceiverOnIdle == 0
	if dev.PowerSource == "" || dev.PowerSource == PowerUnknown {
		if capabilities&capabilityMainsPowerFlag != 0 {
			dev.PowerSource = PowerMains
		} else {
			dev.PowerSource = PowerBattery
		}
	}
	dev.LastSeen = r.clk.Now()
	d = *dev
	r.mu.Unlock()
	r.changed(created || listingChanged(before, d))
	return d, created
}

func (r *Registry) ensureLocked(a zcl.IEEE) (*Device, bool) {
	if d := r.byIEEE[a]; d != nil {
		return d, false
	}
	d := &Device{IEEE: a, NWK: 0xFFFF, FriendlyName: a.String(), PowerSource: PowerUnknown, Interview: InterviewPending}
	r.byIEEE[a] = d
	return d, true
}

func (r *Registry) releaseNWKLocked(owner zcl.IEEE, nwk uint16) {
	for a, d := range r.byIEEE {
		if a != owner && d.NWK == nwk {
			d.NWK = 0xFFFF
		}
	}
}

// Update changes a device with f (under the registry's lock: f must not call the registry) and returns the
// result.
func (r *Registry) Update(a zcl.IEEE, f func(*Device)) (Device, error) {
	r.mu.Lock()
	d := r.byIEEE[a]
	if d == nil {
		r.mu.Unlock()
		return Device{}, fmt.Errorf("device %s: %w", a, ErrDeviceNotFound)
	}
	before := *d
	f(d)
	d.IEEE = a // the key cannot change
	out := *d
	r.mu.Unlock()
	r.changed(listingChanged(before, out))
	return out, nil
}

// SetInterviewResult stores what an interview read (see InterviewResult.Apply).
func (r *Registry) SetInterviewResult(a zcl.IEEE, res InterviewResult) (Device, error) {
	now := r.clk.Now()
	return r.Update(a, func(d *Device) {
		res.Apply(d)
		d.InterviewedAt = now
	})
}

// SetInterviewPending marks a device's interview as running (after a join, announce or reboot).
func (r *Registry) SetInterviewPending(a zcl.IEEE) (Device, error) {
	return r.Update(a, func(d *Device) {
		d.Interview, d.InterviewReason = InterviewPending, ""
	})
}

// Remove deletes a device; it reports whether it existed.
func (r *Registry) Remove(a zcl.IEEE) bool {
	r.mu.Lock()
	_, ok := r.byIEEE[a]
	delete(r.byIEEE, a)
	r.mu.Unlock()
	if ok {
		r.changed(true)
	}
	return ok
}

// ReservedNames cannot be friendly names: they are topics of the bridge itself.
var ReservedNames = []string{"bridge"}

// MaxNameLength is the longest friendly name, in bytes.
const MaxNameLength = 128

// Rename gives the device idOrName a new friendly name. The name must be non-empty UTF-8 of at most
// MaxNameLength bytes without control characters, `+` or `#` (MQTT wildcards), may contain `/` but not at
// either end nor twice in a row (it becomes a topic path), must not be "bridge" or start with "bridge/"
// (the bridge's own topics), must not be another device's IEEE address, and must not be another device's
// friendly name. Renaming to the device's own IEEE address restores the default name. It returns the old
// and the new device.
func (r *Registry) Rename(idOrName, newName string) (old, renamed Device, err error) {
	if err := ValidateFriendlyName(newName); err != nil {
		return Device{}, Device{}, err
	}
	r.mu.Lock()
	d := r.lookupLocked(idOrName)
	if d == nil {
		r.mu.Unlock()
		return Device{}, Device{}, fmt.Errorf("rename %q: %w", idOrName, ErrDeviceNotFound)
	}
	if a, perr := zcl.ParseIEEE(newName); perr == nil {
		if a != d.IEEE {
			r.mu.Unlock()
			return Device{}, Device{}, fmt.Errorf("%w %q: it is the IEEE address of another device", ErrInvalidName, newName)
		}
		newName = a.String()
	}
	for _, o := range r.byIEEE {
		if o != d && (o.FriendlyName == newName || o.IEEE.String() == strings.ToLower(newName)) {
			r.mu.Unlock()
			return Device{}, Device{}, fmt.Errorf("%w %q: %s already has it", ErrInvalidName, newName, o.IEEE)
		}
	}
	old = *d
	d.FriendlyName = newName
	renamed = *d
	r.mu.Unlock()
	if old.FriendlyName != newName {
		r.changed(true)
	}
	return old, renamed, nil
}

// ValidateFriendlyName checks the rules of Rename that do not depend on other devices.
func ValidateFriendlyName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why) }
	switch {
	case name == "" || strings.TrimSpace(name) == "":
		return bad("empty")
	case len(name) > MaxNameLength:
		return bad(fmt.Sprintf("longer than %d bytes", MaxNameLength))
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case strings.ContainsAny(name, "+#"):
		return bad("contains an MQTT wildcard (+ or #)")
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return bad("starts or ends with /")
	case strings.Contains(name, "//"):
		return bad("has an empty topic level (//)")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return bad("contains a control character")
	}
	for _, res := range ReservedNames {
		if strings.EqualFold(name, res) || strings.HasPrefix(strings.ToLower(name), res+"/") {
			return bad("reserved for the bridge's own topics")
		}
	}
	return nil
}

// RegistrySnapshot is the registry's part of the bridge state file.
type RegistrySnapshot struct {
	Devices []Device `json:"devices"`
}

// Snapshot returns every device for the state file.
func (r *Registry) Snapshot() RegistrySnapshot {
	return RegistrySnapshot{Devices: r.All()}
}

// Restore replaces the registry's devices with a snapshot's. Entries without an IEEE address are skipped,
// duplicate friendly names fall back to the IEEE string, and an interview that was running is pending
// again. It returns how many devices were restored.
func (r *Registry) Restore(s RegistrySnapshot) int {
	m := make(map[zcl.IEEE]*Device, len(s.Devices))
	names := make(map[string]bool, len(s.Devices))
	for i := range s.Devices {
		d := s.Devices[i]
		if d.IEEE == 0 {
			continue
		}
		if ValidateFriendlyName(d.FriendlyName) != nil || names[d.FriendlyName] {
			d.FriendlyName = d.IEEE.String()
		}
		names[d.FriendlyName] = true
		switch d.PowerSource {
		case PowerMains, PowerBattery, PowerUnknown:
		default:
			d.PowerSource = PowerUnknown
		}
		switch d.Interview {
		case InterviewOK, InterviewFailed:
		default:
			d.Interview = InterviewPending
		}
		m[d.IEEE] = &d
	}
	r.mu.Lock()
	r.byIEEE = m
	r.mu.Unlock()
	return len(m)
}
