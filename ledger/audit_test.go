package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// rawStore is a read-only ledger.Store over plain slices, which tests
// tamper with freely: it checks nothing.
type rawStore struct {
	blocks []*ledger.Block
	log    memLog
}

func (s *rawStore) Append(context.Context, *ledger.Block, []ledger.Hash) error {
	return errors.New("rawStore: read only")
}

func (s *rawStore) Head(ctx context.Context) (*ledger.Header, error) {
	if len(s.blocks) == 0 {
		return nil, ledger.ErrNotFound
	}
	h := s.blocks[len(s.blocks)-1].Header
	return &h, nil
}

func (s *rawStore) Header(ctx context.Context, height uint64) (*ledger.Header, error) {
	b, err := s.Block(ctx, height)
	if err != nil {
		return nil, err
	}
	return &b.Header, nil
}

func (s *rawStore) Headers(ctx context.Context, from uint64, limit int) ([]ledger.Header, error) {
	var out []ledger.Header
	for h := from; h < uint64(len(s.blocks)) && len(out) < limit; h++ {
		out = append(out, s.blocks[h].Header)
	}
	return out, nil
}

func (s *rawStore) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	if height >= uint64(len(s.blocks)) || s.blocks[height] == nil {
		return nil, fmt.Errorf("block %d: %w", height, ledger.ErrNotFound)
	}
	b := *s.blocks[height]
	b.Records = append([]ledger.Record(nil), b.Records...)
	return &b, nil
}

func (s *rawStore) Record(ctx context.Context, index int64) (*ledger.Entry, error) {
	for _, b := range s.blocks {
		if b == nil {
			continue
		}
		first := int64(b.Header.LogSize) - int64(b.Leaves())
		if index >= first && index < first+int64(len(b.Records)) {
			return &ledger.Entry{Record: b.Records[index-first], Index: index, Height: b.Header.Height}, nil
		}
	}
	return nil, ledger.ErrNotFound
}

func (s *rawStore) Records(ctx context.Context, from int64, limit int) ([]ledger.Entry, error) {
	return nil, nil
}

func (s *rawStore) Lookup(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	return nil, ledger.ErrNotFound
}

func (s *rawStore) Authorities(ctx context.Context) ([]ledger.AuthorityEntry, error) {
	var out []ledger.AuthorityEntry
	for _, b := range s.blocks {
		for i := range b.Authority {
			out = append(out, ledger.AuthorityEntry{Change: b.Authority[i], Index: int64(b.Header.LogSize) - int64(len(b.Authority)-i), Height: b.Header.Height})
		}
	}
	return out, nil
}

func (s *rawStore) ReadHashes(ctx context.Context, indexes []int64) ([]ledger.Hash, error) {
	return s.log.ReadHashes(indexes)
}

func (s *rawStore) Close() error { return nil }

// scanRaw is a rawStore that hands Audit its blocks as a ledger.BlockScanner
// does: each record checked and hashed, with the stored hashes its block
// added.
type scanRaw struct {
	*rawStore
	short uint64 // when not 0, the height whose last leaf hash is left out
}

var _ ledger.BlockScanner = scanRaw{}

func (s scanRaw) ScanBlocks(ctx context.Context, from, to uint64, attestations bool, fn func(b *ledger.Block, leaves, hashes []ledger.Hash) error) error {
	for h := from; h <= to; h++ {
		b, err := s.Block(ctx, h)
		if err != nil {
			return err
		}
		if !attestations {
			b.Attestations = nil
		}
		leaves := make([]ledger.Hash, len(b.Records))
		for i := range b.Records {
			if err := b.Records[i].Check(); err != nil {
				return err
			}
			leaves[i] = b.Records[i].LeafHash()
		}
		var idx []int64
		end := int64(b.Header.LogSize)
		for i := ledger.StoredHashCount(end - int64(b.Leaves())); i < ledger.StoredHashCount(end); i++ {
			idx = append(idx, i)
		}
		hashes, err := s.ReadHashes(ctx, idx)
		if err != nil {
			return err
		}
		if h == s.short && len(leaves) > 0 {
			leaves = leaves[:len(leaves)-1]
		}
		if err := fn(b, leaves, hashes); err != nil {
			return err
		}
	}
	return nil
}

