package bridge

// The Home Assistant add-on mode: the Supervisor writes the user's add-on options to /data/options.json
// (names and types from addon/config.yaml) and offers the Mosquitto add-on's credentials as the "mqtt"
// service. This file turns both into a Config; addon/ holds only the manifest, no logic.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otabridge/otabridge/web"
	"github.com/otabridge/otabridge/zcl"
)

// Fixed places inside the add-on container.
const (
	// AddonDataDir is the add-on's persistent folder (/data): state, options.json, the health heartbeat.
	AddonDataDir = "/data"
	// AddonConfigDir is the add-on config folder (map: addon_config), which the user can edit from Home
	// Assistant: OTA files, local index files and the optional configuration file live there.
	AddonConfigDir = "/config"
	// AddonImagesFolder is where the user drops OTA files.
	AddonImagesFolder = AddonConfigDir + "/images"
	// AddonCacheDir holds downloaded index files and images (excluded from backups).
	AddonCacheDir = AddonDataDir + "/ota-cache"
	// AddonOptionsFile is where the Supervisor writes the options.
	AddonOptionsFile = AddonDataDir + "/options.json"
	// AddonConfigFile is an optional configuration file in the bridge's YAML format for the keys the add-on
	// options do not cover (the network to form, the simulated devices, engine tuning). The options win for
	// the keys they cover.
	AddonConfigFile = AddonConfigDir + "/otabridge.yaml"
	// SupervisorURL is the Supervisor API as seen from an add-on.
	SupervisorURL = "http://supervisor"
)

// Upper limits of the numeric options (the manifest's schema says the same).
const (
	addonMaxConcurrentMax = 8
	addonUpgradeDelayMax  = 86400 // seconds
)

// AddonOptions are the add-on's options as the Supervisor writes them to /data/options.json. The JSON names
// are the option names of addon/config.yaml; an optional option the user left out is the zero value.
type AddonOptions struct {
	RadioType   string `json:"radio_type"`            // ezsp or sim
	SerialPort  string `json:"serial_port,omitempty"` // /dev/serial/by-id/…; required for ezsp
	BaudRate    int    `json:"baud_rate"`
	FlowControl string `json:"flow_control"` // none, hardware or software

	Approval string `json:"approval"` // manual, auto or deny
	// The devices the "auto" approval policy serves without asking.
	AllowIEEE              []string `json:"allow_ieee"`
	AllowModels            []string `json:"allow_models"`
	AllowManufacturerCodes []string `json:"allow_manufacturer_codes"` // "0x115F" or "4447"
	MaxConcurrent          int      `json:"max_concurrent"`
	UpgradeDelay           int      `json:"upgrade_delay"` // seconds

	IndexURLs    []string `json:"index_urls"`    // remote zigbee-OTA index.json URLs
	LocalIndexes []string `json:"local_indexes"` // index files, relative to the add-on config folder

	// An external broker; empty: the Supervisor's MQTT service (the Mosquitto add-on).
	MQTTServer   string `json:"mqtt_server,omitempty"`
	MQTTUser     string `json:"mqtt_user,omitempty"`
	MQTTPassword string `json:"mqtt_password,omitempty"`
	BaseTopic    string `json:"base_topic"`

	LogLevel string `json:"log_level"`

	// Existing networks (existing.go, import.go, stickshare.go).
	StopAddon  string `json:"stop_addon,omitempty"`  // slug of the Zigbee2MQTT add-on to stop while otabridge holds the stick
	ImportFrom string `json:"import_from"`           // none, z2m or zha
	ImportPath string `json:"import_path,omitempty"` // e.g. /homeassistant/zigbee2mqtt or /homeassistant/zigbee.db
}

