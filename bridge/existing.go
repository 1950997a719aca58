package bridge

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"time"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/netscan"
	"github.com/otabridge/otabridge/zcl"
)

// Existing networks: a network another host (Zigbee2MQTT, ZHA) formed, which otabridge runs for a while.
// Nobody announces on a resumed network, so the bridge finds its devices itself: a frame from a short
// address it does not know is resolved (ZDO IEEE_addr_req) and the device interviewed, and a network scan
// (topology walk over Mgmt_Lqi_req, then a broadcast Image Notify) lists every device. The scan runs on
// request (bridge/request/network/scan) and once by itself after the first start on a network otabridge did
// not form; what otabridge knows about the network is kept in NetworkRecordFile in the data directory.

// NetworkRecordFile is the name of the file in the data directory that records the network otabridge runs
// on: whether otabridge formed it, whether it was scanned, and a scan in progress.
const NetworkRecordFile = "network_record.json"

// networkRecord is the content of NetworkRecordFile.
type networkRecord struct {
	Channel           uint8          `json:"channel"`
	PANID             uint16         `json:"pan_id"`
	ExtendedPANID     zcl.IEEE       `json:"extended_pan_id"`
	FormedByOtabridge bool           `json:"formed_by_otabridge"`
	FirstSeen         time.Time      `json:"first_seen"`
	ScannedAt         time.Time      `json:"scanned_at,omitzero"`
	Scan              *netscan.State `json:"scan,omitempty"` // a scan that was stopped; it continues at the next start
	// Imported: the imports applied (source:path), and when.
	Imported map[string]time.Time `json:"imported,omitempty"`
}

// Bounds of address resolution: frames held per unknown short address while it is resolved, short
// addresses resolved at once (the rest wait their turn: the device sends again).
// Found devices are interviewed a few at a time (their reads share the low-priority radio slot with every
// other interview; a sleepy device holds it until its next poll), and an interview that failed is tried
// again after foundRetryDelay, foundAttempts times in all.
const (
	resolveHeldFrames   = 4
	resolveMaxPending   = 32
	foundInterviewSlots = 2
	foundAttempts       = 3
	foundRetryDelay     = 30 * time.Second
)

// existing is the bridge's state about the network it did not form.
type existing struct {
	mu        sync.Mutex
	resolving map[uint16][]ncp.Incoming // frames from unknown senders, by short address, while resolving
	failed    map[uint16]time.Time      // short addresses that did not answer, and when
	record    networkRecord
	path      string
	// interviewing holds the found devices whose interview is queued or runs; slots bounds them.
	interviewing map[zcl.IEEE]bool
	slots        chan struct{}
}

// handleUnknownSender starts resolving a short address the registry does not know (the frame is held and
// handled when the device's IEEE address is known). Called on the event loop.
func (b *Bridge) handleUnknownSender(in ncp.Incoming) {
	if in.SrcShort == 0x0000 || in.SrcShort >= 0xFFF8 {
		return
	}
	x := &b.existing
	x.mu.Lock()
	if held, busy := x.resolving[in.SrcShort]; busy {
		if len(held) < resolveHeldFrames {
			x.resolving[in.SrcShort] = append(held, in)
		}
		x.mu.Unlock()
		return
	}
	if t, ok := x.failed[in.SrcShort]; ok && b.clk.Now().Sub(t) < time.Minute {
		x.mu.Unlock()
		b.log.Debug().Str("nwk", hex16(in.SrcShort)).Msg("frame from an unresolvable device dropped")
		return
	}
	if len(x.resolving) >= resolveMaxPending {
		x.mu.Unlock()
		b.log.Warn().Str("nwk", hex16(in.SrcShort)).Int("resolving", resolveMaxPending).
			Msg("frame from an unknown device dropped: too many addresses being resolved")
		return
	}
	x.resolving[in.SrcShort] = []ncp.Incoming{in}
	x.mu.Unlock()
	b.log.Info().Str("nwk", hex16(in.SrcShort)).Uint16("cluster", in.ClusterID).Msg("frame from an unknown short address: resolving it")
	short := in.SrcShort
	b.goRun(func() {
		ieee, err := b.scan.Resolve(b.ctx, short)
		x.mu.Lock()
		held := x.resolving[short]
		delete(x.resolving, short)
		if err != nil {
			x.failed[short] = b.clk.Now()
		}
		x.mu.Unlock()
		if err != nil {
			if b.ctx.Err() == nil {
				b.log.Warn().Str("nwk", hex16(short)).Err(err).Int("frames_dropped", len(held)).Msg("unknown device not resolved")
			}
			return
		}
		b.deviceFound(ieee, short, 0, false, "resolve")
		for _, f := range held {
			f.SrcIEEE = ieee
			b.handleFrame(f)
		}
	})
}

