package consensus

import (
	"fmt"
	"strconv"

	"github.com/vcsledger/vcsledger/ledger"
)

// A Step is where a round of a height stands (Tendermint's step_p), plus
// StepNewHeight: waiting for work or for a message before round 0 starts.
type Step uint8

// The steps, in order.
const (
	StepNewHeight Step = iota
	StepPropose
	StepPrevote
	StepPrecommit
)

var stepNames = [...]string{"new-height", "propose", "prevote", "precommit"}

func (s Step) String() string {
	if int(s) < len(stepNames) {
		return stepNames[s]
	}
	return "step(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (s Step) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Step) UnmarshalText(b []byte) error {
	for i, n := range stepNames {
		if string(b) == n {
			*s = Step(i)
			return nil
		}
	}
	return fmt.Errorf("consensus: unknown step %q", clip(string(b)))
}

const signStateMagic = "vcsledger-signstate/1"

// A SignState is what a validator must store durably before any message it
// signed leaves the node (Actions.Persist), so that after a restart it never
// signs a vote or proposal that conflicts with one it signed before.
//
// It records the last message signed (height, round, step, block, POL round
// and signature: a restarted engine sends it again, which is harmless, and
// refuses to sign anything at or before it that differs), and the lock and
// valid value of that height: a validator that forgot its lock could
// precommit two different blocks in two rounds, which is as bad as a
// double vote. The locked and valid blocks, and the proposed block when the
// last message is a proposal, are kept whole in Blocks, so that a restarted
// validator can still propose the block it is locked on; a lock whose block
// is lost would stop a one-validator chain for good.
//
// For liveness it also keeps Votes: the validator's own prevote of the
// round when the last message is its precommit, the votes that justify its
// being in that round (the previous round's precommit quorum, or the f+1
// votes of higher rounds it skipped on), and the polka of its valid value
// (which its re-proposal needs, line 28). Other validators may be waiting
// for exactly these votes; without them a restart could stall the chain.
type SignState struct {
	Chain     string
	Validator ledger.PublicKey
	Height    uint64
	Round     uint32
	Step      Step             // StepPropose, StepPrevote or StepPrecommit
	Block     ledger.Hash      // the signed block hash; zero for a vote for nil
	POLRound  int32            // the proposal's POL round; -1 for votes
	Sig       ledger.Signature // the signature of that message

	LockedRound int32       // -1: not locked
	LockedBlock ledger.Hash // zero when not locked
	ValidRound  int32       // -1: no valid value
	ValidBlock  ledger.Hash // zero when none

	// Votes are votes of this height to send again after a restart.
	Votes []ledger.SignedVote

	// Blocks holds, of Block (for a proposal), LockedBlock and ValidBlock,
	// those the engine had, each once, without certificate.
	Blocks []*ledger.Block
}

// block returns the block of s.Blocks with hash h, or nil.
func (s *SignState) block(h ledger.Hash) *ledger.Block {
	for _, b := range s.Blocks {
		if b.Hash() == h {
			return b
		}
	}
	return nil
}

// Format returns the signing state's canonical encoding:
//
//	vcsledger-signstate/1
//	chain <id>
//	validator <hex key>
//	height <h>
//	round <r>
//	step propose|prevote|precommit
//	block <hex hash or nil>
//	pol <round or -1>
//	sig <hex signature>
//	locked <round or -1> <hex hash or nil>
//	valid <round or -1> <hex hash or nil>
//	vote <length>\n<ledger.SignedVote.Format()>  (once per kept vote)
//	block <length>\n<ledger.Block.Format()>      (once per kept block)
func (s *SignState) Format() []byte {
	var b ledger.TextWriter
	b.WriteString(signStateMagic + "\n")
	b.Line("chain", s.Chain)
	b.Line("validator", s.Validator.String())
	b.Uint("height", s.Height)
	b.Uint("round", uint64(s.Round))
	b.Line("step", s.Step.String())
	b.Line("block", hashOrNil(s.Block))
	b.Line("pol", strconv.Itoa(int(s.POLRound)))
	b.Line("sig", s.Sig.String())
	b.Line("locked", strconv.Itoa(int(s.LockedRound)), hashOrNil(s.LockedBlock))
	b.Line("valid", strconv.Itoa(int(s.ValidRound)), hashOrNil(s.ValidBlock))
	for i := range s.Votes {
		b.Section("vote", s.Votes[i].Format())
	}
	for _, blk := range s.Blocks {
		b.Section("block", blk.Format())
	}
	return b.Bytes()
}

