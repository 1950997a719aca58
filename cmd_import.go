package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/otabridge/otabridge/bridge"
)

const importUsage = `usage: otabridge import z2m|zha PATH [--config FILE]
Imports what Zigbee2MQTT (PATH: its data directory) or ZHA (PATH: its zigbee.db) knows about the network:
device names, models and cached OTA facts. Stop otabridge and the other host first. The stick is opened to
check that it holds the network of the backup (channel, PAN id, extended PAN id); otherwise, or when a file
is damaged, nothing is changed.
`

// cmdImport is `otabridge import z2m|zha PATH [--config FILE]`.
func cmdImport(args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || (args[0] != "z2m" && args[0] != "zha") {
		fmt.Fprint(stderr, importUsage)
		return errUsage
	}
	source, path := args[0], args[1]
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (default config.yaml when it exists)")
	if err := fs.Parse(args[2:]); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "import: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	im, err := bridge.ReadImport(bridge.ImportConfig{Source: source, Path: path})
	if err != nil {
		return fmt.Errorf("%w (nothing changed)", err)
	}
	cfg, err := bridge.LoadConfig(configPathOrDefault(*configPath), os.Environ())
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	b, err := bridge.New(cfg, bridge.Options{Version: version, Log: log, Import: &im, ImportOnly: true})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := b.Run(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d devices from %s (%s) into %s\n", len(im.Devices), im.Path, source, cfg.DataDir)
	return nil
}
