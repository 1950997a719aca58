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

const (
	devA zcl.IEEE = 0x00124b0000000001
	devB zcl.IEEE = 0x00124b0000000002
	devC zcl.IEEE = 0x00124b0000000003
)

func mainsDevice(ieee zcl.IEEE, mfr, typ uint16, ver uint32) DeviceInfo {
	return DeviceInfo{IEEE: ieee, Model: "TestModel", ManufacturerCode: mfr, ImageType: typ, FileVersion: ver,
		FileVersionKnown: true}
}

func TestQueryWithoutImageAnswersNoImage(t *testing.T) {
	r := newEngineRig(t, EngineConfig{})
	resp := r.query(devA, 0x1234, 0x0001, 0x10)
	assert.Equal(t, zcl.StatusNoImageAvailable, resp.Status)
	st, ok := r.eng.State(devA)
	require.True(t, ok)
	assert.Equal(t, StateIdle, st.State)
	assert.Contains(t, r.out.eventTypes(), EventQuery)
}

// The whole manual flow of DESIGN.md: the device asks, is refused and waits for approval; approve sends a
// unicast Image Notify; the next query succeeds; blocks; upgrade end; reboot; new version read back.
func TestManualApprovalFullUpgrade(t *testing.T) {
	img := makeImage(t, 0x1234, 0x0001, 0x20, 3000)
	r := newEngineRig(t, EngineConfig{}, img)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 0x0001, 0x10))
	assert.Equal(t, StateAvailable, r.out.lastState(devA).State)

	resp := r.query(devA, 0x1234, 0x0001, 0x10)
	assert.Equal(t, zcl.StatusNoImageAvailable, resp.Status, "manual policy: nothing installs unless asked")
	assert.Equal(t, StateApprovalPending, r.out.lastState(devA).State)
	assert.Contains(t, r.out.eventTypes(), EventApprovalNeeded)

	// A block request before approval is refused.
	assert.Equal(t, zcl.StatusAbort, r.block(devA, img.ImageID(), 0, 64).Status)

	_, err := r.eng.Approve(devA)
	require.NoError(t, err)
	notify := r.only(devA, zcl.CmdImageNotify)
	n, err := zcl.DecodeImageNotify(notify.payload)
	require.NoError(t, err)
	assert.Equal(t, zcl.ImageNotify{PayloadType: 0, QueryJitter: 100}, n)
	assert.Equal(t, StateUpdating, r.out.lastState(devA).State)
	assert.Contains(t, r.out.eventTypes(), EventStarted)

	resp = r.query(devA, 0x1234, 0x0001, 0x10)
	require.Equal(t, zcl.StatusSuccess, resp.Status)
	assert.Equal(t, img.ImageID(), zcl.ImageID{ManufacturerCode: resp.ManufacturerCode, ImageType: resp.ImageType, FileVersion: resp.FileVersion})
	assert.Equal(t, img.Size(), resp.ImageSize)

	got := r.download(devA, img.ImageID(), resp.ImageSize, 50)
	assert.Equal(t, servable(t, img), got, "served bytes are the image, byte for byte")
	// Retries are idempotent: the same offset gives the same bytes.
	again := r.block(devA, img.ImageID(), 100, 50)
	assert.Equal(t, got[100:150], again.Data)

	end := r.upgradeEnd(devA, zcl.StatusSuccess, img.ImageID())
	require.Equal(t, zcl.CmdUpgradeEndResponse, end.header.CommandID)
	uer, err := zcl.DecodeUpgradeEndResponse(end.payload)
	require.NoError(t, err)
	assert.Equal(t, zcl.UpgradeEndResponse{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 0x20, CurrentTime: 0, UpgradeTime: 0}, uer)
	assert.Equal(t, StateWaitingReboot, r.out.lastState(devA).State)

	r.eng.DeviceAnnounced(devA)
	assert.Equal(t, StateVerifying, r.out.lastState(devA).State)
	assert.Equal(t, []zcl.IEEE{devA}, r.out.interviews)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 0x0001, 0x20))
	st := r.out.lastState(devA)
	assert.Equal(t, StateIdle, st.State)
	require.NotNil(t, st.InstalledVersion)
	assert.Equal(t, uint32(0x20), *st.InstalledVersion)
	assert.Equal(t, uint32(0x10), *st.FromVersion)
	assert.Equal(t, uint32(0x20), *st.ToVersion)
	assert.Contains(t, r.out.eventTypes(), EventFinished)
}

