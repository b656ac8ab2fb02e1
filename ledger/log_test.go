package ledger_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// memLog is a log's stored hashes in memory.
type memLog struct {
	leaves []ledger.Hash
	stored []ledger.Hash
	roots  []ledger.Hash // roots[n] is the root of the first n leaves
}

func (l *memLog) ReadHashes(indexes []int64) ([]ledger.Hash, error) {
	out := make([]ledger.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(l.stored)) {
			return nil, fmt.Errorf("stored hash %d: %w", x, ledger.ErrNotFound)
		}
		out[i] = l.stored[x]
	}
	return out, nil
}

// add appends leaves with AppendLog.
func (l *memLog) add(t testing.TB, leaves ...ledger.Hash) {
	t.Helper()
	stored, root, err := ledger.AppendLog(l, int64(len(l.leaves)), leaves)
	if err != nil {
		t.Fatalf("AppendLog(%d, %d leaves) = %v", len(l.leaves), len(leaves), err)
	}
	if want := ledger.StoredHashCount(int64(len(l.leaves)+len(leaves))) - int64(len(l.stored)); int64(len(stored)) != want {
		t.Fatalf("AppendLog(%d, %d leaves) gave %d stored hashes, want %d", len(l.leaves), len(leaves), len(stored), want)
	}
	l.leaves = append(l.leaves, leaves...)
	l.stored = append(l.stored, stored...)
	if len(l.roots) == 0 {
		l.roots = append(l.roots, ledger.EmptyLogRoot)
	}
	for len(l.roots) < len(l.leaves) {
		l.roots = append(l.roots, ledger.Hash{}) // filled below when needed
	}
	l.roots = append(l.roots[:len(l.leaves)], root)
}

func testLeaves(n int) []ledger.Hash {
	rng := rand.New(rand.NewPCG(6962, 1))
	out := make([]ledger.Hash, n)
	for i, r := range ledgertest.Records(rng, 0, n) {
		out[i] = r.LeafHash()
	}
	return out
}

