package netscan

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// lqiRecord is one neighbor table record as the spec lays it out (2.4.4.4.2), written by hand.
func lqiRecord(ieee zcl.IEEE, short uint16, typ, rx, rel, depth uint8) []byte {
	b := binary.LittleEndian.AppendUint64(nil, 0xDDDDDDDDDDDDDDDD)
	b = binary.LittleEndian.AppendUint64(b, uint64(ieee))
	b = binary.LittleEndian.AppendUint16(b, short)
	return append(b, typ|rx<<2|rel<<4, 0x02, depth, 0xC8)
}

// fakeMesh answers Mgmt_Lqi_req and IEEE_addr_req from tables, pagesize records a page; silent nodes never
// answer.
type fakeMesh struct {
	mu       sync.Mutex
	s        *Scanner
	tables   map[uint16][][]byte // owner → records
	ieee     map[uint16]zcl.IEEE
	silent   map[uint16]bool
	pageSize int
	sent     []ncp.Frame
	block    chan struct{} // when set, a Send to blockAt waits until ctx ends
	blockAt  uint16
}

func (m *fakeMesh) Send(ctx context.Context, f ncp.Frame) error {
	m.mu.Lock()
	m.sent = append(m.sent, f)
	block := m.block != nil && f.DstShort == m.blockAt
	m.mu.Unlock()
	if block {
		close(m.block)
		<-ctx.Done()
		return ctx.Err()
	}
	if m.silent[f.DstShort] {
		return nil
	}
	seq := f.Payload[0]
	var rsp []byte
	switch f.ClusterID {
	case ClusterMgmtLqiReq:
		table := m.tables[f.DstShort]
		start := int(f.Payload[1])
		end := min(len(table), start+m.pageSize)
		rsp = []byte{seq, 0x00, byte(len(table)), byte(start), byte(max(end-start, 0))}
		for _, r := range table[min(start, len(table)):end] {
			rsp = append(rsp, r...)
		}
	case ClusterIEEEAddrReq:
		rsp = binary.LittleEndian.AppendUint64([]byte{seq, 0x00}, uint64(m.ieee[f.DstShort]))
		rsp = binary.LittleEndian.AppendUint16(rsp, f.DstShort)
	}
	go m.s.HandleResponse(ncp.Incoming{SrcShort: f.DstShort, ClusterID: f.ClusterID | 0x8000, Payload: rsp})
	return nil
}

func newFakeMesh(t *testing.T) *fakeMesh {
	m := &fakeMesh{pageSize: 2, silent: map[uint16]bool{}, ieee: map[uint16]zcl.IEEE{0x2222: 0xA2}, tables: map[uint16][][]byte{
		0x0000: {
			lqiRecord(0xA1, 0x1111, 1, 1, 1, 1), lqiRecord(0xA2, 0x2222, 1, 1, 1, 1), lqiRecord(0xA3, 0x3333, 2, 0, 1, 1),
		},
		0x1111: {
			lqiRecord(0x00124b00c0dec0de, 0x0000, 0, 1, 0, 0), lqiRecord(0xA4, 0x4444, 1, 1, 1, 2),
			lqiRecord(0xA5, 0x5555, 2, 0, 1, 2), lqiRecord(0xA2, 0x2222, 1, 1, 2, 1),
		},
		0x4444: {lqiRecord(0xA6, 0x6666, 2, 0, 1, 3)},
	}}
	m.silent[0x2222] = true // a router that never answers
	m.s = New(m, clock.Real{}, Config{RequestGap: time.Millisecond, Timeout: 30 * time.Millisecond, Retries: 1}, zerolog.Nop())
	return m
}

func TestWalkReadsEveryPageOfEveryRouter(t *testing.T) {
	m := newFakeMesh(t)
	var found []zcl.IEEE
	var progress []Progress
	res, err := m.s.Walk(context.Background(), func(n Node) { found = append(found, n.IEEE) },
		func(p Progress, _ State) { progress = append(progress, p) })
	require.NoError(t, err)
	assert.Equal(t, []zcl.IEEE{0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6}, found)
	byIEEE := map[zcl.IEEE]Node{}
	for _, n := range res.Nodes {
		byIEEE[n.IEEE] = n
	}
	assert.Equal(t, Node{IEEE: 0xA5, Short: 0x5555, Type: TypeEndDevice, Parent: 0x1111, Depth: 2, LQI: 0xC8}, byIEEE[0xA5])
	assert.Equal(t, Node{IEEE: 0xA6, Short: 0x6666, Type: TypeEndDevice, Parent: 0x4444, Depth: 3, LQI: 0xC8}, byIEEE[0xA6])
	assert.Equal(t, []uint16{0x2222}, res.Failed, "the silent router")
	// coordinator 2 pages, 0x1111 2 pages, 0x4444 1 page, 0x2222 1 request + 1 retry
	assert.Equal(t, 6, res.Requests)
	assert.Len(t, m.sent, 7)
	require.Len(t, progress, 4)
	assert.Equal(t, Progress{Nodes: 6, Routers: 3, Pending: 0, Failed: 1, Requests: 6}, progress[3])
}

