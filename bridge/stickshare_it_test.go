package bridge_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/otabridge/otabridge/bridge/bridgetest"
)

// fakeSupervisor answers the Supervisor API calls of existing.stop_addon for one add-on and records them.
type fakeSupervisor struct {
	mu    sync.Mutex
	state string
	calls []string
	srv   *httptest.Server
}

func newFakeSupervisor(t *testing.T, slug, state string) *fakeSupervisor {
	f := &fakeSupervisor{state: state}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		if r.Header.Get("Authorization") != "Bearer supervisor-token" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"result":"error","message":"Unauthorized"}`))
			return
		}
		data := map[string]any{}
		switch r.Method + " " + r.URL.Path {
		case "GET /addons/" + slug + "/info":
			data["state"] = f.state
		case "POST /addons/" + slug + "/stop":
			f.state = "stopped"
		case "POST /addons/" + slug + "/start":
			f.state = "started"
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"result":"error","message":"no such add-on"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"result": "ok", "data": data})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSupervisor) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

const z2mAddon = "45df7312_zigbee2mqtt"

// Issue 18.4: with existing.stop_addon the Zigbee2MQTT add-on is stopped before otabridge opens the stick and
// started again when the queue is done; bridge/stick tells that otabridge holds the stick and for how long.
func TestITStickSharedWithZ2MAddon(t *testing.T) {
	skipShort(t)
	t.Setenv("SUPERVISOR_TOKEN", "supervisor-token")
	sup := newFakeSupervisor(t, z2mAddon, "started")
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	cfg.Existing.StopAddon, cfg.Existing.SupervisorURL = z2mAddon, sup.srv.URL
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	h.Rec.WaitFor("stick held", h.Topic("bridge/stick"), 0, func(m bridgetest.Message) bool {
		return bridgetest.Field(m, "held") == true && bridgetest.Field(m, "other_host") == z2mAddon
	})
	if got := sup.Calls(); !slices.Equal(got, []string{"GET /addons/" + z2mAddon + "/info", "POST /addons/" + z2mAddon + "/stop"}) {
		t.Fatalf("Supervisor calls before the stick was taken: %v", got)
	}
	waitDiscovery(t, h.Rec, deviceConfigTopic(bridgetest.LightIEEE), 0)
	mark := h.Rec.Mark()
	ok(t, h.Request("device/ota_update/update", map[string]any{"id": bridgetest.LightIEEE}))
	h.Rec.WaitEvent(h.Base, "ota_finished", bridgetest.LightIEEE, mark)
	m := h.Rec.WaitFor("stick released", h.Topic("bridge/stick"), mark, func(m bridgetest.Message) bool {
		return bridgetest.Field(m, "held") == false
	})
	if _, ok := bridgetest.Field(m, "held_seconds").(float64); !ok {
		t.Errorf("released stick without held_seconds: %s", m.Payload)
	}
	if got := sup.Calls(); got[len(got)-1] != "POST /addons/"+z2mAddon+"/start" {
		t.Errorf("the Zigbee2MQTT add-on was not started again after the queue: %v", got)
	}
	h.Stop()
	if got := sup.Calls(); len(got) != 3 {
		t.Errorf("Supervisor calls %v: want exactly info, stop, start", got)
	}
}

// Stopping otabridge gives the stick back too; an add-on that was not running is not started.
func TestITStickGivenBackWhenOtabridgeStops(t *testing.T) {
	skipShort(t)
	t.Setenv("SUPERVISOR_TOKEN", "supervisor-token")
	for _, state := range []string{"started", "stopped"} {
		sup := newFakeSupervisor(t, z2mAddon, state)
		cfg := bridgetest.RepoConfig(t)
		bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
		cfg.Existing.StopAddon, cfg.Existing.SupervisorURL = z2mAddon, sup.srv.URL
		h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
		h.Stop()
		want := []string{"GET /addons/" + z2mAddon + "/info"}
		if state == "started" {
			want = append(want, "POST /addons/"+z2mAddon+"/stop", "POST /addons/"+z2mAddon+"/start")
		}
		if got := sup.Calls(); !slices.Equal(got, want) {
			t.Errorf("add-on %s: Supervisor calls %v, want %v", state, got, want)
		}
	}
}
