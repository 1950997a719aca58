package ota

import (
	"bytes"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/zcl"
)

func TestFragmentedBlockSize(t *testing.T) {
	cases := []struct {
		name       string
		cfg        EngineConfig
		model      string
		clientMax  uint8
		fragmented int // the radio's fragmented limit (0: it cannot fragment)
		want       int
	}{
		{"seed client on a fragmenting radio", EngineConfig{}, "TestModel", 223, 255, 223},
		{"the radio's fragmented limit", EngineConfig{}, "TestModel", 223, 200, 183},
		{"radio cannot fragment", EngineConfig{}, "TestModel", 223, 0, 65},
		{"client fits one frame", EngineConfig{}, "TestModel", 64, 255, 64},
		{"configured cap", EngineConfig{MaxBlockSize: 100}, "TestModel", 223, 255, 100},
		{"fragmentation disabled", EngineConfig{Fragmentation: FragmentationConfig{Disabled: true}}, "TestModel", 223, 255, 65},
		{"manufacturer quirk", EngineConfig{Fragmentation: FragmentationConfig{ManufacturerCodes: []uint16{0x1234}}}, "TestModel", 223, 255, 65},
		{"model quirk", EngineConfig{Fragmentation: FragmentationConfig{Models: []string{"TestModel"}}}, "TestModel", 223, 255, 65},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := makeImage(t, 0x1234, 1, 2, 1000)
			r := newEngineRig(t, c.cfg, img)
			r.eng.SetMaxAPSPayload(82)
			r.eng.SetMaxFragmentedPayload(c.fragmented)
			info := mainsDevice(devA, 0x1234, 1, 1)
			info.Model = c.model
			r.eng.SetDevice(info)
			_, err := r.eng.Update(devA, nil)
			require.NoError(t, err)
			require.Equal(t, zcl.StatusSuccess, r.query(devA, 0x1234, 1, 1).Status)
			assert.Len(t, r.block(devA, img.ImageID(), 0, c.clientMax).Data, c.want)
		})
	}
}

// fragmentingTransfer is a transfer of a 5000-byte image to devA started on a radio that fragments up to
// 255 bytes (82 unfragmented).
func fragmentingTransfer(t *testing.T) (*Image, *engineRig) {
	t.Helper()
	img := makeImage(t, 0x1234, 1, 2, 5000)
	r := newEngineRig(t, EngineConfig{}, img)
	r.eng.SetMaxAPSPayload(82)
	r.eng.SetMaxFragmentedPayload(255)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	require.Equal(t, zcl.StatusSuccess, r.query(devA, 0x1234, 1, 1).Status)
	return img, r
}

func TestFragmentFailuresFallBackAndAreRemembered(t *testing.T) {
	img, r := fragmentingTransfer(t)
	id := img.ImageID()

	// Blocks that arrive: the client moves on, fragments stay.
	require.Len(t, r.block(devA, id, 0, 223).Data, 223)
	require.Len(t, r.block(devA, id, 223, 223).Data, 223)
	// One repeat (a lost block) is not yet a failure.
	require.Len(t, r.block(devA, id, 223, 223).Data, 223)
	require.Len(t, r.block(devA, id, 446, 223).Data, 223)
	durableBefore := r.out.durableChanges()
	var logs bytes.Buffer
	r.eng.mu.Lock()
	r.eng.log = zerolog.New(&logs)
	r.eng.mu.Unlock()
	// Two requests in a row for the same fragmented block: the client does not get fragments.
	require.Len(t, r.block(devA, id, 446, 223).Data, 223)
	assert.Len(t, r.block(devA, id, 446, 223).Data, 65, "second repeat: unfragmented from now on")
	assert.Len(t, r.block(devA, id, 511, 223).Data, 65)
	assert.Greater(t, r.out.durableChanges(), durableBefore, "the fallback is saved")
	// The sentence addon/DOCS.md tells users to look for, with the device.
	assert.Contains(t, logs.String(), `"message":"fragmented blocks fail for this device: unfragmented blocks from now on"`)
	assert.Contains(t, logs.String(), devA.String())

	snap := r.eng.Snapshot()
	require.Len(t, snap.Devices, 1)
	assert.True(t, snap.Devices[0].NoFragments)

	// A restarted engine remembers it.
	r2 := newEngineRig(t, EngineConfig{}, img)
	r2.eng.SetMaxAPSPayload(82)
	r2.eng.SetMaxFragmentedPayload(255)
	r2.eng.Restore(snap)
	assert.Len(t, r2.block(devA, id, 576, 223).Data, 65)
}

func TestAbortAfterAFragmentedBlockFallsBack(t *testing.T) {
	img, r := fragmentingTransfer(t)
	require.Len(t, r.block(devA, img.ImageID(), 0, 223).Data, 223)
	r.upgradeEnd(devA, zcl.StatusAbort, img.ImageID())
	snap := r.eng.Snapshot()
	require.Len(t, snap.Devices, 1)
	assert.True(t, snap.Devices[0].NoFragments, "a client that gave up right after a fragmented block falls back")
}

func (o *recOutput) durableChanges() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.durable
}

func TestEngineOnSimServesFragmentedBlocksAndFallsBack(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 20_000)
	for _, c := range []struct {
		name        string
		link        string
		device      string
		largest     int
		noFragments bool
	}{
		{"esp-v2 client with fragmentation", realisticLink, "profile: esp-v2", 223, false},
		{"esp-v2 client, 5 % loss", realisticLink + "\n  loss: 0.05", "profile: esp-v2", 223, false},
		{"window 1, 10 ms interval", realisticLink + "\n  fragment_window: 1\n  fragment_interval: 10ms", "profile: esp-v2", 223, false},
		{"client without APS fragmentation", realisticLink, "profile: esp-v2\naps_fragmentation: false", 223, true},
		{"radio without fragmentation", realisticLink + "\n  max_fragmented_payload: -1", "profile: esp-v2", 65, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newSimRig(t, netYAML(c.link, deviceYAML(devA, c.device)), EngineConfig{}, img)
			r.h.Run(time.Second)
			_, err := r.eng.Update(devA, nil)
			require.NoError(t, err)
			require.Equal(t, StateIdle, r.runUntilState(devA, 2*time.Hour, StateIdle, StateFailed))
			r.assertUpgraded(devA, img)
			sizes := r.out.blocks
			largest := 0
			for n := range sizes {
				largest = max(largest, n)
			}
			t.Logf("block sizes served: %v", sizes)
			snap := r.eng.Snapshot()
			require.Len(t, snap.Devices, 1)
			assert.Equal(t, c.noFragments, snap.Devices[0].NoFragments)
			if c.noFragments {
				assert.Equal(t, 2, sizes[223], "two tries of the first fragmented block, then the fallback")
				assert.Positive(t, sizes[65], "the rest in unfragmented blocks")
			}
			assert.Equal(t, c.largest, largest)
		})
	}
}
