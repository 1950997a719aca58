// Package netscan finds the devices of a Zigbee network otabridge did not form (one Zigbee2MQTT or ZHA
// built and handed over): it resolves a short address to its IEEE address (ZDO IEEE_addr_req) and walks the
// network's topology (ZDO Mgmt_Lqi_req from the coordinator through every router it finds), rate-limited,
// bounded and resumable. It owns the ZDO encoding and decoding of those requests; it sends through a Sender
// and learns the answers from the frames the bridge hands it (HandleResponse). It knows nothing of MQTT.
package netscan

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// Sender sends one APS frame (the bridge's radio or its queue).
type Sender interface {
	Send(ctx context.Context, f ncp.Frame) error
}

// Config bounds the scanner. Zero values take the defaults.
type Config struct {
	// RequestGap is the least time between two ZDO requests the scanner sends (default 250ms): a walk of a
	// 200-device network never floods the channel.
	RequestGap time.Duration
	// Timeout is how long one request waits for its answer (default 6s: long enough for a sleepy device's
	// poll, when resolving one).
	Timeout time.Duration
	// Retries is how often a request that got no answer is sent again (default 2).
	Retries int
	// MaxNodes bounds the walk (default 1000 devices).
	MaxNodes int
}

func (c Config) withDefaults() Config {
	if c.RequestGap <= 0 {
		c.RequestGap = 250 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 6 * time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 2
	}
	if c.MaxNodes <= 0 {
		c.MaxNodes = 1000
	}
	return c
}

// Node is one device the walk found.
type Node struct {
	IEEE   zcl.IEEE `json:"ieee"`
	Short  uint16   `json:"nwk"`
	Type   string   `json:"type"`   // router, end_device (coordinator is not listed)
	Parent uint16   `json:"parent"` // short address of its parent (0x0000 the coordinator), as a neighbor table told
	Depth  uint8    `json:"depth"`
	LQI    uint8    `json:"lqi"`
}

// State is a walk in progress; a walk that was stopped continues from it (Scanner.Resume).
type State struct {
	Nodes    []Node   `json:"nodes"`
	Pending  []uint16 `json:"pending"` // routers (and the coordinator, 0x0000) whose tables are still to read
	Done     []uint16 `json:"done"`
	Failed   []uint16 `json:"failed"` // routers that did not answer or do not support Mgmt_Lqi_req
	Requests int      `json:"requests"`
}

// Progress is told after each neighbor table read.
type Progress struct {
	Nodes    int
	Routers  int // tables read
	Pending  int // tables still to read
	Failed   int
	Requests int
}

// Result is a finished walk.
type Result struct {
	Nodes    []Node
	Failed   []uint16
	Requests int
	Bounded  bool // MaxNodes stopped the walk
}

// ErrBusy is returned when a walk is asked for while one runs.
var ErrBusy = errors.New("a network scan is already running")

// Scanner sends the scan's ZDO requests and matches their answers. Safe for concurrent use; one walk at a
// time. It starts no goroutine: its methods run on their callers'.
type Scanner struct {
	send Sender
	clk  clock.Clock
	cfg  Config
	log  zerolog.Logger

	mu       sync.Mutex
	seq      uint8
	waiting  map[waitKey]*waiter
	nextSend time.Time
	walking  bool
	state    *State // the walk to resume, nil when none
}

type waitKey struct {
	cluster uint16
	seq     uint8
}

type waiter struct {
	src uint16
	ch  chan []byte
}

// New builds a scanner that sends through send and times on clk.
func New(send Sender, clk clock.Clock, cfg Config, log zerolog.Logger) *Scanner {
	return &Scanner{send: send, clk: clk, cfg: cfg.withDefaults(), log: log.With().Str("component", "netscan").Logger(),
		waiting: map[waitKey]*waiter{}}
}

