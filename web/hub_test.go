package web

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
)

// received drains what the client has been sent so far.
func received(c *client) []message {
	var out []message
	for {
		select {
		case m := <-c.ch:
			out = append(out, m)
		default:
			return out
		}
	}
}

func setOf(t *testing.T, m message) keyUpdate {
	t.Helper()
	require.Equal(t, "set", m.event)
	var u keyUpdate
	require.NoError(t, json.Unmarshal(m.data, &u))
	return u
}

// TestHubAtMostOneUpdatePerKeyPerSecond: a device's progress changing 100 times within a second reaches a
// page once at once and once more, with the newest value, when the second has passed; another device is not
// held back by it.
func TestHubAtMostOneUpdatePerKeyPerSecond(t *testing.T) {
	clk := clock.NewVirtual()
	h := NewHub(clk, time.Second)
	_, c := h.subscribe()

	for i := range 100 {
		h.Set("light/ota", []byte(`{"progress":`+itoa(i)+`}`))
		clk.RunFor(5 * time.Millisecond)
	}
	got := received(c)
	require.Len(t, got, 1, "one message in the first second")
	assert.JSONEq(t, `{"progress":0}`, string(setOf(t, got[0]).Value))

	h.Set("bulb/ota", []byte(`{"progress":1}`))
	got = received(c)
	require.Len(t, got, 1, "another key goes out at once")
	assert.Equal(t, "bulb/ota", setOf(t, got[0]).Key)

	clk.RunFor(500 * time.Millisecond) // one second after the first send of light/ota
	got = received(c)
	require.Len(t, got, 1, "the newest value when the second has passed")
	u := setOf(t, got[0])
	assert.Equal(t, "light/ota", u.Key)
	assert.JSONEq(t, `{"progress":99}`, string(u.Value))

	clk.RunFor(10 * time.Second)
	assert.Empty(t, received(c), "nothing more without a change")

	h.Set("light/ota", []byte(` {"progress": 99} `)) // the same document
	assert.Empty(t, received(c), "an unchanged value is no update")
}

func TestHubSnapshotDeleteAndEvents(t *testing.T) {
	clk := clock.NewVirtual()
	h := NewHub(clk, time.Second)
	h.Set("bridge/info", []byte(`{"version":"x"}`))
	h.Set("door/ota", []byte(`{"state":"idle"}`))
	h.Event([]byte(`{"type":"ota_query","data":{"id":"0x1"}}`))
	h.Set("bad", []byte(`{not json`))

	first, c := h.subscribe()
	require.Equal(t, "snapshot", first.event)
	var snap struct {
		Values map[string]json.RawMessage `json:"values"`
		Events []map[string]any           `json:"events"`
	}
	require.NoError(t, json.Unmarshal(first.data, &snap))
	assert.JSONEq(t, `{"version":"x"}`, string(snap.Values["bridge/info"]))
	assert.Contains(t, snap.Values, "door/ota")
	assert.NotContains(t, snap.Values, "bad", "a value that is not JSON is dropped")
	require.Len(t, snap.Events, 1)
	assert.Equal(t, "ota_query", snap.Events[0]["type"])
	assert.NotEmpty(t, snap.Events[0]["time"], "events get their time")

	h.Delete("door/ota")
	assert.Empty(t, received(c), "a removal is a change like any other: held within the second")
	clk.RunFor(time.Second)
	got := received(c)
	require.Len(t, got, 1)
	u := setOf(t, got[0])
	assert.Equal(t, "door/ota", u.Key)
	assert.Equal(t, "null", string(u.Value))

	for range maxEvents + 10 {
		h.Event([]byte(`{}`))
	}
	got = received(c)
	assert.Len(t, got, maxEvents+10, "events are never coalesced")
	assert.Equal(t, "event", got[0].event)
	first, _ = h.subscribe()
	require.NoError(t, json.Unmarshal(first.data, &snap))
	assert.Len(t, snap.Events, maxEvents, "a new page gets the last events only")
}

// TestHubDropsASlowPage: a page that does not read is disconnected instead of holding the producers up.
func TestHubDropsASlowPage(t *testing.T) {
	h := NewHub(clock.NewVirtual(), time.Second)
	_, c := h.subscribe()
	for range clientBuffer + 1 {
		h.Event([]byte(`{"type":"x"}`))
	}
	select {
	case <-c.dropped:
	default:
		t.Fatal("a page that fell behind by more than the buffer is still connected")
	}
	h.Close()
	h.Set("k", []byte(`1`)) // after Close: ignored, no panic
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
