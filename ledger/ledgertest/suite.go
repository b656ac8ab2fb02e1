package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

// TestStore runs the conformance suite for a ledger.Store implementation:
// every rule of the ledger.Store interface comment, and of
// ledger.Reorger's when the store is one. newStore returns a new,
// empty store; the suite closes it.
func TestStore(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, newStore(t)) })
	t.Run("Genesis", func(t *testing.T) { testGenesis(t, newStore(t)) })
	t.Run("ReadBack", func(t *testing.T) { testReadBack(t, newStore(t)) })
	t.Run("OutOfOrder", func(t *testing.T) { testOutOfOrder(t, newStore(t)) })
	t.Run("HashCount", func(t *testing.T) { testHashCount(t, newStore(t)) })
	t.Run("Conflict", func(t *testing.T) { testConflict(t, newStore(t)) })
	t.Run("Copies", func(t *testing.T) { testCopies(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore(t)) })
	t.Run("AppendNext", func(t *testing.T) { testAppendNext(t, newStore(t)) })
	t.Run("Reorg", func(t *testing.T) { testReorg(t, newStore(t)) }) // ledger.Reorger only; reorg.go
	t.Run("Authority", func(t *testing.T) { testAuthority(t, newStore(t)) })
}

// testAuthority: authority changes are log entries of their own kind, read
// back by Block, Record, Records and Authorities, never by Lookup.
func testAuthority(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := build(t, s, 2, 3)
	v4, v5 := Signer(4), Signer(5)
	c.AddSigner(v4)
	h := c.Head().Header.Height + 1
	add4 := c.Change(ledger.AuthorityAdd, v4.Public(), "v4", h+ledger.AuthorityDelay)
	add5 := c.Change(ledger.AuthorityAdd, v5.Public(), "v5", h+ledger.AuthorityDelay+1)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, b := range []struct {
		recs    []ledger.Record
		changes []ledger.AuthorityChange
	}{
		{Records(rng, 100, 2), []ledger.AuthorityChange{add4, add5}},
		{nil, nil},
		{Records(rng, 200, 1), nil},
	} {
		blk, stored := c.UnsealedWith(b.recs, b.changes)
		blk.Certificate = c.Certify(blk, nil)
		if _, err := ledger.ValidateNext(ctx, s, &c.Head().Header, blk, nil); err != nil {
			t.Fatalf("ValidateNext(height %d) = %v", blk.Header.Height, err)
		}
		if err := s.Append(ctx, blk, stored); err != nil {
			t.Fatalf("Append(height %d with %d changes) = %v", blk.Header.Height, len(b.changes), err)
		}
		c.Commit(blk, stored)
	}
	got, err := s.Block(ctx, h)
	if err != nil || !reflect.DeepEqual(got.Format(), c.Blocks()[h].Format()) {
		t.Fatalf("Block(%d) = %v; want the block appended, authority changes included", h, err)
	}
	first := int64(c.Blocks()[h].Header.LogSize) - 2
	for i, want := range []ledger.AuthorityChange{add4, add5} {
		e, err := s.Record(ctx, first+int64(i))
		if err != nil || e.Authority == nil || e.Authority.LeafHash() != want.LeafHash() || e.Height != h || e.Index != first+int64(i) {
			t.Errorf("Record(%d) = %+v, %v; want authority change %d at height %d", first+int64(i), e, err, i, h)
		}
	}
	es, err := s.Records(ctx, first-1, 4)
	if err != nil || len(es) != 4 || es[0].Authority != nil || es[1].Authority == nil || es[2].Authority == nil || es[3].Authority != nil {
		t.Errorf("Records(%d, 4) = %+v, %v; want a record, two changes, a record", first-1, es, err)
	}
	as, err := s.Authorities(ctx)
	if err != nil || len(as) != 2 || as[0].Index != first || as[1].Height != h || as[1].Change.LeafHash() != add5.LeafHash() {
		t.Fatalf("Authorities() = %+v, %v", as, err)
	}
	as[0].Change.Sigs[0].Sig[0] ^= 1
	if again, _ := s.Authorities(ctx); again[0].Change.LeafHash() != add4.LeafHash() {
		t.Errorf("Authorities returned the store's own memory")
	}
	loaded, err := ledger.LoadAuthorities(ctx, s, c.Genesis)
	if err != nil || loaded.Through() != c.Head().Header.Height || loaded.Projected().Len() != 6 {
		t.Errorf("LoadAuthorities = %v; through %d", err, loaded.Through())
	}
	if _, err := ledger.Audit(ctx, s, c.Genesis, nil, nil); err != nil {
		t.Errorf("Audit = %v", err)
	}
}

