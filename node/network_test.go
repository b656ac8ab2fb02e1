package node

import (
	"context"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// TestNetworkSubmitAnywhere: four validators that find each other through
// their bootstrap addresses commit records submitted to any of them (the
// others forward on the mempool topic), with attest_quorum f+1 = 2 so two
// validators really fetch each repository, and every node serves every
// record with a proof that verifies.
func TestNetworkSubmitAnywhere(t *testing.T) {
	repo := newFixtureRepo(t)
	repo.release("v0")
	tags := repo.tagMany("any", 12)
	c := newCluster(t, clusterOpts{validators: 4, attestQuorum: -1})
	c.startAll()
	c.waitPeers(3, 30*time.Second)
	ctx := context.Background()
	acked := map[ledger.Key]ledger.Entry{}
	for i, k := range keysOf(repo, tags) {
		m := c.members[i%4]
		wait := time.Duration(0)
		if i%2 == 0 {
			wait = 30 * time.Second
		}
		resp, err := m.client().Submit(ctx, api.SubmitRequest{Key: k.String()}, wait)
		if err != nil {
			t.Fatalf("Submit(%s) via node %d = %v", k, i%4, err)
		}
		if wait > 0 && resp.Status != api.StatusCommitted {
			t.Fatalf("Submit(%s, wait) via node %d: status %q, want committed", k, i%4, resp.Status)
		}
	}
	for _, k := range keysOf(repo, tags) {
		var first *ledger.Entry
		for i, m := range c.members {
			e := m.waitCommitted(k, 30*time.Second)
			if first == nil {
				first = e
			} else if *e != *first {
				t.Fatalf("node %d serves %s as %+v, node 0 as %+v", i, k, *e, *first)
			}
		}
		acked[k] = *first
	}
	c.waitConverged(30 * time.Second)
	c.checkHave(acked)
}
