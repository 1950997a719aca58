package main

import (
	"errors"
	"io"
)

// Temporary: each command moves to its own cmd_*.go file as its issue lands.

func cmdRun(args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet implemented: bridge")
}

func cmdSimStick(args []string, stdout, stderr io.Writer) error {
	return errors.New("not yet implemented: simstick")
}
