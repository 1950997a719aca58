package sim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/otabridge/otabridge/zcl"
)

// Config describes the simulated network: the coordinator and its virtual devices. It is the `radio.sim`
// section of the bridge's configuration file; keys are snake_case, durations are Go duration strings
// ("5m", "250ms"), IEEE addresses are "0x" + 16 hex digits.
type Config struct {
	Channel         uint8    `yaml:"channel"`
	PANID           uint16   `yaml:"pan_id"`
	ExtendedPANID   zcl.IEEE `yaml:"extended_pan_id"`
	CoordinatorIEEE zcl.IEEE `yaml:"coordinator_ieee"`
	// NetworkKey is the key of the configured network (the one pre-joined devices are members of).
	NetworkKey NetworkKey `yaml:"network_key"`
	Seed       int64      `yaml:"seed"`
	// Existing starts the network as one another host (Zigbee2MQTT, ZHA) built and ran: every device is
	// already joined and stays silent (announce_on_start defaults to false), and the coordinator's address
	// table knows none of them, so their frames reach the host with the short address only until the host
	// resolves it (the device's IEEE_addr_rsp / NWK_addr_rsp, an announce or a join teaches the coordinator).
	// The stick reports the network as not formed by this host.
	Existing bool           `yaml:"existing"`
	Link     LinkConfig     `yaml:"link"`
	Devices  []DeviceConfig `yaml:"devices"`
}

// LinkConfig sets the link model and the network-wide faults.
type LinkConfig struct {
	// Mode is "realistic" (802.15.4 air times, CSMA-CA, acks) or "fast" (no delays at all; for tests).
	Mode string `yaml:"mode"`
	// Loss is the probability that one transmission attempt on one hop is lost (0..1).
	Loss float64 `yaml:"loss"`
	// Duplicate is the probability that a delivered frame reaches the application twice (0..1).
	Duplicate float64 `yaml:"duplicate"`
	// MACRetries is the number of MAC retransmissions per hop after the first attempt: 0 means the
	// default (3, macMaxFrameRetries); a negative value means none.
	MACRetries int `yaml:"mac_retries"`
	// FragmentWindow is the number of APS fragments sent before the sender waits for the APS ack of that
	// window (apsMaxWindowSize, 1..8; 0: the default 8). FragmentInterval is the gap between two fragments
	// of a window (apsInterframeDelay; default 0).
	FragmentWindow   int           `yaml:"fragment_window"`
	FragmentInterval time.Duration `yaml:"fragment_interval"`
	// MaxFragmentedPayload is the largest APS payload the coordinator sends fragmented (0: the default 640 B,
	// 8 fragments; a negative value turns fragmentation off, so the bridge serves unfragmented blocks only).
	MaxFragmentedPayload int `yaml:"max_fragmented_payload"`
	// Background is traffic of the home's other devices that shares the channel (a busy mesh).
	Background BackgroundConfig `yaml:"background"`
}

// BackgroundConfig models other traffic on the channel: Rate frames a second on average (Poisson
// arrivals) of Payload APS bytes each, each a unicast over one hop with MAC retries and ack.
type BackgroundConfig struct {
	Rate    float64 `yaml:"rate"`
	Payload int     `yaml:"payload"`
}

