package ota

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewStoreDefaults(t *testing.T) {
	s, err := NewStore(StoreConfig{}, nopLogger())
	require.NoError(t, err)
	cfg := s.Config()
	assert.Equal(t, "images", cfg.Folder)
	assert.Equal(t, "data/ota-cache", cfg.CacheDir)
	assert.Equal(t, DefaultRefreshInterval, cfg.RefreshInterval)
	assert.Equal(t, int64(16<<20), cfg.MaxImageSize)
	assert.Equal(t, DefaultFetchTimeout, cfg.FetchTimeout)
	require.NoError(t, s.Close())

	_, err = NewStore(StoreConfig{MaxImageSize: 10}, nopLogger())
	assert.ErrorContains(t, err, "max_image_size")
	_, err = NewStore(StoreConfig{Indexes: []string{""}}, nopLogger())
	assert.ErrorContains(t, err, "index 0 is empty")
}

// TestStoreFolderScan loads every real file: valid ones are found with the right ids whatever their
// extension, the truncated ONOKOM file is refused with a clear reason, other files are skipped.
func TestStoreFolderScan(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	for name := range facts {
		copyTestFile(t, name, r.folder, "")
	}
	// An OTA file in a subfolder under a name without an OTA extension is found too.
	copyTestFile(t, fileNodOn, r.folder, filepath.Join("vendor", "nodon.bin"))
	require.NoError(t, os.WriteFile(filepath.Join(r.folder, "notes.txt"), []byte("not an OTA file\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(r.folder, "index.json"), []byte("[]"), 0o644))
	copyTestFile(t, fileInovelli, r.folder, ".hidden.ota")
	copyTestFile(t, fileInovelli, r.folder, "old.ota"+removedSuffix)
	s := r.load(t)

	byID := map[string]*Image{}
	for _, img := range s.Images() {
		byID[img.ID] = img
	}
	valid := 0
	for name, f := range facts {
		if !f.Valid {
			continue
		}
		valid++
		img := byID[f.wantID()]
		require.NotNil(t, img, "%s: no image with id %s", name, f.wantID())
		assert.Equal(t, SourceFolder, img.Source, name)
		assert.True(t, img.Local(), name)
		assert.Equal(t, f.FileLength, img.FileSize, name)
		assert.Equal(t, f.SHA512, img.SHA512, name)
		assert.Equal(t, f.TotalImageSize, img.Size(), name)
		assert.Equal(t, f.FileVersion, img.Header.FileVersion, name)
		assert.Equal(t, filepath.Join(r.folder, name), img.Origin, name)
		assert.Same(t, img, s.Get(img.ID))
	}
	// The NodOn copy in vendor/ has the same bytes, so the same base id with a suffix.
	nodon := facts[fileNodOn]
	dup := byID[nodon.wantID()+"-2"]
	require.NotNil(t, dup, "copy in a subfolder")
	assert.Equal(t, "nodon.bin", dup.FileName)
	assert.Len(t, s.Images(), valid+1, "hidden, removed and non-OTA files are skipped")

	probs := s.Problems()
	require.Len(t, probs, 1, "only the truncated file is a problem: %v", probs)
	assert.Equal(t, filepath.Join(r.folder, fileONOKOM), probs[0].Source)
	assert.Contains(t, probs[0].Reason, "278830")
	assert.Contains(t, probs[0].Reason, "92222")
	assert.Contains(t, probs[0].Reason, "truncated")

	// Images are sorted by manufacturer code, image type, version.
	imgs := s.Images()
	for i := 1; i < len(imgs); i++ {
		a, b := imgs[i-1].Header, imgs[i].Header
		assert.LessOrEqual(t, a.ManufacturerCode, b.ManufacturerCode)
	}
}

// TestStoreDisplayPathIsTheConfiguredOne checks that messages name files the way the configuration does.
func TestStoreDisplayPathIsTheConfiguredOne(t *testing.T) {
	r := newStoreRig(t)
	copyTestFile(t, fileONOKOM, r.folder, "foo.ota")
	t.Chdir(r.root)
	r.cfg.Folder, r.cfg.CacheDir = "images", "cache"
	s := r.load(t)
	probs := s.Problems()
	require.Len(t, probs, 1)
	assert.Equal(t, "images/foo.ota", probs[0].Source)
	assert.Equal(t, "OTA image truncated: header says 278830 bytes from offset 0, file has 92222 (186608 bytes missing)", probs[0].Reason)
}

// TestStoreReadAtWrappedFiles checks that ReadAt of wrapped files serves exactly the OTA region.
func TestStoreReadAtWrappedFiles(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	files := []string{fileIKEANGIS, fileLegrand, fileNodOn}
	for _, f := range files {
		copyTestFile(t, f, r.folder, "")
	}
	s := r.load(t)
	for _, name := range files {
		f := facts[name]
		raw := readTestFile(t, name)
		want := raw[f.MagicOffset : f.MagicOffset+int64(f.TotalImageSize)]
		img := s.Get(f.wantID())
		require.NotNil(t, img, name)

		got := make([]byte, img.Size()+100)
		n, err := img.ReadAt(got, 0)
		assert.Equal(t, int(f.TotalImageSize), n, name)
		assert.True(t, err == nil || errors.Is(err, io.EOF), "%s: %v", name, err)
		assert.True(t, bytes.Equal(want, got[:n]), "%s: servable bytes", name)

		// A read across the end is cut at the end; a read at the end is EOF.
		tail := make([]byte, 64)
		n, _ = img.ReadAt(tail, int64(f.TotalImageSize)-10)
		assert.Equal(t, 10, n, name)
		assert.Equal(t, want[len(want)-10:], tail[:10], name)
		_, err = img.ReadAt(tail, int64(f.TotalImageSize))
		assert.ErrorIs(t, err, io.EOF, name)

		sum, ok := img.SHA256()
		assert.True(t, ok)
		assert.Equal(t, sha256.Sum256(want), sum, "%s: sha256 of the servable region", name)
	}
}

// writeIndex writes an index file from entries (maps, so the test controls every key).
func writeIndex(t *testing.T, path string, entries ...map[string]any) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, mustJSON(t, entries), 0o644))
}

