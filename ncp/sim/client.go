package sim

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/zcl"
)

// The OTA client of a virtual device (ZCL OTA cluster, client side), with the behaviour of its profile:
//
//   - esp-v2: queries only after an Image Notify (or QueryNow), 223-byte blocks.
//   - periodic: also queries every query_interval while idle.
//   - page: like periodic, but downloads with Image Page Requests (page_size, response_spacing_ms), filling
//     the gaps of a page with Image Block Requests; after a Default Response UNSUP_COMMAND to a page request
//     it uses Image Block Requests for good.
//   - silabs: like periodic; max data size 63; drops block responses with more than 63 data bytes or at an
//     unexpected offset (so it times out and asks again); sends its MinimumBlockPeriod in block requests.
//   - restart-on-loss: like esp-v2, but a block request that times out makes it start over from offset 0
//     with a new Query Next Image (esp-zigbee-sdk issue #833), at most `retries` times per download.
//   - manual: never starts anything itself; QueryNow and RequestBlock drive it; it still verifies a
//     complete image, sends the Upgrade End Request and reboots into the new version.
//
// Common behaviour: a client that has not discovered a server broadcasts ZDO Match_Desc (profile 0x0104,
// input cluster 0x0019) and then asks the server's IEEE address (IEEE_addr_req) before it queries. A unicast
// Image Notify always triggers a query (and a Default Response SUCCESS unless disabled); a broadcast one only
// when its jitter is 1..100, its manufacturer code (type ≥ 1) and image type (type ≥ 2) match or are
// wildcards, its file version (type 3) is newer than the running one, and a draw of 1..100 is ≤ the jitter.
// Every request has a timeout (request_timeout) and is resent up to `retries` times; then the exchange is
// given up (a download with an Upgrade End Request ABORT). WAIT_FOR_DATA makes the client wait requestTime − currentTime seconds (requestTime when
// currentTime is 0; at most an hour) and adopt the minimum block period it carries; block requests are spaced
// by at least MinimumBlockPeriod milliseconds. ABORT, NO_IMAGE_AVAILABLE or any other error status in an Image
// Block Response (or a Default Response with an error to a block request) ends the download without an
// Upgrade End Request. A complete image is verified: its length, its OTA header (magic, image id equal to
// the Query Next Image Response's, total image size equal to the length) and, when the network has an image
// oracle that knows the image, its SHA-256; the Upgrade End Request carries SUCCESS or INVALID_IMAGE. After
// the Upgrade End Response the client waits the upgrade time (currentTime 0: upgradeTime seconds from now;
// else upgradeTime − currentTime; 0xFFFFFFFF: wait for a later Upgrade End Response, re-asking hourly), reboots
// for reboot_time, announces itself and reports the new file version. A reboot mid-download loses the
// download (the next one starts from offset 0).

type clientPhase uint8

const (
	phaseIdle          clientPhase = iota
	phaseDiscoverMatch             // Match_Desc sent
	phaseDiscoverIEEE              // IEEE_addr_req sent
	phaseQuery                     // Query Next Image Request sent
	phaseDownload                  // block / page requests
	phaseEnd                       // Upgrade End Request SUCCESS sent, waiting for the response
	phaseWaitUpgrade               // Upgrade End Response received, counting down or waiting
)

// Image upgrade status attribute values.
const (
	upgradeNormal          uint8 = 0
	upgradeDownloading     uint8 = 1
	upgradeDownloaded      uint8 = 2
	upgradeWaitingToUpgrad uint8 = 3
	upgradeCountDown       uint8 = 4
)

// maxImageSize is the largest image a virtual device accepts (its "flash").
const maxImageSize = 16 << 20

// waitForUpgradeCommand is how often a client told to wait (upgradeTime 0xFFFFFFFF) asks again.
const waitForUpgradeCommand = time.Hour

type otaClient struct {
	d     *Device
	phase clientPhase

	serverKnown bool
	serverShort uint16
	serverEP    uint8
	serverIEEE  zcl.IEEE
	zdoSeqSent  uint8

	img               zcl.ImageID
	size              uint32
	buf               []byte
	upgradeStatus     uint8
	minBlockPeriod    uint16
	downloadedVersion uint32
	lastRequestAt     time.Time
	lastMax           uint8
	restarts          int
	rebootFaultDone   bool
	pageUnsupported   bool
	page              pageState

	reqTimer   clock.Timer
	paceTimer  clock.Timer
	upTimer    clock.Timer
	triesLeft  int
	resend     func()
	onTimeout  func()
	gapPending bool // a gap-filling block request of the page is outstanding
}

