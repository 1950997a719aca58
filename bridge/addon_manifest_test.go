package bridge

// Checks of the add-on folder against the rules the Supervisor applies when it reads an add-on ("app")
// repository. The Supervisor does not fail loudly: an invalid config.yaml makes the add-on vanish from the
// store, an invalid schema element or map entry is logged and skipped, a missing translation shows the raw
// key. The rules below restate, in Go, what home-assistant/supervisor checks (supervisor/apps/validate.py
// _SCHEMA_APP_CONFIG, RE_SERVICE, RE_VOLUME, SCHEMA_TRANSLATION_CONFIGURATION; supervisor/apps/options.py
// RE_SCHEMA_ELEMENT and AppOptions._single_validate) and what the developer docs require (icon 128×128,
// logo about 250×100, CHANGELOG, arch aarch64/amd64 since 2026).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"maps"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/otabridge/otabridge/web"
)

var addonDir = filepath.Join("..", "addon")

var (
	// Schema element: a type, optional (min,max) or argument, optional trailing "?".
	reSchemaElement = regexp.MustCompile(`^(?:` +
		`bool|email|url|port` +
		`|device(?:\((subsystem=[a-z]+)\))?` +
		`|str(?:\((\d+)?,(\d+)?\))?` +
		`|password(?:\((\d+)?,(\d+)?\))?` +
		`|int(?:\((-?\d+)?,(-?\d+)?\))?` +
		`|float(?:\((-?\d*\.?\d+)?,(-?\d*\.?\d+)?\))?` +
		`|match\((.*)\)` +
		`|list\((.+)\)` +
		`)\??$`)
	reSlug     = regexp.MustCompile(`^[-_.A-Za-z0-9]+$`)
	reService  = regexp.MustCompile(`^(?:mqtt|mysql):(?:provide|want|need)$`)
	reVolume   = regexp.MustCompile(`^(?:data|config|ssl|addons|backup|share|media|homeassistant_config|all_addon_configs|addon_config)(?::(?:rw|ro))?$`)
	reImage    = regexp.MustCompile(`^([a-zA-Z\-\.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)$`)
	reSemver   = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	reChangelg = regexp.MustCompile(`(?m)^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$`)
)

// The top-level keys the Supervisor knows (it silently drops others, so a typo would go unnoticed).
var addonManifestKeys = []string{
	"name", "version", "slug", "description", "arch", "machine", "url", "startup", "boot", "init", "advanced",
	"stage", "ports", "ports_description", "watchdog", "webui", "ingress", "ingress_port", "ingress_entry",
	"ingress_stream", "panel_icon", "panel_title", "panel_admin", "homeassistant", "host_network", "host_pid",
	"host_ipc", "host_uts", "host_dbus", "devices", "udev", "tmpfs", "map", "environment", "privileged",
	"apparmor", "full_access", "audio", "video", "gpio", "usb", "uart", "devicetree", "kernel_modules",
	"realtime", "hassio_api", "hassio_role", "homeassistant_api", "stdin", "legacy", "docker_api", "auth_api",
	"services", "discovery", "backup_exclude", "backup_pre", "backup_post", "backup", "options", "schema",
	"image", "ulimits", "timeout", "journald", "breaking_versions",
}

type addonManifest struct {
	raw     map[string]any
	options map[string]any
	schema  map[string]any
}

func readAddonManifest(t *testing.T) addonManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(addonDir, "config.yaml"))
	require.NoError(t, err)
	var m addonManifest
	require.NoError(t, yaml.Unmarshal(b, &m.raw), "config.yaml is not YAML")
	var ok bool
	m.options, ok = m.raw["options"].(map[string]any)
	require.True(t, ok, "config.yaml: options is not a mapping")
	m.schema, ok = m.raw["schema"].(map[string]any)
	require.True(t, ok, "config.yaml: schema is not a mapping")
	return m
}

