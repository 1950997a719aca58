package ota

import (
	"testing"

	"github.com/otabridge/otabridge/zcl"
)

// FuzzEngineHandleFrame feeds arbitrary frames to an engine in the middle of a transfer: it must never
// panic, and every frame it sends must be a well-formed ZCL frame whose payload decodes as its command.
func FuzzEngineHandleFrame(f *testing.F) {
	id := zcl.ImageID{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 2}
	seed := func(cmd uint8, p zcl.Payload) []byte {
		return p.AppendPayload(zcl.ClientToServerClusterHeader(7, cmd).AppendTo(nil))
	}
	f.Add(seed(zcl.CmdQueryNextImageRequest, zcl.QueryNextImageRequest{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 1}))
	f.Add(seed(zcl.CmdImageBlockRequest, zcl.ImageBlockRequest{ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType,
		FileVersion: id.FileVersion, FileOffset: 100, MaxDataSize: 64}))
	f.Add(seed(zcl.CmdImageBlockRequest, zcl.ImageBlockRequest{FieldControl: 3, ManufacturerCode: id.ManufacturerCode,
		ImageType: id.ImageType, FileVersion: id.FileVersion, FileOffset: 0xFFFFFFF0, MaxDataSize: 255, MinimumBlockPeriod: 5}))
	f.Add(seed(zcl.CmdImagePageRequest, zcl.ImagePageRequest{ManufacturerCode: id.ManufacturerCode, ImageType: id.ImageType,
		FileVersion: id.FileVersion, FileOffset: 10, MaxDataSize: 64, PageSize: 0xFFFF, ResponseSpacing: 0}))
	f.Add(seed(zcl.CmdUpgradeEndRequest, zcl.UpgradeEndRequest{Status: zcl.StatusSuccess, ManufacturerCode: id.ManufacturerCode,
		ImageType: id.ImageType, FileVersion: id.FileVersion}))
	f.Add(seed(zcl.CmdUpgradeEndRequest, zcl.UpgradeEndRequest{Status: zcl.StatusInvalidImage}))
	f.Add(seed(zcl.CmdQueryDeviceSpecificFileRequest, zcl.QueryDeviceSpecificFileRequest{RequestNodeAddress: devA,
		ManufacturerCode: 0x1234, ImageType: 0xFFC0, FileVersion: 1}))
	f.Add([]byte{0x00, 0x01, 0x00, 0x00, 0x00})
	f.Add([]byte{0x05, 0x34, 0x12, 0x09, 0x03})
	f.Add([]byte{0x1D})

	img := makeImage(f, id.ManufacturerCode, id.ImageType, id.FileVersion, 700)
	f.Fuzz(func(t *testing.T, frame []byte) {
		r := newEngineRig(t, EngineConfig{}, img)
		startedTransfer(t, r, devA, img)
		r.out.take()
		r.eng.HandleFrame(devA, frame)
		r.eng.HandleFrame(devB, frame)
		r.clk.RunFor(10 * 60e9)
		for _, sent := range r.out.take() { // record() already checked the header decodes
			checkReplyDecodes(t, sent)
		}
	})
}

func checkReplyDecodes(t *testing.T, f sentFrame) {
	t.Helper()
	var err error
	if f.header.FrameType == zcl.FrameTypeGlobal {
		if f.header.CommandID != zcl.CmdDefaultResponse {
			t.Fatalf("engine sent global command 0x%02x", f.header.CommandID)
		}
		_, err = zcl.DecodeDefaultResponse(f.payload)
	} else {
		if f.header.Direction != zcl.ServerToClient {
			t.Fatalf("engine sent a client-to-server frame %x", f.frame)
		}
		switch f.header.CommandID {
		case zcl.CmdImageNotify:
			_, err = zcl.DecodeImageNotify(f.payload)
		case zcl.CmdQueryNextImageResponse:
			_, err = zcl.DecodeQueryNextImageResponse(f.payload)
		case zcl.CmdImageBlockResponse:
			var r zcl.ImageBlockResponse
			r, err = zcl.DecodeImageBlockResponse(f.payload)
			if err == nil && r.Status == zcl.StatusSuccess && len(r.Data) == 0 {
				t.Fatalf("engine sent an empty block: %x", f.frame)
			}
		case zcl.CmdUpgradeEndResponse:
			_, err = zcl.DecodeUpgradeEndResponse(f.payload)
		case zcl.CmdQueryDeviceSpecificFileResponse:
			_, err = zcl.DecodeQueryDeviceSpecificFileResponse(f.payload)
		default:
			t.Fatalf("engine sent unexpected command 0x%02x", f.header.CommandID)
		}
	}
	if err != nil {
		t.Fatalf("engine sent a malformed frame %x: %v", f.frame, err)
	}
}
