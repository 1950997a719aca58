package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/redact"
)

// defaultConfigPath is the configuration `otabridge` and `go run .` read when --config is not given.
const defaultConfigPath = "config.yaml"

// cmdRun is `otabridge [run] [--config FILE]`.
func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (default config.yaml when it exists)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "run: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	cfg, err := bridge.LoadConfig(configPathOrDefault(*configPath), os.Environ())
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runBridge(ctx, cfg, stdout, stderr)
}

// configPathOrDefault is path, or config.yaml when path is "" and config.yaml exists ("" otherwise: the
// built-in defaults).
func configPathOrDefault(path string) string {
	if path == "" {
		if _, err := os.Stat(defaultConfigPath); err == nil {
			return defaultConfigPath
		}
	}
	return path
}

// runBridge runs the bridge with cfg until ctx ends.
func runBridge(ctx context.Context, cfg bridge.Config, stdout, stderr io.Writer) error {
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	log.Info().Str("version", version).Str("radio", cfg.Radio.Type).Str("mqtt", redact.URLs(cfg.MQTT.Server)).
		Str("data_dir", cfg.DataDir).Msg("otabridge starting")
	b, err := bridge.New(cfg, bridge.Options{Version: version, Log: log})
	if err != nil {
		return err
	}
	return b.Run(ctx)
}

// newLogger builds the zerolog logger of the log section.
func newLogger(cfg bridge.LogConfig, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.Level)
	if err != nil || cfg.Level == "" {
		if cfg.Level != "" {
			return zerolog.Logger{}, fmt.Errorf("config log.level: %q is not a level", cfg.Level)
		}
		level = zerolog.InfoLevel
	}
	out := w
	if cfg.Format != "json" {
		out = consoleWriter(w, time.DateTime)
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger(), nil
}

// consoleWriter is the human-readable log format on w. It writes ANSI colours only when w is a terminal:
// a log file, a pipe or the add-on log view in Home Assistant get plain text.
func consoleWriter(w io.Writer, timeFormat string) zerolog.ConsoleWriter {
	return zerolog.ConsoleWriter{Out: w, TimeFormat: timeFormat, NoColor: !isTerminal(w)}
}

// isTerminal reports whether w is a terminal (a character device that answers terminal ioctls).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}
