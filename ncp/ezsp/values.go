package ezsp

// Configuration ids (EzspConfigId) otabridge sets before the network starts (reference/ezsp-znp.md §2.4).
const (
	ConfigPacketBufferCount           uint8 = 0x01
	ConfigStackProfile                uint8 = 0x0C
	ConfigSecurityLevel               uint8 = 0x0D
	ConfigMaxHops                     uint8 = 0x10
	ConfigMaxEndDeviceChildren        uint8 = 0x11
	ConfigIndirectTransmissionTimeout uint8 = 0x12
	ConfigTrustCenterAddressCacheSize uint8 = 0x19
	ConfigSourceRouteTableSize        uint8 = 0x1A
	ConfigKeyTableSize                uint8 = 0x1E
	ConfigFragmentWindowSize          uint8 = 0x1C
	ConfigFragmentDelayMS             uint8 = 0x1D
	ConfigApplicationZDOFlags         uint8 = 0x2A
	ConfigSupportedNetworks           uint8 = 0x2D
)

// Policy ids (EzspPolicyId) and the decisions otabridge uses.
const (
	PolicyTrustCenter               uint8 = 0x00
	PolicyBindingModification       uint8 = 0x01
	PolicyMessageContentsInCallback uint8 = 0x04
	PolicyTCKeyRequest              uint8 = 0x05
	PolicyAppKeyRequest             uint8 = 0x06

	// TRUST_CENTER policy bitmask (v8+): ALLOW_JOINS 0x01, ALLOW_UNSECURED_REJOINS 0x02.
	DecisionAllowJoins                          uint8 = 0x01
	DecisionAllowUnsecuredRejoins               uint8 = 0x02
	DecisionCheckBindingModifications           uint8 = 0x12
	DecisionMessageTagOnlyInCallback            uint8 = 0x40
	DecisionAllowTCKeyRequestsAndSendCurrentKey uint8 = 0x51
	DecisionDenyAppKeyRequests                  uint8 = 0x60
)

// Value ids (EzspValueId).
const (
	ValueExtendedSecurityBitmask uint8 = 0x0A
	ValueVersionInfo             uint8 = 0x11
)

// Extended security bitmask bits.
const (
	ExtSecurityJoinerGlobalLinkKey       uint16 = 0x0010
	ExtSecurityNwkLeaveRequestNotAllowed uint16 = 0x0100
)

// Network states (EmberNetworkStatus).
const (
	NetworkStateNoNetwork      uint8 = 0
	NetworkStateJoining        uint8 = 1
	NetworkStateJoined         uint8 = 2
	NetworkStateJoinedNoParent uint8 = 3
	NetworkStateLeaving        uint8 = 6
)

// Node types (EmberNodeType).
const NodeTypeCoordinator uint8 = 1

// Concentrator types.
const ConcentratorHighRAM uint16 = 0xFFF9
