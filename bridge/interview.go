package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// FrameSender sends one APS frame and returns after the radio's send confirmation; ncp.Radio is one.
type FrameSender interface {
	Send(ctx context.Context, f ncp.Frame) error
}

// InterviewConfig tunes the interview. Zero values take the defaults.
type InterviewConfig struct {
	// Timeout is how long one Read Attributes request waits for its response from a device whose receiver
	// is on (default 10s); SleepyTimeout the same for a sleepy device, whose frames wait at its parent until
	// it polls (default 60s).
	Timeout       time.Duration
	SleepyTimeout time.Duration
	// Retries is how often a request that got no answer is sent again (default 2: three attempts).
	Retries int
	// MaxAPSPayload is the largest unfragmented APS payload (default 82, ncp's usual limit); requests are
	// grouped so that the worst-case response fits in it.
	MaxAPSPayload int
	// NextTSN allocates ZCL transaction sequence numbers; set it to share one sequence with the other senders
	// of the bridge (default: the Interviewer's own counter).
	NextTSN func() uint8
}

// Defaults of InterviewConfig.
const (
	DefaultInterviewTimeout       = 10 * time.Second
	DefaultInterviewSleepyTimeout = 60 * time.Second
	DefaultInterviewRetries       = 2
	defaultMaxAPSPayload          = 82
	zclHeaderLen                  = 3
)

// InterviewTarget is the device to interview.
type InterviewTarget struct {
	IEEE     zcl.IEEE
	NWK      uint16
	Endpoint uint8 // 0: endpoint 1
	Sleepy   bool
}

// TargetOf is the interview target of a registry device.
func TargetOf(d Device) InterviewTarget {
	return InterviewTarget{IEEE: d.IEEE, NWK: d.NWK, Endpoint: d.Endpoint, Sleepy: d.Sleepy}
}

// attribute describes one attribute the interview reads: cluster, id, whether the device's side of the
// cluster is the server (Basic) or the client (OTA), and the largest record it can give in a response.
type attribute struct {
	cluster   uint16
	id        uint16
	clientSrv zcl.Direction // direction of the Read Attributes request: ClientToServer for server attributes
	maxRecord int           // attribute id 2 + status 1 + type 1 + value
}

// Largest character strings of the Basic cluster (ZCL 3.2.2.2).
const (
	maxManufacturerName = 32
	maxModelIdentifier  = 32
	maxDateCode         = 16
	maxSWBuildID        = 16
)

var (
	basicAttributes = []attribute{
		{zcl.ClusterBasic, zcl.AttrBasicManufacturerName, zcl.ClientToServer, 5 + maxManufacturerName},
		{zcl.ClusterBasic, zcl.AttrBasicModelIdentifier, zcl.ClientToServer, 5 + maxModelIdentifier},
		{zcl.ClusterBasic, zcl.AttrBasicSWBuildID, zcl.ClientToServer, 5 + maxSWBuildID},
		{zcl.ClusterBasic, zcl.AttrBasicDateCode, zcl.ClientToServer, 5 + maxDateCode},
		{zcl.ClusterBasic, zcl.AttrBasicPowerSource, zcl.ClientToServer, 5},
		{zcl.ClusterBasic, zcl.AttrBasicHWVersion, zcl.ClientToServer, 5},
	}
	// The OTA attributes live on the device's OTA client cluster: the request goes server→client.
	otaAttributes = []attribute{
		{zcl.ClusterOTA, zcl.AttrOTACurrentFileVersion, zcl.ServerToClient, 8},
		{zcl.ClusterOTA, zcl.AttrOTAManufacturerID, zcl.ServerToClient, 6},
		{zcl.ClusterOTA, zcl.AttrOTAImageTypeID, zcl.ServerToClient, 6},
	}
)

// InterviewResult is what an interview read. Values are valid when their Has flag is set; an attribute the
// device does not support (UNSUPPORTED_ATTRIBUTE) is simply not set.
type InterviewResult struct {
	OK     bool
	Reason string // why it failed, or a note (e.g. the device has no OTA client cluster)

	Manufacturer, Model, SWBuildID, DateCode             string
	HasManufacturer, HasModel, HasSWBuildID, HasDateCode bool
	PowerSource                                          uint8
	HasPowerSource                                       bool
	HardwareVersion                                      uint8
	HasHardwareVersion                                   bool

	FileVersion         uint32
	HasFileVersion      bool
	ManufacturerCode    uint16
	HasManufacturerCode bool
	ImageType           uint16
	HasImageType        bool

	// Unsupported lists "cluster/attribute" pairs the device answered UNSUPPORTED_ATTRIBUTE for.
	Unsupported []string
	// Requests is the number of Read Attributes requests sent (retries included).
	Requests int
}

