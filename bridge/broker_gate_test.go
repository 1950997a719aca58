package bridge

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mqttPacket is one MQTT packet: a PUBLISH (0x30) fixed header with the remaining length as the spec's
// variable byte integer (MQTT 3.1.1 §2.2.3: 127 = 0x7F, 128 = 0x80 0x01, 16384 = 0x80 0x80 0x01), then body.
func mqttPacket(body []byte) []byte {
	out := []byte{0x30}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func TestMQTTPacketLengthVectors(t *testing.T) {
	assert.Equal(t, []byte{0x30, 0x7F}, mqttPacket(make([]byte, 127))[:2])
	assert.Equal(t, []byte{0x30, 0x80, 0x01}, mqttPacket(make([]byte, 128))[:3])
	assert.Equal(t, []byte{0x30, 0x80, 0x80, 0x01}, mqttPacket(make([]byte, 16384))[:4])
}

// gatePair is a gated connection (the broker's side) and the client's end of it.
func gatePair(t *testing.T, gate *packetGate) (*gatedConn, net.Conn) {
	t.Helper()
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	return newGatedConn(server, gate), client
}

// TestPacketGatePassesBytesThrough: small and large packets, several per write and split across reads, reach
// the broker unchanged, and a large packet's slot is free again once it has been read.
func TestPacketGatePassesBytesThrough(t *testing.T) {
	gate := newPacketGate(1, 100, 1<<20, time.Second)
	conn, client := gatePair(t, gate)
	var stream []byte
	stream = append(stream, mqttPacket([]byte("small"))...)
	stream = append(stream, mqttPacket(bytes.Repeat([]byte{0xAB}, 300))...) // large: takes the slot
	stream = append(stream, mqttPacket(nil)...)
	stream = append(stream, mqttPacket(bytes.Repeat([]byte{0xCD}, 16384))...)
	go func() { _, _ = client.Write(stream) }()
	got := make([]byte, len(stream))
	for read := 0; read < len(got); {
		n, err := conn.Read(got[read:min(len(got), read+7)]) // small reads cross every boundary
		require.NoError(t, err)
		read += n
	}
	assert.Equal(t, stream, got)
	assert.Len(t, gate.slots, 0, "the slot is given back after the packet")
}

// TestPacketGateHoldsSecondLargePacket: while one connection reads a large packet, another's large packet
// waits at its header (the broker has not seen it, so has allocated nothing), and goes on when the first ends.
func TestPacketGateHoldsSecondLargePacket(t *testing.T) {
	gate := newPacketGate(1, 100, 1<<20, 5*time.Second)
	first, firstClient := gatePair(t, gate)
	second, secondClient := gatePair(t, gate)
	large := mqttPacket(bytes.Repeat([]byte{1}, 200))
	go func() { _, _ = firstClient.Write(large) }()
	go func() { _, _ = secondClient.Write(large) }()

	head := make([]byte, 10)
	_, err := io.ReadFull(first, head) // the first large packet holds the slot, partly read
	require.NoError(t, err)

	secondRead := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(second, make([]byte, len(large)))
		secondRead <- err
	}()
	select {
	case err := <-secondRead:
		t.Fatalf("the second large packet was read while the first held the slot (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	_, err = io.ReadFull(first, make([]byte, len(large)-len(head)))
	require.NoError(t, err)
	select {
	case err := <-secondRead:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the second large packet still waits after the first was read")
	}
}

// TestPacketGateCloseReleases: a connection closed in the middle of a large packet gives its slot back, and
// one closed while waiting for a slot stops waiting; a wait longer than the gate's bound is an error.
func TestPacketGateCloseReleases(t *testing.T) {
	gate := newPacketGate(1, 100, 1<<20, 200*time.Millisecond)
	first, firstClient := gatePair(t, gate)
	large := mqttPacket(bytes.Repeat([]byte{1}, 200))
	go func() { _, _ = firstClient.Write(large) }()
	_, err := io.ReadFull(first, make([]byte, 10))
	require.NoError(t, err)

	waiting, waitingClient := gatePair(t, gate)
	go func() { _, _ = waitingClient.Write(large) }()
	_, err = waiting.Read(make([]byte, 10))
	assert.ErrorIs(t, err, errGateWait, "a large packet waits at most the gate's bound")

	require.NoError(t, first.Close())
	assert.Len(t, gate.slots, 0, "closing mid-packet gives the slot back")

	// A packet above the broker's limit (refused on its header) takes no slot: it passes a full gate.
	big, bigClient := gatePair(t, newPacketGate(1, 100, 150, time.Second))
	big.gate.slots <- struct{}{}
	go func() { _, _ = bigClient.Write(large) }()
	n, err := big.Read(make([]byte, 3))
	require.NoError(t, err)
	assert.Equal(t, 3, n, "a packet above the broker's limit is not held")
}

// TestMQTTInboxKeepsOnlyTheStartOfLargeMessagesWhenFull: with the handlers behind, a large message that does
// not fit the inbox's budget keeps its first bytes and is marked Truncated; small ones always queue whole.
func TestMQTTInboxKeepsOnlyTheStartOfLargeMessagesWhenFull(t *testing.T) {
	m := NewMQTT(MQTTConfig{BaseTopic: "otabridge"}, zerolog.Nop())
	large := bytes.Repeat([]byte("x"), maxInboxBytes/2+1)
	for range 2 {
		m.enqueue(inboxMessage{handler: func(Message) {}, msg: Message{Topic: "t", Payload: large}})
	}
	m.enqueue(inboxMessage{handler: func(Message) {}, msg: Message{Topic: "t", Payload: []byte("small")}})
	require.Len(t, m.inbox, 3)
	assert.Zero(t, m.inbox[0].msg.Truncated, "the first large message fits")
	assert.Equal(t, len(large), m.inbox[1].msg.Truncated, "the second does not")
	assert.Len(t, m.inbox[1].msg.Payload, inboxKeepBytes)
	assert.Equal(t, []byte("small"), m.inbox[2].msg.Payload)
	assert.Equal(t, len(large)+inboxKeepBytes+len("small"), m.inboxBytes)
}
