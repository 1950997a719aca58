package importer

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// Z2MDatabaseFixture is a database.db as zigbee-herdsman writes it (Device.toDatabaseEntry, one JSON object a
// line): the coordinator, an ESP32-C6 light (router, OTA client on endpoint 1) and a battery door sensor.
const z2mDatabaseFixture = `{"id":1,"type":"Coordinator","ieeeAddr":"0x00124b00c0dec0de","nwkAddr":0,"manufId":0,"epList":[],"endpoints":{},"interviewCompleted":true,"meta":{}}
{"id":2,"type":"Router","ieeeAddr":"0x00124b0000000001","nwkAddr":4097,"manufId":4891,"manufName":"Espressif","powerSource":"Mains (single phase)","modelId":"ESP32C6.Light","epList":[1],"endpoints":{"1":{"profId":260,"epId":1,"devId":256,"inClusterList":[0,3,6],"outClusterList":[25],"clusters":{"genBasic":{"attributes":{"modelId":"ESP32C6.Light"}},"genOta":{"attributes":{"currentFileVersion":16777216,"imageTypeID":1}}},"binds":[],"configuredReportings":[],"meta":{}}},"hwVersion":1,"dateCode":"20250101","swBuildId":"1.0.0","interviewCompleted":true,"meta":{}}
{"id":3,"type":"EndDevice","ieeeAddr":"0x00158d0000000003","nwkAddr":12291,"manufId":4447,"manufName":"LUMI","powerSource":"Battery","modelId":"lumi.sensor_magnet","epList":[1],"endpoints":{"1":{"profId":260,"epId":1,"devId":1026,"inClusterList":[0],"outClusterList":[25],"clusters":{},"binds":[],"configuredReportings":[],"meta":{}}},"interviewCompleted":true,"meta":{}}
`

const z2mBackupFixture = `{"metadata":{"format":"zigpy/open-coordinator-backup","version":1,"source":"zigbee-herdsman@10.9.5","internal":{"date":"2026-12-01T10:00:00.000Z","ezspVersion":13}},
"stack_specific":{"ezsp":{"hashed_tclk":"00000000000000000000000000000000"}},"coordinator_ieee":"dec0dec0004b1200","pan_id":"1a62","extended_pan_id":"0102030405060708",
"nwk_update_id":0,"security_level":5,"channel":15,"channel_mask":[15],"network_key":{"key":"01030507090b0d0f00020406080a0c0d","sequence_number":0,"frame_counter":1234},"devices":[]}`

// WriteZ2MFixture writes a Zigbee2MQTT data directory; names goes to configuration.yaml (inline) or, with
// separate, to devices.yaml named by it.
func writeZ2MFixture(t *testing.T, separate bool) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	write(Z2MDatabase, z2mDatabaseFixture)
	write(Z2MBackup, z2mBackupFixture)
	names := "  '0x00124b0000000001':\n    friendly_name: kitchen light\n  '0x00158d0000000003':\n    friendly_name: front door\n"
	if separate {
		write(Z2MConfiguration, "homeassistant: true\ndevices: devices.yaml\n")
		write("devices.yaml", strings.ReplaceAll(names, "\n  ", "\n")[2:])
	} else {
		write(Z2MConfiguration, "homeassistant: true\ndevices:\n"+names)
	}
	return dir
}

func TestReadZ2M(t *testing.T) {
	for _, separate := range []bool{false, true} {
		im, err := ReadZ2M(writeZ2MFixture(t, separate))
		require.NoError(t, err)
		require.Len(t, im.Devices, 2)
		assert.Equal(t, Device{IEEE: 0x00124b0000000001, NWK: 0x1001, FriendlyName: "kitchen light", Manufacturer: "Espressif",
			Model: "ESP32C6.Light", SWBuildID: "1.0.0", DateCode: "20250101", PowerSource: PowerMains, Endpoint: 1,
			HardwareVersion: 1, HasHardwareVersion: true, ManufacturerCode: 0x131b, HasManufacturerCode: true,
			ImageType: 1, HasImageType: true, FileVersion: 0x01000000, HasFileVersion: true}, im.Devices[0])
		assert.Equal(t, Device{IEEE: 0x00158d0000000003, NWK: 0x3003, FriendlyName: "front door", Manufacturer: "LUMI",
			Model: "lumi.sensor_magnet", PowerSource: PowerBattery, Sleepy: true, Endpoint: 1, ManufacturerCode: 0x115f,
			HasManufacturerCode: true}, im.Devices[1])
		// herdsman writes the extended PAN id in the stick's byte order (little endian).
		assert.Equal(t, &Network{Channel: 15, PANID: 0x1a62, ExtendedPANID: 0x0807060504030201}, im.Network)
	}
}

