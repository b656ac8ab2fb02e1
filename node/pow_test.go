package node

import (
	"context"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// powTestGenesis returns a pow chain for tests: 8 initial bits,
// retargeting every 4 blocks toward interval ms, so that the difficulty
// settles where this machine mines a block per interval.
func powTestGenesis(interval int64) *ledger.Genesis {
	return &ledger.Genesis{Chain: "powtest", Time: time.Now().Add(-time.Minute).UnixMilli(), Engine: ledger.EnginePoW,
		BlockInterval: interval, AttestQuorum: -1, Bits: 8, Retarget: 4, Confirmations: 6}
}

// waitPoWHeight waits until tn's head is at least h.
func waitPoWHeight(tb testing.TB, tn *testNode, h uint64, timeout time.Duration) *ledger.Header {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		head := tn.head()
		if head.Height >= h {
			return head
		}
		if time.Now().After(deadline) {
			tb.Fatalf("head %d after %v, want %d", head.Height, timeout, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPoWSingleMiner(t *testing.T) {
	g := powTestGenesis(100)
	miner := startNode(t, Config{Genesis: g, Key: netKey(0), Mine: true, MineWorkers: 1, Logger: testLogger("m0")})
	repo := newFixtureRepo(t)
	repo.release("v1.0.0")
	key := repo.key("v1.0.0")
	c := miner.client()
	ctx := context.Background()
	// On a pow chain ?wait waits until the record is final.
	resp, err := c.Submit(ctx, api.SubmitRequest{Key: key.String()}, 60*time.Second)
	if err != nil {
		t.Fatalf("Submit(wait) = %v", err)
	}
	if resp.Status != api.StatusFinal || resp.Record == nil || resp.Record.Confirmations < g.Confirmations {
		t.Fatalf("Submit(wait) = status %q record %+v; want final with %d confirmations", resp.Status, resp.Record, g.Confirmations)
	}
	e := miner.waitCommitted(key, time.Second)
	rr, _, err := c.Record(ctx, key)
	if err != nil || rr == nil || rr.Status != api.StatusFinal {
		t.Fatalf("Record() = %+v, %v; want final", rr, err)
	}
	head := miner.audit()
	if head.Height < e.Height+g.Confirmations-1 {
		t.Fatalf("audited head %d", head.Height)
	}
	// A replica that does not mine follows the miner.
	replica := startNode(t, Config{Genesis: g, Key: netKey(1), Bootstrap: miner.P2PAddrs(), Logger: testLogger("r1")})
	want := miner.head()
	got := waitPoWHeight(t, replica, want.Height, 60*time.Second)
	if h, err := replica.Store().Header(ctx, want.Height); err != nil || h.Hash() != want.Hash() && got.Height == want.Height {
		t.Fatalf("replica block %d = %v, %v; want the miner's", want.Height, h, err)
	}
	if _, err := replica.Store().Lookup(ctx, key); err != nil {
		t.Fatalf("replica Lookup(%s) = %v", key, err)
	}
	replica.audit()
}
