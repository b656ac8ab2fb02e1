package p2p

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func waitMesh(t testing.TB, n int, hs ...*Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, h := range hs {
		for _, topic := range Topics {
			if err := h.WaitTopicPeers(ctx, topic, n); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestGossipAllTopics(t *testing.T) {
	recs := []*recorder{newRecorder(), newRecorder(), newRecorder()}
	a := startHost(t, testConfig(testGenesis, recs[0], nil))
	b := startHost(t, testConfig(testGenesis, recs[1], nil, a))
	c := startHost(t, testConfig(testGenesis, recs[2], nil, a, b))
	hosts := []*Host{a, b, c}
	waitMesh(t, 2, hosts...)
	ctx := context.Background()
	for i, h := range hosts {
		for _, topic := range Topics {
			if err := h.Publish(ctx, topic, fmt.Appendf(nil, "%s from %d", topic, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, r := range recs {
		for _, topic := range Topics {
			// Each host gets the two others' messages, not its own.
			r.waitCount(t, topic, 2, 10*time.Second)
			for j := range hosts {
				want := fmt.Appendf(nil, "%s from %d", topic, j)
				if got := r.has(topic, want); got != (i != j) {
					t.Errorf("host %d has %q = %v, want %v", i, want, got, i != j)
				}
			}
		}
	}
	for i, h := range hosts {
		if got := len(h.Peers()); got != 2 {
			t.Errorf("host %d: %d peers, want 2", i, got)
		}
	}
}

func TestGossipDeliverOwn(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	cfg := testConfig(testGenesis, ra, nil)
	cfg.DeliverOwn = true
	a := startHost(t, cfg)
	b := startHost(t, testConfig(testGenesis, rb, nil, a))
	waitMesh(t, 1, a, b)
	if err := a.Publish(context.Background(), TopicAttest, []byte("mine")); err != nil {
		t.Fatal(err)
	}
	ra.waitCount(t, TopicAttest, 1, 5*time.Second)
	rb.waitCount(t, TopicAttest, 1, 5*time.Second)
	if ra.sawValidate("mine") != 0 {
		t.Errorf("own publish was passed to Validate")
	}
}

// TestGossipBurst checks that a burst far above libp2p's default queue
// sizes (32) arrives whole: no silent loss.
func TestGossipBurst(t *testing.T) {
	const n = 5000
	ra, rb := newRecorder(), newRecorder()
	a := startHost(t, testConfig(testGenesis, ra, nil))
	b := startHost(t, testConfig(testGenesis, rb, nil, a))
	waitMesh(t, 1, a, b)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := a.Publish(ctx, TopicMempool, fmt.Appendf(nil, "pending record %06d %0100d", i, i)); err != nil {
			t.Fatal(err)
		}
	}
	rb.waitCount(t, TopicMempool, n, 40*time.Second)
	t.Logf("%d messages in %v", n, time.Since(start))
	time.Sleep(100 * time.Millisecond)
	if got := rb.count(TopicMempool); got != n {
		t.Errorf("received %d messages, want exactly %d", got, n)
	}
	if d := a.Drops(); d != (DropStats{}) {
		t.Errorf("a dropped %+v", d)
	}
	if d := b.Drops(); d != (DropStats{}) {
		t.Errorf("b dropped %+v", d)
	}
}

func TestPublishLimits(t *testing.T) {
	cfg := testConfig(testGenesis, nil, nil)
	cfg.MaxPoolMessageBytes = 4 << 10
	cfg.MaxMessageBytes = 8 << 10
	a := startHost(t, cfg)
	ctx := context.Background()
	tests := []struct {
		topic string
		size  int
		ok    bool
	}{
		{TopicMempool, 4 << 10, true},
		{TopicMempool, 4<<10 + 1, false},
		{TopicAttest, 4<<10 + 1, false},
		{TopicConsensus, 8 << 10, true},
		{TopicBlocks, 8<<10 + 1, false},
		{"nope", 1, false},
	}
	for _, tc := range tests {
		err := a.Publish(ctx, tc.topic, make([]byte, tc.size))
		if (err == nil) != tc.ok {
			t.Errorf("Publish(%s, %d bytes) = %v, want ok %v", tc.topic, tc.size, err, tc.ok)
		}
	}
}

// TestInvalidMessages runs m - a - b in a line: m publishes invalid
// messages; a rejects them, does not forward them to b, and bans m.
func TestInvalidMessages(t *testing.T) {
	rm, ra, rb := newRecorder(), newRecorder(), newRecorder()
	a := startHost(t, testConfig(testGenesis, ra, nil))
	cfgM := testConfig(testGenesis, rm, nil, a)
	m := startHost(t, cfgM)
	b := startHost(t, testConfig(testGenesis, rb, nil, a))
	waitMesh(t, 2, a)
	waitMesh(t, 1, m, b)
	ctx := context.Background()
	// The path works: a good message reaches b through a.
	if err := m.Publish(ctx, TopicConsensus, []byte("good 1")); err != nil {
		t.Fatal(err)
	}
	rb.waitCount(t, TopicConsensus, 1, 5*time.Second)
	// Ignored messages cost nothing.
	for i := 0; i < 3*DefaultMaxInvalid; i++ {
		if err := m.Publish(ctx, TopicConsensus, fmt.Appendf(nil, "ignore %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "a validated the ignored messages", func() bool { return ra.sawValidate("ignore") == 3*DefaultMaxInvalid })
	if !connected(a, m) || slices.Contains(a.Blocked(), m.ID()) {
		t.Fatal("a dropped m for ignored messages")
	}
	for i := 0; i < DefaultMaxInvalid; i++ {
		if err := m.Publish(ctx, TopicConsensus, fmt.Appendf(nil, "bad %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "a banned m", func() bool { return slices.Contains(a.Blocked(), m.ID()) && !connected(a, m) })
	eventually(t, 5*time.Second, "m's gossip score below zero", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.scores[m.ID()] < 0
	})
	if n := ra.sawValidate("bad"); n == 0 {
		t.Errorf("a validated no bad message")
	}
	if n := ra.count(TopicConsensus); n != 1 {
		t.Errorf("a delivered %d consensus messages, want 1", n)
	}
	if n := rb.sawValidate("bad") + rb.sawValidate("ignore"); n != 0 {
		t.Errorf("b was forwarded %d rejected or ignored messages", n)
	}
	// The ban holds: m cannot reconnect (a's gater refuses it).
	ctxT, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := m.Connect(ctxT, a.Addrs()[0]); err == nil {
		time.Sleep(200 * time.Millisecond)
		if connected(a, m) {
			t.Errorf("m reconnected to a after the ban")
		}
	}
	// a and b still talk.
	if err := a.Publish(ctx, TopicConsensus, []byte("good 2")); err != nil {
		t.Fatal(err)
	}
	rb.waitCount(t, TopicConsensus, 2, 5*time.Second)
}

func TestOtherGenesisRefused(t *testing.T) {
	ra := newRecorder()
	a := startHost(t, testConfig(testGenesis, ra, nil))
	// Same chain id, another genesis: banned on both sides.
	x := startHost(t, testConfig(testGenesis2, nil, nil, a))
	eventually(t, 10*time.Second, "a banned x", func() bool {
		return slices.Contains(a.Blocked(), x.ID()) && !connected(a, x)
	})
	eventually(t, 5*time.Second, "x banned a", func() bool { return slices.Contains(x.Blocked(), a.ID()) })
	if len(a.Peers()) != 0 || len(x.Peers()) != 0 {
		t.Errorf("peers after refusal: a %v, x %v", a.Peers(), x.Peers())
	}
	// Another chain id: no hello protocol in common, disconnected.
	cfg := testConfig(testGenesis, nil, nil, a)
	cfg.Chain = "other"
	y := startHost(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = y.Connect(ctx, a.Addrs()[0])
	eventually(t, 10*time.Second, "a disconnected y", func() bool { return !connected(a, y) })
	if _, ok := a.Peer(y.ID()); ok {
		t.Errorf("a lists y as a peer")
	}
	// x's messages never reach a's handler.
	if n := ra.sawValidate(""); n != 0 {
		t.Errorf("a validated %d messages from refused peers", n)
	}
}

var testGenesis2 = ledgerHash("p2p test genesis 2")

// TestPartitionHeal partitions four hosts 1|3 and then 2|2 with the
// gater, checks that gossip stays within each side, then heals and checks
// that the reconnect loop restores every link.
func TestPartitionHeal(t *testing.T) {
	var hosts []*Host
	var recs []*recorder
	for i := 0; i < 4; i++ {
		r := newRecorder()
		hosts = append(hosts, startHost(t, testConfig(testGenesis, r, nil, hosts...)))
		recs = append(recs, r)
	}
	fullMesh := func() {
		t.Helper()
		for i, h := range hosts {
			others := slices.Delete(slices.Clone(hosts), i, i+1)
			eventually(t, 15*time.Second, fmt.Sprintf("host %d linked to all", i), func() bool { return hasPeers(h, others...) })
		}
		waitMesh(t, 3, hosts...)
	}
	fullMesh()
	ctx := context.Background()
	seq := 0
	// publish sends a message from hosts[from] and checks who gets it.
	publish := func(from int, want []int) {
		t.Helper()
		seq++
		msg := fmt.Appendf(nil, "msg %d from %d", seq, from)
		if err := hosts[from].Publish(ctx, TopicBlocks, msg); err != nil {
			t.Fatal(err)
		}
		for _, i := range want {
			eventually(t, 10*time.Second, fmt.Sprintf("host %d got %q", i, msg), func() bool { return recs[i].has(TopicBlocks, msg) })
		}
		time.Sleep(300 * time.Millisecond)
		for i := range hosts {
			if i != from && !slices.Contains(want, i) && recs[i].has(TopicBlocks, msg) {
				t.Errorf("host %d across the partition got %q", i, msg)
			}
		}
	}
	partition := func(sides ...[]int) {
		t.Helper()
		for _, a := range sides[0] {
			for _, b := range sides[1] {
				hosts[a].Block(hosts[b].ID())
				hosts[b].Block(hosts[a].ID())
			}
		}
		for _, a := range sides[0] {
			for _, b := range sides[1] {
				eventually(t, 5*time.Second, "partition", func() bool { return !connected(hosts[a], hosts[b]) })
			}
		}
	}
	heal := func() {
		t.Helper()
		for _, h := range hosts {
			for _, p := range h.Blocked() {
				h.Unblock(p)
			}
		}
		fullMesh()
	}

	partition([]int{0}, []int{1, 2, 3})
	publish(1, []int{2, 3})
	publish(0, nil)
	heal()
	publish(0, []int{1, 2, 3})

	partition([]int{0, 1}, []int{2, 3})
	publish(0, []int{1})
	publish(3, []int{2})
	heal()
	publish(2, []int{0, 1, 3})
}

// TestReconnect: a bootstrap peer that restarts (same key, same address)
// is redialed; so is one whose connection was cut.
func TestReconnect(t *testing.T) {
	cfgA := testConfig(testGenesis, nil, nil)
	a, err := New(context.Background(), cfgA)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addrs()[0]
	b := startHost(t, testConfig(testGenesis, nil, nil, a))
	eventually(t, 10*time.Second, "b linked to a", func() bool { return hasPeers(b, a) })

	a.host.Network().ClosePeer(b.ID())
	eventually(t, 10*time.Second, "b redialed a after the cut", func() bool { return hasPeers(b, a) })

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b saw a go", func() bool { return !connected(b, a) })
	time.Sleep(300 * time.Millisecond) // a few failed redials
	cfgA.Listen = []string{strings.TrimSuffix(addr, "/p2p/"+a.ID().String())}
	a2 := startHost(t, cfgA)
	if a2.ID() != a.ID() {
		t.Fatalf("restarted host has id %s, want %s", a2.ID(), a.ID())
	}
	eventually(t, 10*time.Second, "b redialed the restarted a", func() bool { return hasPeers(b, a2) })
}
