// Package simrig owns the glue that runs the real OTA engine (package ota) against the simulated network
// (ncp/sim) on one virtual clock, with no bridge and no MQTT: the engine's frames go out through the link
// model, the devices' frames come back to Engine.HandleFrame, and device announcements and version reads (a
// Read Attributes of CurrentFileVersion) close the loop the way the bridge's interview does. Everything runs
// on the goroutine that calls Run/RunUntil, so a simulated hour costs milliseconds and a run is
// deterministic for a given seed. The bench command measures modelled goodput and fleet times on it.
package simrig

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ota"
	"github.com/otabridge/otabridge/zcl"
)

// Rig is an OTA engine wired to a simulated network on a manually driven virtual clock.
type Rig struct {
	Clock  *clock.Virtual
	Net    *sim.Network
	Engine *ota.Engine

	out *output
}

// Observer sees what crosses the rig, on the clock goroutine. Any field may be nil.
type Observer struct {
	// Sent is called for every OTA cluster frame the engine sends to a device (frame valid during the call).
	Sent func(dst zcl.IEEE, h zcl.Header, payload []byte)
	// Received is called for every OTA cluster frame a device sends, before the engine handles it.
	Received func(src zcl.IEEE, h zcl.Header, payload []byte)
	// Event is called for every engine event.
	Event func(ev ota.Event)
}

// New builds the simulated network of simCfg on a fresh virtual clock, an engine with engCfg serving the
// images of cat, and tells the engine every device's identity as the bridge's interview would. It starts the
// network and runs the clock for one second so that the devices are up. Close releases it.
func New(simCfg sim.Config, engCfg ota.EngineConfig, cat ota.Catalog, obs Observer, log zerolog.Logger) (*Rig, error) {
	clk := clock.NewVirtual()
	net, err := sim.New(simCfg, clk, log)
	if err != nil {
		return nil, fmt.Errorf("simrig: %w", err)
	}
	out := &output{net: net, obs: obs, reads: map[uint8]zcl.IEEE{}}
	eng := ota.NewEngine(engCfg, cat, out, clk, log)
	eng.SetMaxAPSPayload(net.MaxAPSPayload())
	eng.SetMaxFragmentedPayload(net.MaxFragmentedPayload())
	out.eng = eng
	r := &Rig{Clock: clk, Net: net, Engine: eng, out: out}
	net.SetImageOracle(func(id zcl.ImageID) ([32]byte, bool) {
		if img := cat.ByImageID(id); img != nil {
			return img.SHA256()
		}
		return [32]byte{}, false
	})
	net.SetHandler(r.handle)
	for _, d := range net.Devices() {
		c := d.Config()
		eng.SetDevice(ota.DeviceInfo{IEEE: c.IEEE, Model: c.Model, ManufacturerName: c.Manufacturer,
			ManufacturerCode: c.ManufacturerCode, ImageType: c.ImageType, HardwareVersion: c.HardwareVersion,
			HasHardwareVersion: true, FileVersion: c.FileVersion, FileVersionKnown: true,
			Sleepy: c.Power == sim.PowerBattery})
	}
	if _, err := net.Start(context.Background()); err != nil {
		r.Close()
		return nil, fmt.Errorf("simrig: start: %w", err)
	}
	clk.RunFor(time.Second)
	return r, nil
}

// Close stops the engine and the network.
func (r *Rig) Close() {
	r.Engine.Close()
	_ = r.Net.Close()
}

// Now returns the virtual time since clock.Epoch.
func (r *Rig) Now() time.Duration { return r.Clock.Elapsed() }

// RunUntil runs the simulation until cond holds (checked between events) or max of virtual time passed,
// and reports whether cond holds.
func (r *Rig) RunUntil(cond func() bool, max time.Duration) bool {
	return r.Clock.RunUntil(r.Clock.Now().Add(max), cond)
}

// Events returns how many engine events of each type were reported.
func (r *Rig) Events() map[string]int {
	r.out.mu.Lock()
	defer r.out.mu.Unlock()
	m := make(map[string]int, len(r.out.events))
	for k, v := range r.out.events {
		m[k] = v
	}
	return m
}

// handle takes the network's events on the clock goroutine.
func (r *Rig) handle(ev ncp.Event) {
	switch ev.Kind {
	case ncp.EventAnnounced:
		r.Engine.DeviceAnnounced(ev.IEEE)
	case ncp.EventFrame:
		if ev.Frame.ClusterID != zcl.ClusterOTA {
			return
		}
		h, payload, err := zcl.DecodeHeader(ev.Frame.Payload)
		if err == nil && h.FrameType == zcl.FrameTypeGlobal && h.CommandID == zcl.CmdReadAttributesResponse {
			r.versionRead(ev.IEEE, h.TSN, payload)
			return
		}
		if err == nil && r.out.obs.Received != nil {
			r.out.obs.Received(ev.IEEE, h, payload)
		}
		r.Engine.HandleFrame(ev.IEEE, ev.Frame.Payload)
	}
}

