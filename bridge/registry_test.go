package bridge

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

const (
	ieeeA zcl.IEEE = 0x00124b0012345678
	ieeeB zcl.IEEE = 0x00124b00000000bb
)

func TestRegistrySeenAndAnnounced(t *testing.T) {
	clk := clock.NewVirtual()
	changes := 0
	r := NewRegistry(clk, func(bool) { changes++ })

	d, created := r.Seen(ieeeA, 0x1234, 200)
	assert.True(t, created)
	assert.Equal(t, "0x00124b0012345678", d.FriendlyName, "default friendly name is the IEEE string")
	assert.Equal(t, uint16(0x1234), d.NWK)
	assert.Equal(t, uint8(200), d.LQI)
	assert.Equal(t, InterviewPending, d.Interview)
	assert.Equal(t, PowerUnknown, d.PowerSource)
	assert.Equal(t, clock.Epoch, d.LastSeen)
	assert.Equal(t, 1, changes)

	clk.RunFor(time.Minute)
	d, created = r.Seen(ieeeA, 0xFFFF, 0) // unknown short address and LQI keep the old ones
	assert.False(t, created)
	assert.Equal(t, uint16(0x1234), d.NWK)
	assert.Equal(t, uint8(200), d.LQI)
	assert.Equal(t, clock.Epoch.Add(time.Minute), d.LastSeen)

	// Device_annce capabilities: 0x80 (allocate address) alone = sleepy end device on battery; 0x8E = mains
	// router with its receiver on.
	d, _ = r.Announced(ieeeB, 0x2222, 0x80)
	assert.True(t, d.Sleepy)
	assert.Equal(t, PowerBattery, d.PowerSource)
	d, _ = r.Announced(ieeeA, 0x1235, 0x8E)
	assert.False(t, d.Sleepy)
	assert.Equal(t, PowerMains, d.PowerSource)
	assert.Equal(t, uint16(0x1235), d.NWK)

	// A short address moves to the device that announced it.
	r.Announced(ieeeB, 0x1235, 0x80)
	a, _ := r.ByIEEE(ieeeA)
	assert.Equal(t, uint16(0xFFFF), a.NWK)
	got, ok := r.ByNWK(0x1235)
	require.True(t, ok)
	assert.Equal(t, ieeeB, got.IEEE)
	_, ok = r.ByNWK(0x2222)
	assert.False(t, ok)
	assert.Equal(t, 2, r.Len())
}

func TestRegistryLookup(t *testing.T) {
	r := NewRegistry(nil, nil)
	r.Seen(ieeeA, 1, 0)
	r.Seen(ieeeB, 2, 0)
	_, _, err := r.Rename("0x00124b00000000bb", "kitchen/light")
	require.NoError(t, err)
	for _, id := range []string{"0x00124b0012345678", "00124b0012345678", "00:12:4b:00:12:34:56:78", "0X00124B0012345678"} {
		d, ok := r.Lookup(id)
		assert.True(t, ok, id)
		assert.Equal(t, ieeeA, d.IEEE, id)
	}
	d, ok := r.Lookup("kitchen/light")
	require.True(t, ok)
	assert.Equal(t, ieeeB, d.IEEE)
	d, ok = r.Lookup("0x00124b00000000bb") // the IEEE still works after a rename
	require.True(t, ok)
	assert.Equal(t, "kitchen/light", d.FriendlyName)
	_, ok = r.Lookup("kitchen")
	assert.False(t, ok)
	_, ok = r.Lookup("0x0000000000000001")
	assert.False(t, ok)
	all := r.All()
	require.Len(t, all, 2)
	assert.True(t, sort.SliceIsSorted(all, func(i, j int) bool { return all[i].IEEE < all[j].IEEE }))
}