// Apply stores the result in d: the interview state and reason, and every value that was read. Values that
// were not read keep what d had.
func (res InterviewResult) Apply(d *Device) {
	if res.OK {
		d.Interview, d.InterviewReason = InterviewOK, ""
	} else {
		d.Interview, d.InterviewReason = InterviewFailed, res.Reason
	}
	if res.HasManufacturer {
		d.Manufacturer = res.Manufacturer
	}
	if res.HasModel {
		d.Model = res.Model
	}
	if res.HasSWBuildID {
		d.SWBuildID = res.SWBuildID
	}
	if res.HasDateCode {
		d.DateCode = res.DateCode
	}
	if res.HasPowerSource {
		d.PowerSource = PowerSourceFromBasic(res.PowerSource)
	}
	if res.HasHardwareVersion {
		d.HardwareVersion, d.HasHardwareVersion = res.HardwareVersion, true
	}
	if res.HasFileVersion {
		d.FileVersion, d.FileVersionKnown = res.FileVersion, true
	}
	if res.HasManufacturerCode && res.HasImageType {
		d.ManufacturerCode, d.ImageType, d.HasImageID = res.ManufacturerCode, res.ImageType, true
	}
}

// Interviewer reads the Basic and OTA client attributes of devices with ZCL Read Attributes. The bridge's
// event loop feeds every incoming frame to HandleResponse; Interview and ReadAttributes block the calling
// goroutine until the answers came or the retries ran out. Safe for concurrent use: several devices can be
// interviewed at once.
type Interviewer struct {
	send FrameSender
	clk  clock.Clock
	cfg  InterviewConfig
	log  zerolog.Logger

	mu      sync.Mutex
	tsn     uint8
	pending map[*pendingRead]struct{}
}

type pendingRead struct {
	ieee    zcl.IEEE
	nwk     uint16
	cluster uint16
	tsn     uint8
	answer  chan readAnswer // buffered 1
}

type readAnswer struct {
	records []zcl.ReadAttributeRecord
	err     error // a Default Response with an error status, or an undecodable response
}

// NewInterviewer returns an interviewer that sends with send and measures timeouts on clk (the virtual
// clock of the simulated network, or clock.Real).
func NewInterviewer(send FrameSender, clk clock.Clock, cfg InterviewConfig, log zerolog.Logger) *Interviewer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultInterviewTimeout
	}
	if cfg.SleepyTimeout <= 0 {
		cfg.SleepyTimeout = DefaultInterviewSleepyTimeout
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = DefaultInterviewRetries
	}
	if cfg.MaxAPSPayload <= zclHeaderLen+8 {
		cfg.MaxAPSPayload = defaultMaxAPSPayload
	}
	if clk == nil {
		clk = clock.Real{}
	}
	iv := &Interviewer{send: send, clk: clk, cfg: cfg, log: log.With().Str("component", "interview").Logger(),
		pending: make(map[*pendingRead]struct{})}
	if iv.cfg.NextTSN == nil {
		iv.cfg.NextTSN = iv.nextTSN
	}
	return iv
}

func (iv *Interviewer) nextTSN() uint8 {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	iv.tsn++
	return iv.tsn
}

// Interview reads the Basic attributes (manufacturer name, model, SW build id, date code, power source,
// hardware version) and the OTA client attributes (current file version, manufacturer id, image type). It
// fails when a request gets no answer after the retries, or when the device refuses the Basic cluster; a
// device without an OTA client cluster passes with a note in Reason. Attributes the device does not
// support are fine.
func (iv *Interviewer) Interview(ctx context.Context, t InterviewTarget) InterviewResult {
	return iv.run(ctx, t, true)
}

// InterviewOTA reads only the OTA client attributes (after an upgrade, or for a check).
func (iv *Interviewer) InterviewOTA(ctx context.Context, t InterviewTarget) InterviewResult {
	return iv.run(ctx, t, false)
}

