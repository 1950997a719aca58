package discovery

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCampaignConfigRules(t *testing.T) {
	for _, in := range []Instance{testInstance, {BaseTopic: "home/otabridge-2", DiscoveryPrefix: "ha", Version: "dev"}} {
		m, err := in.CampaignConfig("night-1", "Hue bulbs at night")
		require.NoError(t, err)
		uids := checkDiscovery(t, in, m)
		b, err := in.BridgeConfig()
		require.NoError(t, err)
		for domain, ids := range checkDiscovery(t, in, b) {
			for _, id := range ids {
				assert.NotContains(t, uids[domain], id, "the campaign sensor's unique id is its own")
			}
		}
		var p map[string]any
		require.NoError(t, json.Unmarshal(m.Payload, &p))
		dev := p["dev"].(map[string]any)
		assert.Equal(t, []any{in.BridgeIdentifier()}, dev["identifiers"], "attached to the bridge's HA device")
		c := p["cmps"].(map[string]any)[ComponentCampaign].(map[string]any)
		assert.Equal(t, in.CampaignTopic("night-1"), c["state_topic"])
		assert.Equal(t, in.CampaignTopic("night-1"), c["json_attributes_topic"])
		assert.Equal(t, "%", c["unit_of_measurement"])
		assert.Equal(t, "Campaign Hue bulbs at night", c["name"])
		assert.Equal(t, in.CampaignConfigTopic("night-1"), in.RemoveCampaign("night-1").Topic)
		assert.Empty(t, in.RemoveCampaign("night-1").Payload)
	}
	for _, bad := range []string{"", "a/b", "a+b", "#"} {
		_, err := testInstance.CampaignConfig(bad, "x")
		assert.Error(t, err, bad)
	}
}
