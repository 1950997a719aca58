// Package bridgetest owns the harness of the bridge's integration tests: a bridge running on a simulated
// network paced in scaled real time against a test broker (bridge/brokertest), and Recorder, an MQTT client
// that records every message per topic and waits for predicates. Tests drive the bridge only the way a user
// does (MQTT requests) and judge it only by what it publishes and by what the simulated devices run.
package bridgetest

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// DefaultTimeout guards every wait of the harness. It is a failure guard only: no test asserts a duration.
const DefaultTimeout = 60 * time.Second

// Message is one message the Recorder received.
type Message struct {
	Seq      int // 1, 2, 3 … in arrival order over all topics
	Topic    string
	Payload  []byte
	Retained bool // the broker sent it as a retained message (on subscribe), not live
}

// JSON decodes the payload into a map (nil when it is not a JSON object).
func (m Message) JSON() map[string]any {
	var v map[string]any
	if json.Unmarshal(m.Payload, &v) != nil {
		return nil
	}
	return v
}

// Recorder is an MQTT client that subscribes to "#" and records everything, across reconnects (it
// subscribes again after each one). Its methods are safe for concurrent use; those that fail the test (all
// but Mark, Messages…, TryWaitFor and TryRawRequest) must be called from the test's goroutine.
type Recorder struct {
	t      testing.TB
	client paho.Client

	mu   sync.Mutex
	msgs []Message
	wake chan struct{} // closed and replaced on every new message
	txn  int
}

// recorders numbers the Recorders of this process (their MQTT client ids must differ).
var recorders atomic.Int64

// NewRecorder connects a recording client to brokerURL (mqtt://host:port) and waits until it has
// subscribed; it disconnects at the end of the test.
func NewRecorder(t testing.TB, brokerURL string) *Recorder {
	t.Helper()
	r := &Recorder{t: t, wake: make(chan struct{})}
	subscribed := make(chan error, 1)
	opts := paho.NewClientOptions().AddBroker(brokerURL).
		SetClientID(fmt.Sprintf("bridgetest-%d-%d", os.Getpid(), recorders.Add(1))).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(250 * time.Millisecond).
		SetOrderMatters(true).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.Subscribe("#", 1, r.record)
			tok.Wait()
			select {
			case subscribed <- tok.Error():
			default:
			}
		})
	r.client = paho.NewClient(opts)
	if tok := r.client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("bridgetest: recorder connect to %s: %v", brokerURL, tok.Error())
	}
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("bridgetest: recorder subscribe: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("bridgetest: recorder did not subscribe within 10s")
	}
	t.Cleanup(func() { r.client.Disconnect(100) })
	return r
}

func (r *Recorder) record(_ paho.Client, m paho.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, Message{Seq: len(r.msgs) + 1, Topic: m.Topic(),
		Payload: append([]byte(nil), m.Payload()...), Retained: m.Retained()})
	close(r.wake)
	r.wake = make(chan struct{})
	r.mu.Unlock()
}

