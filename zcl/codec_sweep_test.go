package zcl

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sweepCase is one complete frame (every optional field present) and the decoder of its payload.
type sweepCase struct {
	name   string
	header Header
	// payload is the command; decode decodes a payload into a value of the same type.
	payload Payload
	decode  func([]byte) (Payload, error)
	// shortForms are the payload lengths shorter than the full one that decode on purpose (documented short
	// forms: a shorter attribute list, WAIT_FOR_DATA without the minimum block period, …).
	shortForms []int
}

func sweepDecodeAs[T Payload](f func([]byte) (T, error)) func([]byte) (Payload, error) {
	return func(b []byte) (Payload, error) {
		v, err := f(b)
		return v, err
	}
}

func sweepFrameCases() []sweepCase {
	c2s := func(cmd uint8) Header { return ClientToServerClusterHeader(0x42, cmd) }
	s2c := func(cmd uint8) Header { return ServerToClientClusterHeader(0x42, cmd) }
	data := make([]byte, 64)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return []sweepCase{
		{name: "image_notify type 3", header: s2c(CmdImageNotify),
			payload: ImageNotify{PayloadType: 3, QueryJitter: 100, ManufacturerCode: 0x1234, ImageType: 0x5678, FileVersion: 0x01020304},
			decode:  sweepDecodeAs(DecodeImageNotify)},
		{name: "query_next_image_request with hardware version", header: c2s(CmdQueryNextImageRequest),
			payload: QueryNextImageRequest{FieldControl: 1, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 7, HardwareVersion: 2},
			decode:  sweepDecodeAs(DecodeQueryNextImageRequest)},
		{name: "query_next_image_response success", header: s2c(CmdQueryNextImageResponse),
			payload: QueryNextImageResponse{Status: StatusSuccess, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 8, ImageSize: 300_000},
			decode:  sweepDecodeAs(DecodeQueryNextImageResponse)},
		{name: "image_block_request with both optional fields", header: c2s(CmdImageBlockRequest),
			payload: ImageBlockRequest{FieldControl: 3, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 8, FileOffset: 4096,
				MaxDataSize: 64, RequestNodeAddress: 0x00124b0001020304, MinimumBlockPeriod: 250},
			decode: sweepDecodeAs(DecodeImageBlockRequest),
			// Field-control bit 1 without its two bytes (a real-world quirk), and a lone odd byte after it.
			shortForms: []int{22, 23}},
		{name: "image_page_request with request node address", header: c2s(CmdImagePageRequest),
			payload: ImagePageRequest{FieldControl: 1, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 8, FileOffset: 1024,
				MaxDataSize: 64, PageSize: 1024, ResponseSpacing: 20, RequestNodeAddress: 0x00124b0001020304},
			decode: sweepDecodeAs(DecodeImagePageRequest)},
		{name: "image_block_response success", header: s2c(CmdImageBlockResponse),
			payload: ImageBlockResponse{Status: StatusSuccess, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 8, FileOffset: 64, Data: data},
			decode:  sweepDecodeAs(DecodeImageBlockResponse)},
		{name: "image_block_response wait_for_data with minimum block period", header: s2c(CmdImageBlockResponse),
			payload: ImageBlockResponse{Status: StatusWaitForData, CurrentTime: 100, RequestTime: 130, MinimumBlockPeriod: 50, HasMinimumBlockPeriod: true},
			decode:  sweepDecodeAs(DecodeImageBlockResponse),
			// Without the minimum block period, and with a lone odd byte.
			shortForms: []int{9, 10}},
		{name: "upgrade_end_request success", header: c2s(CmdUpgradeEndRequest),
			payload: UpgradeEndRequest{Status: StatusSuccess, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 8},
			decode:  sweepDecodeAs(DecodeUpgradeEndRequest)},
		{name: "upgrade_end_request invalid_image", header: c2s(CmdUpgradeEndRequest),
			payload: UpgradeEndRequest{Status: StatusInvalidImage, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 8},
			decode:  sweepDecodeAs(DecodeUpgradeEndRequest),
			// The status byte alone (a failure may omit the image id).
			shortForms: []int{1}},
		{name: "upgrade_end_response", header: s2c(CmdUpgradeEndResponse),
			payload: UpgradeEndResponse{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 8, CurrentTime: 0, UpgradeTime: 5},
			decode:  sweepDecodeAs(DecodeUpgradeEndResponse)},
		{name: "query_device_specific_file_request", header: c2s(CmdQueryDeviceSpecificFileRequest),
			payload: QueryDeviceSpecificFileRequest{RequestNodeAddress: 0x00124b0001020304, ManufacturerCode: 0x1234, ImageType: 0xFFC0,
				FileVersion: 8, ZigbeeStackVersion: 2},
			decode: sweepDecodeAs(DecodeQueryDeviceSpecificFileRequest)},
		{name: "query_device_specific_file_response success", header: s2c(CmdQueryDeviceSpecificFileResponse),
			payload: QueryDeviceSpecificFileResponse{Status: StatusSuccess, ManufacturerCode: 0x1234, ImageType: 0xFFC0, FileVersion: 8, ImageSize: 1000},
			decode:  sweepDecodeAs(DecodeQueryDeviceSpecificFileResponse)},
		{name: "default_response", header: GlobalHeader(ServerToClient, true, 0x42, CmdDefaultResponse),
			payload: DefaultResponse{CommandID: CmdImageBlockRequest, Status: StatusMalformedCommand},
			decode:  sweepDecodeAs(DecodeDefaultResponse)},
		{name: "read_attributes of three attributes, manufacturer-specific",
			header:  Header{FrameType: FrameTypeGlobal, ManufacturerSpecific: true, ManufacturerCode: 0x115F, TSN: 0x42, CommandID: CmdReadAttributes},
			payload: ReadAttributes{AttributeIDs: []uint16{AttrOTACurrentFileVersion, 0x0000, 0xFFFD}},
			decode:  sweepDecodeAs(DecodeReadAttributes),
			// A shorter list of attribute ids (none, one, two) is a frame of its own.
			shortForms: []int{0, 2, 4}},
		{name: "read_attributes_response of every type", header: GlobalHeader(ServerToClient, false, 0x42, CmdReadAttributesResponse),
			payload: ReadAttributesResponse{Records: []ReadAttributeRecord{
				AttributeRecord(0x0000, AttributeValue{Type: TypeUint8, Uint: 3}),
				AttributeRecord(0x0004, AttributeValue{Type: TypeCharString, String: "Espressif"}),
				AttributeErrorRecord(0x0006, StatusUnsupportedAttribute),
				AttributeRecord(0x0002, AttributeValue{Type: TypeUint32, Uint: 0x01000000}),
				AttributeRecord(0x0000, AttributeValue{Type: TypeIEEE, Uint: 0x00124b0001020304}),
				AttributeRecord(0x0001, AttributeValue{Type: TypeUint24, Uint: 0x123456}),
			}},
			decode: sweepDecodeAs(DecodeReadAttributesResponse),
			// Whole records: none, then after record 1 (5 B), 2 (+14), 3 (+3), 4 (+8), 5 (+12).
			shortForms: []int{0, 5, 19, 22, 30, 42}},
	}
}

