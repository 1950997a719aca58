package bridge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// HealthFile is the heartbeat file in the data directory: the bridge rewrites it with the current time
// while it runs (HealthInterval), and `otabridge health` (the container HEALTHCHECK) checks its age.
const HealthFile = "health"

// HealthInterval is how often the running bridge should call WriteHealth; a check's maxAge should allow a
// few missed beats (the Dockerfiles use 90s).
const HealthInterval = 30 * time.Second

// WriteHealth records now as the bridge's last heartbeat in <dataDir>/health. It writes a temporary file
// and renames it, so a reader never sees a partial time; it does not fsync (a heartbeat lost in a crash
// does not matter, and a write every 30 s should not wear an SD card).
func WriteHealth(dataDir string, now time.Time) error {
	path := filepath.Join(dataDir, HealthFile)
	tmp, err := os.CreateTemp(dataDir, "."+HealthFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("write health %s: %w", path, err)
	}
	_, werr := tmp.WriteString(now.UTC().Format(time.RFC3339Nano) + "\n")
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

// CheckHealth returns nil when <dataDir>/health holds a heartbeat at most maxAge before now, and an error
// saying why not otherwise (no heartbeat yet, unreadable, too old). A heartbeat from the future (the clock
// was set back) counts as fresh.
func CheckHealth(dataDir string, maxAge time.Duration, now time.Time) error {
	path := filepath.Join(dataDir, HealthFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unhealthy: no heartbeat in %s (the bridge is not running or has not started yet)", path)
	}
	if err != nil {
		return fmt.Errorf("unhealthy: read heartbeat: %w", err)
	}
	s := strings.TrimSpace(string(b))
	last, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("unhealthy: heartbeat in %s: %q is not an RFC 3339 time", path, healthExcerpt(s, 64))
	}
	if age := now.Sub(last); age > maxAge {
		return fmt.Errorf("unhealthy: last heartbeat %s ago at %s (allowed %s)",
			age.Truncate(time.Second), last.Format(time.RFC3339), maxAge)
	}
	return nil
}

func healthExcerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
