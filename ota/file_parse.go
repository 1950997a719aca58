package ota

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/otabridge/otabridge/zcl"
)

// Reasons an OTA file is refused. Parse and ParseHeader wrap one of these in an error that gives the numbers.
var (
	ErrNoMagic        = errors.New("no OTA file identifier 0x0BEEF11E (bytes 1E F1 EE 0B)")
	ErrHeaderTooShort = errors.New("OTA header length below 56")
	ErrFieldControl   = errors.New("OTA header field control contradicts header length")
	ErrTotalImageSize = errors.New("OTA total image size smaller than the header")
	ErrTruncated      = errors.New("OTA image truncated")
)

// MaxSubElements caps how many sub-elements one walk collects. Real files have a handful; the cap keeps a
// crafted file of millions of empty elements from costing memory. A walk that reaches it stops there, and
// the file is reported with the loose layout.
const MaxSubElements = 1024

// magicBytes is Magic as it appears on disk.
var magicBytes = []byte{0x1E, 0xF1, 0xEE, 0x0B}

// Offsets inside the OTA header, from the magic.
const (
	offHeaderVersion  = 4
	offHeaderLength   = 6
	offFieldControl   = 8
	offManufacturer   = 10
	offImageType      = 12
	offFileVersion    = 14
	offStackVersion   = 18
	offHeaderString   = 20
	offTotalImageSize = 52
)

// File is a parsed OTA upgrade file: its header, where the OTA image sits in the file, and how the bytes
// after the header were understood. The servable image is bytes [ImageOffset, ImageOffset+ImageSize) of the file.
type File struct {
	Header      Header
	MagicOffset int64 // offset of the first 0x0BEEF11E in the file; not 0 for wrapped files
	FileLength  int64
	Layout      Layout
	SubElements []SubElement // complete sub-elements in file order; offsets from the start of the file
	Unparsed    *Region      // loose layout: the part of the image that did not form sub-elements
}

// ImageOffset is where the OTA image starts in the file (the magic).
func (f *File) ImageOffset() int64 { return f.MagicOffset }

// ImageSize is the size of the OTA image: the header's total image size.
func (f *File) ImageSize() int64 { return int64(f.Header.TotalImageSize) }

// TrailingBytes counts the bytes after the OTA image (wrapper trailers, padding).
func (f *File) TrailingBytes() int64 { return f.FileLength - f.MagicOffset - f.ImageSize() }

// HeaderStringText is the 32-byte header string with trailing NUL bytes removed; other bytes are kept as
// they are (spaces, control characters, bytes that are not UTF-8).
func (h Header) HeaderStringText() string {
	return string(bytes.TrimRight(h.HeaderString[:], "\x00"))
}

// NeededHeaderLength is the header length the field control asks for: 56 plus the optional fields.
func NeededHeaderLength(fieldControl uint16) int {
	n := MinHeaderLength
	if fieldControl&HeaderFieldSecurityCredential != 0 {
		n++
	}
	if fieldControl&HeaderFieldDeviceSpecific != 0 {
		n += 8
	}
	if fieldControl&HeaderFieldHardwareVersions != 0 {
		n += 4
	}
	return n
}

// ParseHeader decodes an OTA header from b, which starts at the magic and holds at least the header
// length's worth of bytes (more is fine). It reads the optional fields the field control announces and
// skips unknown header bytes up to the header length.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < len(magicBytes) || !bytes.Equal(b[:len(magicBytes)], magicBytes) {
		return h, fmt.Errorf("%w at the start of the header", ErrNoMagic)
	}
	if len(b) < offHeaderLength+2 {
		return h, fmt.Errorf("%w: header needs %d bytes, have %d", ErrTruncated, MinHeaderLength, len(b))
	}
	le := binary.LittleEndian
	h.HeaderLength = le.Uint16(b[offHeaderLength:])
	if h.HeaderLength < MinHeaderLength {
		return h, fmt.Errorf("%w: header length %d", ErrHeaderTooShort, h.HeaderLength)
	}
	if len(b) < int(h.HeaderLength) {
		return h, fmt.Errorf("%w: header length %d, have %d bytes", ErrTruncated, h.HeaderLength, len(b))
	}
	h.HeaderVersion = le.Uint16(b[offHeaderVersion:])
	h.FieldControl = le.Uint16(b[offFieldControl:])
	if need := NeededHeaderLength(h.FieldControl); need > int(h.HeaderLength) {
		return h, fmt.Errorf("%w: field control 0x%04X needs %d header bytes, header length %d",
			ErrFieldControl, h.FieldControl, need, h.HeaderLength)
	}
	h.ManufacturerCode = le.Uint16(b[offManufacturer:])
	h.ImageType = le.Uint16(b[offImageType:])
	h.FileVersion = le.Uint32(b[offFileVersion:])
	h.StackVersion = le.Uint16(b[offStackVersion:])
	copy(h.HeaderString[:], b[offHeaderString:offTotalImageSize])
	h.TotalImageSize = le.Uint32(b[offTotalImageSize:])
	p := MinHeaderLength
	if h.FieldControl&HeaderFieldSecurityCredential != 0 {
		h.SecurityCredentialVersion = b[p]
		p++
	}
	if h.FieldControl&HeaderFieldDeviceSpecific != 0 {
		h.UpgradeFileDestination = zcl.IEEE(le.Uint64(b[p:]))
		p += 8
	}
	if h.FieldControl&HeaderFieldHardwareVersions != 0 {
		h.MinHardwareVersion = le.Uint16(b[p:])
		h.MaxHardwareVersion = le.Uint16(b[p+2:])
	}
	if h.TotalImageSize < uint32(h.HeaderLength) {
		return h, fmt.Errorf("%w: total image size %d, header length %d", ErrTotalImageSize, h.TotalImageSize, h.HeaderLength)
	}
	return h, nil
}

