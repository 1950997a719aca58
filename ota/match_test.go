package ota

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/zcl"
)

const (
	mMfr  uint16 = 0x1234
	mType uint16 = 0x0042
	mIEEE        = zcl.IEEE(0x00124b0012345678)
)

// matchImage is an image for the matching tests: a header and index metadata; local makes it readable.
type matchImage struct {
	id      string
	ver     uint32
	source  string
	meta    IndexMeta
	fc      uint16
	hwMin   uint16
	hwMax   uint16
	dest    zcl.IEEE
	mfr     uint16
	typ     uint16
	local   bool
	payload int
}

func (m matchImage) build(t testing.TB) *storeEntry {
	t.Helper()
	h := Header{ManufacturerCode: mMfr, ImageType: mType, FileVersion: m.ver, FieldControl: m.fc,
		MinHardwareVersion: m.hwMin, MaxHardwareVersion: m.hwMax, UpgradeFileDestination: m.dest}
	if m.mfr != 0 {
		h.ManufacturerCode = m.mfr
	}
	if m.typ != 0 {
		h.ImageType = m.typ
	}
	if m.source == "" {
		m.source = SourceFolder
	}
	img := &Image{ID: m.id, Source: m.source, Meta: m.meta, Header: h}
	if m.local || m.source != SourceIndex {
		b := syntheticOTA(t, h, 16)
		f, err := ParseBytes(b)
		require.NoError(t, err)
		img.attach("", f, bytes.NewReader(b), nil, sha256.Sum256(b))
	}
	rank := 0
	if m.source == SourceIndex {
		rank = 1
	}
	return &storeEntry{img: img, rank: rank}
}

// matchStore is a store whose catalogue is set directly.
func matchStore(t testing.TB, imgs ...matchImage) *Store {
	t.Helper()
	s, err := NewStore(StoreConfig{}, nopLogger())
	require.NoError(t, err)
	var entries []*storeEntry
	for _, m := range imgs {
		entries = append(entries, m.build(t))
	}
	s.mu.Lock()
	s.setEntriesLocked(entries)
	s.mu.Unlock()
	return s
}

func baseDevice() DeviceInfo {
	return DeviceInfo{IEEE: mIEEE, Model: "Plug 1", ManufacturerName: "Acme", ManufacturerCode: mMfr, ImageType: mType,
		HardwareVersion: 3, HasHardwareVersion: true, FileVersion: 10, FileVersionKnown: true}
}