type pageState struct {
	active bool
	start  uint32
	data   []byte
	have   []bool
	got    int
	heard  int // blocks heard since the last page request
}

func (c *otaClient) init(d *Device) {
	c.d = d
	c.minBlockPeriod = d.cfg.MinimumBlockPeriod
	c.downloadedVersion = 0xFFFFFFFF
}

func (c *otaClient) profile() string { return c.d.cfg.Profile }

func (c *otaClient) busy() bool { return c.phase != phaseIdle }

func (c *otaClient) publicState() string {
	switch c.phase {
	case phaseDiscoverMatch, phaseDiscoverIEEE, phaseQuery:
		return StateQuerying
	case phaseDownload, phaseEnd:
		return StateDownloading
	case phaseWaitUpgrade:
		return StateWaitingUpgrade
	}
	return StateIdle
}

func (c *otaClient) serverEndpoint() uint8 {
	if c.serverKnown && c.serverEP != 0 {
		return c.serverEP
	}
	return 1
}

func (c *otaClient) serverIEEEAttr() zcl.IEEE {
	if c.serverKnown {
		return c.serverIEEE
	}
	return 0xFFFFFFFFFFFFFFFF
}

func (c *otaClient) fileOffsetAttr() uint32 {
	if c.phase == phaseDownload || c.phase == phaseEnd || c.phase == phaseWaitUpgrade {
		return c.offset()
	}
	return 0xFFFFFFFF
}

func (c *otaClient) downloadedVersionAttr() uint32 { return c.downloadedVersion }

func (c *otaClient) offset() uint32 { return uint32(len(c.buf)) }

func (c *otaClient) now() time.Time { return c.d.n.clk.Now() }

// booted starts the periodic query timer of the profiles that have one.
func (c *otaClient) booted() {
	switch c.profile() {
	case ProfilePeriodic, ProfileSilabs, ProfilePage:
		c.schedulePeriodic()
	}
}

func (c *otaClient) schedulePeriodic() {
	d := c.d
	if d.queryTimer != nil {
		d.queryTimer.Stop()
	}
	d.queryTimer = d.after(d.cfg.QueryInterval, func() {
		d.queryTimer = nil
		if c.phase == phaseIdle {
			c.startQuery("periodic")
		}
		c.schedulePeriodic()
	})
}

// rebooting drops everything in progress (the device goes off the air).
func (c *otaClient) rebooting() {
	c.stopTimers()
	c.phase = phaseIdle
	c.buf = nil
	c.page = pageState{}
	c.upgradeStatus = upgradeNormal
	c.downloadedVersion = 0xFFFFFFFF
	c.gapPending = false
}

// reset is called when the device comes back from a reboot.
func (c *otaClient) reset() {
	c.rebooting()
	c.img = zcl.ImageID{}
	c.size = 0
	c.minBlockPeriod = c.d.cfg.MinimumBlockPeriod
}

func (c *otaClient) stopTimers() {
	c.disarm()
	for _, t := range []*clock.Timer{&c.paceTimer, &c.upTimer} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
}

// request sends an exchange's request and arms its timeout; the request is resent up to `retries` times.
func (c *otaClient) request(send func()) {
	c.triesLeft = c.d.cfg.Retries
	c.resend = send
	c.onTimeout = c.timedOut
	send()
	c.arm()
}

func (c *otaClient) arm() {
	c.disarm()
	c.reqTimer = c.d.after(c.d.cfg.RequestTimeout, func() {
		c.reqTimer = nil
		if c.onTimeout != nil {
			c.onTimeout()
		}
	})
}

func (c *otaClient) disarm() {
	if c.reqTimer != nil {
		c.reqTimer.Stop()
		c.reqTimer = nil
	}
}

