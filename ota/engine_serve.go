package ota

import (
	"errors"
	"fmt"
	"time"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/zcl"
)

// session is one device's transfer of one image. Blocks are served statelessly at the offset asked; the
// session only keeps a read-ahead window, the progress figures and the page stream.
type session struct {
	img  *Image
	id   zcl.ImageID
	size uint32

	buf    []byte // read-ahead window of the image
	bufOff int64
	bufLen int

	highWater  uint32 // largest offset+length served
	served     uint64 // bytes served, retries included
	lastActive time.Time
	rate       float64 // B/s, moving average
	rateAt     time.Time
	rateMark   uint32
	aborted    bool
	// sentAt and sentEnd are when the last block response went out and where it ended (adaptive
	// concurrency measures block round trips and repeated offsets with them).
	sentAt  time.Time
	sentEnd uint32

	// fragment watch: the last block served fragmented (offset), whether the client has not moved past
	// it yet, and how many requests in a row asked for it (or before it) again.
	fragOff     uint32
	fragPending bool
	fragRepeats int

	page *pageStream
}

// pageStream is an Image Page Request being answered: blocks spaced responseSpacing apart.
type pageStream struct {
	next, end uint32
	maxData   int
	spacing   time.Duration
	tsn       uint8
	timer     clock.Timer
}

func newSession(img *Image, now time.Time) *session {
	return &session{img: img, id: img.ImageID(), size: img.Size(), lastActive: now, rateAt: now}
}

func (s *session) stopPage() {
	if s.page != nil && s.page.timer != nil {
		s.page.timer.Stop()
	}
	s.page = nil
}

// read returns n bytes of the image at off from the read-ahead window, filling it with one ReadAt when
// needed. The returned slice is valid until the next read.
func (s *session) read(off uint32, n int) ([]byte, error) {
	o := int64(off)
	if o >= s.bufOff && o+int64(n) <= s.bufOff+int64(s.bufLen) {
		i := int(o - s.bufOff)
		return s.buf[i : i+n], nil
	}
	if s.buf == nil {
		s.buf = make([]byte, readAhead)
	}
	want := readAhead
	if rem := int64(s.size) - o; rem < int64(want) {
		want = int(rem)
	}
	if want < n {
		return nil, fmt.Errorf("read image %s at %d: past the end", s.img.ID, off)
	}
	got, err := s.img.ReadAt(s.buf[:want], o)
	if got < n {
		if err == nil {
			err = errors.New("short read")
		}
		s.bufLen = 0
		return nil, fmt.Errorf("read image %s at %d: %w", s.img.ID, off, err)
	}
	s.bufOff, s.bufLen = o, got
	return s.buf[:n], nil
}

// blockSizeLocked is the data size of a block for this device: the client's maximum, the configured cap,
// the radio's limit (unfragmented, or fragmented for a client that may get fragments) and the per-vendor
// quirk, whichever is smallest.
func (e *Engine) blockSizeLocked(d *device, clientMax uint8) int {
	n := int(clientMax)
	if e.cfg.MaxBlockSize < n {
		n = e.cfg.MaxBlockSize
	}
	if unfragmented := e.unfragmentedBlockLocked(); unfragmented > 0 && n > unfragmented {
		if e.fragmentsAllowedLocked(d) {
			n = min(n, e.maxFragmented-blockResponseOverhead)
		} else {
			n = unfragmented
		}
	}
	if q, ok := e.quirk[d.info.ManufacturerCode]; ok && q < n {
		n = q
	}
	if c, ok := e.cfg.BlockSizeByManufacturer[d.info.ManufacturerCode]; ok && c > 0 && c < n {
		n = c
	}
	if n < 1 {
		n = 1
	}
	return n
}

// unfragmentedBlockLocked is the largest block one unfragmented APS frame carries (0: the radio did not say).
func (e *Engine) unfragmentedBlockLocked() int {
	if e.maxAPSPayload > blockResponseOverhead {
		return e.maxAPSPayload - blockResponseOverhead
	}
	return 0
}

