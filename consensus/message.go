package consensus

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/vcsledger/vcsledger/ledger"
)

// Errors of this package, for errors.Is.
var (
	// ErrMalformed is wrapped by every error that refuses an encoding.
	ErrMalformed = errors.New("consensus: malformed encoding")
	// ErrInvalid is wrapped by every error that refuses a well-formed
	// message: a bad signature, a signer that is not a validator or not the
	// round's proposer, another chain. A node scores down the peer that sent
	// it.
	ErrInvalid = errors.New("consensus: invalid message")
)

// MaxRound is the highest round of a height. Rounds above it are refused, so
// that a POL round always fits an int32.
const MaxRound = 1<<31 - 1

// MaxMessageBytes bounds a Message's encoding: a whole block and a little.
const MaxMessageBytes = ledger.MaxBlockBytes + 1<<16

const (
	proposalMagic = "vcsledger-proposal/1"
	messageMagic  = "vcsledger-consensus/1"
)

// A Proposal is the proposer's signed message for (height, round): the
// block (header, records, attestations; no certificate) and the POL round,
// the round of the polka that made the proposer hold the block as its valid
// value (-1 for none: a fresh block). The proposer signs SignBytes, which
// names the block by its hash.
type Proposal struct {
	Chain    string
	Height   uint64
	Round    uint32
	POLRound int32
	Block    *ledger.Block
	Proposer ledger.PublicKey
	Sig      ledger.Signature
}

// A SignedProposal is a proposal without its block: what the proposer
// signed, with the signature. It is enough to prove what was proposed, and
// is what evidence of a double proposal keeps.
type SignedProposal struct {
	Chain    string
	Height   uint64
	Round    uint32
	POLRound int32
	Block    ledger.Hash
	Proposer ledger.PublicKey
	Sig      ledger.Signature
}

// Signed returns p without its block.
func (p *Proposal) Signed() SignedProposal {
	return SignedProposal{Chain: p.Chain, Height: p.Height, Round: p.Round, POLRound: p.POLRound,
		Block: p.Block.Hash(), Proposer: p.Proposer, Sig: p.Sig}
}

// SignBytes returns the message the proposer signs:
//
//	vcsledger-proposal/1
//	chain <id>
//	height <h>
//	round <r>
//	pol <p or -1>
//	block <hex hash>
//	proposer <hex key>
func (p *SignedProposal) SignBytes() []byte {
	var b ledger.TextWriter
	b.WriteString(proposalMagic + "\n")
	b.Line("chain", p.Chain)
	b.Uint("height", p.Height)
	b.Uint("round", uint64(p.Round))
	b.Line("pol", strconv.Itoa(int(p.POLRound)))
	b.Line("block", p.Block.String())
	b.Line("proposer", p.Proposer.String())
	return b.Bytes()
}

// SignBytes returns the message the proposer signs (see
// SignedProposal.SignBytes).
func (p *Proposal) SignBytes() []byte {
	s := p.Signed()
	return s.SignBytes()
}

// Format returns SignBytes followed by "sig <hex>\n".
func (p *SignedProposal) Format() []byte {
	return append(p.SignBytes(), "sig "+p.Sig.String()+"\n"...)
}

// ParseSignedProposal parses SignedProposal.Format strictly. It does not
// verify the signature.
func ParseSignedProposal(b []byte) (*SignedProposal, error) {
	l := newLineReader("proposal", b)
	l.Magic(proposalMagic)
	var p SignedProposal
	p.Chain = l.chain()
	p.Height = l.Uint("height")
	p.Round = l.round("round")
	p.POLRound = l.polRound("pol")
	p.Block = l.Hash("block")
	p.Proposer = l.PubKey("proposer")
	p.Sig = l.Sig("sig")
	if err := l.End(); err != nil {
		return nil, err
	}
	if p.POLRound != -1 && uint32(p.POLRound) >= p.Round {
		return nil, &FormatError{What: "proposal", Msg: fmt.Sprintf("pol round %d not below round %d", p.POLRound, p.Round)}
	}
	return &p, nil
}

