package consensus

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// powGenesis returns a pow chain "powtest" of difficulty bits, retargeting
// every retarget blocks toward 1 s blocks.
func powGenesis(bits uint32, retarget uint64) *ledger.Genesis {
	return &ledger.Genesis{Chain: "powtest", Time: genesisTime.UnixMilli(), Engine: ledger.EnginePoW, BlockInterval: 1000,
		AttestQuorum: -1, Bits: bits, Retarget: retarget, Confirmations: 6}
}

// A powFixture grows block trees of a pow chain by mining headers.
type powFixture struct {
	tb   testing.TB
	g    *ledger.Genesis
	p    PoWParams
	tree *Tree
	salt uint64 // makes sibling headers differ
}

func newPowFixture(tb testing.TB, bits uint32, retarget uint64) *powFixture {
	tb.Helper()
	g := powGenesis(bits, retarget)
	p, err := NewPoWParams(g)
	if err != nil {
		tb.Fatal(err)
	}
	gh := g.Block().Header
	tree, err := NewTree(p, &gh)
	if err != nil {
		tb.Fatal(err)
	}
	return &powFixture{tb: tb, g: g, p: p, tree: tree}
}

// header returns a mined header after parent, dt ms later, with the bits
// the rules give.
func (f *powFixture) header(parent *TreeNode, dt int64) *ledger.Header {
	f.tb.Helper()
	bits, err := NextBits(context.Background(), f.p, f.tree, &parent.Header)
	if err != nil {
		f.tb.Fatal(err)
	}
	return f.mine(parent, dt, bits)
}

// mine returns a header after parent with the given bits, mined.
func (f *powFixture) mine(parent *TreeNode, dt int64, bits uint32) *ledger.Header {
	f.tb.Helper()
	f.salt++
	h := ledger.Header{Chain: f.p.Chain, Height: parent.Header.Height + 1, Prev: parent.Hash, Time: parent.Header.Time + dt,
		Engine: ledger.EnginePoW, LogSize: parent.Header.LogSize, LogRoot: parent.Header.LogRoot, Bits: bits}
	sol, ok, err := Solve(&h, f.salt<<40, 1, 0, nil)
	if err != nil || !ok {
		f.tb.Fatalf("Solve(%d bits) = %v, %v", bits, ok, err)
	}
	return &sol
}

// grow adds n blocks dt ms apart after parent and returns the last.
func (f *powFixture) grow(parent *TreeNode, n int, dt int64) *TreeNode {
	f.tb.Helper()
	for i := 0; i < n; i++ {
		h := f.header(parent, dt)
		var err error
		if parent, err = f.tree.Add(context.Background(), h); err != nil {
			f.tb.Fatalf("Add(height %d) = %v", h.Height, err)
		}
	}
	return parent
}

func TestRetargetRule(t *testing.T) {
	// expected = k*interval = 4*1000.
	for _, tc := range []struct {
		actual int64
		want   uint32
	}{
		{0, 12}, {1000, 12}, {1001, 11}, {2000, 11}, {2001, 10}, {3999, 10}, {4000, 10}, {7999, 10},
		{8000, 9}, {15999, 9}, {16000, 8}, {1 << 40, 8}, {-5, 12},
	} {
		if got := retarget(10, tc.actual, 4, 1000); got != tc.want {
			t.Errorf("retarget(10, actual %d, 4 x 1000) = %d, want %d", tc.actual, got, tc.want)
		}
	}
	if got := retarget(255, 0, 4, 1000); got != 255 {
		t.Errorf("retarget(255, fast) = %d, want 255 (clamped)", got)
	}
	if got := retarget(1, 1<<40, 4, 1000); got != 1 {
		t.Errorf("retarget(1, slow) = %d, want 1 (clamped)", got)
	}
	// Huge retarget spans do not overflow.
	if got := retarget(20, 1<<62, 1<<62, 86_400_000); got != 22 {
		t.Errorf("retarget(20, 2^62 ms, 2^62 x 1 day) = %d, want 22", got)
	}
}

