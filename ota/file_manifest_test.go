package ota

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// otaFileTestdataDir is where the real vendor OTA files live, outside the repository.
var otaFileTestdataDir = filepath.Join("..", "..", "shared", "testdata", "ota")

// skipWithoutVendorFiles skips a test that needs the real vendor OTA files when they are not beside the
// repository (a plain clone: they are not redistributed in it). Everything else uses fixtures inside the
// repository.
func skipWithoutVendorFiles(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(otaFileTestdataDir, "manifest.json")); err != nil {
		t.Skipf("needs the real vendor OTA files of ../shared/testdata/ota beside the repository (not in a plain clone): %v", err)
	}
}

// otaManifestEntry is one file's expected facts in manifest.json.
type otaManifestEntry struct {
	File              string  `json:"file"`
	FileLength        int64   `json:"file_length"`
	SHA512            string  `json:"sha512"`
	Valid             bool    `json:"valid"`
	Reason            string  `json:"reason"`
	MagicOffset       int64   `json:"magic_offset"`
	HeaderVersion     uint16  `json:"header_version"`
	HeaderLength      uint16  `json:"header_length"`
	FieldControl      uint16  `json:"field_control"`
	ManufacturerCode  uint16  `json:"manufacturer_code"`
	ImageType         uint16  `json:"image_type"`
	FileVersion       uint32  `json:"file_version"`
	StackVersion      uint16  `json:"stack_version"`
	HeaderString      string  `json:"header_string"`
	TotalImageSize    uint32  `json:"total_image_size"`
	MinHWVersion      *uint16 `json:"min_hw_version"`
	MaxHWVersion      *uint16 `json:"max_hw_version"`
	TrailingBytes     int64   `json:"trailing_bytes"`
	MissingBytes      int64   `json:"missing_bytes"`
	SubElementLayout  Layout  `json:"sub_element_layout"`
	SubElementsWanted []struct {
		Tag    uint16 `json:"tag"`
		Length uint32 `json:"length"`
	} `json:"sub_elements"`
	Unparsed *Region `json:"unparsed"`
}

