// Package ash owns the Asynchronous Serial Host protocol of Silicon Labs UG101 that carries EZSP between a
// host and an EmberZNet NCP over a UART: frame encoding (control byte, data randomisation, CRC-CCITT, byte
// stuffing, flag), a stream decoder that survives noise (Cancel, Substitute, XON/XOFF, bad CRC), and the
// reliable link (Conn): RST/RSTACK/ERROR, DATA/ACK/NAK with frame numbers, retransmission with the adaptive
// ACK timer. It knows nothing of EZSP itself: a DATA frame's payload is opaque bytes.
package ash

import (
	"errors"
	"fmt"
)

// Reserved bytes (UG101 §2.3). They never appear inside a frame on the wire: they are stuffed.
const (
	Flag       byte = 0x7E // ends a frame
	Escape     byte = 0x7D // the next byte is XOR 0x20
	XON        byte = 0x11 // software flow control: resume
	XOFF       byte = 0x13 // software flow control: stop
	Substitute byte = 0x18 // a byte with a framing error: discard the frame up to the next Flag
	Cancel     byte = 0x1A // discard everything since the last Flag
)

// Version is the only ASH version that exists (RSTACK and ERROR carry it).
const Version = 0x02

// Reset and error codes carried by RSTACK and ERROR frames (UG101 table 3).
const (
	ResetUnknown           = 0x00
	ResetExternal          = 0x01
	ResetPowerOn           = 0x02
	ResetWatchdog          = 0x03
	ResetAssert            = 0x06
	ResetBootloader        = 0x09
	ResetSoftware          = 0x0B
	ErrorAckTimeouts       = 0x51 // exceeded the maximum number of ACK timeouts
	ErrorChipSpecific      = 0x80
	MaxDataLen             = 128 // the largest DATA field UG101 allows
	minDataLen             = 3   // the smallest DATA field (an EZSP header)
	maxRawFrameLen         = 1 + MaxDataLen + 2
	controlRST        byte = 0xC0
	controlRSTACK     byte = 0xC1
	controlERROR      byte = 0xC2
)

// ResetCodeName names a reset or error code for logs.
func ResetCodeName(code uint8) string {
	switch code {
	case ResetUnknown:
		return "unknown"
	case ResetExternal:
		return "external"
	case ResetPowerOn:
		return "power-on"
	case ResetWatchdog:
		return "watchdog"
	case ResetAssert:
		return "assert"
	case ResetBootloader:
		return "bootloader"
	case ResetSoftware:
		return "software"
	case ErrorAckTimeouts:
		return "exceeded ACK timeouts"
	}
	return fmt.Sprintf("0x%02x", code)
}

// FrameType says what an ASH frame is.
type FrameType uint8

// Frame types.
const (
	FrameData FrameType = iota + 1
	FrameAck
	FrameNak
	FrameRST
	FrameRSTACK
	FrameError
)

func (t FrameType) String() string {
	switch t {
	case FrameData:
		return "DATA"
	case FrameAck:
		return "ACK"
	case FrameNak:
		return "NAK"
	case FrameRST:
		return "RST"
	case FrameRSTACK:
		return "RSTACK"
	case FrameError:
		return "ERROR"
	}
	return fmt.Sprintf("frame(%d)", uint8(t))
}

// Frame is one ASH frame, decoded: the data field of a DATA frame is de-randomised.
type Frame struct {
	Type     FrameType
	FrmNum   uint8  // DATA: the sender's frame number (0-7)
	AckNum   uint8  // DATA, ACK, NAK: the next frame number the sender expects (0-7)
	ReTx     bool   // DATA: this is a retransmission
	NotReady bool   // ACK, NAK: the sender's receive buffer is nearly full (nRdy)
	Version  uint8  // RSTACK, ERROR
	Code     uint8  // RSTACK: reset code; ERROR: error code
	Data     []byte // DATA: the EZSP frame (not randomised)
}

