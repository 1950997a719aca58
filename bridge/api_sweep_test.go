package bridge_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/ota"
)

// The bad-input sweep of the request API: every request path gets generated bad payloads — malformed JSON
// (a valid-looking payload cut at every byte, non-objects, garbage bytes, trailing data, deep nesting),
// every wrong JSON type for every field, every missing required field, unknown keys, unknown ids and huge
// payloads — while a firmware transfer runs. Each is refused with an error response that says what is
// wrong, nothing changes, and the transfer completes byte-exact.

// sweepKind is the JSON type a request field takes.
type sweepKind int

const (
	kindString  sweepKind = iota // a JSON string
	kindDevice                   // a JSON string naming a device (IEEE or friendly name)
	kindImage                    // a JSON string naming an image id
	kindUint                     // a whole number (JSON number or decimal/0x string) up to max
	kindStrList                  // a string or a list of strings (filter.id)
	kindObject                   // the filter object
)

// sweepField is one field of a request path's payload.
type sweepField struct {
	name     string
	kind     sweepKind
	required bool
	max      uint64 // kindUint
	min      uint64 // kindUint: values below are refused too (image/notify's jitter)
	// valid is the value the base payload carries (JSON text).
	valid string
	// sub are the fields of an object.
	sub []sweepField
}

// sweepSchemas describes every request path's payload; a path of the route table missing here fails the
// test, so a new path cannot escape the sweep.
func sweepSchemas(light, lightImage string) map[string][]sweepField {
	id := sweepField{name: "id", kind: kindDevice, required: true, valid: `"` + light + `"`}
	version := sweepField{name: "version", kind: kindUint, max: 0xFFFFFFFF, valid: `"0x01010000"`}
	filter := sweepField{name: "filter", kind: kindObject, valid: `{"id":["` + light + `"],"model":"ESP32C6.Light",` +
		`"manufacturer":"Espressif","manufacturer_code":"0x131b"}`, sub: []sweepField{
		{name: "id", kind: kindStrList, valid: `["` + light + `"]`},
		{name: "model", kind: kindString, valid: `"ESP32C6.Light"`},
		{name: "manufacturer", kind: kindString, valid: `"Espressif"`},
		{name: "manufacturer_code", kind: kindUint, max: 0xFFFF, valid: `"0x131b"`},
	}}
	campaign := sweepField{name: "id", kind: kindString, required: true, valid: `"no-such-campaign"`}
	return map[string][]sweepField{
		"device/ota_update/check":      {id},
		"device/ota_update/update":     {id, version},
		"device/ota_update/schedule":   {id, version},
		"device/ota_update/unschedule": {id},
		"device/ota_update/approve":    {id},
		"device/ota_update/reject":     {id},
		"device/ota_update/abort":      {id},
		"device/interview":             {id},
		"device/rename":                {id, {name: "name", kind: kindString, required: true, valid: `"kitchen"`}},
		"ota/check_all":                {filter},
		"ota/update_all":               {filter},
		"image/add": {{name: "url", kind: kindString, valid: `"https://example.com/a.ota"`},
			{name: "path", kind: kindString}, {name: "data", kind: kindString}, {name: "file_name", kind: kindString}},
		"image/remove":    {{name: "id", kind: kindImage, required: true, valid: `"` + lightImage + `"`}},
		"image/notify":    {{name: "image", kind: kindImage, valid: `"` + lightImage + `"`}, {name: "id", kind: kindDevice, valid: `"` + light + `"`}, {name: "jitter", kind: kindUint, min: 1, max: 100, valid: `50`}},
		"image/refresh":   {},
		"permit_join":     {{name: "time", kind: kindUint, required: true, max: 254, valid: `0`}},
		"campaign/pause":  {campaign},
		"campaign/resume": {campaign},
		"campaign/cancel": {campaign},
		"campaign/remove": {campaign},
		"network/scan":    {},
	}
}

// sweepCase is one generated bad payload and what its error must say (any of want).
type sweepCase struct {
	name    string
	payload []byte
	want    []string
}

// sweepObject writes a JSON object from ordered key/value pairs (values are JSON text).
func sweepObject(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[i])
		b.Write(k)
		b.WriteByte(':')
		b.WriteString(kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}

// sweepBaseKV is the base payload of a path: every field with its valid value, except those in skip, plus
// extra pairs.
func sweepBaseKV(fields []sweepField, skip string, extra ...string) []string {
	var kv []string
	for _, f := range fields {
		if f.name != skip && f.valid != "" {
			kv = append(kv, f.name, f.valid)
		}
	}
	return append(kv, extra...)
}