func TestNextBitsOnChain(t *testing.T) {
	// Retarget every 4 blocks toward 1 s. Heights 1..3 keep the genesis
	// bits; 4 looks at 3 intervals (blocks 0..3), later ones at 4.
	for _, tc := range []struct {
		name string
		dt   int64
		want []uint32 // bits of heights 1..12
	}{
		{"on time", 1000, []uint32{6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6}},
		{"4x fast", 250, []uint32{6, 6, 6, 8, 8, 8, 8, 10, 10, 10, 10, 12}},
		{"2x fast", 500, []uint32{6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 9}},
		{"3x slow", 3000, []uint32{6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4, 3}},
		{"10x slow", 10_000, []uint32{6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 1}},
		{"same millisecond", 0, []uint32{6, 6, 6, 8, 8, 8, 8, 10, 10, 10, 10, 12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newPowFixture(t, 6, 4)
			n := f.tree.root
			for i, want := range tc.want {
				n = f.grow(n, 1, tc.dt)
				if n.Header.Bits != want {
					t.Fatalf("bits at height %d = %d, want %d", i+1, n.Header.Bits, want)
				}
			}
		})
	}
}

func TestRetargetEveryBlock(t *testing.T) {
	// N = 1: height 1 has no interval to look at; later heights look at one.
	f := newPowFixture(t, 4, 1)
	n := f.grow(f.tree.root, 1, 100)
	if n.Header.Bits != 4 {
		t.Fatalf("bits at 1 = %d, want 4", n.Header.Bits)
	}
	n = f.grow(n, 1, 100)
	if n.Header.Bits != 6 {
		t.Fatalf("bits at 2 = %d, want 6 (one interval of 100 ms for 1000)", n.Header.Bits)
	}
}

func TestMedianTime(t *testing.T) {
	f := newPowFixture(t, 1, 1000)
	ctx := context.Background()
	n := f.tree.root
	if mt, err := MedianTime(ctx, f.tree, &n.Header); err != nil || mt != n.Header.Time {
		t.Fatalf("MedianTime(genesis) = %d, %v; want %d", mt, err, n.Header.Time)
	}
	// Times 0, 10, 20, ... 140 after genesis: the median of the last 11
	// (40..140) is 90.
	n = f.grow(n, 14, 10)
	mt, err := MedianTime(ctx, f.tree, &n.Header)
	if err != nil || mt != genesisTime.UnixMilli()+90 {
		t.Fatalf("MedianTime(height 14) = %d, %v; want genesis+90", mt, err)
	}
	// Two blocks after genesis: times g, g+10, g+20 -> median g+10.
	m := f.grow(f.tree.root, 2, 10)
	if mt, err := MedianTime(ctx, f.tree, &m.Header); err != nil || mt != genesisTime.UnixMilli()+10 {
		t.Fatalf("MedianTime(height 2) = %d, %v; want genesis+10", mt, err)
	}
}

func TestForkChoiceEqualWork(t *testing.T) {
	// Two one-block branches of equal work: the lower hash wins, whatever
	// the order they arrive in.
	f := newPowFixture(t, 4, 1000)
	root := f.tree.root
	a, b := f.header(root, 1000), f.header(root, 1001)
	low, high := a, b
	if ha, hb := a.Hash(), b.Hash(); string(hb[:]) < string(ha[:]) {
		low, high = b, a
	}
	for _, order := range [][]*ledger.Header{{low, high}, {high, low}} {
		f2 := newPowFixture(t, 4, 1000)
		for _, h := range order {
			if _, err := f2.tree.Add(context.Background(), h); err != nil {
				t.Fatal(err)
			}
		}
		if got := f2.tree.Best().Hash; got != low.Hash() {
			t.Errorf("Best() = %s, want the lower hash %s", got, low.Hash())
		}
	}
	// Equal work at different lengths is still a tie decided by the hash.
	if Better(f.tree.root, f.tree.root) {
		t.Error("Better(x, x) = true")
	}
}

