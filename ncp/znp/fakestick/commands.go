package fakestick

import (
	"encoding/binary"
	"errors"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/znp"
	"github.com/otabridge/otabridge/zcl"
)

// More MT commands the fake stick answers (beyond those the driver sends).
var (
	sysNVReadExt     = znp.Command{Subsystem: znp.SubSYS, ID: 0x1C}
	sysNVWriteExt    = znp.Command{Subsystem: znp.SubSYS, ID: 0x1D}
	sysStackTune     = znp.Command{Subsystem: znp.SubSYS, ID: 0x0F}
	sysNVLengthNew   = znp.Command{Subsystem: znp.SubSYS, ID: 0x32} // new NV API (sysid/itemid/subid)
	sysNVReadNew     = znp.Command{Subsystem: znp.SubSYS, ID: 0x33}
	zdoExtRouteDisc  = znp.Command{Subsystem: znp.SubZDO, ID: 0x45}
	zdoExtAddGroup   = znp.Command{Subsystem: znp.SubZDO, ID: 0x4B}
	zdoExtFindGroup  = znp.Command{Subsystem: znp.SubZDO, ID: 0x4A}
	afInterPanCtl    = znp.Command{Subsystem: znp.SubAF, ID: 0x10}
	utilAssocGetAddr = znp.Command{Subsystem: znp.SubUTIL, ID: 0x4A}
	utilAssocRemove  = znp.Command{Subsystem: znp.SubUTIL, ID: 0x63} // Koenkk's firmware
	utilAssocAdd     = znp.Command{Subsystem: znp.SubUTIL, ID: 0x64} // Koenkk's firmware
)

