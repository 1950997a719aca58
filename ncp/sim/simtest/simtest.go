// Package simtest owns the scenario harness for tests that run against the simulated network (ncp/sim): it
// builds a network from a YAML snippet on a manually driven virtual clock, installs a synchronous event
// handler, and lets a test act as the OTA server by exchanging ZCL frames with the virtual devices. It also
// holds MinimalServer, a deliberately small hand-written OTA server used by the simulator's own tests; it is
// NOT the real OTA engine (that is package ota).
package simtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
)

// Received is one frame the coordinator received, with the virtual time it arrived.
type Received struct {
	At  time.Duration // since clock.Epoch
	Src zcl.IEEE
	In  ncp.Incoming
}

// Harness is a simulated network on a manual virtual clock with the test as the bridge. Everything runs on
// the test's goroutine: Run / RunUntil drive the clock, and the callbacks registered with OnFrame and
// OnEvent run inside it.
type Harness struct {
	T     testing.TB
	Clock *clock.Virtual
	Net   *sim.Network

	// KeepFrames makes the harness keep every received frame in Frames (default true; benchmarks turn it off).
	KeepFrames bool
	Frames     []Received
	Events     []ncp.Event // every event other than EventFrame, in order
	SendErrors []error     // failed confirmations of SendZCL / SendCluster / Broadcast

	onFrame []func(src zcl.IEEE, in ncp.Incoming)
	onEvent []func(ev ncp.Event)
	tsn     uint8
}

// New builds a harness from the YAML of a `radio.sim` section (strict: unknown keys fail the test), starts
// the network and runs the clock for one second so that the devices are up.
// Log output goes to the test log at info level (SIMTEST_LOG=debug shows frames; benchmarks log nothing
// unless SIMTEST_LOG is set).
func New(t testing.TB, yamlSnippet string) *Harness {
	t.Helper()
	cfg, err := sim.ParseConfig([]byte(yamlSnippet))
	if err != nil {
		t.Fatalf("simtest: %v", err)
	}
	return NewWithConfig(t, cfg)
}

// NewWithConfig is New for a configuration built in Go.
func NewWithConfig(t testing.TB, cfg sim.Config) *Harness {
	t.Helper()
	clk := clock.NewVirtual()
	net, err := sim.New(cfg, clk, testLogger(t))
	if err != nil {
		t.Fatalf("simtest: %v", err)
	}
	h := &Harness{T: t, Clock: clk, Net: net, KeepFrames: true}
	net.SetHandler(h.handle)
	t.Cleanup(func() { _ = net.Close() })
	if _, err := net.Start(context.Background()); err != nil {
		t.Fatalf("simtest: start: %v", err)
	}
	h.Run(time.Second)
	return h
}

func testLogger(t testing.TB) zerolog.Logger {
	level := os.Getenv("SIMTEST_LOG")
	if _, bench := t.(*testing.B); bench && level == "" {
		return zerolog.Nop()
	}
	lvl := zerolog.InfoLevel
	if level != "" {
		if l, err := zerolog.ParseLevel(level); err == nil {
			lvl = l
		}
	}
	return zerolog.New(zerolog.NewTestWriter(t)).Level(lvl).With().Timestamp().Logger()
}

func (h *Harness) handle(ev ncp.Event) {
	if ev.Kind == ncp.EventFrame {
		if h.KeepFrames {
			h.Frames = append(h.Frames, Received{At: h.Clock.Elapsed(), Src: ev.IEEE, In: ev.Frame})
		}
		for _, f := range h.onFrame {
			f(ev.IEEE, ev.Frame)
		}
		return
	}
	h.Events = append(h.Events, ev)
	for _, f := range h.onEvent {
		f(ev)
	}
}

// OnFrame registers f for every frame the coordinator receives (on the clock goroutine, i.e. inside Run).
func (h *Harness) OnFrame(f func(src zcl.IEEE, in ncp.Incoming)) { h.onFrame = append(h.onFrame, f) }

// OnEvent registers f for every event other than a frame.
func (h *Harness) OnEvent(f func(ev ncp.Event)) { h.onEvent = append(h.onEvent, f) }

// Device returns the device with that address; it fails the test when there is none.
func (h *Harness) Device(ieee zcl.IEEE) *sim.Device {
	h.T.Helper()
	d := h.Net.Device(ieee)
	if d == nil {
		h.T.Fatalf("simtest: no device %s", ieee)
	}
	return d
}

