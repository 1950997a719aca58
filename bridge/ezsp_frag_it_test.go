package bridge

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// TestBridgeOverEZSPFakeStickFragmentedBlocks: radio.type ezsp on the fake stick, two ESP v2 lights that ask
// for 223-byte blocks. The one with APS fragmentation gets 223-byte blocks (APS-fragmented by the EZSP
// driver, reassembled by the stick, carried by the simulated network) and verifies its image; the one
// without fails its first fragmented block, falls back to unfragmented blocks (65 bytes at the 82-byte
// limit) and verifies its image too.
func TestBridgeOverEZSPFakeStickFragmentedBlocks(t *testing.T) {
	espIEEE, plainIEEE := zcl.IEEE(0x00124b00000000a1), zcl.IEEE(0x00124b00000000a2)
	simCfg := `
seed: 5
link: {mode: realistic}
devices:
  - ieee: "0x00124b00000000a1"
    model: ESP32H2-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    image_type: 0x0001
    file_version: 0x01000000
    power: mains
    profile: esp-v2
  - ieee: "0x00124b00000000a2"
    model: ESP32H2-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    image_type: 0x0001
    file_version: 0x01000000
    power: mains
    profile: esp-v2
    aps_fragmentation: false
`
	log := zerolog.Nop()
	if os.Getenv("BRIDGE_TEST_LOG") != "" {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	run, network, file := startOverEZSPFakeStick(t, simCfg, log, log, strings.Repeat("fragmented ezsp firmware ", 500))
	b, w := run.b, run.w

	for i, dev := range []zcl.IEEE{espIEEE, plainIEEE} {
		id := dev.String()
		waitFor(t, "the interview of "+id, 30*time.Second, func() bool {
			return w.json("otabridge/" + id + "/update")["latest_version"] == "0x01010000"
		})
		w.publish(t, "otabridge/bridge/request/device/ota_update/update", fmt.Sprintf(`{"id":%q,"transaction":%d}`, id, i+1))
	}
	img := b.store.Images()[0]
	want, _ := img.SHA256()
	size := len(file)
	for _, dev := range []zcl.IEEE{espIEEE, plainIEEE} {
		waitFor(t, "ota_finished of "+dev.String(), 120*time.Second, func() bool { return w.hasEvent("ota_finished", dev.String()) })
		status := network.Device(dev).Status()
		assert.Equal(t, uint32(0x01010000), status.FileVersion)
		assert.Equal(t, want, status.ReceivedSHA256, "%v received the image byte for byte", dev)
	}
	esp, plain := network.Device(espIEEE).Status(), network.Device(plainIEEE).Status()
	// 223-byte blocks: size/223 requests (a few more for retries); 65-byte blocks: at least size/65.
	assert.LessOrEqual(t, esp.BlockRequests, size/223+8, "the fragmenting light got 223-byte blocks")
	assert.GreaterOrEqual(t, plain.BlockRequests, size/65, "the light without fragmentation got unfragmented blocks")
	assert.Zero(t, esp.Failures)
}

// TestBridgeOverEZSPFakeStickMACCounters: radio.type ezsp on the fake stick over a lossy simulated link
// (40 % of MAC transmissions lost), max_concurrent: auto. The bridge reads the stick's MAC counters through
// the EZSP driver (readAndClearCounters), and the adaptive concurrency halves its limit on their retries:
// the MAC-retry signal reaches it from a stick that cannot tell what each frame cost.
func TestBridgeOverEZSPFakeStickMACCounters(t *testing.T) {
	simCfg := `
seed: 9
link: {mode: realistic, loss: 0.4}
devices:
  - ieee: "0x00124b00000000a1"
    model: ESP32H2-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    image_type: 0x0001
    file_version: 0x01000000
    power: mains
    profile: esp-v2
`
	logs := &logBuffer{}
	log := zerolog.New(logs).Level(zerolog.InfoLevel)
	run, _, _ := startOverEZSPFakeStick(t, simCfg, log, log.Level(zerolog.DebugLevel), strings.Repeat("firmware over a lossy link ", 2000),
		func(c *Config) {
			c.OTA.MaxConcurrent = ota.ConcurrencyAuto
			// Only the MAC signal may decide: the lossy link also repeats block requests and slows round trips.
			c.OTA.Adaptive = ota.AdaptiveConfig{Start: 2, Interval: time.Second, RetryRatio: 0.99, RTTFactor: 1000}
		})
	id := zcl.IEEE(0x00124b00000000a1).String()
	waitFor(t, "the interview", 60*time.Second, func() bool {
		return run.w.json("otabridge/" + id + "/update")["latest_version"] == "0x01010000"
	})
	run.w.publish(t, "otabridge/bridge/request/device/ota_update/update", fmt.Sprintf(`{"id":%q}`, id))
	// The transfer's frames cross the lossy link; the counters of each half interval reach the engine.
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	waitFor(t, "an adaptive decision on the stick's MAC retries", 60*time.Second, func() bool {
		return strings.Contains(logs.String(), `"signal":"MAC retries"`)
	})
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"signal":"MAC retries"`) {
			assert.Contains(t, line, `"from":2,"to":1`, line)
			break
		}
	}
}

// startOverEZSPFakeStick runs the bridge (radio.type ezsp, configure applied) on the EZSP driver (logging to
// driverLog) in front of a fake EZSP v14 stick that hosts the simulated network of simYAML (its clock paced
// at 8×), with one image in its folder: manufacturer 0x131b, image type 1, version 0x01010000, payload as
// its upgrade image. Everything stops at the end of the test.
func startOverEZSPFakeStick(t *testing.T, simYAML string, log, driverLog zerolog.Logger, payload string, configure ...func(*Config)) (*bridgeRun, *sim.Network, []byte) {
	t.Helper()
	simCfg, err := sim.ParseConfig([]byte(simYAML))
	require.NoError(t, err)
	clk := clock.NewVirtual()
	network, err := sim.New(simCfg, clk, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = clk.Pace(ctx, 8) }()
	stick := fakestick.New(network, fakestick.Config{ProtocolVersion: 14, EUI64: network.Config().CoordinatorIEEE, Log: log})
	open := func(context.Context) (io.ReadWriteCloser, error) {
		host, ncpSide := net.Pipe()
		wg.Add(1)
		go func() { defer wg.Done(); _ = stick.Serve(ctx, ncpSide) }()
		return host, nil
	}
	drv := ezsp.New(ezsp.Config{Port: "pipe", Network: simNetworkSettings()}, driverLog, ezsp.WithOpener(open))

	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	require.NoError(t, os.MkdirAll(images, 0o755))
	file, err := ota.Build(ota.Header{ManufacturerCode: 0x131b, ImageType: 1, FileVersion: 0x01010000, StackVersion: 2},
		[]ota.BuildElement{{Tag: 0, Data: []byte(payload)}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(images, "light.ota"), file, 0o644))
	run := startBridgeOn(t, ctx, "ezsp", drv, drv.Network, dir, log, configure...)
	t.Cleanup(func() {
		cancel()
		run.wait(t)
		stick.Close()
		network.Close()
		wg.Wait()
	})
	return run, network, file
}
