package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// otaCmdTestdata is the shared folder of real vendor OTA files, relative to the repository root.
var otaCmdTestdata = filepath.Join("..", "shared", "testdata", "ota")

const (
	otaCmdIKEA    = "10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed"
	otaCmdTerncy  = "TERNCY-SD01_v46.OTA"
	otaCmdDatek   = "dimmerpille_v2_0_v_4_combined_OTA.ota"
	otaCmdONOKOM  = "tcl-1-zb-s_hw1.x_fw0.6.1_ota20.ota"
	otaCmdTelink  = "SN-TLSR8656-09P-01-v1.1.2.ota"
	otaCmdSonoffS = "mini-zbdim_v1.0.5.ota"
)

func otaCmdRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMain(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// otaCmdPath is the path of a real vendor file; the test is skipped when the corpus is not beside the
// repository (a plain clone: the files are not redistributed in it).
func otaCmdPath(t *testing.T, name string) string {
	t.Helper()
	skipWithoutOTACorpus(t)
	return filepath.Join(otaCmdTestdata, name)
}

func skipWithoutOTACorpus(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(otaCmdTestdata, "manifest.json")); err != nil {
		t.Skipf("needs the real vendor OTA files of ../shared/testdata/ota beside the repository (not in a plain clone): %v", err)
	}
}

