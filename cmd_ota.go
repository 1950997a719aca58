package main

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/otabridge/otabridge/ota"
)

const otaInspectUsage = `usage: otabridge ota inspect [--json] FILE...
Shows the header and sub-elements of Zigbee OTA upgrade files. --json prints one JSON object for one file,
a JSON array for several.
`

const otaCreateUsage = `usage: otabridge ota create --manufacturer N --image-type N --version N [--hw-min N --hw-max N]
                           [--header-string S] [--stack-version N] FIRMWARE -o OUT
Wraps a firmware binary into a Zigbee OTA upgrade file with one sub-element (tag 0x0000, upgrade image).
Numbers are decimal or 0x hex. An ESP-IDF application image is checked and its app descriptor shown.
`

// cmdOTAInspect is `otabridge ota inspect [--json] FILE…`.
func cmdOTAInspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ota inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, otaInspectUsage)
		fs.PrintDefaults()
	}
	paths, err := otaParseInterleaved(fs, args)
	if err != nil {
		return errUsage
	}
	if len(paths) == 0 {
		fmt.Fprintln(stderr, "ota inspect: no file given")
		fs.Usage()
		return errUsage
	}
	var inspections []ota.Inspection
	invalid := 0
	for _, path := range paths {
		in, f, err := otaInspectFile(path)
		if err != nil {
			invalid++
			fmt.Fprintf(stderr, "otabridge: ota inspect %s: %v\n", path, err)
			continue
		}
		if *asJSON {
			inspections = append(inspections, in)
			continue
		}
		if len(inspections) > 0 {
			fmt.Fprintln(stdout)
		}
		otaWriteInspectionText(stdout, path, in, f)
		inspections = append(inspections, in)
	}
	if *asJSON {
		var v any // one file: an object; several: an array of the valid ones
		switch {
		case len(paths) == 1 && len(inspections) == 1:
			v = inspections[0]
		case len(paths) > 1:
			v = append([]ota.Inspection{}, inspections...)
		}
		if v != nil {
			js, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				return fmt.Errorf("ota inspect: encode JSON: %w", err)
			}
			if _, err := fmt.Fprintf(stdout, "%s\n", js); err != nil {
				return fmt.Errorf("ota inspect: write output: %w", err)
			}
		}
	}
	if invalid > 0 {
		return fmt.Errorf("ota inspect: %d of %d files are not valid OTA files", invalid, len(paths))
	}
	return nil
}

// otaInspectFile opens and inspects one file without reading it all into memory.
func otaInspectFile(path string) (ota.Inspection, *ota.File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return ota.Inspection{}, nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return ota.Inspection{}, nil, err
	}
	if !st.Mode().IsRegular() {
		return ota.Inspection{}, nil, fmt.Errorf("not a regular file")
	}
	return ota.Inspect(fh, st.Size())
}

// otaStackVersionNames names the Zigbee stack versions of the OTA header (reference/zcl-ota.md §3).
var otaStackVersionNames = map[uint16]string{0: "Zigbee 2006", 1: "Zigbee 2007", 2: "Zigbee PRO", 3: "Zigbee IP", 4: "Thread"}

// otaWriteInspectionText prints one file's facts for people.
func otaWriteInspectionText(w io.Writer, path string, in ota.Inspection, f *ota.File) {
	row := func(name, format string, a ...any) {
		fmt.Fprintf(w, "  %-22s %s\n", name, fmt.Sprintf(format, a...))
	}
	fmt.Fprintln(w, path)
	row("manufacturer code", "0x%04X", in.ManufacturerCode)
	row("image type", "0x%04X", in.ImageType)
	row("file version", "0x%08X (%d)", in.FileVersion, in.FileVersion)
	stack := otaStackVersionNames[in.StackVersion]
	if stack == "" {
		stack = "unknown"
	}
	row("stack version", "%d (%s)", in.StackVersion, stack)
	row("header string", "%s", strconv.Quote(in.HeaderString))
	row("header version", "0x%04X", in.HeaderVersion)
	row("header length", "%d", in.HeaderLength)
	row("field control", "0x%04X", in.FieldControl)
	if in.SecurityCredentialVersion != nil {
		row("security credential", "%d", *in.SecurityCredentialVersion)
	}
	if in.UpgradeFileDestination != nil {
		row("upgrade destination", "%s", in.UpgradeFileDestination)
	}
	if in.MinHardwareVersion != nil && in.MaxHardwareVersion != nil {
		row("hardware versions", "0x%04X..0x%04X", *in.MinHardwareVersion, *in.MaxHardwareVersion)
	}
	row("total image size", "%d bytes", in.TotalImageSize)
	row("magic offset", "%d", in.MagicOffset)
	row("file length", "%d bytes", in.FileLength)
	row("trailing bytes", "%d", f.TrailingBytes())
	row("sub-element layout", "%s", f.Layout)
	row("sub-elements", "%d", len(in.SubElements))
	for _, e := range in.SubElements {
		fmt.Fprintf(w, "    tag 0x%04X %-27s offset %-9d length %d\n", e.Tag, ota.TagName(e.Tag), e.Offset, e.Length)
	}
	if f.Unparsed != nil {
		row("unparsed", "offset %d, length %d", f.Unparsed.Offset, f.Unparsed.Length)
	}
	row("sha512", "%s", in.SHA512)
}