// timedOut handles a request that got no answer.
func (c *otaClient) timedOut() {
	d := c.d
	d.counters.timeouts++
	if c.profile() == ProfileRestartOnLoss && c.phase == phaseDownload {
		c.restarts++
		d.counters.restarts++
		if c.restarts > d.cfg.Retries {
			c.endDownload(zcl.StatusTimeout, "block lost; too many restarts")
			return
		}
		d.log.Warn().Uint32("offset", c.offset()).Int("restart", c.restarts).Msg("block lost: restarting the download from offset 0 (esp-zigbee-sdk #833)")
		c.dropDownload()
		c.sendQuery()
		return
	}
	if c.triesLeft > 0 {
		c.triesLeft--
		d.log.Debug().Str("phase", c.publicState()).Uint32("offset", c.offset()).Int("tries_left", c.triesLeft).Msg("request timed out; retrying")
		c.resend()
		c.arm()
		return
	}
	switch c.phase {
	case phaseDiscoverMatch, phaseDiscoverIEEE:
		c.fail("OTA server discovery got no answer")
	case phaseQuery:
		c.fail("query next image got no answer")
	case phaseDownload:
		// The client gives the download up and tells the server so.
		c.sendUpgradeEnd(zcl.StatusAbort)
		c.endDownload(zcl.StatusAbort, "block request got no answer")
	case phaseEnd:
		c.endDownload(zcl.StatusTimeout, "upgrade end request got no answer")
	default:
		c.fail("request got no answer")
	}
}

// fail ends a discovery or query exchange.
func (c *otaClient) fail(msg string) {
	c.disarm()
	c.phase = phaseIdle
	c.d.counters.lastError = msg
	c.d.log.Info().Str("error", msg).Msg("OTA exchange given up")
}

// startQuery begins a query (discovering the server first when needed); ignored while busy.
func (c *otaClient) startQuery(reason string) {
	if c.phase != phaseIdle || !c.d.online {
		return
	}
	c.restarts = 0
	c.d.log.Debug().Str("reason", reason).Bool("server_known", c.serverKnown).Msg("query next image")
	if !c.serverKnown {
		c.discover()
		return
	}
	c.sendQuery()
}

// discover broadcasts Match_Desc for input cluster 0x0019.
func (c *otaClient) discover() {
	c.phase = phaseDiscoverMatch
	c.request(func() {
		d := c.d
		d.zdoSeq++
		c.zdoSeqSent = d.zdoSeq
		p := []byte{d.zdoSeq, 0xFD, 0xFF}
		p = binary.LittleEndian.AppendUint16(p, zcl.ProfileHomeAutomation)
		p = append(p, 1)
		p = binary.LittleEndian.AppendUint16(p, zcl.ClusterOTA)
		p = append(p, 0)
		d.n.deviceSend(d, 0xFFFD, 0, zdoMatchDescReq, 0, 0, p, false)
	})
}

// onZDO takes the ZDO responses of server discovery.
func (c *otaClient) onZDO(cluster uint16, p []byte) {
	d := c.d
	if len(p) < 2 || p[0] != c.zdoSeqSent {
		return
	}
	switch {
	case cluster == zdoMatchDescRsp && c.phase == phaseDiscoverMatch:
		if p[1] != zdoStatusSuccess || len(p) < 6 || p[4] == 0 || len(p) < 5+int(p[4]) {
			return // no match from this node; wait for another answer or the timeout
		}
		c.disarm()
		c.serverShort = binary.LittleEndian.Uint16(p[2:])
		c.serverEP = p[5]
		c.phase = phaseDiscoverIEEE
		c.request(func() {
			d.zdoSeq++
			c.zdoSeqSent = d.zdoSeq
			q := []byte{d.zdoSeq, byte(c.serverShort), byte(c.serverShort >> 8), 0, 0}
			d.n.deviceSend(d, c.serverShort, 0, zdoIEEEAddrReq, 0, 0, q, false)
		})
	case cluster == zdoIEEEAddrRsp && c.phase == phaseDiscoverIEEE:
		if p[1] != zdoStatusSuccess || len(p) < 12 {
			return
		}
		c.disarm()
		c.serverIEEE = zcl.IEEE(binary.LittleEndian.Uint64(p[2:]))
		c.serverKnown = true
		d.log.Info().Str("server", c.serverIEEE.String()).Uint8("endpoint", c.serverEP).Msg("OTA server discovered")
		c.sendQuery()
	}
}

// sendQuery sends Query Next Image Request with the hardware version.
func (c *otaClient) sendQuery() {
	c.phase = phaseQuery
	c.request(func() {
		d := c.d
		d.counters.queries++
		req := zcl.QueryNextImageRequest{
			FieldControl: 0x01, ManufacturerCode: d.cfg.ManufacturerCode, ImageType: d.cfg.ImageType,
			FileVersion: d.fileVersion, HardwareVersion: d.cfg.HardwareVersion,
		}
		d.sendZCL(zcl.ClusterOTA, 0, zcl.AppendFrame(nil, zcl.ClientToServerClusterHeader(d.nextTSN(), zcl.CmdQueryNextImageRequest), req))
	})
}

