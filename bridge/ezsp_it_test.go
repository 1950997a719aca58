package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/brokertest"
	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// mqttWatcher is a test MQTT client that keeps the last message of every topic and every event.
type mqttWatcher struct {
	c      paho.Client
	mu     sync.Mutex
	last   map[string][]byte
	events []map[string]any
}

func newWatcher(t *testing.T, url string) *mqttWatcher {
	w := &mqttWatcher{last: map[string][]byte{}}
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("watcher-%d", time.Now().UnixNano()))
	w.c = paho.NewClient(opts)
	tok := w.c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	tok = w.c.Subscribe("otabridge/#", 1, func(_ paho.Client, m paho.Message) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.last[m.Topic()] = append([]byte(nil), m.Payload()...)
		if m.Topic() == "otabridge/bridge/event" {
			var ev map[string]any
			if json.Unmarshal(m.Payload(), &ev) == nil {
				w.events = append(w.events, ev)
			}
		}
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	t.Cleanup(func() { w.c.Disconnect(100) })
	return w
}

func (w *mqttWatcher) json(topic string) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	var m map[string]any
	_ = json.Unmarshal(w.last[topic], &m)
	return m
}

func (w *mqttWatcher) hasEvent(typ, id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range w.events {
		if d, _ := ev["data"].(map[string]any); ev["type"] == typ && d["id"] == id {
			return true
		}
	}
	return false
}

func (w *mqttWatcher) publish(t *testing.T, topic, payload string) {
	tok := w.c.Publish(topic, 1, false, payload)
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
}

func waitFor(t *testing.T, what string, max time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(max)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBridgeOverEZSPFakeStickUpgradesAndSurvivesStickReset runs the whole product the way a user with a
// Silicon Labs stick does: bridge → EZSP driver → ASH bytes → fake EmberZNet stick → simulated network. A
// device is upgraded from an MQTT request, the stick resets in the middle of the transfer, the driver
// re-initialises, and the transfer resumes and completes with the image verified on the device.
func TestBridgeOverEZSPFakeStickUpgradesAndSurvivesStickReset(t *testing.T) {
	dev := zcl.IEEE(0x00124b00000000a1)
	simCfg, err := sim.ParseConfig([]byte(`
seed: 3
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
	stick := fakestick.New(network, fakestick.Config{ProtocolVersion: 13, EUI64: network.Config().CoordinatorIEEE, Log: log})
	open := func(context.Context) (io.ReadWriteCloser, error) {
		host, ncpSide := net.Pipe()
		wg.Add(1)
		go func() { defer wg.Done(); _ = stick.Serve(ctx, ncpSide) }()
		return host, nil
	}
	// The driver forms the network the simulated device is a member of (the sim's configured one), as when
	// a network moves to a new stick with its settings; on any other network the device would not be heard.
	drv := ezsp.New(ezsp.Config{Port: "pipe", Network: ezsp.NetworkSettings{Channel: sim.DefaultChannel,
		PANID: sim.DefaultPANID, ExtendedPANID: sim.DefaultExtendedPANID, NetworkKey: ezsp.NetworkKey(sim.DefaultNetworkKey)}},
		log, ezsp.WithOpener(open))

	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	require.NoError(t, os.MkdirAll(images, 0o755))
	payload := []byte(strings.Repeat("ezsp end-to-end firmware ", 2400))
	file, err := ota.Build(ota.Header{ManufacturerCode: 0x131b, ImageType: 1, FileVersion: 0x01010000, StackVersion: 2},
		[]ota.BuildElement{{Tag: 0, Data: payload}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(images, "light.ota"), file, 0o644))

	url, _ := brokertest.Start(t)
	cfg := DefaultConfig()
	cfg.Radio.Type = "ezsp"
	cfg.Radio.Port = "pipe"
	cfg.MQTT.Server = url
	cfg.Images.Folder = images
	cfg.Images.CacheDir = filepath.Join(dir, "cache")
	cfg.DataDir = filepath.Join(dir, "data")
	b, err := New(cfg, Options{Version: "test", Log: log, Radio: drv, HealthInterval: -1})
	require.NoError(t, err)
	w := newWatcher(t, url)
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-runDone:
			assert.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("bridge did not stop")
		}
		stick.Close()
		network.Close()
		wg.Wait()
	}()

	id := dev.String()
	waitFor(t, "the device's interview", 30*time.Second, func() bool {
		return w.json("otabridge/" + id + "/update")["latest_version"] == "0x01010000"
	})
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

	st := network.Device(dev).Status()
	assert.Equal(t, uint32(0x01010000), st.FileVersion)
	img := b.store.Images()[0]
	want, _ := img.SHA256()
	assert.Equal(t, want, st.ReceivedSHA256, "the device received the image byte for byte")
	u := w.json("otabridge/" + id + "/update")
	assert.Equal(t, "0x01010000", u["installed_version"])
	assert.Equal(t, "0x01010000", u["latest_version"])
}

func radioResetSeen(w *mqttWatcher) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range w.events {
		if ev["type"] == "radio_reset" {
			return true
		}
	}
	return false
}