// otaCmdManifest reads the expected facts of the real files, keyed by file name.
func otaCmdManifest(t *testing.T) map[string]map[string]any {
	t.Helper()
	skipWithoutOTACorpus(t)
	b, err := os.ReadFile(filepath.Join(otaCmdTestdata, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Files []map[string]any `json:"files"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]any{}
	for _, f := range m.Files {
		byName[f["file"].(string)] = f
	}
	return byName
}

func TestOTAInspectText(t *testing.T) {
	code, out, errOut := otaCmdRun(t, "ota", "inspect", otaCmdPath(t, otaCmdIKEA))
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		otaCmdPath(t, otaCmdIKEA) + "\n",
		"manufacturer code      0x117C\n",
		"image type             0x2803\n",
		"file version           0x23093631 (587806257)\n",
		"stack version          2 (Zigbee PRO)\n",
		`header string          "EBL tradfri_wrgb"` + "\n",
		"total image size       227500 bytes\n",
		"magic offset           488\n",
		"file length            228500 bytes\n",
		"trailing bytes         512\n",
		"sub-element layout     standard\n",
		"tag 0x0000 upgrade image               offset 544       length 216192\n",
		"tag 0xFFBF manufacturer specific       offset 216742    length 64\n",
		"sha512                 fcdcc6198cd5f41d",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hardware versions") {
		t.Errorf("hardware versions shown for a file without them:\n%s", out)
	}

	// Several files, flags after the files; hardware versions, loose layout and a control character.
	code, out, errOut = otaCmdRun(t, "ota", "inspect", otaCmdPath(t, otaCmdTerncy), otaCmdPath(t, otaCmdDatek), otaCmdPath(t, otaCmdSonoffS))
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"hardware versions      0x0001..0x0001\n",
		"sub-element layout     loose\n",
		"unparsed               offset 265094, length 32768\n",
		`header string          "vers:00001005,00001102\n"` + "\n",
		"\n\n" + otaCmdPath(t, otaCmdDatek) + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestOTAInspectJSONOneFile(t *testing.T) {
	manifest := otaCmdManifest(t)
	for _, name := range []string{otaCmdIKEA, otaCmdTerncy, otaCmdTelink} {
		code, out, errOut := otaCmdRun(t, "ota", "inspect", otaCmdPath(t, name), "--json")
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", name, code, errOut)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: not one JSON object: %v\n%s", name, err, out)
		}
		want := manifest[name]
		for _, k := range []string{"magic_offset", "header_version", "header_length", "field_control", "manufacturer_code",
			"image_type", "file_version", "stack_version", "header_string", "total_image_size", "file_length", "sha512",
			"min_hw_version", "max_hw_version"} {
			if got[k] != want[k] {
				t.Errorf("%s: %s = %v, manifest %v", name, k, got[k], want[k])
			}
		}
		subs, _ := got["sub_elements"].([]any)
		wantSubs, _ := want["sub_elements"].([]any)
		if len(subs) != len(wantSubs) {
			t.Fatalf("%s: sub_elements %v, manifest %v", name, subs, wantSubs)
		}
		for i := range subs {
			g, w := subs[i].(map[string]any), wantSubs[i].(map[string]any)
			if g["tag"] != w["tag"] || g["length"] != w["length"] || g["offset"] == nil {
				t.Errorf("%s: sub-element %d %v, manifest %v", name, i, g, w)
			}
		}
		for k := range got {
			switch k {
			case "magic_offset", "header_version", "header_length", "field_control", "manufacturer_code", "image_type",
				"file_version", "stack_version", "header_string", "total_image_size", "security_credential_version",
				"upgrade_file_destination", "min_hw_version", "max_hw_version", "sub_elements", "file_length", "sha512":
			default:
				t.Errorf("%s: unexpected key %q", name, k)
			}
		}
	}
}

func TestOTAInspectJSONSeveralFiles(t *testing.T) {
	code, out, errOut := otaCmdRun(t, "ota", "inspect", "--json", otaCmdPath(t, otaCmdIKEA), otaCmdPath(t, otaCmdTerncy))
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not a JSON array: %v\n%s", err, out)
	}
	if len(got) != 2 || got[0]["manufacturer_code"] != float64(0x117C) || got[1]["manufacturer_code"] != float64(0x1228) {
		t.Errorf("got %v", got)
	}
}

func TestOTAInspectInvalidFile(t *testing.T) {
	code, out, errOut := otaCmdRun(t, "ota", "inspect", otaCmdPath(t, otaCmdONOKOM))
	if code == 0 {
		t.Fatalf("exit 0 for the truncated ONOKOM file; stdout %q", out)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	for _, want := range []string{otaCmdONOKOM, "truncated", "278830", "92222", "186608 bytes missing"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q: %s", want, errOut)
		}
	}

	// With valid files around it: the valid ones are printed, the invalid one reported, exit non-zero.
	code, out, errOut = otaCmdRun(t, "ota", "inspect", "--json", otaCmdPath(t, otaCmdIKEA), otaCmdPath(t, otaCmdONOKOM),
		filepath.Join(t.TempDir(), "missing.ota"), otaCmdPath(t, otaCmdTerncy))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 {
		t.Fatalf("stdout not an array of the 2 valid files: %v\n%s", err, out)
	}
	if !strings.Contains(errOut, otaCmdONOKOM+": OTA image truncated") || !strings.Contains(errOut, "missing.ota: open") ||
		!strings.Contains(errOut, "2 of 4 files are not valid OTA files") {
		t.Errorf("stderr: %s", errOut)
	}

	// Not an OTA file at all.
	notOTA := filepath.Join(t.TempDir(), "readme.txt")
	if err := os.WriteFile(notOTA, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = otaCmdRun(t, "ota", "inspect", notOTA)
	if code != 1 || !strings.Contains(errOut, "readme.txt: no OTA file identifier") {
		t.Errorf("exit %d, stderr %s", code, errOut)
	}
}

func TestOTAInspectUsage(t *testing.T) {
	for _, args := range [][]string{{"ota", "inspect"}, {"ota", "inspect", "--bogus", "x"}} {
		code, _, errOut := otaCmdRun(t, args...)
		if code != 2 || !strings.Contains(errOut, "usage: otabridge ota inspect") {
			t.Errorf("%v: exit %d, stderr %s", args, code, errOut)
		}
	}
}

func TestOTACreateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	fw := filepath.Join(dir, "app.bin")
	firmware := bytes.Repeat([]byte("not an ESP image "), 100)
	if err := os.WriteFile(fw, firmware, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "app.ota")
	// Flags before and after FIRMWARE, decimal and hex.
	code, stdout, errOut := otaCmdRun(t, "ota", "create", "--manufacturer", "0x131B", "--image-type", "4097",
		fw, "--version", "0x01020304", "--hw-min", "1", "--hw-max", "0x0102", "--header-string", "my light\n", "-o", out)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	written, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(written)
	wantLine := "wrote " + out + ": " + strconv.Itoa(len(written)) + " bytes, image 0x131B/0x1001/0x01020304, sha512 " + hex.EncodeToString(sum[:8]) + "...\n"
	if stdout != wantLine {
		t.Errorf("stdout %q, want %q", stdout, wantLine)
	}
	if strings.Contains(stdout, "ESP-IDF") {
		t.Errorf("plain firmware reported as ESP: %s", stdout)
	}
	if len(written) != 60+6+len(firmware) || !bytes.Equal(written[66:], firmware) {
		t.Errorf("file of %d bytes does not end with the firmware", len(written))
	}

	code, stdout, errOut = otaCmdRun(t, "ota", "inspect", "--json", out)
	if code != 0 || errOut != "" {
		t.Fatalf("inspect: exit %d, stderr %q", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"magic_offset": 0.0, "header_version": 256.0, "header_length": 60.0, "field_control": 4.0,
		"manufacturer_code": 4891.0, "image_type": 4097.0, "file_version": 16909060.0, "stack_version": 2.0,
		"header_string": "my light\n", "total_image_size": float64(len(written)), "min_hw_version": 1.0,
		"max_hw_version": 258.0, "file_length": float64(len(written)), "sha512": hex.EncodeToString(sum[:]),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	subs, _ := got["sub_elements"].([]any)
	if len(subs) != 1 {
		t.Fatalf("sub_elements %v", subs)
	}
	if s := subs[0].(map[string]any); s["tag"] != 0.0 || s["length"] != float64(len(firmware)) || s["offset"] != 60.0 {
		t.Errorf("sub-element %v", s)
	}

	// Without hardware versions, with the default stack version and no header string.
	out2 := filepath.Join(dir, "plain.ota")
	if code, _, errOut := otaCmdRun(t, "ota", "create", fw, "-o", out2, "--manufacturer", "1", "--image-type", "2",
		"--version", "3", "--stack-version", "0x0002"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	_, stdout, _ = otaCmdRun(t, "ota", "inspect", "--json", out2)
	got = nil
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got["header_length"] != 56.0 || got["field_control"] != 0.0 || got["header_string"] != "" || got["stack_version"] != 2.0 {
		t.Errorf("got %v", got)
	}
	if _, ok := got["min_hw_version"]; ok {
		t.Errorf("min_hw_version present without hardware versions: %v", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// otaCmdESPImage builds a small ESP-IDF application image: header, two segments (the first starting with
// the app descriptor), padding, checksum and the appended SHA-256.
func otaCmdESPImage(chipID uint16, project, version string) []byte {
	le := binary.LittleEndian
	desc := make([]byte, 256)
	le.PutUint32(desc, 0xABCD5432)
	copy(desc[16:], version)
	copy(desc[48:], project)
	copy(desc[112:], "v5.4")
	segs := [][]byte{desc, {1, 2, 3, 4, 5, 6, 7, 8}}
	b := make([]byte, 24)
	b[0], b[1] = 0xE9, byte(len(segs))
	le.PutUint16(b[12:], chipID)
	b[23] = 1
	checksum := byte(0xEF)
	for _, s := range segs {
		b = le.AppendUint32(b, 0x3C000000)
		b = le.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
		for _, c := range s {
			checksum ^= c
		}
	}
	for (len(b)+1)%16 != 0 {
		b = append(b, 0)
	}
	b = append(b, checksum)
	h := sha256.Sum256(b)
	return append(b, h[:]...)
}

func TestOTACreateESPImage(t *testing.T) {
	dir := t.TempDir()
	fw := filepath.Join(dir, "zigbee_light.bin")
	img := otaCmdESPImage(0x0010, "zigbee_light", "2.1.0")
	if err := os.WriteFile(fw, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "light.ota")
	code, stdout, errOut := otaCmdRun(t, "ota", "create", "--manufacturer", "0x131B", "--image-type", "1", "--version", "0x02010000",
		fw, "-o", out)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := `ESP-IDF app image: project "zigbee_light", version "2.1.0", chip ESP32-H2, ESP-IDF v5.4` + "\n"; !strings.HasPrefix(stdout, want) {
		t.Errorf("stdout %q, want it to start with %q", stdout, want)
	}
	if !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("stdout %q lacks the summary", stdout)
	}

	// A damaged ESP image is refused and nothing is written.
	bad := bytes.Clone(img)
	bad[24+8+256+8+2] ^= 0xFF // a byte of the second segment: checksum and hash no longer match
	if err := os.WriteFile(fw, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(dir, "bad.ota")
	code, stdout, errOut = otaCmdRun(t, "ota", "create", "--manufacturer", "1", "--image-type", "1", "--version", "1", fw, "-o", out2)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(errOut, "refusing damaged firmware") || !strings.Contains(errOut, "ESP-IDF image: checksum 0x") {
		t.Errorf("stderr %q", errOut)
	}
	if stdout != "" {
		t.Errorf("stdout %q, want nothing", stdout)
	}
	if _, err := os.Stat(out2); !os.IsNotExist(err) {
		t.Errorf("output written for a damaged image: %v", err)
	}
}

func TestOTACreateRefusals(t *testing.T) {
	dir := t.TempDir()
	fw := filepath.Join(dir, "fw.bin")
	if err := os.WriteFile(fw, []byte{1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.bin")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.ota")
	ids := []string{"--manufacturer", "1", "--image-type", "2", "--version", "3"}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{"no firmware", append(slices.Clone(ids), "-o", out), 2, "want exactly one FIRMWARE file"},
		{"two firmware files", append(slices.Clone(ids), fw, fw, "-o", out), 2, "got 2 arguments"},
		{"no manufacturer", []string{"--image-type", "2", "--version", "3", fw, "-o", out}, 2, "--manufacturer is required"},
		{"no image type", []string{"--manufacturer", "1", "--version", "3", fw, "-o", out}, 2, "--image-type is required"},
		{"no version", []string{"--manufacturer", "1", "--image-type", "2", fw, "-o", out}, 2, "--version is required"},
		{"no output", append(slices.Clone(ids), fw), 2, "-o OUT is required"},
		{"hw-min alone", append(slices.Clone(ids), fw, "-o", out, "--hw-min", "1"), 2, "--hw-min and --hw-max go together"},
		{"hw-max alone", append(slices.Clone(ids), fw, "-o", out, "--hw-max", "1"), 2, "--hw-min and --hw-max go together"},
		{"hw-min above hw-max", append(slices.Clone(ids), fw, "-o", out, "--hw-min", "3", "--hw-max", "2"), 2, "above --hw-max"},
		{"header string of 33 bytes", append(slices.Clone(ids), fw, "-o", out, "--header-string", strings.Repeat("x", 33)), 2,
			"--header-string has 33 bytes, at most 32 fit"},
		{"manufacturer too big", []string{"--manufacturer", "0x10000", "--image-type", "2", "--version", "3", fw, "-o", out}, 2,
			`"0x10000" does not fit in 16 bits`},
		{"version not a number", []string{"--manufacturer", "1", "--image-type", "2", "--version", "v1", fw, "-o", out}, 2,
			`"v1" is not a decimal or 0x hex number`},
		{"octal-looking number is decimal, 09 is fine", append([]string{"--manufacturer", "09", "--image-type", "2", "--version", "3"},
			fw, "-o", out), 0, ""},
		{"missing firmware", append(slices.Clone(ids), filepath.Join(dir, "nope.bin"), "-o", out), 1, "read firmware"},
		{"empty firmware", append(slices.Clone(ids), empty, "-o", out), 1, "is empty"},
		{"output is the firmware", append(slices.Clone(ids), fw, "-o", fw), 1, "is the firmware file itself"},
		{"output directory missing", append(slices.Clone(ids), fw, "-o", filepath.Join(dir, "no", "out.ota")), 1, "create temporary file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := otaCmdRun(t, append([]string{"ota", "create"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %s", code, tt.wantCode, errOut)
			}
			if !strings.Contains(errOut, tt.wantMsg) {
				t.Errorf("stderr %q lacks %q", errOut, tt.wantMsg)
			}
		})
	}
	if b, _ := os.ReadFile(fw); !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Errorf("firmware file changed: % X", b)
	}
}

func TestOTAParseNumber(t *testing.T) {
	tests := []struct {
		in      string
		bits    int
		want    uint64
		wantErr bool
	}{
		{"0", 16, 0, false},
		{"4476", 16, 4476, false},
		{"0x117C", 16, 0x117C, false},
		{"0X117c", 16, 0x117C, false},
		{"65535", 16, 65535, false},
		{"65536", 16, 0, true},
		{"0xFFFFFFFF", 32, 0xFFFFFFFF, false},
		{"0x100000000", 32, 0, true},
		{"010", 16, 10, false},
		{"-1", 16, 0, true},
		{"0x", 16, 0, true},
		{"", 16, 0, true},
		{"1e3", 16, 0, true},
	}
	for _, tt := range tests {
		got, err := otaParseNumber(tt.in, tt.bits)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("otaParseNumber(%q, %d) = %d, %v; want %d, error %v", tt.in, tt.bits, got, err, tt.want, tt.wantErr)
		}
	}
}
