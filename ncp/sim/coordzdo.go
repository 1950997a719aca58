package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// DefaultCoordinatorManufacturerCode is the manufacturer code in the coordinator's node descriptor
// (Silicon Labs, as an EmberZNet NCP reports it) until SetCoordinatorManufacturerCode changes it.
const DefaultCoordinatorManufacturerCode uint16 = 0x1049

// zdoRequest is a decoded ZDO request (ZigBee spec 2.4.3) the coordinator answers itself.
type zdoRequest struct {
	Cluster     uint16
	Seq         uint8
	NWKAddr     uint16   // NWKAddrOfInterest (IEEE_addr, Node_Desc, Simple_Desc, Active_EP, Match_Desc)
	IEEE        zcl.IEEE // IEEEAddr (NWK_addr_req)
	RequestType uint8    // NWK_addr_req, IEEE_addr_req: 0 single device, 1 extended (with associated devices)
	StartIndex  uint8    // NWK_addr_req, IEEE_addr_req
	Endpoint    uint8    // Simple_Desc_req
	ProfileID   uint16   // Match_Desc_req
	InClusters  []uint16 // Match_Desc_req
	OutClusters []uint16 // Match_Desc_req
	Duration    uint8    // Mgmt_Permit_Joining_req: seconds (0 closes, 255 until closed)
}

var errZDOShort = errors.New("truncated")

// decodeZDORequest reads the payload of a ZDO request (transaction sequence number first) of cluster. Any
// request cluster decodes at least its sequence number; the layouts of NWK_addr_req 0x0000, IEEE_addr_req
// 0x0001, Node_Desc_req 0x0002, Simple_Desc_req 0x0004, Active_EP_req 0x0005, Match_Desc_req 0x0006 and
// Mgmt_Permit_Joining_req 0x0036 are checked. It never panics.
func decodeZDORequest(cluster uint16, p []byte) (zdoRequest, error) {
	r := zdoRequest{Cluster: cluster}
	if cluster&0x8000 != 0 {
		return r, fmt.Errorf("ZDO cluster 0x%04x is a response, not a request", cluster)
	}
	need := map[uint16]int{
		zdoNWKAddrReq: 11, zdoIEEEAddrReq: 5, zdoNodeDescReq: 3, zdoSimpleDescReq: 4, zdoActiveEPReq: 3,
		zdoMatchDescReq: 7, zdoMgmtPermitReq: 3, zdoMgmtLqiReq: 2,
	}[cluster]
	if len(p) < max(need, 1) {
		return r, fmt.Errorf("%s: %d bytes, want at least %d: %w", kindOf(0, cluster, nil), len(p), max(need, 1), errZDOShort)
	}
	r.Seq = p[0]
	switch cluster {
	case zdoNWKAddrReq:
		r.IEEE = zcl.IEEE(binary.LittleEndian.Uint64(p[1:]))
		r.RequestType, r.StartIndex = p[9], p[10]
	case zdoIEEEAddrReq:
		r.NWKAddr = binary.LittleEndian.Uint16(p[1:])
		r.RequestType, r.StartIndex = p[3], p[4]
	case zdoNodeDescReq, zdoActiveEPReq:
		r.NWKAddr = binary.LittleEndian.Uint16(p[1:])
	case zdoSimpleDescReq:
		r.NWKAddr = binary.LittleEndian.Uint16(p[1:])
		r.Endpoint = p[3]
	case zdoMatchDescReq:
		r.NWKAddr = binary.LittleEndian.Uint16(p[1:])
		r.ProfileID = binary.LittleEndian.Uint16(p[3:])
		in, rest, ok := readClusterList(p[5:])
		if !ok {
			return r, fmt.Errorf("zdo.match_desc_req: input cluster list: %w", errZDOShort)
		}
		out, _, ok := readClusterList(rest)
		if !ok {
			return r, fmt.Errorf("zdo.match_desc_req: output cluster list: %w", errZDOShort)
		}
		r.InClusters, r.OutClusters = in, out
	case zdoMgmtPermitReq:
		r.Duration = p[1]
	case zdoMgmtLqiReq:
		r.StartIndex = p[1]
	}
	return r, nil
}

