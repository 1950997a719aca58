// Package discovery owns the Home Assistant MQTT discovery payloads of otabridge: pure functions that turn a
// bridge instance and a device into device-based discovery messages (`<prefix>/device/<object_id>/config`
// with `dev`, `o` and `cmps`), the messages that remove them, and the JSON state payload of an update entity
// (`<base>/<friendly_name>/update`). It does no I/O and knows nothing of the bridge's types: the bridge
// copies what these functions need into the package's own input types.
//
// Key names: the root of a device discovery payload uses the documented short keys `dev`, `o`, `cmps`, and
// each component its platform key `p`; everything else uses HA's full key names (ha-mqtt-rules.md: inside
// `cmps` only the root abbreviation table applies, so full names are the safe choice).
package discovery

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// DefaultOriginURL is the origin support URL published in every discovery payload.
const DefaultOriginURL = "https://github.com/otabridge/otabridge"

// OTAStates are the values of the OTA state sensor, in the order of the engine's life cycle.
var OTAStates = []string{
	"idle", "available", "approval_pending", "scheduled", "queued",
	"updating", "waiting_reboot", "verifying", "failed",
}

// Instance identifies one running otabridge: its MQTT base topic, HA's discovery prefix and its version.
// Several instances (one per coordinator) can share one broker and one HA, so every object id and unique id
// built here includes the base topic.
type Instance struct {
	BaseTopic       string // e.g. "otabridge"
	DiscoveryPrefix string // e.g. "homeassistant"
	Version         string // otabridge version, published as origin and bridge sw_version
	OriginURL       string // default DefaultOriginURL
}

// Device is what discovery needs to know about one Zigbee device.
type Device struct {
	IEEE            string // "0x00124b0012345678"
	FriendlyName    string // topic name; default the IEEE string
	Manufacturer    string
	Model           string
	SWBuildID       string // shown as the device's sw_version
	HardwareVersion string // shown as hw_version; "" when unknown
}

// Message is one retained MQTT message to publish.
type Message struct {
	Topic   string
	Payload []byte // empty: remove the discovery item
}

// BridgeStateTopic is the bridge's availability topic (`<base>/bridge/state`).
func (in Instance) BridgeStateTopic() string { return in.BaseTopic + "/bridge/state" }

// BridgeInfoTopic is the bridge's info topic (`<base>/bridge/info`).
func (in Instance) BridgeInfoTopic() string { return in.BaseTopic + "/bridge/info" }

// RequestTopic is the topic of a bridge request (`<base>/bridge/request/<path>`).
func (in Instance) RequestTopic(path string) string { return in.BaseTopic + "/bridge/request/" + path }

// UpdateStateTopic is a device's update entity state topic (`<base>/<friendly_name>/update`).
func (in Instance) UpdateStateTopic(friendlyName string) string {
	return in.BaseTopic + "/" + friendlyName + "/update"
}

// OTAStateTopic is a device's full OTA state topic (`<base>/<friendly_name>/ota`).
func (in Instance) OTAStateTopic(friendlyName string) string {
	return in.BaseTopic + "/" + friendlyName + "/ota"
}

// BridgeIdentifier is the HA device identifier of the bridge itself (`<base>_bridge`).
func (in Instance) BridgeIdentifier() string { return in.BaseTopic + "_bridge" }

// DeviceIdentifier is the HA device identifier of a Zigbee device (`<base>_<ieee>`).
func (in Instance) DeviceIdentifier(ieee string) string { return in.BaseTopic + "_" + ieee }

// DeviceObjectID is the discovery object id of a device (`<base>_<ieee>`, reduced to [a-zA-Z0-9_-]).
func (in Instance) DeviceObjectID(ieee string) string { return ObjectID(in.BaseTopic + "_" + ieee) }

// BridgeObjectID is the discovery object id of the bridge (`<base>_bridge`, reduced to [a-zA-Z0-9_-]).
func (in Instance) BridgeObjectID() string { return ObjectID(in.BaseTopic + "_bridge") }

// DeviceConfigTopic is `<prefix>/device/<object_id>/config` of a device.
func (in Instance) DeviceConfigTopic(ieee string) string {
	return in.DiscoveryPrefix + "/device/" + in.DeviceObjectID(ieee) + "/config"
}