// handleCommand takes a server→client OTA command.
func (c *otaClient) handleCommand(meta frameMeta, h zcl.Header, payload []byte) {
	d := c.d
	switch h.CommandID {
	case zcl.CmdImageNotify:
		r, err := zcl.DecodeImageNotify(payload)
		if err != nil {
			d.defaultResponse(meta, h, zcl.StatusMalformedCommand)
			return
		}
		c.onNotify(meta, h, r)
	case zcl.CmdQueryNextImageResponse:
		r, err := zcl.DecodeQueryNextImageResponse(payload)
		if err != nil {
			d.defaultResponse(meta, h, zcl.StatusMalformedCommand)
			return
		}
		c.onQueryResponse(r)
	case zcl.CmdImageBlockResponse:
		r, err := zcl.DecodeImageBlockResponse(payload)
		if err != nil {
			d.counters.dropped++
			d.defaultResponse(meta, h, zcl.StatusMalformedCommand)
			return
		}
		c.onBlockResponse(r)
	case zcl.CmdUpgradeEndResponse:
		r, err := zcl.DecodeUpgradeEndResponse(payload)
		if err != nil {
			d.defaultResponse(meta, h, zcl.StatusMalformedCommand)
			return
		}
		c.onUpgradeEndResponse(r)
	case zcl.CmdQueryDeviceSpecificFileResponse:
		// never asked for; ignore
	default:
		d.defaultResponse(meta, h, zcl.StatusUnsupCommand)
	}
}

// onNotify applies the Image Notify rules of the spec (see the top of this file).
func (c *otaClient) onNotify(meta frameMeta, h zcl.Header, r zcl.ImageNotify) {
	d := c.d
	d.counters.notifies++
	if !meta.broadcast {
		d.defaultResponse(meta, h, zcl.StatusSuccess)
	}
	if c.profile() == ProfileManual {
		return
	}
	if meta.broadcast {
		reason := ""
		switch {
		case r.QueryJitter < 1 || r.QueryJitter > 100:
			reason = "jitter out of range"
		case r.PayloadType >= 1 && r.ManufacturerCode != d.cfg.ManufacturerCode && r.ManufacturerCode != zcl.WildcardManufacturer:
			reason = "other manufacturer"
		case r.PayloadType >= 2 && r.ImageType != d.cfg.ImageType && r.ImageType != zcl.WildcardImageType:
			reason = "other image type"
		case r.PayloadType >= 3 && r.FileVersion != zcl.WildcardFileVersion && r.FileVersion <= d.fileVersion:
			reason = "not newer"
		}
		if reason == "" {
			if draw := d.n.rng.IntN(100) + 1; draw > int(r.QueryJitter) {
				reason = fmt.Sprintf("jitter draw %d > %d", draw, r.QueryJitter)
			}
		}
		if reason != "" {
			d.log.Debug().Uint8("payload_type", r.PayloadType).Str("why", reason).Msg("broadcast image notify ignored")
			return
		}
	}
	c.startQuery("image notify")
}

func (c *otaClient) onQueryResponse(r zcl.QueryNextImageResponse) {
	d := c.d
	if c.phase != phaseQuery {
		return
	}
	c.disarm()
	d.counters.lastQuery = r.Status
	c.phase = phaseIdle
	if r.Status != zcl.StatusSuccess {
		d.log.Debug().Str("status", r.Status.String()).Msg("no image")
		return
	}
	switch {
	case r.ManufacturerCode != d.cfg.ManufacturerCode && r.ManufacturerCode != zcl.WildcardManufacturer:
		d.counters.lastError = fmt.Sprintf("offered image of manufacturer 0x%04X", r.ManufacturerCode)
	case r.ImageType != d.cfg.ImageType && r.ImageType != zcl.WildcardImageType:
		d.counters.lastError = fmt.Sprintf("offered image of type 0x%04X", r.ImageType)
	case r.ImageSize == 0 || r.ImageSize > maxImageSize:
		d.counters.lastError = fmt.Sprintf("offered image size %d", r.ImageSize)
	default:
		c.beginDownload(zcl.ImageID{ManufacturerCode: r.ManufacturerCode, ImageType: r.ImageType, FileVersion: r.FileVersion}, r.ImageSize)
		return
	}
	d.log.Info().Str("error", d.counters.lastError).Msg("query next image response refused")
}