// DeviceConfig describes one virtual device. Zero values take the defaults below.
type DeviceConfig struct {
	IEEE             zcl.IEEE `yaml:"ieee"`
	NWK              uint16   `yaml:"nwk"`
	Endpoint         uint8    `yaml:"endpoint"`
	Model            string   `yaml:"model"`
	Manufacturer     string   `yaml:"manufacturer"`
	ManufacturerCode uint16   `yaml:"manufacturer_code"`
	ImageType        uint16   `yaml:"image_type"`
	HardwareVersion  uint16   `yaml:"hardware_version"`
	FileVersion      uint32   `yaml:"file_version"`
	SWBuildID        string   `yaml:"sw_build_id"`
	// NewSWBuildID is the SW build id the device reports after a successful upgrade ("" keeps SWBuildID).
	NewSWBuildID string `yaml:"new_sw_build_id"`
	DateCode     string `yaml:"date_code"`
	// Power is "mains" (a router, receiver always on) or "battery" (a sleepy end device that polls).
	Power            string        `yaml:"power"`
	PollInterval     time.Duration `yaml:"poll_interval"`
	FastPollInterval time.Duration `yaml:"fast_poll_interval"`
	Hops             int           `yaml:"hops"`
	// Profile is the OTA client behaviour: esp-v2, periodic, page, silabs, restart-on-loss or manual.
	Profile            string        `yaml:"profile"`
	QueryInterval      time.Duration `yaml:"query_interval"`       // periodic, page and silabs profiles
	MaxDataSize        uint8         `yaml:"max_data_size"`        // 0: the profile's default
	PageSize           uint16        `yaml:"page_size"`            // page profile
	ResponseSpacingMS  uint16        `yaml:"response_spacing_ms"`  // page profile
	MinimumBlockPeriod uint16        `yaml:"minimum_block_period"` // milliseconds
	// APSAck says whether the device asks for APS acknowledgements on its unicasts (default true).
	APSAck *bool `yaml:"aps_ack"`
	// Battery is the battery level in percent of a battery device (default 100); it answers Read
	// Attributes of the Power Configuration cluster (percentage remaining in half percent, and the voltage).
	// BatteryVoltageOnly makes it report only the voltage (100 mV units), as some devices do.
	Battery            *float64 `yaml:"battery"`
	BatteryVoltageOnly bool     `yaml:"battery_voltage_only"`
	// APSFragmentation says whether the device's stack reassembles APS-fragmented frames (default true); a
	// device without it drops fragments and never acknowledges them.
	APSFragmentation *bool `yaml:"aps_fragmentation"`
	// Loss and Duplicate add to the network-wide rates: p = 1 − (1 − link)(1 − device).
	Loss      float64 `yaml:"loss"`
	Duplicate float64 `yaml:"duplicate"`
	// ProcessingDelay is added before the device handles each received frame (a slow device).
	ProcessingDelay time.Duration `yaml:"processing_delay"`
	// RebootAtPercent makes the device reboot once when a download passes that share (0: never).
	RebootAtPercent float64       `yaml:"reboot_at_percent"`
	RebootTime      time.Duration `yaml:"reboot_time"`
	RequestTimeout  time.Duration `yaml:"request_timeout"`
	// Retries is how often a request is resent after a timeout before the exchange is given up (0: default 5).
	Retries         int   `yaml:"retries"`
	AnnounceOnStart *bool `yaml:"announce_on_start"`
	// Joined says whether the device starts as a member of the configured network (default true). A device
	// with joined: false scans for a network and joins only while permit join is open on the coordinator's.
	Joined *bool `yaml:"joined"`
	// Rejoin makes a device that left the network join it again the next time permit join is open.
	Rejoin bool `yaml:"rejoin"`
	// Parent is the IEEE address of a mains-powered device of this configuration the device joins through
	// when that router is in the network (0: the coordinator).
	Parent zcl.IEEE `yaml:"parent"`
}

// Client profiles.
const (
	ProfileESPv2         = "esp-v2"
	ProfilePeriodic      = "periodic"
	ProfilePage          = "page"
	ProfileSilabs        = "silabs"
	ProfileRestartOnLoss = "restart-on-loss"
	ProfileManual        = "manual"
)

var profiles = []string{ProfileESPv2, ProfilePeriodic, ProfilePage, ProfileSilabs, ProfileRestartOnLoss, ProfileManual}

// Power sources and link modes.
const (
	PowerMains    = "mains"
	PowerBattery  = "battery"
	ModeRealistic = "realistic"
	ModeFast      = "fast"
)

