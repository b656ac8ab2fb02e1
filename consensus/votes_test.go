package consensus

import (
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

// An equivocator's votes count for each value it voted for, so that a polka
// that needs its vote is seen by every validator that receives the vote,
// whatever it received first; and junk cannot crowd that vote out.
func TestVoteSetEquivocator(t *testing.T) {
	f := newFixture(t, 4, 0)
	v := func(i int, b ledger.Hash) *ledger.SignedVote {
		return f.vote(i, ledger.Prevote, 1, 0, b).Vote
	}
	known := ledger.Hash{0xb1}
	keep := func(h ledger.Hash) bool { return h.IsZero() || h == known }
	var s voteSet
	add := func(vote *ledger.SignedVote) (bool, bool) {
		_, added, reached := s.add(f.vals.Index(vote.Validator), 4, vote, 3, keep)
		return added, reached
	}
	// The Byzantine validator 0 fills its slot with junk first.
	for j := byte(1); j <= 5; j++ {
		add(v(0, ledger.Hash{0xee, j}))
	}
	if n := len(s.votes[f.vals.Index(f.signers[0].Public())]); n != maxVotesPerSlot {
		t.Fatalf("slot holds %d votes, want %d", n, maxVotesPerSlot)
	}
	add(v(1, known))
	add(v(2, known))
	if s.hasQuorum(known) {
		t.Fatal("quorum with two votes")
	}
	if added, reached := add(v(0, known)); !added || !reached {
		t.Fatalf("the equivocator's vote for the polka value: added %v, reached %v", added, reached)
	}
	if s.total != 3 {
		t.Errorf("total %d distinct validators, want 3", s.total)
	}
	if got := len(s.forBlock(known)); got != 3 {
		t.Errorf("forBlock gives %d votes, want 3", got)
	}
	// Duplicates are not counted again.
	if added, _ := add(v(1, known)); added {
		t.Error("a duplicate vote was added")
	}
}
