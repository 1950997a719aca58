package ezsp_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/sim"
)

// Issue 18.3: on a stick that holds a network another host formed, bring-up resumes it and changes nothing
// the other host would have to undo: no form, no leave, no security state, no channel change, no token
// written, permit join never opened; the network in the stick's NVRAM is the same afterwards, and the
// driver reports it did not form it. What it does write is RAM only: configuration values, policies,
// endpoint 1 and the concentrator setting (gone at the stick's next reset).
func TestResumeNeverChangesAForeignNetwork(t *testing.T) {
	forVersions(t, func(t *testing.T, version uint8) {
		cfg, err := sim.ParseConfig([]byte("existing: true\n" + simYAML))
		require.NoError(t, err)
		network, err := sim.New(cfg, clock.NewVirtual(), testLog(t))
		require.NoError(t, err)
		p := network.Params()
		stored := &ezsp.NetworkParameters{ExtendedPANID: p.ExtendedPANID, PANID: p.PANID, RadioChannel: p.Channel, RadioTxPower: 8,
			Channels: 1 << p.Channel}
		// The configuration asks for another network: it must not be formed over the stored one.
		_, stick, info := driverThroughFakeStick(t, network, network, fakestick.Config{ProtocolVersion: version, Stored: stored},
			ezsp.Config{Network: ezsp.NetworkSettings{Channel: 25, PANID: 0x4242}})
		assert.False(t, info.Formed, "the driver claims it formed a network it resumed")
		assert.Equal(t, p.Channel, info.Channel)
		assert.Equal(t, p.PANID, info.PANID)
		assert.Equal(t, p.ExtendedPANID, info.ExtendedPANID)
		cmds := stick.Commands()
		t.Logf("bring-up commands: %v", cmds)
		require.NotZero(t, cmds["networkInit"], "commands: %v", cmds)
		for _, name := range []string{"formNetwork", "leaveNetwork", "setInitialSecurityState", "permitJoining",
			"setTokenData", "tokenFactoryReset", "setLogicalAndRadioChannel", "setRadioChannel", "clearKeyTable",
			"broadcastNextNetworkKey", "broadcastNetworkKeySwitch", "eraseKeyTableEntry", "resetNode"} {
			assert.Zero(t, cmds[name], "bring-up sent %s to a stick holding a foreign network", name)
		}
		assert.Equal(t, stored, stick.Stored(), "the stored network changed")
	})
}