// build appends to s the genesis and blocks blocks of per records each of a
// new 4-validator chain, which it returns (its own MemStore holds the same
// blocks).
func build(t *testing.T, s ledger.Store, blocks, per int) *Chain {
	t.Helper()
	ctx := context.Background()
	c := NewChain(t, 4)
	if err := s.Append(ctx, c.Head(), nil); err != nil {
		t.Fatalf("Append(genesis) = %v, want nil", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < blocks; i++ {
		b, stored := c.Unsealed(Records(rng, i*per, per))
		b.Certificate = c.Certify(b, nil)
		if err := s.Append(ctx, b, stored); err != nil {
			t.Fatalf("Append(height %d) = %v, want nil", b.Header.Height, err)
		}
		c.Commit(b, stored)
	}
	return c
}

// checkUnchanged checks that s still holds exactly c's blocks: a refused
// append left nothing behind.
func checkUnchanged(t *testing.T, s ledger.Store, c *Chain, what string) {
	t.Helper()
	ctx := context.Background()
	want := c.Head().Header
	head, err := s.Head(ctx)
	if err != nil || head.Hash() != want.Hash() {
		t.Fatalf("after %s: Head() = %+v, %v; want height %d", what, head, err, want.Height)
	}
	if _, err := s.Header(ctx, want.Height+1); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after %s: Header(%d) = %v; want ErrNotFound", what, want.Height+1, err)
	}
	if _, err := s.Block(ctx, want.Height+1); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after %s: Block(%d) = %v; want ErrNotFound", what, want.Height+1, err)
	}
	if hs, err := s.Headers(ctx, want.Height+1, 10); err != nil || len(hs) != 0 {
		t.Errorf("after %s: Headers(%d, 10) = %d headers, %v; want 0, nil", what, want.Height+1, len(hs), err)
	}
	if _, err := s.Record(ctx, int64(want.LogSize)); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after %s: Record(%d) = %v; want ErrNotFound", what, want.LogSize, err)
	}
	if es, err := s.Records(ctx, int64(want.LogSize), 10); err != nil || len(es) != 0 {
		t.Errorf("after %s: Records(%d, 10) = %d entries, %v; want 0, nil", what, want.LogSize, len(es), err)
	}
	n := ledger.StoredHashCount(int64(want.LogSize))
	if _, err := s.ReadHashes(ctx, []int64{n}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after %s: ReadHashes([%d]) = %v; want ErrNotFound", what, n, err)
	}
	root, err := ledger.LogRoot(ledger.HashReaderOf(ctx, s), int64(want.LogSize))
	if err != nil || root != want.LogRoot {
		t.Errorf("after %s: log root from stored hashes = %v, %v; want %v", what, root, err, want.LogRoot)
	}
}

