package ota

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mkfifo makes a named pipe (no writer ever opens it: opening it for reading the blocking way would hang).
func mkfifo(t *testing.T, path string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("named pipes unavailable here: %v", err)
	}
}

// within runs f on its own goroutine and fails the test when it has not returned after a generous bound
// (a hang, not a duration under test).
func finishes(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s hangs", what)
	}
}

// TestStoreFIFONeverHangs: named pipes in the folder, named by add-from-path, by a local index entry, or
// as the local index itself are refused without blocking, and the store keeps working.
func TestStoreFIFONeverHangs(t *testing.T) {
	r := newStoreRig(t)
	good := syntheticOTA(t, Header{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 2}, 300)
	require.NoError(t, os.WriteFile(filepath.Join(r.folder, "good.ota"), good, 0o644))
	mkfifo(t, filepath.Join(r.folder, "fifo.ota"))
	mkfifo(t, filepath.Join(r.folder, "sub", "pipe.ota"))
	require.NoError(t, os.Symlink("fifo.ota", filepath.Join(r.folder, "link-to-fifo.ota")))
	mkfifo(t, filepath.Join(r.folder, "fifo-index.json"))
	index := fmt.Sprintf(`[{"url":"fifo.ota","manufacturerCode":%d,"imageType":1,"fileVersion":3,"fileSize":300}]`, 0x1234)
	require.NoError(t, os.WriteFile(filepath.Join(r.folder, "index.json"), []byte(index), 0o644))
	r.cfg.Indexes = []string{"index.json", "fifo-index.json"}

	s := r.open(t)
	finishes(t, "Load (folder scan and local indexes with named pipes)", func() {
		require.NoError(t, s.Load(t.Context()))
	})
	require.Len(t, s.Images(), 1, "only the regular OTA file")
	assert.NotEmpty(t, problemsFor(s, "fifo-index.json"), "the named pipe as an index is a problem")
	assert.NotEmpty(t, problemsFor(s, "index.json"))

	for _, p := range []string{"fifo.ota", "link-to-fifo.ota", filepath.Join(r.folder, "sub", "pipe.ota")} {
		var err error
		finishes(t, "AddFromPath "+p, func() { _, err = s.AddFromPath(p) })
		if assert.Error(t, err, p) {
			assert.Contains(t, err.Error(), "not a regular file (a named pipe)", p)
		}
	}
	// Later operations still run: the store lock is free.
	finishes(t, "upload after the named pipes", func() {
		img, err := s.AddUpload("next.ota", syntheticOTA(t, Header{ManufacturerCode: 0x1234, ImageType: 1, FileVersion: 5}, 200))
		require.NoError(t, err)
		assert.Equal(t, SourceUpload, img.Source)
	})
	finishes(t, "Refresh", func() { require.NoError(t, s.Refresh(t.Context())) })
	assert.Len(t, s.Images(), 2)
}

// TestStoreAddFromPathRevealsNothingOutside: a path outside the images folder gets the same answer
// whether it exists or not, and the answer names no resolved host path.
func TestStoreAddFromPathRevealsNothingOutside(t *testing.T) {
	r := newStoreRig(t)
	s := r.load(t)
	outsideFile := filepath.Join(r.root, "secret.ota")
	require.NoError(t, os.WriteFile(outsideFile, []byte("x"), 0o600))
	require.NoError(t, os.Symlink(outsideFile, filepath.Join(r.folder, "link.ota")))
	for _, p := range []string{outsideFile, filepath.Join(r.root, "nonexistent.ota"), "../secret.ota", "../nonexistent.ota",
		"/etc/passwd", "/nonexistent/x.ota", "link.ota"} {
		_, err := s.AddFromPath(p)
		require.Error(t, err, p)
		assert.Equal(t, "add image "+p+": outside the images folder", err.Error(), p)
	}
	_, err := s.AddFromPath("missing.ota")
	assert.EqualError(t, err, "add image missing.ota: no such file in the images folder")
}

// TestStoreMissingFolderNotCreated: a missing images folder is reported (not created) and the store still
// works; an upload creates it.
func TestStoreMissingFolderNotCreated(t *testing.T) {
	r := newStoreRig(t)
	r.cfg.Folder = filepath.Join(r.root, "not-mounted", "images")
	s := r.open(t)
	require.NoError(t, s.Load(t.Context()))
	assert.Empty(t, s.Images())
	_, err := os.Stat(r.cfg.Folder)
	assert.ErrorIs(t, err, os.ErrNotExist, "the folder must not be created by a load")
	_, err = s.AddFromPath("x.ota")
	assert.ErrorContains(t, err, "does not exist (not created; create it or fix images.folder)")
	assert.ErrorContains(t, err, r.cfg.Folder, "names the path")

	img, err := s.AddUpload("up.ota", syntheticOTA(t, Header{ManufacturerCode: 1, ImageType: 2, FileVersion: 3}, 100))
	require.NoError(t, err)
	assert.Equal(t, SourceUpload, img.Source)
	assert.FileExists(t, filepath.Join(r.cfg.Folder, "up.ota"))
}

// TestStoreDownloadsCapped: many images added from URLs at once download MaxParallelDownloads at a time
// (so at most that many temporary files of up to MaxImageSize exist), and all of them finish.
func TestStoreDownloadsCapped(t *testing.T) {
	const n = 5
	var mu sync.Mutex
	inFlight, most := 0, 0
	release := make(chan struct{})
	files := map[string][]byte{}
	for i := range n {
		files[fmt.Sprintf("/%d.ota", i)] = syntheticOTA(t, Header{ManufacturerCode: 0x1234, ImageType: 3, FileVersion: uint32(i + 1)}, 200)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		<-release
		w.Write(files[r.URL.Path])
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s := newStoreRig(t).load(t)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.AddFromURL(t.Context(), fmt.Sprintf("%s/%d.ota", srv.URL, i))
			errs <- err
		}()
	}
	eventuallyTrue(t, func() bool { mu.Lock(); defer mu.Unlock(); return inFlight == MaxParallelDownloads })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, MaxParallelDownloads, most, "downloads at once")
	assert.Len(t, s.Images(), n)
}

// eventuallyTrue waits (a generous bound, not a duration under test) for cond.
func eventuallyTrue(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
