package ota

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreAddUpload(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	r.cfg.MaxImageSize = 200000
	s := r.load(t)
	changes := 0
	s.OnChange(func() { changes++ })
	nodon := facts[fileNodOn]

	img, err := s.AddUpload("../../x/my fw.ota", readTestFile(t, fileNodOn))
	require.NoError(t, err)
	assert.Equal(t, nodon.wantID(), img.ID)
	assert.Equal(t, SourceUpload, img.Source)
	assert.Equal(t, "my_fw.ota", img.FileName)
	assert.True(t, img.Local())
	written, err := os.ReadFile(filepath.Join(r.folder, "my_fw.ota"))
	require.NoError(t, err)
	assert.Equal(t, readTestFile(t, fileNodOn), written)
	assert.Same(t, img, s.Get(img.ID))
	assert.Equal(t, 1, changes)

	// The same bytes again, under another name: the existing image, nothing written.
	again, err := s.AddUpload("copy.ota", readTestFile(t, fileNodOn))
	require.NoError(t, err)
	assert.Same(t, img, again)
	assert.NoFileExists(t, filepath.Join(r.folder, "copy.ota"))
	assert.Equal(t, 1, changes)

	// Another file under a name that is taken gets a unique name.
	ino, err := s.AddUpload("my fw.ota", readTestFile(t, fileInovelli))
	require.NoError(t, err)
	assert.Equal(t, "my_fw-"+facts[fileInovelli].SHA512[:8]+".ota", ino.FileName)

	// Too big, and not an OTA file: refused before anything is written.
	_, err = s.AddUpload("big.ota", readTestFile(t, fileLegrand))
	assert.ErrorContains(t, err, "above max_image_size 200000")
	_, err = s.AddUpload("bad.ota", []byte("hello"))
	assert.ErrorContains(t, err, "not a valid OTA file")
	_, err = s.AddUpload("trunc.ota", readTestFile(t, fileONOKOM))
	assert.ErrorIs(t, err, ErrTruncated)
	entries, err := os.ReadDir(r.folder)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "only the two accepted uploads, no temporary files")

	// A restart remembers that they were uploads.
	require.NoError(t, s.Close())
	s2 := r.load(t)
	up := s2.Get(img.ID)
	require.NotNil(t, up)
	assert.Equal(t, SourceUpload, up.Source)

	// Removing an upload deletes its file.
	require.NoError(t, s2.Remove(img.ID))
	assert.NoFileExists(t, filepath.Join(r.folder, "my_fw.ota"))
	assert.Nil(t, s2.Get(img.ID))
	_, err = up.ReadAt(make([]byte, 8), 0)
	assert.ErrorIs(t, err, ErrImageClosed)
	require.NoError(t, s2.Refresh(t.Context()))
	assert.Nil(t, s2.Get(img.ID))
	assert.Equal(t, SourceUpload, s2.Get(ino.ID).Source)
}

func TestStoreAddFromPath(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	s := r.load(t)
	assert.Empty(t, s.Images())

	copyTestFile(t, fileNodOn, r.folder, filepath.Join("new", "n.ota"))
	img, err := s.AddFromPath("new/n.ota")
	require.NoError(t, err)
	assert.Equal(t, facts[fileNodOn].wantID(), img.ID)
	assert.Equal(t, SourceFolder, img.Source)
	again, err := s.AddFromPath(filepath.Join(r.folder, "new", "..", "new", "n.ota"))
	require.NoError(t, err)
	assert.Same(t, img, again, "already in the catalogue")

	outside := copyTestFile(t, fileInovelli, r.root, "outside.ota")
	_, err = s.AddFromPath("../outside.ota")
	assert.ErrorContains(t, err, "outside the images folder")
	_, err = s.AddFromPath(outside)
	assert.ErrorContains(t, err, "outside the images folder")
	require.NoError(t, os.Symlink(outside, filepath.Join(r.folder, "link.ota")))
	_, err = s.AddFromPath("link.ota")
	assert.ErrorContains(t, err, "outside the images folder")
	_, err = s.AddFromPath("missing.ota")
	assert.Error(t, err)
	copyTestFile(t, fileONOKOM, r.folder, "broken.ota")
	_, err = s.AddFromPath("broken.ota")
	assert.ErrorContains(t, err, "truncated")
	assert.Len(t, s.Images(), 1)

	// The folder scan does not follow the symlink out either.
	require.NoError(t, s.Refresh(t.Context()))
	assert.Len(t, s.Images(), 1)
	assert.Len(t, problemsFor(s, "link.ota"), 1)
}

