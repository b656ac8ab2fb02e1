package mempool

import (
	"context"
	"fmt"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

func benchKeys(b *testing.B, n int) []ledger.Key {
	keys := make([]ledger.Key, n)
	for i := range keys {
		keys[i] = mustKey(b, fmt.Sprintf("github.com/bench/repo%d@v1.%d.0", i%1000, i))
	}
	return keys
}

func benchPool(b *testing.B, validators int) *fixture {
	return newFixture(b, validators, func(c *Config) {
		c.Rate, c.MaxEntries, c.MaxBytes = -1, 1<<30, 1<<40
	})
}

// BenchmarkAdd measures admission of new keys (duplicate check, committed
// lookup, limits, journal write to a MemJournal).
func BenchmarkAdd(b *testing.B) {
	ctx := context.Background()
	f := benchPool(b, 1)
	keys := benchKeys(b, b.N)
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := f.pool.Add(ctx, keys[i], Claim{}, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
}

// BenchmarkReady measures Ready(2, 1000) over a pool of 10,000 pending
// records of which every other one is ready.
func BenchmarkReady(b *testing.B) {
	ctx := context.Background()
	f := benchPool(b, 2)
	keys := benchKeys(b, 10_000)
	for i, k := range keys {
		f.add(b, k)
		if i%2 == 0 {
			for v := range 2 {
				if _, err := f.pool.addAttestation(ctx, ledger.Attest(f.vals[v], testChain, record(k, "")), true); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ResetTimer()
	n := 0
	for range b.N {
		n += len(f.pool.Ready(2, 1000))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAddReady is a node's pool at work: each op adds a key and two
// validators' attestations of it (signatures verified), and every 1,000
// ops a proposer takes Ready(2, 1000) and the commit removes them.
func BenchmarkAddReady(b *testing.B) {
	ctx := context.Background()
	f := benchPool(b, 2)
	keys := benchKeys(b, b.N)
	atts := make([][2]ledger.Attestation, b.N)
	for i, k := range keys {
		for v := range 2 {
			atts[i][v] = ledger.Attest(f.vals[v], testChain, record(k, ""))
		}
	}
	b.ResetTimer()
	committed := 0
	commit := func() {
		rs := f.pool.Ready(2, 1000)
		ks := make([]ledger.Key, len(rs))
		for i, r := range rs {
			ks[i] = r.Record.Key
		}
		if err := f.pool.Remove(ctx, ks...); err != nil {
			b.Fatal(err)
		}
		committed += len(rs)
	}
	for i := range b.N {
		if _, _, err := f.pool.Add(ctx, keys[i], Claim{}, "bench"); err != nil {
			b.Fatal(err)
		}
		for v := range 2 {
			if err := f.pool.AddAttestation(ctx, atts[i][v]); err != nil {
				b.Fatal(err)
			}
		}
		if i%1000 == 999 {
			commit()
		}
	}
	commit()
	if committed != b.N {
		b.Fatalf("committed %d records, want %d", committed, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
