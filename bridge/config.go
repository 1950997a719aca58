// Package bridge owns the running bridge between the Zigbee radio, the OTA engine and MQTT: its
// configuration (file + environment), the MQTT client (and the embedded broker), crash-safe persistence of
// its state, the device registry and the interview that reads each device's Basic and OTA attributes, and
// the wiring of radio events, engine output and MQTT requests. Byte encoding is left to zcl/, OTA logic to
// ota/, and Home Assistant payloads to discovery/.
package bridge

import (
	"bytes"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/redact"
	"github.com/otabridge/otabridge/web"
)

// Config is the bridge's configuration: the documented config.yaml, overridden by OTABRIDGE_* environment
// variables. Load it with LoadConfig.
type Config struct {
	Radio   RadioConfig      `yaml:"radio"`
	MQTT    MQTTConfig       `yaml:"mqtt"`
	OTA     ota.EngineConfig `yaml:"ota"`
	Images  ota.StoreConfig  `yaml:"images"`
	Web     web.Config       `yaml:"web"`
	DataDir string           `yaml:"data_dir"`
	Log     LogConfig        `yaml:"log"`
	// Existing is about a network another host (Zigbee2MQTT, ZHA) formed (existing.go, import.go).
	Existing ExistingConfig `yaml:"existing"`
}

// ExistingConfig is the `existing` section.
type ExistingConfig struct {
	Import ImportConfig `yaml:"import"`
	// StopAddon is the slug of the Home Assistant add-on that owns the stick otherwise (Zigbee2MQTT, e.g.
	// 45df7312_zigbee2mqtt): otabridge stops it through the Supervisor before opening the stick and starts it
	// again when the OTA queue is done or otabridge stops ("" = off). Add-on only.
	StopAddon string `yaml:"stop_addon"`
	// SupervisorURL is the Supervisor API (default http://supervisor).
	SupervisorURL string `yaml:"supervisor_url"`
}

// RadioConfig is the `radio` section: which coordinator driver, its serial port and the network to form.
type RadioConfig struct {
	// Type is the driver: "sim" (the simulated network of radio.sim), "ezsp", "znp" or "zboss".
	Type        string `yaml:"type"`
	Port        string `yaml:"port"`
	Baud        int    `yaml:"baud"`
	FlowControl string `yaml:"flow_control"` // none, hardware or software
	// ASHWindow and MaxInFlight pace the EZSP serial link (0: the driver's defaults 3 and 8; see ezsp.Config).
	ASHWindow   int `yaml:"ash_window"`
	MaxInFlight int `yaml:"max_in_flight"`
	// FragmentWindow, FragmentDelayMS and MaxFragmentedPayload set EZSP host APS fragmentation (0: the
	// driver's defaults 8, 0 ms and 640 B; a negative max_fragmented_payload turns it off; see ezsp.Config).
	FragmentWindow       int           `yaml:"fragment_window"`
	FragmentDelayMS      int           `yaml:"fragment_delay_ms"`
	MaxFragmentedPayload int           `yaml:"max_fragmented_payload"`
	Network              NetworkConfig `yaml:"network"`
	// Sim describes the simulated network (radio.type sim). Its devices list is not overridable from the
	// environment.
	Sim sim.Config `yaml:"sim"`
	// SimSpeed runs the simulated network faster than real time (1 = real time).
	SimSpeed float64 `yaml:"sim_speed"`
}

// NetworkConfig is the Zigbee network the coordinator forms when it has none (zero values: the driver
// chooses).
type NetworkConfig struct {
	Channel       uint8  `yaml:"channel"` // 0: the driver picks; else 11..26
	PANID         uint16 `yaml:"pan_id"`
	ExtendedPANID string `yaml:"extended_pan_id"` // "" or 16 hex digits
	// NetworkKey is 32 hex digits, "generate" (a random key, stored by the stick) or "" (the driver's
	// default, which is "generate").
	NetworkKey string `yaml:"network_key" secret:"true"`
}