// DefaultAddonOptions returns the options of a fresh install: the `options` block of addon/config.yaml (a
// test keeps the two equal). An option missing from options.json keeps its default.
func DefaultAddonOptions() AddonOptions {
	return AddonOptions{
		RadioType:              "ezsp",
		BaudRate:               115200,
		FlowControl:            "none",
		Approval:               "manual",
		AllowIEEE:              []string{},
		AllowModels:            []string{},
		AllowManufacturerCodes: []string{},
		MaxConcurrent:          2,
		UpgradeDelay:           0,
		IndexURLs:              []string{},
		LocalIndexes:           []string{},
		BaseTopic:              "otabridge",
		LogLevel:               "info",
		ImportFrom:             "none",
	}
}

// LoadAddonOptions reads the options file the Supervisor wrote (normally /data/options.json).
func LoadAddonOptions(path string) (AddonOptions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return AddonOptions{}, fmt.Errorf("read add-on options: %w", err)
	}
	o, err := ParseAddonOptions(data)
	if err != nil {
		return AddonOptions{}, fmt.Errorf("add-on options %s: %w", path, err)
	}
	return o, nil
}

// ParseAddonOptions decodes an options.json document over DefaultAddonOptions. It checks the JSON types
// only (the Supervisor writes a list option such as baud_rate as a string, so numbers are accepted as
// numbers or numeric strings); Apply checks the values. Unknown options are errors, so a manifest option
// without a mapping cannot go unnoticed.
func ParseAddonOptions(data []byte) (AddonOptions, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return AddonOptions{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if raw == nil {
		return AddonOptions{}, errors.New("not a JSON object: null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return AddonOptions{}, errors.New("not a JSON object: data after the object")
	}
	o := DefaultAddonOptions()
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first error reported does not depend on map order
	for _, key := range keys {
		v := raw[key]
		var err error
		switch key {
		case "radio_type":
			err = decodeOptString(v, &o.RadioType)
		case "serial_port":
			err = decodeOptString(v, &o.SerialPort)
		case "baud_rate":
			err = decodeOptInt(v, &o.BaudRate)
		case "flow_control":
			err = decodeOptString(v, &o.FlowControl)
		case "approval":
			err = decodeOptString(v, &o.Approval)
		case "allow_ieee":
			err = decodeOptStrings(v, &o.AllowIEEE)
		case "allow_models":
			err = decodeOptStrings(v, &o.AllowModels)
		case "allow_manufacturer_codes":
			err = decodeOptStrings(v, &o.AllowManufacturerCodes)
		case "max_concurrent":
			err = decodeOptInt(v, &o.MaxConcurrent)
		case "upgrade_delay":
			err = decodeOptInt(v, &o.UpgradeDelay)
		case "index_urls":
			err = decodeOptStrings(v, &o.IndexURLs)
		case "local_indexes":
			err = decodeOptStrings(v, &o.LocalIndexes)
		case "mqtt_server":
			err = decodeOptString(v, &o.MQTTServer)
		case "mqtt_user":
			err = decodeOptString(v, &o.MQTTUser)
		case "mqtt_password":
			err = decodeOptString(v, &o.MQTTPassword)
		case "base_topic":
			err = decodeOptString(v, &o.BaseTopic)
		case "log_level":
			err = decodeOptString(v, &o.LogLevel)
		case "stop_addon":
			err = decodeOptString(v, &o.StopAddon)
		case "import_from":
			err = decodeOptString(v, &o.ImportFrom)
		case "import_path":
			err = decodeOptString(v, &o.ImportPath)
		default:
			return AddonOptions{}, fmt.Errorf("option %s: unknown option", strconv.Quote(key))
		}
		if err != nil {
			return AddonOptions{}, fmt.Errorf("option %s: %w", key, err)
		}
	}
	return o, nil
}

// decodeOptString reads a JSON string (a number is taken as its text: the Supervisor passes a str option
// typed as 1234 through unchanged); null leaves the default.
func decodeOptString(v json.RawMessage, dst *string) error {
	if isJSONNull(v) {
		return nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		*dst = s
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err == nil {
		*dst = n.String()
		return nil
	}
	return fmt.Errorf("want a string, got %s", jsonKind(v))
}

// decodeOptInt reads a JSON integer or a string holding one (list-typed options arrive as strings);
// null leaves the default.
func decodeOptInt(v json.RawMessage, dst *int) error {
	if isJSONNull(v) {
		return nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		*dst = n
		return nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return fmt.Errorf("want an integer, got %s", jsonKind(v))
	}
	if f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return fmt.Errorf("%s is not an integer", strings.TrimSpace(string(v)))
	}
	*dst = int(f)
	return nil
}

// decodeOptStrings reads a JSON list of strings (numbers are taken as their decimal text: a manufacturer
// code typed as 4447); null leaves the default.
func decodeOptStrings(v json.RawMessage, dst *[]string) error {
	if isJSONNull(v) {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return fmt.Errorf("want a list, got %s", jsonKind(v))
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			out = append(out, s)
			continue
		}
		var n json.Number
		if err := json.Unmarshal(it, &n); err == nil {
			out = append(out, n.String())
			continue
		}
		return fmt.Errorf("item %d: want a string, got %s", i+1, jsonKind(it))
	}
	*dst = out
	return nil
}

func isJSONNull(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }

// jsonKind names the JSON type of v for error messages.
func jsonKind(v json.RawMessage) string {
	b := bytes.TrimSpace(v)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "a string"
	case '[':
		return "a list"
	case '{':
		return "an object"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// SupervisorMQTT is the Supervisor's "mqtt" service: the broker another add-on (normally Mosquitto)
// provides, with credentials made for add-ons.
type SupervisorMQTT struct {
	Addon    string `json:"addon"` // the providing add-on's slug, e.g. core_mosquitto
	Host     string `json:"host"`
	Port     int    `json:"port"`
	SSL      bool   `json:"ssl"`
	Username string `json:"username"`
	Password string `json:"password"`
	Protocol string `json:"protocol"` // MQTT protocol version, "3.1.1" or "3.1"
}

// ServerURL is the broker as an mqtt.server value: mqtts:// when the service says ssl, else mqtt://.
func (s SupervisorMQTT) ServerURL() string {
	scheme := "mqtt"
	if s.SSL {
		scheme = "mqtts"
	}
	return scheme + "://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// ErrNoSupervisorMQTT reports that the Supervisor has no MQTT service (yet): no add-on provides it, for
// example because the Mosquitto add-on is not installed or has not started yet.
var ErrNoSupervisorMQTT = errors.New("no MQTT service in the Supervisor")

// ErrSupervisorNotReady reports an answer of a Supervisor that cannot answer yet (it is starting: "System is
// not ready", or a 5xx): asking again later can succeed.
var ErrSupervisorNotReady = errors.New("the Supervisor is not ready")

// supervisorReplyLimit caps the size of a Supervisor reply that is read.
const supervisorReplyLimit = 1 << 20

// LookupSupervisorMQTT asks the Supervisor at baseURL (SupervisorURL inside an add-on) for its MQTT
// service, with the add-on's token (environment SUPERVISOR_TOKEN). It returns an error wrapping
// ErrNoSupervisorMQTT when the Supervisor answers that there is no such service, and another error for
// anything else (bad token, no access, transport failure, malformed reply).
func LookupSupervisorMQTT(ctx context.Context, client *http.Client, baseURL, token string) (*SupervisorMQTT, error) {
	if client == nil {
		client = http.DefaultClient
	}
	endpoint := strings.TrimRight(baseURL, "/") + "/services/mqtt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("supervisor MQTT service: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("supervisor MQTT service: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, supervisorReplyLimit))
	if err != nil {
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: read reply: %w", endpoint, err)
	}
	var reply struct {
		Result  string          `json:"result"`
		Message string          `json:"message"`
		Data    *SupervisorMQTT `json:"data"`
	}
	jsonErr := json.Unmarshal(body, &reply)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: %s: the Supervisor refused the token (SUPERVISOR_TOKEN missing or wrong)",
			endpoint, resp.Status)
	case resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: %s%s (a wrong SUPERVISOR_TOKEN, or the add-on does not declare services: mqtt:want)",
			endpoint, resp.Status, replyMessage(jsonErr, reply.Message))
	case resp.StatusCode == http.StatusBadRequest && jsonErr == nil && reply.Result == "error" &&
		strings.Contains(strings.ToLower(reply.Message), "not enabled"):
		// The Supervisor answers 400 {"result":"error","message":"Service not enabled"} when no add-on
		// provides the service (yet).
		return nil, fmt.Errorf("supervisor MQTT service: %w%s", ErrNoSupervisorMQTT, replyMessage(nil, reply.Message))
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode >= 500:
		// Any other 400 ("System is not ready" while the Supervisor starts) or a server error: not an answer
		// about the service.
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: %s%s: %w", endpoint, resp.Status,
			replyMessage(jsonErr, reply.Message), ErrSupervisorNotReady)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: %s%s", endpoint, resp.Status, replyMessage(jsonErr, reply.Message))
	case jsonErr != nil:
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: reply is not JSON: %w", endpoint, jsonErr)
	case reply.Result != "ok":
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: result %q%s", endpoint, reply.Result, replyMessage(nil, reply.Message))
	case reply.Data == nil:
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: reply has no data", endpoint)
	}
	s := reply.Data
	if s.Host == "" {
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: reply has no host", endpoint)
	}
	if s.Port <= 0 || s.Port > 65535 {
		return nil, fmt.Errorf("supervisor MQTT service: GET %s: port %d is not a TCP port", endpoint, s.Port)
	}
	return s, nil
}

