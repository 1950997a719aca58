package zboss

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// High-level packet (the body of a low-level frame):
//
//	request:    version | type 0 | call id u16 LE | TSN | parameters
//	response:   version | type 1 | call id u16 LE | TSN | status category | status code | parameters
//	indication: version | type 2 | call id u16 LE | parameters
const (
	// ProtocolVersion is the high-level packet version the driver and the fake NCP write.
	ProtocolVersion byte = 0
)

// PacketType says whether a packet is a request, a response or an indication.
type PacketType uint8

// Packet types.
const (
	Request    PacketType = 0
	Response   PacketType = 1
	Indication PacketType = 2
)

func (t PacketType) String() string {
	switch t {
	case Request:
		return "request"
	case Response:
		return "response"
	case Indication:
		return "indication"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Status categories of a response.
const (
	CategoryGeneric uint8 = 0
	CategoryMAC     uint8 = 2
	CategoryNWK     uint8 = 3
	CategoryAPS     uint8 = 4
	CategoryZDO     uint8 = 5
	CategoryCBKE    uint8 = 6
)

// Status is a response's status: category and code; {0, 0} is success.
type Status struct {
	Category uint8
	Code     uint8
}

// OK reports success.
func (s Status) OK() bool { return s.Code == 0 }

func (s Status) String() string {
	if s.OK() {
		return "OK"
	}
	cat := map[uint8]string{CategoryGeneric: "generic", CategoryMAC: "MAC", CategoryNWK: "NWK", CategoryAPS: "APS",
		CategoryZDO: "ZDO", CategoryCBKE: "CBKE"}[s.Category]
	if cat == "" {
		cat = fmt.Sprintf("category %d", s.Category)
	}
	if name := statusNames[s]; name != "" {
		return fmt.Sprintf("%s %s (0x%02x)", cat, name, s.Code)
	}
	return fmt.Sprintf("%s status 0x%02x", cat, s.Code)
}

// Status codes the driver and the fake NCP use.
var (
	StatusOK             = Status{}
	StatusError          = Status{CategoryGeneric, 1}
	StatusBusy           = Status{CategoryGeneric, 4}
	StatusInvalidParam   = Status{CategoryGeneric, 23}
	StatusNotFound       = Status{CategoryGeneric, 28}
	StatusNotImplemented = Status{CategoryGeneric, 31}
	StatusInvalidState   = Status{CategoryGeneric, 35}
	StatusAPSNoAck       = Status{CategoryAPS, 0xA7}
	StatusAPSNoShortAddr = Status{CategoryAPS, 0xA9}
	StatusAPSASDUTooLong = Status{CategoryAPS, 0xA0}
	StatusMACNoAck       = Status{CategoryMAC, 0xE9}
	StatusNWKRouteError  = Status{CategoryNWK, 0xD0}
)

var statusNames = map[Status]string{
	StatusError: "ERROR", StatusBusy: "BUSY", StatusInvalidParam: "INVALID_PARAMETER", StatusNotFound: "NOT_FOUND",
	StatusNotImplemented: "NOT_IMPLEMENTED", StatusInvalidState: "INVALID_STATE", StatusAPSNoAck: "NO_ACK",
	StatusAPSNoShortAddr: "NO_SHORT_ADDRESS", StatusAPSASDUTooLong: "ASDU_TOO_LONG", StatusMACNoAck: "NO_ACK",
	StatusNWKRouteError: "ROUTE_ERROR",
}

// Packet is one high-level packet.
type Packet struct {
	Version uint8
	Type    PacketType
	CallID  CallID
	TSN     uint8  // requests and responses
	Status  Status // responses
	Params  []byte
}

// ErrShortPacket says a high-level packet ends inside its header.
var ErrShortPacket = errors.New("zboss: packet truncated")

// AppendPacket encodes p onto dst.
func AppendPacket(dst []byte, p Packet) []byte {
	dst = append(dst, p.Version, byte(p.Type))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(p.CallID))
	switch p.Type {
	case Request:
		dst = append(dst, p.TSN)
	case Response:
		dst = append(dst, p.TSN, p.Status.Category, p.Status.Code)
	}
	return append(dst, p.Params...)
}

// DecodePacket decodes a high-level packet. Params alias b. It never panics.
func DecodePacket(b []byte) (Packet, error) {
	if len(b) < 4 {
		return Packet{}, fmt.Errorf("%w: %d bytes", ErrShortPacket, len(b))
	}
	p := Packet{Version: b[0], Type: PacketType(b[1]), CallID: CallID(binary.LittleEndian.Uint16(b[2:4]))}
	rest := b[4:]
	switch p.Type {
	case Request:
		if len(rest) < 1 {
			return p, fmt.Errorf("%w: request %s without TSN", ErrShortPacket, p.CallID)
		}
		p.TSN, rest = rest[0], rest[1:]
	case Response:
		if len(rest) < 3 {
			return p, fmt.Errorf("%w: response %s without TSN and status", ErrShortPacket, p.CallID)
		}
		p.TSN, p.Status, rest = rest[0], Status{rest[1], rest[2]}, rest[3:]
	case Indication:
	default:
		return p, fmt.Errorf("zboss: packet type %d unknown", b[1])
	}
	p.Params = rest
	return p, nil
}
