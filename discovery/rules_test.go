package discovery

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// This file checks discovery payloads against the shared reference sheet ha-mqtt-rules.md, rule by rule. Each
// check names the rule it enforces. The allowed key sets are the schema keys of HA's platforms that
// otabridge may use (a payload with any other key is a test failure, even where HA would only drop it).

var idCharset = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// supportedComponents is the part of mqtt/const.py SUPPORTED_COMPONENTS otabridge may use.
var supportedComponents = []string{"binary_sensor", "button", "sensor", "switch", "update", "select", "number", "text"}

// rootKeys: DEVICE_DISCOVERY_SCHEMA (availability options, device, components, origin, state_topic,
// command_topic, qos, encoding), in the short forms we use for dev/o/cmps.
var rootKeys = []string{"dev", "o", "cmps", "availability", "availability_mode", "availability_template",
	"availability_topic", "payload_available", "payload_not_available", "state_topic", "command_topic", "qos",
	"encoding", "message_expiry_interval"}

// deviceKeys: MQTT_ENTITY_DEVICE_INFO_SCHEMA (PREVENT_EXTRA).
var deviceKeys = []string{"identifiers", "connections", "manufacturer", "model", "model_id", "name", "hw_version",
	"serial_number", "sw_version", "via_device", "suggested_area", "configuration_url"}

// originKeys: MQTT_ORIGIN_INFO_SCHEMA (PREVENT_EXTRA).
var originKeys = []string{"name", "sw_version", "support_url"}

var availabilityKeys = []string{"topic", "payload_available", "payload_not_available", "value_template"}

// commonEntityKeys: MQTT_ENTITY_COMMON_SCHEMA plus availability and the discovery keys.
var commonEntityKeys = []string{"p", "name", "unique_id", "default_entity_id", "entity_category", "icon",
	"entity_picture", "enabled_by_default", "json_attributes_topic", "json_attributes_template", "availability",
	"availability_mode", "encoding", "qos"}

var platformKeys = map[string][]string{
	"update": {"state_topic", "value_template", "command_topic", "payload_install", "device_class",
		"display_precision", "latest_version_topic", "latest_version_template", "release_summary", "release_url",
		"title", "retain"},
	"button":        {"command_topic", "command_template", "payload_press", "device_class", "retain"},
	"switch":        {"command_topic", "state_topic", "value_template", "payload_on", "payload_off", "state_on", "state_off", "device_class", "optimistic", "retain"},
	"sensor":        {"state_topic", "value_template", "device_class", "state_class", "unit_of_measurement", "options", "suggested_display_precision", "expire_after", "force_update"},
	"binary_sensor": {"state_topic", "value_template", "device_class", "payload_on", "payload_off", "expire_after", "force_update", "off_delay"},
}

// deviceClasses: the enums of the platforms we use (update/__init__.py, button, switch, binary_sensor, sensor).
var deviceClasses = map[string][]string{
	"update":        {"firmware"},
	"button":        {"identify", "restart", "update"},
	"switch":        {"outlet", "switch"},
	"binary_sensor": {"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window"},
	"sensor":        {"enum", "timestamp", "duration", "data_size", "data_rate", "signal_strength", "battery"},
}

