package node

import (
	"context"
	"math/big"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// newPoWCluster returns a cluster of n nodes of a pow chain, mining with
// one worker each when mine is set; start them with startAll.
func newPoWCluster(tb testing.TB, n int, interval int64, mine bool) *cluster {
	tb.Helper()
	c := newCluster(tb, clusterOpts{validators: n, tweak: func(i int, cfg *Config) {
		cfg.Mine, cfg.MineWorkers = mine, 1
	}})
	c.g = powTestGenesis(interval)
	return c
}

// submitFinal submits key to member i and waits (?wait) until the node
// answers it final; it returns the entry.
func (c *cluster) submitFinal(i int, key ledger.Key) *ledger.Entry {
	c.tb.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		resp, err := c.members[i].client().Submit(ctx, api.SubmitRequest{Key: key.String()}, 30*time.Second)
		if err != nil {
			c.tb.Fatalf("node %d: Submit(%s) = %v", i, key, err)
		}
		if resp.Status == api.StatusFinal {
			e, err := resp.Record.Record.Entry()
			if err != nil {
				c.tb.Fatal(err)
			}
			return e
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("node %d: %s not final: status %q", i, key, resp.Status)
		}
	}
}

// waitCommittedEverywhere waits until every running member has every key
// committed.
func (c *cluster) waitCommittedEverywhere(keys []ledger.Key, timeout time.Duration) {
	c.tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for _, i := range c.live() {
		for _, k := range keys {
			for {
				if _, err := c.members[i].Store().Lookup(ctx, k); err == nil {
					break
				}
				if time.Now().After(deadline) {
					c.tb.Fatalf("node %d: %s not committed after %v", i, k, timeout)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// chainWork returns the work (sum of 2^bits above block 0) and the head of
// the chain stopped member i follows when it starts again: the best tip of
// its main chain and side blocks (a side block stored just before the
// node stopped is switched to at the next start).
func (c *cluster) chainWork(i int) (*big.Int, *ledger.Header) {
	c.tb.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, c.members[i].Cfg.DBPath)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer s.Close()
	p, err := consensus.NewPoWParams(c.g)
	if err != nil {
		c.tb.Fatal(err)
	}
	g := c.g.Block().Header
	tree, err := consensus.NewTree(p, &g)
	if err != nil {
		c.tb.Fatal(err)
	}
	hs, err := s.Headers(ctx, 1, 1<<20)
	if err != nil {
		c.tb.Fatal(err)
	}
	side, err := s.SideHeaders(ctx)
	if err != nil {
		c.tb.Fatal(err)
	}
	for _, h := range append(hs, side...) {
		tree.Insert(&h) // side blocks off the tree stay out
	}
	best := tree.Best()
	return best.Work, &best.Header
}

// checkCommittedOrPending checks that stopped member i's store has each of
// keys committed or in its pending journal.
func (c *cluster) checkCommittedOrPending(i int, keys ...ledger.Key) {
	c.tb.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, c.members[i].Cfg.DBPath)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer s.Close()
	items, err := s.LoadPending(ctx)
	if err != nil {
		c.tb.Fatal(err)
	}
	pending := make(map[string]bool)
	for _, it := range items {
		pending[it.ID] = true
	}
	for _, k := range keys {
		if _, err := s.Lookup(ctx, k); err != nil && !pending[k.String()] {
			c.tb.Errorf("node %d: %s neither committed (%v) nor pending", i, k, err)
		}
	}
}

// TestPoWThreeMiners runs three miners racing at low difficulty: records
// submitted to each become final on all, every store passes Audit with the
// pow seal, and the nodes agree on every block buried under the
// confirmations.
func TestPoWThreeMiners(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	c := newPoWCluster(t, 3, 200, true)
	c.startAll()
	repo := newFixtureRepo(t)
	var keys []ledger.Key
	for i := 0; i < 6; i++ {
		tag := "v1.0." + string(rune('0'+i))
		repo.release(tag)
		keys = append(keys, repo.key(tag))
	}
	got := map[ledger.Key]*ledger.Entry{}
	for i, k := range keys {
		got[k] = c.submitFinal(i%3, k)
	}
	c.waitCommittedEverywhere(keys, 2*time.Minute)
	for _, i := range c.live() {
		c.members[i].audit()
	}
	// Every node holds the same blocks below its head minus the
	// confirmations, and there each final record as it was answered.
	ctx := context.Background()
	heads := c.heads()
	low := heads[0].Height
	for _, h := range heads {
		low = min(low, h.Height)
	}
	deep := low - min(low, c.g.Confirmations)
	for h := uint64(1); h <= deep; h++ {
		ref, _ := c.members[0].Store().Header(ctx, h)
		for _, i := range []int{1, 2} {
			if x, err := c.members[i].Store().Header(ctx, h); err != nil || x.Hash() != ref.Hash() {
				t.Fatalf("node %d block %d differs from node 0's: %v", i, h, err)
			}
		}
	}
	for k, e := range got {
		for _, i := range c.live() {
			have, err := c.members[i].Store().Lookup(ctx, k)
			if err != nil || have.Index != e.Index || have.Record != e.Record {
				t.Errorf("node %d: %s = %+v, %v; answered final as %+v", i, k, have, err, e)
			}
		}
	}
}

// TestPoWPartition splits three miners into {0} and {1, 2}; each side
// mines its own branch and acknowledges a record final on it. Then mining
// stops and the network heals: every node switches to the heavier branch.
// The record of the lighter branch went back to its node's mempool; with
// mining on again it is committed, so no acknowledged record is lost.
func TestPoWPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	c := newPoWCluster(t, 3, 200, true)
	c.startAll()
	c.waitHeight(nil, 2, time.Minute)
	c.partition([]int{0}, []int{1, 2})
	repo := newFixtureRepo(t)
	repo.release("v1")
	repo.release("v2")
	kA, kB := repo.key("v1"), repo.key("v2")
	done := make(chan *ledger.Entry)
	go func() { done <- c.submitFinal(0, kA) }()
	eB := c.submitFinal(1, kB)
	eA := <-done
	// Both sides have their record final on their own branch.
	if _, err := c.members[0].Store().Lookup(context.Background(), kB); err == nil {
		t.Fatal("node 0 has side B's record while partitioned")
	}
	// Stop mining everywhere, then heal (a restart forgets the partition).
	for _, i := range []int{0, 1, 2} {
		c.stop(i)
	}
	var work []*big.Int
	var tips []*ledger.Header
	for _, i := range []int{0, 1, 2} {
		w, h := c.chainWork(i)
		work, tips = append(work, w), append(tips, h)
	}
	heavier := 0
	for i := range work {
		if consensus.Better(&consensus.TreeNode{Work: work[i], Hash: tips[i].Hash()}, &consensus.TreeNode{Work: work[heavier], Hash: tips[heavier].Hash()}) {
			heavier = i
		}
	}
	want := tips[heavier]
	t.Logf("partition: work %v; record A at %d, B at %d; heavier: node %d at %d", work, eA.Height, eB.Height, heavier, want.Height)
	for _, i := range []int{0, 1, 2} {
		c.members[i].Cfg.Mine = false
		c.start(i)
	}
	head := c.waitConverged(2 * time.Minute)
	if head.Hash() != want.Hash() {
		t.Fatalf("converged on %d %s, want the heavier tip %d %s", head.Height, head.Hash(), want.Height, want.Hash())
	}
	for _, i := range c.live() {
		c.members[i].audit()
	}
	// Each record is still committed, or pending again on the node that
	// answered it final (the reorg wrote it to the pending journal).
	// Mining again commits both everywhere.
	for _, i := range []int{0, 1, 2} {
		c.stop(i)
	}
	c.checkCommittedOrPending(0, kA)
	c.checkCommittedOrPending(1, kB)
	for _, i := range []int{0, 1, 2} {
		c.members[i].Cfg.Mine = true
		c.start(i)
	}
	c.waitCommittedEverywhere([]ledger.Key{kA, kB}, 2*time.Minute)
}
