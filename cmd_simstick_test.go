package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/zcl"
)

// TestSimStickServesOverPty runs `otabridge simstick` on a config file and talks to it through the printed
// pseudo-terminal path with the real EZSP driver (go.bug.st/serial): bring-up and a Read Attributes round
// trip with a simulated device.
func TestSimStickServesOverPty(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
mqtt: {server: embedded}
radio:
  type: ezsp
  sim_speed: 20
  sim:
    channel: 20
    pan_id: 0x4E21
    extended_pan_id: "0x00124b0000004e21"
    network_key: "0102030405060708090a0b0c0d0e0f10"
    link: {mode: fast}
    devices:
      - ieee: "0x00124b00000000b2"
        nwk: 0x2B02
        model: TestPlug
        manufacturer: Acme
        power: mains
`), 0o600))
	out, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	link := filepath.Join(dir, "ttyEZSP")
	go func() {
		done <- runSimStick(ctx, simStickOptions{protocol: "ezsp", configPath: cfgPath, ezspVersion: 14, baud: 460800, link: link}, outW, zerolog.Nop())
		outW.Close()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	port := strings.TrimSpace(line)
	assert.Equal(t, link, port)

	simCfg, _, err := loadSimConfig(cfgPath)
	require.NoError(t, err)
	// The driver forms the network the configured devices are members of.
	drv := ezsp.New(ezsp.Config{Port: port, Baud: 460800, Network: ezsp.NetworkSettings{Channel: simCfg.Channel, PANID: simCfg.PANID,
		ExtendedPANID: simCfg.ExtendedPANID, NetworkKey: ezsp.NetworkKey(simCfg.NetworkKey)}}, zerolog.Nop())
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	info, err := drv.Start(sctx)
	require.NoError(t, err)
	assert.Contains(t, info.Firmware, "EZSP v14")
	req := zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ClientToServer, false, 7, zcl.CmdReadAttributes), zcl.ReadAttributes{AttributeIDs: []uint16{zcl.AttrBasicModelIdentifier}})
	require.NoError(t, drv.Send(sctx, ncp.Frame{DstShort: 0x2B02, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterBasic, ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: req}))
	found := false
	for !found {
		select {
		case ev := <-drv.Events():
			if ev.Kind != ncp.EventFrame || ev.Frame.ClusterID != zcl.ClusterBasic {
				continue
			}
			f, err := zcl.DecodeFrame(ev.Frame.Payload)
			require.NoError(t, err)
			if f.Header.CommandID != zcl.CmdReadAttributesResponse {
				continue
			}
			rsp, err := zcl.DecodeReadAttributesResponse(f.Payload)
			require.NoError(t, err)
			require.Len(t, rsp.Records, 1)
			assert.Equal(t, "TestPlug", rsp.Records[0].Value.String)
			found = true
		case <-sctx.Done():
			t.Fatal("no Read Attributes Response")
		}
	}
	require.NoError(t, drv.Close())
	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("simstick did not stop")
	}
	_, err = os.Lstat(link)
	assert.True(t, os.IsNotExist(err), "the link is removed on exit")
}

func TestSimStickRejectsOtherProtocols(t *testing.T) {
	err := runSimStick(context.Background(), simStickOptions{protocol: "zigate", configPath: "config.yaml"}, io.Discard, zerolog.Nop())
	assert.ErrorContains(t, err, `--protocol "zigate": want ezsp, znp or zboss`)
}
