package bridge

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/discovery"
	"github.com/otabridge/otabridge/ota"
)

// The port itself, on versions whose ordering AwesomeVersion's own tests and HA's behaviour fix.
func TestAwesomeVersionPort(t *testing.T) {
	for _, tc := range []struct {
		a, b    string
		greater bool
	}{
		{"1.1.0", "1.0.0", true},
		{"1.0.0", "1.1.0", false},
		{"v2.4.5", "2.4.4", true},
		{"2024.11.0", "2024.10.3", true},
		{"10", "9", true},
		{"0x0a000000", "0x09ffffff", true},
		{"0x09ffffff", "0x0a000000", false},
		{"0xffffffff", "0xfffffffe", true},
		{"latest", "1.0.0", true},
		// What issue 13 saw: a dotted latest against a hex installed version compares the first dotted number
		// with the whole hex value, so a real update is "not newer".
		{"1.1.0", "0x01000000", false},
		{"2.4.5", "0x23093631", false},
	} {
		got, err := avGreater(tc.a, tc.b)
		require.NoError(t, err, "%s > %s", tc.a, tc.b)
		assert.Equal(t, tc.greater, got, "AwesomeVersion(%q) > %q", tc.a, tc.b)
	}
	_, err := avGreater("not a version!", "1.0")
	assert.ErrorIs(t, err, errAVCompare)
	for _, tc := range []struct{ installed, latest, want string }{
		{"", "1.0", "unknown"},
		{"1.0", "1.0", "off"},
		{"1.0", "nonsense!", "on"}, // cannot be compared: on
		{"1.0.0", "1.1.0", "on"},
		{"1.1.0", "1.0.0", "off"},
	} {
		got, err := haUpdateEntityState(tc.installed, tc.latest, "")
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "installed %q latest %q", tc.installed, tc.latest)
	}
}

// haStateOfPayload parses an update entity payload as HA's MQTT update platform does and returns the state.
func haStateOfPayload(t *testing.T, payload []byte) string {
	t.Helper()
	var p struct {
		Installed string `json:"installed_version"`
		Latest    string `json:"latest_version"`
	}
	require.NoError(t, json.Unmarshal(payload, &p))
	st, err := haUpdateEntityState(p.Installed, p.Latest, "")
	require.NoError(t, err, "payload %s", payload)
	return st
}

// For pairs of file versions that differ in each byte (and the awkward ones: 0x09… against 0x0a…, the
// largest version, equal versions), the published update entity is "on" exactly when the image is newer.
func TestUpdateEntityStateOrdersEveryFileVersion(t *testing.T) {
	bases := []uint32{0x00000000, 0x01000000, 0x23093631, 0x09ffffff, 0x7f7f7f7f, 0xfffffffe}
	var pairs [][2]uint32 // installed, image
	for _, base := range bases {
		for shift := 0; shift < 32; shift += 8 {
			up := base + 1<<shift
			if up > base {
				pairs = append(pairs, [2]uint32{base, up}, [2]uint32{up, base})
			}
		}
		pairs = append(pairs, [2]uint32{base, base})
	}
	pairs = append(pairs,
		[2]uint32{0x09000000, 0x0a000000}, [2]uint32{0x0a000000, 0x09000000},
		[2]uint32{0x00000009, 0x0000000a}, [2]uint32{0x00000009, 0x00000010},
		[2]uint32{0xfffffffe, 0xffffffff}, [2]uint32{0x00000000, 0xffffffff}, [2]uint32{0xffffffff, 0xffffffff},
		[2]uint32{0x01000000, 0x01010000}, [2]uint32{0x23093631, 0x24054631})
	d := Device{IEEE: 0x00124b0000000001, FriendlyName: "light", Manufacturer: "Espressif", Model: "ESP32C6.Light",
		SWBuildID: "1.0.0", HasImageID: true, FileVersionKnown: true}
	for _, p := range pairs {
		installed, image := p[0], p[1]
		d.FileVersion = installed
		ref := &ota.ImageRef{ID: "img", FileVersion: image, Version: "1.1.0", ReleaseNotes: "notes"}
		st := ota.DeviceState{IEEE: d.IEEE, State: ota.StateAvailable, InstalledVersion: &installed, Available: ref}
		us, _ := deviceUpdateState(d, st, nil)
		want := "off"
		if image > installed {
			want = "on"
		}
		assert.Equal(t, want, haStateOfPayload(t, discovery.UpdatePayload(us)),
			"installed 0x%08x, image 0x%08x: %+v", installed, image, us)
	}
}