func testEmpty(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	if h, err := s.Head(ctx); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Head() on empty store = %+v, %v; want ErrNotFound", h, err)
	}
	if h, err := s.Header(ctx, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Header(0) = %+v, %v; want ErrNotFound", h, err)
	}
	if b, err := s.Block(ctx, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Block(0) = %+v, %v; want ErrNotFound", b, err)
	}
	if e, err := s.Record(ctx, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Record(0) = %+v, %v; want ErrNotFound", e, err)
	}
	if e, err := s.Lookup(ctx, ledger.Key{Repo: "example.com/a", Tag: "v1"}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Lookup(example.com/a@v1) = %+v, %v; want ErrNotFound", e, err)
	}
	if hs, err := s.Headers(ctx, 0, 10); err != nil || len(hs) != 0 {
		t.Errorf("Headers(0, 10) = %d headers, %v; want 0, nil", len(hs), err)
	}
	if es, err := s.Records(ctx, 0, 10); err != nil || len(es) != 0 {
		t.Errorf("Records(0, 10) = %d entries, %v; want 0, nil", len(es), err)
	}
	if _, err := s.ReadHashes(ctx, []int64{0}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("ReadHashes([0]) = %v; want ErrNotFound", err)
	}
	if hs, err := s.ReadHashes(ctx, nil); err != nil || len(hs) != 0 {
		t.Errorf("ReadHashes(nil) = %v, %v; want none, nil", hs, err)
	}
	c := NewChain(t, 1)
	b, _ := c.Unsealed(nil)
	if err := s.Append(ctx, b, nil); !errors.Is(err, ledger.ErrOutOfOrder) {
		t.Errorf("Append(height 1 into empty store) = %v; want ErrOutOfOrder", err)
	}
	if _, err := s.Head(ctx); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Head() after refused append = %v; want ErrNotFound", err)
	}
}

func testGenesis(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := NewChain(t, 3)
	g := c.Head()
	bad := *g
	bad.Header.Prev[0] = 1
	if err := s.Append(ctx, &bad, nil); !errors.Is(err, ledger.ErrOutOfOrder) {
		t.Errorf("Append(genesis with non-zero prev) = %v; want ErrOutOfOrder", err)
	}
	if err := s.Append(ctx, g, nil); err != nil {
		t.Fatalf("Append(genesis) = %v; want nil", err)
	}
	if err := s.Append(ctx, g, nil); !errors.Is(err, ledger.ErrOutOfOrder) {
		t.Errorf("Append(genesis again) = %v; want ErrOutOfOrder", err)
	}
	head, err := s.Head(ctx)
	if err != nil || *head != g.Header {
		t.Fatalf("Head() = %+v, %v; want %+v", head, err, g.Header)
	}
	got, err := s.Block(ctx, 0)
	if err != nil || string(got.Format()) != string(g.Format()) {
		t.Errorf("Block(0) = %+v, %v; want the genesis block", got, err)
	}
	if root, err := ledger.LogRoot(ledger.HashReaderOf(ctx, s), 0); err != nil || root != ledger.EmptyLogRoot {
		t.Errorf("LogRoot(store, 0) = %v, %v; want %v", root, err, ledger.EmptyLogRoot)
	}
	if err := ledger.InitStore(ctx, s, c.Genesis); err != nil {
		t.Errorf("InitStore(same genesis) = %v; want nil", err)
	}
	other := NewChain(t, 4)
	if err := ledger.InitStore(ctx, s, other.Genesis); !errors.Is(err, ledger.ErrCorrupt) {
		t.Errorf("InitStore(other genesis) = %v; want ErrCorrupt", err)
	}
	// A block with no records adds no stored hashes.
	b, stored := c.Unsealed(nil)
	b.Certificate = c.Certify(b, nil)
	if len(stored) != 0 {
		t.Fatalf("Unsealed(nil) gave %d stored hashes", len(stored))
	}
	if err := s.Append(ctx, b, nil); err != nil {
		t.Fatalf("Append(empty block) = %v; want nil", err)
	}
	c.Commit(b, stored)
	checkUnchanged(t, s, c, "empty block")
}