// fragmentsAllowedLocked reports whether d may get APS-fragmented blocks (see FragmentationConfig).
func (e *Engine) fragmentsAllowedLocked(d *device) bool {
	f := &e.cfg.Fragmentation
	if f.Disabled || d.noFragments || e.maxFragmented <= e.maxAPSPayload {
		return false
	}
	for _, m := range f.ManufacturerCodes {
		if m == d.info.ManufacturerCode {
			return false
		}
	}
	for _, m := range f.Models {
		if m != "" && m == d.info.Model {
			return false
		}
	}
	return true
}

// watchFragmentsLocked follows a transfer with fragmented blocks: a client that asks again for the last
// fragmented block (or an earlier offset) Fragmentation.Failures times in a row did not get it, so the
// device falls back to unfragmented blocks. Called before serving a block request; no allocation.
func (e *Engine) watchFragmentsLocked(d *device, s *session, offset uint32) {
	if !s.fragPending {
		return
	}
	if offset > s.fragOff {
		s.fragPending, s.fragRepeats = false, 0
		return
	}
	s.fragRepeats++
	if s.fragRepeats >= e.cfg.Fragmentation.Failures {
		e.fragmentsFailedLocked(d, s, "asked again for a fragmented block")
	}
}

// fragmentsFailedLocked makes d fall back to unfragmented blocks for good, when the last block it was
// served went out fragmented and never arrived.
func (e *Engine) fragmentsFailedLocked(d *device, s *session, why string) {
	if d.noFragments || s == nil || !s.fragPending {
		return
	}
	d.noFragments = true
	s.fragPending, s.fragRepeats = false, 0
	e.log.Warn().Stringer("ieee", d.info.IEEE).Uint32("offset", s.fragOff).Uint16("manufacturer_code", d.info.ManufacturerCode).
		Str("model", d.info.Model).Str("why", why).Msg("fragmented blocks fail for this device: unfragmented blocks from now on")
	e.out.DurableChanged()
}

// HandleFrame takes one ZCL frame a device sent on the OTA cluster and answers it through Output.
// Anything unparseable is answered with a Default Response carrying the right status, never a crash.
func (e *Engine) HandleFrame(src zcl.IEEE, frame []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	h, payload, err := zcl.DecodeHeader(frame)
	if err != nil {
		e.log.Warn().Stringer("ieee", src).Err(err).Msg("undecodable ZCL frame on the OTA cluster dropped")
		return
	}
	if h.FrameType == zcl.FrameTypeGlobal {
		// Default Responses from the client (to an Image Notify, or mid-session) need nothing; other global
		// commands to the OTA cluster server (e.g. Read Attributes: the server has no attributes) are unsupported.
		if h.CommandID != zcl.CmdDefaultResponse && h.Direction == zcl.ClientToServer {
			e.defaultResponseLocked(src, h, zcl.StatusUnsupGeneralCommand)
		}
		return
	}
	if h.FrameType != zcl.FrameTypeCluster || h.Direction != zcl.ClientToServer {
		e.log.Debug().Stringer("ieee", src).Uint8("command", h.CommandID).Msg("OTA frame not for a server dropped")
		return
	}
	if h.ManufacturerSpecific {
		e.defaultResponseLocked(src, h, zcl.StatusUnsupManufClusterCommand)
		return
	}
	switch h.CommandID {
	case zcl.CmdImageBlockRequest:
		req, err := zcl.DecodeImageBlockRequest(payload)
		if err != nil {
			e.malformedLocked(src, h, err)
			return
		}
		e.handleBlockRequestLocked(src, h.TSN, &req)
	case zcl.CmdQueryNextImageRequest:
		req, err := zcl.DecodeQueryNextImageRequest(payload)
		if err != nil {
			e.malformedLocked(src, h, err)
			return
		}
		e.handleQueryLocked(src, h.TSN, req)
	case zcl.CmdImagePageRequest:
		req, err := zcl.DecodeImagePageRequest(payload)
		if err != nil {
			e.malformedLocked(src, h, err)
			return
		}
		e.handlePageRequestLocked(src, h.TSN, req)
	case zcl.CmdUpgradeEndRequest:
		req, err := zcl.DecodeUpgradeEndRequest(payload)
		if err != nil {
			e.malformedLocked(src, h, err)
			return
		}
		e.handleUpgradeEndLocked(src, h, req)
	case zcl.CmdQueryDeviceSpecificFileRequest:
		req, err := zcl.DecodeQueryDeviceSpecificFileRequest(payload)
		if err != nil {
			e.malformedLocked(src, h, err)
			return
		}
		e.handleDeviceSpecificLocked(src, h.TSN, req)
	default:
		e.defaultResponseLocked(src, h, zcl.StatusUnsupCommand)
	}
}