func (f Frame) String() string {
	switch f.Type {
	case FrameData:
		re := ""
		if f.ReTx {
			re = " reTx"
		}
		return fmt.Sprintf("DATA(frm=%d ack=%d%s len=%d)", f.FrmNum, f.AckNum, re, len(f.Data))
	case FrameAck, FrameNak:
		nr := ""
		if f.NotReady {
			nr = " nRdy"
		}
		return fmt.Sprintf("%s(%d%s)", f.Type, f.AckNum, nr)
	case FrameRSTACK, FrameError:
		return fmt.Sprintf("%s(v%d %s)", f.Type, f.Version, ResetCodeName(f.Code))
	}
	return f.Type.String()
}

// Control returns the control byte of the frame.
func (f Frame) Control() byte {
	switch f.Type {
	case FrameData:
		c := (f.FrmNum&7)<<4 | f.AckNum&7
		if f.ReTx {
			c |= 0x08
		}
		return c
	case FrameAck, FrameNak:
		c := byte(0x80) | f.AckNum&7
		if f.Type == FrameNak {
			c = 0xA0 | f.AckNum&7
		}
		if f.NotReady {
			c |= 0x08
		}
		return c
	case FrameRST:
		return controlRST
	case FrameRSTACK:
		return controlRSTACK
	case FrameError:
		return controlERROR
	}
	return 0xFF
}

// Randomize XORs data in place with the UG101 pseudo-random sequence (seed 0x42, feedback 0xB8). Applying it
// twice restores the data.
func Randomize(data []byte) {
	r := byte(0x42)
	for i := range data {
		data[i] ^= r
		if r&1 == 0 {
			r >>= 1
		} else {
			r = r>>1 ^ 0xB8
		}
	}
}

// CRC computes CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR).
func CRC(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// AppendRaw appends the unstuffed frame (control, randomised data, CRC high byte first) to dst.
func (f Frame) AppendRaw(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, f.Control())
	switch f.Type {
	case FrameData:
		n := len(dst)
		dst = append(dst, f.Data...)
		Randomize(dst[n:])
	case FrameRSTACK, FrameError:
		dst = append(dst, f.Version, f.Code)
	}
	crc := CRC(dst[start:])
	return append(dst, byte(crc>>8), byte(crc))
}

// Append appends the frame as it goes on the wire: stuffed, followed by the Flag byte. It does not add the
// Cancel byte that precedes a RST (the link does).
func (f Frame) Append(dst []byte) []byte {
	var buf [maxRawFrameLen + 8]byte
	raw := f.AppendRaw(buf[:0])
	return AppendStuffed(dst, raw)
}

// AppendStuffed appends raw with every reserved byte escaped, then a Flag.
func AppendStuffed(dst, raw []byte) []byte {
	for _, b := range raw {
		if isReserved(b) {
			dst = append(dst, Escape, b^0x20)
		} else {
			dst = append(dst, b)
		}
	}
	return append(dst, Flag)
}

func isReserved(b byte) bool {
	switch b {
	case Flag, Escape, XON, XOFF, Substitute, Cancel:
		return true
	}
	return false
}

// Decoding errors. A *DecodeError wraps one of them.
var (
	ErrBadCRC      = errors.New("bad CRC")
	ErrShortFrame  = errors.New("frame too short")
	ErrLongFrame   = errors.New("frame too long")
	ErrBadControl  = errors.New("unknown control byte")
	ErrBadLength   = errors.New("wrong length for frame type")
	ErrBadEscape   = errors.New("escape byte before flag")
	ErrSubstituted = errors.New("substitute byte (framing error on the line)")
)

