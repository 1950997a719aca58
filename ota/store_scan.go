package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
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
	"syscall"
	"time"

	"github.com/otabridge/otabridge/redact"
)

// tempPrefix starts the names of files being written; scans skip them.
const tempPrefix = ".otabridge-tmp-"

// removedSuffix ends the name of a folder file removed from the catalogue (Remove); scans skip them.
const removedSuffix = ".removed"

// localFile is an OTA file on disk, open, parsed and hashed.
type localFile struct {
	f      *os.File
	path   string // resolved path
	size   int64
	file   *File
	sha512 string   // hex, whole file
	sha256 [32]byte // servable region
}

// hashedFile remembers what parsing and hashing a file gave, so a rescan does not read unchanged files.
type hashedFile struct {
	size    int64
	modTime time.Time
	file    *File
	sha512  string
	sha256  [32]byte
}

// openRegular opens a file for reading only when it is a regular file. The open does not block (a named
// pipe without a writer, a device that waits for a carrier): O_NONBLOCK, then fstat on the open
// descriptor, so a file swapped after a check cannot slip through. Reads of a regular file are not
// affected by O_NONBLOCK.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("not a regular file (%s)", fileKind(st.Mode()))
	}
	return f, st, nil
}

// fileKind names a non-regular file type for error messages.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// openLocal opens, parses and hashes the OTA file at path (resolved; only a regular file, see
// openRegular). With cache set, a file whose size and modification time did not change since it was last
// hashed is not read again. The caller owns lf.f.
func openLocal(path string, cache map[string]hashedFile) (*localFile, error) {
	f, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	lf, err := inspectOpen(f, st, path, cache)
	if err != nil {
		f.Close()
		return nil, err
	}
	return lf, nil
}

func inspectOpen(f *os.File, st os.FileInfo, path string, cache map[string]hashedFile) (*localFile, error) {
	lf := &localFile{f: f, path: path, size: st.Size()}
	if h, ok := cache[path]; ok && h.size == st.Size() && h.modTime.Equal(st.ModTime()) {
		lf.file, lf.sha512, lf.sha256 = h.file, h.sha512, h.sha256
		return lf, nil
	}
	parsed, err := Parse(f, st.Size())
	if err != nil {
		return nil, err
	}
	lf.file = parsed
	region := Region{Offset: parsed.MagicOffset, Length: parsed.ImageSize()}
	if lf.sha512, lf.sha256, err = hashFile(f, st.Size(), region); err != nil {
		return nil, err
	}
	if cache != nil {
		cache[path] = hashedFile{size: st.Size(), modTime: st.ModTime(), file: parsed, sha512: lf.sha512, sha256: lf.sha256}
	}
	return lf, nil
}

// hashFile returns the hex SHA-512 of the first size bytes of r and the SHA-256 of the region in them.
func hashFile(r io.ReaderAt, size int64, region Region) (string, [32]byte, error) {
	h512, h256 := sha512.New(), sha256.New()
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		n := min(int64(len(buf)), size-off)
		if err := readFull(r, buf[:n], off); err != nil {
			return "", [32]byte{}, fmt.Errorf("hash at offset %d: %w", off, err)
		}
		h512.Write(buf[:n])
		lo, hi := max(off, region.Offset), min(off+n, region.Offset+region.Length)
		if lo < hi {
			h256.Write(buf[lo-off : hi-off])
		}
		off += n
	}
	var sum [32]byte
	copy(sum[:], h256.Sum(nil))
	return hex.EncodeToString(h512.Sum(nil)), sum, nil
}

// imageID is the stable id of a file: "<mfr>-<type>-<version>-<first 8 hex of sha512>".
func imageID(h Header, sha512hex string) string {
	return fmt.Sprintf("%04x-%04x-%08x-%s", h.ManufacturerCode, h.ImageType, h.FileVersion, sha512hex[:8])
}

// hash16 is the first 16 hex digits of the SHA-256 of s: cache file names for URLs.
func hash16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// within reports whether p is root or inside it (both absolute and clean).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && !filepath.IsAbs(rel) && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// candidate is an image a reload found, before it becomes (or is matched to) a catalogue entry.
type candidate struct {
	source, origin, index, fileName string
	rank                            int
	meta                            IndexMeta
	header                          Header // from the file, or from the index entry for remote images
	sha512                          string
	baseID                          string
	lf                              *localFile // the open file; nil for a remote image not downloaded
	remote                          *remoteRef
}

