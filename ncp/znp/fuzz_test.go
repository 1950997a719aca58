package znp

import (
	"bytes"
	"testing"
)

// FuzzDecoder: any byte stream, fed in two pieces, yields only frames that parse and re-encode to
// themselves, and never panics.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0xFE, 0x00, 0x21, 0x01, 0x20}, 2)
	f.Add([]byte{0x00, 0xFE, 0x03, 0x61, 0x08, 0x00, 0x01, 0x55, 0x3F, 0xFE, 0x03, 0x61, 0x08, 0x00, 0x01, 0x55, 0x3E}, 9)
	f.Add([]byte{0xFE, 0xFF, 0xFE, 0x01}, 1)
	f.Fuzz(func(t *testing.T, stream []byte, cut int) {
		if cut < 0 || cut > len(stream) {
			cut = len(stream) / 2
		}
		var d Decoder
		frames := append(d.Feed(stream[:cut]), d.Feed(stream[cut:])...)
		for _, fr := range frames {
			wire := fr.Append(nil)
			back, err := ParseFrame(wire)
			if err != nil {
				t.Fatalf("decoded frame %v does not parse again: %v", fr, err)
			}
			if !bytes.Equal(back.Data, fr.Data) || back.Command() != fr.Command() || back.Type != fr.Type {
				t.Fatalf("round trip changed %v into %v", fr, back)
			}
			if !bytes.Contains(stream, wire) {
				t.Fatalf("frame % X is not in the stream", wire)
			}
		}
	})
}

// callbackDecoders are every decoder of data that comes from the stick.
var callbackDecoders = map[string]func([]byte) error{
	"SYS_RESET_IND":            func(b []byte) error { _, err := DecodeResetInd(b); return err },
	"SYS_VERSION":              func(b []byte) error { _, err := DecodeVersion(b); return err },
	"SYS_OSAL_NV_READ":         func(b []byte) error { _, err := DecodeNVValue(b); return err },
	"AF_DATA_CONFIRM":          func(b []byte) error { _, err := DecodeDataConfirm(b); return err },
	"AF_INCOMING_MSG":          func(b []byte) error { _, err := DecodeIncomingMsg(b); return err },
	"AF_INCOMING_MSG_EXT":      func(b []byte) error { _, err := DecodeIncomingMsgExt(b); return err },
	"ZDO_TC_DEV_IND":           func(b []byte) error { _, err := DecodeTCDevInd(b); return err },
	"ZDO_END_DEVICE_ANNCE_IND": func(b []byte) error { _, err := DecodeEndDeviceAnnce(b); return err },
	"ZDO_LEAVE_IND":            func(b []byte) error { _, err := DecodeLeaveInd(b); return err },
	"ZDO_STATE_CHANGE_IND":     func(b []byte) error { _, err := DecodeStateChangeInd(b); return err },
	"ZDO_EXT_NWK_INFO":         func(b []byte) error { _, err := DecodeExtNwkInfo(b); return err },
	"UTIL_GET_DEVICE_INFO":     func(b []byte) error { _, err := DecodeDeviceInfo(b); return err },
	"SYS_GET_EXTADDR":          func(b []byte) error { _, err := DecodeIEEE(b, "SYS_GET_EXTADDR"); return err },
	"RPC_ERROR":                func(b []byte) error { _, err := DecodeRPCError(b); return err },
	"ZDO_85": func(b []byte) error {
		_, _, _, err := ZDOResponse(Frame{Type: TypeAREQ, Subsystem: SubZDO, ID: 0x85, Data: b})
		return err
	},
	"ZDO_81": func(b []byte) error {
		_, _, _, err := ZDOResponse(Frame{Type: TypeAREQ, Subsystem: SubZDO, ID: 0x81, Data: b})
		return err
	},
	// requests the fake stick decodes from a host
	"AF_REGISTER":              func(b []byte) error { _, err := DecodeAFRegister(b); return err },
	"AF_DATA_REQUEST":          func(b []byte) error { _, err := DecodeDataRequest(b); return err },
	"AF_DATA_REQUEST_EXT":      func(b []byte) error { _, err := DecodeDataRequestExt(b); return err },
	"ZDO_MGMT_PERMIT_JOIN_REQ": func(b []byte) error { _, err := DecodePermitJoinReq(b); return err },
	"SYS_OSAL_NV_WRITE":        func(b []byte) error { _, err := DecodeNVWrite(b); return err },
	"SYS_OSAL_NV_ITEM_INIT":    func(b []byte) error { _, err := DecodeNVItemInit(b); return err },
	"SYS_OSAL_NV_READ request": func(b []byte) error { _, err := DecodeNVRead(b); return err },
}

// FuzzCallbackDecoders: every decoder of stick data takes any payload without panicking, and the driver's
// callback handling of any AREQ (decoded through these) never panics either.
func FuzzCallbackDecoders(f *testing.F) {
	f.Add([]byte{0x02, 0x02, 0x01, 0x02, 0x07, 0x01})
	f.Add([]byte{0x00, 0x00, 0x19, 0x00, 0x34, 0x12, 0x01, 0x01, 0x00, 0xC8, 0x00, 0x04, 0x03, 0x02, 0x01, 0x05, 0x02, 0x01, 0x02, 0x34, 0x12, 0x1D})
	f.Add([]byte{0x34, 0x12, 0x04, 0x03, 0x02, 0x01, 0x00, 0x4B, 0x12, 0x00, 0x00, 0x00})
	f.Add([]byte{0x00, 0x00, 0x19, 0x00, 0x02, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0x01, 0, 0xC8, 0, 0, 0, 0, 0, 0, 0xF0, 0x00})
	f.Add([]byte{0x00, 0x04, 0x03, 0x02, 0x01, 0x00, 0x4B, 0x12, 0x00, 0x00, 0x00, 0x07, 0x09, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, decode := range callbackDecoders {
			_ = decode(b)
		}
	})
}