// sweepWrongValues are JSON values of the wrong type, or out of range, for a field of kind k; none of them is
// accepted by the API (null is "absent", so it is used only for required fields).
func sweepWrongValues(f sweepField) []string {
	notString := []string{`5`, `-1`, `1.5`, `true`, `false`, `[]`, `{}`, `["x"]`, `{"x":1}`}
	switch f.kind {
	case kindString, kindDevice, kindImage:
		return notString
	case kindUint:
		vals := []string{`true`, `[]`, `{}`, `[1]`, `{"v":1}`, `"abc"`, `""`, `" "`, `"0x"`, `"0xZZ"`, `-1`, `"-1"`, `1.5`,
			`"1.5"`, `1e400`, `-0.5`, fmt.Sprint(f.max + 1), fmt.Sprintf(`"0x%x"`, f.max+1), `18446744073709551616`}
		if f.min > 0 {
			vals = append(vals, fmt.Sprint(f.min-1))
		}
		return vals
	case kindStrList:
		return []string{`5`, `true`, `{}`, `[1]`, `[["x"]]`, `[{"id":"x"}]`}
	case kindObject:
		return []string{`5`, `"x"`, `true`, `[]`, `[{}]`}
	}
	return nil
}

// sweepUnknownIDs are ids of a kind that name nothing.
func sweepUnknownIDs(k sweepKind, rng *rand.Rand) []string {
	ids := []string{`"0x0000000000000000"`, `"0xffffffffffffffff"`, `"0x00124b00000000011"`, `"kitchen"`,
		`"k\u00fcche \u2603"`, `"../../etc/passwd"`, `"otabridge/#"`, `"` + strings.Repeat("x", 5000) + `"`}
	for i := 0; i < 3; i++ {
		ids = append(ids, fmt.Sprintf(`"0x%016x"`, rng.Uint64()))
	}
	if k == kindImage {
		ids = append(ids, `"1234-0001-00000002-deadbeef"`)
	}
	return ids
}

