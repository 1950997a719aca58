package zboss

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Low-level frame (ZBOSS NCP serial protocol, "low level protocol"):
//
//	0xDE 0xAD | length u16 LE | type | flags | CRC8 | [CRC16 u16 LE | body]
//
// length counts from the length field to the end of the frame: 5 for an ACK (no body), 7+len(body)
// otherwise. CRC8 (CRC-8/KOOP) covers length, type and flags; CRC16 (CRC-16/KERMIT) covers the body.
const (
	Signature0 byte = 0xDE
	Signature1 byte = 0xAD
	// TypeHighLevel is the only frame type the NCP API uses (ZBOSS_NCP_API_HL).
	TypeHighLevel byte = 0x06
	// headerLen is signature, length, type, flags and CRC8.
	headerLen = 7
	// MaxBody is the largest high-level packet the driver and the fake NCP accept in one frame. ZBOSS
	// NCP firmware keeps packets well under this (herdsman's writer uses a 247-byte buffer).
	MaxBody = 512
)

// Flags bits of a low-level frame.
const (
	FlagACK        byte = 0x01 // this frame acknowledges ACKSeq
	FlagRetransmit byte = 0x02 // this frame is a retransmission of Seq
	FlagFirstFrag  byte = 0x40
	FlagLastFrag   byte = 0x80
)

// Errors of the low-level decoder.
var (
	ErrShortFrame = errors.New("zboss: frame truncated")
	ErrHeaderCRC  = errors.New("zboss: header CRC8 mismatch")
	ErrBodyCRC    = errors.New("zboss: body CRC16 mismatch")
	ErrBadLength  = errors.New("zboss: bad frame length")
	ErrBadType    = errors.New("zboss: unknown frame type")
)

// LowFrame is one decoded low-level frame.
type LowFrame struct {
	ACK        bool  // an acknowledgement (no body)
	Retransmit bool  // a retransmission
	Seq        uint8 // packet number 0-3 (data frames)
	ACKSeq     uint8 // number of the packet acknowledged 0-3 (ACK frames)
	First      bool  // first fragment
	Last       bool  // last fragment
	Body       []byte
}

// Flags packs the frame's flag bits.
func (f LowFrame) Flags() byte {
	var b byte
	if f.ACK {
		b |= FlagACK
	}
	if f.Retransmit {
		b |= FlagRetransmit
	}
	b |= (f.Seq & 3) << 2
	b |= (f.ACKSeq & 3) << 4
	if f.First {
		b |= FlagFirstFrag
	}
	if f.Last {
		b |= FlagLastFrag
	}
	return b
}

// parseFlags unpacks flag bits.
func parseFlags(b byte) LowFrame {
	return LowFrame{ACK: b&FlagACK != 0, Retransmit: b&FlagRetransmit != 0, Seq: (b >> 2) & 3, ACKSeq: (b >> 4) & 3,
		First: b&FlagFirstFrag != 0, Last: b&FlagLastFrag != 0}
}

// AppendLowFrame encodes f (an ACK when f.ACK, else a data frame carrying f.Body) onto dst.
func AppendLowFrame(dst []byte, f LowFrame) []byte {
	length := 5
	if !f.ACK {
		length += 2 + len(f.Body)
	}
	start := len(dst)
	dst = append(dst, Signature0, Signature1, byte(length), byte(length>>8), TypeHighLevel, f.Flags())
	dst = append(dst, CRC8(dst[start+2:start+6]))
	if f.ACK {
		return dst
	}
	dst = binary.LittleEndian.AppendUint16(dst, CRC16(f.Body))
	return append(dst, f.Body...)
}

// DecodeLowFrame decodes the frame at the start of b (which begins with the signature). It returns the
// frame and the bytes it used. With ErrShortFrame the caller waits for more bytes; with any other error
// the caller skips the signature and looks for the next one. The body aliases b. It never panics.
func DecodeLowFrame(b []byte) (LowFrame, int, error) {
	if len(b) < headerLen {
		return LowFrame{}, 0, ErrShortFrame
	}
	if b[0] != Signature0 || b[1] != Signature1 {
		return LowFrame{}, 0, fmt.Errorf("zboss: no signature (% x)", b[:2])
	}
	if c := CRC8(b[2:6]); c != b[6] {
		return LowFrame{}, 0, fmt.Errorf("%w: got 0x%02x, computed 0x%02x", ErrHeaderCRC, b[6], c)
	}
	length := int(binary.LittleEndian.Uint16(b[2:4]))
	if b[4] != TypeHighLevel {
		return LowFrame{}, 0, fmt.Errorf("%w 0x%02x", ErrBadType, b[4])
	}
	f := parseFlags(b[5])
	if f.ACK {
		if length != 5 {
			return LowFrame{}, 0, fmt.Errorf("%w: ACK of length %d", ErrBadLength, length)
		}
		return f, headerLen, nil
	}
	if length < 7 || length-7 > MaxBody {
		return LowFrame{}, 0, fmt.Errorf("%w: %d", ErrBadLength, length)
	}
	total := 2 + length
	if len(b) < total {
		return LowFrame{}, 0, ErrShortFrame
	}
	body := b[9:total]
	if want, got := CRC16(body), binary.LittleEndian.Uint16(b[7:9]); want != got {
		return LowFrame{}, 0, fmt.Errorf("%w: got 0x%04x, computed 0x%04x", ErrBodyCRC, got, want)
	}
	f.Body = body
	return f, total, nil
}

// CRC8 is CRC-8/KOOP (poly 0x4D reflected, init 0xFF, xorout 0xFF): the low-level header checksum.
func CRC8(b []byte) byte {
	crc := byte(0xFF)
	for _, x := range b {
		crc ^= x
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xB2
			} else {
				crc >>= 1
			}
		}
	}
	return crc ^ 0xFF
}

// CRC16 is CRC-16/KERMIT (poly 0x1021 reflected, init 0, no xorout): the low-level body checksum.
func CRC16(b []byte) uint16 {
	var crc uint16
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x8408
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
