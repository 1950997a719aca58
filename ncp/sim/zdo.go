package sim

import (
	"encoding/binary"
	"fmt"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// ZDO clusters (profile 0, endpoint 0) the simulation speaks.
const (
	zdoNWKAddrReq          uint16 = 0x0000
	zdoIEEEAddrReq         uint16 = 0x0001
	zdoNodeDescReq         uint16 = 0x0002
	zdoSimpleDescReq       uint16 = 0x0004
	zdoActiveEPReq         uint16 = 0x0005
	zdoMatchDescReq        uint16 = 0x0006
	zdoDeviceAnnce         uint16 = 0x0013
	zdoNWKAddrRsp          uint16 = 0x8000
	zdoIEEEAddrRsp         uint16 = 0x8001
	zdoNodeDescRsp         uint16 = 0x8002
	zdoSimpleDescRsp       uint16 = 0x8004
	zdoActiveEPRsp         uint16 = 0x8005
	zdoMatchDescRsp        uint16 = 0x8006
	zdoStatusSuccess       uint8  = 0x00
	zdoStatusNotFound      uint8  = 0x81 // DEVICE_NOT_FOUND
	zdoStatusInvalid       uint8  = 0x80 // INV_REQUESTTYPE
	zdoStatusNoDesc        uint8  = 0x89 // NO_DESCRIPTOR
	zdoStatusInvalidE      uint8  = 0x82 // INVALID_EP
	zdoStatusNotActive     uint8  = 0x83 // NOT_ACTIVE
	zdoStatusNotSupp       uint8  = 0x84 // NOT_SUPPORTED
	nwkStatusUnknownDevice uint8  = 0xC8 // NLME-LEAVE.confirm UNKNOWN_DEVICE, in Mgmt_Leave_rsp
	zdoMgmtLqiReq          uint16 = 0x0031
	zdoMgmtLqiRsp          uint16 = 0x8031
	zdoMgmtLeaveReq        uint16 = 0x0034
	zdoMgmtPermitReq       uint16 = 0x0036
	zdoMgmtLeaveRsp        uint16 = 0x8034
	zdoMgmtPermitRsp       uint16 = 0x8036
)

// MAC capability flags of a Device_annce.
const (
	CapabilityFFD          uint8 = 0x02
	CapabilityMainsPowered uint8 = 0x04
	CapabilityRxOnWhenIdle uint8 = 0x08
	CapabilityAllocateAddr uint8 = 0x80
)

var zdoNames = map[uint16]string{
	zdoNWKAddrReq: "zdo.nwk_addr_req", zdoIEEEAddrReq: "zdo.ieee_addr_req", zdoNodeDescReq: "zdo.node_desc_req",
	zdoSimpleDescReq: "zdo.simple_desc_req", zdoActiveEPReq: "zdo.active_ep_req", zdoMatchDescReq: "zdo.match_desc_req",
	zdoDeviceAnnce: "zdo.device_annce", zdoNWKAddrRsp: "zdo.nwk_addr_rsp", zdoIEEEAddrRsp: "zdo.ieee_addr_rsp",
	zdoNodeDescRsp: "zdo.node_desc_rsp", zdoSimpleDescRsp: "zdo.simple_desc_rsp", zdoActiveEPRsp: "zdo.active_ep_rsp",
	zdoMatchDescRsp: "zdo.match_desc_rsp", zdoMgmtLeaveReq: "zdo.mgmt_leave_req", zdoMgmtLeaveRsp: "zdo.mgmt_leave_rsp",
	zdoMgmtPermitReq: "zdo.mgmt_permit_joining_req", zdoMgmtPermitRsp: "zdo.mgmt_permit_joining_rsp",
	zdoMgmtLqiReq: "zdo.mgmt_lqi_req", zdoMgmtLqiRsp: "zdo.mgmt_lqi_rsp",
}

var otaNames = [...]string{
	"ota.image_notify", "ota.query_next_image_request", "ota.query_next_image_response", "ota.image_block_request",
	"ota.image_page_request", "ota.image_block_response", "ota.upgrade_end_request", "ota.upgrade_end_response",
	"ota.query_device_specific_file_request", "ota.query_device_specific_file_response",
}

// kindOf names a message for the statistics without allocating for the common kinds.
func kindOf(profile, cluster uint16, payload []byte) string {
	if profile == 0 {
		if s, ok := zdoNames[cluster]; ok {
			return s
		}
		return fmt.Sprintf("zdo.0x%04x", cluster)
	}
	h, _, err := zcl.DecodeHeader(payload)
	if err != nil {
		return "zcl.undecodable"
	}
	if h.FrameType == zcl.FrameTypeGlobal {
		switch h.CommandID {
		case zcl.CmdReadAttributes:
			return "zcl.read_attributes"
		case zcl.CmdReadAttributesResponse:
			return "zcl.read_attributes_response"
		case zcl.CmdDefaultResponse:
			return "zcl.default_response"
		}
		return fmt.Sprintf("zcl.global_0x%02x", h.CommandID)
	}
	if cluster == zcl.ClusterOTA && !h.ManufacturerSpecific && int(h.CommandID) < len(otaNames) {
		return otaNames[h.CommandID]
	}
	return fmt.Sprintf("zcl.cluster_0x%04x_cmd_0x%02x", cluster, h.CommandID)
}

// coordZDO handles a ZDO frame a device sent to the coordinator: Device_annce becomes EventAnnounced, the
// requests a coordinator's stack answers itself are answered over the air. It reports whether it consumed
// the frame (else it goes to the bridge as EventFrame).
func (n *Network) coordZDO(m *message) bool {
	d := m.dev
	p := m.payload
	if m.cluster == zdoDeviceAnnce {
		if len(p) < 12 {
			return true
		}
		short := binary.LittleEndian.Uint16(p[1:])
		ieee := zcl.IEEE(binary.LittleEndian.Uint64(p[3:]))
		n.log.Info().Str("ieee", ieee.String()).Str("nwk", fmt.Sprintf("0x%04X", short)).Uint8("capabilities", p[11]).Msg("device announce")
		n.learnAddress(short)
		n.emit(eventAnnounced(short, ieee, p[11]))
		return true
	}
	if m.cluster&0x8000 != 0 {
		return false // a response: the host's
	}
	req, err := decodeZDORequest(m.cluster, p)
	if err != nil {
		n.log.Debug().Str("ieee", d.cfg.IEEE.String()).Err(err).Msg("ZDO request to the coordinator dropped")
		return true
	}
	if cluster, rsp, ok := n.coordinatorAnswer(req, m.broadcast); ok {
		n.coordSend(d, 0, cluster, 0, 0, rsp)
	}
	return true
}

func eventAnnounced(short uint16, ieee zcl.IEEE, caps uint8) ncp.Event {
	return ncp.Event{Kind: ncp.EventAnnounced, Short: short, IEEE: ieee, Capabilities: caps}
}

// readClusterList reads count(1) + count × uint16.
func readClusterList(b []byte) ([]uint16, []byte, bool) {
	if len(b) < 1 {
		return nil, nil, false
	}
	n := int(b[0])
	b = b[1:]
	if len(b) < 2*n {
		return nil, nil, false
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return out, b[2*n:], true
}

// addrRsp is an IEEE_addr_rsp / NWK_addr_rsp body (single device form).
func addrRsp(seq uint8, ieee zcl.IEEE, short uint16) []byte {
	b := []byte{seq, zdoStatusSuccess}
	b = binary.LittleEndian.AppendUint64(b, uint64(ieee))
	return binary.LittleEndian.AppendUint16(b, short)
}

// simpleDescriptor encodes a simple descriptor (ZigBee spec 2.3.2.5): endpoint, profile, device id,
// version (low 4 bits), input cluster count and list, output cluster count and list.
func simpleDescriptor(e EndpointDesc) []byte {
	b := []byte{e.Endpoint}
	b = binary.LittleEndian.AppendUint16(b, e.ProfileID)
	b = binary.LittleEndian.AppendUint16(b, e.DeviceID)
	b = append(b, e.DeviceVersion&0x0F, byte(len(e.InClusters)))
	for _, c := range e.InClusters {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	b = append(b, byte(len(e.OutClusters)))
	for _, c := range e.OutClusters {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

// nodeDescriptor encodes a 13-byte node descriptor: logical type (0 coordinator, 1 router, 2 end device),
// 2.4 GHz band, MAC capabilities, manufacturer code, buffer sizes, server mask, descriptor capabilities.
func nodeDescriptor(logicalType, caps uint8, mfr uint16) []byte {
	b := []byte{logicalType, 0x40, caps}
	b = binary.LittleEndian.AppendUint16(b, mfr)
	b = append(b, MaxAPSPayload)
	b = binary.LittleEndian.AppendUint16(b, 0x00FF) // max incoming transfer size
	serverMask := uint16(0x2C00)                    // stack compliance revision 22
	if logicalType == 0 {
		serverMask |= 0x0041 // primary trust center, network manager
	}
	b = binary.LittleEndian.AppendUint16(b, serverMask)
	b = binary.LittleEndian.AppendUint16(b, 0x00FF) // max outgoing transfer size
	return append(b, 0x00)
}
