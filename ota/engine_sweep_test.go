package ota

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/zcl"
)

// The bad-input sweep of the engine and the image store: malformed ZCL frames and truncated OTA files arrive
// while a transfer runs on the simulated network. Each is refused with a clear answer, changes nothing, and
// the transfer completes byte-exact.

// sweepUnknownDev is an address the engine has never heard of.
const sweepUnknownDev zcl.IEEE = 0x00124b00deadbeef

// sweepCapture sits between the engine and the simulated network: while capturing, what the engine sends
// is recorded and kept from the air (the answers to frames the test injected on a device's behalf must not
// reach the real device: it never sent them).
type sweepCapture struct {
	Output
	capturing bool
	captured  []sentFrame
}

func (o *sweepCapture) SendZCL(dst zcl.IEEE, frame []byte, opt SendOptions) {
	if o.capturing {
		h, p, err := zcl.DecodeHeader(frame)
		if err != nil {
			panic(fmt.Sprintf("engine sent an undecodable frame %x: %v", frame, err))
		}
		o.captured = append(o.captured, sentFrame{dst: dst, frame: bytes.Clone(frame), header: h, payload: bytes.Clone(p)})
		return
	}
	o.Output.SendZCL(dst, frame, opt)
}

// sweepMalformedFrames returns every client-to-server OTA command (all optional fields present, for image id)
// cut at every byte, keeping only the cuts the ZCL codec refuses: a header cut short, or a payload that does
// not decode. (A cut that decodes is a valid command, not bad input.)
func sweepMalformedFrames(t *testing.T, id zcl.ImageID) [][]byte {
	t.Helper()
	type cmd struct {
		frame  []byte
		decode func([]byte) error
	}
	c2s := func(tsn, c uint8) zcl.Header { return zcl.ClientToServerClusterHeader(tsn, c) }
	cmds := []cmd{
		{zcl.AppendFrame(nil, c2s(0xA1, zcl.CmdQueryNextImageRequest), zcl.QueryNextImageRequest{FieldControl: 1,
			ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType, FileVersion: id.FileVersion - 1, HardwareVersion: 1}),
			func(b []byte) error { _, err := zcl.DecodeQueryNextImageRequest(b); return err }},
		{zcl.AppendFrame(nil, c2s(0xA2, zcl.CmdImageBlockRequest), zcl.ImageBlockRequest{FieldControl: 3,
			ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType, FileVersion: id.FileVersion, FileOffset: 0,
			MaxDataSize: 64, RequestNodeAddress: devA, MinimumBlockPeriod: 10}),
			func(b []byte) error { _, err := zcl.DecodeImageBlockRequest(b); return err }},
		{zcl.AppendFrame(nil, c2s(0xA3, zcl.CmdImagePageRequest), zcl.ImagePageRequest{FieldControl: 1,
			ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType, FileVersion: id.FileVersion, FileOffset: 0,
			MaxDataSize: 64, PageSize: 1024, ResponseSpacing: 20, RequestNodeAddress: devA}),
			func(b []byte) error { _, err := zcl.DecodeImagePageRequest(b); return err }},
		{zcl.AppendFrame(nil, c2s(0xA4, zcl.CmdUpgradeEndRequest), zcl.UpgradeEndRequest{Status: zcl.StatusSuccess,
			ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType, FileVersion: id.FileVersion}),
			func(b []byte) error { _, err := zcl.DecodeUpgradeEndRequest(b); return err }},
		{zcl.AppendFrame(nil, c2s(0xA5, zcl.CmdUpgradeEndRequest), zcl.UpgradeEndRequest{Status: zcl.StatusAbort,
			ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType, FileVersion: id.FileVersion}),
			func(b []byte) error { _, err := zcl.DecodeUpgradeEndRequest(b); return err }},
		{zcl.AppendFrame(nil, c2s(0xA6, zcl.CmdQueryDeviceSpecificFileRequest), zcl.QueryDeviceSpecificFileRequest{
			RequestNodeAddress: devA, ManufacturerCode: id.ManufacturerCode, ImageType: 0xFFC0, FileVersion: 1, ZigbeeStackVersion: 2}),
			func(b []byte) error { _, err := zcl.DecodeQueryDeviceSpecificFileRequest(b); return err }},
	}
	var out [][]byte
	for _, c := range cmds {
		for n := 0; n < len(c.frame); n++ {
			cut := bytes.Clone(c.frame[:n])
			if n >= 3 && c.decode(cut[3:]) == nil {
				continue // a documented short form: a valid command
			}
			out = append(out, cut)
		}
	}
	return out
}

