package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// Device is one virtual device: a Basic cluster, an OTA client cluster and the behaviour of its client
// profile. Its state lives on the clock goroutine; the exported methods are safe from any goroutine
// (Status returns a snapshot, Reboot/QueryNow/RequestBlock schedule work on the clock).
type Device struct {
	n   *Network
	cfg DeviceConfig
	log zerolog.Logger

	// Clock-goroutine state.
	online      bool
	booted      bool
	epoch       uint64 // bumped by every reboot: timers of an earlier life do nothing
	fileVersion uint32
	swBuildID   string
	held        []*message // frames the parent holds for this sleepy device
	pollTimer   clock.Timer
	nextPollAt  time.Time
	zdoSeq      uint8
	tsn         uint8
	client      otaClient
	counters    deviceCounters
	queryTimer  clock.Timer
	network     *NetworkParams // the network the device is a member of; nil: none (it may join one)
	everMember  bool           // it was a member before: its next join is a rejoin
	left        bool           // it left (or was removed); it joins again only with rejoin: true
	joining     bool           // a join is under way
	parent      uint16         // short address of its parent (0x0000: the coordinator)
	battery     atomic.Uint64  // battery level in percent (float64 bits); SetBattery recharges it

	snapMu sync.Mutex
	snap   DeviceStatus
	image  []byte // copy of the last completed download, for tests
}

// Device states reported in DeviceStatus.State.
const (
	StateIdle           = "idle"
	StateQuerying       = "querying"
	StateDownloading    = "downloading"
	StateWaitingUpgrade = "waiting_upgrade"
	StateRebooting      = "rebooting"
)

// DeviceStatus is a snapshot of a device, taken after each simulation event that touched it.
type DeviceStatus struct {
	IEEE        zcl.IEEE
	NWK         uint16
	Profile     string
	Online      bool
	FileVersion uint32 // CurrentFileVersion
	SWBuildID   string
	State       string // idle, querying, downloading, waiting_upgrade, rebooting
	// ImageUpgradeStatus is the OTA attribute (0 normal, 1 download in progress, 2 download complete,
	// 3 waiting to upgrade, 4 count down, 5 wait for more, 6 waiting to upgrade via external event).
	ImageUpgradeStatus uint8
	ServerIEEE         zcl.IEEE // UpgradeServerID; 0xFFFFFFFFFFFFFFFF before discovery
	Image              zcl.ImageID
	ImageSize          uint32
	Offset             uint32 // bytes of the image received so far (contiguous from 0)
	MinimumBlockPeriod uint16
	// ReceivedBytes and ReceivedSHA256 describe the last completed download (all ImageSize bytes, before
	// verification); zero before the first.
	ReceivedBytes   int
	ReceivedSHA256  [32]byte
	Upgrades        int        // completed upgrades (rebooted into a new version)
	Failures        int        // downloads that ended without an upgrade
	Restarts        int        // downloads restarted from offset 0 (restart-on-loss)
	Reboots         int        // reboots of any cause
	Timeouts        int        // requests that got no answer in time
	DroppedBlocks   int        // block responses the client ignored (size, offset, image id)
	Queries         int        // Query Next Image Requests sent
	BlockRequests   int        // Image Block Requests sent
	PageRequests    int        // Image Page Requests sent
	NotifiesHeard   int        // Image Notify commands received
	FramesReceived  int        // APS frames handed to the device
	Polls           int        // MAC data requests (sleepy devices)
	LastQueryStatus zcl.Status // status of the last Query Next Image Response
	LastEndStatus   zcl.Status // status of the last Upgrade End Request sent, or ABORT / TIMEOUT for a download that ended otherwise
	LastError       string
	PageFallback    bool // the page client fell back to block requests after UNSUP_COMMAND
	// Joined says the device is a member of the network the coordinator runs now; Parent is the short
	// address of the parent it joined through (0x0000: the coordinator).
	Joined bool
	Parent uint16
}

type deviceCounters struct {
	upgrades, failures, restarts, reboots, timeouts, dropped, queries, blockReqs, pageReqs, notifies, frames, polls int
	lastQuery, lastEnd                                                                                              zcl.Status
	lastError                                                                                                       string
	receivedBytes                                                                                                   int
	receivedSHA                                                                                                     [32]byte
}

func newDevice(n *Network, cfg DeviceConfig) *Device {
	d := &Device{
		n:           n,
		cfg:         cfg,
		log:         n.log.With().Str("ieee", cfg.IEEE.String()).Logger(),
		fileVersion: cfg.FileVersion,
		swBuildID:   cfg.SWBuildID,
	}
	d.client.init(d)
	level := 100.0
	if cfg.Battery != nil {
		level = *cfg.Battery
	}
	d.battery.Store(math.Float64bits(level))
	d.publish()
	return d
}

// SetBattery sets the battery level in percent (a test's recharge hook); the next Power Configuration
// read reports it.
func (d *Device) SetBattery(percent float64) {
	d.battery.Store(math.Float64bits(min(max(percent, 0), 100)))
}

// Battery returns the battery level in percent.
func (d *Device) Battery() float64 { return math.Float64frombits(d.battery.Load()) }

// batteryVoltage maps the level linearly onto a 2-cell 2.0..3.0 V pack, in 100 mV units (the Power
// Configuration cluster's BatteryVoltage).
func (d *Device) batteryVoltage() uint8 { return uint8(20 + math.Round(d.Battery()/10)) }

// IEEE returns the device's IEEE address.
func (d *Device) IEEE() zcl.IEEE { return d.cfg.IEEE }

// NWK returns the device's short address.
func (d *Device) NWK() uint16 { return d.cfg.NWK }

// Config returns the device's configuration with defaults filled in.
func (d *Device) Config() DeviceConfig { return d.cfg }

// Status returns the latest snapshot of the device.
func (d *Device) Status() DeviceStatus {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	return d.snap
}

// ReceivedImage returns a copy of the bytes of the last completed download (nil before the first).
func (d *Device) ReceivedImage() []byte {
	d.snapMu.Lock()
	defer d.snapMu.Unlock()
	return append([]byte(nil), d.image...)
}

// Reboot makes the device reboot now (a download in progress is lost); it announces itself when back.
func (d *Device) Reboot() {
	d.n.clk.AfterFunc(0, func() {
		if d.n.closed.Load() || !d.booted {
			return
		}
		d.reboot("on demand", nil)
		d.publish()
	})
}

// QueryNow makes the client send a Query Next Image Request now (discovering the server first if needed),
// whatever its profile; ignored while the client is busy.
func (d *Device) QueryNow() {
	d.n.clk.AfterFunc(0, func() {
		if d.n.closed.Load() || !d.online {
			return
		}
		d.client.startQuery("manual")
		d.publish()
	})
}

// RequestBlock makes the client send one Image Block Request for the image of its last successful query
// (for manual-profile tests). maxDataSize 0 uses the device's max data size.
func (d *Device) RequestBlock(offset uint32, maxDataSize uint8) {
	d.n.clk.AfterFunc(0, func() {
		if d.n.closed.Load() || !d.online {
			return
		}
		d.client.manualBlock(offset, maxDataSize)
		d.publish()
	})
}

// sleepy reports whether the device is a sleepy end device.
func (d *Device) sleepy() bool { return d.cfg.Power == PowerBattery }

// pollInterval is the current poll period: fast while an OTA exchange runs or frames wait.
func (d *Device) pollInterval() time.Duration {
	if d.client.busy() || len(d.held) > 0 {
		return d.cfg.FastPollInterval
	}
	return d.cfg.PollInterval
}

// after runs f on the clock after dur, unless the device rebooted meanwhile or the network closed; the
// device's snapshot is refreshed after f.
func (d *Device) after(dur time.Duration, f func()) clock.Timer {
	ep := d.epoch
	return d.n.clk.AfterFunc(dur, func() {
		if d.n.closed.Load() || d.epoch != ep {
			return
		}
		f()
		d.publish()
	})
}

