package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/otabridge/otabridge/bridge"
)

const healthUsage = `usage: otabridge health [--data-dir DIR] [--max-age DURATION]
Exits 0 when the bridge running on DIR has written its heartbeat (DIR/health) within DURATION, 1 otherwise.
For container health checks: needs no shell, no network and no other tool.
`

// cmdHealth is `otabridge health`.
func cmdHealth(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "data", "the bridge's data directory (data_dir)")
	maxAge := fs.Duration("max-age", 3*bridge.HealthInterval, "the oldest heartbeat that counts as healthy")
	fs.Usage = func() {
		fmt.Fprint(stderr, healthUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 || *maxAge <= 0 {
		fs.Usage()
		return errUsage
	}
	if err := bridge.CheckHealth(*dataDir, *maxAge, time.Now()); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, "healthy")
	return err
}
