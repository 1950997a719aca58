package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// The embedded broker reads a whole MQTT packet into memory before it looks at it, so twenty clients each
// publishing a 20 MB request at once would make it hold 400 MB (and its copies for the subscribers). The
// packet gate sits under the broker, on each connection: it reads the next packet's fixed header itself
// and hands a large packet (remaining length above gateLargePacket) to the broker only once one of
// gateSlots is free, so at most that many large packets are read at a time; the others wait in their
// senders' TCP buffers. A sender that waits longer than gateWait is disconnected.
const (
	gateLargePacket = largeRequest
	gateSlots       = 1
	gateWait        = 30 * time.Second
)

// errGateWait is the read error of a connection whose large packet waited too long for a slot.
var errGateWait = errors.New("embedded broker: busy with other large messages")

// packetGate holds the slots of large packets being read.
type packetGate struct {
	slots chan struct{}
	large int // packets with a remaining length above this take a slot
	limit int // packets above this are refused by the broker: no slot needed
	wait  time.Duration
}

func newPacketGate(slots, large, limit int, wait time.Duration) *packetGate {
	return &packetGate{slots: make(chan struct{}, slots), large: large, limit: limit, wait: wait}
}

// gatedListener wraps every accepted connection in the gate.
type gatedListener struct {
	net.Listener
	gate *packetGate
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newGatedConn(c, l.gate), nil
}

func newGatedConn(c net.Conn, gate *packetGate) *gatedConn {
	return &gatedConn{Conn: c, gate: gate, in: bufio.NewReaderSize(c, 4096), closed: make(chan struct{})}
}

// gatedConn is a connection whose reads stop at a large packet's fixed header until the gate admits it.
// Only the broker's read loop calls Read; Close may come from any goroutine.
type gatedConn struct {
	net.Conn
	gate *packetGate
	in   *bufio.Reader

	header    [5]byte // the fixed header read ahead: type byte and remaining length
	headerLen int
	headerOut int // bytes of header handed to the broker
	body      int // bytes of the current packet's body still to hand over

	mu   sync.Mutex
	held bool // the current packet holds a slot (given back when it is read, or at Close)

	closeOnce sync.Once
	closed    chan struct{}
}

func (c *gatedConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.headerOut < c.headerLen {
		n := copy(p, c.header[c.headerOut:c.headerLen])
		c.headerOut += n
		c.releaseIfDone()
		return n, nil
	}
	if c.body > 0 {
		n, err := c.in.Read(p[:min(len(p), c.body)])
		c.body -= n
		c.releaseIfDone()
		return n, err
	}
	if err := c.readHeader(); err != nil {
		return 0, err
	}
	return c.Read(p)
}

// readHeader reads the next packet's fixed header and, for a large packet, waits for a slot.
func (c *gatedConn) readHeader() error {
	c.headerLen, c.headerOut = 0, 0
	remaining, multiplier := 0, 1
	for {
		b, err := c.in.ReadByte()
		if err != nil {
			if c.headerLen > 0 {
				return fmt.Errorf("embedded broker: connection ended inside a packet header: %w", err)
			}
			return err
		}
		c.header[c.headerLen] = b
		c.headerLen++
		if c.headerLen == 1 {
			continue
		}
		remaining += int(b&0x7f) * multiplier
		multiplier *= 128
		if b&0x80 == 0 || c.headerLen == len(c.header) {
			break // a fifth length byte is malformed: the broker refuses the packet
		}
	}
	c.body = remaining
	if remaining > c.gate.large && remaining < c.gate.limit {
		t := time.NewTimer(c.gate.wait)
		defer t.Stop()
		select {
		case c.gate.slots <- struct{}{}:
			c.mu.Lock()
			c.held = true
			c.mu.Unlock()
			select {
			case <-c.closed: // closed while the slot was taken: Close may have looked before held was set
				c.release()
				return net.ErrClosed
			default:
			}
		case <-c.closed:
			return net.ErrClosed
		case <-t.C:
			return errGateWait
		}
	}
	return nil
}

// releaseIfDone gives the slot back once the whole packet has been handed to the broker.
func (c *gatedConn) releaseIfDone() {
	if c.body == 0 && c.headerOut == c.headerLen {
		c.release()
	}
}

func (c *gatedConn) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held {
		c.held = false
		<-c.gate.slots
	}
}

// Close ends a wait for a slot and gives back a slot held by a packet cut off by the close.
func (c *gatedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	c.release()
	return c.Conn.Close()
}