func TestForkChoiceMostWorkNotLongest(t *testing.T) {
	// Retarget every 2 blocks. Branch A is mined fast and its difficulty
	// rises; branch B is slow and its difficulty falls. A is shorter but
	// heavier and wins.
	f := newPowFixture(t, 4, 2)
	root := f.tree.root
	a := f.grow(root, 4, 100)     // bits 4, 6, 6, 8: work 16+64+64+256 = 400
	b := f.grow(root, 6, 100_000) // bits 4, 2, 2, 1, 1, 1: work 16+4+4+2+2+2 = 30
	if a.Header.Height >= b.Header.Height {
		t.Fatalf("heights %d, %d: want A shorter", a.Header.Height, b.Header.Height)
	}
	if a.Work.Int64() != 400 || b.Work.Int64() != 30 {
		t.Fatalf("work A %s, B %s; want 400, 30", a.Work, b.Work)
	}
	if f.tree.Best() != a {
		t.Fatalf("Best() = height %d, want branch A (height %d)", f.tree.Best().Header.Height, a.Header.Height)
	}
}

func TestDeepReorg(t *testing.T) {
	// A main chain of 60 blocks; a branch from height 5 overtakes it with
	// 57 blocks (62 high): a reorg of 55 blocks.
	f := newPowFixture(t, 3, 1000)
	main := f.grow(f.tree.root, 60, 1000)
	if f.tree.Best() != main {
		t.Fatal("Best() is not the main chain's tip")
	}
	fork := AncestorNode(main, 5)
	side := f.grow(fork, 54, 1001)
	if f.tree.Best() != main {
		t.Fatalf("a lighter branch (59 vs 60 high) took the lead: %d", f.tree.Best().Header.Height)
	}
	side = f.grow(side, 1, 1001) // equal work: the lower hash leads
	if want := map[bool]*TreeNode{true: side, false: main}[string(side.Hash[:]) < string(main.Hash[:])]; f.tree.Best() != want {
		t.Fatal("equal-work tie not decided by the lower hash")
	}
	side = f.grow(side, 2, 1001)
	if f.tree.Best() != side {
		t.Fatalf("Best() = height %d, want the heavier branch at %d", f.tree.Best().Header.Height, side.Header.Height)
	}
	if got := Fork(main, side); got != fork {
		t.Fatalf("Fork() = height %d, want 5", got.Header.Height)
	}
	old, neu := Branch(fork, main), Branch(fork, side)
	if len(old) != 55 || len(neu) != 57 || old[0].Parent != fork || neu[56] != side {
		t.Fatalf("Branch lengths %d, %d; want 55, 57", len(old), len(neu))
	}
	for i := 1; i < len(neu); i++ {
		if neu[i].Parent != neu[i-1] {
			t.Fatalf("Branch()[%d] does not link to [%d]", i, i-1)
		}
	}
}

func TestInvalidBranch(t *testing.T) {
	f := newPowFixture(t, 3, 1000)
	main := f.grow(f.tree.root, 10, 1000)
	side := f.grow(AncestorNode(main, 2), 12, 1000)
	if f.tree.Best() != side {
		t.Fatal("heavier side branch not chosen")
	}
	// The side branch's block 5 fails body validation: the main chain is
	// best again, and nothing may be added above the invalid block.
	bad := AncestorNode(side, 5)
	f.tree.MarkInvalid(bad.Hash)
	if f.tree.Best() != main {
		t.Fatalf("Best() = height %d after the branch went invalid, want main tip", f.tree.Best().Header.Height)
	}
	if !side.Invalid || AncestorNode(side, 4).Invalid {
		t.Fatal("invalid marks wrong: want the block and its descendants only")
	}
	h := f.header(side, 1000)
	if _, err := f.tree.Add(context.Background(), h); !errors.Is(err, ErrBadWork) {
		t.Fatalf("Add(child of invalid) = %v, want ErrBadWork", err)
	}
	// A valid sibling of the invalid block may still win.
	alt := f.grow(AncestorNode(side, 4), 9, 1000)
	if f.tree.Best() != alt {
		t.Fatalf("Best() = height %d, want the valid heavier branch at %d", f.tree.Best().Header.Height, alt.Header.Height)
	}
}

