package bridge_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
)

// badRequest is one payload a request path must refuse, and words the error sentence must contain.
type badRequest struct {
	name    string
	payload string
	want    string
}

// unknownKeyPayload is, per path, a payload that would be valid (and harmless: it is refused before
// anything happens) but for the key "bogus".
var unknownKeyPayload = map[string]string{
	"device/ota_update/check":      `{"id":"{light}","bogus":1}`,
	"device/ota_update/update":     `{"id":"{light}","bogus":1}`,
	"device/ota_update/schedule":   `{"id":"{light}","bogus":1}`,
	"device/ota_update/unschedule": `{"id":"{light}","bogus":1}`,
	"device/ota_update/approve":    `{"id":"{light}","bogus":1}`,
	"device/ota_update/reject":     `{"id":"{light}","bogus":1}`,
	"device/ota_update/abort":      `{"id":"{light}","bogus":1}`,
	"device/rename":                `{"id":"{light}","name":"kitchen","bogus":1}`,
	"device/interview":             `{"id":"{light}","bogus":1}`,
	"ota/check_all":                `{"bogus":1}`,
	"ota/update_all":               `{"bogus":1}`,
	"image/add":                    `{"bogus":1}`,
	"image/remove":                 `{"id":"x","bogus":1}`,
	"image/notify":                 `{"bogus":1}`,
	"image/refresh":                `{"bogus":1}`,
	"permit_join":                  `{"time":0,"bogus":1}`,
	"network/scan":                 `{"bogus":1}`,
}

// devicePaths take {"id"} of a device.
var devicePaths = []string{"device/ota_update/check", "device/ota_update/update", "device/ota_update/schedule",
	"device/ota_update/unschedule", "device/ota_update/approve", "device/ota_update/reject",
	"device/ota_update/abort", "device/rename", "device/interview"}