// TestSweepMalformedFramesDuringTransfer injects every malformed OTA command, as if sent by the device
// being upgraded, by an idle device and by a device the engine does not know, spread over a running
// transfer. A frame whose header is complete gets exactly one Default Response with MALFORMED_COMMAND for
// its TSN and command; a frame cut inside its header is dropped. Nothing else happens: no state change, no
// event, no record for the unknown device, and the transfer completes byte-exact.
func TestSweepMalformedFramesDuringTransfer(t *testing.T) {
	img := makeImage(t, 0x1234, 1, 2, 40_000)
	r := newSimRig(t, netYAML(realisticLink,
		deviceYAML(devA, "      profile: esp-v2\n"),
		deviceYAML(devB, "      profile: periodic\n      query_interval: 24h\n")), EngineConfig{}, img)
	capture := &sweepCapture{Output: r.eng.out}
	r.eng.out = capture
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	require.True(t, r.h.RunUntil(func() bool { return r.state(devA).Bytes > 0 }, time.Hour), "the transfer starts")
	idleBefore := r.state(devB)
	idleFrames := r.h.Device(devB).Status().FramesReceived
	eventsBefore := len(r.out.eventTypes())

	frames := sweepMalformedFrames(t, img.ImageID())
	sources := []zcl.IEEE{devA, devB, sweepUnknownDev}
	type injected struct {
		src   zcl.IEEE
		frame []byte
		got   []sentFrame
		state State // devA's state when it was injected
	}
	var log []injected
	const spacing = 5 * time.Millisecond
	for i, f := range frames {
		for j, src := range sources {
			r.h.Clock.AfterFunc(time.Duration(i*len(sources)+j)*spacing, func() {
				capture.capturing, capture.captured = true, nil
				r.eng.HandleFrame(src, f)
				capture.capturing = false
				log = append(log, injected{src: src, frame: f, got: capture.captured, state: r.state(devA).State})
			})
		}
	}
	want := len(frames) * len(sources)
	require.True(t, r.h.RunUntil(func() bool { return len(log) == want }, time.Hour))

	refused := 0
	for _, in := range log {
		require.Equal(t, StateUpdating, in.state, "every frame came while the transfer ran")
		if len(in.frame) < 3 {
			assert.Empty(t, in.got, "a frame cut inside its header (%x) is dropped", in.frame)
			continue
		}
		require.Len(t, in.got, 1, "one answer to %x from %s", in.frame, in.src)
		ans := in.got[0]
		assert.Equal(t, in.src, ans.dst)
		assert.Equal(t, zcl.FrameTypeGlobal, ans.header.FrameType)
		assert.Equal(t, zcl.CmdDefaultResponse, ans.header.CommandID)
		assert.Equal(t, in.frame[1], ans.header.TSN, "the answer carries the request's TSN")
		dr, err := zcl.DecodeDefaultResponse(ans.payload)
		require.NoError(t, err)
		assert.Equal(t, zcl.DefaultResponse{CommandID: in.frame[2], Status: zcl.StatusMalformedCommand}, dr, "answer to %x", in.frame)
		refused++
	}
	t.Logf("%d malformed frames × %d senders injected during the transfer, %d answered MALFORMED_COMMAND", len(frames), len(sources), refused)

	_, known := r.eng.State(sweepUnknownDev)
	assert.False(t, known, "no record for a device that only sent garbage")
	assert.Equal(t, idleBefore.State, r.state(devB).State)
	assert.Equal(t, idleBefore.ChangedAt, r.state(devB).ChangedAt, "the idle device's state did not change")
	assert.Equal(t, idleFrames, r.h.Device(devB).Status().FramesReceived, "nothing reached the idle device")
	r.runUntilState(devA, time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, img)
	types := r.out.eventTypes()[eventsBefore:]
	assert.NotContains(t, types, EventFailed)
	assert.NotContains(t, types, EventAborted)
	ds := r.h.Device(devA).Status()
	assert.Zero(t, ds.Failures, "the device's download never broke")
	assert.Equal(t, 1, ds.Upgrades)
}

