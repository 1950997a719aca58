package ota

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/zcl"
)

// sentFrame is one frame the engine sent.
type sentFrame struct {
	dst       zcl.IEEE // 0 for broadcast
	frame     []byte
	apsAck    bool
	at        time.Time
	header    zcl.Header
	payload   []byte
	broadcast bool
}

// recOutput records everything the engine puts out.
type recOutput struct {
	mu         sync.Mutex
	clk        clock.Clock
	frames     []sentFrame
	events     []Event
	states     map[zcl.IEEE][]DeviceState
	interviews []zcl.IEEE
	durable    int
	onSend     func(f sentFrame) // called outside the record lock, still inside the engine's lock
	onIntv     func(zcl.IEEE)
}

func newRecOutput(clk clock.Clock) *recOutput {
	return &recOutput{clk: clk, states: map[zcl.IEEE][]DeviceState{}}
}

func (o *recOutput) record(dst zcl.IEEE, frame []byte, ack, bcast bool) {
	f := sentFrame{dst: dst, frame: bytes.Clone(frame), apsAck: ack, at: o.clk.Now(), broadcast: bcast}
	h, p, err := zcl.DecodeHeader(f.frame)
	if err != nil {
		panic(fmt.Sprintf("engine sent an undecodable frame %x: %v", frame, err))
	}
	f.header, f.payload = h, p
	o.mu.Lock()
	o.frames = append(o.frames, f)
	cb := o.onSend
	o.mu.Unlock()
	if cb != nil {
		cb(f)
	}
}

func (o *recOutput) SendZCL(dst zcl.IEEE, frame []byte, opt SendOptions) {
	o.record(dst, frame, opt.APSAck, false)
}
func (o *recOutput) BroadcastZCL(frame []byte) { o.record(0, frame, false, true) }
func (o *recOutput) Event(ev Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}
func (o *recOutput) State(st DeviceState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.states[st.IEEE] = append(o.states[st.IEEE], st)
}
func (o *recOutput) Interview(dst zcl.IEEE) {
	o.mu.Lock()
	o.interviews = append(o.interviews, dst)
	cb := o.onIntv
	o.mu.Unlock()
	if cb != nil {
		cb(dst)
	}
}
func (o *recOutput) DurableChanged() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.durable++
}

// take returns and forgets the frames sent so far.
func (o *recOutput) take() []sentFrame {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.frames
	o.frames = nil
	return f
}

func (o *recOutput) eventTypes() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var t []string
	for _, e := range o.events {
		t = append(t, e.Type)
	}
	return t
}

func (o *recOutput) lastState(ieee zcl.IEEE) DeviceState {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.states[ieee]
	if len(s) == 0 {
		return DeviceState{}
	}
	return s[len(s)-1]
}

// testCatalog is a minimal Catalog for engine unit tests: manufacturer code and image type must match;
// newest newer image, or the exact version asked.
type testCatalog struct{ images []*Image }

func (c *testCatalog) Match(dev DeviceInfo, q MatchQuery) *Image {
	var best *Image
	for _, img := range c.images {
		h := img.Header
		if h.ManufacturerCode != dev.ManufacturerCode || h.ImageType != dev.ImageType {
			continue
		}
		if q.Skip != nil && q.Skip(img) {
			continue
		}
		if q.Version != nil {
			if h.FileVersion == *q.Version {
				return img
			}
			continue
		}
		if h.FileVersion <= dev.FileVersion {
			continue
		}
		if best == nil || h.FileVersion > best.Header.FileVersion {
			best = img
		}
	}
	return best
}

func (c *testCatalog) ByImageID(id zcl.ImageID) *Image {
	for _, img := range c.images {
		if img.ImageID() == id {
			return img
		}
	}
	return nil
}

func (c *testCatalog) Get(id string) *Image {
	for _, img := range c.images {
		if img.ID == id {
			return img
		}
	}
	return nil
}

// makeImage builds an OTA file with a random payload of n bytes in memory and makes it a local Image.
func makeImage(t testing.TB, mfr, typ uint16, ver uint32, n int) *Image {
	t.Helper()
	payload := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(ver), uint64(n)))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	h := Header{ManufacturerCode: mfr, ImageType: typ, FileVersion: ver, StackVersion: 2}
	copy(h.HeaderString[:], fmt.Sprintf("test image %08x", ver))
	b, err := Build(h, []BuildElement{{Tag: 0, Data: payload}})
	require.NoError(t, err)
	return imageFromBytes(t, fmt.Sprintf("test-%04x-%04x-%08x", mfr, typ, ver), b)
}

