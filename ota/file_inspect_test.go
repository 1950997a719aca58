package ota

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"

	"github.com/otabridge/otabridge/zcl"
)

func TestInspectJSONKeys(t *testing.T) {
	base := []string{"magic_offset", "header_version", "header_length", "field_control", "manufacturer_code",
		"image_type", "file_version", "stack_version", "header_string", "total_image_size", "sub_elements",
		"file_length", "sha512"}
	tests := []struct {
		fc       uint16
		optional []string
	}{
		{0, nil},
		{HeaderFieldSecurityCredential, []string{"security_credential_version"}},
		{HeaderFieldDeviceSpecific, []string{"upgrade_file_destination"}},
		{HeaderFieldHardwareVersions, []string{"min_hw_version", "max_hw_version"}},
		{7, []string{"security_credential_version", "upgrade_file_destination", "min_hw_version", "max_hw_version"}},
	}
	for _, tt := range tests {
		h := Header{FieldControl: tt.fc, ManufacturerCode: 0x117C, UpgradeFileDestination: zcl.IEEE(0x00124B0012345678),
			MaxHardwareVersion: 0x0101}
		copy(h.HeaderString[:], "x\n")
		b, err := Build(h, nil) // zero values of present fields must still show
		if err != nil {
			t.Fatal(err)
		}
		b = append([]byte("PFX"), b...)
		in, _, err := Inspect(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		want := append(slices.Clone(base), tt.optional...)
		slices.Sort(keys)
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			t.Errorf("fc %d: keys %v, want %v", tt.fc, keys, want)
		}
		sum := sha512.Sum512(b)
		checks := map[string]string{
			"magic_offset":      `3`,
			"manufacturer_code": `4476`,
			"header_string":     `"x\n"`,
			"sub_elements":      `[]`,
			"file_length":       strconv.Itoa(len(b)),
			"sha512":            `"` + hex.EncodeToString(sum[:]) + `"`,
		}
		if tt.fc&HeaderFieldDeviceSpecific != 0 {
			checks["upgrade_file_destination"] = `"0x00124b0012345678"`
		}
		if tt.fc&HeaderFieldHardwareVersions != 0 {
			checks["min_hw_version"] = `0`
			checks["max_hw_version"] = `257`
		}
		if tt.fc&HeaderFieldSecurityCredential != 0 {
			checks["security_credential_version"] = `0`
		}
		for k, v := range checks {
			if string(m[k]) != v {
				t.Errorf("fc %d: %s = %s, want %s", tt.fc, k, m[k], v)
			}
		}
	}
}

func TestInspectSubElementOffsets(t *testing.T) {
	b, err := Build(Header{}, []BuildElement{{Tag: 0, Data: []byte{1, 2}}, {Tag: 0xF001, Data: []byte{3}}})
	if err != nil {
		t.Fatal(err)
	}
	b = append([]byte{9, 9}, b...)
	in, _, err := Inspect(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(in.SubElements)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"tag":0,"length":2,"offset":58},{"tag":61441,"length":1,"offset":66}]`; string(js) != want {
		t.Errorf("sub_elements %s, want %s", js, want)
	}
}

func TestInspectRefusesInvalid(t *testing.T) {
	_, f, err := Inspect(bytes.NewReader([]byte("not an OTA file")), 15)
	if !errors.Is(err, ErrNoMagic) || f != nil {
		t.Errorf("Inspect: %v, %v", f, err)
	}
}
