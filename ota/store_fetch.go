package ota

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/otabridge/otabridge/redact"
)

// errTooLarge is wrapped when a download passes the size limit.
var errTooLarge = errors.New("above max_image_size")

// MaxParallelDownloads is how many downloads (images added from a URL, index images, remote indexes) run
// at once; the others wait for a slot. With each at most MaxImageSize, the temporary files they write take
// at most MaxParallelDownloads × MaxImageSize.
const MaxParallelDownloads = 2

// download GETs rawURL into w, at most limit bytes, within FetchTimeout (counted once a download slot is
// free). It returns the bytes written.
func (s *Store) download(ctx context.Context, rawURL string, limit int64, w io.Writer) (n int64, err error) {
	shown := redact.URLs(rawURL)
	defer func() { err = redact.Error(err) }() // the HTTP client's errors name the URL too
	select {
	case s.downloads <- struct{}{}:
		defer func() { <-s.downloads }()
	case <-ctx.Done():
		return 0, fmt.Errorf("fetch %s: waiting for one of %d downloads to finish: %w", shown, MaxParallelDownloads, ctx.Err())
	}
	if s.cfg.FetchTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.FetchTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", shown, err)
	}
	req.Header.Set("User-Agent", "otabridge")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", shown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("fetch %s: HTTP %s", shown, resp.Status)
	}
	if resp.ContentLength > limit {
		return 0, fmt.Errorf("fetch %s: %d bytes: %w %d", shown, resp.ContentLength, errTooLarge, limit)
	}
	n, err = io.Copy(w, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return n, fmt.Errorf("fetch %s: after %d bytes: %w", shown, n, err)
	}
	if n > limit {
		return n, fmt.Errorf("fetch %s: more than %d bytes: %w", shown, limit, errTooLarge)
	}
	return n, nil
}

// Ensure makes an image local: an index image whose file is not downloaded yet is fetched into the cache
// directory (at most MaxImageSize bytes, within FetchTimeout), its SHA-512 checked against the index
// entry, and its header checked against the entry (manufacturer code, image type, file version, total
// image size = fileSize). Concurrent calls for the same image share one download. A local image returns
// nil at once; an image no longer in the store gives ErrImageClosed. A failed download is also listed in
// Problems until the image is downloaded or gone.
func (s *Store) Ensure(ctx context.Context, img *Image) error {
	if img.Local() {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrStoreClosed
	}
	e := s.byImage[img]
	if e == nil || e.remote == nil {
		s.mu.Unlock()
		return fmt.Errorf("ensure image %s: %w", img.ID, ErrImageClosed)
	}
	if c := s.ensuring[img]; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &ensureCall{done: make(chan struct{})}
	s.ensuring[img] = c
	s.mu.Unlock()

	bctx, cancel := s.bind(ctx)
	lf, err := s.fetchImage(bctx, img, e.remote)
	cancel()

	s.mu.Lock()
	delete(s.ensuring, img)
	switch {
	case err != nil:
		if ctx.Err() == nil && !s.closed {
			s.failures[img.ID] = Problem{Source: redact.URLs(e.remote.url), Reason: err.Error()}
		}
	case s.closed:
		lf.f.Close()
		err = ErrStoreClosed
	case s.byImage[img] != e:
		lf.f.Close()
		err = fmt.Errorf("ensure image %s: %w", img.ID, ErrImageClosed)
	default:
		img.attachKeepHeader(lf)
		delete(s.failures, img.ID)
	}
	s.mu.Unlock()
	c.err = err
	close(c.done)
	if err != nil {
		s.log.Warn().Str("image", img.ID).Str("url", redact.URLs(e.remote.url)).Err(err).Msg("image download failed")
		return err
	}
	s.log.Info().Str("image", img.ID).Str("url", redact.URLs(e.remote.url)).Int64("bytes", lf.size).
		Uint32("size", img.Header.TotalImageSize).Msg("image downloaded")
	s.notify()
	return nil
}

// fetchImage returns the checked local file of an index image: the cached copy when it checks out, else
// a fresh download.
func (s *Store) fetchImage(ctx context.Context, img *Image, ref *remoteRef) (*localFile, error) {
	entryErr := func(err error) error {
		return fmt.Errorf("%s: %w", ref.index, &IndexEntryError{Position: ref.entry.Position, Name: ref.entry.displayName(), Err: err})
	}
	if lf, err := openLocal(ref.cachePath, nil); err == nil {
		if checkEntry(ref.entry, lf) == nil {
			return lf, nil
		}
		lf.f.Close()
		os.Remove(ref.cachePath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		os.Remove(ref.cachePath)
	}
	dir := filepath.Dir(ref.cachePath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("download image %s: %w", img.ID, err)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("download image %s: %w", img.ID, err)
	}
	h := sha512.New()
	err = finishTemp(tmp, func(w io.Writer) error {
		_, err := s.download(ctx, ref.url, s.cfg.MaxImageSize, io.MultiWriter(w, h))
		return err
	})
	if err != nil {
		return nil, entryErr(err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if sum := hex.EncodeToString(h.Sum(nil)); ref.entry.SHA512 != "" && sum != ref.entry.SHA512 {
		return nil, entryErr(fmt.Errorf("sha512 mismatch: index says %s…, download has %s…", ref.entry.SHA512[:16], sum[:16]))
	}
	lf, err := openLocal(tmp.Name(), nil)
	if err != nil {
		return nil, entryErr(fmt.Errorf("downloaded file is not a valid OTA file: %w", err))
	}
	if err := checkEntry(ref.entry, lf); err != nil {
		lf.f.Close()
		return nil, entryErr(err)
	}
	if err := renameSync(tmp.Name(), ref.cachePath); err != nil {
		lf.f.Close()
		return nil, fmt.Errorf("download image %s: %w", img.ID, err)
	}
	lf.path = ref.cachePath
	return lf, nil
}
