package ota

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/sim/simtest"
	"github.com/otabridge/otabridge/zcl"
)

// simRig runs the real engine against the simulated network, both on one manually driven virtual clock:
// frames from the devices go to Engine.HandleFrame, the engine's frames go out through the link model,
// announcements and version reads (a Read Attributes of CurrentFileVersion) close the loop as the bridge does.
type simRig struct {
	t   testing.TB
	h   *simtest.Harness
	out *simOutput
	cat *testCatalog
	eng *Engine

	maxActive int // the most transfers seen running at once
}

// simOutput is the engine's Output onto the simulated network.
type simOutput struct {
	*recOutput
	h        *simtest.Harness
	readTSNs map[uint8]zcl.IEEE
	tsn      uint8
	// onCampaign sees every campaign publication (CampaignOutput).
	onCampaign func(CampaignStatus)
	blocks     map[int]int // successful Image Block Responses sent, by data size
	eng        *Engine     // hears of every frame's confirmation (SendDone)
}

func (o *simOutput) CampaignChanged(st CampaignStatus) {
	if o.onCampaign != nil {
		o.onCampaign(st)
	}
}

func (o *simOutput) SendZCL(dst zcl.IEEE, frame []byte, opt SendOptions) {
	if h, p, err := zcl.DecodeHeader(frame); err == nil && h.FrameType == zcl.FrameTypeCluster && h.CommandID == zcl.CmdImageBlockResponse {
		if resp, err := zcl.DecodeImageBlockResponse(p); err == nil && resp.Status == zcl.StatusSuccess {
			o.blocks[len(resp.Data)]++
		}
	}
	o.h.SendClusterStats(dst, zcl.ClusterOTA, bytes.Clone(frame), opt.APSAck, func(st ncp.SendStats, err error) {
		// The radio's report, as the bridge's sender passes it: max_concurrent: auto's congestion signal.
		o.eng.SendDone(dst, SendReport{Failed: errors.As(err, new(*ncp.SendError)), Attempts: st.Attempts,
			MACRetries: st.MACRetries, CCAFailures: st.CCAFailures, ChannelWait: st.ChannelWait})
	})
}

func (o *simOutput) BroadcastZCL(frame []byte) {
	o.h.Broadcast(ncp.BroadcastAll, zcl.ClusterOTA, bytes.Clone(frame))
}

// Interview reads the device's CurrentFileVersion, as the bridge's interview does.
func (o *simOutput) Interview(dst zcl.IEEE) {
	o.recOutput.Interview(dst)
	o.tsn++
	o.readTSNs[o.tsn] = dst
	frame := zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ClientToServer, false, o.tsn, zcl.CmdReadAttributes),
		zcl.ReadAttributes{AttributeIDs: []uint16{zcl.AttrOTACurrentFileVersion}})
	o.h.SendCluster(dst, zcl.ClusterOTA, frame, true)
}

func newSimRig(t testing.TB, yaml string, cfg EngineConfig, images ...*Image) *simRig {
	h := simtest.New(t, yaml)
	h.KeepFrames = false
	cat := &testCatalog{images: images}
	out := &simOutput{recOutput: newRecOutput(h.Clock), h: h, readTSNs: map[uint8]zcl.IEEE{}, blocks: map[int]int{}}
	eng := NewEngine(cfg, cat, out, h.Clock, zerolog.Nop())
	out.eng = eng
	eng.SetMaxAPSPayload(h.Net.MaxAPSPayload())
	eng.SetMaxFragmentedPayload(h.Net.MaxFragmentedPayload())
	t.Cleanup(eng.Close)
	r := &simRig{t: t, h: h, out: out, cat: cat, eng: eng}
	h.Net.SetImageOracle(func(id zcl.ImageID) ([32]byte, bool) {
		if img := cat.ByImageID(id); img != nil {
			return img.SHA256()
		}
		return [32]byte{}, false
	})
	h.OnFrame(r.frame)
	h.OnEvent(func(ev ncp.Event) {
		if ev.Kind == ncp.EventAnnounced {
			eng.DeviceAnnounced(ev.IEEE)
		}
	})
	for _, d := range h.Net.Devices() {
		c := d.Config()
		eng.SetDevice(DeviceInfo{IEEE: c.IEEE, Model: c.Model, ManufacturerName: c.Manufacturer,
			ManufacturerCode: c.ManufacturerCode, ImageType: c.ImageType, HardwareVersion: c.HardwareVersion,
			HasHardwareVersion: true, FileVersion: c.FileVersion, FileVersionKnown: true,
			Sleepy: c.Power == sim.PowerBattery})
	}
	return r
}