// TestMatchesRules checks every rule both ways.
func TestMatchesRules(t *testing.T) {
	dev := baseDevice()
	mod := func(f func(*DeviceInfo)) DeviceInfo { d := baseDevice(); f(&d); return d }
	tests := []struct {
		name string
		img  matchImage
		dev  DeviceInfo
		ok   bool
		why  string
	}{
		{"plain upgrade", matchImage{ver: 11}, dev, true, ""},
		{"manufacturer differs", matchImage{ver: 11, mfr: 0x9999}, dev, false, "manufacturer code 0x9999 is not the device's 0x1234"},
		{"image type differs", matchImage{ver: 11, typ: 0x0043}, dev, false, "image type 0x0043 is not the device's 0x0042"},
		{"header hw range holds", matchImage{ver: 11, fc: HeaderFieldHardwareVersions, hwMin: 1, hwMax: 3}, dev, true, ""},
		{"header hw range excludes", matchImage{ver: 11, fc: HeaderFieldHardwareVersions, hwMin: 4, hwMax: 5}, dev, false, "hardware version 0x0003 is outside the file's range 0x0004–0x0005"},
		{"header hw range, device hw unknown", matchImage{ver: 11, fc: HeaderFieldHardwareVersions, hwMin: 4, hwMax: 5},
			mod(func(d *DeviceInfo) { d.HasHardwareVersion = false }), true, ""},
		{"index hw min holds", matchImage{ver: 11, meta: IndexMeta{HardwareMin: u16p(3)}}, dev, true, ""},
		{"index hw min excludes", matchImage{ver: 11, meta: IndexMeta{HardwareMin: u16p(4)}}, dev, false, "below the index's hardwareVersionMin 0x0004"},
		{"index hw max holds", matchImage{ver: 11, meta: IndexMeta{HardwareMax: u16p(3)}}, dev, true, ""},
		{"index hw max excludes", matchImage{ver: 11, meta: IndexMeta{HardwareMax: u16p(2)}}, dev, false, "above the index's hardwareVersionMax 0x0002"},
		{"min file version holds", matchImage{ver: 11, meta: IndexMeta{MinFileVersion: u32p(10)}}, dev, true, ""},
		{"min file version excludes", matchImage{ver: 11, meta: IndexMeta{MinFileVersion: u32p(11)}}, dev, false, "below the index's minFileVersion 0x0000000b"},
		{"max file version holds", matchImage{ver: 11, meta: IndexMeta{MaxFileVersion: u32p(10)}}, dev, true, ""},
		{"max file version excludes", matchImage{ver: 11, meta: IndexMeta{MaxFileVersion: u32p(9)}}, dev, false, "above the index's maxFileVersion 0x00000009"},
		{"file version bound, installed unknown", matchImage{ver: 11, meta: IndexMeta{MinFileVersion: u32p(1)}},
			mod(func(d *DeviceInfo) { d.FileVersionKnown = false }), false, "installed file version unknown"},
		{"modelId equal", matchImage{ver: 11, meta: IndexMeta{ModelID: "Plug 1"}}, dev, true, ""},
		{"modelId differs", matchImage{ver: 11, meta: IndexMeta{ModelID: "Plug 2"}}, dev, false, `model "Plug 1" is not the index's modelId "Plug 2"`},
		{"modelId, model unknown", matchImage{ver: 11, meta: IndexMeta{ModelID: "Plug 1"}},
			mod(func(d *DeviceInfo) { d.Model = "" }), false, "modelId"},
		{"manufacturer name listed", matchImage{ver: 11, meta: IndexMeta{ManufacturerNames: []string{"Other", "Acme"}}}, dev, true, ""},
		{"manufacturer name not listed", matchImage{ver: 11, meta: IndexMeta{ManufacturerNames: []string{"Other"}}}, dev, false, `manufacturer name "Acme" is not in the index's list [Other]`},
		{"device-specific for this device", matchImage{ver: 11, fc: HeaderFieldDeviceSpecific, dest: mIEEE}, dev, true, ""},
		{"device-specific for another device", matchImage{ver: 11, fc: HeaderFieldDeviceSpecific, dest: 0x1111}, dev, false, "file is for device 0x0000000000001111 only"},
		{"same version", matchImage{ver: 10}, dev, false, "file version 0x0000000a is not newer than the installed 0x0000000a"},
		{"older version", matchImage{ver: 9}, dev, false, "not newer"},
		{"forced same version", matchImage{ver: 10, meta: IndexMeta{Force: true}}, dev, true, ""},
		{"forced older version", matchImage{ver: 9, meta: IndexMeta{Force: true}}, dev, true, ""},
		{"installed version unknown", matchImage{ver: 1}, mod(func(d *DeviceInfo) { d.FileVersionKnown = false }), true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.img.build(t).img
			ok, why := Matches(img, tc.dev)
			assert.Equal(t, tc.ok, ok)
			if tc.ok {
				assert.Empty(t, why)
			} else {
				assert.Contains(t, why, tc.why)
			}
			// Through the store as well.
			s := matchStore(t, tc.img)
			got := s.Match(tc.dev, MatchQuery{})
			if tc.ok {
				assert.NotNil(t, got)
			} else {
				assert.Nil(t, got)
			}
		})
	}
}

