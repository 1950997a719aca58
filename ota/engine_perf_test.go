package ota

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/zcl"
)

// GoodputResult is one single-device transfer measured on the link model.
type GoodputResult struct {
	ClientMax  int
	Block      int           // data bytes per block the engine chose
	Paged      bool          // the client used Image Page Requests
	Transfer   time.Duration // modelled time from the first block request to the Upgrade End Request
	Goodput    float64       // image bytes per modelled second
	LinkLimit  float64       // the link model's goodput for that block size (request-response, APS acks, 1 hop)
	Fragmented float64       // the link model's goodput had the client's size been served (APS fragmentation)
}

// measureGoodput upgrades one device on the realistic link and measures the transfer's modelled goodput.
func measureGoodput(t testing.TB, clientMax int, paged bool, size int) GoodputResult {
	img := makeImage(t, 0x1234, 1, 2, size)
	profile := "      profile: esp-v2\n"
	if paged {
		profile = "      profile: page\n      response_spacing_ms: 5\n      page_size: 4096\n"
	}
	r := newSimRig(t, netYAML(realisticLink, deviceYAML(devA, profile+fmt.Sprintf("      max_data_size: %d\n", clientMax))),
		EngineConfig{MinPageSpacing: 5 * time.Millisecond}, img)
	_, err := r.eng.Update(devA, nil)
	require.NoError(t, err)
	var start, end time.Duration
	r.h.RunUntil(func() bool {
		st := r.state(devA)
		if start == 0 && st.Bytes > 0 {
			start = r.h.Now()
		}
		if end == 0 && st.State == StateWaitingReboot {
			end = r.h.Now()
		}
		return end != 0
	}, 10*time.Hour)
	require.NotZero(t, end, "transfer did not finish")
	res := GoodputResult{ClientMax: clientMax, Paged: paged, Transfer: end - start}
	res.Block = r.eng.blockSizeLocked(r.eng.devices[devA], uint8(clientMax))
	// The first block's round trip happened before start: count its bytes out.
	res.Goodput = float64(int(img.Size())-res.Block) / res.Transfer.Seconds()
	link := r.h.Net.Link()
	res.LinkLimit = link.BlockGoodput(res.Block, true, 1)
	res.Fragmented = link.BlockGoodput(clientMax, true, 1)
	return res
}

// TestModelledGoodputNearLinkLimit: otabridge must never be the bottleneck. On the link model a block-by-block
// client can reach the model's request-response goodput at best; the engine must get ≥ 95 % of it.
func TestModelledGoodputNearLinkLimit(t *testing.T) {
	for _, clientMax := range []int{48, 64, 223} {
		res := measureGoodput(t, clientMax, false, 100_000)
		ratio := res.Goodput / res.LinkLimit
		t.Logf("client max %3d B: blocks of %d B, %.0f B/s modelled, link limit %.0f B/s, ratio %.3f (served at %d B with APS fragmentation the model would give %.0f B/s)",
			clientMax, res.Block, res.Goodput, res.LinkLimit, ratio, clientMax, res.Fragmented)
		require.GreaterOrEqual(t, ratio, 0.95, "client max %d", clientMax)
	}
	res := measureGoodput(t, 64, true, 100_000)
	t.Logf("page client, 64 B: %.0f B/s modelled (block-by-block link limit %.0f B/s, ratio %.3f)", res.Goodput,
		res.LinkLimit, res.Goodput/res.LinkLimit)
	require.Greater(t, res.Goodput, res.LinkLimit, "page requests beat request-response")
}

// heapSampler tracks the peak of live heap bytes.
type heapSampler struct {
	sample []metrics.Sample
	peak   uint64
}

