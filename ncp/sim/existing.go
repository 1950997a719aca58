package sim

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/otabridge/otabridge/zcl"
)

// An `existing` network (Config.Existing) is one another host built: the devices are members from the
// start, nobody announces, and the coordinator's address table is empty. The host finds the devices by
// resolving the short addresses it hears (IEEE_addr_req) and by walking the neighbor tables (Mgmt_Lqi_req)
// of the coordinator and of every router; both are answered here.

// lqiEntryBytes is the size of one neighbor table record of a Mgmt_Lqi_rsp (ZigBee spec 2.4.4.4.2).
const lqiEntryBytes = 22

// learnAddress records that the coordinator knows the IEEE address of short (clock goroutine).
func (n *Network) learnAddress(short uint16) { n.learned[short] = true }

// knowsAddress reports whether the coordinator's address table maps short to an IEEE address: always on a
// network this host formed, on an existing one only after the device told it (clock goroutine).
func (n *Network) knowsAddress(short uint16) bool { return !n.cfg.Existing || n.learned[short] }

// hopLQI is the link quality the coordinator reports for a frame from a device hops away.
func hopLQI(hops int) uint8 { return uint8(max(255-30*(hops-1), 60)) }

// neighbors is the neighbor table of the node with short address owner (0x0000: the coordinator): its
// parent first (for a device), then its children in configuration order.
func (n *Network) neighbors(owner uint16) []neighbor {
	var out []neighbor
	if owner != 0x0000 {
		d := n.byShort[owner]
		if d == nil {
			return nil
		}
		if d.parent == 0x0000 {
			out = append(out, neighbor{ieee: n.cfg.CoordinatorIEEE, short: 0x0000, deviceType: 0, rxOnWhenIdle: true,
				relationship: 0, depth: 0, lqi: 255})
		} else if p := n.byShort[d.parent]; p != nil {
			out = append(out, neighbor{ieee: p.cfg.IEEE, short: p.cfg.NWK, deviceType: 1, rxOnWhenIdle: true,
				relationship: 0, depth: uint8(p.cfg.Hops), lqi: hopLQI(1)})
		}
	}
	for _, c := range n.devices {
		if !c.inNetwork() || c.parent != owner || c.cfg.NWK == owner {
			continue
		}
		typ := uint8(1)
		if c.sleepy() {
			typ = 2
		}
		out = append(out, neighbor{ieee: c.cfg.IEEE, short: c.cfg.NWK, deviceType: typ, rxOnWhenIdle: !c.sleepy(),
			relationship: 1, depth: uint8(c.cfg.Hops), lqi: hopLQI(1)})
	}
	return out
}

type neighbor struct {
	ieee         zcl.IEEE
	short        uint16
	deviceType   uint8 // 0 coordinator, 1 router, 2 end device
	rxOnWhenIdle bool
	relationship uint8 // 0 parent, 1 child, 2 sibling
	depth        uint8
	lqi          uint8
}

// lqiResponse is a Mgmt_Lqi_rsp (sequence number first) with the neighbor table of owner from start on, as
// many records as fit one unfragmented frame.
func (n *Network) lqiResponse(seq uint8, owner uint16, start uint8) []byte {
	table := n.neighbors(owner)
	per := (MaxAPSPayload - 5) / lqiEntryBytes
	var list []neighbor
	if int(start) < len(table) {
		list = table[start:min(len(table), int(start)+per)]
	}
	b := []byte{seq, zdoStatusSuccess, byte(len(table)), start, byte(len(list))}
	for _, e := range list {
		b = binary.LittleEndian.AppendUint64(b, uint64(n.params.ExtendedPANID))
		b = binary.LittleEndian.AppendUint64(b, uint64(e.ieee))
		b = binary.LittleEndian.AppendUint16(b, e.short)
		rx := uint8(0)
		if e.rxOnWhenIdle {
			rx = 1
		}
		b = append(b, e.deviceType|rx<<2|e.relationship<<4, 0x02, e.depth, e.lqi)
	}
	return b
}

// MeshDevices builds the devices of a mixed network of count devices for tests and demos: about two thirds
// mains-powered routers (esp-v2 clients) and one third sleepy end devices (periodic clients), in a tree
// whose devices are 1 to maxHops hops from the coordinator (each device's parent is a router one hop
// closer). IEEE addresses are 0x00124b00000a0000 + index; the first device is an ESP32-C6 light that
// config.yaml's image upgrades.
func MeshDevices(count, maxHops int) []DeviceConfig {
	maxHops = max(maxHops, 1)
	out := make([]DeviceConfig, 0, count)
	routersAt := make([][]zcl.IEEE, maxHops+1)
	for i := range count {
		hops := 1 + i%maxHops
		for hops > 1 && len(routersAt[hops-1]) == 0 {
			hops--
		}
		d := DeviceConfig{
			IEEE:  zcl.IEEE(0x00124b00000a0000 + uint64(i)),
			NWK:   uint16(0x1000 + 0x0101*i%0xE000),
			Hops:  hops,
			Model: fmt.Sprintf("mesh-router-%d", i), Manufacturer: "otabridge-sim", ManufacturerCode: 0x1234,
			ImageType: 0x0100, FileVersion: 0x00000010, Power: PowerMains, Profile: ProfileESPv2,
		}
		if i%3 == 2 {
			d.Model, d.Power, d.Profile = fmt.Sprintf("mesh-sensor-%d", i), PowerBattery, ProfilePeriodic
			d.ImageType, d.PollInterval, d.QueryInterval = 0x0200, 5*time.Second, 30*time.Minute
		}
		if i == 0 {
			d.Model, d.Manufacturer, d.ManufacturerCode, d.ImageType, d.FileVersion = "ESP32C6.Light", "Espressif", 0x131b, 0x0001, 0x01000000
		}
		if hops > 1 {
			rs := routersAt[hops-1]
			d.Parent = rs[i%len(rs)]
		}
		if d.Power == PowerMains {
			routersAt[hops] = append(routersAt[hops], d.IEEE)
		}
		out = append(out, d)
	}
	return out
}
