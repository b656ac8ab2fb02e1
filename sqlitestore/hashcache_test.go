package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// withCacheHashes sets the hash cache's bound, so that small test stores
// keep only their upper levels in memory.
func withCacheHashes(n int) Option { return func(c *config) { c.cacheHashes = n } }

// diskHashes reads stored hashes from the file only, in one snapshot.
func diskHashes(ctx context.Context, s *Store) ledger.HashReader {
	return ledger.HashReaderFunc(func(idx []int64) ([]ledger.Hash, error) {
		tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		defer tx.Rollback()
		return readHashes(ctx, tx, idx)
	})
}

// checkCache checks that every stored hash, and proofs in logs of several
// sizes, read the same through the cache as from the file; and, when
// current is set, that the cache is up to date with the head and holds
// its levels within its bound.
func checkCache(t *testing.T, s *Store, current bool, what string) {
	t.Helper()
	ctx := context.Background()
	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(head.LogSize)
	if current {
		s.cache.mu.RLock()
		ok, low := s.cache.head == s.head.Load(), s.cache.low
		s.cache.mu.RUnlock()
		if !ok || low != lowLevel(size, s.cache.max) || s.cache.bytes() == 0 || s.cache.bytes() > 32*s.cache.max {
			t.Fatalf("%s: cache up to date %v, level %d and up, %d bytes (bound %d hashes), for %d records", what, ok, low, s.cache.bytes(), s.cache.max, size)
		}
	}
	all := make([]int64, ledger.StoredHashCount(size))
	for i := range all {
		all[i] = int64(i)
	}
	got, err := s.ReadHashes(ctx, all)
	if err != nil {
		t.Fatalf("%s: ReadHashes = %v", what, err)
	}
	disk := diskHashes(ctx, s)
	want, err := disk.ReadHashes(all)
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if got[i] != want[i] {
			t.Fatalf("%s: stored hash %d is %s through the cache, %s in the file", what, i, got[i], want[i])
		}
	}
	cached := ledger.HashReaderOf(ctx, s)
	rng := rand.New(rand.NewPCG(uint64(size), 9))
	for range 200 {
		n := 1 + rng.Int64N(size)
		idx, old := rng.Int64N(n), rng.Int64N(n+1)
		p1, err1 := ledger.ProveRecord(cached, n, idx)
		p2, err2 := ledger.ProveRecord(disk, n, idx)
		if err1 != nil || err2 != nil || !slices.Equal(p1, p2) {
			t.Fatalf("%s: proof of record %d in %d: %v, %v through the cache; %v, %v from the file", what, idx, n, p1, err1, p2, err2)
		}
		q1, err1 := ledger.ProveTree(cached, n, old)
		q2, err2 := ledger.ProveTree(disk, n, old)
		if err1 != nil || err2 != nil || !slices.Equal(q1, q2) {
			t.Fatalf("%s: proof that %d extends %d: %v, %v through the cache; %v, %v from the file", what, n, old, q1, err1, q2, err2)
		}
	}
	// Indexes no log has are refused, cached or not.
	if _, err := s.ReadHashes(ctx, []int64{0, ledger.StoredHashCount(size)}); err == nil {
		t.Fatalf("%s: ReadHashes of a hash past the log = nil error", what)
	}
	if _, err := s.ReadHashes(ctx, []int64{-1}); err == nil {
		t.Fatalf("%s: ReadHashes(-1) = nil error", what)
	}
}

func TestHashCache(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	// 64 hashes: at 2,000 records, levels 5 and up.
	s, err := Open(ctx, path, withCacheHashes(64))
	if err != nil {
		t.Fatal(err)
	}
	c := newTestChain(1)
	for i, n := range []int{1, 2, 3, 40, 333, 700, 1024, 1025, 2000} {
		if _, err := c.appendBlocks(ctx, s, n, 37+i); err != nil {
			t.Fatal(err)
		}
		checkCache(t, s, true, fmt.Sprintf("after appending to %d records", n))
	}
	if s.cache.low == 0 {
		t.Fatalf("cache holds every level: the test needs a smaller bound")
	}
	s.Close()
	s, err = Open(ctx, path, withCacheHashes(64))
	if err != nil {
		t.Fatal(err)
	}
	checkCache(t, s, true, "after reopening")
	if _, err := c.appendBlocks(ctx, s, 2100, 50); err != nil {
		t.Fatal(err)
	}
	checkCache(t, s, true, "after appending to the reopened store")
	s.Close()
}

func TestHashCacheReorg(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), withCacheHashes(16))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := ledger.InitStore(ctx, s, ledgertest.PoWGenesis()); err != nil {
		t.Fatal(err)
	}
	a, _, ha, _ := reorgBranches(t, s, false)
	for i := range a {
		if err := s.Append(ctx, a[i], ha[i]); err != nil {
			t.Fatal(err)
		}
	}
	checkCache(t, s, true, "branch A")
	_, b, _, hb := reorgBranches(t, s, true)
	if err := s.Reorg(ctx, 5, b, hb); err != nil {
		t.Fatal(err)
	}
	// Until the next append, reads after the reorg go to the file.
	checkCache(t, s, false, "after the reorg to branch B")
	next, hs := ledgertest.NextPoWBlock(t, s, ledgertest.Records(rand.New(rand.NewPCG(5, 5)), 500_000, 7), 2)
	if err := s.Append(ctx, next, hs); err != nil {
		t.Fatal(err)
	}
	checkCache(t, s, true, "after appending to branch B")
}
