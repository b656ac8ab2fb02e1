package sqlitestore

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

func TestConformance(t *testing.T) {
	ledgertest.TestStore(t, func(t *testing.T) ledger.Store {
		return openTemp(t)
	})
}

// openTemp opens a new store in t's temporary directory.
func openTemp(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"), opts...)
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	return s
}

func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	s2, err := Open(context.Background(), s.Path())
	if err != nil {
		t.Fatalf("Open(%s) again = %v", s.Path(), err)
	}
	return s2
}

// buildChain appends to s a 4-validator ledgertest chain of blocks blocks
// of per records (2 attestations each), plus attestations stored whole:
// one by a non-validator on another chain, one of another hash for a key of
// the block. It returns the chain.
func buildChain(t *testing.T, s ledger.Store, blocks, per int) *ledgertest.Chain {
	t.Helper()
	ctx := context.Background()
	c := ledgertest.NewChain(t, 4)
	if err := ledger.InitStore(ctx, s, c.Genesis); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for i := 0; i < blocks; i++ {
		b, stored := c.Unsealed(ledgertest.Records(rng, i*per, per))
		if per > 0 && i%2 == 1 {
			other := b.Records[0]
			other.Tree = b.Records[per-1].Tree
			b.Attestations = append(b.Attestations,
				ledger.Attest(ledgertest.Signer(99), "elsewhere", b.Records[0]),
				ledger.Attest(c.Signers[0], b.Header.Chain, other))
		}
		b.Certificate = c.Certify(b, nil)
		if err := s.Append(ctx, b, stored); err != nil {
			t.Fatalf("Append(height %d) = %v", b.Header.Height, err)
		}
		c.Commit(b, stored)
	}
	return c
}