func TestRemoveBranch(t *testing.T) {
	f := newPowFixture(t, 3, 1000)
	main := f.grow(f.tree.root, 10, 1000)
	fork := AncestorNode(main, 3)
	side := f.grow(fork, 4, 1001)
	twig := f.grow(AncestorNode(side, 5), 1, 1002) // a branch off the branch
	n := f.tree.Len()
	if got := f.tree.Remove(AncestorNode(main, 4).Hash); got != nil {
		t.Fatalf("Remove(branch of the best tip) removed %d blocks", len(got))
	}
	if got := f.tree.Remove(f.tree.root.Hash); got != nil {
		t.Fatal("Remove(root) removed blocks")
	}
	got := f.tree.Remove(AncestorNode(side, 4).Hash)
	if len(got) != 5 || f.tree.Len() != n-5 {
		t.Fatalf("Remove(side branch) removed %d blocks, tree %d -> %d; want 5", len(got), n, f.tree.Len())
	}
	for _, x := range []*TreeNode{side, twig, AncestorNode(side, 4)} {
		if f.tree.Get(x.Hash) != nil {
			t.Errorf("block %d still in the tree", x.Header.Height)
		}
	}
	if f.tree.Get(fork.Hash) != fork || f.tree.Best() != main || len(fork.kids) != 1 {
		t.Fatal("the main chain changed")
	}
	// The branch can come again.
	if _, err := f.tree.Add(context.Background(), &AncestorNode(side, 4).Header); err != nil {
		t.Fatalf("Add(removed block) = %v", err)
	}
}

