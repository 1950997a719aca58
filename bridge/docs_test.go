package bridge

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/otabridge/otabridge/ota"
)

// The documentation's promises about the configuration, checked against the real loader: README.md says
// config.yaml describes every key, and every configuration example in README.md and addon/DOCS.md must
// load as written.

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	file string
	line int // line of the opening fence
	lang string
	text string
}

// fencedBlocks returns the fenced code blocks of a Markdown file.
func fencedBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var blocks []docBlock
	var cur *docBlock
	var body strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fence := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(fence, "```"):
			cur = &docBlock{file: filepath.Base(path), line: n, lang: strings.TrimPrefix(fence, "```")}
			body.Reset()
		case cur != nil && fence == "```":
			cur.text = body.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	require.NoError(t, sc.Err())
	require.Nil(t, cur, "%s: a code block is not closed", path)
	return blocks
}

// configBlocks returns the YAML blocks of a Markdown file that show otabridge configuration (the others
// are Home Assistant automations, checked by the automation tests). It fails the test on a YAML block
// that is neither, so a new kind of example is not skipped unnoticed.
func configBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	known := map[string]bool{}
	for i := range reflect.TypeFor[Config]().NumField() {
		known[yamlName(reflect.TypeFor[Config]().Field(i))] = true
	}
	var out []docBlock
	for _, b := range fencedBlocks(t, path) {
		if b.lang != "yaml" {
			continue
		}
		// Dedent: a block inside a list item is indented with it.
		text := dedent(b.text)
		var top map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(text), &top), "%s:%d: the YAML example does not parse", b.file, b.line)
		if _, ok := top["automation"]; ok && len(top) == 1 {
			continue
		}
		for k := range top {
			assert.True(t, known[k], "%s:%d: the YAML example has the top-level key %q, neither a configuration section nor automation", b.file, b.line, k)
		}
		b.text = text
		out = append(out, b)
	}
	return out
}

// dedent removes the indentation of the block's first non-empty line from every line.
func dedent(s string) string {
	lines := strings.Split(s, "\n")
	indent := ""
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			indent = l[:len(l)-len(strings.TrimLeft(l, " "))]
			break
		}
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, indent)
	}
	return strings.Join(lines, "\n")
}

// Every configuration block of README.md loads with LoadConfig, as the user would paste it into
// config.yaml.
func TestReadmeConfigBlocksLoad(t *testing.T) {
	blocks := configBlocks(t, filepath.Join("..", "README.md"))
	require.GreaterOrEqual(t, len(blocks), 4, "README.md shows the ezsp, znp and zboss radio blocks and the campaign block")
	for _, b := range blocks {
		cfg, err := LoadConfig(writeConfig(t, b.text), nil)
		if !assert.NoError(t, err, "%s:%d: the configuration example does not load:\n%s", b.file, b.line, b.text) {
			continue
		}
		// What the blocks say is what the loader made of it.
		if strings.Contains(b.text, "type: ezsp") {
			assert.Equal(t, "hardware", cfg.Radio.FlowControl, "%s:%d", b.file, b.line)
			assert.Equal(t, 3, cfg.Radio.ASHWindow, "%s:%d", b.file, b.line)
			assert.Equal(t, 640, cfg.Radio.MaxFragmentedPayload, "%s:%d", b.file, b.line)
		}
		if strings.Contains(b.text, "max_concurrent: auto") {
			assert.Equal(t, ota.ConcurrencyAuto, cfg.OTA.MaxConcurrent, "%s:%d", b.file, b.line)
			assert.Equal(t, "pause", cfg.OTA.WindowEnd, "%s:%d", b.file, b.line)
			assert.Equal(t, 40, cfg.OTA.MinBattery, "%s:%d", b.file, b.line)
			assert.Len(t, cfg.OTA.Window, 2, "%s:%d", b.file, b.line)
		}
	}
}

// The configuration-file block of addon/DOCS.md loads as otabridge.yaml and survives the add-on options:
// with the max_concurrent option at its default (2), `max_concurrent: auto` of the file stands; another
// option value wins over the file.
func TestAddonDocsConfigBlocksLoad(t *testing.T) {
	blocks := configBlocks(t, filepath.Join("..", "addon", "DOCS.md"))
	require.NotEmpty(t, blocks, "DOCS.md shows the ota: block of maintenance windows and adaptive concurrency")
	for _, b := range blocks {
		path := writeConfig(t, b.text)
		cfg, err := LoadConfig(path, nil)
		if !assert.NoError(t, err, "%s:%d: the configuration example does not load:\n%s", b.file, b.line, b.text) {
			continue
		}
		o := DefaultAddonOptions()
		o.RadioType = "sim"
		require.NoError(t, o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883}), "%s:%d", b.file, b.line)
		if !strings.Contains(b.text, "max_concurrent: auto") {
			continue
		}
		assert.Equal(t, ota.ConcurrencyAuto, cfg.OTA.MaxConcurrent, "%s:%d: auto in the file stands while the option keeps its default", b.file, b.line)
		assert.Equal(t, "Europe/Berlin", cfg.OTA.WindowTimezone)
		assert.Equal(t, 40, cfg.OTA.MinBattery)

		cfg, err = LoadConfig(path, nil)
		require.NoError(t, err)
		o.MaxConcurrent = 3
		require.NoError(t, o.Apply(&cfg, &SupervisorMQTT{Host: "core-mosquitto", Port: 1883}))
		assert.Equal(t, ota.Concurrency(3), cfg.OTA.MaxConcurrent, "an option other than the default wins over the file")
	}
}

