package vcs

import "fmt"

// Limits bound the work and memory that one repository may cost. A
// repository over any limit is an error wrapping ErrLimit, never a hash.
type Limits struct {
	// MaxFiles is the most tree entries (files, symbolic links, submodules
	// and directories, each path counted once) the tag's tree may have.
	MaxFiles int
	// MaxBytes is the most bytes the tag's tree may hold, counting every
	// file and symbolic link at every path as a checkout would. The fetch
	// is bounded by it too: at most MaxBytes of pack data received and at
	// most MaxBytes of objects unpacked from it.
	MaxBytes int64
	// MaxDepth is the deepest directory nesting allowed; files at the root
	// are at depth 1.
	MaxDepth int
	// MaxPathLen is the longest path, in bytes, allowed in the tree.
	MaxPathLen int
	// MaxMemory is the most object bytes held in memory at once: a
	// deltified object and its bases while they are resolved, or a tree
	// object while it is read. Blobs that are not deltified are streamed
	// and never held whole.
	MaxMemory int64
}

// Default limits. They admit every public repository we know of (Chromium
// has about 500,000 files, the Linux kernel 90,000) while keeping a single
// hash under a few GiB of disk and bounded memory.
const (
	DefaultMaxFiles   = 1_000_000
	DefaultMaxBytes   = 10 << 30 // 10 GiB
	DefaultMaxDepth   = 256
	DefaultMaxPathLen = 4096
	DefaultMaxMemory  = 512 << 20 // 512 MiB
)

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		MaxFiles:   DefaultMaxFiles,
		MaxBytes:   DefaultMaxBytes,
		MaxDepth:   DefaultMaxDepth,
		MaxPathLen: DefaultMaxPathLen,
		MaxMemory:  DefaultMaxMemory,
	}
}

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFiles == 0 {
		l.MaxFiles = d.MaxFiles
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxPathLen == 0 {
		l.MaxPathLen = d.MaxPathLen
	}
	if l.MaxMemory == 0 {
		l.MaxMemory = d.MaxMemory
	}
	return l
}

// Validate reports whether every limit is positive. Zero fields are valid:
// they mean the default.
func (l Limits) Validate() error {
	if l.MaxFiles < 0 || l.MaxBytes < 0 || l.MaxDepth < 0 || l.MaxPathLen < 0 || l.MaxMemory < 0 {
		return fmt.Errorf("%w: negative limit in %+v", ErrInvalid, l)
	}
	return nil
}
