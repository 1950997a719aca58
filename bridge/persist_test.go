package bridge

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otabridge/otabridge/clock"
)

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	require.NoError(t, WriteFileAtomic(path, []byte("one")))
	require.NoError(t, WriteFileAtomic(path, []byte("two")))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temp files left behind")

	// A failing write leaves the old content and no temp file.
	err = WriteFileAtomic(filepath.Join(dir, "missing-dir", "x.json"), []byte("x"))
	assert.ErrorContains(t, err, "missing-dir")
	b, _ = os.ReadFile(path)
	assert.Equal(t, "two", string(b))
}

func TestWriteFileAtomicConcurrentReaders(t *testing.T) {
	// Readers never see a partial file while a writer replaces it with contents of different lengths.
	path := filepath.Join(t.TempDir(), "state.json")
	a, b := bytes.Repeat([]byte("a"), 100_000), bytes.Repeat([]byte("b"), 1000)
	require.NoError(t, WriteFileAtomic(path, a))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			got, err := os.ReadFile(path)
			if err != nil || !(bytes.Equal(got, a) || bytes.Equal(got, b)) {
				t.Errorf("torn read: %d bytes, err %v", len(got), err)
				return
			}
		}
	}()
	for i := range 50 {
		data := a
		if i%2 == 0 {
			data = b
		}
		require.NoError(t, WriteFileAtomic(path, data))
	}
	stop.Store(true)
	wg.Wait()
}

type testState struct {
	Devices map[string]int `json:"devices"`
	Note    string         `json:"note"`
}

func TestSaveLoadJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	var st testState
	found, err := LoadJSON(path, &st, zerolog.Nop())
	require.NoError(t, err)
	assert.False(t, found, "missing file = empty state")
	assert.Equal(t, testState{}, st)

	require.NoError(t, SaveJSON(path, testState{Devices: map[string]int{"a": 1}, Note: "x"}))
	found, err = LoadJSON(path, &st, zerolog.Nop())
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, testState{Devices: map[string]int{"a": 1}, Note: "x"}, st)
}

func TestLoadJSONCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	corrupt := []byte(`{"devices":{"a":1},"note":`) // cut off mid-write
	require.NoError(t, os.WriteFile(path, corrupt, 0o600))
	var logBuf bytes.Buffer
	st := testState{Note: "stale"}
	found, err := LoadJSON(path, &st, zerolog.New(&logBuf))
	require.NoError(t, err, "a corrupt file does not stop the bridge")
	assert.False(t, found)
	assert.Equal(t, testState{}, st, "the bridge starts empty")
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err), "the corrupt file is moved away")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.True(t, strings.HasPrefix(entries[0].Name(), "state.json.corrupt-"), entries[0].Name())
	kept, _ := os.ReadFile(filepath.Join(dir, entries[0].Name()))
	assert.Equal(t, corrupt, kept, "the corrupt copy is kept for inspection")
	assert.Contains(t, logBuf.String(), `"level":"error"`)
	assert.Contains(t, logBuf.String(), "corrupt")

	// The wrong JSON type is corrupt too.
	require.NoError(t, os.WriteFile(path, []byte(`[1,2]`), 0o600))
	found, err = LoadJSON(path, &st, zerolog.Nop())
	require.NoError(t, err)
	assert.False(t, found)
}

func TestSaverDebounce(t *testing.T) {
	clk := clock.NewVirtual()
	path := filepath.Join(t.TempDir(), "state.json")
	var n atomic.Int64
	s := NewSaver(SaverConfig{Path: path, Clock: clk, Log: zerolog.Nop(), Snapshot: func() any {
		return testState{Note: time.Duration(n.Load()).String()}
	}})

	// The first trigger saves at once (at the next clock step).
	n.Store(1)
	s.Trigger()
	clk.RunFor(0)
	assert.Equal(t, 1, s.Saves())

	// A burst of triggers within the interval makes one save, 500 ms after the previous one.
	for i := range 100 {
		n.Store(int64(i + 2))
		s.Trigger()
		clk.RunFor(time.Millisecond)
	}
	assert.Equal(t, 1, s.Saves(), "no save within 500 ms of the last")
	clk.RunFor(400 * time.Millisecond) // 500 ms since the first save
	assert.Equal(t, 2, s.Saves())
	var st testState
	_, err := LoadJSON(path, &st, zerolog.Nop())
	require.NoError(t, err)
	assert.Equal(t, time.Duration(101).String(), st.Note, "the save has the latest snapshot")

	// Nothing changed: no more saves.
	clk.RunFor(5 * time.Second)
	assert.Equal(t, 2, s.Saves())

	// A trigger long after the last save saves at once.
	n.Store(200)
	s.Trigger()
	clk.RunFor(0)
	assert.Equal(t, 3, s.Saves())

	// A change followed by Close is flushed by Close, without waiting for the interval.
	n.Store(300)
	s.Trigger()
	require.NoError(t, s.Close())
	assert.Equal(t, 4, s.Saves())
	_, err = LoadJSON(path, &st, zerolog.Nop())
	require.NoError(t, err)
	assert.Equal(t, time.Duration(300).String(), st.Note)
	assert.Equal(t, 0, clk.Pending(), "Close stopped the timer")

	// Triggers after Close do nothing; Close again is fine.
	s.Trigger()
	clk.RunFor(time.Second)
	assert.Equal(t, 4, s.Saves())
	require.NoError(t, s.Close())
}

func TestSaverFlushAndRealClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	var mu sync.Mutex
	note := "a"
	s := NewSaver(SaverConfig{Path: path, Interval: time.Hour, Log: zerolog.Nop(), Snapshot: func() any {
		mu.Lock()
		defer mu.Unlock()
		return testState{Note: note}
	}})
	// Concurrent triggers from many goroutines with the real clock: race-free, and Close writes the last state.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				mu.Lock()
				note = string(rune('a' + (i+j)%26))
				mu.Unlock()
				s.Trigger()
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	note = "final"
	mu.Unlock()
	s.Trigger()
	require.NoError(t, s.Flush())
	var st testState
	_, err := LoadJSON(path, &st, zerolog.Nop())
	require.NoError(t, err)
	assert.Equal(t, "final", st.Note)
	require.NoError(t, s.Close())
	assert.LessOrEqual(t, s.Saves(), 2, "one hour interval: the first save and the flush")
}

func TestSaverWriteErrorStaysDirty(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o600))
	clk := clock.NewVirtual()
	var logBuf bytes.Buffer
	s := NewSaver(SaverConfig{Path: filepath.Join(blocker, "state.json"), Clock: clk, Log: zerolog.New(&logBuf),
		Snapshot: func() any { return testState{} }})
	s.Trigger()
	clk.RunFor(0)
	assert.Equal(t, 0, s.Saves())
	assert.Contains(t, logBuf.String(), "saving state failed")
	assert.Error(t, s.Close(), "still dirty: Close retries and reports the error")
}