// Defaults, filled in by New (and by Config.WithDefaults) for zero values:
//
//	channel 15, pan_id 0x1A62, extended_pan_id 0xDDDDDDDDDDDDDDDD, coordinator_ieee 0x00124B00C0DEC0DE
//	network_key 01030507090B0D0F00020406080A0C0D (the Zigbee2MQTT default key)
//	link: mode realistic, mac_retries 3, fragment_window 8, fragment_interval 0, max_fragmented_payload 640
//	device:
//	  nwk                  derived from the IEEE (low 16 bits, moved out of 0x0000 and 0xFFF8..0xFFFF
//	                       and away from other devices' addresses); a joined: false device gets it from
//	                       the coordinator when it joins, and keeps it when it rejoins
//	  endpoint             1
//	  model                "sim-device", manufacturer "otabridge-sim"
//	  power                mains
//	  poll_interval        7s (battery devices), fast_poll_interval 250ms (used while an OTA exchange runs)
//	  hops                 1
//	  profile              esp-v2
//	  query_interval       5m (periodic and silabs profiles)
//	  max_data_size        esp-v2 and restart-on-loss 223 (the seed's ESP client), silabs 63 (SiLabs client
//	                       cap), page, periodic and manual 64 (the largest block whose response, 17 + 64 =
//	                       81 B, fits one unfragmented APS frame of 82 B)
//	  page_size            1024 bytes, response_spacing_ms 20
//	  minimum_block_period 0 ms
//	  aps_ack              true, aps_fragmentation true
//	  request_timeout      5s, retries 5 (per request; then the download is given up)
//	  reboot_time          5s
//	  announce_on_start    true (false when the network is `existing`)
//	  joined               true (a member of the configured network from the start)
const (
	DefaultChannel              uint8    = 15
	DefaultPANID                uint16   = 0x1A62
	DefaultExtendedPANID        zcl.IEEE = 0xDDDDDDDDDDDDDDDD
	DefaultCoordinatorIEEE      zcl.IEEE = 0x00124B00C0DEC0DE
	DefaultMACRetries                    = 3
	DefaultFragmentWindow                = 8
	DefaultMaxFragmentedPayload          = 8 * MaxFragmentPayload
	DefaultEndpoint             uint8    = 1
	DefaultModel                         = "sim-device"
	DefaultManufacturer                  = "otabridge-sim"
	DefaultPollInterval                  = 7 * time.Second
	DefaultFastPollInterval              = 250 * time.Millisecond
	DefaultQueryInterval                 = 5 * time.Minute
	DefaultPageSize             uint16   = 1024
	DefaultResponseSpacing      uint16   = 20
	DefaultRequestTimeout                = 5 * time.Second
	DefaultRetries                       = 5
	DefaultRebootTime                    = 5 * time.Second
)

// DefaultNetworkKey is the network key of the configured network when network_key is not set.
var DefaultNetworkKey = NetworkKey{0x01, 0x03, 0x05, 0x07, 0x09, 0x0B, 0x0D, 0x0F, 0x00, 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C, 0x0D}

// DefaultMaxDataSize returns the default max data size of a client profile.
func DefaultMaxDataSize(profile string) uint8 {
	switch profile {
	case ProfileESPv2, ProfileRestartOnLoss, "":
		return 223
	case ProfileSilabs:
		return 63
	default:
		return 64
	}
}

