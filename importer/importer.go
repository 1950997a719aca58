// Package importer reads what another Zigbee host knows about the network otabridge takes over for a
// while, so its devices keep their names and models at once: Zigbee2MQTT's data directory (database.db,
// the friendly names of configuration.yaml / devices.yaml, coordinator_backup.json) and ZHA's zigpy
// database (zigbee.db: devices, endpoints, node descriptors, cached Basic and OTA attributes, network
// backups). It only reads: a damaged file is refused with an error that names it, and nothing is returned.
// It also compares the network a backup describes with the one the stick holds (Import.CheckNetwork).
package importer

import (
	"fmt"
	"strings"

	"github.com/otabridge/otabridge/ncp"
	"github.com/otabridge/otabridge/zcl"
)

// Power sources of an imported device.
const (
	PowerMains   = "mains"
	PowerBattery = "battery"
	PowerUnknown = "unknown"
)

// Device is one device the other host knew.
type Device struct {
	IEEE         zcl.IEEE
	NWK          uint16 // 0xFFFF when unknown
	FriendlyName string // "" when the host had none
	Manufacturer string
	Model        string
	SWBuildID    string
	DateCode     string
	PowerSource  string // mains, battery, unknown
	Sleepy       bool   // receiver off when idle
	// Endpoint is the endpoint of the device's OTA client cluster (0x0019 output), 0 when unknown.
	Endpoint           uint8
	HardwareVersion    uint8
	HasHardwareVersion bool
	// ManufacturerCode is the OTA manufacturer id when the host cached it, else the node descriptor's.
	ManufacturerCode    uint16
	HasManufacturerCode bool
	ImageType           uint16
	HasImageType        bool
	FileVersion         uint32
	HasFileVersion      bool
}

// Network is the network a backup describes.
type Network struct {
	Channel       uint8
	PANID         uint16
	ExtendedPANID zcl.IEEE
}

// Import is what one host's files hold.
type Import struct {
	Source  string   // "z2m" or "zha"
	Path    string   // what was read
	Network *Network // nil when the files hold no network backup
	Devices []Device
}

// CheckNetwork refuses an import whose backup describes another network than the one the stick holds,
// naming every difference. An import without a backup is not checked.
func (im Import) CheckNetwork(info ncp.NetworkInfo) error {
	if im.Network == nil {
		return nil
	}
	n := im.Network
	var diffs []string
	if n.Channel != 0 && n.Channel != info.Channel {
		diffs = append(diffs, fmt.Sprintf("channel: the stick's is %d, the backup's %d", info.Channel, n.Channel))
	}
	if n.PANID != info.PANID {
		diffs = append(diffs, fmt.Sprintf("PAN id: the stick's is 0x%04x, the backup's 0x%04x", info.PANID, n.PANID))
	}
	if n.ExtendedPANID != 0 && n.ExtendedPANID != info.ExtendedPANID {
		diffs = append(diffs, fmt.Sprintf("extended PAN id: the stick's is %s, the backup's %s", info.ExtendedPANID, n.ExtendedPANID))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the stick does not hold the network of the %s backup in %s (%s): refusing the import",
			im.Source, im.Path, strings.Join(diffs, "; "))
	}
	return nil
}

// PowerSourceFromBasic maps the Basic cluster's PowerSource attribute (0x0007, ZCL 3.2.2.2.8) to mains,
// battery or unknown: bits 0-6 are the primary source (1, 2, 5, 6 mains; 4 DC source, counted as mains; 3
// battery), bit 7 says a secondary battery exists and does not change the primary.
func PowerSourceFromBasic(v uint8) string {
	switch v & 0x7F {
	case 0x01, 0x02, 0x04, 0x05, 0x06:
		return PowerMains
	case 0x03:
		return PowerBattery
	}
	return PowerUnknown
}

// clean trims a device string the way the interview does: trailing NULs and spaces go.
func clean(s string) string {
	return strings.TrimRight(s, "\x00 ")
}
