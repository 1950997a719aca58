package zcl

// Encoding and decoding of the ten OTA Upgrade cluster commands (reference/zcl-ota.md §2.2).
//
// Trailing bytes: every decoder below ignores bytes after the last field its form defines. The ZCL lets
// later revisions append fields to a command and tells receivers to ignore what they do not know, and real
// senders do append: zsmartsystems sends zeroed image fields after a non-SUCCESS Query Next Image Response,
// and a device that sets Image Block Request field-control bit 1 without the two bytes may still leave one
// odd byte. Decoding is therefore "the fields the frame's own control bits and status require, in full, or
// a *DecodeError naming the first one that is cut short"; decode → encode → decode gives the same value.

// CommandID of ImageNotify.
func (ImageNotify) CommandID() uint8 { return CmdImageNotify }

// CommandID of QueryNextImageRequest.
func (QueryNextImageRequest) CommandID() uint8 { return CmdQueryNextImageRequest }

// CommandID of QueryNextImageResponse.
func (QueryNextImageResponse) CommandID() uint8 { return CmdQueryNextImageResponse }

// CommandID of ImageBlockRequest.
func (ImageBlockRequest) CommandID() uint8 { return CmdImageBlockRequest }

// CommandID of ImagePageRequest.
func (ImagePageRequest) CommandID() uint8 { return CmdImagePageRequest }

// CommandID of ImageBlockResponse.
func (ImageBlockResponse) CommandID() uint8 { return CmdImageBlockResponse }

// CommandID of UpgradeEndRequest.
func (UpgradeEndRequest) CommandID() uint8 { return CmdUpgradeEndRequest }

// CommandID of UpgradeEndResponse.
func (UpgradeEndResponse) CommandID() uint8 { return CmdUpgradeEndResponse }

// CommandID of QueryDeviceSpecificFileRequest.
func (QueryDeviceSpecificFileRequest) CommandID() uint8 { return CmdQueryDeviceSpecificFileRequest }

// CommandID of QueryDeviceSpecificFileResponse.
func (QueryDeviceSpecificFileResponse) CommandID() uint8 { return CmdQueryDeviceSpecificFileResponse }

// Image Notify payload types: each adds one field to the one before.
const (
	ImageNotifyPayloadJitter       uint8 = 0 // query jitter only
	ImageNotifyPayloadManufacturer uint8 = 1 // + manufacturer code
	ImageNotifyPayloadImageType    uint8 = 2 // + image type
	ImageNotifyPayloadFileVersion  uint8 = 3 // + new file version
)

// AppendPayload writes payload type, query jitter and the optional fields the payload type requires. A
// payload type above 3 is not valid; it is written as given, followed by the fields of type 3.
func (c ImageNotify) AppendPayload(dst []byte) []byte {
	dst = append(dst, c.PayloadType, c.QueryJitter)
	if c.PayloadType >= 1 {
		dst = appendU16(dst, c.ManufacturerCode)
	}
	if c.PayloadType >= 2 {
		dst = appendU16(dst, c.ImageType)
	}
	if c.PayloadType >= 3 {
		dst = appendU32(dst, c.FileVersion)
	}
	return dst
}

// DecodeImageNotify decodes 2, 4, 6 or 10 bytes as the payload type says; a payload type above 3 is an
// ErrInvalid naming "image_notify.payload_type". The query jitter is not range-checked (clients do that).
// Trailing bytes are ignored.
func DecodeImageNotify(payload []byte) (ImageNotify, error) {
	r := reader{frame: "image_notify", b: payload}
	var c ImageNotify
	c.PayloadType = r.u8("payload_type")
	if r.err == nil && c.PayloadType > 3 {
		r.off--
		r.fail("payload_type", invalidf("payload type %d, want 0 to 3", c.PayloadType))
	}
	c.QueryJitter = r.u8("query_jitter")
	if c.PayloadType >= 1 {
		c.ManufacturerCode = r.u16("manufacturer_code")
	}
	if c.PayloadType >= 2 {
		c.ImageType = r.u16("image_type")
	}
	if c.PayloadType >= 3 {
		c.FileVersion = r.u32("file_version")
	}
	if r.err != nil {
		return ImageNotify{}, r.err
	}
	return c, nil
}

// AppendPayload writes the 9 fixed bytes and the hardware version when field-control bit 0 is set.
func (c QueryNextImageRequest) AppendPayload(dst []byte) []byte {
	dst = append(dst, c.FieldControl)
	dst = appendU16(dst, c.ManufacturerCode)
	dst = appendU16(dst, c.ImageType)
	dst = appendU32(dst, c.FileVersion)
	if c.HasHardwareVersion() {
		dst = appendU16(dst, c.HardwareVersion)
	}
	return dst
}