func TestRegistryRenameRules(t *testing.T) {
	r := NewRegistry(nil, nil)
	r.Seen(ieeeA, 1, 0)
	r.Seen(ieeeB, 2, 0)
	_, _, err := r.Rename(ieeeB.String(), "taken")
	require.NoError(t, err)

	bad := map[string]string{
		"":                        "empty",
		"   ":                     "empty",
		"a+b":                     "wildcard",
		"a#":                      "wildcard",
		"/lead":                   "starts or ends with /",
		"trail/":                  "starts or ends with /",
		"a//b":                    "empty topic level",
		"bridge":                  "reserved",
		"Bridge":                  "reserved",
		"bridge/x":                "reserved",
		"tab\there":               "control character",
		"nul\x00":                 "control character",
		"\xff\xfe":                "UTF-8",
		"taken":                   "already has it",
		"0x00124b00000000bb":      "IEEE address of another device",
		string(make([]byte, 200)): "longer than",
		"00:12:4b:00:00:00:00:bb": "IEEE address of another device",
	}
	for name, want := range bad {
		_, _, err := r.Rename(ieeeA.String(), name)
		if assert.Error(t, err, "%q", name) {
			assert.ErrorIs(t, err, ErrInvalidName, "%q", name)
			assert.Contains(t, err.Error(), want, "%q", name)
		}
	}
	d, _ := r.ByIEEE(ieeeA)
	assert.Equal(t, ieeeA.String(), d.FriendlyName, "failed renames change nothing")

	for _, good := range []string{"living room/lamp 1", "Küche", "a/b/c", "bridges", "taken2"} {
		old, nd, err := r.Rename(ieeeA.String(), good)
		require.NoError(t, err, good)
		assert.Equal(t, good, nd.FriendlyName)
		assert.NotEqual(t, good, old.FriendlyName)
	}
	// Renaming to the own IEEE address restores the default; renaming to the current name is fine.
	_, nd, err := r.Rename("taken2", "0x00124B0012345678")
	require.NoError(t, err)
	assert.Equal(t, ieeeA.String(), nd.FriendlyName)
	_, _, err = r.Rename(ieeeA.String(), ieeeA.String())
	require.NoError(t, err)

	_, _, err = r.Rename("nobody", "x")
	assert.ErrorIs(t, err, ErrDeviceNotFound)
}

func TestRegistryInterviewResultAndEngineInfo(t *testing.T) {
	r := NewRegistry(clock.NewVirtual(), nil)
	r.Announced(ieeeA, 0x1234, 0x80)
	d, err := r.SetInterviewResult(ieeeA, InterviewResult{OK: true,
		Manufacturer: "Espressif", HasManufacturer: true, Model: "ESP32H2", HasModel: true,
		SWBuildID: "1.0.3", HasSWBuildID: true, PowerSource: 0x83, HasPowerSource: true,
		HardwareVersion: 2, HasHardwareVersion: true,
		FileVersion: 0x01020304, HasFileVersion: true, ManufacturerCode: 0x131b, HasManufacturerCode: true,
		ImageType: 0x0001, HasImageType: true})
	require.NoError(t, err)
	assert.Equal(t, InterviewOK, d.Interview)
	assert.Equal(t, PowerBattery, d.PowerSource, "0x83: battery primary, bit 7 (secondary battery) ignored")
	assert.Equal(t, "0x01020304", d.InstalledVersion())
	assert.Equal(t, ota.DeviceInfo{IEEE: ieeeA, Model: "ESP32H2", ManufacturerName: "Espressif", ManufacturerCode: 0x131b,
		ImageType: 1, HardwareVersion: 2, HasHardwareVersion: true, FileVersion: 0x01020304, FileVersionKnown: true,
		Sleepy: true}, d.EngineInfo())

	// A failed interview keeps what was known and says why.
	d, err = r.SetInterviewResult(ieeeA, InterviewResult{Reason: "no answer"})
	require.NoError(t, err)
	assert.Equal(t, InterviewFailed, d.Interview)
	assert.Equal(t, "no answer", d.InterviewReason)
	assert.Equal(t, "Espressif", d.Manufacturer)
	assert.True(t, d.FileVersionKnown)

	d, err = r.SetInterviewPending(ieeeA)
	require.NoError(t, err)
	assert.Equal(t, InterviewPending, d.Interview)
	assert.Empty(t, d.InterviewReason)

	_, err = r.SetInterviewResult(ieeeB, InterviewResult{})
	assert.ErrorIs(t, err, ErrDeviceNotFound)
}