// TestMatchUsesTheFileHeaderOnceLocal checks that a downloaded index image is matched with the header of
// its file (which may have a hardware range the index entry did not give).
func TestMatchUsesTheFileHeaderOnceLocal(t *testing.T) {
	dev := baseDevice()
	e := matchImage{ver: 11, source: SourceIndex}.build(t)
	ok, _ := Matches(e.img, dev)
	assert.True(t, ok)
	h := e.img.Header
	h.FieldControl, h.MinHardwareVersion, h.MaxHardwareVersion = HeaderFieldHardwareVersions, 7, 8
	b := syntheticOTA(t, h, 16)
	f, err := ParseBytes(b)
	require.NoError(t, err)
	e.img.attachKeepHeader(&localFile{file: f, sha256: sha256.Sum256(b)})
	ok, why := Matches(e.img, dev)
	assert.False(t, ok)
	assert.Contains(t, why, "outside the file's range")
	assert.Equal(t, uint16(0), e.img.Header.FieldControl, "the published header is not rewritten")
}

func TestMatchSelection(t *testing.T) {
	dev := baseDevice()
	s := matchStore(t,
		matchImage{id: "v9", ver: 9},
		matchImage{id: "v10", ver: 10},
		matchImage{id: "v11-index", ver: 11, source: SourceIndex},
		matchImage{id: "v12-index", ver: 12, source: SourceIndex},
		matchImage{id: "v12-upload", ver: 12, source: SourceUpload},
		matchImage{id: "v12-url", ver: 12, source: SourceURL},
		matchImage{id: "v13-other-model", ver: 13, meta: IndexMeta{ModelID: "Other"}},
		matchImage{id: "v14-other-type", ver: 14, typ: 0x0999},
	)
	ids := func(imgs []*Image) []string {
		var out []string
		for _, i := range imgs {
			out = append(out, i.ID)
		}
		return out
	}
	v := func(n uint32) *uint32 { return &n }
	tests := []struct {
		name string
		dev  DeviceInfo
		q    MatchQuery
		want string
	}{
		{"highest version wins; folder/upload before index", dev, MatchQuery{}, "v12-upload"},
		{"skip the best", dev, MatchQuery{Skip: func(i *Image) bool { return i.Header.FileVersion == 12 }}, "v11-index"},
		{"skip everything", dev, MatchQuery{Skip: func(*Image) bool { return true }}, ""},
		{"downgrade by explicit version", dev, MatchQuery{Version: v(9)}, "v9"},
		{"reinstall by explicit version", dev, MatchQuery{Version: v(10)}, "v10"},
		{"explicit version, index only", dev, MatchQuery{Version: v(11)}, "v11-index"},
		{"explicit version that does not fit", dev, MatchQuery{Version: v(13)}, ""},
		{"explicit version that does not exist", dev, MatchQuery{Version: v(99)}, ""},
		{"nothing newer", func() DeviceInfo { d := dev; d.FileVersion = 12; return d }(), MatchQuery{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Match(tc.dev, tc.q)
			if tc.want == "" {
				assert.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			assert.Equal(t, tc.want, got.ID)
		})
	}

	assert.Equal(t, []string{"v12-upload", "v11-index", "v10", "v9"}, ids(s.Versions(dev)), "one per version, newest first")
	assert.Equal(t, "v12-upload", s.ByImageID(zcl.ImageID{ManufacturerCode: mMfr, ImageType: mType, FileVersion: 12}).ID)
	assert.Nil(t, s.ByImageID(zcl.ImageID{ManufacturerCode: mMfr, ImageType: mType, FileVersion: 99}))
	assert.Equal(t, "v14-other-type", s.ByImageID(zcl.ImageID{ManufacturerCode: mMfr, ImageType: 0x0999, FileVersion: 14}).ID)
}

// TestByImageIDPrefersLocal checks that resuming prefers the image whose bytes are here.
func TestByImageIDPrefersLocal(t *testing.T) {
	s := matchStore(t,
		matchImage{id: "remote", ver: 5, source: SourceIndex},
		matchImage{id: "downloaded", ver: 5, source: SourceIndex, local: true},
	)
	assert.Equal(t, "downloaded", s.ByImageID(zcl.ImageID{ManufacturerCode: mMfr, ImageType: mType, FileVersion: 5}).ID)
}

func BenchmarkStoreMatch(b *testing.B) {
	var imgs []matchImage
	for i := 0; i < 900; i++ {
		imgs = append(imgs, matchImage{id: fmt.Sprintf("i%d", i), ver: uint32(i), source: SourceIndex,
			mfr: uint16(0x1000 + i%50), typ: uint16(i%7 + 1), meta: IndexMeta{ModelID: "m"}})
	}
	s := matchStore(b, imgs...)
	dev := DeviceInfo{ManufacturerCode: 0x1000, ImageType: 1, Model: "m", FileVersion: 1, FileVersionKnown: true}
	b.ReportAllocs()
	for b.Loop() {
		if s.Match(dev, MatchQuery{}) == nil {
			b.Fatal("no match")
		}
	}
}

// The engine's view of the store (its Catalog interface).
var _ interface {
	Match(dev DeviceInfo, q MatchQuery) *Image
	ByImageID(id zcl.ImageID) *Image
	Get(id string) *Image
} = (*Store)(nil)

// TestExplain: when Match finds nothing, Explain names the newest image of the device's kind and the rule
// it fails (or that the device rejected it, or the versions there are for an explicit version), and says
// nothing when the store has no image of that kind or the newest is only not newer.
func TestExplain(t *testing.T) {
	dev := baseDevice() // hardware 3, file version 10
	s := matchStore(t,
		matchImage{id: "v9", ver: 9},
		matchImage{id: "v11-hw45", ver: 11, fc: HeaderFieldHardwareVersions, hwMin: 4, hwMax: 5},
		matchImage{id: "v14-other-type", ver: 14, typ: 0x0999},
	)
	v := func(n uint32) *uint32 { return &n }
	require.Nil(t, s.Match(dev, MatchQuery{}))
	assert.Equal(t, "v11-hw45 does not fit: hardware version 0x0003 is outside the file's range 0x0004–0x0005",
		s.Explain(dev, MatchQuery{}))
	assert.Equal(t, "v11-hw45 does not fit: hardware version 0x0003 is outside the file's range 0x0004–0x0005",
		s.Explain(dev, MatchQuery{Version: v(11)}), "an explicit version that does not fit")
	assert.Equal(t, "the store has 0x00000009, 0x0000000b", s.Explain(dev, MatchQuery{Version: v(12)}))

	newer := matchStore(t, matchImage{id: "v11", ver: 11})
	assert.Equal(t, "the device rejected v11 before", newer.Explain(dev, MatchQuery{Skip: func(*Image) bool { return true }}))
	upToDate := dev
	upToDate.FileVersion = 11
	assert.Empty(t, newer.Explain(upToDate, MatchQuery{}), "only not newer: the caller's message says so")
	other := dev
	other.ImageType = 0x0777
	assert.Empty(t, s.Explain(other, MatchQuery{}), "no image of the device's kind")
}

// TestUpdateRefusalSaysWhy: an update request the store cannot serve is refused with the reason the newest
// image of the device's kind does not fit (here its hardware range), not only "no image newer".
func TestUpdateRefusalSaysWhy(t *testing.T) {
	s := matchStore(t, matchImage{id: "v11-hw45", ver: 11, fc: HeaderFieldHardwareVersions, hwMin: 4, hwMax: 5})
	eng := NewEngine(EngineConfig{}, s, newRecOutput(clock.NewVirtual()), clock.NewVirtual(), zerolog.Nop())
	t.Cleanup(eng.Close)
	eng.SetDevice(baseDevice())
	_, err := eng.Update(mIEEE, nil)
	require.ErrorIs(t, err, ErrNoImage)
	assert.EqualError(t, err, "0x00124b0012345678: no image newer than 0x0000000a (manufacturer 0x1234, image type 0x0042): "+
		"v11-hw45 does not fit: hardware version 0x0003 is outside the file's range 0x0004–0x0005")
}
