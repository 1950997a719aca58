package fakestick

import (
	"encoding/binary"
	"slices"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/ncp/ezsp/ash"
	"github.com/otabridge/otabridge/ncp/sim"
	"github.com/otabridge/otabridge/zcl"
)

// networkFormer is a network behind the stick that the host's formNetwork/networkInit moves (ncp/sim's
// Network): the devices hear the coordinator only on the network it formed.
type networkFormer interface {
	Form(p sim.NetworkParams) error
}

// endpointRegistrar is a network whose coordinator answers ZDO descriptor requests from the endpoints the
// host registered with addEndpoint.
type endpointRegistrar interface {
	SetCoordinatorEndpoints(eps []sim.EndpointDesc)
}

// formNetwork puts the network behind the stick on the network in NVRAM (channel, PAN ids, key).
func (s *Stick) formNetwork() error {
	f, ok := s.net.(networkFormer)
	if !ok {
		return nil
	}
	s.mu.Lock()
	p := s.nv.network
	key := s.nv.networkKey
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return f.Form(sim.NetworkParams{Channel: p.RadioChannel, PANID: p.PANID, ExtendedPANID: p.ExtendedPANID, NetworkKey: key})
}

func (s *Stick) setCoordinatorEndpoints(eps []ezsp.AddEndpoint) {
	r, ok := s.net.(endpointRegistrar)
	if !ok {
		return
	}
	out := make([]sim.EndpointDesc, len(eps))
	for i, e := range eps {
		out[i] = sim.EndpointDesc{Endpoint: e.Endpoint, ProfileID: e.ProfileID, DeviceID: e.DeviceID, DeviceVersion: e.DeviceVersion,
			InClusters: e.InputClusters, OutClusters: e.OutputClusters}
	}
	r.SetCoordinatorEndpoints(out)
}

// endpointList returns the registered endpoints in endpoint order; ss.mu held.
func (ss *session) endpointList() []ezsp.AddEndpoint {
	eps := make([]ezsp.AddEndpoint, 0, len(ss.endpoints))
	for _, e := range ss.endpoints {
		eps = append(eps, e)
	}
	slices.SortFunc(eps, func(a, b ezsp.AddEndpoint) int { return int(a.Endpoint) - int(b.Endpoint) })
	return eps
}

// multicastTableSize is EZSP_CONFIG_MULTICAST_TABLE_SIZE as configured; ss.mu held.
func (ss *session) multicastTableSize() uint16 {
	if c, set := ss.config[configMulticastTableSize]; set {
		return c
	}
	return ncpConfigDefaults[configMulticastTableSize]
}

const configMulticastTableSize uint8 = 0x06

func (ss *session) countUp(i int) { ss.countAdd(i, 1) }

// countAdd adds n to counter i; EmberZNet's counters saturate at 0xFFFF.
func (ss *session) countAdd(i, n int) {
	if n <= 0 {
		return
	}
	ss.mu.Lock()
	ss.counters[i] = uint16(min(int(ss.counters[i])+n, 0xFFFF))
	ss.mu.Unlock()
}

// countMAC counts what one unicast cost the MAC, as the network behind the stick reports it (a network that
// reports nothing counts one clean transmission): each frame (fragment) transmitted once, its retries, and
// for a failed send one frame the MAC gave up on (the network does not say on which hop a send failed; the
// fake counts it as its own).
func (ss *session) countMAC(st ncp.SendStats, failed bool) {
	frames := max(st.Attempts-st.MACRetries, 1)
	if failed {
		ss.countUp(ezsp.CounterMACTxUnicastFailed)
		frames--
	}
	ss.countAdd(ezsp.CounterMACTxUnicastSuccess, frames)
	ss.countAdd(ezsp.CounterMACTxUnicastRetry, st.MACRetries)
	ss.countAdd(ezsp.CounterPHYCCAFail, st.CCAFailures)
}

// slStatus is an sl_Status value as the security-manager commands carry it in every version.
func slStatus(_ ezsp.Version, k ezsp.StatusKind) uint32 { return ezsp.WideVersion.StatusOf(k).Value }

