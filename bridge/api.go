package bridge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/redact"
	"github.com/otabridge/otabridge/zcl"
)

// The request API: `<base>/bridge/request/<path>` with a JSON object, answered on
// `<base>/bridge/response/<path>` with {"status":"ok"|"error","data":{…},"error":"…","transaction":…}.
// A bad payload gets an error response that says what is wrong, and changes nothing.

// maxRequestPayload bounds a request payload (image uploads are base64 inside it).
const maxRequestPayload = 24 << 20

// requestHandler handles one request; data is the response's data object.
type requestHandler func(ctx context.Context, req *request) (data any, err error)

// request is a parsed request payload.
type request struct {
	path   string
	fields map[string]json.RawMessage
	used   map[string]bool
}

// apiError is an error in the request itself (as opposed to a failure while carrying it out); both reach
// the user as the response's error sentence.
type apiError struct{ msg string }

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error { return &apiError{fmt.Sprintf(format, args...)} }

// parseRequest reads a request payload: a JSON object (an empty payload counts as {}).
func parseRequest(path string, payload []byte) (*request, json.RawMessage, error) {
	r := &request{path: path, fields: map[string]json.RawMessage{}, used: map[string]bool{"transaction": true}}
	if len(payload) > maxRequestPayload { // before trimming: padding counts too
		return r, nil, payloadTooLarge(int64(len(payload)))
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 {
		return r, nil, nil
	}
	// json.Unmarshal works on the payload in place (a Decoder would copy it into its buffer first: uploads
	// are megabytes); each field value is one copy.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		if payload[0] != '{' {
			return r, nil, badRequest("payload must be a JSON object, e.g. {\"id\":\"0x00124b0012345678\"}")
		}
		var syn *json.SyntaxError
		if errors.As(err, &syn) && strings.Contains(syn.Error(), "after top-level value") {
			return r, nil, badRequest("invalid JSON: data after the object")
		}
		return r, nil, badRequest("invalid JSON: %v", err)
	}
	if fields == nil {
		return r, nil, badRequest("payload must be a JSON object, not null")
	}
	r.fields = fields
	return r, fields["transaction"], nil
}

// str reads a string field; required says whether it must be present.
func (r *request) str(key string, required bool) (string, error) {
	r.used[key] = true
	raw, ok := r.fields[key]
	if !ok || string(raw) == "null" {
		if required {
			return "", badRequest("missing %q", key)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest("%q must be a string", key)
	}
	if required && strings.TrimSpace(s) == "" {
		return "", badRequest("%q must not be empty", key)
	}
	return s, nil
}

// base64Bytes reads a string field holding base64 (white space allowed) and decodes it straight from the
// payload's bytes, without the intermediate Go string; the field is dropped from the request once decoded,
// so an upload is not held twice. ok is false when the field is absent.
func (r *request) base64Bytes(key string) (data []byte, ok bool, err error) {
	r.used[key] = true
	raw, present := r.fields[key]
	if !present || string(raw) == "null" {
		return nil, false, nil
	}
	delete(r.fields, key)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, true, badRequest("%q must be a string", key)
	}
	text := raw[1 : len(raw)-1]
	if bytes.IndexByte(text, '\\') >= 0 { // JSON escapes (\/, \n): unescape first
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, true, badRequest("%q must be a string", key)
		}
		text = []byte(s)
	}
	text = bytes.TrimSpace(text)
	if len(text) == 0 {
		return nil, false, nil
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(out, text)
	if err != nil {
		return nil, true, badRequest("%q must be base64: %v", key, err)
	}
	return out[:n], true, nil
}

