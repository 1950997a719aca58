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
