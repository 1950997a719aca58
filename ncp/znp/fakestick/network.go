package fakestick

import (
	"encoding/binary"
	"time"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/ncp/znp"
)

// nvNwkKey is ZCD_NV_NWKKEY; hosts tell the NV struct packing by its length (24 on the ARM CC26x2/CC13x2).
const nvNwkKey uint16 = 0x0082

// packer lays out a Z-Stack NV struct as the CC26x2/CC13x2 compiler does: 16- and 32-bit members on even
// offsets, the whole padded to an even length.
type packer struct{ b []byte }

func (p *packer) align() {
	if len(p.b)%2 == 1 {
		p.b = append(p.b, 0)
	}
}
func (p *packer) u8(v ...uint8) { p.b = append(p.b, v...) }
func (p *packer) u16(v uint16) {
	p.align()
	p.b = binary.LittleEndian.AppendUint16(p.b, v)
}
func (p *packer) u32(v uint32) {
	p.align()
	p.b = binary.LittleEndian.AppendUint32(p.b, v)
}
func (p *packer) bytes() []byte {
	p.align()
	return p.b
}

// buildNIB is the network information base Z-Stack keeps in NV item 0x0021 once a network is formed.
func buildNIB(p sim.NetworkParams, coordinator uint64) []byte {
	var k packer
	k.u8(0, 5, 2, 64, 15, 64, 0, 30, 0, 0, 0, 1, 5, 1, 0x8F) // sequence … capability flags
	k.u16(7)                                                 // transaction persistence time
	k.u8(2, 5, 30)                                           // protocol version, route discovery/expiry time
	k.u16(0)                                                 // nwkDevAddress: the coordinator
	k.u8(p.Channel)
	k.u16(0) // nwkCoordAddress
	k.b = binary.LittleEndian.AppendUint64(k.b, coordinator)
	k.u16(p.PANID)
	k.u8(znp.StateCoordinator)
	k.u32(1 << p.Channel)
	k.u8(15, 15, 4, 0) // beacon order, superframe order, scan duration, battery life extension
	k.u32(1)
	k.u32(1)
	k.u8(0) // node depth
	k.b = binary.LittleEndian.AppendUint64(k.b, uint64(p.ExtendedPANID))
	k.u8(1)                                  // network key loaded
	k.b = append(k.b, make([]byte, 2*17)...) // two spare key descriptors
	k.u8(0, 0, 60, 3, 0, 1, 120, 10, 1)
	k.u16(0) // network manager
	k.u16(0) // total transmissions
	k.u8(0)  // update id
	return k.bytes()
}

// keyInfo is a network key descriptor (NWK_ACTIVE_KEY_INFO, NWK_ALTERN_KEY_INFO): sequence number and key.
func keyInfo(key [16]byte) []byte { return append([]byte{0}, key[:]...) }

// nwkKeyItem is ZCD_NV_NWKKEY as a CC26x2 stores it: the key descriptor, the frame counter, padding.
func nwkKeyItem(key [16]byte) []byte {
	var k packer
	k.u8(keyInfo(key)...)
	k.u32(0)
	return k.bytes()
}

// pumpNetworkEvents turns the network's events into callbacks for the current session.
func (s *Stick) pumpNetworkEvents() {
	defer s.wg.Done()
	events := s.net.Events()
	for {
		select {
		case <-s.stop:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			s.onNetworkEvent(ev)
		}
	}
}

func (s *Stick) onNetworkEvent(ev ncp.Event) {
	switch ev.Kind {
	case ncp.EventJoined, ncp.EventAnnounced:
		s.mu.Lock()
		s.eui[ev.Short] = ev.IEEE
		s.mu.Unlock()
	case ncp.EventFrame:
		if ev.Frame.SrcIEEE != 0 {
			s.mu.Lock()
			s.eui[ev.Frame.SrcShort] = ev.Frame.SrcIEEE
			s.mu.Unlock()
		}
	}
	ss := s.current()
	if ss == nil || !s.isUp() {
		s.log.Debug().Stringer("event", ev.Kind).Msg("network event while no host is attached: dropped")
		return
	}
	switch ev.Kind {
	case ncp.EventFrame:
		in := ev.Frame
		if in.ProfileID == 0 && in.DstEndpoint == 0 {
			s.zdoCallback(ss, in)
			return
		}
		s.mu.Lock()
		_, registered := s.endpoints[in.DstEndpoint]
		if in.DstEndpoint == 0xFF {
			_, registered = s.endpoints[ncp.CoordinatorEndpoint]
			in.DstEndpoint = ncp.CoordinatorEndpoint
		}
		s.mu.Unlock()
		if !registered {
			s.log.Debug().Uint8("endpoint", in.DstEndpoint).Msg("frame for an endpoint the host did not register: dropped")
			return
		}
		var wasBroadcast uint8
		if in.Broadcast {
			wasBroadcast = 1
		}
		m := znp.IncomingMsg{ClusterID: in.ClusterID, SrcAddr: uint64(in.SrcShort), SrcEP: in.SrcEndpoint, DstEP: in.DstEndpoint,
			WasBroadcast: wasBroadcast, LQI: in.LQI, Timestamp: uint32(time.Now().UnixMilli()), TransSeq: 0, Data: in.Payload,
			MacSrcAddr: in.SrcShort, Radius: 0x1D}
		if len(in.Payload) > znp.MaxDataLen-20 {
			m.SrcAddrMode = znp.AddrModeShort
			ss.callback(znp.AFIncomingMsgExt, m.AppendExt(nil))
			return
		}
		ss.callback(znp.AFIncomingMsg, m.Append(nil))
	case ncp.EventJoined:
		ss.callback(znp.ZDOTCDevInd, znp.TCDevInd{NwkAddr: ev.Short, IEEE: ev.IEEE, ParentAddr: ev.Parent}.Append(nil))
	case ncp.EventAnnounced:
		ss.callback(znp.ZDOEndDeviceAnnce, znp.EndDeviceAnnce{SrcAddr: ev.Short, NwkAddr: ev.Short, IEEE: ev.IEEE, Capabilities: ev.Capabilities}.Append(nil))
	case ncp.EventLeft:
		ss.callback(znp.ZDOLeaveInd, znp.LeaveInd{NwkAddr: ev.Short, IEEE: ev.IEEE}.Append(nil))
	case ncp.EventRadioReset:
		ss.reset(2) // the simulated coordinator reset: the stick resets
	}
}

// zdoCallback turns a ZDO response from the air into its ZDO_*_RSP callback: the source address, then the
// response without its sequence number (NWK_addr_rsp and IEEE_addr_rsp have no source address).
func (s *Stick) zdoCallback(ss *session, in ncp.Incoming) {
	if in.ClusterID&0x8000 == 0 || in.ClusterID&0x7F80 != 0 || len(in.Payload) < 1 {
		s.log.Debug().Uint16("cluster", in.ClusterID).Msg("ZDO frame not passed to the host")
		return
	}
	cmd := znp.Command{Subsystem: znp.SubZDO, ID: 0x80 | uint8(in.ClusterID&0x7F)}
	var data []byte
	if in.ClusterID != 0x8000 && in.ClusterID != 0x8001 {
		data = binary.LittleEndian.AppendUint16(data, in.SrcShort)
	}
	ss.callback(cmd, append(data, in.Payload[1:]...))
}
