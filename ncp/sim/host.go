package sim

import (
	"context"
	"sync"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// What every fake stick (ncp/ezsp/fakestick, ncp/zboss/fakestick) needs to host a network: the network
// interface, the address table it learns from the network's events, and the goroutine that reads them.

// StickNetwork is what a fake stick needs from the network behind it (a subset of ncp.Radio; *Network
// fits, and so does a test double).
type StickNetwork interface {
	Start(ctx context.Context) (ncp.NetworkInfo, error)
	PermitJoin(ctx context.Context, seconds uint8) error
	Send(ctx context.Context, f ncp.Frame) error
	Events() <-chan ncp.Event
	MaxAPSPayload() int
}

// AddressBook is a stick's address table: the short address ↔ IEEE pairs learnt from joins,
// announcements and frames. Safe for concurrent use; the zero value is ready.
type AddressBook struct {
	mu sync.Mutex
	m  map[uint16]zcl.IEEE
}

// Learn records the pair an event carries, if any.
func (a *AddressBook) Learn(ev ncp.Event) {
	short, ieee := ev.Short, ev.IEEE
	switch ev.Kind {
	case ncp.EventJoined, ncp.EventAnnounced:
	case ncp.EventFrame:
		short, ieee = ev.Frame.SrcShort, ev.Frame.SrcIEEE
		if ieee == 0 {
			return
		}
	default:
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = make(map[uint16]zcl.IEEE)
	}
	a.m[short] = ieee
}

// IEEE returns the IEEE address of a short address.
func (a *AddressBook) IEEE(short uint16) (zcl.IEEE, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ieee, ok := a.m[short]
	return ieee, ok
}

// Short returns the short address of an IEEE address.
func (a *AddressBook) Short(ieee zcl.IEEE) (uint16, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for short, v := range a.m {
		if v == ieee {
			return short, true
		}
	}
	return 0, false
}

// PumpEvents hands the network's events to handle, in order, until stop is closed or the events end. A
// fake stick runs it in the goroutine it owns for its life.
func PumpEvents(stop <-chan struct{}, events <-chan ncp.Event, handle func(ncp.Event)) {
	for {
		select {
		case <-stop:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			handle(ev)
		}
	}
}