func (e *Engine) malformedLocked(src zcl.IEEE, h zcl.Header, err error) {
	e.log.Warn().Stringer("ieee", src).Uint8("command", h.CommandID).Err(err).Msg("malformed OTA request")
	e.defaultResponseLocked(src, h, zcl.StatusMalformedCommand)
}

// defaultResponseLocked answers a command with a Default Response (errors get one even when the client
// disabled default responses: ZCL 2.5.12.2).
func (e *Engine) defaultResponseLocked(src zcl.IEEE, h zcl.Header, status zcl.Status) {
	rh := zcl.GlobalHeader(zcl.ServerToClient, true, h.TSN, zcl.CmdDefaultResponse)
	e.scratch = zcl.AppendFrame(e.scratch[:0], rh, zcl.DefaultResponse{CommandID: h.CommandID, Status: status})
	e.out.SendZCL(src, e.scratch, SendOptions{APSAck: true})
}

func (e *Engine) sendLocked(dst zcl.IEEE, frame []byte, ack bool) {
	e.out.SendZCL(dst, frame, SendOptions{APSAck: ack})
}

// servingLocked decides whether a block or page request for image id can be served now. It returns the
// device and its session, or (ok false) the status-only response to send instead: ABORT for an image that
// was not offered to the device or whose transfer was aborted, WAIT_FOR_DATA while the device waits for a
// transfer slot. It must not allocate: it is on the block path.
func (e *Engine) servingLocked(src zcl.IEEE, id zcl.ImageID, now time.Time) (*device, *session, zcl.ImageBlockResponse, bool) {
	var resp zcl.ImageBlockResponse
	d := e.devices[src]
	var s *session
	if d != nil {
		if s = d.session; s == nil {
			s = e.resumeSessionLocked(d, id)
		}
	}
	switch {
	case s == nil || s.id != id:
		// No transfer of this image was offered to the device (zigpy answers an unsolicited block request the
		// same way): tell it to stop.
		e.log.Warn().Stringer("ieee", src).Uint32("file_version", id.FileVersion).
			Msg("request for an image not offered to this device: ABORT")
		resp.Status = zcl.StatusAbort
	case s.aborted:
		resp.Status = zcl.StatusAbort
		e.endAbortedSessionLocked(d)
	case !d.slot || e.pauseAtBlockLocked(d):
		// Queued: the transfer waits for a slot. WAIT_FOR_DATA with current time 0 makes request time a delay.
		s.lastActive = now
		resp = zcl.ImageBlockResponse{Status: zcl.StatusWaitForData, RequestTime: uint32(e.queueWaitLocked(d) / time.Second)}
	default:
		return d, s, resp, true
	}
	return d, s, resp, false
}