// BridgeConfigTopic is `<prefix>/device/<object_id>/config` of the bridge.
func (in Instance) BridgeConfigTopic() string {
	return in.DiscoveryPrefix + "/device/" + in.BridgeObjectID() + "/config"
}

// ObjectID reduces s to HA's id character set [a-zA-Z0-9_-]: every other byte becomes '_'.
func ObjectID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !isIDChar(c) {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// Slug turns s into the object part of an HA entity id: lower case [a-z0-9_], runs of other characters
// become one '_', no '_' at either end; "" gives "unnamed".
func Slug(s string) string {
	var b strings.Builder
	pendingSep := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if pendingSep && b.Len() > 0 {
				b.WriteByte('_')
			}
			pendingSep = false
			b.WriteRune(r)
			continue
		}
		pendingSep = true
	}
	if b.Len() == 0 {
		return "unnamed"
	}
	return b.String()
}

// availability is the one availability entry every entity carries: the bridge's state topic.
type availability struct {
	Topic         string `json:"topic"`
	ValueTemplate string `json:"value_template"`
}

func (in Instance) availability() []availability {
	return []availability{{Topic: in.BridgeStateTopic(), ValueTemplate: "{{ value_json.state }}"}}
}

type origin struct {
	Name       string `json:"name"`
	SWVersion  string `json:"sw_version,omitempty"`
	SupportURL string `json:"support_url,omitempty"`
}

func (in Instance) origin() origin {
	u := in.OriginURL
	if u == "" {
		u = DefaultOriginURL
	}
	if !isHTTPURL(u) {
		u = ""
	}
	return origin{Name: "otabridge", SWVersion: in.Version, SupportURL: u}
}

type deviceBlock struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name,omitempty"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
	HWVersion    string   `json:"hw_version,omitempty"`
	ViaDevice    string   `json:"via_device,omitempty"`
}

// component is one entry of `cmps`. Every string field is omitted when empty, so nothing is ever null.
type component struct {
	Platform            string         `json:"p"`
	Name                string         `json:"name,omitempty"`
	UniqueID            string         `json:"unique_id"`
	DefaultEntityID     string         `json:"default_entity_id,omitempty"`
	DeviceClass         string         `json:"device_class,omitempty"`
	EntityCategory      string         `json:"entity_category,omitempty"`
	Icon                string         `json:"icon,omitempty"`
	StateTopic          string         `json:"state_topic,omitempty"`
	ValueTemplate       string         `json:"value_template,omitempty"`
	JSONAttributesTopic string         `json:"json_attributes_topic,omitempty"`
	CommandTopic        string         `json:"command_topic,omitempty"`
	PayloadInstall      string         `json:"payload_install,omitempty"`
	PayloadPress        string         `json:"payload_press,omitempty"`
	PayloadOn           string         `json:"payload_on,omitempty"`
	PayloadOff          string         `json:"payload_off,omitempty"`
	StateOn             string         `json:"state_on,omitempty"`
	StateOff            string         `json:"state_off,omitempty"`
	Options             []string       `json:"options,omitempty"`
	StateClass          string         `json:"state_class,omitempty"`
	DisplayPrecision    *int           `json:"display_precision,omitempty"`
	Availability        []availability `json:"availability,omitempty"` // only ConnectionState has none

}

type devicePayload struct {
	Device     deviceBlock          `json:"dev"`
	Origin     origin               `json:"o"`
	Components map[string]component `json:"cmps"`
}

func (in Instance) check() error {
	if in.BaseTopic == "" {
		return fmt.Errorf("discovery: empty base topic")
	}
	if strings.ContainsAny(in.BaseTopic, "+#") || !validTopicPart(in.BaseTopic) {
		return fmt.Errorf("discovery: base topic %q contains a wildcard, NUL or invalid UTF-8", in.BaseTopic)
	}
	if in.DiscoveryPrefix == "" || strings.ContainsAny(in.DiscoveryPrefix, "+#") {
		return fmt.Errorf("discovery: discovery prefix %q is empty or contains a wildcard", in.DiscoveryPrefix)
	}
	return nil
}

