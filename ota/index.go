package ota

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// IndexEntry is one entry of an index file in the Koenkk/zigbee-OTA index.json format
// (reference/zcl-ota.md §4.1). Optional numbers are nil when the entry does not give them; a local override
// entry may give only URL (a path relative to the index file), and the header fields then come from the file.
type IndexEntry struct {
	// Position is the entry's place in the index array, from 0.
	Position int `json:"-"`

	FileName string `json:"fileName,omitempty"`
	// URL is where the file is: an http(s) URL, or in a local index a path relative to the index file.
	URL              string  `json:"url"`
	FileVersion      *uint32 `json:"fileVersion,omitempty"`
	FileSize         *uint32 `json:"fileSize,omitempty"` // the header's total image size, not the file length
	ImageType        *uint16 `json:"imageType,omitempty"`
	ManufacturerCode *uint16 `json:"manufacturerCode,omitempty"`
	// SHA512 is the lower-case hex SHA-512 of the whole downloaded file.
	SHA512          string `json:"sha512,omitempty"`
	OTAHeaderString string `json:"otaHeaderString,omitempty"`

	OriginalURL        string   `json:"originalUrl,omitempty"`
	ReleaseNotes       string   `json:"releaseNotes,omitempty"`
	ModelID            string   `json:"modelId,omitempty"`
	ManufacturerNames  []string `json:"manufacturerName,omitempty"`
	MinFileVersion     *uint32  `json:"minFileVersion,omitempty"`
	MaxFileVersion     *uint32  `json:"maxFileVersion,omitempty"`
	HardwareVersionMin *uint16  `json:"hardwareVersionMin,omitempty"`
	HardwareVersionMax *uint16  `json:"hardwareVersionMax,omitempty"`
	Force              bool     `json:"force,omitempty"`
	// Version is a human-readable version ("2.3.093"). Not part of the zigbee-OTA format: an otabridge
	// extension that local indexes may use.
	Version string `json:"version,omitempty"`
}

// IndexEntryError says why one entry of an index was refused.
type IndexEntryError struct {
	Position int    // place in the index array, from 0
	Name     string // fileName or url when the entry gives one
	Err      error
}

func (e *IndexEntryError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("index entry [%d] (%s): %v", e.Position, e.Name, e.Err)
	}
	return fmt.Sprintf("index entry [%d]: %v", e.Position, e.Err)
}

func (e *IndexEntryError) Unwrap() error { return e.Err }

// ErrIndexFormat is wrapped by the error ParseIndex returns when the data is not a JSON array.
var ErrIndexFormat = errors.New("index is not a JSON array of entries")

// ParseIndex parses an index file in the Koenkk/zigbee-OTA index.json format: a JSON array of entry objects.
// Unknown keys are ignored; a key whose value is null counts as absent. Numbers are JSON integers (a string
// holding a decimal or 0x-prefixed integer is accepted too) and must fit their field. An entry without a
// url, or with a field of the wrong type or range, is refused on its own: ParseIndex returns the valid
// entries and an error joining one *IndexEntryError per refused entry. When data is not a JSON array it
// returns no entries and an error wrapping ErrIndexFormat. It never panics.
func ParseIndex(data []byte) ([]IndexEntry, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndexFormat, err)
	}
	if raw == nil { // the JSON was null
		return nil, fmt.Errorf("%w: null", ErrIndexFormat)
	}
	entries := make([]IndexEntry, 0, len(raw))
	var errs []error
	for i, r := range raw {
		e, err := parseIndexEntry(r)
		if err != nil {
			errs = append(errs, &IndexEntryError{Position: i, Name: e.displayName(), Err: err})
			continue
		}
		e.Position = i
		entries = append(entries, e)
	}
	return entries, errors.Join(errs...)
}

// displayName names the entry in messages: its file name, else its url.
func (e IndexEntry) displayName() string {
	if e.FileName != "" {
		return e.FileName
	}
	return e.URL
}

// Meta returns what the entry adds to an image: filters and release information. Release notes that are an
// http(s) URL go to ReleaseURL, other text to ReleaseNotes.
func (e IndexEntry) Meta() IndexMeta {
	m := IndexMeta{
		ModelID:           e.ModelID,
		ManufacturerNames: append([]string(nil), e.ManufacturerNames...),
		MinFileVersion:    e.MinFileVersion,
		MaxFileVersion:    e.MaxFileVersion,
		HardwareMin:       e.HardwareVersionMin,
		HardwareMax:       e.HardwareVersionMax,
		Version:           e.Version,
		Force:             e.Force,
		OTAHeaderString:   e.OTAHeaderString,
	}
	if notes := strings.TrimSpace(e.ReleaseNotes); isHTTPURL(notes) {
		m.ReleaseURL = notes
	} else {
		m.ReleaseNotes = e.ReleaseNotes
	}
	return m
}