func imageFromBytes(t testing.TB, id string, b []byte) *Image {
	t.Helper()
	f, err := ParseBytes(b)
	require.NoError(t, err)
	region := b[f.MagicOffset : f.MagicOffset+int64(f.Header.TotalImageSize)]
	img := &Image{ID: id, Source: "test", FileName: id + ".ota", FileSize: int64(len(b)), Header: f.Header}
	img.attach("", f, bytes.NewReader(b), nil, sha256.Sum256(region))
	return img
}

// servable returns the bytes a device should receive.
func servable(t testing.TB, img *Image) []byte {
	t.Helper()
	out := make([]byte, img.Size())
	n, err := img.ReadAt(out, 0)
	require.NoError(t, err)
	require.Equal(t, len(out), n)
	return out
}

// engineRig is an engine on a virtual clock with a recording output.
type engineRig struct {
	t   testing.TB
	clk *clock.Virtual
	out *recOutput
	cat *testCatalog
	eng *Engine
	tsn uint8
}

func newEngineRig(t testing.TB, cfg EngineConfig, images ...*Image) *engineRig {
	clk := clock.NewVirtual()
	out := newRecOutput(clk)
	cat := &testCatalog{images: images}
	eng := NewEngine(cfg, cat, out, clk, zerolog.Nop())
	t.Cleanup(eng.Close)
	return &engineRig{t: t, clk: clk, out: out, cat: cat, eng: eng}
}

func (r *engineRig) send(src zcl.IEEE, cmd uint8, p zcl.Payload) uint8 {
	r.tsn++
	frame := p.AppendPayload(zcl.ClientToServerClusterHeader(r.tsn, cmd).AppendTo(nil))
	r.eng.HandleFrame(src, frame)
	return r.tsn
}

func (r *engineRig) query(src zcl.IEEE, mfr, typ uint16, ver uint32) zcl.QueryNextImageResponse {
	r.t.Helper()
	r.out.take()
	tsn := r.send(src, zcl.CmdQueryNextImageRequest, zcl.QueryNextImageRequest{ManufacturerCode: mfr, ImageType: typ, FileVersion: ver})
	f := r.only(src, zcl.CmdQueryNextImageResponse)
	require.Equal(r.t, tsn, f.header.TSN, "response echoes the request TSN")
	resp, err := zcl.DecodeQueryNextImageResponse(f.payload)
	require.NoError(r.t, err)
	return resp
}

func (r *engineRig) block(src zcl.IEEE, id zcl.ImageID, off uint32, max uint8) zcl.ImageBlockResponse {
	r.t.Helper()
	r.out.take()
	r.send(src, zcl.CmdImageBlockRequest, zcl.ImageBlockRequest{ManufacturerCode: id.ManufacturerCode,
		ImageType: id.ImageType, FileVersion: id.FileVersion, FileOffset: off, MaxDataSize: max})
	f := r.only(src, zcl.CmdImageBlockResponse)
	resp, err := zcl.DecodeImageBlockResponse(f.payload)
	require.NoError(r.t, err)
	resp.Data = bytes.Clone(resp.Data)
	return resp
}

func (r *engineRig) upgradeEnd(src zcl.IEEE, status zcl.Status, id zcl.ImageID) sentFrame {
	r.t.Helper()
	r.out.take()
	r.send(src, zcl.CmdUpgradeEndRequest, zcl.UpgradeEndRequest{Status: status, ManufacturerCode: id.ManufacturerCode,
		ImageType: id.ImageType, FileVersion: id.FileVersion})
	frames := r.out.take()
	require.Len(r.t, frames, 1)
	return frames[0]
}

// only asserts that exactly one frame went out, to src, with command cmd (cluster-specific), and returns it.
func (r *engineRig) only(src zcl.IEEE, cmd uint8) sentFrame {
	r.t.Helper()
	frames := r.out.take()
	require.Len(r.t, frames, 1, "frames sent")
	f := frames[0]
	require.Equal(r.t, src, f.dst)
	require.Equal(r.t, zcl.FrameTypeCluster, f.header.FrameType)
	require.Equal(r.t, zcl.ServerToClient, f.header.Direction)
	require.True(r.t, f.header.DisableDefaultResponse, "server responses disable the default response")
	require.Equal(r.t, cmd, f.header.CommandID)
	return f
}

// download fetches the whole image with block requests of max bytes and returns what arrived.
func (r *engineRig) download(src zcl.IEEE, id zcl.ImageID, size uint32, max uint8) []byte {
	r.t.Helper()
	var got []byte
	for off := uint32(0); off < size; {
		resp := r.block(src, id, off, max)
		require.Equal(r.t, zcl.StatusSuccess, resp.Status, "block at %d", off)
		require.Equal(r.t, off, resp.FileOffset)
		require.NotEmpty(r.t, resp.Data)
		got = append(got, resp.Data...)
		off += uint32(len(resp.Data))
	}
	return got
}