// AppendTo appends the header as it is stored in a file: the fixed fields, the optional fields the field
// control announces, then zero bytes up to HeaderLength when HeaderLength is longer than the fields need.
// HeaderLength and TotalImageSize are written as they are; Build computes them.
func (h Header) AppendTo(dst []byte) []byte {
	le := binary.LittleEndian
	start := len(dst)
	dst = append(dst, magicBytes...)
	dst = le.AppendUint16(dst, h.HeaderVersion)
	dst = le.AppendUint16(dst, h.HeaderLength)
	dst = le.AppendUint16(dst, h.FieldControl)
	dst = le.AppendUint16(dst, h.ManufacturerCode)
	dst = le.AppendUint16(dst, h.ImageType)
	dst = le.AppendUint32(dst, h.FileVersion)
	dst = le.AppendUint16(dst, h.StackVersion)
	dst = append(dst, h.HeaderString[:]...)
	dst = le.AppendUint32(dst, h.TotalImageSize)
	if h.FieldControl&HeaderFieldSecurityCredential != 0 {
		dst = append(dst, h.SecurityCredentialVersion)
	}
	if h.FieldControl&HeaderFieldDeviceSpecific != 0 {
		dst = le.AppendUint64(dst, uint64(h.UpgradeFileDestination))
	}
	if h.FieldControl&HeaderFieldHardwareVersions != 0 {
		dst = le.AppendUint16(dst, h.MinHardwareVersion)
		dst = le.AppendUint16(dst, h.MaxHardwareVersion)
	}
	for len(dst)-start < int(h.HeaderLength) {
		dst = append(dst, 0)
	}
	return dst
}

// ParseBytes parses an OTA file held in memory. See Parse.
func ParseBytes(b []byte) (*File, error) {
	return Parse(bytes.NewReader(b), int64(len(b)))
}

// Parse parses an OTA upgrade file of size bytes read through r. It finds the first magic anywhere in the
// file (vendor wrappers put it after a prefix), decodes the header with its optional fields, checks that
// the whole OTA image is in the file, and lists the sub-elements leniently (see Layout). It refuses a file
// with no magic, a header that contradicts itself, or an image that runs past the end of the file; the
// error wraps ErrNoMagic, ErrHeaderTooShort, ErrFieldControl, ErrTotalImageSize or ErrTruncated.
// A file whose header is sound is never refused for its sub-elements.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("OTA file: negative size %d", size)
	}
	off, err := findMagic(r, size)
	if err != nil {
		return nil, err
	}
	avail := size - off
	// Read the fixed header first, then the rest of a longer header.
	head := make([]byte, min(avail, MinHeaderLength))
	if err := readFull(r, head, off); err != nil {
		return nil, fmt.Errorf("read OTA header at offset %d: %w", off, err)
	}
	if len(head) >= offHeaderLength+2 {
		if hl := binary.LittleEndian.Uint16(head[offHeaderLength:]); hl < MinHeaderLength {
			return nil, fmt.Errorf("%w: header length %d at offset %d", ErrHeaderTooShort, hl, off)
		} else if int64(hl) > avail {
			return nil, fmt.Errorf("%w: header length %d from offset %d, file has %d (%d bytes missing)",
				ErrTruncated, hl, off, avail, int64(hl)-avail)
		} else if hl > MinHeaderLength {
			head = make([]byte, hl)
			if err := readFull(r, head, off); err != nil {
				return nil, fmt.Errorf("read OTA header at offset %d: %w", off, err)
			}
		}
	}
	if avail < MinHeaderLength {
		return nil, fmt.Errorf("%w: header needs %d bytes from offset %d, file has %d (%d bytes missing)",
			ErrTruncated, MinHeaderLength, off, avail, MinHeaderLength-avail)
	}
	h, err := ParseHeader(head)
	if err != nil {
		return nil, fmt.Errorf("OTA header at offset %d: %w", off, err)
	}
	if int64(h.TotalImageSize) > avail {
		return nil, fmt.Errorf("%w: header says %d bytes from offset %d, file has %d (%d bytes missing)",
			ErrTruncated, h.TotalImageSize, off, avail, int64(h.TotalImageSize)-avail)
	}
	f := &File{Header: h, MagicOffset: off, FileLength: size}
	if err := f.parseSubElements(r); err != nil {
		return nil, err
	}
	return f, nil
}