// MQTTConfig is the `mqtt` section.
type MQTTConfig struct {
	// Server is "embedded" (start the built-in broker on EmbeddedListen), mqtt://host[:1883] or
	// mqtts://host[:8883] (tcp:// and ssl:// are accepted as synonyms).
	Server         string `yaml:"server"`
	EmbeddedListen string `yaml:"embedded_listen"`
	// EmbeddedAllowAnonymousNetwork lets the embedded broker listen on a non-loopback address without
	// credentials (anyone who reaches the port controls the bridge); without it such a setup is refused.
	EmbeddedAllowAnonymousNetwork bool   `yaml:"embedded_allow_anonymous_network"`
	BaseTopic                     string `yaml:"base_topic"`
	DiscoveryPrefix               string `yaml:"discovery_prefix"`
	Discovery                     bool   `yaml:"discovery"`
	// ClientID defaults to "otabridge-<base_topic>".
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// PasswordFile is read (and trimmed) at start instead of giving Password in the file.
	PasswordFile       string        `yaml:"password_file"`
	CAFile             string        `yaml:"ca_file"`
	CertFile           string        `yaml:"cert_file"`
	KeyFile            string        `yaml:"key_file"`
	InsecureSkipVerify bool          `yaml:"insecure_skip_verify"`
	Keepalive          time.Duration `yaml:"keepalive"`
	QoS                int           `yaml:"qos"`
}

// LogConfig is the `log` section.
type LogConfig struct {
	Level  string `yaml:"level"`  // trace, debug, info, warn, error
	Format string `yaml:"format"` // console or json
}

// ServerEmbedded is the mqtt.server value that starts the embedded broker.
const ServerEmbedded = "embedded"

// EnvPrefix starts every environment override: OTABRIDGE_ + the key path upper-cased and joined by "_".
const EnvPrefix = "OTABRIDGE_"

// Radio types the bridge knows.
var radioTypes = []string{"sim", "ezsp", "znp", "zboss"}

// DefaultConfig returns the configuration used for every key the file and the environment do not set.
func DefaultConfig() Config {
	return Config{
		Radio: RadioConfig{
			Type:        "sim",
			Baud:        115200,
			FlowControl: "none",
			SimSpeed:    1,
		},
		MQTT: MQTTConfig{
			Server:          ServerEmbedded,
			EmbeddedListen:  "127.0.0.1:1883",
			BaseTopic:       "otabridge",
			DiscoveryPrefix: "homeassistant",
			Discovery:       true,
			Keepalive:       60 * time.Second,
			QoS:             1,
		},
		OTA: ota.DefaultEngineConfig(),
		Images: ota.StoreConfig{
			Folder:          ota.DefaultImageFolder,
			RefreshInterval: ota.DefaultRefreshInterval,
			MaxImageSize:    ota.DefaultMaxImageSize,
			FetchTimeout:    ota.DefaultFetchTimeout,
		},
		Web:     web.DefaultConfig(),
		DataDir: "data",
		Log:     LogConfig{Level: "info", Format: "console"},
	}
}

