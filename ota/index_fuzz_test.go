package ota

import (
	"testing"
)

// FuzzParseIndex checks that ParseIndex never panics and that what it returns is consistent: positions
// increase and stay inside the array, every entry has a url, and bounds are ordered.
func FuzzParseIndex(f *testing.F) {
	for _, seed := range []string{
		`[]`,
		`[{"url":"a.ota"}]`,
		`[{"fileName":"f.ota","fileVersion":587806257,"fileSize":227500,"url":"https://example.com/f.ota","imageType":10243,"manufacturerCode":4476,"sha512":"` + sha512Zero + `","otaHeaderString":"EBL","modelId":"m","manufacturerName":["IKEA of Sweden"],"minFileVersion":1,"maxFileVersion":2,"hardwareVersionMin":0,"hardwareVersionMax":5,"force":true,"releaseNotes":"https://example.com/notes"}]`,
		`[{"url":"a","fileVersion":"0xFFFFFFFF","imageType":"65535","manufacturerName":"x"}]`,
		`[{"url":null},{"fileName":"x"},1,"s",[],{"url":"b","fileSize":-1}]`,
		`{"url":"a"}`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _ := ParseIndex(data)
		last := -1
		for _, e := range entries {
			if e.Position <= last {
				t.Fatalf("position %d after %d", e.Position, last)
			}
			last = e.Position
			if e.URL == "" {
				t.Fatalf("entry %d without url accepted", e.Position)
			}
			if e.MinFileVersion != nil && e.MaxFileVersion != nil && *e.MinFileVersion > *e.MaxFileVersion {
				t.Fatalf("entry %d: file version bounds out of order", e.Position)
			}
			if e.SHA512 != "" && len(e.SHA512) != 128 {
				t.Fatalf("entry %d: sha512 of %d digits", e.Position, len(e.SHA512))
			}
			_ = e.Meta()
		}
	})
}