func (r *simRig) frame(src zcl.IEEE, in ncp.Incoming) {
	if in.ClusterID != zcl.ClusterOTA {
		return
	}
	h, payload, err := zcl.DecodeHeader(in.Payload)
	if err == nil && h.FrameType == zcl.FrameTypeGlobal && h.CommandID == zcl.CmdReadAttributesResponse {
		if dst, ok := r.out.readTSNs[h.TSN]; ok && dst == src {
			delete(r.out.readTSNs, h.TSN)
			resp, err := zcl.DecodeReadAttributesResponse(payload)
			require.NoError(r.t, err)
			for _, rec := range resp.Records {
				if rec.AttributeID == zcl.AttrOTACurrentFileVersion && rec.Status == zcl.StatusSuccess {
					info := r.info(src)
					info.FileVersion, info.FileVersionKnown = uint32(rec.Value.Uint), true
					r.eng.SetDevice(info)
				}
			}
		}
		return
	}
	r.eng.HandleFrame(src, in.Payload)
	if a, _ := r.eng.Counts(); a > r.maxActive {
		r.maxActive = a
	}
}

func (r *simRig) info(ieee zcl.IEEE) DeviceInfo {
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	return r.eng.devices[ieee].info
}

func (r *simRig) state(ieee zcl.IEEE) DeviceState {
	st, ok := r.eng.State(ieee)
	require.True(r.t, ok)
	return st
}

// runUntilState runs the simulation until the device reaches one of the states (or max virtual time).
func (r *simRig) runUntilState(ieee zcl.IEEE, max time.Duration, states ...State) State {
	r.t.Helper()
	r.h.RunUntil(func() bool {
		s := r.state(ieee).State
		for _, want := range states {
			if s == want {
				return true
			}
		}
		return false
	}, max)
	return r.state(ieee).State
}

// assertUpgraded checks that the device got img byte for byte and now runs its version.
func (r *simRig) assertUpgraded(ieee zcl.IEEE, img *Image) {
	r.t.Helper()
	st := r.state(ieee)
	require.Equal(r.t, StateIdle, st.State, "engine state (last error %q)", st.LastError)
	require.NotNil(r.t, st.InstalledVersion)
	assert.Equal(r.t, img.Header.FileVersion, *st.InstalledVersion)
	ds := r.h.Device(ieee).Status()
	assert.Equal(r.t, img.Header.FileVersion, ds.FileVersion, "the device runs the new version")
	want, _ := img.SHA256()
	assert.Equal(r.t, want, ds.ReceivedSHA256, "the device received the servable region byte for byte")
	assert.Equal(r.t, int(img.Size()), ds.ReceivedBytes)
	assert.Contains(r.t, r.out.eventTypes(), EventFinished)
}

// deviceYAML is one device of a sim network: manufacturer 0x1234, image type 1, version 1, model SimModel,
// with "key: value" lines in extra overriding or adding keys.
func deviceYAML(ieee zcl.IEEE, extra string) string {
	keys := []string{"ieee", "manufacturer_code", "image_type", "file_version", "model", "manufacturer"}
	vals := map[string]string{"ieee": fmt.Sprintf("%q", ieee.String()), "manufacturer_code": "0x1234",
		"image_type": "0x0001", "file_version": "0x00000001", "model": "SimModel", "manufacturer": "SimCo"}
	for _, line := range strings.Split(extra, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, seen := vals[k]; !seen {
			keys = append(keys, k)
		}
		vals[k] = strings.TrimSpace(v)
	}
	s := ""
	for i, k := range keys {
		lead := "      "
		if i == 0 {
			lead = "    - "
		}
		s += lead + k + ": " + vals[k] + "\n"
	}
	return s
}

func netYAML(link string, devices ...string) string {
	s := "seed: 7\nlink:\n" + link + "\ndevices:\n"
	for _, d := range devices {
		s += d
	}
	return s
}

const realisticLink = "  mode: realistic"

