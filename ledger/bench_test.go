package ledger_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// Benchmarks: go test -run '^$' -bench . ./ledger
//
// Proofs are measured on a log of a million records whose stored hashes
// are built in memory with AppendLog; the audit benchmarks compare the
// log rebuild with raw SHA-256 over the same record bytes, in the same run.

const benchLogSize = 1 << 20

var (
	benchLogOnce sync.Once
	benchLog     memLog
	benchRoot    ledger.Hash
)

// millionLog returns a log of benchLogSize records, built once.
func millionLog(b *testing.B) *memLog {
	benchLogOnce.Do(func() {
		leaves := make([]ledger.Hash, benchLogSize)
		for i := range leaves {
			leaves[i] = ledger.SumSHA256([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		}
		stored, root, err := ledger.AppendLog(&benchLog, 0, leaves)
		if err != nil {
			b.Fatal(err)
		}
		benchLog.leaves, benchLog.stored, benchRoot = leaves, stored, root
	})
	return &benchLog
}

func perOp(b *testing.B, unit string) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N), unit)
}

func BenchmarkProveRecord1M(b *testing.B) {
	l := millionLog(b)
	rng := rand.New(rand.NewPCG(1, 1))
	var hashes int
	b.ResetTimer()
	for b.Loop() {
		p, err := ledger.ProveRecord(l, benchLogSize, rng.Int64N(benchLogSize))
		if err != nil {
			b.Fatal(err)
		}
		hashes = len(p)
	}
	perOp(b, "µs/proof")
	b.ReportMetric(float64(hashes), "hashes/proof")
}