// LoadConfig builds the configuration: defaults, then the YAML file at path (unknown keys are errors), then
// environment overrides from env (os.Environ() form, "KEY=value"; see EnvName). It fills derived defaults
// (mqtt.client_id "otabridge-<base_topic>", images.cache_dir "<data_dir>/ota-cache"), validates, reads
// mqtt.password_file and checks that the TLS files exist. Every error names the key. path "" means no file
// (defaults and environment only); a path that does not exist is an error.
func LoadConfig(path string, env []string) (Config, error) {
	var data []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		data = b
	}
	cfg, err := parseConfig(data, env)
	if err != nil {
		if path != "" {
			return Config{}, fmt.Errorf("%s: %w", path, err)
		}
		return Config{}, err
	}
	if err := cfg.finish(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// parseConfig applies the YAML document and the environment to the defaults and validates the result
// (without touching the file system).
func parseConfig(data []byte, env []string) (Config, error) {
	cfg := DefaultConfig()
	if len(bytes.TrimSpace(data)) > 0 {
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		if len(root.Content) > 0 {
			if err := checkKnownKeys(root.Content[0], reflect.TypeOf(cfg), ""); err != nil {
				return Config{}, err
			}
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("config: %w", err)
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return Config{}, err
	}
	cfg.FillDerived()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// FillDerived fills the defaults that derive from other keys: mqtt.client_id "otabridge-<base_topic>" and
// images.cache_dir "<data_dir>/ota-cache".
func (c *Config) FillDerived() {
	if c.MQTT.ClientID == "" {
		c.MQTT.ClientID = "otabridge-" + c.MQTT.BaseTopic
	}
	if c.Images.CacheDir == "" && c.DataDir != "" {
		c.Images.CacheDir = filepath.Join(c.DataDir, "ota-cache")
	}
}

// finish does what needs the file system: reading mqtt.password_file and checking that the TLS files exist.
func (c *Config) finish() error {
	if c.MQTT.PasswordFile != "" {
		b, err := os.ReadFile(c.MQTT.PasswordFile)
		if err != nil {
			return fmt.Errorf("config mqtt.password_file: %w", err)
		}
		c.MQTT.Password = strings.TrimSpace(string(b))
		if c.MQTT.Password == "" {
			return fmt.Errorf("config mqtt.password_file: %s is empty (want the password in it)", c.MQTT.PasswordFile)
		}
		// The password is in Password now; the file is done with, so that validating again (bridge.New
		// does) does not see both set.
		c.MQTT.PasswordFile = ""
	}
	if err := c.Web.Finish(); err != nil {
		return fmt.Errorf("config %w", err)
	}
	for _, f := range []struct{ key, path string }{
		{"mqtt.ca_file", c.MQTT.CAFile}, {"mqtt.cert_file", c.MQTT.CertFile}, {"mqtt.key_file", c.MQTT.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("config %s: %w", f.key, err)
		}
	}
	return nil
}

// checkKnownKeys walks a YAML mapping against the struct type t and reports the first key that is not a
// yaml field, with its full path ("config mqtt.servr: unknown key (line 7)").
func checkKnownKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeFor[time.Time]() {
			return nil // a type mismatch: the decoder reports it
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // merge key: check the merged mapping(s)
				if err := checkKnownKeys(v, t, path); err != nil {
					return err
				}
				continue
			}
			f, ok := fieldByYAMLName(t, k.Value)
			key := joinKey(path, k.Value)
			if !ok {
				return fmt.Errorf("config %s: unknown key (line %d)", key, k.Line)
			}
			if isScalar(f.Type) || f.Type.Kind() == reflect.Slice && isScalar(f.Type.Elem()) {
				// Decode the value alone so that a type error names its key and what is allowed.
				if err := v.Decode(reflect.New(f.Type).Interface()); err != nil {
					if v.Kind == yaml.ScalarNode {
						if text := notAllowedText(f.Type, v.Value); text != "" {
							return fmt.Errorf("config %s: %s (line %d)", key, text, v.Line)
						}
					}
					return fmt.Errorf("config %s: %s", key, yamlErrorText(err, v.Line))
				}
				continue
			}
			if err := checkKnownKeys(v, f.Type, key); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, e := range n.Content {
			if err := checkKnownKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// yamlErrorText shortens a yaml.v3 error to "line N: cannot unmarshal …".
func yamlErrorText(err error, line int) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return strings.TrimSpace(te.Errors[0])
	}
	return fmt.Sprintf("line %d: %v", line, err)
}

func joinKey(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// yamlName returns the yaml key of a struct field ("" for fields yaml skips).
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name) // yaml.v3's default
	}
	return name
}

func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
)

// applyEnv sets every field whose variable (EnvPrefix + key path upper-cased, joined by "_") is in env.
// Scalars: strings, bools (strconv.ParseBool), integers (decimal or 0x hex), floats, durations ("90s"),
// and types with UnmarshalText (IEEE addresses). Lists of scalars are comma-separated. Lists of structs
// (the simulated devices) and maps are not overridable.
//
// Every other OTABRIDGE_ variable is an error, like an unknown key in the file (with the closest known
// name when there is one), except the test-harness variables of nonConfigEnv.
func applyEnv(cfg *Config, env []string) error {
	vars := make(map[string]string)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) && !contains(nonConfigEnv, k) {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	known := map[string]string{} // variable → key path, for every overridable key
	fixed := map[string]string{} // variable → key path, for keys only the file sets
	if err := envStruct(reflect.ValueOf(cfg).Elem(), "", vars, known, fixed); err != nil {
		return err
	}
	var unknown []string
	for k := range vars {
		if _, ok := known[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	k := unknown[0]
	if key, ok := fixed[k]; ok {
		return fmt.Errorf("config environment %s: %s cannot be set from the environment (set it in the config file)", k, key)
	}
	msg := fmt.Sprintf("config environment %s: unknown variable (no configuration key %s)", k, envKeyGuess(k))
	if near := closest(k, known); near != "" {
		msg += fmt.Sprintf("; did you mean %s (%s)?", near, known[near])
	}
	return errors.New(msg)
}

// nonConfigEnv are OTABRIDGE_ variables read by the test harnesses, not by the configuration.
var nonConfigEnv = []string{"OTABRIDGE_BROKERTEST", "OTABRIDGE_SOAK", "OTABRIDGE_SOAK_HEAPPROFILE", "OTABRIDGE_SOAK_TIMEOUT"}

// envKeyGuess turns a variable back into the key path it would stand for ("OTABRIDGE_OTA_X" → "ota.x").
func envKeyGuess(name string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "_", "."))
}