// ParseConfig reads a YAML `radio.sim` section strictly (unknown keys are errors) and validates it.
// It does not fill defaults; New does.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("radio.sim: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the configuration and names the first bad key, e.g.
// `radio.sim.devices[2].profile: unknown profile "x" (want esp-v2, periodic, page, silabs, restart-on-loss, manual)`.
func (c *Config) Validate() error {
	const p = "radio.sim"
	if c.Channel != 0 && (c.Channel < 11 || c.Channel > 26) {
		return fmt.Errorf("%s.channel: %d is not a 2.4 GHz channel (want 11..26)", p, c.Channel)
	}
	if c.PANID >= 0xFFFF && c.PANID != 0 {
		return fmt.Errorf("%s.pan_id: 0x%04X is reserved", p, c.PANID)
	}
	switch c.Link.Mode {
	case "", ModeRealistic, ModeFast:
	default:
		return fmt.Errorf("%s.link.mode: unknown mode %q (want realistic, fast)", p, c.Link.Mode)
	}
	if err := checkRate(p+".link.loss", c.Link.Loss); err != nil {
		return err
	}
	if err := checkRate(p+".link.duplicate", c.Link.Duplicate); err != nil {
		return err
	}
	if c.Link.Background.Rate < 0 || c.Link.Background.Rate > 1000 {
		return fmt.Errorf("%s.link.background.rate: %g is out of range (0..1000 frames a second)", p, c.Link.Background.Rate)
	}
	if c.Link.Background.Payload < 0 || c.Link.Background.Payload > MaxAPSPayload {
		return fmt.Errorf("%s.link.background.payload: %d is out of range (0..%d bytes)", p, c.Link.Background.Payload, MaxAPSPayload)
	}
	if c.Link.MACRetries > 7 {
		return fmt.Errorf("%s.link.mac_retries: %d is more than 7", p, c.Link.MACRetries)
	}
	if c.Link.FragmentWindow < 0 || c.Link.FragmentWindow > 8 {
		return fmt.Errorf("%s.link.fragment_window: %d is out of range (1..8)", p, c.Link.FragmentWindow)
	}
	if c.Link.FragmentInterval < 0 || c.Link.FragmentInterval > 255*time.Millisecond {
		return fmt.Errorf("%s.link.fragment_interval: %s is out of range (0..255ms)", p, c.Link.FragmentInterval)
	}
	ieees := make(map[zcl.IEEE]int, len(c.Devices))
	nwks := make(map[uint16]int, len(c.Devices))
	for i := range c.Devices {
		d := &c.Devices[i]
		dp := fmt.Sprintf("%s.devices[%d]", p, i)
		if d.IEEE == 0 || d.IEEE == 0xFFFFFFFFFFFFFFFF {
			return fmt.Errorf("%s.ieee: missing or invalid IEEE address %s", dp, d.IEEE)
		}
		if d.IEEE == c.CoordinatorIEEE || (c.CoordinatorIEEE == 0 && d.IEEE == DefaultCoordinatorIEEE) {
			return fmt.Errorf("%s.ieee: %s is the coordinator's address", dp, d.IEEE)
		}
		if j, dup := ieees[d.IEEE]; dup {
			return fmt.Errorf("%s.ieee: %s is also devices[%d]", dp, d.IEEE, j)
		}
		ieees[d.IEEE] = i
		if d.NWK != 0 {
			if d.NWK >= 0xFFF8 {
				return fmt.Errorf("%s.nwk: 0x%04X is a broadcast address", dp, d.NWK)
			}
			if j, dup := nwks[d.NWK]; dup {
				return fmt.Errorf("%s.nwk: 0x%04X is also devices[%d]", dp, d.NWK, j)
			}
			nwks[d.NWK] = i
		}
		if d.Endpoint > 240 {
			return fmt.Errorf("%s.endpoint: %d is not an application endpoint (want 1..240)", dp, d.Endpoint)
		}
		if d.Profile != "" && !validProfile(d.Profile) {
			return fmt.Errorf("%s.profile: unknown profile %q (want %s)", dp, d.Profile, strings.Join(profiles, ", "))
		}
		switch d.Power {
		case "", PowerMains, PowerBattery:
		default:
			return fmt.Errorf("%s.power: unknown power source %q (want mains, battery)", dp, d.Power)
		}
		if d.Hops < 0 || d.Hops > 15 {
			return fmt.Errorf("%s.hops: %d is out of range (want 1..15)", dp, d.Hops)
		}
		for _, dur := range []struct {
			key string
			v   time.Duration
		}{
			{"poll_interval", d.PollInterval}, {"fast_poll_interval", d.FastPollInterval},
			{"query_interval", d.QueryInterval}, {"processing_delay", d.ProcessingDelay},
			{"reboot_time", d.RebootTime}, {"request_timeout", d.RequestTimeout},
		} {
			if dur.v < 0 {
				return fmt.Errorf("%s.%s: negative duration %s", dp, dur.key, dur.v)
			}
		}
		if d.PollInterval != 0 && d.PollInterval < time.Millisecond {
			return fmt.Errorf("%s.poll_interval: %s is shorter than 1ms", dp, d.PollInterval)
		}
		if d.FastPollInterval != 0 && d.FastPollInterval < time.Millisecond {
			return fmt.Errorf("%s.fast_poll_interval: %s is shorter than 1ms", dp, d.FastPollInterval)
		}
		if d.QueryInterval != 0 && d.QueryInterval < time.Second {
			return fmt.Errorf("%s.query_interval: %s is shorter than 1s", dp, d.QueryInterval)
		}
		if d.RequestTimeout != 0 && d.RequestTimeout < time.Millisecond {
			return fmt.Errorf("%s.request_timeout: %s is shorter than 1ms", dp, d.RequestTimeout)
		}
		if d.Retries < 0 {
			return fmt.Errorf("%s.retries: negative (%d)", dp, d.Retries)
		}
		if d.PageSize != 0 && d.MaxDataSize != 0 && d.PageSize < uint16(d.MaxDataSize) {
			return fmt.Errorf("%s.page_size: %d is smaller than max_data_size %d", dp, d.PageSize, d.MaxDataSize)
		}
		if d.Battery != nil && (*d.Battery < 0 || *d.Battery > 100) {
			return fmt.Errorf("%s.battery: %g %% is out of range (0..100)", dp, *d.Battery)
		}
		if err := checkRate(dp+".loss", d.Loss); err != nil {
			return err
		}
		if err := checkRate(dp+".duplicate", d.Duplicate); err != nil {
			return err
		}
		if d.RebootAtPercent < 0 || d.RebootAtPercent >= 100 || d.RebootAtPercent != d.RebootAtPercent {
			return fmt.Errorf("%s.reboot_at_percent: %v is out of range (want 0 for never, or below 100)", dp, d.RebootAtPercent)
		}
	}
	for i, d := range c.Devices {
		if d.Parent == 0 {
			continue
		}
		dp := fmt.Sprintf("%s.devices[%d].parent", p, i)
		j, ok := ieees[d.Parent]
		switch {
		case d.Parent == d.IEEE:
			return fmt.Errorf("%s: a device cannot be its own parent", dp)
		case !ok:
			return fmt.Errorf("%s: %s is not a device of this configuration", dp, d.Parent)
		case c.Devices[j].Power == PowerBattery:
			return fmt.Errorf("%s: devices[%d] is a battery end device, not a router", dp, j)
		}
	}
	return nil
}

