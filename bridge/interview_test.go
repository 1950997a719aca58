package bridge

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
)

// fakeRadio records the frames the interviewer sends; the test answers them through HandleResponse.
type fakeRadio struct {
	frames  chan ncp.Frame
	sendErr error
}

func (f *fakeRadio) Send(_ context.Context, fr ncp.Frame) error {
	f.frames <- fr
	return f.sendErr
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

func nextFrame(t *testing.T, frames chan ncp.Frame) ncp.Frame {
	t.Helper()
	select {
	case f := <-frames:
		return f
	case <-time.After(waitLimit):
		t.Fatal("no frame sent")
	}
	return ncp.Frame{}
}

// TestInterviewByteVectors runs an interview against hand-written frames: the requests the interviewer
// must send and the answers of a device, byte by byte (ZCL: frame control, TSN, command, payload
// little-endian).
func TestInterviewByteVectors(t *testing.T) {
	radio := &fakeRadio{frames: make(chan ncp.Frame, 1)}
	tsn := uint8(0x40)
	iv := NewInterviewer(radio, clock.NewVirtual(), InterviewConfig{NextTSN: func() uint8 { tsn++; return tsn }}, zerolog.Nop())
	target := InterviewTarget{IEEE: ieeeA, NWK: 0x1234, Endpoint: 2}
	done := make(chan InterviewResult, 1)
	go func() { done <- iv.Interview(context.Background(), target) }()

	// Basic, group 1: Read Attributes (fc 0x00 global client→server, TSN 0x41, cmd 0x00) of 0x0004, 0x0005.
	f := nextFrame(t, radio.frames)
	assert.Equal(t, ncp.Frame{DstShort: 0x1234, DstEndpoint: 2, SrcEndpoint: 1, ClusterID: 0x0000, ProfileID: 0x0104,
		APSAck: true, Payload: unhex(t, "00 41 00 0400 0500")}, f)
	// Answer: fc 0x18 (global, server→client, no default response), TSN 0x41, cmd 0x01;
	// 0x0004 SUCCESS char string "Espressif\0\0 " (trailing NULs and spaces are cut); 0x0005 SUCCESS "ESP32H2".
	assert.True(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 0x1234, ClusterID: 0x0000,
		Payload: unhex(t, "18 41 01 0400 00 42 0c 457370726573736966000020 0500 00 42 07 455350333248 32")}))

	// Basic, group 2: 0x4000, 0x0006, 0x0007, 0x0003.
	f = nextFrame(t, radio.frames)
	assert.Equal(t, unhex(t, "00 42 00 0040 0600 0700 0300"), f.Payload)
	// The answer arrives from an unknown IEEE (src 0): matched by the short address.
	// 0x4000 "1.0.3"; 0x0006 UNSUPPORTED_ATTRIBUTE; 0x0007 enum8 0x01 (mains); 0x0003 uint8 2.
	assert.False(t, iv.HandleResponse(0, ncp.Incoming{SrcShort: 0x9999, ClusterID: 0x0000,
		Payload: unhex(t, "18 42 01 0040 00 42 05 312e302e33")}), "another short address")
	assert.False(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 0x1234, ClusterID: 0x0019,
		Payload: unhex(t, "18 42 01 0040 00 42 05 312e302e33")}), "another cluster")
	assert.False(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 0x1234, ClusterID: 0x0000,
		Payload: unhex(t, "18 43 01 0040 00 42 05 312e302e33")}), "another TSN")
	resp := unhex(t, "18 42 01 0040 00 42 05 312e302e33 0600 86 0700 00 30 01 0300 00 20 02")
	assert.True(t, iv.HandleResponse(0, ncp.Incoming{SrcShort: 0x1234, ClusterID: 0x0000, Payload: resp}))
	assert.False(t, iv.HandleResponse(0, ncp.Incoming{SrcShort: 0x1234, ClusterID: 0x0000, Payload: resp}),
		"a duplicate answer is not taken twice")

	// OTA: the attributes of the client cluster are read server→client (fc 0x08).
	f = nextFrame(t, radio.frames)
	assert.Equal(t, uint16(0x0019), f.ClusterID)
	assert.Equal(t, unhex(t, "08 43 00 0200 0700 0800"), f.Payload)
	// Answer client→server (fc 0x10): 0x0002 uint32 0x01020304, 0x0007 uint16 0x131b, 0x0008 uint16 0x0001.
	assert.True(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 0x1234, ClusterID: 0x0019,
		Payload: unhex(t, "10 43 01 0200 00 23 04030201 0700 00 21 1b13 0800 00 21 0100")}))

	res := <-done
	assert.True(t, res.OK, res.Reason)
	assert.Equal(t, "Espressif", res.Manufacturer)
	assert.Equal(t, "ESP32H2", res.Model)
	assert.Equal(t, "1.0.3", res.SWBuildID)
	assert.False(t, res.HasDateCode)
	assert.Equal(t, []string{"0x0000/0x0006"}, res.Unsupported)
	assert.Equal(t, uint8(1), res.PowerSource)
	assert.Equal(t, uint8(2), res.HardwareVersion)
	assert.Equal(t, uint32(0x01020304), res.FileVersion)
	assert.Equal(t, uint16(0x131b), res.ManufacturerCode)
	assert.Equal(t, uint16(0x0001), res.ImageType)
	assert.Equal(t, 3, res.Requests)
	assert.Equal(t, 0, iv.Pending())
}

