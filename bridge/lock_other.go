//go:build !unix

package bridge

import (
	"fmt"
	"os"
	"path/filepath"
)

// LockFile is the lock file in the data directory (see lock_unix.go). On systems without flock the bridge
// only writes its pid into it: a second bridge on the same data_dir is not detected there.
const LockFile = ".lock"

type dataDirLock struct{}

func lockDataDir(dir string) (*dataDirLock, error) {
	if err := os.WriteFile(filepath.Join(dir, LockFile), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	return &dataDirLock{}, nil
}

func (*dataDirLock) release() {}