// sameChain checks that s holds exactly c's blocks and records.
func sameChain(t *testing.T, s ledger.Store, c *ledgertest.Chain) {
	t.Helper()
	ctx := context.Background()
	head, err := s.Head(ctx)
	if err != nil || *head != c.Head().Header {
		t.Fatalf("Head() = %+v, %v; want height %d", head, err, c.Head().Header.Height)
	}
	for _, want := range c.Blocks() {
		got, err := s.Block(ctx, want.Header.Height)
		if err != nil {
			t.Fatalf("Block(%d) = %v", want.Header.Height, err)
		}
		if !bytes.Equal(got.Format(), want.Format()) || !reflect.DeepEqual(got.Attestations, want.Attestations) {
			t.Errorf("Block(%d) differs from the block appended", want.Header.Height)
		}
		for _, r := range want.Records {
			if e, err := s.Lookup(ctx, r.Key); err != nil || e.Record != r || e.Height != want.Header.Height {
				t.Errorf("Lookup(%s) = %+v, %v", r.Key, e, err)
			}
		}
	}
	n := ledger.StoredHashCount(int64(head.LogSize))
	idx := make([]int64, n)
	for i := range idx {
		idx[i] = int64(i)
	}
	got, err := s.ReadHashes(ctx, idx)
	want, _ := c.Store.ReadHashes(ctx, idx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ReadHashes(all %d) = %v; differ from the chain's", n, err)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	c := buildChain(t, s, 9, 13)
	now := time.UnixMilli(1_700_000_000_123)
	if err := s.PutPending(ctx, "a", []byte("pending a")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState(ctx, "sign", []byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEvidence(ctx, "vote", []byte("two votes"), now); err != nil {
		t.Fatal(err)
	}
	sameChain(t, s, c)
	s = reopen(t, s)
	defer s.Close()
	sameChain(t, s, c)
	if rep, err := ledger.Audit(ctx, s, c.Genesis, nil, nil); err != nil || rep.Blocks != 10 || rep.Records != 9*13 {
		t.Errorf("Audit after reopen = %+v, %v", rep, err)
	}
	if p, err := s.LoadPending(ctx); err != nil || len(p) != 1 || p[0].ID != "a" || string(p[0].Data) != "pending a" {
		t.Errorf("LoadPending after reopen = %+v, %v", p, err)
	}
	if v, err := s.GetState(ctx, "sign"); err != nil || string(v) != "state" {
		t.Errorf("GetState(sign) after reopen = %q, %v", v, err)
	}
	if ev, err := s.Evidence(ctx, 10); err != nil || len(ev) != 1 || !ev[0].Added.Equal(now) {
		t.Errorf("Evidence after reopen = %+v, %v", ev, err)
	}
	// The chain goes on after a reopen.
	b := c.Next(ledgertest.Records(rand.New(rand.NewPCG(5, 5)), 5000, 3))
	if err := ledger.AppendNext(ctx, s, b, nil); err != nil {
		t.Fatalf("AppendNext after reopen = %v", err)
	}
	sameChain(t, s, c)
}

func TestAppendRefused(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	c := buildChain(t, s, 3, 4)
	s.PutPending(ctx, "p", []byte("x"))
	rng := rand.New(rand.NewPCG(6, 6))
	good, stored := c.Unsealed(ledgertest.Records(rng, 1000, 3))
	good.Certificate = c.Certify(good, nil)
	old := c.Blocks()[2].Records[1]

	withRecords := func(rs ...ledger.Record) (*ledger.Block, []ledger.Hash) {
		b, st := c.Unsealed(rs)
		b.Certificate = c.Certify(b, nil)
		return b, st
	}
	fresh := ledgertest.RandomRecord(rng, 2000)
	dupOld, dupOldStored := withRecords(fresh, old)
	dupIn, dupInStored := withRecords(fresh, ledgertest.RandomRecord(rng, 2001), fresh)
	high := *good
	high.Header.Height += 2
	badPrev := *good
	badPrev.Header.Prev[5] ^= 1
	badCount := *good
	badCount.Records = good.Records[:2]

	for _, tc := range []struct {
		name   string
		b      *ledger.Block
		hashes []ledger.Hash
		want   error
	}{
		{"height", &high, stored, ledger.ErrOutOfOrder},
		{"prev", &badPrev, stored, ledger.ErrOutOfOrder},
		{"genesis again", c.Blocks()[0], nil, ledger.ErrOutOfOrder},
		{"too few hashes", good, stored[1:], ledger.ErrInvalidBlock},
		{"too many hashes", good, append(append([]ledger.Hash(nil), stored...), ledger.Hash{}), ledger.ErrInvalidBlock},
		{"record count", &badCount, stored, ledger.ErrInvalidBlock},
		{"committed key", dupOld, dupOldStored, ledger.ErrConflict},
		{"key twice in block", dupIn, dupInStored, ledger.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AppendWithPending(ctx, tc.b, tc.hashes, []string{"p"})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Append = %v; want %v", err, tc.want)
			}
			// Nothing written: the chain, the key index and the journal.
			sameChain(t, s, c)
			if _, err := s.Lookup(ctx, fresh.Key); !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("refused block's record is readable: %v", err)
			}
			if p, _ := s.LoadPending(ctx); len(p) != 1 {
				t.Errorf("refused append changed the pending journal: %+v", p)
			}
		})
	}
	if err := s.AppendWithPending(ctx, good, stored, []string{"p", "absent"}); err != nil {
		t.Fatalf("Append(good block after refusals) = %v", err)
	}
	c.Commit(good, stored)
	sameChain(t, s, c)
	if p, _ := s.LoadPending(ctx); len(p) != 0 {
		t.Errorf("AppendWithPending left pending %+v", p)
	}
}

func TestCanceledAppend(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	c := buildChain(t, s, 1, 2)
	b, stored := c.Unsealed(ledgertest.Records(rand.New(rand.NewPCG(7, 7)), 100, 5))
	b.Certificate = c.Certify(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Append(ctx, b, stored); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append(canceled) = %v; want context.Canceled", err)
	}
	sameChain(t, s, c)
	if err := s.Append(context.Background(), b, stored); err != nil {
		t.Fatalf("Append after a canceled one = %v", err)
	}
}