func BenchmarkCheckRecord1M(b *testing.B) {
	l := millionLog(b)
	root := benchRoot
	const n = 256
	idx := make([]int64, n)
	proofs := make([][]ledger.Hash, n)
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range idx {
		idx[i] = rng.Int64N(benchLogSize)
		p, err := ledger.ProveRecord(l, benchLogSize, idx[i])
		if err != nil {
			b.Fatal(err)
		}
		proofs[i] = p
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if err := ledger.CheckRecord(proofs[i%n], benchLogSize, root, idx[i%n], l.leaves[idx[i%n]]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	perOp(b, "µs/proof")
}

func BenchmarkProveTree1M(b *testing.B) {
	l := millionLog(b)
	rng := rand.New(rand.NewPCG(3, 3))
	var hashes int
	b.ResetTimer()
	for b.Loop() {
		p, err := ledger.ProveTree(l, benchLogSize, 1+rng.Int64N(benchLogSize-1))
		if err != nil {
			b.Fatal(err)
		}
		hashes = len(p)
	}
	perOp(b, "µs/proof")
	b.ReportMetric(float64(hashes), "hashes/proof")
}

func BenchmarkCheckTree1M(b *testing.B) {
	l := millionLog(b)
	root := benchRoot
	const n = 64
	type c struct {
		size  int64
		root  ledger.Hash
		proof []ledger.Hash
	}
	cases := make([]c, n)
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range cases {
		size := 1 + rng.Int64N(benchLogSize-1)
		r, err := ledger.LogRoot(l, size)
		if err != nil {
			b.Fatal(err)
		}
		p, err := ledger.ProveTree(l, benchLogSize, size)
		if err != nil {
			b.Fatal(err)
		}
		cases[i] = c{size, r, p}
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		x := cases[i%n]
		if err := ledger.CheckTree(x.proof, benchLogSize, root, x.size, x.root); err != nil {
			b.Fatal(err)
		}
		i++
	}
	perOp(b, "µs/proof")
}

// auditChain is a store of n records in blocks of per, without seals.
func auditChain(b *testing.B, n, per int) (*ledgertest.MemStore, [][]byte) {
	ctx := context.Background()
	c := ledgertest.NewChain(b, 1)
	s := c.Store
	rng := rand.New(rand.NewPCG(5, 5))
	var data [][]byte
	for at := 0; at < n; at += per {
		parent, _ := s.Head(ctx)
		rs := ledgertest.Records(rng, at, per)
		leaves := make([]ledger.Hash, per)
		for i := range rs {
			leaves[i] = rs[i].LeafHash()
			data = append(data, rs[i].Format())
		}
		stored, root, err := ledger.AppendLog(ledger.HashReaderOf(ctx, s), int64(parent.LogSize), leaves)
		if err != nil {
			b.Fatal(err)
		}
		h := *parent
		h.Height++
		h.Prev = parent.Hash()
		h.Records = uint64(per)
		h.LogSize += uint64(per)
		h.LogRoot = root
		if err := s.Append(ctx, &ledger.Block{Header: h, Records: rs}, stored); err != nil {
			b.Fatal(err)
		}
	}
	return s, data
}

// sha256Rate returns the MB/s of SHA-256 over each of data separately.
func sha256Rate(data [][]byte) float64 {
	var total int
	for _, d := range data {
		total += len(d)
	}
	start := time.Now()
	rounds := 0
	for time.Since(start) < 300*time.Millisecond || rounds == 0 {
		for _, d := range data {
			sha256.Sum256(d)
		}
		rounds++
	}
	return float64(total*rounds) / time.Since(start).Seconds() / 1e6
}

// BenchmarkAudit measures ledger.Audit over 100k records in blocks of
// 1000 (no seals: records, keys, leaf hashes, stored hashes and roots) and
// reports its rate against raw SHA-256 of the same record bytes.
func BenchmarkAudit(b *testing.B) {
	const n, per = 100_000, 1000
	s, data := auditChain(b, n, per)
	ctx := context.Background()
	var bytes int64
	b.ResetTimer()
	for b.Loop() {
		rep, err := ledger.Audit(ctx, s, nil, nil, nil)
		if err != nil || rep.Records != n {
			b.Fatalf("Audit = %+v, %v", rep, err)
		}
		bytes = rep.Bytes
	}
	b.StopTimer()
	rate := float64(bytes) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	base := sha256Rate(data)
	b.ReportMetric(rate, "audit-MB/s")
	b.ReportMetric(base, "sha256-MB/s")
	b.ReportMetric(base/rate, "sha256/audit")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// A scanStore is a MemStore that hands Audit its blocks through
// ScanBlocks, already decoded and hashed (as sqlitestore's ScanBlocks
// does, from records ParseRecord checked), so that Audit's own work is all
// that is measured.
type scanStore struct {
	*ledgertest.MemStore
	blocks []*ledger.Block
	leaves [][]ledger.Hash
	hashes [][]ledger.Hash
}

var _ ledger.BlockScanner = (*scanStore)(nil)

func newScanStore(b *testing.B, s *ledgertest.MemStore) *scanStore {
	ctx := context.Background()
	head, err := s.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ss := &scanStore{MemStore: s}
	for h := uint64(0); h <= head.Height; h++ {
		blk, err := s.Block(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		var idx []int64
		for i := ledger.StoredHashCount(int64(blk.Header.LogSize) - int64(blk.Header.Records)); i < ledger.StoredHashCount(int64(blk.Header.LogSize)); i++ {
			idx = append(idx, i)
		}
		hs, err := s.ReadHashes(ctx, idx)
		if err != nil {
			b.Fatal(err)
		}
		leaves := make([]ledger.Hash, len(blk.Records))
		for i := range blk.Records {
			leaves[i] = blk.Records[i].LeafHash()
		}
		ss.blocks, ss.leaves, ss.hashes = append(ss.blocks, blk), append(ss.leaves, leaves), append(ss.hashes, hs)
	}
	return ss
}

func (s *scanStore) ScanBlocks(ctx context.Context, from, to uint64, _ bool, fn func(b *ledger.Block, leaves, hashes []ledger.Hash) error) error {
	for h := from; h <= to && h < uint64(len(s.blocks)); h++ {
		if err := fn(s.blocks[h], s.leaves[h], s.hashes[h]); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkAuditScan measures Audit's own cost per record over a store
// that hands it decoded blocks (ledger.BlockScanner), 1000 records a
// block, beside raw SHA-256 of the same canonical record bytes measured in
// the same run. sha256/audit is the audit's rate as a fraction of raw
// SHA-256's.
func BenchmarkAuditScan(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			const per = 1000
			ms, data := auditChain(b, n, per)
			s := newScanStore(b, ms)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				rep, err := ledger.Audit(ctx, s, nil, nil, nil)
				if err != nil || rep.Records != int64(n) {
					b.Fatalf("Audit = %+v, %v", rep, err)
				}
			}
			b.StopTimer()
			audit := float64(b.Elapsed().Nanoseconds()) / 1e3 / float64(b.N) / float64(len(data))
			var total int
			for _, d := range data {
				total += len(d)
			}
			raw := float64(total) / float64(len(data)) / sha256Rate(data)
			b.ReportMetric(audit, "µs/record")
			b.ReportMetric(raw, "sha256-µs/record")
			b.ReportMetric(raw/audit, "sha256/audit")
		})
	}
}

// BenchmarkLogRebuild measures the log part of an audit alone: leaf
// hashes, stored hashes and the root after every block of 1000, with
// AppendLog over the hashes already rebuilt, against raw SHA-256 of the
// same record bytes.
func BenchmarkLogRebuild(b *testing.B) {
	const n, per = 100_000, 1000
	_, data := auditChain(b, n, per)
	var total int64
	for _, d := range data {
		total += int64(len(d))
	}
	b.ResetTimer()
	for b.Loop() {
		var l memLog
		leaves := make([]ledger.Hash, per)
		for at := 0; at < n; at += per {
			for i := range leaves {
				leaves[i] = ledger.Hash(sha256.Sum256(append([]byte{0}, data[at+i]...)))
			}
			stored, _, err := ledger.AppendLog(&l, int64(at), leaves)
			if err != nil {
				b.Fatal(err)
			}
			l.stored = append(l.stored, stored...)
		}
	}
	b.StopTimer()
	rate := float64(total) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	base := sha256Rate(data)
	b.ReportMetric(rate, "rebuild-MB/s")
	b.ReportMetric(base, "sha256-MB/s")
	b.ReportMetric(base/rate, "sha256/rebuild")
}

// BenchmarkParseBlock parses a block of 10,000 records without
// attestations, as a syncing node does each block it fetches: ParseBlock,
// and ParseBlockLeaves, which also hashes the records' leaves.
func BenchmarkParseBlock(b *testing.B) {
	const n = 10_000
	c := ledgertest.NewChain(b, 1)
	blk, _ := c.Unsealed(ledgertest.Records(rand.New(rand.NewPCG(1, 1)), 0, n))
	data := blk.Format()
	for _, bc := range []struct {
		name  string
		parse func([]byte) error
	}{
		{"ParseBlock", func(d []byte) error { _, err := ledger.ParseBlock(d); return err }},
		{"ParseBlockLeaves", func(d []byte) error { _, err := ledger.ParseBlockLeaves(d); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := bc.parse(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkParseRecord parses the canonical bytes of 1000 random records
// (ParseRecord, every check), as a store does for each record it reads.
func BenchmarkParseRecord(b *testing.B) {
	rs := ledgertest.Records(rand.New(rand.NewPCG(1, 1)), 0, 1000)
	data := make([][]byte, len(rs))
	var total int64
	for i := range rs {
		data[i] = rs[i].Format()
		total += int64(len(data[i]))
	}
	b.SetBytes(total / int64(len(data)))
	i := 0
	for b.Loop() {
		if _, err := ledger.ParseRecord(data[i%len(data)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	perOp(b, "µs/record")
}

// BenchmarkParseAuthorityChange parses an authority change carrying the
// votes of a set of 7 validators.
func BenchmarkParseAuthorityChange(b *testing.B) {
	c := ledgertest.NewChain(b, 7)
	ch := c.Change(ledger.AuthorityAdd, ledgertest.Signer(100).Public(), "v100", 10)
	data := ch.Format()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ledger.ParseAuthorityChange(data); err != nil {
			b.Fatal(err)
		}
	}
	perOp(b, "µs/change")
}

// BenchmarkVerifyBatch verifies a block's worth of attestation signatures
// (4,096); run with -cpu 1,2 to see the batches verified in parallel.
func BenchmarkVerifyBatch(b *testing.B) {
	items := make([]ledger.SignedItem, 4096)
	for i := range items {
		s := ledgertest.Signer(i % 4)
		msg := []byte{byte(i), byte(i >> 8)}
		items[i] = ledger.SignedItem{Key: s.Public(), Msg: msg, Sig: s.Sign(msg)}
	}
	for b.Loop() {
		if err := ledger.VerifyBatch(items); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(items)*b.N)/b.Elapsed().Seconds(), "sigs/s")
}