// handleBlockRequestLocked is the hot path: it must not allocate.
func (e *Engine) handleBlockRequestLocked(src zcl.IEEE, tsn uint8, req *zcl.ImageBlockRequest) {
	now := e.clk.Now()
	d, s, resp, ok := e.servingLocked(src, zcl.ImageID{ManufacturerCode: req.ManufacturerCode,
		ImageType: req.ImageType, FileVersion: req.FileVersion}, now)
	switch {
	case !ok:
	case e.cfg.MinimumBlockPeriod > 0 && !d.toldPeriod && (!req.HasMinimumBlockPeriod() ||
		time.Duration(req.MinimumBlockPeriod)*time.Millisecond < e.cfg.MinimumBlockPeriod):
		// Rate control the Silicon Labs way: WAIT_FOR_DATA carrying the minimum block period, once.
		d.toldPeriod = true
		s.lastActive = now
		resp = zcl.ImageBlockResponse{Status: zcl.StatusWaitForData, HasMinimumBlockPeriod: true,
			MinimumBlockPeriod: uint16(e.cfg.MinimumBlockPeriod / time.Millisecond)}
	case req.FileOffset >= s.size || req.MaxDataSize == 0:
		// Past the end (or no room for data): answered like zigpy and deCONZ, with a status-only block response.
		resp.Status = zcl.StatusMalformedCommand
	default:
		e.watchFragmentsLocked(d, s, req.FileOffset)
		n := e.blockSizeLocked(d, req.MaxDataSize)
		if rem := s.size - req.FileOffset; uint32(n) > rem {
			n = int(rem)
		}
		if u := e.unfragmentedBlockLocked(); u > 0 && n > u {
			s.fragOff, s.fragPending = req.FileOffset, true
		}
		data, err := s.read(req.FileOffset, n)
		if err != nil {
			e.log.Error().Stringer("ieee", src).Err(err).Msg("image read failed: transfer aborted")
			resp.Status = zcl.StatusAbort
			e.failLocked(d, "image read failed: "+err.Error())
			break
		}
		if e.aimd != nil {
			// The round trip of the previous block (response out, next request in), and whether the client
			// asked again for bytes it was already sent (it lost something).
			var rtt time.Duration
			if !s.sentAt.IsZero() && req.FileOffset == s.sentEnd {
				rtt = now.Sub(s.sentAt)
			}
			e.aimd.block(rtt, !s.sentAt.IsZero() && req.FileOffset < s.sentEnd)
			s.sentAt, s.sentEnd = now, req.FileOffset+uint32(n)
		}
		resp = zcl.ImageBlockResponse{Status: zcl.StatusSuccess, ManufacturerCode: s.id.ManufacturerCode,
			ImageType: s.id.ImageType, FileVersion: s.id.FileVersion, FileOffset: req.FileOffset, Data: data}
		e.progressLocked(d, s, req.FileOffset+uint32(n), n, now)
	}
	e.scratch = zcl.AppendImageBlockResponseFrame(e.scratch[:0], tsn, &resp)
	if e.cfg.BlockResponseDelay > 0 && resp.Status == zcl.StatusSuccess {
		// zigbee2mqtt's image_block_response_delay: hold every block response back (its default is 250 ms).
		frame := append([]byte(nil), e.scratch...)
		e.clk.AfterFunc(e.cfg.BlockResponseDelay, func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			if !e.closed {
				e.sendLocked(src, frame, true)
			}
		})
		return
	}
	e.sendLocked(src, e.scratch, true)
}

// progressLocked records served bytes.
func (e *Engine) progressLocked(d *device, s *session, end uint32, n int, now time.Time) {
	s.lastActive = now
	s.served += uint64(n)
	if end > s.highWater {
		s.highWater = end
		d.progressed = true
	}
	if d.state != StateUpdating {
		e.setStateLocked(d, StateUpdating)
	}
	e.ensureTickerLocked()
}

// queueWaitLocked is the WAIT_FOR_DATA delay for a device waiting for a slot: the configured wait, at least
// one second, at most an hour (Silicon Labs clients cap waits at 60 minutes).
func (e *Engine) queueWaitLocked(d *device) time.Duration {
	w := e.cfg.QueueWait
	if !d.notBef.IsZero() {
		if until := d.notBef.Sub(e.clk.Now()); until > w {
			w = until
		}
	}
	if h := e.holdLocked(d); !h.until.IsZero() {
		if until := h.until.Sub(e.clk.Now()); until > w {
			w = until
		}
	}
	if w < time.Second {
		w = time.Second
	}
	if w > time.Hour {
		w = time.Hour
	}
	return w
}