// versionRead feeds the CurrentFileVersion of a Read Attributes Response the rig asked for to the engine.
func (r *Rig) versionRead(src zcl.IEEE, tsn uint8, payload []byte) {
	r.out.mu.Lock()
	dst, ok := r.out.reads[tsn]
	if ok && dst == src {
		delete(r.out.reads, tsn)
	}
	r.out.mu.Unlock()
	if !ok || dst != src {
		return
	}
	resp, err := zcl.DecodeReadAttributesResponse(payload)
	if err != nil {
		return
	}
	for _, rec := range resp.Records {
		if rec.AttributeID != zcl.AttrOTACurrentFileVersion || rec.Status != zcl.StatusSuccess {
			continue
		}
		d := r.Net.Device(src)
		if d == nil {
			return
		}
		c := d.Config()
		r.Engine.SetDevice(ota.DeviceInfo{IEEE: c.IEEE, Model: c.Model, ManufacturerName: c.Manufacturer,
			ManufacturerCode: c.ManufacturerCode, ImageType: c.ImageType, HardwareVersion: c.HardwareVersion,
			HasHardwareVersion: true, FileVersion: uint32(rec.Value.Uint), FileVersionKnown: true,
			Sleepy: c.Power == sim.PowerBattery})
	}
}

// output is the engine's Output onto the simulated network.
type output struct {
	net *sim.Network
	eng *ota.Engine
	obs Observer

	mu     sync.Mutex
	reads  map[uint8]zcl.IEEE // TSN of a version read → device
	tsn    uint8
	events map[string]int
}

func (o *output) send(dst zcl.IEEE, cluster uint16, frame []byte, apsAck bool) {
	d := o.net.Device(dst)
	if d == nil {
		return
	}
	o.net.SendAsyncStats(ncp.Frame{DstShort: d.NWK(), DstEndpoint: d.Config().Endpoint, SrcEndpoint: ncp.CoordinatorEndpoint,
		ClusterID: cluster, ProfileID: zcl.ProfileHomeAutomation, APSAck: apsAck, Payload: frame},
		func(st ncp.SendStats, err error) {
			// The radio's report, as the bridge's sender passes it: max_concurrent: auto's congestion signal.
			o.eng.SendDone(dst, ota.SendReport{Failed: errors.As(err, new(*ncp.SendError)), Attempts: st.Attempts,
				MACRetries: st.MACRetries, CCAFailures: st.CCAFailures, ChannelWait: st.ChannelWait})
		})
}

func (o *output) SendZCL(dst zcl.IEEE, frame []byte, opt ota.SendOptions) {
	if o.obs.Sent != nil {
		if h, p, err := zcl.DecodeHeader(frame); err == nil {
			o.obs.Sent(dst, h, p)
		}
	}
	o.send(dst, zcl.ClusterOTA, frame, opt.APSAck) // SendAsync copies the payload
}

func (o *output) BroadcastZCL(frame []byte) {
	o.net.SendAsync(ncp.Frame{DstShort: ncp.BroadcastAll, DstEndpoint: 0xFF, SrcEndpoint: ncp.CoordinatorEndpoint,
		ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, Payload: frame}, nil)
}

func (o *output) Event(ev ota.Event) {
	o.mu.Lock()
	if o.events == nil {
		o.events = map[string]int{}
	}
	o.events[ev.Type]++
	o.mu.Unlock()
	if o.obs.Event != nil {
		o.obs.Event(ev)
	}
}

func (o *output) State(ota.DeviceState) {}

// Interview reads the device's CurrentFileVersion, as the bridge's interview does.
func (o *output) Interview(dst zcl.IEEE) {
	o.mu.Lock()
	o.tsn++
	tsn := o.tsn
	o.reads[tsn] = dst
	o.mu.Unlock()
	frame := zcl.AppendFrame(nil, zcl.GlobalHeader(zcl.ClientToServer, false, tsn, zcl.CmdReadAttributes),
		zcl.ReadAttributes{AttributeIDs: []uint16{zcl.AttrOTACurrentFileVersion}})
	o.send(dst, zcl.ClusterOTA, frame, true)
}

func (o *output) DurableChanged() {}
