package ezsp

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/ncp/serialport"
)

// Config configures the EZSP driver (the `radio:` section of otabridge's configuration when `type: ezsp`).
type Config struct {
	// Port is the serial device, e.g. /dev/serial/by-id/usb-Nabu_Casa_SkyConnect_v1.0_…-if00-port0 or /dev/ttyUSB0.
	Port string `yaml:"port"`
	// Baud is the UART speed: 115200 (default; EmberZNet NCP images) or 460800.
	Baud int `yaml:"baud"`
	// FlowControl is "none" (default), "hardware" (RTS/CTS: SkyConnect/ZBT-1 NCP images) or "software"
	// (XON/XOFF: Sonoff ZBDongle-E).
	FlowControl string `yaml:"flow_control"`
	// ASHWindow is the number of ASH DATA frames the host keeps in flight (1..7, default 3 as zigbee-herdsman;
	// bellows uses 1). EZSP itself has one command outstanding at a time, so the window matters for the
	// stick's answers and callbacks riding on the host's ACKs, and for a link with errors.
	ASHWindow int `yaml:"ash_window"`
	// MaxInFlight is the most unicasts and broadcasts the driver lets wait in the stick for their
	// messageSentHandler at once (default 8, within EmberZNet's default APS unicast message count of 10);
	// more senders wait in Send (bounded by their context), never dropped, so that concurrent transfers and
	// page streams never push more into the stick than its buffers carry.
	MaxInFlight int `yaml:"max_in_flight"`
	// FragmentWindow is the number of APS fragments the stick sends before it waits for the destination's
	// APS ack of that window (EZSP_CONFIG_FRAGMENT_WINDOW_SIZE, 1..8, default 8: every OTA block of up to 4
	// fragments takes one ack); the driver also keeps at most that many fragments in the stick at once.
	// FragmentDelayMS is the stick's gap between two fragments of a window (EZSP_CONFIG_FRAGMENT_DELAY_MS,
	// 0..255, default 0). Both are set at start-up.
	FragmentWindow  int `yaml:"fragment_window"`
	FragmentDelayMS int `yaml:"fragment_delay_ms"`
	// MaxFragmentedPayload is the largest APS payload the driver sends APS-fragmented (0: the default 640 B,
	// 8 fragments of 80 B; a negative value turns host fragmentation off, so the OTA engine serves
	// unfragmented blocks only).
	MaxFragmentedPayload int `yaml:"max_fragmented_payload"`
	// Network is the network to form when the stick has none; zero fields are chosen at random. After Start,
	// Driver.Network returns the network in use, which the bridge saves.
	Network NetworkSettings `yaml:"network"`
}

// Flow control settings.
const (
	FlowNone     = serialport.FlowNone
	FlowHardware = serialport.FlowHardware
	FlowSoftware = serialport.FlowSoftware
)

// DefaultBaud is the UART speed of EmberZNet NCP images.
const DefaultBaud = 115200

// Defaults of the serial pacing settings.
const (
	DefaultASHWindow   = 3
	DefaultMaxInFlight = 8
)

// Defaults and limits of host APS fragmentation.
const (
	DefaultFragmentWindow = 8
	MaxFragmentWindow     = 8
	// FragmentHeaderBytes is what the APS extended header (extended frame control, block number) takes
	// from every fragment's share of the unfragmented payload limit.
	FragmentHeaderBytes = 2
	// DefaultMaxFragmentedPayload is 8 fragments of the 80 B a fragment carries at the 82 B limit.
	DefaultMaxFragmentedPayload = 8 * (MaxAPSPayloadCap - FragmentHeaderBytes)
)

// Validate checks the settings New would refuse; its errors name the configuration key.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