// sweepCases generates the bad payloads of one path.
func sweepCases(path string, fields []sweepField, rng *rand.Rand) []sweepCase {
	var cases []sweepCase
	add := func(name, payload string, want ...string) {
		cases = append(cases, sweepCase{name: name, payload: []byte(payload), want: want})
	}
	// Malformed JSON: the full payload (with a transaction) cut at every byte.
	full := sweepObject(sweepBaseKV(fields, "", "transaction", `"sweep"`)...)
	for n := 1; n < len(full); n++ {
		add(fmt.Sprintf("cut at %d", n), full[:n], "invalid JSON", "must be a JSON object")
	}
	for _, p := range []string{`[]`, `[` + full + `]`, `"` + path + `"`, `5`, `-0`, `true`, `null`, `nul`, `{]`, `}`, `{"id"}`,
		`{"id":}`, `{,}`, `{"a":1,}`, `{'id':'x'}`, `{"id":"x"`, "\x00", "\xff\xfe{}", "{\x00}", `{"\u0000`,
		full + ` {}`, full + full, full + ` x`, `{}` + strings.Repeat(" ", 1000) + `[]`} {
		add("malformed "+sweepTruncate(p, 24), p, "invalid JSON", "must be a JSON object")
	}
	add("deep nesting", `{"x":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+`}`, "invalid JSON")
	// Unknown keys.
	for _, k := range []string{"bogus", "", "ID", "Id", "id ", "transaction2", "d\u00e9vice", strings.Repeat("k", 3000)} {
		kj, _ := json.Marshal(k)
		add("unknown key "+sweepTruncate(k, 16), sweepObject(sweepBaseKV(fields, "", k, `1`)...), "unknown key "+string(kj[:min(len(kj), 60)]))
	}
	many := sweepBaseKV(fields, "")
	for i := 0; i < 5000; i++ {
		many = append(many, fmt.Sprintf("k%05d", i), `0`)
	}
	add("5000 unknown keys", sweepObject(many...), `unknown key "k00000"`)
	for _, f := range fields {
		quoted := `"` + f.name + `"`
		// Wrong types and out-of-range values.
		for _, v := range sweepWrongValues(f) {
			want := []string{quoted + " must be"}
			if f.kind == kindUint && f.name == "jitter" {
				want = append(want, `"jitter" must be 1..100`)
			}
			add(fmt.Sprintf("%s = %s", f.name, sweepTruncate(v, 24)), sweepObject(sweepBaseKV(fields, f.name, f.name, v)...), want...)
		}
		if f.kind == kindObject {
			for _, sf := range f.sub {
				for _, v := range sweepWrongValues(sf) {
					sub := sweepObject(sweepBaseKV(f.sub, sf.name, sf.name, v)...)
					add(fmt.Sprintf("%s.%s = %s", f.name, sf.name, sweepTruncate(v, 24)), sweepObject(sweepBaseKV(fields, f.name, f.name, sub)...),
						`"`+sf.name+`" must be`)
				}
			}
			add(f.name+" with an unknown key", sweepObject(sweepBaseKV(fields, f.name, f.name, sweepObject(sweepBaseKV(f.sub, "", "colour", `"red"`)...))...),
				`unknown key "colour"`)
			for _, id := range sweepUnknownIDs(kindDevice, rng) {
				add(f.name+".id unknown "+sweepTruncate(id, 24), sweepObject(sweepBaseKV(fields, f.name, f.name, sweepObject("id", id))...), "unknown device")
			}
		}
		// Missing required fields (null counts as missing).
		if f.required {
			add("missing "+f.name, sweepObject(sweepBaseKV(fields, f.name)...), "missing "+quoted)
			add(f.name+" null", sweepObject(sweepBaseKV(fields, f.name, f.name, `null`)...), "missing "+quoted)
			if f.kind != kindUint {
				add(f.name+" empty", sweepObject(sweepBaseKV(fields, f.name, f.name, `"  "`)...), quoted+" must not be empty")
			}
		}
		// Unknown ids.
		if f.kind == kindDevice || f.kind == kindImage {
			want := "unknown device"
			if f.kind == kindImage {
				want = "unknown image"
			}
			for _, id := range sweepUnknownIDs(f.kind, rng) {
				add(f.name+" unknown "+sweepTruncate(id, 24), sweepObject(sweepBaseKV(fields, f.name, f.name, id)...), want)
			}
		}
	}
	return cases
}

func sweepTruncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// TestSweepBadRequestsDuringTransfer runs the generated bad payloads of every request path against a
// bridge that is upgrading the light meanwhile.
func TestSweepBadRequestsDuringTransfer(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE, bridgetest.HueIEEE)
	light, hue := bridgetest.LightIEEE, bridgetest.HueIEEE
	// The light's client waits 80 ms between block requests: at speed 5 its 41 KB transfer takes about 12 s,
	// so that it outlasts the sweep (about 1 s, 5 s under -race on two busy cores).
	bridgetest.SimDevice(t, &cfg, light).MinimumBlockPeriod = 80
	bridgetest.SimDevice(t, &cfg, light).MaxDataSize = 64 // 64 B blocks: 223 B ones would go out fragmented, 3.5× fewer
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{Speed: 5})
	rec := h.Rec
	for _, ieee := range []string{light, hue} {
		rec.WaitFor("the first OTA state of "+ieee, h.Topic(ieee+"/ota"), 0, nil)
	}
	imagesMsg := rec.WaitFor("bridge/images", h.Topic("bridge/images"), 0, nil)
	var images []struct {
		ID       string `json:"id"`
		FileName string `json:"file_name"`
	}
	if err := json.Unmarshal(imagesMsg.Payload, &images); err != nil {
		t.Fatalf("bridge/images: %v", err)
	}
	var lightImage string
	for _, img := range images {
		if img.FileName == "esp32c6-light-1.1.0.ota" {
			lightImage = img.ID
		}
	}
	if lightImage == "" {
		t.Fatalf("no light image in %s", imagesMsg.Payload)
	}

	// Start the transfer and wait until blocks flow.
	resp := h.Request("device/ota_update/update", map[string]any{"id": light})
	if resp.Status != "ok" {
		t.Fatalf("update: %s", resp.Payload)
	}
	rec.WaitFor("the light's transfer under way", h.Topic(light+"/ota"), 0, func(m bridgetest.Message) bool {
		st, ok := sweepOTA(m)
		return ok && st.State == "updating" && st.Bytes > 0
	})
	hueOTA, _ := rec.Last(h.Topic(hue + "/ota"))
	hueUpdate, _ := rec.Last(h.Topic(hue + "/update"))
	mark := rec.Mark()

	schemas := sweepSchemas(light, lightImage)
	paths := bridge.RequestPaths()
	rng := rand.New(rand.NewPCG(1, 2))
	table := map[string][]sweepCase{}
	total := 0
	for _, path := range paths {
		fields, ok := schemas[path]
		if !ok {
			t.Fatalf("request path %s has no schema in the sweep: add it", path)
		}
		table[path] = sweepCases(path, fields, rng)
		total += len(table[path])
	}
	// Huge payloads: above the 24 MiB limit, on two paths (the broker carries each one twice: to the bridge
	// and to the recorder), and a 1 MiB id.
	huge := []byte(`{"id":"` + light + `","pad":"` + strings.Repeat("x", 25<<20) + `"}`)
	for _, path := range []string{"device/ota_update/abort", "image/add"} {
		table[path] = append(table[path], sweepCase{name: "25 MiB payload", payload: huge, want: []string{"payload too large"}})
		total++
	}
	for _, path := range []string{"device/ota_update/update", "device/rename", "image/notify"} {
		table[path] = append(table[path], sweepCase{name: "1 MiB id", payload: []byte(`{"id":"` + strings.Repeat("x", 1<<20) + `"}`),
			want: []string{"unknown device"}})
		total++
	}

	// Paths run in parallel, each path's cases one after the other: a response is matched to its request by
	// path (an unparseable payload has no transaction to echo).
	start := time.Now()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		problems []string
		refused  int
	)
	for _, path := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range table[path] {
				resp, err := rec.TryRawRequest(h.Base, path, c.payload)
				mu.Lock()
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s, %s: %v", path, c.name, err))
					mu.Unlock()
					return
				}
				if p := sweepProblem(path, c, resp); p != "" {
					problems = append(problems, p)
				} else {
					refused++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, p := range problems {
		if i == 20 {
			t.Errorf("… and %d more", len(problems)-20)
			break
		}
		t.Error(p)
	}
	t.Logf("%d generated bad requests over %d paths refused in %s", refused, len(paths), took.Round(time.Millisecond))
	sweepEnd := rec.Mark()

	// The transfer ran on through the sweep: every state the light published meanwhile is a step of a
	// normal update (updating, then the reboot and the check) — never failed, aborted or queued again. The
	// light's client is slowed so that the transfer usually outlasts the sweep; on a busy machine the sweep
	// can take longer than the transfer, which is logged, not failed (the sweep's speed is wall-clock time).
	if m, ok := rec.Last(h.Topic(light + "/ota")); !ok {
		t.Fatal("no OTA state of the light")
	} else if st, _ := sweepOTA(m); st.State != "updating" {
		t.Logf("the light's transfer had ended (%q) when the sweep did: only part of the sweep ran during it", st.State)
	}
	normal := map[string]bool{"updating": true, "waiting_reboot": true, "verifying": true, "idle": true}
	for _, m := range rec.Messages(h.Topic(light+"/ota"), mark) {
		if m.Seq > sweepEnd {
			break
		}
		if st, _ := sweepOTA(m); !normal[st.State] {
			t.Errorf("the light's transfer was disturbed during the sweep: %s", m.Payload)
		}
	}

	// It completes: verified on the new version, and the device received the image byte for byte.
	rec.WaitFor("the light's ota_finished", h.Topic("bridge/event"), mark, bridgetest.EventIs("ota_finished", light))
	rec.WaitFor("the light idle", h.Topic(light+"/ota"), mark, func(m bridgetest.Message) bool {
		st, ok := sweepOTA(m)
		return ok && st.State == "idle"
	})
	st := h.Device(light).Status()
	if st.FileVersion != bridgetest.LightNew || st.Upgrades != 1 || st.Failures != 0 {
		t.Errorf("light after the sweep: version 0x%08x, %d upgrades, %d failed downloads", st.FileVersion, st.Upgrades, st.Failures)
	}
	if want := sweepServableSHA256(t, filepath.Join(bridgetest.RepoRoot(), "images", "esp32c6-light-1.1.0.ota")); st.ReceivedSHA256 != want {
		t.Errorf("the light received %x, want the image's %x", st.ReceivedSHA256, want)
	}

	// Nothing else changed.
	for _, m := range rec.Messages("", mark) {
		switch {
		case strings.HasPrefix(m.Topic, h.Topic("bridge/request/")), strings.HasPrefix(m.Topic, h.Topic("bridge/response/")),
			strings.HasPrefix(m.Topic, h.Topic(light+"/")):
		case m.Topic == h.Topic(hue+"/ota") && bytes.Equal(m.Payload, hueOTA.Payload),
			m.Topic == h.Topic(hue+"/update") && bytes.Equal(m.Payload, hueUpdate.Payload):
		case m.Topic == h.Topic("bridge/images") && bytes.Equal(m.Payload, imagesMsg.Payload):
		case m.Topic == h.Topic("bridge/state"):
			if bridgetest.Field(m, "state") != "online" {
				t.Errorf("bridge state: %s", m.Payload)
			}
		case m.Topic == h.Topic("bridge/info"):
			if bridgetest.Field(m, "permit_join") != false {
				t.Errorf("permit_join changed: %s", m.Payload)
			}
		case m.Topic == h.Topic("bridge/devices"):
			sweepCheckDevices(t, m, light, hue)
		case m.Topic == h.Topic("bridge/event"):
			ev, _ := bridgetest.ParseEvent(m)
			if ev.Data["id"] != light || !slices.Contains([]string{"ota_finished", "device_announce", "ota_query"}, ev.Type) {
				t.Errorf("unexpected event: %s", m.Payload)
			}
		case strings.HasPrefix(m.Topic, bridgetest.HAPrefix+"/"):
			// The light's discovery is published again after its reboot (new software version); nothing
			// else may be.
			if m.Seq <= sweepEnd || m.Topic != deviceConfigTopic(light) {
				t.Errorf("discovery changed: %s %s", m.Topic, sweepTruncate(string(m.Payload), 200))
			}
		default:
			t.Errorf("unexpected message: %s %s", m.Topic, sweepTruncate(string(m.Payload), 200))
		}
	}
	hs := h.Device(hue).Status()
	if hs.NotifiesHeard != 0 || hs.FileVersion != 0x01001f00 {
		t.Errorf("the Hue bulb was touched: %d notifies, version 0x%08x", hs.NotifiesHeard, hs.FileVersion)
	}
	if total != refused+len(problems) && len(problems) == 0 {
		t.Errorf("%d cases, %d refused", total, refused)
	}
}

// sweepProblem says what is wrong with the answer to a bad request ("" when it is refused right): status
// error, an error sentence that says what is wrong, the path's response topic, an empty data object.
func sweepProblem(path string, c sweepCase, resp bridgetest.Response) string {
	bad := func(format string, args ...any) string {
		return fmt.Sprintf("%s, %s: %s → ", path, c.name, sweepTruncate(string(c.payload), 80)) + fmt.Sprintf(format, args...)
	}
	if resp.Status != "error" {
		return bad("status %q, want error (response %s)", resp.Status, sweepTruncate(string(resp.Payload), 300))
	}
	if len(resp.Error) < 12 || strings.Contains(resp.Error, "%!") {
		return bad("error %q is not a clear sentence", resp.Error)
	}
	if !bytes.Contains(resp.Payload, []byte(`"data":{}`)) {
		return bad("error response %s should carry an empty data object", sweepTruncate(string(resp.Payload), 200))
	}
	for _, w := range c.want {
		if strings.Contains(resp.Error, w) {
			return ""
		}
	}
	// approve checks that a request is pending before it reads the rest of the payload.
	if path == "device/ota_update/approve" && strings.Contains(resp.Error, "no pending request") {
		return ""
	}
	return bad("error %q, want it to say one of %q", sweepTruncate(resp.Error, 200), c.want)
}

// sweepOTA reads the state of an `<base>/<name>/ota` message.
func sweepOTA(m bridgetest.Message) (struct {
	State string `json:"state"`
	Bytes uint32 `json:"bytes"`
}, bool) {
	var st struct {
		State string `json:"state"`
		Bytes uint32 `json:"bytes"`
	}
	return st, json.Unmarshal(m.Payload, &st) == nil && st.State != ""
}

// sweepCheckDevices checks a `bridge/devices` message: the same two devices under their own names, the
// idle one still idle.
func sweepCheckDevices(t *testing.T, m bridgetest.Message, light, idle string) {
	t.Helper()
	var list []struct {
		IEEE         string `json:"ieee"`
		FriendlyName string `json:"friendly_name"`
		OTAState     string `json:"ota_state"`
	}
	if err := json.Unmarshal(m.Payload, &list); err != nil {
		t.Errorf("bridge/devices: %v", err)
		return
	}
	var names []string
	for _, d := range list {
		names = append(names, d.IEEE+"="+d.FriendlyName)
		if d.IEEE == idle && d.OTAState != "idle" {
			t.Errorf("the idle device's OTA state changed: %s", m.Payload)
		}
	}
	sort.Strings(names)
	if want := []string{light + "=" + light, idle + "=" + idle}; !slices.Equal(names, want) {
		t.Errorf("devices changed: %v, want %v", names, want)
	}
}

// sweepServableSHA256 is the SHA-256 of an OTA file's servable region (what a device receives).
func sweepServableSHA256(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ota.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b[f.MagicOffset : f.MagicOffset+f.ImageSize()])
}
