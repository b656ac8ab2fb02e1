package ledgertest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

// A Chain builds a valid poa chain with deterministic validator keys: each
// Next block carries a certificate from every validator and attestations
// from as many validators as the genesis asks for. The chain is kept in its
// own MemStore.
//
// Authority changes (Change, NextWith) change the set: blocks are then
// proposed, certified and attested by the set in force at their height.
type Chain struct {
	Genesis *ledger.Genesis
	Signers []*ledger.Signer // the genesis validators', sorted by public key
	Vals    *ledger.ValidatorSet
	Store   *MemStore
	Auth    *ledger.Authorities // the set's history through the head

	tb     testing.TB
	blocks []*ledger.Block
	keys   map[ledger.PublicKey]*ledger.Signer
}

// Signer returns a deterministic signer derived from seed.
func Signer(seed int) *ledger.Signer {
	var b [32]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed)+1)
	s, err := ledger.NewSigner(ed25519.NewKeyFromSeed(b[:]))
	if err != nil {
		panic(err)
	}
	return s
}

// NewChain returns a chain "test" of n validators (Signer(0) to
// Signer(n-1)) with its genesis block. Records need f+1 attestations.
func NewChain(tb testing.TB, n int) *Chain {
	tb.Helper()
	g := &ledger.Genesis{Chain: "test", Time: 1_700_000_000_000, Engine: ledger.EnginePoA, BlockInterval: 1000, AttestQuorum: -1}
	var signers []*ledger.Signer
	for i := 0; i < n; i++ {
		s := Signer(i)
		signers = append(signers, s)
		g.Validators = append(g.Validators, ledger.Validator{Key: s.Public(), Name: fmt.Sprintf("v%d", i)})
	}
	return NewChainFrom(tb, g, signers)
}

// NewChainFrom returns the chain of a poa genesis g whose validators'
// signers are signers (in any order), with its genesis block.
func NewChainFrom(tb testing.TB, g *ledger.Genesis, signers []*ledger.Signer) *Chain {
	tb.Helper()
	if err := g.Validate(); err != nil {
		tb.Fatal(err)
	}
	vs, err := g.ValidatorSet()
	if err != nil {
		tb.Fatal(err)
	}
	c := &Chain{tb: tb, Store: NewMemStore(), Genesis: g, Vals: vs, keys: make(map[ledger.PublicKey]*ledger.Signer)}
	if c.Auth, err = ledger.NewAuthorities(g); err != nil {
		tb.Fatal(err)
	}
	for _, s := range signers {
		c.keys[s.Public()] = s
	}
	// Order signers as the set orders keys.
	for _, v := range vs.Validators() {
		found := false
		for _, s := range signers {
			if s.Public() == v.Key {
				c.Signers = append(c.Signers, s)
				found = true
				break
			}
		}
		if !found {
			tb.Fatalf("ledgertest: no signer for validator %s", v.Key)
		}
	}
	if err := ledger.InitStore(context.Background(), c.Store, g); err != nil {
		tb.Fatal(err)
	}
	c.blocks = []*ledger.Block{g.Block()}
	return c
}

// Blocks returns every block built so far, genesis first.
func (c *Chain) Blocks() []*ledger.Block { return c.blocks }

// Head returns the newest block.
func (c *Chain) Head() *ledger.Block { return c.blocks[len(c.blocks)-1] }

// AddSigner makes s known to the chain, so that once an authority change
// adds its key it proposes, votes and attests like the others.
func (c *Chain) AddSigner(s *ledger.Signer) { c.keys[s.Public()] = s }

// ValsAt returns the validator set in force at height h (at most the head's
// + ledger.AuthorityDelay).
func (c *Chain) ValsAt(h uint64) *ledger.ValidatorSet {
	c.tb.Helper()
	vs, err := c.Auth.At(h)
	if err != nil {
		c.tb.Fatal(err)
	}
	return vs
}

// SignersAt returns the signers of the set in force at height h, in key
// order.
func (c *Chain) SignersAt(h uint64) []*ledger.Signer {
	c.tb.Helper()
	var out []*ledger.Signer
	for _, v := range c.ValsAt(h).Validators() {
		s := c.keys[v.Key]
		if s == nil {
			c.tb.Fatalf("ledgertest: no signer for validator %s", v.Key)
		}
		out = append(out, s)
	}
	return out
}

// Change returns an authority change of the chain (op ledger.AuthorityAdd
// or ledger.AuthorityRemove of key, named name when added) effective at
// height effective, voted by every validator in force at the next height.
func (c *Chain) Change(op string, key ledger.PublicKey, name string, effective uint64) ledger.AuthorityChange {
	c.tb.Helper()
	ch := ledger.AuthorityChange{Chain: c.Genesis.Chain, Op: op, Validator: key, Name: name, Effective: effective}
	for _, s := range c.SignersAt(c.Head().Header.Height + 1) {
		ch.AddVote(ch.Vote(s))
	}
	return ch
}

// Unsealed returns the next block with records (attested, not yet
// certified) and the stored hashes it adds, without adding it to the chain.
func (c *Chain) Unsealed(records []ledger.Record) (*ledger.Block, []ledger.Hash) {
	return c.UnsealedWith(records, nil)
}

