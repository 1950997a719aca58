package simtest

import (
	"encoding/binary"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// MinimalServer is a hand-written OTA server of a few dozen lines for the simulator's own tests: it offers
// one image to any Query Next Image Request with the image's manufacturer code and image type and an older
// file version, serves blocks at the requested offset (at most the client's max data size, capped by
// MaxData), streams pages, answers Upgrade End Request SUCCESS with an Upgrade End Response (current time 0,
// upgrade time UpgradeTime) and any other status with Default Response SUCCESS. Its fault knobs inject
// ABORT, corruption, oversized blocks, WAIT_FOR_DATA and "no page support". It is NOT the OTA engine.
//
// Set the knobs before running the clock; they are read on the clock goroutine.
type MinimalServer struct {
	h     *Harness
	Image []byte
	ID    zcl.ImageID

	MaxData         int    // cap on block data (0: the client's max data size)
	ForceData       int    // >0: every block carries this many bytes whatever the client asked (protocol violation)
	AbortAtOffset   int64  // ≥0: a block request at or past this offset is answered ABORT (default -1)
	CorruptAtOffset int64  // ≥0: the byte at this offset is served flipped (default -1)
	DropOnceAt      int64  // ≥0: the first block request of each device at this offset gets no answer (default -1)
	NoPages         bool   // answer Image Page Requests with Default Response UNSUP_COMMAND
	WaitForData     uint32 // >0: the first block request of each device gets WAIT_FOR_DATA of this many seconds
	MinBlockPeriod  uint16 // carried in that WAIT_FOR_DATA (when WaitForData > 0)
	UpgradeTime     uint32 // upgrade time of the Upgrade End Response (current time is 0)
	APSAck          bool   // send block responses with APS ack

	Queries       int
	BlockRequests int
	PageRequests  int
	BytesServed   int
	EndRequests   map[zcl.IEEE][]zcl.UpgradeEndRequest
	Offsets       map[zcl.IEEE][]uint32 // offsets of the block requests, per device
	waited        map[zcl.IEEE]bool
	dropped       map[zcl.IEEE]bool
}

// NewMinimalServer attaches a minimal server for image to the harness. The image id is read from the
// image's OTA header.
func NewMinimalServer(h *Harness, image []byte) *MinimalServer {
	s := &MinimalServer{
		h: h, Image: image, AbortAtOffset: -1, CorruptAtOffset: -1, DropOnceAt: -1, dropped: map[zcl.IEEE]bool{},
		EndRequests: map[zcl.IEEE][]zcl.UpgradeEndRequest{}, Offsets: map[zcl.IEEE][]uint32{}, waited: map[zcl.IEEE]bool{},
	}
	if len(image) >= 18 {
		s.ID = zcl.ImageID{
			ManufacturerCode: binary.LittleEndian.Uint16(image[10:]),
			ImageType:        binary.LittleEndian.Uint16(image[12:]),
			FileVersion:      binary.LittleEndian.Uint32(image[14:]),
		}
	}
	h.OnFrame(s.handle)
	return s
}

// Notify sends a unicast Image Notify (payload type 0, jitter 100) to a device.
func (s *MinimalServer) Notify(dst zcl.IEEE) {
	s.h.SendZCL(dst, ImageNotifyFrame(s.h.NextTSN(), zcl.ImageNotify{PayloadType: 0, QueryJitter: 100}, false), false)
}

// BroadcastNotify broadcasts an Image Notify.
func (s *MinimalServer) BroadcastNotify(dstShort uint16, n zcl.ImageNotify) {
	s.h.Broadcast(dstShort, zcl.ClusterOTA, ImageNotifyFrame(s.h.NextTSN(), n, false))
}

func (s *MinimalServer) reply(dst zcl.IEEE, frame []byte, apsAck bool) {
	s.h.SendZCL(dst, frame, apsAck)
}

func (s *MinimalServer) handle(src zcl.IEEE, in ncp.Incoming) {
	if in.ClusterID != zcl.ClusterOTA || in.ProfileID != zcl.ProfileHomeAutomation {
		return
	}
	hd, payload, err := zcl.DecodeHeader(in.Payload)
	if err != nil || hd.FrameType != zcl.FrameTypeCluster || hd.Direction != zcl.ClientToServer {
		return
	}
	switch hd.CommandID {
	case zcl.CmdQueryNextImageRequest:
		q, err := zcl.DecodeQueryNextImageRequest(payload)
		if err != nil {
			return
		}
		s.Queries++
		rsp := zcl.QueryNextImageResponse{Status: zcl.StatusNoImageAvailable}
		if q.ManufacturerCode == s.ID.ManufacturerCode && q.ImageType == s.ID.ImageType && q.FileVersion < s.ID.FileVersion {
			rsp = zcl.QueryNextImageResponse{Status: zcl.StatusSuccess, ManufacturerCode: s.ID.ManufacturerCode,
				ImageType: s.ID.ImageType, FileVersion: s.ID.FileVersion, ImageSize: uint32(len(s.Image))}
		}
		s.reply(src, QueryNextImageResponseFrame(hd.TSN, rsp), true)
	case zcl.CmdImageBlockRequest:
		r, err := zcl.DecodeImageBlockRequest(payload)
		if err != nil {
			return
		}
		s.BlockRequests++
		s.Offsets[src] = append(s.Offsets[src], r.FileOffset)
		if s.DropOnceAt >= 0 && int64(r.FileOffset) == s.DropOnceAt && !s.dropped[src] {
			s.dropped[src] = true
			return
		}
		if s.WaitForData > 0 && !s.waited[src] {
			s.waited[src] = true
			s.reply(src, ImageBlockResponseFrame(hd.TSN, zcl.ImageBlockResponse{Status: zcl.StatusWaitForData,
				CurrentTime: 0, RequestTime: s.WaitForData, MinimumBlockPeriod: s.MinBlockPeriod, HasMinimumBlockPeriod: true}), s.APSAck)
			return
		}
		s.reply(src, s.block(hd.TSN, r.FileOffset, r.MaxDataSize), s.APSAck)
	case zcl.CmdImagePageRequest:
		r, err := zcl.DecodeImagePageRequest(payload)
		if err != nil {
			return
		}
		s.PageRequests++
		if s.NoPages {
			s.reply(src, DefaultResponseFrame(hd.TSN, zcl.CmdImagePageRequest, zcl.StatusUnsupCommand), false)
			return
		}
		s.streamPage(src, hd.TSN, r)
	case zcl.CmdUpgradeEndRequest:
		r, err := zcl.DecodeUpgradeEndRequest(payload)
		if err != nil {
			return
		}
		s.EndRequests[src] = append(s.EndRequests[src], r)
		if r.Status != zcl.StatusSuccess {
			s.reply(src, DefaultResponseFrame(hd.TSN, zcl.CmdUpgradeEndRequest, zcl.StatusSuccess), false)
			return
		}
		s.reply(src, UpgradeEndResponseFrame(hd.TSN, zcl.UpgradeEndResponse{ManufacturerCode: s.ID.ManufacturerCode,
			ImageType: s.ID.ImageType, FileVersion: s.ID.FileVersion, CurrentTime: 0, UpgradeTime: s.UpgradeTime}), true)
	}
}

// block builds the Image Block Response for one request.
func (s *MinimalServer) block(tsn uint8, off uint32, maxData uint8) []byte {
	if s.AbortAtOffset >= 0 && int64(off) >= s.AbortAtOffset {
		return ImageBlockResponseFrame(tsn, zcl.ImageBlockResponse{Status: zcl.StatusAbort})
	}
	if int(off) >= len(s.Image) {
		return DefaultResponseFrame(tsn, zcl.CmdImageBlockRequest, zcl.StatusMalformedCommand)
	}
	n := int(maxData)
	if s.MaxData > 0 {
		n = min(n, s.MaxData)
	}
	if s.ForceData > 0 {
		n = s.ForceData
	}
	n = min(n, len(s.Image)-int(off))
	data := append([]byte(nil), s.Image[off:int(off)+n]...)
	if c := s.CorruptAtOffset; c >= int64(off) && c < int64(off)+int64(n) {
		data[c-int64(off)] ^= 0xFF
	}
	s.BytesServed += n
	return ImageBlockResponseFrame(tsn, zcl.ImageBlockResponse{Status: zcl.StatusSuccess, ManufacturerCode: s.ID.ManufacturerCode,
		ImageType: s.ID.ImageType, FileVersion: s.ID.FileVersion, FileOffset: off, Data: data})
}

// streamPage sends the blocks of a page, responseSpacing ms apart, stopping at the page end or image end.
func (s *MinimalServer) streamPage(dst zcl.IEEE, tsn uint8, r zcl.ImagePageRequest) {
	end := min(int64(r.FileOffset)+int64(r.PageSize), int64(len(s.Image)))
	spacing := time.Duration(r.ResponseSpacing) * time.Millisecond
	var next func(off uint32)
	next = func(off uint32) {
		if int64(off) >= end {
			return
		}
		n := min(int64(r.MaxDataSize), end-int64(off))
		if s.MaxData > 0 {
			n = min(n, int64(s.MaxData))
		}
		if n <= 0 {
			return
		}
		s.reply(dst, s.block(tsn, off, uint8(n)), false)
		s.h.Clock.AfterFunc(spacing, func() { next(off + uint32(n)) })
	}
	next(r.FileOffset)
}