func TestAddonManifestKeys(t *testing.T) {
	m := readAddonManifest(t)
	for _, k := range []string{"name", "version", "slug", "description", "arch"} {
		v, ok := m.raw[k]
		require.True(t, ok, "required key %s missing", k)
		require.NotEmpty(t, v, "required key %s empty", k)
	}
	for k, v := range m.raw {
		assert.Contains(t, addonManifestKeys, k, "config.yaml: unknown key %s (the Supervisor drops it)", k)
		assert.NotNil(t, v, "config.yaml: key %s is null", k)
	}

	version, ok := m.raw["version"].(string)
	require.True(t, ok, "version must be a string (quote it)")
	assert.Regexp(t, reSemver, version)
	assert.Equal(t, "otabridge", m.raw["slug"])
	assert.Regexp(t, reSlug, m.raw["slug"])
	assert.Equal(t, "otabridge", m.raw["name"])
	u, err := url.Parse(m.raw["url"].(string))
	require.NoError(t, err)
	assert.Equal(t, "https", u.Scheme)

	arch := toStrings(t, m.raw["arch"])
	require.NotEmpty(t, arch)
	for _, a := range arch {
		assert.Contains(t, []string{"aarch64", "amd64"}, a, "arch %s is not built since 2026", a)
	}
	assert.ElementsMatch(t, []string{"aarch64", "amd64"}, arch)

	for _, k := range []string{"startup", "boot", "backup"} {
		assert.NotContains(t, m.raw, k, "%s is left at its default (the linter refuses a default written out)", k)
	}
	assert.Equal(t, "2024.11.0", m.raw["homeassistant"], "update_percentage and device discovery need HA 2024.11")
	assert.Equal(t, false, m.raw["init"], "init: false (otabridge is the only process and handles signals)")
	assert.Equal(t, true, m.raw["uart"])
	assert.Equal(t, true, m.raw["udev"])
	timeout, _ := m.raw["timeout"].(int)
	assert.True(t, timeout >= 10 && timeout <= 300, "timeout %v not in 10..300", m.raw["timeout"])

	services := toStrings(t, m.raw["services"])
	for _, s := range services {
		assert.Regexp(t, reService, s)
	}
	assert.Contains(t, services, "mqtt:want")
	// /services/mqtt needs no hassio_api (ADDONS_API_BYPASS); the opt-in stop_addon does (POST
	// /addons/<slug>/stop|start), with role manager, the least role the Supervisor lets manage other add-ons.
	assert.Equal(t, true, m.raw["hassio_api"], "stop_addon needs the Supervisor API")
	assert.Equal(t, "manager", m.raw["hassio_role"], "stop_addon needs role manager, no more")

	maps := toStrings(t, m.raw["map"])
	for _, v := range maps {
		assert.Regexp(t, reVolume, v)
	}
	assert.Contains(t, maps, "addon_config:rw")
	assert.Contains(t, toStrings(t, m.raw["backup_exclude"]), "ota-cache")

	image, _ := m.raw["image"].(string)
	assert.Regexp(t, reImage, image, "image is the multi-arch name, without a tag (the tag is version)")
}

// TestAddonManifestIngress checks the web console's panel: ingress on the port the console listens on as an
// add-on, an mdi icon and a title for the sidebar, and no host port or webui beside it.
func TestAddonManifestIngress(t *testing.T) {
	m := readAddonManifest(t)
	assert.Equal(t, true, m.raw["ingress"], "ingress: true (the console is the sidebar panel)")
	port, set := m.raw["ingress_port"]
	if !set {
		port = 8099 // the Supervisor's default ingress_port; the add-on linter wants it left out
	}
	assert.Equal(t, web.IngressPort, port, "ingress_port is where the add-on's console listens")
	icon, _ := m.raw["panel_icon"].(string)
	assert.Regexp(t, `^mdi:[a-z0-9-]+$`, icon, "panel_icon is a Material Design Icons name")
	title, _ := m.raw["panel_title"].(string)
	assert.NotEmpty(t, strings.TrimSpace(title), "panel_title names the sidebar entry")
	assert.LessOrEqual(t, len(title), 30, "panel_title fits the sidebar")
	_, ports := m.raw["ports"]
	assert.False(t, ports, "no host port: the console is reachable through ingress only")
	_, webui := m.raw["webui"]
	assert.False(t, webui, "webui opens a host port; ingress replaces it")
	for _, k := range []string{"ingress_entry", "ingress_stream", "panel_admin"} {
		_, set := m.raw[k]
		assert.False(t, set, "%s: the Supervisor's default is right (entry /, no stream, admins only)", k)
	}

	cfg := DefaultConfig()
	opts := DefaultAddonOptions()
	opts.RadioType, opts.MQTTServer = "sim", "mqtt://core-mosquitto:1883"
	require.NoError(t, opts.Apply(&cfg, nil))
	assert.True(t, cfg.Web.Enabled && cfg.Web.Ingress, "the add-on serves the console as its ingress panel")
	assert.Equal(t, fmt.Sprintf(":%d", web.IngressPort), cfg.Web.Listen)
}