func TestPending(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	if p, err := s.LoadPending(ctx); err != nil || len(p) != 0 {
		t.Fatalf("LoadPending(empty) = %+v, %v", p, err)
	}
	for _, id := range []string{"c", "a", "b", "d"} {
		if err := s.PutPending(ctx, id, []byte("v1 "+id)); err != nil {
			t.Fatalf("PutPending(%s) = %v", id, err)
		}
	}
	if err := s.PutPending(ctx, "a", []byte("v2 a")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPending(ctx, "e", nil); err != nil {
		t.Fatalf("PutPending(nil data) = %v", err)
	}
	if err := s.DeletePending(ctx, "b", "zz"); err != nil {
		t.Fatalf("DeletePending = %v", err)
	}
	if err := s.DeletePending(ctx); err != nil {
		t.Fatalf("DeletePending() = %v", err)
	}
	want := []PendingItem{{"c", []byte("v1 c")}, {"a", []byte("v2 a")}, {"d", []byte("v1 d")}, {"e", []byte{}}}
	if got, err := s.LoadPending(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LoadPending = %q, %v; want %q", got, err, want)
	}
	// A deleted id put again goes to the end.
	s.PutPending(ctx, "b", []byte("v3 b"))
	s = reopen(t, s)
	defer s.Close()
	want = append(want, PendingItem{"b", []byte("v3 b")})
	if got, err := s.LoadPending(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("LoadPending after reopen = %q, %v; want %q", got, err, want)
	}

	// Items of another kind under ids with a prefix, read back alone.
	for _, id := range []string{"kind 2", "kind 1", "kind!", "kind", "kinc 9", "kind\xff"} {
		s.PutPending(ctx, id, []byte(id))
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"kind ", []string{"kind 2", "kind 1"}},
		{"kind", []string{"kind 2", "kind 1", "kind!", "kind", "kind\xff"}},
		{"a", []string{"a"}},
		{"x", nil},
	} {
		got, err := s.LoadPendingPrefix(ctx, c.prefix)
		var ids []string
		for _, it := range got {
			ids = append(ids, it.ID)
		}
		if err != nil || !reflect.DeepEqual(ids, c.want) {
			t.Errorf("LoadPendingPrefix(%q) = %q, %v; want %q", c.prefix, ids, err, c.want)
		}
	}
	for _, bad := range []string{"", "a\xff"} {
		if _, err := s.LoadPendingPrefix(ctx, bad); err == nil {
			t.Errorf("LoadPendingPrefix(%q) = nil error", bad)
		}
	}
}

func TestState(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	if v, err := s.GetState(ctx, "x"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("GetState(absent) = %q, %v; want ErrNotFound", v, err)
	}
	for _, v := range []string{"one", "two", ""} {
		if err := s.PutState(ctx, "x", []byte(v)); err != nil {
			t.Fatalf("PutState(%q) = %v", v, err)
		}
		if got, err := s.GetState(ctx, "x"); err != nil || string(got) != v || got == nil {
			t.Errorf("GetState after PutState(%q) = %q, %v", v, got, err)
		}
	}
	s.PutState(ctx, "y", []byte("why"))
	s = reopen(t, s)
	defer s.Close()
	if got, err := s.GetState(ctx, "y"); err != nil || string(got) != "why" {
		t.Errorf("GetState(y) after reopen = %q, %v", got, err)
	}
}

func TestEvidence(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	if ev, err := s.Evidence(ctx, 10); err != nil || len(ev) != 0 {
		t.Fatalf("Evidence(empty) = %+v, %v", ev, err)
	}
	t0 := time.UnixMilli(1_700_000_000_000)
	add := []struct {
		kind, data string
	}{{"vote", "a"}, {"vote", "b"}, {"vote", "a"}, {"attestation", "a"}, {"vote", "b"}, {"v", "otea"}}
	for i, e := range add {
		if err := s.AddEvidence(ctx, e.kind, []byte(e.data), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("AddEvidence(%s, %s) = %v", e.kind, e.data, err)
		}
	}
	ev, err := s.Evidence(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ev {
		got = append(got, e.Kind+"/"+string(e.Data)+"@"+e.Added.Sub(t0).String())
	}
	want := []string{"v/otea@5s", "attestation/a@3s", "vote/b@1s", "vote/a@0s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Evidence(all) = %q; want %q (newest first, duplicates once, at their first time)", got, want)
	}
	if ev, _ := s.Evidence(ctx, 2); len(ev) != 2 || ev[0].Kind != "v" {
		t.Errorf("Evidence(2) = %+v", ev)
	}
}

