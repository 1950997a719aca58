package netscan

import (
	"encoding/binary"
	"fmt"

	"github.com/otabridge/otabridge/zcl"
)

// ZDO clusters (profile 0, endpoint 0) the scanner uses (ZigBee spec 2.4.3 / 2.4.4).
const (
	ClusterIEEEAddrReq uint16 = 0x0001
	ClusterIEEEAddrRsp uint16 = 0x8001
	ClusterMgmtLqiReq  uint16 = 0x0031
	ClusterMgmtLqiRsp  uint16 = 0x8031
)

// ZDO status codes the scanner names.
const (
	zdoSuccess      uint8 = 0x00
	zdoNotSupported uint8 = 0x84
)

// Device types of a neighbor table record.
const (
	TypeCoordinator = "coordinator"
	TypeRouter      = "router"
	TypeEndDevice   = "end_device"
	TypeUnknown     = "unknown"
)

// EncodeIEEEAddrReq is an IEEE_addr_req for short, single-device form (spec 2.4.3.1.2).
func EncodeIEEEAddrReq(seq uint8, short uint16) []byte {
	return []byte{seq, byte(short), byte(short >> 8), 0x00, 0x00}
}

// EncodeMgmtLqiReq is a Mgmt_Lqi_req from start on (spec 2.4.3.3.2).
func EncodeMgmtLqiReq(seq, start uint8) []byte { return []byte{seq, start} }

// AddrRsp is a decoded IEEE_addr_rsp / NWK_addr_rsp.
type AddrRsp struct {
	Seq    uint8
	Status uint8
	IEEE   zcl.IEEE
	Short  uint16
}

// DecodeAddrRsp reads an IEEE_addr_rsp or NWK_addr_rsp (spec 2.4.4.2.1 / 2.4.4.2.2); the associated-device
// list of the extended form is ignored. It never panics.
func DecodeAddrRsp(p []byte) (AddrRsp, error) {
	if len(p) < 2 {
		return AddrRsp{}, fmt.Errorf("address response: %d bytes, want at least 2", len(p))
	}
	r := AddrRsp{Seq: p[0], Status: p[1]}
	if r.Status != zdoSuccess {
		return r, nil
	}
	if len(p) < 12 {
		return r, fmt.Errorf("address response: %d bytes, want at least 12 with status SUCCESS", len(p))
	}
	r.IEEE = zcl.IEEE(binary.LittleEndian.Uint64(p[2:]))
	r.Short = binary.LittleEndian.Uint16(p[10:])
	return r, nil
}

// Neighbor is one record of a neighbor table.
type Neighbor struct {
	ExtendedPANID zcl.IEEE
	IEEE          zcl.IEEE
	Short         uint16
	Type          string // coordinator, router, end_device, unknown
	RxOnWhenIdle  bool
	Relationship  uint8 // 0 parent, 1 child, 2 sibling, 3 none, 4 previous child
	Depth         uint8
	LQI           uint8
}

// LqiRsp is a decoded Mgmt_Lqi_rsp.
type LqiRsp struct {
	Seq       uint8
	Status    uint8
	Total     uint8 // NeighborTableEntries
	Start     uint8 // StartIndex
	Neighbors []Neighbor
}

const neighborRecordBytes = 22

// DecodeMgmtLqiRsp reads a Mgmt_Lqi_rsp (spec 2.4.4.4.2). It never panics.
func DecodeMgmtLqiRsp(p []byte) (LqiRsp, error) {
	if len(p) < 2 {
		return LqiRsp{}, fmt.Errorf("Mgmt_Lqi_rsp: %d bytes, want at least 2", len(p))
	}
	r := LqiRsp{Seq: p[0], Status: p[1]}
	if r.Status != zdoSuccess {
		return r, nil
	}
	if len(p) < 5 {
		return r, fmt.Errorf("Mgmt_Lqi_rsp: %d bytes, want at least 5 with status SUCCESS", len(p))
	}
	r.Total, r.Start = p[2], p[3]
	count := int(p[4])
	body := p[5:]
	if len(body) < count*neighborRecordBytes {
		return r, fmt.Errorf("Mgmt_Lqi_rsp: %d neighbor records announced, %d bytes hold %d", count, len(body), len(body)/neighborRecordBytes)
	}
	if int(r.Start)+count > int(r.Total) {
		return r, fmt.Errorf("Mgmt_Lqi_rsp: records %d..%d past the table's %d entries", r.Start, int(r.Start)+count, r.Total)
	}
	for i := range count {
		e := body[i*neighborRecordBytes:]
		n := Neighbor{
			ExtendedPANID: zcl.IEEE(binary.LittleEndian.Uint64(e)),
			IEEE:          zcl.IEEE(binary.LittleEndian.Uint64(e[8:])),
			Short:         binary.LittleEndian.Uint16(e[16:]),
			RxOnWhenIdle:  (e[18]>>2)&0x03 == 1,
			Relationship:  (e[18] >> 4) & 0x07,
			Depth:         e[20],
			LQI:           e[21],
		}
		switch e[18] & 0x03 {
		case 0:
			n.Type = TypeCoordinator
		case 1:
			n.Type = TypeRouter
		case 2:
			n.Type = TypeEndDevice
		default:
			n.Type = TypeUnknown
		}
		r.Neighbors = append(r.Neighbors, n)
	}
	return r, nil
}
