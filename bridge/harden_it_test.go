package bridge_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/ota"
)

// TestITImageAddFIFO: image/add naming a named pipe in the images folder answers with an error at once,
// and the image requests after it still work (the store lock is not held by a blocked open).
func TestITImageAddFIFO(t *testing.T) {
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	if err := syscall.Mkfifo(filepath.Join(cfg.Images.Folder, "fifo.ota"), 0o644); err != nil {
		t.Skipf("named pipes unavailable here: %v", err)
	}
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{})

	resp := h.Request("image/add", map[string]any{"path": "fifo.ota"})
	assert.Equal(t, "error", resp.Status)
	assert.Contains(t, resp.Error, "not a regular file (a named pipe)")

	resp = h.Request("image/refresh", nil)
	assert.Equal(t, "ok", resp.Status, resp.Error)
	img := ota.Header{ManufacturerCode: 0x1234, ImageType: 7, FileVersion: 9}
	data, err := ota.Build(img, []ota.BuildElement{{Tag: ota.TagUpgradeImage, Data: make([]byte, 100)}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(cfg.Images.Folder, "later.ota"), data, 0o644))
	resp = h.Request("image/add", map[string]any{"path": "later.ota"})
	assert.Equal(t, "ok", resp.Status, resp.Error)
}

// TestITCredentialsRedacted: credentials in mqtt.server, in an index URL and in an image URL reach neither
// MQTT (retained bridge/info, responses, events), nor the log at any level, nor the files of the data
// directory.
func TestITCredentialsRedacted(t *testing.T) {
	secrets := []string{"mqttpw-71", "idxpw-72", "imgpw-73", "badpw-74", "tok-75"}
	image := ota.Header{ManufacturerCode: 0x1234, ImageType: 7, FileVersion: 9}
	imageData, err := ota.Build(image, []ota.BuildElement{{Tag: ota.TagUpgradeImage, Data: make([]byte, 300)}})
	require.NoError(t, err)
	remote := ota.Header{ManufacturerCode: 0x1234, ImageType: 8, FileVersion: 3}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/index.json":
			fmt.Fprintf(w, `[{"url":"remote.ota","manufacturerCode":%d,"imageType":%d,"fileVersion":%d,"fileSize":400}]`,
				remote.ManufacturerCode, remote.ImageType, remote.FileVersion)
		case "/a.ota":
			w.Write(imageData)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	cfg.Images.Indexes = append(cfg.Images.Indexes, "http://reader:idxpw-72@"+host+"/index.json")
	h := bridgetest.Start(t, nil, cfg, bridgetest.Options{ServerUserInfo: "bridge:mqttpw-71", LogLevel: "trace"})

	resp := h.Request("image/add", map[string]any{"url": "http://getter:imgpw-73@" + host + "/a.ota?token=tok-75"})
	require.Equal(t, "ok", resp.Status, resp.Error)
	resp = h.Request("image/add", map[string]any{"url": "http://getter:badpw-74@" + host + "/missing.ota"})
	require.Equal(t, "error", resp.Status)
	assert.Contains(t, resp.Error, "404")
	h.Rec.Settle(200e6)

	info, ok := h.Rec.Last(h.Topic("bridge/info"))
	require.True(t, ok, "bridge/info published")
	assert.Contains(t, string(info.Payload), `"server":"mqtt://xxxxx@`, "mqtt.server shown without its credentials")
	h.Stop()

	check := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("%s shows the secret %q: …%s…", where, s, text[max(0, i-120):min(len(text), i+40)])
			}
		}
	}
	for _, m := range h.Rec.MessagesWithPrefix("", 0) {
		if !strings.HasPrefix(m.Topic, h.Topic("bridge/request/")) { // the test's own requests carry them
			check("MQTT "+m.Topic, string(m.Payload))
		}
	}
	check("log", h.Logs())
	filepath.WalkDir(cfg.DataDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			check("file "+p, string(b))
		}
		return nil
	})
}