// UnsealedWith is Unsealed for a block that also carries authority changes.
func (c *Chain) UnsealedWith(records []ledger.Record, changes []ledger.AuthorityChange) (*ledger.Block, []ledger.Hash) {
	c.tb.Helper()
	ctx := context.Background()
	parent := c.Head().Header
	b := &ledger.Block{Records: append([]ledger.Record(nil), records...), Authority: changes}
	leaves := b.LeafHashes()
	stored, root, err := ledger.AppendLog(ledger.HashReaderOf(ctx, c.Store), int64(parent.LogSize), leaves)
	if err != nil {
		c.tb.Fatal(err)
	}
	vals := c.ValsAt(parent.Height + 1)
	h := ledger.Header{
		Chain:    parent.Chain,
		Height:   parent.Height + 1,
		Prev:     parent.Hash(),
		Time:     parent.Time + c.Genesis.BlockInterval,
		Engine:   ledger.EnginePoA,
		Proposer: vals.Proposer(parent.Chain, parent.Hash(), parent.Height+1, 0),
		Records:  uint64(len(leaves)),
		LogSize:  parent.LogSize + uint64(len(leaves)),
		LogRoot:  root,
	}
	b.Header = h
	need := c.Auth.AttestationsNeeded(vals)
	signers := c.SignersAt(h.Height)
	for _, r := range records {
		for _, s := range signers[:need] {
			b.Attestations = append(b.Attestations, ledger.Attest(s, h.Chain, r))
		}
	}
	return b, stored
}

// Certify returns a certificate for b from the given signers (when nil, all
// of the set in force at b's height, or of the genesis set when the chain
// does not reach that height).
func (c *Chain) Certify(b *ledger.Block, signers []*ledger.Signer) *ledger.Certificate {
	c.tb.Helper()
	if signers == nil {
		signers = c.Signers
		if _, err := c.Auth.At(b.Header.Height); err == nil {
			signers = c.SignersAt(b.Header.Height)
		}
	}
	var votes []ledger.SignedVote
	for _, s := range signers {
		votes = append(votes, ledger.SignVote(s, ledger.Vote{Chain: b.Header.Chain, Type: ledger.Precommit, Height: b.Header.Height, Block: b.Hash()}))
	}
	cert, err := ledger.NewCertificate(votes)
	if err != nil {
		c.tb.Fatal(err)
	}
	return cert
}

// Next builds, certifies and appends the next block with records.
func (c *Chain) Next(records []ledger.Record) *ledger.Block {
	return c.NextWith(records, nil)
}

// NextWith builds, certifies and appends the next block with records and
// authority changes.
func (c *Chain) NextWith(records []ledger.Record, changes []ledger.AuthorityChange) *ledger.Block {
	c.tb.Helper()
	b, stored := c.UnsealedWith(records, changes)
	b.Certificate = c.Certify(b, nil)
	c.Commit(b, stored)
	return b
}

// Commit appends b, built by Unsealed and sealed by the caller, with the
// stored hashes Unsealed returned, to the chain and its store.
func (c *Chain) Commit(b *ledger.Block, stored []ledger.Hash) {
	c.tb.Helper()
	if err := c.Store.Append(context.Background(), b, stored); err != nil {
		c.tb.Fatal(err)
	}
	if err := c.Auth.Apply(b); err != nil {
		c.tb.Fatal(err)
	}
	c.blocks = append(c.blocks, b)
}

// Stored returns the stored log hashes block height added, as Append was
// given them.
func (c *Chain) Stored(height uint64) []ledger.Hash {
	c.tb.Helper()
	if height == 0 || height >= uint64(len(c.blocks)) {
		return nil
	}
	ctx := context.Background()
	lo := ledger.StoredHashCount(int64(c.blocks[height-1].Header.LogSize))
	hi := ledger.StoredHashCount(int64(c.blocks[height].Header.LogSize))
	idx := make([]int64, 0, hi-lo)
	for i := lo; i < hi; i++ {
		idx = append(idx, i)
	}
	hs, err := c.Store.ReadHashes(ctx, idx)
	if err != nil {
		c.tb.Fatal(err)
	}
	return hs
}

// RandomRecord returns a valid record whose key is distinct for each i;
// every third record carries an h1 hash.
func RandomRecord(rng *rand.Rand, i int) ledger.Record {
	var commit [20]byte
	for j := range commit {
		commit[j] = byte(rng.IntN(256))
	}
	tree := sha256.Sum256(fmt.Appendf(nil, "tree %d %d", i, rng.Int64()))
	r := ledger.Record{
		Key:    ledger.Key{Repo: fmt.Sprintf("example.com/u%08x/repo%d", uint32(i)*2654435761, i), Tag: fmt.Sprintf("v1.%d.%d", i/1000, i%1000)},
		Commit: fmt.Sprintf("%x", commit),
		Tree:   "t1:" + base64.StdEncoding.EncodeToString(tree[:]),
	}
	if i%3 == 0 {
		h1 := sha256.Sum256(tree[:])
		r.H1 = "h1:" + base64.StdEncoding.EncodeToString(h1[:])
	}
	return r
}

// Records returns n distinct records starting at i.
func Records(rng *rand.Rand, i, n int) []ledger.Record {
	out := make([]ledger.Record, n)
	for j := range out {
		out[j] = RandomRecord(rng, i+j)
	}
	return out
}
