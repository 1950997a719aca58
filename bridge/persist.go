package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/otabridge/otabridge/clock"
)

// WriteFileAtomic replaces path with data crash-safely: it writes a temporary file in the same directory,
// fsyncs it, renames it over path and fsyncs the directory, so after a crash path holds either the old or
// the new content, never a mix. The file gets mode 0600 (state can name devices and schedules; it is not
// meant for other users).
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: create temp file: %w", path, err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s: rename: %w", path, err)
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: fsync directory: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) { // some file systems refuse directory fsync
		return err
	}
	return nil
}

// SaveJSON writes v as indented JSON to path with WriteFileAtomic, creating the directory if needed.
func SaveJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("save %s: encode: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return WriteFileAtomic(path, append(b, '\n'))
}

// LoadJSON reads path into v. A missing file is not an error: v is left as it is (the empty state) and
// found is false. A file that cannot be decoded is moved aside to `<path>.corrupt-<UTC timestamp>` with an
// error log, v is reset to its zero value and LoadJSON returns found false and no error, so the bridge starts
// empty instead of refusing to start; the corrupt copy is kept for inspection. Only I/O failures (reading,
// moving aside) are errors.
func LoadJSON(path string, v any, log zerolog.Logger) (found bool, err error) {
	found, _, err = loadJSON(path, v, func(b []byte) error { return json.Unmarshal(b, v) }, log)
	return found, err
}

// CorruptFile says why a file was refused and where the copy was kept.
type CorruptFile struct {
	Path    string // the file that was refused
	MovedTo string // the `.corrupt-<timestamp>` copy
	Reason  error
}

func (c *CorruptFile) Error() string {
	return fmt.Sprintf("%s refused (%v); kept as %s", c.Path, c.Reason, c.MovedTo)
}

// LoadJSONStrict is LoadJSON for files whose shape is known: the content must be a JSON object with only
// the keys of v's type and nothing after it (`{"foo":1}`, `null`, `[]` are refused), and check, when set,
// must accept what was decoded (a version it knows, states it knows …). A refused file is moved aside like
// a corrupt one; corrupt says why and where it went (nil when the file loaded or did not exist).
func LoadJSONStrict(path string, v any, check func() error, log zerolog.Logger) (found bool, corrupt *CorruptFile, err error) {
	return loadJSON(path, v, func(b []byte) error { return decodeStrict(b, v, check) }, log)
}

// decodeStrict decodes b into v: a JSON object with only the keys of v's type and nothing after it, which
// check (when set) accepts.
func decodeStrict(b []byte, v any, check func() error) error {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	if check != nil {
		return check()
	}
	return nil
}

// loadJSON reads path and decodes it with decode; what decode refuses is moved aside (see LoadJSON).
func loadJSON(path string, v any, decode func([]byte) error, log zerolog.Logger) (bool, *CorruptFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("load %s: %w", path, err)
	}
	decodeErr := decode(b)
	if decodeErr == nil {
		return true, nil, nil
	}
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Rename(path, aside); err != nil {
		return false, nil, fmt.Errorf("load %s: corrupt (%v), and moving it aside failed: %w", path, decodeErr, err)
	}
	resetToZero(v)
	log.Error().Err(decodeErr).Str("path", path).Str("moved_to", aside).Int("bytes", len(b)).
		Msg("state file is corrupt; moved aside, starting with empty state")
	return false, &CorruptFile{Path: path, MovedTo: aside, Reason: decodeErr}, nil
}

// resetToZero sets *v to its zero value when v is a non-nil pointer (json.Unmarshal may have filled part of
// it before it failed).
func resetToZero(v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
}

// SaverConfig configures a Saver.
type SaverConfig struct {
	// Path of the state file.
	Path string
	// Snapshot returns the value to save; it is called on the Saver's timer goroutine (with clock.Real) and
	// must be safe for that.
	Snapshot func() any
	// Interval is the shortest time between two saves (default 500 ms).
	Interval time.Duration
	// Clock schedules the saves (default clock.Real).
	Clock clock.Clock
	Log   zerolog.Logger
}

// Saver writes a state file at most every Interval after Trigger calls, and once more on Close if anything
// changed since the last save. Its creator owns it and must Close it; a pending timer is the only thing
// that runs in the background, and Close stops it.
type Saver struct {
	cfg SaverConfig

	mu       sync.Mutex // guards the fields below
	dirty    bool
	timer    clock.Timer
	lastSave time.Time
	closed   bool

	saveMu sync.Mutex // serialises saves
	saves  int        // number of completed writes (for tests and stats), under saveMu
}

// NewSaver returns a Saver; nothing is written until Trigger.
func NewSaver(cfg SaverConfig) *Saver {
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Saver{cfg: cfg}
}

// Trigger marks the state as changed. The save happens at once when the last one is older than Interval,
// otherwise when Interval has passed since it; many triggers in between make one save.
func (s *Saver) Trigger() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.dirty = true
	if s.timer != nil {
		return
	}
	delay := s.cfg.Interval - s.cfg.Clock.Now().Sub(s.lastSave)
	if s.lastSave.IsZero() || delay < 0 {
		delay = 0
	}
	s.timer = s.cfg.Clock.AfterFunc(delay, s.fire)
}

func (s *Saver) fire() {
	s.mu.Lock()
	s.timer = nil
	if s.closed || !s.dirty {
		s.mu.Unlock()
		return
	}
	s.beginSaveLocked()
	s.mu.Unlock()
	_ = s.write()
}

// beginSaveLocked marks the state clean and the save started, under s.mu, so that a Trigger that comes
// while the file is written schedules the next save Interval later instead of at once.
func (s *Saver) beginSaveLocked() {
	s.dirty = false
	s.lastSave = s.cfg.Clock.Now()
}

// write takes a snapshot and writes it (serialised by saveMu, so a later write has a later snapshot).
// Errors are logged and returned; the state is marked dirty again so the next Trigger or Close retries.
func (s *Saver) write() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	v := s.cfg.Snapshot()
	if err := SaveJSON(s.cfg.Path, v); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		s.cfg.Log.Error().Err(err).Str("path", s.cfg.Path).Msg("saving state failed")
		return err
	}
	s.saves++
	s.cfg.Log.Debug().Str("path", s.cfg.Path).Int("saves", s.saves).Msg("state saved")
	return nil
}

// Flush writes the state now if it changed since the last save.
func (s *Saver) Flush() error {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	dirty := s.dirty
	if dirty {
		s.beginSaveLocked()
	}
	s.mu.Unlock()
	if !dirty {
		return nil
	}
	return s.write()
}

// Saves returns how many times the file has been written.
func (s *Saver) Saves() int {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	return s.saves
}

// Close stops the timer and writes the state once more if it changed. Later Triggers do nothing. Close is
// safe to call more than once.
func (s *Saver) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	dirty := s.dirty
	if dirty {
		s.beginSaveLocked()
	}
	s.mu.Unlock()
	if !dirty {
		// A save started by the timer may still be running: wait for it.
		s.saveMu.Lock()
		s.saveMu.Unlock() //nolint:staticcheck // an empty critical section waits for a running save
		return nil
	}
	return s.write()
}
