package ezsp

import "fmt"

// Status is a status as the stick sent it: an EmberStatus or EzspStatus byte up to v13, a 32-bit sl_Status
// from v14 on. Compare with Is, not with numbers: the same condition has different codes in the two worlds.
type Status struct {
	Value uint32
	Wide  bool // an sl_Status
	// Ezsp marks an EzspStatus byte: what the configuration, policy, value and endpoint commands return up to
	// v13 (EZSP_ERROR_INVALID_ID 0x37 …), not an EmberStatus.
	Ezsp bool
}

// ezspStatusCommands answer with an EzspStatus up to v13.
var ezspStatusCommands = map[uint16]bool{IDSetConfigurationValue: true, IDGetConfigurationValue: true, IDSetPolicy: true,
	IDSetValue: true, IDGetValue: true, IDGetExtendedValue: true, IDAddEndpoint: true}

// StatusOfFrame marks a status decoded from a frame's answer as an EzspStatus where the frame carries one.
func StatusOfFrame(id uint16, s Status) Status {
	if !s.Wide && ezspStatusCommands[id] {
		s.Ezsp = true
	}
	return s
}

// StatusKind is a condition otabridge cares about, independent of the version's numbering.
type StatusKind uint8

// Status kinds.
const (
	StatusOK StatusKind = iota
	StatusFail
	StatusInvalidParameter
	StatusInvalidCall
	StatusNetworkUp
	StatusNetworkDown
	StatusNotJoined
	StatusNetworkOpened
	StatusNetworkClosed
	StatusDeliveryFailed
	StatusMaxMessageLimit
	StatusNoBuffers
	StatusNetworkBusy
	StatusSecurityStateNotSet
	StatusIndexOutOfRange
	StatusNotFound
	StatusLibraryNotPresent
	numStatusKinds
)

// statusTable: EmberStatus (v13) and sl_Status (v14+) codes and names, from bellows types/named.py
// (EmberStatus, sl_Status) and UG100.
var statusTable = [numStatusKinds]struct {
	ember     uint8
	sl        uint32
	emberName string
	slName    string
}{
	StatusOK:                  {0x00, 0x0000, "SUCCESS", "SL_STATUS_OK"},
	StatusFail:                {0x01, 0x0001, "ERR_FATAL", "SL_STATUS_FAIL"},
	StatusInvalidParameter:    {0x02, 0x0021, "BAD_ARGUMENT", "SL_STATUS_INVALID_PARAMETER"},
	StatusInvalidCall:         {0x70, 0x0002, "INVALID_CALL", "SL_STATUS_INVALID_STATE"},
	StatusNetworkUp:           {0x90, 0x0015, "NETWORK_UP", "SL_STATUS_NETWORK_UP"},
	StatusNetworkDown:         {0x91, 0x0016, "NETWORK_DOWN", "SL_STATUS_NETWORK_DOWN"},
	StatusNotJoined:           {0x93, 0x0017, "NOT_JOINED", "SL_STATUS_NOT_JOINED"},
	StatusNetworkOpened:       {0x9C, 0x0C18, "NETWORK_OPENED", "SL_STATUS_ZIGBEE_NETWORK_OPENED"},
	StatusNetworkClosed:       {0x9D, 0x0C19, "NETWORK_CLOSED", "SL_STATUS_ZIGBEE_NETWORK_CLOSED"},
	StatusDeliveryFailed:      {0x66, 0x0C02, "DELIVERY_FAILED", "SL_STATUS_ZIGBEE_DELIVERY_FAILED"},
	StatusMaxMessageLimit:     {0x72, 0x0C03, "MAX_MESSAGE_LIMIT_REACHED", "SL_STATUS_ZIGBEE_MAX_MESSAGE_LIMIT_REACHED"},
	StatusNoBuffers:           {0x18, 0x0019, "NO_BUFFERS", "SL_STATUS_ALLOCATION_FAILED"},
	StatusNetworkBusy:         {0xA1, 0x0004, "NETWORK_BUSY", "SL_STATUS_BUSY"},
	StatusSecurityStateNotSet: {0xA8, 0x0C0B, "SECURITY_STATE_NOT_SET", "SL_STATUS_ZIGBEE_SECURITY_STATE_NOT_SET"},
	StatusIndexOutOfRange:     {0xB1, 0x0027, "INDEX_OUT_OF_RANGE", "SL_STATUS_INVALID_INDEX"},
	StatusNotFound:            {0x01, 0x002D, "ERR_FATAL", "SL_STATUS_NOT_FOUND"},
	StatusLibraryNotPresent:   {0xB5, 0x000E, "LIBRARY_NOT_PRESENT", "SL_STATUS_NOT_AVAILABLE"},
}

// StatusOf returns the code of a condition in this version's numbering.
func (v Version) StatusOf(k StatusKind) Status {
	if k >= numStatusKinds {
		k = StatusFail
	}
	if v.Wide() {
		return Status{Value: statusTable[k].sl, Wide: true}
	}
	return Status{Value: uint32(statusTable[k].ember)}
}

// OK reports success.
func (s Status) OK() bool { return s.Value == 0 }

