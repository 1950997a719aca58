package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/bridge/bridgetest/jsonlog"
)

// Issue 19.4 and 19.5: a `go run .` session (the embedded broker, the simulated radio) with the JSON log
// format at debug level — an update, then a clean stop — writes only lines that parse strictly (no key twice
// in an object, as the embedded broker's lines once had "component" twice), and a subscriber sees the
// offline state of the stop.
func TestITGoRunJSONLogsAreStrict(t *testing.T) {
	if otabridgeBin == "" {
		t.Skip("integration test: skipped with -short")
	}
	_, proc, rec := startGoRun(t, "OTABRIDGE_LOG_FORMAT=json", "OTABRIDGE_LOG_LEVEL=debug")
	const light = goRunLight
	mark := rec.Mark()
	if r := rec.Request("otabridge", "device/ota_update/update", map[string]any{"id": light}); r.Status != "ok" {
		t.Fatalf("update: %s", r.Payload)
	}
	rec.WaitEvent("otabridge", "ota_finished", light, mark)
	stateMark := rec.Mark()
	proc.stop()
	rec.WaitFor("the offline state of the clean stop", "otabridge/bridge/state", stateMark, func(m bridgetest.Message) bool {
		return string(m.Payload) == `{"state":"offline"}`
	})

	log, err := os.ReadFile(proc.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := jsonlog.Check(log); err != nil {
		t.Errorf("log lines that are not strict JSON:\n%v", err)
	}
	lines := bytes.Count(log, []byte("\n"))
	broker := bytes.Count(log, []byte(`"component":"broker"`))
	if broker == 0 {
		t.Errorf("no line of the embedded broker in the %d lines checked", lines)
	}
	t.Logf("%d log lines checked, %d of the embedded broker", lines, broker)
}