// badRequests returns the table: for every path of the route table the generic cases (invalid JSON, a JSON
// array, a JSON string, an unknown key), for the device paths the id cases, and each path's own.
func badRequests(t *testing.T, light, idle string) map[string][]badRequest {
	t.Helper()
	table := map[string][]badRequest{}
	for _, path := range bridge.RequestPaths() {
		unknown, ok := unknownKeyPayload[path]
		if !ok {
			t.Fatalf("request path %s has no bad-payload cases in this test: add them", path)
		}
		table[path] = []badRequest{
			{"invalid JSON", `{"id":`, "invalid JSON"},
			{"JSON array", `[{"id":"` + light + `"}]`, "must be a JSON object"},
			{"JSON string", `"` + light + `"`, "must be a JSON object"},
			{"JSON null", `null`, "must be a JSON object"},
			{"trailing data", `{} {}`, "invalid JSON"},
			{"unknown key", strings.ReplaceAll(unknown, "{light}", light), `unknown key "bogus"`},
		}
	}
	for _, path := range devicePaths {
		table[path] = append(table[path],
			badRequest{"id a number", `{"id":5}`, `"id" must be a string`},
			badRequest{"id an object", `{"id":{"ieee":"` + light + `"}}`, `"id" must be a string`},
			badRequest{"missing id", `{}`, `missing "id"`},
			badRequest{"empty id", `{"id":"  "}`, `"id" must not be empty`},
			badRequest{"unknown device", `{"id":"0x00000000deadbeef"}`, `unknown device "0x00000000deadbeef"`},
			badRequest{"unknown friendly name", `{"id":"kitchen"}`, `unknown device "kitchen"`},
		)
	}
	add := func(path string, cases ...badRequest) { table[path] = append(table[path], cases...) }
	for _, path := range []string{"device/ota_update/update", "device/ota_update/schedule"} {
		add(path,
			badRequest{"version too large", `{"id":"` + light + `","version":4294967296}`, `"version" must be at most 4294967295`},
			badRequest{"version negative", `{"id":"` + light + `","version":-1}`, `"version" must be a whole number`},
			badRequest{"version a fraction", `{"id":"` + light + `","version":1.5}`, `"version" must be a whole number`},
			badRequest{"version not a number", `{"id":"` + light + `","version":"new"}`, `"version" must be a whole number`},
			badRequest{"version a list", `{"id":"` + light + `","version":[1]}`, `"version" must be a whole number`},
			badRequest{"unknown image (no such version)", `{"id":"` + light + `","version":"0x09000000"}`, "no image for file version 0x09000000"},
		)
	}
	// Requests that do not fit the device's state: the light has an update available, the Hue bulb is idle.
	for _, id := range []string{light, idle} {
		add("device/ota_update/approve", badRequest{"nothing pending (" + id + ")", `{"id":"` + id + `"}`, "no pending request"})
		add("device/ota_update/reject", badRequest{"nothing pending (" + id + ")", `{"id":"` + id + `"}`, "no pending request"})
		add("device/ota_update/unschedule", badRequest{"not scheduled (" + id + ")", `{"id":"` + id + `"}`, "is not scheduled"})
		add("device/ota_update/abort", badRequest{"nothing running (" + id + ")", `{"id":"` + id + `"}`, "nothing to abort"})
	}
	add("device/ota_update/update", badRequest{"nothing newer", `{"id":"` + idle + `"}`, "no image newer than 0x01001f00"})
	add("device/ota_update/schedule", badRequest{"nothing newer", `{"id":"` + idle + `"}`, "no image newer than 0x01001f00"})
	add("device/rename",
		badRequest{"missing name", `{"id":"` + light + `"}`, `missing "name"`},
		badRequest{"name a number", `{"id":"` + light + `","name":7}`, `"name" must be a string`},
		badRequest{"name with a wildcard", `{"id":"` + light + `","name":"a+b"}`, "wildcard"},
		badRequest{"reserved name", `{"id":"` + light + `","name":"bridge"}`, "reserved"},
	)
	for _, path := range []string{"ota/check_all", "ota/update_all"} {
		add(path,
			badRequest{"filter not an object", `{"filter":5}`, `"filter" must be a JSON object`},
			badRequest{"filter unknown device", `{"filter":{"id":"0x00000000deadbeef"}}`, "unknown device"},
			badRequest{"filter unknown key", `{"filter":{"colour":"red"}}`, `unknown key "colour"`},
			badRequest{"filter manufacturer_code too large", `{"filter":{"manufacturer_code":70000}}`, `"manufacturer_code" must be at most 65535`},
		)
	}
	notOTA := base64.StdEncoding.EncodeToString([]byte("this is not a Zigbee OTA file at all"))
	add("image/add",
		badRequest{"no source", `{}`, "give exactly one of"},
		badRequest{"two sources", `{"url":"https://example.com/a.ota","path":"a.ota"}`, "give exactly one of"},
		badRequest{"three sources", `{"url":"https://example.com/a.ota","path":"a.ota","data":"AAAA","file_name":"a.ota"}`, "give exactly one of"},
		badRequest{"bad base64", `{"data":"not base64!!","file_name":"a.ota"}`, `"data" must be base64`},
		badRequest{"data without file_name", `{"data":"AAAA"}`, `missing "file_name"`},
		badRequest{"data not an OTA file", `{"data":"` + notOTA + `","file_name":"junk.ota"}`, "junk.ota"},
		badRequest{"path missing", `{"path":"no-such-file.ota"}`, "no-such-file.ota"},
		badRequest{"path outside the folder", `{"path":"/etc/passwd"}`, "outside the images folder"},
		badRequest{"url a number", `{"url":5}`, `"url" must be a string`},
	)
	add("image/remove",
		badRequest{"missing id", `{}`, `missing "id"`},
		badRequest{"id a number", `{"id":5}`, `"id" must be a string`},
		badRequest{"unknown image", `{"id":"no-such-image"}`, `unknown image "no-such-image"`},
	)
	add("image/notify",
		badRequest{"unknown image", `{"image":"no-such-image"}`, `unknown image "no-such-image"`},
		badRequest{"unknown device", `{"id":"0x00000000deadbeef"}`, "unknown device"},
		badRequest{"jitter 0", `{"jitter":0}`, `"jitter" must be 1..100`},
		badRequest{"jitter 101", `{"jitter":101}`, `"jitter" must be at most 100`},
		badRequest{"jitter a word", `{"jitter":"high"}`, `"jitter" must be a whole number`},
	)
	add("permit_join",
		badRequest{"time 999", `{"time":999}`, `"time" must be at most 254`},
		badRequest{"time negative", `{"time":-1}`, `"time" must be a whole number`},
		badRequest{"time a word", `{"time":"long"}`, `"time" must be a JSON number`},
		badRequest{"time a numeric string", `{"time":"10"}`, `"time" must be a JSON number`},
		badRequest{"missing time", `{}`, `missing "time"`},
	)
	return table
}

