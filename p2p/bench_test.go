package p2p

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// A counter is a Handler that accepts and counts messages.
type counter struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *counter) Validate(topic, from string, data []byte) error { return nil }

func (c *counter) Deliver(topic, from string, data []byte) {
	if c.n.Add(1) == c.want {
		close(c.done)
	}
}

// BenchmarkGossip publishes batches of messages from one host to another
// over TCP on loopback and reports the messages delivered per second.
func BenchmarkGossip(b *testing.B) {
	for _, size := range []int{256, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			const batch = 2000
			recv := &counter{want: int64(batch) * int64(b.N), done: make(chan struct{})}
			a := startHost(b, testConfig(testGenesis, nil, nil))
			c := startHost(b, testConfig(testGenesis, recv, nil, a))
			waitMesh(b, 1, a, c)
			ctx := context.Background()
			b.SetBytes(int64(batch * size))
			b.ResetTimer()
			seq := 0
			for i := 0; i < b.N; i++ {
				for j := 0; j < batch; j++ {
					seq++
					// pubsub keeps the slice: a new one per message.
					msg := make([]byte, size)
					copy(msg, fmt.Sprintf("%012d", seq)) // distinct ids
					if err := a.Publish(ctx, TopicMempool, msg); err != nil {
						b.Fatal(err)
					}
				}
			}
			select {
			case <-recv.done:
			case <-time.After(2 * time.Minute):
				b.Fatalf("delivered %d of %d", recv.n.Load(), recv.want)
			}
			b.StopTimer()
			b.ReportMetric(float64(recv.want)/b.Elapsed().Seconds(), "msgs/s")
			if d := c.Drops(); d != (DropStats{}) {
				b.Errorf("receiver dropped %+v", d)
			}
		})
	}
}

// BenchmarkSync syncs a chain of 1,000-record blocks into a fresh MemStore
// from one peer on loopback, verifying every block (certificate, log root,
// and with attest=1 one attestation per record).
func BenchmarkSync(b *testing.B) {
	const blocks, per = 20, 1000
	for _, attest := range []int{0, 1} {
		b.Run(fmt.Sprintf("attest=%d", attest), func(b *testing.B) {
			s0 := ledgertest.Signer(0)
			g := &ledger.Genesis{Chain: "test", Time: 1_700_000_000_000, Engine: ledger.EnginePoA, BlockInterval: 1000,
				AttestQuorum: attest, Validators: []ledger.Validator{{Key: s0.Public(), Name: "v0"}}}
			c := ledgertest.NewChainFrom(b, g, []*ledger.Signer{s0})
			rng := newRand()
			for i := 0; i < blocks; i++ {
				c.Next(ledgertest.Records(rng, i*per, per))
			}
			server, client := syncPair(b, g, c.Store, nil)
			_ = server
			seal := newSeal(b, g)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				store := freshStore(b, g)
				s, err := NewSyncer(client, SyncConfig{Store: store, Seal: seal})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := s.Sync(ctx); err != nil {
					b.Fatal(err)
				}
				if p := s.Progress(); p.Height != blocks {
					b.Fatalf("synced to %d, want %d", p.Height, blocks)
				}
			}
			b.StopTimer()
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(blocks*b.N)/sec, "blocks/s")
			b.ReportMetric(float64(blocks*per*b.N)/sec, "records/s")
		})
	}
}