// Verify checks the signature and that the signer is a validator of vals.
// It cannot check that the signer is the round's proposer, which depends on
// the previous block; Proposal.Verify does.
func (p *SignedProposal) Verify(vals *ledger.ValidatorSet) error {
	return p.verify(vals, verifySig)
}

func (p *SignedProposal) verify(vals *ledger.ValidatorSet, verify verifyFunc) error {
	switch {
	case p.POLRound < -1 || p.POLRound >= 0 && uint32(p.POLRound) >= p.Round:
		return fmt.Errorf("%w: proposal pol round %d, round %d", ErrInvalid, p.POLRound, p.Round)
	case p.Round > MaxRound:
		return fmt.Errorf("%w: proposal round %d out of range", ErrInvalid, p.Round)
	case !vals.Contains(p.Proposer):
		return fmt.Errorf("%w: proposer %s is not a validator", ErrInvalid, p.Proposer)
	case !verify(p.Proposer, p.SignBytes(), p.Sig):
		return fmt.Errorf("%w: proposal by %s at height %d round %d: %w", ErrInvalid, p.Proposer, p.Height, p.Round, ledger.ErrBadSignature)
	}
	return nil
}

// Verify checks p: the block matches the proposal's chain and height and has
// no certificate, the signer is the proposer of (height, round) after the
// block's parent (DESIGN §3) and a validator of vals, and the signature is
// valid. It does not check the block itself (App.Check does).
func (p *Proposal) Verify(vals *ledger.ValidatorSet) error {
	return p.verify(vals, verifySig)
}

func (p *Proposal) verify(vals *ledger.ValidatorSet, verify verifyFunc) error {
	if p.Block == nil {
		return fmt.Errorf("%w: proposal without block", ErrInvalid)
	}
	h := &p.Block.Header
	switch {
	case h.Chain != p.Chain || h.Height != p.Height:
		return fmt.Errorf("%w: proposal for chain %q height %d carries block of chain %q height %d", ErrInvalid, p.Chain, p.Height, h.Chain, h.Height)
	case h.Engine != ledger.EnginePoA:
		return fmt.Errorf("%w: proposed block of engine %q", ErrInvalid, h.Engine)
	case p.Block.Certificate != nil:
		return fmt.Errorf("%w: proposed block carries a certificate", ErrInvalid)
	case p.Height == 0:
		return fmt.Errorf("%w: proposal at height 0", ErrInvalid)
	}
	if p.Round <= MaxRound && vals.Contains(p.Proposer) {
		if want := vals.Proposer(p.Chain, h.Prev, p.Height, p.Round); want != p.Proposer {
			return fmt.Errorf("%w: %s is not the proposer of height %d round %d (%s is)", ErrInvalid, p.Proposer, p.Height, p.Round, want)
		}
	}
	s := p.Signed()
	return s.verify(vals, verify)
}

// A Message is what engines exchange: exactly one of Proposal or Vote is
// set.
type Message struct {
	Proposal *Proposal
	Vote     *ledger.SignedVote
}

// Format returns the message's canonical wire encoding: a magic line, then
// length-prefixed sections as in ledger.Block.Format, either
//
//	proposal <n>\n<SignedProposal.Format()>block <m>\n<ledger.Block.Format()>
//
// or
//
//	vote <n>\n<ledger.SignedVote.Format()>
func (m *Message) Format() []byte {
	var b ledger.TextWriter
	b.WriteString(messageMagic + "\n")
	switch {
	case m.Proposal != nil:
		s := m.Proposal.Signed()
		b.Section("proposal", s.Format())
		b.Section("block", m.Proposal.Block.Format())
	case m.Vote != nil:
		b.Section("vote", m.Vote.Format())
	}
	return b.Bytes()
}

