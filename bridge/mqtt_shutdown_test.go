package bridge

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/brokertest"
)

// slowSubscriber subscribes to everything under a base topic and stops reading (its handler blocks) until
// release is called, so that the broker has a backlog to write to it; it records the state payloads.
type slowSubscriber struct {
	client  paho.Client
	release func()
	mu      sync.Mutex
	states  []string
	gotOff  chan struct{}
	offOnce sync.Once
}

func newSlowSubscriber(t *testing.T, url, base string) *slowSubscriber {
	t.Helper()
	s := &slowSubscriber{gotOff: make(chan struct{})}
	gate := make(chan struct{})
	var once sync.Once
	s.release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(s.release)
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("slow-%d", time.Now().UnixNano())).
		SetAutoReconnect(false).SetOrderMatters(true)
	s.client = paho.NewClient(opts)
	tok := s.client.Connect()
	require.True(t, tok.WaitTimeout(waitLimit))
	require.NoError(t, tok.Error())
	tok = s.client.Subscribe(base+"/#", 0, func(_ paho.Client, m paho.Message) {
		if m.Topic() == base+"/bridge/state" {
			s.mu.Lock()
			s.states = append(s.states, string(m.Payload()))
			s.mu.Unlock()
			if bytes.Equal(m.Payload(), StateOffline) {
				s.offOnce.Do(func() { close(s.gotOff) })
			}
			return
		}
		<-gate // the burst: hold the connection's reader until released
	})
	require.True(t, tok.WaitTimeout(waitLimit))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { s.client.Disconnect(50) })
	return s
}

// Issue 19.5: with the embedded broker, a clean stop publishes {"state":"offline"}, waits for the broker to
// take it, and stops the broker only once every subscriber has been sent it. Each of ten stops comes right
// after a burst of messages (as the bridge's last states at shutdown) that a subscriber is still reading
// when the stop begins: it must see offline every time.
func TestMQTTEmbeddedCleanStopsDeliverOffline(t *testing.T) {
	for i := range 10 {
		t.Run(fmt.Sprint("stop", i+1), func(t *testing.T) {
			cfg := testMQTTConfig(ServerEmbedded)
			m := NewMQTT(cfg, zerolog.Nop())
			require.NoError(t, m.Connect(context.Background()))
			m.mu.Lock()
			url := "tcp://" + m.broker.Addr()
			m.mu.Unlock()
			sub := newSlowSubscriber(t, url, cfg.BaseTopic)
			payload := bytes.Repeat([]byte("x"), 4096)
			for j := range 2000 { // 8 MB: more than the sockets buffer
				require.NoError(t, m.Publish(fmt.Sprintf("%s/dev%d/ota", cfg.BaseTopic, j), payload, false))
			}
			sub.release()
			require.NoError(t, m.Close())
			select {
			case <-sub.gotOff:
			case <-time.After(waitLimit):
				sub.mu.Lock()
				defer sub.mu.Unlock()
				t.Fatalf("the subscriber never got the offline state; states seen: %v", sub.states)
			}
		})
	}
}

// The same with an external broker: Close returns after the broker acknowledged the offline state.
func TestMQTTCleanStopPublishesOffline(t *testing.T) {
	b := brokertest.New(t)
	obs := newObserver(t, b.URL(), "otabridge-test/bridge/state")
	m := NewMQTT(testMQTTConfig(b.URL()), zerolog.Nop())
	require.NoError(t, m.Connect(context.Background()))
	online := obs.waitFor(m.StateTopic(), string(StateOnline), 0)
	require.NoError(t, m.Close())
	obs.waitFor(m.StateTopic(), string(StateOffline), online+1)
}