// NextTSN returns a fresh ZCL transaction sequence number for frames the test sends.
func (h *Harness) NextTSN() uint8 {
	h.tsn++
	return h.tsn
}

// Now returns the virtual time since clock.Epoch.
func (h *Harness) Now() time.Duration { return h.Clock.Elapsed() }

// Run runs the simulation for d of virtual time.
func (h *Harness) Run(d time.Duration) { h.Clock.RunFor(d) }

// RunUntil runs the simulation until cond holds (checked between events) or max of virtual time passed,
// and reports whether cond holds.
func (h *Harness) RunUntil(cond func() bool, max time.Duration) bool {
	return h.Clock.RunUntil(h.Clock.Now().Add(max), cond)
}

// Send sends an APS frame from the coordinator; done (nil allowed) gets the confirmation on the clock
// goroutine.
func (h *Harness) Send(f ncp.Frame, done func(error)) {
	h.SendWithStats(f, func(_ ncp.SendStats, err error) {
		if done != nil {
			done(err)
		}
	})
}

// SendWithStats is Send whose confirmation also carries what the frame cost on the coordinator's hop.
func (h *Harness) SendWithStats(f ncp.Frame, done func(ncp.SendStats, error)) {
	h.Net.SendAsyncStats(f, func(st ncp.SendStats, err error) {
		if err != nil {
			h.SendErrors = append(h.SendErrors, err)
		}
		if done != nil {
			done(st, err)
		}
	})
}

// SendZCL sends a ZCL frame on the OTA cluster from endpoint 1 to the device's endpoint.
func (h *Harness) SendZCL(dst zcl.IEEE, frame []byte, apsAck bool) {
	h.SendCluster(dst, zcl.ClusterOTA, frame, apsAck)
}

// SendCluster sends a ZCL frame on cluster from endpoint 1 to the device's endpoint.
func (h *Harness) SendCluster(dst zcl.IEEE, cluster uint16, frame []byte, apsAck bool) {
	h.T.Helper()
	h.SendClusterStats(dst, cluster, frame, apsAck, nil)
}

// SendClusterStats is SendCluster with the confirmation and the frame's statistics going to done (nil allowed).
func (h *Harness) SendClusterStats(dst zcl.IEEE, cluster uint16, frame []byte, apsAck bool, done func(ncp.SendStats, error)) {
	h.T.Helper()
	d := h.Device(dst)
	h.SendWithStats(ncp.Frame{
		DstShort: d.NWK(), DstEndpoint: d.Config().Endpoint, SrcEndpoint: ncp.CoordinatorEndpoint,
		ClusterID: cluster, ProfileID: zcl.ProfileHomeAutomation, APSAck: apsAck, Payload: frame,
	}, done)
}

// Broadcast sends a ZCL frame on cluster to a broadcast address (ncp.BroadcastAll, …), endpoint 0xFF.
func (h *Harness) Broadcast(dstShort, cluster uint16, frame []byte) {
	h.Send(ncp.Frame{
		DstShort: dstShort, DstEndpoint: 0xFF, SrcEndpoint: ncp.CoordinatorEndpoint,
		ClusterID: cluster, ProfileID: zcl.ProfileHomeAutomation, Payload: frame,
	}, nil)
}

// ReadAttributes reads attributes of a device's cluster through the air and runs the clock until the
// Read Attributes Response arrives (at most a minute of virtual time).
func (h *Harness) ReadAttributes(dst zcl.IEEE, cluster uint16, ids ...uint16) ([]zcl.ReadAttributeRecord, error) {
	tsn := h.NextTSN()
	frame := ReadAttributesFrame(tsn, ids...)
	var (
		got  *zcl.ReadAttributesResponse
		derr error
	)
	h.OnFrame(func(src zcl.IEEE, in ncp.Incoming) {
		if got != nil || derr != nil || src != dst || in.ClusterID != cluster {
			return
		}
		hd, payload, err := zcl.DecodeHeader(in.Payload)
		if err != nil || hd.TSN != tsn || hd.FrameType != zcl.FrameTypeGlobal || hd.CommandID != zcl.CmdReadAttributesResponse {
			return
		}
		rsp, err := zcl.DecodeReadAttributesResponse(payload)
		if err != nil {
			derr = err
			return
		}
		got = &rsp
	})
	h.SendCluster(dst, cluster, frame, true)
	if !h.RunUntil(func() bool { return got != nil || derr != nil }, time.Minute) {
		return nil, fmt.Errorf("read attributes of %s cluster 0x%04x: no response", dst, cluster)
	}
	if derr != nil {
		return nil, fmt.Errorf("read attributes of %s: %w", dst, derr)
	}
	return got.Records, nil
}

