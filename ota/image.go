package ota

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/otabridge/otabridge/zcl"
)

// Image is one OTA image the server can offer: a validated OTA file (local, or described by an index entry
// and downloaded on demand) and its index metadata. The servable bytes are the file's
// [MagicOffset, MagicOffset+TotalImageSize) region; ReadAt reads them without holding the file in memory.
type Image struct {
	// ID is stable across restarts: "<mfr>-<type>-<version>-<first 8 hex of sha512>" in lower-case hex,
	// or, before the file is local, "<mfr>-<type>-<version>-<index>".
	ID string `json:"id"`
	// Source is where it came from: "folder", "index", "url" or "upload".
	Source string `json:"source"`
	// Origin is the path or URL it came from; Index is the index file or URL that listed it, if any.
	Origin string `json:"origin"`
	Index  string `json:"index,omitempty"`
	// FileName is the base name of the file.
	FileName string `json:"file_name"`
	// Header is the OTA header (from the file, or from the index entry before download).
	Header Header `json:"-"`
	// FileSize is the whole file's length; SHA512 the hex SHA-512 of the whole file (index entries give it).
	FileSize int64  `json:"file_size"`
	SHA512   string `json:"sha512"`
	Meta     IndexMeta

	mu     sync.Mutex
	path   string      // local path once the file is local
	file   *File       // parsed file once local
	reader io.ReaderAt // open file once local
	closer io.Closer
	sha256 [32]byte // of the servable region, once local
}

// ImageID returns the image's manufacturer code, image type and file version.
func (img *Image) ImageID() zcl.ImageID { return img.Header.ImageID() }

// DisplayVersion is the image's human-readable version: the index's `version` when it gives one, else the
// file version as VersionString formats it.
func (img *Image) DisplayVersion() string {
	if img.Meta.Version != "" {
		return img.Meta.Version
	}
	return VersionString(img.Header.FileVersion)
}

// Size returns the servable size (the header's total image size).
func (img *Image) Size() uint32 { return img.Header.TotalImageSize }

// ErrImageNotLocal is returned when an image described by an index has not been downloaded yet.
var ErrImageNotLocal = errors.New("image not downloaded yet")

// ErrImageClosed is returned when an image was removed while in use.
var ErrImageClosed = errors.New("image removed")

// Local reports whether the file is on disk, validated and open.
func (img *Image) Local() bool {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.reader != nil
}

// Path returns the local file path, or "" when the image is not local.
func (img *Image) Path() string {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.path
}

// File returns the parsed file, or nil when the image is not local.
func (img *Image) File() *File {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.file
}

// SHA256 returns the SHA-256 of the servable region (what a device receives), once local.
func (img *Image) SHA256() ([32]byte, bool) {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.sha256, img.reader != nil
}

// ReadAt reads servable bytes: off is relative to the start of the OTA image (the magic), not the file.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	img.mu.Lock()
	r, f := img.reader, img.file
	img.mu.Unlock()
	if r == nil {
		if img.closer == nil && f == nil {
			return 0, fmt.Errorf("read image %s: %w", img.ID, ErrImageNotLocal)
		}
		return 0, fmt.Errorf("read image %s: %w", img.ID, ErrImageClosed)
	}
	size := int64(img.Header.TotalImageSize)
	if off < 0 || off >= size {
		return 0, io.EOF
	}
	if rem := size - off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := r.ReadAt(p, f.MagicOffset+off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

// attach makes the image local: it takes ownership of the open reader (closed by close).
func (img *Image) attach(path string, f *File, r io.ReaderAt, c io.Closer, sum [32]byte) {
	img.mu.Lock()
	defer img.mu.Unlock()
	img.path, img.file, img.reader, img.closer, img.sha256 = path, f, r, c, sum
	img.Header = f.Header
}

// close releases the open file; later reads fail with ErrImageClosed.
func (img *Image) close() error {
	img.mu.Lock()
	c := img.closer
	img.reader = nil
	img.mu.Unlock()
	if c != nil {
		return c.Close()
	}
	return nil
}