// handle answers one frame from the host (on the reader goroutine; slow work goes to spawned goroutines).
func (ss *session) handle(f znp.Frame) {
	st := ss.st
	cmd := f.Command()
	st.count(cmd.String())
	if f.Type == znp.TypeAREQ {
		if cmd == znp.SysResetReq {
			ss.reset(0)
		}
		return
	}
	if f.Type != znp.TypeSREQ {
		return
	}
	switch cmd {
	case znp.SysPing:
		ss.respond(cmd, []byte{0x79, 0x07}) // SYS, AF, ZDO, SAPI, UTIL, DEBUG, APP, APP_CNF
	case znp.SysVersion:
		ss.respond(cmd, st.cfg.Version.Append(nil))
	case znp.SysGetExtAddr:
		ss.respond(cmd, binary.LittleEndian.AppendUint64(nil, uint64(st.cfg.EUI64)))
	case znp.SysNVRead, sysNVReadExt:
		ss.nvRead(cmd, f.Data)
	case znp.SysNVWrite, sysNVWriteExt:
		ss.nvWrite(cmd, f.Data)
	case znp.SysNVItemInit:
		m, err := znp.DecodeNVItemInit(f.Data)
		if err != nil {
			ss.rpcError(f, 3)
			return
		}
		st.mu.Lock()
		status := znp.StatusSuccess
		if _, ok := st.nv[m.ID]; !ok {
			v := make([]byte, m.Length)
			copy(v, m.Init)
			st.nv[m.ID] = v
			status = znp.StatusNVItemUninit // "created": Z-Stack answers NV_ITEM_UNINIT for a new item
		}
		st.mu.Unlock()
		ss.respond(cmd, []byte{status})
	case znp.SysNVDelete:
		if len(f.Data) < 2 {
			ss.rpcError(f, 4)
			return
		}
		st.mu.Lock()
		delete(st.nv, binary.LittleEndian.Uint16(f.Data))
		st.mu.Unlock()
		ss.respond(cmd, []byte{znp.StatusSuccess})
	case znp.SysNVLength:
		if len(f.Data) < 2 {
			ss.rpcError(f, 4)
			return
		}
		st.mu.Lock()
		n := len(st.nv[binary.LittleEndian.Uint16(f.Data)])
		st.mu.Unlock()
		ss.respond(cmd, binary.LittleEndian.AppendUint16(nil, uint16(n)))
	case sysNVLengthNew:
		ss.respond(cmd, []byte{0, 0, 0, 0}) // the new NV tables (TCLK, address manager) are empty
	case sysNVReadNew:
		ss.respond(cmd, []byte{znp.StatusNVItemUninit, 0})
	case sysStackTune:
		ss.respond(cmd, []byte{0})
	case znp.UtilGetDeviceInfo:
		st.mu.Lock()
		state := st.state
		st.mu.Unlock()
		ss.respond(cmd, znp.DeviceInfo{IEEE: st.cfg.EUI64, ShortAddr: 0, DeviceType: 0x07, State: state}.Append(nil))
	case znp.UtilLEDControl:
		ss.respond(cmd, []byte{znp.StatusSuccess})
	case znp.UtilAddrMgrNwkAddr:
		var ieee zcl.IEEE
		if len(f.Data) >= 2 {
			st.mu.Lock()
			ieee = st.eui[binary.LittleEndian.Uint16(f.Data)]
			st.mu.Unlock()
		}
		ss.respond(cmd, binary.LittleEndian.AppendUint64(nil, uint64(ieee)))
	case utilAssocGetAddr:
		ss.respond(cmd, make([]byte, 36)) // no association entry
	case znp.ZDOExtNwkInfo:
		ss.respond(cmd, ss.extNwkInfo().Append(nil))
	case znp.ZDOStartupFromApp:
		ss.startupFromApp()
	case znp.AppCnfAllowRejoinTC, znp.AppCnfBDBTCKeyExch:
		if len(f.Data) < 1 {
			ss.rpcError(f, 4)
			return
		}
		st.mu.Lock()
		st.policies[cmd.String()] = f.Data[0]
		st.mu.Unlock()
		ss.respond(cmd, []byte{znp.StatusSuccess})
	case znp.ZDOMsgCBRegister, zdoExtRouteDisc, afInterPanCtl, utilAssocRemove, utilAssocAdd:
		ss.respond(cmd, []byte{znp.StatusSuccess})
	case zdoExtAddGroup, zdoExtFindGroup:
		if len(f.Data) < 3 {
			ss.rpcError(f, 4)
			return
		}
		key := uint32(f.Data[0])<<16 | uint32(binary.LittleEndian.Uint16(f.Data[1:]))
		st.mu.Lock()
		_, found := st.groups[key]
		if cmd == zdoExtAddGroup {
			st.groups[key] = struct{}{}
		}
		st.mu.Unlock()
		switch {
		case cmd == zdoExtAddGroup:
			ss.respond(cmd, []byte{znp.StatusSuccess})
		case found: // status, group id, name length (no name)
			ss.respond(cmd, []byte{znp.StatusSuccess, f.Data[1], f.Data[2], 0})
		default:
			ss.respond(cmd, []byte{znp.StatusFailure, f.Data[1], f.Data[2], 0})
		}
	case znp.AppCnfBDBSetChan:
		if len(f.Data) < 5 {
			ss.rpcError(f, 4)
			return
		}
		if f.Data[0] == 1 {
			st.mu.Lock()
			st.primary = binary.LittleEndian.Uint32(f.Data[1:])
			st.mu.Unlock()
		}
		ss.respond(cmd, []byte{znp.StatusSuccess})
	case znp.AppCnfBDBStartComm:
		ss.startCommissioning(f.Data)
	case znp.AFRegister:
		m, err := znp.DecodeAFRegister(f.Data)
		if err != nil {
			ss.rpcError(f, 3)
			return
		}
		st.mu.Lock()
		_, dup := st.endpoints[m.Endpoint]
		if !dup {
			st.endpoints[m.Endpoint] = m
		}
		eps := st.sortedEndpoints()
		st.mu.Unlock()
		if dup {
			ss.respond(cmd, []byte{znp.StatusAFDuplicateEP})
			return
		}
		if r, ok := st.net.(endpointRegistrar); ok {
			r.SetCoordinatorEndpoints(eps)
		}
		ss.respond(cmd, []byte{znp.StatusSuccess})
	case znp.AFDataRequest:
		m, err := znp.DecodeDataRequest(f.Data)
		if err != nil {
			ss.rpcError(f, 3)
			return
		}
		ss.dataRequest(cmd, ncp.Frame{DstShort: m.DstAddr, DstEndpoint: m.DstEP, SrcEndpoint: m.SrcEP, ClusterID: m.ClusterID,
			Radius: m.Radius, APSAck: m.Options&znp.TxOptionAPSAck != 0, Payload: m.Data}, m.TransID)
	case znp.AFDataRequestExt:
		m, err := znp.DecodeDataRequestExt(f.Data)
		if err != nil || (m.AddrMode != znp.AddrModeShort && m.AddrMode != znp.AddrModeBroadcast && m.AddrMode != znp.AddrModeGroup) {
			ss.rpcError(f, 3)
			return
		}
		if m.AddrMode == znp.AddrModeGroup {
			// A group frame goes on the air as a NWK broadcast; the simulated devices are members of no group.
			ss.respond(cmd, []byte{znp.StatusSuccess})
			ss.callback(znp.AFDataConfirm, znp.DataConfirm{Status: znp.StatusSuccess, Endpoint: m.SrcEP, TransID: m.TransID}.Append(nil))
			return
		}
		ss.dataRequest(cmd, ncp.Frame{DstShort: uint16(m.DstAddr), DstEndpoint: m.DstEP, SrcEndpoint: m.SrcEP, ClusterID: m.ClusterID,
			Radius: m.Radius, APSAck: m.Options&znp.TxOptionAPSAck != 0, Payload: m.Data}, m.TransID)
	case znp.ZDOMgmtPermitJoin:
		ss.permitJoin(f.Data)
	default:
		if cmd.Subsystem == znp.SubZDO && cmd.ID < 0x40 {
			ss.zdoRequest(f)
			return
		}
		ss.rpcError(f, 2)
	}
}