func TestVerificationFailsWhenOldVersionReadBack(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 0x20, 500)
	r := newEngineRig(t, EngineConfig{}, img)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 0x10))
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	r.query(devA, 0x1234, 1, 0x10)
	r.download(devA, img.ImageID(), img.Size(), 64)
	r.upgradeEnd(devA, zcl.StatusSuccess, img.ImageID())
	r.eng.DeviceAnnounced(devA)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 0x10))
	st := r.out.lastState(devA)
	assert.Equal(t, StateFailed, st.State)
	assert.Contains(t, st.LastError, "reports version 0x00000010 after the upgrade, expected 0x00000020")
}

func TestVerificationTimesOutWithoutNewVersion(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 0x20, 500)
	r := newEngineRig(t, EngineConfig{VerifyTimeout: time.Minute, VerifyAttempts: 2}, img)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 0x10))
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	r.query(devA, 0x1234, 1, 0x10)
	r.download(devA, img.ImageID(), img.Size(), 64)
	r.upgradeEnd(devA, zcl.StatusSuccess, img.ImageID())
	r.clk.RunFor(10 * time.Minute)
	st := r.out.lastState(devA)
	assert.Equal(t, StateFailed, st.State)
	assert.Contains(t, st.LastError, "did not report the new version")
	assert.Len(t, r.out.interviews, 2, "the version was read VerifyAttempts times")
}

func TestBlockSizeIsTheSmallestLimit(t *testing.T) {
	cases := []struct {
		name      string
		mfr       uint16
		clientMax uint8
		cfgCap    int
		radio     int
		byMfr     map[uint16]int
		want      int
	}{
		{"client asks less", 0x1234, 40, 64, 82, nil, 40},
		{"configured cap", 0x1234, 223, 64, 0, nil, 64},
		{"radio limit minus 17", 0x1234, 223, 200, 82, nil, 65},
		{"Insta quirk", 0x117A, 223, 64, 82, nil, 40},
		{"Dresden Elektronik quirk", 0x1135, 64, 64, 82, nil, 40},
		{"configured per-manufacturer cap", 0x1234, 223, 64, 82, map[uint16]int{0x1234: 32}, 32},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := makeImage(t, c.mfr, 1, 2, 1000)
			r := newEngineRig(t, EngineConfig{MaxBlockSize: c.cfgCap, BlockSizeByManufacturer: c.byMfr}, img)
			r.eng.SetMaxAPSPayload(c.radio)
			r.eng.SetDevice(mainsDevice(devA, c.mfr, 1, 1))
			_, err := r.eng.Update(devA, nil)
			require.NoError(t, err)
			require.Equal(t, zcl.StatusSuccess, r.query(devA, c.mfr, 1, 1).Status)
			resp := r.block(devA, img.ImageID(), 0, c.clientMax)
			assert.Len(t, resp.Data, c.want)
			// The last block is cut at the image end.
			last := r.block(devA, img.ImageID(), img.Size()-3, c.clientMax)
			assert.Len(t, last.Data, 3)
		})
	}
}

func startedTransfer(t *testing.T, r *engineRig, ieee zcl.IEEE, img *Image) {
	t.Helper()
	id := img.ImageID()
	r.eng.SetDevice(mainsDevice(ieee, id.ManufacturerCode, id.ImageType, id.FileVersion-1))
	_, err := r.eng.Update(ieee, nil)
	require.NoError(t, err)
	require.Equal(t, zcl.StatusSuccess, r.query(ieee, id.ManufacturerCode, id.ImageType, id.FileVersion-1).Status)
}

