// Package ota owns everything about Zigbee OTA upgrades that does not depend on MQTT or on a particular
// radio: the OTA upgrade file format (parse tolerant of vendor wrappers, build), the image store (a folder,
// zigbee-OTA index files, a remote index with a cache, uploads), the matching rules, and the OTA server
// engine — per-device sessions, block and page serving, rate control, the queue with its concurrency cap,
// the approval policy, schedules, upgrade end and post-upgrade verification, progress and ETA.
//
// The engine is driven by calls (HandleFrame, Update, Approve, …) and timers on a clock.Clock; it sends
// frames and reports state through the Output interface its owner provides.
package ota

import (
	"time"

	"github.com/otabridge/otabridge/zcl"
)

// DeviceInfo is what the engine knows about a device: identity from the bridge's interview (Basic and OTA
// cluster attributes) and the latest Query Next Image Request.
type DeviceInfo struct {
	IEEE             zcl.IEEE `json:"ieee"`
	Model            string   `json:"model,omitempty"`
	ManufacturerName string   `json:"manufacturer,omitempty"`
	ManufacturerCode uint16   `json:"manufacturer_code"`
	ImageType        uint16   `json:"image_type"`
	// HardwareVersion is valid when HasHardwareVersion.
	HardwareVersion    uint16 `json:"hardware_version,omitempty"`
	HasHardwareVersion bool   `json:"-"`
	// FileVersion is the installed file version; valid when FileVersionKnown.
	FileVersion      uint32 `json:"file_version"`
	FileVersionKnown bool   `json:"-"`
	// Sleepy devices (end devices whose receiver is off when idle) cannot be woken by an Image Notify: their
	// updates are scheduled for their next own query.
	Sleepy bool `json:"sleepy"`
}

// IndexMeta is what an index entry (Koenkk/zigbee-OTA index.json format) adds to an image: filters and
// release information.
type IndexMeta struct {
	ModelID           string   `json:"model_id,omitempty"`
	ManufacturerNames []string `json:"manufacturer_names,omitempty"`
	MinFileVersion    *uint32  `json:"min_file_version,omitempty"`
	MaxFileVersion    *uint32  `json:"max_file_version,omitempty"`
	HardwareMin       *uint16  `json:"hardware_version_min,omitempty"`
	HardwareMax       *uint16  `json:"hardware_version_max,omitempty"`
	ReleaseNotes      string   `json:"release_notes,omitempty"` // text or an http(s) URL
	ReleaseURL        string   `json:"release_url,omitempty"`
	Version           string   `json:"version,omitempty"` // human-readable version, when the index gives one
	Force             bool     `json:"force,omitempty"`
	OTAHeaderString   string   `json:"ota_header_string,omitempty"`
}

// StoreConfig configures the image store (config key `images`).
type StoreConfig struct {
	// Folder is scanned for OTA files at start and on request (default "images").
	Folder string `yaml:"folder" json:"folder"`
	// Indexes are zigbee-OTA index.json files: local paths (relative to Folder when not absolute; entries may
	// name files relative to the index) or http(s) URLs fetched and cached in the data directory.
	Indexes []string `yaml:"indexes" json:"indexes"`
	// CacheDir holds downloaded index files and images (default <data_dir>/ota-cache).
	CacheDir string `yaml:"cache_dir" json:"cache_dir"`
	// RefreshInterval is how often remote indexes are fetched again (default 24h).
	RefreshInterval time.Duration `yaml:"refresh_interval" json:"refresh_interval"`
	// MaxImageSize limits uploaded and downloaded files (default 16 MiB).
	MaxImageSize int64 `yaml:"max_image_size" json:"max_image_size"`
	// FetchTimeout bounds one HTTP fetch (default 60s).
	FetchTimeout time.Duration `yaml:"fetch_timeout" json:"fetch_timeout"`
}

