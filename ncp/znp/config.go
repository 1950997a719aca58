package znp

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/serialport"
)

// Config configures the ZNP driver (the `radio:` section when `type: znp`).
type Config struct {
	// Port is the serial device, e.g. /dev/serial/by-id/usb-ITead_Sonoff_Zigbee_3.0_USB_Dongle_Plus_…-if00-port0.
	Port string `yaml:"port"`
	// Baud is the UART speed: 115200 (default; Koenkk's Z-Stack images).
	Baud int `yaml:"baud"`
	// FlowControl is "none" (default) or "hardware" (RTS/CTS).
	FlowControl string `yaml:"flow_control"`
	// Network is the network to form when the stick has none (or another one); zero fields are chosen at
	// random. After Start, Driver.Network returns the network in use, which the bridge saves.
	Network ncp.NetworkSettings `yaml:"network"`
}

// DefaultBaud is the UART speed of Z-Stack ZNP images.
const DefaultBaud = 115200

func (c Config) withDefaults() (Config, error) {
	if c.Baud == 0 {
		c.Baud = DefaultBaud
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

// Timeouts are the driver's waits. Zero fields take the defaults (DefaultTimeouts); tests shorten them.
type Timeouts struct {
	Command      time.Duration // how long to wait for an SRSP (6 s)
	Ping         time.Duration // how long to wait for SYS_PING's answer at open, before the bootloader skip (1 s)
	Reset        time.Duration // how long to wait for SYS_RESET_IND after SYS_RESET_REQ (10 s)
	NetworkUp    time.Duration // how long to wait for ZDO_STATE_CHANGE_IND 9 after start or formation (60 s)
	Send         time.Duration // how long Send waits for AF_DATA_CONFIRM (30 s: sleepy end devices)
	ReconnectMin time.Duration // first back-off after the port vanished (0.5 s)
	ReconnectMax time.Duration // longest back-off (30 s)
}

// DefaultTimeouts are the production waits.
var DefaultTimeouts = Timeouts{Command: 6 * time.Second, Ping: time.Second, Reset: 10 * time.Second, NetworkUp: 60 * time.Second,
	Send: 30 * time.Second, ReconnectMin: 500 * time.Millisecond, ReconnectMax: 30 * time.Second}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts
	pick := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&t.Command, d.Command)
	pick(&t.Ping, d.Ping)
	pick(&t.Reset, d.Reset)
	pick(&t.NetworkUp, d.NetworkUp)
	pick(&t.Send, d.Send)
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