// rawChain builds, without any checks, the chain of g whose block i+1
// holds records[i], certified by signers.
func rawChain(t *testing.T, c *ledgertest.Chain, records [][]ledger.Record) *rawStore {
	t.Helper()
	s := &rawStore{blocks: []*ledger.Block{c.Genesis.Block()}}
	for _, rs := range records {
		parent := s.blocks[len(s.blocks)-1].Header
		leaves := make([]ledger.Hash, len(rs))
		for i := range rs {
			leaves[i] = rs[i].LeafHash()
		}
		s.log.add(t, leaves...)
		h := parent
		h.Height++
		h.Prev = parent.Hash()
		h.Time += 1000
		h.Proposer = c.Vals.Proposer(h.Chain, h.Prev, h.Height, 0)
		h.Records = uint64(len(rs))
		h.LogSize += uint64(len(rs))
		h.LogRoot = s.log.roots[h.LogSize]
		b := &ledger.Block{Header: h, Records: rs}
		b.Certificate = c.Certify(b, nil)
		s.blocks = append(s.blocks, b)
	}
	return s
}

// certSeal checks certificates only.
func certSeal(vals *ledger.ValidatorSet) ledger.SealChecker {
	return sealFunc(func(ctx context.Context, parent *ledger.Header, b *ledger.Block) error {
		if b.Certificate == nil {
			return errors.New("no certificate")
		}
		return b.Certificate.Verify(vals, b.Header.Chain, b.Header.Height, b.Hash())
	})
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	c := ledgertest.NewChain(t, 4)
	rng := rand.New(rand.NewPCG(4, 4))
	// Block h holds (h-1)%4 records: 0, 1, 2, 3, 0, 1, 2, 3.
	var records [][]ledger.Record
	total := 0
	for i := 0; i < 8; i++ {
		rs := ledgertest.Records(rng, total, i%4)
		records = append(records, rs)
		total += len(rs)
	}
	good := func() *rawStore { return rawChain(t, c, records) }

	var progress []uint64
	rep, err := ledger.Audit(ctx, good(), c.Genesis, certSeal(c.Vals), func(h uint64) { progress = append(progress, h) })
	if err != nil {
		t.Fatalf("Audit(good chain) = %v", err)
	}
	var bytes int64
	for _, rs := range records {
		for _, r := range rs {
			bytes += int64(len(r.Format()))
		}
	}
	if rep.Blocks != 9 || rep.Records != int64(total) || rep.Bytes != bytes || rep.Head != good().blocks[8].Header {
		t.Errorf("Audit report = %+v; want 9 blocks, %d records, %d bytes", rep, total, bytes)
	}
	if len(progress) != 9 || progress[8] != 8 {
		t.Errorf("progress called with %v; want 0 to 8", progress)
	}
	// The ledgertest chain itself passes too, with no genesis and no seal.
	for i := 0; i < 3; i++ {
		c.Next(ledgertest.Records(rng, 1000+i*5, 5))
	}
	if _, err := ledger.Audit(ctx, c.Store, nil, nil, nil); err != nil {
		t.Errorf("Audit(ledgertest chain) = %v", err)
	}

	dupKey := records[2][1]
	dupKey.Commit = fmt.Sprintf("%040x", 7)
	for _, tc := range []struct {
		name    string
		height  uint64
		records func(rs [][]ledger.Record) // changes records before the chain is built
		change  func(s *rawStore)          // tampers with the built chain
		genesis *ledger.Genesis
		is      error
	}{
		{name: "changed record", height: 3, change: func(s *rawStore) {
			s.blocks[3].Records[1].Tree = t1("evil")
		}},
		{name: "changed record, header recomputed", height: 3, change: func(s *rawStore) {
			// Re-rooting the header still leaves the stored hashes (and the
			// next block's prev link) disagreeing.
			s.blocks[3].Records[1].Tree = t1("evil")
			var l memLog
			for _, b := range s.blocks[1:4] {
				for _, r := range b.Records {
					l.add(t, r.LeafHash())
				}
			}
			s.blocks[3].Header.LogRoot = l.roots[len(l.leaves)]
		}},
		{name: "removed record", height: 4, change: func(s *rawStore) {
			s.blocks[4].Records = s.blocks[4].Records[:2]
		}},
		{name: "malformed record", height: 2, change: func(s *rawStore) {
			s.blocks[2].Records[0].Commit = "ABC"
		}},
		{name: "changed header link", height: 6, change: func(s *rawStore) { s.blocks[6].Header.Prev[0] ^= 1 }},
		{name: "changed header time", height: 7, change: func(s *rawStore) {
			s.blocks[7].Header.Time = s.blocks[6].Header.Time - 1
		}},
		{name: "changed header log size", height: 4, change: func(s *rawStore) { s.blocks[4].Header.LogSize++ }},
		{name: "changed header log root", height: 4, change: func(s *rawStore) { s.blocks[4].Header.LogRoot[5] ^= 1 }},
		{name: "header height skipped", height: 5, change: func(s *rawStore) { s.blocks[5].Header.Height++ }},
		{name: "wrong stored hash", height: 6, change: func(s *rawStore) {
			// The last stored hash block 6 added.
			s.log.stored[ledger.StoredHashCount(int64(s.blocks[6].Header.LogSize))-1][0] ^= 1
		}},
		{name: "wrong stored leaf hash", height: 2, change: func(s *rawStore) {
			s.log.stored[ledger.StoredHashCount(int64(s.blocks[1].Header.LogSize))][0] ^= 1
		}},
		{name: "missing stored hashes", height: 8, change: func(s *rawStore) {
			s.log.stored = s.log.stored[:ledger.StoredHashCount(int64(s.blocks[8].Header.LogSize))-1]
		}, is: ledger.ErrNotFound},
		{name: "missing block", height: 4, change: func(s *rawStore) { s.blocks[4] = nil }, is: ledger.ErrNotFound},
		{name: "duplicate key", height: 6, records: func(rs [][]ledger.Record) { rs[5][0] = dupKey }},
		{name: "duplicate key in one block", height: 3, records: func(rs [][]ledger.Record) { rs[2][0] = rs[2][1] }},
		// Repeats are looked for at the end; the first failure is still
		// the one reported.
		{name: "duplicate key, then a bad link", height: 6, records: func(rs [][]ledger.Record) { rs[5][0] = dupKey },
			change: func(s *rawStore) { s.blocks[7].Header.Prev[0] ^= 1 }},
		{name: "bad link, then a duplicate key", height: 4, records: func(rs [][]ledger.Record) { rs[5][0] = dupKey },
			change: func(s *rawStore) { s.blocks[4].Header.Prev[0] ^= 1 }},
		{name: "duplicate key in the block that fails", height: 6, records: func(rs [][]ledger.Record) { rs[5][0] = dupKey },
			change: func(s *rawStore) { s.blocks[6].Header.LogRoot[0] ^= 1 }},
		{name: "bad certificate", height: 7, change: func(s *rawStore) { s.blocks[7].Certificate.Sigs[1].Sig[0] ^= 1 }, is: ledger.ErrBadCertificate},
		{name: "other genesis", height: 0, genesis: func() *ledger.Genesis {
			g := *c.Genesis
			g.Time++
			return &g
		}()},
		{name: "genesis with records", height: 0, change: func(s *rawStore) {
			s.blocks[0].Header.Records = 1
		}},
	} {
		rs := make([][]ledger.Record, len(records))
		for i := range records {
			rs[i] = append([]ledger.Record(nil), records[i]...)
		}
		if tc.records != nil {
			tc.records(rs)
		}
		s := rawChain(t, c, rs)
		for _, b := range s.blocks[1:] {
			// Certificates are built before tampering; copy them so that
			// tampering one chain does not change the next.
			cert := *b.Certificate
			cert.Sigs = append([]ledger.CertSig(nil), cert.Sigs...)
			b.Certificate = &cert
		}
		g0 := *s.blocks[0]
		s.blocks[0] = &g0
		if tc.change != nil {
			tc.change(s)
		}
		g := c.Genesis
		if tc.genesis != nil {
			g = tc.genesis
		}
		// Block by block, and through a BlockScanner.
		for _, st := range []ledger.Store{s, scanRaw{rawStore: s}} {
			_, err := ledger.Audit(ctx, st, g, certSeal(c.Vals), nil)
			var ae *ledger.AuditError
			if !errors.As(err, &ae) || ae.Height != tc.height || !errors.Is(err, ledger.ErrCorrupt) {
				t.Errorf("Audit(%s, %T) = %v; want an *AuditError at height %d", tc.name, st, err, tc.height)
				continue
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Audit(%s, %T) = %v; want it to wrap %v", tc.name, st, err, tc.is)
			}
		}
	}
	// A scanner's report matches the block-by-block one.
	if srep, err := ledger.Audit(ctx, scanRaw{rawStore: good()}, c.Genesis, certSeal(c.Vals), nil); err != nil || *srep != *rep {
		t.Errorf("Audit(scanner over good chain) = %+v, %v; want %+v", srep, err, rep)
	}
	// A scanner that leaves out a leaf hash is caught at that block.
	var ae *ledger.AuditError
	if _, err := ledger.Audit(ctx, scanRaw{rawStore: good(), short: 3}, c.Genesis, nil, nil); !errors.As(err, &ae) || ae.Height != 3 {
		t.Errorf("Audit(scanner short of a leaf hash at 3) = %v; want an *AuditError at height 3", err)
	}

	if _, err := ledger.Audit(ctx, &rawStore{}, nil, nil, nil); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Audit(empty store) = %v; want ErrNotFound", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ledger.Audit(cctx, good(), nil, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Audit(cancelled) = %v; want context.Canceled", err)
	}
}
