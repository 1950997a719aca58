package bridgetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/brokertest"
	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
)

// The simulated devices of the repository's config.yaml, their images and the topics' roots.
const (
	LightIEEE = "0x00124b0000000001" // ESP32-C6 light, esp-v2 client, mains; images/esp32c6-light-1.1.0.ota
	BulbIEEE  = "0x000d6ffffe000002" // TRADFRI bulb, silabs client, mains; images/tradfri-bulb-e27-2.4.5.ota
	DoorIEEE  = "0x00158d0000000003" // door sensor, periodic client, sleepy; images/door-sensor-27.ota
	HueIEEE   = "0x0017880100000004" // Hue bulb, page client, mains; no image

	LightOld = 0x01000000 // the light's file version in config.yaml
	LightNew = 0x01010000 // the file version of images/esp32c6-light-1.1.0.ota
	DoorOld  = 0x0000001a // the door sensor's file version in config.yaml
	DoorNew  = 0x0000001b // the file version of images/door-sensor-27.ota

	BaseTopic = "otabridge"     // mqtt.base_topic of config.yaml
	HAPrefix  = "homeassistant" // mqtt.discovery_prefix of config.yaml
)

// DefaultSpeed is the harness's default simulation speed (virtual seconds per wall second).
const DefaultSpeed = 100