func replyMessage(jsonErr error, msg string) string {
	if jsonErr != nil || msg == "" {
		return ""
	}
	return ": " + msg
}

// parseManufacturerCodeOption reads one allow_manufacturer_codes item: "0x" and 1 to 4 hex digits, or a
// decimal 0..65535 without leading zeros. It accepts exactly what the manifest's schema accepts, so the
// Supervisor's form never takes a value the add-on then refuses at start (bridge/addon_manifest_test.go).
func parseManufacturerCodeOption(s string) (uint16, bool) {
	if h, ok := strings.CutPrefix(s, "0x"); ok || strings.HasPrefix(s, "0X") {
		if !ok {
			h = s[2:]
		}
		if len(h) < 1 || len(h) > 4 {
			return 0, false
		}
		n, err := strconv.ParseUint(h, 16, 16)
		return uint16(n), err == nil
	}
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err == nil
}

// Apply maps the options onto cfg (normally DefaultConfig or the optional AddonConfigFile), with the
// add-on's fixed folders (data in /data, OTA files in /config/images, the cache in /data/ota-cache).
// mqtt is the Supervisor's MQTT service, nil when there is none. The broker is the user's mqtt_server with
// mqtt_user/mqtt_password when set; otherwise the service's host (mqtts:// when ssl) with the service's
// credentials, unless the user set mqtt_user (then mqtt_user/mqtt_password). Every error names the option
// and what is allowed; the result is validated as a whole, and cfg is left unchanged on any error.
func (o AddonOptions) Apply(cfg *Config, mqtt *SupervisorMQTT) error {
	c := *cfg // cfg changes only when every option is good
	if err := o.applyRadio(&c.Radio); err != nil {
		return err
	}
	if err := o.applyOTA(&c); err != nil {
		return err
	}
	if err := o.applyMQTT(&c.MQTT, mqtt); err != nil {
		return err
	}
	if lv := []string{"trace", "debug", "info", "warn", "error"}; !contains(lv, o.LogLevel) {
		return optionError("log_level", "%q is not allowed (want %s)", o.LogLevel, orList(lv))
	}
	c.Log.Level = o.LogLevel
	if err := o.applyExisting(&c.Existing); err != nil {
		return err
	}
	c.DataDir = AddonDataDir
	c.Images.Folder = AddonImagesFolder
	c.Images.CacheDir = AddonCacheDir
	// The web console is the ingress panel: on the add-on's ingress port, reachable by the Supervisor's
	// proxy only (web.Server refuses every other client), signed in by Home Assistant.
	c.Web.Ingress = true
	c.Web.Listen = fmt.Sprintf(":%d", web.IngressPort)
	if err := c.Validate(); err != nil {
		return fmt.Errorf("add-on options: %w", err)
	}
	*cfg = c
	return nil
}

