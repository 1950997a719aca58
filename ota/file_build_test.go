package ota

import (
	"bytes"
	"strings"
	"testing"

	"github.com/otabridge/otabridge/zcl"
)

func TestBuildExactBytes(t *testing.T) {
	var h Header
	h.FieldControl = HeaderFieldHardwareVersions
	h.ManufacturerCode = 0x117C
	h.ImageType = 0x2803
	h.FileVersion = 0x23093631
	h.StackVersion = 2
	h.MinHardwareVersion = 0x0001
	h.MaxHardwareVersion = 0x0101
	copy(h.HeaderString[:], "security")
	got, err := Build(h, []BuildElement{{Tag: 0x0000, Data: []byte{0xDE, 0xAD}}, {Tag: 0xF001, Data: nil}})
	if err != nil {
		t.Fatal(err)
	}
	want := otaHex(t, hdrMagic,
		"00 01", // header version 0x0100 filled in
		"3C 00", // header length 60
		"04 00",
		hdrMfr, hdrType, hdrFileVer, hdrStack, hdrStringSecurity,
		"4A 00 00 00", // total 74 = 60 + (6 + 2) + (6 + 0)
		"01 00 01 01", // hardware versions 0x0001..0x0101
		"00 00  02 00 00 00  DE AD",
		"01 F0  00 00 00 00",
	)
	if !bytes.Equal(got, want) {
		t.Errorf("Build\n got % X\nwant % X", got, want)
	}
}

func TestBuildRoundTrip(t *testing.T) {
	for _, fc := range []uint16{0, 1, 2, 4, 3, 5, 6, 7} {
		h := Header{
			HeaderVersion:             0x0100,
			FieldControl:              fc,
			ManufacturerCode:          0x1286,
			ImageType:                 0x0815,
			FileVersion:               0x00001102,
			StackVersion:              2,
			SecurityCredentialVersion: 3,
			UpgradeFileDestination:    zcl.IEEE(0x00124B0012345678),
			MinHardwareVersion:        2,
			MaxHardwareVersion:        9,
		}
		copy(h.HeaderString[:], "round trip\n")
		// Fields the field control leaves out are not written, so do not come back.
		if fc&HeaderFieldSecurityCredential == 0 {
			h.SecurityCredentialVersion = 0
		}
		if fc&HeaderFieldDeviceSpecific == 0 {
			h.UpgradeFileDestination = 0
		}
		if fc&HeaderFieldHardwareVersions == 0 {
			h.MinHardwareVersion, h.MaxHardwareVersion = 0, 0
		}
		fw := bytes.Repeat([]byte{1, 2, 3}, 1000)
		b, err := Build(h, []BuildElement{{Tag: TagUpgradeImage, Data: fw}, {Tag: TagImageIntegrityCode, Data: make([]byte, 16)}})
		if err != nil {
			t.Fatalf("fc %d: %v", fc, err)
		}
		f, err := ParseBytes(b)
		if err != nil {
			t.Fatalf("fc %d: parse built file: %v", fc, err)
		}
		h.HeaderLength = uint16(NeededHeaderLength(fc))
		h.TotalImageSize = uint32(len(b))
		if f.Header != h {
			t.Errorf("fc %d: header\n got %+v\nwant %+v", fc, f.Header, h)
		}
		if f.Layout != LayoutStandard || len(f.SubElements) != 2 || f.SubElements[0].Length != uint32(len(fw)) ||
			f.SubElements[1].Tag != TagImageIntegrityCode || f.TrailingBytes() != 0 {
			t.Errorf("fc %d: layout %s elements %+v trailing %d", fc, f.Layout, f.SubElements, f.TrailingBytes())
		}
		off := f.SubElements[0].Offset + 6
		if !bytes.Equal(b[off:off+int64(len(fw))], fw) {
			t.Errorf("fc %d: firmware bytes differ", fc)
		}
	}
}

func TestBuildSetsLengthsItself(t *testing.T) {
	// Wrong lengths and a zero version in the input are replaced.
	b, err := Build(Header{HeaderLength: 99, TotalImageSize: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 56 || h.HeaderLength != 56 || h.TotalImageSize != 56 || h.HeaderVersion != DefaultHeaderVersion {
		t.Errorf("%d bytes, header %+v", len(b), h)
	}
	b, err = Build(Header{HeaderVersion: 0x0200}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := ParseHeader(b); h.HeaderVersion != 0x0200 {
		t.Errorf("header version 0x%04X, want 0x0200 kept", h.HeaderVersion)
	}
}

func TestBuildRefusals(t *testing.T) {
	// 65536 elements of 64 KiB (one shared backing array) need more than 2^32-1 bytes.
	big := make([]byte, 64<<10)
	many := make([]BuildElement, 65536)
	for i := range many {
		many[i].Data = big
	}
	tests := []struct {
		name     string
		h        Header
		elements []BuildElement
		wantMsg  string
	}{
		{"reserved field control bit", Header{FieldControl: 0x0008}, nil, "reserved bits 0x0008"},
		{"min hardware above max", Header{FieldControl: HeaderFieldHardwareVersions, MinHardwareVersion: 3, MaxHardwareVersion: 2},
			nil, "minimum hardware version 0x0003 above maximum 0x0002"},
		{"total image size overflow", Header{}, many, "does not fit the 32-bit total image size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Build(tt.h, tt.elements)
			if err == nil {
				t.Fatalf("built %d bytes, want an error", len(b))
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestTagName(t *testing.T) {
	tests := map[uint16]string{
		0x0000: "upgrade image", 0x0001: "ECDSA signature", 0x0002: "ECDSA certificate",
		0x0003: "image integrity code", 0x0004: "picture data", 0x0005: "ECDSA signature (suite 2)",
		0x0006: "ECDSA certificate (suite 2)", 0x0007: "reserved", 0xEFFF: "reserved",
		0xF000: "manufacturer specific", 0xFFFF: "manufacturer specific",
	}
	for tag, want := range tests {
		if got := TagName(tag); got != want {
			t.Errorf("TagName(0x%04X) = %q, want %q", tag, got, want)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	fw := make([]byte, 256<<10)
	h := Header{ManufacturerCode: 0x131B, ImageType: 1, FileVersion: 2, StackVersion: 2}
	b.ReportAllocs()
	b.SetBytes(int64(len(fw)))
	for b.Loop() {
		if _, err := Build(h, []BuildElement{{Tag: TagUpgradeImage, Data: fw}}); err != nil {
			b.Fatal(err)
		}
	}
}
