package ota

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/otabridge/otabridge/zcl"
)

// otaHex decodes hex written out by hand; spaces and newlines separate fields and are ignored.
func otaHex(t testing.TB, parts ...string) []byte {
	t.Helper()
	s := strings.Join(strings.Fields(strings.Join(parts, " ")), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex vector %q: %v", s, err)
	}
	return b
}

// Hand-written header vectors (reference/zcl-ota.md §3; all fields little-endian). Each line is one field.
const (
	hdrMagic   = "1E F1 EE 0B"
	hdrVersion = "00 01"       // 0x0100
	hdrMfr     = "7C 11"       // 0x117C
	hdrType    = "03 28"       // 0x2803
	hdrFileVer = "31 36 09 23" // 0x23093631
	hdrStack   = "02 00"       // Zigbee PRO
	// "security" then 24 NUL bytes.
	hdrStringSecurity = "73 65 63 75 72 69 74 79" +
		" 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
	// "ab\n " then 28 NUL bytes: a control character and a trailing space are kept.
	hdrStringCtl = "61 62 0A 20" +
		" 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
)

func TestParseBytesSyntheticHeaders(t *testing.T) {
	tests := []struct {
		name        string
		file        []byte
		want        Header
		wantString  string
		wantMagic   int64
		wantLayout  Layout
		wantElems   []SubElement
		wantUnparse *Region
		wantTrail   int64
	}{
		{
			name: "field control bit 0: security credential version",
			file: otaHex(t, hdrMagic, hdrVersion,
				"39 00", // header length 57
				"01 00", // field control 0x0001
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity,
				"3F 00 00 00",        // total 63 = 57 + 6
				"02",                 // security credential version 2
				"00 00  00 00 00 00", // tag 0x0000, length 0
			),
			want: Header{HeaderVersion: 0x0100, HeaderLength: 57, FieldControl: 0x0001, ManufacturerCode: 0x117C,
				ImageType: 0x2803, FileVersion: 0x23093631, StackVersion: 2, TotalImageSize: 63, SecurityCredentialVersion: 2},
			wantString: "security",
			wantLayout: LayoutStandard,
			wantElems:  []SubElement{{Tag: 0, Length: 0, Offset: 57}},
		},
		{
			name: "field control bit 1: upgrade file destination",
			file: otaHex(t, hdrMagic, hdrVersion,
				"40 00", // header length 64
				"02 00", // field control 0x0002
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity,
				"48 00 00 00",             // total 72 = 64 + 6 + 2
				"78 56 34 12 00 4B 12 00", // destination 0x00124B0012345678
				"00 00  02 00 00 00  AA BB",
			),
			want: Header{HeaderVersion: 0x0100, HeaderLength: 64, FieldControl: 0x0002, ManufacturerCode: 0x117C,
				ImageType: 0x2803, FileVersion: 0x23093631, StackVersion: 2, TotalImageSize: 72,
				UpgradeFileDestination: zcl.IEEE(0x00124B0012345678)},
			wantString: "security",
			wantLayout: LayoutStandard,
			wantElems:  []SubElement{{Tag: 0, Length: 2, Offset: 64}},
		},
		{
			name: "field control bits 0, 1 and 2, no sub-elements",
			file: otaHex(t, hdrMagic, hdrVersion,
				"45 00", // header length 69 = 56 + 1 + 8 + 4
				"07 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity,
				"45 00 00 00", // total 69
				"03",
				"08 07 06 05 04 03 02 01", // destination 0x0102030405060708
				"02 01",                   // min hardware version 0x0102
				"03 02",                   // max hardware version 0x0203
			),
			want: Header{HeaderVersion: 0x0100, HeaderLength: 69, FieldControl: 0x0007, ManufacturerCode: 0x117C,
				ImageType: 0x2803, FileVersion: 0x23093631, StackVersion: 2, TotalImageSize: 69, SecurityCredentialVersion: 3,
				UpgradeFileDestination: zcl.IEEE(0x0102030405060708), MinHardwareVersion: 0x0102, MaxHardwareVersion: 0x0203},
			wantString: "security",
			wantLayout: LayoutStandard,
			wantElems:  []SubElement{},
		},
		{
			name: "header longer than needed: unknown trailing header bytes skipped",
			file: otaHex(t, hdrMagic, hdrVersion,
				"3C 00", // header length 60, field control needs 56
				"00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringCtl,
				"43 00 00 00",            // total 67 = 60 + 6 + 1
				"DE AD BE EF",            // unknown header bytes
				"00 F0  01 00 00 00  55", // tag 0xF000, length 1
			),
			want: Header{HeaderVersion: 0x0100, HeaderLength: 60, ManufacturerCode: 0x117C, ImageType: 0x2803,
				FileVersion: 0x23093631, StackVersion: 2, TotalImageSize: 67},
			wantString: "ab\n ",
			wantLayout: LayoutStandard,
			wantElems:  []SubElement{{Tag: 0xF000, Length: 1, Offset: 60}},
		},
		{
			name: "wrapped: 3-byte prefix with a partial magic, 2 trailing bytes",
			file: otaHex(t, "1E F1 EE", hdrMagic, hdrVersion, "38 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity,
				"3E 00 00 00",        // total 62
				"03 00  00 00 00 00", // tag 0x0003, length 0
				"FF FF",
			),
			want: Header{HeaderVersion: 0x0100, HeaderLength: 56, ManufacturerCode: 0x117C, ImageType: 0x2803,
				FileVersion: 0x23093631, StackVersion: 2, TotalImageSize: 62},
			wantString: "security",
			wantMagic:  3,
			wantLayout: LayoutStandard,
			wantElems:  []SubElement{{Tag: 3, Length: 0, Offset: 59}},
			wantTrail:  2,
		},
		{
			name: "Telink: tag 0xF000 with 2 extra bytes after its length",
			file: otaHex(t, hdrMagic, hdrVersion, "38 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity,
				"42 00 00 00", // total 66 = 56 + 8 + 2
				"00 F0  02 00 00 00  01 0C  AA BB",
			),
			want: Header{HeaderVersion: 0x0100, HeaderLength: 56, ManufacturerCode: 0x117C, ImageType: 0x2803,
				FileVersion: 0x23093631, StackVersion: 2, TotalImageSize: 66},
			wantString: "security",
			wantLayout: LayoutTelinkF000,
			wantElems:  []SubElement{{Tag: 0xF000, Length: 2, Offset: 56}},
		},
		{
			name: "loose: one element, then bytes that do not form one",
			file: otaHex(t, hdrMagic, hdrVersion, "38 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity,
				"48 00 00 00",                  // total 72
				"00 00  01 00 00 00  99",       // tag 0x0000, length 1: ends at 63
				"2A 00  FF FF 00 00  01 02 03", // claims 65535 bytes
			),
			want: Header{HeaderVersion: 0x0100, HeaderLength: 56, ManufacturerCode: 0x117C, ImageType: 0x2803,
				FileVersion: 0x23093631, StackVersion: 2, TotalImageSize: 72},
			wantString:  "security",
			wantLayout:  LayoutLoose,
			wantElems:   []SubElement{{Tag: 0, Length: 1, Offset: 56}},
			wantUnparse: &Region{Offset: 63, Length: 9},
		},
		{
			name: "loose: fewer than 6 bytes after the header",
			file: otaHex(t, hdrMagic, hdrVersion, "38 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity,
				"3B 00 00 00", // total 59
				"01 02 03",
			),
			want: Header{HeaderVersion: 0x0100, HeaderLength: 56, ManufacturerCode: 0x117C, ImageType: 0x2803,
				FileVersion: 0x23093631, StackVersion: 2, TotalImageSize: 59},
			wantString:  "security",
			wantLayout:  LayoutLoose,
			wantElems:   []SubElement{},
			wantUnparse: &Region{Offset: 56, Length: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseBytes(tt.file)
			if err != nil {
				t.Fatalf("ParseBytes: %v", err)
			}
			copy(tt.want.HeaderString[:], f.Header.HeaderString[:]) // compared through wantString
			if f.Header != tt.want {
				t.Errorf("header\n got %+v\nwant %+v", f.Header, tt.want)
			}
			if got := f.Header.HeaderStringText(); got != tt.wantString {
				t.Errorf("header string %q, want %q", got, tt.wantString)
			}
			if f.MagicOffset != tt.wantMagic || f.TrailingBytes() != tt.wantTrail || f.FileLength != int64(len(tt.file)) {
				t.Errorf("magic %d trailing %d length %d, want %d %d %d", f.MagicOffset, f.TrailingBytes(), f.FileLength,
					tt.wantMagic, tt.wantTrail, len(tt.file))
			}
			if f.Layout != tt.wantLayout {
				t.Errorf("layout %s, want %s", f.Layout, tt.wantLayout)
			}
			if len(f.SubElements) != len(tt.wantElems) {
				t.Fatalf("sub-elements %+v, want %+v", f.SubElements, tt.wantElems)
			}
			for i := range f.SubElements {
				if f.SubElements[i] != tt.wantElems[i] {
					t.Errorf("sub-element %d: %+v, want %+v", i, f.SubElements[i], tt.wantElems[i])
				}
			}
			if (f.Unparsed == nil) != (tt.wantUnparse == nil) || (f.Unparsed != nil && *f.Unparsed != *tt.wantUnparse) {
				t.Errorf("unparsed %v, want %v", f.Unparsed, tt.wantUnparse)
			}
			// ParseHeader on the bytes from the magic gives the same header, and AppendTo gives those bytes back
			// (unknown trailing header bytes come back as zeros).
			at := tt.file[f.MagicOffset:]
			h, err := ParseHeader(at)
			if err != nil || h != f.Header {
				t.Fatalf("ParseHeader: %+v, %v", h, err)
			}
			enc := h.AppendTo([]byte{0xAA})
			if enc[0] != 0xAA || len(enc) != 1+int(h.HeaderLength) {
				t.Fatalf("AppendTo wrote %d bytes after the prefix, want %d", len(enc)-1, h.HeaderLength)
			}
			need := NeededHeaderLength(h.FieldControl)
			if !bytes.Equal(enc[1:1+need], at[:need]) {
				t.Errorf("AppendTo\n got % X\nwant % X", enc[1:1+need], at[:need])
			}
			if !bytes.Equal(enc[1+need:], make([]byte, int(h.HeaderLength)-need)) {
				t.Errorf("AppendTo padding % X, want zeros", enc[1+need:])
			}
		})
	}
}