// DecodeQueryNextImageRequest decodes 9 bytes, or 11 when field-control bit 0 announces the hardware
// version. Trailing bytes are ignored.
func DecodeQueryNextImageRequest(payload []byte) (QueryNextImageRequest, error) {
	r := reader{frame: "query_next_image_request", b: payload}
	var c QueryNextImageRequest
	c.FieldControl = r.u8("field_control")
	c.ManufacturerCode = r.u16("manufacturer_code")
	c.ImageType = r.u16("image_type")
	c.FileVersion = r.u32("file_version")
	if c.HasHardwareVersion() {
		c.HardwareVersion = r.u16("hardware_version")
	}
	if r.err != nil {
		return QueryNextImageRequest{}, r.err
	}
	return c, nil
}

// appendImageOffer writes a Query Next Image / Query Device Specific File response: the status, and the
// image fields when it is SUCCESS.
func appendImageOffer(dst []byte, status Status, mfr, imageType uint16, version, size uint32) []byte {
	dst = append(dst, uint8(status))
	if status != StatusSuccess {
		return dst
	}
	dst = appendU16(dst, mfr)
	dst = appendU16(dst, imageType)
	dst = appendU32(dst, version)
	return appendU32(dst, size)
}

// decodeImageOffer decodes what appendImageOffer writes: 1 byte, or 13 when the status is SUCCESS. Bytes
// after a non-SUCCESS status (zsmartsystems sends zeroed image fields) are ignored.
func decodeImageOffer(frame string, payload []byte) (QueryNextImageResponse, error) {
	r := reader{frame: frame, b: payload}
	var c QueryNextImageResponse
	c.Status = Status(r.u8("status"))
	if r.err == nil && c.Status == StatusSuccess {
		c.ManufacturerCode = r.u16("manufacturer_code")
		c.ImageType = r.u16("image_type")
		c.FileVersion = r.u32("file_version")
		c.ImageSize = r.u32("image_size")
	}
	if r.err != nil {
		return QueryNextImageResponse{}, r.err
	}
	return c, nil
}

// AppendPayload writes the status, and the image id and size when the status is SUCCESS.
func (c QueryNextImageResponse) AppendPayload(dst []byte) []byte {
	return appendImageOffer(dst, c.Status, c.ManufacturerCode, c.ImageType, c.FileVersion, c.ImageSize)
}

// DecodeQueryNextImageResponse decodes 1 byte, or 13 when the status is SUCCESS. Bytes after a non-SUCCESS
// status are ignored (zsmartsystems appends zeroed image fields), as are bytes after a SUCCESS form.
func DecodeQueryNextImageResponse(payload []byte) (QueryNextImageResponse, error) {
	return decodeImageOffer("query_next_image_response", payload)
}

// AppendPayload writes the status, and the image id and size when the status is SUCCESS.
func (c QueryDeviceSpecificFileResponse) AppendPayload(dst []byte) []byte {
	return appendImageOffer(dst, c.Status, c.ManufacturerCode, c.ImageType, c.FileVersion, c.ImageSize)
}

// DecodeQueryDeviceSpecificFileResponse decodes 1 byte, or 13 when the status is SUCCESS; trailing bytes
// are ignored as for DecodeQueryNextImageResponse.
func DecodeQueryDeviceSpecificFileResponse(payload []byte) (QueryDeviceSpecificFileResponse, error) {
	c, err := decodeImageOffer("query_device_specific_file_response", payload)
	return QueryDeviceSpecificFileResponse(c), err
}

// AppendPayload writes the 14 fixed bytes, the request node address when field-control bit 0 is set, and
// the minimum block period when bit 1 is set (unless the request was decoded from a frame that set bit 1
// without the field, which is re-encoded the same way).
func (c ImageBlockRequest) AppendPayload(dst []byte) []byte {
	dst = append(dst, c.FieldControl)
	dst = appendU16(dst, c.ManufacturerCode)
	dst = appendU16(dst, c.ImageType)
	dst = appendU32(dst, c.FileVersion)
	dst = appendU32(dst, c.FileOffset)
	dst = append(dst, c.MaxDataSize)
	if c.HasRequestNodeAddress() {
		dst = appendIEEE(dst, c.RequestNodeAddress)
	}
	if c.HasMinimumBlockPeriod() {
		dst = appendU16(dst, c.MinimumBlockPeriod)
	}
	return dst
}

