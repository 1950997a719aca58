package simtest_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/ncp/sim/simtest"
	"github.com/otabridge/otabridge/zcl"
)

func TestBuildImage(t *testing.T) {
	id := zcl.ImageID{ManufacturerCode: 0x1234, ImageType: 0x5678, FileVersion: 0x01020304}
	img := simtest.BuildImage(id, 1000, 1)
	require.Len(t, img, 1000)
	assert.Equal(t, []byte{0x1E, 0xF1, 0xEE, 0x0B}, img[:4])
	assert.Equal(t, uint16(56), binary.LittleEndian.Uint16(img[6:]))
	assert.Equal(t, uint16(0x1234), binary.LittleEndian.Uint16(img[10:]))
	assert.Equal(t, uint16(0x5678), binary.LittleEndian.Uint16(img[12:]))
	assert.Equal(t, uint32(0x01020304), binary.LittleEndian.Uint32(img[14:]))
	assert.Equal(t, uint32(1000), binary.LittleEndian.Uint32(img[52:]))
	assert.Equal(t, uint32(1000-62), binary.LittleEndian.Uint32(img[58:]), "one sub-element tiles the rest")
	assert.Equal(t, img, simtest.BuildImage(id, 1000, 1), "deterministic")
	assert.NotEqual(t, img, simtest.BuildImage(id, 1000, 2))
}

// ExampleHarness shows a test acting as the OTA server with the minimal server.
func ExampleHarness() {
	t := &testing.T{} // in a real test: the test's *testing.T
	h := simtest.New(t, `
link: {mode: fast}
devices:
  - {ieee: 0x00124b0000000001, manufacturer_code: 0x131B, image_type: 1, file_version: 1}
`)
	dev := zcl.IEEE(0x00124b0000000001)
	srv := simtest.NewMinimalServer(h, simtest.BuildImage(zcl.ImageID{ManufacturerCode: 0x131B, ImageType: 1, FileVersion: 2}, 5000, 1))
	srv.Notify(dev)
	h.RunUntil(func() bool { return h.Device(dev).Status().Upgrades == 1 }, time.Hour)
	_ = h.ReadUint(dev, zcl.ClusterOTA, zcl.AttrOTACurrentFileVersion) // 2
}