func TestInterviewTimeoutRetriesAndFailure(t *testing.T) {
	radio := &fakeRadio{frames: make(chan ncp.Frame, 1)}
	clk := clock.NewVirtual()
	iv := NewInterviewer(radio, clk, InterviewConfig{Timeout: 5 * time.Second, Retries: 2}, zerolog.Nop())
	done := make(chan InterviewResult, 1)
	go func() { done <- iv.Interview(context.Background(), InterviewTarget{IEEE: ieeeA, NWK: 0x1234}) }()
	var tsns []uint8
	for range 3 {
		f := nextFrame(t, radio.frames)
		h, _, err := zcl.DecodeHeader(f.Payload)
		require.NoError(t, err)
		tsns = append(tsns, h.TSN)
		assert.Equal(t, uint8(1), f.DstEndpoint, "endpoint 1 when unknown")
		// Let the virtual timeout run out (the clock only moves when the test says so).
		eventually(t, func() bool { return clk.Pending() > 0 }, "the timeout timer")
		clk.RunFor(5 * time.Second)
	}
	res := <-done
	assert.False(t, res.OK)
	assert.Equal(t, 3, res.Requests)
	assert.Contains(t, res.Reason, "no answer to Read Attributes of Basic (0x0000) after 3 attempts (5s each)")
	assert.Contains(t, res.Reason, "no response within 5s")
	assert.Len(t, map[uint8]bool{tsns[0]: true, tsns[1]: true, tsns[2]: true}, 3, "each attempt has its own TSN")
	assert.Equal(t, 0, iv.Pending())
}