func TestOffsetPastTheEndAndForeignImage(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 1000)
	r := newEngineRig(t, EngineConfig{}, img)
	startedTransfer(t, r, devA, img)
	assert.Equal(t, zcl.StatusMalformedCommand, r.block(devA, img.ImageID(), img.Size(), 64).Status)
	other := img.ImageID()
	other.FileVersion = 99
	assert.Equal(t, zcl.StatusAbort, r.block(devA, other, 0, 64).Status)
	assert.Equal(t, zcl.StatusAbort, r.block(devB, img.ImageID(), 0, 64).Status, "a device never offered the image")
}

func TestAbortMidTransfer(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 2000)
	r := newEngineRig(t, EngineConfig{}, img)
	startedTransfer(t, r, devA, img)
	r.block(devA, img.ImageID(), 0, 64)
	require.NoError(t, r.eng.Abort(devA))
	st := r.out.lastState(devA)
	assert.Equal(t, StateFailed, st.State)
	assert.Equal(t, "aborted", st.LastError)
	assert.Contains(t, r.out.eventTypes(), EventAborted)
	assert.Equal(t, zcl.StatusAbort, r.block(devA, img.ImageID(), 64, 64).Status, "the next block response carries ABORT")
	active, _ := r.eng.Counts()
	assert.Equal(t, 0, active)
	assert.Error(t, r.eng.Abort(devA), "nothing left to abort")

	// The failed attempt's target stays visible (state failed) until a check makes the image available
	// again: then the target is gone.
	require.NotNil(t, r.out.lastState(devA).Target, "failed: the target says what failed")
	res, err := r.eng.Check(devA)
	require.NoError(t, err)
	assert.True(t, res.UpdateAvailable)
	st = r.out.lastState(devA)
	assert.Equal(t, StateAvailable, st.State)
	assert.Nil(t, st.Target)
	assert.Empty(t, st.LastError)
}

func TestUpgradeEndFailureGetsDefaultResponse(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 500)
	r := newEngineRig(t, EngineConfig{}, img)
	startedTransfer(t, r, devA, img)
	r.download(devA, img.ImageID(), img.Size(), 64)
	f := r.upgradeEnd(devA, zcl.StatusInvalidImage, img.ImageID())
	assert.Equal(t, zcl.FrameTypeGlobal, f.header.FrameType)
	require.Equal(t, zcl.CmdDefaultResponse, f.header.CommandID, "spec: a failed Upgrade End Request gets a Default Response")
	dr, err := zcl.DecodeDefaultResponse(f.payload)
	require.NoError(t, err)
	assert.Equal(t, zcl.DefaultResponse{CommandID: zcl.CmdUpgradeEndRequest, Status: zcl.StatusSuccess}, dr)
	st := r.out.lastState(devA)
	assert.Equal(t, StateFailed, st.State)
	assert.Equal(t, "device reported INVALID_IMAGE at the end of the transfer", st.LastError)
}

func TestUpgradeEndSuccessBeforeDownloadIsRefused(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 500)
	r := newEngineRig(t, EngineConfig{}, img)
	startedTransfer(t, r, devA, img)
	f := r.upgradeEnd(devA, zcl.StatusSuccess, img.ImageID())
	require.Equal(t, zcl.CmdDefaultResponse, f.header.CommandID)
	dr, err := zcl.DecodeDefaultResponse(f.payload)
	require.NoError(t, err)
	assert.Equal(t, zcl.StatusAbort, dr.Status)
	assert.Equal(t, StateFailed, r.out.lastState(devA).State)
}

