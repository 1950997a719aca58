package zboss

// ZDO responses in the NCP's layout. A ZBOSS NCP answers the ZDO request calls with a response packet whose
// status code is the ZDO status and whose parameters are the ZDO response's other fields (no ZDO sequence
// number), and — unlike the ZigBee specification — puts the
// NWKAddrOfInterest last in the Node_Desc, Power_Desc, Active_EP and Match_Desc responses; the
// Simple_Desc response also drops the descriptor length and puts both cluster counts before the lists.
// (zigbee-herdsman 10.9.5's zboss adapter undoes exactly this.)

// ZDO response clusters with the NCP's own layout.
const (
	zdoNodeDescRsp   uint16 = 0x8002
	zdoPowerDescRsp  uint16 = 0x8003
	zdoSimpleDescRsp uint16 = 0x8004
	zdoActiveEPRsp   uint16 = 0x8005
	zdoMatchDescRsp  uint16 = 0x8006
)

// ZDOResponseToNCP turns a standard ZDO response payload (after the sequence number) of cluster into the
// response packet's status and parameters in the NCP's layout.
func ZDOResponseToNCP(cluster uint16, std []byte) (Status, []byte) {
	if len(std) == 0 {
		return StatusError, nil
	}
	st := Status{Code: std[0]}
	if st.Code != 0 {
		st.Category = CategoryZDO
	}
	return st, zdoToNCP(cluster, std)[1:]
}

// ZDOResponseFromNCP is the inverse of ZDOResponseToNCP: a response packet's status code and parameters back
// into the standard ZDO response payload (without sequence number). It never panics.
func ZDOResponseFromNCP(cluster uint16, st Status, params []byte) []byte {
	return zdoFromNCP(cluster, append([]byte{st.Code}, params...))
}

// zdoToNCP rearranges a standard payload (status first); too short a payload is returned as it is.
func zdoToNCP(cluster uint16, std []byte) []byte {
	switch cluster {
	case zdoNodeDescRsp, zdoPowerDescRsp, zdoActiveEPRsp, zdoMatchDescRsp:
		if len(std) < 3 {
			return append([]byte(nil), std...)
		}
		out := append([]byte{std[0]}, std[3:]...)
		return append(out, std[1:3]...)
	case zdoSimpleDescRsp:
		// status nwk(2) len ep profile(2) device(2) version inCount in… outCount out…
		if len(std) < 4+7 {
			return append([]byte(nil), std...)
		}
		desc := std[4:]
		nIn := int(desc[6])
		if len(desc) < 7+2*nIn+1 {
			return append([]byte(nil), std...)
		}
		in := desc[7 : 7+2*nIn]
		nOut := int(desc[7+2*nIn])
		outList := desc[8+2*nIn:]
		if len(outList) < 2*nOut {
			return append([]byte(nil), std...)
		}
		out := append([]byte{std[0]}, desc[:7]...)
		out = append(out, byte(nOut))
		out = append(out, in...)
		out = append(out, outList[:2*nOut]...)
		return append(out, std[1:3]...)
	}
	return append([]byte(nil), std...)
}

// zdoFromNCP is the inverse of zdoToNCP.
func zdoFromNCP(cluster uint16, b []byte) []byte {
	switch cluster {
	case zdoNodeDescRsp, zdoPowerDescRsp, zdoActiveEPRsp, zdoMatchDescRsp:
		if len(b) < 3 {
			return append([]byte(nil), b...)
		}
		out := append([]byte{b[0]}, b[len(b)-2:]...)
		return append(out, b[1:len(b)-2]...)
	case zdoSimpleDescRsp:
		// status ep profile(2) device(2) version inCount outCount in… out… nwk(2)
		if len(b) < 1+8+2 {
			return append([]byte(nil), b...)
		}
		nIn, nOut := int(b[7]), int(b[8])
		if len(b) != 9+2*nIn+2*nOut+2 {
			return append([]byte(nil), b...)
		}
		out := append([]byte{b[0]}, b[len(b)-2:]...)
		out = append(out, byte(len(b)-3)) // descriptor length
		out = append(out, b[1:8]...)
		out = append(out, b[9:9+2*nIn]...)
		out = append(out, byte(nOut))
		return append(out, b[9+2*nIn:9+2*nIn+2*nOut]...)
	}
	return append([]byte(nil), b...)
}