// closest returns the known name nearest to name by edit distance, when it is near enough to be a typo.
func closest(name string, known map[string]string) string {
	best, bestDist := "", 0
	for k := range known {
		d := editDistance(name, k)
		if best == "" || d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	if best == "" || bestDist > max(2, len(name)/6) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// envStruct sets the fields of v from vars and records every variable it knows: known (overridable keys)
// and fixed (keys the environment cannot set: lists of structs, maps).
func envStruct(v reflect.Value, path string, vars, known, fixed map[string]string) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		key := joinKey(path, name)
		fv := v.Field(i)
		if isScalar(f.Type) || f.Type.Kind() == reflect.Slice && isScalar(f.Type.Elem()) {
			known[EnvName(key)] = key
			s, ok := vars[EnvName(key)]
			if !ok {
				continue
			}
			if err := setFromString(fv, s); err != nil {
				return fmt.Errorf("config %s (environment %s): %w", key, EnvName(key), err)
			}
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			if err := envStruct(fv, key, vars, known, fixed); err != nil {
				return err
			}
			continue
		}
		fixed[EnvName(key)] = key
	}
	return nil
}

// EnvName is the environment variable that overrides a key path ("mqtt.server" → "OTABRIDGE_MQTT_SERVER").
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// isScalar reports whether values of t are set from one string.
func isScalar(t reflect.Type) bool {
	if t == durationType || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	case reflect.Pointer:
		return t.Elem().Kind() != reflect.Pointer && isScalar(t.Elem())
	}
	return false
}

func setFromString(v reflect.Value, s string) error {
	t := v.Type()
	if t.Kind() == reflect.Slice && t != reflect.TypeFor[[]byte]() {
		s = strings.TrimSpace(s)
		if s == "" {
			v.Set(reflect.MakeSlice(t, 0, 0))
			return nil
		}
		parts := strings.Split(s, ",")
		out := reflect.MakeSlice(t, len(parts), len(parts))
		for i, p := range parts {
			if err := setFromString(out.Index(i), strings.TrimSpace(p)); err != nil {
				return fmt.Errorf("item %d: %w", i+1, err)
			}
		}
		v.Set(out)
		return nil
	}
	if t.Kind() == reflect.Pointer {
		nv := reflect.New(t.Elem())
		if err := setFromString(nv.Elem(), s); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(strings.TrimSpace(s)))
	}
	if t == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return errors.New(notAllowedText(t, s))
		}
		v.SetInt(int64(d))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return errors.New(notAllowedText(t, s))
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 0, t.Bits())
		if err != nil {
			return errors.New(notAllowedText(t, s))
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 0, t.Bits())
		if err != nil {
			return errors.New(notAllowedText(t, s))
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), t.Bits())
		if err != nil {
			return errors.New(notAllowedText(t, s))
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("type %s cannot be set from the environment", t)
	}
	return nil
}

// notAllowedText says, in words, why s is not a value of the scalar type t and what is allowed
// ("\"two\" is not a whole number"); "" for types that explain their own errors (IEEE addresses, strings).
func notAllowedText(t reflect.Type, s string) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		return fmt.Sprintf("%q is not a duration (like 90s, 5m, 1h30m)", s)
	}
	switch t.Kind() {
	case reflect.Bool:
		return fmt.Sprintf("%q is not allowed (want true or false)", s)
	case reflect.Int, reflect.Int64:
		return fmt.Sprintf("%q is not a whole number", s)
	case reflect.Int8, reflect.Int16, reflect.Int32:
		lim := int64(1) << (t.Bits() - 1)
		return fmt.Sprintf("%q is not a whole number from %d to %d", s, -lim, lim-1)
	case reflect.Uint, reflect.Uint64:
		return fmt.Sprintf("%q is not a whole number ≥ 0", s)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return fmt.Sprintf("%q is not a whole number from 0 to %d (decimal or 0x hex)", s, uint64(1)<<t.Bits()-1)
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("%q is not a number", s)
	}
	return ""
}