func testReadBack(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := build(t, s, 6, 7)
	head, err := s.Head(ctx)
	if err != nil || *head != c.Head().Header {
		t.Fatalf("Head() = %+v, %v; want %+v", head, err, c.Head().Header)
	}
	for _, want := range c.Blocks() {
		height := want.Header.Height
		got, err := s.Block(ctx, height)
		if err != nil {
			t.Fatalf("Block(%d) = %v", height, err)
		}
		if !reflect.DeepEqual(got, want) && string(got.Format()) != string(want.Format()) {
			t.Errorf("Block(%d) = %s\nwant %s", height, got.Format(), want.Format())
		}
		if got.Header != want.Header || len(got.Records) != len(want.Records) || len(got.Attestations) != len(want.Attestations) ||
			(got.Certificate == nil) != (want.Certificate == nil) {
			t.Errorf("Block(%d) fields differ from what was appended", height)
		}
		h, err := s.Header(ctx, height)
		if err != nil || *h != want.Header {
			t.Errorf("Header(%d) = %+v, %v; want %+v", height, h, err, want.Header)
		}
	}
	if _, err := s.Block(ctx, head.Height+1); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Block(%d) = %v; want ErrNotFound", head.Height+1, err)
	}
	if _, err := s.Header(ctx, head.Height+1); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Header(%d) = %v; want ErrNotFound", head.Height+1, err)
	}

	for _, tc := range []struct {
		from  uint64
		limit int
		want  []uint64
	}{
		{0, 100, []uint64{0, 1, 2, 3, 4, 5, 6}},
		{2, 3, []uint64{2, 3, 4}},
		{5, 10, []uint64{5, 6}},
		{6, 1, []uint64{6}},
		{7, 10, nil},
		{100, 3, nil},
		{0, 0, nil},
	} {
		hs, err := s.Headers(ctx, tc.from, tc.limit)
		var got []uint64
		for i, h := range hs {
			got = append(got, h.Height)
			if h != c.Blocks()[h.Height].Header {
				t.Errorf("Headers(%d, %d)[%d] differs from the appended header", tc.from, tc.limit, i)
			}
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Headers(%d, %d) = heights %v, %v; want %v", tc.from, tc.limit, got, err, tc.want)
		}
	}

	var all []ledger.Entry
	for _, b := range c.Blocks() {
		for i, r := range b.Records {
			all = append(all, ledger.Entry{Record: r, Index: int64(b.Header.LogSize) - int64(len(b.Records)) + int64(i), Height: b.Header.Height})
		}
	}
	if int64(len(all)) != int64(head.LogSize) {
		t.Fatalf("chain has %d records, head says %d", len(all), head.LogSize)
	}
	for _, want := range all {
		got, err := s.Record(ctx, want.Index)
		if err != nil || !reflect.DeepEqual(*got, want) {
			t.Fatalf("Record(%d) = %+v, %v; want %+v", want.Index, got, err, want)
		}
		got, err = s.Lookup(ctx, want.Record.Key)
		if err != nil || !reflect.DeepEqual(*got, want) {
			t.Fatalf("Lookup(%s) = %+v, %v; want %+v", want.Record.Key, got, err, want)
		}
	}
	for _, i := range []int64{-1, int64(len(all)), int64(len(all)) + 100} {
		if _, err := s.Record(ctx, i); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Record(%d) = %v; want ErrNotFound", i, err)
		}
	}
	for _, k := range []ledger.Key{
		{Repo: "example.com/nobody/none", Tag: "v1"},
		{Repo: all[0].Record.Key.Repo, Tag: all[0].Record.Key.Tag + "x"},
	} {
		if _, err := s.Lookup(ctx, k); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Lookup(%s) = %v; want ErrNotFound", k, err)
		}
	}
	checkFirstCommitted(t, s, all)
	for _, tc := range []struct {
		from       int64
		limit      int
		start, end int64 // want all[start:end]
	}{
		{0, 1000, 0, int64(len(all))},
		{5, 10, 5, 15},
		{int64(len(all)) - 3, 10, int64(len(all)) - 3, int64(len(all))},
		{int64(len(all)), 10, 0, 0},
		{int64(len(all)) + 5, 10, 0, 0},
		{3, 0, 0, 0},
	} {
		es, err := s.Records(ctx, tc.from, tc.limit)
		want := all[tc.start:tc.end]
		if err != nil || len(es) != len(want) || (len(want) > 0 && !reflect.DeepEqual(es, want)) {
			t.Errorf("Records(%d, %d) = %d entries, %v; want entries %d to %d", tc.from, tc.limit, len(es), err, tc.start, tc.end)
		}
	}

	// Stored hashes: every one, in any order, with repeats.
	n := ledger.StoredHashCount(int64(head.LogSize))
	idx := make([]int64, 0, n+2)
	for i := n - 1; i >= 0; i-- {
		idx = append(idx, i)
	}
	idx = append(idx, 0, n-1)
	got, err := s.ReadHashes(ctx, idx)
	want, _ := c.Store.ReadHashes(ctx, idx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadHashes(all, reversed, with repeats) = %d hashes, %v; want %d", len(got), err, len(want))
	}
	for _, bad := range [][]int64{{n}, {0, n}, {-1}} {
		if _, err := s.ReadHashes(ctx, bad); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("ReadHashes(%v) = %v; want ErrNotFound", bad, err)
		}
	}
	// Every header is a checkpoint the stored hashes reproduce, and proofs
	// built from them verify.
	hr := ledger.HashReaderOf(ctx, s)
	for _, b := range c.Blocks() {
		root, err := ledger.LogRoot(hr, int64(b.Header.LogSize))
		if err != nil || root != b.Header.LogRoot {
			t.Errorf("LogRoot(store, %d) = %v, %v; want %v", b.Header.LogSize, root, err, b.Header.LogRoot)
		}
	}
	size := int64(head.LogSize)
	for _, i := range []int64{0, 3, size - 1} {
		p, err := ledger.ProveRecord(hr, size, i)
		if err == nil {
			err = ledger.CheckRecord(p, size, head.LogRoot, i, all[i].Record.LeafHash())
		}
		if err != nil {
			t.Errorf("inclusion proof of record %d from the store: %v", i, err)
		}
	}
	old := c.Blocks()[2].Header
	p, err := ledger.ProveTree(hr, size, int64(old.LogSize))
	if err == nil {
		err = ledger.CheckTree(p, size, head.LogRoot, int64(old.LogSize), old.LogRoot)
	}
	if err != nil {
		t.Errorf("consistency proof %d -> %d from the store: %v", old.LogSize, size, err)
	}
	if rep, err := ledger.Audit(ctx, s, c.Genesis, nil, nil); err != nil || rep.Records != size {
		t.Errorf("Audit(store) = %+v, %v; want %d records", rep, err, size)
	}
}

