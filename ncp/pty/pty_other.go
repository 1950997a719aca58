//go:build !linux

package pty

import "os"

// Open is only implemented on Linux.
func Open() (master *os.File, slavePath string, err error) { return nil, "", ErrUnsupported }