// boot brings the device onto the air (at Start and after a reboot). A device that is not a member of any
// network looks for one to join (only while permit join is open).
func (d *Device) boot(announce bool) {
	d.booted = true
	d.online = true
	d.log.Info().Str("profile", d.cfg.Profile).Str("file_version", fmt.Sprintf("0x%08X", d.fileVersion)).
		Str("power", d.cfg.Power).Int("hops", d.cfg.Hops).Bool("member", d.network != nil).Msg("device up")
	if d.network == nil {
		d.maybeJoin()
		return
	}
	d.startLife(announce)
}

// startLife starts the device's life in its network: Device_annce, polling, the OTA client.
func (d *Device) startLife(announce bool) {
	if announce {
		d.announce()
	}
	if d.sleepy() {
		d.schedulePoll(d.pollInterval())
	}
	d.client.booted()
}

// stopLife ends everything the device does in its network: timers of this life do nothing any more, frames
// its parent holds for it are dropped (with failStatus, one sent without APS ack is confirmed as failed; a
// reboot drops them silently, as before joining existed), the OTA client stops.
func (d *Device) stopLife(failStatus string) {
	d.epoch++
	for _, m := range d.held {
		if failStatus != "" && !m.up && !m.needAck {
			m.finish(&ncp.SendError{DstShort: m.dstShort, Status: failStatus})
		}
	}
	d.held = nil
	if d.pollTimer != nil {
		d.pollTimer.Stop()
		d.pollTimer = nil
	}
	if d.queryTimer != nil {
		d.queryTimer.Stop()
		d.queryTimer = nil
	}
	d.client.rebooting()
}

// reboot takes the device off the air for reboot_time; then it boots (with newVersion applied when not nil)
// and announces itself.
func (d *Device) reboot(reason string, newVersion *uint32) {
	d.stopLife("")
	d.online = false
	d.joining = false
	d.counters.reboots++
	d.log.Info().Str("reason", reason).Dur("reboot_time_ms", d.cfg.RebootTime).Msg("device reboots")
	d.after(d.cfg.RebootTime, func() {
		if newVersion != nil {
			old := d.fileVersion
			d.fileVersion = *newVersion
			if d.cfg.NewSWBuildID != "" {
				d.swBuildID = d.cfg.NewSWBuildID
			}
			d.counters.upgrades++
			d.log.Info().Str("from", fmt.Sprintf("0x%08X", old)).Str("to", fmt.Sprintf("0x%08X", d.fileVersion)).Msg("upgraded")
		}
		d.client.reset()
		d.boot(true)
	})
}

// announce broadcasts a ZDO Device_annce.
func (d *Device) announce() {
	d.zdoSeq++
	p := []byte{d.zdoSeq}
	p = binary.LittleEndian.AppendUint16(p, d.cfg.NWK)
	p = binary.LittleEndian.AppendUint64(p, uint64(d.cfg.IEEE))
	p = append(p, d.capabilities())
	d.n.deviceSend(d, 0xFFFD, 0, zdoDeviceAnnce, 0, 0, p, false)
}

func (d *Device) capabilities() uint8 {
	if d.sleepy() {
		return CapabilityAllocateAddr
	}
	return CapabilityAllocateAddr | CapabilityFFD | CapabilityMainsPowered | CapabilityRxOnWhenIdle
}

// schedulePoll sets the next MAC data request dur from now.
func (d *Device) schedulePoll(dur time.Duration) {
	if d.pollTimer != nil {
		d.pollTimer.Stop()
	}
	d.nextPollAt = d.n.clk.Now().Add(dur)
	d.pollTimer = d.after(dur, d.pollNow)
}

func (d *Device) pollNow() {
	d.pollTimer = nil
	if !d.online {
		return
	}
	d.counters.polls++
	ep := d.epoch
	d.n.poll(d, func() {
		if d.epoch != ep || !d.online {
			return
		}
		next := d.pollInterval()
		if len(d.held) > 0 {
			next = 0 // frame pending: poll again at once
		}
		d.schedulePoll(next)
		d.publish()
	})
}