// findMagic returns the offset of the first magic in the file, reading it in chunks.
func findMagic(r io.ReaderAt, size int64) (int64, error) {
	const chunk = 64 << 10
	overlap := int64(len(magicBytes) - 1)
	buf := make([]byte, chunk)
	for pos := int64(0); pos < size; {
		n := int(min(int64(len(buf)), size-pos))
		if err := readFull(r, buf[:n], pos); err != nil {
			return 0, fmt.Errorf("search OTA file identifier at offset %d: %w", pos, err)
		}
		if i := bytes.Index(buf[:n], magicBytes); i >= 0 {
			return pos + int64(i), nil
		}
		if pos+int64(n) >= size {
			break
		}
		pos += int64(n) - overlap
	}
	return 0, fmt.Errorf("%w in %d bytes", ErrNoMagic, size)
}

// readFull fills b from r at off; reaching the end of the data exactly is not an error.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("short read: %d of %d bytes: %w", n, len(b), io.ErrUnexpectedEOF)
	}
	return err
}

// parseSubElements sets Layout, SubElements and Unparsed: the standard layout if it tiles the image
// exactly, else the Telink layout if that does, else loose (the standard elements that fit, then the rest).
func (f *File) parseSubElements(r io.ReaderAt) error {
	start := f.MagicOffset + int64(f.Header.HeaderLength)
	end := f.MagicOffset + f.ImageSize()
	w := &windowReader{r: r, limit: end}
	std, stdStop, err := walkSubElements(w, start, end, false)
	if err != nil {
		return err
	}
	if stdStop == end {
		f.Layout, f.SubElements = LayoutStandard, std
		return nil
	}
	tl, tlStop, err := walkSubElements(w, start, end, true)
	if err != nil {
		return err
	}
	if tlStop == end {
		f.Layout, f.SubElements = LayoutTelinkF000, tl
		return nil
	}
	f.Layout, f.SubElements = LayoutLoose, std
	f.Unparsed = &Region{Offset: stdStop, Length: end - stdStop}
	return nil
}

// telinkTag is the tag whose element header has 2 extra bytes in Telink-SDK images.
const telinkTag uint16 = 0xF000

// walkSubElements lists the complete sub-elements from start while they fit before end and returns
// where it stopped: end when the elements tile [start, end) exactly. With telink set, tag 0xF000 has an
// 8-byte element header.
func walkSubElements(w *windowReader, start, end int64, telink bool) ([]SubElement, int64, error) {
	elems := []SubElement{}
	pos := start
	for pos < end && len(elems) < MaxSubElements {
		if end-pos < 6 {
			break
		}
		b, err := w.read(pos, 6)
		if err != nil {
			return nil, 0, fmt.Errorf("read OTA sub-element at offset %d: %w", pos, err)
		}
		tag := binary.LittleEndian.Uint16(b)
		length := binary.LittleEndian.Uint32(b[2:])
		headerLen := int64(6)
		if telink && tag == telinkTag {
			headerLen = 8
		}
		next := pos + headerLen + int64(length)
		if next > end {
			break
		}
		elems = append(elems, SubElement{Tag: tag, Length: length, Offset: pos})
		pos = next
	}
	return elems, pos, nil
}

// windowReader serves small reads from a cached window of an io.ReaderAt, so walking many sub-elements
// of a file does not cost one ReadAt each.
type windowReader struct {
	r     io.ReaderAt
	limit int64 // reads never go past this offset
	buf   []byte
	start int64 // file offset of buf[0]
}

func (w *windowReader) read(off int64, n int) ([]byte, error) {
	if off >= w.start && off+int64(n) <= w.start+int64(len(w.buf)) {
		i := off - w.start
		return w.buf[i : i+int64(n)], nil
	}
	const window = 4096
	size := min(int64(window), w.limit-off)
	if size < int64(n) {
		return nil, fmt.Errorf("read %d bytes at offset %d past limit %d: %w", n, off, w.limit, io.ErrUnexpectedEOF)
	}
	if cap(w.buf) < int(size) {
		w.buf = make([]byte, window)
	}
	w.buf = w.buf[:size]
	if err := readFull(w.r, w.buf, off); err != nil {
		w.buf = w.buf[:0]
		return nil, err
	}
	w.start = off
	return w.buf[:n], nil
}