func TestPowerSourceFromBasic(t *testing.T) {
	for v, want := range map[uint8]string{0x00: PowerUnknown, 0x01: PowerMains, 0x02: PowerMains, 0x03: PowerBattery,
		0x04: PowerMains, 0x05: PowerMains, 0x06: PowerMains, 0x07: PowerUnknown, 0x81: PowerMains, 0x83: PowerBattery, 0x7F: PowerUnknown} {
		assert.Equal(t, want, PowerSourceFromBasic(v), "0x%02x", v)
	}
}

func TestDeviceJSON(t *testing.T) {
	// Nothing known yet: unknown values are null, and the key set is exactly DESIGN.md's.
	d := Device{IEEE: ieeeA, NWK: 0x1234, FriendlyName: "lamp"}
	b, err := json.Marshal(d.JSON())
	require.NoError(t, err)
	assert.JSONEq(t, `{"ieee":"0x00124b0012345678","nwk":4660,"friendly_name":"lamp","manufacturer":null,"model":null,
		"manufacturer_code":null,"image_type":null,"hardware_version":null,"file_version":null,"installed_version":null,
		"power_source":"unknown","last_seen":null,"ota_state":null}`, string(b))

	d = Device{IEEE: ieeeA, NWK: 0x1234, FriendlyName: "lamp", Manufacturer: "IKEA of Sweden", Model: "TRADFRI bulb",
		ManufacturerCode: 0x117c, ImageType: 0x2101, HasImageID: true, HardwareVersion: 1, HasHardwareVersion: true,
		FileVersion: 0x23088631, FileVersionKnown: true, PowerSource: PowerMains,
		LastSeen: time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))}
	j := d.JSON()
	j.OTAState = map[string]any{"state": "idle"}
	b, err = json.Marshal(j)
	require.NoError(t, err)
	assert.JSONEq(t, `{"ieee":"0x00124b0012345678","nwk":4660,"friendly_name":"lamp","manufacturer":"IKEA of Sweden",
		"model":"TRADFRI bulb","manufacturer_code":4476,"image_type":8449,"hardware_version":1,"file_version":587761201,
		"installed_version":"0x23088631","power_source":"mains","last_seen":"2026-03-04T04:06:07Z","ota_state":{"state":"idle"}}`, string(b))
}

func TestRegistrySnapshotRestore(t *testing.T) {
	clk := clock.NewVirtual()
	r := NewRegistry(clk, nil)
	r.Announced(ieeeA, 0x1234, 0x8E)
	r.Announced(ieeeB, 0x2222, 0x80)
	_, _, err := r.Rename(ieeeB.String(), "sensor")
	require.NoError(t, err)
	_, err = r.SetInterviewResult(ieeeA, InterviewResult{OK: true, FileVersion: 7, HasFileVersion: true,
		ManufacturerCode: 1, HasManufacturerCode: true, ImageType: 2, HasImageType: true})
	require.NoError(t, err)

	// Through JSON, as the state file does.
	path := t.TempDir() + "/state.json"
	require.NoError(t, SaveJSON(path, r.Snapshot()))
	var snap RegistrySnapshot
	found, err := LoadJSON(path, &snap, nopLog())
	require.NoError(t, err)
	require.True(t, found)

	r2 := NewRegistry(clk, nil)
	assert.Equal(t, 2, r2.Restore(snap))
	assert.Equal(t, r.All(), r2.All())

	// A damaged snapshot is repaired: no IEEE → skipped, duplicate or invalid names → IEEE, unknown
	// interview state → pending.
	n := r2.Restore(RegistrySnapshot{Devices: []Device{
		{IEEE: 0, FriendlyName: "ghost"},
		{IEEE: ieeeA, FriendlyName: "dup", Interview: "running", PowerSource: "solar"},
		{IEEE: ieeeB, FriendlyName: "dup"},
		{IEEE: 3, FriendlyName: "a+b"},
	}})
	assert.Equal(t, 3, n)
	a, _ := r2.ByIEEE(ieeeA)
	b, _ := r2.ByIEEE(ieeeB)
	c, _ := r2.ByIEEE(3)
	assert.Equal(t, "dup", a.FriendlyName)
	assert.Equal(t, ieeeB.String(), b.FriendlyName)
	assert.Equal(t, zcl.IEEE(3).String(), c.FriendlyName)
	assert.Equal(t, InterviewPending, a.Interview)
	assert.Equal(t, PowerUnknown, a.PowerSource)
}