func TestEngineOnSimUpgradesEveryClientProfile(t *testing.T) {
	profiles := []struct {
		profile string
		extra   string
	}{
		{"esp-v2", ""},
		{"periodic", "      query_interval: 1m\n"},
		{"page", ""},
		{"silabs", "      query_interval: 1m\n"},
		{"restart-on-loss", ""},
	}
	for _, p := range profiles {
		t.Run(p.profile, func(t *testing.T) {
			img := makeImage(t, 0x1234, 1, 2, 20_000)
			r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, "      profile: "+p.profile+"\n"+p.extra)), EngineConfig{}, img)
			_, err := r.eng.Update(devA, nil)
			require.NoError(t, err)
			r.runUntilState(devA, time.Hour, StateIdle, StateFailed)
			r.assertUpgraded(devA, img)
			ds := r.h.Device(devA).Status()
			if p.profile == "page" {
				assert.Positive(t, ds.PageRequests, "the page client used Image Page Requests")
			}
			if p.profile == "silabs" {
				assert.Zero(t, ds.DroppedBlocks, "blocks are capped at the SiLabs client's 63 bytes")
			}
		})
	}
}

func TestEngineOnSimManualClientDrivenByHand(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 2_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, "      profile: manual\n")), EngineConfig{}, img)
	r.h.Device(devA).QueryNow()
	r.runUntilState(devA, time.Minute, StateApprovalPending)
	require.Equal(t, StateApprovalPending, r.state(devA).State)
	assert.Contains(t, r.out.eventTypes(), EventApprovalNeeded)
	r.h.Device(devA).RequestBlock(0, 64)
	r.h.Run(10 * time.Second)
	assert.Zero(t, r.h.Device(devA).Status().Offset, "an unapproved device gets no image bytes")
}

func TestEngineOnSimManualApprovalFlow(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 10_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, "      profile: periodic\n      query_interval: 10m\n")), EngineConfig{}, img)
	// The device asks by itself; the policy is manual, so it is told NO_IMAGE_AVAILABLE and waits.
	require.Equal(t, StateApprovalPending, r.runUntilState(devA, 15*time.Minute, StateApprovalPending))
	assert.Equal(t, uint32(1), r.h.Device(devA).Status().FileVersion)
	_, err := r.eng.Approve(devA)
	require.NoError(t, err)
	// The Image Notify makes it query now: no need to wait for its 10-minute timer.
	require.Equal(t, StateUpdating, r.runUntilState(devA, time.Minute, StateUpdating))
	r.runUntilState(devA, time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, img)
}

func TestEngineOnSimAutoPolicy(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 5_000)
	r := newSimRig(t, netYAML(realisticLink,
		deviceYAML(devA, "      profile: periodic\n      query_interval: 2m\n"),
		deviceYAML(devB, "      profile: periodic\n      query_interval: 2m\n      model: Other\n")),
		EngineConfig{Approval: "auto", Allow: AllowList{IEEE: []zcl.IEEE{devA}}}, img)
	r.runUntilState(devA, time.Hour, StateIdle)
	r.h.RunUntil(func() bool { return r.state(devA).FinishedAt != nil }, time.Hour)
	r.assertUpgraded(devA, img)
	assert.Equal(t, StateApprovalPending, r.state(devB).State, "a device off the allow list still waits for approval")
	assert.Equal(t, uint32(1), r.h.Device(devB).Status().FileVersion)
}

func TestEngineOnSimSleepyDeviceScheduledUntilItPolls(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 4_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA,
		"      profile: periodic\n      query_interval: 30m\n      power: battery\n      poll_interval: 7s\n")),
		EngineConfig{}, img)
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	assert.Equal(t, StateScheduled, r.state(devA).State)
	r.h.Run(20 * time.Minute)
	assert.Equal(t, StateScheduled, r.state(devA).State, "served only when the device asks")
	assert.Zero(t, r.h.Device(devA).Status().NotifiesHeard, "no Image Notify is sent to a sleepy device")
	r.runUntilState(devA, 2*time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, img)
}

func TestEngineOnSimRestartOnLossFinishesAtFivePercentLoss(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 30_000)
	r := newSimRig(t, netYAML("  mode: realistic\n  loss: 0.05\n  mac_retries: -1",
		deviceYAML(devA, "      profile: restart-on-loss\n")), EngineConfig{}, img)
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	r.runUntilState(devA, 6*time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, img)
	stats := r.h.Net.Stats()
	assert.Positive(t, stats.Lost+stats.APSRetries, "frames were lost on the way")
	t.Logf("restarts %d, timeouts %d, lost %d, APS retries %d", r.h.Device(devA).Status().Restarts,
		r.h.Device(devA).Status().Timeouts, stats.Lost, stats.APSRetries)
}