func testOutOfOrder(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := build(t, s, 2, 3)
	b, stored := c.Unsealed(Records(rand.New(rand.NewPCG(9, 9)), 1000, 2))
	b.Certificate = c.Certify(b, nil)
	for _, tc := range []struct {
		name   string
		change func(h *ledger.Header)
	}{
		{"height+1", func(h *ledger.Header) { h.Height++ }},
		{"height of head", func(h *ledger.Header) { h.Height-- }},
		{"height 0", func(h *ledger.Header) { h.Height = 0 }},
		{"prev", func(h *ledger.Header) { h.Prev[0] ^= 1 }},
		{"zero prev", func(h *ledger.Header) { h.Prev = ledger.ZeroHash }},
		{"prev of parent's parent", func(h *ledger.Header) { h.Prev = c.Blocks()[1].Header.Prev }},
	} {
		bad := *b
		tc.change(&bad.Header)
		if err := s.Append(ctx, &bad, stored); !errors.Is(err, ledger.ErrOutOfOrder) {
			t.Errorf("Append(%s) = %v; want ErrOutOfOrder", tc.name, err)
		}
		checkUnchanged(t, s, c, "Append("+tc.name+")")
	}
	// A block of the head's height, even the head itself, is refused.
	if err := s.Append(ctx, c.Head(), nil); !errors.Is(err, ledger.ErrOutOfOrder) {
		t.Errorf("Append(head again) = %v; want ErrOutOfOrder", err)
	}
	checkUnchanged(t, s, c, "Append(head again)")
	if err := s.Append(ctx, b, stored); err != nil {
		t.Fatalf("Append(valid after refusals) = %v; want nil", err)
	}
	c.Commit(b, stored)
	checkUnchanged(t, s, c, "valid append")
}

