package consensus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// genesisTime is the genesis time of test chains.
var genesisTime = time.UnixMilli(1_700_000_000_000)

// A fixture is a poa chain of n validators with deterministic keys.
type fixture struct {
	tb      testing.TB
	g       *ledger.Genesis
	signers []*ledger.Signer // in validator-set order
	vals    *ledger.ValidatorSet
	seal    *PoASeal
}

func newFixture(tb testing.TB, n int, attest int) *fixture {
	tb.Helper()
	g := &ledger.Genesis{Chain: "test", Time: genesisTime.UnixMilli(), Engine: ledger.EnginePoA, BlockInterval: 1000, AttestQuorum: attest}
	var signers []*ledger.Signer
	for i := 0; i < n; i++ {
		s := ledgertest.Signer(i)
		signers = append(signers, s)
		g.Validators = append(g.Validators, ledger.Validator{Key: s.Public(), Name: fmt.Sprintf("v%d", i)})
	}
	if err := g.Validate(); err != nil {
		tb.Fatal(err)
	}
	vals, err := g.ValidatorSet()
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{tb: tb, g: g, vals: vals}
	for _, v := range vals.Validators() {
		for _, s := range signers {
			if s.Public() == v.Key {
				f.signers = append(f.signers, s)
			}
		}
	}
	if f.seal, err = NewPoASeal(g); err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fixture) genesis() ledger.Header { return f.g.Block().Header }

// proposerIdx returns the index of the proposer of (height after prev, round).
func (f *fixture) proposerIdx(prev *ledger.Header, r uint32) int {
	return f.vals.Index(f.vals.Proposer(f.g.Chain, prev.Hash(), prev.Height+1, r))
}

// otherThan returns an index not in xs.
func otherThan(n int, xs ...int) int {
	for i := 0; i < n; i++ {
		ok := true
		for _, x := range xs {
			ok = ok && i != x
		}
		if ok {
			return i
		}
	}
	panic("no index left")
}

func (f *fixture) vote(i int, typ string, h uint64, r uint32, block ledger.Hash) *Message {
	sv := ledger.SignVote(f.signers[i], ledger.Vote{Chain: f.g.Chain, Type: typ, Height: h, Round: r, Block: block})
	return &Message{Vote: &sv}
}

func (f *fixture) proposal(i int, b *ledger.Block, r uint32, pol int32) *Message {
	p := &Proposal{Chain: f.g.Chain, Height: b.Header.Height, Round: r, POLRound: pol, Block: b, Proposer: f.signers[i].Public()}
	p.Sig = f.signers[i].Sign(p.SignBytes())
	return &Message{Proposal: p}
}

// A testApp is a node's App in miniature: a store holding the chain, a
// mempool that has work when ready is set, and Check = ValidateNext.
type testApp struct {
	store    *ledgertest.MemStore
	rng      *rand.Rand
	ready    bool
	perBlock int
	next     int // next record number
	proposer ledger.PublicKey
	checkErr func(b *ledger.Block) error // if set, consulted first
	checks   int
	proposes int
}

func newTestApp(tb testing.TB, f *fixture, seed uint64, proposer ledger.PublicKey) *testApp {
	tb.Helper()
	a := &testApp{store: ledgertest.NewMemStore(), rng: rand.New(rand.NewPCG(seed, 7)), perBlock: 2, proposer: proposer, next: int(seed) * 1_000_000}
	if err := ledger.InitStore(context.Background(), a.store, f.g); err != nil {
		tb.Fatal(err)
	}
	return a
}

func (a *testApp) Ready() bool { return a.ready }

func (a *testApp) Propose(parent *ledger.Header, height uint64, now time.Time) (*ledger.Block, error) {
	a.proposes++
	if !a.ready {
		return nil, nil
	}
	return a.build(parent, now.UnixMilli(), a.proposer)
}

// build returns a block after parent with fresh records.
func (a *testApp) build(parent *ledger.Header, t int64, proposer ledger.PublicKey) (*ledger.Block, error) {
	recs := ledgertest.Records(a.rng, a.next, a.perBlock)
	a.next += a.perBlock
	leaves := make([]ledger.Hash, len(recs))
	for i := range recs {
		leaves[i] = recs[i].LeafHash()
	}
	_, root, err := ledger.AppendLog(ledger.HashReaderOf(context.Background(), a.store), int64(parent.LogSize), leaves)
	if err != nil {
		return nil, err
	}
	t = max(t, parent.Time)
	return &ledger.Block{
		Header: ledger.Header{
			Chain: parent.Chain, Height: parent.Height + 1, Prev: parent.Hash(), Time: t,
			Engine: ledger.EnginePoA, Proposer: proposer,
			Records: uint64(len(recs)), LogSize: parent.LogSize + uint64(len(recs)), LogRoot: root,
		},
		Records: recs,
	}, nil
}

var errFutureBlock = errors.New("block time too far ahead")

func (a *testApp) Check(parent *ledger.Header, b *ledger.Block, now time.Time) error {
	a.checks++
	if a.checkErr != nil {
		if err := a.checkErr(b); err != nil {
			return err
		}
	}
	if b.Header.Time > now.Add(10*time.Second).UnixMilli() {
		return errFutureBlock
	}
	_, err := ledger.ValidateNext(context.Background(), a.store, parent, b, nil)
	return err
}

// appendBlock appends a committed block to the app's store after checking
// its seal.
func (a *testApp) appendBlock(tb testing.TB, seal ledger.SealChecker, b *ledger.Block) {
	tb.Helper()
	if err := ledger.AppendNext(context.Background(), a.store, b, seal); err != nil {
		tb.Fatalf("append block %d: %v", b.Header.Height, err)
	}
}

// votesIn returns the votes of type typ among msgs.
func votesIn(msgs []Message, typ string) []*ledger.SignedVote {
	var out []*ledger.SignedVote
	for _, m := range msgs {
		if m.Vote != nil && m.Vote.Type == typ {
			out = append(out, m.Vote)
		}
	}
	return out
}

func proposalsIn(msgs []Message) []*Proposal {
	var out []*Proposal
	for _, m := range msgs {
		if m.Proposal != nil {
			out = append(out, m.Proposal)
		}
	}
	return out
}