// Component ids inside a device's `cmps`.
const (
	ComponentUpdate   = "update"
	ComponentCheck    = "check"
	ComponentOTAState = "ota_state"
)

// Component ids inside the bridge's `cmps`.
const (
	ComponentConnectionState = "connection_state"
	ComponentActiveTransfers = "active_transfers"
	ComponentQueueLength     = "queue_length"
	ComponentCheckAll        = "check_all"
	ComponentPermitJoin      = "permit_join"
	ComponentStickHeld       = "stick_held"
)

// DeviceConfig builds the device-based discovery message of one Zigbee device: an update entity, a
// "Check for update" button and an "OTA state" enum sensor, linked to the bridge by via_device.
func (in Instance) DeviceConfig(d Device) (Message, error) {
	if err := in.check(); err != nil {
		return Message{}, err
	}
	if d.IEEE == "" {
		return Message{}, fmt.Errorf("discovery: device without IEEE address")
	}
	fn := d.FriendlyName
	if fn == "" {
		fn = d.IEEE
	}
	if strings.ContainsAny(fn, "+#") {
		return Message{}, fmt.Errorf("discovery: friendly name %q of %s contains a wildcard", fn, d.IEEE)
	}
	if !validTopicPart(fn) || !validTopicPart(d.IEEE) {
		return Message{}, fmt.Errorf("discovery: friendly name %q of %s is not a valid topic level", fn, d.IEEE)
	}
	idPayload := idJSON(d.IEEE)
	uid := ObjectID(in.BaseTopic) + "_" + d.IEEE
	slug := Slug(fn)
	precision := 1
	avail := in.availability()
	p := devicePayload{
		Device: deviceBlock{
			Identifiers:  []string{in.DeviceIdentifier(d.IEEE)},
			Name:         fn,
			Manufacturer: d.Manufacturer,
			Model:        d.Model,
			SWVersion:    d.SWBuildID,
			HWVersion:    d.HardwareVersion,
			ViaDevice:    in.BridgeIdentifier(),
		},
		Origin: in.origin(),
		Components: map[string]component{
			ComponentUpdate: {
				Platform:            "update",
				Name:                "Firmware",
				UniqueID:            uid + "_update",
				DefaultEntityID:     "update." + slug + "_firmware",
				DeviceClass:         "firmware",
				EntityCategory:      "config",
				StateTopic:          in.UpdateStateTopic(fn),
				JSONAttributesTopic: in.OTAStateTopic(fn),
				CommandTopic:        in.RequestTopic("device/ota_update/update"),
				PayloadInstall:      idPayload,
				DisplayPrecision:    &precision,
				Availability:        avail,
			},
			ComponentCheck: {
				Platform:        "button",
				Name:            "Check for update",
				UniqueID:        uid + "_check",
				DefaultEntityID: "button." + slug + "_check_for_update",
				EntityCategory:  "config",
				Icon:            "mdi:update",
				CommandTopic:    in.RequestTopic("device/ota_update/check"),
				PayloadPress:    idPayload,
				Availability:    avail,
			},
			ComponentOTAState: {
				Platform:        "sensor",
				Name:            "OTA state",
				UniqueID:        uid + "_ota_state",
				DefaultEntityID: "sensor." + slug + "_ota_state",
				DeviceClass:     "enum",
				Options:         append([]string(nil), OTAStates...),
				EntityCategory:  "diagnostic",
				Icon:            "mdi:progress-download",
				StateTopic:      in.OTAStateTopic(fn),
				ValueTemplate:   "{{ value_json.state }}",
				// The full OTA state (progress, rate, ETA, queue position, last error, versions) as attributes.
				JSONAttributesTopic: in.OTAStateTopic(fn),
				Availability:        avail,
			},
		},
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Message{}, fmt.Errorf("discovery: encode device %s: %w", d.IEEE, err)
	}
	return Message{Topic: in.DeviceConfigTopic(d.IEEE), Payload: b}, nil
}

