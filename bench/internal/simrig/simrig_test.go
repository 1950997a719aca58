package simrig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// storeWithImage writes one OTA file (manufacturer 0x1234, image type 1, version 2, n random bytes) and
// loads a store from it.
func storeWithImage(t *testing.T, n int) (*ota.Store, []byte) {
	t.Helper()
	payload := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	file, err := ota.Build(ota.Header{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 2}, []ota.BuildElement{{Data: payload}})
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "img.ota"), file, 0o644))
	store, err := ota.NewStore(ota.StoreConfig{Folder: dir, CacheDir: filepath.Join(dir, "cache")}, zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	require.NoError(t, store.Load(context.Background()))
	require.Len(t, store.Images(), 1)
	return store, file
}

func TestRigUpgradesDevicesByteExactAndVerifiesTheVersion(t *testing.T) {
	store, file := storeWithImage(t, 8_000)
	devs := []sim.DeviceConfig{
		{IEEE: 0x00124b0000000001, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 1, Profile: sim.ProfileESPv2},
		{IEEE: 0x00124b0000000002, ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 1, Profile: sim.ProfilePage},
	}
	var blocks, ends int
	obs := Observer{
		Sent: func(_ zcl.IEEE, h zcl.Header, _ []byte) {
			if h.CommandID == zcl.CmdImageBlockResponse {
				blocks++
			}
		},
		Received: func(_ zcl.IEEE, h zcl.Header, _ []byte) {
			if h.CommandID == zcl.CmdUpgradeEndRequest {
				ends++
			}
		},
	}
	rig, err := New(sim.Config{Seed: 3, Devices: devs}, ota.EngineConfig{}, store, obs, zerolog.Nop())
	require.NoError(t, err)
	defer rig.Close()
	for _, d := range devs {
		_, err := rig.Engine.Update(d.IEEE, nil)
		require.NoError(t, err)
	}
	done := func() bool {
		for _, d := range devs {
			if st, _ := rig.Engine.State(d.IEEE); st.State != ota.StateIdle || st.FinishedAt == nil {
				return false
			}
		}
		return true
	}
	require.True(t, rig.RunUntil(done, time.Hour), "every device verified on the new version")
	region := file[bytes.Index(file, []byte{0x1E, 0xF1, 0xEE, 0x0B}):]
	for _, d := range devs {
		st, _ := rig.Engine.State(d.IEEE)
		require.NotNil(t, st.InstalledVersion)
		assert.Equal(t, uint32(2), *st.InstalledVersion, "the engine read the new version back")
		ds := rig.Net.Device(d.IEEE).Status()
		assert.Equal(t, uint32(2), ds.FileVersion)
		assert.Equal(t, sha256.Sum256(region), ds.ReceivedSHA256, "byte-exact")
	}
	assert.Positive(t, blocks)
	assert.Equal(t, 2, ends)
	assert.Equal(t, 2, rig.Events()[ota.EventFinished])
	assert.Positive(t, rig.Now())
}

func TestNewRefusesABadNetwork(t *testing.T) {
	store, _ := storeWithImage(t, 100)
	_, err := New(sim.Config{Devices: []sim.DeviceConfig{{IEEE: 0}}}, ota.EngineConfig{}, store, Observer{}, zerolog.Nop())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "radio.sim.devices[0].ieee")
}
