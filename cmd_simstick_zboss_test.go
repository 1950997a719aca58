package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/zboss"
	zbossfake "github.com/otabridge/otabridge/ncp/zboss/fakestick"
)

// startZBOSSStick runs `simstick --protocol zboss` in process on a real pseudo-terminal and returns the port
// and the stick.
func startZBOSSStick(t *testing.T) (string, *zbossfake.Stick) {
	t.Helper()
	stickCh := make(chan *zbossfake.Stick, 1)
	port := serveSimStick(t, simStickOptions{protocol: "zboss", readyZBOSS: func(s *zbossfake.Stick) { stickCh <- s }})
	return port, <-stickCh
}

// TestHerdsmanConformanceZBOSS: zigbee-herdsman 10.9.5's zboss adapter drives `otabridge simstick --protocol
// zboss` through the EZSP suite's scenario (form, stop, resume, permit join, every device joins and is
// interviewed, Basic and OTA attributes read, a group command, a leave, permit join closed, stop); then
// otabridge's own ZBOSS driver runs the same scenario on a fresh stick.
func TestHerdsmanConformanceZBOSS(t *testing.T) {
	if testing.Short() {
		t.Skip("herdsman conformance: -short")
	}
	node := herdsmanAvailable(t)
	devicesJSON, err := json.Marshal(conformanceDevices)
	require.NoError(t, err)
	t.Run("herdsman_zboss", func(t *testing.T) {
		port, stick := startZBOSSStick(t)
		results, stderr, werr := runHarness(t, node, port, "zboss", string(devicesJSON), func(r stepResult) {
			t.Errorf("herdsman zboss: step %q failed: %s\nlast frames herdsman logged:\n  %s", r.Step, r.Error, strings.Join(r.Frames, "\n  "))
		})
		if werr != nil && !t.Failed() {
			t.Errorf("herdsman zboss: harness exited: %v\n%s", werr, tail(stderr, 3000))
		}
		if got := reachedSteps(results); !slices.Equal(got, scenarioSteps(true)) && !t.Failed() {
			t.Errorf("herdsman zboss reached %v, want %v", got, scenarioSteps(true))
		}
		calls := stick.Calls()
		for _, c := range []string{"NWK_FORMATION", "NWK_START_WITHOUT_FORMATION", "AF_SET_SIMPLE_DESC", "SET_TC_POLICY", "APSDE_DATA_REQ",
			"ZDO_NODE_DESC_REQ", "ZDO_ACTIVE_EP_REQ", "ZDO_SIMPLE_DESC_REQ", "ZDO_MGMT_LEAVE_REQ"} {
			if calls[c] == 0 {
				t.Errorf("herdsman zboss never sent %s (calls: %v)", c, calls)
			}
		}
		t.Logf("herdsman zboss: %d/%d steps; calls %v; link %+v", len(reachedSteps(results)), len(scenarioSteps(true)), fmt.Sprint(calls), stick.LinkStats())
	})
}

// TestDriverConformanceZBOSS: otabridge's own ZBOSS driver through the same scenario on a fresh
// `simstick --protocol zboss` (ZDO requests go through the NCP's ZDO calls).
func TestDriverConformanceZBOSS(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance: -short")
	}
	port, stick := startZBOSSStick(t)
	results := runDriverScenario(t, port, func(p string) ncp.Radio {
		return zboss.New(zboss.Config{Port: p, Network: conformanceNetwork}, zerolog.Nop())
	})
	for _, r := range results {
		if !r.OK {
			t.Errorf("otabridge zboss driver: step %q failed: %s", r.Step, r.Error)
		}
	}
	if got := reachedSteps(results); !slices.Equal(got, scenarioSteps(false)) && !t.Failed() {
		t.Errorf("otabridge zboss driver reached %v, want %v", got, scenarioSteps(false))
	}
	assert.Equal(t, 1, stick.Calls()["NWK_FORMATION"], "formed once, resumed after")
	assert.Equal(t, 1, stick.Calls()["NWK_START_WITHOUT_FORMATION"])
}
