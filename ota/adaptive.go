package ota

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Concurrency is `ota.max_concurrent`: a fixed number of parallel transfers, or ConcurrencyAuto.
type Concurrency int

// ConcurrencyAuto is `max_concurrent: auto`: the engine adapts the number of parallel transfers (AIMD).
const ConcurrencyAuto Concurrency = -1

// UnmarshalText reads "auto" or a number (environment overrides).
func (c *Concurrency) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.EqualFold(s, "auto") {
		*c = ConcurrencyAuto
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number (nor auto)", s)
	}
	if n < 0 {
		return fmt.Errorf("%d is out of range (1..64, or auto)", n)
	}
	*c = Concurrency(n)
	return nil
}

// UnmarshalYAML reads "auto" or a number.
func (c *Concurrency) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: max_concurrent must be a number or auto", n.Line)
	}
	return c.UnmarshalText([]byte(n.Value))
}

// MarshalJSON writes "auto" or the number.
func (c Concurrency) MarshalJSON() ([]byte, error) {
	if c == ConcurrencyAuto {
		return []byte(`"auto"`), nil
	}
	return json.Marshal(int(c))
}

// String is "auto" or the number.
func (c Concurrency) String() string {
	if c == ConcurrencyAuto {
		return "auto"
	}
	return strconv.Itoa(int(c))
}

// WindowList is `ota.window`: one window or a list of them.
type WindowList []string

// UnmarshalYAML accepts a single string as well as a list.
func (w *WindowList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Value == "" {
			*w = nil
			return nil
		}
		*w = WindowList{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return fmt.Errorf("window: want a string or a list of strings: %w", err)
	}
	*w = list
	return nil
}

// AdaptiveConfig bounds and tunes `max_concurrent: auto` (config key `ota.adaptive`).
type AdaptiveConfig struct {
	// Min and Max bound the number of parallel transfers (defaults 1 and 8); Start is where it begins
	// (default 2, the fixed default).
	Min   int `yaml:"min" json:"min"`
	Max   int `yaml:"max" json:"max"`
	Start int `yaml:"start" json:"start"`
	// Interval is how often the controller decides (default 10s): one more transfer when the last
	// interval was clean and every slot was used, half as many when it was not.
	Interval time.Duration `yaml:"interval" json:"interval"`
	// RTTFactor: an interval whose mean block round trip exceeds RTTFactor × the best interval seen is
	// congested (default 2).
	RTTFactor float64 `yaml:"rtt_factor" json:"rtt_factor"`
	// RetryRatio: an interval where more than this share of block requests repeat an offset already served
	// (the client retried: a lost frame) or a send failed is congested (default 0.05).
	RetryRatio float64 `yaml:"retry_ratio" json:"retry_ratio"`
	// ChannelWait: an interval whose frames to devices waited on average longer than this for a busy
	// channel (the home's other traffic and our own queue ahead of them) is congested (default 8ms). Only
	// radios that report per-frame statistics (ncp.StatsSender: the simulator) give this signal.
	ChannelWait time.Duration `yaml:"channel_wait" json:"channel_wait"`
	// MACRetryRatio: an interval where more than this share of MAC transmissions were retries or found
	// the channel busy (CCA failures) is congested (default 0.25). Per-frame statistics (the simulator)
	// and the stick's MAC counters (MACCounted: EZSP) give this signal.
	MACRetryRatio float64 `yaml:"mac_retry_ratio" json:"mac_retry_ratio"`
}

func (a AdaptiveConfig) withDefaults() AdaptiveConfig {
	if a.Min <= 0 {
		a.Min = 1
	}
	if a.Max <= 0 {
		a.Max = 8
	}
	if a.Max < a.Min {
		a.Max = a.Min
	}
	if a.Start <= 0 {
		a.Start = 2
	}
	a.Start = min(max(a.Start, a.Min), a.Max)
	if a.Interval <= 0 {
		a.Interval = 10 * time.Second
	}
	if a.RTTFactor <= 1 {
		a.RTTFactor = 2
	}
	if a.RetryRatio <= 0 {
		a.RetryRatio = 0.05
	}
	if a.ChannelWait <= 0 {
		a.ChannelWait = DefaultChannelWait
	}
	if a.MACRetryRatio <= 0 {
		a.MACRetryRatio = 0.25
	}
	return a
}

