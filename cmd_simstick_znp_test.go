package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/znp"
	znpfake "github.com/otabridge/otabridge/ncp/znp/fakestick"
)

// startZNPStick runs `simstick --protocol znp` in process on a real pseudo-terminal and returns the port and
// the stick.
func startZNPStick(t *testing.T) (string, *znpfake.Stick) {
	t.Helper()
	cfg := conformanceConfig(t)
	out, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stickCh := make(chan *znpfake.Stick, 1)
	link := filepath.Join(t.TempDir(), "ttyZNP")
	go func() {
		done <- runSimStick(ctx, simStickOptions{protocol: "znp", configPath: cfg, link: link,
			readyZNP: func(s *znpfake.Stick) { stickCh <- s }}, outW, zerolog.Nop())
		outW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "simstick did not print its port")
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return strings.TrimSpace(line), <-stickCh
}

// TestHerdsmanConformanceZStack: zigbee-herdsman 10.9.5's zstack adapter drives `otabridge simstick
// --protocol znp` through the EZSP suite's scenario (form, stop, resume, permit join, every device joins and
// is interviewed, Basic and OTA attributes read, a group command, a leave, permit join closed, stop); then
// otabridge's own ZNP driver runs the same scenario on a fresh stick.
func TestHerdsmanConformanceZStack(t *testing.T) {
	if testing.Short() {
		t.Skip("herdsman conformance: -short")
	}
	node := herdsmanAvailable(t)
	devicesJSON, err := json.Marshal(conformanceDevices)
	require.NoError(t, err)
	t.Run("herdsman_zstack", func(t *testing.T) {
		port, stick := startZNPStick(t)
		results, stderr, werr := runHarness(t, node, port, "zstack", string(devicesJSON), func(r stepResult) {
			t.Errorf("herdsman zstack: step %q failed: %s\nlast frames herdsman logged:\n  %s", r.Step, r.Error, strings.Join(r.Frames, "\n  "))
		})
		if werr != nil && !t.Failed() {
			t.Errorf("herdsman zstack: harness exited: %v\n%s", werr, tail(stderr, 3000))
		}
		if got := reachedSteps(results); !slices.Equal(got, scenarioSteps(true)) && !t.Failed() {
			t.Errorf("herdsman zstack reached %v, want %v", got, scenarioSteps(true))
		}
		cmds := stick.Commands()
		for _, c := range []string{"SYS_PING", "SYS_VERSION", "APP_CNF_BDB_START_COMMISSIONING", "AF_REGISTER",
			"AF_DATA_REQUEST", "ZDO_MGMT_PERMIT_JOIN_REQ", "ZDO_02", "ZDO_05", "ZDO_04", "ZDO_34"} {
			if cmds[c] == 0 {
				t.Errorf("herdsman zstack never sent %s (commands: %v)", c, cmds)
			}
		}
		t.Logf("herdsman zstack: %d/%d steps; commands %v", len(reachedSteps(results)), len(scenarioSteps(true)), cmds)
	})
	t.Run("otabridge_znp", func(t *testing.T) {
		port, stick := startZNPStick(t)
		results := runDriverScenario(t, port, func(p string) ncp.Radio {
			return znp.New(znp.Config{Port: p, Network: conformanceNetwork}, zerolog.Nop())
		})
		for _, r := range results {
			if !r.OK {
				t.Errorf("otabridge znp: step %q failed: %s", r.Step, r.Error)
			}
		}
		if got := reachedSteps(results); !slices.Equal(got, scenarioSteps(false)) && !t.Failed() {
			t.Errorf("otabridge znp reached %v, want %v", got, scenarioSteps(false))
		}
		t.Logf("otabridge znp: %d/%d steps; commands %s", len(reachedSteps(results)), len(scenarioSteps(false)), fmt.Sprint(stick.Commands()))
	})
}