func TestAddonManifestSchema(t *testing.T) {
	m := readAddonManifest(t)
	for key, typ := range m.schema {
		checkSchemaElement(t, key, typ, false)
	}
	for key, def := range m.options {
		typ, ok := m.schema[key]
		if !assert.True(t, ok, "option %s has no schema entry", key) {
			continue
		}
		assert.NoError(t, validateOptionValue(typ, def), "default of option %s does not fit its schema %v", key, typ)
	}
	for key, typ := range m.schema {
		if _, ok := m.options[key]; ok {
			continue
		}
		assert.True(t, schemaOptional(typ), "schema entry %s is required but has no default in options", key)
	}
	// Optional options have no default: the Supervisor validates a default, and "" is no device.
	for key, typ := range m.schema {
		if schemaOptional(typ) {
			_, hasDefault := m.options[key]
			assert.False(t, hasDefault, "optional option %s should have no default", key)
		}
	}
}

// Every option of the manifest is a field of AddonOptions and the other way round, and the Go defaults
// are the manifest's.
func TestAddonManifestMatchesAddonOptions(t *testing.T) {
	m := readAddonManifest(t)
	var fields []string
	typ := reflect.TypeFor[AddonOptions]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	assert.ElementsMatch(t, slices.Sorted(maps.Keys(m.schema)), fields)

	// The Supervisor writes list-typed options as strings; do the same to the defaults.
	supervised := map[string]any{}
	for k, v := range m.options {
		if s, ok := m.schema[k].(string); ok && strings.HasPrefix(s, "list(") {
			v = fmt.Sprint(v)
		}
		supervised[k] = v
	}
	b, err := json.Marshal(supervised)
	require.NoError(t, err)
	o, err := ParseAddonOptions(b)
	require.NoError(t, err)
	assert.Equal(t, DefaultAddonOptions(), o, "DefaultAddonOptions differs from the options of config.yaml")
}

func TestAddonTranslations(t *testing.T) {
	m := readAddonManifest(t)
	b, err := os.ReadFile(filepath.Join(addonDir, "translations", "en.yaml"))
	require.NoError(t, err)
	var tr struct {
		Configuration map[string]struct {
			Name        string         `yaml:"name"`
			Description string         `yaml:"description"`
			Fields      map[string]any `yaml:"fields"`
		} `yaml:"configuration"`
		Network map[string]string `yaml:"network"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&tr), "translations/en.yaml does not fit the Supervisor's translation schema")
	for key := range m.schema {
		e, ok := tr.Configuration[key]
		if assert.True(t, ok, "option %s has no translation", key) {
			assert.NotEmpty(t, strings.TrimSpace(e.Name), "option %s: translation has no name", key)
			assert.NotEmpty(t, strings.TrimSpace(e.Description), "option %s: translation has no description", key)
		}
	}
	for key := range tr.Configuration {
		assert.Contains(t, m.schema, key, "translation for %s, which is no option", key)
	}
}

func TestAddonDocsListEveryOption(t *testing.T) {
	m := readAddonManifest(t)
	b, err := os.ReadFile(filepath.Join(addonDir, "DOCS.md"))
	require.NoError(t, err)
	for key := range m.schema {
		assert.Contains(t, string(b), "| `"+key+"` |", "DOCS.md has no table row for option %s", key)
	}
}

// DOCS.md is read top to bottom in the add-on store: every section once, no empty bullets or placeholders.
func TestAddonDocsStructure(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(addonDir, "DOCS.md"))
	require.NoError(t, err)
	seen := map[string]int{}
	for _, h := range regexp.MustCompile(`(?m)^#{1,4} .+$`).FindAllString(string(b), -1) {
		seen[h]++
	}
	for h, n := range seen {
		assert.Equal(t, 1, n, "DOCS.md repeats the heading %q", h)
	}
	assert.NotRegexp(t, `(?m)^\s*[-*]\s*(<!--.*-->)?\s*$`, string(b), "an empty bullet")
	assert.NotContains(t, string(b), "TODO")
}

