package bridge

import (
	"context"
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

	"github.com/otabridge/otabridge/bridge/brokertest"
	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// fakeNCP is a fake stick of any protocol hosting ncp/sim.
type fakeNCP interface {
	Serve(ctx context.Context, port io.ReadWriteCloser) error
	Reset()
	Close() error
}

// stickUnderTest says how to build a fake stick and the driver in front of it.
type stickUnderTest struct {
	radioType string // radio.type of the configuration
	model     string // the simulated light's model
	newStick  func(network *sim.Network, log zerolog.Logger) fakeNCP
	// newDriver returns the driver on open's byte streams and its Network (what savingRadio saves).
	newDriver func(open func(context.Context) (io.ReadWriteCloser, error), log zerolog.Logger) (ncp.Radio, func() ncp.NetworkSettings)
}

// simNetworkSettings is the simulated network's configured network (the one its devices are members of).
func simNetworkSettings() ncp.NetworkSettings {
	return ncp.NetworkSettings{Channel: sim.DefaultChannel, PANID: sim.DefaultPANID, ExtendedPANID: sim.DefaultExtendedPANID,
		NetworkKey: ncp.NetworkKey(sim.DefaultNetworkKey)}
}

// upgradeThroughFakeStick runs the whole product over a fake stick: bridge → driver → the stick's serial
// protocol on an in-memory port → fake stick → simulated network. An ESP v2 light is upgraded from an MQTT
// request, the stick resets in the middle of the transfer, the driver re-initialises, and the transfer
// resumes and completes with the image verified byte for byte on the device; the network is saved in the
// data directory.
func upgradeThroughFakeStick(t *testing.T, st stickUnderTest) {
	dev := zcl.IEEE(0x00124b00000000a1)
	simCfg, err := sim.ParseConfig([]byte(`
seed: 3
link: {mode: realistic}
devices:
  - ieee: "0x00124b00000000a1"
    model: ` + st.model + `
    manufacturer: Espressif
    manufacturer_code: 0x131b
    image_type: 0x0001
    file_version: 0x01000000
    power: mains
    profile: esp-v2
`))
	require.NoError(t, err)
	log := zerolog.Nop()
	if os.Getenv("BRIDGE_TEST_LOG") != "" {
		log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	clk := clock.NewVirtual()
	network, err := sim.New(simCfg, clk, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = clk.Pace(ctx, 4) }()
	stick := st.newStick(network, log)
	open := func(context.Context) (io.ReadWriteCloser, error) {
		host, ncpSide := net.Pipe()
		wg.Add(1)
		go func() { defer wg.Done(); _ = stick.Serve(ctx, ncpSide) }()
		return host, nil
	}
	drv, networkOf := st.newDriver(open, log)

	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	require.NoError(t, os.MkdirAll(images, 0o755))
	payload := []byte(strings.Repeat(st.radioType+" end-to-end firmware ", 2400))
	file, err := ota.Build(ota.Header{ManufacturerCode: 0x131b, ImageType: 1, FileVersion: 0x01010000, StackVersion: 2},
		[]ota.BuildElement{{Tag: 0, Data: payload}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(images, "light.ota"), file, 0o644))

	run := startBridgeOn(t, ctx, st.radioType, drv, networkOf, dir, log)
	b, w, cfg := run.b, run.w, run.cfg
	defer func() {
		cancel()
		run.wait(t)
		stick.Close()
		network.Close()
		wg.Wait()
	}()

	id := dev.String()
	waitFor(t, "the device's interview", 30*time.Second, func() bool {
		return w.json("otabridge/" + id + "/update")["latest_version"] == "0x01010000"
	})
	var saved ncp.NetworkSettings
	_, err = LoadJSON(filepath.Join(cfg.DataDir, NetworkFile), &saved, log)
	require.NoError(t, err)
	assert.Equal(t, simNetworkSettings(), saved, "the network is saved in the data directory")
	w.publish(t, "otabridge/bridge/request/device/ota_update/update", `{"id":"`+id+`","transaction":1}`)
	waitFor(t, "the response", 10*time.Second, func() bool {
		return w.json("otabridge/bridge/response/device/ota_update/update")["status"] == "ok"
	})
	size := uint32(len(file))
	waitFor(t, "a third of the transfer", 60*time.Second, func() bool {
		return network.Device(dev).Status().Offset > size/3
	})
	stick.Reset()
	waitFor(t, "ota_finished", 120*time.Second, func() bool { return w.hasEvent("ota_finished", id) })
	assert.True(t, radioResetSeen(w), "the bridge reported the stick reset")

	status := network.Device(dev).Status()
	assert.Equal(t, uint32(0x01010000), status.FileVersion)
	img := b.store.Images()[0]
	want, _ := img.SHA256()
	assert.Equal(t, want, status.ReceivedSHA256, "the device received the image byte for byte")
	u := w.json("otabridge/" + id + "/update")
	assert.Equal(t, "0x01010000", u["installed_version"])
	assert.Equal(t, "0x01010000", u["latest_version"])
}

// bridgeRun is a bridge running on a serial driver in front of a fake stick, with a broker of its own.
type bridgeRun struct {
	b    *Bridge
	w    *mqttWatcher
	cfg  Config
	done chan error
}

// startBridgeOn runs the bridge (radio.type radioType) on drv, wrapped to save its network, with the images
// of dir/images and its data in dir/data, until ctx ends.
func startBridgeOn(t *testing.T, ctx context.Context, radioType string, drv ncp.Radio, networkOf func() ncp.NetworkSettings, dir string, log zerolog.Logger, configure ...func(*Config)) *bridgeRun {
	t.Helper()
	url, _ := brokertest.Start(t)
	cfg := DefaultConfig()
	cfg.Radio.Type = radioType
	cfg.Radio.Port = "pipe"
	cfg.MQTT.Server = url
	cfg.Images.Folder = filepath.Join(dir, "images")
	cfg.Images.CacheDir = filepath.Join(dir, "cache")
	cfg.DataDir = filepath.Join(dir, "data")
	for _, f := range configure {
		f(&cfg)
	}
	radio := &savingRadio{Radio: drv, network: networkOf, path: filepath.Join(cfg.DataDir, NetworkFile), log: log}
	b, err := New(cfg, Options{Version: "test", Log: log, Radio: radio, HealthInterval: -1})
	require.NoError(t, err)
	r := &bridgeRun{b: b, w: newWatcher(t, url), cfg: cfg, done: make(chan error, 1)}
	go func() { r.done <- b.Run(ctx) }()
	return r
}

// wait waits for the bridge to stop after its context ended.
func (r *bridgeRun) wait(t *testing.T) {
	select {
	case err := <-r.done:
		assert.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Error("bridge did not stop")
	}
}
