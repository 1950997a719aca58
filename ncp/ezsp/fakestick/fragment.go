package fakestick

import (
	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
)

// Host APS fragmentation, the NCP side: an EmberZNet host splits a payload larger than the unfragmented limit
// into fragments, each a sendUnicast with EMBER_APS_OPTION_FRAGMENT and the fragment's number in the low byte
// of the APS frame's groupId (the first fragment carries the count in the high byte; the later ones reuse the
// APS sequence number the stick gave the first). The stick sends FRAGMENT_WINDOW_SIZE fragments and confirms
// each of them (messageSentHandler) when the destination's APS ack of that window arrives.
//
// The fake stick reassembles the fragments and hands the whole payload to the network behind it as one
// APS-fragmented transfer once the last one arrived, so that the simulator's fragmentation model (its window,
// acks, a lost fragment, a device without fragmentation support) decides the outcome; every fragment of the
// last window is confirmed with that verdict. The windows before the last are confirmed as soon as they are
// complete (the simulator delivers a message as a whole, so their acks cannot be told apart from the
// message's); OTA messages fit one window of the default 8.

type fragmentKey struct {
	dest uint16
	seq  uint8
}

// reassembly is one fragmented message the host is sending.
type reassembly struct {
	frame    ncp.Frame // everything but the payload
	parts    [][]byte
	sent     []ezsp.MessageSent // the messageSentHandler of each fragment received
	got      int                // fragments received
	finished int                // fragments confirmed (the windows before windowEnd)
}

// sendFragment handles a sendUnicast with EMBER_APS_OPTION_FRAGMENT.
func (ss *session) sendFragment(req ezsp.Frame, v ezsp.Version, c ezsp.SendUnicast) {
	st := ss.st
	if !ss.isUp() {
		ss.respond(req, ezsp.SendResponse{Status: v.StatusOf(ezsp.StatusNetworkDown)}.Append(nil, v))
		return
	}
	refuse := func(k ezsp.StatusKind) { ss.respond(req, ezsp.SendResponse{Status: v.StatusOf(k)}.Append(nil, v)) }
	index, count := int(c.Aps.GroupID&0xFF), int(c.Aps.GroupID>>8)
	ss.mu.Lock()
	if ss.inFlight >= st.cfg.MaxInFlight {
		ss.mu.Unlock()
		refuse(ezsp.StatusMaxMessageLimit)
		return
	}
	var r *reassembly
	key := fragmentKey{dest: c.Dest, seq: c.Aps.Sequence}
	if index == 0 {
		if count == 0 {
			ss.mu.Unlock()
			refuse(ezsp.StatusInvalidParameter)
			return
		}
		// A host sends one fragmented message to a destination at a time: an unfinished older one is abandoned.
		for k, old := range ss.fragments {
			if k.dest == c.Dest {
				ss.inFlight -= old.got - old.finished
				delete(ss.fragments, k)
			}
		}
		key.seq = uint8(st.apsSeq.Add(1))
		r = &reassembly{
			frame: ncp.Frame{DstShort: c.Dest, DstEndpoint: c.Aps.DstEndpoint, SrcEndpoint: c.Aps.SrcEndpoint, ClusterID: c.Aps.ClusterID,
				ProfileID: c.Aps.ProfileID, APSAck: true},
			parts: make([][]byte, count),
			sent:  make([]ezsp.MessageSent, count),
		}
		ss.fragments[key] = r
	} else {
		r = ss.fragments[key]
		if r == nil || index >= len(r.parts) || r.parts[index] != nil {
			ss.mu.Unlock()
			st.log.Debug().Uint16("dest", c.Dest).Uint8("aps_seq", c.Aps.Sequence).Int("fragment", index).Msg("fragment of no message in progress: refused")
			refuse(ezsp.StatusInvalidParameter)
			return
		}
	}
	ss.inFlight++
	aps := c.Aps
	aps.Sequence = key.seq
	r.parts[index] = append([]byte{}, c.Message...)
	r.sent[index] = ezsp.MessageSent{Type: ezsp.OutgoingDirect, Dest: c.Dest, Aps: aps, Tag: c.Tag, Message: []byte{}}
	r.got++
	// The window the stick is sending: finished .. finished+window-1 (or the last fragment).
	window := int(ss.configValue(ezsp.ConfigFragmentWindowSize))
	end := min(r.finished+max(window, 1), len(r.parts))
	complete := true
	for i := r.finished; i < end; i++ {
		complete = complete && r.parts[i] != nil
	}
	var confirm []ezsp.MessageSent
	last := complete && end == len(r.parts)
	if complete {
		confirm = append(confirm, r.sent[r.finished:end]...)
		r.finished = end
	}
	if last {
		delete(ss.fragments, key)
	}
	epoch := ss.epoch
	ss.mu.Unlock()

	ss.respond(req, ezsp.SendResponse{Status: v.StatusOf(ezsp.StatusOK), Sequence: key.seq}.Append(nil, v))
	switch {
	case last:
		fr := r.frame
		for _, p := range r.parts {
			fr.Payload = append(fr.Payload, p...)
		}
		ss.wg.Add(1)
		go func() {
			defer ss.wg.Done()
			err := ss.netSend(fr, true)
			for _, m := range confirm {
				ss.finishSend(epoch, m, v, err)
			}
		}()
	case complete:
		for _, m := range confirm {
			ss.finishSend(epoch, m, v, nil)
		}
	}
}

// configValue returns a configuration value as the host set it, else the NCP's default; ss.mu held.
func (ss *session) configValue(id uint8) uint16 {
	if val, ok := ss.config[id]; ok {
		return val
	}
	return ncpConfigDefaults[id]
}

// ConfigValue returns a configuration value of the session being served as the host set it, else the NCP's
// default (false: no session, or an id the NCP does not know).
func (s *Stick) ConfigValue(id uint8) (uint16, bool) {
	s.mu.Lock()
	ss := s.sess
	s.mu.Unlock()
	if ss == nil {
		return 0, false
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, known := ncpConfigDefaults[id]; !known {
		return 0, false
	}
	return ss.configValue(id), true
}