// remoteRef says where an index image's file is and how to check it.
type remoteRef struct {
	url       string // absolute http(s) URL
	index     string // the index that lists it (display form)
	entry     IndexEntry
	cachePath string
}

// key identifies a candidate across reloads: a reload that finds the same thing keeps the old *Image.
func (c *candidate) key() string {
	k := struct {
		Source, Origin, Index, FileName, SHA512, URL string
		Meta                                         IndexMeta
		Header                                       Header
	}{c.source, c.origin, c.index, c.fileName, c.sha512, "", c.meta, c.header}
	if c.remote != nil {
		k.URL = c.remote.url
	}
	b, _ := json.Marshal(k)
	return string(b)
}

// errFolderMissing is wrapped by prepareLocked when the images folder does not exist. The store does not
// create it (a missing folder is usually a mount not there yet, or a wrong images.folder): a reload warns
// and offers no folder files, an upload creates it.
var errFolderMissing = errors.New("does not exist (not created; create it or fix images.folder)")

// prepareLocked creates and resolves the cache directory and reads the added-images state the first time,
// then resolves the images folder. The caller holds opMu. When the folder does not exist the error wraps
// errFolderMissing and the cache directory is ready all the same.
func (s *Store) prepareLocked() error {
	if s.cacheAbs == "" {
		cache, err := resolveDir(s.cfg.CacheDir)
		if err != nil {
			return fmt.Errorf("OTA cache directory %s: %w", s.cfg.CacheDir, err)
		}
		if err := os.MkdirAll(filepath.Join(cache, "images"), 0o755); err != nil {
			return fmt.Errorf("OTA cache directory %s: %w", s.cfg.CacheDir, err)
		}
		s.cacheAbs = cache
		st, err := s.readAddedState()
		if err != nil {
			s.log.Warn().Err(err).Msg("added images state unreadable; uploads and URL images of earlier runs are ordinary folder files now")
		}
		s.added = st
	}
	if s.folderAbs != "" {
		return nil
	}
	abs, err := filepath.Abs(s.cfg.Folder)
	if err != nil {
		return fmt.Errorf("images folder %s: %w", s.cfg.Folder, err)
	}
	folder, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("images folder %s: %w", abs, errFolderMissing)
	}
	if err != nil {
		return fmt.Errorf("images folder %s: %w", s.cfg.Folder, err)
	}
	if st, err := os.Stat(folder); err != nil || !st.IsDir() {
		return fmt.Errorf("images folder %s: not a directory", s.cfg.Folder)
	}
	s.folderAbs = folder
	return nil
}

