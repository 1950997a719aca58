package zcl

import (
	"bytes"
	"testing"
)

// The engine's hot path: decode a block request frame, encode a 64-byte block response frame.

var benchBlockRequestFrame = []byte{
	0x01, 0x2A, 0x03, // FC client→server cluster, TSN 42, Image Block Request
	0x03, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, // field control 3, image id
	0x00, 0x10, 0x00, 0x00, 0x40, // offset 4096, max 64
	0x78, 0x56, 0x34, 0x12, 0x00, 0x4B, 0x12, 0x00, // node address
	0xF4, 0x01, // minimum block period
}

func BenchmarkDecodeImageBlockRequest(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBlockRequestFrame)))
	var sink uint32
	for b.Loop() {
		h, payload, err := DecodeHeader(benchBlockRequestFrame)
		if err != nil || h.CommandID != CmdImageBlockRequest {
			b.Fatal(err)
		}
		r, err := DecodeImageBlockRequest(payload)
		if err != nil {
			b.Fatal(err)
		}
		sink += r.FileOffset
	}
	if sink == 0 {
		b.Fatal("nothing decoded")
	}
}

func BenchmarkEncodeImageBlockResponse64(b *testing.B) {
	b.ReportAllocs()
	data := bytes.Repeat([]byte{0x5A}, 64)
	r := ImageBlockResponse{Status: StatusSuccess, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 4096, Data: data}
	buf := make([]byte, 0, 128)
	b.SetBytes(3 + 14 + 64)
	for b.Loop() {
		buf = AppendImageBlockResponseFrame(buf[:0], 42, &r)
	}
	if len(buf) != 3+14+64 {
		b.Fatalf("frame is %d bytes", len(buf))
	}
}

// BenchmarkEncodeImageBlockResponse64Generic is the same frame through the generic AppendFrame.
func BenchmarkEncodeImageBlockResponse64Generic(b *testing.B) {
	b.ReportAllocs()
	data := bytes.Repeat([]byte{0x5A}, 64)
	r := ImageBlockResponse{Status: StatusSuccess, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 4096, Data: data}
	buf := make([]byte, 0, 128)
	h := ServerToClientClusterHeader(42, CmdImageBlockResponse)
	for b.Loop() {
		buf = AppendFrame(buf[:0], h, r)
	}
	if len(buf) != 3+14+64 {
		b.Fatalf("frame is %d bytes", len(buf))
	}
}

// TestHotPathAllocations pins the zero-allocation promise outside benchmark runs.
func TestHotPathAllocations(t *testing.T) {
	data := bytes.Repeat([]byte{0x5A}, 64)
	r := ImageBlockResponse{Status: StatusSuccess, FileOffset: 4096, Data: data}
	buf := make([]byte, 0, 128)
	h := ServerToClientClusterHeader(42, CmdImageBlockResponse)
	for name, fn := range map[string]func(){
		"DecodeImageBlockRequest": func() {
			_, payload, _ := DecodeHeader(benchBlockRequestFrame)
			_, _ = DecodeImageBlockRequest(payload)
		},
		"AppendImageBlockResponseFrame": func() { buf = AppendImageBlockResponseFrame(buf[:0], 42, &r) },
		"AppendFrame":                   func() { buf = AppendFrame(buf[:0], h, r) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}
