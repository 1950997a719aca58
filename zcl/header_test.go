package zcl

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecodeHeaderVectors(t *testing.T) {
	tests := []struct {
		name    string
		frame   []byte
		want    Header
		payload []byte
	}{
		{
			name: "client request FC 0x01",
			frame: []byte{
				0x01,       // frame control: cluster-specific, client→server, default response enabled
				0x2A,       // TSN 42
				0x03,       // command id: Image Block Request
				0xAA, 0xBB, // payload
			},
			want:    Header{FrameType: FrameTypeCluster, Direction: ClientToServer, TSN: 0x2A, CommandID: CmdImageBlockRequest},
			payload: []byte{0xAA, 0xBB},
		},
		{
			name: "server response FC 0x19",
			frame: []byte{
				0x19, // frame control: cluster-specific | server→client | disable default response
				0x2A, // TSN 42
				0x05, // command id: Image Block Response
			},
			want: Header{FrameType: FrameTypeCluster, Direction: ServerToClient, DisableDefaultResponse: true, TSN: 0x2A, CommandID: CmdImageBlockResponse},
		},
		{
			name: "default response FC 0x18",
			frame: []byte{
				0x18,       // frame control: global | server→client | disable default response
				0x07,       // TSN 7
				0x0B,       // command id: Default Response
				0x04, 0x81, // payload: command 0x04, UNSUP_COMMAND
			},
			want:    Header{FrameType: FrameTypeGlobal, Direction: ServerToClient, DisableDefaultResponse: true, TSN: 7, CommandID: CmdDefaultResponse},
			payload: []byte{0x04, 0x81},
		},
		{
			name: "manufacturer-specific global FC 0x04",
			frame: []byte{
				0x04,       // frame control: global | manufacturer-specific
				0x5F, 0x11, // manufacturer code 0x115F (Lumi)
				0x09, // TSN 9
				0x00, // command id: Read Attributes
				0xF7, 0xFF,
			},
			want:    Header{FrameType: FrameTypeGlobal, ManufacturerSpecific: true, ManufacturerCode: 0x115F, TSN: 9, CommandID: CmdReadAttributes},
			payload: []byte{0xF7, 0xFF},
		},
		{
			name: "reserved frame type and reserved bits",
			frame: []byte{
				0xE2, // frame control: reserved bits 5-7 set, frame type 2 (reserved)
				0x01, // TSN 1
				0x77, // command id
			},
			want: Header{FrameType: 2, TSN: 1, CommandID: 0x77},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, payload, err := DecodeHeader(tt.frame)
			if err != nil {
				t.Fatalf("DecodeHeader(% X): %v", tt.frame, err)
			}
			if h != tt.want {
				t.Errorf("header = %+v, want %+v", h, tt.want)
			}
			if !bytes.Equal(payload, tt.payload) {
				t.Errorf("payload = % X, want % X", payload, tt.payload)
			}
			if h.Len() != len(tt.frame)-len(tt.payload) {
				t.Errorf("Len() = %d, want %d", h.Len(), len(tt.frame)-len(tt.payload))
			}
			f, err := DecodeFrame(tt.frame)
			if err != nil || f.Header != h || !bytes.Equal(f.Payload, payload) {
				t.Errorf("DecodeFrame = %+v, %v; want header %+v payload % X", f, err, h, payload)
			}
			again, _, err := DecodeHeader(h.AppendTo(nil))
			if err != nil || again != h {
				t.Errorf("re-encoded header decodes to %+v, %v; want %+v", again, err, h)
			}
		})
	}
}

func TestHeaderEncodeVectors(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want []byte
	}{
		{"ServerToClientClusterHeader", ServerToClientClusterHeader(0x10, CmdQueryNextImageResponse), []byte{0x19, 0x10, 0x02}},
		{"ClientToServerClusterHeader", ClientToServerClusterHeader(0x11, CmdQueryNextImageRequest), []byte{0x01, 0x11, 0x01}},
		{"GlobalHeader default response", GlobalHeader(ServerToClient, true, 0x12, CmdDefaultResponse), []byte{0x18, 0x12, 0x0B}},
		{"GlobalHeader read attributes to client", GlobalHeader(ServerToClient, false, 0x13, CmdReadAttributes), []byte{0x08, 0x13, 0x00}},
		{"manufacturer code", Header{FrameType: FrameTypeCluster, ManufacturerSpecific: true, ManufacturerCode: 0x1234, TSN: 1, CommandID: 2},
			[]byte{0x05, 0x34, 0x12, 0x01, 0x02}},
		{"manufacturer code ignored when not manufacturer-specific", Header{ManufacturerCode: 0x1234, TSN: 1}, []byte{0x00, 0x01, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.h.AppendTo([]byte{0xEE})
			if !bytes.Equal(got[1:], tt.want) || got[0] != 0xEE {
				t.Errorf("AppendTo = % X, want EE % X", got, tt.want)
			}
			if tt.h.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", tt.h.Len(), len(tt.want))
			}
		})
	}
}