func TestReadZ2MRefusesDamagedFiles(t *testing.T) {
	cases := []struct {
		file, body, want string
	}{
		{Z2MDatabase, z2mDatabaseFixture[:300], "database.db: line 2: not a JSON device record"},
		{Z2MDatabase, `{"id":2,"type":"Router","nwkAddr":1}`, "line 1: no ieeeAddr"},
		{Z2MDatabase, `{"id":2,"type":"Router","ieeeAddr":"0x12"}`, "line 1: IEEE address"},
		{Z2MBackup, `{"metadata":{"format":"zigpy/open-coordinator-backup"},"pan_id":"zz","extended_pan_id":"0102030405060708","channel":15}`, `pan_id "zz"`},
		{Z2MBackup, `{"metadata":{"format":"something"}}`, "want zigpy/open-coordinator-backup"},
		{Z2MBackup, `{"metadata":`, "not a coordinator backup"},
		{Z2MConfiguration, "devices:\n  not-an-ieee:\n    friendly_name: x\n", "configuration.yaml: devices: IEEE address"},
		{Z2MConfiguration, "devices: missing.yaml\n", "devices file named in"},
	}
	for _, c := range cases {
		dir := writeZ2MFixture(t, false)
		require.NoError(t, os.WriteFile(filepath.Join(dir, c.file), []byte(c.body), 0o644))
		im, err := ReadZ2M(dir)
		assert.ErrorContains(t, err, c.want, c.file)
		assert.Empty(t, im.Devices, "a damaged import returned devices")
	}
	_, err := ReadZ2M(t.TempDir())
	assert.ErrorContains(t, err, "is "+"")
	assert.ErrorContains(t, err, "a Zigbee2MQTT data directory")
}

func TestCheckNetworkNamesTheDifference(t *testing.T) {
	im, err := ReadZ2M(writeZ2MFixture(t, false))
	require.NoError(t, err)
	same := ncp.NetworkInfo{Channel: 15, PANID: 0x1a62, ExtendedPANID: 0x0807060504030201}
	assert.NoError(t, im.CheckNetwork(same))
	other := ncp.NetworkInfo{Channel: 20, PANID: 0x1a62, ExtendedPANID: 0xdddddddddddddddd}
	err = im.CheckNetwork(other)
	assert.ErrorContains(t, err, "channel: the stick's is 20, the backup's 15")
	assert.ErrorContains(t, err, "extended PAN id: the stick's is 0xdddddddddddddddd, the backup's 0x0807060504030201")
	assert.NotContains(t, err.Error(), "PAN id: the stick's is 0x1a62")
}

// zhaSchema is the part of zigpy's schema v13 (zigpy/appdb_schemas/schema_v13.sql) the importer reads.
const zhaSchema = `
CREATE TABLE devices_vN (ieee ieee NOT NULL, nwk INTEGER NOT NULL, status INTEGER NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE endpoints_vN (ieee ieee NOT NULL, endpoint_id INTEGER NOT NULL, profile_id INTEGER NOT NULL, device_type INTEGER NOT NULL, status INTEGER NOT NULL);
CREATE TABLE out_clusters_vN (ieee ieee NOT NULL, endpoint_id INTEGER NOT NULL, cluster INTEGER NOT NULL);
CREATE TABLE node_descriptors_vN (ieee ieee NOT NULL, logical_type INTEGER NOT NULL, complex_descriptor_available INTEGER NOT NULL,
  user_descriptor_available INTEGER NOT NULL, reserved INTEGER NOT NULL, aps_flags INTEGER NOT NULL, frequency_band INTEGER NOT NULL,
  mac_capability_flags INTEGER NOT NULL, manufacturer_code INTEGER NOT NULL, maximum_buffer_size INTEGER NOT NULL,
  maximum_incoming_transfer_size INTEGER NOT NULL, server_mask INTEGER NOT NULL, maximum_outgoing_transfer_size INTEGER NOT NULL,
  descriptor_capability_field INTEGER NOT NULL);
CREATE TABLE attributes_cache_vN (ieee ieee NOT NULL, endpoint_id INTEGER NOT NULL, cluster INTEGER NOT NULL, attrid INTEGER NOT NULL, value BLOB NOT NULL, last_updated REAL NOT NULL);
CREATE TABLE network_backups_vN (id INTEGER PRIMARY KEY AUTOINCREMENT, backup_json TEXT NOT NULL);
INSERT INTO devices_vN VALUES ('00:12:4b:00:c0:de:c0:de', 0, 2, 0), ('00:12:4b:00:00:00:00:01', 4097, 2, 0), ('00:15:8d:00:00:00:00:03', 12291, 2, 0);
INSERT INTO out_clusters_vN VALUES ('00:12:4b:00:00:00:00:01', 1, 25), ('00:15:8d:00:00:00:00:03', 1, 25);
INSERT INTO node_descriptors_vN VALUES ('00:12:4b:00:00:00:00:01', 1, 0, 0, 0, 0, 8, 142, 4891, 82, 82, 0, 82, 0),
  ('00:15:8d:00:00:00:00:03', 2, 0, 0, 0, 0, 8, 128, 4447, 82, 82, 0, 82, 0);
INSERT INTO attributes_cache_vN VALUES
  ('00:12:4b:00:00:00:00:01', 1, 0, 4, 'Espressif', 0), ('00:12:4b:00:00:00:00:01', 1, 0, 5, 'ESP32C6.Light', 0),
  ('00:12:4b:00:00:00:00:01', 1, 0, 7, 1, 0), ('00:12:4b:00:00:00:00:01', 1, 25, 2, 16777216, 0), ('00:12:4b:00:00:00:00:01', 1, 25, 8, 1, 0),
  ('00:15:8d:00:00:00:00:03', 1, 0, 5, X'6c756d692e73656e736f725f6d61676e657400', 0), ('00:15:8d:00:00:00:00:03', 1, 0, 7, 3, 0);
INSERT INTO network_backups_vN (backup_json) VALUES ('{"backup_time":"2026-11-01T00:00:00","network_info":{"extended_pan_id":"aa:aa:aa:aa:aa:aa:aa:aa","pan_id":"0001","channel":11}}'),
  ('{"backup_time":"2026-12-01T00:00:00","network_info":{"extended_pan_id":"01:02:03:04:05:06:07:08","pan_id":"1A62","nwk_update_id":0,"channel":15,"channel_mask":[15],"security_level":5}}');
`