// DecodeImageBlockRequest decodes 14, 16, 22 or 24 bytes per field-control bits 0 and 1. When bit 1 is set
// but fewer than 2 bytes follow, the request is accepted without a minimum block period (the
// zigbee2mqtt#28217 quirk; HasMinimumBlockPeriod reports false) and a lone odd byte is ignored; when bit 0
// is set the request node address must be there. Trailing bytes are ignored.
func DecodeImageBlockRequest(payload []byte) (ImageBlockRequest, error) {
	r := reader{frame: "image_block_request", b: payload}
	var c ImageBlockRequest
	c.FieldControl = r.u8("field_control")
	c.ManufacturerCode = r.u16("manufacturer_code")
	c.ImageType = r.u16("image_type")
	c.FileVersion = r.u32("file_version")
	c.FileOffset = r.u32("file_offset")
	c.MaxDataSize = r.u8("maximum_data_size")
	if c.HasRequestNodeAddress() {
		c.RequestNodeAddress = r.ieee("request_node_address")
	}
	if r.err == nil && c.FieldControl&0x02 != 0 {
		if r.remaining() >= 2 {
			c.MinimumBlockPeriod = r.u16("minimum_block_period")
		} else {
			c.minimumBlockPeriodMissing = true
		}
	}
	if r.err != nil {
		return ImageBlockRequest{}, r.err
	}
	return c, nil
}

// AppendPayload writes the 18 fixed bytes and the request node address when field-control bit 0 is set.
func (c ImagePageRequest) AppendPayload(dst []byte) []byte {
	dst = append(dst, c.FieldControl)
	dst = appendU16(dst, c.ManufacturerCode)
	dst = appendU16(dst, c.ImageType)
	dst = appendU32(dst, c.FileVersion)
	dst = appendU32(dst, c.FileOffset)
	dst = append(dst, c.MaxDataSize)
	dst = appendU16(dst, c.PageSize)
	dst = appendU16(dst, c.ResponseSpacing)
	if c.HasRequestNodeAddress() {
		dst = appendIEEE(dst, c.RequestNodeAddress)
	}
	return dst
}

// DecodeImagePageRequest decodes 18 bytes, or 26 when field-control bit 0 announces the request node
// address. Trailing bytes are ignored.
func DecodeImagePageRequest(payload []byte) (ImagePageRequest, error) {
	r := reader{frame: "image_page_request", b: payload}
	var c ImagePageRequest
	c.FieldControl = r.u8("field_control")
	c.ManufacturerCode = r.u16("manufacturer_code")
	c.ImageType = r.u16("image_type")
	c.FileVersion = r.u32("file_version")
	c.FileOffset = r.u32("file_offset")
	c.MaxDataSize = r.u8("maximum_data_size")
	c.PageSize = r.u16("page_size")
	c.ResponseSpacing = r.u16("response_spacing")
	if c.HasRequestNodeAddress() {
		c.RequestNodeAddress = r.ieee("request_node_address")
	}
	if r.err != nil {
		return ImagePageRequest{}, r.err
	}
	return c, nil
}

// AppendPayload writes the form the status selects: SUCCESS → image id, file offset, data size and data
// (Data beyond 255 bytes is cut to 255, the most a data size byte can say); WAIT_FOR_DATA → current time,
// request time and, when HasMinimumBlockPeriod, the minimum block period; any other status → the status
// byte alone.
func (c ImageBlockResponse) AppendPayload(dst []byte) []byte {
	dst = append(dst, uint8(c.Status))
	switch c.Status {
	case StatusSuccess:
		data := c.Data
		if len(data) > 255 {
			data = data[:255]
		}
		dst = appendU16(dst, c.ManufacturerCode)
		dst = appendU16(dst, c.ImageType)
		dst = appendU32(dst, c.FileVersion)
		dst = appendU32(dst, c.FileOffset)
		dst = append(dst, uint8(len(data)))
		dst = append(dst, data...)
	case StatusWaitForData:
		dst = appendU32(dst, c.CurrentTime)
		dst = appendU32(dst, c.RequestTime)
		if c.HasMinimumBlockPeriod {
			dst = appendU16(dst, c.MinimumBlockPeriod)
		}
	}
	return dst
}

