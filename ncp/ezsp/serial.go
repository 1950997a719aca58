package ezsp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"

	"go.bug.st/serial"
)

// openSerial opens the stick's port with go.bug.st/serial (8N1 at cfg.Baud) and applies the flow control,
// turning the usual failures into errors that say what to do.
func openSerial(cfg Config) (io.ReadWriteCloser, error) {
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
