package ota

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"
)

// espTestImage describes a synthetic ESP-IDF application image for espTestBuild.
type espTestImage struct {
	chipID       uint16
	hashAppended bool
	project      string
	version      string
	idfVersion   string
	date, time   string
	secure       uint32
	extraSegs    [][]byte // segments after the first one (which holds the app descriptor)
}

// espTestBuild writes an ESP-IDF application image the way esp-idf lays it out: a 24-byte image header,
// segments (load_addr, data_len, data) with the app descriptor first in the first segment, zero padding so
// the checksum byte ends a 16-byte block, the checksum, and optionally the SHA-256 of all that.
func espTestBuild(img espTestImage) []byte {
	le := binary.LittleEndian
	desc := make([]byte, 256)
	le.PutUint32(desc[0:], 0xABCD5432)
	le.PutUint32(desc[4:], img.secure)
	copy(desc[16:48], img.version)
	copy(desc[48:80], img.project)
	copy(desc[80:96], img.time)
	copy(desc[96:112], img.date)
	copy(desc[112:144], img.idfVersion)
	for i := 144; i < 176; i++ { // app_elf_sha256
		desc[i] = byte(i)
	}
	first := append(desc, bytes.Repeat([]byte{0x5A, 0xA5, 0x01, 0x02}, 16)...) // rodata after the descriptor
	segs := append([][]byte{first}, img.extraSegs...)

	b := make([]byte, 24)
	b[0] = 0xE9
	b[1] = byte(len(segs))
	b[2] = 2    // DIO
	b[3] = 0x20 // 4 MB, 40 MHz
	le.PutUint32(b[4:], 0x40080000)
	b[8] = 0xEE
	le.PutUint16(b[12:], img.chipID)
	le.PutUint16(b[17:], 99) // max chip revision
	if img.hashAppended {
		b[23] = 1
	}
	checksum := byte(0xEF)
	for i, s := range segs {
		b = le.AppendUint32(b, 0x3C000020+uint32(i)*0x10000)
		b = le.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
		for _, c := range s {
			checksum ^= c
		}
	}
	for (len(b)+1)%16 != 0 {
		b = append(b, 0)
	}
	b = append(b, checksum)
	if img.hashAppended {
		sum := sha256.Sum256(b)
		b = append(b, sum[:]...)
	}
	return b
}

func espTestDefault() espTestImage {
	return espTestImage{
		chipID:       0x0010,
		hashAppended: true,
		project:      "light_bulb",
		version:      "1.2.3",
		idfVersion:   "v5.3.1",
		date:         "Jan 15 2025",
		time:         "12:34:56",
		secure:       2,
		extraSegs:    [][]byte{bytes.Repeat([]byte{0x11, 0x22, 0x33, 0x44}, 30), {0x99, 0x88, 0x77, 0x66}},
	}
}

func TestParseESPAppImageValid(t *testing.T) {
	for _, hash := range []bool{true, false} {
		img := espTestDefault()
		img.hashAppended = hash
		b := espTestBuild(img)
		desc, isESP, err := ParseESPAppImage(b)
		if err != nil || !isESP {
			t.Fatalf("hash %v: isESP %v, err %v", hash, isESP, err)
		}
		want := ESPAppDescriptor{ProjectName: "light_bulb", Version: "1.2.3", IDFVersion: "v5.3.1",
			CompileDate: "Jan 15 2025", CompileTime: "12:34:56", SecureVersion: 2, ChipID: 0x0010, Chip: "ESP32-H2"}
		if desc != want {
			t.Errorf("hash %v: descriptor\n got %+v\nwant %+v", hash, desc, want)
		}
		// Data after the image (e.g. a signature block or flash padding) is not looked at.
		if _, _, err := ParseESPAppImage(append(b, 0xFF, 0xFF, 0xFF, 0xFF)); err != nil {
			t.Errorf("hash %v: trailing bytes refused: %v", hash, err)
		}
	}
}

