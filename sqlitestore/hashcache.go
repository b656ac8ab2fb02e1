package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vcsledger/vcsledger/ledger"
)

// DefaultHashCacheBytes is the default bound of the hash cache (see
// WithHashCache): 64 MiB, every stored hash of a log of up to about
// 1,048,000 records.
const DefaultHashCacheBytes = 64 << 20

// HashCacheBytesPerRecord is what the hash cache takes per record of the
// log when it holds every level: a log of n records has 2n-1 stored hashes
// at most, 32 bytes each (64 MiB per million records). Each level kept in
// memory below the bound halves what the levels under it would take: at
// level l and above, 64/2^l bytes per record.
const HashCacheBytesPerRecord = 64

// WithHashCache bounds the memory the in-memory copy of the log's stored
// hashes takes (default DefaultHashCacheBytes; 0 keeps none in memory).
// The store keeps every level of the tree from the lowest one that fits
// the bound up; a proof reads from the file only the hashes below those
// levels, in one query, and none when every level fits.
func WithHashCache(bytes int64) Option {
	return func(c *config) { c.cacheBytes = bytes }
}

// chunkHashes is how many hashes one chunk of a cached level holds (128
// KiB): levels grow by whole chunks, so that appending to a level never
// copies it.
const chunkHashes = 4096

// A hashLevel is the stored hashes of one level of the tree, in order, in
// chunks of chunkHashes (the last one possibly shorter).
type hashLevel struct {
	chunks [][]ledger.Hash
	n      int64
}

func (l *hashLevel) at(i int64) ledger.Hash { return l.chunks[i/chunkHashes][i%chunkHashes] }

func (l *hashLevel) add(h ledger.Hash) {
	if l.n%chunkHashes == 0 {
		// A new chunk: full size once the level has outgrown one.
		c := 0
		if l.n > 0 {
			c = chunkHashes
		}
		l.chunks = append(l.chunks, make([]ledger.Hash, 0, c))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, h)
	l.n++
}

// truncate keeps the first n hashes.
func (l *hashLevel) truncate(n int64) {
	if n >= l.n {
		return
	}
	keep := (n + chunkHashes - 1) / chunkHashes
	clear(l.chunks[keep:])
	l.chunks = l.chunks[:keep]
	if keep > 0 {
		l.chunks[keep-1] = l.chunks[keep-1][:n-(keep-1)*chunkHashes]
	}
	l.n = n
}

// A hashCache holds the upper levels of the log's stored hashes in memory,
// so that an inclusion or consistency proof reads from the file only the
// few hashes below them, or none. It holds every stored hash at level low
// and above: 2n/2^low hashes at most for a log of n records, with low the
// lowest level that keeps this within max (with the default bound, every
// level up to about 1M records, levels 1 and up to 2M, 2 and up to 4M).
// Stored hashes never change once written, except that a reorg replaces
// those of the log after the fork; the cache is therefore valid for the
// head it was last brought up to date with (head), and reads with any
// other head go to the file.
type hashCache struct {
	max int64 // hashes at most

	mu     sync.RWMutex
	head   *ledger.Header // the head it describes; nil: none
	size   int64          // that head's log size
	low    int            // lowest level held
	levels []hashLevel    // levels[l]: the stored hashes (l, n), for l >= low
}

// lowLevel returns the lowest level whose stored hashes, with those of all
// levels above it, number at most max in a log of size records.
func lowLevel(size, max int64) int {
	low := 0
	for {
		var n int64
		for l := low; size>>l > 0; l++ {
			n += size >> l
		}
		if n <= max {
			return low
		}
		low++
	}
}

// get copies into out[i] the cached stored hash indexes[i], for the head
// the caller read, and returns the positions it does not hold.
func (c *hashCache) get(head *ledger.Header, indexes []int64, out []ledger.Hash) (miss []int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if head == nil || c.head != head {
		miss = make([]int, len(indexes))
		for i := range miss {
			miss[i] = i
		}
		return miss
	}
	for i, x := range indexes {
		if x < 0 || x >= maxStoredHash {
			miss = append(miss, i)
			continue
		}
		level, n := tlog.SplitStoredHashIndex(x)
		if level < c.low || level >= len(c.levels) || n >= c.levels[level].n {
			miss = append(miss, i)
			continue
		}
		out[i] = c.levels[level].at(n)
	}
	return miss
}

// appended brings the cache from head old (log size oldSize) to head new,
// whose block added hashes, the stored hashes from StoredHashCount(oldSize)
// on. It reports false, and leaves the cache empty, when the cache was not
// up to date with old.
func (c *hashCache) appended(old, new *ledger.Header, oldSize int64, hashes []ledger.Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head == nil || c.head != old || c.size != oldSize {
		c.head, c.levels = nil, nil
		return false
	}
	return c.extend(new, ledger.StoredHashCount(oldSize), hashes)
}

