package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/redact"
)

const addonUsage = `usage: otabridge addon [--options FILE] [--config FILE] [--supervisor URL] [--dry-run]
Runs the bridge as a Home Assistant add-on: reads the add-on options the Supervisor wrote, takes the MQTT
broker from the options or from the Supervisor's MQTT service (the Mosquitto add-on), and starts the bridge
with data in /data and OTA files in /config/images. --config names an optional configuration file for the
keys the options do not cover (used when it exists). --dry-run prints the effective configuration (no
secrets) as JSON and exits.
`

// addonRunBridge runs the bridge with the add-on's configuration until ctx ends (a variable so tests can
// stop before the bridge starts).
var addonRunBridge = func(ctx context.Context, cfg bridge.Config, stdout, stderr io.Writer) error {
	// The add-on owns its config folder: the images folder in it is made on purpose (the user finds where
	// to drop OTA files), unlike a standalone images.folder, which otabridge never creates.
	if err := os.MkdirAll(cfg.Images.Folder, 0o755); err != nil {
		fmt.Fprintf(stderr, "otabridge: add-on images folder %s not created: %v\n", cfg.Images.Folder, err)
	}
	return runBridge(ctx, cfg, stdout, stderr)
}

// Supervisor lookup: at boot the add-on can start before the Supervisor answers, or before the Mosquitto
// add-on has registered the MQTT service; the Supervisor's watchdog is off by default, so an add-on that
// exits here stays stopped. The lookup waits instead, with back-off (variables so tests can shorten them).
var (
	addonLookupTimeout  = 10 * time.Second
	addonLookupPause    = 2 * time.Second  // first wait
	addonLookupMaxPause = 60 * time.Second // longest wait between two lookups
)

// cmdAddon is `otabridge addon`, the entry point of the add-on image.
func cmdAddon(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("addon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	optionsPath := fs.String("options", bridge.AddonOptionsFile, "the add-on options written by the Supervisor")
	configPath := fs.String("config", bridge.AddonConfigFile, "optional configuration file (YAML) for keys the options do not cover")
	supervisor := fs.String("supervisor", bridge.SupervisorURL, "the Supervisor API")
	dryRun := fs.Bool("dry-run", false, "print the effective configuration and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, addonUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "addon: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	log := zerolog.New(consoleWriter(stderr, time.RFC3339)).
		With().Timestamp().Str("component", "addon").Logger()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, source, err := addonConfig(ctx, *optionsPath, *configPath, *supervisor, os.Getenv("SUPERVISOR_TOKEN"), log)
	if err != nil {
		return err
	}
	if *dryRun {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"mqtt_source": source, "config": cfg.Summary()}); err != nil {
			return fmt.Errorf("addon: write configuration: %w", err)
		}
		return nil
	}
	return addonRunBridge(ctx, cfg, stdout, stderr)
}

// addonConfig builds the add-on's configuration: the optional configuration file (or the defaults) and
// OTABRIDGE_* variables, then the options, with the broker from the options or the Supervisor's service.
// It returns where the broker came from.
func addonConfig(ctx context.Context, optionsPath, configPath, supervisorURL, token string, log zerolog.Logger) (bridge.Config, string, error) {
	opts, err := bridge.LoadAddonOptions(optionsPath)
	if err != nil {
		return bridge.Config{}, "", err
	}
	file := ""
	if configPath != "" {
		if _, err := os.Stat(configPath); err == nil {
			file = configPath
		} else if !errors.Is(err, os.ErrNotExist) {
			return bridge.Config{}, "", fmt.Errorf("addon: configuration file: %w", err)
		}
	}
	cfg, err := bridge.LoadConfig(file, os.Environ())
	if err != nil {
		return bridge.Config{}, "", err
	}
	var svc *bridge.SupervisorMQTT
	if opts.MQTTServer == "" {
		svc, err = addonLookupMQTT(ctx, supervisorURL, token, log)
		if err != nil {
			return bridge.Config{}, "", err
		}
	}
	if err := opts.Apply(&cfg, svc); err != nil {
		if errors.Is(err, bridge.ErrNoMQTTBroker) && token == "" {
			return bridge.Config{}, "", fmt.Errorf("%w (SUPERVISOR_TOKEN is not set: not running as a Home Assistant add-on?)", err)
		}
		return bridge.Config{}, "", err
	}
	source := opts.MQTTSource(svc)
	log.Info().Str("radio", cfg.Radio.Type).Str("port", cfg.Radio.Port).Int("baud", cfg.Radio.Baud).
		Str("mqtt_server", redact.URLs(cfg.MQTT.Server)).Str("mqtt_source", source).Str("base_topic", cfg.MQTT.BaseTopic).
		Str("approval", cfg.OTA.Approval).Int("max_concurrent", cfg.OTA.MaxConcurrent).
		Int("indexes", len(cfg.Images.Indexes)).Bool("config_file", file != "").Msg("add-on configuration")
	return cfg, source, nil
}

// addonLookupMQTT asks the Supervisor for its MQTT service: nil (and no error) when there is no Supervisor
// token (not an add-on). While the Supervisor does not answer, answers that it is not ready, or has no MQTT
// service yet (Mosquitto not started, or not installed), it waits and asks again with back-off, logging why,
// until the service is there or ctx ends. An answer that cannot change by waiting (a refused token, a
// malformed reply) is returned at once.
func addonLookupMQTT(ctx context.Context, supervisorURL, token string, log zerolog.Logger) (*bridge.SupervisorMQTT, error) {
	if token == "" {
		return nil, nil
	}
	client := &http.Client{Timeout: addonLookupTimeout}
	pause := addonLookupPause
	for attempt := 1; ; attempt++ {
		svc, err := bridge.LookupSupervisorMQTT(ctx, client, supervisorURL, token)
		if err == nil {
			log.Info().Str("addon", svc.Addon).Str("host", svc.Host).Int("port", svc.Port).Bool("ssl", svc.SSL).
				Str("username", svc.Username).Int("attempt", attempt).Msg("supervisor MQTT service")
			return svc, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("addon: stopped while asking the Supervisor for its MQTT service: %w", ctx.Err())
		}
		var transport *url.Error // from the HTTP client: the Supervisor did not answer
		var why string
		switch {
		case errors.Is(err, bridge.ErrNoSupervisorMQTT):
			why = "no MQTT service yet: start (or install) the Mosquitto broker add-on, or set mqtt_server"
		case errors.Is(err, bridge.ErrSupervisorNotReady):
			why = "the Supervisor is not ready yet"
		case errors.As(err, &transport):
			why = "the Supervisor does not answer yet"
		default:
			return nil, err // the Supervisor answered: waiting will not change it
		}
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in_ms", pause).Msg("waiting for the MQTT broker: " + why)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("addon: stopped while waiting for the Supervisor's MQTT service (%s): %w", why, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, addonLookupMaxPause)
	}
}
