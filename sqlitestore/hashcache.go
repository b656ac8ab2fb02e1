package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vcsledger/vcsledger/ledger"
)

// defaultCacheHashes bounds the stored hashes the hash cache holds:
// 131,072 hashes, 4 MiB.
const defaultCacheHashes = 1 << 17

// A hashCache holds the upper levels of the log's stored hashes in memory,
// so that an inclusion or consistency proof reads from the file only the
// few hashes below them. It holds every stored hash at level low and
// above: 2n/2^low hashes at most for a log of n records, with low the
// lowest level that keeps this within max (at 1M records: levels 4 and
// above, 125,000 hashes, 4 MB). Stored hashes never change once written,
// except that a reorg replaces those of the log after the fork; the cache
// is therefore valid for the head it was last brought up to date with
// (head), and reads with any other head go to the file.
type hashCache struct {
	max int // hashes at most

	mu     sync.RWMutex
	head   *ledger.Header  // the head it describes; nil: none
	size   int64           // that head's log size
	low    int             // lowest level held
	levels [][]ledger.Hash // levels[l][n]: stored hash (l, n), for l >= low
}

// lowLevel returns the lowest level whose stored hashes, with those of all
// levels above it, number at most max in a log of size records.
func lowLevel(size int64, max int) int {
	low := 0
	for {
		var n int64
		for l := low; size>>l > 0; l++ {
			n += size >> l
		}
		if n <= int64(max) {
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
		if level < c.low || level >= len(c.levels) || n >= int64(len(c.levels[level])) {
			miss = append(miss, i)
			continue
		}
		out[i] = c.levels[level][n]
	}
	return miss
}

// appended brings the cache from head old (log size oldSize) to head new,
// whose block added hashes, the stored hashes from StoredHashCount(oldSize)
// on. It reports false, changing nothing, when the cache was not up to
// date with old.
func (c *hashCache) appended(old, new *ledger.Header, oldSize int64, hashes []ledger.Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head == nil || c.head != old || c.size != oldSize {
		return false
	}
	base := ledger.StoredHashCount(oldSize)
	for i, h := range hashes {
		level, n := tlog.SplitStoredHashIndex(base + int64(i))
		if level < c.low {
			continue
		}
		for len(c.levels) <= level {
			c.levels = append(c.levels, nil)
		}
		if n != int64(len(c.levels[level])) {
			// Not the next hash of its level: the hashes are not what
			// the log adds. Drop the cache rather than hold a wrong one.
			c.head, c.levels = nil, nil
			return false
		}
		c.levels[level] = append(c.levels[level], h)
	}
	c.head, c.size = new, int64(new.LogSize)
	// Keep within max: drop the lowest level while the log has outgrown it.
	for low := lowLevel(c.size, c.max); c.low < low; c.low++ {
		if c.low < len(c.levels) {
			c.levels[c.low] = nil
		}
	}
	return true
}

// load fills the cache from the file for head, reading in q (one
// snapshot) the record rows that hold stored hashes at level low and
// above: rows 2^low-1, 2*2^low-1, ..., one rowid lookup each. A row that is
// missing or malformed leaves the cache empty for head, so that every read
// goes to the file and reports the damage there (see the package comment,
// "Checks at Open"); load then returns nil.
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

func (c *hashCache) fill(ctx context.Context, q queryer, head *ledger.Header) error {
	size := int64(0)
	if head != nil {
		size = int64(head.LogSize)
	}
	low := lowLevel(size, c.max)
	levels := make([][]ledger.Hash, 0, 64)
	for l := 0; size>>l > 0; l++ {
		var hs []ledger.Hash
		if l >= low {
			hs = make([]ledger.Hash, 0, size>>l)
		}
		levels = append(levels, hs)
	}
	if step := int64(1) << low; size >= step {
		rows, err := q.QueryContext(ctx, `WITH RECURSIVE k(i) AS (SELECT ? UNION ALL SELECT i + ? FROM k WHERE i + ? < ?)
SELECT idx, hashes FROM k JOIN records ON idx = i ORDER BY idx`, step-1, step, step, size)
		if err != nil {
			return readErr(err, "load stored hashes")
		}
		defer rows.Close()
		want := step - 1
		for rows.Next() {
			var idx int64
			var hs sql.RawBytes
			if err := rows.Scan(&idx, &hs); err != nil {
				return readErr(err, "load stored hashes")
			}
			if idx != want {
				return corruptRow(fmt.Errorf("stored hashes missing"), "record %d", want)
			}
			want += step
			count := ledger.StoredHashCount(idx+1) - ledger.StoredHashCount(idx)
			if int64(len(hs)) != 32*count {
				return corruptRow(fmt.Errorf("%d bytes of stored hashes, want %d", len(hs), 32*count), "record %d", idx)
			}
			// Row idx holds, at level l, the hash of subtree (idx+1)>>l - 1.
			for l := low; l < int(count); l++ {
				levels[l] = append(levels[l], ledger.Hash(hs[32*l:32*l+32]))
			}
		}
		if err := rows.Err(); err != nil {
			return readErr(err, "load stored hashes")
		}
		if want < size {
			return corruptRow(fmt.Errorf("stored hashes missing"), "record %d", want)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head, c.size, c.low, c.levels = head, size, low, levels
	return nil
}

// bytes returns the memory the cached hashes take.
func (c *hashCache) bytes() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	for _, l := range c.levels {
		n += 32 * len(l)
	}
	return n
}
