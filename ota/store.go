package ota

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Image sources (Image.Source).
const (
	SourceFolder = "folder" // a file found in the images folder (or added from a path in it)
	SourceUpload = "upload" // uploaded (AddUpload) and written into the images folder
	SourceURL    = "url"    // downloaded from a URL (AddFromURL) into the cache directory
	SourceIndex  = "index"  // listed by an index file; remote files are downloaded by Ensure
)

// Store defaults (StoreConfig).
const (
	DefaultImageFolder     = "images"
	DefaultCacheDir        = "data/ota-cache"
	DefaultRefreshInterval = 24 * time.Hour
	DefaultMaxImageSize    = 16 << 20
	DefaultFetchTimeout    = 60 * time.Second
)

// Errors of the store.
var (
	ErrStoreClosed   = errors.New("image store closed")
	ErrImageNotFound = errors.New("no such image")
)

// Problem is a file or index entry the store refused, and why.
type Problem struct {
	Source string `json:"source"` // the file path, index path or URL
	Reason string `json:"reason"`
}

// Store is the catalogue of OTA images: the files of the images folder, uploads, files added from a URL,
// and the entries of index files (local override indexes and remote ones, cached). Every image is
// validated before it is offered. It is safe for concurrent use.
//
// Files stay on disk and are read with ReadAt. Remote index images are offered from their index entry
// and downloaded into the cache directory by Ensure. Uploads and URL images survive restarts: the store
// remembers them in <CacheDir>/added-images.json.
type Store struct {
	cfg    StoreConfig
	log    zerolog.Logger
	client *http.Client

	ctx    context.Context // cancelled by Close: stops fetches, downloads and Run
	cancel context.CancelFunc

	// opMu serialises the operations that change the catalogue (Load, Refresh, Add…, Remove). The fields
	// below it are only touched under opMu.
	opMu      sync.Mutex
	folderAbs string // the images folder, absolute, symlinks resolved ("" until prepared)
	cacheAbs  string // the cache directory, absolute, symlinks resolved
	hashes    map[string]hashedFile
	added     addedState

	mu       sync.RWMutex
	entries  []*storeEntry // sorted by entryCompare
	byID     map[string]*storeEntry
	byImage  map[*Image]*storeEntry
	problems []Problem          // from the last Load or Refresh
	failures map[string]Problem // failed Ensure downloads, by image id
	ensuring map[*Image]*ensureCall
	onChange []func()
	closed   bool

	downloads chan struct{} // download slots (see MaxParallelDownloads)
}

// storeEntry is an image in the catalogue with what the store needs to know about it.
type storeEntry struct {
	img    *Image
	rank   int        // 0: folder, upload, url; 1: index (ties in matching go to the lower rank)
	key    string     // identity across reloads (see candidate.key)
	path   string     // resolved path of the local file it came from; "" for remote index images
	remote *remoteRef // remote index images: where to download
}

// ensureCall is one download of an index image that concurrent Ensure calls share.
type ensureCall struct {
	done chan struct{}
	err  error
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithHTTPClient sets the HTTP client used for remote indexes and downloads (tests use an httptest client).
func WithHTTPClient(c *http.Client) StoreOption {
	return func(s *Store) { s.client = c }
}

// NewStore returns a store for cfg with defaults filled in (Folder "images", CacheDir "data/ota-cache",
// RefreshInterval 24h, MaxImageSize 16 MiB, FetchTimeout 60s). It does no I/O; call Load.
func NewStore(cfg StoreConfig, log zerolog.Logger, opts ...StoreOption) (*Store, error) {
	if cfg.Folder == "" {
		cfg.Folder = DefaultImageFolder
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = DefaultCacheDir
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.MaxImageSize == 0 {
		cfg.MaxImageSize = DefaultMaxImageSize
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	switch {
	case cfg.RefreshInterval < 0:
		return nil, fmt.Errorf("image store: negative refresh_interval %v", cfg.RefreshInterval)
	case cfg.MaxImageSize < MinHeaderLength:
		return nil, fmt.Errorf("image store: max_image_size %d is below an OTA header (%d bytes)", cfg.MaxImageSize, MinHeaderLength)
	case cfg.FetchTimeout < 0:
		return nil, fmt.Errorf("image store: negative fetch_timeout %v", cfg.FetchTimeout)
	}
	for i, ix := range cfg.Indexes {
		if ix == "" {
			return nil, fmt.Errorf("image store: index %d is empty", i)
		}
	}
	s := &Store{
		cfg:      cfg,
		log:      log,
		client:   http.DefaultClient,
		hashes:   map[string]hashedFile{},
		byID:     map[string]*storeEntry{},
		byImage:  map[*Image]*storeEntry{},
		failures: map[string]Problem{},
		ensuring: map[*Image]*ensureCall{},

		downloads: make(chan struct{}, MaxParallelDownloads),
	}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Config returns the configuration with defaults filled in.
func (s *Store) Config() StoreConfig { return s.cfg }

// Load builds the catalogue: it scans the images folder (every regular file that parses as an OTA file,
// whatever its extension; other files are skipped, broken OTA files are listed in Problems), takes back the
// uploads and URL images of earlier runs, reads the local index files, and fetches the remote ones (each
// from its cached copy when the fetch fails). Refused files and entries are Problems, not errors: Load
// fails only when the folder or cache directory cannot be used, or ctx ends.
func (s *Store) Load(ctx context.Context) error { return s.reload(ctx) }

// Refresh scans the folder again and fetches the remote indexes again. Images that did not change keep
// their *Image (and a downloaded index image stays downloaded); images that are gone are closed.
func (s *Store) Refresh(ctx context.Context) error { return s.reload(ctx) }

// Run refreshes every RefreshInterval until ctx ends or the store is closed. Its caller owns the goroutine
// it runs on.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTimer(s.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.ctx.Done():
			return
		case <-t.C:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil && s.ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("image store refresh failed")
			}
			t.Reset(s.cfg.RefreshInterval)
		}
	}
}