func TestParseBytesRefusals(t *testing.T) {
	tests := []struct {
		name    string
		file    []byte
		wantErr error
		wantMsg string
	}{
		{
			name:    "empty file",
			file:    nil,
			wantErr: ErrNoMagic,
			wantMsg: "in 0 bytes",
		},
		{
			name: "no magic (last byte 0C)",
			file: otaHex(t, "1E F1 EE 0C", hdrVersion, "38 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "38 00 00 00"),
			wantErr: ErrNoMagic,
			wantMsg: "in 56 bytes",
		},
		{
			name: "header length 55",
			file: otaHex(t, hdrMagic, hdrVersion, "37 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "38 00 00 00"),
			wantErr: ErrHeaderTooShort,
			wantMsg: "header length 55",
		},
		{
			name: "field control 0x0004 with header length 56",
			file: otaHex(t, hdrMagic, hdrVersion, "38 00", "04 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "3C 00 00 00", "00 00 01 01"),
			wantErr: ErrFieldControl,
			wantMsg: "field control 0x0004 needs 60 header bytes, header length 56",
		},
		{
			name: "field control 0x0007 with header length 68",
			file: otaHex(t, hdrMagic, hdrVersion, "44 00", "07 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "44 00 00 00",
				"00", "00 00 00 00 00 00 00 00", "00 00 00"),
			wantErr: ErrFieldControl,
			wantMsg: "needs 69 header bytes, header length 68",
		},
		{
			name: "field control 0x0002 with header length 60",
			file: otaHex(t, hdrMagic, hdrVersion, "3C 00", "02 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "3C 00 00 00",
				"00 00 00 00"),
			wantErr: ErrFieldControl,
			wantMsg: "needs 64 header bytes",
		},
		{
			name: "total image size 55 below header length 56",
			file: otaHex(t, hdrMagic, hdrVersion, "38 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "37 00 00 00"),
			wantErr: ErrTotalImageSize,
			wantMsg: "total image size 55, header length 56",
		},
		{
			name: "image truncated: total 100, file has 62",
			file: otaHex(t, hdrMagic, hdrVersion, "38 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "64 00 00 00",
				"00 00 20 00 00 00"),
			wantErr: ErrTruncated,
			wantMsg: "header says 100 bytes from offset 0, file has 62 (38 bytes missing)",
		},
		{
			name: "image truncated after a 2-byte prefix",
			file: otaHex(t, "00 00", hdrMagic, hdrVersion, "38 00", "00 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "39 00 00 00"),
			wantErr: ErrTruncated,
			wantMsg: "header says 57 bytes from offset 2, file has 56 (1 bytes missing)",
		},
		{
			name: "header of 60 cut at 58",
			file: otaHex(t, hdrMagic, hdrVersion, "3C 00", "04 00",
				hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "3C 00 00 00", "00 00"),
			wantErr: ErrTruncated,
			wantMsg: "header length 60 from offset 0, file has 58 (2 bytes missing)",
		},
		{
			name:    "header cut inside the fixed part",
			file:    otaHex(t, hdrMagic, hdrVersion, "38 00", "00 00", hdrMfr),
			wantErr: ErrTruncated,
			wantMsg: "header length 56 from offset 0, file has 12 (44 bytes missing)",
		},
		{
			name:    "only the magic",
			file:    otaHex(t, hdrMagic),
			wantErr: ErrTruncated,
			wantMsg: "header needs 56 bytes from offset 0, file has 4 (52 bytes missing)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := ParseBytes(tt.file)
			if err == nil {
				t.Fatalf("parsed %+v, want an error", f)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not wrap %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParseHeaderRefusals(t *testing.T) {
	full := otaHex(t, hdrMagic, hdrVersion, "3C 00", "04 00",
		hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity, "3C 00 00 00", "01 00 02 00")
	if h, err := ParseHeader(full); err != nil || h.MinHardwareVersion != 1 || h.MaxHardwareVersion != 2 {
		t.Fatalf("ParseHeader(full) = %+v, %v", h, err)
	}
	for n := 0; n < len(full); n++ {
		if _, err := ParseHeader(full[:n]); err == nil {
			t.Errorf("ParseHeader of %d bytes: no error", n)
		} else if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNoMagic) {
			t.Errorf("ParseHeader of %d bytes: %v", n, err)
		}
	}
	if _, err := ParseHeader(append([]byte{0}, full...)); !errors.Is(err, ErrNoMagic) {
		t.Errorf("ParseHeader not at the magic: %v", err)
	}
}

func TestHeaderStringText(t *testing.T) {
	tests := []struct {
		raw  string
		want string
	}{
		{"", ""},
		{"EBL tradfri_wrgb", "EBL tradfri_wrgb"},
		{"vers:00001005,00001102\n", "vers:00001005,00001102\n"},
		{strings.Repeat(" ", 32), strings.Repeat(" ", 32)},
		{"a\x00b", "a\x00b"}, // only trailing NULs go
		{"\xff\xfe", "\xff\xfe"},
	}
	for _, tt := range tests {
		var h Header
		copy(h.HeaderString[:], tt.raw)
		if got := h.HeaderStringText(); got != tt.want {
			t.Errorf("HeaderStringText(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

// otaFileReaderAt counts ReadAt calls, to show Parse reads in chunks and does not need the file in memory.
type otaFileReaderAt struct {
	b     []byte
	calls int
	max   int
}

func (r *otaFileReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.calls++
	r.max = max(r.max, len(p))
	return bytes.NewReader(r.b).ReadAt(p, off)
}

func TestParseReadsInChunks(t *testing.T) {
	// A 300 KiB file with the magic near the end of the second 64 KiB chunk, straddling the boundary.
	const magicAt = 2*65536 - 5 - 2
	img, err := Build(Header{ManufacturerCode: 1, ImageType: 2, FileVersion: 3, StackVersion: 2},
		[]BuildElement{{Tag: 0, Data: bytes.Repeat([]byte{0x42}, 100000)}})
	if err != nil {
		t.Fatal(err)
	}
	file := append(make([]byte, magicAt), img...)
	file = append(file, make([]byte, 300<<10-len(file))...)
	r := &otaFileReaderAt{b: file}
	f, err := Parse(r, int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	if f.MagicOffset != magicAt || f.Layout != LayoutStandard || len(f.SubElements) != 1 {
		t.Errorf("parsed magic %d layout %s elements %+v", f.MagicOffset, f.Layout, f.SubElements)
	}
	if r.max > 64<<10 {
		t.Errorf("largest read %d bytes, want at most 64 KiB", r.max)
	}
	if r.calls > 10 {
		t.Errorf("%d ReadAt calls, want a handful", r.calls)
	}
}

func TestParseManySubElementsStopsAtCap(t *testing.T) {
	elems := make([]BuildElement, MaxSubElements+5)
	b, err := Build(Header{}, elems)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Layout != LayoutLoose || len(f.SubElements) != MaxSubElements || f.Unparsed == nil || f.Unparsed.Length != 5*6 {
		t.Errorf("layout %s, %d elements, unparsed %v", f.Layout, len(f.SubElements), f.Unparsed)
	}
}
