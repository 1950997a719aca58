package ota

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func u16p(v uint16) *uint16 { return &v }
func u32p(v uint32) *uint32 { return &v }

// TestParseIndexZigbeeOTAEntry parses an entry written out by hand in the Koenkk/zigbee-OTA format, with
// every optional key.
func TestParseIndexZigbeeOTAEntry(t *testing.T) {
	const data = `[
  {
    "fileName": "10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed",
    "fileVersion": 587806257,
    "fileSize": 227500,
    "originalUrl": "http://fw.ota.homesmart.ikea.net/global/GW1.0/01.01.016/bin/10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed",
    "url": "https://github.com/Koenkk/zigbee-OTA/raw/master/images/IKEA/10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed",
    "imageType": 10243,
    "manufacturerCode": 4476,
    "sha512": "FCDCC6190000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000AB",
    "otaHeaderString": "EBL tradfri_wrgb",
    "releaseNotes": "https://ww8.ikea.com/ikeahomesmart/releasenotes/releasenotes.html",
    "modelId": "TRADFRI bulb E27 CWS opal 600lm",
    "manufacturerName": ["IKEA of Sweden"],
    "minFileVersion": 1,
    "maxFileVersion": 587806256,
    "hardwareVersionMin": 1,
    "hardwareVersionMax": 65535,
    "force": false,
    "somethingNew": {"nested": [1, 2, 3]}
  }
]`
	entries, err := ParseIndex([]byte(data))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	want := IndexEntry{
		Position:           0,
		FileName:           "10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed",
		URL:                "https://github.com/Koenkk/zigbee-OTA/raw/master/images/IKEA/10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed",
		FileVersion:        u32p(587806257),
		FileSize:           u32p(227500),
		ImageType:          u16p(10243),
		ManufacturerCode:   u16p(4476),
		SHA512:             "fcdcc6190000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000ab",
		OTAHeaderString:    "EBL tradfri_wrgb",
		OriginalURL:        "http://fw.ota.homesmart.ikea.net/global/GW1.0/01.01.016/bin/10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed",
		ReleaseNotes:       "https://ww8.ikea.com/ikeahomesmart/releasenotes/releasenotes.html",
		ModelID:            "TRADFRI bulb E27 CWS opal 600lm",
		ManufacturerNames:  []string{"IKEA of Sweden"},
		MinFileVersion:     u32p(1),
		MaxFileVersion:     u32p(587806256),
		HardwareVersionMin: u16p(1),
		HardwareVersionMax: u16p(65535),
	}
	assert.Equal(t, want, entries[0])

	m := entries[0].Meta()
	assert.Equal(t, "https://ww8.ikea.com/ikeahomesmart/releasenotes/releasenotes.html", m.ReleaseURL)
	assert.Empty(t, m.ReleaseNotes)
	assert.Equal(t, "TRADFRI bulb E27 CWS opal 600lm", m.ModelID)
	assert.Equal(t, u16p(1), m.HardwareMin)
	assert.Equal(t, "EBL tradfri_wrgb", m.OTAHeaderString)
}

func TestParseIndexLenientForms(t *testing.T) {
	entries, err := ParseIndex([]byte(`[
		{"url": "local.ota"},
		{"url": " spaced.ota ", "fileVersion": "0x10", "imageType": "7", "manufacturerName": "Single",
		 "modelId": null, "force": true, "releaseNotes": "Fixes https://x.example and more", "version": "1.2"}
	]`))
	require.NoError(t, err)
	require.Len(t, entries, 2)
	assert.Equal(t, IndexEntry{URL: "local.ota"}, entries[0])
	e := entries[1]
	assert.Equal(t, 1, e.Position)
	assert.Equal(t, "spaced.ota", e.URL)
	assert.Equal(t, u32p(16), e.FileVersion)
	assert.Equal(t, u16p(7), e.ImageType)
	assert.Equal(t, []string{"Single"}, e.ManufacturerNames)
	assert.True(t, e.Force)
	m := e.Meta()
	assert.Equal(t, "Fixes https://x.example and more", m.ReleaseNotes, "text with a URL in it is text")
	assert.Empty(t, m.ReleaseURL)
	assert.Equal(t, "1.2", m.Version)
	assert.True(t, m.Force)
}

// TestParseIndexRefusedEntries checks that bad entries are refused one by one, naming their position.
func TestParseIndexRefusedEntries(t *testing.T) {
	entries, err := ParseIndex([]byte(`[
		{"url": "ok.ota"},
		{"fileName": "no-url.ota"},
		{"url": "a.ota", "manufacturerCode": 65536},
		{"url": "b.ota", "fileVersion": -1},
		{"url": "c.ota", "imageType": 1.5},
		{"url": "d.ota", "sha512": "abc"},
		{"url": "e.ota", "force": "yes"},
		{"url": 5},
		"not an object",
		{"url": "f.ota", "manufacturerName": [1]},
		{"url": "g.ota", "minFileVersion": 5, "maxFileVersion": 4},
		{"url": "h.ota", "hardwareVersionMin": 5, "hardwareVersionMax": 4},
		{"url": "ok2.ota"}
	]`))
	require.Len(t, entries, 2)
	assert.Equal(t, 0, entries[0].Position)
	assert.Equal(t, 12, entries[1].Position)
	require.Error(t, err)
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	want := []string{
		"index entry [1] (no-url.ota): no url",
		"index entry [2] (a.ota): manufacturerCode: want an integer 0..65535, got 65536",
		"index entry [3] (b.ota): fileVersion: want an integer 0..4294967295, got -1",
		"index entry [4] (c.ota): imageType: want an integer 0..65535, got 1.5",
		`index entry [5] (d.ota): sha512 "abc" is not 128 hex digits`,
		`index entry [6] (e.ota): force: want true or false, got "yes"`,
		"index entry [7]: url: want a string, got 5",
		"index entry [8]: not a JSON object",
		"index entry [9] (f.ota): manufacturerName: want an array of strings, got [1]",
		"index entry [10] (g.ota): minFileVersion 5 above maxFileVersion 4",
		"index entry [11] (h.ota): hardwareVersionMin 5 above hardwareVersionMax 4",
	}
	require.Len(t, errs, len(want))
	for i, e := range errs {
		assert.Equal(t, want[i], e.Error())
		var ee *IndexEntryError
		assert.True(t, errors.As(e, &ee))
	}
}

func TestParseIndexNotAnArray(t *testing.T) {
	for _, in := range []string{``, `{}`, `null`, `"x"`, `[`, `[{"url":"a"}] trailing`} {
		entries, err := ParseIndex([]byte(in))
		assert.Nil(t, entries, in)
		assert.ErrorIs(t, err, ErrIndexFormat, in)
	}
	entries, err := ParseIndex([]byte(`[]`))
	assert.NoError(t, err)
	assert.Empty(t, entries)
}

func BenchmarkParseIndex(b *testing.B) {
	entry := `{"fileName":"f.ota","fileVersion":587806257,"fileSize":227500,"url":"https://example.com/images/f.ota",` +
		`"imageType":10243,"manufacturerCode":4476,"sha512":"` + sha512Zero + `","otaHeaderString":"EBL tradfri_wrgb",` +
		`"modelId":"TRADFRI bulb","manufacturerName":["IKEA of Sweden"]}`
	data := []byte("[")
	for i := 0; i < 900; i++ {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, entry...)
	}
	data = append(data, ']')
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseIndex(data); err != nil {
			b.Fatal(err)
		}
	}
}

const sha512Zero = "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
