package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
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
	a, pend, failed, p50, p99 := l.stats()
	t.Logf("head %d; %d records acknowledged, %d answered pending, %d failed (the killed node's); submit→commit p50 %v p99 %v",
		head.Height, a, pend, failed, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
}

// partitionFor is how long the partition tests keep the network cut
// (longer under the soak tag).
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