func TestParseESPAppImageDamaged(t *testing.T) {
	good := espTestBuild(espTestDefault())
	noHash := espTestDefault()
	noHash.hashAppended = false
	goodNoHash := espTestBuild(noHash)
	firstData := 24 + 8
	secondHeader := firstData + 256 + 64
	tests := []struct {
		name    string
		damage  func() []byte
		wantMsg string
	}{
		{"bad checksum", func() []byte {
			b := bytes.Clone(goodNoHash)
			b[len(b)-1] ^= 0x55
			return b
		}, "checksum 0x"},
		{"flipped data byte", func() []byte {
			b := bytes.Clone(good)
			b[secondHeader+8+3] ^= 0x01
			return b
		}, ", computed 0x"},
		{"bad hash", func() []byte {
			b := bytes.Clone(good)
			b[len(b)-5] ^= 0x01
			return b
		}, "appended SHA-256"},
		{"hash cut off", func() []byte { return good[:len(good)-10] }, "appended SHA-256 at offset"},
		{"checksum cut off", func() []byte { return goodNoHash[:len(goodNoHash)-1] }, "checksum byte at offset"},
		{"truncated segment", func() []byte { return good[:secondHeader+8+40] }, "segment 1 at offset 352 has 120 data bytes, the file has 40"},
		{"truncated segment header", func() []byte { return good[:secondHeader+4] }, "segment 1 header at offset 352 runs past the end"},
		{"segment count 0", func() []byte {
			b := bytes.Clone(good)
			b[1] = 0
			return b
		}, "segment count 0, want 1..16"},
		{"segment count 17", func() []byte {
			b := bytes.Clone(good)
			b[1] = 17
			return b
		}, "segment count 17, want 1..16"},
		{"segment count larger than the segments there", func() []byte {
			b := bytes.Clone(goodNoHash)
			b[1] = 4
			return b
		}, "segment 3"},
		{"unaligned segment length", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[secondHeader+4:], 121)
			return b
		}, "invalid length 0x79"},
		{"first segment shorter than the descriptor", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[24+4:], 128)
			return b
		}, "too short for the 256-byte app descriptor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc, isESP, err := ParseESPAppImage(tt.damage())
			if !isESP {
				t.Fatalf("not recognised as an ESP image")
			}
			if err == nil {
				t.Fatalf("accepted: %+v", desc)
			}
			if !strings.HasPrefix(err.Error(), "ESP-IDF image: ") || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not say %q", err, tt.wantMsg)
			}
		})
	}
}

func TestParseESPAppImageChecksumMessage(t *testing.T) {
	b := espTestBuild(espTestImage{chipID: 5, project: "p"})
	stored := b[len(b)-1]
	b[len(b)-1] = stored ^ 0x45
	_, _, err := ParseESPAppImage(b)
	want := "ESP-IDF image: checksum 0x" + strings.ToUpper(hexByte(stored^0x45)) + ", computed 0x" + strings.ToUpper(hexByte(stored))
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

func hexByte(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

func TestParseESPAppImageNotESP(t *testing.T) {
	ota, err := Build(Header{ManufacturerCode: 1}, []BuildElement{{Data: make([]byte, 64)}})
	if err != nil {
		t.Fatal(err)
	}
	noMagic := espTestBuild(espTestDefault())
	noMagic[32] ^= 0xFF
	notE9 := espTestBuild(espTestDefault())
	notE9[0] = 0xEA
	for name, b := range map[string][]byte{
		"empty":                  nil,
		"short":                  {0xE9, 1, 2},
		"35 bytes":               append([]byte{0xE9}, make([]byte, 34)...),
		"OTA file":               ota,
		"no descriptor magic":    noMagic,
		"first byte not 0xE9":    notE9,
		"text":                   []byte(strings.Repeat("firmware ", 20)),
		"EBL (Silicon Labs GBL)": append([]byte{0xEB, 0x17, 0xA6, 0x03}, make([]byte, 60)...),
	} {
		desc, isESP, err := ParseESPAppImage(b)
		if isESP || err != nil || desc != (ESPAppDescriptor{}) {
			t.Errorf("%s: isESP %v, err %v, desc %+v", name, isESP, err, desc)
		}
	}
}

func TestESPChipName(t *testing.T) {
	tests := map[uint16]string{
		0x0000: "ESP32", 0x0002: "ESP32-S2", 0x0005: "ESP32-C3", 0x0009: "ESP32-S3", 0x000C: "ESP32-C2",
		0x000D: "ESP32-C6", 0x0010: "ESP32-H2", 0x0012: "ESP32-P4", 0x0014: "ESP32-C61", 0x0017: "ESP32-C5",
		0x0019: "ESP32-H21", 0x001C: "ESP32-H4", 0x0001: "unknown chip 0x0001", 0xFFFF: "unknown chip 0xFFFF",
	}
	for id, want := range tests {
		if got := ESPChipName(id); got != want {
			t.Errorf("ESPChipName(0x%04X) = %q, want %q", id, got, want)
		}
	}
	img := espTestDefault()
	img.chipID = 0x000D
	if desc, _, err := ParseESPAppImage(espTestBuild(img)); err != nil || desc.Chip != "ESP32-C6" || desc.ChipID != 0x000D {
		t.Errorf("C6 image: %+v, %v", desc, err)
	}
}

func BenchmarkParseESPAppImage(b *testing.B) {
	img := espTestDefault()
	img.extraSegs = [][]byte{make([]byte, 1<<20)}
	data := espTestBuild(img)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := ParseESPAppImage(data); err != nil {
			b.Fatal(err)
		}
	}
}