// ReadUint reads one integer attribute (fails the test on any error).
func (h *Harness) ReadUint(dst zcl.IEEE, cluster, id uint16) uint64 {
	h.T.Helper()
	recs, err := h.ReadAttributes(dst, cluster, id)
	if err != nil {
		h.T.Fatalf("simtest: %v", err)
	}
	if len(recs) != 1 || recs[0].Status != zcl.StatusSuccess {
		h.T.Fatalf("simtest: read attribute 0x%04x of %s: %+v", id, dst, recs)
	}
	return recs[0].Value.Uint
}

// Frame builders for the server side.

// ImageNotifyFrame builds an Image Notify (frame control 0x19, or 0x09 when the default response is wanted).
func ImageNotifyFrame(tsn uint8, n zcl.ImageNotify, wantDefaultResponse bool) []byte {
	h := zcl.ServerToClientClusterHeader(tsn, zcl.CmdImageNotify)
	h.DisableDefaultResponse = !wantDefaultResponse
	return zcl.AppendFrame(nil, h, n)
}

// QueryNextImageResponseFrame builds a Query Next Image Response.
func QueryNextImageResponseFrame(tsn uint8, r zcl.QueryNextImageResponse) []byte {
	return zcl.AppendFrame(nil, zcl.ServerToClientClusterHeader(tsn, zcl.CmdQueryNextImageResponse), r)
}

// ImageBlockResponseFrame builds an Image Block Response.
func ImageBlockResponseFrame(tsn uint8, r zcl.ImageBlockResponse) []byte {
	return zcl.AppendImageBlockResponseFrame(nil, tsn, &r)
}

// UpgradeEndResponseFrame builds an Upgrade End Response.
func UpgradeEndResponseFrame(tsn uint8, r zcl.UpgradeEndResponse) []byte {
	return zcl.AppendFrame(nil, zcl.ServerToClientClusterHeader(tsn, zcl.CmdUpgradeEndResponse), r)
}

// DefaultResponseFrame builds a server→client Default Response.
func DefaultResponseFrame(tsn, commandID uint8, status zcl.Status) []byte {
	return zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ServerToClient, true, tsn, zcl.CmdDefaultResponse),
		zcl.DefaultResponse{CommandID: commandID, Status: status})
}

// ReadAttributesFrame builds a Read Attributes command (client→server direction).
func ReadAttributesFrame(tsn uint8, ids ...uint16) []byte {
	return zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ClientToServer, false, tsn, zcl.CmdReadAttributes),
		zcl.ReadAttributes{AttributeIDs: ids})
}

// BuildImage makes a synthetic OTA file of size bytes (at least 62): a 56-byte header with the image id
// and total size, one upgrade-image sub-element (tag 0) and pseudo-random data from seed.
func BuildImage(id zcl.ImageID, size int, seed uint64) []byte {
	size = max(size, 62)
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b[0:], 0x0BEEF11E)
	binary.LittleEndian.PutUint16(b[4:], 0x0100)
	binary.LittleEndian.PutUint16(b[6:], 56)
	binary.LittleEndian.PutUint16(b[10:], id.ManufacturerCode)
	binary.LittleEndian.PutUint16(b[12:], id.ImageType)
	binary.LittleEndian.PutUint32(b[14:], id.FileVersion)
	binary.LittleEndian.PutUint16(b[18:], 0x0002)
	copy(b[20:52], "otabridge simtest image")
	binary.LittleEndian.PutUint32(b[52:], uint32(size))
	binary.LittleEndian.PutUint16(b[56:], 0x0000)
	binary.LittleEndian.PutUint32(b[58:], uint32(size-62))
	r := rand.New(rand.NewPCG(seed, 0x51))
	for i := 62; i < size; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}