// RepoRoot returns the repository root (the directory holding go.mod), found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// RepoConfig loads the repository's config.yaml (the documented defaults and the demo devices) and points
// it at the test: data directory and images (a copy of the repository's images/) in temp dirs, a client id
// of its own, log level info. Start sets the broker. The caller adjusts the rest.
func RepoConfig(t testing.TB) bridge.Config {
	t.Helper()
	root := RepoRoot()
	cfg, err := bridge.LoadConfig(filepath.Join(root, "config.yaml"), nil)
	if err != nil {
		t.Fatalf("bridgetest: load config.yaml: %v", err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Images.Folder = CopyImages(t, filepath.Join(root, "images"))
	cfg.Images.CacheDir = filepath.Join(cfg.DataDir, "ota-cache")
	cfg.MQTT.ClientID = fmt.Sprintf("otabridge-it-%d", time.Now().UnixNano())
	cfg.Log.Level = "info"
	cfg.Web.Listen = "127.0.0.1:0" // a free port: tests run side by side
	return cfg
}

// CopyImages copies the files of dir into a new temp dir and returns it.
func CopyImages(t testing.TB, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("bridgetest: read %s: %v", dir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatalf("bridgetest: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatalf("bridgetest: %v", err)
		}
	}
	return dst
}

// KeepDevices keeps only the simulated devices with the given IEEE addresses.
func KeepDevices(t testing.TB, cfg *bridge.Config, ieees ...string) {
	t.Helper()
	var keep []sim.DeviceConfig
	for _, d := range cfg.Radio.Sim.Devices {
		for _, s := range ieees {
			if d.IEEE.String() == s {
				keep = append(keep, d)
			}
		}
	}
	if len(keep) != len(ieees) {
		t.Fatalf("bridgetest: config.yaml lacks some of the devices %v", ieees)
	}
	cfg.Radio.Sim.Devices = keep
}

// SimDevice returns the configuration of the simulated device ieee, to change it.
func SimDevice(t testing.TB, cfg *bridge.Config, ieee string) *sim.DeviceConfig {
	t.Helper()
	for i := range cfg.Radio.Sim.Devices {
		if cfg.Radio.Sim.Devices[i].IEEE.String() == ieee {
			return &cfg.Radio.Sim.Devices[i]
		}
	}
	t.Fatalf("bridgetest: no simulated device %s", ieee)
	return nil
}

// Options configure a Harness.
type Options struct {
	// Speed of the simulated network (virtual seconds per wall second; default DefaultSpeed).
	Speed float64
	// BirthDelay is the bridge's delay bound after Home Assistant's birth message (default 10ms).
	BirthDelay time.Duration
	// NoReadyWait makes Start return as soon as the bridge runs, without waiting until it answers
	// requests (tests of what a client sees while the bridge connects).
	NoReadyWait bool
	// ServerUserInfo, when set ("user:password"), goes into mqtt.server before the broker's host (the
	// test brokers accept any credentials).
	ServerUserInfo string
	// LogLevel is the bridge's log level ("" = info; "trace" logs every MQTT payload).
	LogLevel string
}

// Harness is a running bridge on a simulated network, with a broker and a Recorder.
type Harness struct {
	T      testing.TB
	Cfg    bridge.Config
	Broker *brokertest.Broker
	Rec    *Recorder
	Net    *sim.Network
	Base   string
	// Bridge is the bridge under test (its web console: Bridge.WebAddr).
	Bridge *bridge.Bridge

	cancel   context.CancelFunc
	stopPace context.CancelFunc
	done     chan struct{} // closed when Run returned
	runErr   error         // Run's result, valid after done
	pacer    sync.WaitGroup
	logs     *syncBuffer
	once     sync.Once
}

// Start starts the broker (a new one when broker is nil), a Recorder subscribed to it, and the bridge with cfg
// on a simulated network built from cfg.Radio.Sim and paced at opts.Speed, and returns once the bridge
// answers requests (unless opts.NoReadyWait). The bridge is stopped at the end of the test (or by Stop);
// its log is printed when the test failed (or BRIDGETEST_LOG is set), and every update entity state it
// published is checked against HA's schema.
func Start(t testing.TB, broker *brokertest.Broker, cfg bridge.Config, opts Options) *Harness {
	t.Helper()
	if broker == nil {
		broker = brokertest.New(t)
	}
	if opts.Speed <= 0 {
		opts.Speed = DefaultSpeed
	}
	if opts.BirthDelay <= 0 {
		opts.BirthDelay = 10 * time.Millisecond
	}
	cfg.MQTT.Server = broker.URL()
	if opts.ServerUserInfo != "" {
		cfg.MQTT.Server = "mqtt://" + opts.ServerUserInfo + "@" + broker.Addr()
	}
	h := &Harness{T: t, Cfg: cfg, Broker: broker, Base: cfg.MQTT.BaseTopic, logs: &syncBuffer{}}
	h.Rec = NewRecorder(t, broker.URL())
	h.startBridge(opts)
	t.Cleanup(func() {
		h.Stop()
		// Every update entity state published during the test must pass HA's schema.
		if err := CheckAllUpdateStates(h.Rec, h.Base); err != nil {
			t.Errorf("bridgetest: %v", err)
		}
		if t.Failed() || os.Getenv("BRIDGETEST_LOG") != "" {
			t.Logf("bridge log (last 64 KiB):\n%s", h.logs.tail(64<<10))
		}
	})
	if !opts.NoReadyWait {
		h.Rec.WaitBridgeReady(h.Base)
	}
	return h
}

func (h *Harness) startBridge(opts Options) {
	t := h.T
	t.Helper()
	level := zerolog.InfoLevel
	if opts.LogLevel != "" {
		l, err := zerolog.ParseLevel(opts.LogLevel)
		if err != nil {
			t.Fatalf("bridgetest: log level: %v", err)
		}
		level = l
	}
	log := zerolog.New(h.logs).Level(level).With().Timestamp().Logger()
	vclk := clock.NewVirtual()
	n, err := sim.New(h.Cfg.Radio.Sim, vclk, log.With().Str("component", "sim").Logger())
	if err != nil {
		t.Fatalf("bridgetest: simulated network: %v", err)
	}
	b, err := bridge.New(h.Cfg, bridge.Options{Version: "it", Log: log, Radio: n, HealthInterval: -1,
		BirthDelay: opts.BirthDelay})
	if err != nil {
		t.Fatalf("bridgetest: bridge.New: %v", err)
	}
	h.Net, h.Bridge = n, b
	ctx, cancel := context.WithCancel(context.Background())
	paceCtx, stopPace := context.WithCancel(context.Background())
	h.cancel, h.stopPace = cancel, stopPace
	h.done = make(chan struct{})
	h.pacer.Add(1)
	go func() {
		defer h.pacer.Done()
		_ = vclk.Pace(paceCtx, opts.Speed)
	}()
	go func() {
		defer close(h.done)
		h.runErr = b.Run(ctx)
	}()
}

// Stop stops the bridge, then the simulated network's pacer (which keeps the network going while the bridge
// shuts down), and waits for both. It fails the test when Run returned an error. Later calls do nothing.
func (h *Harness) Stop() {
	h.once.Do(func() {
		h.cancel()
		select {
		case <-h.done:
			if h.runErr != nil {
				h.T.Errorf("bridgetest: bridge Run: %v", h.runErr)
			}
		case <-time.After(30 * time.Second):
			h.T.Errorf("bridgetest: the bridge did not stop within 30s")
		}
		h.stopPace()
		h.pacer.Wait()
	})
}

// Log returns the bridge's log so far (JSON lines).
func (h *Harness) Log() string { return h.logs.String() }

// Device returns the simulated device ieee.
func (h *Harness) Device(ieee string) *sim.Device {
	h.T.Helper()
	a, err := zcl.ParseIEEE(ieee)
	if err != nil {
		h.T.Fatalf("bridgetest: %v", err)
	}
	d := h.Net.Device(a)
	if d == nil {
		h.T.Fatalf("bridgetest: no simulated device %s", ieee)
	}
	return d
}

// Logs returns everything the bridge logged so far (JSON lines).
func (h *Harness) Logs() string { return h.logs.String() }

// Topic is `<base>/<suffix>`.
func (h *Harness) Topic(suffix string) string { return h.Base + "/" + suffix }

// Request sends a request and returns its response (see Recorder.Request).
func (h *Harness) Request(path string, fields map[string]any) Response {
	h.T.Helper()
	return h.Rec.Request(h.Base, path, fields)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *syncBuffer) tail(n int) string {
	str := s.String()
	if len(str) > n {
		return str[len(str)-n:]
	}
	return str
}

var _ io.Writer = (*syncBuffer)(nil)