func TestAddonChangelogMatchesVersion(t *testing.T) {
	m := readAddonManifest(t)
	b, err := os.ReadFile(filepath.Join(addonDir, "CHANGELOG.md"))
	require.NoError(t, err)
	top := reChangelg.FindStringSubmatch(string(b))
	require.NotNil(t, top, "CHANGELOG.md has no release entry like '## [1.2.3] - 2026-01-31'")
	assert.Equal(t, m.raw["version"], top[1], "config.yaml version and the top CHANGELOG.md release differ")
}

func TestAddonArtwork(t *testing.T) {
	for _, tc := range []struct {
		file string
		w, h int
	}{{"icon.png", 128, 128}, {"logo.png", 250, 100}} {
		f, err := os.Open(filepath.Join(addonDir, tc.file))
		require.NoError(t, err)
		cfg, err := png.DecodeConfig(f)
		f.Close()
		require.NoError(t, err, tc.file)
		assert.Equal(t, tc.w, cfg.Width, tc.file)
		assert.Equal(t, tc.h, cfg.Height, tc.file)
	}
	for _, f := range []string{"README.md", "DOCS.md", "Dockerfile"} {
		_, err := os.Stat(filepath.Join(addonDir, f))
		assert.NoError(t, err)
	}
}

func TestAddonRepositoryFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "repository.yaml"))
	require.NoError(t, err)
	var repo map[string]string
	require.NoError(t, yaml.Unmarshal(b, &repo))
	for _, k := range []string{"name", "url", "maintainer"} {
		assert.NotEmpty(t, repo[k], "repository.yaml: %s", k)
	}
}

// Both images build the binary with the one shared build script, and the add-on's base image is pinned
// (Supervisor ≥ 2026.04 injects no BUILD_FROM).
func TestAddonDockerfiles(t *testing.T) {
	for _, path := range []string{filepath.Join("..", "Dockerfile"), filepath.Join(addonDir, "Dockerfile")} {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Contains(t, string(b), "scripts/build.sh /out/otabridge", path)
		assert.Regexp(t, `(?m)^FROM --platform=\$BUILDPLATFORM golang:1\.26\.\d+@sha256:[0-9a-f]{64} AS build$`, string(b), path)
		for _, line := range regexp.MustCompile(`(?m)^FROM .*$`).FindAllString(string(b), -1) {
			if !strings.Contains(line, "runtime-${TARGETARCH}") {
				assert.Regexp(t, `:\d+\.\d+\.\d+(-\w+)?@sha256:[0-9a-f]{64}\b`, line, "%s: base pinned by exact tag and digest", path)
			}
		}
		assert.Contains(t, string(b), `"health", "--data-dir", "/data"`, path)
	}
	b, err := os.ReadFile(filepath.Join(addonDir, "Dockerfile"))
	require.NoError(t, err)
	assert.NotRegexp(t, `(?m)^(ARG|FROM)\b.*BUILD_FROM`, string(b))
	// One multi-platform build labels each image with its own architecture: a stage per TARGETARCH.
	arch := map[string]string{"amd64": "amd64", "arm64": "aarch64"} // Docker's TARGETARCH → HA's arch
	for target, hass := range arch {
		assert.Regexp(t, `(?m)^FROM alpine:\S+ AS runtime-`+target+`\nLABEL io\.hass\.arch="`+hass+`"$`, string(b))
	}
	assert.Contains(t, string(b), "\nFROM runtime-${TARGETARCH}\n")
	assert.NotContains(t, string(b), "BUILD_ARCH", "the label comes from the target platform, not a build argument")
	assert.ElementsMatch(t, slices.Collect(maps.Values(arch)), toStrings(t, readAddonManifest(t).raw["arch"]))
	for _, unused := range []string{"home-assistant/base", "bashio", "s6", "curl", "jq"} {
		assert.NotRegexp(t, `(?m)^(FROM|RUN).*\b`+regexp.QuoteMeta(unused)+`\b`, string(b), "the image carries no %s", unused)
	}
	assert.Contains(t, string(b), `ENTRYPOINT ["/usr/bin/otabridge", "addon", "--options", "/data/options.json"]`)
	assert.Contains(t, string(b), `io.hass.type="app"`)
}