func TestRegistryRemoveAndUpdate(t *testing.T) {
	changes := 0
	r := NewRegistry(nil, func(bool) { changes++ })
	r.Seen(ieeeA, 1, 0)
	d, err := r.Update(ieeeA, func(d *Device) { d.Endpoint = 2; d.IEEE = 99 })
	require.NoError(t, err)
	assert.Equal(t, uint8(2), d.Endpoint)
	assert.Equal(t, ieeeA, d.IEEE, "the key cannot change")
	assert.True(t, r.Remove(ieeeA))
	assert.False(t, r.Remove(ieeeA))
	assert.Equal(t, 3, changes)
	_, err = r.Update(ieeeA, func(*Device) {})
	assert.ErrorIs(t, err, ErrDeviceNotFound)
}

// Issue 19.3: the registry tells which changes alter the published device list (membership, name, short
// address, interview results) and which only last_seen or the link quality (saved, not re-listed).
func TestRegistryListedChanges(t *testing.T) {
	clk := clock.NewVirtual()
	var got []bool
	r := NewRegistry(clk, func(listed bool) { got = append(got, listed) })
	expect := func(what string, want ...bool) {
		t.Helper()
		if want == nil {
			want = []bool{}
		}
		if got == nil {
			got = []bool{}
		}
		assert.Equal(t, want, got, what)
		got = nil
	}
	r.Seen(ieeeA, 0x1234, 200)
	expect("a new device is listed", true)
	r.Seen(ieeeA, 0x1234, 180)
	expect("a frame within the minute changes nothing saved")
	clk.RunFor(time.Minute)
	r.Seen(ieeeA, 0x1234, 150)
	expect("last_seen a minute later is saved, not listed", false)
	r.Seen(ieeeA, 0x4321, 150)
	expect("a new short address is listed", true)
	r.Announced(ieeeA, 0x4321, 0x8E)
	expect("an announce that teaches the power source is listed", true)
	r.Announced(ieeeA, 0x4321, 0x8E)
	expect("the same announce again is not listed", false)
	r.SetInterviewPending(ieeeA)
	expect("an interview starting is not listed", false)
	r.SetInterviewResult(ieeeA, InterviewResult{OK: true, Model: "m1", HasModel: true})
	expect("what an interview learned is listed", true)
	r.Update(ieeeA, func(d *Device) { d.Endpoint = 3 })
	expect("the endpoint (not in the list) is not listed", false)
	_, _, err := r.Rename(ieeeA.String(), "kitchen")
	require.NoError(t, err)
	expect("a rename is listed", true)
	r.Remove(ieeeA)
	expect("a removal is listed", true)
}

func nopLog() zerolog.Logger { return zerolog.Nop() }

func BenchmarkRegistryLookupByName(b *testing.B) {
	b.ReportAllocs()
	r := NewRegistry(clock.NewVirtual(), nil)
	for i := range 200 {
		r.Seen(zcl.IEEE(0x00124b0000000000+uint64(i)), uint16(i+1), 0)
	}
	_, _, _ = r.Rename(zcl.IEEE(0x00124b0000000000+150).String(), "kitchen/light")
	for b.Loop() {
		if _, ok := r.Lookup("kitchen/light"); !ok {
			b.Fatal("not found")
		}
	}
}
