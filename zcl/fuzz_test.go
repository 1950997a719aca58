package zcl

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// addVectorSeeds seeds a command fuzz target with the hand-written vectors of that command.
func addVectorSeeds(f *testing.F, frame string) {
	for _, v := range vectors {
		if len(v.name) > len(frame) && v.name[:len(frame)+1] == frame+" " {
			f.Add(v.payload)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0xFF})
}

// checkRoundTrip is the property every command decoder keeps: it never panics; a failure is a *DecodeError
// naming a field; a success encodes to bytes that decode to the same value.
func checkRoundTrip[T Payload](t *testing.T, payload []byte, decode func([]byte) (T, error)) {
	v, err := decode(payload)
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) || de.Field == "" || !(errors.Is(err, ErrShort) || errors.Is(err, ErrInvalid)) {
			t.Fatalf("decode(% X) error %v is not a *DecodeError naming a field", payload, err)
		}
		if de.Offset < 0 || de.Offset > len(payload) {
			t.Fatalf("decode(% X) error offset %d outside the payload", payload, de.Offset)
		}
		return
	}
	enc := v.AppendPayload(nil)
	if len(enc) > len(payload) {
		t.Fatalf("decode(% X) = %+v re-encodes longer: % X", payload, v, enc)
	}
	again, err := decode(enc)
	if err != nil {
		t.Fatalf("decode(% X) = %+v; its encoding % X does not decode: %v", payload, v, enc, err)
	}
	if !reflect.DeepEqual(again, v) {
		t.Fatalf("round trip of % X\n first %+v\nsecond %+v", payload, v, again)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, seed := range [][]byte{
		{0x01, 0x0A, 0x03, 0x00},
		{0x19, 0x0A, 0x05, 0x95},
		{0x05, 0x5F, 0x11, 0x09, 0x00},
		{0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
		{0x04, 0x5F},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrShort) || len(b) >= 5 {
				t.Fatalf("DecodeFrame(% X): unexpected error %v", b, err)
			}
			return
		}
		if fr.Header.Len()+len(fr.Payload) != len(b) {
			t.Fatalf("header %d + payload %d != frame %d", fr.Header.Len(), len(fr.Payload), len(b))
		}
		enc := fr.AppendTo(nil)
		if enc[0] != b[0]&0x1F || string(enc[1:]) != string(b[1:]) {
			t.Fatalf("re-encoded % X, want % X with reserved bits cleared", enc, b)
		}
		again, err := DecodeFrame(enc)
		if err != nil || again.Header != fr.Header || string(again.Payload) != string(fr.Payload) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, fr)
		}
	})
}

func FuzzImageNotify(f *testing.F) {
	addVectorSeeds(f, "image_notify")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeImageNotify) })
}

func FuzzQueryNextImageRequest(f *testing.F) {
	addVectorSeeds(f, "query_next_image_request")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeQueryNextImageRequest) })
}

func FuzzQueryNextImageResponse(f *testing.F) {
	addVectorSeeds(f, "query_next_image_response")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeQueryNextImageResponse) })
}

func FuzzImageBlockRequest(f *testing.F) {
	addVectorSeeds(f, "image_block_request")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeImageBlockRequest) })
}

func FuzzImagePageRequest(f *testing.F) {
	addVectorSeeds(f, "image_page_request")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeImagePageRequest) })
}

func FuzzImageBlockResponse(f *testing.F) {
	addVectorSeeds(f, "image_block_response")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeImageBlockResponse) })
}

func FuzzUpgradeEndRequest(f *testing.F) {
	addVectorSeeds(f, "upgrade_end_request")
	f.Fuzz(func(t *testing.T, b []byte) {
		// The status-only form re-encodes to 9 bytes, so the "not longer" part of the property is relaxed.
		v, err := DecodeUpgradeEndRequest(b)
		if err != nil {
			checkRoundTrip(t, b, DecodeUpgradeEndRequest)
			return
		}
		again, err := DecodeUpgradeEndRequest(v.AppendPayload(nil))
		if err != nil || again != v {
			t.Fatalf("round trip of % X: %+v, %v; want %+v", b, again, err, v)
		}
	})
}

func FuzzUpgradeEndResponse(f *testing.F) {
	addVectorSeeds(f, "upgrade_end_response")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeUpgradeEndResponse) })
}

func FuzzQueryDeviceSpecificFileRequest(f *testing.F) {
	addVectorSeeds(f, "query_device_specific_file_request")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeQueryDeviceSpecificFileRequest) })
}

func FuzzQueryDeviceSpecificFileResponse(f *testing.F) {
	addVectorSeeds(f, "query_device_specific_file_response")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeQueryDeviceSpecificFileResponse) })
}

func FuzzDefaultResponse(f *testing.F) {
	addVectorSeeds(f, "default_response")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeDefaultResponse) })
}

func FuzzReadAttributes(f *testing.F) {
	addVectorSeeds(f, "read_attributes")
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeReadAttributes) })
}

func FuzzReadAttributesResponse(f *testing.F) {
	addVectorSeeds(f, "read_attributes_response")
	f.Add([]byte{0x00, 0x40, 0x00, 0x41, 0x00})       // unsupported type
	f.Add([]byte{0x05, 0x00, 0x00, 0x42, 0xFF, 0x01}) // invalid string then a cut record
	f.Fuzz(func(t *testing.T, b []byte) { checkRoundTrip(t, b, DecodeReadAttributesResponse) })
}

func FuzzDescribe(f *testing.F) {
	f.Add(ClusterOTA, []byte{0x01, 0x0A, 0x03, 0x03, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, 0x40, 0x00, 0x00, 0x00, 0x32,
		0x78, 0x56, 0x34, 0x12, 0x00, 0x4B, 0x12, 0x00, 0xF4, 0x01})
	f.Add(ClusterOTA, []byte{0x19, 0x0A, 0x05, 0x00, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, 0x00, 0x00, 0x00, 0x00, 0x02, 0xAA, 0xBB})
	f.Add(ClusterOTA, []byte{0x19, 0x0A, 0x00, 0x03, 0x64, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23})
	f.Add(ClusterBasic, []byte{0x18, 0x02, 0x01, 0x04, 0x00, 0x00, 0x42, 0x04, 'I', 'K', 'E', 'A', 0x09, 0x00, 0x86})
	f.Add(ClusterBasic, []byte{0x04, 0x5F, 0x11, 0x09, 0x00, 0xF7, 0xFF})
	f.Add(uint16(0x0006), []byte{0x01, 0x0A, 0x01})
	f.Add(ClusterOTA, []byte{0x18, 0x0A, 0x0B, 0x04, 0x81})
	f.Add(ClusterOTA, []byte{0x02, 0x0A, 0x01})
	f.Fuzz(func(t *testing.T, cluster uint16, frame []byte) {
		d, err := Describe(cluster, frame)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) && !errors.Is(err, ErrUnknownCommand) {
				t.Fatalf("Describe(0x%04x, % X): error %v is neither a *DecodeError nor ErrUnknownCommand", cluster, frame, err)
			}
			return
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("Describe(0x%04x, % X): marshal: %v", cluster, frame, err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %s", out)
		}
	})
}