// SetCoordinatorManufacturerCode sets the manufacturer code of the coordinator's node descriptor (EZSP
// setManufacturerCode); default DefaultCoordinatorManufacturerCode.
func (n *Network) SetCoordinatorManufacturerCode(code uint16) {
	n.mu.Lock()
	n.coordMfr = code
	n.mu.Unlock()
}

func (n *Network) coordinatorEndpoints() ([]EndpointDesc, uint16) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.coordEPs, n.coordMfr
}

// children returns the devices in the coordinator's network that joined through the coordinator itself, in
// configuration order.
func (n *Network) children() []*Device {
	var out []*Device
	for _, d := range n.devices {
		if d.inNetwork() && d.parent == 0x0000 {
			out = append(out, d)
		}
	}
	return out
}

// childEndDevice returns the sleepy child of the coordinator with that short address or IEEE address.
func (n *Network) childEndDevice(short uint16, ieee zcl.IEEE) *Device {
	for _, d := range n.children() {
		if d.sleepy() && ((ieee == 0 && d.cfg.NWK == short) || (ieee != 0 && d.cfg.IEEE == ieee)) {
			return d
		}
	}
	return nil
}

// coordinatorAnswer is the coordinator stack's answer to a ZDO request addressed to it (ZigBee spec 2.4.4):
// the response cluster and payload (sequence number first), or ok false when the stack stays silent (a
// broadcast request it has nothing to say to). Runs on the clock goroutine.
func (n *Network) coordinatorAnswer(r zdoRequest, broadcast bool) (cluster uint16, payload []byte, ok bool) {
	cluster = r.Cluster | 0x8000
	self := r.NWKAddr == 0x0000 || r.NWKAddr >= 0xFFF8
	eps, mfr := n.coordinatorEndpoints()
	// descriptorError is the status for a descriptor request about another node: the coordinator keeps no
	// descriptors of its children.
	descriptorError := func() uint8 {
		if n.childEndDevice(r.NWKAddr, 0) != nil {
			return zdoStatusNoDesc
		}
		return zdoStatusNotFound
	}
	addr := func(st uint8, a uint16) []byte { return []byte{r.Seq, st, byte(a), byte(a >> 8)} }
	var rsp []byte
	switch r.Cluster {
	case zdoNWKAddrReq, zdoIEEEAddrReq:
		var who *Device
		switch {
		case r.Cluster == zdoNWKAddrReq && r.IEEE == n.cfg.CoordinatorIEEE, r.Cluster == zdoIEEEAddrReq && r.NWKAddr == 0x0000:
		case r.Cluster == zdoNWKAddrReq:
			if who = n.childEndDevice(0, r.IEEE); who == nil {
				rsp = []byte{r.Seq, zdoStatusNotFound}
			}
		default:
			if who = n.childEndDevice(r.NWKAddr, 0); who == nil {
				rsp = []byte{r.Seq, zdoStatusNotFound}
			}
		}
		if rsp == nil && r.RequestType > 1 {
			rsp = []byte{r.Seq, zdoStatusInvalid}
		}
		if rsp != nil {
			break
		}
		if who != nil {
			rsp = addrRsp(r.Seq, who.cfg.IEEE, who.cfg.NWK)
			if r.RequestType == 1 {
				rsp = append(rsp, 0) // an end device has no associated devices
			}
			break
		}
		rsp = addrRsp(r.Seq, n.cfg.CoordinatorIEEE, 0x0000)
		if r.RequestType == 1 {
			rsp = appendAssociated(rsp, n.children(), r.StartIndex)
		}
	case zdoNodeDescReq:
		if !self {
			rsp = addr(descriptorError(), r.NWKAddr)
			break
		}
		rsp = append(addr(zdoStatusSuccess, 0x0000), nodeDescriptor(0, CapabilityAllocateAddr|CapabilityRxOnWhenIdle|
			CapabilityMainsPowered|CapabilityFFD|0x01, mfr)...)
	case zdoActiveEPReq:
		if !self {
			rsp = append(addr(descriptorError(), r.NWKAddr), 0)
			break
		}
		rsp = append(addr(zdoStatusSuccess, 0x0000), byte(len(eps)))
		for _, e := range eps {
			rsp = append(rsp, e.Endpoint)
		}
	case zdoSimpleDescReq:
		if !self {
			rsp = append(addr(descriptorError(), r.NWKAddr), 0)
			break
		}
		if r.Endpoint == 0 || r.Endpoint == 0xFF { // valid range 0x01..0xFE (Green Power is 242)
			rsp = append(addr(zdoStatusInvalidE, 0x0000), 0)
			break
		}
		i := slices.IndexFunc(eps, func(e EndpointDesc) bool { return e.Endpoint == r.Endpoint })
		if i < 0 {
			rsp = append(addr(zdoStatusNotActive, 0x0000), 0)
			break
		}
		desc := simpleDescriptor(eps[i])
		rsp = append(append(addr(zdoStatusSuccess, 0x0000), byte(len(desc))), desc...)
	case zdoMatchDescReq:
		if !self {
			rsp = append(addr(zdoStatusNotFound, r.NWKAddr), 0)
			break
		}
		var matched []byte
		for _, e := range eps {
			if matchEndpoint(e, r.ProfileID, r.InClusters, r.OutClusters) {
				matched = append(matched, e.Endpoint)
			}
		}
		if broadcast && len(matched) == 0 {
			return 0, nil, false // broadcasts are answered only on a match
		}
		rsp = append(append(addr(zdoStatusSuccess, 0x0000), byte(len(matched))), matched...)
	case zdoMgmtPermitReq:
		n.setPermit(r.Duration, "Mgmt_Permit_Joining_req")
		rsp = []byte{r.Seq, zdoStatusSuccess}
	case zdoMgmtLqiReq:
		rsp = n.lqiResponse(r.Seq, 0x0000, r.StartIndex)
	default:
		rsp = []byte{r.Seq, zdoStatusNotSupp}
	}
	if broadcast && rsp[1] != zdoStatusSuccess {
		return 0, nil, false
	}
	return cluster, rsp, true
}