func newHeapSampler() *heapSampler {
	runtime.GC()
	return &heapSampler{sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

func (h *heapSampler) take() {
	metrics.Read(h.sample)
	if v := h.sample[0].Value.Uint64(); v > h.peak {
		h.peak = v
	}
}

// FleetResult is a fleet run through the queue on the link model.
type FleetResult struct {
	Devices    int
	ImageSize  int
	Images     int
	Modelled   time.Duration // modelled time until every device runs the new version
	Minimum    time.Duration // channel-limited minimum: all bytes at the single-channel block goodput
	PeakHeap   uint64
	Events     uint64
	MaxActive  int
	AllSuccess bool
}

// runFleet upgrades devices through the queue (cap 2) from images stored on disk, one image per group of
// devices, and measures modelled time and peak heap.
func runFleet(t testing.TB, devices, images, imageSize int) FleetResult {
	dir := t.TempDir()
	store, err := NewStore(StoreConfig{Folder: dir, CacheDir: filepath.Join(dir, ".cache")}, nopLogger())
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	for i := 0; i < images; i++ {
		img := makeImage(t, 0x1234, uint16(0x100+i), 2, imageSize)
		b := make([]byte, img.FileSize)
		_, err := img.reader.ReadAt(b, 0)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("img%d.ota", i)), b, 0o644))
	}
	require.NoError(t, store.Load(t.Context()))
	require.Len(t, store.Images(), images)

	var yaml []string
	var ieees []zcl.IEEE
	for i := 0; i < devices; i++ {
		ieee := zcl.IEEE(0x00124b0000100000 + i)
		ieees = append(ieees, ieee)
		yaml = append(yaml, deviceYAML(ieee, fmt.Sprintf("      image_type: 0x%04x\n      max_data_size: 64\n", 0x100+i%images)))
	}
	runtime.GC()
	heap := newHeapSampler()
	r := newSimRigCatalog(t, netYAML(realisticLink, yaml...), EngineConfig{MaxConcurrent: 2}, store)
	for _, ieee := range ieees {
		_, err := r.eng.Update(ieee, nil)
		require.NoError(t, err)
	}
	start := r.h.Now()
	steps := 0
	done := func() bool {
		steps++
		if steps%20000 == 0 {
			heap.take()
		}
		if a, _ := r.eng.Counts(); a > r.maxActive {
			r.maxActive = a
		}
		if steps%500 != 0 && r.h.Clock.Pending() > 0 {
			return false
		}
		for _, ieee := range ieees {
			if s := r.state(ieee).State; s != StateIdle && s != StateFailed {
				return false
			}
		}
		return true
	}
	require.True(t, r.h.RunUntil(done, 1000*time.Hour))
	heap.take()
	res := FleetResult{Devices: devices, ImageSize: imageSize, Images: images, Modelled: r.h.Now() - start,
		PeakHeap: heap.peak, Events: r.h.Clock.Fired(), MaxActive: r.maxActive, AllSuccess: true}
	for _, ieee := range ieees {
		if r.state(ieee).State != StateIdle {
			res.AllSuccess = false
		}
	}
	block := r.eng.blockSizeLocked(r.eng.devices[ieees[0]], 64)
	perDevice := float64(store.Images()[0].Size()) / r.h.Net.Link().BlockGoodput(block, true, 1)
	res.Minimum = time.Duration(perDevice * float64(devices) * float64(time.Second))
	return res
}

// newSimRigCatalog is newSimRig with a real store as the catalogue.
func newSimRigCatalog(t testing.TB, yaml string, cfg EngineConfig, cat Catalog) *simRig {
	r := newSimRig(t, yaml, cfg)
	r.eng.cat = cat
	r.h.Net.SetImageOracle(func(id zcl.ImageID) ([32]byte, bool) {
		if img := cat.ByImageID(id); img != nil {
			return img.SHA256()
		}
		return [32]byte{}, false
	})
	return r
}

func (f FleetResult) report(b testing.TB) {
	b.Logf("%d devices × %d B (%d distinct images): modelled %s, channel minimum %s, ratio %.3f, peak heap %.1f MB, %d events, max %d transfers at once, all verified: %v",
		f.Devices, f.ImageSize, f.Images, f.Modelled.Round(time.Second), f.Minimum.Round(time.Second),
		f.Modelled.Seconds()/f.Minimum.Seconds(), float64(f.PeakHeap)/1e6, f.Events, f.MaxActive, f.AllSuccess)
}