// DecodeError is a frame the decoder had to drop, with the first byte of it (the control byte, when known).
type DecodeError struct {
	Err     error
	Control byte
	Len     int
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("ASH frame (control 0x%02x, %d bytes) dropped: %v", e.Control, e.Len, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// MaybeData reports whether the dropped frame looks like a DATA frame (the receiver answers it with a NAK).
func (e *DecodeError) MaybeData() bool { return e.Len > 0 && e.Control&0x80 == 0 }

// ParseFrame decodes one unstuffed frame (control, data, CRC; no Flag). The data of a DATA frame is
// de-randomised into a new slice.
func ParseFrame(raw []byte) (Frame, error) {
	if len(raw) < 3 {
		return Frame{}, frameErr(raw, ErrShortFrame)
	}
	if len(raw) > maxRawFrameLen {
		return Frame{}, frameErr(raw, ErrLongFrame)
	}
	body := raw[:len(raw)-2]
	if CRC(body) != uint16(raw[len(raw)-2])<<8|uint16(raw[len(raw)-1]) {
		return Frame{}, frameErr(raw, ErrBadCRC)
	}
	c := raw[0]
	switch {
	case c&0x80 == 0:
		data := append([]byte(nil), body[1:]...)
		if len(data) < minDataLen {
			return Frame{}, frameErr(raw, ErrBadLength)
		}
		Randomize(data)
		return Frame{Type: FrameData, FrmNum: c >> 4 & 7, ReTx: c&0x08 != 0, AckNum: c & 7, Data: data}, nil
	case c&0xE0 == 0x80 || c&0xE0 == 0xA0:
		if len(body) != 1 {
			return Frame{}, frameErr(raw, ErrBadLength)
		}
		t := FrameAck
		if c&0xE0 == 0xA0 {
			t = FrameNak
		}
		return Frame{Type: t, AckNum: c & 7, NotReady: c&0x08 != 0}, nil
	case c == controlRST:
		if len(body) != 1 {
			return Frame{}, frameErr(raw, ErrBadLength)
		}
		return Frame{Type: FrameRST}, nil
	case c == controlRSTACK || c == controlERROR:
		if len(body) != 3 {
			return Frame{}, frameErr(raw, ErrBadLength)
		}
		t := FrameRSTACK
		if c == controlERROR {
			t = FrameError
		}
		return Frame{Type: t, Version: body[1], Code: body[2]}, nil
	}
	return Frame{}, frameErr(raw, ErrBadControl)
}

func frameErr(raw []byte, err error) *DecodeError {
	e := &DecodeError{Err: err, Len: len(raw)}
	if len(raw) > 0 {
		e.Control = raw[0]
	}
	return e
}

// Decoder turns a byte stream into frames. The zero value is ready to use; it is not safe for concurrent use.
type Decoder struct {
	buf     [maxRawFrameLen + 1]byte
	n       int
	escaped bool
	bad     error // the current frame is already lost: drop it at the next Flag
	started bool  // bytes (even dropped ones) arrived since the last Flag or Cancel
}

// Feed decodes p and calls fn for every complete frame, in order: with the frame, or with a *DecodeError for a
// frame that had to be dropped. Bytes that are not part of a frame (XON, XOFF, data cancelled by Cancel)
// are skipped silently.
func (d *Decoder) Feed(p []byte, fn func(Frame, error)) {
	for _, b := range p {
		switch b {
		case Flag:
			d.endFrame(fn)
			continue
		case Cancel:
			d.reset()
			continue
		case Substitute:
			d.started = true
			if d.bad == nil {
				d.bad = ErrSubstituted
			}
			continue
		case XON, XOFF:
			continue
		case Escape:
			d.started = true
			d.escaped = true
			continue
		}
		d.started = true
		if d.escaped {
			b ^= 0x20
			d.escaped = false
		}
		if d.bad != nil {
			continue
		}
		if d.n >= len(d.buf) {
			d.bad = ErrLongFrame
			continue
		}
		d.buf[d.n] = b
		d.n++
	}
}

func (d *Decoder) endFrame(fn func(Frame, error)) {
	defer d.reset()
	switch {
	case !d.started:
		return // back-to-back flags: nothing between them
	case d.bad != nil:
		fn(Frame{}, frameErr(d.buf[:d.n], d.bad))
	case d.escaped:
		fn(Frame{}, frameErr(d.buf[:d.n], ErrBadEscape))
	default:
		f, err := ParseFrame(d.buf[:d.n])
		fn(f, err)
	}
}

func (d *Decoder) reset() {
	d.n = 0
	d.escaped = false
	d.bad = nil
	d.started = false
}
