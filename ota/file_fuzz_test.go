package ota

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// otaFuzzSeeds are small synthetic OTA files: one per layout and a few broken ones.
func otaFuzzSeeds(t testing.TB) [][]byte {
	t.Helper()
	var seeds [][]byte
	build := func(h Header, elems ...BuildElement) []byte {
		b, err := Build(h, elems)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	plain := build(Header{ManufacturerCode: 0x117C, ImageType: 1, FileVersion: 2, StackVersion: 2},
		BuildElement{Tag: TagUpgradeImage, Data: []byte("firmware")}, BuildElement{Tag: TagImageIntegrityCode, Data: make([]byte, 16)})
	seeds = append(seeds, plain)
	seeds = append(seeds, build(Header{FieldControl: 7, MinHardwareVersion: 1, MaxHardwareVersion: 2, UpgradeFileDestination: 0x00124B0000000001}))
	seeds = append(seeds, append(append([]byte("NGIS\x00\x00"), plain...), 0xFF, 0xFF)) // wrapped
	// Telink: 0xF000 with 2 extra bytes.
	telink := build(Header{}, BuildElement{Tag: 0xF000, Data: []byte{1, 0x0C, 0xAA, 0xBB}})
	binary.LittleEndian.PutUint32(telink[MinHeaderLength+2:], 2)
	seeds = append(seeds, telink)
	// Loose: an element that claims more than the image holds.
	loose := build(Header{}, BuildElement{Tag: 0x2A, Data: []byte{1, 2, 3, 4}})
	binary.LittleEndian.PutUint32(loose[MinHeaderLength+2:], 0xFFFF)
	seeds = append(seeds, loose)
	// Header longer than needed.
	long := build(Header{}, BuildElement{Data: []byte{7}})
	binary.LittleEndian.PutUint16(long[6:], 60)
	seeds = append(seeds, long)
	// Truncated: total image size past the end.
	seeds = append(seeds, plain[:len(plain)-3])
	seeds = append(seeds, plain[:30], []byte{}, magicBytes)
	return seeds
}

// FuzzParseOTAFile: ParseBytes never panics; a parsed file's servable region, sub-elements and unparsed
// region lie inside the input, and its header re-encodes to a header that parses the same.
func FuzzParseOTAFile(f *testing.F) {
	for _, s := range otaFuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseBytes(data)
		if err != nil {
			if file != nil {
				t.Fatalf("error %v with a file", err)
			}
			if !errors.Is(err, ErrNoMagic) && !errors.Is(err, ErrHeaderTooShort) && !errors.Is(err, ErrFieldControl) &&
				!errors.Is(err, ErrTotalImageSize) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		n := int64(len(data))
		off, size := file.ImageOffset(), file.ImageSize()
		if off < 0 || size < int64(file.Header.HeaderLength) || off+size > n || file.TrailingBytes() < 0 || file.FileLength != n {
			t.Fatalf("servable region [%d, %d+%d) outside the %d-byte input", off, off, size, n)
		}
		if !bytes.Equal(data[off:off+4], magicBytes) || bytes.Contains(data[:off+3], magicBytes) {
			t.Fatalf("magic offset %d is not the first magic", off)
		}
		start, end := off+int64(file.Header.HeaderLength), off+size
		pos := start
		for _, e := range file.SubElements {
			if e.Offset != pos || e.Offset+6+int64(e.Length) > end {
				t.Fatalf("sub-element %+v outside [%d, %d) or not at %d", e, start, end, pos)
			}
			pos = e.Offset + 6 + int64(e.Length)
			if file.Layout == LayoutTelinkF000 && e.Tag == 0xF000 {
				pos += 2
			}
		}
		switch file.Layout {
		case LayoutStandard, LayoutTelinkF000:
			if pos != end || file.Unparsed != nil {
				t.Fatalf("layout %s: elements end at %d, image at %d, unparsed %v", file.Layout, pos, end, file.Unparsed)
			}
		case LayoutLoose:
			if u := file.Unparsed; u == nil || u.Offset != pos || u.Length <= 0 || u.Offset+u.Length != end {
				t.Fatalf("loose: unparsed %v, elements end at %d, image at %d", file.Unparsed, pos, end)
			}
		default:
			t.Fatalf("layout %q", file.Layout)
		}
		h, err := ParseHeader(file.Header.AppendTo(nil))
		if err != nil || h != file.Header {
			t.Fatalf("re-encoded header parses to %+v, %v; want %+v", h, err, file.Header)
		}
	})
}

// FuzzParseESPAppImage: ParseESPAppImage never panics, and "not ESP" never comes with an error.
func FuzzParseESPAppImage(f *testing.F) {
	img := espTestDefault()
	f.Add(espTestBuild(img))
	img.hashAppended = false
	f.Add(espTestBuild(img))
	img.extraSegs = nil
	small := espTestBuild(img)
	f.Add(small)
	bad := bytes.Clone(small)
	bad[len(bad)-1] ^= 1
	f.Add(bad)
	f.Add(small[:100])
	f.Add([]byte{0xE9})
	f.Fuzz(func(t *testing.T, data []byte) {
		desc, isESP, err := ParseESPAppImage(data)
		if !isESP && (err != nil || desc != (ESPAppDescriptor{})) {
			t.Fatalf("not ESP but err %v, desc %+v", err, desc)
		}
		if err == nil && isESP {
			if len(desc.ProjectName) > 32 || len(desc.Version) > 32 || len(desc.IDFVersion) > 32 ||
				len(desc.CompileDate) > 16 || len(desc.CompileTime) > 16 || desc.Chip == "" {
				t.Fatalf("descriptor fields too long: %+v", desc)
			}
		}
	})
}
