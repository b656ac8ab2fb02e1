package consensus

import (
	"cmp"
	"slices"

	"github.com/vcsledger/vcsledger/ledger"
)

// maxVotesPerSlot bounds the votes kept of one validator for one round and
// type: its first vote and up to two conflicting ones.
const maxVotesPerSlot = 3

// A voteSet is the prevotes or the precommits of one round. As in
// Algorithm 1, "2f+1 votes for v" counts distinct validators with a vote for
// v: a validator that equivocated counts for each value it voted for (it is
// one of the f faulty ones, and the safety argument allows for that). Were
// only its first vote counted, it could show each correct validator a
// different vote and leave one locked on a polka the others never see,
// which stops the chain. Memory stays bounded: a validator's first vote is
// always kept, then at most maxVotesPerSlot-1 conflicting ones; when they are
// too many, the vote for the value with the fewest votes gives way (so that
// junk cannot crowd out the vote that completes a polka), votes for nil or
// a known proposed block winning ties.
type voteSet struct {
	votes   [][]*ledger.SignedVote // by validator index: first vote, then conflicting ones
	count   map[ledger.Hash]int    // distinct validators with a vote for the block; zero hash: nil
	total   int                    // distinct validators with a vote
	quorums []ledger.Hash          // values that reached quorum, in order
}

// add records v from the validator at idx, for a set of n validators with
// quorum q. keep reports whether a value deserves room (nil or a known
// block). It returns the validator's first vote when v conflicts with it
// (evidence), whether v was recorded, and whether v made its value reach
// quorum.
func (s *voteSet) add(idx, n int, v *ledger.SignedVote, q int, keep func(ledger.Hash) bool) (first *ledger.SignedVote, added, reached bool) {
	if s.votes == nil {
		s.votes = make([][]*ledger.SignedVote, n)
		s.count = make(map[ledger.Hash]int, 2)
	}
	mine := s.votes[idx]
	for _, o := range mine {
		if o.Block == v.Block {
			return nil, false, false // a duplicate, perhaps with another signature
		}
	}
	switch {
	case len(mine) == 0:
		s.total++
	case len(mine) < maxVotesPerSlot:
		first = mine[0]
	default:
		first = mine[0]
		score := func(b ledger.Hash) int {
			sc := 2 * s.count[b]
			if keep(b) {
				sc++
			}
			return sc
		}
		worst := 1
		for i := 2; i < len(mine); i++ {
			if score(mine[i].Block) < score(mine[worst].Block) {
				worst = i
			}
		}
		if score(v.Block)+2 <= score(mine[worst].Block) {
			return first, false, false // v would not outrank it even counted
		}
		s.count[mine[worst].Block]--
		mine = slices.Delete(mine, worst, worst+1)
	}
	s.votes[idx] = append(mine, v)
	s.count[v.Block]++
	if s.count[v.Block] == q {
		s.quorums = append(s.quorums, v.Block)
		reached = true
	}
	return first, true, reached
}

// has reports whether the set holds exactly v.
func (s *voteSet) has(idx int, v *ledger.SignedVote) bool {
	if s.votes == nil || idx < 0 {
		return false
	}
	for _, o := range s.votes[idx] {
		if *o == *v {
			return true
		}
	}
	return false
}

// first returns the first vote of the validator at idx, or nil.
func (s *voteSet) first(idx int) *ledger.SignedVote {
	if s.votes == nil || idx < 0 || len(s.votes[idx]) == 0 {
		return nil
	}
	return s.votes[idx][0]
}

// hasQuorum reports whether block (zero: nil) has a quorum.
func (s *voteSet) hasQuorum(block ledger.Hash) bool { return slices.Contains(s.quorums, block) }

// forBlock returns the votes for block, at most one per validator, in
// validator order.
func (s *voteSet) forBlock(block ledger.Hash) []*ledger.SignedVote {
	var out []*ledger.SignedVote
	for _, vs := range s.votes {
		for _, v := range vs {
			if v.Block == block {
				out = append(out, v)
			}
		}
	}
	return out
}

// all returns every vote kept.
func (s *voteSet) all() []*ledger.SignedVote {
	var out []*ledger.SignedVote
	for _, vs := range s.votes {
		out = append(out, vs...)
	}
	return out
}

// A roundState is what one round of the current height has seen.
type roundState struct {
	// proposals are the round proposer's proposals: the first one received,
	// which the prevote rules use, and a conflicting second one, kept so
	// that a quorum for its block can still be acted on. Further ones are
	// dropped.
	proposals  []proposed
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

// A proposed is a proposal and its block's hash, computed once.
type proposed struct {
	*Proposal
	hash ledger.Hash
}

// same reports whether p, whose block hashes to hash, is the same proposal
// as x, signature included.
func (x *proposed) same(p *Proposal, hash ledger.Hash) bool {
	return x.Sig == p.Sig && x.Proposer == p.Proposer && x.Round == p.Round && x.POLRound == p.POLRound && x.hash == hash
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
	props  map[uint32]proposed
}

func (f *future) reset(height uint64) {
	f.height = height
	f.votes = make(map[evKey]*ledger.SignedVote)
	f.props = make(map[uint32]proposed)
}

// take returns the buffered messages for height, proposals first, and
// empties the buffer.
func (f *future) take(height uint64) []*Message {
	if f.height != height {
		return nil
	}
	var out []*Message
	for r := uint32(0); r < roundWindow; r++ {
		if p, ok := f.props[r]; ok {
			out = append(out, &Message{Proposal: p.Proposal})
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
