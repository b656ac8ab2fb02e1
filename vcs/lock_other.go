//go:build !unix

package vcs

import (
	"os"
	"sync"
)

// Without flock, entries are locked within this process only: concurrent
// vcsverify processes sharing a cache directory may fetch the same entry
// twice, which is safe (files are renamed into place) but wasteful.
var (
	locksMu sync.Mutex
	locks   = map[string]bool{}
)

func tryLock(f *os.File) (bool, error) {
	locksMu.Lock()
	defer locksMu.Unlock()
	if locks[f.Name()] {
		return false, nil
	}
	locks[f.Name()] = true
	return true, nil
}

func unlockFile(f *os.File) {
	locksMu.Lock()
	defer locksMu.Unlock()
	delete(locks, f.Name())
}
