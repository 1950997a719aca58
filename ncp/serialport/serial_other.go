//go:build !linux

package serialport

import "fmt"

type flowFD struct{}

func prepareFlowControl(string) (flowFD, error) { return flowFD{}, nil }

func (flowFD) apply(mode string) error {
	if mode != FlowNone {
		return fmt.Errorf("flow control %q is only supported on Linux", mode)
	}
	return nil
}

func (flowFD) close() {}
