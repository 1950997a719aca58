package bridge_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/bridge/brokertest"
)

// A request left retained on the broker is delivered again on every start and reconnect. The bridge must
// not run it (a retained rename would undo later renames, a retained permit_join would reopen the network):
// it answers with an error and runs nothing. A request published live still runs.
func TestITRetainedRequestsIgnored(t *testing.T) {
	skipShort(t)
	broker := brokertest.New(t)
	pre := bridgetest.NewRecorder(t, broker.URL())
	base := bridgetest.BaseTopic
	pre.Publish(base+"/bridge/request/device/rename",
		[]byte(`{"id":"`+bridgetest.LightIEEE+`","name":"retained_name","transaction":"r1"}`), true)
	pre.Publish(base+"/bridge/request/permit_join", []byte(`{"time":254,"transaction":"r2"}`), true)

	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	h := bridgetest.Start(t, broker, cfg, bridgetest.Options{})
	for _, path := range []string{"device/rename", "permit_join"} {
		m := h.Rec.WaitFor("the response to the retained "+path, h.Topic("bridge/response/"+path), 0,
			func(bridgetest.Message) bool { return true })
		var resp bridgetest.Response
		if err := json.Unmarshal(m.Payload, &resp); err != nil {
			t.Fatalf("%s response: %v", path, err)
		}
		if resp.Status != "error" || !strings.Contains(resp.Error, "retain") {
			t.Errorf("retained %s: response %s, want an error about the retain flag", path, m.Payload)
		}
		if len(resp.Transaction) == 0 {
			t.Errorf("retained %s: transaction not echoed: %s", path, m.Payload)
		}
	}
	// Nothing ran: the device keeps its name and joining stays closed.
	for _, m := range h.Rec.MessagesWithPrefix(h.Topic("retained_name/"), 0) {
		t.Errorf("the retained rename ran: %s %s", m.Topic, m.Payload)
	}
	info := h.Rec.WaitFor("bridge/info", h.Topic("bridge/info"), 0, func(bridgetest.Message) bool { return true })
	var bi struct {
		PermitJoin bool `json:"permit_join"`
	}
	if err := json.Unmarshal(info.Payload, &bi); err != nil || bi.PermitJoin {
		t.Errorf("the retained permit_join ran (or bridge/info unreadable: %v): %s", err, info.Payload)
	}
	// The same request published live runs.
	if resp := h.Request("device/rename", map[string]any{"id": bridgetest.LightIEEE, "name": "live_name"}); resp.Status != "ok" {
		t.Errorf("live rename: %+v", resp)
	}
}
