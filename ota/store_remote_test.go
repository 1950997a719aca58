package ota

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// remoteEntry is the zigbee-OTA index entry of a real file served at url.
func remoteEntry(f storeFact, url string) map[string]any {
	return map[string]any{
		"fileName": f.File, "fileVersion": f.FileVersion, "fileSize": f.TotalImageSize, "url": url,
		"imageType": f.ImageType, "manufacturerCode": f.ManufacturerCode, "sha512": f.SHA512,
		"otaHeaderString": f.HeaderString,
	}
}

// TestStoreRemoteIndex covers a remote index: fetch and cache, images offered before download, Ensure
// downloading once for concurrent callers and checking sha512, header and size, and the cached copies
// used when the server is down.
func TestStoreRemoteIndex(t *testing.T) {
	facts := storeFacts(t)
	srv := newFileServer(t)
	nodon, inovelli, ikea, ubisys, hue := facts[fileNodOn], facts[fileInovelli], facts[fileIKEANGIS], facts[fileUbisys], facts[fileHue]
	srv.put("/images/nodon.zigbee", readTestFile(t, fileNodOn))
	srv.put("/images/inovelli.ota", readTestFile(t, fileInovelli))
	srv.put("/images/ikea.signed", readTestFile(t, fileIKEANGIS))
	srv.put("/images/hue.zigbee", readTestFile(t, fileHue))
	srv.put("/images/ubisys.ota", readTestFile(t, fileUbisys))

	badSHA := remoteEntry(inovelli, "images/inovelli.ota") // relative to the index URL
	badSHA["sha512"] = nodon.SHA512
	contradicts := remoteEntry(ubisys, "images/ubisys.ota")
	contradicts["fileVersion"] = ubisys.FileVersion + 1
	tooBig := remoteEntry(ikea, srv.srv.URL+"/images/ikea.signed") // 228500 bytes on the wire, 227500 servable
	indexURL := srv.put("/index.json", mustJSON(t, []map[string]any{
		remoteEntry(nodon, srv.srv.URL+"/images/nodon.zigbee"),
		badSHA,
		contradicts,
		tooBig,
		remoteEntry(hue, "/images/hue.zigbee"), // relative to the server root
		{"url": "images/only-a-url.ota"},       // a remote entry needs the header facts
	}))

	r := newStoreRig(t)
	r.cfg.Indexes = []string{indexURL}
	r.cfg.MaxImageSize = 228000
	s := r.open(t, WithHTTPClient(srv.srv.Client()))
	var changes int
	var mu sync.Mutex
	s.OnChange(func() { mu.Lock(); changes++; mu.Unlock() })
	require.NoError(t, s.Load(t.Context()))

	cached := filepath.Join(r.cache, "index-"+hash16(indexURL)+".json")
	_, err := os.Stat(cached)
	require.NoError(t, err, "index cached")

	imgs := s.Images()
	require.Len(t, imgs, 5, "%v", s.Problems())
	probs := s.Problems()
	require.Len(t, probs, 1, "%v", probs)
	assert.Contains(t, probs[0].Reason, "index entry [5] (images/only-a-url.ota): a remote entry needs")

	img := s.Get(nodon.wantID())
	require.NotNil(t, img, "id from the entry's sha512 before download")
	assert.Equal(t, SourceIndex, img.Source)
	assert.Equal(t, indexURL, img.Index)
	assert.False(t, img.Local())
	assert.Equal(t, nodon.TotalImageSize, img.Size())
	_, err = img.ReadAt(make([]byte, 4), 0)
	assert.ErrorIs(t, err, ErrImageNotLocal)
	assert.Equal(t, 0, srv.count("/images/nodon.zigbee"), "nothing downloaded before Ensure")
	dev := DeviceInfo{ManufacturerCode: nodon.ManufacturerCode, ImageType: nodon.ImageType, FileVersionKnown: true}
	assert.Same(t, img, s.Match(dev, MatchQuery{}), "offered before download")

	// Concurrent Ensure downloads once.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Ensure(t.Context(), img) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 1, srv.count("/images/nodon.zigbee"))
	assert.True(t, img.Local())
	got := make([]byte, img.Size())
	n, err := img.ReadAt(got, 0)
	require.NoError(t, err)
	assert.Equal(t, readTestFile(t, fileNodOn), got[:n])
	require.NoError(t, s.Ensure(t.Context(), img), "already local")
	assert.Equal(t, 1, srv.count("/images/nodon.zigbee"))
	assert.Equal(t, int64(nodon.FileLength), img.Info().FileSize)

	// A relative url is resolved against the index URL.
	hu := s.Get(hue.wantID())
	require.NoError(t, s.Ensure(t.Context(), hu))
	assert.True(t, hu.Local())

	// sha512 mismatch, header contradiction and size limit are refused and listed.
	err = s.Ensure(t.Context(), s.Get(imageID(Header{ManufacturerCode: inovelli.ManufacturerCode, ImageType: inovelli.ImageType, FileVersion: inovelli.FileVersion}, nodon.SHA512)))
	assert.ErrorContains(t, err, "index entry [1] (mmwave_module_fw_V3_14_3.ota): sha512 mismatch")
	var contra *Image
	for _, im := range s.Images() {
		if im.FileName == fileUbisys {
			contra = im
		}
	}
	require.NotNil(t, contra)
	err = s.Ensure(t.Context(), contra)
	assert.ErrorContains(t, err, "header file version 0x02010230 contradicts the index's 0x02010231")
	assert.False(t, contra.Local())
	err = s.Ensure(t.Context(), s.Get(ikea.wantID()))
	assert.ErrorIs(t, err, errTooLarge)
	assert.Len(t, s.Problems(), 4, "%v", s.Problems())
	leftovers, _ := filepath.Glob(filepath.Join(r.cache, "images", tempPrefix+"*"))
	assert.Empty(t, leftovers, "failed downloads leave no temporary files")

	mu.Lock()
	assert.Equal(t, 3, changes, "Load and two downloads")
	mu.Unlock()

	// The server goes down: Refresh keeps the images from the cached index, and the downloaded one stays.
	srv.setFail(true)
	require.NoError(t, s.Refresh(t.Context()))
	assert.Len(t, s.Images(), 5)
	assert.Same(t, img, s.Get(img.ID), "unchanged entries keep their image")
	assert.True(t, img.Local())
	var fetchProblem bool
	for _, p := range s.Problems() {
		if strings.Contains(p.Reason, "fetch failed, using the cached copy") && strings.Contains(p.Reason, "500") {
			fetchProblem = true
		}
	}
	assert.True(t, fetchProblem, "%v", s.Problems())

	// A restart while the server is down: the index comes from the cache and the downloaded image is
	// local at once.
	require.NoError(t, s.Close())
	s2 := r.load(t, WithHTTPClient(srv.srv.Client()))
	assert.Len(t, s2.Images(), 5)
	img2 := s2.Get(nodon.wantID())
	require.NotNil(t, img2)
	assert.True(t, img2.Local(), "adopted from the image cache")
	assert.False(t, s2.Get(ikea.wantID()).Local())
	assert.Error(t, s2.Ensure(t.Context(), s2.Get(ikea.wantID())))
}

