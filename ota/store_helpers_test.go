package ota

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// storeTestdataDir holds the real vendor OTA files (outside the repository; copied into t.TempDir()).
var storeTestdataDir = otaFileTestdataDir

// Real files the store tests use by name.
const (
	fileNodOn    = "128b-0102-030103-700_nodon_sin_4_2_20_fw_power_V030103.zigbee"
	fileInovelli = "mmwave_module_fw_V3_14_3.ota"
	fileIKEANGIS = "10035515-TRADFRI-bulb-cws-2.3.093.ota.ota.signed"
	fileLegrand  = "1021-000f-004745ff-NLL.zigbee"
	fileONOKOM   = "tcl-1-zb-s_hw1.x_fw0.6.1_ota20.ota"
	fileUbisys   = "10F2-7B2A-0000-0005-02010230-m7b-r0.ota.zigbee"
	fileHue      = "100B-0119-02002100-Switch-EFR32MG22.zigbee"
)

// storeFact is what the store tests need from manifest.json.
type storeFact struct {
	File             string `json:"file"`
	FileLength       int64  `json:"file_length"`
	SHA512           string `json:"sha512"`
	Valid            bool   `json:"valid"`
	MagicOffset      int64  `json:"magic_offset"`
	ManufacturerCode uint16 `json:"manufacturer_code"`
	ImageType        uint16 `json:"image_type"`
	FileVersion      uint32 `json:"file_version"`
	TotalImageSize   uint32 `json:"total_image_size"`
	HeaderString     string `json:"header_string"`
}

// wantID is the id the store must give the file.
func (f storeFact) wantID() string {
	return fmt.Sprintf("%04x-%04x-%08x-%s", f.ManufacturerCode, f.ImageType, f.FileVersion, f.SHA512[:8])
}

func storeFacts(t testing.TB) map[string]storeFact {
	t.Helper()
	skipWithoutVendorFiles(t)
	b, err := os.ReadFile(filepath.Join(storeTestdataDir, "manifest.json"))
	require.NoError(t, err)
	var m struct {
		Files []storeFact `json:"files"`
	}
	require.NoError(t, json.Unmarshal(b, &m))
	require.Len(t, m.Files, 22)
	out := map[string]storeFact{}
	for _, f := range m.Files {
		out[f.File] = f
	}
	return out
}

// copyTestFile copies a real OTA file into dir (under name, or its own name when name is "").
func copyTestFile(t testing.TB, file, dir, name string) string {
	t.Helper()
	skipWithoutVendorFiles(t)
	if name == "" {
		name = file
	}
	b, err := os.ReadFile(filepath.Join(storeTestdataDir, file))
	require.NoError(t, err)
	dst := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	require.NoError(t, os.WriteFile(dst, b, 0o644))
	return dst
}

func readTestFile(t testing.TB, file string) []byte {
	t.Helper()
	skipWithoutVendorFiles(t)
	b, err := os.ReadFile(filepath.Join(storeTestdataDir, file))
	require.NoError(t, err)
	return b
}

// storeRig is a store over fresh folders in t.TempDir().
type storeRig struct {
	root, folder, cache string
	cfg                 StoreConfig
}

func newStoreRig(t testing.TB) *storeRig {
	root := t.TempDir()
	r := &storeRig{root: root, folder: filepath.Join(root, "images"), cache: filepath.Join(root, "data", "ota-cache")}
	require.NoError(t, os.MkdirAll(r.folder, 0o755))
	r.cfg = StoreConfig{Folder: r.folder, CacheDir: r.cache}
	return r
}

// open makes a store for the rig's config (changed by the caller as needed) and closes it at cleanup.
func (r *storeRig) open(t testing.TB, opts ...StoreOption) *Store {
	t.Helper()
	s, err := NewStore(r.cfg, zerolog.Nop(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// load opens a store and loads it.
func (r *storeRig) load(t testing.TB, opts ...StoreOption) *Store {
	t.Helper()
	s := r.open(t, opts...)
	require.NoError(t, s.Load(t.Context()))
	return s
}

// fileServer serves named byte slices and counts requests per path; fail makes every request a 500.
type fileServer struct {
	mu    sync.Mutex
	files map[string][]byte
	hits  map[string]int
	fail  bool
	srv   *httptest.Server
}

func newFileServer(t testing.TB) *fileServer {
	fs := &fileServer{files: map[string][]byte{}, hits: map[string]int{}}
	fs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.hits[r.URL.Path]++
		b, ok := fs.files[r.URL.Path]
		fail := fs.fail
		fs.mu.Unlock()
		switch {
		case fail:
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
		case !ok:
			http.NotFound(w, r)
		default:
			w.Write(b)
		}
	}))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fileServer) put(path string, b []byte) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files[path] = b
	return fs.srv.URL + path
}

func (fs *fileServer) setFail(v bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.fail = v
}

func (fs *fileServer) count(path string) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.hits[path]
}

// problemsFor returns the problems whose source ends with suffix.
func problemsFor(s *Store, suffix string) []Problem {
	var out []Problem
	for _, p := range s.Problems() {
		if len(p.Source) >= len(suffix) && p.Source[len(p.Source)-len(suffix):] == suffix {
			out = append(out, p)
		}
	}
	return out
}

// mustJSON encodes v.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// syntheticOTA builds a small valid OTA file.
func syntheticOTA(t testing.TB, h Header, payload int) []byte {
	t.Helper()
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(i*7 + int(h.FileVersion))
	}
	b, err := Build(h, []BuildElement{{Tag: TagUpgradeImage, Data: data}})
	require.NoError(t, err)
	return b
}

func nopLogger() zerolog.Logger { return zerolog.Nop() }
