package importer

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // pure-Go SQLite (no cgo): reads ZHA's zigbee.db

	"github.com/otabridge/otabridge/zcl"
)

// ZHADatabase is the name of ZHA's zigpy database in Home Assistant's configuration directory.
const ZHADatabase = "zigbee.db"

// ReadZHA reads a zigpy database (schema v12 or v13): path is zigbee.db or the directory holding it. The
// database is opened read-only.
func ReadZHA(path string) (Import, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, ZHADatabase)
	}
	im := Import{Source: "zha", Path: path}
	if _, err := os.Stat(path); err != nil {
		return Import{}, fmt.Errorf("zha import: %w", err)
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return Import{}, fmt.Errorf("zha import: open %s: %w", path, err)
	}
	defer db.Close()
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil {
		return Import{}, fmt.Errorf("zha import: %s is not a readable SQLite database: %w", path, err)
	}
	if version != 12 && version != 13 {
		return Import{}, fmt.Errorf("zha import: %s: zigpy database schema v%d; this otabridge reads v12 and v13", path, version)
	}
	r := zhaReader{db: db, v: fmt.Sprintf("_v%d", version)}
	devs, err := r.devices()
	if err != nil {
		return Import{}, fmt.Errorf("zha import: %s: %w", path, err)
	}
	im.Devices = devs
	n, err := r.network()
	if err != nil {
		return Import{}, fmt.Errorf("zha import: %s: %w", path, err)
	}
	im.Network = n
	return im, nil
}

type zhaReader struct {
	db *sql.DB
	v  string // table suffix, "_v13"
}

