package sqlitestore

import (
	"hash/maphash"
	"iter"
)

// A tailKeys is the key index's tail (keyindex.go): each key with its
// record's log index and keyHash, in an open-addressing table (linear
// probing, at most half full) whose slots and keys' text hold no
// pointers.
//
// The tail holds up to keyMergeMax (262,144) keys for the life of a
// store. As a map[string]tailKey, each key was a string the garbage
// collector marked on every cycle: an audit of 1M records, whose tail
// held 191k keys, spent 7% of its CPU on it (0.80 against 0.74 us a
// record without the tail). Here the collector sees two slices.
type tailKeys struct {
	seed  maphash.Seed
	slots []tailSlot // len is a power of two
	text  []byte     // the keys' text, one after another
	n     int
}

// A tailSlot is a key of the tail: at is the offset of its text in
// tailKeys.text shifted left by 16, or'ed with its length (keys are 1 to
// ledger.MaxKeyLen bytes, under 1<<16); 0 for an empty slot.
type tailSlot struct {
	hash uint64 // the key's maphash under the table's seed
	at   uint64
	t    tailKey
}

// newTailKeys returns a tail sized for about hint keys.
func newTailKeys(hint int64) *tailKeys {
	size := 64
	for int64(size) < 2*min(hint, keyMergeMax*2) {
		size *= 2
	}
	return &tailKeys{seed: maphash.MakeSeed(), slots: make([]tailSlot, size)}
}

// len returns how many keys the tail holds.
func (k *tailKeys) len() int {
	if k == nil {
		return 0
	}
	return k.n
}

// keyText returns the text of the key in slot s.
func (k *tailKeys) keyText(s *tailSlot) []byte {
	off, n := s.at>>16, s.at&0xffff
	return k.text[off : off+n]
}

// find returns the slot of key, or the empty slot where it would go.
func (k *tailKeys) find(key string, h uint64) *tailSlot {
	mask := uint64(len(k.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &k.slots[i]
		if s.at == 0 {
			return s
		}
		if s.hash == h && string(k.keyText(s)) == key {
			return s
		}
	}
}

// get returns the tail's entry for key.
func (k *tailKeys) get(key string) (tailKey, bool) {
	if k.len() == 0 {
		return tailKey{}, false
	}
	s := k.find(key, maphash.String(k.seed, key))
	return s.t, s.at != 0
}

// put sets the entry of key, which is 1 to ledger.MaxKeyLen bytes long.
func (k *tailKeys) put(key string, t tailKey) {
	h := maphash.String(k.seed, key)
	if s := k.find(key, h); s.at != 0 {
		s.t = t
		return
	}
	if 2*(k.n+1) > len(k.slots) {
		k.grow()
	}
	s := k.find(key, h)
	s.hash, s.at, s.t = h, uint64(len(k.text))<<16|uint64(len(key)), t
	k.text = append(k.text, key...)
	k.n++
}

// grow doubles the table.
func (k *tailKeys) grow() {
	old := k.slots
	k.slots = make([]tailSlot, 2*len(old))
	mask := uint64(len(k.slots) - 1)
	for _, s := range old {
		if s.at == 0 {
			continue
		}
		i := s.hash & mask
		for k.slots[i].at != 0 {
			i = (i + 1) & mask
		}
		k.slots[i] = s
	}
}

// cut removes the keys whose records are at log index limit or later (a
// reorg replaced them). It rebuilds the table, as reorgs are rare.
func (k *tailKeys) cut(limit int64) {
	old := *k
	*k = *newTailKeys(int64(old.n))
	for i := range old.slots {
		if s := &old.slots[i]; s.at != 0 && s.t.idx < limit {
			k.put(string(old.keyText(s)), s.t)
		}
	}
}

// values yields the entry of each key of the tail, in no order.
func (k *tailKeys) values() iter.Seq[tailKey] {
	return func(yield func(tailKey) bool) {
		if k == nil {
			return
		}
		for i := range k.slots {
			if s := &k.slots[i]; s.at != 0 && !yield(s.t) {
				return
			}
		}
	}
}
