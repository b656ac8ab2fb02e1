package sqlitestore

import (
	"context"
)

// A keyFilter is a Bloom filter of the keys in the keys table, in memory:
// a key it does not hold is not in the table, without a query. Append
// checks every key of a block against the table and Lookup of a key
// never committed is the first question vcsverify asks of each tag, so
// most probes would otherwise read index pages for nothing. Open builds
// it from the table, sized for twice its keys; merges add to it, and when
// it is full a new one, as large as all before, takes the next keys
// (keyFilters), so the table is never read again. A reorg leaves the keys
// it cut in it, which only costs a query.
//
// With 10 bits and 7 probes per key, about 1% of absent keys pass each
// filter (TestKeyFilter measures it); the filters take 1.25 to 2.5 MiB
// per million keys.
//
// It works on keys' rows in the keys table (keyHash), bits of a SHA-256.
// A key's 7 bits are all in one 512-bit block, a cache line, picked by
// its high 32 bits: a probe costs one memory access, not 7 (Putze,
// Sanders and Singler, "Cache-, Hash- and Space-Efficient Bloom Filters",
// 2007), for a little more of the absent keys passing.
type keyFilter struct {
	bits  []uint64 // blocks of filterBlockWords words
	keys  int64    // keys added
	limit int64    // keys it holds within its false-positive rate
}

const (
	filterBitsPerKey = 10
	filterProbes     = 7
	filterMinKeys    = 1 << 17
	filterBlockWords = 8 // 512 bits
)

// newKeyFilter returns an empty filter sized for twice n keys.
func newKeyFilter(n int64) *keyFilter {
	limit := max(2*n, filterMinKeys)
	blocks := (limit*filterBitsPerKey + 511) / 512
	return &keyFilter{bits: make([]uint64, blocks*filterBlockWords), limit: limit}
}

// block returns the words of the block of the key whose keyHash is h, and
// the two values whose combinations a + i*b (mod 512) are its bits there.
func (f *keyFilter) block(h int64) (blk []uint64, a, b uint32) {
	n := uint64(len(f.bits) / filterBlockWords)
	i := (uint64(h) >> 32) * n >> 32 // in [0, n), without a division
	return f.bits[i*filterBlockWords : (i+1)*filterBlockWords : (i+1)*filterBlockWords], uint32(h), uint32(h)>>9 | 1
}

func (f *keyFilter) add(h int64) {
	blk, a, b := f.block(h)
	for i := uint32(0); i < filterProbes; i++ {
		p := (a + i*b) % 512
		blk[p/64] |= 1 << (p % 64)
	}
	f.keys++
}

// mayHave reports whether the key whose keyHash is h may be in the table:
// false means it is not.
func (f *keyFilter) mayHave(h int64) bool {
	blk, a, b := f.block(h)
	for i := uint32(0); i < filterProbes; i++ {
		p := (a + i*b) % 512
		if blk[p/64]&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

// full reports whether adding n more keys would pass its limit.
func (f *keyFilter) full(n int64) bool { return f.keys+n > f.limit }

// keyFilters are the filters of a keys table, the last one taking new keys.
type keyFilters []*keyFilter

func (fs keyFilters) mayHave(h int64) bool {
	for _, f := range fs {
		if f.mayHave(h) {
			return true
		}
	}
	return false
}

// add adds keys, to a new filter when the last one has no room for them.
// It returns the filters (a new slice when it started a filter).
func (fs keyFilters) add(keys *tailKeys) keyFilters {
	n := int64(keys.len())
	last := fs[len(fs)-1]
	if last.full(n) {
		var total int64
		for _, f := range fs {
			total += f.keys
		}
		last = newKeyFilter(max(total, n))
		fs = append(fs[:len(fs):len(fs)], last)
	}
	for k := range keys.values() {
		last.add(k.h)
	}
	return fs
}

// buildKeyFilter reads every key of the keys table into a new filter sized
// for twice indexed keys.
func buildKeyFilter(ctx context.Context, q queryer, indexed int64) (*keyFilter, error) {
	f := newKeyFilter(indexed)
	rows, err := q.QueryContext(ctx, "SELECT h FROM keys")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		f.add(h)
	}
	return f, rows.Err()
}