func writeZHAFixture(t *testing.T, version int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), ZHADatabase)
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	suffix := "_v" + map[int]string{12: "12", 13: "13", 9: "9"}[version]
	_, err = db.Exec(strings.ReplaceAll(zhaSchema, "_vN", suffix))
	require.NoError(t, err)
	_, err = db.Exec("PRAGMA user_version = " + map[int]string{12: "12", 13: "13", 9: "9"}[version])
	require.NoError(t, err)
	return path
}

func TestReadZHA(t *testing.T) {
	for _, v := range []int{12, 13} {
		path := writeZHAFixture(t, v)
		im, err := ReadZHA(filepath.Dir(path))
		require.NoError(t, err, "schema v%d", v)
		require.Len(t, im.Devices, 2)
		assert.Equal(t, Device{IEEE: 0x00124b0000000001, NWK: 0x1001, Manufacturer: "Espressif", Model: "ESP32C6.Light",
			PowerSource: PowerMains, Endpoint: 1, ManufacturerCode: 0x131b, HasManufacturerCode: true, ImageType: 1, HasImageType: true,
			FileVersion: 0x01000000, HasFileVersion: true}, im.Devices[0])
		assert.Equal(t, Device{IEEE: 0x00158d0000000003, NWK: 0x3003, Model: "lumi.sensor_magnet", PowerSource: PowerBattery,
			Sleepy: true, Endpoint: 1, ManufacturerCode: 0x115f, HasManufacturerCode: true}, im.Devices[1])
		assert.Equal(t, &Network{Channel: 15, PANID: 0x1a62, ExtendedPANID: zcl.IEEE(0x0102030405060708)}, im.Network, "the newest backup")
	}
}

func TestReadZHARefusesDamagedFiles(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), ZHADatabase)
	require.NoError(t, os.WriteFile(garbage, []byte("this is not an SQLite database, it is a text file of 64 bytes..."), 0o644))
	_, err := ReadZHA(garbage)
	assert.ErrorContains(t, err, "is not a readable SQLite database")

	_, err = ReadZHA(writeZHAFixture(t, 9))
	assert.ErrorContains(t, err, "schema v9; this otabridge reads v12 and v13")

	path := writeZHAFixture(t, 13)
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO network_backups_v13 (backup_json) VALUES ('{"network_info":{"extended_pan_id":"zz","pan_id":"1A62","channel":15}}')`)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO devices_v13 VALUES ('not-an-ieee', 5, 2, 0)`)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	before, _ := os.ReadFile(path)
	im, err := ReadZHA(path)
	assert.ErrorContains(t, err, "devices: IEEE address")
	assert.Empty(t, im.Devices)
	after, _ := os.ReadFile(path)
	assert.Equal(t, before, after, "the import changed the database")

	_, err = ReadZHA(filepath.Join(t.TempDir(), "none.db"))
	assert.ErrorContains(t, err, "zha import")
}
