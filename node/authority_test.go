package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// TestNetworkValidatorSetChange runs four validators and a fifth replica
// on 127.0.0.1. The four vote the fifth in through the HTTP API (each
// operator's vote sent to its own node, gossip gathers them); the fifth then
// proposes and signs blocks. The five vote the first validator out, which
// then stops; the chain keeps committing. Every store passes Audit, all
// hold the same blocks, and a client verifies records committed before and
// after the changes against the set of their checkpoint's height.
func TestNetworkValidatorSetChange(t *testing.T) {
	repo := newFixtureRepo(t)
	repo.release("v0")
	tags := repo.tagMany("vs", 40)
	keys := keysOf(repo, tags)
	c := newCluster(t, clusterOpts{validators: 4, followers: 1, attestQuorum: -1})
	c.startAll()
	c.waitPeers(4, 30*time.Second)
	ctx := context.Background()
	v4 := c.signer(4)
	next := 0
	commit := func(via int, n int) []ledger.Key {
		t.Helper()
		ks := keys[next : next+n]
		next += n
		for _, k := range ks {
			if _, err := c.members[via].client().Submit(ctx, api.SubmitRequest{Key: k.String()}, 30*time.Second); err != nil {
				t.Fatalf("Submit(%s) via node %d = %v", k, via, err)
			}
		}
		return ks
	}
	// vote sends i's vote for ch to node i; the change is pooled there and
	// gossiped.
	vote := func(i int, ch ledger.AuthorityChange) {
		t.Helper()
		ch.Sigs = nil
		ch.AddVote(ch.Vote(c.signer(i)))
		if _, err := c.members[i].client().SubmitAuthority(ctx, &ch); err != nil {
			t.Fatalf("node %d: SubmitAuthority = %v", i, err)
		}
	}
	nextHeight := func() uint64 {
		vs, err := c.members[1].client().Validators(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return vs.Height
	}
	before := commit(0, 3)

	// Refusals: a vote by a non-validator, a change without a vote, a
	// removal below four, adding an existing validator.
	bad := ledger.AuthorityChange{Chain: c.g.Chain, Op: ledger.AuthorityAdd, Validator: v4.Public(), Name: "n4", Effective: nextHeight() + 10}
	bad.AddVote(bad.Vote(v4))
	if _, err := c.members[4].client().SubmitAuthority(ctx, &bad); !errors.Is(err, api.ErrBadRequest) {
		t.Errorf("a change voted by a non-validator: SubmitAuthority = %v, want a 400", err)
	}
	for _, ch := range []ledger.AuthorityChange{
		{Chain: c.g.Chain, Op: ledger.AuthorityRemove, Validator: c.signer(3).Public(), Effective: nextHeight() + 10},
		{Chain: c.g.Chain, Op: ledger.AuthorityAdd, Validator: c.signer(2).Public(), Name: "again", Effective: nextHeight() + 10},
	} {
		ch.AddVote(ch.Vote(c.signer(0)))
		if _, err := c.members[0].client().SubmitAuthority(ctx, &ch); !errors.Is(err, api.ErrBadRequest) {
			t.Errorf("%s: SubmitAuthority = %v, want a 400", ch.String(), err)
		}
	}

	// Add the fifth: proposed at node 0, voted at nodes 1 and 2 (3 of 4).
	add := ledger.AuthorityChange{Chain: c.g.Chain, Op: ledger.AuthorityAdd, Validator: v4.Public(), Name: "n4", Effective: nextHeight() + 6}
	vote(0, add)
	vs, err := c.members[0].client().Validators(ctx)
	if err != nil || len(vs.Proposed) != 1 || vs.Proposed[0].Votes != 1 || vs.Proposed[0].Quorum != 3 {
		t.Fatalf("after the proposal, validators = %+v, %v; want one proposed change with 1 of 3 votes", vs, err)
	}
	vote(1, add)
	vote(2, add)
	c.waitHeight(nil, add.Effective, 60*time.Second)
	for i := range c.members {
		if !c.members[i].current().Contains(v4.Public()) {
			t.Fatalf("node %d: the fifth is not in the set at height %d", i, add.Effective)
		}
	}
	if !c.members[4].IsValidator() {
		t.Fatalf("the fifth node does not know it is a validator")
	}
	// The fifth signs certificates and, in its turn, proposes.
	proposed, signed := false, false
	for round := 0; round < 30 && !(proposed && signed); round++ {
		commit(round%5, 1)
		head, _ := c.members[4].Store().Head(ctx)
		for h := add.Effective; h <= head.Height; h++ {
			b, err := c.members[4].Store().Block(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			proposed = proposed || b.Header.Proposer == v4.Public()
			for _, s := range b.Certificate.Sigs {
				signed = signed || s.Validator == v4.Public()
			}
		}
	}
	if !proposed || !signed {
		t.Fatalf("after the addition the fifth proposed a block: %v, signed a certificate: %v", proposed, signed)
	}
	middle := commit(4, 2)

	// Remove the first: proposed at node 1, voted at 2, 3 and 4 (4 of 5).
	rm := ledger.AuthorityChange{Chain: c.g.Chain, Op: ledger.AuthorityRemove, Validator: c.signer(0).Public(), Effective: nextHeight() + 6}
	for _, i := range []int{1, 2, 3, 4} {
		vote(i, rm)
	}
	c.waitHeight(nil, rm.Effective, 60*time.Second)
	c.stop(0)
	after := commit(1, 4)
	c.waitConverged(30 * time.Second)
	for _, i := range c.live() {
		set := c.members[i].current()
		if set.Len() != 4 || set.Contains(c.signer(0).Public()) || !set.Contains(v4.Public()) {
			t.Fatalf("node %d: set of %d after the removal", i, set.Len())
		}
	}
	c.audit()

	// A client pinned to the genesis verifies records from before and
	// after the changes, through a node that is not a validator from the
	// start.
	cl := c.members[4].client()
	hist, err := cl.Authority(ctx)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := api.VerifyAuthority(c.g, hist)
	if err != nil {
		t.Fatalf("VerifyAuthority = %v", err)
	}
	if es := auth.Entries(); len(es) != 2 {
		t.Fatalf("the history holds %d changes, want 2", len(es))
	}
	for _, k := range append(append(append([]ledger.Key(nil), before...), middle...), after...) {
		resp, _, err := cl.Record(ctx, k)
		if err != nil || resp == nil {
			t.Fatalf("Record(%s) = %v", k, err)
		}
		if _, _, err := api.VerifyRecordWith(c.g, auth, resp); err != nil {
			t.Errorf("VerifyRecordWith(%s) = %v", k, err)
		}
	}
	// The newest checkpoint is signed by a set the genesis does not know.
	resp, _, err := cl.Record(ctx, after[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.VerifyRecord(c.g, resp); err == nil {
		t.Logf("the newest checkpoint happens to verify with the genesis set too")
	}
	// A forged history (the addition's votes replaced by the fifth's own)
	// is refused.
	forged := *hist
	forged.Changes = append([]api.AuthorityEntry(nil), hist.Changes...)
	f0, _ := ledger.ParseAuthorityChange([]byte(forged.Changes[0].Change))
	f0.Sigs = nil
	f0.AddVote(f0.Vote(v4))
	forged.Changes[0].Change = string(f0.Format())
	if _, err := api.VerifyAuthority(c.g, &forged); !errors.Is(err, api.ErrVerification) {
		t.Errorf("VerifyAuthority of a forged history = %v, want ErrVerification", err)
	}
}

// TestNetworkAuthorityRestart: proposed changes and their votes survive
// restarts and reach nodes that were down. With one validator down, the
// first proposes adding a fifth and the second votes; then every node that
// heard them goes down (the first killed, the others stopped) before the
// change commits. All restart, the one that was down learns the change with
// both votes from its peers' re-gossip, adds its vote, and the change
// commits; every node's pool and journal are then empty of it.
func TestNetworkAuthorityRestart(t *testing.T) {
	c := newCluster(t, clusterOpts{validators: 4, followers: 1, attestQuorum: 0})
	c.startAll()
	c.waitPeers(4, 30*time.Second)
	ctx := context.Background()
	v4 := c.signer(4)
	vs, err := c.members[0].client().Validators(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := ledger.AuthorityChange{Chain: c.g.Chain, Op: ledger.AuthorityAdd, Validator: v4.Public(), Name: "n4", Effective: vs.Height + 10}
	vote := func(i int) *api.AuthorityInfo {
		t.Helper()
		ch := add
		ch.AddVote(ch.Vote(c.signer(i)))
		info, err := c.members[i].client().SubmitAuthority(ctx, &ch)
		if err != nil {
			t.Fatalf("node %d: SubmitAuthority = %v", i, err)
		}
		return info
	}
	// proposed returns the votes node i holds for the change (-1: none).
	proposed := func(i int) int {
		for _, p := range c.members[i].ProposedAuthority() {
			if p.ID() == add.ID() {
				return len(p.Sigs)
			}
		}
		return -1
	}
	waitVotes := func(i, want int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for proposed(i) < want {
			if time.Now().After(deadline) {
				t.Fatalf("node %d holds %d votes for the change after 60s, want %d", i, proposed(i), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	c.stop(3)
	vote(0)
	if info := vote(1); info.Quorum != 3 {
		t.Fatalf("the change needs %d votes, want 3", info.Quorum)
	}
	waitVotes(2, 2)
	c.kill(0)
	c.stop(1)
	c.stop(2)
	c.stop(4)
	// Nothing committed it, and the store keeps it with its votes.
	c.start(0)
	if got := proposed(0); got < 1 {
		t.Fatalf("after a kill and restart node 0 holds %d votes for the change, want its own at least", got)
	}
	if h := c.members[0].head().Height; h >= add.Effective-ledger.AuthorityDelay {
		t.Fatalf("the chain reached height %d: the change went stale before the test voted", h)
	}
	c.start(1)
	c.start(2)
	c.start(3)
	c.start(4)
	c.waitPeers(4, 30*time.Second)
	// Node 3 was down while the votes travelled: it learns them again.
	waitVotes(3, 2)
	waitVotes(4, 2)
	vote(3)
	c.waitHeight(nil, add.Effective, 60*time.Second)
	c.waitConverged(30 * time.Second)
	for _, i := range c.live() {
		m := c.members[i]
		if !m.current().Contains(v4.Public()) {
			t.Errorf("node %d: the fifth is not in the set at height %d", i, add.Effective)
		}
		if got := proposed(i); got >= 0 {
			t.Errorf("node %d still pools the committed change (%d votes)", i, got)
		}
		if items, err := m.Store().LoadPendingPrefix(ctx, authorityJournalPrefix); err != nil || len(items) != 0 {
			t.Errorf("node %d: journal of proposed changes = %d items, %v; want none", i, len(items), err)
		}
	}
	c.audit()

	// A committed change is refused, whatever votes it carries.
	again := add
	again.AddVote(again.Vote(c.signer(1)))
	if _, err := c.members[1].client().SubmitAuthority(ctx, &again); !errors.Is(err, api.ErrBadRequest) {
		t.Errorf("SubmitAuthority(a committed change) = %v, want a 400", err)
	}
}
