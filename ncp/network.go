package ncp

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/otabridge/otabridge/zcl"
)

// NetworkSettings are the parameters of the Zigbee network the coordinator runs, one type for every serial
// driver, so the bridge saves and restores them without knowing the driver. In the configuration, zero
// values mean "choose at random when forming"; a driver reports what was chosen (or, after resuming a
// stored network, what the stick reports; the key is then only known if it was configured or saved).
type NetworkSettings struct {
	Channel       uint8      `yaml:"channel" json:"channel"`
	PANID         uint16     `yaml:"pan_id" json:"pan_id"`
	ExtendedPANID zcl.IEEE   `yaml:"extended_pan_id" json:"extended_pan_id"`
	NetworkKey    NetworkKey `yaml:"network_key" json:"network_key"`
}

// NetworkKey is a 128-bit network key; in YAML and JSON it is 32 hex digits (spaces and colons allowed).
type NetworkKey [16]byte

// IsZero reports whether the key is unset.
func (k NetworkKey) IsZero() bool { return k == NetworkKey{} }

// String returns the key as 32 hex digits.
func (k NetworkKey) String() string { return hex.EncodeToString(k[:]) }

// MarshalText returns the hex form.
func (k NetworkKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads 32 hex digits.
func (k *NetworkKey) UnmarshalText(b []byte) error {
	s := strings.NewReplacer(" ", "", ":", "", "0x", "").Replace(strings.TrimSpace(string(b)))
	if s == "" {
		*k = NetworkKey{}
		return nil
	}
	v, err := hex.DecodeString(s)
	if err != nil || len(v) != 16 {
		return fmt.Errorf("network key %q: want 32 hex digits", string(b))
	}
	copy(k[:], v)
	return nil
}