// applyExisting maps stop_addon, import_from and import_path.
func (o AddonOptions) applyExisting(e *ExistingConfig) error {
	e.StopAddon = strings.TrimSpace(o.StopAddon)
	switch o.ImportFrom {
	case "none", "":
		if o.ImportPath != "" {
			return optionError("import_path", "set, but import_from is none")
		}
	case "z2m", "zha":
		if o.ImportPath == "" {
			return optionError("import_path", "required with import_from %s (e.g. /homeassistant/zigbee2mqtt or /homeassistant/zigbee.db)", o.ImportFrom)
		}
		e.Import = ImportConfig{Source: o.ImportFrom, Path: o.ImportPath}
	default:
		return optionError("import_from", "%q is not allowed (want none, z2m or zha)", o.ImportFrom)
	}
	return nil
}

func optionError(option, format string, args ...any) error {
	return fmt.Errorf("add-on option %s: %s", option, fmt.Sprintf(format, args...))
}

func (o AddonOptions) applyRadio(r *RadioConfig) error {
	if !contains(radioTypes, o.RadioType) {
		return optionError("radio_type", "%q is not allowed (want ezsp or sim)", o.RadioType)
	}
	port := strings.TrimSpace(o.SerialPort)
	if o.RadioType != "sim" && port == "" {
		return optionError("serial_port", "required for radio_type %s: pick the coordinator stick (e.g. /dev/serial/by-id/usb-…)", o.RadioType)
	}
	if port != "" && !strings.HasPrefix(port, "/dev/") {
		return optionError("serial_port", "%q is not allowed (want a device path under /dev/)", port)
	}
	if o.BaudRate < 1200 || o.BaudRate > 4000000 {
		return optionError("baud_rate", "%d is not allowed (want a baud rate such as 115200 or 460800)", o.BaudRate)
	}
	if fc := []string{"none", "hardware", "software"}; !contains(fc, o.FlowControl) {
		return optionError("flow_control", "%q is not allowed (want %s)", o.FlowControl, orList(fc))
	}
	r.Type = o.RadioType
	r.Port = port
	r.Baud = o.BaudRate
	r.FlowControl = o.FlowControl
	return nil
}