// rpcError answers an SREQ the stick cannot handle (code 2 unknown command, 3 bad parameter, 4 bad length).
func (ss *session) rpcError(f znp.Frame, code uint8) {
	ss.st.log.Debug().Stringer("cmd", f.Command()).Uint8("code", code).Msg("RPC error")
	ss.write(znp.RPCError.Response(znp.RPCErrorInfo{Code: code, CMD0: f.CMD0(), CMD1: f.ID}.Append(nil)))
}

// nvRead answers SYS_OSAL_NV_READ (u8 offset) and _EXT (u16 offset).
func (ss *session) nvRead(cmd znp.Command, b []byte) {
	need := 3
	if cmd == sysNVReadExt {
		need = 4
	}
	if len(b) < need {
		ss.write(znp.RPCError.Response(znp.RPCErrorInfo{Code: 4, CMD0: byte(znp.TypeSREQ)<<5 | byte(cmd.Subsystem), CMD1: cmd.ID}.Append(nil)))
		return
	}
	id := binary.LittleEndian.Uint16(b)
	off := int(b[2])
	if cmd == sysNVReadExt {
		off = int(binary.LittleEndian.Uint16(b[2:]))
	}
	ss.st.mu.Lock()
	v, ok := ss.st.nv[id]
	ss.st.mu.Unlock()
	switch {
	case !ok:
		ss.respond(cmd, znp.NVValue{Status: znp.StatusInvalidParam}.Append(nil))
	case off > len(v):
		ss.respond(cmd, znp.NVValue{Status: znp.StatusInvalidParam}.Append(nil))
	default:
		v = v[off:]
		if len(v) > 244 {
			v = v[:244]
		}
		ss.respond(cmd, znp.NVValue{Status: znp.StatusSuccess, Value: v}.Append(nil))
	}
}

// nvWrite answers SYS_OSAL_NV_WRITE (u8 offset and length) and _EXT (u16 offset and length).
func (ss *session) nvWrite(cmd znp.Command, b []byte) {
	var id uint16
	var off int
	var value []byte
	if cmd == sysNVWriteExt {
		if len(b) < 6 || len(b) < 6+int(binary.LittleEndian.Uint16(b[4:])) {
			ss.respond(cmd, []byte{znp.StatusInvalidParam})
			return
		}
		id, off = binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:]))
		value = b[6 : 6+int(binary.LittleEndian.Uint16(b[4:]))]
	} else {
		m, err := znp.DecodeNVWrite(b)
		if err != nil {
			ss.respond(cmd, []byte{znp.StatusInvalidParam})
			return
		}
		id, off, value = m.ID, int(m.Offset), m.Value
	}
	st := ss.st
	st.mu.Lock()
	cur, ok := st.nv[id]
	status := znp.StatusSuccess
	switch {
	case !ok:
		status = znp.StatusNVItemUninit
	case off+len(value) > len(cur):
		if off == 0 {
			// Z-Stack 3 items are variable length when written whole.
			st.nv[id] = append([]byte(nil), value...)
		} else {
			status = znp.StatusNVBadItemLen
		}
	default:
		nv := append([]byte(nil), cur...)
		copy(nv[off:], value)
		st.nv[id] = nv
	}
	st.mu.Unlock()
	ss.respond(cmd, []byte{status})
}