// handleMore answers the commands beyond otabridge's own driver's set (those other hosts send). It reports
// whether the frame id was one of them.
func (ss *session) handleMore(f ezsp.Frame, cmd any, v ezsp.Version) bool {
	st := ss.st
	status := func(k ezsp.StatusKind) { ss.respond(f, ezsp.AppendStatusParams(nil, v, v.StatusOf(k))) }
	sl := func(k ezsp.StatusKind) { ss.respond(f, binary.LittleEndian.AppendUint32(nil, slStatus(v, k))) }
	switch f.FrameID {
	case ezsp.IDGetExtendedValue:
		q := cmd.(ezsp.ExtendedValueQuery)
		if q.ValueID != ezsp.ExtValueEndpointFlags {
			ss.respond(f, ezsp.AppendExtendedValue(nil, v, v.EzspStatusOf(ezsp.EzspErrorInvalidID, ezsp.StatusInvalidParameter), nil))
			return true
		}
		ss.mu.Lock()
		_, have := ss.endpoints[uint8(q.Characteristics)]
		ss.mu.Unlock()
		if !have {
			// The NCP answers with the two-byte value it has (zero) and an error status.
			ss.respond(f, ezsp.AppendExtendedValue(nil, v, v.EzspStatusOf(ezsp.EzspErrorInvalidValue, ezsp.StatusInvalidParameter), []byte{0, 0}))
			return true
		}
		// EZSP_ENDPOINT_ENABLED.
		ss.respond(f, ezsp.AppendExtendedValue(nil, v, v.EzspStatusOf(ezsp.EzspSuccess, ezsp.StatusOK), []byte{0x01, 0x00}))
	case ezsp.IDSetManufacturerCode:
		ss.mu.Lock()
		ss.manufacturer = cmd.(uint16)
		ss.mu.Unlock()
		ss.respond(f, nil)
	case ezsp.IDGetMulticastTableEntry:
		i := cmd.(uint8)
		ss.mu.Lock()
		inRange := uint16(i) < ss.multicastTableSize()
		e := ss.multicast[i]
		ss.mu.Unlock()
		if !inRange {
			ss.respond(f, append(ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusIndexOutOfRange)), 0, 0, 0, 0))
			return true
		}
		// EmberMulticastTableEntry: multicastId, endpoint (0: unused), networkIndex.
		ss.respond(f, append(binary.LittleEndian.AppendUint16(ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusOK)), e.MulticastID), e.Endpoint, e.NetworkIndex))
	case ezsp.IDSetMulticastTableEntry:
		e := cmd.(ezsp.MulticastTableEntry)
		ss.mu.Lock()
		inRange := uint16(e.Index) < ss.multicastTableSize()
		if inRange {
			ss.multicast[e.Index] = e
		}
		ss.mu.Unlock()
		if !inRange {
			status(ezsp.StatusIndexOutOfRange)
			return true
		}
		status(ezsp.StatusOK)
	case ezsp.IDClearKeyTable:
		st.mu.Lock()
		clear(st.nv.keyTable)
		st.mu.Unlock()
		status(ezsp.StatusOK)
	case ezsp.IDClearTransientLinkKeys:
		ss.mu.Lock()
		clear(ss.transient)
		ss.mu.Unlock()
		ss.respond(f, nil)
	case ezsp.IDGetNetworkKeyInfo:
		st.mu.Lock()
		info := ezsp.NetworkKeyInfo{KeySet: st.nv.haveNetworkKey && st.nv.network != nil, KeySequence: st.nv.keySequence,
			KeyFrameCounter: st.nv.nwkFrameCounter}
		st.mu.Unlock()
		ss.respond(f, info.Append(binary.LittleEndian.AppendUint32(nil, 0)))
	case ezsp.IDGetCurrentSecurityState:
		// EmberCurrentSecurityState: bitmask (GLOBAL_LINK_KEY | HAVE_TRUST_CENTER_LINK_KEY), trust center EUI64.
		if !ss.isUp() {
			ss.respond(f, append(ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusNotJoined)), make([]byte, 10)...))
			return true
		}
		b := binary.LittleEndian.AppendUint16(ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusOK)), 0x0014)
		ss.respond(f, binary.LittleEndian.AppendUint64(b, uint64(st.eui64())))
	case ezsp.IDExportKey:
		ctx := cmd.(ezsp.ExportKey).Context
		r := ezsp.ExportKeyResponse{Context: ctx}
		st.mu.Lock()
		switch ctx.CoreKeyType {
		case ezsp.SecManKeyNetwork:
			if st.nv.haveNetworkKey && ctx.KeyIndex == 0 {
				r.Key = st.nv.networkKey
			} else {
				r.Status = slStatus(v, ezsp.StatusNotFound)
			}
		case ezsp.SecManKeyTCLink:
			r.Key = st.nv.tcLinkKey
		case ezsp.SecManKeyAppLink:
			if int(ctx.KeyIndex) < len(st.nv.keyTable) && st.nv.keyTable[ctx.KeyIndex].set {
				r.Key = st.nv.keyTable[ctx.KeyIndex].key
				r.Context.EUI64 = st.nv.keyTable[ctx.KeyIndex].eui64
			} else {
				r.Status = slStatus(v, ezsp.StatusNotFound)
			}
		default:
			r.Status = slStatus(v, ezsp.StatusInvalidParameter)
		}
		st.mu.Unlock()
		ss.respond(f, r.Append(nil, v))
	case ezsp.IDExportLinkKeyByIndex:
		i := cmd.(uint8)
		r := ezsp.ExportLinkKeyResponse{Context: ezsp.SecManContext{CoreKeyType: ezsp.SecManKeyAppLink, KeyIndex: i}}
		st.mu.Lock()
		switch {
		case int(i) >= len(st.nv.keyTable):
			r.Status = slStatus(v, ezsp.StatusIndexOutOfRange)
		case !st.nv.keyTable[i].set:
			r.Status = slStatus(v, ezsp.StatusNotFound)
		default:
			r.Key, r.Context.EUI64 = st.nv.keyTable[i].key, st.nv.keyTable[i].eui64
		}
		st.mu.Unlock()
		ss.respond(f, r.Append(nil, v))
	case ezsp.IDGetApsKeyInfo:
		ctx := cmd.(ezsp.ExportKey).Context
		r := ezsp.ApsKeyInfoResponse{Context: ctx, Status: slStatus(v, ezsp.StatusNotFound)}
		st.mu.Lock()
		if ctx.CoreKeyType == ezsp.SecManKeyTCLink {
			r.Status = 0
		}
		for _, e := range st.nv.keyTable {
			if ctx.CoreKeyType == ezsp.SecManKeyAppLink && e.set && e.eui64 == ctx.EUI64 {
				r.Status = 0
			}
		}
		st.mu.Unlock()
		ss.respond(f, r.Append(nil, v))
	case ezsp.IDImportLinkKey:
		c := cmd.(ezsp.ImportLinkKey)
		st.mu.Lock()
		inRange := int(c.Index) < len(st.nv.keyTable)
		if inRange {
			st.nv.keyTable[c.Index] = keyTableEntry{set: true, eui64: c.EUI64, key: c.Key}
		}
		st.mu.Unlock()
		if !inRange {
			sl(ezsp.StatusIndexOutOfRange)
			return true
		}
		sl(ezsp.StatusOK)
	case ezsp.IDImportKey:
		c := cmd.(ezsp.ImportKey)
		var code uint32
		st.mu.Lock()
		switch c.Context.CoreKeyType {
		case ezsp.SecManKeyNetwork:
			st.nv.networkKey, st.nv.haveNetworkKey = c.Key, true
		case ezsp.SecManKeyTCLink:
			st.nv.tcLinkKey = c.Key
		case ezsp.SecManKeyAppLink:
			if int(c.Context.KeyIndex) < len(st.nv.keyTable) {
				st.nv.keyTable[c.Context.KeyIndex] = keyTableEntry{set: true, eui64: c.Context.EUI64, key: c.Key}
			} else {
				code = slStatus(v, ezsp.StatusIndexOutOfRange)
			}
		default:
			code = slStatus(v, ezsp.StatusInvalidParameter)
		}
		st.mu.Unlock()
		ss.respond(f, c.Context.Append(binary.LittleEndian.AppendUint32(nil, code)))
	case ezsp.IDEraseKeyTableEntry:
		i := cmd.(uint8)
		st.mu.Lock()
		inRange := int(i) < len(st.nv.keyTable)
		if inRange {
			st.nv.keyTable[i] = keyTableEntry{}
		}
		st.mu.Unlock()
		if !inRange {
			status(ezsp.StatusIndexOutOfRange)
			return true
		}
		status(ezsp.StatusOK)
	case ezsp.IDSetRadioPower:
		st.mu.Lock()
		if st.nv.network != nil {
			st.nv.network.RadioTxPower = int8(cmd.(uint8))
		}
		st.mu.Unlock()
		status(ezsp.StatusOK)
	case ezsp.IDSetRadioIeee802154CcaMode:
		if cmd.(uint8) > 3 {
			status(ezsp.StatusInvalidParameter)
			return true
		}
		status(ezsp.StatusOK)
	case ezsp.IDSetLogicalAndRadioChannel:
		ch := cmd.(uint8)
		if ch < 11 || ch > 26 {
			status(ezsp.StatusInvalidParameter)
			return true
		}
		st.mu.Lock()
		if st.nv.network != nil {
			st.nv.network.RadioChannel = ch
		}
		st.mu.Unlock()
		if ss.isUp() {
			if err := st.formNetwork(); err != nil {
				st.log.Warn().Err(err).Uint8("channel", ch).Msg("network behind the stick refused the channel change")
				status(ezsp.StatusFail)
				return true
			}
		}
		status(ezsp.StatusOK)
	case ezsp.IDReadAndClearCounters:
		ss.mu.Lock()
		out := make([]byte, 0, 2*ezsp.EmberCounterCount)
		for _, c := range ss.counters {
			out = binary.LittleEndian.AppendUint16(out, c)
		}
		ss.counters = [ezsp.EmberCounterCount]uint16{}
		ss.mu.Unlock()
		ss.respond(f, out)
	case ezsp.IDSetExtendedTimeout:
		if v.Wide() {
			sl(ezsp.StatusOK)
		} else {
			ss.respond(f, nil)
		}
	case ezsp.IDLookupNodeIDByEUI64:
		ieee := cmd.(zcl.IEEE)
		id := uint16(0xFFFF) // EMBER_NULL_NODE_ID: not in the address table
		if short, ok := st.eui.Short(ieee); ok {
			id = short
		}
		if ieee == st.eui64() {
			id = 0x0000
		}
		ss.respond(f, binary.LittleEndian.AppendUint16(nil, id))
	case ezsp.IDSendMulticast:
		c := cmd.(ezsp.SendMulticast)
		ss.send(f, v, ncp.Frame{DstShort: 0xFFFD, DstEndpoint: 0xFF, SrcEndpoint: c.Aps.SrcEndpoint, ClusterID: c.Aps.ClusterID,
			ProfileID: c.Aps.ProfileID, Radius: c.Hops, Payload: c.Message}, c.Aps, c.Tag, ezsp.OutgoingMulticast)
	case ezsp.IDSendRawMessage:
		// Inter-PAN frames: nothing in the simulated network listens to them; the radio sent it.
		if !ss.isUp() {
			status(ezsp.StatusNetworkDown)
			return true
		}
		status(ezsp.StatusOK)
	case ezsp.IDBroadcastNextNetworkKey:
		if !ss.isUp() {
			status(ezsp.StatusNetworkDown)
			return true
		}
		status(ezsp.StatusOK)
	case ezsp.IDBroadcastNetworkKeySwitch:
		if !ss.isUp() {
			status(ezsp.StatusNetworkDown)
			return true
		}
		st.mu.Lock()
		st.nv.keySequence++
		st.mu.Unlock()
		status(ezsp.StatusOK)
	case ezsp.IDGetTokenCount:
		// No token interface on this NCP build: hosts then skip token backup.
		ss.respond(f, ezsp.AppendTokenCount(nil, v, 0))
	case ezsp.IDGetTokenInfo:
		ss.respond(f, append(ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusLibraryNotPresent)), make([]byte, 8)...))
	case ezsp.IDGetTokenData:
		ss.respond(f, append(ezsp.AppendStatusParams(nil, v, v.StatusOf(ezsp.StatusLibraryNotPresent)), 0, 0, 0, 0))
	case ezsp.IDSetTokenData:
		status(ezsp.StatusLibraryNotPresent)
	case ezsp.IDTokenFactoryReset:
		// Erases the stack tokens (the network and its keys) and reboots: no answer, RSTACK instead.
		st.mu.Lock()
		st.nv = nvram{keyTable: make([]keyTableEntry, keyTableSize)}
		st.mu.Unlock()
		ss.reset(ash.ResetSoftware, true)
	case ezsp.IDResetNode:
		// The NCP reboots: no answer, RSTACK instead; its NVRAM stays.
		ss.reset(ash.ResetSoftware, true)
	case ezsp.IDCallback:
		// Callbacks reach a UART host unasked; the SPI-era poll has nothing to return.
		ss.respond(f, nil)
	default:
		return false
	}
	return true
}
