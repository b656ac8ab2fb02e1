package consensus

import (
	"context"
	"fmt"

	"github.com/vcsledger/vcsledger/ledger"
)

// A PoASeal checks the seal of stored and synced blocks of a poa chain: it
// implements ledger.SealChecker for ledger.ValidateNext and ledger.Audit.
type PoASeal struct {
	chain  string
	vals   *ledger.ValidatorSet
	attest int
}

var _ ledger.SealChecker = (*PoASeal)(nil)

// NewPoASeal returns the seal checker of the poa chain g.
func NewPoASeal(g *ledger.Genesis) (*PoASeal, error) {
	if g.Engine != ledger.EnginePoA {
		return nil, fmt.Errorf("consensus: poa seal for a %s chain", g.Engine)
	}
	vals, err := g.ValidatorSet()
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	return &PoASeal{chain: g.Chain, vals: vals, attest: g.AttestationsNeeded()}, nil
}

// valsAt returns the validator set of height h. The set is static for now.
func (s *PoASeal) valsAt(h uint64) *ledger.ValidatorSet { return s.vals }

// CheckSeal checks that b's certificate is a quorum of valid precommits for
// b's hash at its height by the validators of that height, that the header's
// proposer is a validator, and that every record carries the attestations
// the genesis asks for. The link to parent is ValidateNext's business.
func (s *PoASeal) CheckSeal(ctx context.Context, parent *ledger.Header, b *ledger.Block) error {
	h := &b.Header
	vals := s.valsAt(h.Height)
	switch {
	case h.Chain != s.chain:
		return fmt.Errorf("consensus: block of chain %q, want %q", h.Chain, s.chain)
	case h.Engine != ledger.EnginePoA:
		return fmt.Errorf("consensus: block of engine %q on a poa chain", h.Engine)
	case b.Certificate == nil:
		return fmt.Errorf("consensus: block %d has no certificate", h.Height)
	case !vals.Contains(h.Proposer):
		return fmt.Errorf("consensus: block %d: proposer %s is not a validator", h.Height, h.Proposer)
	}
	if err := b.Certificate.Verify(vals, s.chain, h.Height, b.Hash()); err != nil {
		return fmt.Errorf("consensus: block %d: %w", h.Height, err)
	}
	if err := ledger.CheckAttestations(b, vals, s.attest); err != nil {
		return fmt.Errorf("consensus: block %d: %w", h.Height, err)
	}
	return nil
}
