package bridge_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/otabridge/otabridge/bridge/bridgetest"
	"github.com/otabridge/otabridge/ncp/sim"
)

// floodSeconds and floodRate: the flood was 200 device/interview requests a second for 20 s during
// a transfer; the simulated network runs 20× real time here, so 5 s of flood cover 100 s of radio time.
const (
	floodSeconds = 5
	floodRate    = 200
)

// A flood of device/interview requests during a firmware transfer neither aborts nor stalls the transfer,
// and memory stays flat: interviews of one device coalesce, the rest is refused "busy", and interview
// frames go out only in the gaps of the firmware traffic.
func TestITInterviewFloodDuringTransfer(t *testing.T) {
	skipShort(t)
	h, mark := startLightTransfer(t, bridgetest.RepoConfig(t), 5)
	light := bridgetest.LightIEEE
	heapBefore, rssBefore := heapAndRSS()

	// The flood, from a client of its own.
	opts := paho.NewClientOptions().AddBroker(h.Broker.URL()).SetClientID(fmt.Sprintf("flood-%d", time.Now().UnixNano()))
	flooder := paho.NewClient(opts)
	if tok := flooder.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("flooder connect: %v", tok.Error())
	}
	defer flooder.Disconnect(100)
	floodMark := h.Rec.Mark()
	topic := h.Topic("bridge/request/device/interview")
	tick := time.NewTicker(time.Second / floodRate)
	sent := 0
	for sent < floodSeconds*floodRate {
		<-tick.C
		id := demoDevices[sent%len(demoDevices)]
		flooder.Publish(topic, 0, false, []byte(`{"id":"`+id+`","transaction":`+strconv.Itoa(sent)+`}`))
		sent++
	}
	tick.Stop()
	if d := h.Device(light).Status(); d.Failures != 0 || d.Restarts != 0 {
		t.Errorf("light during the flood: %d failed downloads, %d restarts; want none", d.Failures, d.Restarts)
	}

	dev := waitSim(t, h, light, "the new version", func(s sim.DeviceStatus) bool { return s.FileVersion == bridgetest.LightNew })
	if dev.Upgrades != 1 || dev.Failures != 0 || dev.Restarts != 0 {
		t.Errorf("light after the flood: %d upgrades, %d failed downloads, %d restarts; want 1, 0, 0",
			dev.Upgrades, dev.Failures, dev.Restarts)
	}
	h.Rec.WaitEvent(h.Base, "ota_finished", light, mark)
	for _, m := range h.Rec.Messages(h.Topic("bridge/event"), mark) {
		if strings.Contains(string(m.Payload), `"ota_failed"`) || strings.Contains(string(m.Payload), `"ota_aborted"`) {
			t.Errorf("event during the flood: %s", m.Payload)
		}
	}
	// Every request is answered: done, or refused busy (never left hanging, never another error).
	var firstOther string
	answered := func() (okN, busy, other int) {
		for _, m := range h.Rec.Messages(h.Topic("bridge/response/device/interview"), floodMark) {
			switch s := string(m.Payload); {
			case strings.Contains(s, `"status":"ok"`):
				okN++
			case strings.Contains(s, "busy"):
				busy++
			default:
				other++
				if other == 1 {
					firstOther = s
				}
			}
		}
		return
	}
	eventually(t, "a response to every request", func() bool {
		o, b, x := answered()
		return o+b+x >= sent
	})
	okN, busy, other := answered()
	heapAfter, rssAfter := heapAndRSS()
	t.Logf("flood of %d device/interview requests (%d/s for %d s at 20x): %d ok, %d busy, %d other; "+
		"heap %.1f -> %.1f MiB, RSS %.1f -> %.1f MiB", sent, floodRate, floodSeconds, okN, busy, other,
		mib(heapBefore), mib(heapAfter), mib(rssBefore), mib(rssAfter))
	if other > 0 {
		t.Errorf("%d responses neither ok nor busy, the first: %s", other, firstOther)
	}
	if okN == 0 {
		t.Errorf("no interview request succeeded during the flood")
	}
	// Memory stays flat: the heap after the flood (after GC) is within a few MiB of before.
	if grow := int64(heapAfter) - int64(heapBefore); grow > 16<<20 {
		t.Errorf("heap grew by %.1f MiB during the flood", mib(uint64(grow)))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// heapAndRSS returns the live heap after a GC and the process's resident set size (0 where /proc is not).
func heapAndRSS() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return ms.HeapAlloc, rss
}
