package web

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/otabridge/otabridge/clock"
)

// Hub holds what the console shows — the newest JSON value of each key ("bridge/info", "bridge/devices",
// "<friendly_name>/ota", …) and the last events — and streams changes to the connected pages. A key's
// change reaches the pages at most once per interval (one second): changes in between are coalesced and
// the newest value goes out when the interval has passed, so a transfer's progress costs at most one
// message per device per second whatever the radio does. Events go out at once, in order.
//
// The producers (the bridge, sometimes under the OTA engine's lock) only store and signal: Set, Event and
// Delete never block and never call back.
type Hub struct {
	clk      clock.Clock
	interval time.Duration

	mu       sync.Mutex
	values   map[string]json.RawMessage // what a new page gets: the newest value sent of each key
	pending  map[string]json.RawMessage // changed since last sent (nil: deleted)
	lastSent map[string]time.Time
	events   []json.RawMessage // the last maxEvents events, oldest first
	clients  map[*client]struct{}
	timer    clock.Timer // the next flush of rate-limited keys
	closed   bool
}

// maxEvents is how many recent events a page gets when it connects.
const maxEvents = 50

// clientBuffer is how many messages may wait for one page; a page that falls further behind is
// disconnected (its EventSource reconnects and starts again from a fresh snapshot).
const clientBuffer = 512

// message is one Server-Sent Event: its type and JSON data.
type message struct {
	event string
	data  []byte
}

type client struct {
	ch      chan message
	dropped chan struct{} // closed when the hub gives up on the client
}

// NewHub returns a hub that sends each key at most once per interval (interval ≤ 0: one second), timed by
// clk.
func NewHub(clk clock.Clock, interval time.Duration) *Hub {
	if interval <= 0 {
		interval = time.Second
	}
	return &Hub{clk: clk, interval: interval, values: map[string]json.RawMessage{},
		pending: map[string]json.RawMessage{}, lastSent: map[string]time.Time{}, clients: map[*client]struct{}{}}
}

// Set records the newest value of key (a JSON document). A value equal to the one sent last is no change.
func (h *Hub) Set(key string, value []byte) {
	var buf bytes.Buffer
	if json.Compact(&buf, value) != nil {
		return // not JSON: nothing a page could read
	}
	value = buf.Bytes()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if old, ok := h.values[key]; ok && bytes.Equal(old, value) {
		delete(h.pending, key)
		return
	}
	h.pending[key] = value
	h.flushLocked()
}

// Delete removes key (a renamed or removed device's state).
func (h *Hub) Delete(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if _, ok := h.values[key]; !ok {
		delete(h.pending, key)
		return
	}
	h.pending[key] = nil
	h.flushLocked()
}

// Event sends an event (a JSON object, {"type","data"} as on MQTT) to every page now, with "time" added,
// and keeps it among the last events. Anything but a JSON object is ignored.
func (h *Hub) Event(ev []byte) {
	var buf bytes.Buffer
	if json.Compact(&buf, ev) != nil || buf.Len() < 2 || buf.Bytes()[0] != '{' {
		return
	}
	stamp, _ := json.Marshal(h.clk.Now().UTC())
	rest := buf.Bytes()[1:]
	sep := ","
	if len(rest) == 1 { // {}
		sep = ""
	}
	ev = append(append(append([]byte(`{"time":`), stamp...), sep...), rest...)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if len(h.events) >= maxEvents {
		h.events = append(h.events[:0], h.events[1:]...)
	}
	h.events = append(h.events, ev)
	h.broadcastLocked(message{event: "event", data: ev})
}

// keyUpdate is the data of a "set" message.
type keyUpdate struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"` // null: the key is gone
}

// flushLocked sends every pending key whose interval has passed and arms the timer for the others.
func (h *Hub) flushLocked() {
	now := h.clk.Now()
	var next time.Duration
	for key, v := range h.pending {
		if wait := h.lastSent[key].Add(h.interval).Sub(now); wait > 0 {
			if next == 0 || wait < next {
				next = wait
			}
			continue
		}
		delete(h.pending, key)
		h.lastSent[key] = now
		if v == nil {
			delete(h.values, key)
			v = json.RawMessage("null")
		} else {
			h.values[key] = v
		}
		data, _ := json.Marshal(keyUpdate{Key: key, Value: v})
		h.broadcastLocked(message{event: "set", data: data})
	}
	if next > 0 && h.timer == nil {
		h.timer = h.clk.AfterFunc(next, func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.timer = nil
			if !h.closed {
				h.flushLocked()
			}
		})
	}
}

func (h *Hub) broadcastLocked(m message) {
	for c := range h.clients {
		select {
		case c.ch <- m:
		default:
			h.dropLocked(c)
		}
	}
}

func (h *Hub) dropLocked(c *client) {
	if _, ok := h.clients[c]; ok {
		delete(h.clients, c)
		close(c.dropped)
	}
}

// snapshot is the data of the "snapshot" message a page gets first.
type snapshot struct {
	Values     map[string]json.RawMessage `json:"values"`
	Events     []json.RawMessage          `json:"events"`
	ServerTime time.Time                  `json:"server_time"`
}

// subscribe registers a page: it returns the snapshot (the values sent so far and the last events) and the
// client whose channel carries every later change.
func (h *Hub) subscribe() (message, *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := &client{ch: make(chan message, clientBuffer), dropped: make(chan struct{})}
	if h.closed {
		close(c.dropped)
		return message{}, c
	}
	h.clients[c] = struct{}{}
	snap := snapshot{Values: make(map[string]json.RawMessage, len(h.values)), Events: append([]json.RawMessage{}, h.events...),
		ServerTime: time.Now().UTC()}
	for k, v := range h.values {
		snap.Values[k] = v
	}
	data, _ := json.Marshal(snap)
	return message{event: "snapshot", data: data}, c
}

func (h *Hub) unsubscribe(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(c)
}

// Close disconnects every page and stops the timer; later calls of Set, Delete and Event do nothing.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	for c := range h.clients {
		h.dropLocked(c)
	}
}
