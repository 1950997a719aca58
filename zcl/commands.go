package zcl

// Every command type below has
//
//	func (c T) AppendPayload(dst []byte) []byte   // appends the payload (no ZCL header) and returns dst
//	func DecodeT(payload []byte) (T, error)        // payload without ZCL header; *DecodeError on failure
//
// and CommandID() uint8 (the Command interface), except DefaultResponse: its CommandID field is the id of
// the command it answers, so its own id is the constant CmdDefaultResponse. The codec is in ota_codec.go
// (OTA cluster) and general.go (general commands); each decoder's comment says which lengths it accepts.

// ImageNotify (server→client 0x00). PayloadType 0..3 says which optional fields follow QueryJitter:
// 0 none, 1 +ManufacturerCode, 2 +ImageType, 3 +FileVersion.
type ImageNotify struct {
	PayloadType      uint8
	QueryJitter      uint8
	ManufacturerCode uint16
	ImageType        uint16
	FileVersion      uint32
}

// QueryNextImageRequest (client→server 0x01). FieldControl bit 0: HardwareVersion present.
type QueryNextImageRequest struct {
	FieldControl     uint8
	ManufacturerCode uint16
	ImageType        uint16
	FileVersion      uint32
	HardwareVersion  uint16
}

// HasHardwareVersion reports field-control bit 0.
func (r QueryNextImageRequest) HasHardwareVersion() bool { return r.FieldControl&0x01 != 0 }

// QueryNextImageResponse (server→client 0x02). The image fields are present only when Status is SUCCESS.
type QueryNextImageResponse struct {
	Status           Status
	ManufacturerCode uint16
	ImageType        uint16
	FileVersion      uint32
	ImageSize        uint32
}

// ImageBlockRequest (client→server 0x03). FieldControl bit 0: RequestNodeAddress present; bit 1:
// MinimumBlockPeriod present. Some devices set bit 1 but omit the two bytes (zigbee2mqtt#28217): the decoder
// accepts that and reports HasMinimumBlockPeriod() false for it.
type ImageBlockRequest struct {
	FieldControl       uint8
	ManufacturerCode   uint16
	ImageType          uint16
	FileVersion        uint32
	FileOffset         uint32
	MaxDataSize        uint8
	RequestNodeAddress IEEE
	MinimumBlockPeriod uint16
	// minimumBlockPeriodMissing is set by the decoder when bit 1 is set but the field is absent.
	minimumBlockPeriodMissing bool
}

// HasRequestNodeAddress reports field-control bit 0.
func (r ImageBlockRequest) HasRequestNodeAddress() bool { return r.FieldControl&0x01 != 0 }

// HasMinimumBlockPeriod reports whether the frame carried a MinimumBlockPeriod.
func (r ImageBlockRequest) HasMinimumBlockPeriod() bool {
	return r.FieldControl&0x02 != 0 && !r.minimumBlockPeriodMissing
}

// ImagePageRequest (client→server 0x04). FieldControl bit 0: RequestNodeAddress present.
// ResponseSpacing is in milliseconds.
type ImagePageRequest struct {
	FieldControl       uint8
	ManufacturerCode   uint16
	ImageType          uint16
	FileVersion        uint32
	FileOffset         uint32
	MaxDataSize        uint8
	PageSize           uint16
	ResponseSpacing    uint16
	RequestNodeAddress IEEE
}

// HasRequestNodeAddress reports field-control bit 0.
func (r ImagePageRequest) HasRequestNodeAddress() bool { return r.FieldControl&0x01 != 0 }

// ImageBlockResponse (server→client 0x05) in its three forms, chosen by Status:
// SUCCESS: image id, FileOffset and Data (DataSize = len(Data), at most 255);
// WAIT_FOR_DATA: CurrentTime, RequestTime and, when HasMinimumBlockPeriod, MinimumBlockPeriod;
// ABORT (or any other status): the status byte only.
type ImageBlockResponse struct {
	Status                Status
	ManufacturerCode      uint16
	ImageType             uint16
	FileVersion           uint32
	FileOffset            uint32
	Data                  []byte // decoded Data aliases the payload
	CurrentTime           uint32
	RequestTime           uint32
	MinimumBlockPeriod    uint16
	HasMinimumBlockPeriod bool
}

// UpgradeEndRequest (client→server 0x06). The image id is present on the air in every form; the decoder
// tolerates a 1-byte payload (status only) when Status is not SUCCESS, as the Silicon Labs server does.
type UpgradeEndRequest struct {
	Status           Status
	ManufacturerCode uint16
	ImageType        uint16
	FileVersion      uint32
}

// UpgradeEndResponse (server→client 0x07). No status byte. CurrentTime 0 makes UpgradeTime an offset in
// seconds from now; UpgradeTime 0xFFFFFFFF means "wait for an upgrade command".
type UpgradeEndResponse struct {
	ManufacturerCode uint16
	ImageType        uint16
	FileVersion      uint32
	CurrentTime      uint32
	UpgradeTime      uint32
}

// QueryDeviceSpecificFileRequest (client→server 0x08).
type QueryDeviceSpecificFileRequest struct {
	RequestNodeAddress IEEE
	ManufacturerCode   uint16
	ImageType          uint16
	FileVersion        uint32
	ZigbeeStackVersion uint16
}

// QueryDeviceSpecificFileResponse (server→client 0x09); same layout as QueryNextImageResponse.
type QueryDeviceSpecificFileResponse struct {
	Status           Status
	ManufacturerCode uint16
	ImageType        uint16
	FileVersion      uint32
	ImageSize        uint32
}

// DefaultResponse (global 0x0B).
type DefaultResponse struct {
	CommandID uint8
	Status    Status
}

// ReadAttributes (global 0x00).
type ReadAttributes struct {
	AttributeIDs []uint16
}

// AttributeValue is a typed attribute value. Integers (uint8/16/24/32, enum8/16, bitmap8, bool, IEEE) are
// in Uint; character strings in String.
type AttributeValue struct {
	Type   DataType
	Uint   uint64
	String string
}

// ReadAttributeRecord is one record of a Read Attributes Response: the value is present only when Status is
// SUCCESS.
type ReadAttributeRecord struct {
	AttributeID uint16
	Status      Status
	Value       AttributeValue
}

// ReadAttributesResponse (global 0x01).
type ReadAttributesResponse struct {
	Records []ReadAttributeRecord
}
