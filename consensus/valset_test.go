package consensus

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// A vsNode is one engine of TestValidatorSetChange: its store, the seal
// that follows the store's validator set, and the changes waiting in its
// pool.
type vsNode struct {
	name    string
	signer  *ledger.Signer
	store   *ledgertest.MemStore
	seal    *PoASeal
	e       *PoA
	up      bool
	wake    time.Time
	pending []ledger.AuthorityChange
	rng     *rand.Rand
	next    int
}

// vsApp proposes a record and every pending change the rules accept.
type vsApp struct{ n *vsNode }

func (a vsApp) Ready() bool { return true }

func (a vsApp) Propose(parent *ledger.Header, height uint64, now time.Time) (*ledger.Block, error) {
	n := a.n
	b := &ledger.Block{Records: ledgertest.Records(n.rng, n.next, 1)}
	n.next++
	for _, c := range n.pending {
		cand := *b
		cand.Header.Height = height
		cand.Authority = append(append([]ledger.AuthorityChange(nil), b.Authority...), c)
		if n.seal.Authorities().CheckChange(&c, true) == nil && n.seal.Authorities().Check(&cand) == nil {
			b.Authority = cand.Authority
		}
	}
	_, root, err := ledger.AppendLog(ledger.HashReaderOf(context.Background(), n.store), int64(parent.LogSize), b.LeafHashes())
	if err != nil {
		return nil, err
	}
	b.Header = ledger.Header{
		Chain: parent.Chain, Height: height, Prev: parent.Hash(), Time: max(now.UnixMilli(), parent.Time),
		Engine: ledger.EnginePoA, Proposer: n.signer.Public(),
		Records: uint64(b.Leaves()), LogSize: parent.LogSize + uint64(b.Leaves()), LogRoot: root,
	}
	return b, nil
}

func (a vsApp) Check(parent *ledger.Header, b *ledger.Block, now time.Time) error {
	if err := a.n.seal.Authorities().Check(b); err != nil {
		return err
	}
	_, err := ledger.ValidateNext(context.Background(), a.n.store, parent, b, nil)
	return err
}

