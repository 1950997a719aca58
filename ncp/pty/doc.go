// Package pty owns opening pseudo-terminal pairs on Linux with the standard library only (/dev/ptmx and the
// TIOCSPTLCK / TIOCGPTN / TCGETS / TCSETS ioctls), so that a simulated stick can sit behind a real serial
// path (/dev/pts/N) that otabridge, or any other Zigbee host software, opens like a USB stick.
package pty

import "errors"

// ErrUnsupported is returned on systems other than Linux.
var ErrUnsupported = errors.New("pseudo-terminals are only supported on Linux")