// RemoveDevice is the message that deletes a device's discovery config: its topic with an empty payload.
func (in Instance) RemoveDevice(ieee string) Message {
	return Message{Topic: in.DeviceConfigTopic(ieee)}
}

// BridgeStickTopic is `<base>/bridge/stick`: whether otabridge holds the Zigbee stick, since when, how long.
func (in Instance) BridgeStickTopic() string { return in.BaseTopic + "/bridge/stick" }

// BridgeConfig builds the device-based discovery message of the bridge itself: a connectivity binary sensor
// (on while otabridge is online, off from its last will; the only entity without availability), active
// transfers, queue length, a "Check all" button, a permit-join switch and whether it holds the stick.
func (in Instance) BridgeConfig() (Message, error) {
	if err := in.check(); err != nil {
		return Message{}, err
	}
	uid := ObjectID(in.BaseTopic) + "_bridge"
	slug := Slug(in.BaseTopic) + "_bridge"
	name := "otabridge bridge"
	if in.BaseTopic != "otabridge" {
		name += " (" + in.BaseTopic + ")"
	}
	avail := in.availability()
	info := in.BridgeInfoTopic()
	p := devicePayload{
		Device: deviceBlock{
			Identifiers:  []string{in.BridgeIdentifier()},
			Name:         name,
			Manufacturer: "otabridge",
			Model:        "otabridge",
			SWVersion:    in.Version,
		},
		Origin: in.origin(),
		Components: map[string]component{
			ComponentConnectionState: {
				Platform:        "binary_sensor",
				Name:            "Connection state",
				UniqueID:        uid + "_connection_state",
				DefaultEntityID: "binary_sensor." + slug + "_connection_state",
				DeviceClass:     "connectivity",
				EntityCategory:  "diagnostic",
				StateTopic:      in.BridgeStateTopic(),
				ValueTemplate:   "{{ value_json.state }}",
				PayloadOn:       "online",
				PayloadOff:      "offline",
				// No availability: it would be the same topic, and the sensor could never show "offline"
				// (HA would make it unavailable instead). The last will sets it off.
			},
			ComponentActiveTransfers: {
				Platform:        "sensor",
				Name:            "Active transfers",
				UniqueID:        uid + "_active_transfers",
				DefaultEntityID: "sensor." + slug + "_active_transfers",
				EntityCategory:  "diagnostic",
				Icon:            "mdi:download-network",
				StateClass:      "measurement",
				StateTopic:      info,
				ValueTemplate:   "{{ value_json.active_transfers }}",
				Availability:    avail,
			},
			ComponentQueueLength: {
				Platform:        "sensor",
				Name:            "Queue length",
				UniqueID:        uid + "_queue_length",
				DefaultEntityID: "sensor." + slug + "_queue_length",
				EntityCategory:  "diagnostic",
				Icon:            "mdi:tray-full",
				StateClass:      "measurement",
				StateTopic:      info,
				ValueTemplate:   "{{ value_json.queue_length }}",
				Availability:    avail,
			},
			ComponentCheckAll: {
				Platform:        "button",
				Name:            "Check all for updates",
				UniqueID:        uid + "_check_all",
				DefaultEntityID: "button." + slug + "_check_all",
				EntityCategory:  "config",
				Icon:            "mdi:update",
				CommandTopic:    in.RequestTopic("ota/check_all"),
				PayloadPress:    "{}",
				Availability:    avail,
			},
			ComponentPermitJoin: {
				Platform:        "switch",
				Name:            "Permit join",
				UniqueID:        uid + "_permit_join",
				DefaultEntityID: "switch." + slug + "_permit_join",
				EntityCategory:  "config",
				Icon:            "mdi:human-greeting-proximity",
				CommandTopic:    in.RequestTopic("permit_join"),
				PayloadOn:       `{"time":254}`,
				PayloadOff:      `{"time":0}`,
				StateTopic:      info,
				ValueTemplate:   "{{ 'ON' if value_json.permit_join else 'OFF' }}",
				StateOn:         "ON",
				StateOff:        "OFF",
				Availability:    avail,
			},
			ComponentStickHeld: {
				Platform:            "binary_sensor",
				Name:                "Holds the Zigbee stick",
				UniqueID:            uid + "_stick_held",
				DefaultEntityID:     "binary_sensor." + slug + "_stick_held",
				EntityCategory:      "diagnostic",
				Icon:                "mdi:usb-port",
				StateTopic:          in.BridgeStickTopic(),
				ValueTemplate:       "{{ 'ON' if value_json.held else 'OFF' }}",
				PayloadOn:           "ON",
				PayloadOff:          "OFF",
				JSONAttributesTopic: in.BridgeStickTopic(),
				Availability:        avail,
			},
		},
	}
	b, err := json.Marshal(p)
	if err != nil {
		return Message{}, fmt.Errorf("discovery: encode bridge: %w", err)
	}
	return Message{Topic: in.BridgeConfigTopic(), Payload: b}, nil
}