func checkRate(key string, v float64) error {
	if !(v >= 0 && v < 1) { // also rejects NaN
		return fmt.Errorf("%s: %v is not a probability in [0, 1)", key, v)
	}
	return nil
}

func validProfile(p string) bool {
	for _, q := range profiles {
		if p == q {
			return true
		}
	}
	return false
}

// WithDefaults returns a copy of the configuration with every zero value replaced by its default (see the
// Defaults block). It assumes Validate passed.
func (c Config) WithDefaults() Config {
	if c.Channel == 0 {
		c.Channel = DefaultChannel
	}
	if c.PANID == 0 {
		c.PANID = DefaultPANID
	}
	if c.ExtendedPANID == 0 {
		c.ExtendedPANID = DefaultExtendedPANID
	}
	if c.CoordinatorIEEE == 0 {
		c.CoordinatorIEEE = DefaultCoordinatorIEEE
	}
	if c.Link.FragmentWindow == 0 {
		c.Link.FragmentWindow = DefaultFragmentWindow
	}
	if c.Link.MaxFragmentedPayload == 0 {
		c.Link.MaxFragmentedPayload = DefaultMaxFragmentedPayload
	}
	if c.NetworkKey == (NetworkKey{}) {
		c.NetworkKey = DefaultNetworkKey
	}
	if c.Link.Mode == "" {
		c.Link.Mode = ModeRealistic
	}
	if c.Link.MACRetries == 0 {
		c.Link.MACRetries = DefaultMACRetries
	} else if c.Link.MACRetries < 0 {
		c.Link.MACRetries = -1
	}
	devs := make([]DeviceConfig, len(c.Devices))
	used := map[uint16]bool{0: true}
	for _, d := range c.Devices {
		if d.NWK != 0 {
			used[d.NWK] = true
		}
	}
	for i, d := range c.Devices {
		if d.NWK == 0 {
			n := uint16(d.IEEE)
			for used[n] || n >= 0xFFF8 {
				n = (n + 0x0101) % 0xFFF8
			}
			d.NWK = n
			used[n] = true
		}
		if d.Endpoint == 0 {
			d.Endpoint = DefaultEndpoint
		}
		if d.Model == "" {
			d.Model = DefaultModel
		}
		if d.Manufacturer == "" {
			d.Manufacturer = DefaultManufacturer
		}
		if d.Power == "" {
			d.Power = PowerMains
		}
		if d.Power == PowerBattery {
			if d.PollInterval == 0 {
				d.PollInterval = DefaultPollInterval
			}
			if d.FastPollInterval == 0 {
				d.FastPollInterval = DefaultFastPollInterval
			}
		}
		if d.Hops == 0 {
			d.Hops = 1
		}
		if d.Profile == "" {
			d.Profile = ProfileESPv2
		}
		if d.QueryInterval == 0 {
			d.QueryInterval = DefaultQueryInterval
		}
		if d.MaxDataSize == 0 {
			d.MaxDataSize = DefaultMaxDataSize(d.Profile)
		}
		if d.PageSize == 0 {
			d.PageSize = DefaultPageSize
		}
		if d.ResponseSpacingMS == 0 {
			d.ResponseSpacingMS = DefaultResponseSpacing
		}
		if d.APSAck == nil {
			d.APSAck = boolPtr(true)
		}
		if d.APSFragmentation == nil {
			d.APSFragmentation = boolPtr(true)
		}
		if d.RequestTimeout == 0 {
			d.RequestTimeout = DefaultRequestTimeout
		}
		if d.Retries == 0 {
			d.Retries = DefaultRetries
		}
		if d.RebootTime == 0 {
			d.RebootTime = DefaultRebootTime
		}
		if d.AnnounceOnStart == nil {
			d.AnnounceOnStart = boolPtr(!c.Existing)
		}
		if d.Joined == nil {
			d.Joined = boolPtr(true)
		}
		devs[i] = d
	}
	c.Devices = devs
	return c
}

func boolPtr(b bool) *bool { return &b }

// networkParams is the configured network (defaults filled in).
func (c Config) networkParams() NetworkParams {
	return NetworkParams{Channel: c.Channel, PANID: c.PANID, ExtendedPANID: c.ExtendedPANID, NetworkKey: c.NetworkKey}
}
