package sqlitestore

import (
	"context"
	"math/bits"
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
// filter (TestKeyFilter measures 0.8%); the filters take 1.25 to 2.5 MiB
// per million keys.
//
// It works on keys' rows in the keys table (keyHash), bits of a SHA-256:
// a key's probes are those bits and the same bits rotated.
type keyFilter struct {
	bits  []uint64
	keys  int64 // keys added
	limit int64 // keys it holds within its false-positive rate
}

const (
	filterBitsPerKey = 10
	filterProbes     = 7
	filterMinKeys    = 1 << 17
)

// newKeyFilter returns an empty filter sized for twice n keys.
func newKeyFilter(n int64) *keyFilter {
	limit := max(2*n, filterMinKeys)
	return &keyFilter{bits: make([]uint64, (limit*filterBitsPerKey+63)/64), limit: limit}
}

// probes returns the two hashes whose combinations h1 + i*h2 are the bit
// positions of the key whose keyHash is h.
func probes(h int64) (h1, h2 uint64) {
	return uint64(h), bits.RotateLeft64(uint64(h), 32) | 1
}

func (f *keyFilter) add(h int64) {
	h1, h2 := probes(h)
	m := uint64(len(f.bits)) * 64
	for i := uint64(0); i < filterProbes; i++ {
		p := (h1 + i*h2) % m
		f.bits[p/64] |= 1 << (p % 64)
	}
	f.keys++
}

// mayHave reports whether the key whose keyHash is h may be in the table:
// false means it is not.
func (f *keyFilter) mayHave(h int64) bool {
	h1, h2 := probes(h)
	m := uint64(len(f.bits)) * 64
	for i := uint64(0); i < filterProbes; i++ {
		p := (h1 + i*h2) % m
		if f.bits[p/64]&(1<<(p%64)) == 0 {
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
func (fs keyFilters) add(keys map[string]tailKey) keyFilters {
	last := fs[len(fs)-1]
	if last.full(int64(len(keys))) {
		var total int64
		for _, f := range fs {
			total += f.keys
		}
		last = newKeyFilter(max(total, int64(len(keys))))
		fs = append(fs[:len(fs):len(fs)], last)
	}
	for _, k := range keys {
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
