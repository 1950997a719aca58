package sim_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim/simtest"
	"github.com/otabridge/otabridge/zcl"
)

// fleetYAML is a network of n ESP v2 devices on the realistic link.
func fleetYAML(n int, profile string) string {
	var b strings.Builder
	b.WriteString("seed: 1\nlink: {mode: realistic}\ndevices:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - {ieee: 0x%016x, manufacturer_code: 0x131B, image_type: 1, file_version: 0x10012000, profile: %s, request_timeout: 10s}\n", 0x00124b0000100000+i, profile)
	}
	return b.String()
}

// BenchmarkFleet100x300KB: 100 virtual ESP v2 devices each download a 300 KB image from the minimal server
// through the realistic link. The server serves `concurrent` devices at a time (it notifies the next device
// when one sends its Upgrade End Request), like the product's queue with its default cap of 2; serving all
// 100 at once saturates the one shared channel so far that APS acks come later than apsAckWaitDuration and
// the transfers collapse into retries, as they would on a real network. Reports wall time per simulated
// block, allocations and the modelled (virtual) time of the whole run.
func BenchmarkFleet100x300KB(b *testing.B) {
	const devices, size, concurrent = 100, 300 * 1024, 2
	img := simtest.BuildImage(zcl.ImageID{ManufacturerCode: 0x131B, ImageType: 1, FileVersion: 0x10022000}, size, 3)
	yaml := fleetYAML(devices, "esp-v2")
	b.ReportAllocs()
	var blocks int
	var virtual, busy, air time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := simtest.New(b, yaml)
		h.KeepFrames = false
		srv := simtest.NewMinimalServer(h, img)
		start := h.Now()
		queue := h.Net.Devices()
		next := func() {
			if len(queue) > 0 {
				srv.Notify(queue[0].IEEE())
				queue = queue[1:]
			}
		}
		h.OnFrame(func(src zcl.IEEE, in ncp.Incoming) {
			if hd, _, err := zcl.DecodeHeader(in.Payload); err == nil && hd.FrameType == zcl.FrameTypeCluster && hd.CommandID == zcl.CmdUpgradeEndRequest {
				next()
			}
		})
		b.StartTimer()
		for range concurrent {
			next()
		}
		finished := 0
		h.OnEvent(func(ev ncp.Event) {
			if ev.Kind == ncp.EventAnnounced && h.Net.Device(ev.IEEE).Status().Upgrades == 1 {
				finished++ // announced after the upgrade reboot
			}
		})
		done := func() bool { return finished == devices }
		if !h.RunUntil(done, 24*time.Hour) {
			b.Fatalf("fleet not upgraded after 24 h of virtual time")
		}
		b.StopTimer()
		blocks += srv.BlockRequests
		virtual += h.Now() - start
		st := h.Net.Stats()
		busy += st.BusyTime
		air += st.AirTime
		for _, d := range h.Net.Devices() {
			if d.Status().ReceivedBytes != size {
				b.Fatalf("%s received %d bytes", d.IEEE(), d.Status().ReceivedBytes)
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(blocks), "ns/block")
	b.ReportMetric(float64(blocks)/n, "blocks/op")
	b.ReportMetric(virtual.Seconds()/n, "virtual-s/op")
	b.ReportMetric(busy.Seconds()/n, "channel-busy-s/op")
	b.ReportMetric(air.Seconds()/n, "air-s/op")
	b.ReportMetric(float64(devices*size)/(virtual.Seconds()/n), "fleet-B/s")
}

// BenchmarkSingleBlockRoundTrip measures the simulator's cost per block for one device (fast link).
func BenchmarkSingleBlockRoundTrip(b *testing.B) {
	img := simtest.BuildImage(zcl.ImageID{ManufacturerCode: 0x131B, ImageType: 1, FileVersion: 0x10022000}, 64*1024, 3)
	b.ReportAllocs()
	blocks := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := simtest.New(b, strings.Replace(fleetYAML(1, "esp-v2"), "realistic", "fast", 1))
		h.KeepFrames = false
		srv := simtest.NewMinimalServer(h, img)
		d := h.Net.Devices()[0]
		b.StartTimer()
		srv.Notify(d.IEEE())
		h.RunUntil(func() bool { return d.Status().Upgrades == 1 }, time.Hour)
		blocks += srv.BlockRequests
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(blocks), "ns/block")
}
