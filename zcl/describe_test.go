package zcl

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDescribeJSON(t *testing.T) {
	tests := []struct {
		name    string
		cluster uint16
		frame   []byte
		want    string
	}{
		{
			name:    "image block request with node address and minimum block period",
			cluster: ClusterOTA,
			frame: []byte{
				0x01, 0x0A, 0x03, // FC client→server cluster, TSN 10, Image Block Request
				0x03, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, // field control 3, image id
				0x40, 0x00, 0x00, 0x00, 0x32, // offset 64, max 50
				0x78, 0x56, 0x34, 0x12, 0x00, 0x4B, 0x12, 0x00, // node address
				0xF4, 0x01, // minimum block period 500
			},
			want: `{"frame_type":"cluster","manufacturer_specific":false,"direction":"client_to_server",` +
				`"disable_default_response":false,"tsn":10,"command_id":3,"command":"image_block_request",` +
				`"fields":{"field_control":3,"manufacturer_code":4476,"image_type":10243,"file_version":587806257,` +
				`"file_offset":64,"maximum_data_size":50,"request_node_address":"0x00124b0012345678","minimum_block_period":500}}`,
		},
		{
			name:    "image block request quirk omits minimum block period",
			cluster: ClusterOTA,
			frame:   []byte{0x01, 0x0B, 0x03, 0x02, 0x7C, 0x11, 0x03, 0x28, 0x31, 0x36, 0x09, 0x23, 0x40, 0x00, 0x00, 0x00, 0x32},
			want: `{"frame_type":"cluster","manufacturer_specific":false,"direction":"client_to_server",` +
				`"disable_default_response":false,"tsn":11,"command_id":3,"command":"image_block_request",` +
				`"fields":{"field_control":2,"manufacturer_code":4476,"image_type":10243,"file_version":587806257,` +
				`"file_offset":64,"maximum_data_size":50}}`,
		},
		{
			name:    "manufacturer-specific read attributes on Basic",
			cluster: ClusterBasic,
			frame:   []byte{0x04, 0x5F, 0x11, 0x09, 0x00, 0xF7, 0xFF},
			want: `{"frame_type":"global","manufacturer_specific":true,"direction":"client_to_server",` +
				`"disable_default_response":false,"manufacturer_code":4447,"tsn":9,"command_id":0,"command":"read_attributes",` +
				`"fields":{"attribute_ids":[65527]}}`,
		},
		{
			name:    "empty read attributes",
			cluster: ClusterOTA,
			frame:   []byte{0x08, 0x01, 0x00},
			want: `{"frame_type":"global","manufacturer_specific":false,"direction":"server_to_client",` +
				`"disable_default_response":false,"tsn":1,"command_id":0,"command":"read_attributes","fields":{"attribute_ids":[]}}`,
		},
		{
			name:    "read attributes response with bool and invalid bool",
			cluster: 0x0006,
			frame:   []byte{0x18, 0x02, 0x01, 0x00, 0x00, 0x00, 0x10, 0x01, 0x01, 0x00, 0x00, 0x10, 0xFF},
			want: `{"frame_type":"global","manufacturer_specific":false,"direction":"server_to_client",` +
				`"disable_default_response":true,"tsn":2,"command_id":1,"command":"read_attributes_response",` +
				`"fields":{"records":[{"attribute_id":0,"status":"SUCCESS","type":"bool","value":true},` +
				`{"attribute_id":1,"status":"SUCCESS","type":"bool","value":255}]}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Describe(tt.cluster, tt.frame)
			if err != nil {
				t.Fatalf("Describe(% X): %v", tt.frame, err)
			}
			got, err := json.Marshal(d)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDescribeFieldsGet(t *testing.T) {
	d, err := Describe(ClusterOTA, []byte{0x19, 0x01, 0x02, 0x98})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Fields.Get("status"); got != StatusNoImageAvailable {
		t.Errorf("status = %v, want NO_IMAGE_AVAILABLE", got)
	}
	if got := d.Fields.Get("image_size"); got != nil {
		t.Errorf("image_size = %v, want absent", got)
	}
}

func TestDescribeErrors(t *testing.T) {
	tests := []struct {
		name    string
		cluster uint16
		frame   []byte
		message string
		is      error
	}{
		{"cluster command of another cluster", 0x0006, []byte{0x01, 0x0A, 0x01},
			"zcl: cluster 0x0006 command 0x01 is not known", ErrUnknownCommand},
		{"unknown OTA command", ClusterOTA, []byte{0x01, 0x0A, 0x0A},
			"zcl: cluster 0x0019 command 0x0a is not known", ErrUnknownCommand},
		{"unknown global command", ClusterOTA, []byte{0x00, 0x0A, 0x0A},
			"zcl: global command 0x0a is not known", ErrUnknownCommand},
		{"image block request sent server to client", ClusterOTA, []byte{0x19, 0x0A, 0x03},
			"zcl: cluster 0x0019 command 0x03 server_to_client is not known (image_block_request is client_to_server)", ErrUnknownCommand},
		{"image notify sent client to server", ClusterOTA, []byte{0x01, 0x0A, 0x00, 0x00, 0x64},
			"zcl: cluster 0x0019 command 0x00 client_to_server is not known (image_notify is server_to_client)", ErrUnknownCommand},
		{"manufacturer-specific OTA command", ClusterOTA, []byte{0x05, 0x5F, 0x11, 0x0A, 0x01},
			"zcl: cluster 0x0019 manufacturer-specific command 0x01 (manufacturer 0x115f) is not known", ErrUnknownCommand},
		{"reserved frame type", ClusterOTA, []byte{0x02, 0x0A, 0x01},
			"zcl: header.frame_control at offset 0: reserved frame type 2", ErrInvalid},
		{"short header", ClusterOTA, []byte{0x01, 0x0A},
			"zcl: header.command_id: need 1 byte at offset 2, have 0", ErrShort},
		{"short payload", ClusterOTA, []byte{0x19, 0x0A, 0x07, 0x7C, 0x11, 0x03},
			"zcl: upgrade_end_response.image_type: need 2 bytes at offset 2, have 1", ErrShort},
		{"short device specific response", ClusterOTA, []byte{0x19, 0x0A, 0x09, 0x00, 0x7C},
			"zcl: query_device_specific_file_response.manufacturer_code: need 2 bytes at offset 1, have 1", ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Describe(tt.cluster, tt.frame)
			if err == nil {
				t.Fatalf("Describe(% X) succeeded, want %q", tt.frame, tt.message)
			}
			if err.Error() != tt.message || !errors.Is(err, tt.is) {
				t.Errorf("error = %q, want %q wrapping %v", err, tt.message, tt.is)
			}
		})
	}
}

// TestDescribeEveryVector describes every codec vector inside a frame with the right header and checks the
// field names are the DESIGN.md ones.
func TestDescribeEveryVector(t *testing.T) {
	allowed := map[string]bool{}
	for _, name := range strings.Fields(`payload_type query_jitter field_control manufacturer_code image_type
		file_version hardware_version status image_size file_offset maximum_data_size request_node_address
		minimum_block_period page_size response_spacing data current_time request_time upgrade_time
		zigbee_stack_version command_id attribute_ids records`) {
		allowed[name] = true
	}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			frame := strings.Fields(v.name)[0]
			var h Header
			if cmd, ok := v.want.(Command); ok {
				h = Header{FrameType: FrameTypeCluster, CommandID: cmd.CommandID()}
				if otaCommands[cmd.CommandID()].dir == ServerToClient {
					h.Direction, h.DisableDefaultResponse = ServerToClient, true
				}
			}
			if strings.HasPrefix(frame, "read_attributes") || frame == "default_response" {
				h.FrameType = FrameTypeGlobal
				h.CommandID = map[string]uint8{"read_attributes": 0, "read_attributes_response": 1, "default_response": 0x0B}[frame]
			}
			d, err := Describe(ClusterOTA, append(h.AppendTo(nil), v.payload...))
			if err != nil {
				t.Fatalf("Describe: %v", err)
			}
			if d.Command != frame {
				t.Errorf("command = %q, want %q", d.Command, frame)
			}
			for _, f := range d.Fields {
				if !allowed[f.Name] {
					t.Errorf("field %q is not a DESIGN.md field name", f.Name)
				}
			}
			if _, err := json.Marshal(d); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}
