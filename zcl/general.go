package zcl

import "fmt"

// Encoding and decoding of the general (profile-wide) commands otabridge uses: Default Response, Read
// Attributes and Read Attributes Response, with the attribute values of the types in types.go.

// dataTypeNames are the snake_case names Describe and MarshalText use.
var dataTypeNames = map[DataType]string{
	TypeNoData:     "no_data",
	TypeBool:       "bool",
	TypeBitmap8:    "bitmap8",
	TypeUint8:      "uint8",
	TypeUint16:     "uint16",
	TypeUint24:     "uint24",
	TypeUint32:     "uint32",
	TypeEnum8:      "enum8",
	TypeEnum16:     "enum16",
	TypeCharString: "char_string",
	TypeIEEE:       "ieee_address",
}

// String gives the snake_case name of a supported type ("uint32", "char_string", "ieee_address") or
// "0x%02x" for any other.
func (t DataType) String() string {
	if name, ok := dataTypeNames[t]; ok {
		return name
	}
	return fmt.Sprintf("0x%02x", uint8(t))
}

// MarshalText makes data types JSON strings.
func (t DataType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Supported reports whether this package can encode and decode values of type t.
func (t DataType) Supported() bool {
	_, ok := dataTypeNames[t]
	return ok
}

// fixedSize is the value size of the fixed-size types; char strings and unknown types give -1.
func (t DataType) fixedSize() int {
	switch t {
	case TypeNoData:
		return 0
	case TypeBool, TypeBitmap8, TypeUint8, TypeEnum8:
		return 1
	case TypeUint16, TypeEnum16:
		return 2
	case TypeUint24:
		return 3
	case TypeUint32:
		return 4
	case TypeIEEE:
		return 8
	}
	return -1
}

// MaxCharStringLength is the longest character string a ZCL length byte can announce (0xFF means invalid).
const MaxCharStringLength = 254

// BoolValue is a bool attribute value (1 or 0).
func BoolValue(b bool) AttributeValue {
	v := AttributeValue{Type: TypeBool}
	if b {
		v.Uint = 1
	}
	return v
}

// Uint8Value is a uint8 attribute value.
func Uint8Value(v uint8) AttributeValue { return AttributeValue{Type: TypeUint8, Uint: uint64(v)} }

// Uint16Value is a uint16 attribute value.
func Uint16Value(v uint16) AttributeValue { return AttributeValue{Type: TypeUint16, Uint: uint64(v)} }

// Uint32Value is a uint32 attribute value.
func Uint32Value(v uint32) AttributeValue { return AttributeValue{Type: TypeUint32, Uint: uint64(v)} }

// Enum8Value is an enum8 attribute value.
func Enum8Value(v uint8) AttributeValue { return AttributeValue{Type: TypeEnum8, Uint: uint64(v)} }

// CharStringValue is a character string attribute value.
func CharStringValue(s string) AttributeValue { return AttributeValue{Type: TypeCharString, String: s} }

// IEEEValue is an IEEE address (EUI64) attribute value.
func IEEEValue(a IEEE) AttributeValue { return AttributeValue{Type: TypeIEEE, Uint: uint64(a)} }

// AppendTo appends the data type byte and the value, as in a Read Attributes Response record.
func (v AttributeValue) AppendTo(dst []byte) []byte {
	return v.AppendValue(append(dst, uint8(v.Type)))
}

// AppendValue appends the value alone in the layout of v.Type: integers little-endian in the type's size
// (Uint truncated to it), a character string as length byte and bytes (cut to MaxCharStringLength bytes).
// An unsupported type appends nothing.
func (v AttributeValue) AppendValue(dst []byte) []byte {
	switch v.Type {
	case TypeCharString:
		s := v.String
		if len(s) > MaxCharStringLength {
			s = s[:MaxCharStringLength]
		}
		dst = append(dst, uint8(len(s)))
		return append(dst, s...)
	case TypeIEEE:
		return appendIEEE(dst, IEEE(v.Uint))
	}
	switch v.Type.fixedSize() {
	case 1:
		dst = append(dst, uint8(v.Uint))
	case 2:
		dst = appendU16(dst, uint16(v.Uint))
	case 3:
		dst = appendU24(dst, uint32(v.Uint))
	case 4:
		dst = appendU32(dst, uint32(v.Uint))
	}
	return dst
}

// readValue reads a value of type t; an unsupported type is an ErrInvalid on typeField.
func (r *reader) readValue(t DataType, typeField string, typeOffset int) AttributeValue {
	v := AttributeValue{Type: t}
	switch t {
	case TypeNoData:
	case TypeBool, TypeBitmap8, TypeUint8, TypeEnum8:
		v.Uint = uint64(r.u8("value"))
	case TypeUint16, TypeEnum16:
		v.Uint = uint64(r.u16("value"))
	case TypeUint24:
		v.Uint = uint64(r.u24("value"))
	case TypeUint32:
		v.Uint = uint64(r.u32("value"))
	case TypeIEEE:
		v.Uint = uint64(r.ieee("value"))
	case TypeCharString:
		n := r.u8("string_length")
		if n != 0xFF { // 0xFF: invalid string, no characters follow
			v.String = string(r.take("value", int(n)))
		}
	default:
		if r.err == nil {
			r.off = typeOffset
			r.fail(typeField, invalidf("unsupported data type 0x%02x", uint8(t)))
		}
	}
	return v
}

// AttributeRecord is a SUCCESS record carrying value v.
func AttributeRecord(id uint16, v AttributeValue) ReadAttributeRecord {
	return ReadAttributeRecord{AttributeID: id, Status: StatusSuccess, Value: v}
}

// AttributeErrorRecord is a record with a non-SUCCESS status (e.g. UNSUPPORTED_ATTRIBUTE) and no value.
func AttributeErrorRecord(id uint16, status Status) ReadAttributeRecord {
	return ReadAttributeRecord{AttributeID: id, Status: status}
}

// AppendTo appends the record: attribute id, status and, when the status is SUCCESS, type and value.
func (rec ReadAttributeRecord) AppendTo(dst []byte) []byte {
	dst = appendU16(dst, rec.AttributeID)
	dst = append(dst, uint8(rec.Status))
	if rec.Status == StatusSuccess {
		dst = rec.Value.AppendTo(dst)
	}
	return dst
}

// CommandID of ReadAttributes.
func (ReadAttributes) CommandID() uint8 { return CmdReadAttributes }

// CommandID of ReadAttributesResponse.
func (ReadAttributesResponse) CommandID() uint8 { return CmdReadAttributesResponse }

// AppendPayload writes the command id answered and the status.
func (c DefaultResponse) AppendPayload(dst []byte) []byte {
	return append(dst, c.CommandID, uint8(c.Status))
}

// DecodeDefaultResponse decodes 2 bytes; trailing bytes are ignored.
func DecodeDefaultResponse(payload []byte) (DefaultResponse, error) {
	r := reader{frame: "default_response", b: payload}
	c := DefaultResponse{CommandID: r.u8("command_id"), Status: Status(r.u8("status"))}
	if r.err != nil {
		return DefaultResponse{}, r.err
	}
	return c, nil
}

// AppendPayload writes the attribute ids.
func (c ReadAttributes) AppendPayload(dst []byte) []byte {
	for _, id := range c.AttributeIDs {
		dst = appendU16(dst, id)
	}
	return dst
}

// DecodeReadAttributes decodes a list of 16-bit attribute ids filling the payload; an odd byte at the end
// is a short "read_attributes.attribute_id". An empty payload gives no ids.
func DecodeReadAttributes(payload []byte) (ReadAttributes, error) {
	r := reader{frame: "read_attributes", b: payload}
	var c ReadAttributes
	for r.err == nil && r.remaining() > 0 {
		id := r.u16("attribute_id")
		if r.err == nil {
			c.AttributeIDs = append(c.AttributeIDs, id)
		}
	}
	if r.err != nil {
		return ReadAttributes{}, r.err
	}
	return c, nil
}

// AppendPayload writes the records.
func (c ReadAttributesResponse) AppendPayload(dst []byte) []byte {
	for _, rec := range c.Records {
		dst = rec.AppendTo(dst)
	}
	return dst
}

// DecodeReadAttributesResponse decodes records filling the payload: attribute id, status and, for
// SUCCESS, data type and value. A character string of length 0xFF (invalid) decodes as "". There is no
// trailing-byte tolerance: the records fill the frame, so a cut record is an error. Errors inside a record
// name its attribute id, e.g. "read_attributes_response.attribute_0x4000.data_type" for an unsupported
// data type.
func DecodeReadAttributesResponse(payload []byte) (ReadAttributesResponse, error) {
	const frame = "read_attributes_response"
	r := reader{frame: frame, b: payload}
	var c ReadAttributesResponse
	for r.err == nil && r.remaining() > 0 {
		rec := ReadAttributeRecord{AttributeID: r.u16("attribute_id")}
		if r.err != nil {
			break
		}
		r.frame = fmt.Sprintf("%s.attribute_0x%04x", frame, rec.AttributeID)
		rec.Status = Status(r.u8("status"))
		if r.err == nil && rec.Status == StatusSuccess {
			typeOffset := r.off
			rec.Value = r.readValue(DataType(r.u8("data_type")), "data_type", typeOffset)
		}
		r.frame = frame
		if r.err == nil {
			c.Records = append(c.Records, rec)
		}
	}
	if r.err != nil {
		return ReadAttributesResponse{}, r.err
	}
	return c, nil
}