func TestMalformedAndUnsupportedRequests(t *testing.T) {
	r := newEngineRig(t, EngineConfig{})
	cases := []struct {
		name  string
		frame []byte
		want  zcl.Status
	}{
		{"short query", []byte{0x01, 0x07, zcl.CmdQueryNextImageRequest, 0x00, 0x34}, zcl.StatusMalformedCommand},
		{"short block request", []byte{0x01, 0x08, zcl.CmdImageBlockRequest, 0x00, 0x34, 0x12}, zcl.StatusMalformedCommand},
		{"unknown command", []byte{0x01, 0x09, 0x0C}, zcl.StatusUnsupCommand},
		{"manufacturer-specific", []byte{0x05, 0x34, 0x12, 0x0A, 0x01}, zcl.StatusUnsupManufClusterCommand},
		{"read attributes of the server", []byte{0x00, 0x0B, zcl.CmdReadAttributes, 0x02, 0x00}, zcl.StatusUnsupGeneralCommand},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.out.take()
			r.eng.HandleFrame(devA, c.frame)
			frames := r.out.take()
			require.Len(t, frames, 1)
			require.Equal(t, zcl.CmdDefaultResponse, frames[0].header.CommandID)
			dr, err := zcl.DecodeDefaultResponse(frames[0].payload)
			require.NoError(t, err)
			assert.Equal(t, c.want, dr.Status)
			h, _, _ := zcl.DecodeHeader(c.frame)
			assert.Equal(t, h.TSN, frames[0].header.TSN)
		})
	}
	r.out.take()
	r.eng.HandleFrame(devA, []byte{0x01})
	r.eng.HandleFrame(devA, []byte{0x18, 0x01, zcl.CmdDefaultResponse, 0x00, 0x00})
	assert.Empty(t, r.out.take(), "an undecodable header and a client's default response get no answer")
}

func TestQueueNeverRunsMoreThanTheCap(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 300)
	r := newEngineRig(t, EngineConfig{MaxConcurrent: 2}, img)
	for _, d := range []zcl.IEEE{devA, devB, devC} {
		r.eng.SetDevice(mainsDevice(d, 0x1234, 1, 1))
		_, err := r.eng.Update(d, nil)
		require.NoError(t, err)
	}
	active, queued := r.eng.Counts()
	assert.Equal(t, 2, active)
	assert.Equal(t, 1, queued)
	st := r.out.lastState(devC)
	assert.Equal(t, StateQueued, st.State)
	assert.Equal(t, 1, st.QueuePosition)

	// The queued device asks (it heard a broadcast, say): it is told to wait.
	require.Equal(t, zcl.StatusSuccess, r.query(devC, 0x1234, 1, 1).Status)
	w := r.block(devC, img.ImageID(), 0, 64)
	assert.Equal(t, zcl.StatusWaitForData, w.Status)
	assert.Equal(t, uint32(0), w.CurrentTime)
	assert.Equal(t, uint32(30), w.RequestTime)

	// devA finishes: devC gets the slot and is served.
	r.query(devA, 0x1234, 1, 1)
	r.download(devA, img.ImageID(), img.Size(), 64)
	r.upgradeEnd(devA, zcl.StatusSuccess, img.ImageID())
	assert.Equal(t, StateUpdating, r.out.lastState(devC).State)
	assert.Equal(t, zcl.StatusSuccess, r.block(devC, img.ImageID(), 0, 64).Status)
}

func TestStalledTransferRetriesThenFails(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 3000)
	r := newEngineRig(t, EngineConfig{StallTimeout: time.Minute, Retries: 1, RetryBackoff: time.Minute, NotifyTimeout: 10 * time.Second}, img)
	startedTransfer(t, r, devA, img)
	r.block(devA, img.ImageID(), 0, 64)
	r.out.take()
	r.clk.RunFor(61 * time.Second)
	st := r.out.lastState(devA)
	assert.Equal(t, StateQueued, st.State)
	assert.Contains(t, st.LastError, "retry 1 of 1")
	r.clk.RunFor(time.Minute)
	// Back-off over: the slot comes back and the device is notified again.
	var notified bool
	for _, f := range r.out.take() {
		notified = notified || f.header.CommandID == zcl.CmdImageNotify
	}
	assert.True(t, notified)
	assert.Equal(t, StateUpdating, r.out.lastState(devA).State)
	require.Equal(t, zcl.StatusSuccess, r.query(devA, 0x1234, 1, 1).Status)
	r.block(devA, img.ImageID(), 64, 64)
	r.clk.RunFor(2 * time.Minute)
	st = r.out.lastState(devA)
	assert.Equal(t, StateFailed, st.State)
	assert.Contains(t, st.LastError, "transfer stalled")
}

