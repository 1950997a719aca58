package sim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
)

func TestParseConfig(t *testing.T) {
	cfg, err := sim.ParseConfig([]byte(`
channel: 20
pan_id: 0x1234
extended_pan_id: "00:11:22:33:44:55:66:77"
seed: 99
link: {mode: fast, loss: 0.01, duplicate: 0.02, mac_retries: 2}
devices:
  - ieee: 0x00124b0012345678
    nwk: 0x4a21
    endpoint: 10
    model: lamp
    manufacturer: ACME
    manufacturer_code: 0x1037
    image_type: 0x0201
    hardware_version: 3
    file_version: 0x01020304
    sw_build_id: "1.2.3"
    date_code: "20250101"
    power: battery
    poll_interval: 30s
    fast_poll_interval: 100ms
    hops: 2
    profile: page
    query_interval: 5m
    max_data_size: 48
    page_size: 512
    response_spacing_ms: 50
    minimum_block_period: 10
    aps_ack: false
    loss: 0.1
    duplicate: 0.05
    processing_delay: 20ms
    reboot_at_percent: 40
    reboot_time: 8s
    request_timeout: 3s
    retries: 2
    announce_on_start: false
`))
	require.NoError(t, err)
	assert.Equal(t, uint8(20), cfg.Channel)
	assert.Equal(t, uint16(0x1234), cfg.PANID)
	assert.Equal(t, zcl.IEEE(0x0011223344556677), cfg.ExtendedPANID)
	assert.Equal(t, sim.LinkConfig{Mode: "fast", Loss: 0.01, Duplicate: 0.02, MACRetries: 2}, cfg.Link)
	d := cfg.Devices[0]
	assert.Equal(t, zcl.IEEE(0x00124b0012345678), d.IEEE)
	assert.Equal(t, uint16(0x4a21), d.NWK)
	assert.Equal(t, 30*time.Second, d.PollInterval)
	assert.Equal(t, 100*time.Millisecond, d.FastPollInterval)
	assert.Equal(t, 5*time.Minute, d.QueryInterval)
	assert.Equal(t, 20*time.Millisecond, d.ProcessingDelay)
	assert.Equal(t, uint32(0x01020304), d.FileVersion)
	assert.Equal(t, 40.0, d.RebootAtPercent)
	require.NotNil(t, d.APSAck)
	assert.False(t, *d.APSAck)
	require.NotNil(t, d.AnnounceOnStart)
	assert.False(t, *d.AnnounceOnStart)
	assert.Equal(t, "page", d.Profile)
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := sim.ParseConfig([]byte(`
devices:
  - {ieee: 0x0000000000000001}
  - {ieee: 0x0000000000010001, profile: silabs, power: battery}
  - {ieee: 0x0000000000000002, profile: page, nwk: 0x0101}
`))
	require.NoError(t, err)
	c := cfg.WithDefaults()
	assert.Equal(t, sim.DefaultChannel, c.Channel)
	assert.Equal(t, sim.DefaultPANID, c.PANID)
	assert.Equal(t, sim.DefaultCoordinatorIEEE, c.CoordinatorIEEE)
	assert.Equal(t, "realistic", c.Link.Mode)
	assert.Equal(t, 3, c.Link.MACRetries)
	a, b, p := c.Devices[0], c.Devices[1], c.Devices[2]
	assert.Equal(t, uint16(0x0001), a.NWK)
	assert.NotEqual(t, uint16(0x0001), b.NWK, "low 16 bits collide: moved")
	assert.Equal(t, "esp-v2", a.Profile)
	assert.Equal(t, uint8(223), a.MaxDataSize)
	assert.Equal(t, uint8(63), b.MaxDataSize)
	assert.Equal(t, uint8(64), p.MaxDataSize)
	assert.Equal(t, uint16(1024), p.PageSize)
	assert.Equal(t, uint16(20), p.ResponseSpacingMS)
	assert.Equal(t, "mains", a.Power)
	assert.Zero(t, a.PollInterval)
	assert.Equal(t, 7*time.Second, b.PollInterval)
	assert.Equal(t, 250*time.Millisecond, b.FastPollInterval)
	assert.Equal(t, 1, a.Hops)
	assert.Equal(t, uint8(1), a.Endpoint)
	assert.Equal(t, 5*time.Second, a.RequestTimeout)
	assert.Equal(t, 5, a.Retries)
	assert.Equal(t, 5*time.Second, a.RebootTime)
	assert.Equal(t, 5*time.Minute, a.QueryInterval)
	assert.True(t, *a.AnnounceOnStart)
	assert.True(t, *a.APSAck)
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"devices:\n  - {ieee: 0x0000000000000001}\n  - {ieee: 0x0000000000000002}\n  - {ieee: 0x0000000000000003, profile: x}\n",
			`radio.sim.devices[2].profile: unknown profile "x" (want esp-v2, periodic, page, silabs, restart-on-loss, manual)`},
		{"link: {mode: slow}\n", `radio.sim.link.mode: unknown mode "slow" (want realistic, fast)`},
		{"link: {loss: 1.5}\n", "radio.sim.link.loss: 1.5 is not a probability in [0, 1)"},
		{"channel: 5\n", "radio.sim.channel: 5 is not a 2.4 GHz channel (want 11..26)"},
		{"devices:\n  - {ieee: 0x0000000000000001}\n  - {ieee: 0x0000000000000001}\n", "radio.sim.devices[1].ieee: 0x0000000000000001 is also devices[0]"},
		{"devices:\n  - {nwk: 5}\n", "radio.sim.devices[0].ieee: missing or invalid IEEE address 0x0000000000000000"},
		{"devices:\n  - {ieee: 0x0000000000000001, nwk: 0xFFFD}\n", "radio.sim.devices[0].nwk: 0xFFFD is a broadcast address"},
		{"devices:\n  - {ieee: 0x0000000000000001, nwk: 7}\n  - {ieee: 0x0000000000000002, nwk: 7}\n", "radio.sim.devices[1].nwk: 0x0007 is also devices[0]"},
		{"devices:\n  - {ieee: 0x0000000000000001, power: solar}\n", `radio.sim.devices[0].power: unknown power source "solar" (want mains, battery)`},
		{"devices:\n  - {ieee: 0x0000000000000001, hops: 20}\n", "radio.sim.devices[0].hops: 20 is out of range (want 1..15)"},
		{"devices:\n  - {ieee: 0x0000000000000001, poll_interval: -1s}\n", "radio.sim.devices[0].poll_interval: negative duration -1s"},
		{"devices:\n  - {ieee: 0x0000000000000001, query_interval: 10ms}\n", "radio.sim.devices[0].query_interval: 10ms is shorter than 1s"},
		{"devices:\n  - {ieee: 0x0000000000000001, reboot_at_percent: 100}\n", "radio.sim.devices[0].reboot_at_percent: 100 is out of range (want 0 for never, or below 100)"},
		{"devices:\n  - {ieee: 0x0000000000000001, loss: -0.1}\n", "radio.sim.devices[0].loss: -0.1 is not a probability in [0, 1)"},
		{"devices:\n  - {ieee: 0x0000000000000001, page_size: 32, max_data_size: 64}\n", "radio.sim.devices[0].page_size: 32 is smaller than max_data_size 64"},
		{"devices:\n  - {ieee: 0x00124b00c0dec0de}\n", "radio.sim.devices[0].ieee: 0x00124b00c0dec0de is the coordinator's address"},
	}
	for _, c := range cases {
		_, err := sim.ParseConfig([]byte(c.yaml))
		if assert.Error(t, err, c.yaml) {
			assert.Equal(t, c.want, err.Error())
		}
	}
	_, err := sim.ParseConfig([]byte("devices:\n  - {ieee: 0x0000000000000001, colour: red}\n"))
	assert.ErrorContains(t, err, "field colour not found")
	_, err = sim.ParseConfig([]byte("devices:\n  - {ieee: nonsense}\n"))
	assert.ErrorContains(t, err, "IEEE address")
	_, err = sim.ParseConfig([]byte("devices:\n  - {ieee: 0x0000000000000001, poll_interval: soon}\n"))
	assert.Error(t, err)
	_, err = sim.ParseConfig(nil)
	assert.NoError(t, err, "an empty section is a network without devices")
}