// TestConcurrentUse runs readers (lookups, paging, proofs checked against
// the head they read) and journal writers beside a writer appending blocks.
// Run it with -race.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	c := newTestChain(4)
	if _, err := c.appendBlocks(ctx, s, 50, 10); err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		stop = make(chan struct{})
	)
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	for r := 0; r < 3; r++ {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			hr := ledger.HashReaderOf(ctx, s)
			for running() {
				head, err := s.Head(ctx)
				if err != nil {
					t.Errorf("Head = %v", err)
					return
				}
				size := int64(head.LogSize)
				i := rng.Int64N(size)
				want := testRecord(int(i))
				e, err := s.Lookup(ctx, want.Key)
				if err != nil || e.Record != want || e.Index != i {
					t.Errorf("Lookup(record %d) = %+v, %v", i, e, err)
					return
				}
				p, err := ledger.ProveRecord(hr, size, i)
				if err == nil {
					err = ledger.CheckRecord(p, size, head.LogRoot, i, want.LeafHash())
				}
				if err != nil {
					t.Errorf("inclusion proof of %d in %d: %v", i, size, err)
					return
				}
				old, err := s.Header(ctx, rng.Uint64N(head.Height+1))
				if err == nil {
					var q []ledger.Hash
					if q, err = ledger.ProveTree(hr, size, int64(old.LogSize)); err == nil {
						err = ledger.CheckTree(q, size, head.LogRoot, int64(old.LogSize), old.LogRoot)
					}
				}
				if err != nil {
					t.Errorf("consistency proof to %d: %v", size, err)
					return
				}
				es, err := s.Records(ctx, i, 50)
				if err != nil || len(es) == 0 || es[0].Index != i {
					t.Errorf("Records(%d, 50) = %d, %v", i, len(es), err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for n := 0; running(); n++ {
			id := string(rune('a' + n%26))
			if err := s.PutPending(ctx, id, []byte{byte(n)}); err != nil {
				t.Errorf("PutPending = %v", err)
				return
			}
			if n%3 == 0 {
				s.DeletePending(ctx, id)
			}
			s.PutState(ctx, "n", []byte{byte(n)})
		}
	})
	head, err := c.appendBlocks(ctx, s, 600, 25)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("appending = %v", err)
	}
	if rep, err := ledger.Audit(ctx, s, c.gen, testSeal{c}, nil); err != nil || rep.Head != *head {
		t.Errorf("Audit = %+v, %v", rep, err)
	}
}

func TestOpenOptions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
		opts []Option
	}{
		{"empty path", "", nil},
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "x.db"), nil},
		{"no readers", filepath.Join(dir, "a.db"), []Option{WithReaders(0)}},
		{"unknown check", filepath.Join(dir, "b.db"), []Option{WithIntegrityCheck(IntegrityCheck(9))}},
	} {
		if s, err := Open(ctx, tc.path, tc.opts...); err == nil {
			s.Close()
			t.Errorf("Open(%s) = nil error", tc.name)
		}
	}
	for _, c := range []IntegrityCheck{CheckAuto, CheckQuick, CheckFull} {
		s := openTemp(t, WithIntegrityCheck(c), WithReaders(1))
		buildChain(t, s, 2, 3)
		s.Close()
		s2, err := Open(ctx, s.Path(), WithIntegrityCheck(c))
		if err != nil {
			t.Errorf("Open with check %d = %v", c, err)
			continue
		}
		s2.Close()
	}
	// A path with URI syntax in it is still a path.
	odd := filepath.Join(dir, "a?b#c%20d.db")
	s, err := Open(ctx, odd)
	if err != nil {
		t.Fatalf("Open(%q) = %v", odd, err)
	}
	s.Close()
	if _, err := os.Stat(odd); err != nil {
		t.Errorf("Open(%q) made another file: %v", odd, err)
	}
}

