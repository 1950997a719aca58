package zcl

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrUnknownCommand is wrapped by Describe's error for a frame whose command it does not know.
var ErrUnknownCommand = errors.New("not known")

// Description is one ZCL frame in the JSON form of `otabridge zcl decode` (DESIGN.md "Command line").
type Description struct {
	FrameType              FrameType `json:"frame_type"`
	ManufacturerSpecific   bool      `json:"manufacturer_specific"`
	Direction              Direction `json:"direction"`
	DisableDefaultResponse bool      `json:"disable_default_response"`
	ManufacturerCode       *uint16   `json:"manufacturer_code,omitempty"` // only in manufacturer-specific frames
	TSN                    uint8     `json:"tsn"`
	CommandID              uint8     `json:"command_id"`
	Command                string    `json:"command"`
	Fields                 Fields    `json:"fields"`
}

// Field is one named field of a described command. Value is a Go value whose JSON form is the one the
// command line prints: an unsigned integer, a Status or IEEE (strings), a hex string for data, []uint16 for
// attribute ids, []RecordDescription for records.
type Field struct {
	Name  string
	Value any
}

// Fields are the fields of a command in frame order; they marshal as one JSON object in that order.
type Fields []Field

// MarshalJSON writes the fields as a JSON object, keeping their order.
func (fs Fields) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(f.Name)
		if err != nil {
			return nil, err
		}
		value, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		b.Write(name)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Get returns the value of the named field, or nil when the frame did not carry it.
func (fs Fields) Get(name string) any {
	for _, f := range fs {
		if f.Name == name {
			return f.Value
		}
	}
	return nil
}

// RecordDescription is one record of a described Read Attributes Response. Type and Value are present
// only for a SUCCESS record; Value is a JSON integer, a string (char string, IEEE as 0x + 16 hex digits)
// or, for type bool holding 0 or 1, a JSON boolean.
type RecordDescription struct {
	AttributeID uint16    `json:"attribute_id"`
	Status      Status    `json:"status"`
	Type        *DataType `json:"type,omitempty"`
	Value       any       `json:"value,omitempty"`
}

// otaCommand is how Describe knows an OTA cluster command: its name and the direction it travels.
type otaCommand struct {
	name string
	dir  Direction
}

var otaCommands = map[uint8]otaCommand{
	CmdImageNotify:                     {"image_notify", ServerToClient},
	CmdQueryNextImageRequest:           {"query_next_image_request", ClientToServer},
	CmdQueryNextImageResponse:          {"query_next_image_response", ServerToClient},
	CmdImageBlockRequest:               {"image_block_request", ClientToServer},
	CmdImagePageRequest:                {"image_page_request", ClientToServer},
	CmdImageBlockResponse:              {"image_block_response", ServerToClient},
	CmdUpgradeEndRequest:               {"upgrade_end_request", ClientToServer},
	CmdUpgradeEndResponse:              {"upgrade_end_response", ServerToClient},
	CmdQueryDeviceSpecificFileRequest:  {"query_device_specific_file_request", ClientToServer},
	CmdQueryDeviceSpecificFileResponse: {"query_device_specific_file_response", ServerToClient},
}

var globalCommands = map[uint8]string{
	CmdReadAttributes:         "read_attributes",
	CmdReadAttributesResponse: "read_attributes_response",
	CmdDefaultResponse:        "default_response",
}