func TestConfigJoining(t *testing.T) {
	c, err := sim.ParseConfig([]byte(`
network_key: "0x000102030405060708090a0b0c0d0e0f"
devices:
  - ieee: "0x00124b0000000001"
  - ieee: "0x00124b0000000002"
    joined: false
    rejoin: true
    parent: "0x00124b0000000001"
`))
	require.NoError(t, err)
	assert.Equal(t, sim.NetworkKey{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, c.NetworkKey)
	d := c.WithDefaults().Devices
	assert.True(t, *d[0].Joined, "joined defaults to true")
	assert.False(t, *d[1].Joined)
	assert.True(t, d[1].Rejoin)
	assert.Equal(t, zcl.IEEE(0x00124b0000000001), d[1].Parent)
	e, err := sim.ParseConfig([]byte(`network_key: ""`))
	require.NoError(t, err)
	assert.Equal(t, sim.DefaultNetworkKey, e.WithDefaults().NetworkKey)

	for yaml, want := range map[string]string{
		`network_key: "0102"`: "want 32 hex digits",
		"devices:\n  - ieee: \"0x00124b0000000001\"\n    parent: \"0x00124b0000000001\"\n":                                                       "radio.sim.devices[0].parent: a device cannot be its own parent",
		"devices:\n  - ieee: \"0x00124b0000000001\"\n    parent: \"0x00124b0000000009\"\n":                                                       "radio.sim.devices[0].parent: 0x00124b0000000009 is not a device of this configuration",
		"devices:\n  - ieee: \"0x00124b0000000001\"\n    power: battery\n  - ieee: \"0x00124b0000000002\"\n    parent: \"0x00124b0000000001\"\n": "radio.sim.devices[1].parent: devices[0] is a battery end device, not a router",
	} {
		_, err := sim.ParseConfig([]byte(yaml))
		require.Error(t, err, yaml)
		assert.Contains(t, err.Error(), want)
	}
}