func TestHostileHeaders(t *testing.T) {
	ctx := context.Background()
	f := newPowFixture(t, 8, 4)
	tip := f.grow(f.tree.root, 5, 1000)
	good := f.header(tip, 1000)
	mutate := func(fn func(h *ledger.Header)) *ledger.Header {
		h := *good
		fn(&h)
		return &h
	}
	unsolved := mutate(func(h *ledger.Header) {})
	for unsolved.Nonce = good.Nonce + 1; LeadingZeroBits(unsolved.Hash()) >= 8; unsolved.Nonce++ {
	}
	for _, tc := range []struct {
		name string
		h    *ledger.Header
		want error
	}{
		{"bad work", unsolved, ErrBadWork},
		{"wrong bits (lower)", f.mine(tip, 1000, 7), ErrBadWork},
		{"wrong bits (higher)", f.mine(tip, 1000, 9), ErrBadWork},
		{"zero bits", mutate(func(h *ledger.Header) { h.Bits = 0 }), ErrBadWork},
		{"before parent", f.mine(tip, -1, 8), ErrBadWork},
		{"wrong chain", mutate(func(h *ledger.Header) { h.Chain = "other" }), ErrBadWork},
		{"wrong height", mutate(func(h *ledger.Header) { h.Height++ }), ErrBadWork},
		{"unknown parent", mutate(func(h *ledger.Header) { h.Prev[0] ^= 1 }), ErrUnknownParent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.tree.Len()
			if _, err := f.tree.Add(ctx, tc.h); !errors.Is(err, tc.want) {
				t.Fatalf("Add() = %v, want %v", err, tc.want)
			}
			if f.tree.Len() != before || f.tree.Best() != tip {
				t.Fatal("a refused header changed the tree")
			}
		})
	}
	if _, err := f.tree.Add(ctx, good); err != nil {
		t.Fatalf("Add(good) = %v", err)
	}

	// A time before the median of the last 11 blocks, though not before
	// its parent's: times equal to the parent's are allowed, so make the
	// parent's time earlier than the median by building a branch whose
	// times jump forward and back. Times never go backwards on a valid
	// branch, so the median rule is exercised with CheckPoWHeader and a
	// parent whose own time the test sets.
	parent := tip.Header
	parent.Time = tip.Header.Time - 10_000 // earlier than the median
	h := ledger.Header{Chain: "powtest", Height: parent.Height + 1, Prev: parent.Hash(), Time: parent.Time, Engine: ledger.EnginePoW,
		LogRoot: parent.LogRoot, Bits: 8}
	sol, _, _ := Solve(&h, 0, 1, 0, nil)
	anc := ancestorsFunc(func(ctx context.Context, tip *ledger.Header, height uint64) (*ledger.Header, error) {
		if height == tip.Height {
			return tip, nil
		}
		return f.tree.Ancestor(ctx, &AncestorNode(f.tree.Best(), tip.Height).Header, height)
	})
	if err := CheckPoWHeader(ctx, f.p, anc, &parent, &sol); !errors.Is(err, ErrBadWork) || !strings.Contains(err.Error(), "median") {
		t.Fatalf("CheckPoWHeader(time before median) = %v, want ErrBadWork", err)
	}

	// The future: refused by CheckFuture with ErrFuture, not ErrBadWork.
	now := time.UnixMilli(good.Time)
	if err := CheckFuture(good, now, DefaultMaxDrift); err != nil {
		t.Fatalf("CheckFuture(now) = %v", err)
	}
	if err := CheckFuture(good, now.Add(-DefaultMaxDrift), DefaultMaxDrift); err != nil {
		t.Fatalf("CheckFuture(at the drift limit) = %v", err)
	}
	err := CheckFuture(good, now.Add(-DefaultMaxDrift-time.Millisecond), DefaultMaxDrift)
	if !errors.Is(err, ErrFuture) || errors.Is(err, ErrBadWork) {
		t.Fatalf("CheckFuture(beyond the drift) = %v, want ErrFuture only", err)
	}
}

type ancestorsFunc func(ctx context.Context, tip *ledger.Header, height uint64) (*ledger.Header, error)

func (f ancestorsFunc) Ancestor(ctx context.Context, tip *ledger.Header, height uint64) (*ledger.Header, error) {
	return f(ctx, tip, height)
}