// ParseSignState parses a signing state's canonical encoding strictly and
// checks that it is consistent.
func ParseSignState(data []byte) (*SignState, error) {
	l := newLineReader("signstate", data)
	l.Magic(signStateMagic)
	var s SignState
	s.Chain = l.chain()
	s.Validator = l.PubKey("validator")
	s.Height = l.Uint("height")
	s.Round = l.round("round")
	if v := l.Field("step"); l.Err() == nil {
		if err := s.Step.UnmarshalText([]byte(v)); err != nil || s.Step == StepNewHeight {
			l.Fail("bad step %q", clip(v))
		}
	}
	if v := l.Field("block"); l.Err() == nil {
		var err error
		if s.Block, err = parseHashOrNil(v); err != nil {
			l.Fail("block: %v", err)
		}
	}
	s.POLRound = l.polRound("pol")
	s.Sig = l.Sig("sig")
	s.LockedRound, s.LockedBlock = l.roundHash("locked")
	s.ValidRound, s.ValidBlock = l.roundHash("valid")
	for l.Peek("vote") {
		vb := l.Section("vote", 4096)
		if l.Err() != nil {
			break
		}
		v, err := ledger.ParseSignedVote(vb)
		if err != nil {
			return nil, fmt.Errorf("consensus: malformed signstate: %w", err)
		}
		s.Votes = append(s.Votes, *v)
	}
	for l.More() {
		bb := l.Section("block", ledger.MaxBlockBytes)
		if l.Err() != nil {
			break
		}
		blk, err := ledger.ParseBlock(bb)
		if err != nil {
			return nil, fmt.Errorf("consensus: malformed signstate: %w", err)
		}
		s.Blocks = append(s.Blocks, blk)
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, &FormatError{What: "signstate", Msg: err.Error()}
	}
	return &s, nil
}

func (l *lineReader) roundHash(name string) (int32, ledger.Hash) {
	f := l.Fields(name, 2)
	if l.Err() != nil {
		return 0, ledger.Hash{}
	}
	r, err := parseRound(f[0])
	if err != nil {
		l.Fail("%s: %v", name, err)
		return 0, ledger.Hash{}
	}
	h, err := parseHashOrNil(f[1])
	if err != nil {
		l.Fail("%s: %v", name, err)
		return 0, ledger.Hash{}
	}
	return r, h
}

// check reports whether s is consistent.
func (s *SignState) check() error {
	switch {
	case s.Step < StepPropose || s.Step > StepPrecommit:
		return fmt.Errorf("step %s", s.Step)
	case s.Height == 0:
		return fmt.Errorf("height 0")
	case s.Step == StepPropose && s.Block.IsZero():
		return fmt.Errorf("proposal of nil")
	case s.Step != StepPropose && s.POLRound != -1:
		return fmt.Errorf("pol round %d on a vote", s.POLRound)
	case s.POLRound != -1 && uint32(s.POLRound) >= s.Round:
		return fmt.Errorf("pol round %d not below round %d", s.POLRound, s.Round)
	case (s.LockedRound == -1) != s.LockedBlock.IsZero():
		return fmt.Errorf("locked round %d with block %s", s.LockedRound, hashOrNil(s.LockedBlock))
	case (s.ValidRound == -1) != s.ValidBlock.IsZero():
		return fmt.Errorf("valid round %d with block %s", s.ValidRound, hashOrNil(s.ValidBlock))
	case s.LockedRound > int32(s.Round) || s.ValidRound > int32(s.Round):
		return fmt.Errorf("locked or valid round after round %d", s.Round)
	}
	for _, v := range s.Votes {
		if v.Chain != s.Chain || v.Height != s.Height || v.Round > MaxRound {
			return fmt.Errorf("vote of chain %q height %d round %d", v.Chain, v.Height, v.Round)
		}
	}
	seen := make(map[ledger.Hash]bool)
	for _, b := range s.Blocks {
		h := b.Hash()
		switch {
		case seen[h]:
			return fmt.Errorf("block %s twice", h)
		case h != s.LockedBlock && h != s.ValidBlock && (s.Step != StepPropose || h != s.Block):
			return fmt.Errorf("block %s is neither proposed, locked nor valid", h)
		case b.Certificate != nil:
			return fmt.Errorf("block %s with a certificate", h)
		case b.Header.Height != s.Height || b.Header.Chain != s.Chain:
			return fmt.Errorf("block %s of chain %q height %d", h, b.Header.Chain, b.Header.Height)
		}
		seen[h] = true
	}
	return nil
}

// compare returns 1 if (h, r, step) comes after s's last signed message,
// 0 if it is that message's slot, -1 if it comes before.
func (s *SignState) compare(h uint64, r uint32, step Step) int {
	switch {
	case h != s.Height:
		return cmp3(h > s.Height)
	case r != s.Round:
		return cmp3(r > s.Round)
	case step != s.Step:
		return cmp3(step > s.Step)
	}
	return 0
}

func cmp3(greater bool) int {
	if greater {
		return 1
	}
	return -1
}