func TestNotifyIgnoredFallsBackToSchedule(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 300)
	r := newEngineRig(t, EngineConfig{NotifyTimeout: 5 * time.Second, NotifyAttempts: 3}, img)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	r.clk.RunFor(time.Minute)
	notifies := 0
	for _, f := range r.out.take() {
		if f.header.CommandID == zcl.CmdImageNotify {
			notifies++
		}
	}
	assert.Equal(t, 3, notifies)
	assert.Equal(t, StateScheduled, r.out.lastState(devA).State)
	active, _ := r.eng.Counts()
	assert.Equal(t, 0, active, "a scheduled device holds no slot")
	// Its own query later is served.
	assert.Equal(t, zcl.StatusSuccess, r.query(devA, 0x1234, 1, 1).Status)
	assert.Equal(t, StateUpdating, r.out.lastState(devA).State)
}

func TestRejectedVersionNotOfferedUntilNewer(t *testing.T) {
	v2 := makeImage(t, 0x1234, 1, 2, 300)
	r := newEngineRig(t, EngineConfig{}, v2)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	r.query(devA, 0x1234, 1, 1)
	require.Equal(t, StateApprovalPending, r.out.lastState(devA).State)
	require.NoError(t, r.eng.Reject(devA))
	assert.Equal(t, StateIdle, r.out.lastState(devA).State)
	r.query(devA, 0x1234, 1, 1)
	assert.Equal(t, StateIdle, r.out.lastState(devA).State, "the rejected version is not offered again")
	v3 := makeImage(t, 0x1234, 1, 3, 300)
	r.cat.images = append(r.cat.images, v3)
	r.query(devA, 0x1234, 1, 1)
	st := r.out.lastState(devA)
	assert.Equal(t, StateApprovalPending, st.State)
	require.NotNil(t, st.Available)
	assert.Equal(t, uint32(3), st.Available.FileVersion)
	assert.ErrorIs(t, r.eng.Reject(devB), ErrUnknownDevice)
}

func TestAutoPolicyServesAllowedDevices(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 300)
	r := newEngineRig(t, EngineConfig{Approval: "auto", Allow: AllowList{Models: []string{"TestModel"}}}, img)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	other := mainsDevice(devB, 0x1234, 1, 1)
	other.Model = "Other"
	r.eng.SetDevice(other)
	assert.Equal(t, zcl.StatusSuccess, r.query(devA, 0x1234, 1, 1).Status)
	assert.Equal(t, StateUpdating, r.out.lastState(devA).State)
	assert.Equal(t, zcl.StatusNoImageAvailable, r.query(devB, 0x1234, 1, 1).Status)
	assert.Equal(t, StateApprovalPending, r.out.lastState(devB).State)
}

func TestDenyPolicyNeverServesUnasked(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 300)
	r := newEngineRig(t, EngineConfig{Approval: "deny"}, img)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	assert.Equal(t, zcl.StatusNoImageAvailable, r.query(devA, 0x1234, 1, 1).Status)
	assert.Equal(t, StateAvailable, r.out.lastState(devA).State)
	assert.NotContains(t, r.out.eventTypes(), EventApprovalNeeded)
}

func TestDowngradeByExplicitVersion(t *testing.T) {
	v1 := makeImage(t, 0x1234, 1, 1, 300)
	r := newEngineRig(t, EngineConfig{}, v1)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 5))
	_, err := r.eng.Update(devA, nil)
	assert.ErrorIs(t, err, ErrNoImage, "nothing newer")
	v := uint32(1)
	_, err = r.eng.Update(devA, &v)
	require.NoError(t, err)
	resp := r.query(devA, 0x1234, 1, 5)
	require.Equal(t, zcl.StatusSuccess, resp.Status)
	assert.Equal(t, uint32(1), resp.FileVersion)
}

func TestSleepyDeviceIsScheduledForItsQuery(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 300)
	r := newEngineRig(t, EngineConfig{}, img)
	info := mainsDevice(devA, 0x1234, 1, 1)
	info.Sleepy = true
	r.eng.SetDevice(info)
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	assert.Empty(t, r.out.take(), "no Image Notify to a sleepy device")
	assert.Equal(t, StateScheduled, r.out.lastState(devA).State)
	require.NoError(t, r.eng.Unschedule(devA))
	assert.Equal(t, StateAvailable, r.out.lastState(devA).State)
	_, err = r.eng.Schedule(devA, nil)
	require.NoError(t, err)
	assert.Equal(t, zcl.StatusSuccess, r.query(devA, 0x1234, 1, 1).Status)
	assert.Equal(t, StateUpdating, r.out.lastState(devA).State)
}

