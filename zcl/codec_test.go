package zcl

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// decoder adapts a typed DecodeXxx to one signature so vectors of every command share a table.
type decoder func([]byte) (Payload, error)

func dec[T Payload](f func([]byte) (T, error)) decoder {
	return func(b []byte) (Payload, error) {
		v, err := f(b)
		if err != nil {
			return nil, err
		}
		return v, nil
	}
}

// Field values shared by the vectors: an IKEA bulb image (reference/zcl-ota.md §4).
const (
	vMfr     uint16 = 0x117C     // 7C 11
	vType    uint16 = 0x2803     // 03 28
	vVersion uint32 = 0x23093631 // 31 36 09 23
	vIEEE    IEEE   = 0x00124B0012345678
)

// vector is one hand-written payload (layouts of reference/zcl-ota.md §2.2) and the value it decodes to.
type vector struct {
	name    string
	payload []byte
	decode  decoder
	want    Payload
	// encoded is what want encodes to when that is not payload (payload carries tolerated extras).
	encoded []byte
	// okPrefixes are the lengths short of len(payload) that also decode (optional trailing fields).
	okPrefixes []int
}

var ikeaBlockData = []byte{0xDE, 0xAD, 0xBE, 0xEF}

var vectors = []vector{
	// Image Notify (server→client 0x00).
	{
		name: "image_notify type 0",
		payload: []byte{
			0x00, // payload type 0: jitter only
			0x64, // query jitter 100
		},
		decode: dec(DecodeImageNotify),
		want:   ImageNotify{PayloadType: 0, QueryJitter: 100},
	},
	{
		name: "image_notify type 1",
		payload: []byte{
			0x01,       // payload type 1
			0x32,       // query jitter 50
			0x7C, 0x11, // manufacturer code 0x117C
		},
		decode: dec(DecodeImageNotify),
		want:   ImageNotify{PayloadType: 1, QueryJitter: 50, ManufacturerCode: vMfr},
	},
	{
		name: "image_notify type 2",
		payload: []byte{
			0x02,       // payload type 2
			0x01,       // query jitter 1
			0x7C, 0x11, // manufacturer code 0x117C
			0x03, 0x28, // image type 0x2803
		},
		decode: dec(DecodeImageNotify),
		want:   ImageNotify{PayloadType: 2, QueryJitter: 1, ManufacturerCode: vMfr, ImageType: vType},
	},
	{
		name: "image_notify type 3",
		payload: []byte{
			0x03,       // payload type 3
			0x64,       // query jitter 100
			0x7C, 0x11, // manufacturer code 0x117C
			0x03, 0x28, // image type 0x2803
			0x31, 0x36, 0x09, 0x23, // new file version 0x23093631
		},
		decode: dec(DecodeImageNotify),
		want:   ImageNotify{PayloadType: 3, QueryJitter: 100, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion},
	},
	// Query Next Image Request (client→server 0x01).
	{
		name: "query_next_image_request 9 bytes",
		payload: []byte{
			0x00,       // field control: no hardware version
			0x7C, 0x11, // manufacturer code 0x117C
			0x03, 0x28, // image type 0x2803
			0x31, 0x36, 0x09, 0x23, // current file version 0x23093631
		},
		decode: dec(DecodeQueryNextImageRequest),
		want:   QueryNextImageRequest{ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion},
	},
	{
		name: "query_next_image_request 11 bytes",
		payload: []byte{
			0x01,       // field control bit 0: hardware version present
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // current file version
			0x01, 0x02, // hardware version 0x0201
		},
		decode: dec(DecodeQueryNextImageRequest),
		want:   QueryNextImageRequest{FieldControl: 1, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, HardwareVersion: 0x0201},
	},
	// Query Next Image Response (server→client 0x02).
	{
		name:    "query_next_image_response NO_IMAGE_AVAILABLE",
		payload: []byte{0x98}, // status NO_IMAGE_AVAILABLE, nothing else
		decode:  dec(DecodeQueryNextImageResponse),
		want:    QueryNextImageResponse{Status: StatusNoImageAvailable},
	},
	{
		name: "query_next_image_response SUCCESS",
		payload: []byte{
			0x00,       // status SUCCESS
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0xAC, 0x78, 0x03, 0x00, // image size 227500
		},
		decode: dec(DecodeQueryNextImageResponse),
		want:   QueryNextImageResponse{Status: StatusSuccess, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, ImageSize: 227500},
	},
	{
		name: "query_next_image_response NO_IMAGE_AVAILABLE with zeroed fields (zsmartsystems)",
		payload: []byte{
			0x98,       // status NO_IMAGE_AVAILABLE
			0x00, 0x00, // manufacturer code 0 (ignored)
			0x00, 0x00, // image type 0 (ignored)
			0x00, 0x00, 0x00, 0x00, // file version 0 (ignored)
			0x00, 0x00, 0x00, 0x00, // image size 0 (ignored)
		},
		decode:     dec(DecodeQueryNextImageResponse),
		want:       QueryNextImageResponse{Status: StatusNoImageAvailable},
		encoded:    []byte{0x98},
		okPrefixes: []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
	},
	// Image Block Request (client→server 0x03).
	{
		name: "image_block_request 14 bytes",
		payload: []byte{
			0x00,       // field control: no node address, no minimum block period
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0x40, 0x00, 0x00, 0x00, // file offset 64
			0x32, // maximum data size 50
		},
		decode: dec(DecodeImageBlockRequest),
		want:   ImageBlockRequest{ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 64, MaxDataSize: 50},
	},
	{
		name: "image_block_request 16 bytes (minimum block period)",
		payload: []byte{
			0x02,       // field control bit 1: minimum block period present
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0x00, 0x10, 0x00, 0x00, // file offset 4096
			0x40,       // maximum data size 64
			0xF4, 0x01, // minimum block period 500
		},
		decode:     dec(DecodeImageBlockRequest),
		want:       ImageBlockRequest{FieldControl: 2, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 4096, MaxDataSize: 64, MinimumBlockPeriod: 500},
		okPrefixes: []int{14, 15}, // the zigbee2mqtt#28217 quirk: bit 1 without the field
	},
	{
		name: "image_block_request 22 bytes (node address)",
		payload: []byte{
			0x01,       // field control bit 0: request node address present
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0x00, 0x00, 0x00, 0x00, // file offset 0
			0xDF,                                           // maximum data size 223
			0x78, 0x56, 0x34, 0x12, 0x00, 0x4B, 0x12, 0x00, // request node address 0x00124b0012345678
		},
		decode: dec(DecodeImageBlockRequest),
		want:   ImageBlockRequest{FieldControl: 1, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, MaxDataSize: 223, RequestNodeAddress: vIEEE},
	},
	{
		name: "image_block_request 24 bytes (both)",
		payload: []byte{
			0x03,       // field control bits 0 and 1
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0xFF, 0xFF, 0xFF, 0xFF, // file offset 0xFFFFFFFF
			0xFF,                                           // maximum data size 255
			0x78, 0x56, 0x34, 0x12, 0x00, 0x4B, 0x12, 0x00, // request node address
			0xFE, 0xFF, // minimum block period 0xFFFE
		},
		decode:     dec(DecodeImageBlockRequest),
		want:       ImageBlockRequest{FieldControl: 3, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 0xFFFFFFFF, MaxDataSize: 255, RequestNodeAddress: vIEEE, MinimumBlockPeriod: 0xFFFE},
		okPrefixes: []int{22, 23},
	},
	{
		name: "image_block_request bit 1 without the field (zigbee2mqtt#28217)",
		payload: []byte{
			0x02,       // field control bit 1 set …
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0x40, 0x00, 0x00, 0x00, // file offset 64
			0x32, // maximum data size 50; … but no minimum block period follows
		},
		decode: dec(DecodeImageBlockRequest),
		want: ImageBlockRequest{FieldControl: 2, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 64, MaxDataSize: 50,
			minimumBlockPeriodMissing: true},
	},
	// Image Page Request (client→server 0x04).
	{
		name: "image_page_request 18 bytes",
		payload: []byte{
			0x00,       // field control: no node address
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0x00, 0x04, 0x00, 0x00, // file offset 1024
			0x28,       // maximum data size 40
			0x00, 0x04, // page size 1024
			0x14, 0x00, // response spacing 20 ms
		},
		decode: dec(DecodeImagePageRequest),
		want:   ImagePageRequest{ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 1024, MaxDataSize: 40, PageSize: 1024, ResponseSpacing: 20},
	},
	{
		name: "image_page_request 26 bytes",
		payload: []byte{
			0x01,       // field control bit 0: request node address present
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0x00, 0x00, 0x00, 0x00, // file offset 0
			0x3F,       // maximum data size 63
			0x00, 0x01, // page size 256
			0x0A, 0x00, // response spacing 10 ms
			0x78, 0x56, 0x34, 0x12, 0x00, 0x4B, 0x12, 0x00, // request node address
		},
		decode: dec(DecodeImagePageRequest),
		want:   ImagePageRequest{FieldControl: 1, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, MaxDataSize: 63, PageSize: 256, ResponseSpacing: 10, RequestNodeAddress: vIEEE},
	},
	// Image Block Response (server→client 0x05).
	{
		name: "image_block_response SUCCESS",
		payload: []byte{
			0x00,       // status SUCCESS
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0x40, 0x00, 0x00, 0x00, // file offset 64
			0x04,                   // data size 4
			0xDE, 0xAD, 0xBE, 0xEF, // data
		},
		decode: dec(DecodeImageBlockResponse),
		want:   ImageBlockResponse{Status: StatusSuccess, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 64, Data: ikeaBlockData},
	},
	{
		name: "image_block_response SUCCESS empty data",
		payload: []byte{
			0x00,       // status SUCCESS
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0xAC, 0x78, 0x03, 0x00, // file offset 227500
			0x00, // data size 0
		},
		decode: dec(DecodeImageBlockResponse),
		want:   ImageBlockResponse{Status: StatusSuccess, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, FileOffset: 227500, Data: []byte{}},
	},
	{
		name: "image_block_response WAIT_FOR_DATA 11 bytes",
		payload: []byte{
			0x97,                   // status WAIT_FOR_DATA
			0x00, 0x00, 0x00, 0x00, // current time 0 (request time is relative)
			0x3C, 0x00, 0x00, 0x00, // request time 60
			0xF4, 0x01, // minimum block period 500
		},
		decode:     dec(DecodeImageBlockResponse),
		want:       ImageBlockResponse{Status: StatusWaitForData, RequestTime: 60, MinimumBlockPeriod: 500, HasMinimumBlockPeriod: true},
		okPrefixes: []int{9, 10},
	},
	{
		name: "image_block_response WAIT_FOR_DATA 9 bytes",
		payload: []byte{
			0x97,                   // status WAIT_FOR_DATA
			0x10, 0x32, 0x54, 0x76, // current time 0x76543210
			0x4C, 0x32, 0x54, 0x76, // request time 0x7654324C
		},
		decode: dec(DecodeImageBlockResponse),
		want:   ImageBlockResponse{Status: StatusWaitForData, CurrentTime: 0x76543210, RequestTime: 0x7654324C},
	},
	{
		name:    "image_block_response ABORT",
		payload: []byte{0x95}, // status ABORT, nothing else
		decode:  dec(DecodeImageBlockResponse),
		want:    ImageBlockResponse{Status: StatusAbort},
	},
	// Upgrade End Request (client→server 0x06).
	{
		name: "upgrade_end_request SUCCESS",
		payload: []byte{
			0x00,       // status SUCCESS
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
		},
		decode: dec(DecodeUpgradeEndRequest),
		want:   UpgradeEndRequest{Status: StatusSuccess, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion},
	},
	{
		name: "upgrade_end_request INVALID_IMAGE",
		payload: []byte{
			0x96,       // status INVALID_IMAGE
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
		},
		decode:     dec(DecodeUpgradeEndRequest),
		want:       UpgradeEndRequest{Status: StatusInvalidImage, ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion},
		okPrefixes: []int{1}, // status alone is accepted when it is not SUCCESS
	},
	{
		name:    "upgrade_end_request ABORT status only",
		payload: []byte{0x95}, // status ABORT, no image id
		decode:  dec(DecodeUpgradeEndRequest),
		want:    UpgradeEndRequest{Status: StatusAbort},
		encoded: []byte{0x95, 0, 0, 0, 0, 0, 0, 0, 0},
	},
	// Upgrade End Response (server→client 0x07).
	{
		name: "upgrade_end_response",
		payload: []byte{
			0x7C, 0x11, // manufacturer code
			0x03, 0x28, // image type
			0x31, 0x36, 0x09, 0x23, // file version
			0x00, 0x00, 0x00, 0x00, // current time 0
			0x01, 0x00, 0x00, 0x00, // upgrade time 1 s from now
		},
		decode: dec(DecodeUpgradeEndResponse),
		want:   UpgradeEndResponse{ManufacturerCode: vMfr, ImageType: vType, FileVersion: vVersion, UpgradeTime: 1},
	},
	// Query Device Specific File Request (client→server 0x08).
	{
		name: "query_device_specific_file_request",
		payload: []byte{
			0x78, 0x56, 0x34, 0x12, 0x00, 0x4B, 0x12, 0x00, // request node address
			0x7C, 0x11, // manufacturer code
			0xC0, 0xFF, // image type 0xFFC0 (security credential)
			0x31, 0x36, 0x09, 0x23, // file version
			0x02, 0x00, // zigbee stack version 2 (PRO)
		},
		decode: dec(DecodeQueryDeviceSpecificFileRequest),
		want:   QueryDeviceSpecificFileRequest{RequestNodeAddress: vIEEE, ManufacturerCode: vMfr, ImageType: 0xFFC0, FileVersion: vVersion, ZigbeeStackVersion: 2},
	},
	// Query Device Specific File Response (server→client 0x09).
	{
		name: "query_device_specific_file_response SUCCESS",
		payload: []byte{
			0x00,       // status SUCCESS
			0x7C, 0x11, // manufacturer code
			0xC1, 0xFF, // image type 0xFFC1 (configuration)
			0x31, 0x36, 0x09, 0x23, // file version
			0x00, 0x01, 0x00, 0x00, // image size 256
		},
		decode: dec(DecodeQueryDeviceSpecificFileResponse),
		want:   QueryDeviceSpecificFileResponse{Status: StatusSuccess, ManufacturerCode: vMfr, ImageType: 0xFFC1, FileVersion: vVersion, ImageSize: 256},
	},
	{
		name:    "query_device_specific_file_response NOT_AUTHORIZED",
		payload: []byte{0x7E}, // status NOT_AUTHORIZED
		decode:  dec(DecodeQueryDeviceSpecificFileResponse),
		want:    QueryDeviceSpecificFileResponse{Status: StatusNotAuthorized},
	},
	// Default Response (global 0x0B).
	{
		name: "default_response",
		payload: []byte{
			0x04, // command id answered: Image Page Request
			0x81, // status UNSUP_COMMAND
		},
		decode: dec(DecodeDefaultResponse),
		want:   DefaultResponse{CommandID: CmdImagePageRequest, Status: StatusUnsupCommand},
	},
	// Read Attributes (global 0x00).
	{
		name: "read_attributes",
		payload: []byte{
			0x02, 0x00, // CurrentFileVersion
			0x06, 0x00, // ImageUpgradeStatus
			0x00, 0x40, // SWBuildID (Basic 0x4000)
		},
		decode:     dec(DecodeReadAttributes),
		want:       ReadAttributes{AttributeIDs: []uint16{AttrOTACurrentFileVersion, AttrOTAImageUpgradeStatus, AttrBasicSWBuildID}},
		okPrefixes: []int{0, 2, 4},
	},
	// Read Attributes Response (global 0x01).
	{
		name: "read_attributes_response",
		payload: []byte{
			0x04, 0x00, // attribute ManufacturerName
			0x00,                   // status SUCCESS
			0x42,                   // type char string
			0x04,                   // length 4
			0x49, 0x4B, 0x45, 0x41, // "IKEA"
			0x02, 0x00, // attribute CurrentFileVersion
			0x00,                   // status SUCCESS
			0x23,                   // type uint32
			0x31, 0x36, 0x09, 0x23, // 0x23093631
			0x00, 0x00, // attribute UpgradeServerID
			0x00,                                           // status SUCCESS
			0xF0,                                           // type IEEE
			0x78, 0x56, 0x34, 0x12, 0x00, 0x4B, 0x12, 0x00, // 0x00124b0012345678
			0x06, 0x00, // attribute ImageUpgradeStatus
			0x00,       // status SUCCESS
			0x30,       // type enum8
			0x01,       // DownloadInProgress
			0x09, 0x00, // attribute MinimumBlockPeriod
			0x86, // status UNSUPPORTED_ATTRIBUTE, no type or value
		},
		decode: dec(DecodeReadAttributesResponse),
		want: ReadAttributesResponse{Records: []ReadAttributeRecord{
			AttributeRecord(AttrBasicManufacturerName, CharStringValue("IKEA")),
			AttributeRecord(AttrOTACurrentFileVersion, Uint32Value(vVersion)),
			AttributeRecord(AttrOTAUpgradeServerID, IEEEValue(vIEEE)),
			AttributeRecord(AttrOTAImageUpgradeStatus, Enum8Value(1)),
			AttributeErrorRecord(AttrOTAMinimumBlockPeriod, StatusUnsupportedAttribute),
		}},
		okPrefixes: []int{0, 9, 17, 29, 34},
	},
	{
		name: "read_attributes_response every type",
		payload: []byte{
			0x01, 0x00, 0x00, 0x00, // attribute 1, SUCCESS, no data
			0x02, 0x00, 0x00, 0x10, 0x01, // attribute 2, SUCCESS, bool true
			0x03, 0x00, 0x00, 0x18, 0xA5, // attribute 3, SUCCESS, bitmap8 0xA5
			0x04, 0x00, 0x00, 0x20, 0xFF, // attribute 4, SUCCESS, uint8 255
			0x05, 0x00, 0x00, 0x21, 0x34, 0x12, // attribute 5, SUCCESS, uint16 0x1234
			0x06, 0x00, 0x00, 0x22, 0x56, 0x34, 0x12, // attribute 6, SUCCESS, uint24 0x123456
			0x07, 0x00, 0x00, 0x31, 0xCD, 0xAB, // attribute 7, SUCCESS, enum16 0xABCD
			0x08, 0x00, 0x00, 0x42, 0x00, // attribute 8, SUCCESS, empty char string
		},
		decode: dec(DecodeReadAttributesResponse),
		want: ReadAttributesResponse{Records: []ReadAttributeRecord{
			AttributeRecord(1, AttributeValue{Type: TypeNoData}),
			AttributeRecord(2, BoolValue(true)),
			AttributeRecord(3, AttributeValue{Type: TypeBitmap8, Uint: 0xA5}),
			AttributeRecord(4, Uint8Value(255)),
			AttributeRecord(5, Uint16Value(0x1234)),
			AttributeRecord(6, AttributeValue{Type: TypeUint24, Uint: 0x123456}),
			AttributeRecord(7, AttributeValue{Type: TypeEnum16, Uint: 0xABCD}),
			AttributeRecord(8, CharStringValue("")),
		}},
		okPrefixes: []int{0, 4, 9, 14, 19, 25, 32, 38},
	},
	{
		name: "read_attributes_response invalid char string",
		payload: []byte{
			0x05, 0x00, // attribute ModelIdentifier
			0x00, // status SUCCESS
			0x42, // type char string
			0xFF, // length 0xFF: invalid string, no characters
		},
		decode:     dec(DecodeReadAttributesResponse),
		want:       ReadAttributesResponse{Records: []ReadAttributeRecord{AttributeRecord(AttrBasicModelIdentifier, CharStringValue(""))}},
		encoded:    []byte{0x05, 0x00, 0x00, 0x42, 0x00},
		okPrefixes: []int{0},
	},
}

func TestDecodeVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := v.decode(v.payload)
			if err != nil {
				t.Fatalf("decode(% X): %v", v.payload, err)
			}
			if !reflect.DeepEqual(got, v.want) {
				t.Errorf("decode(% X)\n got %+v\nwant %+v", v.payload, got, v.want)
			}
		})
	}
}

func TestEncodeVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			want := v.payload
			if v.encoded != nil {
				want = v.encoded
			}
			got := v.want.AppendPayload([]byte{0xEE})
			if got[0] != 0xEE || !bytes.Equal(got[1:], want) {
				t.Errorf("AppendPayload = % X, want EE % X", got, want)
			}
		})
	}
}

// TestTruncatedVectors cuts every vector at every byte: a cut that is not a shorter valid form gives a
// *DecodeError naming a field of that frame and wrapping ErrShort.
func TestTruncatedVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			frame := strings.Fields(v.name)[0]
			for n := 0; n < len(v.payload); n++ {
				cut := v.payload[:n:n]
				_, err := v.decode(cut)
				ok := false
				for _, p := range v.okPrefixes {
					ok = ok || p == n
				}
				if ok {
					if err != nil {
						t.Errorf("decode(% X) = %v, want success (shorter valid form)", cut, err)
					}
					continue
				}
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("decode(% X) error = %v, want *DecodeError", cut, err)
				}
				if !strings.HasPrefix(de.Field, frame+".") || !errors.Is(err, ErrShort) || de.Offset > n {
					t.Errorf("decode(% X) = %v (field %q, offset %d), want a short %s.* field", cut, err, de.Field, de.Offset, frame)
				}
			}
		})
	}
}