// EngineConfig configures the OTA server engine (config key `ota`).
type EngineConfig struct {
	// Approval is the policy for a device's own query for an available image: "manual" (default: answer
	// NO_IMAGE_AVAILABLE, state approval_pending, event approval_needed), "auto" (serve devices on the allow
	// list, treat the rest as manual), or "deny" (never serve unasked).
	Approval string    `yaml:"approval" json:"approval"`
	Allow    AllowList `yaml:"allow" json:"allow"`
	// MaxConcurrent is the number of transfers that run at once on the channel (default 2), or "auto"
	// (ConcurrencyAuto): additive increase, multiplicative decrease between the Adaptive bounds.
	MaxConcurrent Concurrency `yaml:"max_concurrent" json:"max_concurrent"`
	// Adaptive tunes max_concurrent: auto.
	Adaptive AdaptiveConfig `yaml:"adaptive" json:"adaptive"`
	// Window lists maintenance windows ("01:00-05:00", "mon-fri 22:00-06:00"); outside them no new transfer
	// starts. Empty: any time. WindowTimezone is the IANA zone the windows are written in ("" = local);
	// WindowEnd says what a running transfer does when its window closes: "finish" (default) or "pause" (at
	// its next block request, until the next window).
	Window         WindowList `yaml:"window" json:"window,omitempty"`
	WindowTimezone string     `yaml:"window_timezone" json:"window_timezone,omitempty"`
	WindowEnd      string     `yaml:"window_end" json:"window_end,omitempty"`
	// MinBattery holds a device whose battery (Power Configuration cluster) is below this percentage
	// until a newer reading is at or above it (default 50; 0 turns the check off).
	MinBattery int `yaml:"min_battery" json:"min_battery"`
	// MaxBlockSize caps the data bytes of one Image Block Response (default 223, the seed's ESP client). A
	// block larger than the radio's unfragmented limit minus 17 goes out APS-fragmented, only on a radio
	// that can fragment and to a client that has not failed with fragments (see Fragmentation); every other
	// client gets at most that limit. Per-vendor quirks cap it further.
	MaxBlockSize int `yaml:"max_block_size" json:"max_block_size"`
	// Fragmentation says which clients may get APS-fragmented blocks.
	Fragmentation FragmentationConfig `yaml:"fragmentation" json:"fragmentation"`
	// BlockSizeByManufacturer adds per-manufacturer caps to the built-in quirk table (Insta 0x117A, Dresden
	// Elektronik 0x1135 and Busch-Jaeger 0x112E get 40 bytes), keyed by manufacturer code.
	BlockSizeByManufacturer map[uint16]int `yaml:"block_size_by_manufacturer" json:"block_size_by_manufacturer,omitempty"`
	// MinimumBlockPeriod, when > 0, is imposed on clients that ask faster (ms between block requests), via
	// WAIT_FOR_DATA carrying the period.
	MinimumBlockPeriod time.Duration `yaml:"minimum_block_period" json:"minimum_block_period"`
	// BlockResponseDelay holds every Image Block Response back this long (default 0). It exists to compare
	// with zigbee2mqtt's image_block_response_delay (250 ms by default) and for networks that need OTA traffic
	// thinned out; MinimumBlockPeriod is the better tool when clients honour it.
	BlockResponseDelay time.Duration `yaml:"block_response_delay" json:"block_response_delay"`
	// MinPageSpacing is the smallest gap between the blocks of an Image Page Request stream (default 20ms).
	MinPageSpacing time.Duration `yaml:"min_page_spacing" json:"min_page_spacing"`
	// UpgradeDelay is sent in the Upgrade End Response as the time until the device applies the image
	// (default 0: now).
	UpgradeDelay time.Duration `yaml:"upgrade_delay" json:"upgrade_delay"`
	// NotifyTimeout is how long to wait for a Query Next Image after a unicast Image Notify before sending it
	// again (default 30s); NotifyAttempts is how many notifies are sent before the attempt counts as failed
	// (default 3).
	NotifyTimeout  time.Duration `yaml:"notify_timeout" json:"notify_timeout"`
	NotifyAttempts int           `yaml:"notify_attempts" json:"notify_attempts"`
	// StallTimeout frees the slot of a transfer with no request for that long (default 2m).
	StallTimeout time.Duration `yaml:"stall_timeout" json:"stall_timeout"`
	// Retries is how often a stalled transfer is retried, with back-off starting at RetryBackoff and doubling
	// (defaults 3 and 1m).
	Retries      int           `yaml:"retries" json:"retries"`
	RetryBackoff time.Duration `yaml:"retry_backoff" json:"retry_backoff"`
	// QueueWait is the WAIT_FOR_DATA delay given to a device that asks for blocks while it waits for a slot
	// (default 30s).
	QueueWait time.Duration `yaml:"queue_wait" json:"queue_wait"`
	// VerifyTimeout is how long to wait for the device to come back with the new version after the Upgrade
	// End Response (plus UpgradeDelay) before re-reading its version; VerifyAttempts reads are made before
	// the update counts as failed (defaults 5m and 3).
	VerifyTimeout  time.Duration `yaml:"verify_timeout" json:"verify_timeout"`
	VerifyAttempts int           `yaml:"verify_attempts" json:"verify_attempts"`
	// ProgressInterval is the most often progress is published for one transfer (default 1s).
	ProgressInterval time.Duration `yaml:"progress_interval" json:"progress_interval"`
}

// FragmentationConfig says which clients get blocks larger than one unfragmented APS frame carries (config
// key `ota.fragmentation`). A client gets them when it asks for more than the unfragmented limit, the radio
// can send fragmented frames, fragmentation is enabled, the client is not on a quirk list and it has not
// failed with fragments before: a fragmented block asked for again Failures times in a row, or a transfer
// that stalls or ends in error right after a fragmented block, makes the device fall back to unfragmented
// blocks for good (remembered in the state file).
type FragmentationConfig struct {
	// Disabled turns fragmented blocks off for every device (default false: on).
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
	// Failures is how many requests in a row for a fragmented block that was already served make the device
	// fall back (default 2).
	Failures int `yaml:"failures" json:"failures,omitempty"`
	// ManufacturerCodes and Models are quirks: clients that never get fragmented blocks.
	ManufacturerCodes []uint16 `yaml:"manufacturer_codes" json:"manufacturer_codes,omitempty"`
	Models            []string `yaml:"models" json:"models,omitempty"`
}

// AllowList names the devices the "auto" approval policy serves without asking.
type AllowList struct {
	IEEE              []zcl.IEEE `yaml:"ieee" json:"ieee,omitempty"`
	Models            []string   `yaml:"models" json:"models,omitempty"`
	ManufacturerCodes []uint16   `yaml:"manufacturer_codes" json:"manufacturer_codes,omitempty"`
}
