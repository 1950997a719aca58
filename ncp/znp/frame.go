// Package znp owns otabridge's driver for Texas Instruments Z-Stack coordinator sticks (CC2652/CC1352:
// Sonoff ZBDongle-P, SMLIGHT SLZB-06, Electrolama zzh) over the Monitor and Test (MT) serial protocol: MT
// framing, the SREQ/SRSP command channel with AREQ callbacks, the stick's bring-up (reset, version, resume or
// formation through NV items), the APS data path and the reconnect loop. It implements ncp.Radio; the fake
// stick in ncp/znp/fakestick speaks the stick's side of the same bytes.
package znp

import (
	"errors"
	"fmt"
)

// SOF starts every MT frame on the wire.
const SOF = 0xFE

// MaxDataLen is the largest DATA field of one MT frame.
const MaxDataLen = 250

// Type is the command type in bits 7-5 of CMD0.
type Type uint8

// Command types.
const (
	TypePOLL Type = 0
	TypeSREQ Type = 1 // synchronous request: the stick answers with an SRSP of the same subsystem and id
	TypeAREQ Type = 2 // asynchronous: a callback from the stick or a request without an answer
	TypeSRSP Type = 3 // synchronous response
)

func (t Type) String() string {
	switch t {
	case TypePOLL:
		return "POLL"
	case TypeSREQ:
		return "SREQ"
	case TypeAREQ:
		return "AREQ"
	case TypeSRSP:
		return "SRSP"
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Subsystem is the MT subsystem in bits 4-0 of CMD0.
type Subsystem uint8

// Subsystems.
const (
	SubRPCError Subsystem = 0x00
	SubSYS      Subsystem = 0x01
	SubMAC      Subsystem = 0x02
	SubNWK      Subsystem = 0x03
	SubAF       Subsystem = 0x04
	SubZDO      Subsystem = 0x05
	SubSAPI     Subsystem = 0x06
	SubUTIL     Subsystem = 0x07
	SubDEBUG    Subsystem = 0x08
	SubAPP      Subsystem = 0x09
	SubAPPCNF   Subsystem = 0x0F
	SubGP       Subsystem = 0x15
)

var subsystemNames = map[Subsystem]string{SubRPCError: "RPC", SubSYS: "SYS", SubMAC: "MAC", SubNWK: "NWK", SubAF: "AF",
	SubZDO: "ZDO", SubSAPI: "SAPI", SubUTIL: "UTIL", SubDEBUG: "DEBUG", SubAPP: "APP", SubAPPCNF: "APP_CNF", SubGP: "GP"}

func (s Subsystem) String() string {
	if n, ok := subsystemNames[s]; ok {
		return n
	}
	return fmt.Sprintf("SUB%02X", uint8(s))
}

// Frame is one MT frame: the command type, subsystem and id, and the DATA bytes.
type Frame struct {
	Type      Type
	Subsystem Subsystem
	ID        uint8
	Data      []byte
}

// CMD0 is the frame's first command byte: type and subsystem.
func (f Frame) CMD0() byte { return byte(f.Type)<<5 | byte(f.Subsystem)&0x1F }

// Command names the frame's command (subsystem and id), e.g. "AF_DATA_REQUEST".
func (f Frame) Command() Command { return Command{f.Subsystem, f.ID} }

func (f Frame) String() string { return fmt.Sprintf("%s %s % X", f.Type, f.Command(), f.Data) }

// Append encodes the frame for the wire (SOF, length, CMD0, CMD1, data, FCS) after b. The data must fit
// (MaxDataLen); a longer frame is cut, which callers prevent by checking first.
func (f Frame) Append(b []byte) []byte {
	data := f.Data
	if len(data) > MaxDataLen {
		data = data[:MaxDataLen]
	}
	start := len(b)
	b = append(b, SOF, byte(len(data)), f.CMD0(), f.ID)
	b = append(b, data...)
	return append(b, fcs(b[start+1:]))
}

// fcs is the XOR of the length, command and data bytes.
func fcs(b []byte) byte {
	var x byte
	for _, c := range b {
		x ^= c
	}
	return x
}

// Errors of ParseFrame.
var (
	ErrShortFrame = errors.New("MT frame too short")
	ErrNoSOF      = errors.New("MT frame does not start with 0xFE")
	ErrBadLength  = errors.New("MT frame length does not match")
	ErrBadFCS     = errors.New("MT frame check sequence wrong")
)

// ParseFrame decodes one whole MT frame (SOF to FCS). Data aliases b.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < 5 {
		return Frame{}, ErrShortFrame
	}
	if b[0] != SOF {
		return Frame{}, ErrNoSOF
	}
	n := int(b[1])
	if n > MaxDataLen || len(b) != n+5 {
		return Frame{}, fmt.Errorf("%w: length byte %d, %d bytes", ErrBadLength, n, len(b))
	}
	if fcs(b[1:len(b)-1]) != b[len(b)-1] {
		return Frame{}, fmt.Errorf("%w: got 0x%02X, want 0x%02X", ErrBadFCS, b[len(b)-1], fcs(b[1:len(b)-1]))
	}
	return Frame{Type: Type(b[2] >> 5), Subsystem: Subsystem(b[2] & 0x1F), ID: b[3], Data: b[4 : 4+n]}, nil
}

// Decoder cuts a byte stream into MT frames. Bytes before a SOF, and frames with a bad length or FCS, are
// dropped: it resynchronises at the next 0xFE.
type Decoder struct {
	buf     []byte
	dropped int
}

// Dropped returns how many bytes were thrown away so far (noise, bad frames).
func (d *Decoder) Dropped() int { return d.dropped }

// Feed adds bytes and returns the whole frames they complete, in order. Their Data is a fresh copy.
func (d *Decoder) Feed(p []byte) []Frame {
	d.buf = append(d.buf, p...)
	var out []Frame
	for {
		i := 0
		for i < len(d.buf) && d.buf[i] != SOF {
			i++
		}
		d.dropped += i
		d.buf = d.buf[i:]
		if len(d.buf) < 2 {
			break
		}
		n := int(d.buf[1])
		if n > MaxDataLen {
			d.dropped++
			d.buf = d.buf[1:]
			continue
		}
		if len(d.buf) < n+5 {
			break
		}
		f, err := ParseFrame(d.buf[:n+5])
		if err != nil {
			d.dropped++
			d.buf = d.buf[1:]
			continue
		}
		f.Data = append([]byte(nil), f.Data...)
		out = append(out, f)
		d.buf = d.buf[n+5:]
	}
	if len(d.buf) == 0 {
		d.buf = nil // let the backing array go
	}
	return out
}
