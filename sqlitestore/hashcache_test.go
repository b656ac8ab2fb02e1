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

// withCacheHashes bounds the hash cache to n hashes, so that small test
// stores keep only their upper levels in memory.
func withCacheHashes(n int64) Option { return WithHashCache(32 * n) }

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
		held := s.cache.held()
		if !ok || low != lowLevel(size, s.cache.max) || (held == 0 && s.cache.max > 1) || held > s.cache.max {
			t.Fatalf("%s: cache up to date %v, level %d and up, %d hashes (bound %d), for %d records", what, ok, low, held, s.cache.max, size)
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
	// Loaded a few entries at a time: by row ranges (level 5 and up, every
	// 32nd entry) and row by row (16 hashes: level 7 and up).
	defer func(n int64) { fillBatch = n }(fillBatch)
	fillBatch = 3
	for _, n := range []int64{64, 16} {
		s2, err := Open(ctx, path, withCacheHashes(n))
		if err != nil {
			t.Fatal(err)
		}
		checkCache(t, s2, true, fmt.Sprintf("after reopening with %d hashes, loaded 3 entries at a time", n))
		s2.Close()
	}
	if _, err := c.appendBlocks(ctx, s, 2100, 50); err != nil {
		t.Fatal(err)
	}
	checkCache(t, s, true, "after appending to the reopened store")
	s.Close()
}

func TestHashCacheReorg(t *testing.T) {
	for _, bound := range []int64{16, DefaultHashCacheBytes / 32} {
		t.Run(fmt.Sprintf("%d hashes", bound), func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(t.TempDir(), "ledger.db"), withCacheHashes(bound))
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
			// The cache kept the hashes before the fork and took B's.
			checkCache(t, s, true, "after the reorg to branch B")
			next, hs := ledgertest.NextPoWBlock(t, s, ledgertest.Records(rand.New(rand.NewPCG(5, 5)), 500_000, 7), 2)
			if err := s.Append(ctx, next, hs); err != nil {
				t.Fatal(err)
			}
			checkCache(t, s, true, "after appending to branch B")
			// Back to a shorter branch A: with a small bound the cache
			// would keep lower levels than it holds, and is read again
			// by the next append; until then reads go to the file.
			if err := s.Reorg(ctx, 5, a[5:], ha[5:]); err != nil {
				t.Fatal(err)
			}
			checkCache(t, s, bound > 16, "after the reorg back to branch A")
			next, hs = ledgertest.NextPoWBlock(t, s, ledgertest.Records(rand.New(rand.NewPCG(6, 6)), 600_000, 3), 2)
			if err := s.Append(ctx, next, hs); err != nil {
				t.Fatal(err)
			}
			checkCache(t, s, true, "after appending to branch A")
		})
	}
}

// TestHashLevel checks a cached level against a slice through appends and
// cuts across its chunks.
func TestHashLevel(t *testing.T) {
	var l hashLevel
	var want []ledger.Hash
	rng := rand.New(rand.NewPCG(4, 4))
	for round := range 40 {
		for range rng.IntN(3 * chunkHashes) {
			h := ledger.SumSHA256(fmt.Appendf(nil, "%d", len(want)))
			l.add(h)
			want = append(want, h)
		}
		if round%3 == 2 {
			n := rng.IntN(len(want) + 1)
			if round%9 == 8 {
				n = n / chunkHashes * chunkHashes // a cut at a chunk's end
			}
			l.truncate(int64(n))
			want = want[:n]
		}
		if l.n != int64(len(want)) || len(l.chunks) != (len(want)+chunkHashes-1)/chunkHashes {
			t.Fatalf("round %d: %d hashes in %d chunks, want %d", round, l.n, len(l.chunks), len(want))
		}
		for i, h := range want {
			if l.at(int64(i)) != h {
				t.Fatalf("round %d: hash %d = %s, want %s", round, i, l.at(int64(i)), h)
			}
		}
		for i, c := range l.chunks {
			if i < len(l.chunks)-1 && len(c) != chunkHashes {
				t.Fatalf("round %d: chunk %d of %d holds %d hashes", round, i, len(l.chunks), len(c))
			}
		}
	}
}

// TestHashCacheBound checks WithHashCache: the levels the bound keeps, for
// logs of the sizes operators meet and for a test store; no cache at 0;
// a negative bound refused.
func TestHashCacheBound(t *testing.T) {
	def := int64(DefaultHashCacheBytes / 32)
	for _, tt := range []struct {
		size, max int64
		low       int
	}{
		{1_000_000, def, 0},
		{1_048_000, def, 0},
		{1_049_000, def, 1},
		{2_000_000, def, 1},
		{4_000_000, def, 2},
		{16_000_000, def, 4},
		{1_000_000, (4 << 20) / 32, 4},
		{1_000_000, 0, 20},
		{0, 0, 0},
	} {
		if got := lowLevel(tt.size, tt.max); got != tt.low {
			t.Errorf("lowLevel(%d, %d) = %d, want %d", tt.size, tt.max, got, tt.low)
		}
		if held := 2*tt.size>>tt.low + 1; tt.low > 0 && held*32 > tt.max*32+64 {
			t.Errorf("%d records: levels %d and up take %d bytes, over %d", tt.size, tt.low, 32*held, 32*tt.max)
		}
	}
	if HashCacheBytesPerRecord*1_000_000 > DefaultHashCacheBytes {
		t.Errorf("the default bound does not hold every level at 1M records")
	}

	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestChain(1)
	if _, err := c.appendBlocks(ctx, s, 3000, 500); err != nil {
		t.Fatal(err)
	}
	checkCache(t, s, true, "default bound")
	if s.cache.low != 0 || s.cache.held() != ledger.StoredHashCount(3000) {
		t.Errorf("default bound, 3,000 records: level %d and up, %d hashes; want every level, %d", s.cache.low, s.cache.held(), ledger.StoredHashCount(3000))
	}
	s.Close()
	for _, bytes := range []int64{0, 31, 32 * 1000} {
		s, err := Open(ctx, path, WithHashCache(bytes))
		if err != nil {
			t.Fatal(err)
		}
		checkCache(t, s, true, fmt.Sprintf("bound %d bytes", bytes))
		if held := s.cache.held(); 32*held > bytes || (bytes > 32 && held == 0) {
			t.Errorf("bound %d bytes: %d hashes held", bytes, held)
		}
		s.Close()
	}
	if s, err := Open(ctx, path, WithHashCache(-1)); err == nil {
		s.Close()
		t.Errorf("Open(WithHashCache(-1)) = nil error")
	}
}