func TestEngineOnSimAbortMidTransfer(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 20_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, "      profile: esp-v2\n")), EngineConfig{}, img)
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	r.h.RunUntil(func() bool { return r.h.Device(devA).Status().Offset > 5_000 }, time.Hour)
	require.NoError(t, r.eng.Abort(devA))
	r.h.Run(time.Minute)
	st := r.state(devA)
	assert.Equal(t, StateFailed, st.State)
	assert.Equal(t, "aborted", st.LastError)
	ds := r.h.Device(devA).Status()
	assert.Equal(t, "idle", ds.State, "the client stopped its download")
	assert.Equal(t, uint32(1), ds.FileVersion)
	active, _ := r.eng.Counts()
	assert.Zero(t, active)
}

func TestEngineOnSimInvalidImageFromClient(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 5_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, "")), EngineConfig{}, img)
	// The device checks what it received against a different hash: it must answer INVALID_IMAGE.
	r.h.Net.SetImageOracle(func(zcl.ImageID) ([32]byte, bool) { return sha256.Sum256([]byte("other")), true })
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	r.runUntilState(devA, time.Hour, StateFailed, StateIdle)
	st := r.state(devA)
	assert.Equal(t, StateFailed, st.State)
	assert.Equal(t, "device reported INVALID_IMAGE at the end of the transfer", st.LastError)
	assert.Contains(t, r.out.eventTypes(), EventFailed)
	assert.Equal(t, uint32(1), r.h.Device(devA).Status().FileVersion)
}

func TestEngineOnSimDowngradeByExplicitVersion(t *testing.T) {
	old := makeImage(t, 0x1234, 1, 1, 3_000)
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, "      file_version: 0x00000005\n")), EngineConfig{}, old)
	v := uint32(1)
	_, err := r.eng.Update(devA, &v)
	require.NoError(t, err)
	r.runUntilState(devA, time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, old)
}

func TestEngineOnSimQueueOfTwentyWithCapTwo(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 6_000)
	var devs []string
	var ieees []zcl.IEEE
	for i := 0; i < 20; i++ {
		ieee := zcl.IEEE(0x00124b0000001000 + i)
		ieees = append(ieees, ieee)
		devs = append(devs, deviceYAML(ieee, ""))
	}
	r := newSimRig(t, netYAML(realisticLink, devs...), EngineConfig{MaxConcurrent: 2}, img)
	for _, ieee := range ieees {
		_, err := r.eng.Update(ieee, nil)
		require.NoError(t, err)
	}
	allDone := func() bool {
		if a, _ := r.eng.Counts(); a > r.maxActive {
			r.maxActive = a
		}
		for _, ieee := range ieees {
			if s := r.state(ieee).State; s != StateIdle && s != StateFailed {
				return false
			}
		}
		return true
	}
	require.True(t, r.h.RunUntil(allDone, 6*time.Hour))
	for _, ieee := range ieees {
		r.assertUpgraded(ieee, img)
	}
	assert.Equal(t, 2, r.maxActive, "never more than the cap, and the cap was used")
}

func TestEngineOnSimServesWrappedVendorFileByteExact(t *testing.T) {
	// The IKEA "NGIS" container: the OTA image starts at byte 488 and 512 bytes follow it.
	store := loadRealImages(t, "10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed")
	img := store.Images()[0]
	require.Equal(t, int64(488), img.File().MagicOffset)
	yaml := netYAML(realisticLink, fmt.Sprintf(`
    - ieee: "%s"
      manufacturer_code: 0x117C
      image_type: 0x2803
      file_version: 0x23093600
      profile: esp-v2
`, devA))
	r := newSimRig(t, yaml, EngineConfig{}, img)
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	r.runUntilState(devA, 3*time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, img)
	region := readRealFile(t, "10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed")[488 : 488+int(img.Size())]
	assert.Equal(t, sha256.Sum256(region), r.h.Device(devA).Status().ReceivedSHA256)
}

// loadRealImages loads vendor files from ../shared/testdata/ota into a fresh store.
func loadRealImages(t testing.TB, files ...string) *Store {
	t.Helper()
	r := newStoreRig(t)
	for _, f := range files {
		copyTestFile(t, f, r.folder, "")
	}
	return r.load(t)
}

func readRealFile(t testing.TB, file string) []byte { return readTestFile(t, file) }