func (iv *Interviewer) run(ctx context.Context, t InterviewTarget, basic bool) InterviewResult {
	start := iv.clk.Now()
	var res InterviewResult
	groups := [][]attribute{}
	if basic {
		groups = append(groups, iv.group(basicAttributes)...)
	}
	groups = append(groups, iv.group(otaAttributes)...)
	for _, g := range groups {
		recs, requests, err := iv.read(ctx, t, g)
		res.Requests += requests
		cluster := g[0].cluster
		if err != nil {
			var st *StatusError
			if cluster == zcl.ClusterOTA && errors.As(err, &st) && st.Status == zcl.StatusUnsupportedCluster {
				res.Reason = "the device has no OTA client cluster"
				continue
			}
			res.OK = false
			res.Reason = err.Error()
			iv.log.Warn().Str("ieee", t.IEEE.String()).Uint16("nwk", t.NWK).Int("requests", res.Requests).
				Dur("took_ms", iv.clk.Now().Sub(start)).Str("reason", res.Reason).Msg("interview failed")
			return res
		}
		for _, rec := range recs {
			res.store(cluster, rec, iv.log, t.IEEE)
		}
	}
	res.OK = true
	iv.log.Info().Str("ieee", t.IEEE.String()).Uint16("nwk", t.NWK).Str("manufacturer", res.Manufacturer).
		Str("model", res.Model).Str("sw_build_id", res.SWBuildID).
		Str("file_version", fmt.Sprintf("0x%08x", res.FileVersion)).Bool("file_version_known", res.HasFileVersion).
		Str("manufacturer_code", fmt.Sprintf("0x%04x", res.ManufacturerCode)).
		Str("image_type", fmt.Sprintf("0x%04x", res.ImageType)).Int("requests", res.Requests).
		Dur("took_ms", iv.clk.Now().Sub(start)).Str("note", res.Reason).Msg("interview done")
	return res
}

// group splits attributes of one cluster into requests whose worst-case response fits one APS frame.
func (iv *Interviewer) group(attrs []attribute) [][]attribute {
	budget := iv.cfg.MaxAPSPayload - zclHeaderLen
	var out [][]attribute
	var cur []attribute
	size := 0
	for _, a := range attrs {
		if len(cur) > 0 && size+a.maxRecord > budget {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, a)
		size += a.maxRecord
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// StatusError is a device's refusal of a request: a Default Response with an error status.
type StatusError struct {
	Cluster uint16
	Status  zcl.Status
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("the device refused Read Attributes of cluster 0x%04x: %s", e.Cluster, e.Status)
}

// ErrNoAnswer is wrapped by the error of a read that got no answer after every attempt.
var ErrNoAnswer = errors.New("no answer")

// ReadAttributes reads attributes of one cluster of a device in one request (retried on no answer) and
// returns the records. dir is the request's direction: zcl.ClientToServer for attributes of a server
// cluster on the device (Basic), zcl.ServerToClient for a client cluster (OTA).
func (iv *Interviewer) ReadAttributes(ctx context.Context, t InterviewTarget, cluster uint16, dir zcl.Direction, ids []uint16) ([]zcl.ReadAttributeRecord, error) {
	attrs := make([]attribute, len(ids))
	for i, id := range ids {
		attrs[i] = attribute{cluster: cluster, id: id, clientSrv: dir}
	}
	recs, _, err := iv.read(ctx, t, attrs)
	return recs, err
}

// read sends one Read Attributes for attrs (same cluster and direction) with retries.
func (iv *Interviewer) read(ctx context.Context, t InterviewTarget, attrs []attribute) ([]zcl.ReadAttributeRecord, int, error) {
	cluster, dir := attrs[0].cluster, attrs[0].clientSrv
	ids := make([]uint16, len(attrs))
	for i, a := range attrs {
		ids[i] = a.id
	}
	ep := t.Endpoint
	if ep == 0 {
		ep = 1
	}
	timeout := iv.cfg.Timeout
	if t.Sleepy {
		timeout = iv.cfg.SleepyTimeout
	}
	attempts := iv.cfg.Retries + 1
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, attempt - 1, fmt.Errorf("read attributes of cluster 0x%04x from %s: %w", cluster, t.IEEE, err)
		}
		tsn := iv.cfg.NextTSN()
		p := &pendingRead{ieee: t.IEEE, nwk: t.NWK, cluster: cluster, tsn: tsn, answer: make(chan readAnswer, 1)}
		iv.mu.Lock()
		iv.pending[p] = struct{}{}
		iv.mu.Unlock()

		h := zcl.GlobalHeader(dir, false, tsn, zcl.CmdReadAttributes)
		payload := zcl.AppendFrame(make([]byte, 0, zclHeaderLen+2*len(ids)), h, zcl.ReadAttributes{AttributeIDs: ids})
		frame := ncp.Frame{DstShort: t.NWK, DstEndpoint: ep, SrcEndpoint: ncp.CoordinatorEndpoint, ClusterID: cluster,
			ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: payload}
		iv.log.Debug().Str("ieee", t.IEEE.String()).Uint16("nwk", t.NWK).Uint16("cluster", cluster).Uint8("tsn", tsn).
			Int("attempt", attempt).Hex("frame", payload).Msg("read attributes")

		ans, err := iv.exchange(ctx, p, frame, timeout)
		iv.mu.Lock()
		delete(iv.pending, p)
		iv.mu.Unlock()
		if err == nil && ans.err == nil {
			return ans.records, attempt, nil
		}
		if err == nil { // the device answered with an error: do not retry
			return nil, attempt, ans.err
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, attempt, fmt.Errorf("read attributes of cluster 0x%04x from %s: %w", cluster, t.IEEE, ctx.Err())
		}
		iv.log.Debug().Err(err).Str("ieee", t.IEEE.String()).Uint16("cluster", cluster).Int("attempt", attempt).
			Msg("read attributes: no answer")
	}
	return nil, attempts, fmt.Errorf("%w to Read Attributes of %s (0x%04x) after %d attempts (%s each): %v",
		ErrNoAnswer, clusterName(cluster), cluster, attempts, timeout, lastErr)
}

