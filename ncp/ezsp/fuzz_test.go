package ezsp

import (
	"reflect"
	"testing"
)

// fuzzIDs are the frame ids the decoders handle; the fuzz input picks one by index so that every decoder
// is reached.
var fuzzIDs = []uint16{
	IDVersion, IDAddEndpoint, IDNop, IDSetConcentrator, IDNetworkInit, IDNetworkState, IDStackStatusHandler,
	IDFormNetwork, IDLeaveNetwork, IDPermitJoining, IDChildJoinHandler, IDTrustCenterJoinHandler, IDGetEUI64,
	IDGetNodeID, IDGetNetworkParameters, IDMaximumPayloadLength, IDSendUnicast, IDSendBroadcast,
	IDMessageSentHandler, IDIncomingMessageHandler, IDGetConfigurationValue, IDSetConfigurationValue,
	IDSetPolicy, IDInvalidCommand, IDSetSourceRouteDiscoveryMode, IDLookupEUI64ByNodeID,
	IDIncomingSenderEUI64Handler, IDSetInitialSecurityState, IDGetValue, IDSetValue, IDImportTransientKey,
	IDGetExtendedValue, IDSetManufacturerCode, IDSendMulticast, IDSendRawMessage, IDLookupNodeIDByEUI64,
	IDSetMulticastTableEntry, IDBroadcastNextNetworkKey, IDEraseKeyTableEntry, IDTokenFactoryReset,
	IDSetExtendedTimeout, IDGetTokenData, IDSetTokenData, IDGetApsKeyInfo, IDExportKey, IDImportLinkKey, IDImportKey,
	IDSetRadioPower, IDExportLinkKeyByIndex, IDGetMulticastTableEntry, IDGetCurrentSecurityState, IDReadAndClearCounters,
}

// FuzzDecode runs a whole EZSP frame through ParseFrame and then the parameters through the response decoder
// (NCP to host: what the driver parses) and the command decoder (host to NCP: what the fake stick parses) of
// the frame id chosen by pick, in the layout of version 13 or 14. Nothing may panic; the structs that have an
// encoder must re-encode to a prefix of the input (trailing bytes are tolerated).
func FuzzDecode(f *testing.F) {
	f.Add(uint8(16), true, []byte{0x27, 0x80, 0x01, 0x34, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9a})
	f.Add(uint8(19), true, []byte{0x27, 0x90, 0x01, 0x45, 0x00, 0x00, 0x04, 0x01, 0x06, 0x00, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0x70,
		0xde, 0xc9, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x05, 0x18, 0x04, 0x0b, 0x00, 0x00, 0x02})
	f.Add(uint8(18), true, []byte{0x27, 0x90, 0x01, 0x3f, 0x00, 0, 0, 0, 0, 0, 0xde, 0xc9, 0x04, 0x01, 0x06, 0x00, 0x01, 0x01, 0x40, 0x11, 0, 0, 0x9a, 0x03, 0x00, 0x00})
	f.Add(uint8(19), false, []byte{0x01, 0x90, 0x01, 0x45, 0x00, 0x00, 0x04, 0x01, 0x19, 0x00, 0x01, 0x01, 0x40, 0x11, 0, 0, 7, 0xC8, 0xD6, 0x34, 0x12, 0xFF, 0xFF, 3, 1, 2, 3})
	for i := range fuzzIDs {
		f.Add(uint8(i), i%2 == 0, []byte{0x01, 0x80, 0x01, byte(fuzzIDs[i]), byte(fuzzIDs[i] >> 8), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21})
	}
	f.Fuzz(func(t *testing.T, pick uint8, wide bool, frame []byte) {
		v := v13
		if wide {
			v = v14
		}
		fr, err := ParseFrame(frame, false)
		if err != nil {
			if lf, lerr := ParseFrame(frame, true); lerr == nil {
				_, _ = DecodeVersionResponse(lf.Params)
			}
			return
		}
		_ = fr.IsCallback()
		_ = FrameName(fr.FrameID)
		id := fuzzIDs[int(pick)%len(fuzzIDs)]
		p := fr.Params
		if got, err := DecodeResponse(id, p, v); err == nil {
			checkPrefix(t, got, p, v)
		}
		if got, err := DecodeCommand(id, p, v); err == nil {
			checkPrefix(t, got, p, v)
		}
		_, _ = DecodeResponse(fr.FrameID, p, v)
	})
}

func checkPrefix(t *testing.T, got any, in []byte, v Version) {
	var out []byte
	switch m := got.(type) {
	case IncomingMessage:
		out = m.Append(nil, v)
	case MessageSent:
		out = m.Append(nil, v)
	case SendUnicast:
		out = m.Append(nil, v)
	case SendBroadcast:
		if !v.Wide() {
			m.Alias = 0xFFFF
		}
		out = m.Append(nil, v)
	case SendResponse:
		out = m.Append(nil, v)
	case Counters:
		out = m.Append(nil)
	case GetNetworkParametersResponse:
		out = m.Append(nil, v)
	case LookupEUI64Response:
		out = m.Append(nil, v)
	case GetValueResponse:
		out = m.Append(nil, v)
	case TrustCenterJoin:
		out = m.Append(nil)
	case ChildJoin:
		if m.Joining && in[1] != 1 {
			return // any non-zero byte decodes as true
		}
		out = m.Append(nil)
	case AddEndpoint:
		out = m.Append(nil)
	case InitialSecurityState:
		out = m.Append(nil)
	case NetworkParameters:
		out = m.Append(nil)
	case ImportTransientKey:
		out = m.Append(nil, v)
	case SendMulticast:
		out = m.Append(nil, v)
	case ExportKey:
		out = m.Context.Append(nil)
	case ImportKey:
		out = append(m.Context.Append(nil), m.Key[:]...)
	default:
		return
	}
	if len(out) > len(in) || !reflect.DeepEqual(out, in[:len(out)]) {
		t.Fatalf("%T re-encodes to % x, input % x", got, out, in)
	}
}