// deviceFound records a device found on an existing network (resolved or listed by a scan) and, when it
// is new, interviews it.
func (b *Bridge) deviceFound(ieee zcl.IEEE, short uint16, lqi uint8, sleepyKnown bool, how string) {
	_, known := b.registry.ByIEEE(ieee)
	d, _ := b.registry.Seen(ieee, short, lqi)
	if sleepyKnown {
		d, _ = b.registry.Update(ieee, func(x *Device) { x.Sleepy = true; x.PowerSource = PowerBattery })
	}
	if known && d.Interview == InterviewOK {
		return
	}
	b.log.Info().Stringer("ieee", ieee).Str("nwk", hex16(short)).Str("how", how).Bool("sleepy", d.Sleepy).Msg("device found")
	if !known {
		b.engine.SetDevice(d.EngineInfo())
		b.publishEvent("device_found", d, map[string]any{"nwk": hex16(short), "how": how})
	}
	b.interviewFound(ieee)
}

// interviewFound interviews a found device in the background, foundInterviewSlots at a time, retrying.
func (b *Bridge) interviewFound(ieee zcl.IEEE) {
	x := &b.existing
	x.mu.Lock()
	if x.interviewing[ieee] {
		x.mu.Unlock()
		return
	}
	x.interviewing[ieee] = true
	x.mu.Unlock()
	b.goRun(func() {
		defer func() {
			x.mu.Lock()
			delete(x.interviewing, ieee)
			x.mu.Unlock()
		}()
		for attempt := 1; ; attempt++ {
			select {
			case x.slots <- struct{}{}:
			case <-b.ctx.Done():
				return
			}
			if d, ok := b.registry.ByIEEE(ieee); !ok || (attempt == 1 && d.Interview == InterviewOK && d.HasImageID) {
				<-x.slots // gone, or interviewed meanwhile (it announced itself)
				return
			}
			err, _ := b.jobs.do(b.ctx, ieee, false, func() error { return b.interviewNow(b.ctx, ieee) })
			<-x.slots
			if err == nil || b.ctx.Err() != nil {
				return
			}
			if attempt == foundAttempts {
				b.log.Warn().Stringer("ieee", ieee).Err(err).Int("attempts", attempt).Msg("found device not interviewed")
				return
			}
			b.log.Info().Stringer("ieee", ieee).Err(err).Int("attempt", attempt).Msg("found device: interview failed, trying again")
			if clock.Sleep(b.ctx, b.clk, foundRetryDelay) != nil {
				return
			}
		}
	})
}

// loadNetworkRecord reads NetworkRecordFile and compares it with the network the radio started on: on the first
// start on a network (no record, or a record of another network) it records whether otabridge formed it.
// It reports whether the automatic scan must run (first start on a network otabridge did not form, or a
// scan that was stopped).
func (b *Bridge) loadNetworkRecord(info ncp.NetworkInfo) bool {
	x := &b.existing
	x.path = filepath.Join(b.cfg.DataDir, NetworkRecordFile)
	var rec networkRecord
	found, err := LoadJSON(x.path, &rec, b.log)
	if err != nil {
		b.log.Warn().Err(err).Str("file", x.path).Msg("network record unreadable: treating this as the first start on this network")
		found = false
	}
	if !found || rec.ExtendedPANID != info.ExtendedPANID || rec.PANID != info.PANID {
		rec = networkRecord{Channel: info.Channel, PANID: info.PANID, ExtendedPANID: info.ExtendedPANID,
			FormedByOtabridge: info.Formed, FirstSeen: time.Now().UTC(), Imported: rec.Imported}
		b.log.Info().Bool("formed_by_otabridge", info.Formed).Stringer("extended_pan_id", info.ExtendedPANID).
			Msg("first start on this network")
	}
	rec.Channel = info.Channel
	x.mu.Lock()
	x.record = rec
	x.mu.Unlock()
	b.saveNetworkRecord()
	if rec.Scan != nil {
		b.scan.Resume(*rec.Scan)
		return true
	}
	return !rec.FormedByOtabridge && rec.ScannedAt.IsZero()
}