func (c *otaClient) beginDownload(id zcl.ImageID, size uint32) {
	d := c.d
	c.img, c.size = id, size
	c.buf = make([]byte, 0, min(size, 1<<20))
	c.page = pageState{}
	c.phase = phaseDownload
	c.upgradeStatus = upgradeDownloading
	c.downloadedVersion = id.FileVersion
	d.log.Info().Str("image", fmt.Sprintf("%04X-%04X-%08X", id.ManufacturerCode, id.ImageType, id.FileVersion)).
		Uint32("size", size).Uint8("max_data_size", d.cfg.MaxDataSize).Msg("download starts")
	c.requestNext()
}

// dropDownload forgets the download in progress.
func (c *otaClient) dropDownload() {
	c.stopTimers()
	c.buf = nil
	c.page = pageState{}
	c.gapPending = false
	c.phase = phaseIdle
	c.upgradeStatus = upgradeNormal
	c.downloadedVersion = 0xFFFFFFFF
}

// endDownload ends a download that will not lead to an upgrade.
func (c *otaClient) endDownload(status zcl.Status, msg string) {
	d := c.d
	d.counters.failures++
	d.counters.lastEnd = status
	d.counters.lastError = msg
	d.log.Warn().Str("status", status.String()).Str("error", msg).Uint32("offset", c.offset()).Uint32("size", c.size).Msg("download ended")
	c.dropDownload()
}

// requestNext asks for the next data, honouring the minimum block period.
func (c *otaClient) requestNext() {
	if c.phase != phaseDownload {
		return
	}
	if c.offset() >= c.size && !c.page.active {
		c.finish()
		return
	}
	if c.profile() == ProfileManual {
		return
	}
	wait := c.lastRequestAt.Add(time.Duration(c.minBlockPeriod) * time.Millisecond).Sub(c.now())
	if wait > 0 {
		if c.paceTimer != nil {
			c.paceTimer.Stop()
		}
		c.paceTimer = c.d.after(wait, func() {
			c.paceTimer = nil
			c.sendNext()
		})
		return
	}
	c.sendNext()
}

func (c *otaClient) usePages() bool { return c.profile() == ProfilePage && !c.pageUnsupported }

func (c *otaClient) sendNext() {
	if c.phase != phaseDownload {
		return
	}
	if c.usePages() {
		c.startPage()
		return
	}
	off := c.offset()
	c.request(func() { c.sendBlock(off, c.d.cfg.MaxDataSize) })
}

// sendBlock sends one Image Block Request.
func (c *otaClient) sendBlock(off uint32, maxData uint8) {
	d := c.d
	d.counters.blockReqs++
	c.lastRequestAt = c.now()
	c.lastMax = maxData
	req := zcl.ImageBlockRequest{
		ManufacturerCode: c.img.ManufacturerCode, ImageType: c.img.ImageType, FileVersion: c.img.FileVersion,
		FileOffset: off, MaxDataSize: maxData,
	}
	if c.profile() == ProfileSilabs {
		req.FieldControl = 0x02
		req.MinimumBlockPeriod = c.minBlockPeriod
	}
	d.sendZCL(zcl.ClusterOTA, 0, zcl.AppendFrame(nil, zcl.ClientToServerClusterHeader(d.nextTSN(), zcl.CmdImageBlockRequest), req))
}

// manualBlock sends one block request for the current image (manual driving).
func (c *otaClient) manualBlock(off uint32, maxData uint8) {
	if c.phase != phaseDownload {
		c.d.log.Info().Msg("RequestBlock ignored: no image to download (query first)")
		return
	}
	if maxData == 0 {
		maxData = c.d.cfg.MaxDataSize
	}
	c.sendBlock(off, maxData)
}

