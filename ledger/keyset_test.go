package ledger

import (
	"fmt"
	"testing"
)

// TestKeySetRepeat checks that keys whose fingerprints meet are told
// apart by the comparison repeat asks for, that repeat finds the repeat
// whose later index is the smallest, across buckets, and only below end,
// and that buckets grow past what newKeySet gave them.
func TestKeySetRepeat(t *testing.T) {
	s := newKeySet(0)
	var keys []string
	var fps []uint64
	add := func(k string, fp uint64) {
		keys = append(keys, k)
		fps = append(fps, fp)
		s.add(fp, int64(len(keys)-1))
	}
	calls := 0
	same := func(i, j int64) (bool, error) {
		calls++
		if fps[i] != fps[j] {
			t.Errorf("repeat compared keys %d and %d, whose fingerprints differ", i, j)
		}
		return keys[i] == keys[j], nil
	}
	// Fingerprints 0 to 9, each shared by 30 keys, all in the first
	// bucket: every key after the first of a fingerprint is compared.
	for i := range 300 {
		add(fmt.Sprintf("k%d", i), uint64(i%10))
	}
	if n := len(s.buckets[0]); n != 300 {
		t.Fatalf("first bucket holds %d keys; want 300", n)
	}
	if i, j, err := s.repeat(300, same); i != -1 || j != -1 || err != nil {
		t.Fatalf("repeat(300 distinct keys) = %d, %d, %v; want -1, -1, nil", i, j, err)
	}
	if want := 10 * 30 * 29 / 2; calls != want {
		t.Errorf("repeat made %d comparisons; want %d", calls, want)
	}
	// Repeats: of key 7 at 300 (first bucket), of key 1 at 301 (last
	// bucket's fingerprint, given to both), of key 3 at 302.
	last := uint64(keyBuckets-1) << (64 - keyBucketBits)
	keys[1], fps[1] = "k1", last
	s = newKeySet(0)
	for i := range 300 {
		s.add(fps[i], int64(i))
	}
	add("k7", fps[7])
	add("k1", last)
	add("k3", fps[3])
	for _, tc := range []struct {
		end          int64
		wantI, wantJ int64
	}{{303, 7, 300}, {301, 7, 300}, {300, -1, -1}} {
		if i, j, err := s.repeat(tc.end, same); i != tc.wantI || j != tc.wantJ || err != nil {
			t.Errorf("repeat(%d) = %d, %d, %v; want %d, %d, nil", tc.end, i, j, err, tc.wantI, tc.wantJ)
		}
	}
	// Without the repeat at 300, the one at 301 in the last bucket comes
	// first.
	keys[300] = "k7 again"
	if i, j, err := s.repeat(303, same); i != 1 || j != 301 || err != nil {
		t.Errorf("repeat(303) = %d, %d, %v; want 1, 301, nil", i, j, err)
	}
	wantErr := fmt.Errorf("read failed")
	if i, j, err := s.repeat(303, func(int64, int64) (bool, error) { return false, wantErr }); err != wantErr || fps[i] != fps[j] || i >= j {
		t.Errorf("repeat with a failing comparison = %d, %d, %v; want two indexes of one fingerprint, %v", i, j, err, wantErr)
	}
}