// isHTTPURL reports whether s is a single http(s) URL (no spaces).
func isHTTPURL(s string) bool {
	l := strings.ToLower(s)
	return (strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")) && len(s) > len("https://") &&
		!strings.ContainsAny(s, " \t\r\n")
}

// parseIndexEntry decodes one entry object. On error the returned entry still carries the file name and
// url when they could be read, for the message.
func parseIndexEntry(r json.RawMessage) (IndexEntry, error) {
	var e IndexEntry
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r, &obj); err != nil || obj == nil {
		return e, errors.New("not a JSON object")
	}
	d := entryDecoder{obj: obj}
	e.FileName = d.str("fileName")
	e.URL = strings.TrimSpace(d.str("url"))
	if d.err != nil {
		return e, d.err
	}
	e.FileVersion = d.u32("fileVersion")
	e.FileSize = d.u32("fileSize")
	e.ImageType = d.u16("imageType")
	e.ManufacturerCode = d.u16("manufacturerCode")
	e.SHA512 = strings.ToLower(strings.TrimSpace(d.str("sha512")))
	e.OTAHeaderString = d.str("otaHeaderString")
	e.OriginalURL = d.str("originalUrl")
	e.ReleaseNotes = d.str("releaseNotes")
	e.ModelID = d.str("modelId")
	e.ManufacturerNames = d.strList("manufacturerName")
	e.MinFileVersion = d.u32("minFileVersion")
	e.MaxFileVersion = d.u32("maxFileVersion")
	e.HardwareVersionMin = d.u16("hardwareVersionMin")
	e.HardwareVersionMax = d.u16("hardwareVersionMax")
	e.Force = d.boolean("force")
	e.Version = d.str("version")
	if d.err != nil {
		return e, d.err
	}
	if e.URL == "" {
		return e, errors.New("no url")
	}
	if e.SHA512 != "" {
		if b, err := hex.DecodeString(e.SHA512); err != nil || len(b) != 64 {
			return e, fmt.Errorf("sha512 %q is not 128 hex digits", clip(e.SHA512, 140))
		}
	}
	if e.MinFileVersion != nil && e.MaxFileVersion != nil && *e.MinFileVersion > *e.MaxFileVersion {
		return e, fmt.Errorf("minFileVersion %d above maxFileVersion %d", *e.MinFileVersion, *e.MaxFileVersion)
	}
	if e.HardwareVersionMin != nil && e.HardwareVersionMax != nil && *e.HardwareVersionMin > *e.HardwareVersionMax {
		return e, fmt.Errorf("hardwareVersionMin %d above hardwareVersionMax %d", *e.HardwareVersionMin, *e.HardwareVersionMax)
	}
	return e, nil
}

// entryDecoder reads typed fields of an entry object, keeping the first error.
type entryDecoder struct {
	obj map[string]json.RawMessage
	err error
}

// get returns the raw value of key, or nil when it is absent or null.
func (d *entryDecoder) get(key string) json.RawMessage {
	if d.err != nil {
		return nil
	}
	v, ok := d.obj[key]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil
	}
	return v
}

func (d *entryDecoder) fail(key string, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...))
	}
}

func (d *entryDecoder) str(key string) string {
	v := d.get(key)
	if v == nil {
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		d.fail(key, "want a string, got %s", clip(string(v), 40))
	}
	return s
}

func (d *entryDecoder) strList(key string) []string {
	v := d.get(key)
	if v == nil {
		return nil
	}
	var list []string
	if err := json.Unmarshal(v, &list); err == nil {
		return list
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		return []string{s}
	}
	d.fail(key, "want an array of strings, got %s", clip(string(v), 40))
	return nil
}

func (d *entryDecoder) boolean(key string) bool {
	v := d.get(key)
	if v == nil {
		return false
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		d.fail(key, "want true or false, got %s", clip(string(v), 40))
	}
	return b
}

// unsigned reads an unsigned integer of the given bit size: a JSON integer, or a string holding one (decimal
// or 0x hex).
func (d *entryDecoder) unsigned(key string, bits int) (uint64, bool) {
	v := d.get(key)
	if v == nil {
		return 0, false
	}
	text := string(bytes.TrimSpace(v))
	base := 10
	if strings.HasPrefix(text, `"`) {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			d.fail(key, "want an integer, got %s", clip(text, 40))
			return 0, false
		}
		text, base = strings.TrimSpace(s), 0
	}
	n, err := strconv.ParseUint(text, base, bits)
	if err != nil {
		d.fail(key, "want an integer 0..%d, got %s", uint64(1)<<bits-1, clip(text, 40))
		return 0, false
	}
	return n, true
}

func (d *entryDecoder) u32(key string) *uint32 {
	n, ok := d.unsigned(key, 32)
	if !ok {
		return nil
	}
	v := uint32(n)
	return &v
}

func (d *entryDecoder) u16(key string) *uint16 {
	n, ok := d.unsigned(key, 16)
	if !ok {
		return nil
	}
	v := uint16(n)
	return &v
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
