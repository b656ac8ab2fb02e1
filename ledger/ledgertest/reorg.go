package ledgertest

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

// PoWGenesis returns a pow chain "test" for store tests: difficulty 1,
// records need no attestations.
func PoWGenesis() *ledger.Genesis {
	return &ledger.Genesis{Chain: "test", Time: 1_700_000_000_000, Engine: ledger.EnginePoW, BlockInterval: 1000,
		AttestQuorum: 0, Bits: 1, Retarget: 1000, Confirmations: 6}
}

// NextPoWBlock returns a block with records after the head of view (a
// store or a ledger.Overlay) and the stored log hashes it adds. salt goes
// into the time and nonce, so that siblings differ. The block is not
// mined: stores do not check work, seals do. It checks nothing else
// either, so tests can build refused blocks with it.
func NextPoWBlock(tb testing.TB, view ledger.Store, records []ledger.Record, salt int64) (*ledger.Block, []ledger.Hash) {
	tb.Helper()
	ctx := context.Background()
	parent, err := view.Head(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	leaves := make([]ledger.Hash, len(records))
	for i := range records {
		leaves[i] = records[i].LeafHash()
	}
	stored, root, err := ledger.AppendLog(ledger.HashReaderOf(ctx, view), int64(parent.LogSize), leaves)
	if err != nil {
		tb.Fatal(err)
	}
	h := ledger.Header{Chain: parent.Chain, Height: parent.Height + 1, Prev: parent.Hash(), Time: parent.Time + 1000 + salt,
		Engine: ledger.EnginePoW, Records: uint64(len(records)), LogSize: parent.LogSize + uint64(len(records)), LogRoot: root,
		Bits: 1, Nonce: uint64(salt)}
	return &ledger.Block{Header: h, Records: append([]ledger.Record(nil), records...)}, stored
}

// PoWBranch returns n blocks after the block at height fork of s's main
// chain, block i holding records(i), with their stored log hashes.
func PoWBranch(tb testing.TB, s ledger.Store, fork uint64, n int, records func(i int) []ledger.Record, salt int64) ([]*ledger.Block, [][]ledger.Hash) {
	tb.Helper()
	ctx := context.Background()
	o, err := ledger.NewOverlay(ctx, s, fork)
	if err != nil {
		tb.Fatal(err)
	}
	var hashes [][]ledger.Hash
	for i := 0; i < n; i++ {
		b, stored := NextPoWBlock(tb, o, records(i), salt)
		if err := o.Append(ctx, b, stored); err != nil {
			tb.Fatal(err)
		}
		hashes = append(hashes, stored)
	}
	return o.Blocks(), hashes
}

// recordsFrom returns a records function for PoWBranch: per records a
// block, from key number first on.
func recordsFrom(first, per int) func(i int) []ledger.Record {
	return func(i int) []ledger.Record {
		return Records(rand.New(rand.NewPCG(uint64(first+i*per), 9)), first+i*per, per)
	}
}

// testReorg runs the Reorger rules on s, when s is one.
func testReorg(t *testing.T, st ledger.Store) {
	s, ok := st.(ledger.Reorger)
	if !ok {
		t.Skip("not a ledger.Reorger")
	}
	defer s.Close()
	ctx := context.Background()
	g := PoWGenesis()
	if err := ledger.InitStore(ctx, s, g); err != nil {
		t.Fatal(err)
	}
	main, mainHashes := PoWBranch(t, s, 0, 10, recordsFrom(0, 2), 0)
	for i, b := range main {
		if err := s.Append(ctx, b, mainHashes[i]); err != nil {
			t.Fatalf("Append(%d) = %v", b.Header.Height, err)
		}
	}
	genesis := g.Block()
	chainOf := func(tail ...[]*ledger.Block) []*ledger.Block {
		out := []*ledger.Block{genesis}
		for _, bs := range tail {
			out = append(out, bs...)
		}
		return out
	}
	checkChain(t, s, chainOf(main), "setup")

	// A branch from height 4 of 8 blocks: its first block commits again
	// the keys of the replaced block 5 (keys 8 and 9); the others are new.
	side, _ := PoWBranch(t, s, 4, 8, func(i int) []ledger.Record {
		if i == 0 {
			return recordsFrom(8, 2)(0)
		}
		return recordsFrom(1000, 3)(i)
	}, 7)
	hashes, good, err := ledger.ValidateBranch(ctx, s, 4, side, nil)
	if err != nil || good != len(side) {
		t.Fatalf("ValidateBranch() = %d good, %v", good, err)
	}
	if err := s.Reorg(ctx, 4, side, hashes); err != nil {
		t.Fatalf("Reorg(4, 8 blocks) = %v", err)
	}
	checkChain(t, s, chainOf(main[:4], side), "reorg")
	for _, i := range []int{10, 19} { // keys of replaced blocks not on the new chain
		k := RandomRecord(rand.New(rand.NewPCG(0, 0)), i).Key // keys depend on i only
		if _, err := s.Lookup(ctx, k); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Lookup(key %d of a replaced block) = %v, want ErrNotFound", i, err)
		}
	}
	checkSide(t, s, main[4:], side)

	// And back, with the replaced blocks from the side table.
	var back []*ledger.Block
	for _, b := range main[4:] {
		sb, err := s.SideBlock(ctx, b.Hash())
		if err != nil {
			t.Fatalf("SideBlock(%d) = %v", b.Header.Height, err)
		}
		back = append(back, sb)
	}
	hashes, _, err = ledger.ValidateBranch(ctx, s, 4, back, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reorg(ctx, 4, back, hashes); err != nil {
		t.Fatalf("Reorg back = %v", err)
	}
	checkChain(t, s, chainOf(main), "reorg back")
	checkSide(t, s, side, main[4:])

	t.Run("Refused", func(t *testing.T) {
		before := chainOf(main)
		refuse := func(name string, fork uint64, bs []*ledger.Block, hs [][]ledger.Hash, want error) {
			t.Helper()
			if err := s.Reorg(ctx, fork, bs, hs); !errors.Is(err, want) {
				t.Errorf("%s: Reorg() = %v, want %v", name, err, want)
			}
			checkChain(t, s, before, name)
		}
		one, oneHashes := PoWBranch(t, s, 3, 2, recordsFrom(2000, 1), 3)
		refuse("fork above head", 11, one, oneHashes, ledger.ErrOutOfOrder)
		refuse("wrong fork", 2, one, oneHashes, ledger.ErrOutOfOrder)
		refuse("gap", 3, one[1:], oneHashes[1:], ledger.ErrOutOfOrder)
		refuse("hash count", 3, one, [][]ledger.Hash{oneHashes[0], oneHashes[1][:1]}, ledger.ErrInvalidBlock)
		refuse("hash lists", 3, one, oneHashes[:1], ledger.ErrInvalidBlock)
		// A key committed at or below the fork.
		o, _ := ledger.NewOverlay(ctx, s, 3)
		dup, dupHashes := NextPoWBlock(t, o, recordsFrom(0, 1)(0), 5)
		refuse("key on the kept chain", 3, []*ledger.Block{dup}, [][]ledger.Hash{dupHashes}, ledger.ErrConflict)
		// A key twice on the new branch.
		b1, h1 := NextPoWBlock(t, o, recordsFrom(3000, 1)(0), 5)
		if err := o.Append(ctx, b1, h1); err != nil {
			t.Fatal(err)
		}
		b2, h2 := NextPoWBlock(t, o, recordsFrom(3000, 1)(0), 5)
		refuse("key twice on the branch", 3, []*ledger.Block{b1, b2}, [][]ledger.Hash{h1, h2}, ledger.ErrConflict)
	})

	t.Run("Deep", func(t *testing.T) {
		head, _ := s.Head(ctx)
		more, moreHashes := PoWBranch(t, s, head.Height, 60, recordsFrom(4000, 1), 0)
		if err := s.Reorg(ctx, head.Height, more, moreHashes); err != nil { // a plain extension
			t.Fatalf("Reorg(extend by 60) = %v", err)
		}
		deep, _ := PoWBranch(t, s, 2, 75, recordsFrom(5000, 2), 11)
		hs, _, err := ledger.ValidateBranch(ctx, s, 2, deep, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Reorg(ctx, 2, deep, hs); err != nil {
			t.Fatalf("Reorg(68 deep) = %v", err)
		}
		checkChain(t, s, chainOf(main[:2], deep), "deep reorg")
	})

	t.Run("PutSide", func(t *testing.T) {
		head, _ := s.Head(ctx)
		b, _ := NextPoWBlock(t, s, recordsFrom(9000, 2)(0), 99)
		for i := 0; i < 2; i++ {
			if err := s.PutSide(ctx, b); err != nil {
				t.Fatalf("PutSide() = %v", err)
			}
		}
		got, err := s.SideBlock(ctx, b.Hash())
		if err != nil || !reflect.DeepEqual(got, b) {
			t.Fatalf("SideBlock() = %+v, %v; want the block stored", got, err)
		}
		mainBlock, _ := s.Block(ctx, head.Height)
		if err := s.PutSide(ctx, mainBlock); err != nil {
			t.Fatalf("PutSide(main-chain block) = %v", err)
		}
		if _, err := s.SideBlock(ctx, mainBlock.Hash()); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("SideBlock(main-chain block) = %v, want ErrNotFound", err)
		}
		bad := *b
		bad.Records = bad.Records[:1]
		if err := s.PutSide(ctx, &bad); !errors.Is(err, ledger.ErrInvalidBlock) {
			t.Fatalf("PutSide(records disagree) = %v, want ErrInvalidBlock", err)
		}
		if _, err := s.SideBlock(ctx, ledger.Hash{1}); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("SideBlock(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("DeleteSide", func(t *testing.T) {
		hs, err := s.SideHeaders(ctx)
		if err != nil || len(hs) < 2 {
			t.Fatalf("SideHeaders() = %d, %v; want some", len(hs), err)
		}
		head, _ := s.Head(ctx)
		gone := []ledger.Hash{hs[0].Hash(), head.Hash(), {2}} // a main-chain block and an unknown hash are ignored
		if err := s.DeleteSide(ctx, gone); err != nil {
			t.Fatalf("DeleteSide() = %v", err)
		}
		if _, err := s.SideBlock(ctx, hs[0].Hash()); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("SideBlock(deleted) = %v, want ErrNotFound", err)
		}
		if _, err := s.SideBlock(ctx, hs[1].Hash()); err != nil {
			t.Fatalf("SideBlock(kept) = %v", err)
		}
		if h, err := s.Header(ctx, head.Height); err != nil || h.Hash() != head.Hash() {
			t.Fatalf("main chain changed: %v", err)
		}
		after, _ := s.SideHeaders(ctx)
		if len(after) != len(hs)-1 {
			t.Fatalf("%d side blocks after deleting one of %d", len(after), len(hs))
		}
	})
}

// checkChain checks that s's main chain is exactly want (genesis first):
// head, headers, blocks, records in log order, lookups, the stored hashes
// (the log root of every block recomputed from them) and proofs.
func checkChain(t *testing.T, s ledger.Store, want []*ledger.Block, what string) {
	t.Helper()
	ctx := context.Background()
	tip := want[len(want)-1].Header
	if head, err := s.Head(ctx); err != nil || head.Hash() != tip.Hash() {
		t.Fatalf("%s: Head() = %v, %v; want height %d %s", what, head, err, tip.Height, tip.Hash())
	}
	var entries []ledger.Entry
	for _, b := range want {
		got, err := s.Block(ctx, b.Header.Height)
		if err != nil || got.Hash() != b.Hash() || len(got.Records) != len(b.Records) || len(b.Records) > 0 && !reflect.DeepEqual(got.Records, b.Records) {
			t.Fatalf("%s: Block(%d) = %v; want %s", what, b.Header.Height, err, b.Hash())
		}
		for i, r := range b.Records {
			entries = append(entries, ledger.Entry{Record: r, Index: int64(b.Header.LogSize-b.Header.Records) + int64(i), Height: b.Header.Height})
		}
		root, err := ledger.LogRoot(ledger.HashReaderOf(ctx, s), int64(b.Header.LogSize))
		if err != nil || root != b.Header.LogRoot {
			t.Fatalf("%s: log root at height %d from stored hashes = %s, %v; want %s", what, b.Header.Height, root, err, b.Header.LogRoot)
		}
	}
	if _, err := s.Header(ctx, tip.Height+1); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("%s: Header(above head) = %v, want ErrNotFound", what, err)
	}
	got, err := s.Records(ctx, 0, len(entries)+10)
	if err != nil || len(got) != len(entries) {
		t.Fatalf("%s: Records() = %d entries, %v; want %d", what, len(got), err, len(entries))
	}
	for i := range entries {
		if !reflect.DeepEqual(got[i], entries[i]) {
			t.Fatalf("%s: record %d = %+v, want %+v", what, i, got[i], entries[i])
		}
		e, err := s.Lookup(ctx, entries[i].Record.Key)
		if err != nil || !reflect.DeepEqual(*e, entries[i]) {
			t.Fatalf("%s: Lookup(%s) = %+v, %v; want %+v", what, entries[i].Record.Key, e, err, entries[i])
		}
		proof, err := ledger.ProveRecord(ledger.HashReaderOf(ctx, s), int64(tip.LogSize), int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := ledger.CheckRecord(proof, int64(tip.LogSize), tip.LogRoot, int64(i), entries[i].Record.LeafHash()); err != nil {
			t.Fatalf("%s: proof of record %d: %v", what, i, err)
		}
	}
}

// checkSide checks that the blocks in is are side blocks, and those in out
// are not.
func checkSide(t *testing.T, s ledger.Reorger, in, out []*ledger.Block) {
	t.Helper()
	ctx := context.Background()
	hs, err := s.SideHeaders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[ledger.Hash]bool)
	for i := range hs {
		have[hs[i].Hash()] = true
		if i > 0 && hs[i].Height < hs[i-1].Height {
			t.Fatalf("SideHeaders() not in height order")
		}
	}
	for _, b := range in {
		got, err := s.SideBlock(ctx, b.Hash())
		if err != nil || !reflect.DeepEqual(got, b) || !have[b.Hash()] {
			t.Fatalf("side block %d %s: %v, listed %v", b.Header.Height, b.Hash(), err, have[b.Hash()])
		}
	}
	for _, b := range out {
		if _, err := s.SideBlock(ctx, b.Hash()); !errors.Is(err, ledger.ErrNotFound) || have[b.Hash()] {
			t.Fatalf("main-chain block %d is a side block too: %v", b.Header.Height, err)
		}
	}
}
