package web

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
)

// countingReader counts the bytes a page receives.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLiveFeed200Devices measures the console's live feed with 200 devices transferring at once, each
// reporting progress 10 times a second (2,000 state changes per second, ten times what one radio channel
// carries): one iteration is one wall-clock second of that load, streamed over HTTP to one page.
// Reported: bytes/s and messages/s the page receives, and CPU ms per second of the whole process (the
// producers, the hub, the HTTP server and this reader). Run:
//
//	go test -run '^$' -bench LiveFeed200 -benchtime 5x ./web/
func BenchmarkLiveFeed200Devices(b *testing.B) {
	const devices, perSecond = 200, 10
	hub := NewHub(clock.Real{}, time.Second)
	srv := NewServer(Config{Enabled: true, Listen: "127.0.0.1:0"}, hub, &fakeRequester{max: 1000}, zerolog.Nop())
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + "/api/events")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	cr := &countingReader{r: resp.Body}
	var sets atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(cr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if sc.Text() == "event: set" {
				sets.Add(1)
			}
		}
	}()

	payload := func(dev, step int) []byte {
		// The size and shape of a real `<name>/ota` state during a transfer.
		return fmt.Appendf(nil, `{"ieee":"0x00124b00000%05d","state":"updating","installed_version":null,`+
			`"available":null,"target":{"id":"131b-0001-01010000-0fbb7413","file_version":16842752,"version":"1.1.0","size":41026,`+
			`"release_notes":"Demo: smoother dimming curve and faster reconnect after power loss.","header_string":"ESP32-C6 Light 1.1.0"},`+
			`"progress":%.4f,"bytes":%d,"size":41026,"rate":%.1f,"remaining":%.1f,"from_version":16777216,"to_version":16842752,`+
			`"started_at":"2026-12-04T10:00:12Z","finished_at":null,"changed_at":"2026-12-04T10:00:%02dZ",`+
			`"friendly_name":"device %d","latest_version":"1.1.0"}`, dev, float64(step)/10, step*41, 1234.5+float64(step), 33.2-float64(step)/100, step%60, dev)
	}

	step := 0
	b.ResetTimer()
	startCPU, startBytes, startSets, start := cpuTime(), cr.n.Load(), sets.Load(), time.Now()
	for range b.N {
		tick := time.NewTicker(time.Second / perSecond)
		for range perSecond {
			<-tick.C
			step++
			for d := range devices {
				hub.Set(fmt.Sprintf("device %d/ota", d), payload(d, step))
			}
		}
		tick.Stop()
	}
	time.Sleep(1100 * time.Millisecond) // the last coalesced values go out
	elapsed := time.Since(start).Seconds()
	b.StopTimer()
	cpu, bytes, n := cpuTime()-startCPU, cr.n.Load()-startBytes, sets.Load()-startSets
	resp.Body.Close()
	<-readDone // the reader ends with the body
	b.ReportMetric(float64(bytes)/elapsed, "bytes/s")
	b.ReportMetric(float64(n)/elapsed, "msgs/s")
	b.ReportMetric(float64(cpu.Milliseconds())/elapsed, "cpu-ms/s")
	b.ReportMetric(float64(n)/elapsed/devices, "msgs/device/s")
	if limit := float64(devices) * (elapsed + 1) / elapsed; float64(n)/elapsed > limit {
		b.Errorf("%d messages in %.1fs for %d devices: more than one per device per second", n, elapsed, devices)
	}
}