func (a AdaptiveConfig) validate() error {
	switch {
	case a.Min < 0 || a.Min > 64:
		return fmt.Errorf("ota.adaptive.min: %d is out of range (1..64)", a.Min)
	case a.Max < 0 || a.Max > 64:
		return fmt.Errorf("ota.adaptive.max: %d is out of range (1..64)", a.Max)
	case a.Max > 0 && a.Min > a.Max:
		return fmt.Errorf("ota.adaptive: min %d is above max %d", a.Min, a.Max)
	case a.RTTFactor != 0 && a.RTTFactor <= 1:
		return fmt.Errorf("ota.adaptive.rtt_factor: %g must be above 1", a.RTTFactor)
	case a.RetryRatio < 0 || a.RetryRatio >= 1:
		return fmt.Errorf("ota.adaptive.retry_ratio: %g is out of range (0..1)", a.RetryRatio)
	case a.MACRetryRatio < 0 || a.MACRetryRatio >= 1:
		return fmt.Errorf("ota.adaptive.mac_retry_ratio: %g is out of range (0..1)", a.MACRetryRatio)
	case a.ChannelWait < 0:
		return fmt.Errorf("ota.adaptive.channel_wait: %s is negative", a.ChannelWait)
	}
	return nil
}

// DefaultChannelWait is the default of ota.adaptive.channel_wait.
const DefaultChannelWait = 8 * time.Millisecond

// holdIntervals is how many intervals the limit stays put after a raise that brought no more blocks.
const holdIntervals = 6

// aimd is the adaptive concurrency controller: the congestion signals of the current interval and the
// current limit. It lives under the engine's lock.
type aimd struct {
	cfg   AdaptiveConfig
	limit int
	// Signals of the running interval.
	blocks, retries, failures int
	rttSum                    time.Duration
	rttN                      int
	saturated                 bool // every slot was in use at some point of the interval with devices waiting
	// Radio statistics of the interval's frames (SendReport): frames reported, their MAC attempts,
	// retries and CCA failures, and the time they waited for the channel. The stick's MAC counters
	// (MACReport) add to the attempts, retries and CCA failures.
	sends, attempts, macRetries, ccaFailures int
	channelWait                              time.Duration
	// baseRTT is the smallest interval mean round trip seen (the uncongested channel).
	baseRTT time.Duration
	// raisedFrom is the limit before the last raise (0: the last interval did not raise) and raisedBlocks
	// the blocks served in the interval that decided it: a raise that brings no more blocks means the
	// channel is full (the other devices' traffic takes the rest), and is taken back with a halving.
	raisedFrom, raisedBlocks int
	raisedActive             float64
	// ivActive and ivTime: running transfers × seconds, and seconds, of the interval (a lowered limit only
	// stops new starts, so the transfers really running are what the blocks are judged against).
	ivActive, ivTime float64
	// settling: the interval right after a raise, while the new transfer starts (Image Notify, query): it
	// neither raises nor judges the raise; the interval after it does.
	settling bool
	// lastGood is the limit before the last raise; holdLeft counts intervals without raises after a raise
	// that brought nothing.
	lastGood, holdLeft int
	last               time.Time
	// Changes counts decisions, for the log and the bench.
	Increases, Decreases int
	Peak                 int
	// Time-weighted running transfers (sampled at every tick while transfers run).
	sampledAt  time.Time
	activeTime float64
	busyTime   time.Duration
}

func newAIMD(cfg AdaptiveConfig, now time.Time) *aimd {
	cfg = cfg.withDefaults()
	return &aimd{cfg: cfg, limit: cfg.Start, last: now, Peak: cfg.Start}
}

// block records one served block request: rtt is the time since the previous block went to the same
// client (0: not measured), retry says the request repeated an offset already served.
func (a *aimd) block(rtt time.Duration, retry bool) {
	a.blocks++
	if retry {
		a.retries++
	}
	if rtt > 0 {
		a.rttSum += rtt
		a.rttN++
	}
}

// sent records the radio's report of one frame to a device.
func (a *aimd) sent(r SendReport) {
	if r.Failed {
		a.failures++
	}
	if r.Attempts == 0 && r.ChannelWait == 0 && r.MACRetries == 0 && r.CCAFailures == 0 {
		return // the radio tells nothing about this frame
	}
	a.sends++
	a.attempts += max(r.Attempts, 1)
	a.macRetries += r.MACRetries
	a.ccaFailures += r.CCAFailures
	a.channelWait += r.ChannelWait
}

