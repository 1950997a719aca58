// Package ncp owns the radio contract: the Radio interface that every coordinator driver implements (ncp/sim,
// the simulated network; ncp/ezsp, Silicon Labs EZSP over ASH; ncp/znp, Z-Stack MT; ncp/zboss, the ZBOSS NCP
// protocol) and the frames, events and network settings that cross it, plus what every serial driver shares:
// its lifecycle (Lifecycle), the keeping and repair of its session with the stick (Supervisor) and the memory
// of senders the stick could not name (LookupMisses). It knows nothing of OTA or MQTT: a driver moves APS
// frames and reports the network's events.
package ncp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/otabridge/otabridge/zcl"
)

// Radio is a Zigbee coordinator the bridge owns.
//
// Contract:
//   - Start connects to the stick (or builds the simulated network), resets it, resumes the stored network or
//     forms a new one, and registers endpoint 1 with profile 0x0104 and cluster 0x0019 (plus 0x0000) as input
//     clusters. It blocks until the network is up or ctx ends; an error says which step failed.
//   - Send transmits one APS frame and returns after the stick's send confirmation (for an APS-acked unicast:
//     after the APS ack or its failure). It is safe to call from several goroutines; the driver serialises.
//     Cancelling ctx abandons the wait (the frame may still go out). The payload is not retained after Send
//     returns. An error says what failed (*SendError for a delivery failure reported by the stick).
//   - Events delivers incoming frames and network events in order. The channel is closed after Close. A slow
//     reader delays the driver; it never loses events silently (a driver that must drop logs it).
//   - MaxAPSPayload is the largest APS payload that goes out unfragmented to a device one hop away; the OTA
//     engine caps block responses by it (minus the ZCL overhead of 17 bytes), except for clients that get
//     APS-fragmented blocks from a radio that also implements Fragmenter.
//   - Close stops the driver and its goroutines and releases the port. It is safe to call more than once.
type Radio interface {
	Start(ctx context.Context) (NetworkInfo, error)
	PermitJoin(ctx context.Context, seconds uint8) error
	Send(ctx context.Context, f Frame) error
	Events() <-chan Event
	MaxAPSPayload() int
	Close() error
}

// Fragmenter is implemented by a Radio that can send APS-fragmented frames (an optional part of the
// contract; a driver without it sends only payloads up to MaxAPSPayload). Send then accepts a unicast,
// APS-acked Frame whose payload is larger than MaxAPSPayload and at most MaxFragmentedPayload: the driver
// splits it into fragments (APS extended header: fragmentation flag, block number, block count), sends them
// in windows of the configured size at the configured interval, and confirms the Frame when every window
// has been acknowledged by the destination's APS, or fails it with a *SendError (for example a client
// without fragmentation support, which never acknowledges).
type Fragmenter interface {
	// MaxFragmentedPayload is the largest APS payload Send carries fragmented (0: fragmentation is off).
	MaxFragmentedPayload() int
}

// StatsSender is implemented by a Radio that can tell how hard one frame was to send (an optional part of
// the contract; the bridge uses Send when a driver lacks it). SendWithStats is Send that also returns the
// frame's SendStats, on success and on failure alike (zero where the driver cannot tell). The OTA engine's
// adaptive concurrency (`max_concurrent: auto`) reads them as its congestion signal: MAC retries and time
// spent waiting for a busy channel rise before frames are lost.
type StatsSender interface {
	SendWithStats(ctx context.Context, f Frame) (SendStats, error)
}

// MACCounter is implemented by a Radio whose stick counts its own MAC work but cannot tell what one frame
// cost (an optional part of the contract: EZSP sticks, through readAndClearCounters). MACCounters returns
// the counts since the previous call (the first call: since the stick's last reset or the driver's start),
// for all the coordinator's traffic, not only otabridge's. The bridge feeds them to the adaptive concurrency
// where the radio is no StatsSender.
type MACCounter interface {
	MACCounters(ctx context.Context) (MACCounts, error)
}

// MACCounts are the stick's MAC counters over a span of time.
type MACCounts struct {
	// Unicasts is the unicast frames the MAC finished (delivered, or failed after its retries), Retries the
	// retransmissions among their transmissions, Failed those never acknowledged.
	Unicasts, Retries, Failed int
	// CCAFailures counts transmissions the PHY did not make because the channel was busy.
	CCAFailures int
}

// SendStats is what one frame cost on the coordinator's own hop (the first hop of a unicast). All fields
// are zero when unknown.
type SendStats struct {
	// Attempts is the number of MAC transmissions of the frame (its fragments' included) on the first hop,
	// MACRetries how many of them were retransmissions after a missing MAC ack.
	Attempts, MACRetries int
	// CCAFailures counts channel access attempts that found the channel busy (a driver that models the
	// wait instead reports ChannelWait).
	CCAFailures int
	// ChannelWait is the time the frame waited for the channel to be free before its first attempt
	// (queueing behind other devices' traffic and the coordinator's own).
	ChannelWait time.Duration
}