func (e *Engine) handlePageRequestLocked(src zcl.IEEE, tsn uint8, req zcl.ImagePageRequest) {
	now := e.clk.Now()
	d, s, resp, ok := e.servingLocked(src, zcl.ImageID{ManufacturerCode: req.ManufacturerCode,
		ImageType: req.ImageType, FileVersion: req.FileVersion}, now)
	switch {
	case !ok:
	case req.FileOffset >= s.size || req.MaxDataSize == 0 || req.PageSize == 0:
		resp.Status = zcl.StatusMalformedCommand
	default:
		s.stopPage()
		end := uint64(req.FileOffset) + uint64(req.PageSize)
		if end > uint64(s.size) {
			end = uint64(s.size) // a page never runs past the image end
		}
		spacing := time.Duration(req.ResponseSpacing) * time.Millisecond
		if spacing < e.cfg.MinPageSpacing {
			spacing = e.cfg.MinPageSpacing
		}
		s.page = &pageStream{next: req.FileOffset, end: uint32(end), maxData: e.blockSizeLocked(d, req.MaxDataSize),
			spacing: spacing, tsn: tsn}
		s.lastActive = now
		e.sendPageBlockLocked(d, s)
		return
	}
	e.scratch = zcl.AppendImageBlockResponseFrame(e.scratch[:0], tsn, &resp)
	e.sendLocked(src, e.scratch, true)
}

// sendPageBlockLocked sends the next block of the session's page stream and schedules the one after.
func (e *Engine) sendPageBlockLocked(d *device, s *session) {
	p := s.page
	if p == nil || d.session != s || s.aborted || !d.slot {
		return
	}
	n := p.maxData
	if rem := p.end - p.next; uint32(n) > rem {
		n = int(rem)
	}
	data, err := s.read(p.next, n)
	if err != nil {
		e.log.Error().Stringer("ieee", d.info.IEEE).Err(err).Msg("image read failed: transfer aborted")
		s.stopPage()
		e.failLocked(d, "image read failed: "+err.Error())
		return
	}
	resp := zcl.ImageBlockResponse{Status: zcl.StatusSuccess, ManufacturerCode: s.id.ManufacturerCode,
		ImageType: s.id.ImageType, FileVersion: s.id.FileVersion, FileOffset: p.next, Data: data}
	e.scratch = zcl.AppendImageBlockResponseFrame(e.scratch[:0], p.tsn, &resp)
	e.sendLocked(d.info.IEEE, e.scratch, false)
	p.next += uint32(n)
	e.progressLocked(d, s, p.next, n, e.clk.Now())
	if p.next >= p.end {
		s.page = nil
		return
	}
	p.timer = e.clk.AfterFunc(p.spacing, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if !e.closed && s.page == p {
			e.sendPageBlockLocked(d, s)
		}
	})
}

// resumeSessionLocked re-creates the session of a transfer that was running before a bridge restart (the
// device asks for its next block of the approved image).
func (e *Engine) resumeSessionLocked(d *device, id zcl.ImageID) *session {
	if d.target == nil || !d.approved || d.target.ImageID() != id {
		return nil
	}
	switch d.state {
	case StateUpdating, StateQueued, StateScheduled:
	default:
		return nil
	}
	if !d.target.Local() {
		return nil
	}
	d.session = newSession(d.target, e.clk.Now())
	if d.state == StateScheduled {
		e.enqueueLocked(d)
	}
	if !d.slot && e.active < e.capLocked() && e.firstQueuedLocked() == d {
		e.grantSlotLocked(d)
	}
	e.log.Info().Stringer("ieee", d.info.IEEE).Str("image", d.target.ID).Msg("transfer resumed at the device's offset")
	return d.session
}

func (e *Engine) endAbortedSessionLocked(d *device) {
	if d.session != nil {
		d.session.stopPage()
	}
	d.session = nil
}