// counted records what the stick's MAC counters say of the time since the previous report.
func (a *aimd) counted(r MACReport) {
	a.attempts += r.Frames + r.Retries
	a.macRetries += r.Retries
	a.ccaFailures += r.CCAFailures
}

// decision is the result of one interval.
type decision struct {
	from, to int
	meanRTT  time.Duration
	baseRTT  time.Duration
	blocks   int
	retries  int
	failures int
	// meanWait is the frames' mean wait for the channel, macRetryShare the share of MAC transmissions
	// that were retries or CCA failures (both 0 without radio statistics or MAC counters).
	meanWait      time.Duration
	macRetryShare float64
	// reason says which signal found the interval congested ("" when none).
	reason    string
	congested bool
}

// step closes the interval when it is over and adjusts the limit; ok is false while the interval runs.
func (a *aimd) step(now time.Time) (decision, bool) {
	if now.Sub(a.last) < a.cfg.Interval {
		return decision{}, false
	}
	d := decision{from: a.limit, to: a.limit, blocks: a.blocks, retries: a.retries, failures: a.failures}
	if a.rttN > 0 {
		d.meanRTT = a.rttSum / time.Duration(a.rttN)
		if a.baseRTT == 0 || d.meanRTT < a.baseRTT {
			a.baseRTT = d.meanRTT
		}
	}
	d.baseRTT = a.baseRTT
	if a.sends > 0 {
		d.meanWait = a.channelWait / time.Duration(a.sends)
	}
	if a.attempts > 0 {
		d.macRetryShare = float64(a.macRetries+a.ccaFailures) / float64(a.attempts+a.ccaFailures)
	}
	events := a.blocks + a.failures
	settling := a.settling
	a.settling = false
	meanActive := 0.0
	if a.ivTime > 0 {
		meanActive = a.ivActive / a.ivTime
	}
	// A raise that did put more transfers on the air should bring proportionally more blocks; less than
	// three quarters of that gain means the channel is full at the old limit.
	noGain := !settling && a.raisedFrom > 0 && a.raisedActive > 0 && meanActive >= a.raisedActive+0.5 &&
		float64(a.blocks) < float64(a.raisedBlocks)*(1+0.75*(meanActive-a.raisedActive)/a.raisedActive)
	if !settling {
		a.raisedFrom = 0
	}
	if a.holdLeft > 0 {
		a.holdLeft--
	}
	switch {
	case events > 0 && float64(a.retries+a.failures) > a.cfg.RetryRatio*float64(events):
		d.reason = "repeated blocks or send failures"
	case d.meanRTT > 0 && a.baseRTT > 0 && float64(d.meanRTT) > a.cfg.RTTFactor*float64(a.baseRTT):
		d.reason = "block round trips"
	case a.sends > 0 && d.meanWait > a.cfg.ChannelWait:
		d.reason = "channel busy"
	case a.attempts > 0 && d.macRetryShare > a.cfg.MACRetryRatio:
		d.reason = "MAC retries"
	}
	switch {
	case d.reason != "":
		// Losses or queueing: multiplicative decrease.
		d.congested = true
		a.limit = max(a.cfg.Min, a.limit/2)
		if a.limit < d.from {
			a.Decreases++
		}
	case noGain:
		// The channel was full before the raise: back to that limit, and no probing above it for a while.
		d.congested = true
		a.limit = max(a.cfg.Min, min(a.limit, a.lastGood))
		a.holdLeft = holdIntervals
		if a.limit < d.from {
			a.Decreases++
		}
	case settling, a.holdLeft > 0:
	case a.saturated && a.blocks > 0:
		a.limit = min(a.cfg.Max, a.limit+1)
		if a.limit > d.from {
			a.Increases++
			a.raisedFrom, a.raisedBlocks, a.raisedActive, a.settling = d.from, a.blocks, meanActive, true
			a.lastGood = d.from
		}
	}
	a.Peak = max(a.Peak, a.limit)
	d.to = a.limit
	a.blocks, a.retries, a.failures, a.rttSum, a.rttN, a.saturated = 0, 0, 0, 0, 0, false
	a.sends, a.attempts, a.macRetries, a.ccaFailures, a.channelWait = 0, 0, 0, 0, 0
	a.ivActive, a.ivTime = 0, 0
	a.last = now
	return d, true
}
