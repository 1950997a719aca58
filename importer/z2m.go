package importer

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/otabridge/otabridge/zcl"
)

// Zigbee2MQTT's files in its data directory.
const (
	Z2MDatabase      = "database.db"
	Z2MConfiguration = "configuration.yaml"
	Z2MBackup        = "coordinator_backup.json"
)

// z2mDevice is one line of database.db (zigbee-herdsman's Device.toDatabaseEntry): the fields read here.
type z2mDevice struct {
	Type        string                 `json:"type"`
	IEEEAddr    string                 `json:"ieeeAddr"`
	NWKAddr     *int                   `json:"nwkAddr"`
	ManufID     *int                   `json:"manufId"`
	ManufName   string                 `json:"manufName"`
	PowerSource string                 `json:"powerSource"`
	ModelID     string                 `json:"modelId"`
	HWVersion   *int                   `json:"hwVersion"`
	DateCode    string                 `json:"dateCode"`
	SWBuildID   string                 `json:"swBuildId"`
	Endpoints   map[string]z2mEndpoint `json:"endpoints"`
}

type z2mEndpoint struct {
	EpID     int                                      `json:"epId"`
	OutList  []int                                    `json:"outClusterList"`
	Clusters map[string]struct{ Attributes z2mAttrs } `json:"clusters"`
}

type z2mAttrs map[string]json.RawMessage

// ReadZ2M reads a Zigbee2MQTT data directory: database.db (required), configuration.yaml and the devices
// files it names (friendly names; optional), coordinator_backup.json (the network; optional).
func ReadZ2M(dir string) (Import, error) {
	im := Import{Source: "z2m", Path: dir}
	dbPath := filepath.Join(dir, Z2MDatabase)
	data, err := os.ReadFile(dbPath)
	if err != nil {
		return Import{}, fmt.Errorf("z2m import: %w (is %s a Zigbee2MQTT data directory?)", err, dir)
	}
	devs, err := ParseZ2MDatabase(data)
	if err != nil {
		return Import{}, fmt.Errorf("z2m import: %s: %w", dbPath, err)
	}
	names, err := readZ2MNames(dir)
	if err != nil {
		return Import{}, fmt.Errorf("z2m import: %w", err)
	}
	for i := range devs {
		devs[i].FriendlyName = names[devs[i].IEEE]
	}
	im.Devices = devs
	backupPath := filepath.Join(dir, Z2MBackup)
	if b, err := os.ReadFile(backupPath); err == nil {
		n, err := ParseZ2MBackup(b)
		if err != nil {
			return Import{}, fmt.Errorf("z2m import: %s: %w", backupPath, err)
		}
		im.Network = &n
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Import{}, fmt.Errorf("z2m import: %w", err)
	}
	return im, nil
}

