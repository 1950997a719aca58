package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/pty"
	"github.com/otabridge/otabridge/ncp/sim"
)

const simStickUsage = "usage: otabridge simstick --protocol ezsp [--config FILE] [--speed N] [--ezsp-version N] [--baud N] [--link PATH]\n"

// simStickOptions are the flags of `otabridge simstick`.
type simStickOptions struct {
	protocol    string
	configPath  string
	speed       float64
	ezspVersion uint
	baud        int
	link        string
	debug       bool
	// ready, when set, is called with the stick once it serves (tests reach its frame ring and counters).
	ready func(stick *fakestick.Stick)
}

// cmdSimStick is `otabridge simstick`: it serves the simulated network of a configuration file through a
// fake stick on a pseudo-terminal until SIGINT/SIGTERM.
func cmdSimStick(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simstick", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o simStickOptions
	fs.StringVar(&o.protocol, "protocol", "ezsp", "stick protocol to speak: `ezsp` (Silicon Labs EmberZNet NCP over ASH)")
	fs.StringVar(&o.configPath, "config", "config.yaml", "configuration `FILE` whose radio.sim section describes the network")
	fs.Float64Var(&o.speed, "speed", 0, "simulation speed `N` (1 = real time; default: radio.sim_speed of the file, else 1)")
	fs.UintVar(&o.ezspVersion, "ezsp-version", 13, "EZSP protocol version `N` the stick speaks (13: EmberZNet 7.4.1; 14: 8.0.0; 15-18: later 8.x layouts)")
	fs.IntVar(&o.baud, "baud", 115200, "model a UART of `N` baud in the stick's transmissions (0: as fast as the pty goes)")
	fs.StringVar(&o.link, "link", "", "also make a symlink at `PATH` to the pseudo-terminal (a stable port name)")
	fs.BoolVar(&o.debug, "debug", false, "log every frame")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), simStickUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprint(stderr, simStickUsage)
		return errUsage
	}
	level := zerolog.InfoLevel
	if o.debug {
		level = zerolog.DebugLevel
	}
	log := zerolog.New(consoleWriter(stderr, time.DateTime)).Level(level).With().Timestamp().Logger()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGUSR1 dumps the last EZSP frames the stick received and sent to stderr (to explain a host's failure).
	dump := make(chan os.Signal, 1)
	signal.Notify(dump, syscall.SIGUSR1)
	defer signal.Stop(dump)
	var dumper sync.WaitGroup
	defer dumper.Wait()
	dumpCtx, endDump := context.WithCancel(ctx)
	defer endDump()
	o.ready = func(stick *fakestick.Stick) {
		dumper.Add(1)
		go func() {
			defer dumper.Done()
			for {
				select {
				case <-dumpCtx.Done():
					return
				case <-dump:
					stick.DumpFrames(stderr)
				}
			}
		}()
	}
	return runSimStick(ctx, o, stdout, log)
}

// simStickFile is the part of a configuration file simstick reads.
type simStickFile struct {
	Radio struct {
		Sim      yaml.Node `yaml:"sim"`
		SimSpeed float64   `yaml:"sim_speed"`
	} `yaml:"radio"`
}

func loadSimConfig(path string) (sim.Config, float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return sim.Config{}, 0, fmt.Errorf("read simstick config: %w", err)
	}
	var f simStickFile
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return sim.Config{}, 0, fmt.Errorf("read simstick config %s: %w", path, err)
	}
	var section []byte
	if f.Radio.Sim.Kind != 0 {
		if section, err = yaml.Marshal(&f.Radio.Sim); err != nil {
			return sim.Config{}, 0, fmt.Errorf("read simstick config %s: radio.sim: %w", path, err)
		}
	}
	cfg, err := sim.ParseConfig(section)
	if err != nil {
		return sim.Config{}, 0, fmt.Errorf("simstick config %s: %w", path, err)
	}
	return cfg, f.Radio.SimSpeed, nil
}

// runSimStick serves until ctx ends. It prints the pseudo-terminal's path on stdout (one line) once the
// stick is ready.
func runSimStick(ctx context.Context, o simStickOptions, stdout io.Writer, log zerolog.Logger) error {
	if o.protocol != "ezsp" {
		return fmt.Errorf("simstick --protocol %q: only ezsp is implemented", o.protocol)
	}
	cfg, fileSpeed, err := loadSimConfig(o.configPath)
	if err != nil {
		return err
	}
	speed := o.speed
	if speed <= 0 {
		speed = fileSpeed
	}
	if speed <= 0 {
		speed = 1
	}
	if o.ezspVersion > 255 {
		return fmt.Errorf("simstick --ezsp-version %d: want 13, 14 or another EZSP version", o.ezspVersion)
	}

	clk := clock.NewVirtual()
	network, err := sim.New(cfg, clk, log)
	if err != nil {
		return fmt.Errorf("simstick: %w", err)
	}
	defer network.Close()
	stick := fakestick.New(network, fakestick.Config{ProtocolVersion: uint8(o.ezspVersion), EUI64: network.Config().CoordinatorIEEE, Baud: o.baud, Log: log})
	defer stick.Close()

	master, path, err := pty.Open()
	if err != nil {
		return fmt.Errorf("simstick: %w", err)
	}
	// Hold the slave side open ourselves: the host may close and reopen the port (a restart of otabridge)
	// without the master seeing a hang-up.
	keep, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return fmt.Errorf("simstick: open %s: %w", path, err)
	}
	defer keep.Close()
	port := path
	if o.link != "" {
		_ = os.Remove(o.link)
		if err := os.Symlink(path, o.link); err != nil {
			master.Close()
			return fmt.Errorf("simstick: link %s: %w", o.link, err)
		}
		defer os.Remove(o.link)
		port = o.link
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	paced := make(chan struct{})
	go func() {
		defer close(paced)
		_ = clk.Pace(runCtx, speed)
	}()
	defer func() { cancel(); <-paced }()

	if o.ready != nil {
		o.ready(stick)
	}
	log.Info().Str("port", port).Str("stick", stick.String()).Int("devices", len(network.Devices())).
		Float64("speed", speed).Int("baud", o.baud).Msg("simulated EZSP stick ready")
	fmt.Fprintln(stdout, port)
	err = stick.Serve(runCtx, master)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("simstick: serving %s: %w", path, err)
}