// exchange sends the frame and waits for its answer until the timeout (measured on the interviewer's clock
// from the send) or ctx ends. A send error or a timeout is returned as err.
func (iv *Interviewer) exchange(ctx context.Context, p *pendingRead, f ncp.Frame, timeout time.Duration) (readAnswer, error) {
	// The timeout starts at the send, not at its confirmation: a sleepy device's frame waits at its parent,
	// and the answer can come before the stick confirms the send.
	timedOut := make(chan struct{})
	timer := iv.clk.AfterFunc(timeout, func() { close(timedOut) })
	defer timer.Stop()

	sendErr := make(chan error, 1)
	sendCtx, cancelSend := context.WithCancel(ctx)
	defer cancelSend()
	go func() { // ends when Send returns; cancelSend bounds it
		sendErr <- iv.send.Send(sendCtx, f)
	}()
	for {
		select {
		case a := <-p.answer:
			return a, nil
		case err := <-sendErr:
			if err != nil {
				return readAnswer{}, fmt.Errorf("send: %w", err)
			}
			sendErr = nil // sent; keep waiting for the answer
		case <-timedOut:
			return readAnswer{}, fmt.Errorf("no response within %s", timeout)
		case <-ctx.Done():
			return readAnswer{}, ctx.Err()
		}
	}
}

// HandleResponse takes an incoming frame from the event loop and reports whether it was the answer to a
// pending read (then the caller does nothing more with it). src is the sender's IEEE address as the
// bridge resolved it (0 when unknown: the short address is used). It never blocks.
func (iv *Interviewer) HandleResponse(src zcl.IEEE, in ncp.Incoming) bool {
	if in.ClusterID != zcl.ClusterBasic && in.ClusterID != zcl.ClusterOTA {
		return false
	}
	h, payload, err := zcl.DecodeHeader(in.Payload)
	if err != nil || h.FrameType != zcl.FrameTypeGlobal || h.ManufacturerSpecific {
		return false
	}
	var ans readAnswer
	switch h.CommandID {
	case zcl.CmdReadAttributesResponse:
		rsp, err := zcl.DecodeReadAttributesResponse(payload)
		if err != nil {
			ans.err = fmt.Errorf("undecodable Read Attributes Response of cluster 0x%04x: %w", in.ClusterID, err)
		} else {
			ans.records = rsp.Records
		}
	case zcl.CmdDefaultResponse:
		dr, err := zcl.DecodeDefaultResponse(payload)
		if err != nil || dr.CommandID != zcl.CmdReadAttributes {
			return false
		}
		if dr.Status == zcl.StatusSuccess {
			return false // not an answer to a read
		}
		ans.err = &StatusError{Cluster: in.ClusterID, Status: dr.Status}
	default:
		return false
	}
	if src == 0 {
		src = in.SrcIEEE
	}
	iv.mu.Lock()
	var match *pendingRead
	for p := range iv.pending {
		if p.cluster != in.ClusterID || p.tsn != h.TSN {
			continue
		}
		if src != 0 && p.ieee == src || src == 0 && p.nwk == in.SrcShort {
			match = p
			break
		}
	}
	if match != nil {
		delete(iv.pending, match) // a duplicate of the answer is not matched again
	}
	iv.mu.Unlock()
	if match == nil {
		return false
	}
	iv.log.Debug().Str("ieee", match.ieee.String()).Uint16("cluster", in.ClusterID).Uint8("tsn", h.TSN).
		Uint8("lqi", in.LQI).Hex("frame", in.Payload).Msg("read attributes response")
	match.answer <- ans // buffered 1 and matched once: never blocks
	return true
}

