package discovery

import "strings"

// OwnsConfigTopic reports whether topic is a discovery config topic this instance publishes: its bridge's
// (`<prefix>/device/<base>_bridge/config`) or a device's (`<prefix>/device/<base>_0x<16 hex digits>/config`).
// The object id must match exactly, so base topic `otabridge` never claims `otabridge_garage`'s configs.
// The second result is the device's IEEE string ("" for the bridge's config).
func (in Instance) OwnsConfigTopic(topic string) (ieee string, ok bool) {
	if topic == in.BridgeConfigTopic() {
		return "", true
	}
	id, found := strings.CutPrefix(topic, in.DiscoveryPrefix+"/device/")
	if !found {
		return "", false
	}
	if id, found = strings.CutSuffix(id, "/config"); !found {
		return "", false
	}
	rest, found := strings.CutPrefix(id, ObjectID(in.BaseTopic)+"_")
	if !found || !isIEEEString(rest) {
		return "", false
	}
	return rest, true
}

// isIEEEString reports whether s is an IEEE address as the bridge writes it: "0x" and 16 lowercase hex digits.
func isIEEEString(s string) bool {
	if len(s) != 18 || s[:2] != "0x" {
		return false
	}
	for _, c := range []byte(s[2:]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
