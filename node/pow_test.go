package node

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/p2p"
	"github.com/vcsledger/vcsledger/sqlitestore"
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

	// /v1/status and /metrics show the mining.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := st.Mining
		if m == nil || !m.Miner || m.Workers != 1 || m.Bits == 0 || m.BlocksMined == 0 || m.ChainWork == "" || m.ChainWork == "0" {
			t.Fatalf("miner's status mining = %+v", m)
		}
		if m.Active && m.HashRate > 0 && m.Hashes > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("miner's status mining = %+v; want active with a hash rate", m)
		}
	}
	st, err := replica.client().Status(ctx)
	if err != nil || st.Mining == nil || st.Mining.Miner || st.Mining.Active || st.Mining.HashRate != 0 || st.Mining.ChainWork == "0" {
		t.Fatalf("replica's status = %+v, %v; want mining off", st, err)
	}
	mresp, err := http.Get(miner.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, name := range []string{"vcsledger_pow_hash_rate", "vcsledger_pow_hashes_total", "vcsledger_pow_blocks_mined_total", "vcsledger_pow_side_blocks"} {
		if !strings.Contains(string(body), "\n"+name+" ") {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// minePoW sets b's nonce so that its hash has the work its bits ask for.
func minePoW(b *ledger.Block) {
	for consensus.CheckWork(&b.Header) != nil {
		b.Header.Nonce++
	}
}

// powBranch returns n mined empty blocks after the block at height fork of
// s's main chain, with their stored log hashes.
func powBranch(t *testing.T, s ledger.Store, fork uint64, n int, salt int64) ([]*ledger.Block, [][]ledger.Hash) {
	t.Helper()
	o, err := ledger.NewOverlay(context.Background(), s, fork)
	if err != nil {
		t.Fatal(err)
	}
	var hashes [][]ledger.Hash
	for i := 0; i < n; i++ {
		b, stored := ledgertest.NextPoWBlock(t, o, nil, salt)
		minePoW(b)
		if err := o.Append(context.Background(), b, stored); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, stored)
	}
	return o.Blocks(), hashes
}

// sideHashes returns the hashes of s's side blocks.
func sideHashes(t *testing.T, s ledger.Reorger) map[ledger.Hash]bool {
	t.Helper()
	hs, err := s.SideHeaders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[ledger.Hash]bool)
	for i := range hs {
		out[hs[i].Hash()] = true
	}
	return out
}

// TestPoWPruneSide starts a node on a store with a main chain of 40 blocks
// and two side branches: one forking at height 5, more than the prune
// depth (10 x 2 confirmations) below the head, which the node deletes at
// start, and one forking at 30, which it keeps until a miner's blocks
// bury the fork that deep too.
func TestPoWPruneSide(t *testing.T) {
	ctx := context.Background()
	g := &ledger.Genesis{Chain: "powprune", Time: time.Now().Add(-time.Hour).UnixMilli(), Engine: ledger.EnginePoW,
		BlockInterval: 1000, AttestQuorum: 0, Bits: 1, Retarget: 1000, Confirmations: 2}
	dir := t.TempDir()
	db := filepath.Join(dir, "ledger.db")
	s, err := sqlitestore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.InitStore(ctx, s, g); err != nil {
		t.Fatal(err)
	}
	main, hashes := powBranch(t, s, 0, 40, 0)
	for i, b := range main {
		if err := s.Append(ctx, b, hashes[i]); err != nil {
			t.Fatal(err)
		}
	}
	deep, _ := powBranch(t, s, 5, 3, 1)
	recent, _ := powBranch(t, s, 30, 2, 1)
	for _, b := range append(deep, recent...) {
		if err := s.PutSide(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mdir := t.TempDir() // the miner starts from a copy
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mdir, "ledger.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}

	replica := startNode(t, Config{Genesis: g, Key: netKey(0), DBPath: db, Logger: testLogger("r0")})
	side := sideHashes(t, replica.Store())
	for _, b := range deep {
		if side[b.Hash()] {
			t.Errorf("side block %d of the branch forking at 5 kept", b.Header.Height)
		}
	}
	for _, b := range recent {
		if !side[b.Hash()] {
			t.Errorf("side block %d of the branch forking at 30 pruned", b.Header.Height)
		}
	}
	if head := replica.head(); head.Hash() != main[len(main)-1].Hash() {
		t.Fatalf("head %d, want the main chain's", head.Height)
	}

	miner := startNode(t, Config{Genesis: g, Key: netKey(1), DBPath: filepath.Join(mdir, "ledger.db"), Mine: true, MineWorkers: 1,
		Bootstrap: replica.P2PAddrs(), Logger: testLogger("m1")})
	waitPoWHeight(t, replica, 51, time.Minute)
	for _, tn := range []*testNode{replica, miner} {
		deadline := time.Now().Add(time.Minute)
		for len(sideHashes(t, tn.Store())) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("side blocks %v not pruned with the head at %d", sideHashes(t, tn.Store()), tn.head().Height)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	replica.audit()
}

// TestPoWSyncStrikesInvalid connects a node to peers that serve invalid
// blocks through the sync protocol (one with the wrong bits, one whose
// log root is wrong): the node keeps its chain and strikes both peers,
// again at each sync while they offer the invalid branch.
func TestPoWSyncStrikesInvalid(t *testing.T) {
	ctx := context.Background()
	g := powTestGenesis(1000)
	tn := startNode(t, Config{Genesis: g, Key: netKey(0), Logger: testLogger("n0")})
	genesis := tn.head()
	bad := map[string]func(b *ledger.Block){
		"wrong bits":     func(b *ledger.Block) { b.Header.Bits = g.Bits - 1 },
		"wrong log root": func(b *ledger.Block) { b.Header.LogRoot[0] ^= 1 },
	}
	var hosts []*p2p.Host
	i := 0
	for name, spoil := range bad {
		i++
		src := ledgertest.NewMemStore()
		if err := ledger.InitStore(ctx, src, g); err != nil {
			t.Fatal(err)
		}
		b, stored := ledgertest.NextPoWBlock(t, src, nil, 0)
		b.Header.Bits = g.Bits
		spoil(b)
		minePoW(b)
		if err := src.Append(ctx, b, stored); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h, err := p2p.New(ctx, p2p.Config{Chain: g.Chain, Genesis: g.Hash(), Key: netKey(100 + i), Bootstrap: tn.P2PAddrs(),
			Source: src, Logger: testLogger(name)})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		hosts = append(hosts, h)
	}
	deadline := time.Now().Add(time.Minute)
	for _, h := range hosts {
		for {
			pi, ok := tn.host.Peer(h.ID())
			if ok && pi.Invalid >= 2 || slices.Contains(tn.host.Blocked(), h.ID()) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("peer %s serving an invalid block not struck twice: %+v", h.ID(), pi)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if head := tn.head(); head.Hash() != genesis.Hash() {
		t.Fatalf("head moved to %d", head.Height)
	}
	if side := sideHashes(t, tn.Store()); len(side) > 1 {
		t.Errorf("%d side blocks stored", len(side))
	}
}