// Describe decodes one ZCL frame received on (or sent to) cluster and describes it for people reading
// sniffer traces and debug logs. Global commands (Read Attributes, Read Attributes Response, Default
// Response) are known on every cluster, with or without a manufacturer code; cluster-specific commands
// only on the OTA cluster, not manufacturer-specific, and in the direction the OTA spec gives each id.
// Errors: a *DecodeError naming the field for a frame that does not decode (also for a reserved frame
// type, on "header.frame_control"); an error wrapping ErrUnknownCommand for a command it does not know or
// that travels the wrong way.
func Describe(cluster uint16, frame []byte) (Description, error) {
	h, payload, err := DecodeHeader(frame)
	if err != nil {
		return Description{}, err
	}
	if h.FrameType != FrameTypeGlobal && h.FrameType != FrameTypeCluster {
		return Description{}, &DecodeError{Field: "header.frame_control", Offset: 0,
			Err: invalidf("reserved frame type %d", uint8(h.FrameType))}
	}
	d := Description{
		FrameType:              h.FrameType,
		ManufacturerSpecific:   h.ManufacturerSpecific,
		Direction:              h.Direction,
		DisableDefaultResponse: h.DisableDefaultResponse,
		TSN:                    h.TSN,
		CommandID:              h.CommandID,
	}
	if h.ManufacturerSpecific {
		code := h.ManufacturerCode
		d.ManufacturerCode = &code
	}
	if h.FrameType == FrameTypeGlobal {
		name, ok := globalCommands[h.CommandID]
		if !ok {
			return Description{}, fmt.Errorf("zcl: global command 0x%02x is %w", h.CommandID, ErrUnknownCommand)
		}
		d.Command = name
		d.Fields, err = describeGlobal(h.CommandID, payload)
		if err != nil {
			return Description{}, err
		}
		return d, nil
	}
	if cluster != ClusterOTA {
		return Description{}, fmt.Errorf("zcl: cluster 0x%04x command 0x%02x is %w", cluster, h.CommandID, ErrUnknownCommand)
	}
	if h.ManufacturerSpecific {
		return Description{}, fmt.Errorf("zcl: cluster 0x%04x manufacturer-specific command 0x%02x (manufacturer 0x%04x) is %w",
			cluster, h.CommandID, h.ManufacturerCode, ErrUnknownCommand)
	}
	cmd, ok := otaCommands[h.CommandID]
	if !ok {
		return Description{}, fmt.Errorf("zcl: cluster 0x%04x command 0x%02x is %w", cluster, h.CommandID, ErrUnknownCommand)
	}
	if cmd.dir != h.Direction {
		return Description{}, fmt.Errorf("zcl: cluster 0x%04x command 0x%02x %s is %w (%s is %s)",
			cluster, h.CommandID, h.Direction, ErrUnknownCommand, cmd.name, cmd.dir)
	}
	d.Command = cmd.name
	d.Fields, err = describeOTA(h.CommandID, payload)
	if err != nil {
		return Description{}, err
	}
	return d, nil
}

func describeGlobal(id uint8, payload []byte) (Fields, error) {
	switch id {
	case CmdReadAttributes:
		c, err := DecodeReadAttributes(payload)
		if err != nil {
			return nil, err
		}
		ids := c.AttributeIDs
		if ids == nil {
			ids = []uint16{}
		}
		return Fields{{"attribute_ids", ids}}, nil
	case CmdReadAttributesResponse:
		c, err := DecodeReadAttributesResponse(payload)
		if err != nil {
			return nil, err
		}
		records := make([]RecordDescription, 0, len(c.Records))
		for _, rec := range c.Records {
			records = append(records, describeRecord(rec))
		}
		return Fields{{"records", records}}, nil
	case CmdDefaultResponse:
		c, err := DecodeDefaultResponse(payload)
		if err != nil {
			return nil, err
		}
		return Fields{{"command_id", c.CommandID}, {"status", c.Status}}, nil
	}
	return nil, fmt.Errorf("zcl: global command 0x%02x is %w", id, ErrUnknownCommand)
}

func describeRecord(rec ReadAttributeRecord) RecordDescription {
	d := RecordDescription{AttributeID: rec.AttributeID, Status: rec.Status}
	if rec.Status != StatusSuccess {
		return d
	}
	t := rec.Value.Type
	d.Type = &t
	switch t {
	case TypeNoData:
	case TypeCharString:
		d.Value = rec.Value.String
	case TypeIEEE:
		d.Value = IEEE(rec.Value.Uint)
	case TypeBool:
		switch rec.Value.Uint {
		case 0:
			d.Value = false
		case 1:
			d.Value = true
		default:
			d.Value = rec.Value.Uint // 0xFF: invalid
		}
	default:
		d.Value = rec.Value.Uint
	}
	return d
}

// imageIDFields are the three fields that name an image, in frame order.
func imageIDFields(mfr, imageType uint16, version uint32) Fields {
	return Fields{{"manufacturer_code", mfr}, {"image_type", imageType}, {"file_version", version}}
}