// Mark returns the sequence number of the last message received so far; pass it to WaitFor to look only at
// later messages.
func (r *Recorder) Mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Messages returns the messages received on topic ("" = every topic) after mark, in order.
func (r *Recorder) Messages(topic string, after int) []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Message
	for _, m := range r.msgs[min(after, len(r.msgs)):] {
		if topic == "" || m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// MessagesWithPrefix returns the messages whose topic starts with prefix, received after mark.
func (r *Recorder) MessagesWithPrefix(prefix string, after int) []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Message
	for _, m := range r.msgs[min(after, len(r.msgs)):] {
		if strings.HasPrefix(m.Topic, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// Last returns the newest message on topic.
func (r *Recorder) Last(topic string) (Message, bool) {
	ms := r.Messages(topic, 0)
	if len(ms) == 0 {
		return Message{}, false
	}
	return ms[len(ms)-1], true
}

// WaitFor waits (at most DefaultTimeout, a failure guard) for a message on topic ("" = any) after mark that
// satisfies pred (nil: any) and returns it; the test fails with what (a description of what was awaited)
// and the last messages of the topic when none comes.
func (r *Recorder) WaitFor(what, topic string, after int, pred func(Message) bool) Message {
	r.t.Helper()
	m, ok := r.TryWaitFor(DefaultTimeout, topic, after, pred)
	if !ok {
		r.t.Fatalf("bridgetest: timed out waiting for %s on %q; last messages there:\n%s", what, topic,
			r.describe(topic, after, 8))
	}
	return m
}

// TryWaitFor is WaitFor with a timeout of the caller's, reporting instead of failing.
func (r *Recorder) TryWaitFor(timeout time.Duration, topic string, after int, pred func(Message) bool) (Message, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	next := after
	for {
		r.mu.Lock()
		wake := r.wake
		msgs := r.msgs[min(next, len(r.msgs)):]
		next = len(r.msgs)
		r.mu.Unlock()
		for _, m := range msgs {
			if (topic == "" || m.Topic == topic) && (pred == nil || pred(m)) {
				return m, true
			}
		}
		select {
		case <-wake:
		case <-deadline.C:
			return Message{}, false
		}
	}
}

// Settle waits until no message has arrived for quiet (at most DefaultTimeout, a failure guard): the way
// to let a burst of publications (a bridge's start) end before a test looks at what comes next.
func (r *Recorder) Settle(quiet time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(DefaultTimeout)
	for {
		r.mu.Lock()
		wake := r.wake
		r.mu.Unlock()
		select {
		case <-wake:
			if time.Now().After(deadline) {
				r.t.Fatalf("bridgetest: messages kept coming for %s", DefaultTimeout)
			}
		case <-time.After(quiet):
			return
		}
	}
}

func (r *Recorder) describe(topic string, after, n int) string {
	ms := r.Messages(topic, after)
	if len(ms) > n {
		ms = ms[len(ms)-n:]
	}
	var b strings.Builder
	for _, m := range ms {
		p := string(m.Payload)
		if len(p) > 600 {
			p = p[:600] + "…"
		}
		fmt.Fprintf(&b, "  #%d %s retained=%v %s\n", m.Seq, m.Topic, m.Retained, p)
	}
	if b.Len() == 0 {
		return "  (none)\n"
	}
	return b.String()
}

// Publish publishes payload (QoS 1) and waits for the broker's acknowledgement.
func (r *Recorder) Publish(topic string, payload []byte, retained bool) {
	r.t.Helper()
	tok := r.client.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		r.t.Fatalf("bridgetest: publish %s: %v", topic, tok.Error())
	}
}

// PingPath is the request path WaitBridgeReady uses: unknown to the bridge, so it is refused with an error
// response and changes nothing.
const PingPath = "bridgetest/ping"

// WaitBridgeReady waits until the bridge answers requests: it publishes a request on PingPath every 200 ms
// until a response arrives. A request published before the bridge has (re)subscribed after connecting is
// lost, like any MQTT message nobody subscribes to.
func (r *Recorder) WaitBridgeReady(base string) {
	r.t.Helper()
	mark := r.Mark()
	deadline := time.Now().Add(DefaultTimeout)
	for i := 1; ; i++ {
		r.Publish(base+"/bridge/request/"+PingPath, fmt.Appendf(nil, `{"transaction":"ping-%d"}`, i), false)
		if _, ok := r.TryWaitFor(200*time.Millisecond, base+"/bridge/response/"+PingPath, mark, nil); ok {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("bridgetest: the bridge did not answer requests within %s", DefaultTimeout)
		}
	}
}

// Response is an answer on `<base>/bridge/response/<path>`.
type Response struct {
	Message
	Status      string          `json:"status"`
	Data        map[string]any  `json:"data"`
	Error       string          `json:"error"`
	Transaction json.RawMessage `json:"transaction"`
}

// Request publishes fields (plus a unique "transaction") on `<base>/bridge/request/<path>` and returns the
// response that echoes the transaction.
func (r *Recorder) Request(base, path string, fields map[string]any) Response {
	r.t.Helper()
	r.mu.Lock()
	r.txn++
	txn := fmt.Sprintf("bridgetest-%d", r.txn)
	r.mu.Unlock()
	payload := map[string]any{"transaction": txn}
	for k, v := range fields {
		payload[k] = v
	}
	body, err := json.Marshal(payload)
	if err != nil {
		r.t.Fatalf("bridgetest: encode request %s: %v", path, err)
	}
	want, _ := json.Marshal(txn)
	mark := r.Mark()
	r.Publish(base+"/bridge/request/"+path, body, false)
	m := r.WaitFor("the response to "+string(body), base+"/bridge/response/"+path, mark, func(m Message) bool {
		resp, err := ParseResponse(m)
		return err == nil && string(resp.Transaction) == string(want)
	})
	resp, _ := ParseResponse(m)
	return resp
}

// RawRequest publishes payload as it is on `<base>/bridge/request/<path>` and returns the next response on
// that path. Only one request of the path may be outstanding.
func (r *Recorder) RawRequest(base, path string, payload []byte) Response {
	r.t.Helper()
	resp, err := r.TryRawRequest(base, path, payload)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// TryRawRequest is RawRequest reporting errors instead of failing the test, so that it can be called from
// any goroutine (requests of different paths may run in parallel).
func (r *Recorder) TryRawRequest(base, path string, payload []byte) (Response, error) {
	mark := r.Mark()
	tok := r.client.Publish(base+"/bridge/request/"+path, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return Response{}, fmt.Errorf("bridgetest: publish request %s: %v", path, tok.Error())
	}
	m, ok := r.TryWaitFor(DefaultTimeout, base+"/bridge/response/"+path, mark, nil)
	if !ok {
		return Response{}, fmt.Errorf("bridgetest: no response on %s to %s", path, payload)
	}
	return ParseResponse(m)
}

// ParseResponse decodes a response message strictly: a JSON object with status ok or error.
func ParseResponse(m Message) (Response, error) {
	resp := Response{Message: m}
	if err := json.Unmarshal(m.Payload, &resp); err != nil {
		return resp, fmt.Errorf("response %s is not JSON: %w", m.Payload, err)
	}
	if resp.Status != "ok" && resp.Status != "error" {
		return resp, fmt.Errorf("response %s: status %q", m.Payload, resp.Status)
	}
	return resp, nil
}

// Event is a message on `<base>/bridge/event`.
type Event struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// ParseEvent decodes an event message.
func ParseEvent(m Message) (Event, bool) {
	var ev Event
	if json.Unmarshal(m.Payload, &ev) != nil || ev.Type == "" {
		return ev, false
	}
	return ev, true
}

// WaitEvent waits for an event of typ about the device ieee (data.id; "" = any device) after mark.
func (r *Recorder) WaitEvent(base, typ, ieee string, after int) Event {
	r.t.Helper()
	m := r.WaitFor("event "+typ+" of "+ieee, base+"/bridge/event", after, EventIs(typ, ieee))
	ev, _ := ParseEvent(m)
	return ev
}

// EventIs matches an event of typ about the device ieee ("" = any device).
func EventIs(typ, ieee string) func(Message) bool {
	return func(m Message) bool {
		ev, ok := ParseEvent(m)
		return ok && ev.Type == typ && (ieee == "" || ev.Data["id"] == ieee)
	}
}

// Field returns m's JSON field key (nil when absent or m is not a JSON object).
func Field(m Message, key string) any { return m.JSON()[key] }
