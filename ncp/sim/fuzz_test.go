package sim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/zcl"
)

// fuzzDevice builds a one-device network (fast link), started, with the device's client put in the phase
// selected by state.
func fuzzDevice(t testing.TB, profile string, state uint8) (*Network, *Device) {
	cfg := Config{Link: LinkConfig{Mode: ModeFast}, Devices: []DeviceConfig{{
		IEEE: 0x00124b0000000001, ManufacturerCode: 0x131B, ImageType: 1, FileVersion: 5, Profile: profile,
	}}}
	n, err := New(cfg, clock.NewVirtual(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if _, err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.clk.RunFor(time.Second)
	d := n.devices[0]
	c := &d.client
	c.serverKnown, c.serverIEEE, c.serverEP = true, n.cfg.CoordinatorIEEE, 1
	id := zcl.ImageID{ManufacturerCode: 0x131B, ImageType: 1, FileVersion: 6}
	switch state % 5 {
	case 1:
		c.sendQuery()
	case 2:
		c.beginDownload(id, 300)
	case 3:
		c.beginDownload(id, 100)
		c.buf = append(c.buf, make([]byte, 100)...)
		c.phase = phaseEnd
	case 4:
		c.beginDownload(id, 2000)
		if profile == ProfilePage {
			c.page.heard = 1
		}
	}
	return n, d
}

// checkDevice reports a broken invariant of the device's state.
func checkDevice(d *Device) error {
	c := &d.client
	switch c.publicState() {
	case StateIdle, StateQuerying, StateDownloading, StateWaitingUpgrade:
	default:
		return fmt.Errorf("state %q", c.publicState())
	}
	if c.phase > phaseWaitUpgrade {
		return fmt.Errorf("phase %d", c.phase)
	}
	if c.phase == phaseDownload || c.phase == phaseEnd {
		if uint32(len(c.buf)) > c.size {
			return fmt.Errorf("received %d bytes of a %d-byte image", len(c.buf), c.size)
		}
	}
	if c.phase == phaseIdle && c.buf != nil {
		return fmt.Errorf("idle client keeps %d bytes", len(c.buf))
	}
	p := &c.page
	if p.active {
		if len(p.have) != len(p.data) || p.got > len(p.data) || p.got < 0 {
			return fmt.Errorf("page: %d/%d bytes, have %d", p.got, len(p.data), len(p.have))
		}
		if uint64(p.start)+uint64(len(p.data)) > uint64(c.size) {
			return fmt.Errorf("page %d+%d past image size %d", p.start, len(p.data), c.size)
		}
	}
	if c.upgradeStatus > 6 {
		return fmt.Errorf("image upgrade status %d", c.upgradeStatus)
	}
	return nil
}

// FuzzDeviceHandleFrame feeds random ZCL frames (on the OTA or Basic cluster, unicast or broadcast), and the
// same bytes as ZDO responses and requests, to a device in each client phase and profile: no panic, and the device's state stays consistent while the
// simulation runs on.
func FuzzDeviceHandleFrame(f *testing.F) {
	seeds := [][]byte{
		{0x19, 0x01, 0x00, 0x00, 0x64},                                                       // Image Notify type 0, jitter 100
		{0x19, 0x02, 0x00, 0x03, 0x64, 0x1B, 0x13, 0x01, 0x00, 6, 0, 0, 0},                   // type 3
		{0x19, 0x03, 0x02, 0x00, 0x1B, 0x13, 0x01, 0x00, 6, 0, 0, 0, 0x2C, 0x01, 0, 0},       // Query Next Image Response SUCCESS
		{0x19, 0x04, 0x02, 0x98},                                                             // NO_IMAGE_AVAILABLE
		{0x19, 0x05, 0x05, 0x00, 0x1B, 0x13, 0x01, 0x00, 6, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3}, // block at 0
		{0x19, 0x06, 0x05, 0x97, 0, 0, 0, 0, 10, 0, 0, 0, 100, 0},                            // WAIT_FOR_DATA
		{0x19, 0x07, 0x05, 0x95},                                                             // ABORT
		{0x19, 0x08, 0x07, 0x1B, 0x13, 0x01, 0x00, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},       // Upgrade End Response
		{0x18, 0x09, 0x0B, 0x04, 0x81},                                                       // Default Response UNSUP_COMMAND to a page request
		{0x00, 0x0A, 0x00, 0x02, 0x00, 0x06, 0x00},                                           // Read Attributes
		{0x05, 0x34, 0x12, 0x0B, 0x00},                                                       // manufacturer-specific
		{0x19, 0x0C, 0x05, 0x00, 0x1B, 0x13, 0x01, 0x00, 6, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF},
		{},
	}
	for _, s := range seeds {
		for state := uint8(0); state < 5; state++ {
			f.Add(state, uint8(0), false, s)
		}
	}
	f.Add(uint8(4), uint8(2), true, []byte{0x19, 0x01, 0x00, 0x01, 0x01, 0x1B, 0x13})
	f.Add(uint8(2), uint8(5), false, []byte{0x19, 0x05, 0x05, 0x00, 0x1B, 0x13, 0x01, 0x00, 6, 0, 0, 0, 0, 0, 0, 0, 64})
	f.Add(uint8(2), uint8(0x34), false, []byte{0x07, 0x01, 0, 0, 0, 0, 0x4B, 0x12, 0x00, 0x80}) // Mgmt_Leave_req, rejoin
	f.Fuzz(func(t *testing.T, state, selector uint8, broadcast bool, frame []byte) {
		profile := profiles[int(selector)%len(profiles)]
		n, d := fuzzDevice(t, profile, state)
		cluster := zcl.ClusterOTA
		if selector&0x80 != 0 {
			cluster = zcl.ClusterBasic
		}
		d.handleZCL(frameMeta{cluster: cluster, srcEP: 1, broadcast: broadcast}, frame)
		if err := checkDevice(d); err != nil {
			t.Fatalf("after the frame: %v", err)
		}
		// The same frame again (a duplicate) and then the simulation running on: timeouts, retries, reboots.
		d.handleZCL(frameMeta{cluster: cluster, srcEP: 1, broadcast: broadcast}, frame)
		runBounded(t, n, 2*time.Minute)
		if err := checkDevice(d); err != nil {
			t.Fatalf("after running: %v", err)
		}
		d.handleZDO(uint16(selector)|0x8000, frame, broadcast)
		runBounded(t, n, time.Minute)
		if err := checkDevice(d); err != nil {
			t.Fatalf("after ZDO: %v", err)
		}
		// and as a ZDO request (0x0000..0x003F: address, descriptor, Mgmt_Leave_req)
		d.handleZDO(uint16(selector)&0x3F, frame, broadcast)
		runBounded(t, n, time.Minute)
		if err := checkDevice(d); err != nil {
			t.Fatalf("after ZDO request: %v", err)
		}
	})
}

// FuzzConfigYAML: any YAML either fails ParseConfig with an error or gives a configuration New accepts.
func FuzzConfigYAML(f *testing.F) {
	for _, s := range []string{
		"",
		"devices:\n  - {ieee: 0x00124b0000000001}\n",
		"seed: 3\nlink: {mode: fast, loss: 0.1, mac_retries: -1}\ndevices:\n  - {ieee: 0x00124b0000000001, profile: page, page_size: 64, max_data_size: 64}\n",
		"devices:\n  - {ieee: 0x0000000000000001, nwk: 1}\n  - {ieee: 0x0000000000010001}\n",
		"devices:\n  - {ieee: 0x0000000000000001, power: battery, poll_interval: 1ms, hops: 15}\n",
		"channel: 26\npan_id: 0xFFFE\nextended_pan_id: 00:11:22:33:44:55:66:77\n",
		"devices: [{ieee: 0x1}]",
		"link: {loss: .nan}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			return
		}
		if len(cfg.Devices) > 64 {
			return // keep each run small
		}
		n, err := New(cfg, clock.NewVirtual(), zerolog.Nop())
		if err != nil {
			t.Fatalf("ParseConfig accepted what New refuses: %v", err)
		}
		_ = n.Close()
		full := cfg.WithDefaults()
		seen := map[uint16]bool{}
		for _, d := range full.Devices {
			if d.NWK == 0 || d.NWK >= 0xFFF8 || seen[d.NWK] {
				t.Fatalf("bad short address 0x%04X", d.NWK)
			}
			seen[d.NWK] = true
			if d.Hops < 1 || d.MaxDataSize == 0 || d.RequestTimeout <= 0 {
				t.Fatalf("defaults not filled: %+v", d)
			}
		}
	})
}

