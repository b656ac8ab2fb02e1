package node

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/p2p"
)

// waitNote polls member i's GET /checkpoint until it serves the note of
// height h, and returns it.
func (c *cluster) waitNote(i int, h uint64, timeout time.Duration) []byte {
	c.tb.Helper()
	cl := c.members[i].client()
	deadline := time.Now().Add(timeout)
	for {
		msg, err := cl.CosignedCheckpoint(context.Background())
		if err == nil {
			if cp, perr := ledger.ParseCheckpointText(msg[:bytes.LastIndex(msg, []byte("\n\n"))+1]); perr == nil && cp.Height >= h {
				return msg
			}
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("node %d: no co-signed checkpoint of height %d after %v (last: %q, %v)", i, h, timeout, msg, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNetworkCosignedCheckpoint: four validators and a replica commit
// blocks; every node serves, at GET /checkpoint, the head's checkpoint as
// a note that the stock note package opens with the verifier keys of
// GET /v1/validators, signed by a quorum. Co-signatures that conflict with
// the committed chain (another block at a height, another root for a log
// size) are kept as evidence on every node; invalid ones are refused
// before they travel, and none of it changes the served note.
func TestNetworkCosignedCheckpoint(t *testing.T) {
	repo := newFixtureRepo(t)
	repo.release("v0")
	c := newCluster(t, clusterOpts{validators: 4, followers: 1, attestQuorum: 0})
	c.startAll()
	c.waitPeers(4, 30*time.Second)
	keys := keysOf(repo, repo.tagMany("cosig", 3))
	c.submitAll(0, keys)
	c.waitAllCommitted(keys, 30*time.Second)
	head := c.waitConverged(30 * time.Second)
	ctx := context.Background()

	for i, m := range c.members {
		msg := c.waitNote(i, head.Height, 30*time.Second)
		vs, err := m.client().Validators(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var verifiers []note.Verifier
		for _, v := range vs.Validators {
			nv, err := note.NewVerifier(v.VerifierKey)
			if err != nil {
				t.Fatalf("node %d: validator %s verifier key %q: %v", i, v.Name, v.VerifierKey, err)
			}
			verifiers = append(verifiers, nv)
		}
		n, err := note.Open(msg, note.VerifierList(verifiers...))
		if err != nil {
			t.Fatalf("node %d: note.Open(GET /checkpoint) = %v\n%s", i, err, msg)
		}
		if len(n.Sigs) < vs.Quorum || vs.Quorum != 3 {
			t.Errorf("node %d: note signed by %d validators, quorum %d", i, len(n.Sigs), vs.Quorum)
		}
		cp, err := ledger.ParseCheckpointText([]byte(n.Text))
		if err != nil || *cp != ledger.CheckpointOf(head) {
			t.Errorf("node %d: note text %q, %v; want the checkpoint of head %d", i, n.Text, err, head.Height)
		}
		if _, err := api.VerifyNote(c.g, msg); err != nil {
			t.Errorf("node %d: VerifyNote = %v", i, err)
		}
		if jc, err := m.client().Checkpoint(ctx); err != nil || jc.Note != string(msg) {
			t.Errorf("node %d: GET /v1/checkpoint note = %q, %v; want GET /checkpoint's", i, jc.Note, err)
		}
	}

	// Hostile and conflicting co-signatures from a host on the network.
	var boot []string
	for _, m := range c.members {
		boot = append(boot, m.addr)
	}
	h, err := p2p.New(ctx, p2p.Config{Chain: c.g.Chain, Genesis: c.g.Hash(), Key: netKey(100), Bootstrap: boot, Logger: testLogger("outsider")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := h.WaitTopicPeers(wctx, p2p.TopicAttest, 5); err != nil {
		t.Fatal(err)
	}
	v1, err := ledger.NewSigner(netKey(1))
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := ledger.NewSigner(netKey(101))
	if err != nil {
		t.Fatal(err)
	}
	fork := ledger.CheckpointOf(head)
	fork.Block[0] ^= 1
	fork.LogRoot[0] ^= 1
	forked := ledger.Cosign(v1, fork) // another block at the head's height
	ahead := ledger.CheckpointOf(head)
	ahead.Height++
	ahead.Block[3] ^= 1
	ahead.LogRoot[5] ^= 1
	rewritten := ledger.Cosign(v1, ahead) // another root for the head's log size
	bad := ledger.Cosign(v1, ledger.CheckpointOf(head))
	bad.Sig[9] ^= 1
	other := ledger.CheckpointOf(head)
	other.Chain = "otherchain"
	strangers := ledger.Cosign(stranger, ledger.CheckpointOf(head)) // not a validator
	otherChain := ledger.Cosign(v1, other)
	for _, data := range [][]byte{
		forked.Format(), rewritten.Format(), strangers.Format(),
		bad.Format(), // broken signature
		otherChain.Format(),
		[]byte("vcsledger-cosig/1\nchain x\n"), // garbage
	} {
		if err := h.Publish(ctx, p2p.TopicAttest, data); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for i, m := range c.members {
		for _, want := range []ledger.Cosignature{forked, rewritten} {
			for {
				ev, err := m.client().Evidence(ctx, 0)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, e := range ev {
					if e.Kind == "checkpoint" && strings.HasPrefix(e.Data, string(want.Format())) && strings.Contains(e.Data, string(head.Format())) &&
						e.Validator == want.Validator.String() && e.Height == want.Height {
						found = true
					}
				}
				if found {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d: no checkpoint evidence of the co-signature of block %s at height %d: %+v", i, want.Block, want.Height, ev)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		ev, _ := m.client().Evidence(ctx, 0)
		if len(ev) != 2 {
			t.Errorf("node %d: %d items of evidence, want 2: %+v", i, len(ev), ev)
		}
		msg := c.waitNote(i, head.Height, time.Second)
		if cp, err := api.VerifyNote(c.g, msg); err != nil || *cp != ledger.CheckpointOf(head) {
			t.Errorf("node %d: served note after the hostile co-signatures: %+v, %v", i, cp, err)
		}
	}
}

// TestNetworkCosignRecovery: a validator that was down while blocks were
// committed, and a replica that comes back on an empty database, serve a
// note of the current head signed by a quorum without any block being
// committed after they return: gossip sent the co-signatures while they
// were away, so they ask their peers for them (sync/2).
func TestNetworkCosignRecovery(t *testing.T) {
	repo := newFixtureRepo(t)
	repo.release("v0")
	c := newCluster(t, clusterOpts{validators: 4, followers: 1, attestQuorum: 0})
	c.startAll()
	c.waitPeers(4, 30*time.Second)
	first := keysOf(repo, repo.tagMany("before", 2))
	c.submitAll(0, first)
	c.waitAllCommitted(first, 30*time.Second)
	c.waitConverged(30 * time.Second)

	c.stop(3)
	c.stop(4)
	down := keysOf(repo, repo.tagMany("down", 3))
	c.submitAll(0, down)
	c.waitAllCommitted(down, 30*time.Second)
	head := c.waitConverged(30 * time.Second)
	c.waitNote(0, head.Height, 30*time.Second)

	c.start(3)
	c.startEmpty(4)
	c.waitHeight([]int{3, 4}, head.Height, time.Minute)
	for _, i := range []int{3, 4} {
		msg := c.waitNote(i, head.Height, 30*time.Second)
		if cp, err := api.VerifyNote(c.g, msg); err != nil || *cp != ledger.CheckpointOf(head) {
			t.Errorf("node %d: note %+v, %v; want the checkpoint of head %d", i, cp, err, head.Height)
		}
	}
	for i, h := range c.heads() {
		if h.Hash() != head.Hash() {
			t.Fatalf("node %d: head %d, want %d: a block was committed, the test proves nothing", i, h.Height, head.Height)
		}
	}
}
