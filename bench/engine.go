package main

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// engineResult is the cost of serving one Image Block Request.
type engineResult struct {
	nsPerBlock     float64
	allocsPerBlock int64
	bytesPerBlock  int64
	blocks         int
}

// countingOutput is an engine Output that only counts frames, and Image Block Responses with SUCCESS.
type countingOutput struct{ frames, blocks int }

func (o *countingOutput) SendZCL(_ zcl.IEEE, frame []byte, _ ota.SendOptions) {
	o.frames++
	if len(frame) > 3 && frame[2] == zcl.CmdImageBlockResponse && zcl.Status(frame[3]) == zcl.StatusSuccess {
		o.blocks++
	}
}
func (o *countingOutput) BroadcastZCL([]byte)   {}
func (o *countingOutput) Event(ota.Event)       {}
func (o *countingOutput) State(ota.DeviceState) {}
func (o *countingOutput) Interview(zcl.IEEE)    {}
func (o *countingOutput) DurableChanged()       {}

// benchEngineBlock measures Engine.HandleFrame for 64-byte Image Block Requests of a running transfer, the
// image read from a file of the store (the path every served block takes).
func benchEngineBlock(dir string) (engineResult, error) {
	store, err := imageStore(dir, 1, 300_000)
	if err != nil {
		return engineResult{}, err
	}
	defer store.Close()
	img := store.Images()[0]
	out := &countingOutput{}
	eng := ota.NewEngine(ota.EngineConfig{}, store, out, clock.NewVirtual(), zerolog.Nop())
	defer eng.Close()
	const dev = zcl.IEEE(0x00124b0000200001)
	eng.SetDevice(ota.DeviceInfo{IEEE: dev, ManufacturerCode: benchManufacturer, ImageType: firstImageType,
		FileVersion: oldVersion, FileVersionKnown: true})
	if _, err := eng.Update(dev, nil); err != nil {
		return engineResult{}, fmt.Errorf("engine bench: update: %w", err)
	}
	q := zcl.QueryNextImageRequest{ManufacturerCode: benchManufacturer, ImageType: firstImageType, FileVersion: oldVersion}
	eng.HandleFrame(dev, zcl.AppendFrame(nil, zcl.ClientToServerClusterHeader(1, zcl.CmdQueryNextImageRequest), q))
	var frames [][]byte
	id := img.ImageID()
	for off := uint32(0); off+64 <= img.Size(); off += 64 {
		req := zcl.ImageBlockRequest{ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType,
			FileVersion: id.FileVersion, FileOffset: off, MaxDataSize: 64}
		frames = append(frames, zcl.AppendFrame(nil, zcl.ClientToServerClusterHeader(uint8(off), zcl.CmdImageBlockRequest), req))
	}
	var served, wanted int
	res := testing.Benchmark(func(b *testing.B) {
		out.blocks = 0
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			eng.HandleFrame(dev, frames[i%len(frames)])
		}
		served, wanted = out.blocks, b.N
	})
	if res.N == 0 || served != wanted {
		return engineResult{}, fmt.Errorf("engine bench: %d of %d requests were answered with a block", served, wanted)
	}
	if st, _ := eng.State(dev); st.State != ota.StateUpdating {
		return engineResult{}, fmt.Errorf("engine bench: transfer not running (state %s, %s)", st.State, st.LastError)
	}
	return engineResult{nsPerBlock: float64(res.T.Nanoseconds()) / float64(res.N), allocsPerBlock: res.AllocsPerOp(),
		bytesPerBlock: res.AllocedBytesPerOp(), blocks: res.N}, nil
}