func toRFC(hs []ledger.Hash) []rfcHash {
	out := make([]rfcHash, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

func TestEmptyLogRoot(t *testing.T) {
	want := sha256.Sum256(nil)
	if ledger.EmptyLogRoot != ledger.Hash(want) || ledger.EmptyLogRoot.String() != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("EmptyLogRoot = %v, want %x", ledger.EmptyLogRoot, want)
	}
	var l memLog
	if root, err := ledger.LogRoot(&l, 0); err != nil || root != ledger.EmptyLogRoot {
		t.Errorf("LogRoot(empty, 0) = %v, %v; want %v", root, err, ledger.EmptyLogRoot)
	}
	stored, root, err := ledger.AppendLog(&l, 0, nil)
	if err != nil || len(stored) != 0 || root != ledger.EmptyLogRoot {
		t.Errorf("AppendLog(empty, nothing) = %d hashes, %v, %v; want 0, %v, nil", len(stored), root, err, ledger.EmptyLogRoot)
	}
}

func TestAppendLog(t *testing.T) {
	const n = 300
	leaves := testLeaves(n)
	// One leaf at a time.
	var one memLog
	for i := 0; i < n; i++ {
		one.add(t, leaves[i])
		if want := rfcRoot(toRFC(leaves[:i+1])); one.roots[i+1] != ledger.Hash(want) {
			t.Fatalf("root after %d leaves = %v, RFC 6962 MTH gives %x", i+1, one.roots[i+1], want)
		}
		if got, err := ledger.LogRoot(&one, int64(i+1)); err != nil || got != one.roots[i+1] {
			t.Fatalf("LogRoot(%d) = %v, %v; want %v", i+1, got, err, one.roots[i+1])
		}
	}
	// All at once, and in uneven chunks: the same stored hashes.
	for _, chunks := range [][]int{{n}, {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 69}, {128, 128, 44}, {0, 299, 0, 1}} {
		var l memLog
		at := 0
		for _, c := range chunks {
			l.add(t, leaves[at:at+c]...)
			at += c
			if want := rfcRoot(toRFC(leaves[:at])); l.roots[at] != ledger.Hash(want) {
				t.Errorf("chunks %v: root after %d = %v, want %x", chunks, at, l.roots[at], want)
			}
		}
		if !reflect.DeepEqual(l.stored, one.stored) {
			t.Errorf("chunks %v: stored hashes differ from appending one at a time", chunks)
		}
	}
	if got := ledger.StoredHashCount(n); got != int64(len(one.stored)) {
		t.Errorf("StoredHashCount(%d) = %d, want %d", n, got, len(one.stored))
	}
	// Stored hash 0 is leaf 0; stored hash 2 is the node over leaves 0 and 1.
	if one.stored[0] != leaves[0] || one.stored[2] != ledger.Hash(rfcNode(leaves[0], leaves[1])) {
		t.Errorf("stored hashes 0 and 2 are not leaf 0 and node(0, 1)")
	}
}

func TestAppendLogReaderErrors(t *testing.T) {
	leaves := testLeaves(10)
	var l memLog
	l.add(t, leaves[:5]...)
	boom := errors.New("boom")
	failing := ledger.HashReaderFunc(func([]int64) ([]ledger.Hash, error) { return nil, boom })
	if _, _, err := ledger.AppendLog(failing, 5, leaves[5:]); !errors.Is(err, boom) {
		t.Errorf("AppendLog(failing reader) = %v; want boom", err)
	}
	short := ledger.HashReaderFunc(func(idx []int64) ([]ledger.Hash, error) {
		hs, err := l.ReadHashes(idx)
		return hs[:len(hs)-1], err
	})
	if _, _, err := ledger.AppendLog(short, 5, leaves[5:]); err == nil {
		t.Errorf("AppendLog(reader returning too few hashes) = nil error")
	}
	if _, err := ledger.LogRoot(short, 5); err == nil {
		t.Errorf("LogRoot(reader returning too few hashes) = nil error")
	}
	if _, err := ledger.ProveRecord(short, 5, 1); err == nil {
		t.Errorf("ProveRecord(reader returning too few hashes) = nil error")
	}
}

func TestInclusionProofs(t *testing.T) {
	const n = 40
	leaves := testLeaves(n)
	var l memLog
	for i := range leaves {
		l.add(t, leaves[i])
	}
	for size := int64(1); size <= n; size++ {
		root := l.roots[size]
		for i := int64(0); i < size; i++ {
			p, err := ledger.ProveRecord(&l, size, i)
			if err != nil {
				t.Fatalf("ProveRecord(%d, %d) = %v", size, i, err)
			}
			if want := rfcPath(int(i), toRFC(leaves[:size])); !reflect.DeepEqual(toRFC(p), want) && !(len(p) == 0 && len(want) == 0) {
				t.Fatalf("ProveRecord(%d, %d) differs from RFC 6962 PATH", size, i)
			}
			if err := ledger.CheckRecord(p, size, root, i, leaves[i]); err != nil {
				t.Fatalf("CheckRecord(ProveRecord(%d, %d)) = %v", size, i, err)
			}
			// Any flipped bit, another leaf, index, size or root fails.
			for j := range p {
				q := append([]ledger.Hash(nil), p...)
				q[j][j%32] ^= 0x80
				if err := ledger.CheckRecord(q, size, root, i, leaves[i]); !errors.Is(err, ledger.ErrBadProof) {
					t.Fatalf("CheckRecord(flipped proof hash %d, size %d, index %d) = %v; want ErrBadProof", j, size, i, err)
				}
			}
			bad := leaves[i]
			bad[0] ^= 1
			if err := ledger.CheckRecord(p, size, root, i, bad); !errors.Is(err, ledger.ErrBadProof) {
				t.Fatalf("CheckRecord(flipped leaf) = %v; want ErrBadProof", err)
			}
			broot := root
			broot[31] ^= 1
			if err := ledger.CheckRecord(p, size, broot, i, leaves[i]); !errors.Is(err, ledger.ErrBadProof) {
				t.Fatalf("CheckRecord(flipped root) = %v; want ErrBadProof", err)
			}
			if size > 1 {
				other := (i + 1) % size
				if err := ledger.CheckRecord(p, size, root, other, leaves[i]); !errors.Is(err, ledger.ErrBadProof) {
					t.Fatalf("CheckRecord(size %d, index %d as %d) = %v; want ErrBadProof", size, i, other, err)
				}
				if err := ledger.CheckRecord(append(p, root), size, root, i, leaves[i]); !errors.Is(err, ledger.ErrBadProof) {
					t.Fatalf("CheckRecord(proof with an extra hash) = %v; want ErrBadProof", err)
				}
			}
			if len(p) > 0 {
				if err := ledger.CheckRecord(p[:len(p)-1], size, root, i, leaves[i]); !errors.Is(err, ledger.ErrBadProof) {
					t.Fatalf("CheckRecord(proof missing a hash) = %v; want ErrBadProof", err)
				}
			}
		}
	}
	for _, tc := range []struct{ size, index int64 }{{5, 5}, {5, -1}, {0, 0}, {5, 6}} {
		if _, err := ledger.ProveRecord(&l, tc.size, tc.index); err == nil {
			t.Errorf("ProveRecord(%d, %d) = nil error", tc.size, tc.index)
		}
		if err := ledger.CheckRecord(nil, tc.size, l.roots[5], tc.index, leaves[0]); !errors.Is(err, ledger.ErrBadProof) {
			t.Errorf("CheckRecord(size %d, index %d) = %v; want ErrBadProof", tc.size, tc.index, err)
		}
	}
	// A one-record log's root is its leaf and the proof is empty.
	if err := ledger.CheckRecord(nil, 1, leaves[0], 0, leaves[0]); err != nil {
		t.Errorf("CheckRecord(empty proof, size 1) = %v; want nil", err)
	}
}

func TestConsistencyProofs(t *testing.T) {
	const n = 40
	leaves := testLeaves(n)
	var l memLog
	for i := range leaves {
		l.add(t, leaves[i])
	}
	for tsize := int64(0); tsize <= n; tsize++ {
		for nsize := int64(0); nsize <= tsize; nsize++ {
			p, err := ledger.ProveTree(&l, tsize, nsize)
			if err != nil {
				t.Fatalf("ProveTree(%d, %d) = %v", tsize, nsize, err)
			}
			if nsize > 0 && nsize < tsize {
				if want := rfcProof(int(nsize), toRFC(leaves[:tsize])); !reflect.DeepEqual(toRFC(p), want) {
					t.Fatalf("ProveTree(%d, %d) differs from RFC 6962 PROOF", tsize, nsize)
				}
			} else if len(p) != 0 {
				t.Fatalf("ProveTree(%d, %d) = %d hashes, want none", tsize, nsize, len(p))
			}
			if err := ledger.CheckTree(p, tsize, l.roots[tsize], nsize, l.roots[nsize]); err != nil {
				t.Fatalf("CheckTree(ProveTree(%d, %d)) = %v", tsize, nsize, err)
			}
			for j := range p {
				q := append([]ledger.Hash(nil), p...)
				q[j][(j*7)%32] ^= 4
				if err := ledger.CheckTree(q, tsize, l.roots[tsize], nsize, l.roots[nsize]); !errors.Is(err, ledger.ErrBadProof) {
					t.Fatalf("CheckTree(%d, %d, flipped hash %d) = %v; want ErrBadProof", tsize, nsize, j, err)
				}
			}
			if nsize > 0 && tsize > 0 {
				// The wrong old root, or a root of another size, fails.
				bad := l.roots[nsize]
				bad[0] ^= 1
				if err := ledger.CheckTree(p, tsize, l.roots[tsize], nsize, bad); !errors.Is(err, ledger.ErrBadProof) {
					t.Fatalf("CheckTree(%d, %d, flipped old root) = %v; want ErrBadProof", tsize, nsize, err)
				}
				bad = l.roots[tsize]
				bad[0] ^= 1
				if err := ledger.CheckTree(p, tsize, bad, nsize, l.roots[nsize]); !errors.Is(err, ledger.ErrBadProof) {
					t.Fatalf("CheckTree(%d, %d, flipped new root) = %v; want ErrBadProof", tsize, nsize, err)
				}
			}
		}
	}
	for _, tc := range []struct {
		name           string
		proof          []ledger.Hash
		t, n           int64
		tRoot, nRootAt ledger.Hash
	}{
		{"n > t", nil, 3, 5, l.roots[3], l.roots[5]},
		{"n < 0", nil, 3, -1, l.roots[3], l.roots[0]},
		{"empty old log with wrong root", nil, 3, 0, l.roots[3], l.roots[1]},
		{"empty old log with a proof", []ledger.Hash{l.roots[1]}, 3, 0, l.roots[3], ledger.EmptyLogRoot},
		{"equal sizes, different roots", nil, 3, 3, l.roots[3], l.roots[2]},
		{"equal sizes with a proof", []ledger.Hash{l.roots[1]}, 3, 3, l.roots[3], l.roots[3]},
		{"proof of other sizes", mustProveTree(t, &l, 9, 4), 9, 5, l.roots[9], l.roots[5]},
	} {
		if err := ledger.CheckTree(tc.proof, tc.t, tc.tRoot, tc.n, tc.nRootAt); !errors.Is(err, ledger.ErrBadProof) {
			t.Errorf("CheckTree(%s) = %v; want ErrBadProof", tc.name, err)
		}
	}
	if _, err := ledger.ProveTree(&l, 3, 5); err == nil {
		t.Errorf("ProveTree(3, 5) = nil error")
	}
	if _, err := ledger.ProveTree(&l, n+1, 3); err == nil {
		t.Errorf("ProveTree(beyond the log) = nil error")
	}
}

func mustProveTree(t *testing.T, r ledger.HashReader, tsize, nsize int64) []ledger.Hash {
	p, err := ledger.ProveTree(r, tsize, nsize)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
