package bridge_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/bridge/brokertest"
)

// automation is an MQTT client that behaves like a Home Assistant automation triggered by the bridge coming
// online: every time `<base>/bridge/state` says online (retained or live), it publishes three
// device/ota_update/update requests at once, from the message callback, without waiting for anything.
type automation struct {
	client paho.Client
	base   string
	ids    []string

	mu        sync.Mutex
	rounds    int
	responses map[string]string // transaction → status
	wake      chan struct{}
}

func newAutomation(t *testing.T, brokerURL, base string, ids []string) *automation {
	t.Helper()
	a := &automation{base: base, ids: ids, responses: map[string]string{}, wake: make(chan struct{}, 1)}
	opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(fmt.Sprintf("automation-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(250 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			c.Subscribe(base+"/bridge/response/#", 1, a.onResponse).Wait()
			c.Subscribe(base+"/bridge/state", 1, a.onState).Wait()
		})
	a.client = paho.NewClient(opts)
	if tok := a.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("automation connect: %v", tok.Error())
	}
	t.Cleanup(func() { a.client.Disconnect(50) })
	return a
}

func (a *automation) onState(c paho.Client, m paho.Message) {
	if !strings.Contains(string(m.Payload()), `"online"`) {
		return
	}
	a.mu.Lock()
	a.rounds++
	round := a.rounds
	a.mu.Unlock()
	for i, id := range a.ids {
		c.Publish(a.base+"/bridge/request/device/ota_update/update", 1, false,
			fmt.Sprintf(`{"id":%q,"transaction":"round%d-%d"}`, id, round, i))
	}
}

func (a *automation) onResponse(_ paho.Client, m paho.Message) {
	resp, err := bridgetest.ParseResponse(bridgetest.Message{Topic: m.Topic(), Payload: m.Payload()})
	if err != nil {
		return
	}
	a.mu.Lock()
	a.responses[strings.Trim(string(resp.Transaction), `"`)] = resp.Status + " " + resp.Error
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// waitRound waits until every request of round n was answered.
func (a *automation) waitRound(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(bridgetest.DefaultTimeout)
	for {
		a.mu.Lock()
		var missing []string
		for i := range a.ids {
			if _, ok := a.responses[fmt.Sprintf("round%d-%d", n, i)]; !ok {
				missing = append(missing, fmt.Sprintf("round%d-%d", n, i))
			}
		}
		rounds, got := a.rounds, fmt.Sprint(a.responses)
		a.mu.Unlock()
		if rounds >= n && len(missing) == 0 {
			return
		}
		select {
		case <-a.wake:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("round %d (of %d seen online): requests %v never answered; answers %s", n, rounds, missing, got)
		}
	}
}

// Issue 19.1: requests published the instant bridge/state says online are answered, on the first connect and
// after a reconnect (the broker restarts: a fresh broker without the retained state).
func TestITRequestsAtOnlineAreAnswered(t *testing.T) {
	skipShort(t)
	broker := brokertest.New(t)
	cfg := bridgetest.RepoConfig(t)
	ids := []string{bridgetest.LightIEEE, bridgetest.BulbIEEE, bridgetest.DoorIEEE}
	auto := newAutomation(t, broker.URL(), cfg.MQTT.BaseTopic, ids)
	bridgetest.Start(t, broker, cfg, bridgetest.Options{NoReadyWait: true})
	auto.waitRound(t, 1)

	broker.Restart()
	auto.waitRound(t, 2)
	auto.mu.Lock()
	t.Logf("answers: %v", auto.responses)
	auto.mu.Unlock()
}