// runBounded runs the simulation for d of virtual time and fails when that takes an unreasonable number of
// events (an event loop that does not advance time).
func runBounded(t *testing.T, n *Network, d time.Duration) {
	t.Helper()
	start := n.clk.Fired()
	end := n.clk.Now().Add(d)
	runaway := func() bool { return n.clk.Fired()-start > 100000 }
	if n.clk.RunUntil(end, runaway) {
		t.Fatalf("more than 100000 events in %s of virtual time (now %s)", d, n.clk.Now().Sub(clock.Epoch))
	}
	n.clk.RunFor(0)
}

// FuzzCoordinatorZDO feeds any ZDO request to the coordinator's decoder and answer: no panic; an answer is
// the request's response cluster, starts with its sequence number and fits one APS frame.
func FuzzCoordinatorZDO(f *testing.F) {
	f.Add(uint16(0x0002), []byte{0x11, 0x00, 0x00}, false)
	f.Add(uint16(0x0001), []byte{0x19, 0x00, 0x00, 0x01, 0x00}, false)
	f.Add(uint16(0x0000), []byte{0x1D, 0xDE, 0xC0, 0xDE, 0xC0, 0x00, 0x4B, 0x12, 0x00, 0x01, 0x00}, true)
	f.Add(uint16(0x0004), []byte{0x15, 0x00, 0x00, 0x01}, false)
	f.Add(uint16(0x0005), []byte{0x14, 0x00, 0x00}, false)
	f.Add(uint16(0x0006), []byte{0x1F, 0xFD, 0xFF, 0x04, 0x01, 0x01, 0x19, 0x00, 0x00}, true)
	f.Add(uint16(0x0006), []byte{0x1F, 0x00, 0x00, 0x04, 0x01, 0xFF, 0x19}, false)
	f.Add(uint16(0x0036), []byte{0x01, 0xFE, 0x01}, false)
	f.Add(uint16(0x8002), []byte{0x01, 0x00}, false)
	n, _ := fuzzDevice(f, ProfileManual, 0)
	n.SetCoordinatorEndpoints([]EndpointDesc{
		{Endpoint: 1, ProfileID: 0x0104, InClusters: []uint16{0, 0x19}, OutClusters: []uint16{6}},
		{Endpoint: 242, ProfileID: 0xA1E0, OutClusters: []uint16{0x21}},
	})
	f.Fuzz(func(t *testing.T, cluster uint16, payload []byte, broadcast bool) {
		req, err := decodeZDORequest(cluster, payload)
		if err != nil {
			return
		}
		rc, rsp, ok := n.coordinatorAnswer(req, broadcast)
		if !ok {
			return
		}
		if rc != cluster|0x8000 || len(rsp) < 2 || rsp[0] != payload[0] || len(rsp) > MaxAPSPayload {
			t.Fatalf("request 0x%04x % x: answer 0x%04x % x", cluster, payload, rc, rsp)
		}
		n.setPermit(0, "fuzz") // keep the network closed for the next input
	})
}
