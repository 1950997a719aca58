package bridge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// brokerClient connects a paho client to the embedded broker and records what it receives on topic.
func brokerClient(t *testing.T, addr, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetAutoReconnect(false))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(waitLimit), "connect")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(10) })
	return c
}

// TestEmbeddedBrokerPacketLimit: a publish larger than the largest request is refused (the client is
// disconnected) and the broker serves the others on; one of the largest request size goes through.
func TestEmbeddedBrokerPacketLimit(t *testing.T) {
	b, err := StartBroker(BrokerConfig{Listen: "127.0.0.1:0"}, zerolog.Nop())
	require.NoError(t, err)
	defer b.Close()

	var mu sync.Mutex
	var got []int
	sub := brokerClient(t, b.Addr(), "sub")
	require.True(t, sub.Subscribe("big/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, len(m.Payload()))
		mu.Unlock()
	}).WaitTimeout(waitLimit))

	pub := brokerClient(t, b.Addr(), "pub")
	tok := pub.Publish("big/ok", 1, false, make([]byte, maxRequestPayload))
	require.True(t, tok.WaitTimeout(30*time.Second))
	require.NoError(t, tok.Error())

	huge := brokerClient(t, b.Addr(), "huge")
	huge.Publish("big/huge", 1, false, make([]byte, MaxBrokerPacket+1))
	eventually(t, func() bool { return !huge.IsConnectionOpen() }, "the broker to drop the client that sent a packet above the limit")

	tok = pub.Publish("big/after", 1, false, []byte("still here"))
	require.True(t, tok.WaitTimeout(waitLimit))
	require.NoError(t, tok.Error())
	eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 2
	}, "the subscriber to get the two allowed publishes")
	mu.Lock()
	assert.Equal(t, []int{maxRequestPayload, len("still here")}, got, "the oversized publish never reached anyone")
	mu.Unlock()
}

// TestEmbeddedBrokerRetainedLimits: retained publishes above the per-message cap, or past the total, are
// delivered but not kept; clearing a retained message gives its room back.
func TestEmbeddedBrokerRetainedLimits(t *testing.T) {
	b, err := StartBroker(BrokerConfig{Listen: "127.0.0.1:0"}, zerolog.Nop())
	require.NoError(t, err)
	defer b.Close()
	pub := brokerClient(t, b.Addr(), "pub")
	publish := func(topic string, n int) {
		t.Helper()
		tok := pub.Publish(topic, 1, true, bytes.Repeat([]byte{'r'}, n))
		require.True(t, tok.WaitTimeout(30*time.Second))
		require.NoError(t, tok.Error())
	}
	publish("keep/small", 100)
	publish("keep/too-big", maxRetainedMessage+1)
	perTopic := maxRetainedMessage
	filled := 0
	for i := 0; (filled + perTopic) <= maxRetainedTotal-100; i++ {
		publish(fmt.Sprintf("keep/fill-%d", i), perTopic)
		filled += perTopic
	}
	publish("keep/over-total", perTopic) // would pass the total

	retained := func() map[string]int {
		out := map[string]int{}
		var mu sync.Mutex
		c := brokerClient(t, b.Addr(), fmt.Sprintf("late-%d", time.Now().UnixNano()))
		require.True(t, c.Subscribe("keep/#", 1, func(_ paho.Client, m paho.Message) {
			if m.Retained() {
				mu.Lock()
				out[m.Topic()] = len(m.Payload())
				mu.Unlock()
			}
		}).WaitTimeout(waitLimit))
		eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(out) >= 1+filled/perTopic }, "the retained messages")
		time.Sleep(200 * time.Millisecond) // let any extra retained message arrive (none may)
		mu.Lock()
		defer mu.Unlock()
		c.Disconnect(10)
		return out
	}
	got := retained()
	assert.Equal(t, 100, got["keep/small"])
	assert.NotContains(t, got, "keep/too-big", "above the per-message cap: not kept")
	assert.NotContains(t, got, "keep/over-total", "past the total: not kept")
	assert.Len(t, got, 1+filled/perTopic)

	publish("keep/fill-0", 0) // cleared: room for another
	publish("keep/over-total", perTopic)
	got = retained()
	assert.Contains(t, got, "keep/over-total")
	assert.NotContains(t, got, "keep/fill-0")
}

