package discovery

import "testing"

func TestOwnsConfigTopicExact(t *testing.T) {
	in := Instance{BaseTopic: "otabridge", DiscoveryPrefix: "homeassistant"}
	cases := []struct {
		topic string
		ieee  string
		ok    bool
	}{
		{"homeassistant/device/otabridge_0x00124b0012345678/config", "0x00124b0012345678", true},
		{"homeassistant/device/otabridge_bridge/config", "", true},
		// Another instance whose base topic starts with ours.
		{"homeassistant/device/otabridge_garage_0x00124b0012345678/config", "", false},
		{"homeassistant/device/otabridge_garage_bridge/config", "", false},
		{"homeassistant/device/otabridge_0x00124b0012345678_x/config", "", false},
		{"homeassistant/device/otabridge_0x00124B0012345678/config", "", false},
		{"homeassistant/device/otabridge_0x00124b00123456/config", "", false},
		{"homeassistant/device/otabridge_0x00124b0012345678/state", "", false},
		{"other/device/otabridge_0x00124b0012345678/config", "", false},
	}
	for _, c := range cases {
		ieee, ok := in.OwnsConfigTopic(c.topic)
		if ok != c.ok || ieee != c.ieee {
			t.Errorf("OwnsConfigTopic(%q) = %q, %v; want %q, %v", c.topic, ieee, ok, c.ieee, c.ok)
		}
	}
	// Base topics with characters outside HA's id set are reduced the same way the configs were published.
	in = Instance{BaseTopic: "home/ota bridge", DiscoveryPrefix: "ha"}
	if _, ok := in.OwnsConfigTopic(in.DeviceConfigTopic("0x00124b0012345678")); !ok {
		t.Errorf("own device config of base %q not recognised", in.BaseTopic)
	}
}