// TestValidatorSetChange runs four validators and a fifth node on a
// deterministic network while the set changes under them: the four vote
// the fifth in (effective at height 5), then the five vote the first one
// out (effective at 10), which then stops. Every engine looks up the set of
// each height in the history its node follows. The chain keeps
// committing; the fifth proposes and signs blocks from height 5; the
// removed one signs nothing from height 10; every node holds the same
// blocks.
func TestValidatorSetChange(t *testing.T) {
	f := newFixture(t, 4, 0)
	v4 := ledgertest.Signer(4)
	removed := f.signers[0]
	add := ledger.AuthorityChange{Chain: f.g.Chain, Op: ledger.AuthorityAdd, Validator: v4.Public(), Name: "v4", Effective: 5}
	for _, s := range f.signers {
		add.AddVote(add.Vote(s))
	}
	rm := ledger.AuthorityChange{Chain: f.g.Chain, Op: ledger.AuthorityRemove, Validator: removed.Public(), Effective: 10}
	for _, s := range append(f.signers[1:], v4) {
		rm.AddVote(rm.Vote(s)) // four votes: the quorum of five, refused while v4 is not yet a member
	}

	var nodes []*vsNode
	now := genesisTime.Add(time.Second)
	for i, s := range append(append([]*ledger.Signer(nil), f.signers...), v4) {
		n := &vsNode{name: s.Public().String()[:6], signer: s, store: ledgertest.NewMemStore(), up: true,
			pending: []ledger.AuthorityChange{add, rm}, rng: rand.New(rand.NewPCG(uint64(i), 9)), next: i * 100_000}
		if err := ledger.InitStore(context.Background(), n.store, f.g); err != nil {
			t.Fatal(err)
		}
		var err error
		if n.seal, err = NewPoASeal(f.g); err != nil {
			t.Fatal(err)
		}
		head := f.genesis()
		n.e, err = NewPoA(Config{Chain: f.g.Chain, Sets: n.seal.Authorities(), Signer: s, BlockInterval: 100 * time.Millisecond, App: vsApp{n}}, &head, nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}

	type delivery struct {
		at time.Time
		to *vsNode
		m  Message
	}
	var queue []delivery
	var do func(n *vsNode, a Actions)
	appendBlock := func(n *vsNode, b *ledger.Block) {
		head, _ := n.store.Head(context.Background())
		if b.Header.Height != head.Height+1 {
			return
		}
		if err := ledger.AppendNext(context.Background(), n.store, b, n.seal); err != nil {
			t.Fatalf("%s: append block %d: %v", n.name, b.Header.Height, err)
		}
	}
	do = func(n *vsNode, a Actions) {
		for _, m := range a.Send {
			for _, o := range nodes {
				if o != n && o.up {
					queue = append(queue, delivery{now.Add(20 * time.Millisecond), o, m})
				}
			}
		}
		if a.Commit != nil {
			appendBlock(n, a.Commit)
		}
		if a.Behind > 0 {
			// Sync from the most advanced node.
			best := n
			for _, o := range nodes {
				if ho, _ := o.store.Head(context.Background()); ho.Height > headOf(n).Height && ho.Height > headOf(best).Height {
					best = o
				}
			}
			for h := headOf(n).Height + 1; h <= headOf(best).Height; h++ {
				b, _ := best.store.Block(context.Background(), h)
				appendBlock(n, b)
			}
			do(n, n.e.Advance(now, headOf(n)))
		}
		if !a.Wake.IsZero() {
			n.wake = a.Wake
		}
	}
	for _, n := range nodes {
		do(n, n.e.Start(now))
	}
	proposedBy := map[ledger.PublicKey]bool{}
	for step := 0; ; step++ {
		if step > 200_000 || now.Sub(genesisTime) > time.Hour {
			t.Fatalf("no progress: heights %d %d %d %d %d", headOf(nodes[0]).Height, headOf(nodes[1]).Height, headOf(nodes[2]).Height, headOf(nodes[3]).Height, headOf(nodes[4]).Height)
		}
		top := headOf(nodes[4])
		if top.Height >= 14 && proposedBy[v4.Public()] {
			break
		}
		// The removed validator stops once its removal is in force.
		if nodes[0].up && headOf(nodes[1]).Height >= 10 {
			nodes[0].up = false
		}
		// The next event: the earliest delivery or wake.
		next := time.Time{}
		for _, d := range queue {
			if next.IsZero() || d.at.Before(next) {
				next = d.at
			}
		}
		for _, n := range nodes {
			if n.up && (next.IsZero() || n.wake.Before(next)) {
				next = n.wake
			}
		}
		if next.After(now) {
			now = next
		}
		var rest []delivery
		var due []delivery
		for _, d := range queue {
			if !d.at.After(now) {
				due = append(due, d)
			} else {
				rest = append(rest, d)
			}
		}
		queue = rest
		for _, d := range due {
			if !d.to.up {
				continue
			}
			m := d.m
			a, _ := d.to.e.Receive(now, &m)
			do(d.to, a)
		}
		for _, n := range nodes {
			if n.up && !n.wake.After(now) {
				a := n.e.Tick(now)
				do(n, a)
				for a.Commit != nil {
					a = n.e.Tick(now)
					do(n, a)
				}
			}
		}
		for h := uint64(1); h <= headOf(nodes[4]).Height; h++ {
			b, _ := nodes[4].store.Block(context.Background(), h)
			proposedBy[b.Header.Proposer] = true
		}
	}

	// Every node that ran to the end holds the same chain, and the set of
	// each height decided it.
	ref := nodes[4]
	auth := ref.seal.Authorities()
	if es := auth.Entries(); len(es) != 2 || es[0].Change.Op != ledger.AuthorityAdd || es[1].Change.Op != ledger.AuthorityRemove {
		t.Fatalf("committed changes: %+v; want the addition, then the removal", es)
	}
	signedBy := func(b *ledger.Block, k ledger.PublicKey) bool {
		for _, s := range b.Certificate.Sigs {
			if s.Validator == k {
				return true
			}
		}
		return false
	}
	v4Signed := false
	for h := uint64(1); h <= headOf(ref).Height; h++ {
		b, err := ref.store.Block(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes[1:4] {
			if o, err := n.store.Block(context.Background(), h); err == nil && o.Hash() != b.Hash() {
				t.Fatalf("%s and %s hold different blocks at height %d", n.name, ref.name, h)
			}
		}
		if h < 5 && (signedBy(b, v4.Public()) || b.Header.Proposer == v4.Public()) {
			t.Errorf("block %d: signed or proposed by the fifth before its height 5", h)
		}
		if h >= 5 && signedBy(b, v4.Public()) {
			v4Signed = true
		}
		if h >= 10 && (signedBy(b, removed.Public()) || b.Header.Proposer == removed.Public()) {
			t.Errorf("block %d: signed or proposed by the removed validator", h)
		}
	}
	t.Logf("height %d; changes at heights %d and %d", headOf(ref).Height, auth.Entries()[0].Height, auth.Entries()[1].Height)
	if !v4Signed {
		t.Errorf("the fifth validator signed no certificate")
	}
	if _, err := ledger.Audit(context.Background(), ref.store, f.g, mustSeal(t, f.g), nil); err != nil {
		t.Errorf("Audit with a fresh seal = %v", err)
	}
}

func headOf(n *vsNode) *ledger.Header {
	h, _ := n.store.Head(context.Background())
	return h
}

func mustSeal(t *testing.T, g *ledger.Genesis) *PoASeal {
	s, err := NewPoASeal(g)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
