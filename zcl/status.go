package zcl

import (
	"fmt"
	"strconv"
	"strings"
)

// statusNames are the spec names of the status codes in reference/zcl-ota.md §1.
var statusNames = map[Status]string{
	StatusSuccess:                  "SUCCESS",
	StatusFailure:                  "FAILURE",
	StatusNotAuthorized:            "NOT_AUTHORIZED",
	StatusMalformedCommand:         "MALFORMED_COMMAND",
	StatusUnsupCommand:             "UNSUP_COMMAND",
	StatusUnsupGeneralCommand:      "UNSUP_GENERAL_COMMAND",
	StatusUnsupManufClusterCommand: "UNSUP_MANUF_CLUSTER_COMMAND",
	StatusUnsupManufGeneralCommand: "UNSUP_MANUF_GENERAL_COMMAND",
	StatusInvalidField:             "INVALID_FIELD",
	StatusUnsupportedAttribute:     "UNSUPPORTED_ATTRIBUTE",
	StatusInvalidValue:             "INVALID_VALUE",
	StatusReadOnly:                 "READ_ONLY",
	StatusInsufficientSpace:        "INSUFFICIENT_SPACE",
	StatusNotFound:                 "NOT_FOUND",
	StatusTimeout:                  "TIMEOUT",
	StatusAbort:                    "ABORT",
	StatusInvalidImage:             "INVALID_IMAGE",
	StatusWaitForData:              "WAIT_FOR_DATA",
	StatusNoImageAvailable:         "NO_IMAGE_AVAILABLE",
	StatusRequireMoreImage:         "REQUIRE_MORE_IMAGE",
	StatusNotificationPending:      "NOTIFICATION_PENDING",
	StatusUnsupportedCluster:       "UNSUPPORTED_CLUSTER",
}

// String gives the spec name in upper snake case ("SUCCESS", "NO_IMAGE_AVAILABLE"), or "0x%02X" for a code
// this package does not name.
func (s Status) String() string {
	if name, ok := statusNames[s]; ok {
		return name
	}
	return fmt.Sprintf("0x%02X", uint8(s))
}

// MarshalText emits String(), so statuses are JSON strings.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText accepts what ParseStatus accepts.
func (s *Status) UnmarshalText(b []byte) error {
	v, err := ParseStatus(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseStatus reads a status name as String gives it (case-insensitive; the old name UNSUP_CLUSTER_COMMAND
// is accepted for UNSUP_COMMAND) or a code in hex ("0x97").
func ParseStatus(text string) (Status, error) {
	t := strings.ToUpper(strings.TrimSpace(text))
	if t == "UNSUP_CLUSTER_COMMAND" {
		return StatusUnsupCommand, nil
	}
	for code, name := range statusNames {
		if name == t {
			return code, nil
		}
	}
	if hex, ok := strings.CutPrefix(t, "0X"); ok {
		v, err := strconv.ParseUint(hex, 16, 8)
		if err == nil {
			return Status(v), nil
		}
	}
	return 0, fmt.Errorf("zcl status %q: not a status name or 0x code", text)
}