// kickFastPoll moves the next poll forward to the fast interval (the device expects an answer).
func (d *Device) kickFastPoll() {
	if !d.online || d.pollTimer == nil {
		return
	}
	if d.nextPollAt.After(d.n.clk.Now().Add(d.cfg.FastPollInterval)) {
		d.schedulePoll(d.cfg.FastPollInterval)
	}
}

// receive takes a frame from the link, after the device's processing delay.
// fragmentation reports whether the device's stack reassembles APS-fragmented frames.
func (d *Device) fragmentation() bool {
	return d.cfg.APSFragmentation == nil || *d.cfg.APSFragmentation
}

func (d *Device) receive(m *message) {
	if !d.online {
		return
	}
	d.counters.frames++
	if d.cfg.ProcessingDelay > 0 {
		d.after(d.cfg.ProcessingDelay, func() { d.handle(m) })
		return
	}
	d.handle(m)
	d.publish()
}

// frameMeta is what a handler needs to know about a received frame to answer it.
type frameMeta struct {
	cluster   uint16
	srcEP     uint8
	broadcast bool
}

func (d *Device) handle(m *message) {
	if !d.online {
		return
	}
	if m.profile == 0 {
		if m.dstEP == 0 {
			d.handleZDO(m.cluster, m.payload, m.broadcast)
		}
		return
	}
	d.log.Debug().Uint16("cluster", m.cluster).Hex("payload", m.payload).Msg("device rx")
	d.handleZCL(frameMeta{cluster: m.cluster, srcEP: m.srcEP, broadcast: m.broadcast}, m.payload)
}

// handleZCL is the device's ZCL dispatcher. It never panics on any input.
func (d *Device) handleZCL(meta frameMeta, frame []byte) {
	h, payload, err := zcl.DecodeHeader(frame)
	if err != nil {
		d.log.Debug().Err(err).Msg("undecodable ZCL frame dropped")
		return
	}
	if meta.cluster != zcl.ClusterOTA && meta.cluster != zcl.ClusterBasic &&
		(meta.cluster != zcl.ClusterPowerConfig || !d.sleepy()) {
		d.defaultResponse(meta, h, zcl.StatusUnsupportedCluster)
		return
	}
	if h.ManufacturerSpecific {
		st := zcl.StatusUnsupManufClusterCommand
		if h.FrameType == zcl.FrameTypeGlobal {
			st = zcl.StatusUnsupManufGeneralCommand
		}
		d.defaultResponse(meta, h, st)
		return
	}
	switch h.FrameType {
	case zcl.FrameTypeGlobal:
		switch h.CommandID {
		case zcl.CmdReadAttributes:
			req, err := zcl.DecodeReadAttributes(payload)
			if err != nil {
				d.defaultResponse(meta, h, zcl.StatusMalformedCommand)
				return
			}
			if meta.broadcast {
				return
			}
			d.readAttributes(meta, h, req)
		case zcl.CmdDefaultResponse:
			dr, err := zcl.DecodeDefaultResponse(payload)
			if err != nil {
				return // never answer a Default Response
			}
			if meta.cluster == zcl.ClusterOTA {
				d.client.onDefaultResponse(dr)
			}
		case zcl.CmdReadAttributesResponse:
			// not expected by a device; ignore
		default:
			d.defaultResponse(meta, h, zcl.StatusUnsupGeneralCommand)
		}
	case zcl.FrameTypeCluster:
		if meta.cluster != zcl.ClusterOTA || h.Direction != zcl.ServerToClient {
			d.defaultResponse(meta, h, zcl.StatusUnsupCommand)
			return
		}
		d.client.handleCommand(meta, h, payload)
	default:
		d.defaultResponse(meta, h, zcl.StatusUnsupCommand)
	}
}

