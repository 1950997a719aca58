package bridge_test

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otabridge/otabridge/bridge/bridgetest"
)

// A remote zigbee-OTA index and the auto policy: the sleepy door sensor asks by itself, the image (known
// only from the index) is downloaded in the background and sha512-checked, and the device's next query is
// served without anybody approving it, because its model is on the allow list.
func TestITRemoteIndexAutoPolicy(t *testing.T) {
	skipShort(t)
	file, err := os.ReadFile(filepath.Join(bridgetest.RepoRoot(), "images", "door-sensor-27.ota"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(file)
	var downloads atomic.Int32
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	index, _ := json.Marshal([]map[string]any{{
		"fileName": "door-sensor-27.ota", "url": srv.URL + "/images/door-sensor-27.ota",
		"fileVersion": 27, "fileSize": len(file), "imageType": 0x0011, "manufacturerCode": 0x115F,
		"sha512": hex.EncodeToString(sum[:]), "otaHeaderString": "lumi.sensor_magnet.aq2 27",
		"modelId": "lumi.sensor_magnet.aq2", "releaseNotes": "From the remote index.",
	}})
	mux.HandleFunc("/index.json", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(index) })
	mux.HandleFunc("/images/door-sensor-27.ota", func(w http.ResponseWriter, _ *http.Request) {
		downloads.Add(1)
		_, _ = w.Write(file)
	})

	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.DoorIEEE)
	bridgetest.SimDevice(t, &cfg, bridgetest.DoorIEEE).QueryInterval = time.Minute
	cfg.Images.Folder = t.TempDir() // nothing local: the image comes from the index only
	cfg.Images.Indexes = []string{srv.URL + "/index.json"}
	cfg.OTA.Approval = "auto"
	cfg.OTA.Allow.Models = []string{"lumi.sensor_magnet.aq2"}
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})
	door := bridgetest.DoorIEEE

	fin := h.Rec.WaitEvent(h.Base, "ota_finished", door, 0)
	if fin.Data["to_version"] != "0x0000001b" {
		t.Errorf("ota_finished data %v", fin.Data)
	}
	if n := downloads.Load(); n != 1 {
		t.Errorf("the image was downloaded %d times, want once", n)
	}
	for _, m := range h.Rec.Messages(h.Topic("bridge/event"), 0) {
		if ev, ok := bridgetest.ParseEvent(m); ok && ev.Type == "approval_needed" {
			t.Errorf("approval_needed for a device on the auto allow list: %s", m.Payload)
		}
	}
	if st := h.Device(door).Status(); st.FileVersion != bridgetest.DoorNew {
		t.Errorf("door sensor runs 0x%08x", st.FileVersion)
	}
}