// TestStoreLocalIndex covers a local override index: relative urls (to the folder or the index's own
// folder), filters and release notes, header fields from the file, and the entries that are refused.
func TestStoreLocalIndex(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	copyTestFile(t, fileNodOn, r.folder, "nodon.zigbee")
	copyTestFile(t, fileInovelli, r.folder, "inovelli.ota")
	copyTestFile(t, fileUbisys, r.folder, "ubisys.ota")
	copyTestFile(t, fileLegrand, r.folder, "legrand.zigbee")
	ixDir := filepath.Join(r.root, "overrides")
	copyTestFile(t, fileIKEANGIS, ixDir, "ikea.signed")
	outside := copyTestFile(t, fileIKEANGIS, r.root, "outside.ota")
	require.NoError(t, os.Symlink(outside, filepath.Join(ixDir, "link.ota")))
	nodon, inovelli, ikea, ubisys := facts[fileNodOn], facts[fileInovelli], facts[fileIKEANGIS], facts[fileUbisys]

	writeIndex(t, filepath.Join(ixDir, "index.json"),
		// [0] only a url relative to the images folder, with a model filter and text release notes.
		map[string]any{"url": "../images/nodon.zigbee", "modelId": "SIN-4-2-20", "releaseNotes": "Fixes things.", "unknownKey": 1},
		// [1] a url relative to the index's own folder, with the entry's header facts and a release URL.
		map[string]any{"url": "ikea.signed", "fileName": "ikea.signed", "fileVersion": ikea.FileVersion, "fileSize": ikea.TotalImageSize,
			"imageType": ikea.ImageType, "manufacturerCode": ikea.ManufacturerCode, "sha512": ikea.SHA512,
			"releaseNotes": "https://example.com/ikea", "manufacturerName": []string{"IKEA of Sweden"}, "version": "2.3.093"},
		// [2] escapes both folders.
		map[string]any{"url": "../outside.ota"},
		// [3] a symlink in the index folder to a file outside both folders.
		map[string]any{"url": "link.ota"},
		// [4] contradicts the file's header.
		map[string]any{"url": "../images/inovelli.ota", "fileVersion": inovelli.FileVersion + 1},
		// [5] sha512 of another file.
		map[string]any{"url": "../images/ubisys.ota", "sha512": nodon.SHA512},
		// [6] no url.
		map[string]any{"fileName": "nothing.ota"},
		// [7] the file does not exist.
		map[string]any{"url": "missing.ota"},
	)
	r.cfg.Indexes = []string{filepath.Join(ixDir, "index.json")}
	s := r.load(t)

	img := s.Get(nodon.wantID())
	require.NotNil(t, img)
	assert.Equal(t, SourceIndex, img.Source)
	assert.Equal(t, r.cfg.Indexes[0], img.Index)
	assert.Equal(t, "SIN-4-2-20", img.Meta.ModelID)
	assert.Equal(t, "Fixes things.", img.Meta.ReleaseNotes)
	assert.Empty(t, img.Meta.ReleaseURL)
	assert.True(t, img.Local())
	assert.Equal(t, nodon.FileVersion, img.Header.FileVersion, "header facts come from the file")

	dev := DeviceInfo{ManufacturerCode: nodon.ManufacturerCode, ImageType: nodon.ImageType, Model: "SIN-4-2-20", FileVersionKnown: true}
	ok, why := Matches(img, dev)
	assert.True(t, ok, why)
	dev.Model = "other"
	ok, why = Matches(img, dev)
	assert.False(t, ok)
	assert.Contains(t, why, "modelId")
	assert.Nil(t, s.Match(dev, MatchQuery{}), "the folder file is offered only through its index entry")

	ik := s.Get(ikea.wantID())
	require.NotNil(t, ik)
	assert.Equal(t, SourceIndex, ik.Source)
	assert.Equal(t, "https://example.com/ikea", ik.Meta.ReleaseURL)
	assert.Empty(t, ik.Meta.ReleaseNotes)
	assert.Equal(t, "2.3.093", ik.Info().Version)
	assert.Equal(t, []string{"IKEA of Sweden"}, ik.Meta.ManufacturerNames)

	// Files the refused entries name are still offered from the folder, without filters.
	assert.Equal(t, SourceFolder, s.Get(inovelli.wantID()).Source)
	assert.Equal(t, SourceFolder, s.Get(ubisys.wantID()).Source)
	assert.NotNil(t, s.Get(facts[fileLegrand].wantID()), "unlisted folder files stay")
	assert.Len(t, s.Images(), 5)

	reasons := map[int]string{}
	for _, p := range s.Problems() {
		assert.Equal(t, r.cfg.Indexes[0], p.Source)
		for i := 0; i < 8; i++ {
			if strings.HasPrefix(p.Reason, "index entry ["+string(rune('0'+i))+"]") {
				reasons[i] = p.Reason
			}
		}
	}
	assert.Len(t, reasons, 6, "%v", s.Problems())
	assert.Contains(t, reasons[2], "outside the images folder and the index's folder")
	assert.Contains(t, reasons[3], "outside the images folder and the index's folder")
	assert.Contains(t, reasons[4], "header file version 0x06030e03 contradicts the index's 0x06030e04")
	assert.Contains(t, reasons[5], "sha512 mismatch")
	assert.Contains(t, reasons[6], "no url")
	assert.Contains(t, reasons[6], "nothing.ota")
	assert.Contains(t, reasons[7], "missing.ota")
}