// ParseZ2MDatabase reads database.db: one JSON object a line; the coordinator's line is skipped. A line
// that is not a device record refuses the whole file, naming the line.
func ParseZ2MDatabase(data []byte) ([]Device, error) {
	var out []Device
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	line := 0
	seen := map[zcl.IEEE]bool{}
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var rec z2mDevice
		if err := json.Unmarshal(text, &rec); err != nil {
			return nil, fmt.Errorf("line %d: not a JSON device record: %w", line, err)
		}
		if rec.IEEEAddr == "" {
			return nil, fmt.Errorf("line %d: no ieeeAddr", line)
		}
		ieee, err := zcl.ParseIEEE(rec.IEEEAddr)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if rec.Type == "Coordinator" {
			continue
		}
		if rec.Type == "GreenPower" {
			continue // no OTA client
		}
		if seen[ieee] {
			return nil, fmt.Errorf("line %d: %s listed twice", line, ieee)
		}
		seen[ieee] = true
		d := Device{IEEE: ieee, NWK: 0xFFFF, Manufacturer: clean(rec.ManufName), Model: clean(rec.ModelID),
			SWBuildID: clean(rec.SWBuildID), DateCode: clean(rec.DateCode), PowerSource: PowerUnknown}
		if rec.NWKAddr != nil {
			if *rec.NWKAddr < 0 || *rec.NWKAddr > 0xFFF7 {
				return nil, fmt.Errorf("line %d: nwkAddr %d out of range", line, *rec.NWKAddr)
			}
			d.NWK = uint16(*rec.NWKAddr)
		}
		if rec.ManufID != nil && *rec.ManufID >= 0 && *rec.ManufID <= 0xFFFF {
			d.ManufacturerCode, d.HasManufacturerCode = uint16(*rec.ManufID), true
		}
		if rec.HWVersion != nil && *rec.HWVersion >= 0 && *rec.HWVersion <= 0xFF {
			d.HardwareVersion, d.HasHardwareVersion = uint8(*rec.HWVersion), true
		}
		switch p := strings.ToLower(rec.PowerSource); {
		case strings.HasPrefix(p, "mains") || strings.HasPrefix(p, "dc"):
			d.PowerSource = PowerMains
		case strings.HasPrefix(p, "battery"):
			d.PowerSource = PowerBattery
		}
		d.Sleepy = rec.Type == "EndDevice" && d.PowerSource != PowerMains
		applyZ2MEndpoints(&d, rec.Endpoints)
		out = append(out, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

// applyZ2MEndpoints finds the OTA client endpoint (output cluster 0x0019) and the OTA attributes herdsman
// cached on it (genOta: currentFileVersion, imageTypeID, manufacturerID).
func applyZ2MEndpoints(d *Device, eps map[string]z2mEndpoint) {
	for key, ep := range eps {
		id := ep.EpID
		if id == 0 {
			id, _ = strconv.Atoi(key)
		}
		if id < 1 || id > 240 {
			continue
		}
		hasOTA := false
		for _, c := range ep.OutList {
			hasOTA = hasOTA || c == int(zcl.ClusterOTA)
		}
		ota, cached := ep.Clusters["genOta"]
		if !hasOTA && !cached {
			continue
		}
		if d.Endpoint == 0 || hasOTA {
			d.Endpoint = uint8(id)
		}
		if v, ok := z2mUint(ota.Attributes["currentFileVersion"], 0xFFFFFFFF); ok {
			d.FileVersion, d.HasFileVersion = uint32(v), true
		}
		if v, ok := z2mUint(ota.Attributes["imageTypeID"], 0xFFFF); ok {
			d.ImageType, d.HasImageType = uint16(v), true
		}
		if v, ok := z2mUint(ota.Attributes["manufacturerID"], 0xFFFF); ok {
			d.ManufacturerCode, d.HasManufacturerCode = uint16(v), true
		}
	}
}

func z2mUint(raw json.RawMessage, limit uint64) (uint64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var v uint64
	if json.Unmarshal(raw, &v) != nil || v > limit {
		return 0, false
	}
	return v, true
}

// readZ2MNames reads the friendly names: configuration.yaml's `devices:` (a map IEEE → options, or the
// name of a file, or a list of files, holding that map). A missing configuration.yaml gives no names.
func readZ2MNames(dir string) (map[zcl.IEEE]string, error) {
	names := map[zcl.IEEE]string{}
	path := filepath.Join(dir, Z2MConfiguration)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return names, nil
	}
	if err != nil {
		return nil, err
	}
	var conf struct {
		Devices yaml.Node `yaml:"devices"`
	}
	if err := yaml.Unmarshal(data, &conf); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var files []string
	switch conf.Devices.Kind {
	case 0:
		return names, nil
	case yaml.MappingNode:
		if err := addZ2MNames(names, &conf.Devices, path); err != nil {
			return nil, err
		}
	case yaml.ScalarNode:
		files = []string{conf.Devices.Value}
	case yaml.SequenceNode:
		if err := conf.Devices.Decode(&files); err != nil {
			return nil, fmt.Errorf("%s: devices: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("%s: devices: want a map of devices or file names", path)
	}
	for _, f := range files {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, f)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("devices file named in %s: %w", path, err)
		}
		var node yaml.Node
		if err := yaml.Unmarshal(b, &node); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if len(node.Content) == 0 {
			continue
		}
		if err := addZ2MNames(names, node.Content[0], p); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func addZ2MNames(names map[zcl.IEEE]string, m *yaml.Node, path string) error {
	var devs map[string]struct {
		FriendlyName string `yaml:"friendly_name"`
	}
	if err := m.Decode(&devs); err != nil {
		return fmt.Errorf("%s: devices: %w", path, err)
	}
	for k, v := range devs {
		ieee, err := zcl.ParseIEEE(k)
		if err != nil {
			return fmt.Errorf("%s: devices: %w", path, err)
		}
		if v.FriendlyName != "" {
			names[ieee] = v.FriendlyName
		}
	}
	return nil
}

// ParseZ2MBackup reads coordinator_backup.json (zigpy/open-coordinator-backup format as zigbee-herdsman
// writes it: pan_id a hex string, extended_pan_id the 8 bytes in the stick's (little-endian) order as hex).
func ParseZ2MBackup(data []byte) (Network, error) {
	var b struct {
		Metadata struct {
			Format string `json:"format"`
		} `json:"metadata"`
		PANID         string `json:"pan_id"`
		ExtendedPANID string `json:"extended_pan_id"`
		Channel       int    `json:"channel"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return Network{}, fmt.Errorf("not a coordinator backup: %w", err)
	}
	if b.Metadata.Format != "zigpy/open-coordinator-backup" {
		return Network{}, fmt.Errorf("metadata.format %q: want zigpy/open-coordinator-backup", b.Metadata.Format)
	}
	pan, err := strconv.ParseUint(strings.TrimPrefix(b.PANID, "0x"), 16, 16)
	if err != nil {
		return Network{}, fmt.Errorf("pan_id %q: %w", b.PANID, err)
	}
	raw, err := hex.DecodeString(b.ExtendedPANID)
	if err != nil || len(raw) != 8 {
		return Network{}, fmt.Errorf("extended_pan_id %q: want 16 hex digits", b.ExtendedPANID)
	}
	var ext uint64
	for i := 7; i >= 0; i-- {
		ext = ext<<8 | uint64(raw[i])
	}
	if b.Channel < 11 || b.Channel > 26 {
		return Network{}, fmt.Errorf("channel %d: want 11..26", b.Channel)
	}
	return Network{Channel: uint8(b.Channel), PANID: uint16(pan), ExtendedPANID: zcl.IEEE(ext)}, nil
}