// checkDiscovery checks one discovery message and returns the unique ids it declares by domain.
func checkDiscovery(t *testing.T, in Instance, m Message) map[string][]string {
	t.Helper()
	errorf := func(rule, format string, args ...any) {
		t.Helper()
		t.Errorf("%s: rule %q: %s", m.Topic, rule, fmt.Sprintf(format, args...))
	}
	// Topic: <prefix>/device/<object_id>/config, ids [a-zA-Z0-9_-]+.
	parts := strings.Split(m.Topic, "/")
	if len(parts) != 4 || parts[0] != in.DiscoveryPrefix || parts[1] != "device" || parts[3] != "config" {
		errorf("topic <prefix>/device/<object_id>/config", "bad shape")
	} else if !idCharset.MatchString(parts[2]) {
		errorf("ids match [a-zA-Z0-9_-]+", "object id %q", parts[2])
	}
	if !strings.Contains(m.Topic, ObjectID(in.BaseTopic)) {
		errorf("object ids include the base topic", "topic %q", m.Topic)
	}
	// Payload: UTF-8, a JSON object.
	if !utf8.Valid(m.Payload) {
		errorf("payload must be UTF-8", "invalid")
	}
	var root map[string]any
	if err := json.Unmarshal(m.Payload, &root); err != nil {
		errorf("payload must be a JSON object", "%v", err)
		return nil
	}
	walkNoNull(t, m.Topic, "", root)
	for k := range root {
		if !slices.Contains(rootKeys, k) {
			errorf("allowed root keys", "root key %q", k)
		}
	}
	if _, ok := root["~"]; ok {
		errorf("~ at the root is E", "present")
	}
	for _, k := range []string{"dev", "o", "cmps"} {
		if _, ok := root[k]; !ok {
			errorf("dev, o and cmps are required", "missing %q", k)
		}
	}
	// device
	dev, _ := root["dev"].(map[string]any)
	for k, v := range dev {
		if !slices.Contains(deviceKeys, k) {
			errorf("device is PREVENT_EXTRA", "device key %q", k)
		}
		if k != "identifiers" && k != "connections" {
			if _, ok := v.(string); !ok {
				errorf("cv.string", "device.%s is %T", k, v)
			}
		}
	}
	ids, _ := dev["identifiers"].([]any)
	if len(ids) == 0 {
		errorf("device needs identifiers or connections", "no identifiers")
	}
	for _, id := range ids {
		s, ok := id.(string)
		if !ok || !strings.Contains(s, in.BaseTopic) {
			errorf("identifiers include the base topic", "%v", id)
		}
	}
	if cu, ok := dev["configuration_url"].(string); ok && !isHTTPURL(cu) {
		errorf("configuration_url http(s)", "%q", cu)
	}
	// origin
	o, _ := root["o"].(map[string]any)
	if name, _ := o["name"].(string); name != "otabridge" {
		errorf("origin name required", "name %v", o["name"])
	}
	for k, v := range o {
		if !slices.Contains(originKeys, k) {
			errorf("origin is PREVENT_EXTRA", "origin key %q", k)
		}
		if _, ok := v.(string); !ok {
			errorf("cv.string", "origin.%s is %T", k, v)
		}
	}
	if u, ok := o["support_url"].(string); ok && !isHTTPURL(u) {
		errorf("support_url is a URL", "%q", u)
	}
	// components
	uids := map[string][]string{}
	cmps, _ := root["cmps"].(map[string]any)
	if len(cmps) == 0 {
		errorf("cmps non-empty", "empty")
	}
	for cid, raw := range cmps {
		c, ok := raw.(map[string]any)
		if !ok {
			errorf("cmps entries are objects", "%s is %T", cid, raw)
			continue
		}
		where := "cmps." + cid
		p, _ := c["p"].(string)
		if !slices.Contains(supportedComponents, p) {
			errorf("each cmps entry needs a supported p", "%s.p = %v", where, c["p"])
			continue
		}
		uid, _ := c["unique_id"].(string)
		if uid == "" {
			errorf("any key besides p makes unique_id required", "%s has no unique_id", where)
		} else {
			if !strings.Contains(uid, ObjectID(in.BaseTopic)) {
				errorf("unique ids include the base topic", "%s: %q", where, uid)
			}
			uids[p] = append(uids[p], uid)
		}
		for k := range c {
			if !slices.Contains(commonEntityKeys, k) && !slices.Contains(platformKeys[p], k) {
				errorf("only schema keys", "%s key %q not in the %s schema", where, k, p)
			}
		}
		if _, ok := c["object_id"]; ok {
			errorf("object_id is dead: use default_entity_id", "%s", where)
		}
		if de, ok := c["default_entity_id"].(string); !ok || !regexp.MustCompile(`^`+p+`\.[a-z0-9_]+$`).MatchString(de) {
			errorf("default_entity_id <domain>.<id>", "%s: %v", where, c["default_entity_id"])
		}
		if _, ok := c["availability_topic"]; ok {
			if _, ok2 := c["availability"]; ok2 {
				errorf("availability_topic and availability exclude each other", "%s", where)
			}
		}
		av, _ := c["availability"].([]any)
		switch {
		case p == "binary_sensor" && c["device_class"] == "connectivity" && c["state_topic"] == in.BridgeStateTopic():
			// The connection sensor reads the availability topic itself: with that availability it could
			// never show "offline".
			if _, ok := c["availability"]; ok {
				errorf("the connection sensor has no availability", "%s: %v", where, c["availability"])
			}
		case len(av) != 1:
			errorf("every entity: availability on <base>/bridge/state", "%s: %v", where, c["availability"])
		}
		for _, a := range av {
			am, _ := a.(map[string]any)
			for k := range am {
				if !slices.Contains(availabilityKeys, k) {
					errorf("availability entries: known keys", "%s availability key %q", where, k)
				}
			}
			if am["topic"] != in.BridgeStateTopic() || am["value_template"] != "{{ value_json.state }}" {
				errorf("availability on <base>/bridge/state with {{ value_json.state }}", "%s: %v", where, am)
			}
		}
		if ec, ok := c["entity_category"]; ok && ec != "config" && ec != "diagnostic" {
			errorf("entity_category config|diagnostic", "%s: %v", where, ec)
		}
		if (p == "sensor" || p == "binary_sensor") && c["entity_category"] == "config" {
			errorf("sensor entity_category config is E", "%s", where)
		}
		if ic, ok := c["icon"].(string); ok && !strings.Contains(ic, ":") {
			errorf("icon must contain ':'", "%s: %q", where, ic)
		}
		if ep, ok := c["entity_picture"].(string); ok && !isHTTPURL(ep) {
			errorf("entity_picture http(s)", "%s: %q", where, ep)
		}
		if dc, ok := c["device_class"]; ok {
			s, _ := dc.(string)
			if !slices.Contains(deviceClasses[p], s) {
				errorf("device_class from the platform enum", "%s: %v", where, dc)
			}
		}
		if q, ok := c["qos"]; ok {
			if f, _ := q.(float64); f != 0 && f != 1 && f != 2 {
				errorf("qos 0, 1 or 2", "%s: %v", where, q)
			}
		}
		for k, v := range c {
			if strings.HasSuffix(k, "topic") {
				s, _ := v.(string)
				if k == "command_topic" {
					checkPublishTopic(t, where+"."+k, s)
				} else {
					checkSubscribeTopic(t, where+"."+k, s)
				}
			}
		}
		switch p {
		case "update":
			if _, ok := c["state_topic"].(string); !ok {
				errorf("update: state_topic required", "%s", where)
			}
			if _, ok := c["command_topic"]; ok {
				if pi, _ := c["payload_install"].(string); pi == "" {
					errorf("update: command_topic needs payload_install", "%s", where)
				}
			}
		case "button", "switch":
			if _, ok := c["command_topic"].(string); !ok {
				errorf(p+": command_topic required", "%s", where)
			}
		case "sensor":
			_, hasOptions := c["options"]
			if hasOptions {
				if c["device_class"] != "enum" {
					errorf("sensor: options needs device_class enum", "%s", where)
				}
				if _, ok := c["state_class"]; ok {
					errorf("sensor: options excludes state_class", "%s", where)
				}
				if _, ok := c["unit_of_measurement"]; ok {
					errorf("sensor: options excludes unit", "%s", where)
				}
			}
			if c["device_class"] == "enum" && !hasOptions {
				errorf("sensor: enum needs options", "%s", where)
			}
		}
	}
	return uids
}

