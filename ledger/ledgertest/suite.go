package ledgertest

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

// TestStore runs the conformance suite for a ledger.Store implementation.
// newStore returns a new, empty store; the suite closes it.
func TestStore(t *testing.T, newStore func(t *testing.T) ledger.Store) {
	ctx := context.Background()
	build := func(t *testing.T, s ledger.Store, blocks, per int) *Chain {
		t.Helper()
		c := NewChain(t, 4)
		rng := rand.New(rand.NewPCG(1, 2))
		if err := s.Append(ctx, c.Head(), nil); err != nil {
			t.Fatalf("Append(genesis) = %v", err)
		}
		for i := 0; i < blocks; i++ {
			b, stored := c.Unsealed(Records(rng, i*per, per))
			b.Certificate = c.Certify(b, nil)
			if err := s.Append(ctx, b, stored); err != nil {
				t.Fatalf("Append(height %d) = %v", b.Header.Height, err)
			}
			if err := c.Store.Append(ctx, b, stored); err != nil {
				t.Fatal(err)
			}
			c.blocks = append(c.blocks, b)
		}
		return c
	}

	t.Run("Empty", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		if _, err := s.Head(ctx); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Head() on empty store = %v, want ErrNotFound", err)
		}
		if _, err := s.Header(ctx, 0); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Header(0) = %v, want ErrNotFound", err)
		}
		if _, err := s.Lookup(ctx, ledger.Key{Repo: "example.com/a", Tag: "v1"}); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Lookup = %v, want ErrNotFound", err)
		}
		c := NewChain(t, 1)
		b, _ := c.Unsealed(nil)
		if err := s.Append(ctx, b, nil); !errors.Is(err, ledger.ErrOutOfOrder) {
			t.Errorf("Append(height 1 into empty) = %v, want ErrOutOfOrder", err)
		}
	})

	t.Run("ReadBack", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		c := build(t, s, 6, 7)
		head, err := s.Head(ctx)
		if err != nil || head.Hash() != c.Head().Hash() {
			t.Fatalf("Head() = %v, %v; want height %d", head, err, c.Head().Header.Height)
		}
		for _, want := range c.Blocks() {
			got, err := s.Block(ctx, want.Header.Height)
			if err != nil {
				t.Fatalf("Block(%d) = %v", want.Header.Height, err)
			}
			if string(got.Format()) != string(want.Format()) {
				t.Errorf("Block(%d) differs from what was appended", want.Header.Height)
			}
			h, err := s.Header(ctx, want.Header.Height)
			if err != nil || *h != want.Header {
				t.Errorf("Header(%d) = %v, %v", want.Header.Height, h, err)
			}
		}
		hs, err := s.Headers(ctx, 2, 3)
		if err != nil || len(hs) != 3 || hs[0].Height != 2 || hs[2].Height != 4 {
			t.Errorf("Headers(2, 3) = %d headers, %v", len(hs), err)
		}
		if hs, _ := s.Headers(ctx, 100, 3); len(hs) != 0 {
			t.Errorf("Headers(100, 3) = %d headers, want 0", len(hs))
		}
		for i := int64(0); i < int64(head.LogSize); i++ {
			want, _ := c.Store.Record(ctx, i)
			got, err := s.Record(ctx, i)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Record(%d) = %+v, %v; want %+v", i, got, err, want)
			}
			got, err = s.Lookup(ctx, want.Record.Key)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Lookup(%s) = %+v, %v; want %+v", want.Record.Key, got, err, want)
			}
		}
		if _, err := s.Record(ctx, int64(head.LogSize)); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Record(past end) = %v, want ErrNotFound", err)
		}
		if _, err := s.Block(ctx, head.Height+1); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("Block(past end) = %v, want ErrNotFound", err)
		}
		rs, err := s.Records(ctx, 5, 10)
		if err != nil || len(rs) != 10 || rs[0].Index != 5 || rs[9].Index != 14 {
			t.Errorf("Records(5, 10) = %d entries, %v", len(rs), err)
		}
		// Stored hashes: every one, and proofs built from them verify.
		n := ledger.StoredHashCount(int64(head.LogSize))
		idx := make([]int64, n)
		for i := range idx {
			idx[i] = n - 1 - int64(i)
		}
		got, err := s.ReadHashes(ctx, idx)
		want, _ := c.Store.ReadHashes(ctx, idx)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ReadHashes(all, reversed) = %v", err)
		}
		if _, err := s.ReadHashes(ctx, []int64{n}); err == nil {
			t.Errorf("ReadHashes(past end) = nil error")
		}
		root, err := ledger.LogRoot(ledger.HashReaderOf(ctx, s), int64(head.LogSize))
		if err != nil || root != head.LogRoot {
			t.Errorf("LogRoot over store = %v, %v; want %v", root, err, head.LogRoot)
		}
		p, err := ledger.ProveRecord(ledger.HashReaderOf(ctx, s), int64(head.LogSize), 3)
		e, _ := s.Record(ctx, 3)
		if err != nil || ledger.CheckRecord(p, int64(head.LogSize), head.LogRoot, 3, e.Record.LeafHash()) != nil {
			t.Errorf("inclusion proof from store does not verify: %v", err)
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		c := build(t, s, 2, 3)
		head, _ := s.Head(ctx)
		// Wrong height and wrong prev.
		b, stored := c.Unsealed(Records(rand.New(rand.NewPCG(9, 9)), 1000, 2))
		bad := *b
		bad.Header.Height++
		if err := s.Append(ctx, &bad, stored); !errors.Is(err, ledger.ErrOutOfOrder) {
			t.Errorf("Append(wrong height) = %v, want ErrOutOfOrder", err)
		}
		bad = *b
		bad.Header.Prev[0] ^= 1
		if err := s.Append(ctx, &bad, stored); !errors.Is(err, ledger.ErrOutOfOrder) {
			t.Errorf("Append(wrong prev) = %v, want ErrOutOfOrder", err)
		}
		if err := s.Append(ctx, b, stored[1:]); err == nil {
			t.Errorf("Append(too few hashes) = nil")
		}
		// A key committed before: refused whole.
		old, _ := s.Record(ctx, 1)
		dup, dstored := c.Unsealed([]ledger.Record{RandomRecord(rand.New(rand.NewPCG(5, 5)), 5000), old.Record})
		if err := s.Append(ctx, dup, dstored); !errors.Is(err, ledger.ErrConflict) {
			t.Errorf("Append(committed key) = %v, want ErrConflict", err)
		}
		after, _ := s.Head(ctx)
		if after.Hash() != head.Hash() {
			t.Errorf("refused appends changed the head to %d", after.Height)
		}
		if _, err := s.Lookup(ctx, dup.Records[0].Key); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("refused block's first record is readable: %v", err)
		}
		if _, err := s.Record(ctx, int64(head.LogSize)); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("refused block left record %d: %v", head.LogSize, err)
		}
		// The valid block still appends afterwards.
		if err := s.Append(ctx, b, stored); err != nil {
			t.Errorf("Append(valid after refusals) = %v", err)
		}
	})

	t.Run("Copies", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		build(t, s, 1, 2)
		b, _ := s.Block(ctx, 1)
		b.Records[0].Commit = "x"
		b.Header.Records = 99
		b2, _ := s.Block(ctx, 1)
		if b2.Records[0].Commit == "x" || b2.Header.Records == 99 {
			t.Errorf("Block returned shared state")
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		c := build(t, s, 1, 1)
		rng := rand.New(rand.NewPCG(3, 4))
		stop := make(chan struct{})
		stopped := func() bool {
			select {
			case <-stop:
				return true
			default:
				return false
			}
		}
		var wg sync.WaitGroup
		for r := 0; r < 4; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
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
					if uint64(len(b.Records)) != b.Header.Records {
						t.Errorf("Block(%d) has %d of %d records", h.Height, len(b.Records), b.Header.Records)
						return
					}
					if _, err := ledger.LogRoot(ledger.HashReaderOf(ctx, s), int64(h.LogSize)); err != nil {
						t.Errorf("LogRoot(%d) = %v", h.LogSize, err)
						return
					}
				}
			}()
		}
		for i := 0; i < 20; i++ {
			b, stored := c.Unsealed(Records(rng, 100+i*5, 5))
			b.Certificate = c.Certify(b, nil)
			if err := s.Append(context.Background(), b, stored); err != nil {
				t.Fatalf("Append = %v", err)
			}
			c.Store.Append(context.Background(), b, stored)
			c.blocks = append(c.blocks, b)
		}
		close(stop)
		wg.Wait()
		rep, err := ledger.Audit(context.Background(), s, c.Genesis, nil, nil)
		if err != nil || rep.Blocks != 22 {
			t.Errorf("Audit = %+v, %v", rep, err)
		}
	})
}
