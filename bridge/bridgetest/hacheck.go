package bridgetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// The checks below follow the shared reference sheet ha-mqtt-rules.md (Home Assistant's MQTT discovery and
// update-entity rules); each error says which rule a payload breaks.

// idRe is HA's character set of discovery ids (node_id, object_id) and the one otabridge keeps unique ids in.
var idRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// Root keys a device discovery payload may have (DEVICE_DISCOVERY_SCHEMA is PREVENT_EXTRA), long and short.
var deviceDiscoveryRootKeys = set("availability", "avty", "availability_mode", "avty_mode", "availability_template",
	"avty_tpl", "availability_topic", "avty_t", "payload_available", "pl_avail", "payload_not_available",
	"pl_not_avail", "device", "dev", "components", "cmps", "origin", "o", "state_topic", "stat_t",
	"command_topic", "cmd_t", "qos", "encoding", "e", "message_expiry_interval")

// Keys of the device block (PREVENT_EXTRA), long and short.
var deviceBlockKeys = set("identifiers", "ids", "connections", "cns", "name", "manufacturer", "mf", "model",
	"mdl", "model_id", "mdl_id", "hw_version", "hw", "sw_version", "sw", "suggested_area", "sa", "serial_number",
	"sn", "configuration_url", "cu", "via_device")

// Keys of the origin block (PREVENT_EXTRA), long and short.
var originKeys = set("name", "sw_version", "sw", "support_url", "url")

// Platforms otabridge publishes (all in HA's SUPPORTED_COMPONENTS).
var platforms = set("update", "button", "sensor", "binary_sensor", "switch")

// Keys of an update entity's JSON state (MQTT_JSON_UPDATE_SCHEMA, PREVENT_EXTRA).
var updateStateKeys = set("installed_version", "latest_version", "in_progress", "update_percentage",
	"release_summary", "release_url", "title", "entity_picture")