// checkSchemaElement applies the Supervisor's SCHEMA_ELEMENT: a valid element string, a list of one element
// or mapping (a list may not directly hold a list), or a mapping of elements.
func checkSchemaElement(t *testing.T, key string, typ any, inList bool) {
	t.Helper()
	switch v := typ.(type) {
	case string:
		m := reSchemaElement.FindStringSubmatch(v)
		if !assert.NotNil(t, m, "schema %s: %q is not a schema element", key, v) {
			return
		}
		if strings.HasPrefix(v, "match(") {
			_, err := regexp.Compile(m[10])
			assert.NoError(t, err, "schema %s: match regexp", key)
		}
		if strings.HasPrefix(v, "str(") || strings.HasPrefix(v, "password(") {
			// The Supervisor checks str ranges with vol.Range against the string, which rejects every value.
			t.Errorf("schema %s: %q: do not give str/password a range", key, v)
		}
	case []any:
		if assert.Len(t, v, 1, "schema %s: a list holds exactly one element type", key) {
			assert.False(t, inList, "schema %s: a list may not directly hold a list", key)
			if _, nested := v[0].([]any); nested {
				t.Errorf("schema %s: a list may not directly hold a list", key)
				return
			}
			checkSchemaElement(t, key, v[0], true)
		}
	case map[string]any:
		for k, e := range v {
			checkSchemaElement(t, key+"."+k, e, false)
		}
	default:
		t.Errorf("schema %s: %T is not a schema element", key, typ)
	}
}

func schemaOptional(typ any) bool {
	switch v := typ.(type) {
	case string:
		return strings.HasSuffix(v, "?")
	case []any:
		return len(v) > 0 && schemaOptional(v[0])
	}
	return false
}

// validateOptionValue checks a value against a schema element the way AppOptions._single_validate does
// (devices are not checked: they depend on the host).
func validateOptionValue(typ, value any) error {
	switch st := typ.(type) {
	case []any:
		list, ok := value.([]any)
		if !ok {
			return fmt.Errorf("%v is not a list", value)
		}
		for i, e := range list {
			if err := validateOptionValue(st[0], e); err != nil {
				return fmt.Errorf("item %d: %w", i+1, err)
			}
		}
		return nil
	case map[string]any:
		m, ok := value.(map[string]any)
		if !ok {
			return fmt.Errorf("%v is not a mapping", value)
		}
		for k, e := range m {
			sub, ok := st[k]
			if !ok {
				return fmt.Errorf("%s: not in the schema", k)
			}
			if err := validateOptionValue(sub, e); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	}
	s := strings.TrimSuffix(typ.(string), "?")
	if value == nil {
		return fmt.Errorf("missing")
	}
	m := reSchemaElement.FindStringSubmatch(typ.(string))
	if m == nil {
		return fmt.Errorf("%q is not a schema element", s)
	}
	text := fmt.Sprint(value)
	switch {
	case s == "bool":
		if _, ok := value.(bool); !ok {
			return fmt.Errorf("%v is not a boolean", value)
		}
	case strings.HasPrefix(s, "str"), strings.HasPrefix(s, "password"):
		switch value.(type) {
		case string, int, float64:
		default:
			return fmt.Errorf("%v is not a string", value)
		}
	case strings.HasPrefix(s, "int"), strings.HasPrefix(s, "float"), s == "port":
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return fmt.Errorf("%v is not a number", value)
		}
		if strings.HasPrefix(s, "int") && f != math.Trunc(f) {
			return fmt.Errorf("%v is not an integer", value)
		}
		lo, hi := m[6], m[7]
		if strings.HasPrefix(s, "float") {
			lo, hi = m[8], m[9]
		}
		if s == "port" {
			lo, hi = "1", "65535"
		}
		if lo != "" {
			if l, _ := strconv.ParseFloat(lo, 64); f < l {
				return fmt.Errorf("%v < %s", value, lo)
			}
		}
		if hi != "" {
			if h, _ := strconv.ParseFloat(hi, 64); f > h {
				return fmt.Errorf("%v > %s", value, hi)
			}
		}
	case s == "email":
		if !strings.Contains(text, "@") {
			return fmt.Errorf("%v is not an email address", value)
		}
	case s == "url":
		u, err := url.Parse(text)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("%v is not a URL", value)
		}
	case strings.HasPrefix(s, "match("):
		re := regexp.MustCompile(m[10])
		// Python's re.match anchors at the start only.
		if loc := re.FindStringIndex(text); loc == nil || loc[0] != 0 {
			return fmt.Errorf("%q does not match %s", text, m[10])
		}
	case strings.HasPrefix(s, "list("):
		if !slices.Contains(strings.Split(m[11], "|"), text) {
			return fmt.Errorf("%q is not one of %s", text, m[11])
		}
	case strings.HasPrefix(s, "device"):
		if _, ok := value.(string); !ok {
			return fmt.Errorf("%v is not a device path", value)
		}
	}
	return nil
}