func (ss *session) extNwkInfo() znp.ExtNwkInfo {
	st := ss.st
	if !st.isUp() {
		return znp.ExtNwkInfo{ShortAddr: 0xFFFE, DevState: znp.StateHold, PANID: 0xFFFF, ParentAddr: 0xFFFE}
	}
	p := st.networkParams()
	return znp.ExtNwkInfo{ShortAddr: 0, DevState: znp.StateCoordinator, PANID: p.PANID, ParentAddr: 0xFFFE, ExtendedPANID: p.ExtendedPANID,
		Channel: p.Channel}
}

// startupFromApp resumes the network in NV (ZDO_STARTUP_FROM_APP): 0 restored, 2 not started (no network).
func (ss *session) startupFromApp() {
	st := ss.st
	st.mu.Lock()
	_, formed := st.nv[znp.NVNIB]
	up := st.state == znp.StateCoordinator
	st.mu.Unlock()
	switch {
	case up:
		ss.respond(znp.ZDOStartupFromApp, []byte{0})
	case !formed:
		ss.respond(znp.ZDOStartupFromApp, []byte{2})
	default:
		ss.respond(znp.ZDOStartupFromApp, []byte{0})
		epoch := ss.currentEpoch()
		ss.spawn(func() { ss.bringUp(epoch, false) })
	}
}

// startCommissioning runs BDB commissioning; formation (mode 0x04) forms the network in NV.
func (ss *session) startCommissioning(b []byte) {
	if len(b) < 1 {
		ss.respond(znp.AppCnfBDBStartComm, []byte{znp.StatusInvalidParam})
		return
	}
	ss.respond(znp.AppCnfBDBStartComm, []byte{znp.StatusSuccess})
	mode := b[0]
	epoch := ss.currentEpoch()
	ss.spawn(func() {
		if mode&0x04 == 0 {
			// steering and the rest: nothing to do on a formed coordinator
			ss.callback(znp.AppCnfBDBCommNotif, []byte{0, mode, 0})
			return
		}
		ss.callback(znp.AppCnfBDBCommNotif, []byte{1, mode, 0}) // in progress
		ss.bringUp(epoch, true)
	})
}

// bringUp starts the coordinator on the network in NV: state changes 8 and 9, the network behind the stick
// moved onto it and started.
func (ss *session) bringUp(epoch uint64, forming bool) {
	st := ss.st
	if ss.currentEpoch() != epoch {
		return
	}
	ss.callback(znp.ZDOStateChangeInd, []byte{znp.StateCoordStarting})
	p := st.networkParams()
	if f, ok := st.net.(networkFormer); ok {
		if err := f.Form(p); err != nil {
			st.log.Error().Err(err).Msg("network behind the stick refused the network in NV")
			if forming {
				ss.callback(znp.AppCnfBDBCommNotif, []byte{8, 0x04, 0}) // formation failure
			}
			return
		}
	}
	st.mu.Lock()
	started := st.netStarted
	st.mu.Unlock()
	if !started {
		if _, err := st.net.Start(ss.ctx); err != nil {
			st.log.Error().Err(err).Msg("network behind the stick failed to start")
			return
		}
		st.mu.Lock()
		st.netStarted = true
		st.mu.Unlock()
	}
	st.mu.Lock()
	if forming {
		st.nv[znp.NVNIB] = buildNIB(p, uint64(st.cfg.EUI64))
		key := keyInfo(p.NetworkKey)
		st.nv[znp.NVActiveKeyInfo] = key
		st.nv[znp.NVAltKeyInfo] = key
		st.nv[nvNwkKey] = nwkKeyItem(p.NetworkKey)
	}
	st.state = znp.StateCoordinator
	st.mu.Unlock()
	if ss.currentEpoch() != epoch {
		return
	}
	ss.callback(znp.ZDOStateChangeInd, []byte{znp.StateCoordinator})
	if forming {
		ss.callback(znp.AppCnfBDBCommNotif, []byte{0, 0x04, 0}) // success
	}
}

