package vcs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// The cache directory holds one entry per object a tag ref pointed to:
//
//	<cache>/git/<object id>/objects/pack/pack-<sum>.{pack,idx,sums}
//	<cache>/git/<object id>.lock
//
// An entry is the depth-1 pack the remote sent for that object: the tag
// object (if annotated), its commit, and the commit's whole tree. Such a pack
// is self-contained, so an entry never depends on another, and an entry is
// named by the id of what it holds, so it is valid for any repository that
// serves that id. Every call still asks the remote which object the tag
// names now; the cache only saves transferring objects the client already
// has. Entries are never changed once written and may be deleted at any
// time when no vcsverify is running.
//
// Objects read from an entry are checked against their ids, and .sums files
// carry a checksum, so a damaged entry is detected, deleted and fetched
// again rather than hashed.

// DefaultCacheDir returns the default cache directory,
// os.UserCacheDir()/vcsverify.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "vcsverify"), nil
}

// entry returns the directory of the cache entry for object id.
func entryDir(root string, id plumbing.Hash) string {
	return filepath.Join(root, "git", id.String())
}

func packDir(entry string) string { return filepath.Join(entry, "objects", "pack") }

// complete reports whether a cache entry holds at least one whole pack.
func complete(entry string) bool {
	des, err := os.ReadDir(packDir(entry))
	if err != nil {
		return false
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, "pack-") && strings.HasSuffix(name, ".pack") {
			base := strings.TrimSuffix(name, ".pack")
			if fileExists(filepath.Join(packDir(entry), base+".idx")) && fileExists(filepath.Join(packDir(entry), base+".sums")) {
				return true
			}
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// prepare empties entry and creates its pack directory.
func prepare(entry string) error {
	if err := os.RemoveAll(entry); err != nil {
		return errorf(ErrCache, "%w", err)
	}
	if err := os.MkdirAll(packDir(entry), 0o755); err != nil {
		return errorf(ErrCache, "%w", err)
	}
	return nil
}

// openEntry opens the objects and blob digests of a complete entry.
// close must be called when done.
func openEntry(entry string) (*filesystem.Storage, sumSet, error) {
	des, err := os.ReadDir(packDir(entry))
	if err != nil {
		return nil, nil, errorf(ErrCache, "%w", err)
	}
	var sums sumSet
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".sums") || !strings.HasPrefix(de.Name(), "pack-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(packDir(entry), de.Name()))
		if err != nil {
			return nil, nil, errorf(ErrCache, "%w", err)
		}
		t, err := parseSums(data)
		if err != nil {
			return nil, nil, &kindError{kind: ErrCache, err: errDamaged}
		}
		sums = append(sums, t)
	}
	st := filesystem.NewStorageWithOptions(osfs.New(entry), cache.NewObjectLRU(16<<20), filesystem.Options{
		ExclusiveAccess:      true,
		KeepDescriptors:      true,
		LargeObjectThreshold: 1 << 20,
	})
	return st, sums, nil
}

// errDamaged marks a cache entry whose files do not check out.
var errDamaged = errors.New("cache entry damaged")

// lock takes the exclusive lock of a cache entry, waiting for it while ctx
// allows. The lock is a file lock where the system has one, so it holds
// across processes and across goroutines alike.
func lock(ctx context.Context, path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, errorf(ErrCache, "%w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, errorf(ErrCache, "%w", err)
	}
	delay := 5 * time.Millisecond
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, errorf(ErrCache, "locking %s: %w", path, err)
		}
		if ok {
			return func() { unlockFile(f); f.Close() }, nil
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}
