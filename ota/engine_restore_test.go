package ota

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/zcl"
)

// When the store has nothing at start (the images folder is not mounted yet, the cache is unwritable), the
// approved and scheduled updates restored from the state file are kept — not failed, not cleared, and saved
// as they were — and go on once the images are back.
func TestRestoreKeepsApprovalsWhileImagesAreMissing(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 1000)
	r := newEngineRig(t, EngineConfig{}, img)
	startedTransfer(t, r, devA, img) // running
	r.block(devA, img.ImageID(), 0, 64)
	r.eng.SetDevice(mainsDevice(devB, 0x1234, 1, 1))
	_, err := r.eng.Schedule(devB, nil) // scheduled for its next query
	require.NoError(t, err)
	snap := r.eng.Snapshot()

	// Restart with an empty store.
	r2 := newEngineRig(t, EngineConfig{})
	r2.eng.Restore(snap)
	for _, ieee := range []zcl.IEEE{devA, devB} {
		st, ok := r2.eng.State(ieee)
		require.True(t, ok)
		assert.Equal(t, StateScheduled, st.State, "%s keeps its approval", ieee)
		assert.Empty(t, st.LastError)
	}
	again := r2.eng.Snapshot()
	for i, dd := range again.Devices {
		assert.True(t, dd.Approved, "%s saved approved", dd.IEEE)
		require.NotNil(t, dd.Target, "%s saved with its image", dd.IEEE)
		assert.Equal(t, img.ImageID(), dd.Target.ImageID)
		assert.Equal(t, snap.Devices[i].Target.ID, dd.Target.ID)
	}
	// Until the image is back, a query gets no image; nothing fails.
	assert.Equal(t, zcl.StatusNoImageAvailable, r2.query(devB, 0x1234, 1, 1).Status)

	// The images folder appears.
	r2.cat.images = []*Image{img}
	r2.eng.Refresh()
	st, _ := r2.eng.State(devA)
	assert.Contains(t, []State{StateQueued, StateUpdating}, st.State, "the interrupted transfer queues again")
	st, _ = r2.eng.State(devB)
	assert.Equal(t, StateScheduled, st.State)
	assert.Equal(t, zcl.StatusSuccess, r2.query(devB, 0x1234, 1, 1).Status, "the scheduled device is served")
}
