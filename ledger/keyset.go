package ledger

import (
	"hash/maphash"
	"math"
)

// A keySet is the set of keys Audit has seen, kept to find a key committed
// twice: for each key, a 64-bit fingerprint and its log index, in one of
// keyBuckets buckets by the fingerprint's top bits.
//
// Adding a key appends to its bucket, and the buckets' ends stay in the
// processor's cache. Repeats are looked for once, at the end (repeat), a
// bucket at a time, each in a table small enough to stay in the cache too
// (512 KB at 1M keys). One table over all the keys, looked up as each key
// came, missed the cache on almost every key: 70 ns a key at 1M keys,
// against 30 this way, the fingerprint included in both (profiles of five
// audits). With 2,048 buckets, the stores into them stalled on the cache
// instead.
//
// Fingerprints are maphash values under a seed of the set's own, so no
// key can be chosen to make its fingerprint meet another's; the seed
// changes only which fingerprints meet, never a result, because repeat
// reports a key twice only when the caller, given both log indexes,
// confirms the keys equal.
type keySet struct {
	seed    maphash.Seed
	buckets [][]keySlot // keyBuckets of them, by the fingerprint's top bits
	table   []keySlot   // repeat's table, kept between buckets
}

type keySlot struct {
	fp uint64
	at int64 // the key's log index + 1; in repeat's table, 0 for an empty slot
}

// keyBucketBits is how many of a fingerprint's top bits choose its bucket.
const keyBucketBits = 6

const keyBuckets = 1 << keyBucketBits

// newKeySet returns a set sized for about hint keys (at most 1<<24 of
// them): the buckets hold that many and more before any grows.
func newKeySet(hint uint64) *keySet {
	hint = min(hint, 1<<24)
	// Each bucket gets its share and room for about four standard
	// deviations of the share, so that almost no bucket grows.
	share := int(hint / keyBuckets)
	per := share + 4*int(math.Sqrt(float64(share))) + 8
	all := make([]keySlot, keyBuckets*per)
	s := &keySet{seed: maphash.MakeSeed(), buckets: make([][]keySlot, keyBuckets)}
	for i := range s.buckets {
		s.buckets[i] = all[i*per : i*per : (i+1)*per]
	}
	return s
}

// fingerprint returns the fingerprint of k.
func (s *keySet) fingerprint(k Key) uint64 { return maphash.Comparable(s.seed, k) }

// add adds the key with fingerprint fp at log index, which is greater than
// that of every key added before.
func (s *keySet) add(fp uint64, index int64) {
	b := &s.buckets[fp>>(64-keyBucketBits)]
	*b = append(*b, keySlot{fp: fp, at: index + 1})
}

// repeat looks, among the keys added at log indexes below end, for a key
// added twice: for each two keys with the same fingerprint it calls same
// with their log indexes, and reports the keys equal only when same does.
// It returns the two indexes of the repeat whose later index is the
// smallest, or -1, -1 when no key repeats; on an error of same, the two
// it was given.
func (s *keySet) repeat(end int64, same func(earlier, later int64) (bool, error)) (earlier, later int64, err error) {
	earlier, later = -1, -1
	for _, b := range s.buckets {
		// Within a bucket the keys are in log order, so the first repeat
		// found is the bucket's earliest.
		size := 16
		for size < 2*len(b) {
			size *= 2
		}
		if cap(s.table) < size {
			s.table = make([]keySlot, size)
		}
		t := s.table[:size]
		clear(t)
		mask := uint64(size - 1)
	keys:
		for _, k := range b {
			at := k.at - 1
			if at >= end || later >= 0 && at >= later {
				break
			}
			i := k.fp & mask
			for ; t[i].at != 0; i = (i + 1) & mask {
				if t[i].fp != k.fp {
					continue
				}
				eq, err := same(t[i].at-1, at)
				if err != nil {
					return t[i].at - 1, at, err
				}
				if eq {
					earlier, later = t[i].at-1, at
					break keys
				}
			}
			t[i] = k
		}
	}
	return earlier, later, nil
}
