package bridge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// HealthFile is the heartbeat file in the data directory: the bridge rewrites it with the current time
// while it runs (HealthInterval), and `otabridge health` (the container HEALTHCHECK) checks its age.
const HealthFile = "health"

// HealthInterval is how often the running bridge should call WriteHealth; a check's maxAge should allow a
// few missed beats (the Dockerfiles use 90s).
const HealthInterval = 30 * time.Second

// WriteHealth records now as the bridge's last heartbeat in <dataDir>/health, with every component up.
func WriteHealth(dataDir string, now time.Time) error { return WriteHealthStatus(dataDir, now, nil) }

// WriteHealthStatus records now as the bridge's last heartbeat in <dataDir>/health, followed by one line
// "down <component>: <reason>" for each problem (see Health.Problems). It writes a temporary file and
// renames it, so a reader never sees a partial beat; it does not fsync (a heartbeat lost in a crash does
// not matter, and a write every 30 s should not wear an SD card).
func WriteHealthStatus(dataDir string, now time.Time, problems []string) error {
	path := filepath.Join(dataDir, HealthFile)
	tmp, err := os.CreateTemp(dataDir, "."+HealthFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("write health %s: %w", path, err)
	}
	var sb strings.Builder
	sb.WriteString(now.UTC().Format(time.RFC3339Nano) + "\n")
	for _, p := range problems {
		sb.WriteString(healthDownPrefix + strings.ReplaceAll(p, "\n", " ") + "\n")
	}
	_, werr := tmp.WriteString(sb.String())
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write health %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write health %s: %w", path, err)
	}
	return nil
}

const healthDownPrefix = "down "

// CheckHealth returns nil when <dataDir>/health holds a heartbeat at most maxAge before now and names no
// component that is down, and an error saying why not otherwise (no heartbeat yet, unreadable, too old,
// MQTT or the radio down). A heartbeat from the future (the clock was set back) counts as fresh.
func CheckHealth(dataDir string, maxAge time.Duration, now time.Time) error {
	path := filepath.Join(dataDir, HealthFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unhealthy: no heartbeat in %s (the bridge is not running or has not started yet)", path)
	}
	if err != nil {
		return fmt.Errorf("unhealthy: read heartbeat: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	s := strings.TrimSpace(lines[0])
	last, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("unhealthy: heartbeat in %s: %q is not an RFC 3339 time", path, healthExcerpt(s, 64))
	}
	if age := now.Sub(last); age > maxAge {
		return fmt.Errorf("unhealthy: last heartbeat %s ago at %s (allowed %s)",
			age.Truncate(time.Second), last.Format(time.RFC3339), maxAge)
	}
	var down []string
	for _, l := range lines[1:] {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), healthDownPrefix); ok {
			down = append(down, healthExcerpt(p, 200))
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("unhealthy: %s", strings.Join(down, "; "))
	}
	return nil
}

// Health is the set of the bridge's components that are down (MQTT, the radio, …), each with the reason.
// The heartbeat file carries it, so `otabridge health` reports unhealthy while one is down. Safe for
// concurrent use; onChange (optional) runs after every change, outside the lock.
type Health struct {
	mu       sync.Mutex
	down     map[string]string
	onChange func()
}

// Component names used in the health set.
const (
	HealthMQTT  = "mqtt"
	HealthRadio = "radio"
)

// NewHealth returns a health set with every component up.
func NewHealth(onChange func()) *Health {
	return &Health{down: map[string]string{}, onChange: onChange}
}

// Down marks component as down with the reason.
func (h *Health) Down(component, reason string) {
	h.mu.Lock()
	changed := h.down[component] != reason
	h.down[component] = reason
	f := h.onChange
	h.mu.Unlock()
	if changed && f != nil {
		f()
	}
}

// Up marks component as up.
func (h *Health) Up(component string) {
	h.mu.Lock()
	_, changed := h.down[component]
	delete(h.down, component)
	f := h.onChange
	h.mu.Unlock()
	if changed && f != nil {
		f()
	}
}

// Problems returns "component: reason" for every component that is down, sorted.
func (h *Health) Problems() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.down))
	for c, r := range h.down {
		out = append(out, c+": "+r)
	}
	sort.Strings(out)
	return out
}

func healthExcerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
