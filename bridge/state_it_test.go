package bridge_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/bridge/brokertest"
)

// A state file that is valid JSON but not a state file this bridge can read is refused: a
// `.corrupt-<timestamp>` copy is kept, the log and bridge/event (type state_corrupt) say so, and the bridge
// starts empty instead of silently loading part of it or overwriting it.
func TestITStateFileDecodedStrictly(t *testing.T) {
	skipShort(t)
	broker := brokertest.New(t)
	cases := map[string]struct{ content, reason string }{
		"empty object":   {`{}`, `no "version"`},
		"null":           {`null`, "not a JSON object"},
		"unknown key":    {`{"foo":1}`, `unknown field "foo"`},
		"unknown state":  {`{"version":1,"registry":{"devices":[]},"ota":{"devices":[{"ieee":"` + bridgetest.LightIEEE + `","state":"banana"}]}}`, `unknown OTA state "banana"`},
		"future version": {`{"version":99,"registry":{"devices":[]},"ota":{"devices":[]}}`, "version 99"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := bridgetest.RepoConfig(t)
			bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
			path := filepath.Join(cfg.DataDir, bridge.StateFile)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			h := bridgetest.Start(t, broker, cfg, bridgetest.Options{})
			m := h.Rec.WaitFor("a state_corrupt event", h.Topic("bridge/event"), 0, func(m bridgetest.Message) bool {
				return strings.Contains(string(m.Payload), `"state_corrupt"`)
			})
			var ev struct {
				Data struct {
					Path    string `json:"path"`
					MovedTo string `json:"moved_to"`
					Reason  string `json:"reason"`
				} `json:"data"`
			}
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ev.Data.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", ev.Data.Reason, tc.reason)
			}
			if !strings.HasPrefix(filepath.Base(ev.Data.MovedTo), bridge.StateFile+".corrupt-") {
				t.Errorf("moved_to %q is not a .corrupt- copy", ev.Data.MovedTo)
			}
			kept, err := os.ReadFile(ev.Data.MovedTo)
			if err != nil || string(kept) != tc.content {
				t.Errorf("the corrupt copy holds %q (%v), want the original %q", kept, err, tc.content)
			}
			if name == "unknown state" {
				for _, m := range h.Rec.Messages(h.Topic(bridgetest.LightIEEE+"/ota"), 0) {
					if strings.Contains(string(m.Payload), "banana") {
						t.Errorf("state banana was published: %s", m.Payload)
					}
				}
			}
		})
	}
}
