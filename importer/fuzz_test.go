package importer

import "testing"

// The parsers of the other hosts' files never panic on any input.
func FuzzParseZ2MDatabase(f *testing.F) {
	f.Add([]byte(z2mDatabaseFixture))
	f.Add([]byte(`{"ieeeAddr":"0x00124b0000000001","nwkAddr":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		devs, err := ParseZ2MDatabase(b)
		if err != nil && len(devs) > 0 {
			t.Fatal("devices returned with an error")
		}
	})
}

func FuzzParseZ2MBackup(f *testing.F) {
	f.Add([]byte(z2mBackupFixture))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseZ2MBackup(b) })
}

func FuzzParseZigpyBackup(f *testing.F) {
	f.Add([]byte(`{"network_info":{"extended_pan_id":"01:02:03:04:05:06:07:08","pan_id":"1A62","channel":15}}`))
	f.Add([]byte(`{"network_info":{"extended_pan_id":"01:02:03:04:05:06:07:08","pan_id":6754,"channel":15}}`))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseZigpyBackup(b) })
}
