package fakestick

import (
	"github.com/otabridge/otabridge/ncp/ezsp"
	"github.com/otabridge/otabridge/zcl"
)

// nvram is what an EmberZNet NCP keeps in its tokens across resets and host sessions: the network it formed,
// its keys and frame counter, and the link key table. The Stick holds one for its whole life (the simstick
// process), so stop → start again → networkInit resumes.
type nvram struct {
	network         *ezsp.NetworkParameters
	networkKey      [16]byte
	haveNetworkKey  bool
	keySequence     uint8
	nwkFrameCounter uint32
	tcLinkKey       [16]byte
	keyTable        []keyTableEntry
}

// keyTableEntry is one APS link key of the key table.
type keyTableEntry struct {
	set   bool
	eui64 zcl.IEEE
	key   [16]byte
}

// keyTableSize is the NCP's key table size (EZSP_CONFIG_KEY_TABLE_SIZE as the common 7.4 NCP builds report it).
const keyTableSize = 12

// ncpConfigDefaults are the values getConfigurationValue returns for ids the host did not set: an EmberZNet
// 7.4 NCP (zigbee_ncp) build's. Ids not listed answer EZSP_ERROR_INVALID_ID.
var ncpConfigDefaults = map[uint8]uint16{
	0x01: 255,  // PACKET_BUFFER_HEAP_SIZE (the heap is sized in buffers of 32 bytes)
	0x02: 16,   // NEIGHBOR_TABLE_SIZE
	0x03: 10,   // APS_UNICAST_MESSAGE_COUNT
	0x04: 2,    // BINDING_TABLE_SIZE
	0x05: 8,    // ADDRESS_TABLE_SIZE
	0x06: 8,    // MULTICAST_TABLE_SIZE
	0x07: 16,   // ROUTE_TABLE_SIZE
	0x08: 8,    // DISCOVERY_TABLE_SIZE
	0x0C: 2,    // STACK_PROFILE (Zigbee PRO)
	0x0D: 5,    // SECURITY_LEVEL
	0x10: 30,   // MAX_HOPS
	0x11: 6,    // MAX_END_DEVICE_CHILDREN
	0x12: 3000, // INDIRECT_TRANSMISSION_TIMEOUT (ms)
	0x13: 8,    // END_DEVICE_POLL_TIMEOUT
	0x17: 0,    // TX_POWER_MODE
	0x18: 0,    // DISABLE_RELAY
	0x19: 2,    // TRUST_CENTER_ADDRESS_CACHE_SIZE
	0x1A: 7,    // SOURCE_ROUTE_TABLE_SIZE
	0x1C: 1,    // FRAGMENT_WINDOW_SIZE
	0x1D: 50,   // FRAGMENT_DELAY_MS
	0x1E: keyTableSize,
	0x1F: 1600,   // APS_ACK_TIMEOUT (ms)
	0x20: 32,     // BEACON_JITTER_DURATION
	0x22: 1,      // PAN_ID_CONFLICT_REPORT_THRESHOLD
	0x24: 0,      // REQUEST_KEY_TIMEOUT
	0x29: 0,      // CERTIFICATE_TABLE_SIZE
	0x2A: 0,      // APPLICATION_ZDO_FLAGS
	0x2B: 15,     // BROADCAST_TABLE_SIZE
	0x2C: 0,      // MAC_FILTER_TABLE_SIZE
	0x2D: 1,      // SUPPORTED_NETWORKS
	0x2E: 1,      // SEND_MULTICASTS_TO_SLEEPY_ADDRESS
	0x33: 1,      // MTORR_FLOW_CONTROL
	0x34: 16,     // RETRY_QUEUE_SIZE
	0x35: 10,     // NEW_BROADCAST_ENTRY_THRESHOLD
	0x36: 300,    // TRANSIENT_KEY_TIMEOUT_S
	0x37: 1,      // BROADCAST_MIN_ACKS_NEEDED
	0x38: 300,    // TC_REJOINS_USING_WELL_KNOWN_KEY_TIMEOUT_S
	0x39: 0xFFFF, // CTUNE_VALUE (not set)
	0x40: 0,      // ASSUME_TC_CONCENTRATOR_TYPE
	0x41: 5,      // GP_PROXY_TABLE_SIZE
	0x42: 0,      // GP_SINK_TABLE_SIZE
	0x43: 0,      // END_DEVICE_CONFIGURATION
}

// ncpValueDefaults are the values getValue returns for ids the host did not set (value ids: EzspValueId).
var ncpValueDefaults = map[uint8][]byte{
	0x03: {0x00, 0x10}, // BUFFER_HEAP_FREE_SIZE
	0x05: {82, 0},      // MAXIMUM_INCOMING_TRANSFER_SIZE
	0x06: {82, 0},      // MAXIMUM_OUTGOING_TRANSFER_SIZE
	0x07: {1},          // STACK_TOKEN_WRITING
	0x08: {0},          // STACK_IS_PERFORMING_REJOIN
	0x0A: {0, 0},       // EXTENDED_SECURITY_BITMASK
	0x15: {0},          // CCA_THRESHOLD
	0x29: {1},          // ENABLE_R21_BEHAVIOR
	0x3F: {3},          // END_DEVICE_KEEP_ALIVE_SUPPORT_MODE (both)
	0x43: {0x10, 0x27}, // TRANSIENT_DEVICE_TIMEOUT (10000 ms)
	0x44: {3},          // KEY_STORAGE_VERSION (PSA)
}

// Value ids the stick gives meaning to.
const (
	valueNodeShortID    uint8 = 0x0B
	valueNwkFrameCount  uint8 = 0x23
	valueStackRevision  uint8 = 0x49
	valueNwkOpenSeconds uint8 = 0x42
)