func checkPublishTopic(t *testing.T, where, topic string) {
	t.Helper()
	if topic == "" || strings.ContainsAny(topic, "+#") {
		t.Errorf("%s: rule %q: %q", where, "publish topics: no wildcards", topic)
	}
}

func checkSubscribeTopic(t *testing.T, where, topic string) {
	t.Helper()
	if topic == "" {
		t.Errorf("%s: empty topic", where)
		return
	}
	levels := strings.Split(topic, "/")
	for i, l := range levels {
		if strings.Contains(l, "+") && l != "+" {
			t.Errorf("%s: rule %q: %q", where, "+ must fill a whole level", topic)
		}
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			t.Errorf("%s: rule %q: %q", where, "# only last, after /", topic)
		}
	}
}

// walkNoNull fails on any JSON null: HA's cv.string rejects null, and nothing otabridge publishes in a
// discovery payload needs one.
func walkNoNull(t *testing.T, topic, path string, v any) {
	t.Helper()
	switch x := v.(type) {
	case nil:
		t.Errorf("%s: rule %q: null at %s", topic, "no nulls in strings", path)
	case map[string]any:
		for k, e := range x {
			walkNoNull(t, topic, path+"."+k, e)
		}
	case []any:
		for i, e := range x {
			walkNoNull(t, topic, fmt.Sprintf("%s[%d]", path, i), e)
		}
	case string:
		if strings.Contains(path, "url") && x != "" {
			if u, err := url.Parse(x); err != nil || u.Host == "" {
				t.Errorf("%s: URL at %s is not absolute: %q", topic, path, x)
			}
		}
	}
}
