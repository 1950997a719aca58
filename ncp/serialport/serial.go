// Package serialport owns opening a coordinator stick's serial port for every driver: 8N1 at a baud rate with
// go.bug.st/serial, the flow control (RTS/CTS or XON/XOFF) set on the tty, and open errors that say what to do.
package serialport

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"syscall"

	"go.bug.st/serial"
)

// Flow control settings.
const (
	FlowNone     = "none"
	FlowHardware = "hardware"
	FlowSoftware = "software"
)

// Config says how to open a stick's port.
type Config struct {
	Port        string
	Baud        int
	FlowControl string // FlowNone, FlowHardware or FlowSoftware (see ParseFlow)
}

// ParseFlow normalises a configured flow control ("" and "none", "hardware"/"rtscts", "software"/"xonxoff").
func ParseFlow(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", FlowNone:
		return FlowNone, nil
	case FlowHardware, "rtscts", "rts/cts":
		return FlowHardware, nil
	case FlowSoftware, "xonxoff", "xon/xoff":
		return FlowSoftware, nil
	}
	return "", fmt.Errorf("radio flow_control %q: want none, hardware or software", s)
}

// Open opens the stick's port with go.bug.st/serial (8N1 at cfg.Baud) and applies the flow control,
// turning the usual failures into errors that say what to do.
func Open(cfg Config) (io.ReadWriteCloser, error) {
	// The flow-control fd is opened before go.bug.st/serial takes the port exclusively (TIOCEXCL).
	fc, err := prepareFlowControl(cfg.Port)
	if err != nil {
		return nil, describeOpenError(cfg.Port, err)
	}
	p, err := serial.Open(cfg.Port, &serial.Mode{BaudRate: cfg.Baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		fc.close()
		return nil, describeOpenError(cfg.Port, err)
	}
	if err := fc.apply(cfg.FlowControl); err != nil {
		fc.close()
		p.Close()
		return nil, fmt.Errorf("set %s flow control on %s: %w", cfg.FlowControl, cfg.Port, err)
	}
	fc.close()
	return p, nil
}

func describeOpenError(port string, err error) error {
	var pe *serial.PortError
	if errors.As(err, &pe) {
		switch pe.Code() {
		case serial.PortBusy:
			return fmt.Errorf("serial port %s is busy: another program (ZHA, Zigbee2MQTT, another otabridge) holds it: %w", port, err)
		case serial.PortNotFound:
			return fmt.Errorf("serial port %s does not exist: is the stick plugged in? (ls /dev/serial/by-id/): %w", port, err)
		case serial.PermissionDenied:
			return fmt.Errorf("no permission to open serial port %s (add the user to the dialout group): %w", port, err)
		case serial.InvalidSpeed:
			return fmt.Errorf("serial port %s refuses the baud rate: %w", port, err)
		}
	}
	switch {
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("serial port %s is busy: another program (ZHA, Zigbee2MQTT, another otabridge) holds it: %w", port, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("serial port %s does not exist: is the stick plugged in? (ls /dev/serial/by-id/): %w", port, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("no permission to open serial port %s (add the user to the dialout group): %w", port, err)
	}
	return fmt.Errorf("open serial port %s: %w", port, err)
}
