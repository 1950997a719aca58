package bridge

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/zboss"
	"github.com/otabridge/otabridge/ncp/znp"
	"github.com/otabridge/otabridge/zcl"
)

// NetworkFile keeps the parameters of the network a stick formed (channel, PAN ids, key), so they are never
// lost: a stick that was reset to factory defaults forms the same network again.
const NetworkFile = "network.json"

// newSerialRadio builds the driver of a serial coordinator stick. Every driver takes the configured network
// merged with the saved one, and is wrapped so that the network it ends up on is saved.
func newSerialRadio(cfg RadioConfig, dataDir string, log zerolog.Logger) (ncp.Radio, error) {
	type serialDriver interface {
		ncp.Radio
		Network() ncp.NetworkSettings
	}
	var build func(ncp.NetworkSettings) serialDriver
	switch cfg.Type {
	case "ezsp":
		build = func(s ncp.NetworkSettings) serialDriver { return ezsp.New(ezspConfig(cfg, s), log) }
	case "znp":
		build = func(s ncp.NetworkSettings) serialDriver {
			return znp.New(znp.Config{Port: cfg.Port, Baud: cfg.Baud, FlowControl: cfg.FlowControl, Network: s}, log)
		}
	case "zboss":
		build = func(s ncp.NetworkSettings) serialDriver {
			return zboss.New(zboss.Config{Port: cfg.Port, Baud: cfg.Baud, FlowControl: cfg.FlowControl, Network: s}, log)
		}
	default:
		return nil, fmt.Errorf("radio.type %q: no driver built in (want sim, ezsp, znp or zboss)", cfg.Type)
	}
	path := filepath.Join(dataDir, NetworkFile)
	settings, err := ezspNetwork(cfg.Network, path, log)
	if err != nil {
		return nil, err
	}
	d := build(settings)
	return &savingRadio{Radio: d, network: d.Network, path: path, log: log}, nil
}

// ezspConfig is the EZSP driver's configuration from radio's (Validate checks it at load).
func ezspConfig(cfg RadioConfig, network ncp.NetworkSettings) ezsp.Config {
	return ezsp.Config{Port: cfg.Port, Baud: cfg.Baud, FlowControl: cfg.FlowControl, ASHWindow: cfg.ASHWindow,
		MaxInFlight: cfg.MaxInFlight, FragmentWindow: cfg.FragmentWindow, FragmentDelayMS: cfg.FragmentDelayMS,
		MaxFragmentedPayload: cfg.MaxFragmentedPayload, Network: network}
}

// ezspNetwork merges the configured network with the saved one: configured values win, the saved ones fill
// what the configuration leaves to chance. Every serial driver (ezsp, znp, zboss) takes the result.
func ezspNetwork(c NetworkConfig, savedPath string, log zerolog.Logger) (ncp.NetworkSettings, error) {
	var saved ncp.NetworkSettings
	if _, err := LoadJSON(savedPath, &saved, log); err != nil {
		log.Warn().Err(err).Str("path", savedPath).Msg("saved network unreadable")
	}
	s := saved
	if c.Channel != 0 {
		s.Channel = c.Channel
	}
	if c.PANID != 0 {
		s.PANID = c.PANID
	}
	if c.ExtendedPANID != "" {
		v, err := zcl.ParseIEEE(c.ExtendedPANID)
		if err != nil {
			return s, fmt.Errorf("config radio.network.extended_pan_id: %w", err)
		}
		s.ExtendedPANID = v
	}
	if k := strings.TrimSpace(c.NetworkKey); k != "" && k != "generate" {
		if err := s.NetworkKey.UnmarshalText([]byte(k)); err != nil {
			return s, fmt.Errorf("config radio.network.network_key: %w", err)
		}
	}
	return s, nil
}

// savingRadio saves the network a driver formed or resumed after every successful Start.
type savingRadio struct {
	ncp.Radio
	network func() ncp.NetworkSettings
	path    string
	log     zerolog.Logger
}

// MaxFragmentedPayload passes the driver's ncp.Fragmenter through (0, no fragmentation, for a driver
// without it).
func (r *savingRadio) MaxFragmentedPayload() int {
	if f, ok := r.Radio.(ncp.Fragmenter); ok {
		return f.MaxFragmentedPayload()
	}
	return 0
}

// Driver returns the wrapped driver, for the optional parts of the radio contract it may have.
func (r *savingRadio) Driver() ncp.Radio { return r.Radio }

func (r *savingRadio) Start(ctx context.Context) (ncp.NetworkInfo, error) {
	info, err := r.Radio.Start(ctx)
	if err != nil {
		return info, err
	}
	n := r.network()
	var saved ncp.NetworkSettings
	if _, lerr := LoadJSON(r.path, &saved, r.log); lerr == nil && saved == n {
		return info, nil
	}
	if n.NetworkKey.IsZero() && !saved.NetworkKey.IsZero() {
		n.NetworkKey = saved.NetworkKey // a resumed network does not tell its key
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o700); err == nil {
		if err := SaveJSON(r.path, n); err != nil {
			r.log.Error().Err(err).Msg("saving the network parameters failed")
		} else {
			_ = os.Chmod(r.path, 0o600)
			r.log.Info().Str("path", r.path).Uint8("channel", n.Channel).Msg("network parameters saved")
		}
	}
	return info, nil
}