// dataRequest answers AF_DATA_REQUEST(_EXT) at once and reports the network's verdict in AF_DATA_CONFIRM.
func (ss *session) dataRequest(cmd znp.Command, fr ncp.Frame, trans uint8) {
	st := ss.st
	if !st.isUp() {
		ss.respond(cmd, []byte{0xC2}) // NWK_INVALID_REQUEST: not on a network
		return
	}
	fr.ProfileID = zcl.ProfileHomeAutomation
	st.mu.Lock()
	if ep, ok := st.endpoints[fr.SrcEndpoint]; ok {
		fr.ProfileID = ep.ProfileID
	}
	st.mu.Unlock()
	fr.Payload = append([]byte(nil), fr.Payload...)
	ss.respond(cmd, []byte{znp.StatusSuccess})
	epoch := ss.currentEpoch()
	ss.spawn(func() {
		err := st.net.Send(ss.ctx, fr)
		if ss.currentEpoch() != epoch || ss.ctx.Err() != nil {
			return
		}
		status := znp.StatusSuccess
		if err != nil {
			status = znp.StatusMACNoAck
			var se *ncp.SendError
			if fr.APSAck && errors.As(err, &se) {
				status = znp.StatusAPSNoAck
			}
			st.log.Debug().Err(err).Uint16("dest", fr.DstShort).Msg("send failed in the network")
		}
		ss.callback(znp.AFDataConfirm, znp.DataConfirm{Status: status, Endpoint: fr.SrcEndpoint, TransID: trans}.Append(nil))
	})
}

// permitJoin answers ZDO_MGMT_PERMIT_JOIN_REQ: the network opens (or closes), then the ZDO response.
func (ss *session) permitJoin(b []byte) {
	st := ss.st
	m, err := znp.DecodePermitJoinReq(b)
	if err != nil {
		ss.respond(znp.ZDOMgmtPermitJoin, []byte{znp.StatusInvalidParam})
		return
	}
	if !st.isUp() {
		ss.respond(znp.ZDOMgmtPermitJoin, []byte{0xC2})
		return
	}
	ss.respond(znp.ZDOMgmtPermitJoin, []byte{znp.StatusSuccess})
	ss.spawn(func() {
		if err := st.net.PermitJoin(ss.ctx, m.Duration); err != nil {
			st.log.Warn().Err(err).Msg("permit join in the network failed")
		}
		ss.callback(znp.ZDOPermitJoinInd, []byte{m.Duration})
		ss.callback(znp.ZDOMgmtPermitRsp, []byte{0, 0, znp.StatusSuccess})
	})
}

// zdoRequest turns a ZDO_*_REQ command into the ZDO frame on the air; the answer comes back as the matching
// ZDO_*_RSP callback (pumpNetworkEvents). NWK_addr_req and IEEE_addr_req carry no destination prefix.
func (ss *session) zdoRequest(f znp.Frame) {
	st := ss.st
	cluster := uint16(f.ID)
	var dst uint16
	var payload []byte
	switch cluster {
	case 0x0000: // NWK_addr_req: IEEE, request type, start index (broadcast)
		dst, payload = ncp.BroadcastRxOnWhenIdle, f.Data
	case 0x0001: // IEEE_addr_req: short address of interest, request type, start index
		if len(f.Data) < 2 {
			ss.rpcError(f, 4)
			return
		}
		dst, payload = binary.LittleEndian.Uint16(f.Data), f.Data
	default:
		if len(f.Data) < 2 {
			ss.rpcError(f, 4)
			return
		}
		dst, payload = binary.LittleEndian.Uint16(f.Data), f.Data[2:]
	}
	if !st.isUp() {
		ss.respond(f.Command(), []byte{0xC2})
		return
	}
	seq := uint8(st.nextZDOSeq())
	fr := ncp.Frame{DstShort: dst, ProfileID: 0, ClusterID: cluster, Payload: append([]byte{seq}, payload...)}
	ss.respond(f.Command(), []byte{znp.StatusSuccess})
	ss.spawn(func() {
		if err := st.net.Send(ss.ctx, fr); err != nil {
			st.log.Debug().Err(err).Uint16("dest", dst).Uint16("cluster", cluster).Msg("ZDO request not delivered")
		}
	})
}

func (s *Stick) nextZDOSeq() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zdoSeq++
	return s.zdoSeq
}