// cmdOTACreate is `otabridge ota create … FIRMWARE -o OUT`.
func cmdOTACreate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ota create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	manufacturer := &otaNumberFlag{bits: 16}
	imageType := &otaNumberFlag{bits: 16}
	fileVersion := &otaNumberFlag{bits: 32}
	hwMin := &otaNumberFlag{bits: 16}
	hwMax := &otaNumberFlag{bits: 16}
	stackVersion := &otaNumberFlag{bits: 16, value: 2}
	fs.Var(manufacturer, "manufacturer", "manufacturer code `N` (required)")
	fs.Var(imageType, "image-type", "image type `N` (required)")
	fs.Var(fileVersion, "version", "file version `N` (required)")
	fs.Var(hwMin, "hw-min", "minimum hardware version `N` (with --hw-max)")
	fs.Var(hwMax, "hw-max", "maximum hardware version `N` (with --hw-min)")
	fs.Var(stackVersion, "stack-version", "Zigbee stack version `N` (2 = Zigbee PRO)")
	headerString := fs.String("header-string", "", "header string `S`, at most 32 bytes")
	out := fs.String("o", "", "output OTA file `OUT` (required)")
	fs.Usage = func() {
		fmt.Fprint(stderr, otaCreateUsage)
		fs.PrintDefaults()
	}
	positional, err := otaParseInterleaved(fs, args)
	if err != nil {
		return errUsage
	}
	usageError := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "ota create: "+format+"\n", a...)
		fs.Usage()
		return errUsage
	}
	switch {
	case len(positional) != 1:
		return usageError("want exactly one FIRMWARE file, got %d arguments", len(positional))
	case !manufacturer.set:
		return usageError("--manufacturer is required")
	case !imageType.set:
		return usageError("--image-type is required")
	case !fileVersion.set:
		return usageError("--version is required")
	case *out == "":
		return usageError("-o OUT is required")
	case hwMin.set != hwMax.set:
		return usageError("--hw-min and --hw-max go together")
	case hwMin.set && hwMin.value > hwMax.value:
		return usageError("--hw-min 0x%04X is above --hw-max 0x%04X", hwMin.value, hwMax.value)
	case len(*headerString) > 32:
		return usageError("--header-string has %d bytes, at most 32 fit", len(*headerString))
	}
	firmwarePath := positional[0]

	firmware, err := os.ReadFile(firmwarePath)
	if err != nil {
		return fmt.Errorf("ota create: read firmware: %w", err)
	}
	if len(firmware) == 0 {
		return fmt.Errorf("ota create: firmware %s is empty", firmwarePath)
	}
	if same, err := otaSameFile(firmwarePath, *out); err == nil && same {
		return fmt.Errorf("ota create: output %s is the firmware file itself", *out)
	}
	desc, isESP, err := ota.ParseESPAppImage(firmware)
	if err != nil {
		return fmt.Errorf("ota create: refusing damaged firmware %s: %w", firmwarePath, err)
	}
	if isESP {
		fmt.Fprintf(stdout, "ESP-IDF app image: project %q, version %q, chip %s, ESP-IDF %s\n",
			desc.ProjectName, desc.Version, desc.Chip, desc.IDFVersion)
	}

	h := ota.Header{
		ManufacturerCode: uint16(manufacturer.value),
		ImageType:        uint16(imageType.value),
		FileVersion:      uint32(fileVersion.value),
		StackVersion:     uint16(stackVersion.value),
	}
	copy(h.HeaderString[:], *headerString)
	if hwMin.set {
		h.FieldControl |= ota.HeaderFieldHardwareVersions
		h.MinHardwareVersion, h.MaxHardwareVersion = uint16(hwMin.value), uint16(hwMax.value)
	}
	file, err := ota.Build(h, []ota.BuildElement{{Tag: ota.TagUpgradeImage, Data: firmware}})
	if err != nil {
		return fmt.Errorf("ota create: %w", err)
	}
	if _, err := ota.ParseBytes(file); err != nil { // what we write must be what we serve
		return fmt.Errorf("ota create: built file does not parse: %w", err)
	}
	if err := otaWriteFileAtomic(*out, file); err != nil {
		return fmt.Errorf("ota create: %w", err)
	}
	sum := sha512.Sum512(file)
	fmt.Fprintf(stdout, "wrote %s: %d bytes, image 0x%04X/0x%04X/0x%08X, sha512 %s...\n",
		*out, len(file), h.ManufacturerCode, h.ImageType, h.FileVersion, hex.EncodeToString(sum[:8]))
	return nil
}

// otaNumberFlag is an unsigned flag of a given bit size, written in decimal or as 0x hex.
type otaNumberFlag struct {
	bits  int
	value uint64
	set   bool
}

func (f *otaNumberFlag) String() string {
	if f == nil {
		return ""
	}
	return strconv.FormatUint(f.value, 10)
}

func (f *otaNumberFlag) Set(s string) error {
	v, err := otaParseNumber(s, f.bits)
	if err != nil {
		return err
	}
	f.value, f.set = v, true
	return nil
}

// otaParseNumber reads a decimal or 0x-prefixed hex number that fits in bits.
func otaParseNumber(s string, bits int) (uint64, error) {
	t := strings.TrimSpace(s)
	base := 10
	if len(t) > 2 && (t[:2] == "0x" || t[:2] == "0X") {
		t, base = t[2:], 16
	}
	v, err := strconv.ParseUint(t, base, bits)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q does not fit in %d bits", s, bits)
		}
		return 0, fmt.Errorf("%q is not a decimal or 0x hex number", s)
	}
	return v, nil
}

// otaParseInterleaved parses flags that may come before, between or after the positional arguments
// (Go's flag package stops at the first non-flag). Everything after "--" is positional.
func otaParseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// otaSameFile reports whether a and b name the same existing file.
func otaSameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// otaWriteFileAtomic writes data to path through a temporary file in the same directory, fsynced and
// renamed over path, so path holds either the old or the whole new content.
func otaWriteFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp.Name(), path, err)
	}
	// Make the rename itself durable; not every platform can sync a directory.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