// TestTrailingBytesIgnored documents the trailing-byte choice: every decoder ignores bytes after the form
// it decoded (the list decoders have no "after": an odd byte there is a cut record).
func TestTrailingBytesIgnored(t *testing.T) {
	for _, v := range vectors {
		if strings.HasPrefix(v.name, "read_attributes") {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			long := append(append([]byte{}, v.payload...), 0x5A, 0x5A, 0x5A)
			got, err := v.decode(long)
			if v.name == "upgrade_end_request ABORT status only" {
				// Status plus 3 bytes is no longer the status-only form but a cut image id.
				if !errors.Is(err, ErrShort) {
					t.Errorf("decode(% X) = %v, want a short image id", long, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode with trailing bytes: %v", err)
			}
			want := v.want
			if v.name == "image_block_request bit 1 without the field (zigbee2mqtt#28217)" {
				// The trailing bytes now fill the minimum block period.
				r := want.(ImageBlockRequest)
				r.minimumBlockPeriodMissing, r.MinimumBlockPeriod = false, 0x5A5A
				want = r
			}
			if v.name == "image_block_response WAIT_FOR_DATA 9 bytes" {
				r := want.(ImageBlockResponse)
				r.HasMinimumBlockPeriod, r.MinimumBlockPeriod = true, 0x5A5A
				want = r
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decode with trailing bytes\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		decode  decoder
		payload []byte
		field   string
		offset  int
		is      error
		message string
	}{
		{
			name:   "image_block_request cut in file_offset",
			decode: dec(DecodeImageBlockRequest),
			payload: []byte{
				0x00, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, // field control, image id
				0x40, 0x00, // 2 of the 4 file offset bytes
			},
			field: "image_block_request.file_offset", offset: 9, is: ErrShort,
			message: "zcl: image_block_request.file_offset: need 4 bytes at offset 9, have 2",
		},
		{
			name:   "image_block_request bit 0 without node address",
			decode: dec(DecodeImageBlockRequest),
			payload: []byte{
				0x01, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, 0x00, 0x00, 0x00, 0x00, 0x32, // 14 fixed bytes
				0x78, 0x56, // 2 of the 8 node address bytes
			},
			field: "image_block_request.request_node_address", offset: 14, is: ErrShort,
			message: "zcl: image_block_request.request_node_address: need 8 bytes at offset 14, have 2",
		},
		{
			name:    "image_notify payload type 4",
			decode:  dec(DecodeImageNotify),
			payload: []byte{0x04, 0x64},
			field:   "image_notify.payload_type", offset: 0, is: ErrInvalid,
			message: "zcl: image_notify.payload_type at offset 0: payload type 4, want 0 to 3",
		},
		{
			name:    "query_next_image_request hardware version missing",
			decode:  dec(DecodeQueryNextImageRequest),
			payload: []byte{0x01, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, 0x01},
			field:   "query_next_image_request.hardware_version", offset: 9, is: ErrShort,
			message: "zcl: query_next_image_request.hardware_version: need 2 bytes at offset 9, have 1",
		},
		{
			name:   "image_block_response data size beyond the frame",
			decode: dec(DecodeImageBlockResponse),
			payload: []byte{
				0x00, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, 0x00, 0x00, 0x00, 0x00, // status, image id, offset
				0x05,             // data size 5
				0x01, 0x02, 0x03, // only 3 bytes
			},
			field: "image_block_response.data", offset: 14, is: ErrShort,
			message: "zcl: image_block_response.data: need 5 bytes at offset 14, have 3",
		},
		{
			name:    "upgrade_end_request SUCCESS without image id",
			decode:  dec(DecodeUpgradeEndRequest),
			payload: []byte{0x00},
			field:   "upgrade_end_request.manufacturer_code", offset: 1, is: ErrShort,
			message: "zcl: upgrade_end_request.manufacturer_code: need 2 bytes at offset 1, have 0",
		},
		{
			name:    "upgrade_end_request failure with a partial image id",
			decode:  dec(DecodeUpgradeEndRequest),
			payload: []byte{0x96, 0x7C, 0x11, 0x03},
			field:   "upgrade_end_request.image_type", offset: 3, is: ErrShort,
		},
		{
			name:    "read_attributes odd byte",
			decode:  dec(DecodeReadAttributes),
			payload: []byte{0x04, 0x00, 0x05},
			field:   "read_attributes.attribute_id", offset: 2, is: ErrShort,
			message: "zcl: read_attributes.attribute_id: need 2 bytes at offset 2, have 1",
		},
		{
			name:   "read_attributes_response unknown data type",
			decode: dec(DecodeReadAttributesResponse),
			payload: []byte{
				0x00, 0x40, // attribute SWBuildID
				0x00, // SUCCESS
				0x41, // type octet string: not supported
				0x03, 'a', 'b', 'c',
			},
			field: "read_attributes_response.attribute_0x4000.data_type", offset: 3, is: ErrInvalid,
			message: "zcl: read_attributes_response.attribute_0x4000.data_type at offset 3: unsupported data type 0x41",
		},
		{
			name:   "read_attributes_response string cut",
			decode: dec(DecodeReadAttributesResponse),
			payload: []byte{
				0x05, 0x00, 0x00, 0x42, // attribute ModelIdentifier, SUCCESS, char string
				0x0A, 'T', 'R', 'A', // length 10, 3 characters
			},
			field: "read_attributes_response.attribute_0x0005.value", offset: 5, is: ErrShort,
			message: "zcl: read_attributes_response.attribute_0x0005.value: need 10 bytes at offset 5, have 3",
		},
		{
			name:    "default_response without status",
			decode:  dec(DecodeDefaultResponse),
			payload: []byte{0x01},
			field:   "default_response.status", offset: 1, is: ErrShort,
			message: "zcl: default_response.status: need 1 byte at offset 1, have 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.decode(tt.payload)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error = %v, want *DecodeError", err)
			}
			if de.Field != tt.field || de.Offset != tt.offset || !errors.Is(err, tt.is) {
				t.Errorf("error = %#v (%v), want field %q offset %d wrapping %v", de, err, tt.field, tt.offset, tt.is)
			}
			if tt.message != "" && err.Error() != tt.message {
				t.Errorf("message = %q, want %q", err.Error(), tt.message)
			}
		})
	}
}

// TestRoundTrip encodes values of every command and decodes them back.
func TestRoundTrip(t *testing.T) {
	data255 := bytes.Repeat([]byte{0xA5}, 255)
	tests := []struct {
		name   string
		value  Payload
		decode decoder
		size   int // encoded payload length
	}{
		{"image_notify 0", ImageNotify{QueryJitter: 100}, dec(DecodeImageNotify), 2},
		{"image_notify 1", ImageNotify{PayloadType: 1, QueryJitter: 1, ManufacturerCode: WildcardManufacturer}, dec(DecodeImageNotify), 4},
		{"image_notify 2", ImageNotify{PayloadType: 2, QueryJitter: 7, ManufacturerCode: 1, ImageType: WildcardImageType}, dec(DecodeImageNotify), 6},
		{"image_notify 3", ImageNotify{PayloadType: 3, QueryJitter: 9, ManufacturerCode: 1, ImageType: 2, FileVersion: WildcardFileVersion}, dec(DecodeImageNotify), 10},
		{"query_next_image_request", QueryNextImageRequest{ManufacturerCode: 0x1286, ImageType: 0x0815, FileVersion: 0x1102}, dec(DecodeQueryNextImageRequest), 9},
		{"query_next_image_request hw", QueryNextImageRequest{FieldControl: 1, ManufacturerCode: 0x1286, ImageType: 0x0815, FileVersion: 0x1102, HardwareVersion: 0xFFFF}, dec(DecodeQueryNextImageRequest), 11},
		{"query_next_image_response success", QueryNextImageResponse{Status: StatusSuccess, ManufacturerCode: 1, ImageType: 2, FileVersion: 3, ImageSize: 0xFFFFFFFF}, dec(DecodeQueryNextImageResponse), 13},
		{"query_next_image_response not authorized", QueryNextImageResponse{Status: StatusNotAuthorized}, dec(DecodeQueryNextImageResponse), 1},
		{"image_block_request 14", ImageBlockRequest{ManufacturerCode: 1, ImageType: 2, FileVersion: 3, FileOffset: 4, MaxDataSize: 5}, dec(DecodeImageBlockRequest), 14},
		{"image_block_request 16", ImageBlockRequest{FieldControl: 2, FileOffset: 1 << 31, MaxDataSize: 63, MinimumBlockPeriod: 1}, dec(DecodeImageBlockRequest), 16},
		{"image_block_request 22", ImageBlockRequest{FieldControl: 1, MaxDataSize: 223, RequestNodeAddress: 0xFFFFFFFFFFFFFFFF}, dec(DecodeImageBlockRequest), 22},
		{"image_block_request 24", ImageBlockRequest{FieldControl: 3, RequestNodeAddress: vIEEE, MinimumBlockPeriod: 0xFFFE}, dec(DecodeImageBlockRequest), 24},
		{"image_page_request 18", ImagePageRequest{ManufacturerCode: 1, ImageType: 2, FileVersion: 3, FileOffset: 4, MaxDataSize: 5, PageSize: 6, ResponseSpacing: 7}, dec(DecodeImagePageRequest), 18},
		{"image_page_request 26", ImagePageRequest{FieldControl: 1, PageSize: 0xFFFF, RequestNodeAddress: vIEEE}, dec(DecodeImagePageRequest), 26},
		{"image_block_response success 255", ImageBlockResponse{Status: StatusSuccess, ManufacturerCode: 1, ImageType: 2, FileVersion: 3, FileOffset: 4, Data: data255}, dec(DecodeImageBlockResponse), 14 + 255},
		{"image_block_response success 0", ImageBlockResponse{Status: StatusSuccess, FileOffset: 4, Data: []byte{}}, dec(DecodeImageBlockResponse), 14},
		{"image_block_response wait 11", ImageBlockResponse{Status: StatusWaitForData, CurrentTime: 1, RequestTime: 2, MinimumBlockPeriod: 3, HasMinimumBlockPeriod: true}, dec(DecodeImageBlockResponse), 11},
		{"image_block_response wait 9", ImageBlockResponse{Status: StatusWaitForData, CurrentTime: 0, RequestTime: 300}, dec(DecodeImageBlockResponse), 9},
		{"image_block_response abort", ImageBlockResponse{Status: StatusAbort}, dec(DecodeImageBlockResponse), 1},
		{"image_block_response no image", ImageBlockResponse{Status: StatusNoImageAvailable}, dec(DecodeImageBlockResponse), 1},
		{"upgrade_end_request success", UpgradeEndRequest{Status: StatusSuccess, ManufacturerCode: 1, ImageType: 2, FileVersion: 3}, dec(DecodeUpgradeEndRequest), 9},
		{"upgrade_end_request require more", UpgradeEndRequest{Status: StatusRequireMoreImage, ManufacturerCode: 1, ImageType: 2, FileVersion: 3}, dec(DecodeUpgradeEndRequest), 9},
		{"upgrade_end_response", UpgradeEndResponse{ManufacturerCode: 1, ImageType: 2, FileVersion: 3, CurrentTime: 4, UpgradeTime: 0xFFFFFFFF}, dec(DecodeUpgradeEndResponse), 16},
		{"query_device_specific_file_request", QueryDeviceSpecificFileRequest{RequestNodeAddress: vIEEE, ManufacturerCode: 1, ImageType: 0xFFC2, FileVersion: 3, ZigbeeStackVersion: 4}, dec(DecodeQueryDeviceSpecificFileRequest), 18},
		{"query_device_specific_file_response success", QueryDeviceSpecificFileResponse{Status: StatusSuccess, ManufacturerCode: 1, ImageType: 0xFFC2, FileVersion: 3, ImageSize: 4}, dec(DecodeQueryDeviceSpecificFileResponse), 13},
		{"query_device_specific_file_response no image", QueryDeviceSpecificFileResponse{Status: StatusNoImageAvailable}, dec(DecodeQueryDeviceSpecificFileResponse), 1},
		{"default_response", DefaultResponse{CommandID: 0x06, Status: StatusSuccess}, dec(DecodeDefaultResponse), 2},
		{"read_attributes", ReadAttributes{AttributeIDs: []uint16{0, 1, 2, 0xFFFF}}, dec(DecodeReadAttributes), 8},
		{"read_attributes_response", ReadAttributesResponse{Records: []ReadAttributeRecord{
			AttributeRecord(AttrBasicManufacturerName, CharStringValue(strings.Repeat("x", MaxCharStringLength))),
			AttributeRecord(AttrBasicPowerSource, Enum8Value(3)),
			AttributeRecord(AttrOTAFileOffset, Uint32Value(0xFFFFFFFF)),
			AttributeRecord(AttrBasicZCLVersion, Uint8Value(8)),
			AttributeRecord(AttrOTACurrentZigbeeStackVersion, Uint16Value(2)),
			AttributeRecord(0x0010, BoolValue(false)),
			AttributeErrorRecord(AttrBasicDateCode, StatusUnsupportedAttribute),
		}}, dec(DecodeReadAttributesResponse), 3 + 2 + MaxCharStringLength + 3 + 2 + 3 + 5 + 3 + 2 + 3 + 3 + 3 + 2 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.value.AppendPayload(nil)
			if len(enc) != tt.size {
				t.Errorf("encoded %d bytes, want %d: % X", len(enc), tt.size, enc)
			}
			got, err := tt.decode(enc)
			if err != nil {
				t.Fatalf("decode(% X): %v", enc, err)
			}
			if !reflect.DeepEqual(got, tt.value) {
				t.Errorf("round trip\n got %+v\nwant %+v", got, tt.value)
			}
			if c, ok := tt.value.(Command); ok {
				if got.(Command).CommandID() != c.CommandID() {
					t.Errorf("CommandID changed")
				}
			}
		})
	}
}

