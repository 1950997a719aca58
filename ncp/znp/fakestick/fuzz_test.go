package fakestick

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/otabridge/otabridge/ncp"
	ezspfake "github.com/otabridge/otabridge/ncp/ezsp/fakestick"
	"github.com/otabridge/otabridge/ncp/znp"
)

// FuzzHostFrames: whatever SREQ or AREQ a host sends (any subsystem, id and data), the stick answers or
// ignores it without panicking, and still answers SYS_PING afterwards.
func FuzzHostFrames(f *testing.F) {
	f.Add(uint8(0x24), uint8(0x01), []byte{0x34, 0x12, 0x01, 0x01, 0x19, 0x00, 0x07, 0x10, 0x1E, 0x02, 0xAA})
	f.Add(uint8(0x21), uint8(0x1D), []byte{0x60, 0x00, 0x00, 0x00, 0xFF, 0x00})
	f.Add(uint8(0x25), uint8(0x05), []byte{0x34})
	f.Add(uint8(0x2F), uint8(0x05), []byte{0x04})
	f.Add(uint8(0x41), uint8(0x00), []byte{0x01})
	f.Fuzz(func(t *testing.T, cmd0, cmd1 uint8, data []byte) {
		if len(data) > znp.MaxDataLen {
			data = data[:znp.MaxDataLen]
		}
		mem := ezspfake.NewMemNetwork(ncp.NetworkInfo{})
		defer mem.Close()
		s := New(mem, Config{})
		defer s.Close()
		host, side := net.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Serve(ctx, side) }()
		defer func() { cancel(); host.Close(); <-done }()
		c := znp.NewConn(host, 2*time.Second, nil, s.log)
		defer c.Close()
		_ = c.Write(znp.Frame{Type: znp.Type(cmd0 >> 5), Subsystem: znp.Subsystem(cmd0 & 0x1F), ID: cmd1, Data: data})
		if _, err := c.Request(context.Background(), znp.SysPing, nil, 0); err != nil {
			t.Fatalf("no SYS_PING answer after %02X %02X % X: %v", cmd0, cmd1, data, err)
		}
	})
}