// NetworkInfo describes the coordinator and its network after Start.
type NetworkInfo struct {
	Type          string   `json:"type"`     // driver name: "sim", "ezsp", …
	Port          string   `json:"port"`     // serial port path, or "" for the simulator
	Firmware      string   `json:"firmware"` // stick firmware / stack version as the stick reports it
	Channel       uint8    `json:"channel"`
	PANID         uint16   `json:"pan_id"`
	ExtendedPANID zcl.IEEE `json:"extended_pan_id"`
	IEEE          zcl.IEEE `json:"ieee"`
	// Formed is true when this host formed the network: in this Start (no network was stored on the stick),
	// or, for the simulator, when it was not started as an `existing` network. A driver that resumed a
	// stored network reports false; the bridge records on the first start whether it formed the network.
	Formed bool `json:"-"`
}

// Broadcast short addresses.
const (
	BroadcastAll          uint16 = 0xFFFF // every device
	BroadcastRxOnWhenIdle uint16 = 0xFFFD // every device whose receiver is on when idle
	BroadcastRouters      uint16 = 0xFFFC // routers and the coordinator
)

// CoordinatorEndpoint is the endpoint every driver registers for the OTA server.
const CoordinatorEndpoint uint8 = 1

// Frame is one outgoing APS data frame.
type Frame struct {
	DstShort    uint16 // short address, or a Broadcast* address
	DstEndpoint uint8  // 0xFF for broadcast to all endpoints
	SrcEndpoint uint8
	ClusterID   uint16
	ProfileID   uint16
	Radius      uint8 // 0: the stack's default
	APSAck      bool  // request an APS acknowledgement (unicast only)
	Payload     []byte
}

// IsBroadcast reports whether the destination is a broadcast address.
func (f Frame) IsBroadcast() bool { return f.DstShort >= 0xFFF8 }

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	EventFrame        EventKind = iota + 1 // an incoming APS frame (Event.Frame)
	EventJoined                            // a device joined (trust-center join); Short, IEEE, Parent, Capabilities, Rejoin
	EventAnnounced                         // a device sent a ZDO Device_annce (after join or reboot); Short, IEEE, Capabilities
	EventLeft                              // a device left; IEEE set, Short when known
	EventRadioReset                        // the stick reset or the network went down and was restored; Reason
	EventDisconnected                      // the port vanished; the driver is reconnecting; Reason
	EventReconnected                       // the driver is back after EventDisconnected
)

func (k EventKind) String() string {
	switch k {
	case EventFrame:
		return "frame"
	case EventJoined:
		return "joined"
	case EventAnnounced:
		return "announced"
	case EventLeft:
		return "left"
	case EventRadioReset:
		return "radio_reset"
	case EventDisconnected:
		return "disconnected"
	case EventReconnected:
		return "reconnected"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one thing the radio reports.
type Event struct {
	Kind         EventKind
	Short        uint16
	IEEE         zcl.IEEE // 0 when unknown
	Capabilities uint8    // MAC capability flags of a Device_annce (bit 1: FFD/router, bit 3: receiver on when idle)
	Parent       uint16   // EventJoined: short address of the parent the device joined through (0x0000 = coordinator)
	Rejoin       bool     // EventJoined: a trust-center rejoin of a device that was a member before (vs a new association)
	Reason       string
	Frame        Incoming // for EventFrame
}

// Incoming is one received APS data frame.
type Incoming struct {
	SrcShort    uint16
	SrcIEEE     zcl.IEEE // 0 when the stick did not tell
	SrcEndpoint uint8
	DstEndpoint uint8
	ClusterID   uint16
	ProfileID   uint16
	Broadcast   bool // it was sent to a broadcast address
	LQI         uint8
	RSSI        int8
	Payload     []byte // owned by the receiver of the event
}

// SendError is a delivery failure the stick reported for one frame.
type SendError struct {
	DstShort uint16
	Status   string // the stick's status, e.g. "EMBER_DELIVERY_FAILED" or "no APS ack"
}

func (e *SendError) Error() string {
	return fmt.Sprintf("send to 0x%04x failed: %s", e.DstShort, e.Status)
}

// ErrClosed is returned by a Radio used after Close.
var ErrClosed = errors.New("radio closed")

// ErrNotStarted is returned by Send or PermitJoin before Start succeeded.
var ErrNotStarted = errors.New("radio not started")