// TestSweepTruncatedFramesAtEveryByte cuts every frame of every command at every byte. Each cut must give
// a *DecodeError wrapping ErrShort that names a field of that command (or of the header) at an offset inside
// the cut, never a panic, never a value — except the documented short forms, which decode to a value that
// encodes and decodes to itself. Describe agrees with the decoders.
func TestSweepTruncatedFramesAtEveryByte(t *testing.T) {
	cuts, refused := 0, 0
	for _, c := range sweepFrameCases() {
		t.Run(c.name, func(t *testing.T) {
			frame := AppendFrame(nil, c.header, c.payload)
			hlen := c.header.Len()
			full, err := c.decode(frame[hlen:])
			require.NoError(t, err, "the complete frame decodes")
			require.Equal(t, frame[hlen:], full.AppendPayload(nil), "the complete frame round-trips")
			_, err = Describe(ClusterOTA, frame)
			require.NoError(t, err, "Describe reads the complete frame")
			prefix := strings.Fields(c.name)[0] + "." // the decoder's frame name
			for n := 0; n < len(frame); n++ {
				cuts++
				cut := frame[:n:n] // no capacity: a read past the end would panic, not read stale bytes
				h, payload, herr := DecodeHeader(cut)
				_, derr := Describe(ClusterOTA, cut)
				if n < hlen {
					refused++
					sweepRequireShort(t, herr, "header.", n, "header cut at %d", n)
					assert.Error(t, derr, "Describe of a header cut at %d", n)
					continue
				}
				require.NoError(t, herr)
				require.Equal(t, c.header, h)
				v, err := c.decode(payload)
				if sweepContains(c.shortForms, len(payload)) {
					require.NoError(t, err, "the short form of %d payload bytes decodes", len(payload))
					again, err := c.decode(v.AppendPayload(nil))
					require.NoError(t, err, "a short form re-encodes to something decodable")
					assert.True(t, reflect.DeepEqual(sweepNormal(v), sweepNormal(again)), "short form of %d bytes: %+v re-decodes as %+v", len(payload), v, again)
					assert.NoError(t, derr, "Describe of the short form of %d bytes", len(payload))
					continue
				}
				refused++
				sweepRequireShort(t, err, prefix, len(payload), "payload cut at %d of %d", len(payload), len(frame)-hlen)
				require.Nil(t, sweepValueOrNil(v), "no value with an error")
				assert.Error(t, derr, "Describe of the payload cut at %d", len(payload))
			}
		})
	}
	t.Logf("%d cuts of %d frames: %d refused with a named field, the rest documented short forms", cuts, len(sweepFrameCases()), refused)
}