func (b *Bridge) saveNetworkRecord() {
	x := &b.existing
	x.mu.Lock()
	rec := x.record
	x.mu.Unlock()
	if err := SaveJSON(x.path, rec); err != nil {
		b.log.Warn().Err(err).Msg("saving the network record")
	}
}

// formedByOtabridge reports whether otabridge formed the network it runs on.
func (b *Bridge) formedByOtabridge() bool {
	b.existing.mu.Lock()
	defer b.existing.mu.Unlock()
	return b.existing.record.FormedByOtabridge
}

// scanEvent publishes a network_scan event.
func (b *Bridge) scanEvent(data map[string]any) {
	b.pub.event(b.topic("bridge/event"), mustJSON(map[string]any{"type": "network_scan", "data": data}))
}

// runScan walks the network, records every device it lists (new ones are interviewed), then broadcasts an
// Image Notify (query jitter 100) so every OTA client queries. Progress goes to bridge/event and the log;
// a stopped scan is saved and continues at the next start.
func (b *Bridge) runScan(ctx context.Context, why string) error {
	start := b.clk.Now()
	b.log.Info().Str("why", why).Msg("network scan started")
	b.scanEvent(map[string]any{"state": "started", "why": why})
	found := 0
	res, err := b.scan.Walk(ctx, func(n netscan.Node) {
		found++
		b.deviceFound(n.IEEE, n.Short, n.LQI, n.Type == netscan.TypeEndDevice, "scan")
	}, func(p netscan.Progress, st netscan.State) {
		b.log.Info().Int("devices", p.Nodes).Int("tables_read", p.Routers).Int("tables_pending", p.Pending).
			Int("failed", p.Failed).Int("requests", p.Requests).Msg("network scan progress")
		b.scanEvent(map[string]any{"state": "progress", "devices": p.Nodes, "tables_read": p.Routers,
			"tables_pending": p.Pending, "failed": p.Failed, "requests": p.Requests})
		b.existing.mu.Lock()
		b.existing.record.Scan = &st
		b.existing.mu.Unlock()
		b.saveNetworkRecord()
	})
	if err != nil {
		if !errors.Is(err, netscan.ErrBusy) {
			b.log.Info().Err(err).Msg("network scan stopped: it continues at the next start")
		}
		return err
	}
	b.existing.mu.Lock()
	b.existing.record.Scan = nil
	b.existing.record.ScannedAt = time.Now().UTC()
	b.existing.mu.Unlock()
	b.saveNetworkRecord()
	failed := make([]string, 0, len(res.Failed))
	for _, f := range res.Failed {
		failed = append(failed, hex16(f))
	}
	notifyErr := b.engine.Notify(0, nil, 100)
	took := b.clk.Now().Sub(start)
	b.log.Info().Int("devices", len(res.Nodes)).Int("new", found).Int("requests", res.Requests).Strs("failed", failed).
		Bool("bounded", res.Bounded).Dur("took", took).AnErr("notify", notifyErr).Msg("network scan finished")
	b.scanEvent(map[string]any{"state": "finished", "devices": len(res.Nodes), "requests": res.Requests,
		"failed": failed, "bounded": res.Bounded, "seconds": took.Seconds()})
	return nil
}

// apiNetworkScan starts a network scan; progress and the result come on bridge/event (network_scan).
func (b *Bridge) apiNetworkScan(_ context.Context, req *request) (any, error) {
	if err := req.unknown(); err != nil {
		return nil, err
	}
	if b.scanRunning.Load() {
		return nil, errors.New("a network scan is already running")
	}
	b.startScan("request")
	return map[string]any{"started": true}, nil
}

// startScan runs a scan in the background unless one runs.
func (b *Bridge) startScan(why string) {
	if !b.scanRunning.CompareAndSwap(false, true) {
		return
	}
	b.goRun(func() {
		defer b.scanRunning.Store(false)
		_ = b.runScan(b.ctx, why)
	})
}