func describeOTA(id uint8, payload []byte) (Fields, error) {
	switch id {
	case CmdImageNotify:
		c, err := DecodeImageNotify(payload)
		if err != nil {
			return nil, err
		}
		fs := Fields{{"payload_type", c.PayloadType}, {"query_jitter", c.QueryJitter}}
		if c.PayloadType >= 1 {
			fs = append(fs, Field{"manufacturer_code", c.ManufacturerCode})
		}
		if c.PayloadType >= 2 {
			fs = append(fs, Field{"image_type", c.ImageType})
		}
		if c.PayloadType >= 3 {
			fs = append(fs, Field{"file_version", c.FileVersion})
		}
		return fs, nil
	case CmdQueryNextImageRequest:
		c, err := DecodeQueryNextImageRequest(payload)
		if err != nil {
			return nil, err
		}
		fs := append(Fields{{"field_control", c.FieldControl}}, imageIDFields(c.ManufacturerCode, c.ImageType, c.FileVersion)...)
		if c.HasHardwareVersion() {
			fs = append(fs, Field{"hardware_version", c.HardwareVersion})
		}
		return fs, nil
	case CmdQueryNextImageResponse, CmdQueryDeviceSpecificFileResponse:
		name := "query_next_image_response"
		if id == CmdQueryDeviceSpecificFileResponse {
			name = "query_device_specific_file_response"
		}
		c, err := decodeImageOffer(name, payload)
		if err != nil {
			return nil, err
		}
		fs := Fields{{"status", c.Status}}
		if c.Status == StatusSuccess {
			fs = append(fs, imageIDFields(c.ManufacturerCode, c.ImageType, c.FileVersion)...)
			fs = append(fs, Field{"image_size", c.ImageSize})
		}
		return fs, nil
	case CmdImageBlockRequest:
		c, err := DecodeImageBlockRequest(payload)
		if err != nil {
			return nil, err
		}
		fs := append(Fields{{"field_control", c.FieldControl}}, imageIDFields(c.ManufacturerCode, c.ImageType, c.FileVersion)...)
		fs = append(fs, Field{"file_offset", c.FileOffset}, Field{"maximum_data_size", c.MaxDataSize})
		if c.HasRequestNodeAddress() {
			fs = append(fs, Field{"request_node_address", c.RequestNodeAddress})
		}
		if c.HasMinimumBlockPeriod() {
			fs = append(fs, Field{"minimum_block_period", c.MinimumBlockPeriod})
		}
		return fs, nil
	case CmdImagePageRequest:
		c, err := DecodeImagePageRequest(payload)
		if err != nil {
			return nil, err
		}
		fs := append(Fields{{"field_control", c.FieldControl}}, imageIDFields(c.ManufacturerCode, c.ImageType, c.FileVersion)...)
		fs = append(fs, Field{"file_offset", c.FileOffset}, Field{"maximum_data_size", c.MaxDataSize},
			Field{"page_size", c.PageSize}, Field{"response_spacing", c.ResponseSpacing})
		if c.HasRequestNodeAddress() {
			fs = append(fs, Field{"request_node_address", c.RequestNodeAddress})
		}
		return fs, nil
	case CmdImageBlockResponse:
		c, err := DecodeImageBlockResponse(payload)
		if err != nil {
			return nil, err
		}
		fs := Fields{{"status", c.Status}}
		switch c.Status {
		case StatusSuccess:
			fs = append(fs, imageIDFields(c.ManufacturerCode, c.ImageType, c.FileVersion)...)
			fs = append(fs, Field{"file_offset", c.FileOffset}, Field{"data", hex.EncodeToString(c.Data)})
		case StatusWaitForData:
			fs = append(fs, Field{"current_time", c.CurrentTime}, Field{"request_time", c.RequestTime})
			if c.HasMinimumBlockPeriod {
				fs = append(fs, Field{"minimum_block_period", c.MinimumBlockPeriod})
			}
		}
		return fs, nil
	case CmdUpgradeEndRequest:
		c, err := DecodeUpgradeEndRequest(payload)
		if err != nil {
			return nil, err
		}
		fs := Fields{{"status", c.Status}}
		if len(payload) > 1 { // the status-only form carries no image id
			fs = append(fs, imageIDFields(c.ManufacturerCode, c.ImageType, c.FileVersion)...)
		}
		return fs, nil
	case CmdUpgradeEndResponse:
		c, err := DecodeUpgradeEndResponse(payload)
		if err != nil {
			return nil, err
		}
		fs := imageIDFields(c.ManufacturerCode, c.ImageType, c.FileVersion)
		return append(fs, Field{"current_time", c.CurrentTime}, Field{"upgrade_time", c.UpgradeTime}), nil
	case CmdQueryDeviceSpecificFileRequest:
		c, err := DecodeQueryDeviceSpecificFileRequest(payload)
		if err != nil {
			return nil, err
		}
		fs := Fields{{"request_node_address", c.RequestNodeAddress}}
		fs = append(fs, imageIDFields(c.ManufacturerCode, c.ImageType, c.FileVersion)...)
		return append(fs, Field{"zigbee_stack_version", c.ZigbeeStackVersion}), nil
	}
	return nil, fmt.Errorf("zcl: cluster 0x%04x command 0x%02x is %w", ClusterOTA, id, ErrUnknownCommand)
}
