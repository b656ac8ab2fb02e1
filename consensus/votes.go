package consensus

import (
	"cmp"
	"slices"

	"github.com/vcsledger/vcsledger/ledger"
)

// A voteSet is the prevotes or the precommits of one round, at most one per
// validator: the first one received counts, a conflicting second one is
// evidence and does not count.
type voteSet struct {
	votes  []*ledger.SignedVote // by validator index
	count  map[ledger.Hash]int  // by block; the zero hash is nil
	total  int
	quorum bool        // some value has a quorum (at most one can)
	maj    ledger.Hash // that value; zero for nil
}

// add records v from the validator at idx. It returns the vote already
// recorded for idx, if any (v is then ignored), and whether v made a value
// reach quorum q.
func (s *voteSet) add(idx, n int, v *ledger.SignedVote, q int) (prev *ledger.SignedVote, reached bool) {
	if s.votes == nil {
		s.votes = make([]*ledger.SignedVote, n)
		s.count = make(map[ledger.Hash]int, 2)
	}
	if p := s.votes[idx]; p != nil {
		return p, false
	}
	s.votes[idx] = v
	s.total++
	s.count[v.Block]++
	if !s.quorum && s.count[v.Block] >= q {
		s.quorum, s.maj = true, v.Block
		return nil, true
	}
	return nil, false
}

// get returns the vote of the validator at idx, or nil.
func (s *voteSet) get(idx int) *ledger.SignedVote {
	if s.votes == nil || idx < 0 {
		return nil
	}
	return s.votes[idx]
}

// forBlock returns the votes for block, in validator order.
func (s *voteSet) forBlock(block ledger.Hash) []ledger.SignedVote {
	var out []ledger.SignedVote
	for _, v := range s.votes {
		if v != nil && v.Block == block {
			out = append(out, *v)
		}
	}
	return out
}

// A roundState is what one round of the current height has seen.
type roundState struct {
	// proposals are the round proposer's proposals: the first one received,
	// which the prevote rules use, and a conflicting second one, kept so
	// that a quorum for its block can still be acted on. Further ones are
	// dropped.
	proposals  []*Proposal
	prevotes   voteSet
	precommits voteSet
	// "for the first time" guards of Algorithm 1.
	prevoteTimer   bool // line 34
	precommitTimer bool // line 47
	polka          bool // line 36
}

func (rs *roundState) set(typ string) *voteSet {
	if typ == ledger.Prevote {
		return &rs.prevotes
	}
	return &rs.precommits
}

// A blockInfo is a proposed block of the current height and whether it is
// valid (valid(v) of Algorithm 1).
type blockInfo struct {
	b       *ledger.Block
	checked bool   // err is the result of a check
	err     error  // nil: valid
	round   uint32 // round of a failed check; a failure is retried in a later round
}

// A slot names one round's value: a (round, block) pair.
type slot struct {
	round uint32
	block ledger.Hash
}

// An evKey names what one validator may sign once: a proposal or a vote of
// a type at a height and round.
type evKey struct {
	k      ledger.PublicKey
	height uint64
	round  uint32
	kind   byte // 'p' proposal, 'v' prevote, 'c' precommit
}

func voteKind(typ string) byte {
	if typ == ledger.Prevote {
		return 'v'
	}
	return 'c'
}

// A future buffers the messages of the next height, at most one proposal per
// round and one vote per validator, round and type, for rounds below
// roundWindow, so that votes sent just before this node commits are not
// lost.
type future struct {
	height uint64
	votes  map[evKey]*ledger.SignedVote
	props  map[uint32]*Proposal
}

func (f *future) reset(height uint64) {
	f.height = height
	f.votes = make(map[evKey]*ledger.SignedVote)
	f.props = make(map[uint32]*Proposal)
}

// take returns the buffered messages for height, proposals first, and
// empties the buffer.
func (f *future) take(height uint64) []*Message {
	if f.height != height {
		return nil
	}
	var out []*Message
	for r := uint32(0); r < roundWindow; r++ {
		if p := f.props[r]; p != nil {
			out = append(out, &Message{Proposal: p})
		}
	}
	votes := make([]*ledger.SignedVote, 0, len(f.votes))
	for _, v := range f.votes {
		votes = append(votes, v)
	}
	// Map order is random; the engine must be deterministic.
	slices.SortFunc(votes, func(a, b *ledger.SignedVote) int {
		if c := cmp.Compare(a.Round, b.Round); c != 0 {
			return c
		}
		if c := cmp.Compare(voteKind(b.Type), voteKind(a.Type)); c != 0 { // prevotes first
			return c
		}
		return a.Validator.Compare(b.Validator)
	})
	for _, v := range votes {
		out = append(out, &Message{Vote: v})
	}
	f.reset(height + 1)
	return out
}
