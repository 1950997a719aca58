package ota

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/otabridge/otabridge/redact"
)

// addedStateFile, in the cache directory, remembers uploads and URL images across restarts.
const addedStateFile = "added-images.json"

// addedState is what addedStateFile holds.
type addedState struct {
	// Uploads are file paths relative to the images folder.
	Uploads []string `json:"uploads,omitempty"`
	// URLs are images added from a URL: the URL and the file name in <CacheDir>/images.
	URLs []addedURL `json:"urls,omitempty"`
}

type addedURL struct {
	URL  string `json:"url"`
	File string `json:"file"`
}

func (s *Store) readAddedState() (addedState, error) {
	var st addedState
	data, err := readFileLimited(filepath.Join(s.cacheAbs, addedStateFile), 16<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return addedState{}, fmt.Errorf("%s: %w", addedStateFile, err)
	}
	return st, nil
}

// saveAddedState writes the state atomically. The caller holds opMu.
func (s *Store) saveAddedState() error {
	data, err := json.MarshalIndent(s.added, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.cacheAbs, addedStateFile, data); err != nil {
		return fmt.Errorf("save %s: %w", addedStateFile, err)
	}
	return nil
}

// addedURLCandidates reopens the URL images of earlier runs; one whose file is gone or broken is forgotten.
func (s *Store) addedURLCandidates() ([]*candidate, []Problem) {
	var out []*candidate
	var probs []Problem
	keep := s.added.URLs[:0:0]
	redacted := false
	for _, a := range s.added.URLs {
		if shown := redact.URLs(a.URL); shown != a.URL { // saved by an earlier version with its credentials
			a.URL, redacted = shown, true
		}
		p := filepath.Join(s.cacheAbs, "images", filepath.Base(a.File))
		lf, err := openLocal(p, s.hashes)
		if err != nil {
			probs = append(probs, Problem{Source: a.URL, Reason: fmt.Sprintf("image added from this URL is unusable and forgotten: %v", err)})
			continue
		}
		keep = append(keep, a)
		c := localCandidate(SourceURL, a.URL, lf)
		c.fileName = urlFileName(a.URL, lf.path)
		out = append(out, c)
	}
	if len(keep) != len(s.added.URLs) || redacted {
		s.added.URLs = keep
		if err := s.saveAddedState(); err != nil {
			s.log.Warn().Err(err).Msg("added images state not saved")
		}
	}
	return out, probs
}

// urlFileName is the base name of the URL's path, or of the local file.
func urlFileName(rawURL, local string) string {
	if u, err := url.Parse(rawURL); err == nil {
		if b := path.Base(u.Path); b != "." && b != "/" && b != "" {
			return b
		}
	}
	return filepath.Base(local)
}

// existingBySHA512Locked returns a local image whose file has that SHA-512. The caller holds s.mu.
func (s *Store) existingBySHA512Locked(sum string) *Image {
	for _, e := range s.entries {
		if e.img.SHA512 == sum && e.img.Local() {
			return e.img
		}
	}
	return nil
}

// addEntry publishes a new image made from a validated local file. The caller holds opMu.
func (s *Store) addEntry(c *candidate) (*Image, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.lf.f.Close()
		return nil, ErrStoreClosed
	}
	ids := make(map[string]bool, len(s.byID))
	for id := range s.byID {
		ids[id] = true
	}
	e := s.newEntry(c, uniqueID(c.baseID, ids))
	s.setEntriesLocked(append(slices.Clone(s.entries), e))
	s.mu.Unlock()
	s.logAdded(e)
	return e.img, nil
}

// AddUpload validates an uploaded OTA file and writes it into the images folder (atomically: a temporary
// file, fsync, rename) under its sanitised base name (made unique when a different file has that name).
// Data above MaxImageSize or not a valid OTA file is refused before anything is written. When a file with
// the same SHA-512 is already in the catalogue, that image is returned and nothing is written.
func (s *Store) AddUpload(fileName string, data []byte) (*Image, error) {
	img, changed, err := s.addUpload(fileName, data)
	if changed {
		s.notify()
	}
	return img, err
}