// resolveDir creates dir when missing and returns its absolute path with symlinks resolved.
func resolveDir(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// reload is Load and Refresh.
func (s *Store) reload(ctx context.Context) error {
	ctx, cancel := s.bind(ctx)
	defer cancel()
	changed, err := s.reloadOp(ctx)
	if changed {
		s.notify()
	}
	return err
}

func (s *Store) reloadOp(ctx context.Context) (bool, error) {
	// Remote indexes are fetched before opMu is taken, so a slow server does not hold up uploads.
	remote := s.fetchRemoteIndexes(ctx)
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.isClosed() {
		return false, ErrStoreClosed
	}
	var probs []Problem
	var folder []*candidate
	switch err := s.prepareLocked(); {
	case errors.Is(err, errFolderMissing):
		s.log.Warn().Err(err).Msg("images folder missing: no folder images offered")
	case err != nil:
		return false, err
	default:
		var p []Problem
		folder, p, err = s.scanFolder(ctx)
		probs = append(probs, p...)
		if err != nil {
			closeCandidates(folder)
			return false, err
		}
	}
	urls, p := s.addedURLCandidates()
	probs = append(probs, p...)
	var indexed []*candidate
	claimed := map[string]bool{} // folder files an index entry describes
	for _, ix := range s.cfg.Indexes {
		if isHTTPURL(ix) {
			continue
		}
		c, p := s.localIndexCandidates(ix, claimed)
		indexed = append(indexed, c...)
		probs = append(probs, p...)
	}
	for _, r := range remote {
		probs = append(probs, r.problems...)
		if r.data == nil {
			continue
		}
		c, p := s.remoteIndexCandidates(r.url, r.data)
		indexed = append(indexed, c...)
		probs = append(probs, p...)
	}
	if err := ctx.Err(); err != nil {
		closeCandidates(folder, urls, indexed)
		return false, err
	}
	var cands []*candidate
	for _, c := range folder {
		if claimed[c.lf.path] {
			c.lf.f.Close()
			continue
		}
		cands = append(cands, c)
	}
	cands = append(append(cands, urls...), indexed...)
	for _, pr := range probs {
		s.log.Warn().Str("source", pr.Source).Str("reason", pr.Reason).Msg("image refused")
	}
	return s.commit(cands, probs), nil
}

func closeCandidates(lists ...[]*candidate) {
	for _, l := range lists {
		for _, c := range l {
			if c.lf != nil {
				c.lf.f.Close()
			}
		}
	}
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// commit turns candidates into the catalogue, keeping the *Image of every candidate that was there
// before, and closes the images that are gone. The caller holds opMu. It reports whether the set of
// images changed.
func (s *Store) commit(cands []*candidate, probs []Problem) bool {
	old := make(map[string]*storeEntry, len(s.entries))
	for _, e := range s.entries {
		old[e.key] = e
	}
	seen := map[string]bool{}
	kept := map[*storeEntry]bool{}
	var next []*storeEntry
	var fresh []*candidate
	for _, c := range cands {
		k := c.key()
		if seen[k] {
			if c.lf != nil {
				c.lf.f.Close()
			}
			continue
		}
		seen[k] = true
		if e := old[k]; e != nil {
			kept[e] = true
			next = append(next, e)
			if c.lf != nil {
				c.lf.f.Close()
			}
			continue
		}
		fresh = append(fresh, c)
	}
	ids := map[string]bool{}
	for _, e := range next {
		ids[e.img.ID] = true
	}
	for _, c := range fresh {
		if c.remote != nil && c.lf == nil {
			s.adoptCached(c)
		}
		e := s.newEntry(c, uniqueID(c.baseID, ids))
		next = append(next, e)
		if c.source != SourceIndex || c.remote == nil {
			s.logAdded(e)
		}
	}
	s.mu.Lock()
	before := s.snapshotLocked()
	var gone []*storeEntry
	for _, e := range s.entries {
		if !kept[e] {
			gone = append(gone, e)
		}
	}
	s.setEntriesLocked(next)
	s.problems = probs
	after := s.snapshotLocked()
	s.mu.Unlock()
	s.pruneHashes()
	for _, e := range gone {
		if err := e.img.close(); err != nil {
			s.log.Warn().Err(err).Str("image", e.img.ID).Msg("close image")
		}
		s.log.Info().Str("image", e.img.ID).Str("source", e.img.Source).Str("origin", redact.URLs(e.img.Origin)).Msg("image gone")
	}
	s.log.Info().Int("images", len(next)).Int("problems", len(probs)).Msg("images loaded")
	return !slices.Equal(before, after)
}

// pruneHashes forgets the hashes of files that are not in the catalogue. The caller holds opMu.
func (s *Store) pruneHashes() {
	used := make(map[string]bool, len(s.entries))
	for _, e := range s.entries {
		used[e.path] = true
	}
	for p := range s.hashes {
		if !used[p] {
			delete(s.hashes, p)
		}
	}
}

// uniqueID returns base, or base-2, base-3 … when taken, and marks it taken.
func uniqueID(base string, taken map[string]bool) string {
	id := base
	for n := 2; taken[id]; n++ {
		id = fmt.Sprintf("%s-%d", base, n)
	}
	taken[id] = true
	return id
}

// newEntry makes the image of a candidate. The image is not published yet, so attach may set its header.
func (s *Store) newEntry(c *candidate, id string) *storeEntry {
	img := &Image{ID: id, Source: c.source, Origin: c.origin, Index: c.index, FileName: c.fileName,
		Header: c.header, SHA512: c.sha512, Meta: c.meta}
	e := &storeEntry{img: img, key: c.key(), rank: c.rank, remote: c.remote}
	if c.lf != nil {
		e.path = c.lf.path
		if c.remote != nil {
			// Remote images keep the header of their index entry (checked equal where it matters), like
			// Ensure does for images already published.
			img.attachKeepHeader(c.lf)
		} else {
			img.FileSize = c.lf.size
			img.attach(c.lf.path, c.lf.file, c.lf.f, c.lf.f, c.lf.sha256)
		}
	}
	return e
}

// attachKeepHeader makes an image local without writing its exported fields, so it is safe on an image
// others may be reading (Image.attach also sets Header).
func (img *Image) attachKeepHeader(lf *localFile) {
	img.mu.Lock()
	defer img.mu.Unlock()
	img.path, img.file, img.reader, img.closer, img.sha256 = lf.path, lf.file, lf.f, lf.f, lf.sha256
}

func (s *Store) logAdded(e *storeEntry) {
	h := e.img.Header
	s.log.Info().Str("image", e.img.ID).Str("source", e.img.Source).Str("file", e.img.Origin).
		Uint16("manufacturer_code", h.ManufacturerCode).Uint16("image_type", h.ImageType).
		Uint32("file_version", h.FileVersion).Uint32("size", h.TotalImageSize).Msg("image added")
}

// localCandidate makes the candidate of a validated local file.
func localCandidate(source, origin string, lf *localFile) *candidate {
	h := lf.file.Header
	return &candidate{source: source, origin: origin, fileName: filepath.Base(lf.path), header: h,
		sha512: lf.sha512, baseID: imageID(h, lf.sha512), lf: lf}
}

// scanFolder finds the OTA files of the images folder (recursively; hidden names, temporary files, removed
// files and the cache directory are skipped).
func (s *Store) scanFolder(ctx context.Context) ([]*candidate, []Problem, error) {
	var out []*candidate
	var probs []Problem
	seen := map[string]bool{}
	uploads := map[string]bool{}
	for _, u := range s.added.Uploads {
		uploads[filepath.Join(s.folderAbs, u)] = true
	}
	err := filepath.WalkDir(s.folderAbs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == s.folderAbs {
				return err
			}
			probs = append(probs, Problem{Source: s.displayPath(p), Reason: err.Error()})
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		name := d.Name()
		if d.IsDir() {
			if p != s.folderAbs && (strings.HasPrefix(name, ".") || p == s.cacheAbs) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, removedSuffix) {
			return nil
		}
		display := s.displayPath(p)
		real := p
		if d.Type()&fs.ModeSymlink != 0 {
			r, err := filepath.EvalSymlinks(p)
			if err != nil {
				probs = append(probs, Problem{Source: display, Reason: err.Error()})
				return nil
			}
			if !within(s.folderAbs, r) {
				probs = append(probs, Problem{Source: display, Reason: fmt.Sprintf("symbolic link to %s, outside the images folder", r)})
				return nil
			}
			real = r
		} else if !d.Type().IsRegular() {
			return nil
		}
		if seen[real] {
			return nil
		}
		seen[real] = true
		c, prob := s.scanFile(real, display)
		if prob != nil {
			probs = append(probs, *prob)
		}
		if c != nil {
			if uploads[real] {
				c.source = SourceUpload
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		closeCandidates(out)
		return nil, probs, fmt.Errorf("scan images folder %s: %w", s.cfg.Folder, err)
	}
	return out, probs, nil
}

// scanFile checks one folder file. A file that is not an OTA file gives neither candidate nor problem.
func (s *Store) scanFile(real, display string) (*candidate, *Problem) {
	st, err := os.Stat(real)
	if err != nil {
		return nil, &Problem{Source: display, Reason: err.Error()}
	}
	if !st.Mode().IsRegular() {
		return nil, nil
	}
	if st.Size() > s.cfg.MaxImageSize {
		if hasMagicNearStart(real) {
			return nil, &Problem{Source: display, Reason: fmt.Sprintf("file of %d bytes is above max_image_size %d", st.Size(), s.cfg.MaxImageSize)}
		}
		s.log.Debug().Str("file", display).Int64("bytes", st.Size()).Msg("large file without OTA identifier skipped")
		return nil, nil
	}
	lf, err := openLocal(real, s.hashes)
	if errors.Is(err, ErrNoMagic) {
		s.log.Debug().Str("file", display).Msg("not an OTA file, skipped")
		return nil, nil
	}
	if err != nil {
		return nil, &Problem{Source: display, Reason: err.Error()}
	}
	return localCandidate(SourceFolder, display, lf), nil
}

// hasMagicNearStart reports whether the OTA file identifier is in the first 64 KiB of the file.
func hasMagicNearStart(path string) bool {
	f, _, err := openRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, buf)
	return bytes.Contains(buf[:n], magicBytes)
}

// displayPath names a file of the folder the way the configuration does ("images/foo.ota").
func (s *Store) displayPath(p string) string {
	if rel, err := filepath.Rel(s.folderAbs, p); err == nil && within(s.folderAbs, p) {
		return filepath.Join(s.cfg.Folder, rel)
	}
	return p
}

// localIndexCandidates reads a local index file. Entries with a path resolve relative to the index's
// directory and must stay inside the images folder or that directory; the files they name are marked in
// claimed, so that they are offered with the entry's filters only.
func (s *Store) localIndexCandidates(ix string, claimed map[string]bool) ([]*candidate, []Problem) {
	p := ix
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.cfg.Folder, p)
	}
	fail := func(err error) ([]*candidate, []Problem) {
		return nil, []Problem{{Source: ix, Reason: err.Error()}}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return fail(err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fail(err)
	}
	data, err := readFileLimited(real, s.cfg.MaxImageSize)
	if err != nil {
		return fail(err)
	}
	entries, perr := ParseIndex(data)
	probs := indexProblems(ix, perr)
	dir := filepath.Dir(real)
	var out []*candidate
	for _, e := range entries {
		var c *candidate
		var err error
		if hasScheme(e.URL) {
			c, err = s.remoteCandidate(ix, nil, e)
		} else {
			c, err = s.localEntryCandidate(ix, dir, e)
		}
		if err != nil {
			probs = append(probs, Problem{Source: ix, Reason: (&IndexEntryError{Position: e.Position, Name: e.displayName(), Err: err}).Error()})
			continue
		}
		if c.lf != nil {
			claimed[c.lf.path] = true
		}
		out = append(out, c)
	}
	s.log.Info().Str("index", ix).Int("entries", len(entries)).Int("offered", len(out)).Msg("local index read")
	return out, probs
}

// localEntryCandidate opens the file a local index entry names and checks it against the entry.
func (s *Store) localEntryCandidate(ix, dir string, e IndexEntry) (*candidate, error) {
	p := filepath.FromSlash(e.URL)
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, err
	}
	if !within(s.folderAbs, real) && !within(dir, real) {
		return nil, fmt.Errorf("%s resolves to %s, outside the images folder and the index's folder", e.URL, real)
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	if st.Size() > s.cfg.MaxImageSize {
		return nil, fmt.Errorf("file of %d bytes is above max_image_size %d", st.Size(), s.cfg.MaxImageSize)
	}
	lf, err := openLocal(real, s.hashes)
	if err != nil {
		return nil, err
	}
	if err := checkEntry(e, lf); err != nil {
		lf.f.Close()
		return nil, err
	}
	c := localCandidate(SourceIndex, s.displayPath(real), lf)
	c.rank, c.index, c.meta = 1, ix, e.Meta()
	if e.FileName != "" {
		c.fileName = e.FileName
	}
	return c, nil
}

// checkEntry refuses a file that contradicts its index entry.
func checkEntry(e IndexEntry, lf *localFile) error {
	if e.SHA512 != "" && e.SHA512 != lf.sha512 {
		return fmt.Errorf("sha512 mismatch: index says %s…, file has %s…", e.SHA512[:16], lf.sha512[:16])
	}
	h := lf.file.Header
	if e.ManufacturerCode != nil && *e.ManufacturerCode != h.ManufacturerCode {
		return fmt.Errorf("header manufacturer code 0x%04x contradicts the index's 0x%04x", h.ManufacturerCode, *e.ManufacturerCode)
	}
	if e.ImageType != nil && *e.ImageType != h.ImageType {
		return fmt.Errorf("header image type 0x%04x contradicts the index's 0x%04x", h.ImageType, *e.ImageType)
	}
	if e.FileVersion != nil && *e.FileVersion != h.FileVersion {
		return fmt.Errorf("header file version 0x%08x contradicts the index's 0x%08x", h.FileVersion, *e.FileVersion)
	}
	if e.FileSize != nil && *e.FileSize != h.TotalImageSize {
		return fmt.Errorf("header total image size %d contradicts the index's fileSize %d", h.TotalImageSize, *e.FileSize)
	}
	return nil
}

// indexProblems turns ParseIndex's error into problems, one per refused entry.
func indexProblems(source string, err error) []Problem {
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	out := make([]Problem, 0, len(errs))
	for _, e := range errs {
		out = append(out, Problem{Source: source, Reason: e.Error()})
	}
	return out
}

// hasScheme reports whether s starts with a URL scheme ("https:", "file:"); a Windows drive letter does not count.
func hasScheme(s string) bool {
	i := strings.Index(s, "://")
	if i <= 1 {
		return false
	}
	for _, r := range s[:i] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// remoteCandidate makes the candidate of an index entry whose file is at an http(s) URL (base resolves a
// relative url of a remote index). The file is downloaded by Ensure; until then the header comes from the
// entry, which must therefore give manufacturerCode, imageType, fileVersion and fileSize.
func (s *Store) remoteCandidate(ix string, base *url.URL, e IndexEntry) (*candidate, error) {
	u, err := url.Parse(e.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if base != nil {
		u = base.ResolveReference(u)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("url %s: only http and https URLs are downloaded", redact.URLs(u.String()))
	}
	if e.ManufacturerCode == nil || e.ImageType == nil || e.FileVersion == nil || e.FileSize == nil {
		return nil, errors.New("a remote entry needs manufacturerCode, imageType, fileVersion and fileSize")
	}
	if *e.FileSize < MinHeaderLength {
		return nil, fmt.Errorf("fileSize %d is below an OTA header (%d bytes)", *e.FileSize, MinHeaderLength)
	}
	if int64(*e.FileSize) > s.cfg.MaxImageSize {
		return nil, fmt.Errorf("fileSize %d is above max_image_size %d", *e.FileSize, s.cfg.MaxImageSize)
	}
	h := Header{HeaderVersion: DefaultHeaderVersion, HeaderLength: MinHeaderLength,
		ManufacturerCode: *e.ManufacturerCode, ImageType: *e.ImageType, FileVersion: *e.FileVersion,
		TotalImageSize: *e.FileSize}
	copy(h.HeaderString[:], e.OTAHeaderString)
	name := e.FileName
	if name == "" {
		name = path.Base(u.Path)
	}
	abs := u.String()
	c := &candidate{source: SourceIndex, origin: redact.URLs(abs), index: ix, fileName: name, rank: 1, meta: e.Meta(),
		header: h, sha512: e.SHA512,
		remote: &remoteRef{url: abs, index: ix, entry: e,
			cachePath: filepath.Join(s.cacheAbs, "images", hash16(abs)+"-"+sanitizeFileName(name, "image.ota"))}}
	if e.SHA512 != "" {
		c.baseID = imageID(h, e.SHA512)
	} else {
		c.baseID = fmt.Sprintf("%04x-%04x-%08x-u%s", h.ManufacturerCode, h.ImageType, h.FileVersion, hash16(abs)[:7])
	}
	return c, nil
}

// adoptCached makes a new remote candidate local when its file is in the cache already and still checks
// out; a cached file that does not is deleted.
func (s *Store) adoptCached(c *candidate) {
	lf, err := openLocal(c.remote.cachePath, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		if err = checkEntry(c.remote.entry, lf); err == nil {
			c.lf = lf
			return
		}
		lf.f.Close()
	}
	s.log.Warn().Str("file", c.remote.cachePath).Err(err).Msg("cached image unusable, deleted")
	os.Remove(c.remote.cachePath)
}

// remoteIndex is the raw data of one remote index (nil when neither fetch nor cache gave any).
type remoteIndex struct {
	url      string
	data     []byte
	problems []Problem
}

// fetchRemoteIndexes fetches every remote index, caching what it gets; a failed fetch falls back to the
// cached copy.
func (s *Store) fetchRemoteIndexes(ctx context.Context) []remoteIndex {
	var out []remoteIndex
	for _, ix := range s.cfg.Indexes {
		if !isHTTPURL(ix) {
			continue
		}
		out = append(out, s.fetchRemoteIndex(ctx, ix))
	}
	return out
}

func (s *Store) fetchRemoteIndex(ctx context.Context, ix string) remoteIndex {
	r := remoteIndex{url: ix}
	cacheName := "index-" + hash16(ix) + ".json"
	cacheDir, derr := resolveDir(s.cfg.CacheDir)
	var buf bytes.Buffer
	_, err := s.download(ctx, ix, s.cfg.MaxImageSize, &buf)
	if err == nil {
		if _, perr := ParseIndex(buf.Bytes()); errors.Is(perr, ErrIndexFormat) {
			err = perr
		}
	}
	if err == nil {
		r.data = buf.Bytes()
		if derr == nil {
			if werr := writeFileAtomic(cacheDir, cacheName, r.data); werr != nil {
				s.log.Warn().Err(werr).Str("index", redact.URLs(ix)).Msg("index not cached")
			}
		}
		s.log.Info().Str("index", redact.URLs(ix)).Int("bytes", len(r.data)).Msg("index fetched")
		return r
	}
	if derr != nil {
		r.problems = []Problem{{Source: redact.URLs(ix), Reason: fmt.Sprintf("fetch failed: %v; cache directory unusable: %v", err, derr)}}
		return r
	}
	cached := filepath.Join(cacheDir, cacheName)
	data, cerr := readFileLimited(cached, s.cfg.MaxImageSize)
	if cerr != nil {
		r.problems = []Problem{{Source: redact.URLs(ix), Reason: fmt.Sprintf("fetch failed and no cached copy: %v", err)}}
		return r
	}
	when := ""
	if st, err := os.Stat(cached); err == nil {
		when = " of " + st.ModTime().UTC().Format(time.RFC3339)
	}
	r.data = data
	r.problems = []Problem{{Source: redact.URLs(ix), Reason: fmt.Sprintf("fetch failed, using the cached copy%s: %v", when, err)}}
	return r
}

// remoteIndexCandidates turns the entries of a remote index into candidates.
func (s *Store) remoteIndexCandidates(ix string, data []byte) ([]*candidate, []Problem) {
	display := redact.URLs(ix)
	base, err := url.Parse(ix)
	if err != nil {
		return nil, []Problem{{Source: display, Reason: err.Error()}}
	}
	entries, perr := ParseIndex(data)
	probs := indexProblems(display, perr)
	out := make([]*candidate, 0, len(entries))
	for _, e := range entries {
		c, err := s.remoteCandidate(display, base, e)
		if err != nil {
			probs = append(probs, Problem{Source: display, Reason: (&IndexEntryError{Position: e.Position, Name: e.displayName(), Err: err}).Error()})
			continue
		}
		out = append(out, c)
	}
	s.log.Info().Str("index", display).Int("entries", len(entries)).Int("offered", len(out)).Msg("remote index read")
	return out, probs
}

// readFileLimited reads a whole file of at most limit bytes.
func readFileLimited(p string, limit int64) ([]byte, error) {
	f, _, err := openRegular(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, limit)
	}
	return data, nil
}

// writeFileAtomic writes data to dir/name through a temporary file: write, fsync, rename, fsync the dir.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	if err := finishTemp(tmp, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return err
	}
	return renameSync(tmp.Name(), filepath.Join(dir, name))
}

// finishTemp fills an open temporary file, fsyncs and closes it; on error the file is removed.
func finishTemp(tmp *os.File, fill func(io.Writer) error) error {
	err := fill(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// renameSync renames a finished temporary file into place and fsyncs the directory.
func renameSync(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		os.Remove(from)
		return err
	}
	if d, err := os.Open(filepath.Dir(to)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// sanitizeFileName reduces a file name from outside to a safe base name: letters, digits, '.', '-', '_'
// and '+' (others become '_'), no leading dots, at most 120 bytes; def when nothing is left.
func sanitizeFileName(name, def string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	b := make([]byte, 0, len(name))
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == '+':
			b = append(b, byte(r))
		default:
			b = append(b, '_')
		}
	}
	out := strings.TrimLeft(string(b), ".")
	if len(out) > 120 {
		out = out[len(out)-120:]
		out = strings.TrimLeft(out, ".")
	}
	out = strings.TrimSuffix(out, removedSuffix)
	if out == "" || strings.Trim(out, "_") == "" {
		return def
	}
	return out
}