func TestPageRequestStreamsAndStopsAtTheEnd(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 200)
	r := newEngineRig(t, EngineConfig{MinPageSpacing: 20 * time.Millisecond}, img)
	startedTransfer(t, r, devA, img)
	size := img.Size()
	start := size - 150
	r.send(devA, zcl.CmdImagePageRequest, zcl.ImagePageRequest{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 2,
		FileOffset: start, MaxDataSize: 64, PageSize: 1024, ResponseSpacing: 5})
	r.clk.RunFor(time.Second)
	frames := r.out.take()
	var got []byte
	for i, f := range frames {
		require.Equal(t, zcl.CmdImageBlockResponse, f.header.CommandID)
		resp, err := zcl.DecodeImageBlockResponse(f.payload)
		require.NoError(t, err)
		require.Equal(t, zcl.StatusSuccess, resp.Status)
		assert.Equal(t, start+uint32(len(got)), resp.FileOffset)
		got = append(got, resp.Data...)
		assert.False(t, f.apsAck, "page blocks go without APS ack")
		if i > 0 {
			assert.Equal(t, 20*time.Millisecond, f.at.Sub(frames[i-1].at), "spacing clamped to the configured minimum")
		}
	}
	assert.Equal(t, servable(t, img)[start:], got, "the stream stops at the image end")
	assert.Len(t, frames, 3)
}

func TestRestoreContinuesInterruptedTransfer(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 1000)
	r := newEngineRig(t, EngineConfig{}, img)
	startedTransfer(t, r, devA, img)
	r.block(devA, img.ImageID(), 0, 64)
	r.block(devA, img.ImageID(), 64, 64)
	snap := r.eng.Snapshot()

	// A new engine (the bridge restarted) with the same images.
	r2 := newEngineRig(t, EngineConfig{}, img)
	r2.eng.Restore(snap)
	st := r2.out.lastState(devA)
	assert.Equal(t, StateUpdating, st.State)
	assert.Equal(t, uint32(128), st.Bytes)
	got := r2.block(devA, img.ImageID(), 128, 64)
	require.Equal(t, zcl.StatusSuccess, got.Status, "the device's next block request continues the transfer")
	rest := r2.download(devA, img.ImageID(), img.Size(), 64)
	assert.Equal(t, servable(t, img), rest)
	require.Equal(t, zcl.CmdUpgradeEndResponse, r2.upgradeEnd(devA, zcl.StatusSuccess, img.ImageID()).header.CommandID)
}

func TestOperationsInWrongStatesAreRefused(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 300)
	r := newEngineRig(t, EngineConfig{}, img)
	_, err := r.eng.Update(devA, nil)
	assert.ErrorIs(t, err, ErrUnknownDevice)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	_, err = r.eng.Approve(devA)
	assert.ErrorIs(t, err, ErrWrongState)
	assert.ErrorIs(t, r.eng.Unschedule(devA), ErrWrongState)
	startedTransfer(t, r, devA, img)
	_, err = r.eng.Update(devA, nil)
	assert.ErrorIs(t, err, ErrBusy)
}

func TestCheckReportsAvailability(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 300)
	r := newEngineRig(t, EngineConfig{}, img)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	res, err := r.eng.Check(devA)
	require.NoError(t, err)
	assert.True(t, res.UpdateAvailable)
	assert.Equal(t, "0x00000001", res.InstalledVersion)
	assert.Equal(t, "0x00000002", res.Image.Version)
	r.eng.SetDevice(mainsDevice(devB, 0x1234, 1, 2))
	res, err = r.eng.Check(devB)
	require.NoError(t, err)
	assert.False(t, res.UpdateAvailable)
	assert.Equal(t, StateIdle, res.State)
}