// README.md: "config.yaml is the documented default configuration; every key is described there." Every
// key the loader knows appears in the repository's config.yaml (lists of devices: the keys of one device
// are documented in ncp/sim/config.go, as the README says).
func TestRepoConfigYAMLHasEveryKey(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "config.yaml"))
	require.NoError(t, err)
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal(raw, &root))
	require.NotEmpty(t, root.Content)
	inFile := map[string]bool{}
	var walkNode func(n *yaml.Node, path string)
	walkNode = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := joinKey(path, n.Content[i].Value)
			inFile[key] = true
			walkNode(n.Content[i+1], key)
		}
	}
	walkNode(root.Content[0], "")

	var missing []string
	var walkType func(t reflect.Type, path string)
	walkType = func(t reflect.Type, path string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			key := joinKey(path, name)
			if !inFile[key] {
				missing = append(missing, key)
				continue
			}
			ft := f.Type
			if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
				walkType(ft, key)
			}
		}
	}
	walkType(reflect.TypeFor[Config](), "")
	assert.Empty(t, missing, "config.yaml does not show these keys (README: every key is described there)")
}

// The defaults README.md states (Configuration, Firmware images, Web console, How updates run, Update
// campaigns) are the loader's.
func TestConfigDefaultsInReadme(t *testing.T) {
	cfg, err := LoadConfig("", nil)
	require.NoError(t, err)
	o := cfg.OTA
	assert.Equal(t, "manual", o.Approval)
	assert.Equal(t, ota.Concurrency(2), o.MaxConcurrent)
	assert.Equal(t, 223, o.MaxBlockSize)
	assert.False(t, o.Fragmentation.Disabled)
	assert.Equal(t, 2, o.Fragmentation.Failures)
	assert.Equal(t, time.Duration(0), o.UpgradeDelay)
	assert.Equal(t, 30*time.Second, o.QueueWait)
	assert.Equal(t, 3, o.NotifyAttempts)
	assert.Equal(t, 30*time.Second, o.NotifyTimeout)
	assert.Equal(t, 2*time.Minute, o.StallTimeout)
	assert.Equal(t, 3, o.Retries)
	assert.Equal(t, time.Minute, o.RetryBackoff)
	assert.Equal(t, 20*time.Millisecond, o.MinPageSpacing)
	assert.Equal(t, "finish", o.WindowEnd)
	assert.Equal(t, 50, o.MinBattery)
	a := o.Adaptive
	assert.Equal(t, []any{1, 8, 2, 10 * time.Second, 2.0, 0.05, 8 * time.Millisecond, 0.25},
		[]any{a.Min, a.Max, a.Start, a.Interval, a.RTTFactor, a.RetryRatio, a.ChannelWait, a.MACRetryRatio},
		"ota.adaptive min, max, start, interval, rtt_factor, retry_ratio, channel_wait, mac_retry_ratio")

	assert.Equal(t, "images", cfg.Images.Folder)
	assert.Empty(t, cfg.Images.Indexes)
	assert.Equal(t, 24*time.Hour, cfg.Images.RefreshInterval)
	assert.Equal(t, int64(16<<20), cfg.Images.MaxImageSize)
	assert.Equal(t, 60*time.Second, cfg.Images.FetchTimeout)

	assert.True(t, cfg.Web.Enabled)
	assert.Equal(t, "127.0.0.1:8099", cfg.Web.Listen)
	assert.False(t, cfg.Web.Ingress)
	assert.False(t, cfg.MQTT.EmbeddedAllowAnonymousNetwork)
	assert.False(t, cfg.MQTT.InsecureSkipVerify)
}

// README: after Home Assistant's birth message the bridge re-publishes "with a random delay of up to 5 s".
func TestBirthDelayDefault(t *testing.T) {
	b, err := New(DefaultConfig(), Options{})
	require.NoError(t, err)
	assert.Equal(t, 5*time.Second, b.opts.BirthDelay)
}