func (s *Store) addUpload(fileName string, data []byte) (*Image, bool, error) {
	if int64(len(data)) > s.cfg.MaxImageSize {
		return nil, false, fmt.Errorf("upload %q: %d bytes is above max_image_size %d", fileName, len(data), s.cfg.MaxImageSize)
	}
	if _, err := ParseBytes(data); err != nil {
		return nil, false, fmt.Errorf("upload %q: not a valid OTA file: %w", fileName, err)
	}
	digest := sha512.Sum512(data)
	sum := hex.EncodeToString(digest[:])
	s.opMu.Lock()
	defer s.opMu.Unlock()
	err := s.prepareLocked()
	if errors.Is(err, errFolderMissing) { // an upload is an explicit request to store a file there
		if err = os.MkdirAll(s.cfg.Folder, 0o755); err == nil {
			s.log.Info().Str("folder", s.cfg.Folder).Msg("images folder created for an upload")
			err = s.prepareLocked()
		}
	}
	if err != nil {
		return nil, false, err
	}
	s.mu.RLock()
	closed, existing := s.closed, s.existingBySHA512Locked(sum)
	s.mu.RUnlock()
	if closed {
		return nil, false, ErrStoreClosed
	}
	if existing != nil {
		s.log.Info().Str("image", existing.ID).Str("file", fileName).Msg("upload already present")
		return existing, false, nil
	}
	name := sanitizeFileName(fileName, "upload-"+sum[:8]+".ota")
	if _, err := os.Lstat(filepath.Join(s.folderAbs, name)); err == nil {
		ext := path.Ext(name)
		name = strings.TrimSuffix(name, ext) + "-" + sum[:8] + ext
	}
	if err := writeFileAtomic(s.folderAbs, name, data); err != nil {
		return nil, false, fmt.Errorf("upload %q: write %s: %w", fileName, name, err)
	}
	final := filepath.Join(s.folderAbs, name)
	lf, err := openLocal(final, s.hashes)
	if err == nil && lf.sha512 != sum {
		lf.f.Close()
		err = errors.New("file changed while it was written")
	}
	if err != nil {
		os.Remove(final)
		return nil, false, fmt.Errorf("upload %q: %s: %w", fileName, name, err)
	}
	s.added.Uploads = append(s.added.Uploads, name)
	if err := s.saveAddedState(); err != nil {
		s.log.Warn().Err(err).Msg("added images state not saved")
	}
	img, err := s.addEntry(localCandidate(SourceUpload, s.displayPath(final), lf))
	return img, err == nil, err
}

// AddFromURL downloads an OTA file (http or https; at most MaxImageSize bytes, within FetchTimeout) into the
// cache directory, validates it and adds it. An index file is not accepted here (configure it in
// indexes). When a file with the same SHA-512 is already in the catalogue, that image is returned.
func (s *Store) AddFromURL(ctx context.Context, rawURL string) (*Image, error) {
	ctx, cancel := s.bind(ctx)
	defer cancel()
	img, changed, err := s.addFromURL(ctx, rawURL)
	if changed {
		s.notify()
	}
	return img, err
}