func TestInterviewRefusals(t *testing.T) {
	radio := &fakeRadio{frames: make(chan ncp.Frame, 1)}
	iv := NewInterviewer(radio, clock.NewVirtual(), InterviewConfig{}, zerolog.Nop())

	// The OTA cluster is missing: Default Response (fc 0x18, cmd 0x0b) for command 0x00 with UNSUPPORTED_CLUSTER.
	done := make(chan InterviewResult, 1)
	go func() { done <- iv.InterviewOTA(context.Background(), InterviewTarget{IEEE: ieeeA, NWK: 1}) }()
	f := nextFrame(t, radio.frames)
	h, _, _ := zcl.DecodeHeader(f.Payload)
	assert.True(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 1, ClusterID: 0x0019,
		Payload: append([]byte{0x18, h.TSN, 0x0b}, 0x00, 0xc3)}))
	res := <-done
	assert.True(t, res.OK)
	assert.Equal(t, "the device has no OTA client cluster", res.Reason)
	assert.False(t, res.HasFileVersion)

	// Basic refused: the interview fails with the status.
	go func() { done <- iv.Interview(context.Background(), InterviewTarget{IEEE: ieeeA, NWK: 1}) }()
	f = nextFrame(t, radio.frames)
	h, _, _ = zcl.DecodeHeader(f.Payload)
	assert.False(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 1, ClusterID: 0x0000,
		Payload: []byte{0x18, h.TSN, 0x0b, 0x00, 0x00}}), "a SUCCESS default response is not an answer")
	assert.False(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 1, ClusterID: 0x0000,
		Payload: []byte{0x18, h.TSN, 0x0b, 0x01, 0x81}}), "a default response to another command")
	assert.True(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 1, ClusterID: 0x0000,
		Payload: []byte{0x18, h.TSN, 0x0b, 0x00, 0xc3}}))
	res = <-done
	assert.False(t, res.OK)
	assert.Equal(t, "the device refused Read Attributes of cluster 0x0000: UNSUPPORTED_CLUSTER", res.Reason)

	// A broken response fails the read with the decoder's reason.
	go func() { done <- iv.Interview(context.Background(), InterviewTarget{IEEE: ieeeA, NWK: 1}) }()
	f = nextFrame(t, radio.frames)
	h, _, _ = zcl.DecodeHeader(f.Payload)
	assert.True(t, iv.HandleResponse(ieeeA, ncp.Incoming{SrcShort: 1, ClusterID: 0x0000,
		Payload: []byte{0x18, h.TSN, 0x01, 0x04, 0x00, 0x00, 0x42, 0x09, 'E'}}))
	res = <-done
	assert.False(t, res.OK)
	assert.Contains(t, res.Reason, "undecodable Read Attributes Response")

	// Frames that are not answers are left to the caller.
	assert.False(t, iv.HandleResponse(ieeeA, ncp.Incoming{ClusterID: 0x0006, Payload: []byte{0x18, 1, 1}}))
	assert.False(t, iv.HandleResponse(ieeeA, ncp.Incoming{ClusterID: 0x0019, Payload: []byte{0x09, 1, 1}}), "cluster-specific")
	assert.False(t, iv.HandleResponse(ieeeA, ncp.Incoming{ClusterID: 0x0019, Payload: []byte{0x1c}}), "too short")
}

func TestInterviewSendErrorAndContext(t *testing.T) {
	radio := &fakeRadio{frames: make(chan ncp.Frame, 10), sendErr: &ncp.SendError{DstShort: 1, Status: "no APS ack"}}
	iv := NewInterviewer(radio, clock.NewVirtual(), InterviewConfig{Retries: 1}, zerolog.Nop())
	res := iv.Interview(context.Background(), InterviewTarget{IEEE: ieeeA, NWK: 1})
	assert.False(t, res.OK)
	assert.Contains(t, res.Reason, "after 2 attempts")
	assert.Contains(t, res.Reason, "send to 0x0001 failed: no APS ack")

	radio.sendErr = nil
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = iv.Interview(ctx, InterviewTarget{IEEE: ieeeA, NWK: 1})
	assert.False(t, res.OK)
	assert.Contains(t, res.Reason, "context canceled")
}

func TestInterviewGroupsFitOneFrame(t *testing.T) {
	iv := NewInterviewer(&fakeRadio{}, nil, InterviewConfig{}, zerolog.Nop())
	for _, attrs := range [][]attribute{basicAttributes, otaAttributes} {
		groups := iv.group(attrs)
		n := 0
		for _, g := range groups {
			size := zclHeaderLen
			for _, a := range g {
				size += a.maxRecord
				assert.Equal(t, g[0].cluster, a.cluster)
			}
			assert.LessOrEqual(t, size, 82, "the worst-case response fits one unfragmented APS frame")
			n += len(g)
		}
		assert.Equal(t, len(attrs), n)
	}
	assert.Len(t, iv.group(basicAttributes), 2)
	assert.Len(t, iv.group(otaAttributes), 1)
	small := NewInterviewer(&fakeRadio{}, nil, InterviewConfig{MaxAPSPayload: 20}, zerolog.Nop())
	assert.Len(t, small.group(otaAttributes), 2)
}

