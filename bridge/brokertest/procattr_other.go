//go:build !linux

package brokertest

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }
