package serialport

import (
	"os"
	"syscall"
	"unsafe"
)

// crtscts is the termios c_cflag bit for RTS/CTS flow control (not exported by package syscall).
const crtscts = 0x80000000

// flowFD is a second descriptor of the port, used only to set the flow-control bits of its termios (which
// go.bug.st/serial has no setting for). termios belongs to the tty, not to the descriptor.
type flowFD struct{ f *os.File }

func prepareFlowControl(port string) (flowFD, error) {
	f, err := os.OpenFile(port, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return flowFD{}, err
	}
	return flowFD{f: f}, nil
}

func (fc flowFD) apply(mode string) error {
	if fc.f == nil || mode == FlowNone {
		return nil
	}
	var t syscall.Termios
	fd := fc.f.Fd()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return e
	}
	switch mode {
	case FlowHardware:
		t.Cflag |= crtscts
		t.Iflag &^= syscall.IXON | syscall.IXOFF | syscall.IXANY
	case FlowSoftware:
		t.Cflag &^= crtscts
		t.Iflag |= syscall.IXON | syscall.IXOFF
		t.Iflag &^= syscall.IXANY
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return e
	}
	return nil
}

func (fc flowFD) close() {
	if fc.f != nil {
		fc.f.Close()
	}
}