func TestStoreAddFromURL(t *testing.T) {
	facts := storeFacts(t)
	srv := newFileServer(t)
	u := srv.put("/fw/nodon.zigbee", readTestFile(t, fileNodOn))
	ixURL := srv.put("/fw/plain-index", []byte(`[{"url":"x.ota"}]`))
	r := newStoreRig(t)
	r.cfg.MaxImageSize = 200000
	s := r.load(t, WithHTTPClient(srv.srv.Client()))

	img, err := s.AddFromURL(t.Context(), u)
	require.NoError(t, err)
	assert.Equal(t, facts[fileNodOn].wantID(), img.ID)
	assert.Equal(t, SourceURL, img.Source)
	assert.Equal(t, u, img.Origin)
	assert.Equal(t, "nodon.zigbee", img.FileName)
	assert.True(t, img.Local())
	assert.True(t, filepath.IsAbs(img.Path()))
	assert.FileExists(t, img.Path())

	again, err := s.AddFromURL(t.Context(), u)
	require.NoError(t, err)
	assert.Same(t, img, again)

	for _, tc := range []struct{ url, want string }{
		{srv.srv.URL + "/index.json", "index file"},
		{ixURL, "index file"},
		{"ftp://example.com/fw.ota", "only http and https"},
		{"/etc/passwd", "only http and https"},
		{srv.srv.URL + "/nope.ota", "404"},
		{srv.put("/fw/legrand.zigbee", readTestFile(t, fileLegrand)), "above max_image_size"},
		{srv.put("/fw/text.ota", []byte("hello")), "not a valid OTA file"},
	} {
		_, err := s.AddFromURL(t.Context(), tc.url)
		assert.ErrorContains(t, err, tc.want, tc.url)
	}
	assert.Len(t, s.Images(), 1)

	// A restart keeps it, without fetching again.
	srv.setFail(true)
	require.NoError(t, s.Close())
	s2 := r.load(t, WithHTTPClient(srv.srv.Client()))
	img2 := s2.Get(img.ID)
	require.NotNil(t, img2)
	assert.Equal(t, SourceURL, img2.Source)
	assert.Equal(t, u, img2.Origin)
	assert.True(t, img2.Local())

	// Removing it deletes the downloaded file and forgets it.
	p := img2.Path()
	require.NoError(t, s2.Remove(img2.ID))
	assert.NoFileExists(t, p)
	require.NoError(t, s2.Close())
	s3 := r.load(t)
	assert.Empty(t, s3.Images())
}

func TestStoreRemove(t *testing.T) {
	facts := storeFacts(t)
	r := newStoreRig(t)
	copyTestFile(t, fileNodOn, r.folder, "n.ota")
	copyTestFile(t, fileInovelli, r.folder, "i.ota")
	writeIndex(t, filepath.Join(r.folder, "index.json"), map[string]any{"url": "i.ota"})
	r.cfg.Indexes = []string{"index.json"}
	s := r.load(t)
	n, i := s.Get(facts[fileNodOn].wantID()), s.Get(facts[fileInovelli].wantID())
	require.NotNil(t, n)
	require.NotNil(t, i)

	require.NoError(t, s.Remove(n.ID))
	assert.NoFileExists(t, filepath.Join(r.folder, "n.ota"))
	assert.FileExists(t, filepath.Join(r.folder, "n.ota"+removedSuffix))
	assert.Nil(t, s.Get(n.ID))
	assert.False(t, n.Local())
	require.NoError(t, s.Refresh(t.Context()))
	assert.Nil(t, s.Get(n.ID), "a rescan does not bring it back")

	err := s.Remove(i.ID)
	assert.ErrorContains(t, err, "listed by index index.json")
	assert.NotNil(t, s.Get(i.ID))
	assert.ErrorIs(t, s.Remove("nope"), ErrImageNotFound)

	// Renamed back, it is offered again.
	require.NoError(t, os.Rename(filepath.Join(r.folder, "n.ota"+removedSuffix), filepath.Join(r.folder, "n.ota")))
	require.NoError(t, s.Refresh(t.Context()))
	assert.NotNil(t, s.Get(n.ID))
}
