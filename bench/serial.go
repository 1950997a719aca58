package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/serialport"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/zboss"
	zbossfake "github.com/otabridge/otabridge/ncp/zboss/fakestick"
	"github.com/otabridge/otabridge/ncp/znp"
	znpfake "github.com/otabridge/otabridge/ncp/znp/fakestick"
	"github.com/otabridge/otabridge/zcl"
)

// serialResult is OTA block traffic through a serial driver and its fake stick at one baud rate.
type serialResult struct {
	protocol    string // "ezsp" (EZSP over ASH), "znp" (Z-Stack MT) or "zboss" (ZBOSS NCP frames)
	baud        int
	streams     int // transfers at once
	block       int // data bytes per Image Block Response (64; 223 goes out APS-fragmented where the driver can)
	blocks      int
	elapsed     time.Duration
	hostToStick float64 // wire bytes per block, host to stick (ASH framing, stuffing and ACKs included)
	stickToHost float64 // wire bytes per block, stick to host
	uartBlocksS float64 // the UART's bound: blocks/s if the busier direction never paused
}

func (r serialResult) wirePerBlock() float64 { return r.hostToStick + r.stickToHost }

// alternatingBlocksS is the bound of one request-response stream: the device asks for the next block only
// after this one crossed the line both ways, so the directions take turns and never overlap.
func (r serialResult) alternatingBlocksS() float64 { return float64(r.baud) / 10 / r.wirePerBlock() }

// commandTurnBlocksS is the bound that one command outstanding at a time puts on any number of transfers
// (EZSP: UG100's two-message transaction; Z-Stack MT: one SREQ until its SRSP): after each send command the
// host's line idles until the stick's response to it has crossed back. Zero where the protocol has no such
// single response to measure (ZBOSS, whose link layer is stop-and-wait in both directions).
func (r serialResult) commandTurnBlocksS() float64 {
	rsp := responseWireBytes(r.protocol)
	if rsp == 0 {
		return 0
	}
	cmds := 1.0
	if r.fragmented() {
		cmds = float64(sim.Fragments(r.block + sim.BlockResponseOverhead))
	}
	return float64(r.baud) / 10 / (r.hostToStick + cmds*rsp)
}

// responseWireBytes is the size on the wire of the stick's response to one send command.
func responseWireBytes(protocol string) float64 {
	switch protocol {
	case "ezsp": // sendUnicast's response at EZSP v14 (sl_status u32, APS sequence), one ASH DATA frame
		params := ezsp.SendResponse{Sequence: 0x42}.Append(nil, 14)
		data := ezsp.Frame{Seq: 1, Control: ezsp.FCResponse, FrameID: ezsp.IDSendUnicast, Params: params}.Append(nil)
		return float64(len(ash.Frame{Type: ash.FrameData, Data: data}.Append(nil)))
	case "znp": // AF_DATA_REQUEST's SRSP (status)
		return float64(len(znp.AFDataRequest.Response([]byte{0}).Append(nil)))
	}
	return 0
}

func (r serialResult) blocksPerSecond() float64 { return float64(r.blocks) / r.elapsed.Seconds() }

// fragmented says the block's response is larger than one unfragmented APS frame (82 B).
func (r serialResult) fragmented() bool { return r.block+sim.BlockResponseOverhead > sim.MaxAPSPayload }

// pacedPort is the host's end of the in-memory serial line: each write reaches the stick when a UART at the
// baud rate would have sent its last byte (the fake stick paces its own direction the same way), so neither
// side can answer a frame before it has crossed the line.
type pacedPort struct {
	net.Conn
	pacer serialport.Pacer
	done  chan struct{}
}

func (p *pacedPort) Write(b []byte) (int, error) {
	if !p.pacer.Wait(len(b), p.done) {
		return 0, net.ErrClosed
	}
	return p.Conn.Write(b)
}

func (p *pacedPort) Close() error {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	return p.Conn.Close()
}

// serialStick is a fake stick the serial bench drives.
type serialStick interface {
	Serve(ctx context.Context, port io.ReadWriteCloser) error
	Close() error
}

// serialProtocols are the serial drivers the bench measures.
var serialProtocols = []string{"ezsp", "znp", "zboss"}

// newSerialPair builds the fake stick of a protocol in front of memnet, the driver that reaches it through
// open, and the stick's wire byte counters (read from the host, written to it).
func newSerialPair(protocol string, memnet *fakestick.MemNetwork, baud int, open ezsp.Opener) (serialStick, ncp.Radio, func() (int64, int64)) {
	switch protocol {
	case "znp":
		stick := znpfake.New(memnet, znpfake.Config{Baud: baud, PrecisePacing: true})
		drv := znp.New(znp.Config{Port: "bench-line", Baud: baud}, zerolog.Nop(), znp.WithOpener(znp.Opener(open)))
		return stick, drv, stick.WireBytes
	case "zboss":
		stick := zbossfake.New(memnet, zbossfake.Config{Baud: baud, PrecisePacing: true})
		drv := zboss.New(zboss.Config{Port: "bench-line", Baud: baud}, zerolog.Nop(), zboss.WithOpener(zboss.Opener(open)))
		return stick, drv, func() (int64, int64) {
			st := stick.LinkStats()
			return int64(st.BytesRead), int64(st.BytesWritten)
		}
	}
	stick := fakestick.New(memnet, fakestick.Config{ProtocolVersion: 14, Baud: baud, PrecisePacing: true})
	drv := ezsp.New(ezsp.Config{Port: "bench-line", Baud: baud}, zerolog.Nop(), ezsp.WithOpener(open))
	return stick, drv, func() (int64, int64) {
		st := stick.LinkStats()
		return int64(st.BytesRead), int64(st.BytesWritten)
	}
}

