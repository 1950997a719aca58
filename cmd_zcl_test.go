package main

import (
	"bytes"
	"strings"
	"testing"
)

// Frames of every OTA command and of the general commands, with the exact JSON `otabridge zcl decode`
// prints for them. The image is IKEA's: manufacturer 0x117C = 4476, image type 0x2803 = 10243, file version
// 0x23093631 = 587806257.
func TestZCLDecodeJSON(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "image_notify",
			args: []string{"19 01 00 03 64 7c11 0328 31360923"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 1,
  "command_id": 0,
  "command": "image_notify",
  "fields": {
    "payload_type": 3,
    "query_jitter": 100,
    "manufacturer_code": 4476,
    "image_type": 10243,
    "file_version": 587806257
  }
}
`,
		},
		{
			name: "query_next_image_request",
			args: []string{"01020101", "7c11032831360923", "0102"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "client_to_server",
  "disable_default_response": false,
  "tsn": 2,
  "command_id": 1,
  "command": "query_next_image_request",
  "fields": {
    "field_control": 1,
    "manufacturer_code": 4476,
    "image_type": 10243,
    "file_version": 587806257,
    "hardware_version": 513
  }
}
`,
		},
		{
			name: "query_next_image_response",
			args: []string{"19 02 02 00 7c 11 03 28 31 36 09 23 ac 78 03 00"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 2,
  "command_id": 2,
  "command": "query_next_image_response",
  "fields": {
    "status": "SUCCESS",
    "manufacturer_code": 4476,
    "image_type": 10243,
    "file_version": 587806257,
    "image_size": 227500
  }
}
`,
		},
		{
			name: "image_block_request",
			args: strings.Fields("01 03 03 00 7c 11 03 28 31 36 09 23 40 00 00 00 32"),
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "client_to_server",
  "disable_default_response": false,
  "tsn": 3,
  "command_id": 3,
  "command": "image_block_request",
  "fields": {
    "field_control": 0,
    "manufacturer_code": 4476,
    "image_type": 10243,
    "file_version": 587806257,
    "file_offset": 64,
    "maximum_data_size": 50
  }
}
`,
		},
		{
			name: "image_page_request",
			args: []string{"--cluster", "0x0019", "01 04 04 01 7c11 0328 31360923 00000000 3f 0001 0a00 78563412004b1200"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "client_to_server",
  "disable_default_response": false,
  "tsn": 4,
  "command_id": 4,
  "command": "image_page_request",
  "fields": {
    "field_control": 1,
    "manufacturer_code": 4476,
    "image_type": 10243,
    "file_version": 587806257,
    "file_offset": 0,
    "maximum_data_size": 63,
    "page_size": 256,
    "response_spacing": 10,
    "request_node_address": "0x00124b0012345678"
  }
}
`,
		},
		{
			name: "image_block_response SUCCESS",
			args: []string{"19 03 05 00 7c11 0328 31360923 40000000 04 DEADBEEF"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 3,
  "command_id": 5,
  "command": "image_block_response",
  "fields": {
    "status": "SUCCESS",
    "manufacturer_code": 4476,
    "image_type": 10243,
    "file_version": 587806257,
    "file_offset": 64,
    "data": "deadbeef"
  }
}
`,
		},
		{
			name: "image_block_response WAIT_FOR_DATA",
			args: []string{"--cluster=25", "19 03 05 97 00000000 3c000000 f401"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 3,
  "command_id": 5,
  "command": "image_block_response",
  "fields": {
    "status": "WAIT_FOR_DATA",
    "current_time": 0,
    "request_time": 60,
    "minimum_block_period": 500
  }
}
`,
		},
		{
			name: "image_block_response ABORT",
			args: []string{"190305", "95"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 3,
  "command_id": 5,
  "command": "image_block_response",
  "fields": {
    "status": "ABORT"
  }
}
`,
		},
		{
			name: "upgrade_end_request SUCCESS",
			args: []string{"01 05 06 00 7c11 0328 31360923"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "client_to_server",
  "disable_default_response": false,
  "tsn": 5,
  "command_id": 6,
  "command": "upgrade_end_request",
  "fields": {
    "status": "SUCCESS",
    "manufacturer_code": 4476,
    "image_type": 10243,
    "file_version": 587806257
  }
}
`,
		},
		{
			name: "upgrade_end_request status only",
			args: []string{"01 05 06 96"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "client_to_server",
  "disable_default_response": false,
  "tsn": 5,
  "command_id": 6,
  "command": "upgrade_end_request",
  "fields": {
    "status": "INVALID_IMAGE"
  }
}
`,
		},
		{
			name: "upgrade_end_response",
			args: []string{"19 05 07 7c11 0328 31360923 00000000 01000000"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 5,
  "command_id": 7,
  "command": "upgrade_end_response",
  "fields": {
    "manufacturer_code": 4476,
    "image_type": 10243,
    "file_version": 587806257,
    "current_time": 0,
    "upgrade_time": 1
  }
}
`,
		},
		{
			name: "query_device_specific_file_request",
			args: []string{"01 06 08 78563412004b1200 7c11 c0ff 31360923 0200"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "client_to_server",
  "disable_default_response": false,
  "tsn": 6,
  "command_id": 8,
  "command": "query_device_specific_file_request",
  "fields": {
    "request_node_address": "0x00124b0012345678",
    "manufacturer_code": 4476,
    "image_type": 65472,
    "file_version": 587806257,
    "zigbee_stack_version": 2
  }
}
`,
		},
		{
			name: "query_device_specific_file_response",
			args: []string{"19 06 09 98"},
			want: `{
  "frame_type": "cluster",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 6,
  "command_id": 9,
  "command": "query_device_specific_file_response",
  "fields": {
    "status": "NO_IMAGE_AVAILABLE"
  }
}
`,
		},
		{
			name: "default_response",
			args: []string{"18 07 0b 04 81"},
			want: `{
  "frame_type": "global",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 7,
  "command_id": 11,
  "command": "default_response",
  "fields": {
    "command_id": 4,
    "status": "UNSUP_COMMAND"
  }
}
`,
		},
		{
			name: "read_attributes on Basic",
			args: []string{"--cluster", "0", "00 08 00 0400 0500 0040"},
			want: `{
  "frame_type": "global",
  "manufacturer_specific": false,
  "direction": "client_to_server",
  "disable_default_response": false,
  "tsn": 8,
  "command_id": 0,
  "command": "read_attributes",
  "fields": {
    "attribute_ids": [
      4,
      5,
      16384
    ]
  }
}
`,
		},
		{
			name: "manufacturer-specific read_attributes",
			args: []string{"--cluster", "0x0000", "04 5f11 09 00 f7ff"},
			want: `{
  "frame_type": "global",
  "manufacturer_specific": true,
  "direction": "client_to_server",
  "disable_default_response": false,
  "manufacturer_code": 4447,
  "tsn": 9,
  "command_id": 0,
  "command": "read_attributes",
  "fields": {
    "attribute_ids": [
      65527
    ]
  }
}
`,
		},
		{
			name: "read_attributes_response",
			args: []string{"18 0a 01",
				"0000 00 f0 78563412004b1200", // UpgradeServerID, SUCCESS, IEEE
				"0200 00 23 31360923",         // CurrentFileVersion, SUCCESS, uint32
				"0400 00 42 04 494b4541",      // ManufacturerName, SUCCESS, char string "IKEA"
				"0900 86",                     // MinimumBlockPeriod, UNSUPPORTED_ATTRIBUTE
			},
			want: `{
  "frame_type": "global",
  "manufacturer_specific": false,
  "direction": "server_to_client",
  "disable_default_response": true,
  "tsn": 10,
  "command_id": 1,
  "command": "read_attributes_response",
  "fields": {
    "records": [
      {
        "attribute_id": 0,
        "status": "SUCCESS",
        "type": "ieee_address",
        "value": "0x00124b0012345678"
      },
      {
        "attribute_id": 2,
        "status": "SUCCESS",
        "type": "uint32",
        "value": 587806257
      },
      {
        "attribute_id": 4,
        "status": "SUCCESS",
        "type": "char_string",
        "value": "IKEA"
      },
      {
        "attribute_id": 9,
        "status": "UNSUPPORTED_ATTRIBUTE"
      }
    ]
  }
}
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(append([]string{"zcl", "decode"}, tt.args...), &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
			if out.String() != tt.want {
				t.Errorf("stdout\n%s\nwant\n%s", out.String(), tt.want)
			}
			if errb.Len() != 0 {
				t.Errorf("stderr %q, want nothing", errb.String())
			}
		})
	}
}

func TestZCLDecodeErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stderrHave string
	}{
		{"undecodable frame names the field", []string{"01 0a 03 00 7c"}, 1,
			"zcl: image_block_request.manufacturer_code: need 2 bytes at offset 1, have 1"},
		{"data size beyond the frame", []string{"19 03 05 00 7c11 0328 31360923 40000000 05 0102"}, 1,
			"image_block_response.data: need 5 bytes at offset 14, have 2"},
		{"bad hex", []string{"01 0a zz"}, 1, "bad hex"},
		{"odd number of hex digits", []string{"01 0a 0"}, 1, "bad hex"},
		{"unknown cluster command", []string{"--cluster", "6", "01 0a 01"}, 1,
			"zcl: cluster 0x0006 command 0x01 is not known"},
		{"wrong direction", []string{"19 0a 03 00 7c11 0328 31360923 40000000 32"}, 1,
			"command 0x03 server_to_client is not known (image_block_request is client_to_server)"},
		{"no hex", nil, 2, "usage: otabridge zcl decode"},
		{"bad cluster", []string{"--cluster", "0x10000", "19 01 02 98"}, 2, "cluster"},
		{"unknown flag", []string{"--nope", "19 01 02 98"}, 2, "-nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(append([]string{"zcl", "decode"}, tt.args...), &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.stderrHave) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tt.stderrHave)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
}

func TestZCLDecodeHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runMain([]string{"zcl", "decode", "-h"}, &out, &errb); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if !strings.Contains(errb.String(), "--cluster N") || !strings.Contains(errb.String(), "-cluster") {
		t.Errorf("help text %q lacks the usage and the flag", errb.String())
	}
}