// The options' schema validation itself, against values the Supervisor would accept or reject.
func TestAddonOptionValueValidation(t *testing.T) {
	m := readAddonManifest(t)
	good := map[string][]any{
		"allow_ieee":               {[]any{"0x00124b0012345678", "00124b0012345678", "00:12:4b:00:12:34:56:78"}},
		"allow_manufacturer_codes": {[]any{"0x115F", "4447", "0XFFFF"}},
		"base_topic":               {"otabridge", "o", "home/ota", "ota-2"},
		"baud_rate":                {115200, "460800"},
		"max_concurrent":           {1, 8},
		"upgrade_delay":            {0, 86400},
		"index_urls":               {[]any{"https://example.com/index.json"}},
	}
	bad := map[string][]any{
		"allow_ieee":               {[]any{"0x1234"}, []any{"0x00124b00123456789"}, "0x00124b0012345678"},
		"allow_manufacturer_codes": {[]any{"IKEA"}, []any{"0x12345"}},
		"base_topic":               {"", "/ota", "ota/", "ota/#", "a+b", "two words"},
		"baud_rate":                {9600},
		"max_concurrent":           {0, 9},
		"upgrade_delay":            {-1, 86401},
		"radio_type":               {"znp"},
		"index_urls":               {[]any{"not a url"}},
	}
	for key, vals := range good {
		for _, v := range vals {
			assert.NoError(t, validateOptionValue(m.schema[key], v), "%s = %v", key, v)
		}
	}
	for key, vals := range bad {
		for _, v := range vals {
			assert.Error(t, validateOptionValue(m.schema[key], v), "%s = %v", key, v)
		}
	}
}

func toStrings(t *testing.T, v any) []string {
	t.Helper()
	list, ok := v.([]any)
	require.True(t, ok, "%v is not a list", v)
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		require.True(t, ok, "%v is not a string", e)
		out = append(out, s)
	}
	return out
}