// HandleResponse takes an incoming frame; it reports whether the frame was the answer to one of the
// scanner's requests (then it is consumed).
func (s *Scanner) HandleResponse(in ncp.Incoming) bool {
	if in.ProfileID != 0 || in.ClusterID&0x8000 == 0 || len(in.Payload) < 1 {
		return false
	}
	k := waitKey{in.ClusterID, in.Payload[0]}
	s.mu.Lock()
	w, ok := s.waiting[k]
	if ok && w.src == in.SrcShort {
		delete(s.waiting, k)
	}
	s.mu.Unlock()
	if !ok || w.src != in.SrcShort {
		return false
	}
	w.ch <- append([]byte(nil), in.Payload...)
	return true
}

// request sends one ZDO request to dst (rate-limited, with retries) and returns the answer's payload.
func (s *Scanner) request(ctx context.Context, dst, cluster uint16, body func(seq uint8) []byte) ([]byte, error) {
	var lastErr error
	for attempt := 0; attempt <= s.cfg.Retries; attempt++ {
		s.mu.Lock()
		now := s.clk.Now()
		at := s.nextSend
		if at.Before(now) {
			at = now
		}
		s.nextSend = at.Add(s.cfg.RequestGap)
		s.seq++
		seq := s.seq
		k := waitKey{cluster | 0x8000, seq}
		w := &waiter{src: dst, ch: make(chan []byte, 1)}
		s.waiting[k] = w
		s.mu.Unlock()
		forget := func() {
			s.mu.Lock()
			if s.waiting[k] == w {
				delete(s.waiting, k)
			}
			s.mu.Unlock()
		}
		if err := clock.Sleep(ctx, s.clk, at.Sub(now)); err != nil {
			forget()
			return nil, err
		}
		err := s.send.Send(ctx, ncp.Frame{DstShort: dst, ClusterID: cluster, Payload: body(seq)})
		if err != nil {
			forget()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			continue
		}
		timeout := make(chan struct{})
		t := s.clk.AfterFunc(s.cfg.Timeout, func() { close(timeout) })
		select {
		case p := <-w.ch:
			t.Stop()
			return p, nil
		case <-timeout:
			forget()
			lastErr = fmt.Errorf("no answer in %s", s.cfg.Timeout)
		case <-ctx.Done():
			t.Stop()
			forget()
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("ZDO 0x%04x to 0x%04x after %d attempts: %w", cluster, dst, s.cfg.Retries+1, lastErr)
}

// Resolve asks the device with short address short for its IEEE address (IEEE_addr_req, unicast).
func (s *Scanner) Resolve(ctx context.Context, short uint16) (zcl.IEEE, error) {
	p, err := s.request(ctx, short, ClusterIEEEAddrReq, func(seq uint8) []byte { return EncodeIEEEAddrReq(seq, short) })
	if err != nil {
		return 0, fmt.Errorf("resolve 0x%04x: %w", short, err)
	}
	r, err := DecodeAddrRsp(p)
	if err != nil {
		return 0, fmt.Errorf("resolve 0x%04x: %w", short, err)
	}
	if r.Status != zdoSuccess {
		return 0, fmt.Errorf("resolve 0x%04x: IEEE_addr_rsp status 0x%02x", short, r.Status)
	}
	if r.IEEE == 0 || r.IEEE == 0xFFFFFFFFFFFFFFFF {
		return 0, fmt.Errorf("resolve 0x%04x: IEEE_addr_rsp carries no IEEE address", short)
	}
	return r.IEEE, nil
}

// Resume loads a walk that was stopped (from the data directory); the next Walk continues it.
func (s *Scanner) Resume(st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(st.Pending) > 0 {
		s.state = &st
	}
}

// Walk reads the neighbor table of the coordinator and of every router it finds, each through all its
// pages, and returns every device listed. onNode is told each device when first found, onProgress after
// each table; both may be nil, and both run on the caller's goroutine. When ctx ends the walk stops and
// the next Walk continues where it stopped (State tells where, for saving). A router that does not answer
// is listed in Failed and the walk goes on.
func (s *Scanner) Walk(ctx context.Context, onNode func(Node), onProgress func(Progress, State)) (Result, error) {
	s.mu.Lock()
	if s.walking {
		s.mu.Unlock()
		return Result{}, ErrBusy
	}
	s.walking = true
	st := s.state
	if st == nil {
		st = &State{Pending: []uint16{0x0000}}
	}
	s.state = st
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.walking = false
		s.mu.Unlock()
	}()
	known := map[zcl.IEEE]int{}
	for i, n := range st.Nodes {
		known[n.IEEE] = i
	}
	queued := func(short uint16) bool {
		return slices.Contains(st.Pending, short) || slices.Contains(st.Done, short) || slices.Contains(st.Failed, short)
	}
	bounded := false
	for len(st.Pending) > 0 {
		owner := st.Pending[0]
		ok, err := s.readTable(ctx, st, owner, known, queued, onNode, &bounded)
		if err != nil {
			return Result{}, err // ctx ended: owner stays first in Pending
		}
		st.Pending = st.Pending[1:]
		if ok {
			st.Done = append(st.Done, owner)
		} else {
			st.Failed = append(st.Failed, owner)
		}
		if onProgress != nil {
			onProgress(Progress{Nodes: len(st.Nodes), Routers: len(st.Done), Pending: len(st.Pending), Failed: len(st.Failed),
				Requests: st.Requests}, s.snapshot(st))
		}
	}
	s.mu.Lock()
	s.state = nil
	s.mu.Unlock()
	return Result{Nodes: st.Nodes, Failed: st.Failed, Requests: st.Requests, Bounded: bounded}, nil
}

func (s *Scanner) snapshot(st *State) State {
	return State{Nodes: slices.Clone(st.Nodes), Pending: slices.Clone(st.Pending), Done: slices.Clone(st.Done),
		Failed: slices.Clone(st.Failed), Requests: st.Requests}
}

// readTable reads every page of owner's neighbor table into st. ok false: owner did not answer or does
// not support the request; err only when ctx ended.
func (s *Scanner) readTable(ctx context.Context, st *State, owner uint16, known map[zcl.IEEE]int, queued func(uint16) bool,
	onNode func(Node), bounded *bool) (bool, error) {
	start := 0
	for start < 256 {
		st.Requests++
		p, err := s.request(ctx, owner, ClusterMgmtLqiReq, func(seq uint8) []byte { return EncodeMgmtLqiReq(seq, uint8(start)) })
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			s.log.Warn().Str("nwk", fmt.Sprintf("0x%04x", owner)).Err(err).Msg("neighbor table unreadable")
			return false, nil
		}
		r, err := DecodeMgmtLqiRsp(p)
		if err != nil || r.Status != zdoSuccess {
			s.log.Warn().Str("nwk", fmt.Sprintf("0x%04x", owner)).Uint8("status", r.Status).AnErr("decode", err).
				Msg("neighbor table refused")
			return false, nil
		}
		for _, nb := range r.Neighbors {
			if nb.Short == 0x0000 || nb.Type == TypeCoordinator || nb.IEEE == 0 || nb.IEEE == 0xFFFFFFFFFFFFFFFF {
				continue
			}
			if i, seen := known[nb.IEEE]; seen {
				if nb.Relationship == 1 { // owner's child: now we know its parent
					st.Nodes[i].Parent = owner
				}
				continue
			}
			if len(st.Nodes) >= s.cfg.MaxNodes {
				*bounded = true
				continue
			}
			n := Node{IEEE: nb.IEEE, Short: nb.Short, Type: nb.Type, Parent: 0xFFFF, Depth: nb.Depth, LQI: nb.LQI}
			switch nb.Relationship {
			case 1:
				n.Parent = owner
			}
			known[nb.IEEE] = len(st.Nodes)
			st.Nodes = append(st.Nodes, n)
			if nb.Type == TypeRouter && !queued(nb.Short) {
				st.Pending = append(st.Pending, nb.Short)
			}
			if onNode != nil {
				onNode(n)
			}
		}
		if len(r.Neighbors) == 0 {
			return true, nil
		}
		start = int(r.Start) + len(r.Neighbors)
		if start >= int(r.Total) {
			return true, nil
		}
	}
	return true, nil
}