// refusalProblems says what is wrong with the response to a bad request (nothing when it is refused right).
func refusalProblems(path string, c badRequest, payload, txn string, hasTxn bool, resp bridgetest.Response) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("%s, %s: ", path, c.name)+fmt.Sprintf(format, args...))
	}
	switch {
	case resp.Status != "error":
		bad("%s → status %q, want error (response %s)", payload, resp.Status, resp.Payload)
	case !strings.Contains(resp.Error, c.want):
		bad("%s → error %q, want it to say %q", payload, resp.Error, c.want)
	case len(resp.Error) < 10 || strings.Contains(resp.Error, "%!"):
		bad("error %q is not a clear sentence", resp.Error)
	}
	if hasTxn {
		if string(resp.Transaction) != txn {
			bad("transaction %s, want %s echoed", resp.Transaction, txn)
		}
	} else if len(resp.Transaction) != 0 && string(resp.Transaction) != "null" {
		bad("transaction %s in the answer to an unparseable payload", resp.Transaction)
	}
	if !bytes.Contains(resp.Payload, []byte(`"data":{}`)) {
		bad("error response %s should carry an empty data object", resp.Payload)
	}
	return out
}

// withTransaction adds "transaction" (a JSON value) to a JSON object payload; other payloads are returned
// unchanged.
func withTransaction(payload string, txn string) (string, bool) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(strings.NewReader(payload))
	if dec.Decode(&m) != nil || m == nil || dec.More() {
		return payload, false
	}
	m["transaction"] = json.RawMessage(txn)
	out, _ := json.Marshal(m)
	return string(out), true
}