func testHashCount(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := build(t, s, 1, 3)
	b, stored := c.Unsealed(Records(rand.New(rand.NewPCG(7, 7)), 2000, 5))
	b.Certificate = c.Certify(b, nil)
	for _, tc := range []struct {
		name   string
		hashes []ledger.Hash
	}{
		{"no hashes", nil},
		{"one too few", stored[1:]},
		{"one too many", append(append([]ledger.Hash(nil), stored...), ledger.Hash{})},
	} {
		if err := s.Append(ctx, b, tc.hashes); err == nil {
			t.Errorf("Append(%s) = nil; want an error", tc.name)
		}
		checkUnchanged(t, s, c, "Append("+tc.name+")")
	}
	// A header whose record count disagrees with its body is refused too.
	bad := *b
	bad.Records = bad.Records[:4]
	if err := s.Append(ctx, &bad, stored); err == nil {
		t.Errorf("Append(4 records, header says 5) = nil; want an error")
	}
	checkUnchanged(t, s, c, "Append(short body)")
	if err := s.Append(ctx, b, stored); err != nil {
		t.Fatalf("Append(valid) = %v; want nil", err)
	}
	c.Commit(b, stored)
	checkUnchanged(t, s, c, "valid append")
}

func testConflict(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := build(t, s, 2, 3)
	rng := rand.New(rand.NewPCG(5, 5))
	committed, err := s.Record(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	other := committed.Record
	other.Commit = fmt.Sprintf("%040x", 1)
	fresh := Records(rng, 5000, 3)
	for _, tc := range []struct {
		name    string
		records []ledger.Record
	}{
		{"same record last", append(append([]ledger.Record(nil), fresh...), committed.Record)},
		{"same record first", append([]ledger.Record{committed.Record}, fresh...)},
		{"other record for the key", append(append([]ledger.Record(nil), fresh...), other)},
		{"key twice in the block", append(append([]ledger.Record(nil), fresh...), fresh[0])},
	} {
		b, stored := c.Unsealed(tc.records)
		b.Certificate = c.Certify(b, nil)
		if err := s.Append(ctx, b, stored); !errors.Is(err, ledger.ErrConflict) {
			t.Errorf("Append(%s) = %v; want ErrConflict", tc.name, err)
		}
		checkUnchanged(t, s, c, "Append("+tc.name+")")
		for _, r := range fresh {
			if e, err := s.Lookup(ctx, r.Key); !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("after Append(%s): Lookup(%s) = %+v, %v; want ErrNotFound", tc.name, r.Key, e, err)
			}
		}
		if e, err := s.Lookup(ctx, committed.Record.Key); err != nil || !reflect.DeepEqual(e, committed) {
			t.Errorf("after Append(%s): Lookup(%s) = %+v, %v; want %+v", tc.name, committed.Record.Key, e, err, committed)
		}
	}
	b, stored := c.Unsealed(fresh)
	b.Certificate = c.Certify(b, nil)
	if err := s.Append(ctx, b, stored); err != nil {
		t.Fatalf("Append(fresh records) = %v; want nil", err)
	}
	c.Commit(b, stored)
	checkUnchanged(t, s, c, "valid append")
}