// DecodeImageBlockResponse decodes the form the status selects: SUCCESS → 14 bytes plus the data size the
// frame announces (a data size larger than the bytes present is a short "data"; Data aliases payload);
// WAIT_FOR_DATA → 9 bytes, or 11 with the minimum block period (the Silicon Labs client accepts both; a
// lone odd byte is ignored); any other status → the status byte. Trailing bytes are ignored.
func DecodeImageBlockResponse(payload []byte) (ImageBlockResponse, error) {
	r := reader{frame: "image_block_response", b: payload}
	var c ImageBlockResponse
	c.Status = Status(r.u8("status"))
	if r.err == nil {
		switch c.Status {
		case StatusSuccess:
			c.ManufacturerCode = r.u16("manufacturer_code")
			c.ImageType = r.u16("image_type")
			c.FileVersion = r.u32("file_version")
			c.FileOffset = r.u32("file_offset")
			size := r.u8("data_size")
			c.Data = r.take("data", int(size))
		case StatusWaitForData:
			c.CurrentTime = r.u32("current_time")
			c.RequestTime = r.u32("request_time")
			if r.err == nil && r.remaining() >= 2 {
				c.MinimumBlockPeriod = r.u16("minimum_block_period")
				c.HasMinimumBlockPeriod = true
			}
		}
	}
	if r.err != nil {
		return ImageBlockResponse{}, r.err
	}
	return c, nil
}

// AppendPayload writes all 9 bytes, whatever the status (the layout has no short form).
func (c UpgradeEndRequest) AppendPayload(dst []byte) []byte {
	dst = append(dst, uint8(c.Status))
	dst = appendU16(dst, c.ManufacturerCode)
	dst = appendU16(dst, c.ImageType)
	return appendU32(dst, c.FileVersion)
}

// DecodeUpgradeEndRequest decodes 9 bytes. A payload of the status byte alone is accepted when the status
// is not SUCCESS (the Silicon Labs server reads the image id only on SUCCESS); the image id is then zero.
// Any other length short of 9 is an error naming the cut field. Trailing bytes are ignored.
func DecodeUpgradeEndRequest(payload []byte) (UpgradeEndRequest, error) {
	r := reader{frame: "upgrade_end_request", b: payload}
	var c UpgradeEndRequest
	c.Status = Status(r.u8("status"))
	if r.err == nil && c.Status != StatusSuccess && r.remaining() == 0 {
		return c, nil
	}
	c.ManufacturerCode = r.u16("manufacturer_code")
	c.ImageType = r.u16("image_type")
	c.FileVersion = r.u32("file_version")
	if r.err != nil {
		return UpgradeEndRequest{}, r.err
	}
	return c, nil
}

// AppendPayload writes the 16 bytes.
func (c UpgradeEndResponse) AppendPayload(dst []byte) []byte {
	dst = appendU16(dst, c.ManufacturerCode)
	dst = appendU16(dst, c.ImageType)
	dst = appendU32(dst, c.FileVersion)
	dst = appendU32(dst, c.CurrentTime)
	return appendU32(dst, c.UpgradeTime)
}

// DecodeUpgradeEndResponse decodes 16 bytes; trailing bytes are ignored.
func DecodeUpgradeEndResponse(payload []byte) (UpgradeEndResponse, error) {
	r := reader{frame: "upgrade_end_response", b: payload}
	var c UpgradeEndResponse
	c.ManufacturerCode = r.u16("manufacturer_code")
	c.ImageType = r.u16("image_type")
	c.FileVersion = r.u32("file_version")
	c.CurrentTime = r.u32("current_time")
	c.UpgradeTime = r.u32("upgrade_time")
	if r.err != nil {
		return UpgradeEndResponse{}, r.err
	}
	return c, nil
}

// AppendPayload writes the 18 bytes.
func (c QueryDeviceSpecificFileRequest) AppendPayload(dst []byte) []byte {
	dst = appendIEEE(dst, c.RequestNodeAddress)
	dst = appendU16(dst, c.ManufacturerCode)
	dst = appendU16(dst, c.ImageType)
	dst = appendU32(dst, c.FileVersion)
	return appendU16(dst, c.ZigbeeStackVersion)
}

// DecodeQueryDeviceSpecificFileRequest decodes 18 bytes; trailing bytes are ignored.
func DecodeQueryDeviceSpecificFileRequest(payload []byte) (QueryDeviceSpecificFileRequest, error) {
	r := reader{frame: "query_device_specific_file_request", b: payload}
	var c QueryDeviceSpecificFileRequest
	c.RequestNodeAddress = r.ieee("request_node_address")
	c.ManufacturerCode = r.u16("manufacturer_code")
	c.ImageType = r.u16("image_type")
	c.FileVersion = r.u32("file_version")
	c.ZigbeeStackVersion = r.u16("zigbee_stack_version")
	if r.err != nil {
		return QueryDeviceSpecificFileRequest{}, r.err
	}
	return c, nil
}
