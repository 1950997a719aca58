package netscan

import "testing"

// FuzzDecodeMgmtLqiRsp: any bytes from the air decode or fail, never panic, and a decoded response holds
// no more records than its bytes carry.
func FuzzDecodeMgmtLqiRsp(f *testing.F) {
	f.Add([]byte{0x09, 0x00, 0x03, 0x01, 0x01, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0xa4, 0, 0, 0, 0, 0, 0, 0, 0x44, 0x44, 0x15, 0x02, 0x02, 0xc8})
	f.Add([]byte{0x09, 0x84})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeMgmtLqiRsp(b)
		if err == nil && len(r.Neighbors)*neighborRecordBytes > len(b) {
			t.Fatalf("%d records from %d bytes", len(r.Neighbors), len(b))
		}
	})
}

// FuzzDecodeAddrRsp: never panics.
func FuzzDecodeAddrRsp(f *testing.F) {
	f.Add([]byte{0x07, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x4b, 0x12, 0x00, 0x34, 0x12})
	f.Add([]byte{0x07, 0x81})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeAddrRsp(b)
		if err == nil && r.Status == 0 && len(b) < 12 {
			t.Fatalf("SUCCESS response decoded from %d bytes", len(b))
		}
	})
}