// Validate checks every value; the error names the key and what is allowed.
func (c *Config) Validate() error {
	switch im := c.Existing.Import; {
	case im.Source == "" && im.Path == "":
	case im.Source != "z2m" && im.Source != "zha":
		return fmt.Errorf("config existing.import.source: %q is not allowed (want z2m or zha)", im.Source)
	case im.Path == "":
		return fmt.Errorf("config existing.import.path: required with existing.import.source %s", im.Source)
	}
	r := &c.Radio
	if !contains(radioTypes, r.Type) {
		return fmt.Errorf("config radio.type: %q is not allowed (want %s)", r.Type, orList(radioTypes))
	}
	if r.Type != "sim" && r.Port == "" {
		return fmt.Errorf("config radio.port: required for radio.type %s (e.g. /dev/ttyUSB0 or /dev/serial/by-id/…)", r.Type)
	}
	if r.Baud <= 0 {
		return fmt.Errorf("config radio.baud: %d is not allowed (want a positive baud rate, e.g. 115200)", r.Baud)
	}
	if fc := []string{"none", "hardware", "software"}; !contains(fc, r.FlowControl) {
		return fmt.Errorf("config radio.flow_control: %q is not allowed (want %s)", r.FlowControl, orList(fc))
	}
	if ch := r.Network.Channel; ch != 0 && (ch < 11 || ch > 26) {
		return fmt.Errorf("config radio.network.channel: %d is not allowed (want 0 for automatic, or 11..26)", ch)
	}
	if r.Network.PANID == 0xFFFF {
		return fmt.Errorf("config radio.network.pan_id: 0xFFFF is not allowed (want 0 for automatic, or 0x0001..0xFFFE)")
	}
	if e := r.Network.ExtendedPANID; e != "" {
		if b, err := hex.DecodeString(strings.TrimPrefix(strings.ReplaceAll(e, ":", ""), "0x")); err != nil || len(b) != 8 {
			return fmt.Errorf("config radio.network.extended_pan_id: %q is not allowed (want 16 hex digits, or empty for automatic)", e)
		}
	}
	if k := r.Network.NetworkKey; k != "" && k != "generate" {
		if b, err := hex.DecodeString(strings.TrimPrefix(strings.ReplaceAll(k, ":", ""), "0x")); err != nil || len(b) != 16 {
			return fmt.Errorf("config radio.network.network_key: not allowed (want 32 hex digits, or \"generate\")")
		}
	}
	if r.SimSpeed <= 0 || r.SimSpeed != r.SimSpeed || r.SimSpeed > 1e6 {
		return fmt.Errorf("config radio.sim_speed: %v is not allowed (want a number > 0; 1 is real time)", r.SimSpeed)
	}
	if r.Type == "sim" {
		if err := r.Sim.Validate(); err != nil {
			return fmt.Errorf("config %w", err)
		}
	}
	if r.Type == "ezsp" { // the EZSP serial pacing and fragmentation keys (the other radios have none)
		if err := ezspConfig(*r, ncp.NetworkSettings{}).Validate(); err != nil {
			return fmt.Errorf("config %w", err)
		}
	}
	if err := c.MQTT.validate(); err != nil {
		return err
	}
	if err := c.OTA.Validate(); err != nil { // the engine validates its own section; its errors name the key
		return fmt.Errorf("config %w", err)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"ota.minimum_block_period", c.OTA.MinimumBlockPeriod}, {"ota.min_page_spacing", c.OTA.MinPageSpacing},
		{"ota.notify_timeout", c.OTA.NotifyTimeout}, {"ota.stall_timeout", c.OTA.StallTimeout},
		{"ota.retry_backoff", c.OTA.RetryBackoff}, {"ota.queue_wait", c.OTA.QueueWait},
		{"ota.verify_timeout", c.OTA.VerifyTimeout}, {"ota.progress_interval", c.OTA.ProgressInterval},
		{"images.refresh_interval", c.Images.RefreshInterval}, {"images.fetch_timeout", c.Images.FetchTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("config %s: %s is not allowed (want a duration ≥ 0)", d.key, d.v)
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"ota.notify_attempts", c.OTA.NotifyAttempts}, {"ota.verify_attempts", c.OTA.VerifyAttempts}} {
		if n.v < 0 {
			return fmt.Errorf("config %s: %d is not allowed (want ≥ 0)", n.key, n.v)
		}
	}
	if c.Images.MaxImageSize < 0 {
		return fmt.Errorf("config images.max_image_size: %d is not allowed (want bytes ≥ 0; 0 is the default 16 MiB)", c.Images.MaxImageSize)
	}
	for i, ix := range c.Images.Indexes {
		if strings.TrimSpace(ix) == "" {
			return fmt.Errorf("config images.indexes[%d]: empty (want a path or an http(s) URL)", i)
		}
	}
	if err := c.Web.Validate(); err != nil {
		return fmt.Errorf("config %w", err)
	}
	if c.DataDir == "" {
		return fmt.Errorf("config data_dir: empty (want a directory, e.g. data)")
	}
	if lv := []string{"trace", "debug", "info", "warn", "error"}; !contains(lv, c.Log.Level) {
		return fmt.Errorf("config log.level: %q is not allowed (want %s)", c.Log.Level, orList(lv))
	}
	if lf := []string{"console", "json"}; !contains(lf, c.Log.Format) {
		return fmt.Errorf("config log.format: %q is not allowed (want %s)", c.Log.Format, orList(lf))
	}
	return nil
}