func BenchmarkEngineServeBlock(b *testing.B) {
	img := makeImage(b, 0x1234, 1, 2, 300_000)
	r := newEngineRig(b, EngineConfig{}, img)
	r.out.onSend = nil
	discard := &discardOutput{}
	r.eng.out = discard
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	if _, err := r.eng.Update(devA, nil); err != nil {
		b.Fatal(err)
	}
	q := zcl.QueryNextImageRequest{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 1}
	r.eng.HandleFrame(devA, q.AppendPayload(zcl.ClientToServerClusterHeader(1, zcl.CmdQueryNextImageRequest).AppendTo(nil)))
	frames := make([][]byte, 0, 4096)
	size := img.Size()
	for off := uint32(0); off+64 <= size && len(frames) < cap(frames); off += 64 {
		req := zcl.ImageBlockRequest{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 2, FileOffset: off, MaxDataSize: 64}
		frames = append(frames, req.AppendPayload(zcl.ClientToServerClusterHeader(uint8(off), zcl.CmdImageBlockRequest).AppendTo(nil)))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.eng.HandleFrame(devA, frames[i%len(frames)])
	}
	b.StopTimer()
	if discard.n == 0 {
		b.Fatal("no block served")
	}
}

type discardOutput struct{ n int }

func (o *discardOutput) SendZCL(zcl.IEEE, []byte, SendOptions) { o.n++ }
func (o *discardOutput) BroadcastZCL([]byte)                   {}
func (o *discardOutput) Event(Event)                           {}
func (o *discardOutput) State(DeviceState)                     {}
func (o *discardOutput) Interview(zcl.IEEE)                    {}
func (o *discardOutput) DurableChanged()                       {}

func TestBlockResponseDelayHoldsResponsesBack(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 500)
	r := newEngineRig(t, EngineConfig{BlockResponseDelay: 250 * time.Millisecond}, img)
	startedTransfer(t, r, devA, img)
	r.out.take()
	r.send(devA, zcl.CmdImageBlockRequest, zcl.ImageBlockRequest{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 2, MaxDataSize: 64})
	assert.Empty(t, r.out.take(), "nothing goes out at once")
	start := r.clk.Now()
	r.clk.RunFor(time.Second)
	frames := r.out.take()
	require.Len(t, frames, 1)
	assert.Equal(t, 250*time.Millisecond, frames[0].at.Sub(start))
	resp, err := zcl.DecodeImageBlockResponse(frames[0].payload)
	require.NoError(t, err)
	assert.Equal(t, servable(t, img)[:64], resp.Data)
}

// Unschedule is a cancellation like an abort of a scheduled update: ota_aborted with the reason and the
// image, then the image is available again (ota_available); the log names the state it really left.
func TestUnscheduleEmitsAbortedAndLogsRealState(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 500)
	r := newEngineRig(t, EngineConfig{}, img)
	var logBuf bytes.Buffer
	r.eng.log = zerolog.New(&logBuf)
	r.eng.SetDevice(mainsDevice(devA, 0x1234, 1, 1))
	_, err := r.eng.Schedule(devA, nil)
	require.NoError(t, err)
	require.Equal(t, StateScheduled, r.out.lastState(devA).State)
	before := len(r.out.eventTypes())
	logBuf.Reset()
	require.NoError(t, r.eng.Unschedule(devA))

	assert.Equal(t, []string{EventAborted, EventAvailable}, r.out.eventTypes()[before:])
	r.out.mu.Lock()
	aborted := r.out.events[before]
	r.out.mu.Unlock()
	assert.Equal(t, "unscheduled", aborted.Data["reason"])
	assert.Equal(t, img.ID, aborted.Data["image"])
	assert.Equal(t, "0x00000002", aborted.Data["to_version"])
	st := r.out.lastState(devA)
	assert.Equal(t, StateAvailable, st.State)
	assert.Nil(t, st.Target)
	assert.Contains(t, logBuf.String(), `"state":"scheduled","reason":"unscheduled","message":"update cancelled"`)
	assert.Contains(t, logBuf.String(), `"from":"scheduled","to":"available"`)
	assert.NotContains(t, logBuf.String(), `"from":"idle"`)
}
