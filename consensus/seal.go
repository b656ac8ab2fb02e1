package consensus

import (
	"context"
	"fmt"

	"github.com/vcsledger/vcsledger/ledger"
)

// A PoASeal checks the seal of stored and synced blocks of a poa chain: it
// implements ledger.SealChecker for ledger.ValidateNext and ledger.Audit.
//
// It follows the chain's validator set: it holds a ledger.Authorities and,
// after a block passes CheckSeal as the block after the newest one it
// followed, records the block's authority changes in it. So it must see
// every block of the chain in order from the height its Authorities was
// derived at (NewPoASeal: genesis; NewPoASealAt: a store's head), as
// ledger.Audit, ValidateNext before each append, and a Syncer give them; a
// block checked but not appended is harmless (a certified block is the
// chain's block at its height), and checking it again is a no-op. Follow
// takes a block in without checking it (for chains verified only from some
// height on).
type PoASeal struct {
	chain string
	auth  *ledger.Authorities
}

var _ ledger.SealChecker = (*PoASeal)(nil)

// NewPoASeal returns the seal checker of the poa chain g, following its
// validator set from the genesis block.
func NewPoASeal(g *ledger.Genesis) (*PoASeal, error) {
	if g.Engine != ledger.EnginePoA {
		return nil, fmt.Errorf("consensus: poa seal for a %s chain", g.Engine)
	}
	auth, err := ledger.NewAuthorities(g)
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	return &PoASeal{chain: g.Chain, auth: auth}, nil
}

// NewPoASealAt returns the seal checker of the poa chain g whose validator
// set's history is auth (ledger.LoadAuthorities of the store it checks
// blocks for), which it keeps following.
func NewPoASealAt(g *ledger.Genesis, auth *ledger.Authorities) (*PoASeal, error) {
	s, err := NewPoASeal(g)
	if err != nil {
		return nil, err
	}
	if auth.Chain() != g.Chain {
		return nil, fmt.Errorf("consensus: validator history of chain %q for chain %q", auth.Chain(), g.Chain)
	}
	s.auth = auth
	return s, nil
}

// Authorities returns the validator-set history the seal follows.
func (s *PoASeal) Authorities() *ledger.Authorities { return s.auth }

// Follow records b, the block after the newest one followed, without
// checking its seal.
func (s *PoASeal) Follow(b *ledger.Block) error { return s.auth.Follow(b) }

// CheckSeal checks that b's certificate is a quorum of valid precommits for
// b's hash at its height by the validators in force at that height, that
// the header's proposer is one of them, that every record carries the
// attestations the chain asks for, and that b's authority changes follow
// the rules (ledger.Authorities.Check). The link to parent is
// ValidateNext's business.
func (s *PoASeal) CheckSeal(ctx context.Context, parent *ledger.Header, b *ledger.Block) error {
	h := &b.Header
	switch {
	case h.Chain != s.chain:
		return fmt.Errorf("consensus: block of chain %q, want %q", h.Chain, s.chain)
	case h.Engine != ledger.EnginePoA:
		return fmt.Errorf("consensus: block of engine %q on a poa chain", h.Engine)
	case b.Certificate == nil:
		return fmt.Errorf("consensus: block %d has no certificate", h.Height)
	case parent != nil && parent.Height+1 != h.Height:
		return fmt.Errorf("consensus: block %d after parent %d", h.Height, parent.Height)
	}
	if t := s.auth.Through(); t+1 < h.Height {
		return fmt.Errorf("consensus: block %d: the validator set is followed through height %d only: %w", h.Height, t, ledger.ErrHeightUnknown)
	}
	vals, err := s.auth.At(h.Height)
	if err != nil {
		return fmt.Errorf("consensus: block %d: %w", h.Height, err)
	}
	if !vals.Contains(h.Proposer) {
		return fmt.Errorf("consensus: block %d: proposer %s is not a validator", h.Height, h.Proposer)
	}
	if err := b.Certificate.Verify(vals, s.chain, h.Height, b.Hash()); err != nil {
		return fmt.Errorf("consensus: block %d: %w", h.Height, err)
	}
	if err := ledger.CheckAttestations(b, vals, s.auth.AttestationsNeeded(vals)); err != nil {
		return fmt.Errorf("consensus: block %d: %w", h.Height, err)
	}
	if err := s.auth.Apply(b); err != nil {
		return fmt.Errorf("consensus: block %d: %w", h.Height, err)
	}
	return nil
}
