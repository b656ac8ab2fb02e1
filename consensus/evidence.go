package consensus

import (
	"bytes"
	"fmt"

	"github.com/vcsledger/vcsledger/ledger"
)

const evidenceMagic = "vcsledger-evidence/1"

// Evidence kinds.
const (
	KindDuplicateVote     = "duplicate-vote"
	KindDuplicateProposal = "duplicate-proposal"
)

// An Evidence is proof that a validator equivocated: two conflicting
// messages it signed for one (height, round, step). It is self-
// authenticating: anyone with the validator set can check it (Verify).
type Evidence interface {
	// Kind is KindDuplicateVote or KindDuplicateProposal.
	Kind() string
	// Offender returns the validator that signed both messages.
	Offender() ledger.PublicKey
	// Height returns the height of the messages.
	Height() uint64
	// Format returns the canonical encoding (ParseEvidence reads it); the
	// pair is written in a fixed order, so one pair has one encoding.
	Format() []byte
	// Verify checks both signatures and that the messages conflict.
	Verify(vals *ledger.ValidatorSet) error
}

// A DuplicateVote is a pair of votes of one validator for different blocks
// (or a block and nil) at one height, round and vote type.
type DuplicateVote struct{ A, B ledger.SignedVote }

// A DuplicateProposal is a pair of proposals of one proposer that differ in
// block or POL round at one height and round.
type DuplicateProposal struct{ A, B SignedProposal }

// newDuplicateVote orders the pair canonically.
func newDuplicateVote(a, b ledger.SignedVote) *DuplicateVote {
	if bytes.Compare(a.Format(), b.Format()) > 0 {
		a, b = b, a
	}
	return &DuplicateVote{A: a, B: b}
}

func newDuplicateProposal(a, b SignedProposal) *DuplicateProposal {
	if bytes.Compare(a.Format(), b.Format()) > 0 {
		a, b = b, a
	}
	return &DuplicateProposal{A: a, B: b}
}

func (*DuplicateVote) Kind() string                 { return KindDuplicateVote }
func (e *DuplicateVote) Offender() ledger.PublicKey { return e.A.Validator }
func (e *DuplicateVote) Height() uint64             { return e.A.Height }

// Format returns the evidence's canonical encoding:
//
//	vcsledger-evidence/1
//	kind duplicate-vote
//	a <n>\n<ledger.SignedVote.Format()>
//	b <n>\n<ledger.SignedVote.Format()>
func (e *DuplicateVote) Format() []byte {
	return formatEvidence(KindDuplicateVote, e.A.Format(), e.B.Format())
}

// Verify checks that A and B are validly signed by one validator of vals,
// for one chain, height, round and type, and for different blocks.
func (e *DuplicateVote) Verify(vals *ledger.ValidatorSet) error {
	a, b := &e.A, &e.B
	if a.Chain != b.Chain || a.Type != b.Type || a.Height != b.Height || a.Round != b.Round || a.Validator != b.Validator {
		return fmt.Errorf("%w: votes of different slots", ErrInvalid)
	}
	if a.Block == b.Block {
		return fmt.Errorf("%w: votes do not conflict", ErrInvalid)
	}
	for _, v := range []*ledger.SignedVote{a, b} {
		if err := verifyVote(v, vals, verifySig); err != nil {
			return err
		}
	}
	return nil
}

func (*DuplicateProposal) Kind() string                 { return KindDuplicateProposal }
func (e *DuplicateProposal) Offender() ledger.PublicKey { return e.A.Proposer }
func (e *DuplicateProposal) Height() uint64             { return e.A.Height }

// Format returns the evidence's canonical encoding, as DuplicateVote's with
// kind duplicate-proposal and SignedProposal.Format() sections.
func (e *DuplicateProposal) Format() []byte {
	return formatEvidence(KindDuplicateProposal, e.A.Format(), e.B.Format())
}

// Verify checks that A and B are validly signed by one validator of vals,
// for one chain, height and round, and differ.
func (e *DuplicateProposal) Verify(vals *ledger.ValidatorSet) error {
	a, b := &e.A, &e.B
	if a.Chain != b.Chain || a.Height != b.Height || a.Round != b.Round || a.Proposer != b.Proposer {
		return fmt.Errorf("%w: proposals of different slots", ErrInvalid)
	}
	if a.Block == b.Block && a.POLRound == b.POLRound {
		return fmt.Errorf("%w: proposals do not conflict", ErrInvalid)
	}
	for _, p := range []*SignedProposal{a, b} {
		if err := p.Verify(vals); err != nil {
			return err
		}
	}
	return nil
}

func formatEvidence(kind string, a, b []byte) []byte {
	var t ledger.TextWriter
	t.WriteString(evidenceMagic + "\n")
	t.Line("kind", kind)
	t.Section("a", a)
	t.Section("b", b)
	return t.Bytes()
}

// ParseEvidence parses an evidence's canonical encoding strictly. It checks
// that the pair is in canonical order; it verifies no signatures.
func ParseEvidence(data []byte) (Evidence, error) {
	l := newLineReader("evidence", data)
	l.Magic(evidenceMagic)
	kind := l.Field("kind")
	a := l.Section("a", 4096)
	b := l.Section("b", 4096)
	if err := l.End(); err != nil {
		return nil, err
	}
	if bytes.Compare(a, b) >= 0 {
		return nil, &FormatError{What: "evidence", Msg: "pair not in canonical order"}
	}
	switch kind {
	case KindDuplicateVote:
		va, err := ledger.ParseSignedVote(a)
		if err != nil {
			return nil, fmt.Errorf("consensus: malformed evidence: %w", err)
		}
		vb, err := ledger.ParseSignedVote(b)
		if err != nil {
			return nil, fmt.Errorf("consensus: malformed evidence: %w", err)
		}
		return &DuplicateVote{A: *va, B: *vb}, nil
	case KindDuplicateProposal:
		pa, err := ParseSignedProposal(a)
		if err != nil {
			return nil, err
		}
		pb, err := ParseSignedProposal(b)
		if err != nil {
			return nil, err
		}
		return &DuplicateProposal{A: *pa, B: *pb}, nil
	}
	return nil, &FormatError{What: "evidence", Line: 2, Msg: fmt.Sprintf("unknown kind %q", clip(kind))}
}
