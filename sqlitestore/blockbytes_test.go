package sqlitestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// sameBlockBytes checks that BlockBytes of every height up to the head is
// Block's Format and the block appended, and that of the height after it
// is ErrNotFound.
func sameBlockBytes(t *testing.T, s *Store, appended []*ledger.Block) {
	t.Helper()
	ctx := context.Background()
	for _, want := range appended {
		height := want.Header.Height
		got, err := s.BlockBytes(ctx, height)
		if err != nil {
			t.Fatalf("BlockBytes(%d) = %v", height, err)
		}
		b, err := s.Block(ctx, height)
		if err != nil {
			t.Fatalf("Block(%d) = %v", height, err)
		}
		if !bytes.Equal(got, b.Format()) || !bytes.Equal(got, want.Format()) {
			t.Errorf("BlockBytes(%d) =\n%q\nwant Block(%d).Format(), the block appended:\n%q", height, got, height, want.Format())
		}
	}
	next := appended[len(appended)-1].Header.Height + 1
	for _, h := range []uint64{next, math.MaxInt64, math.MaxUint64} {
		if _, err := s.BlockBytes(ctx, h); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("BlockBytes(%d) = %v; want ErrNotFound", h, err)
		}
	}
}

func TestBlockBytes(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	// Records with and without h1; attestations of the block's records and
	// others stored whole (every other block).
	c := buildChain(t, s, 6, 7)
	commit := func(b *ledger.Block, stored []ledger.Hash) {
		t.Helper()
		b.Certificate = c.Certify(b, nil)
		if err := s.Append(ctx, b, stored); err != nil {
			t.Fatalf("Append(height %d) = %v", b.Header.Height, err)
		}
		c.Commit(b, stored)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	c.AddSigner(ledgertest.Signer(4))
	add := c.Change(ledger.AuthorityAdd, ledgertest.Signer(4).Public(), "v4", c.Head().Header.Height+1+ledger.AuthorityDelay)
	commit(c.UnsealedWith(ledgertest.Records(rng, 1000, 3), []ledger.AuthorityChange{add})) // records and a change
	commit(c.Unsealed(nil))                                                                 // empty
	rm := c.Change(ledger.AuthorityRemove, ledgertest.Signer(3).Public(), "", c.Head().Header.Height+1+ledger.AuthorityDelay)
	commit(c.UnsealedWith(nil, []ledger.AuthorityChange{rm})) // a change alone
	b, stored := c.Unsealed(ledgertest.Records(rng, 2000, 4))
	b.Attestations = b.Attestations[:0] // records without attestations
	commit(b, stored)
	sameBlockBytes(t, s, c.Blocks())
	s = reopen(t, s)
	defer s.Close()
	sameBlockBytes(t, s, c.Blocks())
}

func TestBlockBytesPoW(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	g := ledgertest.PoWGenesis()
	if err := ledger.InitStore(ctx, s, g); err != nil {
		t.Fatal(err)
	}
	genesis, err := s.Block(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, _, ha, _ := reorgBranches(t, s, false)
	for i := range a {
		if err := s.Append(ctx, a[i], ha[i]); err != nil {
			t.Fatal(err)
		}
	}
	sameBlockBytes(t, s, append([]*ledger.Block{genesis}, a...))
	// Blocks that entered the main chain by a reorganisation.
	_, b, _, hb := reorgBranches(t, s, true)
	if err := s.Reorg(ctx, 5, b, hb); err != nil {
		t.Fatal(err)
	}
	sameBlockBytes(t, s, append(append([]*ledger.Block{genesis}, a[:5]...), b...))
}

// leafOf returns an entry's stored hashes with its leaf hash set to that
// of data.
func leafOf(hashes, data []byte) []byte {
	leaf := sha256.Sum256(append([]byte{0}, data...))
	return append(leaf[:], hashes[32:]...)
}

func TestBlockBytesCorrupt(t *testing.T) {
	ctx := context.Background()
	good, c := corruptFixture(t) // 24 blocks of 10 records, whole attestations at even heights
	const height = 4             // records 30..39
	change := ledger.AuthorityChange{Chain: c.Genesis.Chain, Op: ledger.AuthorityAdd, Validator: ledgertest.Signer(4).Public(), Name: "v4", Effective: 30}
	set := func(stmt string) func(string) { return sqlEdit(t, stmt) }
	// record changes record idx's bytes (and its leaf hash with fix).
	record := func(idx int64, fix bool, change func([]byte) []byte) func(string) {
		return func(p string) {
			editEntry(t, p, idx, func(data, hashes []byte) ([]byte, []byte) {
				data = change(data)
				if fix {
					hashes = leafOf(hashes, data)
				}
				return data, hashes
			})
		}
	}
	for _, tc := range []struct {
		name string
		edit func(path string)
	}{
		{name: "header", edit: set("UPDATE blocks SET header = header || 'x' WHERE height = 4")},
		{name: "stored hash", edit: set("UPDATE blocks SET hash = zeroblob(32) WHERE height = 4")},
		{name: "first index", edit: set("UPDATE blocks SET first_index = 31 WHERE height = 4")},
		{name: "certificate", edit: set("UPDATE blocks SET cert = substr(cert, 1, 40) WHERE height = 4")},
		{name: "empty certificate", edit: set("UPDATE blocks SET cert = x'' WHERE height = 4")},
		{name: "record of another block", edit: set("UPDATE chunks SET height = 5 WHERE " + chunkOf(35))},
		{name: "cut stored hashes", edit: func(p string) { editHashes(t, p, 35, func([]byte) {}, 16) }},
		{name: "changed record", edit: record(35, false, func(d []byte) []byte { return bytes.Replace(d, []byte("commit "), []byte("commit f"), 1) })},
		{name: "record after authority change", edit: record(35, true, func([]byte) []byte { return change.Format() })},
		{name: "attested record not a record", edit: record(31, true, func([]byte) []byte { return []byte("garbage\n") })},
		{name: "attested record empty", edit: record(31, true, func([]byte) []byte { return []byte{} })},
		{name: "attestations truncated", edit: set("UPDATE blocks SET attestations = substr(attestations, 1, length(attestations) - 1) WHERE height = 4")},
		{name: "attestation tag", edit: set("UPDATE blocks SET attestations = x'07' || attestations WHERE height = 4")},
		{name: "attestation of no record", edit: set("UPDATE blocks SET attestations = x'0063' || substr(attestations, 3) WHERE height = 4")},
		{name: "attestation length", edit: set("UPDATE blocks SET attestations = x'00' WHERE height = 4")},
		{name: "whole attestation", edit: set("UPDATE blocks SET attestations = attestations || x'0105' || 'hello' WHERE height = 4")},
		{name: "whole attestation too long", edit: set("UPDATE blocks SET attestations = attestations || x'0160' || 'hello' WHERE height = 4")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ledger.db")
			if err := os.WriteFile(p, good, 0o644); err != nil {
				t.Fatal(err)
			}
			tc.edit(p)
			s, err := Open(ctx, p)
			if err != nil {
				t.Fatalf("Open = %v; want it to open (only the tail is checked)", err)
			}
			defer s.Close()
			data, err := s.BlockBytes(ctx, height)
			if !errors.Is(err, ledger.ErrCorrupt) {
				t.Fatalf("BlockBytes(%d) = %d bytes, %v; want ErrCorrupt", height, len(data), err)
			}
			if _, berr := s.Block(ctx, height); berr == nil {
				t.Errorf("Block(%d) = nil error where BlockBytes = %v", height, err)
			}
			t.Logf("BlockBytes = %v", err)
			// The blocks around it are served.
			for _, h := range []uint64{height - 1, height + 1} {
				if got, err := s.BlockBytes(ctx, h); err != nil || !bytes.Equal(got, c.Blocks()[h].Format()) {
					t.Errorf("BlockBytes(%d) = %v; want block %d", h, err, h)
				}
			}
		})
	}
}

// BenchmarkBlockBytes reads a block of 10,000 records as the sync
// protocol serves it: with BlockBytes, and with Block then Format (the
// baseline, in the same run); the records without attestations (as in
// the node's NetworkSync benchmark) and with two each.
func BenchmarkBlockBytes(b *testing.B) {
	ctx := context.Background()
	for _, attest := range []int{0, 2} {
		s, err := Open(ctx, filepath.Join(b.TempDir(), "ledger.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		c := newTestChain(4)
		c.attest = attest
		if _, err := c.appendBlocks(ctx, s, 10_000, 10_000); err != nil {
			b.Fatal(err)
		}
		want, err := s.BlockBytes(ctx, 1)
		if err != nil {
			b.Fatal(err)
		}
		for _, bench := range []struct {
			name string
			read func() ([]byte, error)
		}{
			{"BlockFormat", func() ([]byte, error) {
				blk, err := s.Block(ctx, 1)
				if err != nil {
					return nil, err
				}
				return blk.Format(), nil
			}},
			{"BlockBytes", func() ([]byte, error) { return s.BlockBytes(ctx, 1) }},
		} {
			b.Run(fmt.Sprintf("attest=%d/%s", attest, bench.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(want)))
				for b.Loop() {
					got, err := bench.read()
					if err != nil || len(got) != len(want) {
						b.Fatalf("%d bytes, %v; want %d", len(got), err, len(want))
					}
				}
				b.ReportMetric(10_000*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}
