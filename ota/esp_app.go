package ota

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// ESP-IDF application image layout (esp-idf components/bootloader_support: esp_app_format.h,
// esp_image_format.c; esp_app_desc_t in esp_app_desc.h).
const (
	espImageMagic       = 0xE9
	espImageHeaderLen   = 24 // esp_image_header_t
	espSegmentHeaderLen = 8  // esp_image_segment_header_t: load_addr(4) data_len(4)
	espMaxSegments      = 16 // ESP_IMAGE_MAX_SEGMENTS
	espMaxSegmentLen    = 16 << 20
	espAppDescMagic     = 0xABCD5432 // ESP_APP_DESC_MAGIC_WORD
	espAppDescOffset    = espImageHeaderLen + espSegmentHeaderLen
	espAppDescLen       = 256 // sizeof(esp_app_desc_t)
	espChecksumSeed     = 0xEF
	espHashLen          = 32
	espOffChipID        = 12
	espOffHashAppended  = 23
)

// espChips maps esp_chip_id_t values to chip names (esp-idf esp_app_format.h, as of v5.5).
var espChips = map[uint16]string{
	0x0000: "ESP32",
	0x0002: "ESP32-S2",
	0x0005: "ESP32-C3",
	0x0009: "ESP32-S3",
	0x000C: "ESP32-C2",
	0x000D: "ESP32-C6",
	0x0010: "ESP32-H2",
	0x0012: "ESP32-P4",
	0x0014: "ESP32-C61",
	0x0017: "ESP32-C5",
	0x0019: "ESP32-H21",
	0x001C: "ESP32-H4",
}

// ESPChipName names an esp_chip_id_t value.
func ESPChipName(id uint16) string {
	if name, ok := espChips[id]; ok {
		return name
	}
	return fmt.Sprintf("unknown chip 0x%04X", id)
}

// ESPAppDescriptor is the application descriptor (esp_app_desc_t) of an ESP-IDF application image, with
// the target chip from the image header.
type ESPAppDescriptor struct {
	ProjectName   string
	Version       string
	IDFVersion    string
	CompileDate   string
	CompileTime   string
	SecureVersion uint32
	ChipID        uint16 // esp_chip_id_t from the image header
	Chip          string // ChipID's name, e.g. "ESP32-H2"
}

// ParseESPAppImage recognises an ESP-IDF application image (first byte 0xE9 and the app descriptor magic
// 0xABCD5432 at offset 32) and checks it: segment count and lengths, every segment inside b, the checksum
// byte (XOR of all segment data seeded with 0xEF, last byte of the 16-byte-aligned padding after the
// segments) and, when the header says a hash is appended, the SHA-256 of the image before it.
// Not an ESP image: isESP false and err nil. An ESP image that is damaged: isESP true and an error that
// says what is wrong.
func ParseESPAppImage(b []byte) (desc ESPAppDescriptor, isESP bool, err error) {
	le := binary.LittleEndian
	if len(b) < espAppDescOffset+4 || b[0] != espImageMagic || le.Uint32(b[espAppDescOffset:]) != espAppDescMagic {
		return ESPAppDescriptor{}, false, nil
	}
	segments := int(b[1])
	if segments < 1 || segments > espMaxSegments {
		return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: segment count %d, want 1..%d", segments, espMaxSegments)
	}
	checksum := byte(espChecksumSeed)
	pos := espImageHeaderLen
	for i := 0; i < segments; i++ {
		if len(b)-pos < espSegmentHeaderLen {
			return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: segment %d header at offset %d runs past the end of the %d-byte file",
				i, pos, len(b))
		}
		n := le.Uint32(b[pos+4:])
		if n%4 != 0 || n >= espMaxSegmentLen {
			return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: segment %d at offset %d has invalid length 0x%X (must be a multiple of 4 below 16 MiB)",
				i, pos, n)
		}
		data := pos + espSegmentHeaderLen
		if int64(n) > int64(len(b)-data) {
			return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: segment %d at offset %d has %d data bytes, the file has %d after its header",
				i, pos, n, len(b)-data)
		}
		if i == 0 && n < espAppDescLen {
			return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: first segment has %d bytes, too short for the %d-byte app descriptor",
				n, espAppDescLen)
		}
		for _, c := range b[data : data+int(n)] {
			checksum ^= c
		}
		pos = data + int(n)
	}
	padded := (pos + 1 + 15) &^ 15 // the checksum byte ends the 16-byte-aligned block after the segments
	if padded > len(b) {
		return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: checksum byte at offset %d is past the end of the %d-byte file",
			padded-1, len(b))
	}
	if stored := b[padded-1]; stored != checksum {
		return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: checksum 0x%02X, computed 0x%02X", stored, checksum)
	}
	if b[espOffHashAppended] == 1 {
		if len(b)-padded < espHashLen {
			return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: appended SHA-256 at offset %d is cut off: the file ends %d bytes after it starts",
				padded, len(b)-padded)
		}
		sum := sha256.Sum256(b[:padded])
		if stored := b[padded : padded+espHashLen]; !bytes.Equal(stored, sum[:]) {
			return ESPAppDescriptor{}, true, fmt.Errorf("ESP-IDF image: appended SHA-256 %x, computed %x", stored, sum[:])
		}
	}
	d := b[espAppDescOffset : espAppDescOffset+espAppDescLen]
	chip := le.Uint16(b[espOffChipID:])
	return ESPAppDescriptor{
		SecureVersion: le.Uint32(d[4:]),
		Version:       espCString(d[16:48]),
		ProjectName:   espCString(d[48:80]),
		CompileTime:   espCString(d[80:96]),
		CompileDate:   espCString(d[96:112]),
		IDFVersion:    espCString(d[112:144]),
		ChipID:        chip,
		Chip:          ESPChipName(chip),
	}, true, nil
}

// espCString reads a NUL-terminated string from a fixed-size field.
func espCString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