func TestCleanString(t *testing.T) {
	assert.Equal(t, "IKEA of Sweden", cleanString("IKEA of Sweden\x00\x00  ", 32))
	assert.Equal(t, "ab", cleanString("a\x01b\xff", 32))
	assert.Equal(t, "abc", cleanString("abcdef", 3))
}

// simNetwork runs a simulated network paced at 50× real time, with an event loop that feeds incoming
// frames to the interviewer (as the bridge's loop does) and records announcements.
type simNetwork struct {
	net       *sim.Network
	clk       *clock.Virtual
	iv        *Interviewer
	radio     *recordingRadio
	mu        sync.Mutex
	announced map[zcl.IEEE]uint8
}

// recordingRadio passes frames to the network and records the Read Attributes requests.
type recordingRadio struct {
	net  *sim.Network
	mu   sync.Mutex
	sent []ncp.Frame
}

func (r *recordingRadio) Send(ctx context.Context, f ncp.Frame) error {
	r.mu.Lock()
	r.sent = append(r.sent, f)
	r.mu.Unlock()
	return r.net.Send(ctx, f)
}

func startSim(t *testing.T, yamlText string, cfg InterviewConfig) *simNetwork {
	t.Helper()
	var sc sim.Config
	require.NoError(t, yaml.Unmarshal([]byte(yamlText), &sc))
	clk := clock.NewVirtual()
	n, err := sim.New(sc, clk, zerolog.Nop())
	require.NoError(t, err)
	s := &simNetwork{net: n, clk: clk, radio: &recordingRadio{net: n}, announced: map[zcl.IEEE]uint8{}}
	s.iv = NewInterviewer(s.radio, clk, cfg, zerolog.Nop())

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = clk.Pace(ctx, 50) }()
	go func() { // the event loop; ends when Close closes the channel
		defer wg.Done()
		for ev := range n.Events() {
			switch ev.Kind {
			case ncp.EventFrame:
				src := ev.Frame.SrcIEEE
				if src == 0 {
					if d := n.DeviceByShort(ev.Frame.SrcShort); d != nil {
						src = d.IEEE()
					}
				}
				s.iv.HandleResponse(src, ev.Frame)
			case ncp.EventAnnounced:
				s.mu.Lock()
				s.announced[ev.IEEE] = ev.Capabilities
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		_ = n.Close()
		cancel()
		wg.Wait()
	})
	_, err = n.Start(ctx)
	require.NoError(t, err)
	return s
}

func (s *simNetwork) target(t *testing.T, ieee zcl.IEEE) InterviewTarget {
	t.Helper()
	d := s.net.Device(ieee)
	require.NotNil(t, d)
	return InterviewTarget{IEEE: ieee, NWK: d.NWK(), Endpoint: d.Config().Endpoint, Sleepy: d.Config().Power == sim.PowerBattery}
}

const simDevices = `
link: {mode: realistic}
devices:
  - ieee: "0x00124b0000000001"
    model: ESP32H2-Light
    manufacturer: Espressif
    manufacturer_code: 0x131b
    image_type: 0x0001
    hardware_version: 3
    file_version: 0x01000005
    sw_build_id: "1.0.5"
    date_code: "20260101"
    power: mains
  - ieee: "0x00124b0000000002"
    model: sim-sensor
    manufacturer: otabridge-sim
    manufacturer_code: 0x1234
    image_type: 0x0002
    hardware_version: 1
    file_version: 0x00000010
    power: battery
    poll_interval: 7s
  - ieee: "0x00124b0000000003"
    model: mute
    processing_delay: 1h
`