// uint reads an unsigned integer field given as a JSON number or a string ("0x1A", "26"); ok false when
// absent.
func (r *request) uint(key string, max uint64) (v uint64, ok bool, err error) {
	r.used[key] = true
	raw, present := r.fields[key]
	if !present || string(raw) == "null" {
		return 0, false, nil
	}
	var text string
	if len(raw) > 0 && raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, false, badRequest("%q must be a number", key)
		}
	} else {
		text = string(raw)
	}
	text = strings.TrimSpace(text)
	base := 10
	if t := strings.TrimPrefix(strings.TrimPrefix(text, "0x"), "0X"); t != text {
		text, base = t, 16
	}
	v, perr := strconv.ParseUint(text, base, 64)
	if perr != nil {
		if f, ferr := strconv.ParseFloat(text, 64); ferr == nil && base == 10 && f == math.Trunc(f) && f >= 0 && f <= float64(max) {
			return uint64(f), true, nil
		}
		return 0, false, badRequest("%q must be a whole number from 0 to %d (decimal or 0x hex)", key, max)
	}
	if v > max {
		return 0, false, badRequest("%q must be at most %d", key, max)
	}
	return v, true, nil
}

// object reads a nested object field.
func (r *request) object(key string) (*request, error) {
	r.used[key] = true
	raw, ok := r.fields[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return nil, badRequest("%q must be a JSON object", key)
	}
	return &request{path: r.path, fields: fields, used: map[string]bool{}}, nil
}

// strList reads a string or a list of strings.
func (r *request) strList(key string) ([]string, error) {
	r.used[key] = true
	raw, ok := r.fields[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, badRequest("%q must be a string or a list of strings", key)
	}
	return list, nil
}