// TestStoreRemoteIndexWithoutCache checks a failed first fetch.
func TestStoreRemoteIndexWithoutCache(t *testing.T) {
	srv := newFileServer(t)
	r := newStoreRig(t)
	r.cfg.Indexes = []string{srv.srv.URL + "/missing.json"}
	s := r.load(t, WithHTTPClient(srv.srv.Client()))
	assert.Empty(t, s.Images())
	probs := s.Problems()
	require.Len(t, probs, 1)
	assert.Contains(t, probs[0].Reason, "fetch failed and no cached copy")
	assert.Contains(t, probs[0].Reason, "404")
}

// TestStoreRemoteIndexNotJSON checks that a fetched body that is not an index does not replace the cache.
func TestStoreRemoteIndexNotJSON(t *testing.T) {
	facts := storeFacts(t)
	srv := newFileServer(t)
	nodon := facts[fileNodOn]
	ix := srv.put("/index.json", mustJSON(t, []map[string]any{remoteEntry(nodon, "/n.ota")}))
	r := newStoreRig(t)
	r.cfg.Indexes = []string{ix}
	s := r.load(t, WithHTTPClient(srv.srv.Client()))
	require.Len(t, s.Images(), 1)
	srv.put("/index.json", []byte("<html>captive portal</html>"))
	require.NoError(t, s.Refresh(t.Context()))
	require.Len(t, s.Images(), 1, "kept from the cache")
	require.Len(t, s.Problems(), 1)
	assert.Contains(t, s.Problems()[0].Reason, "not a JSON array")
}

