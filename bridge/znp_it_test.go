package bridge

import (
	"context"
	"io"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/znp"
	znpfake "github.com/otabridge/otabridge/ncp/znp/fakestick"
)

// TestBridgeOverZNPFakeStickUpgradesAndSurvivesStickReset runs the whole product the way a user with a
// Sonoff ZBDongle-P (TI CC2652P, Z-Stack 3.x.0) does: radio.type znp → ZNP driver → MT frames → fake Z-Stack
// stick → simulated network. A light is upgraded over MQTT, the stick resets mid-transfer (SYS_RESET_IND),
// the driver resumes the network from the stick's NV, and the image arrives byte for byte.
func TestBridgeOverZNPFakeStickUpgradesAndSurvivesStickReset(t *testing.T) {
	upgradeThroughFakeStick(t, stickUnderTest{
		radioType: "znp",
		model:     "ESP32H2-Light",
		newStick: func(network *sim.Network, log zerolog.Logger) fakeNCP {
			return znpfake.New(network, znpfake.Config{EUI64: network.Config().CoordinatorIEEE, Log: log})
		},
		newDriver: func(open func(context.Context) (io.ReadWriteCloser, error), log zerolog.Logger) (ncp.Radio, func() ncp.NetworkSettings) {
			d := znp.New(znp.Config{Port: "pipe", Network: simNetworkSettings()}, log, znp.WithOpener(open))
			return d, d.Network
		},
	})
}

// TestRadioTypeZNP: radio.type znp validates and builds the ZNP driver behind savingRadio; a missing port is
// named in the error.
func TestRadioTypeZNP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Radio.Type, cfg.Radio.Port = "znp", "/dev/does-not-exist-znp"
	cfg.MQTT.ClientID = "otabridge-test"
	require.NoError(t, cfg.Validate())
	r, err := newSerialRadio(cfg.Radio, t.TempDir(), zerolog.Nop())
	require.NoError(t, err)
	defer r.Close()
	sr, ok := r.(*savingRadio)
	require.True(t, ok, "the network is saved after Start")
	_, ok = sr.Radio.(*znp.Driver)
	require.True(t, ok)
	_, err = r.Start(context.Background())
	require.ErrorContains(t, err, "serial port /dev/does-not-exist-znp does not exist")
}