// TestLargeRequestsCapped: while maxLargeRequests uploads are in progress, another large request is
// answered "busy" at once (with its transaction), and a small one is still served.
func TestLargeRequestsCapped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	b, err := New(cfg, Options{Log: zerolog.Nop()})
	require.NoError(t, err)
	var mu sync.Mutex
	responses := map[string][]byte{}
	b.pub = newPublisher(func(topic string, payload []byte, _ bool) error {
		mu.Lock()
		responses[topic] = payload
		mu.Unlock()
		return nil
	}, zerolog.Nop())
	t.Cleanup(b.pub.close)
	for range maxLargeRequests {
		b.largeRequests <- struct{}{} // uploads in progress
	}
	big := fmt.Sprintf(`{"transaction":"t-9","data":"%s","file_name":"a.ota"}`, base64.StdEncoding.EncodeToString(make([]byte, largeRequest)))
	b.ctx = t.Context()
	b.onRequest(Message{Topic: "otabridge/bridge/request/image/add", Payload: []byte(big)})
	b.onRequest(Message{Topic: "otabridge/bridge/request/bogus/path", Payload: []byte(`{"transaction":"t-10"}`)})
	b.wg.Wait()
	eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(responses) == 2 }, "both responses")
	var busy, small map[string]any
	require.NoError(t, json.Unmarshal(responses["otabridge/bridge/response/image/add"], &busy))
	require.NoError(t, json.Unmarshal(responses["otabridge/bridge/response/bogus/path"], &small))
	assert.Equal(t, "error", busy["status"])
	assert.True(t, strings.HasPrefix(busy["error"].(string), "busy: 2 large requests"), busy["error"])
	assert.Equal(t, "t-9", busy["transaction"])
	assert.Contains(t, small["error"], "unknown request", "small requests are not held up")
	assert.Len(t, b.largeRequests, maxLargeRequests, "the refused request took no slot")
}

// TestBase64FieldDecodedInPlace: "data" decodes from the payload bytes, with JSON escapes and white space.
func TestBase64FieldDecodedInPlace(t *testing.T) {
	for _, tt := range []struct{ payload, want, err string }{
		{`{"data":"aGVsbG8="}`, "hello", ""},
		{`{"data":"aGVs\nbG8="}`, "hello", ""},
		{`{"data":"aGVs\/bG8="}`, "", "must be base64"},
		{`{"data":" aGVsbG8= "}`, "hello", ""},
		{`{"data":5}`, "", `"data" must be a string`},
		{`{"data":"!!"}`, "", `"data" must be base64`},
	} {
		req, _, err := parseRequest("image/add", []byte(tt.payload))
		require.NoError(t, err, tt.payload)
		data, _, err := req.base64Bytes("data")
		if tt.err != "" {
			assert.ErrorContains(t, err, tt.err, tt.payload)
			continue
		}
		require.NoError(t, err, tt.payload)
		assert.Equal(t, tt.want, string(data), tt.payload)
		assert.NotContains(t, req.fields, "data", "the field is let go once decoded")
	}
}

// FuzzParseRequest: any MQTT request payload is parsed, or refused with an error, never a panic; "data"
// decodes or is refused the same way.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"transaction":1,"data":"aGVsbG8=","file_name":"a.ota"}`))
	f.Add([]byte(`{"data":"aGVs\/bG8\u003d"}`))
	f.Add([]byte(`{"data":null} x`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`  {"transaction":"t","url":"https://u:p@h/x.ota"}  `))
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, _, err := parseRequest("image/add", payload)
		if err != nil {
			return
		}
		_, _, _ = req.base64Bytes("data")
		_, _ = req.str("url", false)
		_ = req.unknown()
		_ = peekTransaction(payload)
	})
}
