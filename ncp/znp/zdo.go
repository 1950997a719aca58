package znp

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/otabridge/otabridge/ncp"
)

// ZDO clusters with an MT layout of their own.
const (
	zdoNWKAddrReq     uint16 = 0x0000
	zdoIEEEAddrReq    uint16 = 0x0001
	zdoMgmtPermitJoin uint16 = 0x0036
)

// ZDORequest is the MT command that carries a ZDO request frame (the ZDO payload with its sequence number
// first, as on the air): ZDO_<name>_REQ, whose id is the request cluster. Its data is the destination short
// address and the payload without the sequence number (NWK_addr_req and IEEE_addr_req: the payload only;
// Mgmt_Permit_Joining_req: address mode, destination, payload).
func ZDORequest(dst, cluster uint16, payload []byte) (Command, []byte, error) {
	if cluster >= 0x0040 || len(payload) < 1 {
		return Command{}, nil, fmt.Errorf("ZDO cluster 0x%04x with %d bytes: not a request Z-Stack's MT carries", cluster, len(payload))
	}
	cmd := Command{SubZDO, uint8(cluster)}
	body := payload[1:]
	switch cluster {
	case zdoNWKAddrReq, zdoIEEEAddrReq:
		return cmd, append([]byte(nil), body...), nil
	case zdoMgmtPermitJoin:
		mode := AddrModeShort
		if dst >= 0xFFF8 {
			mode = AddrModeBroadcast
		}
		return cmd, append(le16([]byte{mode}, dst), body...), nil
	}
	return cmd, append(le16(nil, dst), body...), nil
}

// ZDOResponse turns a ZDO_<name>_RSP callback back into the ZDO frame: the source short address, the
// response cluster and the payload after the sequence number (which MT does not carry).
func ZDOResponse(f Frame) (src, cluster uint16, payload []byte, err error) {
	if f.Subsystem != SubZDO || f.ID < 0x80 || f.ID >= 0xC0 {
		return 0, 0, nil, fmt.Errorf("%s is not a ZDO response callback", f.Command())
	}
	cluster = 0x8000 | uint16(f.ID&0x7F)
	if cluster == 0x8000|zdoNWKAddrReq || cluster == 0x8000|zdoIEEEAddrReq {
		// Status, IEEE, NWK address, …: the answering device is the one named.
		if len(f.Data) < 11 {
			return 0, 0, nil, fmt.Errorf("%s: %d bytes, want at least 11", f.Command(), len(f.Data))
		}
		return binary.LittleEndian.Uint16(f.Data[9:]), cluster, f.Data, nil
	}
	if len(f.Data) < 3 {
		return 0, 0, nil, fmt.Errorf("%s: %d bytes, want at least 3", f.Command(), len(f.Data))
	}
	return binary.LittleEndian.Uint16(f.Data), cluster, f.Data[2:], nil
}

func zdoKey(short, rspCluster uint16) uint32 { return uint32(short)<<16 | uint32(rspCluster) }

// sendZDO sends a ZDO request through its ZDO_*_REQ command; the response arrives as an EventFrame of
// profile 0 with the request's sequence number restored.
func (d *Driver) sendZDO(ctx context.Context, c *Conn, f ncp.Frame) error {
	cmd, data, err := ZDORequest(f.DstShort, f.ClusterID, f.Payload)
	if err != nil {
		return fmt.Errorf("send to 0x%04x: %w", f.DstShort, err)
	}
	d.mu.Lock()
	d.zdoTSN[zdoKey(f.DstShort, 0x8000|f.ClusterID)] = f.Payload[0]
	d.zdoTSN[zdoKey(0xFFFF, 0x8000|f.ClusterID)] = f.Payload[0]
	d.mu.Unlock()
	if err := c.StatusRequest(ctx, cmd, data); err != nil {
		return fmt.Errorf("send to 0x%04x: %w", f.DstShort, err)
	}
	return nil
}

func (d *Driver) onZDOResponse(f Frame) error {
	src, cluster, payload, err := ZDOResponse(f)
	if err != nil {
		return err
	}
	d.mu.Lock()
	tsn, ok := d.zdoTSN[zdoKey(src, cluster)]
	if !ok {
		tsn = d.zdoTSN[zdoKey(0xFFFF, cluster)]
	}
	ieee := d.ieee[src]
	d.mu.Unlock()
	d.emit(ncp.Event{Kind: ncp.EventFrame, Short: src, IEEE: ieee, Frame: ncp.Incoming{SrcShort: src, SrcIEEE: ieee, ClusterID: cluster,
		Payload: append([]byte{tsn}, payload...)}})
	return nil
}