func TestCommandIDs(t *testing.T) {
	for _, tt := range []struct {
		c    Command
		want uint8
	}{
		{ImageNotify{}, 0x00}, {QueryNextImageRequest{}, 0x01}, {QueryNextImageResponse{}, 0x02},
		{ImageBlockRequest{}, 0x03}, {ImagePageRequest{}, 0x04}, {ImageBlockResponse{}, 0x05},
		{UpgradeEndRequest{}, 0x06}, {UpgradeEndResponse{}, 0x07}, {QueryDeviceSpecificFileRequest{}, 0x08},
		{QueryDeviceSpecificFileResponse{}, 0x09}, {ReadAttributes{}, 0x00}, {ReadAttributesResponse{}, 0x01},
	} {
		if got := tt.c.CommandID(); got != tt.want {
			t.Errorf("%T.CommandID() = 0x%02X, want 0x%02X", tt.c, got, tt.want)
		}
	}
}

func TestEncodeLimits(t *testing.T) {
	long := bytes.Repeat([]byte{1}, 300)
	enc := ImageBlockResponse{Status: StatusSuccess, Data: long}.AppendPayload(nil)
	if len(enc) != 14+255 || enc[13] != 255 {
		t.Errorf("300-byte data encoded as %d bytes with data size %d, want 269 and 255", len(enc), enc[13])
	}
	s := AttributeRecord(AttrBasicModelIdentifier, CharStringValue(strings.Repeat("m", 300))).AppendTo(nil)
	if len(s) != 4+1+MaxCharStringLength || s[4] != MaxCharStringLength {
		t.Errorf("300-char string encoded as %d bytes with length %d", len(s), s[4])
	}
	if got := (AttributeValue{Type: 0x41, Uint: 7}).AppendTo(nil); !bytes.Equal(got, []byte{0x41}) {
		t.Errorf("unsupported type encoded as % X, want the type byte alone", got)
	}
	if got := (AttributeValue{Type: TypeUint24, Uint: 0xAB123456}).AppendValue(nil); !bytes.Equal(got, []byte{0x56, 0x34, 0x12}) {
		t.Errorf("uint24 encoded as % X", got)
	}
}

func TestDataTypeNames(t *testing.T) {
	for typ, name := range map[DataType]string{TypeBool: "bool", TypeUint24: "uint24", TypeCharString: "char_string", TypeIEEE: "ieee_address", 0x41: "0x41"} {
		if typ.String() != name {
			t.Errorf("DataType(0x%02x).String() = %q, want %q", uint8(typ), typ.String(), name)
		}
		if typ.Supported() != (name[0] != '0') {
			t.Errorf("DataType(0x%02x).Supported() = %v", uint8(typ), typ.Supported())
		}
	}
}