// TestSweepTruncatedHeadersOfEveryFrameType cuts manufacturer-specific and plain headers of every frame
// type and direction.
func TestSweepTruncatedHeadersOfEveryFrameType(t *testing.T) {
	for fc := 0; fc < 256; fc++ {
		frame := []byte{byte(fc), 0x5F, 0x11, 0x42, 0x01}
		hlen := 3
		if fc&fcManufacturerSpecific != 0 {
			hlen = 5
		}
		for n := 0; n < hlen; n++ {
			_, _, err := DecodeHeader(frame[:n:n])
			sweepRequireShort(t, err, "header.", n, "frame control 0x%02x cut at %d", fc, n)
		}
		_, _, err := DecodeHeader(frame[:hlen:hlen])
		require.NoError(t, err, "frame control 0x%02x with its whole header", fc)
	}
}

// sweepRequireShort checks that err is a *DecodeError wrapping ErrShort, naming a field that starts with prefix,
// at an offset within the n bytes given, with a message that says what was needed.
func sweepRequireShort(t *testing.T, err error, prefix string, n int, msgAndArgs ...any) {
	t.Helper()
	what := fmt.Sprintf(msgAndArgs[0].(string), msgAndArgs[1:]...)
	require.Error(t, err, what)
	var de *DecodeError
	require.True(t, errors.As(err, &de), "%s: %T %v is not a *DecodeError", what, err, err)
	require.ErrorIs(t, err, ErrShort, what)
	require.True(t, strings.HasPrefix(de.Field, prefix), "%s: field %q, want it under %q", what, de.Field, prefix)
	require.LessOrEqual(t, de.Offset, n, what)
	require.Contains(t, err.Error(), "zcl: "+de.Field+": need ", what)
}

func sweepContains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// sweepNormal clears what a decoder may set on its own (the block request's missing-field marker, aliasing
// data) so that values compare by content.
func sweepNormal(p Payload) Payload {
	switch v := p.(type) {
	case ImageBlockRequest:
		v.minimumBlockPeriodMissing = false
		return v
	case ImageBlockResponse:
		if len(v.Data) == 0 {
			v.Data = nil
		}
		return v
	}
	return p
}

// sweepValueOrNil returns nil for a zero value: decoders return the zero value with an error.
func sweepValueOrNil(p Payload) Payload {
	if p == nil || reflect.ValueOf(p).IsZero() {
		return nil
	}
	return p
}