func (r zhaReader) query(q string, f func(*sql.Rows) error) error {
	rows, err := r.db.Query(strings.ReplaceAll(q, "_vN", r.v))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// parseZigpyIEEE reads zigpy's "00:12:4b:00:1c:a1:b8:46" (most significant byte first).
func parseZigpyIEEE(s string) (zcl.IEEE, error) {
	return zcl.ParseIEEE(strings.ReplaceAll(s, ":", ""))
}

func (r zhaReader) devices() ([]Device, error) {
	var out []Device
	index := map[zcl.IEEE]int{}
	err := r.query("SELECT ieee, nwk FROM devices_vN ORDER BY ieee", func(rows *sql.Rows) error {
		var ieeeS string
		var nwk int64
		if err := rows.Scan(&ieeeS, &nwk); err != nil {
			return fmt.Errorf("devices: %w", err)
		}
		ieee, err := parseZigpyIEEE(ieeeS)
		if err != nil {
			return fmt.Errorf("devices: %w", err)
		}
		if nwk < 0 || nwk > 0xFFFF {
			return fmt.Errorf("devices: %s: nwk %d out of range", ieee, nwk)
		}
		if nwk == 0 {
			return nil // the coordinator
		}
		index[ieee] = len(out)
		out = append(out, Device{IEEE: ieee, NWK: uint16(nwk), PowerSource: PowerUnknown})
		return nil
	})
	if err != nil {
		return nil, err
	}
	get := func(s string) (*Device, error) {
		ieee, err := parseZigpyIEEE(s)
		if err != nil {
			return nil, err
		}
		if i, ok := index[ieee]; ok {
			return &out[i], nil
		}
		return nil, nil // the coordinator, or a row of a device that is gone
	}
	err = r.query("SELECT ieee, logical_type, mac_capability_flags, manufacturer_code FROM node_descriptors_vN", func(rows *sql.Rows) error {
		var s string
		var logical, caps, mfr int64
		if err := rows.Scan(&s, &logical, &caps, &mfr); err != nil {
			return fmt.Errorf("node_descriptors: %w", err)
		}
		d, err := get(s)
		if err != nil || d == nil {
			return err
		}
		d.Sleepy = caps&0x08 == 0
		if caps&0x04 != 0 {
			d.PowerSource = PowerMains
		}
		if mfr >= 0 && mfr <= 0xFFFF && !d.HasManufacturerCode {
			d.ManufacturerCode, d.HasManufacturerCode = uint16(mfr), true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.query("SELECT ieee, endpoint_id FROM out_clusters_vN WHERE cluster = 25 ORDER BY endpoint_id DESC", func(rows *sql.Rows) error {
		var s string
		var ep int64
		if err := rows.Scan(&s, &ep); err != nil {
			return fmt.Errorf("out_clusters: %w", err)
		}
		d, err := get(s)
		if err != nil || d == nil || ep < 1 || ep > 240 {
			return err
		}
		d.Endpoint = uint8(ep)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.query("SELECT ieee, cluster, attrid, value FROM attributes_cache_vN WHERE cluster IN (0, 25)", func(rows *sql.Rows) error {
		var s string
		var cluster, attr int64
		var value any
		if err := rows.Scan(&s, &cluster, &attr, &value); err != nil {
			return fmt.Errorf("attributes_cache: %w", err)
		}
		d, err := get(s)
		if err != nil || d == nil {
			return err
		}
		applyZHAAttribute(d, uint16(cluster), uint16(attr), value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// applyZHAAttribute stores one cached attribute: Basic 0x0003 HW version, 0x0004 manufacturer, 0x0005
// model, 0x0006 date code, 0x0007 power source, 0x4000 SW build id; OTA 0x0002 current file version,
// 0x0007 manufacturer id, 0x0008 image type id. zigpy stores strings as TEXT (or BLOB), numbers as INTEGER.
func applyZHAAttribute(d *Device, cluster, attr uint16, value any) {
	str := func() (string, bool) {
		switch v := value.(type) {
		case string:
			return clean(v), true
		case []byte:
			return clean(string(v)), true
		}
		return "", false
	}
	num := func(limit uint64) (uint64, bool) {
		var n uint64
		switch v := value.(type) {
		case int64:
			if v < 0 {
				return 0, false
			}
			n = uint64(v)
		case string:
			p, err := strconv.ParseUint(v, 0, 64)
			if err != nil {
				return 0, false
			}
			n = p
		case []byte:
			p, err := strconv.ParseUint(string(v), 0, 64)
			if err != nil {
				return 0, false
			}
			n = p
		default:
			return 0, false
		}
		return n, n <= limit
	}
	switch {
	case cluster == zcl.ClusterBasic && attr == 0x0004:
		d.Manufacturer, _ = str()
	case cluster == zcl.ClusterBasic && attr == 0x0005:
		d.Model, _ = str()
	case cluster == zcl.ClusterBasic && attr == 0x0006:
		d.DateCode, _ = str()
	case cluster == zcl.ClusterBasic && attr == 0x4000:
		d.SWBuildID, _ = str()
	case cluster == zcl.ClusterBasic && attr == 0x0003:
		if v, ok := num(0xFF); ok {
			d.HardwareVersion, d.HasHardwareVersion = uint8(v), true
		}
	case cluster == zcl.ClusterBasic && attr == 0x0007:
		if v, ok := num(0xFF); ok {
			d.PowerSource = PowerSourceFromBasic(uint8(v))
		}
	case cluster == zcl.ClusterOTA && attr == 0x0002:
		if v, ok := num(0xFFFFFFFF); ok {
			d.FileVersion, d.HasFileVersion = uint32(v), true
		}
	case cluster == zcl.ClusterOTA && attr == 0x0007:
		if v, ok := num(0xFFFF); ok {
			d.ManufacturerCode, d.HasManufacturerCode = uint16(v), true
		}
	case cluster == zcl.ClusterOTA && attr == 0x0008:
		if v, ok := num(0xFFFF); ok {
			d.ImageType, d.HasImageType = uint16(v), true
		}
	}
}

// network reads the newest network backup (zigpy's NetworkBackup JSON: network_info.channel, pan_id as
// hex, extended_pan_id as "dd:dd:…" most significant byte first); nil when there is none.
func (r zhaReader) network() (*Network, error) {
	var raw string
	err := r.db.QueryRow(strings.ReplaceAll("SELECT backup_json FROM network_backups_vN ORDER BY id DESC LIMIT 1", "_vN", r.v)).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("network_backups: %w", err)
	}
	n, err := ParseZigpyBackup([]byte(raw))
	if err != nil {
		return nil, fmt.Errorf("network_backups: %w", err)
	}
	return &n, nil
}

// ParseZigpyBackup reads the network of a zigpy network backup JSON.
func ParseZigpyBackup(data []byte) (Network, error) {
	var b struct {
		NetworkInfo *struct {
			ExtendedPANID string          `json:"extended_pan_id"`
			PANID         json.RawMessage `json:"pan_id"`
			Channel       int             `json:"channel"`
		} `json:"network_info"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return Network{}, fmt.Errorf("backup JSON: %w", err)
	}
	if b.NetworkInfo == nil {
		return Network{}, errors.New("backup JSON: no network_info")
	}
	ni := b.NetworkInfo
	ext, err := parseZigpyIEEE(ni.ExtendedPANID)
	if err != nil {
		return Network{}, fmt.Errorf("backup JSON: extended_pan_id: %w", err)
	}
	var pan uint64
	var s string
	if json.Unmarshal(ni.PANID, &s) == nil {
		pan, err = strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 16)
	} else {
		err = json.Unmarshal(ni.PANID, &pan)
		if err == nil && pan > 0xFFFF {
			err = fmt.Errorf("%d out of range", pan)
		}
	}
	if err != nil {
		return Network{}, fmt.Errorf("backup JSON: pan_id %s: %v", ni.PANID, err)
	}
	if ni.Channel < 11 || ni.Channel > 26 {
		return Network{}, fmt.Errorf("backup JSON: channel %d: want 11..26", ni.Channel)
	}
	return Network{Channel: uint8(ni.Channel), PANID: uint16(pan), ExtendedPANID: ext}, nil
}
