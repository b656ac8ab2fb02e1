package ledger

import "hash/maphash"

// A keySet is the set of keys Audit has seen: for each, a 64-bit
// fingerprint of the key and its log index, in an open-addressing table
// (linear probing, at most half full).
//
// Fingerprints are maphash values under a seed of the set's own, so no
// key can be chosen to make its fingerprint meet another's; the seed
// changes only which fingerprints meet, never a result, because add
// reports a repeat only when the caller, given the earlier key's index,
// confirms the keys equal.
type keySet struct {
	seed  maphash.Seed
	slots []keySlot // len is a power of two
	n     int
}

type keySlot struct {
	fp uint64
	at int64 // the key's log index + 1; 0 for an empty slot
}

// newKeySet returns a set sized for about hint keys.
func newKeySet(hint uint64) *keySet {
	size := 64
	for uint64(size) < 2*min(hint, 1<<24) {
		size *= 2
	}
	return &keySet{seed: maphash.MakeSeed(), slots: make([]keySlot, size)}
}

// fingerprint returns the fingerprint of k.
func (s *keySet) fingerprint(k Key) uint64 { return maphash.Comparable(s.seed, k) }

// add adds the key with fingerprint fp at log index. For each earlier key
// with the same fingerprint it calls same with that key's index; if same
// reports the keys equal, add returns that index and adds nothing. It
// returns -1 once the key is added.
func (s *keySet) add(fp uint64, index int64, same func(earlier int64) (bool, error)) (int64, error) {
	mask := uint64(len(s.slots) - 1)
	for i := fp & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.at == 0 {
			sl.fp, sl.at = fp, index+1
			break
		}
		if sl.fp == fp {
			eq, err := same(sl.at - 1)
			if err != nil {
				return -1, err
			}
			if eq {
				return sl.at - 1, nil
			}
		}
	}
	if s.n++; 2*s.n > len(s.slots) {
		s.grow()
	}
	return -1, nil
}

// grow doubles the table.
func (s *keySet) grow() {
	old := s.slots
	s.slots = make([]keySlot, 2*len(old))
	mask := uint64(len(s.slots) - 1)
	for _, sl := range old {
		if sl.at == 0 {
			continue
		}
		i := sl.fp & mask
		for s.slots[i].at != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = sl
	}
}