// Is reports whether s is the condition k.
func (s Status) Is(k StatusKind) bool {
	if k >= numStatusKinds {
		return false
	}
	if s.Wide {
		return s.Value == statusTable[k].sl
	}
	return s.Value == uint32(statusTable[k].ember)
}

func (s Status) String() string {
	if s.Ezsp {
		return fmt.Sprintf("%s (0x%02x)", EzspStatusName(uint8(s.Value)), s.Value)
	}
	for _, e := range statusTable {
		if s.Wide && s.Value == e.sl {
			return fmt.Sprintf("%s (0x%04x)", e.slName, s.Value)
		}
		if !s.Wide && s.Value == uint32(e.ember) {
			return fmt.Sprintf("EMBER_%s (0x%02x)", e.emberName, s.Value)
		}
	}
	if s.Wide {
		return fmt.Sprintf("sl_Status 0x%04x", s.Value)
	}
	return fmt.Sprintf("EmberStatus 0x%02x", s.Value)
}

// EzspStatus values (ezsp-enum.h; the byte invalidCommand carries in every version, and the status of the
// configuration, policy and value commands up to v13). Checked against herdsman 10.9.5's EzspStatus enum.
const (
	EzspSuccess                           uint8 = 0x00
	EzspErrorVersionNotSet                uint8 = 0x30
	EzspErrorInvalidFrameID               uint8 = 0x31
	EzspErrorWrongDirection               uint8 = 0x32
	EzspErrorTruncated                    uint8 = 0x33
	EzspErrorOverflow                     uint8 = 0x34
	EzspErrorOutOfMemory                  uint8 = 0x35
	EzspErrorInvalidValue                 uint8 = 0x36
	EzspErrorInvalidID                    uint8 = 0x37
	EzspErrorInvalidCall                  uint8 = 0x38
	EzspErrorNoResponse                   uint8 = 0x39
	EzspErrorCommandTooLong               uint8 = 0x40
	EzspErrorQueueFull                    uint8 = 0x41
	EzspErrorCommandFiltered              uint8 = 0x42
	EzspErrorSecurityKeyAlreadySet        uint8 = 0x43
	EzspErrorSecurityTypeInvalid          uint8 = 0x44
	EzspErrorSecurityParametersInvalid    uint8 = 0x45
	EzspErrorSecurityParametersAlreadySet uint8 = 0x46
	EzspErrorSecurityKeyNotSet            uint8 = 0x47
	EzspErrorSecurityParametersNotSet     uint8 = 0x48
	EzspErrorUnsupportedControl           uint8 = 0x49
	EzspErrorUnsecureFrame                uint8 = 0x4A
)

var ezspStatusNames = map[uint8]string{
	EzspSuccess: "EZSP_SUCCESS", EzspErrorVersionNotSet: "EZSP_ERROR_VERSION_NOT_SET",
	EzspErrorInvalidFrameID: "EZSP_ERROR_INVALID_FRAME_ID", EzspErrorWrongDirection: "EZSP_ERROR_WRONG_DIRECTION",
	EzspErrorTruncated: "EZSP_ERROR_TRUNCATED", EzspErrorOverflow: "EZSP_ERROR_OVERFLOW",
	EzspErrorOutOfMemory: "EZSP_ERROR_OUT_OF_MEMORY", EzspErrorInvalidValue: "EZSP_ERROR_INVALID_VALUE",
	EzspErrorInvalidID: "EZSP_ERROR_INVALID_ID", EzspErrorInvalidCall: "EZSP_ERROR_INVALID_CALL",
	EzspErrorNoResponse: "EZSP_ERROR_NO_RESPONSE", EzspErrorCommandTooLong: "EZSP_ERROR_COMMAND_TOO_LONG",
	EzspErrorQueueFull: "EZSP_ERROR_QUEUE_FULL", EzspErrorCommandFiltered: "EZSP_ERROR_COMMAND_FILTERED",
	EzspErrorSecurityKeyAlreadySet:        "EZSP_ERROR_SECURITY_KEY_ALREADY_SET",
	EzspErrorSecurityTypeInvalid:          "EZSP_ERROR_SECURITY_TYPE_INVALID",
	EzspErrorSecurityParametersInvalid:    "EZSP_ERROR_SECURITY_PARAMETERS_INVALID",
	EzspErrorSecurityParametersAlreadySet: "EZSP_ERROR_SECURITY_PARAMETERS_ALREADY_SET",
	EzspErrorSecurityKeyNotSet:            "EZSP_ERROR_SECURITY_KEY_NOT_SET",
	EzspErrorSecurityParametersNotSet:     "EZSP_ERROR_SECURITY_PARAMETERS_NOT_SET",
	EzspErrorUnsupportedControl:           "EZSP_ERROR_UNSUPPORTED_CONTROL", EzspErrorUnsecureFrame: "EZSP_ERROR_UNSECURE_FRAME",
}

// EzspStatusName names an EzspStatus byte.
func EzspStatusName(s uint8) string {
	if n, ok := ezspStatusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("EzspStatus 0x%02x", s)
}