func (c Config) withDefaults() (Config, error) {
	if c.Baud == 0 {
		c.Baud = DefaultBaud
	}
	if c.ASHWindow == 0 {
		c.ASHWindow = DefaultASHWindow
	}
	if c.ASHWindow < 1 || c.ASHWindow > ash.MaxWindow {
		return c, fmt.Errorf("radio.ash_window: %d is not allowed (want 1..%d)", c.ASHWindow, ash.MaxWindow)
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 64 {
		return c, fmt.Errorf("radio.max_in_flight: %d is not allowed (want 1..64)", c.MaxInFlight)
	}
	if c.FragmentWindow == 0 {
		c.FragmentWindow = DefaultFragmentWindow
	}
	if c.FragmentWindow < 1 || c.FragmentWindow > MaxFragmentWindow {
		return c, fmt.Errorf("radio.fragment_window: %d is not allowed (want 1..%d)", c.FragmentWindow, MaxFragmentWindow)
	}
	if c.FragmentDelayMS < 0 || c.FragmentDelayMS > 255 {
		return c, fmt.Errorf("radio.fragment_delay_ms: %d is not allowed (want 0..255)", c.FragmentDelayMS)
	}
	if c.MaxFragmentedPayload == 0 {
		c.MaxFragmentedPayload = DefaultMaxFragmentedPayload
	}
	if c.MaxFragmentedPayload > 255*(MaxAPSPayloadCap-FragmentHeaderBytes) {
		return c, fmt.Errorf("radio.max_fragmented_payload: %d is not allowed (want at most %d: 255 fragments)", c.MaxFragmentedPayload, 255*(MaxAPSPayloadCap-FragmentHeaderBytes))
	}
	flow, err := serialport.ParseFlow(c.FlowControl)
	if err != nil {
		return c, err
	}
	c.FlowControl = flow
	if c.Network.Channel != 0 && (c.Network.Channel < 11 || c.Network.Channel > 26) {
		return c, fmt.Errorf("radio network channel %d: want 11-26 (or 0 for a random one)", c.Network.Channel)
	}
	if c.Network.PANID >= 0xFFFF {
		return c, fmt.Errorf("radio network pan_id 0x%04x: 0xFFFF is reserved", c.Network.PANID)
	}
	return c, nil
}

// NetworkSettings are the parameters of the Zigbee network the coordinator runs (shared by every driver).
type NetworkSettings = ncp.NetworkSettings

// NetworkKey is a 128-bit network key (shared by every driver).
type NetworkKey = ncp.NetworkKey

// Timeouts are the driver's waits. Zero fields take the defaults (DefaultTimeouts); tests shorten them.
type Timeouts struct {
	Reset            time.Duration // how long to wait for RSTACK after RST (5 s)
	Command          time.Duration // how long to wait for a command's answer (5 s)
	NetworkUp        time.Duration // how long to wait for stackStatus NETWORK_UP after networkInit/formNetwork (15 s)
	Send             time.Duration // how long Send waits for messageSentHandler (30 s: sleepy end devices)
	NetworkDownGrace time.Duration // after NETWORK_DOWN, how long to wait for NETWORK_UP before a full re-init (5 s)
	ReconnectMin     time.Duration // first back-off after the port vanished (0.5 s)
	ReconnectMax     time.Duration // longest back-off (30 s)
	AckInit          time.Duration // ASH T_RX_ACK initial value (1.6 s)
	AckMin, AckMax   time.Duration // ASH T_RX_ACK bounds (0.4 s, 3.2 s)
}

// DefaultTimeouts are the production waits.
var DefaultTimeouts = Timeouts{
	Reset: 5 * time.Second, Command: 5 * time.Second, NetworkUp: 15 * time.Second, Send: 30 * time.Second,
	NetworkDownGrace: 5 * time.Second, ReconnectMin: 500 * time.Millisecond, ReconnectMax: 30 * time.Second,
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	pick := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&t.Reset, d.Reset)
	pick(&t.Command, d.Command)
	pick(&t.NetworkUp, d.NetworkUp)
	pick(&t.Send, d.Send)
	pick(&t.NetworkDownGrace, d.NetworkDownGrace)
	pick(&t.ReconnectMin, d.ReconnectMin)
	pick(&t.ReconnectMax, d.ReconnectMax)
	return t
}

// Opener opens the byte stream to the stick. The default opens cfg.Port with go.bug.st/serial.
type Opener func(ctx context.Context) (io.ReadWriteCloser, error)

// Option changes how a Driver is built.
type Option func(*Driver)

// WithOpener replaces the serial port with another byte stream (an in-memory pipe to a fake stick in tests).
// The driver calls it again to reconnect after the stream failed.
func WithOpener(open Opener) Option { return func(d *Driver) { d.open = open } }

// WithTimeouts replaces the default waits.
func WithTimeouts(t Timeouts) Option { return func(d *Driver) { d.to = t.withDefaults() } }
