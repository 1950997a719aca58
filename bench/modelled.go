package main

import (
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/bench/internal/simrig"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// goodputResult is one single-device transfer on the realistic link model.
type goodputResult struct {
	clientMax int
	paged     bool
	block     int           // data bytes per block the engine chose
	transfer  time.Duration // modelled time from the first block response to the Upgrade End Request
	goodput   float64       // image bytes per modelled second
	linkLimit float64       // the link model's request-response goodput for that block size, 1 hop, APS acks
}

// transferClock watches one transfer through the rig's observer: when the first block went out, the block
// size, and when the Upgrade End Request came back.
type transferClock struct {
	rig        *simrig.Rig
	start, end time.Duration
	block      int
}

func (c *transferClock) observer() simrig.Observer {
	return simrig.Observer{
		Sent: func(_ zcl.IEEE, h zcl.Header, payload []byte) {
			if c.block != 0 || h.FrameType != zcl.FrameTypeCluster || h.CommandID != zcl.CmdImageBlockResponse {
				return
			}
			resp, err := zcl.DecodeImageBlockResponse(payload)
			if err == nil && resp.Status == zcl.StatusSuccess {
				c.block, c.start = len(resp.Data), c.rig.Now()
			}
		},
		Received: func(_ zcl.IEEE, h zcl.Header, _ []byte) {
			if c.end == 0 && h.FrameType == zcl.FrameTypeCluster && h.CommandID == zcl.CmdUpgradeEndRequest {
				c.end = c.rig.Now()
			}
		},
	}
}

// measureGoodput upgrades one device (a block client asking clientMax bytes, or a page client) with an
// image of size bytes and measures the modelled goodput of the transfer.
func measureGoodput(dir string, clientMax int, paged bool, size int) (goodputResult, error) {
	store, err := imageStore(dir, 1, size)
	if err != nil {
		return goodputResult{}, err
	}
	defer store.Close()
	dev := benchDevice(0, 0)
	dev.MaxDataSize = uint8(clientMax)
	if paged {
		dev.Profile, dev.PageSize, dev.ResponseSpacingMS = sim.ProfilePage, 4096, 5
	}
	tc := &transferClock{}
	rig, err := simrig.New(sim.Config{Seed: 7, Link: sim.LinkConfig{Mode: sim.ModeRealistic}, Devices: []sim.DeviceConfig{dev}},
		ota.EngineConfig{MinPageSpacing: 5 * time.Millisecond}, store, tc.observer(), zerolog.Nop())
	if err != nil {
		return goodputResult{}, err
	}
	defer rig.Close()
	tc.rig = rig
	if _, err := rig.Engine.Update(dev.IEEE, nil); err != nil {
		return goodputResult{}, fmt.Errorf("update: %w", err)
	}
	rig.RunUntil(func() bool { return tc.end != 0 }, 10*time.Hour)
	if tc.end == 0 || tc.block == 0 {
		return goodputResult{}, fmt.Errorf("goodput %d B: the transfer did not finish", clientMax)
	}
	img := store.Images()[0]
	res := goodputResult{clientMax: clientMax, paged: paged, block: tc.block, transfer: tc.end - tc.start}
	// The first block's round trip happened before start: count its bytes out.
	res.goodput = float64(int(img.Size())-res.block) / res.transfer.Seconds()
	res.linkLimit = rig.Net.Link().BlockGoodput(res.block, true, 1)
	return res, nil
}

// benchDevice is simulated device i of a bench network: a mains ESP-like client (esp-v2 profile) of image
// type firstImageType + i%images, running oldVersion, asking 64-byte blocks.
func benchDevice(i, images int) sim.DeviceConfig {
	typ := firstImageType
	if images > 0 {
		typ += uint16(i % images)
	}
	return sim.DeviceConfig{IEEE: zcl.IEEE(0x00124b0000100000 + uint64(i)), Model: "BenchModel", Manufacturer: "BenchCo",
		ManufacturerCode: benchManufacturer, ImageType: typ, FileVersion: oldVersion, Profile: sim.ProfileESPv2, MaxDataSize: 64}
}

// fleetResult is a fleet run through the engine's queue on the link model.
type fleetResult struct {
	policy    string
	devices   int
	imageSize int
	block     int
	parallel  int
	modelled  time.Duration // until every device runs the new version (or failed)
	minimum   time.Duration // every byte at the single-channel request-response goodput of 64-byte blocks
	upgraded  int
	failed    int
	wall      time.Duration
}

// runFleet upgrades devices (images distinct images of size bytes) through the queue with engine
// configuration cfg and measures the modelled time until all are done.
func runFleet(dir, policy string, cfg ota.EngineConfig, devices, images, size int) (fleetResult, error) {
	store, err := imageStore(dir, images, size)
	if err != nil {
		return fleetResult{}, err
	}
	defer store.Close()
	simCfg := sim.Config{Seed: 7, Link: sim.LinkConfig{Mode: sim.ModeRealistic}}
	for i := 0; i < devices; i++ {
		simCfg.Devices = append(simCfg.Devices, benchDevice(i, images))
	}
	tc := &transferClock{}
	rig, err := simrig.New(simCfg, cfg, store, tc.observer(), zerolog.Nop())
	if err != nil {
		return fleetResult{}, err
	}
	defer rig.Close()
	tc.rig = rig
	for _, d := range simCfg.Devices {
		if _, err := rig.Engine.Update(d.IEEE, nil); err != nil {
			return fleetResult{}, fmt.Errorf("update %s: %w", d.IEEE, err)
		}
	}
	wallStart := time.Now()
	start := rig.Now()
	steps := 0
	done := func() bool {
		steps++
		if steps%1000 != 0 && rig.Clock.Pending() > 0 {
			return false
		}
		for _, st := range rig.Engine.States() {
			if st.State != ota.StateIdle && st.State != ota.StateFailed {
				return false
			}
		}
		return true
	}
	if !rig.RunUntil(done, 1000*time.Hour) {
		return fleetResult{}, fmt.Errorf("fleet %s: not every device finished within 1000 modelled hours", policy)
	}
	res := fleetResult{policy: policy, devices: devices, imageSize: int(store.Images()[0].Size()), block: tc.block,
		parallel: int(rig.Engine.Config().MaxConcurrent), modelled: rig.Now() - start, wall: time.Since(wallStart)}
	for _, st := range rig.Engine.States() {
		if st.State == ota.StateIdle && st.InstalledVersion != nil && *st.InstalledVersion == newVersion {
			res.upgraded++
		} else {
			res.failed++
		}
	}
	perDevice := float64(res.imageSize) / rig.Net.Link().BlockGoodput(64, true, 1)
	res.minimum = time.Duration(perDevice * float64(devices) * float64(time.Second))
	return res, nil
}

// tempDir makes a scratch directory for one measurement.
func tempDir(parent, name string) (string, error) {
	d, err := os.MkdirTemp(parent, name+"-")
	if err != nil {
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	return d, nil
}