// defaultResponse answers a unicast command with a Default Response: always for an error status, for
// SUCCESS only when the sender did not disable it. Never for a broadcast or a Default Response.
func (d *Device) defaultResponse(meta frameMeta, h zcl.Header, status zcl.Status) {
	if meta.broadcast || (h.FrameType == zcl.FrameTypeGlobal && h.CommandID == zcl.CmdDefaultResponse) {
		return
	}
	if status == zcl.StatusSuccess && h.DisableDefaultResponse {
		return
	}
	rh := zcl.GlobalHeader(opposite(h.Direction), true, h.TSN, zcl.CmdDefaultResponse)
	if h.ManufacturerSpecific {
		rh.ManufacturerSpecific = true
		rh.ManufacturerCode = h.ManufacturerCode
	}
	frame := zcl.AppendFrame(nil, rh, zcl.DefaultResponse{CommandID: h.CommandID, Status: status})
	d.sendZCL(meta.cluster, meta.srcEP, frame)
}

func opposite(dir zcl.Direction) zcl.Direction {
	if dir == zcl.ServerToClient {
		return zcl.ClientToServer
	}
	return zcl.ServerToClient
}

// sendZCL sends a ZCL frame to the coordinator endpoint dstEP (0 → the discovered server's endpoint).
func (d *Device) sendZCL(cluster uint16, dstEP uint8, frame []byte) {
	if dstEP == 0 {
		dstEP = d.client.serverEndpoint()
	}
	d.n.deviceSend(d, 0x0000, zcl.ProfileHomeAutomation, cluster, d.cfg.Endpoint, dstEP, frame, *d.cfg.APSAck)
}

// readAttributes answers Read Attributes for the Basic and OTA clusters.
func (d *Device) readAttributes(meta frameMeta, h zcl.Header, req zcl.ReadAttributes) {
	var rsp zcl.ReadAttributesResponse
	for _, id := range req.AttributeIDs {
		v, ok := d.attribute(meta.cluster, id)
		if ok {
			rsp.Records = append(rsp.Records, zcl.AttributeRecord(id, v))
		} else {
			rsp.Records = append(rsp.Records, zcl.AttributeErrorRecord(id, zcl.StatusUnsupportedAttribute))
		}
	}
	rh := zcl.GlobalHeader(opposite(h.Direction), true, h.TSN, zcl.CmdReadAttributesResponse)
	d.sendZCL(meta.cluster, meta.srcEP, zcl.AppendFrame(nil, rh, rsp))
}

