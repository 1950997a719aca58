package bridge

import (
	"context"
	"io"
	"testing"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/zboss"
	zbossfake "github.com/otabridge/otabridge/ncp/zboss/fakestick"
)

// TestBridgeOverZBOSSFakeNCPUpgradesAndSurvivesStickReset runs the whole product the way a user with an
// ESP32-C6 esp-coordinator (or an nRF52840 ZBOSS NCP) does: radio.type zboss → ZBOSS driver → ZBOSS NCP
// frames → fake ZBOSS NCP → simulated network. An ESP32-C6 light (ESP v2 client) is upgraded over MQTT,
// the NCP resets mid-transfer, and the image arrives byte for byte.
func TestBridgeOverZBOSSFakeNCPUpgradesAndSurvivesStickReset(t *testing.T) {
	upgradeThroughFakeStick(t, stickUnderTest{
		radioType: "zboss",
		model:     "ESP32C6-Light",
		newStick: func(network *sim.Network, log zerolog.Logger) fakeNCP {
			return zbossfake.New(network, zbossfake.Config{EUI64: network.Config().CoordinatorIEEE, Log: log})
		},
		newDriver: func(open func(context.Context) (io.ReadWriteCloser, error), log zerolog.Logger) (ncp.Radio, func() ncp.NetworkSettings) {
			d := zboss.New(zboss.Config{Port: "pipe", Network: simNetworkSettings()}, log, zboss.WithOpener(open))
			return d, d.Network
		},
	})
}