// benchSerial runs OTA-like traffic for d through a real serial driver (EZSP over ASH, Z-Stack MT or ZBOSS
// NCP frames) and its fake stick over an in-memory line paced in both directions at baud: per block, one Image
// Block Response with block data bytes (64: an 81-byte ZCL frame; 223: a 240-byte frame the EZSP driver sends
// as three APS fragments, which the fake stick reassembles; APS-acked unicast, confirmed by
// messageSentHandler, AF_DATA_CONFIRM or the APSDE-DATA confirm) and the device's next Image Block Request coming back
// (incomingMessageHandler, AF_INCOMING_MSG or APSDE_DATA_IND). streams transfers run at once (each a device of
// its own), as the engine's concurrent transfers and page streams do.
func benchSerial(protocol string, baud, streams, block int, d time.Duration) (serialResult, error) {
	const firstShort, firstIEEE = 0x4242, zcl.IEEE(0x00124B0099887766)
	memnet := fakestick.NewMemNetwork(ncp.NetworkInfo{IEEE: 0x00124B00FA4E0001})
	defer memnet.Close()
	for i := range streams {
		memnet.AddDevice(fakestick.MemDevice{Short: firstShort + uint16(i), IEEE: firstIEEE + zcl.IEEE(i)})
	}
	var mu sync.Mutex
	offsets := map[uint16]uint32{}
	memnet.SetResponder(func(f ncp.Frame) []ncp.Event {
		mu.Lock()
		offsets[f.DstShort] += uint32(block)
		offset := offsets[f.DstShort]
		mu.Unlock()
		req := zcl.AppendFrame(nil, zcl.ClientToServerClusterHeader(uint8(offset/uint32(block)), zcl.CmdImageBlockRequest),
			zcl.ImageBlockRequest{ManufacturerCode: benchManufacturer, ImageType: firstImageType, FileVersion: newVersion,
				FileOffset: offset, MaxDataSize: uint8(block)})
		return []ncp.Event{{Kind: ncp.EventFrame, Frame: ncp.Incoming{SrcShort: f.DstShort, SrcEndpoint: 1, DstEndpoint: 1,
			ClusterID: zcl.ClusterOTA, ProfileID: zcl.ProfileHomeAutomation, Payload: req}}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var stick serialStick
	open := func(context.Context) (io.ReadWriteCloser, error) {
		host, ncpSide := net.Pipe()
		wg.Add(1)
		go func() { defer wg.Done(); _ = stick.Serve(ctx, ncpSide) }()
		return &pacedPort{Conn: host, pacer: serialport.Pacer{Baud: baud, Precise: true}, done: make(chan struct{})}, nil
	}
	stick, drv, wire := newSerialPair(protocol, memnet, baud, open)
	defer stick.Close()
	defer drv.Close()
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if _, err := drv.Start(sctx); err != nil {
		return serialResult{}, fmt.Errorf("serial bench (%s) at %d baud: start: %w", protocol, baud, err)
	}
	// The requests coming back, routed to their stream.
	back := make([]chan struct{}, streams)
	for i := range back {
		back[i] = make(chan struct{}, 4)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-drv.Events():
				if !ok {
					return
				}
				if i := int(ev.Frame.SrcShort) - firstShort; ev.Kind == ncp.EventFrame && i >= 0 && i < streams {
					back[i] <- struct{}{}
				}
			}
		}
	}()
	one := func(stream int, block []byte, i int) error {
		block[1] = byte(i)
		frame := ncp.Frame{DstShort: firstShort + uint16(stream), DstEndpoint: 1, SrcEndpoint: 1, ClusterID: zcl.ClusterOTA,
			ProfileID: zcl.ProfileHomeAutomation, APSAck: true, Payload: block}
		if err := drv.Send(sctx, frame); err != nil {
			return err
		}
		select {
		case <-back[stream]:
			return nil
		case <-time.After(10 * time.Second):
			return fmt.Errorf("no block request came back")
		}
	}
	run := func(until time.Time, warm int) (int, error) {
		var (
			total   int
			errOnce error
			rmu     sync.Mutex
			swg     sync.WaitGroup
		)
		for st := range streams {
			swg.Add(1)
			go func() {
				defer swg.Done()
				block := zcl.AppendImageBlockResponseFrame(nil, 1, &zcl.ImageBlockResponse{Status: zcl.StatusSuccess,
					ManufacturerCode: benchManufacturer, ImageType: firstImageType, FileVersion: newVersion, Data: make([]byte, block)})
				n := 0
				for (warm > 0 && n < warm) || (warm == 0 && time.Now().Before(until)) {
					if err := one(st, block, n); err != nil {
						rmu.Lock()
						errOnce = err
						rmu.Unlock()
						return
					}
					n++
				}
				rmu.Lock()
				total += n
				rmu.Unlock()
			}()
		}
		swg.Wait()
		return total, errOnce
	}
	if _, err := run(time.Time{}, 20); err != nil { // warm up
		return serialResult{}, fmt.Errorf("serial bench at %d baud: %w", baud, err)
	}
	readBefore, writtenBefore := wire()
	start := time.Now()
	n, err := run(start.Add(d), 0)
	if err != nil {
		return serialResult{}, fmt.Errorf("serial bench (%s) at %d baud: %w", protocol, baud, err)
	}
	res := serialResult{protocol: protocol, baud: baud, streams: streams, block: block, blocks: n, elapsed: time.Since(start)}
	read, written := wire()
	res.hostToStick = float64(read-readBefore) / float64(n)
	res.stickToHost = float64(written-writtenBefore) / float64(n)
	res.uartBlocksS = float64(baud) / 10 / max(res.hostToStick, res.stickToHost)
	return res, nil
}