// TestStoreLocalIndexRelativeToFolder checks that a relative index path is relative to the images folder.
func TestStoreLocalIndexRelativeToFolder(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	copyTestFile(t, fileNodOn, r.folder, filepath.Join("sub", "n.ota"))
	writeIndex(t, filepath.Join(r.folder, "sub", "my-index.json"), map[string]any{"url": "n.ota", "force": true})
	r.cfg.Indexes = []string{"sub/my-index.json"}
	s := r.load(t)
	img := s.Get(facts[fileNodOn].wantID())
	require.NotNil(t, img)
	assert.Equal(t, SourceIndex, img.Source)
	assert.True(t, img.Meta.Force)
	assert.Empty(t, s.Problems())
}

// TestStoreRefreshKeepsUnchangedImages checks that a rescan keeps the *Image of unchanged files, replaces
// a changed one (closing the old), and calls OnChange only when something changed.
func TestStoreRefreshKeepsUnchangedImages(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	copyTestFile(t, fileNodOn, r.folder, "a.ota")
	copyTestFile(t, fileInovelli, r.folder, "b.ota")
	s := r.open(t)
	var changes atomic.Int32
	s.OnChange(func() {
		changes.Add(1)
		s.Images() // callbacks run without the store's locks
	})
	require.NoError(t, s.Load(t.Context()))
	assert.Equal(t, int32(1), changes.Load())
	a, b := s.Get(facts[fileNodOn].wantID()), s.Get(facts[fileInovelli].wantID())
	require.NotNil(t, a)
	require.NotNil(t, b)

	require.NoError(t, s.Refresh(t.Context()))
	assert.Equal(t, int32(1), changes.Load(), "nothing changed")
	assert.Same(t, a, s.Get(a.ID))
	assert.Same(t, b, s.Get(b.ID))

	// b.ota now holds another file: the old image is closed, the new one offered.
	copyTestFile(t, fileLegrand, r.folder, "b.ota")
	require.NoError(t, s.Refresh(t.Context()))
	assert.Equal(t, int32(2), changes.Load())
	assert.Nil(t, s.Get(b.ID))
	_, err := b.ReadAt(make([]byte, 10), 0)
	assert.ErrorIs(t, err, ErrImageClosed)
	assert.NotNil(t, s.Get(facts[fileLegrand].wantID()))
	assert.Same(t, a, s.Get(a.ID))
}