func TestDecodeHeaderShort(t *testing.T) {
	full := []byte{0x05, 0x34, 0x12, 0x01, 0x02} // manufacturer-specific header, 5 bytes
	wantField := []string{"header.frame_control", "header.manufacturer_code", "header.manufacturer_code", "header.tsn", "header.command_id"}
	for n := 0; n < len(full); n++ {
		_, _, err := DecodeHeader(full[:n])
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("DecodeHeader(% X) error = %v, want *DecodeError", full[:n], err)
		}
		if de.Field != wantField[n] || !errors.Is(err, ErrShort) {
			t.Errorf("DecodeHeader(% X): field %q (%v), want %q and ErrShort", full[:n], de.Field, err, wantField[n])
		}
	}
	_, _, err := DecodeHeader([]byte{0x01, 0x02})
	if got, want := err.Error(), "zcl: header.command_id: need 1 byte at offset 2, have 0"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestFrameTypeAndDirectionNames(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{FrameTypeGlobal.String(), "global"},
		{FrameTypeCluster.String(), "cluster"},
		{FrameType(2).String(), "reserved_2"},
		{FrameType(3).String(), "reserved_3"},
		{ClientToServer.String(), "client_to_server"},
		{ServerToClient.String(), "server_to_client"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	want := []byte{
		0x18, 0x05, 0x0B, // FC global|s→c|disableDR, TSN 5, Default Response
		0x06, 0x00, // command 0x06, SUCCESS
	}
	got := AppendFrame(nil, GlobalHeader(ServerToClient, true, 5, CmdDefaultResponse), DefaultResponse{CommandID: CmdUpgradeEndRequest, Status: StatusSuccess})
	if !bytes.Equal(got, want) {
		t.Errorf("AppendFrame = % X, want % X", got, want)
	}
	r := ImageBlockResponse{Status: StatusAbort}
	if got, want := AppendImageBlockResponseFrame(nil, 9, &r), []byte{0x19, 0x09, 0x05, 0x95}; !bytes.Equal(got, want) {
		t.Errorf("AppendImageBlockResponseFrame = % X, want % X", got, want)
	}
	f := Frame{Header: ClientToServerClusterHeader(3, CmdUpgradeEndRequest), Payload: []byte{0x95}}
	if got, want := f.AppendTo(nil), []byte{0x01, 0x03, 0x06, 0x95}; !bytes.Equal(got, want) {
		t.Errorf("Frame.AppendTo = % X, want % X", got, want)
	}
}

func TestStatusNames(t *testing.T) {
	for _, tt := range []struct {
		s    Status
		name string
	}{
		{StatusSuccess, "SUCCESS"},
		{StatusNotAuthorized, "NOT_AUTHORIZED"},
		{StatusUnsupCommand, "UNSUP_COMMAND"},
		{StatusWaitForData, "WAIT_FOR_DATA"},
		{StatusNoImageAvailable, "NO_IMAGE_AVAILABLE"},
		{StatusUnsupportedCluster, "UNSUPPORTED_CLUSTER"},
		{Status(0x42), "0x42"},
		{Status(0xFE), "0xFE"},
	} {
		if got := tt.s.String(); got != tt.name {
			t.Errorf("Status(0x%02X).String() = %q, want %q", uint8(tt.s), got, tt.name)
		}
		text, err := tt.s.MarshalText()
		if err != nil || string(text) != tt.name {
			t.Errorf("MarshalText = %q, %v; want %q", text, err, tt.name)
		}
		back, err := ParseStatus(tt.name)
		if err != nil || back != tt.s {
			t.Errorf("ParseStatus(%q) = %v, %v; want %v", tt.name, back, err, tt.s)
		}
	}
	for _, alias := range []string{"unsup_cluster_command", " unsup_command "} {
		if s, err := ParseStatus(alias); err != nil || s != StatusUnsupCommand {
			t.Errorf("ParseStatus(%q) = %v, %v; want UNSUP_COMMAND", alias, s, err)
		}
	}
	for _, bad := range []string{"", "NOPE", "0x", "0x100"} {
		if _, err := ParseStatus(bad); err == nil {
			t.Errorf("ParseStatus(%q) succeeded, want an error", bad)
		}
	}
	var s Status
	if err := s.UnmarshalText([]byte("ABORT")); err != nil || s != StatusAbort {
		t.Errorf("UnmarshalText(ABORT) = %v, %v", s, err)
	}
}

func TestParseIEEE(t *testing.T) {
	for _, in := range []string{"0x00124b0012345678", "00124B0012345678", "00:12:4b:00:12:34:56:78", " 0X00124b0012345678 "} {
		got, err := ParseIEEE(in)
		if err != nil || got != 0x00124B0012345678 {
			t.Errorf("ParseIEEE(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0x1234", "0x00124b001234567g", "00124b00123456789"} {
		if _, err := ParseIEEE(bad); err == nil {
			t.Errorf("ParseIEEE(%q) succeeded, want an error", bad)
		}
	}
	var a IEEE
	if err := a.UnmarshalText([]byte("0x00124b0012345678")); err != nil || a.String() != "0x00124b0012345678" {
		t.Errorf("UnmarshalText round trip = %v, %v", a, err)
	}
}