// TestStoreEnsureAfterClose checks Ensure on a closed store and on an image that is gone.
func TestStoreEnsureAfterClose(t *testing.T) {
	facts := storeFacts(t)
	srv := newFileServer(t)
	nodon := facts[fileNodOn]
	ix := srv.put("/index.json", mustJSON(t, []map[string]any{remoteEntry(nodon, "/n.ota")}))
	r := newStoreRig(t)
	r.cfg.Indexes = []string{ix}
	s := r.load(t, WithHTTPClient(srv.srv.Client()))
	img := s.Images()[0]
	srv.put("/index.json", []byte("[]"))
	require.NoError(t, s.Refresh(t.Context()))
	assert.ErrorIs(t, s.Ensure(t.Context(), img), ErrImageClosed)
	require.NoError(t, s.Close())
	assert.True(t, errors.Is(s.Ensure(t.Context(), img), ErrStoreClosed))
	assert.ErrorIs(t, s.Refresh(t.Context()), ErrStoreClosed)
}

// TestStoreRunRefreshes checks that Run fetches the remote index again every RefreshInterval and stops
// when its context ends.
func TestStoreRunRefreshes(t *testing.T) {
	srv := newFileServer(t)
	ix := srv.put("/index.json", []byte("[]"))
	r := newStoreRig(t)
	r.cfg.Indexes = []string{ix}
	r.cfg.RefreshInterval = 5 * time.Millisecond
	s := r.load(t, WithHTTPClient(srv.srv.Client()))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	require.Eventually(t, func() bool { return srv.count("/index.json") >= 3 }, 10*time.Second, time.Millisecond)
	cancel()
	<-done
}

// TestStoreFetchTimeout checks that a server that does not answer is given up after FetchTimeout.
func TestStoreFetchTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	r := newStoreRig(t)
	r.cfg.Indexes = []string{srv.URL + "/index.json"}
	r.cfg.FetchTimeout = 20 * time.Millisecond
	s := r.load(t, WithHTTPClient(srv.Client()))
	probs := s.Problems()
	require.Len(t, probs, 1)
	assert.Contains(t, probs[0].Reason, "deadline exceeded")
}

// TestStoreConcurrentUse runs lookups while images are downloaded, refreshed and added, for the race
// detector.
func TestStoreConcurrentUse(t *testing.T) {
	facts := storeFacts(t)
	srv := newFileServer(t)
	var entries []map[string]any
	for _, name := range []string{fileNodOn, fileInovelli, fileUbisys, fileHue} {
		srv.put("/i/"+name, readTestFile(t, name))
		entries = append(entries, remoteEntry(facts[name], "/i/"+name))
	}
	ix := srv.put("/index.json", mustJSON(t, entries))
	r := newStoreRig(t)
	r.cfg.Indexes = []string{ix}
	s := r.load(t, WithHTTPClient(srv.srv.Client()))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, img := range s.Images() {
					f := facts[img.FileName]
					dev := DeviceInfo{ManufacturerCode: f.ManufacturerCode, ImageType: f.ImageType, HardwareVersion: 1, HasHardwareVersion: true}
					s.Match(dev, MatchQuery{})
					s.Versions(dev)
					_ = img.Info()
					if img.Local() {
						buf := make([]byte, 64)
						img.ReadAt(buf, 0)
					}
				}
			}
		})
	}
	for _, img := range s.Images() {
		wg.Go(func() { assert.NoError(t, s.Ensure(t.Context(), img)) })
	}
	wg.Go(func() { assert.NoError(t, s.Refresh(t.Context())) })
	wg.Go(func() {
		_, err := s.AddUpload("x.ota", readTestFile(t, fileLegrand))
		assert.NoError(t, err)
	})
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	for _, img := range s.Images() {
		assert.True(t, img.Local(), img.ID)
	}
}