func loadOTAManifest(t testing.TB) []otaManifestEntry {
	t.Helper()
	skipWithoutVendorFiles(t)
	b, err := os.ReadFile(filepath.Join(otaFileTestdataDir, "manifest.json"))
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	var m struct {
		Files []otaManifestEntry `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode manifest: %v", err)
	}
	if len(m.Files) != 22 {
		t.Fatalf("manifest lists %d files, want 22", len(m.Files))
	}
	return m.Files
}

// TestParseManifestFiles checks every real vendor file against its facts in manifest.json, through Parse
// on an *os.File (the ReaderAt path the store uses) and through Inspect.
func TestParseManifestFiles(t *testing.T) {
	for _, want := range loadOTAManifest(t) {
		t.Run(want.File, func(t *testing.T) {
			fh, err := os.Open(filepath.Join(otaFileTestdataDir, want.File))
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			st, err := fh.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != want.FileLength {
				t.Fatalf("file length %d, manifest %d", st.Size(), want.FileLength)
			}
			in, f, err := Inspect(fh, st.Size())
			if !want.Valid {
				if err == nil {
					t.Fatalf("invalid file (%s) parsed without error", want.Reason)
				}
				if !errors.Is(err, ErrTruncated) {
					t.Errorf("error %q does not wrap ErrTruncated", err)
				}
				if !strings.Contains(err.Error(), strconv.FormatInt(want.MissingBytes, 10)+" bytes missing") {
					t.Errorf("error %q does not name the %d missing bytes", err, want.MissingBytes)
				}
				if !strings.Contains(err.Error(), strconv.FormatUint(uint64(want.TotalImageSize), 10)) {
					t.Errorf("error %q does not name the total image size %d", err, want.TotalImageSize)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			h := f.Header
			checks := []struct {
				name      string
				got, want any
			}{
				{"magic offset", f.MagicOffset, want.MagicOffset},
				{"image offset", f.ImageOffset(), want.MagicOffset},
				{"header version", h.HeaderVersion, want.HeaderVersion},
				{"header length", h.HeaderLength, want.HeaderLength},
				{"field control", h.FieldControl, want.FieldControl},
				{"manufacturer code", h.ManufacturerCode, want.ManufacturerCode},
				{"image type", h.ImageType, want.ImageType},
				{"file version", h.FileVersion, want.FileVersion},
				{"stack version", h.StackVersion, want.StackVersion},
				{"header string", h.HeaderStringText(), want.HeaderString},
				{"total image size", h.TotalImageSize, want.TotalImageSize},
				{"image size", f.ImageSize(), int64(want.TotalImageSize)},
				{"file length", f.FileLength, want.FileLength},
				{"trailing bytes", f.TrailingBytes(), want.TrailingBytes},
				{"layout", f.Layout, want.SubElementLayout},
				{"hardware versions present", h.HasHardwareVersions(), want.MinHWVersion != nil},
				{"inspect sha512", in.SHA512, want.SHA512},
				{"inspect magic offset", in.MagicOffset, want.MagicOffset},
				{"inspect header string", in.HeaderString, want.HeaderString},
				{"inspect file version", in.FileVersion, want.FileVersion},
				{"inspect file length", in.FileLength, want.FileLength},
				{"inspect hw present", in.MinHardwareVersion != nil, want.MinHWVersion != nil},
			}
			if want.MinHWVersion != nil && want.MaxHWVersion != nil {
				checks = append(checks,
					struct {
						name      string
						got, want any
					}{"min hw version", h.MinHardwareVersion, *want.MinHWVersion},
					struct {
						name      string
						got, want any
					}{"max hw version", h.MaxHardwareVersion, *want.MaxHWVersion},
				)
				if in.MinHardwareVersion != nil && in.MaxHardwareVersion != nil {
					if *in.MinHardwareVersion != *want.MinHWVersion || *in.MaxHardwareVersion != *want.MaxHWVersion {
						t.Errorf("inspect hw versions %d..%d, want %d..%d", *in.MinHardwareVersion, *in.MaxHardwareVersion,
							*want.MinHWVersion, *want.MaxHWVersion)
					}
				}
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
				}
			}
			if len(f.SubElements) != len(want.SubElementsWanted) {
				t.Fatalf("sub-elements: got %+v, want %+v", f.SubElements, want.SubElementsWanted)
			}
			for i, e := range f.SubElements {
				w := want.SubElementsWanted[i]
				if e.Tag != w.Tag || e.Length != w.Length {
					t.Errorf("sub-element %d: got tag 0x%04X length %d, want tag 0x%04X length %d", i, e.Tag, e.Length, w.Tag, w.Length)
				}
				if e != in.SubElements[i] {
					t.Errorf("inspect sub-element %d: %+v, parse %+v", i, in.SubElements[i], e)
				}
			}
			// Offsets: the first element starts right after the header, each next one after the previous.
			pos := f.MagicOffset + int64(h.HeaderLength)
			for i, e := range f.SubElements {
				if e.Offset != pos {
					t.Errorf("sub-element %d at offset %d, want %d", i, e.Offset, pos)
				}
				pos = e.Offset + 6 + int64(e.Length)
				if f.Layout == LayoutTelinkF000 && e.Tag == 0xF000 {
					pos += 2
				}
			}
			switch {
			case want.Unparsed == nil && f.Unparsed != nil:
				t.Errorf("unparsed %+v, want none", *f.Unparsed)
			case want.Unparsed != nil && f.Unparsed == nil:
				t.Errorf("unparsed none, want %+v", *want.Unparsed)
			case want.Unparsed != nil && *f.Unparsed != *want.Unparsed:
				t.Errorf("unparsed %+v, want %+v", *f.Unparsed, *want.Unparsed)
			}
			if f.Unparsed != nil && f.Unparsed.Offset != pos {
				t.Errorf("unparsed starts at %d, the elements end at %d", f.Unparsed.Offset, pos)
			}

			// The in-memory path gives the same result.
			b, err := os.ReadFile(filepath.Join(otaFileTestdataDir, want.File))
			if err != nil {
				t.Fatal(err)
			}
			g, err := ParseBytes(b)
			if err != nil {
				t.Fatalf("ParseBytes: %v", err)
			}
			if g.Header != f.Header || g.Layout != f.Layout || len(g.SubElements) != len(f.SubElements) {
				t.Errorf("ParseBytes %+v differs from Parse %+v", g, f)
			}
			// The header re-encodes to the bytes in the file.
			if enc := h.AppendTo(nil); string(enc) != string(b[f.MagicOffset:f.MagicOffset+int64(h.HeaderLength)]) {
				t.Errorf("AppendTo gives % X, file has % X", enc, b[f.MagicOffset:f.MagicOffset+int64(h.HeaderLength)])
			}
		})
	}
}

// TestParseRealFileTruncatedInHeader cuts real files at every byte of their header (and a few past it):
// every cut is refused with an error, never a panic.
func TestParseRealFileTruncatedInHeader(t *testing.T) {
	skipWithoutVendorFiles(t)
	for _, name := range []string{
		"128b-0102-030103-700_nodon_sin_4_2_20_fw_power_V030103.zigbee", // magic at 0, header length 56
		"TERNCY-SD01_v46.OTA",           // header length 60 (hardware versions)
		"1021-000f-004745ff-NLL.zigbee", // magic at 4
	} {
		b, err := os.ReadFile(filepath.Join(otaFileTestdataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n <= 64; n++ {
			f, err := ParseBytes(b[:n])
			if err == nil {
				t.Errorf("%s cut at %d: parsed %+v, want an error", name, n, f.Header)
				continue
			}
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNoMagic) {
				t.Errorf("%s cut at %d: error %q is neither ErrTruncated nor ErrNoMagic", name, n, err)
			}
			if !strings.Contains(err.Error(), "missing") && !errors.Is(err, ErrNoMagic) {
				t.Errorf("%s cut at %d: error %q does not say how many bytes are missing", name, n, err)
			}
		}
	}
}

func BenchmarkParseRealFile(b *testing.B) {
	skipWithoutVendorFiles(b)
	data, err := os.ReadFile(filepath.Join(otaFileTestdataDir, "10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseBytes(data); err != nil {
			b.Fatal(err)
		}
	}
}
