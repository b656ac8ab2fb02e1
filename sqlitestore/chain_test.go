package sqlitestore

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// A testChain builds valid blocks of a poa chain on top of any head it is
// given, without keeping them, so that tests and benchmarks can make chains
// of a million records (ledgertest.Chain keeps every block in memory) and a
// restarted process can continue the chain its store holds. Record i is
// always the same record: its key and hashes depend only on i.
type testChain struct {
	gen     *ledger.Genesis
	signers []*ledger.Signer // in the validator set's order
	attest  int              // attestations per record
}

func newTestChain(validators int) *testChain {
	c := &testChain{}
	g := &ledger.Genesis{Chain: "bench", Time: 1_700_000_000_000, Engine: ledger.EnginePoA, BlockInterval: 1000, AttestQuorum: -1}
	byKey := make(map[ledger.PublicKey]*ledger.Signer)
	for i := 0; i < validators; i++ {
		s := ledgertest.Signer(i)
		byKey[s.Public()] = s
		g.Validators = append(g.Validators, ledger.Validator{Key: s.Public(), Name: fmt.Sprintf("v%d", i)})
	}
	vs, err := g.ValidatorSet()
	if err != nil {
		panic(err)
	}
	for _, v := range vs.Validators() {
		c.signers = append(c.signers, byKey[v.Key])
	}
	c.gen = g
	c.attest = g.AttestationsNeeded()
	return c
}

// record returns record number i of every test chain.
func testRecord(i int) ledger.Record {
	return ledgertest.RandomRecord(rand.New(rand.NewPCG(uint64(i), 7)), i)
}

// next returns the block after parent holding records first..first+n-1,
// attested and certified, and the stored hashes it adds. r reads the
// stored hashes of the log parent ends.
func (c *testChain) next(r ledger.HashReader, parent *ledger.Header, first, n int) (*ledger.Block, []ledger.Hash, error) {
	records := make([]ledger.Record, n)
	leaves := make([]ledger.Hash, n)
	for j := range records {
		records[j] = testRecord(first + j)
		leaves[j] = records[j].LeafHash()
	}
	stored, root, err := ledger.AppendLog(r, int64(parent.LogSize), leaves)
	if err != nil {
		return nil, nil, err
	}
	vs, _ := c.gen.ValidatorSet()
	h := ledger.Header{
		Chain:    parent.Chain,
		Height:   parent.Height + 1,
		Prev:     parent.Hash(),
		Time:     parent.Time + c.gen.BlockInterval,
		Engine:   ledger.EnginePoA,
		Proposer: vs.Proposer(parent.Chain, parent.Hash(), parent.Height+1, 0),
		Records:  uint64(n),
		LogSize:  parent.LogSize + uint64(n),
		LogRoot:  root,
	}
	b := &ledger.Block{Header: h, Records: records}
	for _, rec := range records {
		for _, s := range c.signers[:c.attest] {
			b.Attestations = append(b.Attestations, ledger.Attest(s, h.Chain, rec))
		}
	}
	var votes []ledger.SignedVote
	for _, s := range c.signers {
		votes = append(votes, ledger.SignVote(s, ledger.Vote{Chain: h.Chain, Type: ledger.Precommit, Height: h.Height, Block: h.Hash()}))
	}
	if b.Certificate, err = ledger.NewCertificate(votes); err != nil {
		return nil, nil, err
	}
	return b, stored, nil
}

// memHashes is an in-memory HashReader that a builder appends to.
type memHashes []ledger.Hash

func (m *memHashes) ReadHashes(indexes []int64) ([]ledger.Hash, error) {
	out := make([]ledger.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(*m)) {
			return nil, fmt.Errorf("memHashes: %d of %d: %w", x, len(*m), ledger.ErrNotFound)
		}
		out[i] = (*m)[x]
	}
	return out, nil
}

// appendBlocks appends blocks of per records to s until it holds records
// records (the genesis first when s is empty), and returns the new head.
func (c *testChain) appendBlocks(ctx context.Context, s ledger.Store, records, per int) (*ledger.Header, error) {
	head, err := s.Head(ctx)
	if err != nil {
		if err := ledger.InitStore(ctx, s, c.gen); err != nil {
			return nil, err
		}
		if head, err = s.Head(ctx); err != nil {
			return nil, err
		}
	}
	for int(head.LogSize) < records {
		n := min(per, records-int(head.LogSize))
		b, stored, err := c.next(ledger.HashReaderOf(ctx, s), head, int(head.LogSize), n)
		if err != nil {
			return nil, err
		}
		if err := s.Append(ctx, b, stored); err != nil {
			return nil, err
		}
		head = &b.Header
	}
	return head, nil
}

// testSeal checks a testChain block's seal as a poa engine would: the
// certificate by a quorum of the validators and every record's
// attestations.
type testSeal struct{ c *testChain }

func (s testSeal) CheckSeal(ctx context.Context, parent *ledger.Header, b *ledger.Block) error {
	vs, err := s.c.gen.ValidatorSet()
	if err != nil {
		return err
	}
	if b.Certificate == nil {
		return fmt.Errorf("no certificate")
	}
	if err := b.Certificate.Verify(vs, b.Header.Chain, b.Header.Height, b.Hash()); err != nil {
		return err
	}
	return ledger.CheckAttestations(b, vs, s.c.attest)
}