func (c *otaClient) onBlockResponse(r zcl.ImageBlockResponse) {
	d := c.d
	if c.phase != phaseDownload {
		return
	}
	switch r.Status {
	case zcl.StatusSuccess:
		if c.page.active {
			c.onPageBlock(r)
			return
		}
		n := len(r.Data)
		why := ""
		switch {
		case r.ManufacturerCode != c.img.ManufacturerCode || r.ImageType != c.img.ImageType || r.FileVersion != c.img.FileVersion:
			why = "other image"
		case r.FileOffset != c.offset():
			why = "unexpected offset"
		case n == 0:
			why = "no data"
		case n > int(c.lastMax) || (c.profile() == ProfileSilabs && n > 63):
			why = "too much data"
		case uint64(r.FileOffset)+uint64(n) > uint64(c.size):
			why = "beyond the image end"
		}
		if why != "" {
			d.counters.dropped++
			d.log.Debug().Str("why", why).Uint32("offset", r.FileOffset).Int("data", n).Uint32("expected", c.offset()).Msg("block dropped")
			return
		}
		c.disarm()
		c.buf = append(c.buf, r.Data...)
		if c.rebootFault() {
			return
		}
		c.requestNext()
	case zcl.StatusWaitForData:
		c.waitForData(r)
	default:
		c.disarm()
		c.endDownload(r.Status, "server aborted the download")
	}
}

// waitForData handles WAIT_FOR_DATA: wait, then ask again for the same data.
func (c *otaClient) waitForData(r zcl.ImageBlockResponse) {
	c.disarm()
	if r.HasMinimumBlockPeriod {
		c.minBlockPeriod = r.MinimumBlockPeriod
	}
	var secs uint32
	switch {
	case r.CurrentTime == 0:
		secs = r.RequestTime
	case r.RequestTime > r.CurrentTime:
		secs = r.RequestTime - r.CurrentTime
	}
	wait := min(time.Duration(secs)*time.Second, time.Hour)
	c.d.log.Debug().Dur("wait_ms", wait).Uint16("minimum_block_period", c.minBlockPeriod).Msg("wait for data")
	if c.paceTimer != nil {
		c.paceTimer.Stop()
	}
	c.paceTimer = c.d.after(wait, func() {
		c.paceTimer = nil
		if c.phase != phaseDownload || c.resend == nil {
			return
		}
		c.triesLeft = c.d.cfg.Retries
		c.resend()
		c.arm()
	})
}

// rebootFault reboots the device once when the download passes reboot_at_percent.
func (c *otaClient) rebootFault() bool {
	pct := c.d.cfg.RebootAtPercent
	if pct <= 0 || c.rebootFaultDone || c.size == 0 {
		return false
	}
	if float64(c.offset())*100 < pct*float64(c.size) {
		return false
	}
	c.rebootFaultDone = true
	c.d.reboot(fmt.Sprintf("fault: reboot at %.0f%%", pct), nil)
	return true
}

// startPage begins an Image Page Request for the page at the current offset.
func (c *otaClient) startPage() {
	start := c.offset()
	n := min(uint32(c.d.cfg.PageSize), c.size-start)
	c.page = pageState{active: true, start: start, data: make([]byte, n), have: make([]bool, n)}
	c.triesLeft = c.d.cfg.Retries
	c.resend = c.sendPage
	c.onTimeout = c.pageIdle
	c.sendPage()
	c.arm()
}

// sendPage asks for the rest of the page from its first missing byte.
func (c *otaClient) sendPage() {
	d := c.d
	first := c.firstMissing()
	d.counters.pageReqs++
	c.lastRequestAt = c.now()
	c.lastMax = d.cfg.MaxDataSize
	c.page.heard = 0
	c.gapPending = false
	req := zcl.ImagePageRequest{
		ManufacturerCode: c.img.ManufacturerCode, ImageType: c.img.ImageType, FileVersion: c.img.FileVersion,
		FileOffset: c.page.start + uint32(first), MaxDataSize: d.cfg.MaxDataSize,
		PageSize: uint16(len(c.page.data) - first), ResponseSpacing: d.cfg.ResponseSpacingMS,
	}
	d.sendZCL(zcl.ClusterOTA, 0, zcl.AppendFrame(nil, zcl.ClientToServerClusterHeader(d.nextTSN(), zcl.CmdImagePageRequest), req))
}

func (c *otaClient) firstMissing() int {
	for i, h := range c.page.have {
		if !h {
			return i
		}
	}
	return len(c.page.have)
}

// pageIdle runs when no block of the page came for request_timeout: ask for the page again when nothing
// came, else fill the gaps with block requests.
func (c *otaClient) pageIdle() {
	d := c.d
	if c.page.heard == 0 {
		d.counters.timeouts++
		if c.triesLeft > 0 {
			c.triesLeft--
			c.sendPage()
			c.arm()
			return
		}
		c.sendUpgradeEnd(zcl.StatusAbort)
		c.endDownload(zcl.StatusAbort, "page request got no answer")
		return
	}
	c.sendGap()
}