func testCopies(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := build(t, s, 2, 3)
	want := c.Blocks()[1]
	wantBytes := string(want.Format())

	// What Append was given stays the caller's.
	b, stored := c.Unsealed(Records(rand.New(rand.NewPCG(8, 8)), 3000, 2))
	b.Certificate = c.Certify(b, nil)
	appended := string(b.Format())
	if err := s.Append(ctx, b, stored); err != nil {
		t.Fatal(err)
	}
	c.Commit(b, stored)
	saved := stored[0]
	b.Records[0].Commit = "x"
	b.Certificate.Sigs[0].Sig[0] ^= 1
	b.Attestations[0].Sig[0] ^= 1
	stored[0][0] ^= 1
	if got, err := s.Block(ctx, b.Header.Height); err != nil || string(got.Format()) != appended {
		t.Errorf("changing a block after Append changed the stored block: %v", err)
	}
	if got, err := s.ReadHashes(ctx, []int64{ledger.StoredHashCount(int64(b.Header.LogSize - 2))}); err != nil || got[0] != saved {
		t.Errorf("changing the hashes after Append changed the stored hashes: %v", err)
	}

	// What reads return is the caller's.
	got, _ := s.Block(ctx, 1)
	got.Header.Records = 99
	got.Records[0].Commit = "x"
	got.Records[0].Key.Tag = "x"
	if got.Certificate != nil {
		got.Certificate.Sigs[0].Sig[0] ^= 1
	}
	if len(got.Attestations) > 0 {
		got.Attestations[0].Record.Tree = "x"
	}
	h, _ := s.Header(ctx, 1)
	h.Records = 99
	head, _ := s.Head(ctx)
	head.Height = 99
	hs, _ := s.Headers(ctx, 0, 3)
	hs[1].Records = 99
	e, _ := s.Record(ctx, 0)
	e.Record.Commit = "x"
	es, _ := s.Records(ctx, 0, 3)
	es[0].Record.Commit = "x"
	l, _ := s.Lookup(ctx, want.Records[0].Key)
	l.Record.Commit = "x"
	rh, _ := s.ReadHashes(ctx, []int64{0})
	rh[0][0] ^= 1

	if got, err := s.Block(ctx, 1); err != nil || string(got.Format()) != wantBytes {
		t.Errorf("changing returned values changed Block(1): %v", err)
	}
	if h, err := s.Header(ctx, 1); err != nil || *h != want.Header {
		t.Errorf("changing returned values changed Header(1): %v", err)
	}
	if head, err := s.Head(ctx); err != nil || *head != c.Head().Header {
		t.Errorf("changing returned values changed Head(): %v", err)
	}
	if e, err := s.Record(ctx, 0); err != nil || e.Record != want.Records[0] {
		t.Errorf("changing returned values changed Record(0): %v", err)
	}
	if e, err := s.Lookup(ctx, want.Records[0].Key); err != nil || e.Record != want.Records[0] {
		t.Errorf("changing returned values changed Lookup: %v", err)
	}
	mine, _ := c.Store.ReadHashes(ctx, []int64{0})
	if rh, err := s.ReadHashes(ctx, []int64{0}); err != nil || rh[0] != mine[0] {
		t.Errorf("changing returned values changed ReadHashes([0]): %v", err)
	}
}

func testConcurrent(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := build(t, s, 1, 1)
	rng := rand.New(rand.NewPCG(3, 4))
	var (
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	reader := func() {
		defer wg.Done()
		hr := ledger.HashReaderOf(ctx, s)
		for !stopped() {
			h, err := s.Head(ctx)
			if err != nil {
				t.Errorf("Head() = %v", err)
				return
			}
			b, err := s.Block(ctx, h.Height)
			if err != nil {
				t.Errorf("Block(%d) = %v", h.Height, err)
				return
			}
			if b.Header != *h || uint64(len(b.Records)) != h.Records {
				t.Errorf("Block(%d) has %d of %d records", h.Height, len(b.Records), h.Records)
				return
			}
			// Everything the head's block added is readable.
			if h.LogSize > 0 {
				last := int64(h.LogSize) - 1
				e, err := s.Record(ctx, last)
				if err != nil {
					t.Errorf("Record(%d) under head %d = %v", last, h.Height, err)
					return
				}
				if _, err := s.Lookup(ctx, e.Record.Key); err != nil {
					t.Errorf("Lookup(%s) = %v", e.Record.Key, err)
					return
				}
			}
			root, err := ledger.LogRoot(hr, int64(h.LogSize))
			if err != nil || root != h.LogRoot {
				t.Errorf("LogRoot(%d) = %v, %v; want %v", h.LogSize, root, err, h.LogRoot)
				return
			}
			if hs, err := s.Headers(ctx, 0, int(h.Height)+1); err != nil || len(hs) != int(h.Height)+1 {
				t.Errorf("Headers(0, %d) = %d headers, %v", h.Height+1, len(hs), err)
				return
			}
		}
	}
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go reader()
	}
	for i := 0; i < 20; i++ {
		b, stored := c.Unsealed(Records(rng, 100+i*5, 5))
		b.Certificate = c.Certify(b, nil)
		if err := s.Append(ctx, b, stored); err != nil {
			t.Errorf("Append(height %d) = %v", b.Header.Height, err)
			break
		}
		c.Commit(b, stored)
	}
	close(stop)
	wg.Wait()
	rep, err := ledger.Audit(ctx, s, c.Genesis, nil, nil)
	if err != nil || rep.Blocks != uint64(len(c.Blocks())) {
		t.Errorf("Audit = %+v, %v; want %d blocks", rep, err, len(c.Blocks()))
	}
}