// handleUpgradeEndLocked: SUCCESS gets an Upgrade End Response; any other status gets a Default Response
// SUCCESS and no Upgrade End Response (spec, as quoted in zigbee-herdsman; same in Silicon Labs and deCONZ).
func (e *Engine) handleUpgradeEndLocked(src zcl.IEEE, h zcl.Header, req zcl.UpgradeEndRequest) {
	d := e.devices[src]
	if req.Status != zcl.StatusSuccess {
		e.defaultResponseLocked(src, h, zcl.StatusSuccess)
		if d == nil || (d.session == nil && d.state != StateUpdating) {
			e.log.Warn().Stringer("ieee", src).Stringer("status", req.Status).Msg("upgrade end request without a transfer")
			return
		}
		reason := fmt.Sprintf("device reported %s at the end of the transfer", req.Status)
		if req.Status == zcl.StatusAbort {
			reason = "device aborted the transfer"
		}
		e.fragmentsFailedLocked(d, d.session, "gave up the transfer right after a fragmented block")
		e.failLocked(d, reason)
		return
	}
	id := zcl.ImageID{ManufacturerCode: req.ManufacturerCode, ImageType: req.ImageType, FileVersion: req.FileVersion}
	if d != nil && d.session == nil {
		d.session = e.resumeSessionLocked(d, id)
	}
	if d != nil && d.state == StateWaitingReboot && d.target != nil && d.target.ImageID() == id {
		// Our Upgrade End Response was lost: send it again.
		e.upgradeEndResponseLocked(src, h.TSN, id)
		return
	}
	if d == nil || d.session == nil || d.session.id != id || d.session.aborted {
		// deCONZ does the same for a device that ends a download it never made (an Osram/Ledvance reboot loop).
		e.log.Warn().Stringer("ieee", src).Uint32("file_version", req.FileVersion).Msg("upgrade end for an image not being served: ABORT")
		e.defaultResponseLocked(src, h, zcl.StatusAbort)
		if d != nil && d.session != nil && d.session.aborted {
			e.endAbortedSessionLocked(d)
		}
		return
	}
	s := d.session
	if s.highWater < s.size {
		e.log.Warn().Stringer("ieee", src).Uint32("served", s.highWater).Uint32("size", s.size).
			Msg("upgrade end SUCCESS before the whole image was served: ABORT")
		e.defaultResponseLocked(src, h, zcl.StatusAbort)
		e.failLocked(d, fmt.Sprintf("device claimed success after %d of %d bytes", s.highWater, s.size))
		return
	}
	e.upgradeEndResponseLocked(src, h.TSN, id)
	s.stopPage()
	d.session = nil
	e.releaseSlotLocked(d)
	d.verifies = 0
	d.lastError = ""
	e.log.Info().Stringer("ieee", src).Str("image", d.target.ID).Uint32("size", s.size).
		Dur("took_ms", e.since(d.startedAt)).Msg("transfer complete; device applies the image")
	e.setStateLocked(d, StateWaitingReboot)
	e.armVerifyLocked(d, e.cfg.UpgradeDelay+e.cfg.VerifyTimeout)
	e.pumpLocked()
}

func (e *Engine) upgradeEndResponseLocked(dst zcl.IEEE, tsn uint8, id zcl.ImageID) {
	resp := zcl.UpgradeEndResponse{ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType,
		FileVersion: id.FileVersion, CurrentTime: 0, UpgradeTime: uint32(e.cfg.UpgradeDelay / time.Second)}
	e.scratch = zcl.AppendFrame(e.scratch[:0], zcl.ServerToClientClusterHeader(tsn, zcl.CmdUpgradeEndResponse), resp)
	e.sendLocked(dst, e.scratch, true)
}

// handleDeviceSpecificLocked serves a device-specific file (a header whose upgrade file destination is the
// device) under the same approval rules as a Query Next Image.
func (e *Engine) handleDeviceSpecificLocked(src zcl.IEEE, tsn uint8, req zcl.QueryDeviceSpecificFileRequest) {
	d := e.deviceLocked(src)
	info := d.info
	info.ManufacturerCode, info.ImageType = req.ManufacturerCode, req.ImageType
	info.FileVersion, info.FileVersionKnown = req.FileVersion, true
	resp := zcl.QueryDeviceSpecificFileResponse{Status: zcl.StatusNoImageAvailable}
	if d.approved && d.target != nil && d.target.Header.FieldControl&HeaderFieldDeviceSpecific != 0 &&
		d.target.Header.UpgradeFileDestination == src && d.target.Local() {
		img := d.target
		e.offerLocked(d, img)
		resp = zcl.QueryDeviceSpecificFileResponse{Status: zcl.StatusSuccess, ManufacturerCode: img.Header.ManufacturerCode,
			ImageType: img.Header.ImageType, FileVersion: img.Header.FileVersion, ImageSize: img.Size()}
	}
	e.scratch = zcl.AppendFrame(e.scratch[:0], zcl.ServerToClientClusterHeader(tsn, zcl.CmdQueryDeviceSpecificFileResponse), resp)
	e.sendLocked(src, e.scratch, true)
}
