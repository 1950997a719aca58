package brokertest

import "syscall"

// childAttr makes mosquitto die with the test process, even when the test binary is killed before its
// cleanup runs (a timeout, a closed output pipe).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
