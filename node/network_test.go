package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/p2p"
	"github.com/vcsledger/vcsledger/sqlitestore"
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
	c.audit()
}

// TestNetworkProposerCrash kills the proposer of the next height while
// records are being submitted: the other three commit that height after a
// round timeout and go on committing; the killed node restarts on what it
// left on disk and ends with the same chain. Every record any node
// acknowledged as committed is on every node.
func TestNetworkProposerCrash(t *testing.T) {
	repo := newFixtureRepo(t)
	repo.release("v0")
	keys := keysOf(repo, repo.tagMany("crash", 48))
	c := newCluster(t, clusterOpts{validators: 4, attestQuorum: 0})
	c.startAll()
	c.waitPeers(3, 30*time.Second)
	l := c.startLoad(keys, 4, 50*time.Millisecond, 30*time.Second, nil)
	defer l.halt()
	l.waitAcked(8, 60*time.Second)

	p, h := c.proposer(0)
	c.kill(p)
	others := c.without(p)
	gap := c.waitHeight(others, h, 60*time.Second)
	b, err := c.members[others[0]].Store().Block(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("proposer n%d of height %d killed; the others committed it %v later, in round %d (proposer %s)",
		p, h, gap.Round(time.Millisecond), b.Certificate.Round, c.name(b.Header.Proposer))
	before := l.ackedCount()
	l.waitAcked(before+8, 60*time.Second)
	// While it is down, a height it would propose costs a round timeout;
	// the chain goes on.
	down := c.heads()[others[0]].Height
	t.Logf("while n%d was down: heights %d to %d, largest gap between block times %v", p, h, down, c.maxGap(others[0], h, down))

	c.start(p)
	acked := l.drain()
	head := c.waitConverged(60 * time.Second)
	c.checkHave(acked)
	c.audit()
	a, pend, failed, p50, p99 := l.stats()
	t.Logf("head %d; %d records acknowledged, %d answered pending, %d failed (the killed node's); submit→commit p50 %v p99 %v",
		head.Height, a, pend, failed, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
}

// partitionFor is how long the partition tests keep the network cut
// (longer under the soak tag: soak_test.go).
var partitionFor = 10 * time.Second

// TestNetworkPartition cuts four validators 1|3 and 2|2 with the p2p gater
// while records are submitted on both sides. A side with a quorum (3 of 4)
// keeps committing; a side without acknowledges nothing: its ?wait
// submissions answer pending and its head does not move. After the
// partition heals, all nodes converge on one chain that holds every
// acknowledged record, and the records submitted on a minority side are
// committed too.
func TestNetworkPartition(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sides       [][]int
		quorumSides []int // indexes into sides that can commit
	}{
		{"1|3", [][]int{{3}, {0, 1, 2}}, []int{1}},
		{"2|2", [][]int{{0, 1}, {2, 3}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testPartition(t, tc.sides, tc.quorumSides, -1)
		})
	}
}

func testPartition(t *testing.T, sides [][]int, quorumSides []int, attestQuorum int) {
	repo := newFixtureRepo(t)
	repo.release("v0")
	c := newCluster(t, clusterOpts{validators: 4, attestQuorum: attestQuorum})
	c.startAll()
	c.waitPeers(3, 30*time.Second)
	before := keysOf(repo, repo.tagMany("before", 4))
	c.submitAll(0, before)
	c.waitAllCommitted(before, 30*time.Second)

	c.partition(sides...)
	cut := time.Now()
	time.Sleep(500 * time.Millisecond) // let blocks in flight land
	frozen := c.heads()

	// Each side gets submissions: a load on the sides that can commit, and
	// ?wait submissions that must not be acknowledged on the others.
	var majority []int
	for _, s := range quorumSides {
		majority = append(majority, sides[s]...)
	}
	var l *load
	if len(majority) > 0 {
		keys := keysOf(repo, repo.tagMany("major", 200))
		l = c.startLoad(keys, 3, 100*time.Millisecond, 20*time.Second, func() []int { return majority })
	}
	var minorityKeys []ledger.Key
	var wg sync.WaitGroup
	var mu sync.Mutex
	for s, side := range sides {
		if slices.Contains(quorumSides, s) {
			continue
		}
		for _, i := range side {
			ks := keysOf(repo, repo.tagMany(fmt.Sprintf("minor%d-", i), 3))
			minorityKeys = append(minorityKeys, ks...)
			cl := c.members[i].client()
			for _, k := range ks {
				wg.Add(1)
				go func() {
					defer wg.Done()
					wait := partitionFor - time.Since(cut) - time.Second
					resp, err := cl.Submit(context.Background(), api.SubmitRequest{Key: k.String()}, wait)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						t.Errorf("Submit(%s, wait) via minority node %d = %v", k, i, err)
					case resp.Status != api.StatusPending:
						t.Errorf("Submit(%s, wait) via minority node %d: status %q during the partition, want pending", k, i, resp.Status)
					}
				}()
			}
		}
	}
	wg.Wait()
	time.Sleep(time.Until(cut.Add(partitionFor)))

	// Still cut: only the quorum side moved.
	now := c.heads()
	for i, h := range now {
		moved := h.Height != frozen[i].Height
		if slices.Contains(majority, i) {
			continue
		}
		if moved {
			t.Errorf("node %d without a quorum moved from height %d to %d during the partition", i, frozen[i].Height, h.Height)
		}
	}
	var acked map[ledger.Key]ledger.Entry
	if l != nil {
		acked = l.halt()
		a, p, f, p50, p99 := l.stats()
		grown := now[majority[0]].Height - frozen[majority[0]].Height
		if a == 0 || grown == 0 {
			t.Errorf("the side with a quorum committed %d blocks and acknowledged %d records during the partition", grown, a)
		}
		t.Logf("during the %v partition the quorum side committed %d blocks, acknowledged %d records (%d pending, %d failed; p50 %v p99 %v)",
			partitionFor, grown, a, p, f, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	}

	c.heal()
	healed := time.Now()
	head := c.waitConverged(60 * time.Second)
	t.Logf("converged at height %d %v after the heal", head.Height, time.Since(healed).Round(time.Millisecond))
	c.checkHave(acked)
	c.waitAllCommitted(minorityKeys, 60*time.Second)
	t.Logf("the %d records submitted without a quorum committed everywhere %v after the heal", len(minorityKeys), time.Since(healed).Round(time.Millisecond))
	c.waitConverged(30 * time.Second)
	c.audit()
}

// TestResendEnvelope: a payload published again within the window goes out
// in a resend envelope with fresh bytes each time, which receivers unwrap;
// malformed envelopes are refused.
func TestResendEnvelope(t *testing.T) {
	var s sent
	now := time.Unix(1_700_000_000, 0)
	msg := []byte("vcsledger-vote/1\nsome signed vote\n")
	if got := s.wrap(msg, now); string(got) != string(msg) {
		t.Fatalf("first wrap = %q, want the payload itself", got)
	}
	a, b := s.wrap(msg, now.Add(time.Second)), s.wrap(msg, now.Add(2*time.Second))
	if string(a) == string(msg) || string(a) == string(b) {
		t.Fatalf("resends = %q, %q: want two different envelopes", a, b)
	}
	for _, w := range [][]byte{a, b, msg} {
		got, err := unwrapResend(w)
		if err != nil || string(got) != string(msg) {
			t.Errorf("unwrapResend(%q) = %q, %v; want the payload", w, got, err)
		}
	}
	if got := s.wrap(msg, now.Add(resendWindow+3*time.Second)); string(got) != string(msg) {
		t.Errorf("wrap after the window = %q, want the payload itself", got)
	}
	for _, bad := range []string{
		"vcsledger-resend/1 0123\nx",
		"vcsledger-resend/1 0123456789abcdeg\nx",
		"vcsledger-resend/1 0123456789ABCDEF\nx",
		"vcsledger-resend/1 0123456789abcdef x",
		"vcsledger-resend/1 0123456789abcdef\nvcsledger-resend/1 0123456789abcdef\nx",
	} {
		if got, err := unwrapResend([]byte(bad)); err == nil {
			t.Errorf("unwrapResend(%q) = %q, want an error", bad, got)
		}
	}
}

// catchUpBlocks is the length of the chain a node syncs from scratch in
// TestNetworkCatchUp, and downBlocks how many blocks the network commits by
// consensus while a node is down (more under the soak tag: soak_test.go).
var (
	catchUpBlocks = 1000
	downBlocks    = 10
)

// TestNetworkCatchUp: a node that missed many blocks catches up through the
// sync protocol and ends with the same chain.
//
// Nodes 0-2 start on a chain of catchUpBlocks blocks (built offline with
// the validators' keys, three records each) and node 3 on an empty store:
// it syncs all of it. Then node 3 stops while the others commit downBlocks
// one-record blocks by consensus, and restarts on its store: it syncs what
// it missed. Last, node 2 restarts on an empty database and syncs the whole
// chain from genesis. After each step every store passes Audit and all hold
// the same block hashes, and every acknowledged record is everywhere.
func TestNetworkCatchUp(t *testing.T) {
	const perBlock = 3
	repo := newFixtureRepo(t)
	repo.release("v0")
	c := newCluster(t, clusterOpts{validators: 4, attestQuorum: 0, genesisAge: time.Duration(catchUpBlocks)*50*time.Millisecond + time.Minute,
		tweak: func(i int, cfg *Config) {
			cfg.MaxBlockRecords = 1
			// Node 3's turns to propose while it is down cost this each.
			cfg.TimeoutPropose = 500 * time.Millisecond
		}})
	start := time.Now()
	built := c.prebuild(catchUpBlocks, perBlock)
	t.Logf("built %d blocks offline in %v", catchUpBlocks, time.Since(start).Round(time.Millisecond))
	for i := 0; i < 3; i++ {
		c.seed(i, built)
	}
	start = time.Now()
	c.startAll()
	took := c.waitHeight([]int{3}, uint64(catchUpBlocks), 5*time.Minute)
	t.Logf("node 3 synced %d blocks (%d records) from genesis in %v: %.0f blocks/s, %.0f records/s", catchUpBlocks, catchUpBlocks*perBlock,
		took.Round(time.Millisecond), float64(catchUpBlocks)/took.Seconds(), float64(catchUpBlocks*perBlock)/took.Seconds())
	c.waitConverged(time.Minute)

	// Node 3 down while the others commit by consensus.
	c.waitPeers(3, 30*time.Second)
	c.stop(3)
	keys := keysOf(repo, repo.tagMany("down", downBlocks))
	l := c.startLoad(keys, 4, 0, 60*time.Second, nil)
	l.waitProgress(len(keys), 90*time.Second)
	acked := l.drain()
	if a, p, f, _, _ := l.stats(); a != len(keys) {
		t.Fatalf("with node 3 down, %d of %d records acknowledged (%d pending, %d failed)", a, len(keys), p, f)
	}
	down := c.heads()[0].Height - uint64(catchUpBlocks)
	start = time.Now()
	c.start(3)
	took = c.waitHeight([]int{3}, uint64(catchUpBlocks)+down, 2*time.Minute)
	t.Logf("node 3 missed %d blocks committed by consensus; restarted, it caught up in %v", down, took.Round(time.Millisecond))
	head := c.waitConverged(2 * time.Minute)
	c.checkHave(acked)

	// Node 2 loses its database.
	c.stop(2)
	start = time.Now()
	c.startEmpty(2)
	took = c.waitHeight([]int{2}, head.Height, 5*time.Minute)
	t.Logf("node 2 restarted on an empty database synced %d blocks from genesis in %v", head.Height, took.Round(time.Millisecond))
	c.waitConverged(time.Minute)
	c.checkHave(acked)
	c.audit()
}

// TestNetworkSyncKilled kills a replica while it syncs from genesis, with
// blocks fetched and verified ahead of its writes: the database it leaves
// holds a valid chain (every block whole, its log and certificates right:
// Audit), and restarted on it the replica syncs the rest.
func TestNetworkSyncKilled(t *testing.T) {
	const blocks, perBlock, replica = 600, 50, 4
	c := newCluster(t, clusterOpts{validators: 4, followers: 1, attestQuorum: 0,
		genesisAge: time.Duration(blocks)*50*time.Millisecond + time.Minute})
	c.seed(0, c.prebuild(blocks, perBlock))
	c.start(0)
	c.start(replica)
	c.waitHeight([]int{replica}, 20, time.Minute)
	c.kill(replica)

	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, c.members[replica].Cfg.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	head, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.Height >= blocks {
		t.Fatalf("the replica synced all %d blocks before it was killed", blocks)
	}
	t.Logf("killed at height %d of %d", head.Height, blocks)
	seal, err := SealChecker(c.g, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Audit(ctx, st, c.g, seal, nil); err != nil {
		t.Errorf("Audit of the killed replica's store = %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	c.start(replica)
	c.waitHeight([]int{replica}, blocks, 2*time.Minute)
	c.audit()
}

// TestNetworkHostileGossip publishes crafted messages on every gossip topic
// from an extra libp2p host of the same chain that is no validator: blocks
// certified by non-validators or by too few validators, blocks and votes of
// another chain, a proposal by a non-validator, a vote with a broken
// signature, attestations by a non-validator or for another chain, garbage;
// and replays of a committed block and of its precommits. Nothing changes
// on any node (same heads, no evidence, no record), the nodes ban the host
// for its invalid messages, and the network still commits.
func TestNetworkHostileGossip(t *testing.T) {
	repo := newFixtureRepo(t)
	repo.release("v0")
	c := newCluster(t, clusterOpts{validators: 4, attestQuorum: 0})
	c.startAll()
	c.waitPeers(3, 30*time.Second)
	first := keysOf(repo, repo.tagMany("first", 2))
	c.submitAll(0, first)
	c.waitAllCommitted(first, 30*time.Second)
	c.waitConverged(30 * time.Second)

	ctx := context.Background()
	outsider := netKey(100)
	var boot []string
	for _, m := range c.members {
		boot = append(boot, m.addr)
	}
	h, err := p2p.New(ctx, p2p.Config{Chain: c.g.Chain, Genesis: c.g.Hash(), Key: outsider, Bootstrap: boot, Logger: testLogger("outsider")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, topic := range p2p.Topics {
		if err := h.WaitTopicPeers(wctx, topic, 4); err != nil {
			t.Fatal(err)
		}
	}

	st := c.members[0].Store()
	head, err := st.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := st.Block(ctx, head.Height)
	if err != nil {
		t.Fatal(err)
	}
	before := c.heads()

	signerOf := func(k ed25519.PrivateKey) *ledger.Signer {
		s, err := ledger.NewSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	validators := []*ledger.Signer{signerOf(netKey(0)), signerOf(netKey(1)), signerOf(netKey(2)), signerOf(netKey(3))}
	strangers := []*ledger.Signer{signerOf(outsider), signerOf(netKey(101)), signerOf(netKey(102))}
	certify := func(b *ledger.Block, by []*ledger.Signer) *ledger.Certificate {
		var votes []ledger.SignedVote
		for _, s := range by {
			votes = append(votes, ledger.SignVote(s, ledger.Vote{Chain: b.Header.Chain, Type: ledger.Precommit, Height: b.Header.Height, Block: b.Hash()}))
		}
		cert, err := ledger.NewCertificate(votes)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	// next is a well-formed block after the head with one record, proposed
	// by the proposer of its round 0, without certificate.
	next := func(chain string, tag string) *ledger.Block {
		r := ledger.Record{Key: repo.key(tag), Commit: repo.rev("v0"), Tree: "t1:" + "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}
		_, root, err := ledger.AppendLog(ledger.HashReaderOf(ctx, st), int64(head.LogSize), []ledger.Hash{r.LeafHash()})
		if err != nil {
			t.Fatal(err)
		}
		return &ledger.Block{Records: []ledger.Record{r}, Header: ledger.Header{
			Chain: chain, Height: head.Height + 1, Prev: head.Hash(), Time: time.Now().UnixMilli(), Engine: ledger.EnginePoA,
			Proposer: c.vals().Proposer(chain, head.Hash(), head.Height+1, 0), Records: 1, LogSize: head.LogSize + 1, LogRoot: root,
		}}
	}
	type msg struct {
		name    string
		topic   string
		data    []byte
		invalid bool // refused by gossip validation (a strike), not just ignored
	}
	var msgs []msg
	add := func(name, topic string, data []byte, invalid bool) {
		msgs = append(msgs, msg{name, topic, data, invalid})
	}

	b := next(c.g.Chain, "evil-strangers")
	b.Certificate = certify(b, strangers)
	add("block certified by non-validators", p2p.TopicBlocks, b.Format(), true)
	b = next(c.g.Chain, "evil-one")
	b.Certificate = certify(b, validators[:1])
	add("block certified by one validator of four", p2p.TopicBlocks, b.Format(), true)
	b = next("otherchain", "evil-chain")
	b.Certificate = certify(b, validators)
	add("block of another chain, certified by the validators' keys", p2p.TopicBlocks, b.Format(), true)
	b = next(c.g.Chain, "evil-nocert")
	add("block without certificate", p2p.TopicBlocks, b.Format(), true)
	add("garbage block", p2p.TopicBlocks, []byte("vcsledger-blockdata/1\nheader 99999999\n"), true)
	add("replayed committed block", p2p.TopicBlocks, committed.Format(), false)

	b = next(c.g.Chain, "evil-proposal")
	p := &consensus.Proposal{Chain: c.g.Chain, Height: b.Header.Height, POLRound: -1, Block: b, Proposer: strangers[0].Public()}
	p.Sig = strangers[0].Sign(p.SignBytes())
	add("proposal by a non-validator", p2p.TopicConsensus, (&consensus.Message{Proposal: p}).Format(), true)
	v := ledger.SignVote(validators[1], ledger.Vote{Chain: c.g.Chain, Type: ledger.Prevote, Height: head.Height + 1, Block: b.Hash()})
	v.Sig[7] ^= 0x40
	add("prevote with a broken signature", p2p.TopicConsensus, (&consensus.Message{Vote: &v}).Format(), true)
	v = ledger.SignVote(strangers[1], ledger.Vote{Chain: c.g.Chain, Type: ledger.Prevote, Height: head.Height + 1, Block: b.Hash()})
	add("prevote by a non-validator", p2p.TopicConsensus, (&consensus.Message{Vote: &v}).Format(), true)
	v = ledger.SignVote(validators[2], ledger.Vote{Chain: "otherchain", Type: ledger.Prevote, Height: head.Height + 1, Block: b.Hash()})
	add("prevote of another chain by a validator's key", p2p.TopicConsensus, (&consensus.Message{Vote: &v}).Format(), true)
	for _, cs := range committed.Certificate.Sigs {
		old := ledger.SignedVote{Vote: committed.Certificate.Vote(cs.Validator), Sig: cs.Sig}
		add("replayed precommit of the head", p2p.TopicConsensus, (&consensus.Message{Vote: &old}).Format(), false)
	}

	rec := ledger.Record{Key: repo.key("evil-attest"), Commit: repo.rev("v0"), Tree: "t1:" + "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}
	a := ledger.Attest(strangers[0], c.g.Chain, rec)
	add("attestation by a non-validator", p2p.TopicAttest, a.Format(), true)
	a = ledger.Attest(validators[0], "otherchain", rec)
	add("attestation of another chain", p2p.TopicAttest, a.Format(), true)
	add("garbage on the mempool topic", p2p.TopicMempool, []byte(`{"records":[{"key":"not a key"}]}`), true)
	add("garbage resend envelope", p2p.TopicMempool, []byte("vcsledger-resend/1 zz\n{}"), true)

	invalid := 0
	for _, m := range msgs {
		if err := h.Publish(ctx, m.topic, m.data); err != nil {
			t.Fatalf("publish %s: %v", m.name, err)
		}
		if m.invalid {
			invalid++
		}
		time.Sleep(20 * time.Millisecond)
	}
	if invalid < 10 {
		t.Fatalf("only %d invalid messages: the ban needs 10", invalid)
	}
	// Every node bans the sender (10 invalid messages), and nothing moved.
	deadline := time.Now().Add(20 * time.Second)
	for _, i := range c.live() {
		for !slices.Contains(c.members[i].host.Blocked(), h.ID()) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d did not ban the host that sent %d invalid messages (peers: %+v)", i, invalid, c.members[i].host.Peers())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for i, hd := range c.heads() {
		if hd.Hash() != before[i].Hash() {
			t.Errorf("node %d: head moved from %d to %d under hostile gossip", i, before[i].Height, hd.Height)
		}
		n := c.members[i].Node
		ev, err := n.Store().Evidence(ctx, 10)
		if err != nil || len(ev) > 0 {
			t.Errorf("node %d: evidence %v, %v; want none", i, ev, err)
		}
		for _, tag := range []string{"evil-strangers", "evil-one", "evil-chain", "evil-nocert", "evil-proposal", "evil-attest"} {
			if _, err := n.Store().Lookup(ctx, repo.key(tag)); err == nil {
				t.Errorf("node %d committed %s", i, tag)
			}
			if _, ok := n.pool.Get(repo.key(tag)); ok && tag == "evil-attest" {
				t.Errorf("node %d took %s into its mempool", i, tag)
			}
		}
	}
	// The network still works.
	after := keysOf(repo, repo.tagMany("after", 2))
	c.submitAll(1, after)
	c.waitAllCommitted(after, 30*time.Second)
	c.waitConverged(30 * time.Second)
	c.audit()
}

// TestNetworkEquivocatingTwin runs validator 0's key on a second node as
// well. Both sign, so whenever they see different proposals or time out
// differently they cast conflicting votes. One faulty validator of four
// cannot fork the chain: under load every node (both twins too) holds the
// same block at every height, every acknowledged record is everywhere and
// every store passes Audit.
//
// "copied home": the twin is a copy of validator 0's home, so it has its
// peer id too, and the others' gossip hears one of the two at a time.
// "own peer id": the twin has its own network identity (Config.PeerKey),
// so everyone hears both; the honest nodes must keep their conflicting
// votes or proposals as evidence naming validator 0, and serve it.
func TestNetworkEquivocatingTwin(t *testing.T) {
	t.Run("copied home", func(t *testing.T) { testTwin(t, nil) })
	t.Run("own peer id", func(t *testing.T) { testTwin(t, netKey(200)) })
}

func testTwin(t *testing.T, peerKey ed25519.PrivateKey) {
	repo := newFixtureRepo(t)
	repo.release("v0")
	c := newCluster(t, clusterOpts{validators: 4, attestQuorum: 0})
	twin := c.addMember(netKey(0), peerKey)
	c.startAll()
	ctx := context.Background()
	honest := []int{1, 2, 3}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, i := range honest {
		if err := c.members[i].host.WaitTopicPeers(wctx, topicConsensus, 3); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	offender := publicKeyOf(netKey(0))

	evidence := func() (int, []string) {
		n := 0
		var kinds []string
		for _, i := range honest {
			items, err := c.members[i].Store().Evidence(ctx, 0)
			if err != nil {
				t.Fatalf("node %d evidence: %v", i, err)
			}
			for _, it := range items {
				ev, err := consensus.ParseEvidence(it.Data)
				if err != nil {
					t.Fatalf("node %d keeps evidence that does not parse: %v", i, err)
				}
				if err := ev.Verify(c.vals()); err != nil {
					t.Fatalf("node %d keeps evidence that does not verify: %v", i, err)
				}
				if ev.Offender() != offender {
					t.Fatalf("node %d holds evidence against %s, an honest validator", i, c.name(ev.Offender()))
				}
				n++
				kinds = append(kinds, fmt.Sprintf("n%d:%s@%d", i, ev.Kind(), ev.Height()))
			}
		}
		return n, kinds
	}

	// Load through every node, twins included, until the twins have been
	// caught (or the keys run out).
	keys := keysOf(repo, repo.tagMany("twin", 60))
	l := c.startLoad(keys, 4, 20*time.Millisecond, 10*time.Second, func() []int { return []int{1, 2, 3, 0, twin} })
	deadline := time.Now().Add(90 * time.Second)
	for peerKey != nil {
		if n, _ := evidence(); n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	acked := l.drain()
	head := c.waitConverged(60 * time.Second)
	c.checkHave(acked)
	c.audit()
	n, kinds := evidence()
	t.Logf("head %d, %d records acknowledged; %d evidence items: %v", head.Height, len(acked), n, kinds[:min(len(kinds), 6)])
	if peerKey == nil {
		return
	}
	if n == 0 {
		t.Fatalf("no evidence against the twinned validator after %d records; engines: %s", len(acked), c.engines())
	}
	served := 0
	for _, i := range honest {
		items, err := c.members[i].client().Evidence(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range items {
			if e.Validator != offender.String() {
				t.Errorf("node %d serves evidence against %s", i, e.Validator)
			}
			served++
		}
	}
	if served != n {
		t.Errorf("the honest nodes serve %d evidence items at /v1/evidence, store %d", served, n)
	}
}