func set(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// DiscoveryConfig is a parsed device-based discovery message.
type DiscoveryConfig struct {
	Topic      string
	Root       map[string]any
	Device     map[string]any
	Origin     map[string]any
	Components map[string]map[string]any
}

// CheckDiscoveryConfig parses a device-based discovery message and checks it against HA's rules: topic
// `<prefix>/device/<object_id>/config` with an id of [a-zA-Z0-9_-]; a UTF-8 JSON object with only the
// allowed root keys; dev (identifiers or connections, known keys), o (name, known keys) and cmps present;
// every component with a supported p and a unique_id of [a-zA-Z0-9_-], a default_entity_id of its domain and
// no object_id; availability on `<base>/bridge/state`; the per-platform requirements (update: state_topic,
// command_topic with payload_install, device_class firmware; button and switch: command_topic; sensor and
// binary_sensor: no entity_category config; an enum sensor: options and no state_class or unit); topics
// without wildcards where HA publishes.
func CheckDiscoveryConfig(prefix, base, topic string, payload []byte) (DiscoveryConfig, error) {
	dc := DiscoveryConfig{Topic: topic}
	levels := strings.Split(topic, "/")
	if len(levels) != 4 || levels[0] != prefix || levels[1] != "device" || levels[3] != "config" {
		return dc, fmt.Errorf("topic %q is not %s/device/<object_id>/config", topic, prefix)
	}
	if !idRe.MatchString(levels[2]) {
		return dc, fmt.Errorf("topic %q: object id %q is not [a-zA-Z0-9_-]+", topic, levels[2])
	}
	if !utf8.Valid(payload) {
		return dc, fmt.Errorf("%s: payload is not UTF-8", topic)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&dc.Root); err != nil || dc.Root == nil {
		return dc, fmt.Errorf("%s: payload is not a JSON object: %v", topic, err)
	}
	for k := range dc.Root {
		if k == "~" {
			return dc, fmt.Errorf("%s: '~' at the root of a device discovery payload", topic)
		}
		if !deviceDiscoveryRootKeys[k] {
			return dc, fmt.Errorf("%s: root key %q is not allowed in device discovery", topic, k)
		}
	}
	var ok bool
	if dc.Device, ok = dc.Root["dev"].(map[string]any); !ok {
		return dc, fmt.Errorf("%s: dev missing or not an object", topic)
	}
	if dc.Origin, ok = dc.Root["o"].(map[string]any); !ok {
		return dc, fmt.Errorf("%s: o missing or not an object", topic)
	}
	cmps, ok := dc.Root["cmps"].(map[string]any)
	if !ok || len(cmps) == 0 {
		return dc, fmt.Errorf("%s: cmps missing, empty or not an object", topic)
	}
	for k, v := range dc.Device {
		if !deviceBlockKeys[k] {
			return dc, fmt.Errorf("%s: dev key %q is not allowed", topic, k)
		}
		if v == nil {
			return dc, fmt.Errorf("%s: dev key %q is null", topic, k)
		}
	}
	ids, _ := dc.Device["identifiers"].([]any)
	if len(ids) == 0 && dc.Device["connections"] == nil {
		return dc, fmt.Errorf("%s: dev has neither identifiers nor connections", topic)
	}
	for k := range dc.Origin {
		if !originKeys[k] {
			return dc, fmt.Errorf("%s: o key %q is not allowed", topic, k)
		}
	}
	if name, _ := dc.Origin["name"].(string); name == "" {
		return dc, fmt.Errorf("%s: o.name missing", topic)
	}
	dc.Components = map[string]map[string]any{}
	for id, raw := range cmps {
		c, ok := raw.(map[string]any)
		if !ok {
			return dc, fmt.Errorf("%s: cmps.%s is not an object", topic, id)
		}
		if err := checkComponent(base, c); err != nil {
			return dc, fmt.Errorf("%s: cmps.%s: %w", topic, id, err)
		}
		dc.Components[id] = c
	}
	return dc, nil
}

func checkComponent(base string, c map[string]any) error {
	p, _ := c["p"].(string)
	if !platforms[p] {
		return fmt.Errorf("p %q is missing or not a supported platform", c["p"])
	}
	uid, _ := c["unique_id"].(string)
	if uid == "" {
		return fmt.Errorf("unique_id missing")
	}
	if !idRe.MatchString(uid) {
		return fmt.Errorf("unique_id %q is not [a-zA-Z0-9_-]+", uid)
	}
	if !strings.Contains(uid, base) {
		return fmt.Errorf("unique_id %q does not include the base topic %q", uid, base)
	}
	if _, bad := c["object_id"]; bad {
		return fmt.Errorf("object_id is dead since HA 2026.4; use default_entity_id")
	}
	dei, _ := c["default_entity_id"].(string)
	domain, obj, found := strings.Cut(dei, ".")
	if !found || domain != p || !regexp.MustCompile(`^[a-z0-9_]+$`).MatchString(obj) {
		return fmt.Errorf("default_entity_id %q is not %s.<object_id>", dei, p)
	}
	for k, v := range c {
		if v == nil {
			return fmt.Errorf("key %q is null", k)
		}
		if strings.HasSuffix(k, "topic") {
			s, ok := v.(string)
			if !ok || s == "" || strings.ContainsAny(s, "+#") {
				return fmt.Errorf("%s %v is not a topic without wildcards", k, v)
			}
		}
	}
	if ec, ok := c["entity_category"]; ok && ec != "config" && ec != "diagnostic" {
		return fmt.Errorf("entity_category %v is not config or diagnostic", ec)
	}
	if icon, ok := c["icon"].(string); ok && !strings.Contains(icon, ":") {
		return fmt.Errorf("icon %q has no ':'", icon)
	}
	avail, _ := c["availability"].([]any)
	connection := p == "binary_sensor" && c["device_class"] == "connectivity" && c["state_topic"] == base+"/bridge/state"
	switch {
	case connection && len(avail) > 0:
		return fmt.Errorf("the connection sensor is made unavailable by the topic it reads: it can never show offline")
	case !connection && len(avail) == 0:
		return fmt.Errorf("no availability")
	}
	for _, a := range avail {
		am, _ := a.(map[string]any)
		if am["topic"] != base+"/bridge/state" {
			return fmt.Errorf("availability topic %v is not %s/bridge/state", am["topic"], base)
		}
	}
	if _, both := c["availability_topic"]; both {
		return fmt.Errorf("availability and availability_topic together")
	}
	switch p {
	case "update":
		if _, ok := c["state_topic"].(string); !ok {
			return fmt.Errorf("update without state_topic")
		}
		if _, ok := c["command_topic"].(string); ok {
			if _, ok := c["payload_install"].(string); !ok {
				return fmt.Errorf("update with command_topic but no payload_install")
			}
		}
		if dc, ok := c["device_class"]; ok && dc != "firmware" {
			return fmt.Errorf("update device_class %v is not firmware", dc)
		}
	case "button", "switch":
		if _, ok := c["command_topic"].(string); !ok {
			return fmt.Errorf("%s without command_topic", p)
		}
		if p == "button" {
			if dc, ok := c["device_class"]; ok && dc != "identify" && dc != "restart" && dc != "update" {
				return fmt.Errorf("button device_class %v", dc)
			}
		}
	case "sensor", "binary_sensor":
		if c["entity_category"] == "config" {
			return fmt.Errorf("%s with entity_category config cannot be added", p)
		}
		if _, ok := c["options"]; ok {
			if c["device_class"] != "enum" {
				return fmt.Errorf("sensor options without device_class enum")
			}
			if _, ok := c["state_class"]; ok {
				return fmt.Errorf("enum sensor with state_class")
			}
			if _, ok := c["unit_of_measurement"]; ok {
				return fmt.Errorf("enum sensor with a unit")
			}
		}
	}
	return nil
}

// UniqueIDsUnique checks that no unique_id is used twice in one entity domain across configs.
func UniqueIDsUnique(configs []DiscoveryConfig) error {
	seen := map[string]string{}
	for _, dc := range configs {
		ids := make([]string, 0, len(dc.Components))
		for id := range dc.Components {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			c := dc.Components[id]
			key := c["p"].(string) + "/" + c["unique_id"].(string)
			if prev, dup := seen[key]; dup {
				return fmt.Errorf("unique_id %s used by %s and %s", key, prev, dc.Topic+"#"+id)
			}
			seen[key] = dc.Topic + "#" + id
		}
	}
	return nil
}

// UpdateState is a parsed `<base>/<name>/update` payload.
type UpdateState struct {
	InstalledVersion string   `json:"installed_version"`
	LatestVersion    string   `json:"latest_version"`
	InProgress       bool     `json:"in_progress"`
	UpdatePercentage *float64 `json:"update_percentage"`
	ReleaseSummary   string   `json:"release_summary"`
	ReleaseURL       string   `json:"release_url"`
	Title            string   `json:"title"`
}

// fileVersionRe is a ZCL file version as otabridge publishes it: 0x and 8 lower-case hex digits.
var fileVersionRe = regexp.MustCompile(`^0x[0-9a-f]{8}$`)

// CheckUpdateState checks an update entity's JSON state against MQTT_JSON_UPDATE_SCHEMA: a JSON object with
// only the schema's keys; strings are strings (never null); in_progress a boolean; update_percentage null
// or a number 0..100; release_url an absolute http(s) URL; latest_version present. otabridge adds: no null
// but update_percentage, update_percentage only while in_progress, and both versions as 0x%08x.
func CheckUpdateState(payload []byte) (UpdateState, error) {
	var us UpdateState
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return us, fmt.Errorf("update state %s is not a JSON object", payload)
	}
	for k, v := range raw {
		if !updateStateKeys[k] {
			return us, fmt.Errorf("update state %s: key %q is not in HA's schema", payload, k)
		}
		switch k {
		case "update_percentage":
			if v == nil {
				continue
			}
			f, ok := v.(float64)
			if !ok || f < 0 || f > 100 {
				return us, fmt.Errorf("update state %s: update_percentage %v is not null or 0..100", payload, v)
			}
		case "in_progress":
			if _, ok := v.(bool); !ok {
				return us, fmt.Errorf("update state %s: in_progress %v is not a boolean", payload, v)
			}
		default:
			if _, ok := v.(string); !ok {
				return us, fmt.Errorf("update state %s: %s is %v, not a string", payload, k, v)
			}
		}
	}
	if err := json.Unmarshal(payload, &us); err != nil {
		return us, fmt.Errorf("update state %s: %w", payload, err)
	}
	if us.LatestVersion == "" || us.InstalledVersion == "" {
		return us, fmt.Errorf("update state %s: installed_version or latest_version missing", payload)
	}
	// Both in the one format whose order HA's AwesomeVersion gets right for every file version.
	if !fileVersionRe.MatchString(us.InstalledVersion) || !fileVersionRe.MatchString(us.LatestVersion) {
		return us, fmt.Errorf("update state %s: installed_version and latest_version must both be 0x%%08x", payload)
	}
	if us.ReleaseURL != "" {
		u, err := url.Parse(us.ReleaseURL)
		if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
			return us, fmt.Errorf("update state %s: release_url is not an absolute http(s) URL", payload)
		}
	}
	if us.UpdatePercentage != nil && !us.InProgress {
		return us, fmt.Errorf("update state %s: update_percentage while not in progress", payload)
	}
	return us, nil
}

// CheckAllUpdateStates checks every `<base>/<name>/update` message r received and returns the first error.
func CheckAllUpdateStates(r *Recorder, base string) error {
	for _, m := range r.MessagesWithPrefix(base+"/", 0) {
		if !strings.HasSuffix(m.Topic, "/update") || strings.HasPrefix(m.Topic, base+"/bridge/") || len(m.Payload) == 0 {
			continue
		}
		if _, err := CheckUpdateState(m.Payload); err != nil {
			return fmt.Errorf("%s (#%d): %w", m.Topic, m.Seq, err)
		}
	}
	return nil
}
