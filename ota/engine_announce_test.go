package ota

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/zcl"
)

// A device that announces itself while its transfer holds a slot has rebooted and lost its download (here:
// after a bridge restart, whose state was restored): it gets a unicast Image Notify at once, queries, is
// offered the approved image again, and downloads it from offset 0; the restored progress record is kept.
func TestAnnounceDuringTransferSendsImageNotify(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 1000)
	r := newEngineRig(t, EngineConfig{}, img)
	startedTransfer(t, r, devA, img)
	r.block(devA, img.ImageID(), 0, 64)
	r.block(devA, img.ImageID(), 64, 64)
	snap := r.eng.Snapshot()

	r2 := newEngineRig(t, EngineConfig{}, img)
	r2.eng.Restore(snap)
	assert.Empty(t, r2.out.take(), "a restored running transfer waits for the device")

	r2.eng.DeviceAnnounced(devA)
	notify := r2.only(devA, zcl.CmdImageNotify)
	n, err := zcl.DecodeImageNotify(notify.payload)
	require.NoError(t, err)
	assert.Equal(t, zcl.ImageNotify{PayloadType: 0, QueryJitter: 100}, n)
	st := r2.out.lastState(devA)
	assert.Equal(t, StateUpdating, st.State)
	assert.Equal(t, uint32(128), st.Bytes, "the restored progress record is kept")

	resp := r2.query(devA, 0x1234, 1, 1)
	require.Equal(t, zcl.StatusSuccess, resp.Status, "the approved image is offered again without a new request")
	assert.Equal(t, servable(t, img), r2.download(devA, img.ImageID(), img.Size(), 64))
	require.Equal(t, zcl.CmdUpgradeEndResponse, r2.upgradeEnd(devA, zcl.StatusSuccess, img.ImageID()).header.CommandID)
	assert.Equal(t, StateWaitingReboot, r2.out.lastState(devA).State)
}

// An announce of a device with no running transfer sends nothing.
func TestAnnounceWithoutTransferSendsNothing(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 1000)
	r := newEngineRig(t, EngineConfig{}, img)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	r.out.take()
	r.eng.DeviceAnnounced(devA)
	r.eng.DeviceAnnounced(devB) // unknown
	assert.Empty(t, r.out.take())
	assert.Equal(t, StateAvailable, r.out.lastState(devA).State)
}