// TestStoreRefusesOversizedFolderFile checks the size limit on folder files.
func TestStoreRefusesOversizedFolderFile(t *testing.T) {
	r := newStoreRig(t)
	copyTestFile(t, fileLegrand, r.folder, "")
	require.NoError(t, os.WriteFile(filepath.Join(r.folder, "big.bin"), make([]byte, 300000), 0o644))
	r.cfg.MaxImageSize = 200000
	s := r.load(t)
	assert.Empty(t, s.Images())
	probs := s.Problems()
	require.Len(t, probs, 1, "a large file without the OTA identifier is skipped quietly")
	assert.Contains(t, probs[0].Reason, "above max_image_size 200000")
}

// TestStoreInfoJSON checks the JSON of an image for otabridge/bridge/images.
func TestStoreInfoJSON(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	copyTestFile(t, fileUbisys, r.folder, "")
	s := r.load(t)
	f := facts[fileUbisys]
	img := s.Get(f.wantID())
	require.NotNil(t, img)
	var got map[string]any
	require.NoError(t, json.Unmarshal(mustJSON(t, img.Info()), &got))
	want := map[string]any{
		"id": f.wantID(), "source": "folder", "file_name": fileUbisys,
		"manufacturer_code": float64(0x10F2), "image_type": float64(0x7B2A), "file_version": float64(0x02010230),
		"size": float64(114174), "file_size": float64(114174), "header_string": "ubisys R0 2.0.1",
		"sha512": f.SHA512, "local": true, "min_hardware_version": float64(0), "max_hardware_version": float64(5),
	}
	assert.Equal(t, want, got)
}

func TestSanitizeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"fw.ota":                  "fw.ota",
		"../../etc/passwd":        "passwd",
		`C:\temp\evil name.ota`:   "evil_name.ota",
		".hidden.ota":             "hidden.ota",
		"..":                      "x.ota",
		"":                        "x.ota",
		"a/b/":                    "b",
		"ünïcode.ota":             "_n_code.ota",
		"foo.ota" + removedSuffix: "foo.ota",
	} {
		assert.Equal(t, want, sanitizeFileName(in, "x.ota"), "%q", in)
	}
}

func TestWithin(t *testing.T) {
	assert.True(t, within("/a/b", "/a/b/c"))
	assert.True(t, within("/a/b", "/a/b"))
	assert.False(t, within("/a/b", "/a/bc"))
	assert.False(t, within("/a/b", "/a"))
	assert.True(t, within("/a/b", "/a/b/..c"))
}
