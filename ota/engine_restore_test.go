package ota

import (
	"testing"
	"time"

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

// A transfer interrupted by a restart, on an engine whose clock starts again (the simulated network's
// virtual clock), finishes with the from_version it started with, wall-clock timestamps and a duration that
// is never negative, even with the wall clock set back in between.
func TestRestoredTransferKeepsFromVersionAndWallTimes(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 0x20, 500)
	wall := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	r := newEngineRig(t, EngineConfig{}, img)
	r.eng.SetWallClock(func() time.Time { return wall })
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 0x10))
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	r.query(devA, 0x1234, 1, 0x10)
	r.block(devA, img.ImageID(), 0, 64)
	snap := r.eng.Snapshot()

	wall = wall.Add(-time.Hour) // and the wall clock is set back before the restart
	r2 := newEngineRig(t, EngineConfig{}, img)
	r2.eng.SetWallClock(func() time.Time { return wall })
	r2.eng.Restore(snap)
	r2.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 0x10))
	r2.download(devA, img.ImageID(), img.Size(), 64)
	r2.upgradeEnd(devA, zcl.StatusSuccess, img.ImageID())
	r2.eng.DeviceAnnounced(devA)
	r2.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 0x20))

	var fin *Event
	for i := range r2.out.events {
		if r2.out.events[i].Type == EventFinished {
			fin = &r2.out.events[i]
		}
	}
	require.NotNil(t, fin, "ota_finished")
	assert.Equal(t, "0x00000010", fin.Data["from_version"])
	assert.GreaterOrEqual(t, fin.Data["seconds"], 0.0)
	st := r2.out.lastState(devA)
	require.NotNil(t, st.StartedAt)
	require.NotNil(t, st.FinishedAt)
	assert.Equal(t, time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), *st.StartedAt, "started_at is the wall time of the start")
	assert.Equal(t, wall, *st.FinishedAt)
	assert.Equal(t, wall, st.ChangedAt)
}
