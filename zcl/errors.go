package zcl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrShort is wrapped by a *DecodeError when a frame ends before a field it must carry.
var ErrShort = errors.New("short frame")

// ErrInvalid is wrapped by a *DecodeError when a field holds a value the codec cannot go on from (an Image
// Notify payload type above 3, an unsupported attribute data type, a reserved frame type in Describe).
var ErrInvalid = errors.New("invalid field")

// DecodeError says which field of which frame could not be decoded. Field is "<frame>.<field>" in the
// snake_case names of Describe (e.g. "image_block_request.file_offset", "header.tsn"); Offset is the byte
// offset of the field in what was being decoded (the payload for commands, the frame for the header).
// Err wraps ErrShort or ErrInvalid.
type DecodeError struct {
	Field  string
	Offset int
	Err    error
}

// Error reads like "zcl: image_block_request.file_offset: need 4 bytes at offset 9, have 2".
func (e *DecodeError) Error() string {
	var short *shortError
	if errors.As(e.Err, &short) {
		unit := "bytes"
		if short.need == 1 {
			unit = "byte"
		}
		return fmt.Sprintf("zcl: %s: need %d %s at offset %d, have %d", e.Field, short.need, unit, e.Offset, short.have)
	}
	return fmt.Sprintf("zcl: %s at offset %d: %v", e.Field, e.Offset, e.Err)
}

// Unwrap gives ErrShort or ErrInvalid (through the detail error).
func (e *DecodeError) Unwrap() error { return e.Err }

// shortError is the detail of a short read: how many bytes the field needs and how many were left.
type shortError struct{ need, have int }

func (e *shortError) Error() string {
	return fmt.Sprintf("need %d bytes, have %d", e.need, e.have)
}

func (e *shortError) Unwrap() error { return ErrShort }

// invalidError is the detail of an ErrInvalid: a message about the value.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// reader reads little-endian fields from b. The first failure is kept in err and every later read returns
// zero, so a decoder reads all its fields and checks err once. It allocates only when it fails.
type reader struct {
	frame string // frame name prefixed to field names in errors
	b     []byte
	off   int
	err   error
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) fail(field string, err error) {
	if r.err == nil {
		r.err = &DecodeError{Field: r.frame + "." + field, Offset: r.off, Err: err}
	}
}

// take returns the next n bytes, or nil after recording a short read of field.
func (r *reader) take(field string, n int) []byte {
	if r.err == nil && n <= len(r.b)-r.off {
		b := r.b[r.off : r.off+n : r.off+n]
		r.off += n
		return b
	}
	r.short(field, n)
	return nil
}

// short records a short read of field (unless an earlier failure is recorded).
func (r *reader) short(field string, n int) {
	r.fail(field, &shortError{need: n, have: r.remaining()})
}

func (r *reader) u8(field string) uint8 {
	if b := r.take(field, 1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if b := r.take(field, 2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u24(field string) uint32 {
	if b := r.take(field, 3); b != nil {
		return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.take(field, 4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) ieee(field string) IEEE {
	if b := r.take(field, 8); b != nil {
		return IEEE(binary.LittleEndian.Uint64(b))
	}
	return 0
}

func appendU16(dst []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(dst, v) }

func appendU24(dst []byte, v uint32) []byte { return append(dst, byte(v), byte(v>>8), byte(v>>16)) }

func appendU32(dst []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(dst, v) }

func appendIEEE(dst []byte, a IEEE) []byte { return binary.LittleEndian.AppendUint64(dst, uint64(a)) }