// appendAssociated appends NumAssocDev, StartIndex and the short addresses of an extended address
// response: the children from index start on, as many as fit the frame (StartIndex only when the list is
// not empty, ZigBee spec 2.4.4.2.1).
func appendAssociated(b []byte, children []*Device, start uint8) []byte {
	var list []uint16
	if int(start) < len(children) {
		for _, c := range children[start:] {
			if len(b)+2+2*(len(list)+1) > MaxAPSPayload {
				break
			}
			list = append(list, c.cfg.NWK)
		}
	}
	b = append(b, byte(len(list)))
	if len(list) == 0 {
		return b
	}
	b = append(b, start)
	for _, s := range list {
		b = binary.LittleEndian.AppendUint16(b, s)
	}
	return b
}

// matchEndpoint is the Match_Desc rule: the profile matches (or either side is the wildcard 0xFFFF) and one
// of the requested input clusters is an input cluster of the endpoint, or one of the requested output
// clusters one of its output clusters.
func matchEndpoint(e EndpointDesc, profile uint16, in, out []uint16) bool {
	if profile != e.ProfileID && profile != 0xFFFF && e.ProfileID != 0xFFFF {
		return false
	}
	for _, c := range in {
		if slices.Contains(e.InClusters, c) {
			return true
		}
	}
	for _, c := range out {
		if slices.Contains(e.OutClusters, c) {
			return true
		}
	}
	return false
}

// hostZDO handles a ZDO request the host sent to the coordinator itself (clock goroutine): the stack
// confirms the send, then its answer arrives as an incoming frame from 0x0000.
func (n *Network) hostZDO(f ncp.Frame, done func(error)) {
	req, err := decodeZDORequest(f.ClusterID, f.Payload)
	done(nil)
	if err != nil {
		n.log.Warn().Err(err).Uint16("cluster", f.ClusterID).Msg("ZDO request from the host to the coordinator dropped")
		return
	}
	cluster, rsp, ok := n.coordinatorAnswer(req, false)
	if !ok {
		return
	}
	coord := n.cfg.CoordinatorIEEE
	n.log.Debug().Str("kind", kindOf(0, f.ClusterID, nil)).Hex("response", rsp).Msg("coordinator answers host ZDO")
	n.emit(ncp.Event{
		Kind: ncp.EventFrame, Short: 0x0000, IEEE: coord,
		Frame: ncp.Incoming{SrcShort: 0x0000, SrcIEEE: coord, ClusterID: cluster, LQI: 255, Payload: rsp},
	})
}
