package sim

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/otabridge/otabridge/zcl"
)

// NetworkParams is a Zigbee network: what a device must share with the coordinator to hear it.
type NetworkParams struct {
	Channel       uint8 // 11..26
	PANID         uint16
	ExtendedPANID zcl.IEEE
	NetworkKey    [16]byte
}

// NetworkKey is a 128-bit network key; in YAML it is 32 hex digits ("0x" prefix and ':' separators allowed).
type NetworkKey [16]byte

// MarshalText writes the key as 32 lower-case hex digits.
func (k NetworkKey) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(k[:])), nil }

// UnmarshalText reads 32 hex digits.
func (k *NetworkKey) UnmarshalText(b []byte) error {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), "0X")
	t = strings.ReplaceAll(t, ":", "")
	if len(t) != 32 {
		return fmt.Errorf("network key %q: want 32 hex digits", string(b))
	}
	if _, err := hex.Decode(k[:], []byte(t)); err != nil {
		return fmt.Errorf("network key %q: %w", string(b), err)
	}
	return nil
}

// EndpointDesc is one endpoint the host registered on the coordinator (EZSP addEndpoint, ZNP AF_REGISTER).
type EndpointDesc struct {
	Endpoint      uint8
	ProfileID     uint16
	DeviceID      uint16
	DeviceVersion uint8
	InClusters    []uint16
	OutClusters   []uint16
}

// defaultCoordinatorEndpoints is the coordinator's endpoint list before the host sets its own: endpoint 1,
// Home Automation, input clusters Basic and OTA Upgrade.
func defaultCoordinatorEndpoints() []EndpointDesc {
	return []EndpointDesc{{
		Endpoint: 1, ProfileID: zcl.ProfileHomeAutomation, DeviceID: 0x0005, DeviceVersion: 1,
		InClusters: []uint16{zcl.ClusterBasic, zcl.ClusterOTA},
	}}
}

// Form moves the coordinator onto the network the host formed or resumed (formNetwork / networkInit on an
// NCP). Devices that are members of another network (other channel, PAN id, ext PAN id or key) no longer hear
// the coordinator nor it them: a unicast to them ends in a delivery failure, their frames never arrive.
// Devices not joined anywhere (config `joined: false`, or after a leave) scan every channel and join this
// network when, and only when, permit join is open on it. Returns an error for a channel outside 11..26.
func (n *Network) Form(p NetworkParams) error {
	if p.Channel < 11 || p.Channel > 26 {
		return fmt.Errorf("sim: form network: channel %d is not a 2.4 GHz channel (want 11..26)", p.Channel)
	}
	n.mu.Lock()
	n.params = p
	n.mu.Unlock()
	return nil
}

// Params is the network the coordinator currently runs (from config until Form is called).
func (n *Network) Params() NetworkParams {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.params
}

// SetCoordinatorEndpoints replaces the coordinator's endpoint list (default: endpoint 1, profile 0x0104,
// in clusters 0x0000 and 0x0019); the coordinator's Active_EP/Simple_Desc/Match_Desc answers use it.
func (n *Network) SetCoordinatorEndpoints(eps []EndpointDesc) {
	cp := make([]EndpointDesc, len(eps))
	for i, e := range eps {
		e.InClusters = append([]uint16(nil), e.InClusters...)
		e.OutClusters = append([]uint16(nil), e.OutClusters...)
		cp[i] = e
	}
	n.mu.Lock()
	n.coordEPs = cp
	n.mu.Unlock()
}

// RemoveDevice makes a device leave the network (as after a ZDO Mgmt_Leave_req with rejoin=false): EventLeft;
// it then stays out until permit join is open again (it rejoins then only if its config says `rejoin: true`).
// A Mgmt_Leave_req (ZDO 0x0034) sent by the host with Send to a device has the same effect (and the device
// answers Mgmt_Leave_rsp 0x8034 first). It returns an error for an unknown IEEE address.
func (n *Network) RemoveDevice(ieee zcl.IEEE) error {
	if n.byIEEE[ieee] == nil {
		return fmt.Errorf("sim: remove device: no device %s", ieee)
	}
	return nil
}