// Pending returns the number of reads waiting for an answer.
func (iv *Interviewer) Pending() int {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return len(iv.pending)
}

// store puts one record of a response into the result.
func (res *InterviewResult) store(cluster uint16, rec zcl.ReadAttributeRecord, log zerolog.Logger, ieee zcl.IEEE) {
	if rec.Status != zcl.StatusSuccess {
		if rec.Status == zcl.StatusUnsupportedAttribute {
			res.Unsupported = append(res.Unsupported, fmt.Sprintf("0x%04x/0x%04x", cluster, rec.AttributeID))
		}
		return
	}
	v := rec.Value
	str := func(max int) (string, bool) {
		if v.Type != zcl.TypeCharString {
			return "", false
		}
		return cleanString(v.String, max), true
	}
	integer := func(types ...zcl.DataType) (uint64, bool) {
		for _, t := range types {
			if v.Type == t {
				return v.Uint, true
			}
		}
		return 0, false
	}
	ok := true
	switch cluster {
	case zcl.ClusterBasic:
		switch rec.AttributeID {
		case zcl.AttrBasicManufacturerName:
			res.Manufacturer, ok = str(maxManufacturerName)
			res.HasManufacturer = ok
		case zcl.AttrBasicModelIdentifier:
			res.Model, ok = str(maxModelIdentifier)
			res.HasModel = ok
		case zcl.AttrBasicSWBuildID:
			res.SWBuildID, ok = str(maxSWBuildID)
			res.HasSWBuildID = ok
		case zcl.AttrBasicDateCode:
			res.DateCode, ok = str(maxDateCode)
			res.HasDateCode = ok
		case zcl.AttrBasicPowerSource:
			var n uint64
			n, ok = integer(zcl.TypeEnum8, zcl.TypeUint8, zcl.TypeBitmap8)
			res.PowerSource, res.HasPowerSource = uint8(n), ok
		case zcl.AttrBasicHWVersion:
			var n uint64
			n, ok = integer(zcl.TypeUint8)
			res.HardwareVersion, res.HasHardwareVersion = uint8(n), ok
		}
	case zcl.ClusterOTA:
		switch rec.AttributeID {
		case zcl.AttrOTACurrentFileVersion:
			var n uint64
			n, ok = integer(zcl.TypeUint32)
			res.FileVersion, res.HasFileVersion = uint32(n), ok
		case zcl.AttrOTAManufacturerID:
			var n uint64
			n, ok = integer(zcl.TypeUint16)
			res.ManufacturerCode, res.HasManufacturerCode = uint16(n), ok
		case zcl.AttrOTAImageTypeID:
			var n uint64
			n, ok = integer(zcl.TypeUint16)
			res.ImageType, res.HasImageType = uint16(n), ok
		}
	}
	if !ok {
		log.Debug().Str("ieee", ieee.String()).Uint16("cluster", cluster).Uint16("attribute", rec.AttributeID).
			Str("type", v.Type.String()).Msg("attribute has an unexpected data type; ignored")
	}
}

// cleanString makes a device string fit for topics, JSON and HA: valid UTF-8, no control characters,
// trailing NULs and spaces removed, at most max bytes.
func cleanString(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r == 0 || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimRight(s, " ")
}

func clusterName(c uint16) string {
	switch c {
	case zcl.ClusterBasic:
		return "Basic"
	case zcl.ClusterOTA:
		return "OTA Upgrade"
	}
	return "cluster"
}