func (o AddonOptions) applyOTA(cfg *Config) error {
	if ap := []string{"manual", "auto", "deny"}; !contains(ap, o.Approval) {
		return optionError("approval", "%q is not allowed (want %s)", o.Approval, orList(ap))
	}
	ieees := make([]zcl.IEEE, 0, len(o.AllowIEEE))
	for i, s := range o.AllowIEEE {
		a, err := zcl.ParseIEEE(strings.TrimSpace(s))
		if err != nil {
			return optionError("allow_ieee", "item %d: %v", i+1, err)
		}
		ieees = append(ieees, a)
	}
	models := make([]string, 0, len(o.AllowModels))
	for i, m := range o.AllowModels {
		if strings.TrimSpace(m) == "" {
			return optionError("allow_models", "item %d is empty (want a model id as the device reports it, e.g. TRADFRI bulb E27 WS opal 980lm)", i+1)
		}
		models = append(models, m)
	}
	codes := make([]uint16, 0, len(o.AllowManufacturerCodes))
	for i, s := range o.AllowManufacturerCodes {
		n, ok := parseManufacturerCodeOption(s)
		if !ok {
			return optionError("allow_manufacturer_codes", "item %d: %q is not allowed (want a code such as 0x115F or 4447, at most 0xFFFF = 65535)", i+1, s)
		}
		codes = append(codes, n)
	}
	if o.MaxConcurrent < 1 || o.MaxConcurrent > addonMaxConcurrentMax {
		return optionError("max_concurrent", "%d is not allowed (want 1..%d transfers at once)", o.MaxConcurrent, addonMaxConcurrentMax)
	}
	if o.UpgradeDelay < 0 || o.UpgradeDelay > addonUpgradeDelayMax {
		return optionError("upgrade_delay", "%d is not allowed (want 0..%d seconds)", o.UpgradeDelay, addonUpgradeDelayMax)
	}
	indexes := make([]string, 0, len(o.LocalIndexes)+len(o.IndexURLs))
	for i, p := range o.LocalIndexes {
		p = strings.TrimSpace(p)
		if p == "" {
			return optionError("local_indexes", "item %d is empty (want a file in the add-on config folder, e.g. index.json)", i+1)
		}
		if strings.Contains(p, "://") {
			return optionError("local_indexes", "item %d: %q is a URL (put remote indexes in index_urls)", i+1, p)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(AddonConfigDir, p)
		}
		indexes = append(indexes, p)
	}
	for i, s := range o.IndexURLs {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return optionError("index_urls", "item %d: %q is not allowed (want an http:// or https:// URL of an index.json)", i+1, s)
		}
		indexes = append(indexes, u.String())
	}
	cfg.OTA.Approval = o.Approval
	cfg.OTA.Allow.IEEE = ieees
	cfg.OTA.Allow.Models = models
	cfg.OTA.Allow.ManufacturerCodes = codes
	cfg.OTA.MaxConcurrent = o.MaxConcurrent
	cfg.OTA.UpgradeDelay = time.Duration(o.UpgradeDelay) * time.Second
	cfg.Images.Indexes = indexes
	return nil
}