func TestAttestationEncoding(t *testing.T) {
	c := ledgertest.NewChain(t, 4)
	rs := ledgertest.Records(rand.New(rand.NewPCG(1, 1)), 0, 3)
	b, _ := c.Unsealed(rs)
	other := rs[1]
	other.Commit = rs[0].Commit
	b.Attestations = append(b.Attestations,
		ledger.Attest(c.Signers[1], "another-chain", rs[2]),
		ledger.Attest(c.Signers[1], b.Header.Chain, other),
		ledger.Attest(c.Signers[2], b.Header.Chain, ledgertest.RandomRecord(rand.New(rand.NewPCG(2, 2)), 9)))
	enc := encodeAttestations(&b.Header, b.Records, b.Attestations)
	got, err := decodeAttestations(enc, &b.Header, b.Records)
	if err != nil || !reflect.DeepEqual(got, b.Attestations) {
		t.Fatalf("decode(encode(attestations)) = %v; differ", err)
	}
	// The records' own attestations take 97 bytes each; the others whole.
	refs := len(b.Attestations) - 3
	whole := 0
	for _, a := range b.Attestations[refs:] {
		whole += 1 + 2 + len(a.Format())
	}
	if len(enc) != refs*(1+1+32+64)+whole {
		t.Errorf("encoding is %d bytes; want %d", len(enc), refs*98+whole)
	}
	for _, bad := range [][]byte{{0x00}, {0x02, 0}, {0x00, 9}, {0x00, 0, 1, 2}, {0x01, 5, 'a'}, {0x01, 1, 'a'}, enc[:len(enc)-1]} {
		if _, err := decodeAttestations(bad, &b.Header, b.Records); err == nil {
			t.Errorf("decode(%x) = nil error", bad)
		}
	}
}

func FuzzDecodeAttestations(f *testing.F) {
	c := ledgertest.NewChain(f, 1)
	rs := ledgertest.Records(rand.New(rand.NewPCG(1, 1)), 0, 2)
	b, _ := c.Unsealed(rs)
	b.Attestations = append(b.Attestations, ledger.Attest(c.Signers[0], "x", rs[1]))
	f.Add(encodeAttestations(&b.Header, b.Records, b.Attestations))
	f.Add([]byte{})
	f.Add([]byte{0x00, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		atts, err := decodeAttestations(data, &b.Header, b.Records)
		if err != nil {
			return
		}
		again, err := decodeAttestations(encodeAttestations(&b.Header, b.Records, atts), &b.Header, b.Records)
		if err != nil || !reflect.DeepEqual(again, atts) {
			t.Fatalf("decode(encode(decode(%x))) = %v; differs", data, err)
		}
	})
}

func TestReadHashesSpread(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	c := newTestChain(1)
	head, err := c.appendBlocks(ctx, s, 2100, 300)
	if err != nil {
		t.Fatal(err)
	}
	var mem memHashes
	for h := uint64(1); h <= head.Height; h++ {
		b, _ := s.Block(ctx, h)
		leaves := make([]ledger.Hash, len(b.Records))
		for i := range b.Records {
			leaves[i] = b.Records[i].LeafHash()
		}
		stored, _, err := ledger.AppendLog(&mem, int64(b.Header.LogSize-b.Header.Records), leaves)
		if err != nil {
			t.Fatal(err)
		}
		mem = append(mem, stored...)
	}
	n := int64(len(mem))
	rng := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int{1, 2, 40, 700, 1500} {
		idx := make([]int64, k)
		for i := range idx {
			idx[i] = rng.Int64N(n)
		}
		idx = append(idx, idx[0]) // a repeat
		got, err := s.ReadHashes(ctx, idx)
		want, _ := mem.ReadHashes(idx)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ReadHashes(%d spread indexes) = %v; differ from the log's", len(idx), err)
		}
		if _, err := s.ReadHashes(ctx, append(idx, n)); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("ReadHashes(%d spread indexes and %d) = %v; want ErrNotFound", len(idx), n, err)
		}
		for _, bad := range []int64{-1, math.MaxInt64, math.MaxInt64 / 3, 1 << 62} {
			if _, err := s.ReadHashes(ctx, append(idx, bad)); !errors.Is(err, ledger.ErrNotFound) {
				t.Errorf("ReadHashes(%d spread indexes and %d) = %v; want ErrNotFound", len(idx), bad, err)
			}
		}
	}
}