func TestWalkResumesWhereItStopped(t *testing.T) {
	m := newFakeMesh(t)
	m.block, m.blockAt = make(chan struct{}), 0x4444
	ctx, cancel := context.WithCancel(context.Background())
	var saved State
	go func() { <-m.block; cancel() }()
	_, err := m.s.Walk(ctx, nil, func(_ Progress, st State) { saved = st })
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []uint16{0x0000, 0x1111}, saved.Done)
	assert.Contains(t, saved.Pending, uint16(0x4444))

	// A new scanner (a restart) resumes from the saved state and asks only what is left.
	m2 := newFakeMesh(t)
	m2.s.Resume(saved)
	res, err := m2.s.Walk(context.Background(), nil, nil)
	require.NoError(t, err)
	assert.Len(t, res.Nodes, 6)
	for _, f := range m2.sent {
		assert.NotContains(t, []uint16{0x0000, 0x1111}, f.DstShort, "a table read again after resuming")
	}
}

func TestWalkBusyAndResolve(t *testing.T) {
	m := newFakeMesh(t)
	m.block, m.blockAt = make(chan struct{}), 0x0000
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _, _ = m.s.Walk(ctx, nil, nil); close(done) }()
	<-m.block
	_, err := m.s.Walk(context.Background(), nil, nil)
	assert.True(t, errors.Is(err, ErrBusy), "second walk: %v", err)
	cancel()
	<-done

	m.silent[0x2222] = false
	ieee, err := m.s.Resolve(context.Background(), 0x2222)
	require.NoError(t, err)
	assert.Equal(t, zcl.IEEE(0xA2), ieee)
	m.silent[0x2222] = true
	_, err = m.s.Resolve(context.Background(), 0x2222)
	assert.ErrorContains(t, err, "resolve 0x2222")
}

// Byte vectors written from the spec: IEEE_addr_rsp (2.4.4.2.2) and Mgmt_Lqi_rsp (2.4.4.4.2).
func TestDecodeZDOResponses(t *testing.T) {
	r, err := DecodeAddrRsp([]byte{0x07, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x4b, 0x12, 0x00, 0x34, 0x12})
	require.NoError(t, err)
	assert.Equal(t, AddrRsp{Seq: 7, IEEE: 0x00124b0000000001, Short: 0x1234}, r)
	r, err = DecodeAddrRsp([]byte{0x08, 0x81})
	require.NoError(t, err)
	assert.Equal(t, uint8(0x81), r.Status)
	_, err = DecodeAddrRsp([]byte{0x08, 0x00, 0x01})
	assert.ErrorContains(t, err, "want at least 12")

	l, err := DecodeMgmtLqiRsp(append([]byte{0x09, 0x00, 0x03, 0x01, 0x01}, lqiRecord(0xA4, 0x4444, 1, 1, 1, 2)...))
	require.NoError(t, err)
	assert.Equal(t, LqiRsp{Seq: 9, Total: 3, Start: 1, Neighbors: []Neighbor{{ExtendedPANID: 0xDDDDDDDDDDDDDDDD, IEEE: 0xA4,
		Short: 0x4444, Type: TypeRouter, RxOnWhenIdle: true, Relationship: 1, Depth: 2, LQI: 0xC8}}}, l)
	_, err = DecodeMgmtLqiRsp([]byte{0x09, 0x00, 0x03, 0x00, 0x02, 0x01})
	assert.ErrorContains(t, err, "2 neighbor records announced")
	_, err = DecodeMgmtLqiRsp(append([]byte{0x09, 0x00, 0x01, 0x01, 0x01}, lqiRecord(0xA4, 0x4444, 1, 1, 1, 2)...))
	assert.ErrorContains(t, err, "past the table")
	assert.Equal(t, []byte{0x05, 0x34, 0x12, 0x00, 0x00}, EncodeIEEEAddrReq(5, 0x1234))
	assert.Equal(t, []byte{0x06, 0x02}, EncodeMgmtLqiReq(6, 2))
}
