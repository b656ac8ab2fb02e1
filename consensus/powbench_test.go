package consensus

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// BenchmarkPoWHashes measures mining hashes per second on one core beside
// raw SHA-256 of the same header bytes (sha256.Sum256 of the whole
// canonical header, pre-built), in the same run, taking turns in rounds so
// both see the same machine. ratio is hashes/s over sha256/s; the target
// is at least 0.9.
func BenchmarkPoWHashes(b *testing.B) {
	h := ledger.Header{Chain: "bench-chain", Height: 123456, Time: 1_735_689_600_000, Engine: ledger.EnginePoW,
		Records: 1000, LogSize: 5_000_000, Bits: 255, Nonce: 1 << 40}
	h.Prev[0], h.LogRoot[0] = 1, 2
	x, err := newHasher(&h)
	if err != nil {
		b.Fatal(err)
	}
	data := h.Format()
	const round = 4096
	var mine, raw time.Duration
	var sink byte
	nonce := h.Nonce
	b.ResetTimer()
	for n := 0; n < b.N; n += round {
		t0 := time.Now()
		for i := 0; i < round; i++ {
			if meets(x.hash(nonce), h.Bits) {
				sink++
			}
			nonce++
		}
		t1 := time.Now()
		for i := 0; i < round; i++ {
			data[len(data)-2]++ // another nonce of the same length
			sum := sha256.Sum256(data)
			sink ^= sum[0]
		}
		mine += t1.Sub(t0)
		raw += time.Since(t1)
	}
	_ = sink
	tries := float64((b.N + round - 1) / round * round)
	b.ReportMetric(tries/mine.Seconds(), "hashes/s")
	b.ReportMetric(tries/raw.Seconds(), "sha256/s")
	b.ReportMetric(raw.Seconds()/mine.Seconds(), "ratio")
	b.ReportMetric(float64(len(data)), "header-bytes")
}
