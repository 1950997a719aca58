package fakestick

import (
	"context"
	"fmt"
	"sync"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// MemNetwork is a tiny in-memory network to put behind the stick in tests: devices waiting to join come in
// on PermitJoin, a responder answers the frames sent to them, and any event can be injected.
type MemNetwork struct {
	info   ncp.NetworkInfo
	events chan ncp.Event
	done   chan struct{}

	mu        sync.Mutex
	started   int
	devices   map[uint16]MemDevice
	joiners   []MemDevice
	sent      []ncp.Frame
	respond   func(ncp.Frame) []ncp.Event
	failNext  int
	permitted uint8
	closeOnce sync.Once
}

// MemDevice is a device of a MemNetwork.
type MemDevice struct {
	Short        uint16
	IEEE         zcl.IEEE
	Capabilities uint8
}

// NewMemNetwork makes a network that reports info from Start.
func NewMemNetwork(info ncp.NetworkInfo) *MemNetwork {
	return &MemNetwork{info: info, events: make(chan ncp.Event, 1024), done: make(chan struct{}), devices: make(map[uint16]MemDevice)}
}

// Start counts the starts and returns the info.
func (n *MemNetwork) Start(ctx context.Context) (ncp.NetworkInfo, error) {
	n.mu.Lock()
	n.started++
	n.mu.Unlock()
	return n.info, ctx.Err()
}

// Starts returns how often Start was called.
func (n *MemNetwork) Starts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.started
}

// AddDevice puts a device on the network already joined.
func (n *MemNetwork) AddDevice(d MemDevice) {
	n.mu.Lock()
	n.devices[d.Short] = d
	n.mu.Unlock()
}

// AddJoiner queues a device that joins (Joined, then Announced) at the next PermitJoin with seconds > 0.
func (n *MemNetwork) AddJoiner(d MemDevice) {
	n.mu.Lock()
	n.joiners = append(n.joiners, d)
	n.mu.Unlock()
}

// PermitJoin lets the waiting joiners in.
func (n *MemNetwork) PermitJoin(_ context.Context, seconds uint8) error {
	n.mu.Lock()
	n.permitted = seconds
	var in []MemDevice
	if seconds > 0 {
		in, n.joiners = n.joiners, nil
		for _, d := range in {
			n.devices[d.Short] = d
		}
	}
	n.mu.Unlock()
	for _, d := range in {
		n.Emit(ncp.Event{Kind: ncp.EventJoined, Short: d.Short, IEEE: d.IEEE})
		n.Emit(ncp.Event{Kind: ncp.EventAnnounced, Short: d.Short, IEEE: d.IEEE, Capabilities: d.Capabilities})
	}
	return nil
}

// Permitted returns the last PermitJoin duration.
func (n *MemNetwork) Permitted() uint8 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.permitted
}

// SetResponder sets the function that answers frames sent into the network with events.
func (n *MemNetwork) SetResponder(f func(ncp.Frame) []ncp.Event) {
	n.mu.Lock()
	n.respond = f
	n.mu.Unlock()
}

// FailNext makes the next k sends fail as undelivered.
func (n *MemNetwork) FailNext(k int) {
	n.mu.Lock()
	n.failNext += k
	n.mu.Unlock()
}

// Send records the frame; a unicast to an unknown device fails, and the responder's events follow.
func (n *MemNetwork) Send(ctx context.Context, f ncp.Frame) error {
	f.Payload = append([]byte(nil), f.Payload...)
	n.mu.Lock()
	n.sent = append(n.sent, f)
	fail := n.failNext > 0
	if fail {
		n.failNext--
	}
	_, known := n.devices[f.DstShort]
	respond := n.respond
	n.mu.Unlock()
	if fail || (!f.IsBroadcast() && !known) {
		return &ncp.SendError{DstShort: f.DstShort, Status: "no APS ack"}
	}
	if respond != nil {
		for _, ev := range respond(f) {
			n.Emit(ev)
		}
	}
	return ctx.Err()
}

// Sent returns the frames sent so far.
func (n *MemNetwork) Sent() []ncp.Frame {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]ncp.Frame(nil), n.sent...)
}

// Emit injects an event.
func (n *MemNetwork) Emit(ev ncp.Event) {
	select {
	case n.events <- ev:
	case <-n.done:
	}
}

// Events returns the event stream.
func (n *MemNetwork) Events() <-chan ncp.Event { return n.events }

// MaxAPSPayload reports 82 bytes.
func (n *MemNetwork) MaxAPSPayload() int { return 82 }

// Close stops Emit from blocking.
func (n *MemNetwork) Close() error {
	n.closeOnce.Do(func() { close(n.done) })
	return nil
}

func (n *MemNetwork) String() string { return fmt.Sprintf("mem network (%d devices)", len(n.devices)) }