// sendGap asks for the first missing run of the page with an Image Block Request.
func (c *otaClient) sendGap() {
	first := c.firstMissing()
	run := 0
	for i := first; i < len(c.page.have) && !c.page.have[i]; i++ {
		run++
	}
	maxData := uint8(min(run, int(c.d.cfg.MaxDataSize)))
	off := c.page.start + uint32(first)
	c.gapPending = true
	c.triesLeft = c.d.cfg.Retries
	c.resend = func() { c.sendBlock(off, maxData) }
	c.onTimeout = c.timedOut
	c.resend()
	c.arm()
}

// onPageBlock stores a block of the current page.
func (c *otaClient) onPageBlock(r zcl.ImageBlockResponse) {
	d := c.d
	p := &c.page
	n := len(r.Data)
	end := uint64(p.start) + uint64(len(p.data))
	why := ""
	switch {
	case r.ManufacturerCode != c.img.ManufacturerCode || r.ImageType != c.img.ImageType || r.FileVersion != c.img.FileVersion:
		why = "other image"
	case n == 0:
		why = "no data"
	case n > int(d.cfg.MaxDataSize):
		why = "too much data"
	case r.FileOffset < p.start || uint64(r.FileOffset)+uint64(n) > end:
		why = "outside the page"
	}
	if why != "" {
		d.counters.dropped++
		d.log.Debug().Str("why", why).Uint32("offset", r.FileOffset).Int("data", n).Msg("page block dropped")
		return
	}
	rel := int(r.FileOffset - p.start)
	copy(p.data[rel:], r.Data)
	for i := rel; i < rel+n; i++ {
		if !p.have[i] {
			p.have[i] = true
			p.got++
		}
	}
	p.heard++
	if p.got == len(p.data) {
		c.disarm()
		c.buf = append(c.buf, p.data...)
		c.page = pageState{}
		c.gapPending = false
		if c.rebootFault() {
			return
		}
		c.requestNext()
		return
	}
	if c.gapPending {
		c.sendGap()
		return
	}
	c.arm() // the page's idle timer starts again
}

// onDefaultResponse handles a Default Response of the server to one of the client's requests.
func (c *otaClient) onDefaultResponse(dr zcl.DefaultResponse) {
	d := c.d
	if dr.Status == zcl.StatusSuccess {
		return
	}
	switch {
	case dr.CommandID == zcl.CmdImagePageRequest && dr.Status == zcl.StatusUnsupCommand && c.page.active:
		d.log.Info().Msg("server does not support page requests: falling back to block requests")
		c.disarm()
		c.pageUnsupported = true
		c.page = pageState{}
		c.requestNext()
	case dr.CommandID == zcl.CmdQueryNextImageRequest && c.phase == phaseQuery:
		c.disarm()
		d.counters.lastQuery = dr.Status
		c.phase = phaseIdle
	case (dr.CommandID == zcl.CmdImageBlockRequest || dr.CommandID == zcl.CmdImagePageRequest) && c.phase == phaseDownload:
		c.disarm()
		c.endDownload(dr.Status, "server refused the block request")
	case dr.CommandID == zcl.CmdUpgradeEndRequest && c.phase == phaseEnd:
		c.disarm()
		c.endDownload(dr.Status, "server refused the upgrade")
	}
}

// sendUpgradeEnd sends an Upgrade End Request for the current image.
func (c *otaClient) sendUpgradeEnd(status zcl.Status) {
	d := c.d
	end := zcl.UpgradeEndRequest{Status: status, ManufacturerCode: c.img.ManufacturerCode, ImageType: c.img.ImageType, FileVersion: c.img.FileVersion}
	d.sendZCL(zcl.ClusterOTA, 0, zcl.AppendFrame(nil, zcl.ClientToServerClusterHeader(d.nextTSN(), zcl.CmdUpgradeEndRequest), end))
}

// finish verifies the complete image and sends the Upgrade End Request.
func (c *otaClient) finish() {
	d := c.d
	sum := d.recordDownload(c.buf)
	status, why := c.verify(sum)
	c.upgradeStatus = upgradeDownloaded
	d.counters.lastEnd = status
	send := func() { c.sendUpgradeEnd(status) }
	if status != zcl.StatusSuccess {
		d.log.Warn().Str("error", why).Msg("downloaded image is invalid")
		send()
		d.counters.failures++
		d.counters.lastError = why
		c.dropDownload()
		return
	}
	d.log.Info().Uint32("size", c.size).Msg("download complete and verified")
	c.phase = phaseEnd
	c.request(send)
}