func (m *MQTTConfig) validate() error {
	if m.Password != "" && m.PasswordFile != "" {
		return fmt.Errorf("config mqtt.password_file: set either mqtt.password or mqtt.password_file, not both")
	}
	if m.Server != ServerEmbedded {
		if _, _, err := ParseServerURL(m.Server); err != nil {
			return fmt.Errorf("config mqtt.server: %w", err)
		}
	} else if err := m.validateEmbedded(); err != nil {
		return err
	}
	if err := checkTopicRoot(m.BaseTopic); err != nil {
		return fmt.Errorf("config mqtt.base_topic: %w", err)
	}
	if err := checkTopicRoot(m.DiscoveryPrefix); err != nil {
		return fmt.Errorf("config mqtt.discovery_prefix: %w", err)
	}
	if m.ClientID == "" || !utf8.ValidString(m.ClientID) || len(m.ClientID) > 65535 {
		return fmt.Errorf("config mqtt.client_id: %q is not allowed (want a non-empty UTF-8 string)", m.ClientID)
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		return fmt.Errorf("config mqtt.cert_file: mqtt.cert_file and mqtt.key_file go together (client certificate and its key)")
	}
	tlsFiles := m.CAFile != "" || m.CertFile != "" || m.InsecureSkipVerify
	if tlsFiles {
		if m.Server == ServerEmbedded {
			return fmt.Errorf("config mqtt.ca_file: TLS settings need an mqtts:// server, not the embedded broker")
		}
		if _, secure, _ := ParseServerURL(m.Server); !secure {
			return fmt.Errorf("config mqtt.ca_file: TLS settings need an mqtts:// server, not %s", m.Server)
		}
	}
	if m.Keepalive < time.Second || m.Keepalive > 65535*time.Second {
		return fmt.Errorf("config mqtt.keepalive: %s is not allowed (want 1s..18h12m15s)", m.Keepalive)
	}
	if m.QoS < 0 || m.QoS > 2 {
		return fmt.Errorf("config mqtt.qos: %d is not allowed (want 0, 1 or 2)", m.QoS)
	}
	return nil
}

// validateEmbedded refuses the unsafe setups of the embedded broker: a username without a password (or
// the reverse), and no credentials on an address other hosts reach, unless
// mqtt.embedded_allow_anonymous_network says so.
func (m *MQTTConfig) validateEmbedded() error {
	host, _, err := net.SplitHostPort(m.EmbeddedListen)
	if err != nil {
		return fmt.Errorf("config mqtt.embedded_listen: %q is not allowed (want host:port, e.g. 127.0.0.1:1883)", m.EmbeddedListen)
	}
	hasPassword := m.Password != "" || m.PasswordFile != ""
	switch {
	case m.Username != "" && !hasPassword:
		return fmt.Errorf("config mqtt.password: the embedded broker needs a password with mqtt.username (set mqtt.password or mqtt.password_file)")
	case m.Username == "" && hasPassword:
		return fmt.Errorf("config mqtt.username: the embedded broker needs a username with the password (without one it would accept every client)")
	case m.Username == "" && !isLoopbackHost(host) && !m.EmbeddedAllowAnonymousNetwork:
		return fmt.Errorf("config mqtt.embedded_listen: the embedded broker on %s would accept anyone on the network without credentials "+
			"(set mqtt.username and mqtt.password, listen on 127.0.0.1, or set mqtt.embedded_allow_anonymous_network: true)", m.EmbeddedListen)
	}
	return nil
}