func demoLightImage(t *testing.T) *ota.Image {
	t.Helper()
	img := &ota.Image{ID: "131b-0001-01010000-0fbb7413",
		Header: ota.Header{ManufacturerCode: 0x131B, ImageType: 1, FileVersion: 0x01010000, TotalImageSize: 41026}}
	img.Meta.Version = "1.1.0"
	img.Meta.ReleaseNotes = "Demo: smoother dimming curve."
	img.Meta.ReleaseURL = "https://example.com/light/1.1.0"
	return img
}

// The demo light (0x01000000 → 1.1.0): an update HA shows as available, with the human-readable versions in
// the title and release summary; after the upgrade the summary and URL stay, with the version it runs.
func TestUpdateEntityBeforeAndAfterUpgrade(t *testing.T) {
	img := demoLightImage(t)
	ref := &ota.ImageRef{ID: img.ID, FileVersion: img.Header.FileVersion, Version: img.DisplayVersion(),
		ReleaseNotes: img.Meta.ReleaseNotes, ReleaseURL: img.Meta.ReleaseURL}
	d := Device{IEEE: 0x00124b0000000001, FriendlyName: "light", Manufacturer: "Espressif", Model: "ESP32C6.Light",
		SWBuildID: "1.0.0", HasImageID: true, ManufacturerCode: 0x131B, ImageType: 1,
		FileVersion: 0x01000000, FileVersionKnown: true}
	before := ota.DeviceState{IEEE: d.IEEE, State: ota.StateAvailable, Available: ref}
	us, names := deviceUpdateState(d, before, nil)
	assert.Equal(t, discovery.UpdateState{InstalledVersion: "0x01000000", LatestVersion: "0x01010000",
		Title: "Espressif ESP32C6.Light firmware 1.1.0", ReleaseSummary: "1.0.0 → 1.1.0: Demo: smoother dimming curve.",
		ReleaseURL: "https://example.com/light/1.1.0"}, us)
	assert.Equal(t, versionNames{latest: "0x01010000", installedDisplay: "1.0.0", latestDisplay: "1.1.0"}, names)
	assert.Equal(t, "on", haStateOfPayload(t, discovery.UpdatePayload(us)))

	p := 42.123456
	updating := ota.DeviceState{IEEE: d.IEEE, State: ota.StateUpdating, Target: ref, Progress: &p}
	us, _ = deviceUpdateState(d, updating, nil)
	assert.True(t, us.InProgress)
	assert.Equal(t, "0x01010000", us.LatestVersion)
	assert.Equal(t, "on", haStateOfPayload(t, discovery.UpdatePayload(us)))

	// The device now runs 1.1.0 (it reports 0x01010000; its sw_build_id is re-read by the interview).
	d.FileVersion, d.SWBuildID = 0x01010000, "1.1.0"
	v := d.FileVersion
	after := ota.DeviceState{IEEE: d.IEEE, State: ota.StateIdle, InstalledVersion: &v}
	us, names = deviceUpdateState(d, after, img)
	assert.Equal(t, discovery.UpdateState{InstalledVersion: "0x01010000", LatestVersion: "",
		Title: "Espressif ESP32C6.Light firmware 1.1.0", ReleaseSummary: "1.1.0: Demo: smoother dimming curve.",
		ReleaseURL: "https://example.com/light/1.1.0"}, us)
	assert.Equal(t, versionNames{latest: "0x01010000", installedDisplay: "1.1.0", latestDisplay: "1.1.0"}, names)
	assert.Equal(t, "off", haStateOfPayload(t, discovery.UpdatePayload(us)))

	// An index whose release notes are a link: it becomes the release URL, before and after.
	img.Meta.ReleaseNotes, img.Meta.ReleaseURL = "https://example.com/notes", ""
	us, _ = deviceUpdateState(d, after, img)
	assert.Equal(t, "https://example.com/notes", us.ReleaseURL)
	assert.Equal(t, "1.1.0", us.ReleaseSummary)
}

// The `<name>/ota` numbers are rounded as HA shows them.
func TestOTAStateRounded(t *testing.T) {
	p, r := 16.0734567, 9.6123
	st := roundedState(ota.DeviceState{State: ota.StateUpdating, Progress: &p, Rate: 3580.4321, Remaining: &r})
	b, err := json.Marshal(st)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, 16.07, got["progress"])
	assert.Equal(t, 3580.0, got["rate"])
	assert.Equal(t, 10.0, got["remaining"])
	assert.Equal(t, 16.0734567, p, "the engine's own value is not changed")
}