// TestSweepTruncatedOTAFilesDuringTransfer offers the image store every real vendor file (and a file with
// every optional header field) truncated at every header byte, as uploads and as files dropped into the
// images folder, while a device downloads an image from that store. Every upload is refused with an error
// that names the upload and the reason; every dropped file is reported as a problem; the catalogue, the
// folder and the running transfer are untouched, and the transfer completes byte-exact.
func TestSweepTruncatedOTAFilesDuringTransfer(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "images")
	require.NoError(t, os.MkdirAll(folder, 0o755))
	served := makeImage(t, 0x1234, 1, 2, 40_000)
	file := make([]byte, served.FileSize)
	_, err := served.reader.ReadAt(file, 0)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(folder, "served.ota"), file, 0o644))
	store, err := NewStore(StoreConfig{Folder: folder, CacheDir: filepath.Join(dir, "cache")}, nopLogger())
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	require.NoError(t, store.Load(t.Context()))
	require.Len(t, store.Images(), 1)
	changes := 0
	store.OnChange(func() { changes++ })
	before := sweepImageIDs(store)
	folderBefore := sweepDirNames(t, folder)

	r := newSimRigCatalog(t, netYAML(realisticLink, deviceYAML(devA, "      profile: esp-v2\n")), EngineConfig{}, store)
	_, err = r.eng.Update(devA, nil)
	require.NoError(t, err)
	require.True(t, r.h.RunUntil(func() bool { return r.state(devA).Bytes > 0 }, time.Hour), "the transfer starts")

	cases := sweepTruncatedFiles(t)
	uploads, scans := 0, 0
	const spacing = 2 * time.Millisecond
	for i, c := range cases {
		r.h.Clock.AfterFunc(time.Duration(i)*spacing, func() {
			require.Equal(t, StateUpdating, r.state(devA).State, "the transfer runs")
			_, perr := ParseBytes(c.data)
			require.Error(t, perr, "%s parses", c.name)
			require.True(t, sweepAnyIs(perr, ErrNoMagic, ErrTruncated), "%s: %v wraps neither ErrNoMagic nor ErrTruncated", c.name, perr)
			img, err := store.AddUpload(c.name, c.data)
			require.Error(t, err, "upload of %s", c.name)
			require.Nil(t, img)
			assert.Contains(t, err.Error(), fmt.Sprintf("upload %q: not a valid OTA file: ", c.name))
			uploads++
			if c.scan {
				// The same bytes dropped into the folder: the rescan reports the file (or skips it, without
				// the OTA identifier: it is not an OTA file at all) and keeps the rest.
				p := filepath.Join(folder, "dropped.ota")
				require.NoError(t, os.WriteFile(p, c.data, 0o644))
				require.NoError(t, store.Refresh(t.Context()))
				var reason string
				for _, pr := range store.Problems() {
					if filepath.Base(pr.Source) == "dropped.ota" {
						reason = pr.Reason
					}
				}
				if errors.Is(perr, ErrNoMagic) {
					assert.Empty(t, reason, "%s has no OTA identifier: skipped, not a problem", c.name)
				} else {
					assert.Contains(t, reason, "truncated", "%s in the folder is reported as a problem: %v", c.name, store.Problems())
				}
				require.NoError(t, os.Remove(p))
				scans++
			}
			assert.Equal(t, before, sweepImageIDs(store), "the catalogue did not change")
		})
	}
	require.True(t, r.h.RunUntil(func() bool { return uploads == len(cases) }, time.Hour))
	t.Logf("%d truncated files refused as uploads, %d also as folder files, during the transfer", uploads, scans)
	assert.Equal(t, folderBefore, sweepDirNames(t, folder), "nothing was written into the images folder")
	r.runUntilState(devA, time.Hour, StateIdle, StateFailed)
	r.assertUpgraded(devA, served)
	assert.Equal(t, before, sweepImageIDs(store))
	assert.Zero(t, changes, "the store never reported a change")
}

// sweepTruncatedFile is one truncation of an OTA file.
type sweepTruncatedFile struct {
	name string
	data []byte
	scan bool // also drop it into the images folder (a sample: a rescan costs more than an upload)
}

// sweepTruncatedFiles cuts every valid real vendor file, and a file with every optional header field, at every
// byte of its header (from the magic to the end of the header's optional fields), at 0 and 4 bytes, 6 bytes
// into the first sub-element header, and 1 byte short of the whole image when nothing follows it.
func sweepTruncatedFiles(t *testing.T) []sweepTruncatedFile {
	t.Helper()
	type source struct {
		name  string
		data  []byte
		magic int
		hlen  int
		trail int64
	}
	var sources []source
	for _, m := range loadOTAManifest(t) {
		if !m.Valid {
			continue
		}
		sources = append(sources, source{m.File, readTestFile(t, m.File), int(m.MagicOffset), int(m.HeaderLength), m.TrailingBytes})
	}
	h := Header{FieldControl: HeaderFieldSecurityCredential | HeaderFieldDeviceSpecific | HeaderFieldHardwareVersions,
		ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 2, SecurityCredentialVersion: 1,
		UpgradeFileDestination: devA, MinHardwareVersion: 1, MaxHardwareVersion: 9}
	full, err := Build(h, []BuildElement{{Tag: TagUpgradeImage, Data: bytes.Repeat([]byte{0x5A}, 300)}})
	require.NoError(t, err)
	sources = append(sources, source{"every-optional-field.ota", full, 0, NeededHeaderLength(h.FieldControl), 0})
	require.Greater(t, len(sources), 10)

	var out []sweepTruncatedFile
	for _, s := range sources {
		cuts := []int{0, 4}
		for n := s.magic; n < s.magic+s.hlen+6; n++ {
			cuts = append(cuts, n)
		}
		if s.trail == 0 {
			cuts = append(cuts, len(s.data)-1)
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		for i, n := range cuts {
			if n >= len(s.data) {
				continue
			}
			out = append(out, sweepTruncatedFile{name: fmt.Sprintf("%s.cut%d", s.name, n), data: s.data[:n:n],
				scan: i%16 == 0 || n == s.magic+s.hlen-1})
		}
	}
	return out
}

func sweepAnyIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func sweepImageIDs(s *Store) []string {
	var ids []string
	for _, img := range s.Images() {
		ids = append(ids, img.ID)
	}
	return ids
}

func sweepDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