// reorged brings the cache from head old to head new after a reorg that
// kept the log's first forkSize records and added after them hashes, the
// stored hashes from StoredHashCount(forkSize) on, block by block. It
// reports false, and leaves the cache empty, when the cache was not up to
// date with old, or when the new log is so much shorter that the bound
// would keep a level the cache does not hold.
func (c *hashCache) reorged(old, new *ledger.Header, forkSize int64, hashes [][]ledger.Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head == nil || c.head != old || forkSize > c.size || lowLevel(int64(new.LogSize), c.max) < c.low {
		c.head, c.levels = nil, nil
		return false
	}
	for l := range c.levels {
		c.levels[l].truncate(forkSize >> l)
	}
	return c.extend(new, ledger.StoredHashCount(forkSize), slices.Concat(hashes...))
}

// extend adds to the cache hashes, the stored hashes from index base on,
// which make the log of head new, and makes it the cache of new. It
// reports false, and leaves the cache empty, when they are not the next
// hashes of their levels. c.mu is held.
func (c *hashCache) extend(new *ledger.Header, base int64, hashes []ledger.Hash) bool {
	for i, h := range hashes {
		level, n := tlog.SplitStoredHashIndex(base + int64(i))
		if level < c.low {
			continue
		}
		for len(c.levels) <= level {
			c.levels = append(c.levels, hashLevel{})
		}
		if n != c.levels[level].n {
			// Not the next hash of its level: the hashes are not what
			// the log adds. Drop the cache rather than hold a wrong one.
			c.head, c.levels = nil, nil
			return false
		}
		c.levels[level].add(h)
	}
	c.head, c.size = new, int64(new.LogSize)
	// Keep within max: drop the lowest level while the log has outgrown it.
	for low := lowLevel(c.size, c.max); c.low < low; c.low++ {
		if c.low < len(c.levels) {
			c.levels[c.low] = hashLevel{}
		}
	}
	return true
}

// load fills the cache from the file for head, reading in q (one
// snapshot) the stored hashes of the chunks rows that hold stored hashes
// at level low and above: those of entries 2^low-1, 2*2^low-1, ... A row
// that is missing or malformed leaves the cache empty for head, so that
// every read goes to the file and reports the damage there (see the
// package comment, "Checks at Open"); load then returns nil.
func (c *hashCache) load(ctx context.Context, q queryer, head *ledger.Header) error {
	err := c.fill(ctx, q, head)
	if errors.Is(err, ledger.ErrCorrupt) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.head, c.size, c.low, c.levels = head, 0, 64, nil
		if head != nil {
			c.size = int64(head.LogSize)
		}
		return nil
	}
	return err
}

// scanStep is the largest step between the entries load reads for which
// it reads the stored hashes of every chunks row rather than looking each
// row up: below it, nearly every row holds one.
const scanStep = chunkEntries

// fillBatch is how many of the entries it needs load reads in one query
// (a variable for tests).
var fillBatch int64 = 4096

func (c *hashCache) fill(ctx context.Context, q queryer, head *ledger.Header) error {
	size := int64(0)
	if head != nil {
		size = int64(head.LogSize)
	}
	low := lowLevel(size, c.max)
	levels := make([]hashLevel, 0, 64)
	for l := 0; size>>l > 0; l++ {
		levels = append(levels, hashLevel{})
	}
	if step := int64(1) << low; size >= step {
		// The entries step-1, 2*step-1, ... hold the stored hashes at
		// level low and up; they are read fillBatch at a time, so that
		// no more than that many rows' hashes are held at once.
		for from := step - 1; from < size; from += fillBatch * step {
			to := min(from+fillBatch*step, size) // entries from to to-1
			var sp hashSpans
			var err error
			if step <= scanStep {
				sp, err = readSpans(ctx, q, spansQuery, from, to-1)
			} else {
				recs := make([]int64, 0, fillBatch)
				for rec := from; rec < to; rec += step {
					recs = append(recs, rec)
				}
				sp, err = readSpansAt(ctx, q, recs)
			}
			if err != nil {
				return err
			}
			for rec := from; rec < to; rec += step {
				base := ledger.StoredHashCount(rec)
				count := ledger.StoredHashCount(rec+1) - base
				// Entry rec adds, at level l, the hash of subtree (rec+1)>>l - 1.
				for l := low; l < int(count); l++ {
					h, ok := sp.hash(base + int64(l))
					if !ok {
						return corruptRow(fmt.Errorf("stored hashes missing"), "record %d", rec)
					}
					levels[l].add(h)
				}
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head, c.size, c.low, c.levels = head, size, low, levels
	return nil
}

// held returns how many hashes the cache holds.
func (c *hashCache) held() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var n int64
	for _, l := range c.levels {
		n += l.n
	}
	return n
}