// TestITBadRequests sends every request path every kind of bad payload: each gets status "error" with a
// sentence that says what is wrong, on the path's response topic, with the transaction echoed, and nothing
// changes.
func TestITBadRequests(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE, bridgetest.HueIEEE)
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{Speed: 10})
	light := bridgetest.LightIEEE
	for _, ieee := range []string{light, bridgetest.HueIEEE} {
		waitDiscovery(t, h.Rec, deviceConfigTopic(ieee), 0)
		waitOTA(t, h, ieee, "the first OTA state", 0, func(otaState) bool { return true })
	}
	images := h.Rec.WaitFor("bridge/images", h.Topic("bridge/images"), 0, nil)
	otaBefore := map[string][]byte{}
	for _, ieee := range []string{light, bridgetest.HueIEEE} {
		m, _ := h.Rec.Last(h.Topic(ieee + "/ota"))
		otaBefore[ieee] = m.Payload
	}
	mark := h.Rec.Mark()

	// Paths run in parallel on goroutines of their own (t.Parallel would run only GOMAXPROCS at a time; the
	// work is waiting), each path's cases one after the other: a response is matched to its request by path,
	// since an unparseable payload has no transaction to echo.
	table := badRequests(t, light, bridgetest.HueIEEE)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		problems []string
		n        int
	)
	for _, path := range bridge.RequestPaths() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, c := range table[path] {
				txn := fmt.Sprintf(`"%s-%d"`, path, i) // any JSON value is echoed: strings and numbers here
				if i%2 == 1 {
					txn = fmt.Sprint(1000 + i)
				}
				payload, hasTxn := withTransaction(c.payload, txn)
				resp, err := h.Rec.TryRawRequest(h.Base, path, []byte(payload))
				var p []string
				if err != nil {
					p = []string{err.Error()}
				} else {
					p = refusalProblems(path, c, payload, txn, hasTxn, resp)
				}
				mu.Lock()
				n++
				problems = append(problems, p...)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d bad requests over %d paths refused", n, len(bridge.RequestPaths()))

	// An unknown path gets an error on its response topic too.
	for _, path := range []string{"device/ota_update/install", "nope", "device/ota_update/check/extra"} {
		resp := h.Rec.RawRequest(h.Base, path, []byte(`{"id":"`+light+`","transaction":"u"}`))
		if resp.Status != "error" || !strings.Contains(resp.Error, "unknown request") || string(resp.Transaction) != `"u"` {
			t.Errorf("unknown path %s: response %s", path, resp.Payload)
		}
	}

	// Nothing changed: no OTA or update state, no discovery, no image list, no permit-join was published,
	// the devices keep their states, and the light was never sent an Image Notify.
	// (A retained topic may be published again with the same payload.)
	lastBefore := map[string][]byte{}
	for _, m := range h.Rec.Messages("", 0)[:mark] {
		lastBefore[m.Topic] = m.Payload
	}
	for _, m := range h.Rec.Messages("", mark) {
		state := strings.HasSuffix(m.Topic, "/ota") || strings.HasSuffix(m.Topic, "/update")
		switch {
		case (state && !strings.HasPrefix(m.Topic, h.Topic("bridge/")) || strings.HasPrefix(m.Topic, bridgetest.HAPrefix+"/") ||
			m.Topic == h.Topic("bridge/images")) && !bytes.Equal(m.Payload, lastBefore[m.Topic]):
			t.Errorf("a refused request changed something: #%d %s %s", m.Seq, m.Topic, m.Payload)
		case m.Topic == h.Topic("bridge/info"):
			if bridgetest.Field(m, "permit_join") != false {
				t.Errorf("permit_join changed: %s", m.Payload)
			}
		case m.Topic == h.Topic("bridge/event"):
			if ev, _ := bridgetest.ParseEvent(m); strings.HasPrefix(ev.Type, "ota_") && ev.Type != "ota_query" &&
				ev.Type != "ota_available" || ev.Type == "approval_needed" {
				t.Errorf("event after refused requests: %s", m.Payload)
			}
		}
	}
	for ieee, before := range otaBefore {
		resp := h.Request("device/ota_update/check", map[string]any{"id": ieee})
		ok(t, resp)
		var st otaState
		_ = json.Unmarshal(before, &st)
		if resp.Data["state"] != st.State || resp.Data["friendly_name"] != ieee {
			t.Errorf("%s: state %v (name %v) after refused requests, want %s", ieee, resp.Data["state"], resp.Data["friendly_name"], st.State)
		}
	}
	if st := h.Device(light).Status(); st.NotifiesHeard != 0 || st.Queries != 0 || st.FileVersion != bridgetest.LightOld {
		t.Errorf("light after refused requests: %d notifies, %d queries, version 0x%08x", st.NotifiesHeard, st.Queries, st.FileVersion)
	}
	if imgs := h.Rec.Messages(h.Topic("bridge/images"), 0); !bytes.Equal(imgs[len(imgs)-1].Payload, images.Payload) {
		t.Errorf("the image list changed")
	}
}
