//go:build unix

package bridge_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/otabridge/otabridge/bridge"
	"github.com/otabridge/otabridge/bridge/bridgetest"
)

// A second bridge on the same data directory refuses to start, naming the directory and the holder's pid.
func TestITDataDirLocked(t *testing.T) {
	skipShort(t)
	cfg := bridgetest.RepoConfig(t)
	bridgetest.KeepDevices(t, &cfg, bridgetest.LightIEEE)
	cfg.MQTT.Server = bridge.ServerEmbedded
	cfg.MQTT.EmbeddedListen = "127.0.0.1:0"
	var log1, log2 strings.Builder
	runBridge(t, cfg, &log1)
	eventually(t, "the first bridge's heartbeat", func() bool {
		_, err := os.Stat(filepath.Join(cfg.DataDir, bridge.HealthFile))
		return err == nil
	})
	err := runBridge(t, cfg, &log2)()
	if err == nil {
		t.Fatal("a second bridge on the same data_dir started")
	}
	for _, want := range []string{cfg.DataDir, "in use by another otabridge", "pid " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