// unknown returns an error naming the first key the handler did not read.
func (r *request) unknown() error {
	var extra []string
	for k := range r.fields {
		if !r.used[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return badRequest("unknown key %q", extra[0])
}

// version reads the optional "version" field (file version as a number or "0x…" string).
func (r *request) version() (*uint32, error) {
	v, ok, err := r.uint("version", math.MaxUint32)
	if err != nil || !ok {
		return nil, err
	}
	u := uint32(v)
	return &u, nil
}

// apiRoutes maps request paths to handlers.
func (b *Bridge) apiRoutes() map[string]requestHandler {
	return map[string]requestHandler{
		"device/ota_update/check":      b.apiCheck,
		"device/ota_update/update":     b.apiUpdate,
		"device/ota_update/schedule":   b.apiSchedule,
		"device/ota_update/unschedule": b.apiUnschedule,
		"device/ota_update/approve":    b.apiApprove,
		"device/ota_update/reject":     b.apiReject,
		"device/ota_update/abort":      b.apiAbort,
		"device/rename":                b.apiRename,
		"device/interview":             b.apiInterview,
		"ota/check_all":                b.apiCheckAll,
		"ota/update_all":               b.apiUpdateAll,
		"image/add":                    b.apiImageAdd,
		"image/remove":                 b.apiImageRemove,
		"image/notify":                 b.apiImageNotify,
		"image/refresh":                b.apiImageRefresh,
		"permit_join":                  b.apiPermitJoin,
		"network/scan":                 b.apiNetworkScan,
	}
}

// errRetainedRequest answers a request published with the retain flag.
var errRetainedRequest = &apiError{"request ignored: it was published with the retain flag, and a retained " +
	"request would run again on every start and reconnect; publish requests without retain (clear the " +
	"retained one with an empty retained message)"}

// refuseRetainedRequest answers a request the broker delivered as a retained message without running it
// (as zigbee2mqtt does): a retained device/rename or permit_join must not run again on every start.
func (b *Bridge) refuseRetainedRequest(path string, payload []byte) {
	_, txn, _ := parseRequest(path, payload)
	b.log.Warn().Str("request", path).Int("bytes", len(payload)).
		Msg("retained request ignored: requests must be published without the retain flag")
	b.respond(path, txn, nil, errRetainedRequest)
}

// Requests above largeRequest bytes (image uploads) take one of maxLargeRequests slots while they are
// decoded and stored; with every slot taken, another is refused at once. That bounds the memory a flood of
// uploads can take to a few times maxRequestPayload.
const (
	largeRequest     = 1 << 20
	maxLargeRequests = 2
)

// errBusyUploads is the answer to a large request while maxLargeRequests others are in progress.
var errBusyUploads = &apiError{fmt.Sprintf("busy: %d large requests (uploads) are in progress; try again when they are done", maxLargeRequests)}

// handleRequest runs one MQTT request and publishes its response.
func (b *Bridge) handleRequest(ctx context.Context, path string, payload []byte) {
	b.pub.event(b.topic("bridge/response/"+path), b.runRequest(ctx, "mqtt", path, payload))
}

// runRequest runs one request from source (mqtt or web) and returns its response document. MQTT and the
// web console share it, so both validate alike and answer with the same sentences.
func (b *Bridge) runRequest(ctx context.Context, source, path string, payload []byte) []byte {
	req, txn, err := parseRequest(path, payload)
	payload = nil // the fields hold what is needed; let an upload's raw payload go
	var data any
	if err == nil {
		h, ok := b.apiRoutes()[path]
		if !ok {
			err = badRequest("unknown request %q", path)
		} else {
			data, err = h(ctx, req)
		}
	}
	b.logResponse(path, source, err)
	return responseJSON(txn, data, err)
}

// admitLarge takes a slot for a large MQTT request (see largeRequest), or answers it "busy" at once and
// reports false. release gives the slot back (a no-op for small requests).
func (b *Bridge) admitLarge(path string, payload []byte) (release func(), ok bool) {
	release, ok = b.takeLargeSlot(len(payload))
	if !ok {
		b.respond(path, peekTransaction(payload), nil, errBusyUploads)
	}
	return release, ok
}

// takeLargeSlot takes one of the maxLargeRequests slots for a request of size bytes when it is large, MQTT
// or web console alike; false when every slot is taken.
func (b *Bridge) takeLargeSlot(size int) (release func(), ok bool) {
	if size <= largeRequest || size > maxRequestPayload {
		return func() {}, true // small, or refused as too large by parseRequest
	}
	select {
	case b.largeRequests <- struct{}{}:
		return func() { <-b.largeRequests }, true
	default:
		return nil, false
	}
}

// peekTransaction finds the "transaction" of a request without decoding the rest (best effort: a key at
// the top level near the start, as clients send it), for answers given before the payload is parsed.
func peekTransaction(payload []byte) json.RawMessage {
	key := []byte(`"transaction"`)
	i := bytes.Index(payload[:min(len(payload), 4096)], key)
	if i < 0 {
		return nil
	}
	rest := bytes.TrimLeft(payload[i+len(key):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return nil
	}
	var v json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&v); err != nil {
		return nil
	}
	return v
}

// respond publishes the response to an MQTT request answered without running it (refused before dispatch).
func (b *Bridge) respond(path string, txn json.RawMessage, data any, err error) {
	b.logResponse(path, "mqtt", err)
	b.pub.event(b.topic("bridge/response/"+path), responseJSON(txn, data, err))
}

// logResponse logs the outcome of a request, one line.
func (b *Bridge) logResponse(path, source string, err error) {
	if err != nil {
		b.log.Info().Str("request", path).Str("source", source).Str("error", redact.URLs(err.Error())).Msg("request refused")
		return
	}
	b.log.Info().Str("request", path).Str("source", source).Msg("request done")
}

// responseJSON is a response document: {"status":"ok","data":…} or {"status":"error","error":…}, with the
// request's transaction echoed. An error's URLs lose their credentials (a request's URL may carry them).
func responseJSON(txn json.RawMessage, data any, err error) []byte {
	resp := map[string]any{"status": "ok", "data": map[string]any{}}
	if txn != nil {
		resp["transaction"] = txn
	}
	if err != nil {
		resp["status"] = "error"
		resp["error"] = redact.URLs(err.Error())
	} else if data != nil {
		resp["data"] = data
	}
	out, jerr := json.Marshal(resp)
	if jerr != nil {
		out = []byte(`{"status":"error","data":{},"error":"internal error: response could not be encoded"}`)
	}
	return out
}

// payloadTooLarge is the refusal of a request payload of size bytes (more than maxRequestPayload).
func payloadTooLarge(size int64) error {
	return badRequest("payload too large (%d bytes, at most %d)", size, maxRequestPayload)
}

// idArg reads the required "id" (IEEE address or friendly name) and returns the device.
func (b *Bridge) idArg(req *request) (*Device, error) {
	id, err := req.str("id", true)
	if err != nil {
		return nil, err
	}
	d, ok := b.registry.Lookup(id)
	if !ok {
		return nil, badRequest("unknown device %q", id)
	}
	return &d, nil
}

// deviceOnly parses {"id"} and nothing else.
func (b *Bridge) deviceOnly(req *request) (*Device, error) {
	d, err := b.idArg(req)
	if err != nil {
		return nil, err
	}
	return d, req.unknown()
}

func (b *Bridge) deviceData(d *Device) map[string]any {
	m := map[string]any{"id": d.IEEE.String(), "friendly_name": d.FriendlyName}
	if st, ok := b.engine.State(d.IEEE); ok {
		m["state"] = st.State
	}
	return m
}

// ensureVersionKnown reads the device's OTA attributes when its installed version is not known yet.
func (b *Bridge) ensureVersionKnown(ctx context.Context, d *Device) error {
	if d.FileVersionKnown {
		return nil
	}
	if err := b.interviewShared(ctx, d.IEEE, true); err != nil {
		if err == errRadioBusy {
			return err
		}
		return fmt.Errorf("%s: installed version unknown and the device did not answer: %w", d.FriendlyName, err)
	}
	nd, _ := b.registry.Lookup(d.IEEE.String())
	*d = nd
	if !d.FileVersionKnown {
		return fmt.Errorf("%s: the device did not report its installed file version", d.FriendlyName)
	}
	return nil
}

func (b *Bridge) apiCheck(ctx context.Context, req *request) (any, error) {
	d, err := b.deviceOnly(req)
	if err != nil {
		return nil, err
	}
	return b.check(ctx, d)
}

func (b *Bridge) check(ctx context.Context, d *Device) (map[string]any, error) {
	if err := b.ensureVersionKnown(ctx, d); err != nil {
		return nil, err
	}
	res, err := b.engine.Check(d.IEEE)
	if err != nil {
		return nil, err
	}
	data := b.deviceData(d)
	data["update_available"] = res.UpdateAvailable
	data["installed_version"] = res.InstalledVersion
	data["latest_version"] = res.InstalledVersion
	if res.Image != nil {
		data["latest_version"] = ota.VersionString(res.Image.FileVersion)
		data["latest_display_version"] = res.Image.Version
		data["image"] = res.Image
	}
	data["state"] = res.State
	return data, nil
}

// approveLike runs update/schedule/approve: resolve the image, download it when it comes from a remote
// index, then hand it to the engine.
func (b *Bridge) approveLike(ctx context.Context, req *request, withVersion bool,
	op func(ieee zcl.IEEE, version *uint32) (*ota.Image, error)) (any, error) {
	d, err := b.idArg(req)
	if err != nil {
		return nil, err
	}
	var version *uint32
	if withVersion {
		if version, err = req.version(); err != nil {
			return nil, err
		}
	}
	if err := req.unknown(); err != nil {
		return nil, err
	}
	if version == nil {
		if err := b.ensureVersionKnown(ctx, d); err != nil {
			return nil, err
		}
	}
	img, err := b.engine.Resolve(d.IEEE, version)
	if err != nil {
		return nil, err
	}
	if !img.Local() {
		b.log.Info().Str("image", img.ID).Str("url", redact.URLs(img.Origin)).Msg("downloading image")
		if err := b.store.Ensure(ctx, img); err != nil {
			return nil, fmt.Errorf("download image %s: %w", img.ID, err)
		}
	}
	v := img.Header.FileVersion
	if _, err := op(d.IEEE, &v); err != nil {
		return nil, err
	}
	data := b.deviceData(d)
	if d.FileVersionKnown {
		data["from"] = ota.VersionString(d.FileVersion)
	}
	data["to"] = ota.VersionString(img.Header.FileVersion)
	data["to_display_version"] = img.DisplayVersion()
	data["image"] = img.ID
	return data, nil
}

func (b *Bridge) apiUpdate(ctx context.Context, req *request) (any, error) {
	return b.approveLike(ctx, req, true, b.engine.Update)
}

func (b *Bridge) apiSchedule(ctx context.Context, req *request) (any, error) {
	return b.approveLike(ctx, req, true, b.engine.Schedule)
}

func (b *Bridge) apiApprove(ctx context.Context, req *request) (any, error) {
	d, err := b.deviceOnly(req) // the payload is checked whole before the state: a typo is named as such
	if err != nil {
		return nil, err
	}
	if st, _ := b.engine.State(d.IEEE); st.State != ota.StateApprovalPending {
		return nil, fmt.Errorf("%s has no pending request to approve (state %s)", d.FriendlyName, st.State)
	}
	return b.approveLike(ctx, req, false, func(ieee zcl.IEEE, _ *uint32) (*ota.Image, error) {
		return b.engine.Approve(ieee)
	})
}

func (b *Bridge) apiUnschedule(_ context.Context, req *request) (any, error) {
	d, err := b.deviceOnly(req)
	if err != nil {
		return nil, err
	}
	if err := b.engine.Unschedule(d.IEEE); err != nil {
		return nil, err
	}
	return b.deviceData(d), nil
}

func (b *Bridge) apiReject(_ context.Context, req *request) (any, error) {
	d, err := b.deviceOnly(req)
	if err != nil {
		return nil, err
	}
	if err := b.engine.Reject(d.IEEE); err != nil {
		return nil, err
	}
	return b.deviceData(d), nil
}

func (b *Bridge) apiAbort(_ context.Context, req *request) (any, error) {
	d, err := b.deviceOnly(req)
	if err != nil {
		return nil, err
	}
	if err := b.engine.Abort(d.IEEE); err != nil {
		return nil, err
	}
	return b.deviceData(d), nil
}

func (b *Bridge) apiRename(_ context.Context, req *request) (any, error) {
	d, err := b.idArg(req)
	if err != nil {
		return nil, err
	}
	name, err := req.str("name", true)
	if err != nil {
		return nil, err
	}
	if err := req.unknown(); err != nil {
		return nil, err
	}
	old, renamed, err := b.registry.Rename(d.IEEE.String(), name)
	if err != nil {
		return nil, err
	}
	b.renamed(d.IEEE, old.FriendlyName)
	return map[string]any{"id": d.IEEE.String(), "from": old.FriendlyName, "to": renamed.FriendlyName}, nil
}

func (b *Bridge) apiInterview(ctx context.Context, req *request) (any, error) {
	d, err := b.deviceOnly(req)
	if err != nil {
		return nil, err
	}
	if err := b.interviewShared(ctx, d.IEEE, true); err != nil {
		return nil, err
	}
	nd, _ := b.registry.Lookup(d.IEEE.String())
	return nd, nil
}

// deviceFilter selects devices for check_all/update_all: every given criterion must match.
type deviceFilter struct {
	ids               map[zcl.IEEE]bool
	model             string
	manufacturerName  string
	manufacturerCode  *uint16
	includeSleepyOnly bool
}

func (b *Bridge) parseFilter(req *request) (*deviceFilter, error) {
	f, err := req.object("filter")
	if err != nil || f == nil {
		return &deviceFilter{}, err
	}
	out := &deviceFilter{}
	ids, err := f.strList("id")
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		out.ids = map[zcl.IEEE]bool{}
		for _, id := range ids {
			d, ok := b.registry.Lookup(id)
			if !ok {
				return nil, badRequest("filter: unknown device %q", id)
			}
			out.ids[d.IEEE] = true
		}
	}
	if out.model, err = f.str("model", false); err != nil {
		return nil, err
	}
	if out.manufacturerName, err = f.str("manufacturer", false); err != nil {
		return nil, err
	}
	if v, ok, err := f.uint("manufacturer_code", 0xFFFF); err != nil {
		return nil, err
	} else if ok {
		c := uint16(v)
		out.manufacturerCode = &c
	}
	if err := f.unknown(); err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return out, nil
}

func (f *deviceFilter) match(d Device) bool {
	switch {
	case f.ids != nil && !f.ids[d.IEEE]:
		return false
	case f.model != "" && d.Model != f.model:
		return false
	case f.manufacturerName != "" && d.Manufacturer != f.manufacturerName:
		return false
	case f.manufacturerCode != nil && d.ManufacturerCode != *f.manufacturerCode:
		return false
	}
	return true
}

func (b *Bridge) apiCheckAll(ctx context.Context, req *request) (any, error) {
	filter, err := b.parseFilter(req)
	if err != nil {
		return nil, err
	}
	if err := req.unknown(); err != nil {
		return nil, err
	}
	var results []map[string]any
	available := []string{}
	for _, d := range b.registry.All() {
		if !filter.match(d) {
			continue
		}
		r, err := b.check(ctx, &d)
		if err != nil {
			results = append(results, map[string]any{"id": d.IEEE.String(), "friendly_name": d.FriendlyName, "error": err.Error()})
			continue
		}
		if r["update_available"] == true {
			available = append(available, d.IEEE.String())
		}
		results = append(results, r)
	}
	return map[string]any{"checked": len(results), "available": available, "devices": results}, nil
}

func (b *Bridge) apiUpdateAll(ctx context.Context, req *request) (any, error) {
	filter, err := b.parseFilter(req)
	if err != nil {
		return nil, err
	}
	if err := req.unknown(); err != nil {
		return nil, err
	}
	queued, skipped := []map[string]any{}, []map[string]any{}
	for _, d := range b.registry.All() {
		if !filter.match(d) {
			continue
		}
		skip := func(reason string) {
			skipped = append(skipped, map[string]any{"id": d.IEEE.String(), "friendly_name": d.FriendlyName, "reason": reason})
		}
		if st, ok := b.engine.State(d.IEEE); ok {
			switch st.State {
			case ota.StateUpdating, ota.StateQueued, ota.StateScheduled, ota.StateWaitingReboot, ota.StateVerifying:
				skip("already " + string(st.State))
				continue
			}
		}
		if err := b.ensureVersionKnown(ctx, &d); err != nil {
			skip(err.Error())
			continue
		}
		img, err := b.engine.Resolve(d.IEEE, nil)
		if err != nil {
			skip("no newer image")
			continue
		}
		if !img.Local() {
			if err := b.store.Ensure(ctx, img); err != nil {
				skip("download failed: " + err.Error())
				continue
			}
		}
		v := img.Header.FileVersion
		if _, err := b.engine.Update(d.IEEE, &v); err != nil {
			skip(err.Error())
			continue
		}
		queued = append(queued, map[string]any{"id": d.IEEE.String(), "friendly_name": d.FriendlyName,
			"to": ota.VersionString(img.Header.FileVersion), "to_display_version": img.DisplayVersion(), "image": img.ID})
	}
	return map[string]any{"queued": queued, "skipped": skipped}, nil
}

func (b *Bridge) apiImageAdd(ctx context.Context, req *request) (any, error) {
	url, err := req.str("url", false)
	if err != nil {
		return nil, err
	}
	path, err := req.str("path", false)
	if err != nil {
		return nil, err
	}
	data, hasData, err := req.base64Bytes("data")
	if err != nil {
		return nil, err
	}
	fileName, err := req.str("file_name", false)
	if err != nil {
		return nil, err
	}
	if err := req.unknown(); err != nil {
		return nil, err
	}
	given := 0
	for _, set := range []bool{url != "", path != "", hasData} {
		if set {
			given++
		}
	}
	if given != 1 {
		return nil, badRequest("give exactly one of \"url\", \"path\" or \"data\" (with \"file_name\")")
	}
	var img *ota.Image
	switch {
	case url != "":
		img, err = b.store.AddFromURL(ctx, url)
	case path != "":
		img, err = b.store.AddFromPath(path)
	default:
		if fileName == "" {
			return nil, badRequest("missing \"file_name\" for \"data\"")
		}
		img, err = b.store.AddUpload(fileName, data)
	}
	if err != nil {
		return nil, err
	}
	b.engine.Refresh()
	b.publishImages()
	return img.Info(), nil
}

func (b *Bridge) apiImageRemove(_ context.Context, req *request) (any, error) {
	id, err := req.str("id", true)
	if err != nil {
		return nil, err
	}
	if err := req.unknown(); err != nil {
		return nil, err
	}
	if b.store.Get(id) == nil {
		return nil, badRequest("unknown image %q", id)
	}
	if err := b.store.Remove(id); err != nil {
		return nil, err
	}
	b.engine.Refresh()
	b.publishImages()
	return map[string]any{"id": id}, nil
}

func (b *Bridge) apiImageRefresh(ctx context.Context, req *request) (any, error) {
	if err := req.unknown(); err != nil {
		return nil, err
	}
	if err := b.store.Refresh(ctx); err != nil {
		return nil, err
	}
	b.engine.Refresh()
	b.publishImages()
	return map[string]any{"images": len(b.store.Images()), "problems": b.store.Problems()}, nil
}

func (b *Bridge) apiImageNotify(_ context.Context, req *request) (any, error) {
	imageID, err := req.str("image", false)
	if err != nil {
		return nil, err
	}
	id, err := req.str("id", false)
	if err != nil {
		return nil, err
	}
	jitter, jitterGiven, err := req.uint("jitter", 100)
	if err != nil {
		return nil, err
	}
	if jitterGiven && jitter == 0 {
		return nil, badRequest("\"jitter\" must be 1..100")
	}
	if err := req.unknown(); err != nil {
		return nil, err
	}
	var img *ota.Image
	if imageID != "" {
		if img = b.store.Get(imageID); img == nil {
			return nil, badRequest("unknown image %q", imageID)
		}
	}
	var dst zcl.IEEE
	data := map[string]any{"broadcast": id == ""}
	if id != "" {
		d, ok := b.registry.Lookup(id)
		if !ok {
			return nil, badRequest("unknown device %q", id)
		}
		dst = d.IEEE
		data["id"] = d.IEEE.String()
	}
	if img != nil {
		data["image"] = img.ID
	}
	if err := b.engine.Notify(dst, img, uint8(jitter)); err != nil {
		return nil, err
	}
	return data, nil
}

func (b *Bridge) apiPermitJoin(ctx context.Context, req *request) (any, error) {
	// Seconds are a number, as the README documents: unlike versions and manufacturer codes, which may be
	// written "0x…", a string is a wrong type here.
	if raw := req.fields["time"]; len(raw) > 0 && raw[0] == '"' {
		return nil, badRequest("\"time\" must be a JSON number of seconds (0..254; 0 closes), not a string")
	}
	t, ok, err := req.uint("time", 254)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, badRequest("missing \"time\" (seconds, 0..254; 0 closes)")
	}
	if err := req.unknown(); err != nil {
		return nil, err
	}
	if err := b.radio.PermitJoin(ctx, uint8(t)); err != nil {
		return nil, fmt.Errorf("permit join: %w", err)
	}
	b.setPermitJoin(time.Duration(t) * time.Second)
	return map[string]any{"time": t}, nil
}
