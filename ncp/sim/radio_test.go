package sim_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/sim/simtest"
	"github.com/otabridge/otabridge/zcl"
)

// TestRadioContractPaced uses the network the way the bridge does: the clock paced on its own goroutine,
// blocking Send from several goroutines, events from the Events channel, then Close.
func TestRadioContractPaced(t *testing.T) {
	cfg, err := sim.ParseConfig([]byte(oneDevice("realistic", "")))
	require.NoError(t, err)
	cfg.Devices = append(cfg.Devices, sim.DeviceConfig{IEEE: 0x00124b0000000002, Power: "battery", PollInterval: time.Second})
	clk := clock.NewVirtual()
	net, err := sim.New(cfg, clk, zerolog.Nop())
	require.NoError(t, err)
	var radio ncp.Radio = net

	// Before Start.
	assert.ErrorIs(t, radio.Send(context.Background(), ncp.Frame{DstShort: 1}), ncp.ErrNotStarted)
	assert.ErrorIs(t, radio.PermitJoin(context.Background(), 60), ncp.ErrNotStarted)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned here: stopped by cancel, waited for below
		defer wg.Done()
		_ = clk.Pace(ctx, 200)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	info, err := radio.Start(ctx)
	require.NoError(t, err)
	assert.Equal(t, "sim", info.Type)
	assert.Equal(t, sim.DefaultCoordinatorIEEE, info.IEEE)
	assert.Equal(t, 82, radio.MaxAPSPayload())
	require.NoError(t, radio.PermitJoin(ctx, 60))

	announced := map[zcl.IEEE]uint8{}
	timeout := time.After(20 * time.Second)
	for len(announced) < 2 {
		select {
		case ev := <-radio.Events():
			if ev.Kind == ncp.EventAnnounced {
				announced[ev.IEEE] = ev.Capabilities
			}
		case <-timeout:
			t.Fatalf("announcements: %v", announced)
		}
	}
	assert.Equal(t, sim.CapabilityAllocateAddr, announced[0x00124b0000000002])

	// Read CurrentFileVersion of both devices from two goroutines at once.
	var sends sync.WaitGroup
	errs := make(chan error, 2)
	for i, d := range net.Devices() {
		sends.Add(1)
		go func() {
			defer sends.Done()
			errs <- radio.Send(ctx, ncp.Frame{DstShort: d.NWK(), DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA,
				ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: simtest.ReadAttributesFrame(uint8(10+i), zcl.AttrOTACurrentFileVersion)})
		}()
	}
	sends.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got := map[zcl.IEEE]uint32{}
	for len(got) < 2 {
		select {
		case ev := <-radio.Events():
			if ev.Kind != ncp.EventFrame {
				continue
			}
			h, p, err := zcl.DecodeHeader(ev.Frame.Payload)
			require.NoError(t, err)
			if h.CommandID != zcl.CmdReadAttributesResponse {
				continue
			}
			rsp, err := zcl.DecodeReadAttributesResponse(p)
			require.NoError(t, err)
			got[ev.IEEE] = uint32(rsp.Records[0].Value.Uint)
			assert.Equal(t, net.Device(ev.IEEE).NWK(), ev.Frame.SrcShort)
		case <-timeout:
			t.Fatalf("responses: %v", got)
		}
	}
	assert.Equal(t, map[zcl.IEEE]uint32{dev1: oldVer, 0x00124b0000000002: 0}, got)

	// A cancelled context abandons the wait.
	short, stop := context.WithCancel(ctx)
	stop()
	err = radio.Send(short, ncp.Frame{DstShort: 2, ProfileID: zcl.ProfileHomeAutomation, Payload: []byte{0, 1, 0}})
	assert.True(t, err == nil || errors.Is(err, context.Canceled), "%v", err)

	require.NoError(t, radio.Close())
	require.NoError(t, radio.Close(), "Close twice")
	for range radio.Events() { // drains and ends: the channel is closed
	}
	assert.ErrorIs(t, radio.Send(ctx, ncp.Frame{DstShort: 1}), ncp.ErrClosed)
	_, err = radio.Start(ctx)
	assert.ErrorIs(t, err, ncp.ErrClosed)
}

// TestDeterministic: the same seed and the same inputs give the same run.
func TestDeterministic(t *testing.T) {
	run := func() (time.Duration, sim.LinkStats) {
		h := simtest.New(t, "seed: 4\n"+oneDevice("realistic", "    profile: periodic\n    loss: 0.05\n")[len("\nseed: 7"):])
		simtest.NewMinimalServer(h, newImage())
		require.True(t, upgraded(h, dev1, time.Hour))
		return h.Now(), h.Net.Stats()
	}
	t1, s1 := run()
	t2, s2 := run()
	assert.Equal(t, t1, t2)
	assert.Equal(t, s1, s2)
}
