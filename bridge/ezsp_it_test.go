package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/sim"
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
	upgradeThroughFakeStick(t, stickUnderTest{
		radioType: "ezsp",
		model:     "ESP32H2-Light",
		newStick: func(network *sim.Network, log zerolog.Logger) fakeNCP {
			return fakestick.New(network, fakestick.Config{ProtocolVersion: 13, EUI64: network.Config().CoordinatorIEEE, Log: log})
		},
		// The driver forms the network the simulated device is a member of (the sim's configured one), as
		// when a network moves to a new stick with its settings; on any other network the device would not be
		// heard.
		newDriver: func(open func(context.Context) (io.ReadWriteCloser, error), log zerolog.Logger) (ncp.Radio, func() ncp.NetworkSettings) {
			d := ezsp.New(ezsp.Config{Port: "pipe", Network: simNetworkSettings()}, log, ezsp.WithOpener(open))
			return d, d.Network
		},
	})
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
