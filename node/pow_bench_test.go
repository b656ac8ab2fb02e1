package node

import (
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// BenchmarkPoWBlocks measures blocks a minute of one miner node (one
// worker, on a real SQLite file) at the default difficulty of `ledgerd
// init` (16 bits) held fixed, and in the same run the same node's hashes
// a second, so the figure can be scaled to other difficulties: expected
// blocks/min = 60 * hashes/s / 2^bits.
//
//	go test -run '^$' -bench PoWBlocks -benchtime 200x ./node/
func BenchmarkPoWBlocks(b *testing.B) {
	const bits = 16
	g := &ledger.Genesis{Chain: "powbench", Time: time.Now().UnixMilli(), Engine: ledger.EnginePoW, BlockInterval: 1000,
		AttestQuorum: -1, Bits: bits, Retarget: 1 << 40, Confirmations: 6}
	tn := startNode(b, Config{Genesis: g, Key: netKey(0), Mine: true, MineWorkers: 1, HTTPAddr: "off"})
	start := tn.head().Height
	hashes0 := tn.pow.miner.Hashes()
	b.ResetTimer()
	t0 := time.Now()
	for tn.head().Height < start+uint64(b.N) {
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(t0)
	b.StopTimer()
	blocks := tn.head().Height - start
	b.ReportMetric(float64(blocks)/d.Minutes(), "blocks/min")
	b.ReportMetric(float64(tn.pow.miner.Hashes()-hashes0)/d.Seconds(), "hashes/s")
	b.ReportMetric(bits, "bits")
}