// isLoopbackHost reports whether a listen host only accepts connections from this machine.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseServerURL reads an mqtt.server URL: mqtt:// or tcp:// (plain, default port 1883), mqtts://, ssl:// or
// tls:// (TLS, default port 8883). It returns the URL with the port filled in.
func ParseServerURL(s string) (u *url.URL, secure bool, err error) {
	u, err = url.Parse(s)
	if err != nil {
		return nil, false, fmt.Errorf("%q is not a URL (want embedded, mqtt://host:1883 or mqtts://host:8883)", s)
	}
	port := "1883"
	switch u.Scheme {
	case "mqtt", "tcp":
	case "mqtts", "ssl", "tls":
		secure, port = true, "8883"
	case "ws", "wss":
		return nil, false, fmt.Errorf("%q: MQTT over websockets is not supported (want embedded, mqtt://host:1883 or mqtts://host:8883)", s)
	default:
		return nil, false, fmt.Errorf("%q is not allowed (want embedded, mqtt://host:1883 or mqtts://host:8883)", s)
	}
	if u.Hostname() == "" {
		return nil, false, fmt.Errorf("%q has no host (want embedded, mqtt://host:1883 or mqtts://host:8883)", s)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	} else if n, err := strconv.Atoi(u.Port()); err != nil || n <= 0 || n > 65535 {
		return nil, false, fmt.Errorf("%q: port %s is not allowed (want 1..65535)", s, u.Port())
	}
	return u, secure, nil
}

func checkTopicRoot(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty (want a topic like otabridge)")
	case strings.ContainsAny(s, "+#"):
		return fmt.Errorf("%q is not allowed (no MQTT wildcards + or #)", s)
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/"):
		return fmt.Errorf("%q is not allowed (no / at either end)", s)
	case !utf8.ValidString(s) || strings.ContainsRune(s, 0):
		return fmt.Errorf("%q is not allowed (want UTF-8 without NUL)", s)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// orList formats ["a","b","c"] as "a, b or c".
func orList(list []string) string {
	if len(list) == 1 {
		return list[0]
	}
	return strings.Join(list[:len(list)-1], ", ") + " or " + list[len(list)-1]
}

// Summary is the configuration for `<base>/bridge/info`, keyed like the YAML file, without secrets
// (mqtt.password and radio.network.network_key appear only as "<set>", the credentials of URLs as
// redact.URLs hides them), durations as strings and the
// simulated devices as a count.
func (c Config) Summary() map[string]any {
	m := summarize(reflect.ValueOf(c)).(map[string]any)
	radio := m["radio"].(map[string]any)
	if c.Radio.Type == "sim" {
		radio["sim"] = map[string]any{"devices": len(c.Radio.Sim.Devices), "link_mode": c.Radio.Sim.Link.Mode}
	} else {
		delete(radio, "sim")
		delete(radio, "sim_speed")
	}
	if c.Radio.Network.NetworkKey == "generate" {
		radio["network"].(map[string]any)["network_key"] = "generate"
	}
	return m
}

func summarize(v reflect.Value) any {
	t := v.Type()
	if t == durationType {
		return time.Duration(v.Int()).String()
	}
	if t.Implements(textMarshalerType) {
		b, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil
		}
		return string(b)
	}
	switch t.Kind() {
	case reflect.Struct:
		m := make(map[string]any, t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			if f.Tag.Get("secret") == "true" {
				if !v.Field(i).IsZero() {
					m[name] = "<set>"
				}
				continue
			}
			m[name] = summarize(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return []any{}
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = summarize(v.Index(i))
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return summarize(v.Elem())
	case reflect.Map:
		out := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			out[fmt.Sprint(iter.Key().Interface())] = summarize(iter.Value())
		}
		return out
	}
	if t.Kind() == reflect.String {
		return redact.URLs(v.String()) // mqtt.server, index URLs: user:password@ and tokens never show
	}
	return v.Interface()
}
