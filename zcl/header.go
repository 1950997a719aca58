package zcl

import "fmt"

// Frame control bits (reference/zcl-ota.md §1).
const (
	fcFrameTypeMask          = 0x03
	fcManufacturerSpecific   = 0x04
	fcServerToClient         = 0x08
	fcDisableDefaultResponse = 0x10
)

// String gives "global", "cluster", or "reserved_2" / "reserved_3" for the reserved frame types.
func (t FrameType) String() string {
	switch t {
	case FrameTypeGlobal:
		return "global"
	case FrameTypeCluster:
		return "cluster"
	default:
		return fmt.Sprintf("reserved_%d", uint8(t))
	}
}

// MarshalText makes frame types JSON strings.
func (t FrameType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// String gives "client_to_server" or "server_to_client".
func (d Direction) String() string {
	if d == ServerToClient {
		return "server_to_client"
	}
	return "client_to_server"
}

// MarshalText makes directions JSON strings.
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Len is the encoded length of the header: 3 bytes, or 5 with a manufacturer code.
func (h Header) Len() int {
	if h.ManufacturerSpecific {
		return 5
	}
	return 3
}

// FrameControl is the frame control byte of the header (reserved bits 5-7 zero).
func (h Header) FrameControl() uint8 {
	fc := uint8(h.FrameType) & fcFrameTypeMask
	if h.ManufacturerSpecific {
		fc |= fcManufacturerSpecific
	}
	if h.Direction == ServerToClient {
		fc |= fcServerToClient
	}
	if h.DisableDefaultResponse {
		fc |= fcDisableDefaultResponse
	}
	return fc
}

// AppendTo appends the encoded header to dst. The manufacturer code is written only when
// ManufacturerSpecific is set.
func (h Header) AppendTo(dst []byte) []byte {
	dst = append(dst, h.FrameControl())
	if h.ManufacturerSpecific {
		dst = appendU16(dst, h.ManufacturerCode)
	}
	return append(dst, h.TSN, h.CommandID)
}

// DecodeHeader decodes the ZCL header at the start of frame and returns it with the payload that follows
// (aliasing frame). Reserved frame types 2 and 3 decode (FrameType.String reports them); the reserved frame
// control bits 5-7 are ignored. A frame too short for its header gives a *DecodeError naming
// "header.frame_control", "header.manufacturer_code", "header.tsn" or "header.command_id".
func DecodeHeader(frame []byte) (Header, []byte, error) {
	r := reader{frame: "header", b: frame}
	fc := r.u8("frame_control")
	h := Header{
		FrameType:              FrameType(fc & fcFrameTypeMask),
		ManufacturerSpecific:   fc&fcManufacturerSpecific != 0,
		Direction:              ClientToServer,
		DisableDefaultResponse: fc&fcDisableDefaultResponse != 0,
	}
	if fc&fcServerToClient != 0 {
		h.Direction = ServerToClient
	}
	if h.ManufacturerSpecific {
		h.ManufacturerCode = r.u16("manufacturer_code")
	}
	h.TSN = r.u8("tsn")
	h.CommandID = r.u8("command_id")
	if r.err != nil {
		return Header{}, nil, r.err
	}
	return h, frame[r.off:], nil
}

// Frame is a decoded ZCL frame: its header and the payload after it.
type Frame struct {
	Header  Header
	Payload []byte // aliases the decoded bytes
}

// DecodeFrame splits b into header and payload; see DecodeHeader.
func DecodeFrame(b []byte) (Frame, error) {
	h, payload, err := DecodeHeader(b)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Header: h, Payload: payload}, nil
}

// AppendTo appends the encoded frame (header and payload) to dst.
func (f Frame) AppendTo(dst []byte) []byte {
	return append(f.Header.AppendTo(dst), f.Payload...)
}

// ServerToClientClusterHeader is the header of an OTA server's cluster-specific command: frame control 0x19
// (cluster-specific, server→client, default response disabled).
func ServerToClientClusterHeader(tsn, cmd uint8) Header {
	return Header{FrameType: FrameTypeCluster, Direction: ServerToClient, DisableDefaultResponse: true, TSN: tsn, CommandID: cmd}
}

// ClientToServerClusterHeader is the header of an OTA client's cluster-specific request: frame control 0x01
// (cluster-specific, client→server, default response enabled).
func ClientToServerClusterHeader(tsn, cmd uint8) Header {
	return Header{FrameType: FrameTypeCluster, Direction: ClientToServer, TSN: tsn, CommandID: cmd}
}

// GlobalHeader is the header of a profile-wide command (Read Attributes, Default Response …) without a
// manufacturer code.
func GlobalHeader(dir Direction, disableDefaultResponse bool, tsn, cmd uint8) Header {
	return Header{FrameType: FrameTypeGlobal, Direction: dir, DisableDefaultResponse: disableDefaultResponse, TSN: tsn, CommandID: cmd}
}

// Payload is a command payload that can encode itself; every command type of this package is one.
type Payload interface {
	AppendPayload(dst []byte) []byte
}

// Command is a Payload that knows its command id (every command type except DefaultResponse, whose
// CommandID field names the command it answers; use CmdDefaultResponse for it).
type Command interface {
	Payload
	CommandID() uint8
}

// AppendFrame appends header h and the payload p to dst. It is generic so that a command value does not
// have to be boxed in an interface (which would allocate); with enough capacity in dst it allocates nothing.
func AppendFrame[P Payload](dst []byte, h Header, p P) []byte {
	return p.AppendPayload(h.AppendTo(dst))
}

// AppendImageBlockResponseFrame appends a complete Image Block Response frame (frame control 0x19, the
// given TSN) to dst: the engine's hot path, allocation-free when dst has room.
func AppendImageBlockResponseFrame(dst []byte, tsn uint8, r *ImageBlockResponse) []byte {
	dst = ServerToClientClusterHeader(tsn, CmdImageBlockResponse).AppendTo(dst)
	return r.AppendPayload(dst)
}
