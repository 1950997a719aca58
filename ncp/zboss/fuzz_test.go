package zboss

import (
	"bytes"
	"testing"

	"github.com/otabridge/otabridge/ncp/fifo"
)

// The fuzz targets decode what comes from outside (the stick's bytes, or the host's in the fake NCP); they
// must never panic. Seed corpora are in testdata/fuzz/<Target>/.

func FuzzDecodeLowFrame(f *testing.F) {
	f.Add([]byte{0xDE, 0xAD, 0x05, 0x00, 0x06, 0x11, 0xC0})
	f.Add([]byte{0xDE, 0xAD, 0x0C, 0x00, 0x06, 0xC4, 0x84, 0x7D, 0xF7, 0x00, 0x00, 0x14, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := DecodeLowFrame(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("used %d of %d bytes", n, len(b))
		}
		// What decodes re-encodes to the same bytes.
		if again := AppendLowFrame(nil, fr); !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoded % x, decoded from % x", again, b[:n])
		}
	})
}

func FuzzDecodePacket(f *testing.F) {
	f.Add([]byte{0x00, 0x00, 0x14, 0x00, 0x01})
	f.Add([]byte{0x00, 0x01, 0x01, 0x03, 0x09, 0x04, 0xA7})
	f.Add([]byte{0x00, 0x02, 0x15, 0x02, 0x04, 0x03, 0x02, 0x01, 0x00, 0x4B, 0x12, 0x00, 0x78, 0x56, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePacket(b)
		if err != nil {
			return
		}
		if again := AppendPacket(nil, p); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded % x, decoded from % x", again, b)
		}
		switch p.Type {
		case Request:
			_, _ = DecodeDataRequest(p.Params)
			_, _ = DecodeFormation(p.Params)
			_, _ = DecodeSimpleDesc(p.Params)
		case Response:
			_, _ = DecodeModuleVersion(p.Params)
			for cl := uint16(0x8000); cl <= 0x8006; cl++ {
				_ = ZDOResponseFromNCP(cl, p.Status, p.Params)
			}
		case Indication:
			_, _ = DecodeIndication(p.CallID, p.Params)
		}
	})
}

func FuzzDecodeIndication(f *testing.F) {
	f.Add(uint16(CallAPSDEDataInd), DataIndication{SrcShort: 0x1234, DstEndpoint: 1, SrcEndpoint: 1, ClusterID: 0x19, ProfileID: 0x104,
		LQI: 200, RSSI: -60, Payload: []byte{1, 2, 3}}.Append(nil))
	f.Add(uint16(CallZDODevUpdateInd), DevUpdate{IEEE: 0x00124B0001020304, Short: 0x5678, Status: UpdateUnsecuredJoin}.Append(nil))
	f.Add(uint16(CallZDODevAnnceInd), DevAnnce{Short: 0x5678, IEEE: 0x00124B0001020304, Capabilities: 0x8E}.Append(nil))
	f.Add(uint16(CallNWKLeaveInd), LeaveInd{IEEE: 0x00124B0001020304}.Append(nil))
	f.Add(uint16(CallNCPResetInd), []byte{5})
	f.Fuzz(func(t *testing.T, call uint16, b []byte) {
		_, _ = DecodeIndication(CallID(call), b)
	})
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(uint16(CallAPSDEDataReq), DataRequest{DstAddr: 0x3A01, ProfileID: 0x104, ClusterID: 0x19, DstEndpoint: 1, SrcEndpoint: 1,
		AddrMode: AddrModeShort, TxOptions: TxOptAck, Payload: []byte{0x19, 0x05, 0x00}}.Append(nil))
	f.Add(uint16(CallNWKFormation), Formation{ChannelMask: 1 << 15, ScanDuration: 5, ExtendedPANID: 0xDD}.Append(nil))
	f.Add(uint16(CallAFSetSimpleDesc), SimpleDesc{Endpoint: 1, ProfileID: 0x104, InClusters: []uint16{0, 0x19}}.Append(nil))
	f.Fuzz(func(t *testing.T, call uint16, b []byte) {
		switch CallID(call) {
		case CallAPSDEDataReq:
			d, err := DecodeDataRequest(b)
			if err == nil && len(d.Payload) > len(b) {
				t.Fatal("payload longer than the packet")
			}
		case CallNWKFormation:
			_, _ = DecodeFormation(b)
		default:
			_, _ = DecodeSimpleDesc(b)
		}
	})
}

func FuzzZDOResponseLayout(f *testing.F) {
	// Simple_Desc_rsp: status, nwk, length, endpoint 1, profile 0x0104, device 0x0100, version 1, 2 in, 1 out.
	f.Add(uint16(0x8004), []byte{0, 0x01, 0x3A, 14, 1, 0x04, 0x01, 0x00, 0x01, 1, 2, 0x00, 0x00, 0x19, 0x00, 1, 0x06, 0x00})
	f.Add(uint16(0x8005), []byte{0, 0x01, 0x3A, 1, 1})
	f.Add(uint16(0x8002), []byte{0, 0x01, 0x3A, 0x01, 0x40, 0x8E, 0x1B, 0x13, 0x52, 0x80, 0x00, 0x41, 0x2C, 0x80, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, cluster uint16, std []byte) {
		st, params := ZDOResponseToNCP(cluster, std)
		back := ZDOResponseFromNCP(cluster, st, params)
		if len(std) > 0 && st.Code == std[0] && !bytes.Equal(back, std) && cluster != 0x8004 {
			t.Fatalf("cluster 0x%04x: % x → % x → % x", cluster, std, params, back)
		}
	})
}

func FuzzLinkStream(f *testing.F) {
	f.Add([]byte{0xDE, 0xAD, 0x05, 0x00, 0x06, 0x11, 0xC0, 0xDE, 0xAD, 0x0C, 0x00, 0x06, 0xC4, 0x84, 0x7D, 0xF7, 0x00, 0x00, 0x14, 0x00, 0x01})
	f.Add([]byte("boot banner\r\n\xde"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l := &Link{in: fifo.New[[]byte](), acks: make(chan uint8, 8), acks2send: fifo.New[[]byte](), done: make(chan struct{}), rw: nopPort{}}
		last := -1
		left := l.consume(append([]byte(nil), b...), &last)
		if len(left) > len(b) {
			t.Fatalf("%d bytes left of %d", len(left), len(b))
		}
	})
}

// nopPort swallows writes (the ACKs the link sends).
type nopPort struct{}

func (nopPort) Read([]byte) (int, error)    { return 0, nil }
func (nopPort) Write(b []byte) (int, error) { return len(b), nil }
func (nopPort) Close() error                { return nil }
