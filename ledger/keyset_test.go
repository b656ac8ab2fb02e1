package ledger

import (
	"fmt"
	"testing"
)

// TestKeySetFingerprintsMeet checks that keys whose fingerprints meet are
// told apart by the comparison add asks for, and that the set stays whole
// as it grows.
func TestKeySetFingerprintsMeet(t *testing.T) {
	s := newKeySet(0)
	var keys []string
	same := func(k string) func(int64) (bool, error) {
		return func(j int64) (bool, error) { return keys[j] == k, nil }
	}
	// Fingerprints 0 to 9, each shared by 30 keys: every add after the
	// first of a fingerprint compares keys, and the table grows past its
	// first 64 slots.
	for i := range 300 {
		k := fmt.Sprintf("k%d", i)
		keys = append(keys, k)
		if j, err := s.add(uint64(i%10), int64(i), same(k)); j != -1 || err != nil {
			t.Fatalf("add(new key %s) = %d, %v; want -1, nil", k, j, err)
		}
	}
	if len(s.slots) < 600 {
		t.Errorf("%d slots for 300 keys; want at least 600", len(s.slots))
	}
	for i := range 300 {
		k := keys[i]
		if j, err := s.add(uint64(i%10), int64(300+i), same(k)); j != int64(i) || err != nil {
			t.Errorf("add(%s again) = %d, %v; want %d, nil", k, j, err, i)
		}
	}
	wantErr := fmt.Errorf("read failed")
	if _, err := s.add(3, 1000, func(int64) (bool, error) { return false, wantErr }); err != wantErr {
		t.Errorf("add with a failing comparison = %v; want %v", err, wantErr)
	}
}