// verify checks the received image: length, OTA header against the offered image, oracle SHA-256.
func (c *otaClient) verify(sum [32]byte) (zcl.Status, string) {
	b := c.buf
	if uint32(len(b)) != c.size {
		return zcl.StatusInvalidImage, fmt.Sprintf("received %d bytes, want %d", len(b), c.size)
	}
	if why := checkOTAHeader(b, c.img); why != "" {
		return zcl.StatusInvalidImage, why
	}
	if oracle := c.d.n.imageOracle(); oracle != nil {
		if want, ok := oracle(c.img); ok && want != sum {
			return zcl.StatusInvalidImage, "SHA-256 differs from the served image"
		}
	}
	return zcl.StatusSuccess, ""
}

// checkOTAHeader checks the magic, the image id and the total image size of an OTA file header (by hand:
// the ota package is not imported so that its tests can use this simulator).
func checkOTAHeader(b []byte, id zcl.ImageID) string {
	const minHeader = 56
	if len(b) < minHeader {
		return fmt.Sprintf("image of %d bytes is shorter than an OTA header", len(b))
	}
	if binary.LittleEndian.Uint32(b[0:]) != 0x0BEEF11E {
		return "no OTA magic"
	}
	hl := binary.LittleEndian.Uint16(b[6:])
	if hl < minHeader || int(hl) > len(b) {
		return fmt.Sprintf("OTA header length %d", hl)
	}
	got := zcl.ImageID{
		ManufacturerCode: binary.LittleEndian.Uint16(b[10:]),
		ImageType:        binary.LittleEndian.Uint16(b[12:]),
		FileVersion:      binary.LittleEndian.Uint32(b[14:]),
	}
	if got != id {
		return fmt.Sprintf("OTA header id %04X-%04X-%08X differs from the offered image", got.ManufacturerCode, got.ImageType, got.FileVersion)
	}
	if total := binary.LittleEndian.Uint32(b[52:]); total != uint32(len(b)) {
		return fmt.Sprintf("OTA header total image size %d, received %d", total, len(b))
	}
	return ""
}

func (c *otaClient) onUpgradeEndResponse(r zcl.UpgradeEndResponse) {
	d := c.d
	if c.phase != phaseEnd && c.phase != phaseWaitUpgrade {
		return
	}
	if (r.ManufacturerCode != c.img.ManufacturerCode && r.ManufacturerCode != zcl.WildcardManufacturer) ||
		(r.ImageType != c.img.ImageType && r.ImageType != zcl.WildcardImageType) ||
		(r.FileVersion != c.img.FileVersion && r.FileVersion != zcl.WildcardFileVersion) {
		d.log.Debug().Msg("upgrade end response for another image ignored")
		return
	}
	c.disarm()
	if c.upTimer != nil {
		c.upTimer.Stop()
		c.upTimer = nil
	}
	c.phase = phaseWaitUpgrade
	if r.UpgradeTime == 0xFFFFFFFF {
		c.upgradeStatus = upgradeWaitingToUpgrad
		d.log.Info().Msg("upgrade end response: waiting for an upgrade command")
		c.askAgainLater()
		return
	}
	var secs uint32
	switch {
	case r.CurrentTime == 0:
		secs = r.UpgradeTime
	case r.UpgradeTime > r.CurrentTime:
		secs = r.UpgradeTime - r.CurrentTime
	}
	wait := time.Duration(secs) * time.Second
	c.upgradeStatus = upgradeCountDown
	d.log.Info().Dur("in_ms", wait).Msg("upgrade scheduled")
	version := c.img.FileVersion
	c.upTimer = d.after(wait, func() {
		c.upTimer = nil
		d.counters.lastEnd = zcl.StatusSuccess
		d.reboot("upgrade", &version)
	})
}

// askAgainLater re-sends the Upgrade End Request every hour while the server keeps the client waiting.
func (c *otaClient) askAgainLater() {
	d := c.d
	c.upTimer = d.after(waitForUpgradeCommand, func() {
		c.upTimer = nil
		if c.phase != phaseWaitUpgrade {
			return
		}
		c.sendUpgradeEnd(zcl.StatusSuccess)
		c.askAgainLater()
	})
}