// attribute returns the current value of an attribute of the Basic or OTA cluster.
func (d *Device) attribute(cluster, id uint16) (zcl.AttributeValue, bool) {
	c := &d.client
	switch cluster {
	case zcl.ClusterBasic:
		switch id {
		case zcl.AttrBasicZCLVersion:
			return zcl.Uint8Value(8), true
		case zcl.AttrBasicApplicationVersion:
			return zcl.Uint8Value(uint8(d.fileVersion >> 24)), true
		case zcl.AttrBasicStackVersion:
			return zcl.Uint8Value(2), true
		case zcl.AttrBasicHWVersion:
			return zcl.Uint8Value(uint8(d.cfg.HardwareVersion)), true
		case zcl.AttrBasicManufacturerName:
			return zcl.CharStringValue(d.cfg.Manufacturer), true
		case zcl.AttrBasicModelIdentifier:
			return zcl.CharStringValue(d.cfg.Model), true
		case zcl.AttrBasicDateCode:
			if d.cfg.DateCode == "" {
				return zcl.AttributeValue{}, false
			}
			return zcl.CharStringValue(d.cfg.DateCode), true
		case zcl.AttrBasicPowerSource:
			if d.sleepy() {
				return zcl.Enum8Value(0x03), true
			}
			return zcl.Enum8Value(0x01), true
		case zcl.AttrBasicSWBuildID:
			if d.swBuildID == "" {
				return zcl.AttributeValue{}, false
			}
			return zcl.CharStringValue(d.swBuildID), true
		}
	case zcl.ClusterPowerConfig:
		switch id {
		case zcl.AttrPowerBatteryVoltage:
			return zcl.Uint8Value(d.batteryVoltage()), true
		case zcl.AttrPowerBatteryPercentageRemaining:
			if d.cfg.BatteryVoltageOnly {
				return zcl.AttributeValue{}, false
			}
			return zcl.Uint8Value(uint8(math.Round(d.Battery() * 2))), true
		}
	case zcl.ClusterOTA:
		switch id {
		case zcl.AttrOTAUpgradeServerID:
			return zcl.IEEEValue(c.serverIEEEAttr()), true
		case zcl.AttrOTAFileOffset:
			return zcl.Uint32Value(c.fileOffsetAttr()), true
		case zcl.AttrOTACurrentFileVersion:
			return zcl.Uint32Value(d.fileVersion), true
		case zcl.AttrOTACurrentZigbeeStackVersion:
			return zcl.Uint16Value(0x0002), true
		case zcl.AttrOTADownloadedFileVersion:
			return zcl.Uint32Value(c.downloadedVersionAttr()), true
		case zcl.AttrOTADownloadedZigbeeStackVersion:
			if c.downloadedVersionAttr() == 0xFFFFFFFF {
				return zcl.Uint16Value(0xFFFF), true
			}
			return zcl.Uint16Value(0x0002), true
		case zcl.AttrOTAImageUpgradeStatus:
			return zcl.Enum8Value(c.upgradeStatus), true
		case zcl.AttrOTAManufacturerID:
			return zcl.Uint16Value(d.cfg.ManufacturerCode), true
		case zcl.AttrOTAImageTypeID:
			return zcl.Uint16Value(d.cfg.ImageType), true
		case zcl.AttrOTAMinimumBlockPeriod:
			return zcl.Uint16Value(c.minBlockPeriod), true
		case zcl.AttrOTAUpgradeActivationPolicy, zcl.AttrOTAUpgradeTimeoutPolicy:
			return zcl.Enum8Value(0), true
		}
	}
	return zcl.AttributeValue{}, false
}

// handleZDO answers the ZDO requests a device's stack answers (address, node, active endpoints and simple
// descriptor requests) and passes the responses the OTA client waits for (server discovery).
func (d *Device) handleZDO(cluster uint16, p []byte, broadcast bool) {
	if len(p) < 1 {
		return
	}
	seq := p[0]
	switch cluster {
	case zdoMatchDescRsp, zdoIEEEAddrRsp:
		d.client.onZDO(cluster, p)
	case zdoIEEEAddrReq:
		if len(p) < 3 || binary.LittleEndian.Uint16(p[1:]) != d.cfg.NWK {
			return
		}
		d.zdoReply(zdoIEEEAddrRsp, addrRsp(seq, d.cfg.IEEE, d.cfg.NWK))
	case zdoNWKAddrReq:
		if len(p) < 9 || zcl.IEEE(binary.LittleEndian.Uint64(p[1:])) != d.cfg.IEEE {
			return
		}
		d.zdoReply(zdoNWKAddrRsp, addrRsp(seq, d.cfg.IEEE, d.cfg.NWK))
	case zdoMgmtLeaveReq:
		// seq, DeviceAddress (8), flags (bit 6 remove children, bit 7 rejoin)
		if broadcast || len(p) < 10 {
			return
		}
		if target := zcl.IEEE(binary.LittleEndian.Uint64(p[1:])); target != 0 && target != d.cfg.IEEE {
			d.zdoReply(zdoMgmtLeaveRsp, []byte{seq, nwkStatusUnknownDevice}) // not itself, and it has no children
			return
		}
		d.zdoReply(zdoMgmtLeaveRsp, []byte{seq, zdoStatusSuccess})
		rejoin := p[9]&0x80 != 0
		d.after(d.n.freeAt.Sub(d.n.clk.Now()), func() { d.leave("Mgmt_Leave_req", rejoin) })
	case zdoMgmtLqiReq:
		if broadcast || len(p) < 2 {
			return
		}
		if d.sleepy() {
			d.zdoReply(zdoMgmtLqiRsp, []byte{seq, zdoStatusNotSupp})
			return
		}
		d.zdoReply(zdoMgmtLqiRsp, d.n.lqiResponse(seq, d.cfg.NWK, p[1]))
	case zdoNodeDescReq:
		if broadcast {
			return
		}
		logical := uint8(1)
		if d.sleepy() {
			logical = 2
		}
		rsp := []byte{seq, zdoStatusSuccess, byte(d.cfg.NWK), byte(d.cfg.NWK >> 8)}
		d.zdoReply(zdoNodeDescRsp, append(rsp, nodeDescriptor(logical, d.capabilities(), d.cfg.ManufacturerCode)...))
	case zdoActiveEPReq:
		if broadcast {
			return
		}
		d.zdoReply(zdoActiveEPRsp, []byte{seq, zdoStatusSuccess, byte(d.cfg.NWK), byte(d.cfg.NWK >> 8), 1, d.cfg.Endpoint})
	case zdoSimpleDescReq:
		if broadcast || len(p) < 4 {
			return
		}
		rsp := []byte{seq, zdoStatusInvalidE, byte(d.cfg.NWK), byte(d.cfg.NWK >> 8), 0}
		if p[3] == d.cfg.Endpoint {
			desc := simpleDescriptor(EndpointDesc{Endpoint: d.cfg.Endpoint, ProfileID: zcl.ProfileHomeAutomation, DeviceVersion: 1,
				InClusters: []uint16{zcl.ClusterBasic}, OutClusters: []uint16{zcl.ClusterOTA}})
			rsp = append([]byte{seq, zdoStatusSuccess, byte(d.cfg.NWK), byte(d.cfg.NWK >> 8), byte(len(desc))}, desc...)
		}
		d.zdoReply(zdoSimpleDescRsp, rsp)
	}
}