func TestInterviewSimNetwork(t *testing.T) {
	s := startSim(t, simDevices, InterviewConfig{Timeout: 5 * time.Second, SleepyTimeout: 30 * time.Second, Retries: 1})
	reg := NewRegistry(s.clk, nil)
	ctx := context.Background()

	// A mains device: every attribute read back.
	light := s.target(t, 0x00124b0000000001)
	reg.Seen(light.IEEE, light.NWK, 0)
	res := s.iv.Interview(ctx, light)
	require.True(t, res.OK, res.Reason)
	d, err := reg.SetInterviewResult(light.IEEE, res)
	require.NoError(t, err)
	assert.Equal(t, "Espressif", d.Manufacturer)
	assert.Equal(t, "ESP32H2-Light", d.Model)
	assert.Equal(t, "1.0.5", d.SWBuildID)
	assert.Equal(t, "20260101", d.DateCode)
	assert.Equal(t, PowerMains, d.PowerSource)
	assert.Equal(t, uint8(3), d.HardwareVersion)
	assert.True(t, d.HasHardwareVersion)
	assert.Equal(t, uint32(0x01000005), d.FileVersion)
	assert.True(t, d.FileVersionKnown)
	assert.Equal(t, uint16(0x131b), d.ManufacturerCode)
	assert.Equal(t, uint16(0x0001), d.ImageType)
	assert.Equal(t, InterviewOK, d.Interview)
	assert.Equal(t, "0x01000005", d.InstalledVersion())

	// The requests read exactly the attributes of the brief, Basic client→server and OTA server→client.
	read := map[string][]uint16{}
	s.radio.mu.Lock()
	for _, f := range s.radio.sent {
		h, payload, err := zcl.DecodeHeader(f.Payload)
		require.NoError(t, err)
		require.Equal(t, zcl.CmdReadAttributes, h.CommandID)
		req, err := zcl.DecodeReadAttributes(payload)
		require.NoError(t, err)
		key := fmt.Sprintf("0x%04x/%s", f.ClusterID, h.Direction)
		read[key] = append(read[key], req.AttributeIDs...)
		assert.LessOrEqual(t, len(f.Payload), s.net.MaxAPSPayload())
	}
	s.radio.mu.Unlock()
	for _, ids := range read {
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	}
	assert.Equal(t, map[string][]uint16{
		"0x0000/client_to_server": {0x0003, 0x0004, 0x0005, 0x0006, 0x0007, 0x4000},
		"0x0019/server_to_client": {0x0002, 0x0007, 0x0008},
	}, read)

	// A sleepy device: its frames wait for its poll; battery power, no SW build id (unsupported).
	sensor := s.target(t, 0x00124b0000000002)
	require.True(t, sensor.Sleepy)
	res = s.iv.Interview(ctx, sensor)
	require.True(t, res.OK, res.Reason)
	assert.Equal(t, uint8(0x03), res.PowerSource)
	assert.Equal(t, PowerSourceFromBasic(res.PowerSource), PowerBattery)
	assert.Equal(t, "sim-sensor", res.Model)
	assert.Equal(t, uint32(0x10), res.FileVersion)
	assert.False(t, res.HasSWBuildID)
	assert.Contains(t, res.Unsupported, "0x0000/0x4000")

	// A device that is gone (nothing answers at its short address): the interview fails with a reason.
	silent := InterviewTarget{IEEE: 0x00124b0000000003, NWK: 0x7777}
	reg.Seen(silent.IEEE, silent.NWK, 0)
	res = s.iv.Interview(ctx, silent)
	assert.False(t, res.OK)
	assert.Contains(t, res.Reason, "no answer to Read Attributes of Basic (0x0000) after 2 attempts")
	t.Logf("gone device: %s", res.Reason)
	d, err = reg.SetInterviewResult(silent.IEEE, res)
	require.NoError(t, err)
	assert.Equal(t, InterviewFailed, d.Interview)
	assert.Equal(t, res.Reason, d.InterviewReason)

	// A device that hears the requests but never answers in time: the timeouts run out.
	mute := s.target(t, 0x00124b0000000003)
	res = s.iv.Interview(ctx, mute)
	assert.False(t, res.OK)
	assert.Contains(t, res.Reason, "no answer to Read Attributes of Basic (0x0000) after 2 attempts (5s each): no response within 5s")
	assert.Equal(t, 2, res.Requests)

	// After an upgrade-like reboot the OTA attributes are read again.
	res = s.iv.InterviewOTA(ctx, light)
	require.True(t, res.OK, res.Reason)
	assert.Equal(t, uint32(0x01000005), res.FileVersion)
	assert.Equal(t, 0, s.iv.Pending())
}