// testAppendNext drives the store through ledger's own validation path,
// as a node does.
func testAppendNext(t *testing.T, s ledger.Store) {
	defer s.Close()
	ctx := context.Background()
	c := NewChain(t, 4)
	if err := ledger.InitStore(ctx, s, c.Genesis); err != nil {
		t.Fatalf("InitStore = %v", err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for i := 0; i < 5; i++ {
		b := c.Next(Records(rng, 10*i, i))
		if err := ledger.AppendNext(ctx, s, b, nil); err != nil {
			t.Fatalf("AppendNext(height %d) = %v", b.Header.Height, err)
		}
	}
	dup := c.Blocks()[2].Records[0]
	b, _ := c.Unsealed([]ledger.Record{dup})
	if err := ledger.AppendNext(ctx, s, b, nil); !errors.Is(err, ledger.ErrConflict) || !errors.Is(err, ledger.ErrInvalidBlock) {
		t.Errorf("AppendNext(committed key) = %v; want ErrInvalidBlock and ErrConflict", err)
	}
	checkUnchanged(t, s, c, "AppendNext(committed key)")
	if _, err := ledger.Audit(ctx, s, c.Genesis, nil, nil); err != nil {
		t.Errorf("Audit = %v", err)
	}
}

// checkFirstCommitted checks ledger.FirstCommitted on s, whose committed
// key records are all: through s's KeyChecker, and through Lookup.
func checkFirstCommitted(t *testing.T, s ledger.Store, all []ledger.Entry) {
	t.Helper()
	ctx := context.Background()
	var committed []ledger.Key
	for _, e := range all {
		if e.Authority == nil {
			committed = append(committed, e.Record.Key)
		}
	}
	if len(committed) < 2 {
		t.Fatalf("chain has %d key records, want at least 2", len(committed))
	}
	absent := []ledger.Key{
		{Repo: "example.com/nobody/none", Tag: "v1"},
		{Repo: committed[0].Repo, Tag: committed[0].Tag + "x"},
		{Repo: "example.com/q\"uote", Tag: "v1"},
	}
	for _, tc := range []struct {
		keys []ledger.Key
		want int
	}{
		{nil, -1},
		{absent, -1},
		{committed, 0},
		{append(slices.Clone(absent), committed[1], committed[0]), len(absent)},
		{append(append(slices.Clone(absent), committed[len(committed)-1]), absent...), len(absent)},
	} {
		for _, via := range []struct {
			name string
			s    ledger.Store
		}{{"store", s}, {"Lookup", lookupOnly{s}}} {
			got, err := ledger.FirstCommitted(ctx, via.s, tc.keys)
			if err != nil || got != tc.want {
				t.Errorf("FirstCommitted(%s, %v) = %d, %v; want %d", via.name, tc.keys, got, err, tc.want)
			}
		}
	}
}

// lookupOnly hides a Store's KeyChecker, so that FirstCommitted uses Lookup.
type lookupOnly struct{ ledger.Store }