func (s *Store) addFromURL(ctx context.Context, rawURL string) (*Image, bool, error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		return nil, false, fmt.Errorf("add image from URL: %w", err)
	}
	shown := redact.URLs(u.String())
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, false, fmt.Errorf("add image from URL %s: only http and https URLs are accepted", shown)
	}
	if strings.HasSuffix(strings.ToLower(u.Path), ".json") {
		return nil, false, fmt.Errorf("add image from URL %s: this is an index file; add it to the store's indexes instead", shown)
	}
	s.opMu.Lock()
	if err = s.prepareLocked(); errors.Is(err, errFolderMissing) {
		err = nil // URL images go to the cache directory
	}
	dir := filepath.Join(s.cacheAbs, "images")
	s.opMu.Unlock()
	if err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return nil, false, fmt.Errorf("add image from URL %s: %w", shown, err)
	}
	h := sha512.New()
	err = finishTemp(tmp, func(w io.Writer) error {
		_, err := s.download(ctx, u.String(), s.cfg.MaxImageSize, io.MultiWriter(w, h))
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("add image from URL: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	sum := hex.EncodeToString(h.Sum(nil))

	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.RLock()
	closed, existing := s.closed, s.existingBySHA512Locked(sum)
	s.mu.RUnlock()
	if closed {
		return nil, false, ErrStoreClosed
	}
	if existing != nil {
		s.log.Info().Str("image", existing.ID).Str("url", shown).Msg("image from URL already present")
		return existing, false, nil
	}
	lf, err := openLocal(tmp.Name(), nil)
	if err != nil {
		if errors.Is(err, ErrNoMagic) && looksLikeJSON(tmp.Name()) {
			return nil, false, fmt.Errorf("add image from URL %s: this is an index file, not an OTA file; add it to the store's indexes instead", shown)
		}
		return nil, false, fmt.Errorf("add image from URL %s: not a valid OTA file: %w", shown, err)
	}
	name := "url-" + hash16(shown) + "-" + sum[:8] + "-" + sanitizeFileName(path.Base(u.Path), "image.ota")
	final := filepath.Join(dir, name)
	if err := renameSync(tmp.Name(), final); err != nil {
		lf.f.Close()
		return nil, false, fmt.Errorf("add image from URL %s: %w", shown, err)
	}
	lf.path = final
	s.added.URLs = append(s.added.URLs, addedURL{URL: shown, File: name})
	if err := s.saveAddedState(); err != nil {
		s.log.Warn().Err(err).Msg("added images state not saved")
	}
	c := localCandidate(SourceURL, shown, lf)
	c.fileName = urlFileName(u.String(), final)
	img, err := s.addEntry(c)
	return img, err == nil, err
}

// looksLikeJSON reports whether a file starts (after white space) with '[' or '{'.
func looksLikeJSON(p string) bool {
	f, _, err := openRegular(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 512)
	n, _ := io.ReadFull(f, buf)
	t := bytes.TrimLeft(buf[:n], " \t\r\n\ufeff")
	return len(t) > 0 && (t[0] == '[' || t[0] == '{')
}

// AddFromPath validates and adds a file of the images folder now, without waiting for a rescan. A
// relative path is relative to the folder; the path must resolve, after symbolic links, inside the folder
// (nothing outside the configured folders is ever read). When the file is in the catalogue already, its
// image is returned.
func (s *Store) AddFromPath(p string) (*Image, error) {
	img, changed, err := s.addFromPath(p)
	if changed {
		s.notify()
	}
	return img, err
}

func (s *Store) addFromPath(p string) (*Image, bool, error) {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.prepareLocked(); err != nil {
		return nil, false, err
	}
	if s.isClosed() {
		return nil, false, ErrStoreClosed
	}
	// The answers never tell whether a path outside the folder exists: a path that is outside before
	// symbolic links are resolved is refused without touching the file system, and one that resolves
	// outside gets the same sentence.
	outside := fmt.Errorf("add image %s: outside the images folder", p)
	full := filepath.FromSlash(p)
	if !filepath.IsAbs(full) {
		full = filepath.Join(s.folderAbs, full)
	}
	full = filepath.Clean(full)
	configured, _ := filepath.Abs(s.cfg.Folder) // the folder as configured, before symbolic links
	if !within(s.folderAbs, full) && !within(configured, full) {
		return nil, false, outside
	}
	real, err := filepath.EvalSymlinks(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("add image %s: no such file in the images folder", p)
	}
	if err != nil {
		return nil, false, fmt.Errorf("add image %s: cannot be resolved in the images folder", p)
	}
	if !within(s.folderAbs, real) {
		return nil, false, outside
	}
	if strings.HasSuffix(real, removedSuffix) || strings.HasPrefix(filepath.Base(real), ".") {
		return nil, false, fmt.Errorf("add image %s: the folder scan skips hidden and %s files; rename it first", p, removedSuffix)
	}
	s.mu.RLock()
	var existing *Image
	for _, e := range s.entries {
		if e.path == real {
			existing = e.img
			break
		}
	}
	s.mu.RUnlock()
	if existing != nil {
		return existing, false, nil
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, false, fmt.Errorf("add image %s: %w", s.displayPath(real), err)
	}
	if st.Size() > s.cfg.MaxImageSize {
		return nil, false, fmt.Errorf("add image %s: file of %d bytes is above max_image_size %d", p, st.Size(), s.cfg.MaxImageSize)
	}
	lf, err := openLocal(real, s.hashes)
	if err != nil {
		return nil, false, fmt.Errorf("add image %s: %w", s.displayPath(real), err)
	}
	img, err := s.addEntry(localCandidate(SourceFolder, s.displayPath(real), lf))
	return img, err == nil, err
}

// Remove takes an image out of the catalogue and closes it (reads of a transfer in progress fail with
// ErrImageClosed). What happens to its file depends on where it came from:
//   - upload and url: the file is deleted;
//   - folder: the file is renamed to <name>.removed, which scans skip, so it does not come back (rename it
//     back to offer it again);
//   - index: refused; the image comes back with every refresh of its index, so edit the index instead.
func (s *Store) Remove(id string) error {
	err := s.remove(id)
	if err == nil {
		s.notify()
	}
	return err
}

func (s *Store) remove(id string) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	s.mu.RLock()
	e, closed := s.byID[id], s.closed
	s.mu.RUnlock()
	if closed {
		return ErrStoreClosed
	}
	if e == nil {
		return fmt.Errorf("remove image %s: %w", id, ErrImageNotFound)
	}
	img := e.img
	switch img.Source {
	case SourceIndex:
		return fmt.Errorf("remove image %s: it is listed by index %s; remove its entry there instead", id, img.Index)
	case SourceFolder:
		if err := os.Rename(e.path, e.path+removedSuffix); err != nil {
			return fmt.Errorf("remove image %s: %w", id, err)
		}
	case SourceUpload, SourceURL:
		if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove image %s: %w", id, err)
		}
		s.forgetAdded(e.path)
	}
	s.mu.Lock()
	s.setEntriesLocked(slices.DeleteFunc(slices.Clone(s.entries), func(x *storeEntry) bool { return x == e }))
	s.mu.Unlock()
	if err := img.close(); err != nil {
		s.log.Warn().Err(err).Str("image", id).Msg("close removed image")
	}
	delete(s.hashes, e.path)
	s.log.Info().Str("image", id).Str("source", img.Source).Str("file", redact.URLs(img.Origin)).Msg("image removed")
	return nil
}

// forgetAdded drops an upload or URL image's file from the added state. The caller holds opMu.
func (s *Store) forgetAdded(p string) {
	n := len(s.added.Uploads) + len(s.added.URLs)
	s.added.Uploads = slices.DeleteFunc(s.added.Uploads, func(u string) bool {
		return filepath.Join(s.folderAbs, u) == p
	})
	s.added.URLs = slices.DeleteFunc(s.added.URLs, func(a addedURL) bool {
		return filepath.Join(s.cacheAbs, "images", a.File) == p
	})
	if len(s.added.Uploads)+len(s.added.URLs) != n {
		if err := s.saveAddedState(); err != nil {
			s.log.Warn().Err(err).Msg("added images state not saved")
		}
	}
}