func (d *Device) zdoReply(cluster uint16, payload []byte) {
	d.n.deviceSend(d, 0x0000, 0, cluster, 0, 0, payload, false)
}

// nextTSN returns the next ZCL transaction sequence number.
func (d *Device) nextTSN() uint8 {
	d.tsn++
	return d.tsn
}

// publish refreshes the snapshot Status returns.
func (d *Device) publish() {
	c := &d.client
	s := DeviceStatus{
		IEEE: d.cfg.IEEE, NWK: d.cfg.NWK, Profile: d.cfg.Profile, Online: d.online,
		FileVersion: d.fileVersion, SWBuildID: d.swBuildID, State: c.publicState(),
		ImageUpgradeStatus: c.upgradeStatus, ServerIEEE: c.serverIEEEAttr(), Image: c.img, ImageSize: c.size,
		Offset: c.offset(), MinimumBlockPeriod: c.minBlockPeriod,
		ReceivedBytes: d.counters.receivedBytes, ReceivedSHA256: d.counters.receivedSHA,
		Upgrades: d.counters.upgrades, Failures: d.counters.failures, Restarts: d.counters.restarts,
		Reboots: d.counters.reboots, Timeouts: d.counters.timeouts, DroppedBlocks: d.counters.dropped,
		Queries: d.counters.queries, BlockRequests: d.counters.blockReqs, PageRequests: d.counters.pageReqs,
		NotifiesHeard: d.counters.notifies, FramesReceived: d.counters.frames, Polls: d.counters.polls,
		LastQueryStatus: d.counters.lastQuery, LastEndStatus: d.counters.lastEnd, LastError: d.counters.lastError,
		PageFallback: c.pageUnsupported, Joined: d.inNetwork(), Parent: d.parent,
	}
	if !d.online && d.booted {
		s.State = StateRebooting
	}
	d.snapMu.Lock()
	d.snap = s
	d.snapMu.Unlock()
}

// recordDownload keeps the received image's length, SHA-256 and bytes for inspection.
func (d *Device) recordDownload(b []byte) [32]byte {
	sum := sha256.Sum256(b)
	d.counters.receivedBytes = len(b)
	d.counters.receivedSHA = sum
	d.snapMu.Lock()
	d.image = append(d.image[:0], b...)
	d.snapMu.Unlock()
	return sum
}