// BenchmarkFleet100x300KB: 100 devices × 300 KB through the queue on the link model.
func BenchmarkFleet100x300KB(b *testing.B) {
	for i := 0; i < b.N; i++ {
		res := runFleet(b, 100, 10, 300_000)
		if !res.AllSuccess {
			b.Fatal("not every device was upgraded")
		}
		res.report(b)
		b.ReportMetric(res.Modelled.Seconds(), "modelled-s")
		b.ReportMetric(res.Modelled.Seconds()/res.Minimum.Seconds(), "x-channel-min")
		b.ReportMetric(float64(res.PeakHeap)/1e6, "peak-heap-MB")
	}
}

// BenchmarkFleetTenDistinct4MBImages: peak heap while 10 devices download 10 distinct 4 MB images.
func BenchmarkFleetTenDistinct4MBImages(b *testing.B) {
	for i := 0; i < b.N; i++ {
		res := runFleet(b, 10, 10, 4<<20)
		if !res.AllSuccess {
			b.Fatal("not every device was upgraded")
		}
		res.report(b)
		b.ReportMetric(float64(res.PeakHeap)/1e6, "peak-heap-MB")
	}
}

// BenchmarkEngineHeapTenDistinct4MBImages measures the server side alone: 10 devices download 10 distinct
// 4 MB images stored on disk, block requests interleaved, with no simulated devices (whose receive buffers
// dominate the fleet benchmark's heap). Images are read with ReadAt, never held whole.
func BenchmarkEngineHeapTenDistinct4MBImages(b *testing.B) {
	const devices, size = 10, 4 << 20
	dir := b.TempDir()
	for i := 0; i < devices; i++ {
		img := makeImage(b, 0x1234, uint16(0x100+i), 2, size)
		buf := make([]byte, img.FileSize)
		_, err := img.reader.ReadAt(buf, 0)
		require.NoError(b, err)
		require.NoError(b, os.WriteFile(filepath.Join(dir, fmt.Sprintf("img%d.ota", i)), buf, 0o644))
	}
	for i := 0; i < b.N; i++ {
		runtime.GC()
		heap := newHeapSampler()
		store, err := NewStore(StoreConfig{Folder: dir, CacheDir: filepath.Join(b.TempDir(), "cache")}, nopLogger())
		require.NoError(b, err)
		require.NoError(b, store.Load(b.Context()))
		r := newEngineRig(b, EngineConfig{MaxConcurrent: devices})
		r.eng.cat = store
		out := &discardOutput{}
		r.eng.out = out
		frames := make([][]byte, devices)
		ids := make([]zcl.ImageID, devices)
		for d := 0; d < devices; d++ {
			ieee := zcl.IEEE(0x00124b0000200000 + d)
			r.eng.SetDevice(mainsDevice(ieee, 0x1234, uint16(0x100+d), 1))
			img, err := r.eng.Update(ieee, nil)
			require.NoError(b, err)
			ids[d] = img.ImageID()
			q := zcl.QueryNextImageRequest{ManufacturerCode: 0x1234, ImageType: uint16(0x100 + d), FileVersion: 1}
			r.eng.HandleFrame(ieee, zcl.AppendFrame(nil, zcl.ClientToServerClusterHeader(1, zcl.CmdQueryNextImageRequest), q))
		}
		total := store.Images()[0].Size()
		req := zcl.ImageBlockRequest{MaxDataSize: 64}
		served := 0
		for off := uint32(0); off < total; off += 64 {
			for d := 0; d < devices; d++ {
				req.ManufacturerCode, req.ImageType, req.FileVersion, req.FileOffset = ids[d].ManufacturerCode, ids[d].ImageType, ids[d].FileVersion, off
				frames[d] = zcl.AppendFrame(frames[d][:0], zcl.ClientToServerClusterHeader(uint8(off), zcl.CmdImageBlockRequest), req)
				r.eng.HandleFrame(zcl.IEEE(0x00124b0000200000+d), frames[d])
				served++
			}
			if off%(256<<10) == 0 {
				heap.take()
			}
		}
		heap.take()
		b.Logf("%d devices × %d B images from disk, %d blocks served: peak live heap %.1f MB", devices, size, served, float64(heap.peak)/1e6)
		b.ReportMetric(float64(heap.peak)/1e6, "peak-heap-MB")
		store.Close()
	}
}