// RemoveBridge is the message that deletes the bridge's discovery config.
func (in Instance) RemoveBridge() Message { return Message{Topic: in.BridgeConfigTopic()} }

// validTopicPart reports whether s can be part of an MQTT topic: valid UTF-8 without U+0000.
func validTopicPart(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func idJSON(ieee string) string {
	b, _ := json.Marshal(struct {
		ID string `json:"id"`
	}{ieee}) // a struct of one string always encodes
	return string(b)
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "http" || u.Scheme == "https"
}

// MaxReleaseSummary is the longest release_summary HA keeps (characters); longer ones are cut here.
const MaxReleaseSummary = 255

// UpdateState is the state of a device's update entity.
type UpdateState struct {
	InstalledVersion string // "" when unknown: the key is left out
	LatestVersion    string // "" when nothing is available: published equal to InstalledVersion
	InProgress       bool
	// Percentage is the transfer progress 0..100 while InProgress; nil (or !InProgress) publishes null.
	Percentage     *float64
	ReleaseSummary string // cut to MaxReleaseSummary characters
	ReleaseURL     string // published only when it is an absolute http(s) URL
	Title          string
}

// updatePayload has exactly HA's MQTT_JSON_UPDATE_SCHEMA keys; update_percentage is always present.
type updatePayload struct {
	InstalledVersion string   `json:"installed_version,omitempty"`
	LatestVersion    string   `json:"latest_version,omitempty"`
	InProgress       bool     `json:"in_progress"`
	UpdatePercentage *float64 `json:"update_percentage"`
	ReleaseSummary   string   `json:"release_summary,omitempty"`
	ReleaseURL       string   `json:"release_url,omitempty"`
	Title            string   `json:"title,omitempty"`
}

// UpdatePayload builds the JSON for `<base>/<friendly_name>/update`: only installed_version, latest_version
// (equal to installed when nothing is available), in_progress, update_percentage (a number 0..100 while
// updating, null otherwise), release_summary (≤ 255 characters), release_url (absolute http(s) only) and
// title. A string that is unknown is left out, never null; invalid UTF-8 is repaired.
func UpdatePayload(s UpdateState) []byte {
	p := updatePayload{
		InstalledVersion: validString(s.InstalledVersion),
		LatestVersion:    validString(s.LatestVersion),
		InProgress:       s.InProgress,
		ReleaseSummary:   truncateRunes(validString(s.ReleaseSummary), MaxReleaseSummary),
		Title:            validString(s.Title),
	}
	if p.LatestVersion == "" {
		p.LatestVersion = p.InstalledVersion
	}
	if isHTTPURL(s.ReleaseURL) && utf8.ValidString(s.ReleaseURL) {
		p.ReleaseURL = s.ReleaseURL
	}
	if s.InProgress && s.Percentage != nil {
		v := RoundPercentage(*s.Percentage)
		p.UpdatePercentage = &v
	}
	b, _ := json.Marshal(p) // strings are valid UTF-8 and the float is finite: encoding cannot fail
	return b
}

// RoundPercentage is a progress percentage as published: within 0..100 (NaN is 0) with two decimals, enough
// for the update entity's display_precision 1.
func RoundPercentage(v float64) float64 {
	switch {
	case v != v: // NaN
		return 0
	case v < 0:
		return 0
	case v > 100:
		return 100
	}
	return float64(int64(v*100+0.5)) / 100
}

func validString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}