func TestInterviewSimConcurrent(t *testing.T) {
	s := startSim(t, simDevices, InterviewConfig{Timeout: 5 * time.Second, SleepyTimeout: 30 * time.Second, Retries: 1})
	var wg sync.WaitGroup
	results := make([]InterviewResult, 2)
	for i, ieee := range []zcl.IEEE{0x00124b0000000001, 0x00124b0000000002} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.iv.Interview(context.Background(), s.target(t, ieee))
		}()
	}
	wg.Wait()
	assert.True(t, results[0].OK, results[0].Reason)
	assert.True(t, results[1].OK, results[1].Reason)
	assert.Equal(t, "ESP32H2-Light", results[0].Model)
	assert.Equal(t, "sim-sensor", results[1].Model)
	assert.False(t, errors.Is(nil, ErrNoAnswer))
}

// FuzzHandleResponse feeds arbitrary frames to HandleResponse while a read is pending: it never panics, a
// frame is matched at most once, and a matched frame delivers exactly one answer.
func FuzzHandleResponse(f *testing.F) {
	f.Add(uint16(0x0000), []byte{0x18, 0x07, 0x01, 0x04, 0x00, 0x00, 0x42, 0x03, 'a', 'b', 'c'})
	f.Add(uint16(0x0019), []byte{0x10, 0x07, 0x01, 0x02, 0x00, 0x00, 0x23, 0x01, 0x02, 0x03, 0x04})
	f.Add(uint16(0x0019), []byte{0x18, 0x07, 0x0b, 0x00, 0xc3})
	f.Add(uint16(0x0000), []byte{0x18, 0x07, 0x01, 0x04, 0x00, 0x00, 0x42, 0xff})
	f.Add(uint16(0x0000), []byte{0x1c, 0x34, 0x12, 0x07, 0x01})
	f.Fuzz(func(t *testing.T, cluster uint16, payload []byte) {
		iv := NewInterviewer(&fakeRadio{}, clock.NewVirtual(), InterviewConfig{}, zerolog.Nop())
		p := &pendingRead{ieee: ieeeA, nwk: 1, cluster: cluster, tsn: 0x07, answer: make(chan readAnswer, 1)}
		iv.pending[p] = struct{}{}
		in := ncp.Incoming{SrcShort: 1, ClusterID: cluster, Payload: payload}
		first := iv.HandleResponse(ieeeA, in)
		second := iv.HandleResponse(0, in)
		if second {
			t.Fatal("a frame was matched twice")
		}
		if first {
			a := <-p.answer
			if a.err == nil && a.records == nil && len(payload) > 3 {
				// an empty response is fine only when it carries no records
				if _, rest, _ := zcl.DecodeHeader(payload); len(rest) != 0 {
					t.Fatal("matched answer without records or error")
				}
			}
		}
	})
}

func BenchmarkHandleResponse(b *testing.B) {
	b.ReportAllocs()
	iv := NewInterviewer(&fakeRadio{}, clock.NewVirtual(), InterviewConfig{}, zerolog.Nop())
	payload := []byte{0x10, 0x07, 0x01, 0x02, 0x00, 0x00, 0x23, 0x04, 0x03, 0x02, 0x01, 0x07, 0x00, 0x00, 0x21, 0x1b, 0x13,
		0x08, 0x00, 0x00, 0x21, 0x01, 0x00}
	in := ncp.Incoming{SrcShort: 1, ClusterID: zcl.ClusterOTA, Payload: payload}
	for b.Loop() {
		p := &pendingRead{ieee: ieeeA, nwk: 1, cluster: zcl.ClusterOTA, tsn: 0x07, answer: make(chan readAnswer, 1)}
		iv.mu.Lock()
		iv.pending[p] = struct{}{}
		iv.mu.Unlock()
		if !iv.HandleResponse(ieeeA, in) {
			b.Fatal("not matched")
		}
		<-p.answer
	}
}