// ErrNoMQTTBroker is the error of Apply when there is neither an MQTT service nor an mqtt_server option.
var ErrNoMQTTBroker = errors.New("no MQTT broker: install the Mosquitto add-on or set mqtt_server")

func (o AddonOptions) applyMQTT(m *MQTTConfig, svc *SupervisorMQTT) error {
	if err := checkTopicRoot(o.BaseTopic); err != nil {
		return optionError("base_topic", "%v", err)
	}
	if m.ClientID == "" || m.ClientID == "otabridge-"+m.BaseTopic { // the derived default follows the topic
		m.ClientID = "otabridge-" + o.BaseTopic
	}
	m.BaseTopic = o.BaseTopic
	server := strings.TrimSpace(o.MQTTServer)
	if o.MQTTPassword != "" && o.MQTTUser == "" {
		return optionError("mqtt_password", "set mqtt_user too (a password alone is not sent)")
	}
	switch {
	case server != "":
		if _, _, err := ParseServerURL(server); err != nil {
			return optionError("mqtt_server", "%v", err)
		}
		m.Server = server
		m.Username, m.Password = o.MQTTUser, o.MQTTPassword
	case svc != nil:
		m.Server = svc.ServerURL()
		if _, _, err := ParseServerURL(m.Server); err != nil {
			return fmt.Errorf("supervisor MQTT service: host %q port %d: %w", svc.Host, svc.Port, err)
		}
		m.Username, m.Password = svc.Username, svc.Password
		if o.MQTTUser != "" {
			m.Username, m.Password = o.MQTTUser, o.MQTTPassword
		}
	default:
		return ErrNoMQTTBroker
	}
	m.PasswordFile = "" // the options or the service give the password
	return nil
}

// MQTTSource says where Apply takes the broker from, for the start-up log: "options", "supervisor service
// <addon slug>" or "none".
func (o AddonOptions) MQTTSource(svc *SupervisorMQTT) string {
	switch {
	case strings.TrimSpace(o.MQTTServer) != "":
		return "options"
	case svc != nil && svc.Addon != "":
		return "supervisor service " + svc.Addon
	case svc != nil:
		return "supervisor service"
	}
	return "none"
}
