package sqlitestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

// plainStore hides ScanBlocks, so that Audit reads block by block.
type plainStore struct{ ledger.Store }

// scanFixture is a store of 12,000 records in blocks of 50 (blocks 1 to
// 240; record i is in block 1+i/50): more than one ScanBlocks batch, the
// first ending at block 164, and Open checks blocks 225 to 240 and reads
// the key index's tail, records 11,000 on.
func scanFixture(t *testing.T) (string, *testChain) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	s, err := Open(context.Background(), path, withKeyMerge(1000))
	if err != nil {
		t.Fatal(err)
	}
	c := newTestChain(1)
	if _, err := c.appendBlocks(context.Background(), s, 12000, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, c
}

func TestScanBlocksAudit(t *testing.T) {
	ctx := context.Background()
	path, c := scanFixture(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// audit audits the store at path through ScanBlocks and block by
	// block, with the seal checked, and through ScanBlocks without it
	// (which reads no attestations).
	audit := func(t *testing.T, path string) (scan, plain, noSeal *ledger.AuditReport, scanErr, plainErr, noSealErr error) {
		t.Helper()
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		scan, scanErr = ledger.Audit(ctx, s, c.gen, testSeal{c}, nil)
		plain, plainErr = ledger.Audit(ctx, plainStore{s}, c.gen, testSeal{c}, nil)
		noSeal, noSealErr = ledger.Audit(ctx, s, c.gen, nil, nil)
		return
	}

	t.Run("good", func(t *testing.T) {
		scan, plain, noSeal, scanErr, plainErr, noSealErr := audit(t, path)
		if scanErr != nil || plainErr != nil || noSealErr != nil {
			t.Fatalf("Audit = %v (scan), %v (block by block), %v (no seal)", scanErr, plainErr, noSealErr)
		}
		if *scan != *plain || *noSeal != *plain || scan.Records != 12000 || scan.Blocks != 241 {
			t.Fatalf("Audit reports %+v (scan), %+v (block by block), %+v (no seal)", scan, plain, noSeal)
		}
	})

	// ScanBlocks gives each block as Block reads it, with its records'
	// leaf hashes and its stored hashes, though it reuses its batches'
	// memory.
	t.Run("blocks", func(t *testing.T) {
		// Batches of about 500 records: 25 of them, more than ScanBlocks
		// has buffers.
		s, err := Open(ctx, path, withScanBatch(500))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var next uint64
		var attestations bool
		scan := func(b *ledger.Block, leaves, hashes []ledger.Hash) error {
			want, err := s.Block(ctx, next)
			if err != nil {
				return err
			}
			if !attestations {
				want.Attestations = nil
			}
			if !reflect.DeepEqual(b, want) {
				t.Fatalf("ScanBlocks gave block %d as %+v; Block reads %+v", next, b, want)
			}
			if len(leaves) != len(b.Records) {
				t.Fatalf("block %d: %d leaf hashes for %d records", next, len(leaves), len(b.Records))
			}
			for i := range b.Records {
				if leaves[i] != b.Records[i].LeafHash() {
					t.Fatalf("block %d: leaf hash %d is %s, want %s", next, i, leaves[i], b.Records[i].LeafHash())
				}
			}
			end := int64(b.Header.LogSize)
			var idx []int64
			for i := ledger.StoredHashCount(end - int64(b.Header.Records)); i < ledger.StoredHashCount(end); i++ {
				idx = append(idx, i)
			}
			if want, err := s.ReadHashes(ctx, idx); err != nil || !slices.Equal(hashes, want) {
				t.Fatalf("block %d: stored hashes %v; ReadHashes gives %v, %v", next, hashes, want, err)
			}
			next++
			return nil
		}
		for _, attestations = range []bool{true, false} {
			next = 0
			if err := s.ScanBlocks(ctx, 0, 240, attestations, scan); err != nil || next != 241 {
				t.Fatalf("ScanBlocks(attestations %v) = %v after %d blocks; want nil after 241", attestations, err, next)
			}
		}
	})

	// Damage past the first batch is found at the same height both ways.
	for _, tc := range []struct {
		name   string
		edit   func(path string)
		height uint64
	}{
		{"changed record", func(p string) { changeCommit(t, p, 8550) }, 172},
		{"record of another key", func(p string) {
			var rec []byte
			editEntry(t, p, 10, func(data, hs []byte) ([]byte, []byte) { rec = data; return data, hs })
			editEntry(t, p, 8650, func(_, hs []byte) ([]byte, []byte) { return rec, hs })
		}, 174},
		{"moved entries", sqlEdit(t, "UPDATE chunks SET first = -1 WHERE "+chunkOf(8750)), 176},
		{"entries in the wrong block", sqlEdit(t, "UPDATE chunks SET height = 3 WHERE "+chunkOf(8850)), 178},
		{"cut stored hashes", func(p string) { editHashes(t, p, 8951, func([]byte) {}, 32) }, 180},
		{"zeroed stored hashes", func(p string) { editHashes(t, p, 9051, func(hs []byte) { clear(hs) }, 0) }, 182},
		{"flipped header", sqlEdit(t, "UPDATE blocks SET header = replace(header, 'time ', 'time 1') WHERE height = 184"), 184},
		{"damaged attestations", sqlEdit(t, "UPDATE blocks SET attestations = substr(attestations, 1, 50) WHERE height = 186"), 186},
		// The first entry made an attestation of record 127, of 50.
		{"attestation of a record past the block's", sqlEdit(t, "UPDATE blocks SET attestations = X'007f' || substr(attestations, 3) WHERE height = 188"), 188},
		{"zeroed stored hashes in the first batch", func(p string) { editHashes(t, p, 5051, func(hs []byte) { clear(hs) }, 0) }, 102},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ledger.db")
			if err := os.WriteFile(p, good, 0o644); err != nil {
				t.Fatal(err)
			}
			tc.edit(p)
			_, _, _, scanErr, plainErr, noSealErr := audit(t, p)
			for _, err := range []error{scanErr, plainErr, noSealErr} {
				var ae *ledger.AuditError
				if !errors.As(err, &ae) || ae.Height != tc.height || !errors.Is(err, ledger.ErrCorrupt) {
					t.Fatalf("Audit = %v (scan), %v (block by block), %v (no seal); want AuditErrors at height %d", scanErr, plainErr, noSealErr, tc.height)
				}
			}
			t.Logf("Audit = %v", scanErr)
		})
	}

	t.Run("stop", func(t *testing.T) {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stop := errors.New("stop")
		var last uint64
		err = s.ScanBlocks(ctx, 10, 240, false, func(b *ledger.Block, _, hashes []ledger.Hash) error {
			if b.Header.Height != last+1 && last != 0 || int64(len(hashes)) != ledger.StoredHashCount(int64(b.Header.LogSize))-ledger.StoredHashCount(int64(b.Header.LogSize-b.Header.Records)) {
				t.Errorf("block %d after %d with %d hashes", b.Header.Height, last, len(hashes))
			}
			last = b.Header.Height
			if last == 50 {
				return stop
			}
			return nil
		})
		if err != stop || last != 50 {
			t.Fatalf("ScanBlocks = %v after block %d; want fn's error after block 50", err, last)
		}
		cctx, cancel := context.WithCancel(ctx)
		err = s.ScanBlocks(cctx, 0, 240, false, func(b *ledger.Block, _, _ []ledger.Hash) error {
			if b.Header.Height == 5 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ScanBlocks after cancel = %v", err)
		}
		if err := s.ScanBlocks(ctx, 241, 245, false, func(*ledger.Block, []ledger.Hash, []ledger.Hash) error { return nil }); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("ScanBlocks past the head = %v; want ErrNotFound", err)
		}
	})
}