// ParseMessage parses a message's canonical encoding strictly: the result
// formats back to exactly b. It verifies no signatures (see Verify).
func ParseMessage(b []byte) (*Message, error) {
	if len(b) > MaxMessageBytes {
		return nil, &FormatError{What: "message", Msg: fmt.Sprintf("%d bytes, more than %d", len(b), MaxMessageBytes)}
	}
	l := newLineReader("message", b)
	l.Magic(messageMagic)
	var m Message
	switch {
	case l.Peek("proposal"):
		sb := l.Section("proposal", 4096)
		bb := l.Section("block", ledger.MaxBlockBytes)
		if err := l.End(); err != nil {
			return nil, err
		}
		sp, err := ParseSignedProposal(sb)
		if err != nil {
			return nil, err
		}
		blk, err := ledger.ParseBlock(bb)
		if err != nil {
			return nil, fmt.Errorf("consensus: malformed message: %w", err)
		}
		if blk.Certificate != nil {
			return nil, &FormatError{What: "message", Msg: "proposed block carries a certificate"}
		}
		if blk.Hash() != sp.Block {
			return nil, &FormatError{What: "message", Msg: "block does not match the proposal's hash"}
		}
		m.Proposal = &Proposal{Chain: sp.Chain, Height: sp.Height, Round: sp.Round, POLRound: sp.POLRound,
			Block: blk, Proposer: sp.Proposer, Sig: sp.Sig}
	case l.Peek("vote"):
		vb := l.Section("vote", 4096)
		if err := l.End(); err != nil {
			return nil, err
		}
		sv, err := ledger.ParseSignedVote(vb)
		if err != nil {
			return nil, fmt.Errorf("consensus: malformed message: %w", err)
		}
		if sv.Round > MaxRound {
			return nil, &FormatError{What: "message", Msg: fmt.Sprintf("vote round %d out of range", sv.Round)}
		}
		m.Vote = sv
	default:
		l.Next()
		l.Fail("want a proposal or vote section")
		return nil, l.Err()
	}
	return &m, nil
}

// Verify checks the message's signature and that its signer is a validator
// of vals; for a proposal also that the signer is the round's proposer and
// that the block matches (Proposal.Verify). It does not check the chain id
// against the node's (the engine does) nor the proposed block's contents.
func (m *Message) Verify(vals *ledger.ValidatorSet) error {
	return m.verify(vals, verifySig)
}

func (m *Message) verify(vals *ledger.ValidatorSet, verify verifyFunc) error {
	switch {
	case m.Proposal != nil && m.Vote == nil:
		return m.Proposal.verify(vals, verify)
	case m.Vote != nil && m.Proposal == nil:
		return verifyVote(m.Vote, vals, verify)
	}
	return fmt.Errorf("%w: want exactly one of proposal and vote", ErrInvalid)
}

func verifyVote(sv *ledger.SignedVote, vals *ledger.ValidatorSet, verify verifyFunc) error {
	switch {
	case sv.Type != ledger.Prevote && sv.Type != ledger.Precommit:
		return fmt.Errorf("%w: vote type %q", ErrInvalid, clip(sv.Type))
	case sv.Round > MaxRound:
		return fmt.Errorf("%w: vote round %d out of range", ErrInvalid, sv.Round)
	case !vals.Contains(sv.Validator):
		return fmt.Errorf("%w: voter %s is not a validator", ErrInvalid, sv.Validator)
	case !verify(sv.Validator, sv.Vote.Format(), sv.Sig):
		return fmt.Errorf("%w: vote by %s at height %d round %d: %w", ErrInvalid, sv.Validator, sv.Height, sv.Round, ledger.ErrBadSignature)
	}
	return nil
}

// height, chain and signer of a message whose Proposal has a block.
func (m *Message) height() uint64 {
	if m.Proposal != nil {
		return m.Proposal.Height
	}
	return m.Vote.Height
}

func (m *Message) chain() string {
	if m.Proposal != nil {
		return m.Proposal.Chain
	}
	return m.Vote.Chain
}

func (m *Message) signer() ledger.PublicKey {
	if m.Proposal != nil {
		return m.Proposal.Proposer
	}
	return m.Vote.Validator
}

// A verifyFunc checks one signature. The engine takes it as a value so that
// tests of this package can run thousands of simulated schedules with a
// cheap stand-in; everything outside tests uses verifySig.
type verifyFunc func(k ledger.PublicKey, msg []byte, sig ledger.Signature) bool

func verifySig(k ledger.PublicKey, msg []byte, sig ledger.Signature) bool { return k.Verify(msg, sig) }