// powBlock returns a mined block with records after the head of s, with
// one attestation per record by signer (none when nil).
func powBlock(t *testing.T, f *powFixture, s ledger.Store, records []ledger.Record, signer *ledger.Signer) (*ledger.Block, []ledger.Hash) {
	t.Helper()
	ctx := context.Background()
	parent, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([]ledger.Hash, len(records))
	for i := range records {
		leaves[i] = records[i].LeafHash()
	}
	stored, root, err := ledger.AppendLog(ledger.HashReaderOf(ctx, s), int64(parent.LogSize), leaves)
	if err != nil {
		t.Fatal(err)
	}
	bits, err := NextBits(ctx, f.p, StoreAncestors(s), parent)
	if err != nil {
		t.Fatal(err)
	}
	h := ledger.Header{Chain: f.p.Chain, Height: parent.Height + 1, Prev: parent.Hash(), Time: parent.Time + 1000, Engine: ledger.EnginePoW,
		Records: uint64(len(records)), LogSize: parent.LogSize + uint64(len(records)), LogRoot: root, Bits: bits}
	sol, _, err := Solve(&h, 0, 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &ledger.Block{Header: sol, Records: records}
	if signer != nil {
		for _, r := range records {
			b.Attestations = append(b.Attestations, ledger.Attest(signer, f.p.Chain, r))
		}
	}
	return b, stored
}

func TestPoWSeal(t *testing.T) {
	ctx := context.Background()
	f := newPowFixture(t, 6, 3)
	s := ledgertest.NewMemStore()
	if err := ledger.InitStore(ctx, s, f.g); err != nil {
		t.Fatal(err)
	}
	seal, err := NewPoWSeal(f.g, StoreAncestors(s))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	signer := ledgertest.Signer(3)
	for i := 0; i < 8; i++ {
		b, _ := powBlock(t, f, s, ledgertest.Records(rng, 2*i, 2), signer)
		if err := ledger.AppendNext(ctx, s, b, seal); err != nil {
			t.Fatalf("AppendNext(height %d) = %v", b.Header.Height, err)
		}
	}
	if rep, err := ledger.Audit(ctx, s, f.g, seal, nil); err != nil || rep.Blocks != 9 {
		t.Fatalf("Audit() = %+v, %v", rep, err)
	}
	head, _ := s.Head(ctx)
	for _, tc := range []struct {
		name string
		fn   func(b *ledger.Block)
	}{
		{"no attestation", func(b *ledger.Block) { b.Attestations = nil }},
		{"certificate", func(b *ledger.Block) { b.Certificate = &ledger.Certificate{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := powBlock(t, f, s, ledgertest.Records(rng, 100, 1), signer)
			tc.fn(b)
			if err := ledger.AppendNext(ctx, s, b, seal); !errors.Is(err, ledger.ErrInvalidBlock) {
				t.Fatalf("AppendNext() = %v, want ErrInvalidBlock", err)
			}
			if h, _ := s.Head(ctx); h.Hash() != head.Hash() {
				t.Fatal("a refused block changed the store")
			}
		})
	}
	if _, err := NewPoWSeal(ledgertest.NewChain(t, 1).Genesis, StoreAncestors(s)); err == nil {
		t.Fatal("NewPoWSeal(poa genesis) = nil error")
	}
}

func TestSolveAndMiner(t *testing.T) {
	f := newPowFixture(t, 10, 1000)
	h := f.header(f.tree.root, 1000)
	if err := CheckWork(h); err != nil {
		t.Fatalf("Solve gave %v", err)
	}
	// The fast hasher agrees with Header.Hash for every nonce length.
	x, err := newHasher(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, nonce := range []uint64{0, 9, 10, 12345, 1<<64 - 1} {
		c := *h
		c.Nonce = nonce
		if got, want := ledger.Hash(x.hash(nonce)), c.Hash(); got != want {
			t.Fatalf("hasher(nonce %d) = %s, want %s", nonce, got, want)
		}
	}

	m, err := NewMiner(2)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// An impossible template, replaced by an easy one: the easy one's
	// solution arrives, and only it.
	hard := *h
	hard.Bits = 255
	if _, err := m.Mine(hard, 0); err != nil {
		t.Fatal(err)
	}
	easy := *h
	easy.Time++
	easy.Bits = 8
	job, err := m.Mine(easy, 1<<32)
	if err != nil {
		t.Fatal(err)
	}
	sol := <-m.Found()
	if sol.Job != job || sol.Header.Time != easy.Time || sol.Header.Bits != 8 || CheckWork(&sol.Header) != nil {
		t.Fatalf("Found() = %+v, want a solution of the easy template (job %d)", sol, job)
	}
	if _, err := m.Mine(ledger.Header{Engine: ledger.EnginePoA}, 0); err == nil {
		t.Fatal("Mine(poa header) = nil error")
	}
	if _, err := m.Mine(hard, 0); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	m.Close() // returns only when every worker exited
	if _, err := m.Mine(easy, 0); err == nil {
		t.Fatal("Mine after Close = nil error")
	}
	if _, err := NewMiner(-1); err == nil {
		t.Fatal("NewMiner(-1) = nil error")
	}
}
