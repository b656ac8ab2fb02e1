package sqlitestore

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestTailKeys checks the tail's table against a map through a random
// run of puts, overwrites, gets and cuts, growing from its first 64 slots.
func TestTailKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	k := newTailKeys(0)
	model := map[string]tailKey{}
	check := func(when string) {
		t.Helper()
		if k.len() != len(model) {
			t.Fatalf("%s: len %d; want %d", when, k.len(), len(model))
		}
		for key, want := range model {
			if got, ok := k.get(key); !ok || got != want {
				t.Fatalf("%s: get(%q) = %v, %v; want %v, true", when, key, got, ok, want)
			}
		}
		n := 0
		for v := range k.values() {
			if model[fmt.Sprintf("example.com/r@v%d", v.h)] != v {
				t.Fatalf("%s: values gave %v, not in the tail", when, v)
			}
			n++
		}
		if n != len(model) {
			t.Fatalf("%s: values gave %d entries; want %d", when, n, len(model))
		}
		for i := range 50 {
			key := fmt.Sprintf("example.com/absent@v%d", i)
			if _, ok := k.get(key); ok {
				t.Fatalf("%s: get(%q) found a key never put", when, key)
			}
		}
	}
	idx := int64(0)
	for round := range 6 {
		for range 2000 {
			// Keys name their h, so values can be checked; some are put
			// again with a new index.
			h := int64(rng.IntN(5000))
			key := fmt.Sprintf("example.com/r@v%d", h)
			v := tailKey{idx: idx, h: h}
			idx++
			k.put(key, v)
			model[key] = v
		}
		check(fmt.Sprintf("round %d", round))
		limit := idx - int64(rng.IntN(3000))
		k.cut(limit)
		for key, v := range model {
			if v.idx >= limit {
				delete(model, key)
			}
		}
		check(fmt.Sprintf("round %d, cut at %d", round, limit))
	}
	var none *tailKeys
	if _, ok := none.get("example.com/r@v1"); ok || none.len() != 0 {
		t.Errorf("a nil tail holds keys")
	}
	for range none.values() {
		t.Errorf("a nil tail yields values")
	}
}
