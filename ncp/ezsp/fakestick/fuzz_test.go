package fakestick

import (
	"net"
	"testing"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
)

// FuzzHandleHostFrame feeds one frame from a host to the stick's command handler, after the version
// handshake of v13 or v14 (or before it): whatever the bytes, the stick answers or drops them without
// panicking, and every answer it queues is a well-formed EZSP frame.
func FuzzHandleHostFrame(f *testing.F) {
	f.Add(uint8(13), []byte{0x01, 0x00, 0x01, 0x17, 0x00})                                                 // networkInit without parameters
	f.Add(uint8(14), []byte{0x02, 0x00, 0x01, 0x14, 0x01, 0x01, 0x00, 0x00, 0x00})                         // exportKey, short context
	f.Add(uint8(13), []byte{0x03, 0x00, 0x01, 0x03, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00})                   // getExtendedValue(ENDPOINT_FLAGS, 1)
	f.Add(uint8(14), []byte{0x04, 0x80, 0x01, 0x05, 0x00})                                                 // wrong direction
	f.Add(uint8(13), []byte{0x05, 0x00, 0x02, 0x05, 0x00})                                                 // unsupported control
	f.Add(uint8(0), []byte{0x06, 0x00, 0x00, 0x04})                                                        // legacy version command
	f.Add(uint8(14), []byte{0x07, 0x00, 0x01, 0x03, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00}) // setTokenData with a long size
	f.Add(uint8(13), []byte{0x08, 0x00, 0x01, 0x1E, 0x00, 0x21, 0x4E, 0x00})                               // formNetwork, short
	f.Fuzz(func(t *testing.T, version uint8, frame []byte) {
		memnet := NewMemNetwork(ncp.NetworkInfo{})
		defer memnet.Close()
		st := New(memnet, Config{ProtocolVersion: 14})
		defer st.Close()
		a, b := net.Pipe()
		defer a.Close()
		ss := st.newSession(b)
		defer func() { ss.cancel(); ss.conn.Close(); ss.wg.Wait() }()
		if version == 13 || version == 14 {
			ss.version = ezsp.Version(version)
		}
		ss.handle(frame)
		for {
			select {
			case out := <-ss.tx:
				if _, err := ezsp.ParseFrame(out.b, false); err != nil {
					if _, lerr := ezsp.ParseFrame(out.b, true); lerr != nil {
						t.Fatalf("stick queued a malformed frame % x: %v", out.b, err)
					}
				}
			default:
				return
			}
		}
	})
}

// FuzzFragmentedSends feeds a sequence of fragmented sendUnicast commands (EMBER_APS_OPTION_FRAGMENT) to a
// stick whose network is up: each 4 input bytes are one fragment's groupId (2), APS sequence (1) and message
// length (1). Whatever their order, numbers and counts, the stick answers every command without panicking,
// and once every reassembled message has gone to the network, no fragment is counted in flight that is not
// held in a message still being reassembled.
func FuzzFragmentedSends(f *testing.F) {
	f.Add([]byte{0x00, 0x03, 0x00, 80, 0x01, 0x00, 0x01, 80, 0x02, 0x00, 0x01, 63}) // three fragments, sequence 1
	f.Add([]byte{0x00, 0x00, 0x00, 10})                                             // count 0
	f.Add([]byte{0x05, 0x00, 0x07, 10, 0x00, 0x02, 0x00, 10, 0x00, 0x02, 0x00, 10}) // a stray fragment, a restart
	f.Fuzz(func(t *testing.T, data []byte) {
		memnet := NewMemNetwork(ncp.NetworkInfo{})
		defer memnet.Close()
		memnet.AddDevice(MemDevice{Short: 0x1234, IEEE: 0x00124B0000000001})
		st := New(memnet, Config{ProtocolVersion: 14})
		defer st.Close()
		a, b := net.Pipe()
		defer a.Close()
		ss := st.newSession(b)
		defer func() { ss.cancel(); ss.conn.Close(); ss.wg.Wait() }()
		ss.version, ss.up = ezsp.Version(14), true
		v := ezsp.Version(14)
		answers := 0
		drain := func() {
			for {
				select {
				case out := <-ss.tx:
					fr, err := ezsp.ParseFrame(out.b, false)
					if err != nil {
						t.Fatalf("stick queued a malformed frame % x: %v", out.b, err)
					}
					if fr.FrameID == ezsp.IDSendUnicast {
						answers++
					}
				default:
					return
				}
			}
		}
		commands := 0
		for i := 0; i+4 <= len(data) && commands < 64; i += 4 {
			aps := ezsp.ApsFrame{ProfileID: 0x0104, ClusterID: 0x0019, SrcEndpoint: 1, DstEndpoint: 1,
				Options: ezsp.APSOptionFragment | ezsp.APSOptionRetry, GroupID: uint16(data[i]) | uint16(data[i+1])<<8, Sequence: data[i+2]}
			params := ezsp.SendUnicast{Dest: 0x1234, Aps: aps, Tag: uint16(i), Message: make([]byte, int(data[i+3])%100)}.Append(nil, v)
			ss.handle(ezsp.Frame{Seq: uint8(i), FrameID: ezsp.IDSendUnicast, Params: params}.Append(nil))
			commands++
			drain()
		}
		ss.wg.Wait() // the reassembled messages have gone to the network and been confirmed
		drain()
		if answers != commands {
			t.Fatalf("%d sendUnicast commands, %d answers", commands, answers)
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		held := 0
		for _, r := range ss.fragments {
			held += r.got - r.finished
		}
		if ss.inFlight != held {
			t.Fatalf("%d fragments in flight, %d held in messages being reassembled", ss.inFlight, held)
		}
	})
}