// Images returns the catalogue, sorted by manufacturer code, image type, file version (newest first),
// then folder/upload/url before index, then id.
func (s *Store) Images() []*Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Image, len(s.entries))
	for i, e := range s.entries {
		out[i] = e.img
	}
	return out
}

// Get returns the image with that id, or nil.
func (s *Store) Get(id string) *Image {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.byID[id]; e != nil {
		return e.img
	}
	return nil
}

// Problems lists the files and index entries refused by the last Load or Refresh, and failed downloads.
func (s *Store) Problems() []Problem {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := slices.Clone(s.problems)
	fails := make([]Problem, 0, len(s.failures))
	for _, p := range s.failures {
		fails = append(fails, p)
	}
	slices.SortFunc(fails, func(a, b Problem) int { return cmp.Compare(a.Source, b.Source) })
	return append(out, fails...)
}

// OnChange registers f to be called after the set of images changes (an image added, removed or
// downloaded). It is called on the goroutine that made the change, with no lock of the store held.
func (s *Store) OnChange(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = append(s.onChange, f)
}

// Close closes every image (later reads fail with ErrImageClosed), stops fetches, downloads and Run, and
// makes later operations fail with ErrStoreClosed.
func (s *Store) Close() error {
	s.cancel()
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, e := range s.entries {
		if err := e.img.close(); err != nil {
			errs = append(errs, fmt.Errorf("close image %s: %w", e.img.ID, err))
		}
	}
	s.entries, s.byID, s.byImage = nil, map[string]*storeEntry{}, map[*Image]*storeEntry{}
	return errors.Join(errs...)
}

// notify calls the OnChange functions; the caller holds no lock.
func (s *Store) notify() {
	s.mu.RLock()
	fns := slices.Clone(s.onChange)
	s.mu.RUnlock()
	for _, f := range fns {
		f()
	}
}

// bind returns a context that also ends when the store is closed.
func (s *Store) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// entryCompare orders the catalogue: manufacturer code, image type, file version descending, rank, id.
func entryCompare(a, b *storeEntry) int {
	ha, hb := a.img.Header, b.img.Header
	if c := cmp.Compare(ha.ManufacturerCode, hb.ManufacturerCode); c != 0 {
		return c
	}
	if c := cmp.Compare(ha.ImageType, hb.ImageType); c != 0 {
		return c
	}
	if c := cmp.Compare(hb.FileVersion, ha.FileVersion); c != 0 {
		return c
	}
	if c := cmp.Compare(a.rank, b.rank); c != 0 {
		return c
	}
	return cmp.Compare(a.img.ID, b.img.ID)
}

// setEntriesLocked replaces the catalogue; the caller holds s.mu for writing.
func (s *Store) setEntriesLocked(entries []*storeEntry) {
	slices.SortFunc(entries, entryCompare)
	s.entries = entries
	s.byID = make(map[string]*storeEntry, len(entries))
	s.byImage = make(map[*Image]*storeEntry, len(entries))
	for _, e := range entries {
		s.byID[e.img.ID] = e
		s.byImage[e.img] = e
	}
	for id := range s.failures {
		if s.byID[id] == nil {
			delete(s.failures, id)
		}
	}
}

// snapshotLocked returns the id and local flag of every image, to tell whether a reload changed anything.
func (s *Store) snapshotLocked() []string {
	out := make([]string, len(s.entries))
	for i, e := range s.entries {
		l := "-"
		if e.img.Local() {
			l = "+"
		}
		out[i] = e.img.ID + l
	}
	return out
}