// The environment variables the root Dockerfile sets and documents for `docker run` are configuration keys
// (an OTABRIDGE_ variable that names no key would be ignored without a word).
func TestDockerfileEnvironmentIsConfiguration(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	require.NoError(t, err)
	vars := regexp.MustCompile(`(OTABRIDGE_[A-Z0-9_]+)=(\S+)`).FindAllStringSubmatch(string(b), -1)
	require.NotEmpty(t, vars)
	base, err := LoadConfig("", []string{"OTABRIDGE_MQTT_SERVER=mqtt://127.0.0.1:1883"})
	require.NoError(t, err)
	var all []string
	for _, v := range vars {
		name, value := v[1], strings.TrimSuffix(v[2], `\`)
		if name == "OTABRIDGE_KEY_PATH" {
			continue
		}
		all = append(all, name+"="+value)
		// Each variable on its own changes the configuration (radio.port only matters with radio.type).
		env := []string{"OTABRIDGE_MQTT_SERVER=mqtt://127.0.0.1:1883", "OTABRIDGE_RADIO_TYPE=ezsp",
			"OTABRIDGE_RADIO_PORT=/dev/null", name + "=" + value}
		cfg, err := LoadConfig("", env)
		require.NoError(t, err, name)
		ref, err := LoadConfig("", env[:3])
		require.NoError(t, err)
		if name != "OTABRIDGE_RADIO_TYPE" && name != "OTABRIDGE_RADIO_PORT" && name != "OTABRIDGE_MQTT_SERVER" {
			assert.NotEqual(t, ref.Summary(), cfg.Summary(), "%s changes no configuration key", name)
		}
	}
	cfg, err := LoadConfig("", all)
	require.NoError(t, err)
	assert.NotEqual(t, base.Summary(), cfg.Summary())
	assert.Equal(t, "/data", cfg.DataDir)
	assert.Equal(t, "/data/images", cfg.Images.Folder)
	assert.Equal(t, "/dev/ttyACM0", cfg.Radio.Port)
}

// linterKey is one property of frenck/action-addon-linter's src/config.schema.json (2026-04): its JSON
// type(s), its enum, and its default (nil: none). The linter refuses unknown keys (additionalProperties
// false) and, in src/lint.py's check_is_default, any key written out at its default.
type linterKey struct {
	types []string
	enum  []string
	def   any
}

var linterSchema = func() map[string]linterKey {
	b := func(def bool) linterKey { return linterKey{types: []string{"boolean"}, def: def} }
	str := func(def any, enum ...string) linterKey {
		return linterKey{types: []string{"string"}, def: def, enum: enum}
	}
	arr := linterKey{types: []string{"array"}}
	obj := func(def any) linterKey { return linterKey{types: []string{"object"}, def: def} }
	empty := map[string]any{}
	return map[string]linterKey{
		"advanced": b(false), "apparmor": {types: []string{"string", "boolean"}, def: true}, "arch": arr,
		"audio": b(false), "auth_api": b(false), "auto_uart": b(false), "backup": str("hot", "hot", "cold"),
		"backup_exclude": arr, "backup_pre": str(nil), "backup_post": str(nil),
		"boot": str("auto", "auto", "manual", "manual_only"), "breaking_versions": arr, "codenotary": str(nil),
		"description": str(nil), "devices": arr, "devicetree": b(false), "discovery": arr, "docker_api": b(false),
		"environment": obj(nil), "full_access": b(false), "gpio": b(false), "hassio_api": b(false),
		"hassio_role":   str("default", "admin", "backup", "default", "homeassistant", "manager"),
		"homeassistant": str(false), "homeassistant_api": b(false), "host_dbus": b(false), "host_ipc": b(false),
		"host_network": b(false), "host_pid": b(false), "host_uts": b(false), "image": str(nil), "ingress": b(false),
		"ingress_entry": str(nil), "ingress_port": {types: []string{"integer"}, def: 8099}, "ingress_stream": b(false),
		"init": b(true), "journald": b(false), "kernel_modules": b(false), "legacy": b(false), "machine": arr,
		"map": arr, "name": str(nil), "options": obj(empty), "panel_admin": b(true), "panel_icon": str("mdi:puzzle"),
		"panel_title": str(nil), "ports": obj(nil), "ports_description": obj(nil), "privileged": arr,
		"realtime": b(false), "schema": obj(empty), "services": arr, "slug": str(nil),
		"stage":   str("stable", "deprecated", "experimental", "stable"),
		"startup": str("application", "application", "initialize", "once", "services", "system"),
		"stdin":   b(false), "timeout": {types: []string{"integer"}, def: 10},
		"tmpfs": {types: []string{"string", "boolean"}, def: false}, "uart": b(false), "udev": b(false),
		"ulimits": obj(empty), "url": str(nil), "usb": b(false), "version": str(nil), "video": b(false),
		"watchdog": str(nil), "webui": str(nil),
	}
}()

// linterMapEntry is the schema's pattern of a string map entry.
var linterMapEntry = regexp.MustCompile(`^(addon_config|all_addon_configs|config|homeassistant_config|ssl|addons|backup|share|media)(:(rw|ro))?$`)

func jsonType(v any) string {
	switch v.(type) {
	case bool:
		return "boolean"
	case int, int64, uint64:
		return "integer"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// linterErrors applies the linter's rules that matter for otabridge's manifest: required keys, known keys
// with the right types and enums, no key at its default, map entries, and lint.py's own errors.
func linterErrors(raw map[string]any) []string {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	for _, k := range []string{"arch", "description", "name", "slug", "version"} {
		if _, ok := raw[k]; !ok {
			add("%q is a required property", k)
		}
	}
	for k, v := range raw {
		rule, ok := linterSchema[k]
		if !ok {
			add("additional property %q is not allowed", k)
			continue
		}
		if !slices.Contains(rule.types, jsonType(v)) {
			add("%q: %v is not of type %v", k, v, rule.types)
			continue
		}
		if len(rule.enum) > 0 && !slices.Contains(rule.enum, v.(string)) {
			add("%q: %v is not one of %v", k, v, rule.enum)
		}
		if rule.def != nil && reflect.DeepEqual(v, rule.def) {
			add("'%s' should be removed, it uses a default value", k)
		}
	}
	if list, ok := raw["map"].([]any); ok {
		for _, e := range list {
			if s, ok := e.(string); !ok || !linterMapEntry.MatchString(s) {
				add("map entry %v does not match the schema", e)
			}
		}
	}
	if raw["watchdog"] != nil {
		add("'watchdog', is obsolete. Use the native Docker HEALTHCHECK directive instead.")
	}
	if _, ok := raw["auto_uart"]; ok {
		add("'auto_uart' is deprecated, use 'uart' instead.")
	}
	if _, ok := raw["codenotary"]; ok {
		add("'codenotary' is deprecated and no longer used.")
	}
	if devices, ok := raw["devices"].([]any); ok {
		for _, d := range devices {
			if s, _ := d.(string); strings.Contains(s, ":") {
				add("'devices' uses a deprecated format")
			}
		}
	}
	if raw["full_access"] == true {
		for _, k := range []string{"devices", "gpio", "uart", "usb"} {
			if _, ok := raw[k]; ok {
				add("'full_access', don't add %q", k)
			}
		}
	}
	sort.Strings(errs)
	return errs
}

// Our manifest passes the add-on linter's rules; and the rules do catch what they are about (each mutation
// below is an error the linter reports).
func TestAddonManifestLinterRules(t *testing.T) {
	m := readAddonManifest(t)
	assert.Empty(t, linterErrors(m.raw), "addon/config.yaml against frenck/action-addon-linter's rules")
	for name, mutate := range map[string]func(map[string]any){
		"boot at its default":    func(r map[string]any) { r["boot"] = "auto" },
		"startup at its default": func(r map[string]any) { r["startup"] = "application" },
		"backup at its default":  func(r map[string]any) { r["backup"] = "hot" },
		"init at its default":    func(r map[string]any) { r["init"] = true },
		"unknown key":            func(r map[string]any) { r["webui_port"] = 1 },
		"wrong type":             func(r map[string]any) { r["uart"] = "yes" },
		"not in the enum":        func(r map[string]any) { r["stage"] = "beta" },
		"map type unknown":       func(r map[string]any) { r["map"] = []any{"app_config:rw"} },
		"watchdog":               func(r map[string]any) { r["watchdog"] = "tcp://[HOST]:8099" },
		"required key missing":   func(r map[string]any) { delete(r, "slug") },
	} {
		raw := maps.Clone(m.raw)
		mutate(raw)
		assert.NotEmpty(t, linterErrors(raw), name)
	}
}

// The schema of allow_manufacturer_codes accepts exactly the codes the add-on accepts at start (0..0xFFFF),
// so the options form never takes a value the add-on then refuses.
func TestAddonManufacturerCodeSchemaMatchesGo(t *testing.T) {
	m := readAddonManifest(t)
	schema := m.schema["allow_manufacturer_codes"]
	check := func(s string) {
		_, goOK := parseManufacturerCodeOption(s)
		schemaOK := validateOptionValue(schema, []any{s}) == nil
		if goOK != schemaOK {
			t.Errorf("%q: schema accepts %v, add-on accepts %v", s, schemaOK, goOK)
		}
	}
	for n := 0; n <= 100000; n += 37 {
		check(strconv.Itoa(n))
	}
	for _, n := range []int{0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 59999, 60000, 64999, 65000, 65499, 65500,
		65529, 65530, 65534, 65535, 65536, 65539, 65540, 65599, 65600, 65999, 66000, 69999, 70000, 99999, 100000} {
		check(strconv.Itoa(n))
	}
	for n := 0; n <= 0x10000; n += 0x7f {
		check(fmt.Sprintf("0x%x", n))
		check(fmt.Sprintf("0X%04X", n))
	}
	for _, s := range []string{"0xFFFF", "0x10000", "0x", "007", "0447", "", "-1", "1e3", "0x1_0", "65535", "65536", "99999"} {
		check(s)
	}
	v, ok := parseManufacturerCodeOption("4447")
	assert.True(t, ok)
	assert.Equal(t, uint16(4447), v)
	v, ok = parseManufacturerCodeOption("0x115F")
	assert.True(t, ok)
	assert.Equal(t, uint16(0x115F), v)
}
