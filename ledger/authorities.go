package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// ErrHeightUnknown is returned for the validator set of a height that the
// blocks known so far do not determine yet.
var ErrHeightUnknown = errors.New("ledger: validator set of that height not known yet")

// Authorities is the history of a poa chain's validator set, derived from
// the genesis and the chain alone: the genesis set and every authority
// change committed, in log order. It answers which set is in force at a
// height and checks a block's changes against the rules (docs/FORMAT.md,
// "Authority change"). It follows the chain block by block (Apply) up to
// a height, Through; the set of every height up to Through +
// AuthorityDelay is then known.
//
// An Authorities is safe for concurrent use.
type Authorities struct {
	chain   string
	quorum  int // the genesis quorum: 0 for more than two thirds of each set
	attest  int // the genesis attest quorum; -1 for f+1 of each set
	genesis *ValidatorSet

	mu      sync.RWMutex
	entries []AuthorityEntry // in log order; effective heights never decrease
	sets    []*ValidatorSet  // sets[i] is the set after entries[:i+1]
	through uint64

	// verified remembers the changes whose votes verified against a set
	// (the sets are never modified), so that checking one again costs no
	// signature: a proposer checks its ready changes at each poll, and a
	// node checks a proposed block's changes, then again when it appends
	// the block.
	vmu      sync.Mutex
	verified map[verifiedVotes]bool
}

// A verifiedVotes names a change, votes included, and a set its votes
// verified against.
type verifiedVotes struct {
	leaf Hash
	set  *ValidatorSet
}

// maxVerified bounds Authorities.verified; it starts over when full.
const maxVerified = 1024

// NewAuthorities returns the history of poa chain g at its genesis block:
// the genesis set, no change, Through 0.
func NewAuthorities(g *Genesis) (*Authorities, error) {
	vals, err := g.ValidatorSet()
	if err != nil {
		return nil, err
	}
	return &Authorities{chain: g.Chain, quorum: g.Quorum, attest: g.AttestQuorum, genesis: vals}, nil
}

// LoadAuthorities returns the history of the chain of g in s, through s's
// head, from the authority records s lists (Store.Authorities). Every
// change is checked again as when its block was appended.
func LoadAuthorities(ctx context.Context, s Store, g *Genesis) (*Authorities, error) {
	head, err := s.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger: load authorities: %w", err)
	}
	es, err := s.Authorities(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger: load authorities: %w", err)
	}
	a, err := AuthoritiesOf(g, es, head.Height)
	if err != nil {
		return nil, fmt.Errorf("ledger: load authorities: %w: %w", ErrCorrupt, err)
	}
	return a, nil
}

// AuthoritiesOf returns the history of the chain of g through height
// through, given every change committed through it, es, in log order with
// their heights and log indexes. Each block's changes must have
// consecutive indexes, blocks come in height order, none above through,
// and every change is checked as when its block was appended (its votes a
// quorum of the set in force at its height, by the history before it).
// Errors wrap ErrBadAuthority or ErrMalformed.
func AuthoritiesOf(g *Genesis, es []AuthorityEntry, through uint64) (*Authorities, error) {
	a, err := NewAuthorities(g)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(es); {
		j := i
		var cs []AuthorityChange
		for ; j < len(es) && es[j].Height == es[i].Height; j++ {
			cs = append(cs, es[j].Change)
		}
		h := es[i].Height
		if h == 0 || h > through || (len(a.entries) > 0 && h <= a.entries[len(a.entries)-1].Height) || es[i].Index < 0 {
			return nil, fmt.Errorf("%w: authority record %d at height %d out of order", ErrMalformed, es[i].Index, h)
		}
		for k := i; k < j; k++ {
			if es[k].Index != es[i].Index+int64(k-i) {
				return nil, fmt.Errorf("%w: authority records of height %d not consecutive", ErrMalformed, h)
			}
		}
		if len(a.entries) > 0 {
			if last := a.entries[len(a.entries)-1]; es[i].Index <= last.Index {
				return nil, fmt.Errorf("%w: authority record %d at height %d after record %d", ErrMalformed, es[i].Index, h, last.Index)
			}
		}
		if err := a.add(h, es[i].Index, cs); err != nil {
			return nil, err
		}
		i = j
	}
	a.through = through
	return a, nil
}

// Chain returns the chain id.
func (a *Authorities) Chain() string { return a.chain }

// Genesis returns the genesis validator set.
func (a *Authorities) Genesis() *ValidatorSet { return a.genesis }

// Through returns the height of the newest block applied.
func (a *Authorities) Through() uint64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.through
}

// At returns the validator set in force at height h: the genesis set
// changed by every change whose effective height is at most h. It returns
// an error wrapping ErrHeightUnknown when h is above Through +
// AuthorityDelay.
func (a *Authorities) At(h uint64) (*ValidatorSet, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if h > a.through+AuthorityDelay {
		return nil, fmt.Errorf("%w: height %d, blocks known through %d", ErrHeightUnknown, h, a.through)
	}
	return a.atLocked(len(a.entries), h), nil
}

// atLocked returns the set at h after the first n entries.
func (a *Authorities) atLocked(n int, h uint64) *ValidatorSet {
	i := sort.Search(n, func(i int) bool { return a.entries[i].Change.Effective > h })
	if i == 0 {
		return a.genesis
	}
	return a.sets[i-1]
}

// AttestationsNeeded returns how many distinct validators must attest a
// record of a block at height h: the genesis attest_quorum, or when it is
// the default (-1), f+1 of the set in force at h.
func (a *Authorities) AttestationsNeeded(vals *ValidatorSet) int {
	if a.attest >= 0 {
		return a.attest
	}
	return vals.MaxFaulty() + 1
}

// Entries returns every change committed through Through, in log order.
func (a *Authorities) Entries() []AuthorityEntry {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]AuthorityEntry(nil), a.entries...)
}

// Pending returns the changes committed but not in force at height h (their
// effective height is above h), in log order.
func (a *Authorities) Pending(h uint64) []AuthorityEntry {
	a.mu.RLock()
	defer a.mu.RUnlock()
	i := sort.Search(len(a.entries), func(i int) bool { return a.entries[i].Change.Effective > h })
	return append([]AuthorityEntry(nil), a.entries[i:]...)
}

// Projected returns the set after every committed change, pending ones
// included: the set later changes are checked against.
func (a *Authorities) Projected() *ValidatorSet {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.entries) == 0 {
		return a.genesis
	}
	return a.sets[len(a.sets)-1]
}

// Check checks b's authority changes as the changes of a block at its
// height after the blocks applied so far; b's height must be at most
// Through+1. Every error wraps ErrBadAuthority (or ErrHeightUnknown).
func (a *Authorities) Check(b *Block) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	h := b.Header.Height
	if h == 0 || h > a.through+1 {
		return fmt.Errorf("%w: block %d, blocks known through %d", ErrHeightUnknown, h, a.through)
	}
	n := a.before(h)
	_, err := a.check(n, h, b.Authority, votesQuorum)
	return err
}

// CheckChange checks c as if it were the only change of a block at height h
// = Through+1, except that when quorum is false its votes need not reach
// the quorum yet (a proposal collecting votes). The votes it carries must
// verify.
func (a *Authorities) CheckChange(c *AuthorityChange, quorum bool) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	mode := votesSome
	if quorum {
		mode = votesQuorum
	}
	_, err := a.check(len(a.entries), a.through+1, []AuthorityChange{*c}, mode)
	return err
}

// Apply checks b's changes (Check) and records them; Through becomes b's
// height. Applying again a block at or below Through is a no-op when its
// changes are the ones recorded at that height, and an error otherwise.
func (a *Authorities) Apply(b *Block) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := b.Header.Height
	switch {
	case h == 0 || h > a.through+1:
		return fmt.Errorf("%w: block %d, blocks known through %d", ErrHeightUnknown, h, a.through)
	case h <= a.through:
		n := a.before(h)
		var have []AuthorityEntry
		for i := n; i < len(a.entries) && a.entries[i].Height == h; i++ {
			have = append(have, a.entries[i])
		}
		if len(have) != len(b.Authority) {
			return fmt.Errorf("%w: block %d has %d changes, the chain followed has %d", ErrBadAuthority, h, len(b.Authority), len(have))
		}
		for i := range have {
			if have[i].Change.LeafHash() != b.Authority[i].LeafHash() {
				return fmt.Errorf("%w: block %d: change %d differs from the chain followed", ErrBadAuthority, h, i)
			}
		}
		return nil
	}
	if len(b.Authority) > 0 {
		if err := a.addLocked(h, int64(b.Header.LogSize)-int64(len(b.Authority)), b.Authority); err != nil {
			return err
		}
	}
	a.through = h
	return nil
}

// Follow records b's changes without checking their votes, and sets Through
// to b's height; b's height must be Through+1. It is for chains verified
// only from some height on (links and roots below it).
func (a *Authorities) Follow(b *Block) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := b.Header.Height
	if h != a.through+1 {
		return fmt.Errorf("%w: block %d, blocks known through %d", ErrHeightUnknown, h, a.through)
	}
	if len(b.Authority) > 0 {
		sets, err := a.check(len(a.entries), h, b.Authority, votesUnchecked)
		if err != nil {
			return err
		}
		a.record(h, int64(b.Header.LogSize)-int64(len(b.Authority)), b.Authority, sets)
	}
	a.through = h
	return nil
}

func (a *Authorities) add(h uint64, first int64, cs []AuthorityChange) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addLocked(h, first, cs)
}

func (a *Authorities) addLocked(h uint64, first int64, cs []AuthorityChange) error {
	sets, err := a.check(len(a.entries), h, cs, votesQuorum)
	if err != nil {
		return err
	}
	a.record(h, first, cs, sets)
	return nil
}

func (a *Authorities) record(h uint64, first int64, cs []AuthorityChange, sets []*ValidatorSet) {
	for i := range cs {
		c := cs[i]
		c.Sigs = append([]CertSig(nil), c.Sigs...)
		a.entries = append(a.entries, AuthorityEntry{Change: c, Index: first + int64(i), Height: h})
		a.sets = append(a.sets, sets[i])
	}
}

// repeats reports whether c (its message, whatever its votes) is one of
// the first n entries or of before. Effective heights never decrease, so
// only the entries at c's effective height, the last ones, can be.
func (a *Authorities) repeats(n int, before []AuthorityChange, c *AuthorityChange) bool {
	id := c.ID()
	for k := n - 1; k >= 0 && a.entries[k].Change.Effective == c.Effective; k-- {
		if a.entries[k].Change.ID() == id {
			return true
		}
	}
	for k := range before {
		if before[k].ID() == id {
			return true
		}
	}
	return false
}

// verifyVotes is c.VerifyVotes(vals), remembered when it succeeds.
func (a *Authorities) verifyVotes(c *AuthorityChange, vals *ValidatorSet) error {
	k := verifiedVotes{c.LeafHash(), vals}
	a.vmu.Lock()
	done := a.verified[k]
	a.vmu.Unlock()
	if done {
		return nil
	}
	if err := c.VerifyVotes(vals); err != nil {
		return err
	}
	a.vmu.Lock()
	if a.verified == nil || len(a.verified) >= maxVerified {
		a.verified = make(map[verifiedVotes]bool)
	}
	a.verified[k] = true
	a.vmu.Unlock()
	return nil
}

// before returns the number of entries included below height h.
func (a *Authorities) before(h uint64) int {
	return sort.Search(len(a.entries), func(i int) bool { return a.entries[i].Height >= h })
}

// How check treats votes.
const (
	votesQuorum    = iota // verified, and at least the quorum of the set in force
	votesSome             // verified, at least one
	votesUnchecked        // not looked at
)

// check checks cs, the changes of a block at height h in order, after the
// first n entries, and returns the projected set after each.
func (a *Authorities) check(n int, h uint64, cs []AuthorityChange, votes int) ([]*ValidatorSet, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	inForce := a.atLocked(n, h)
	proj := a.genesis
	lastEffective := uint64(0)
	if n > 0 {
		proj = a.sets[n-1]
		lastEffective = a.entries[n-1].Change.Effective
	}
	out := make([]*ValidatorSet, 0, len(cs))
	for i := range cs {
		c := &cs[i]
		fail := func(format string, args ...any) ([]*ValidatorSet, error) {
			return nil, fmt.Errorf("%w: %s at height %d: %s", ErrBadAuthority, c, h, fmt.Sprintf(format, args...))
		}
		if err := c.Check(); err != nil {
			return fail("%v", err)
		}
		switch {
		case c.Chain != a.chain:
			return fail("of chain %q", c.Chain)
		case c.Effective < h+AuthorityDelay:
			return fail("stale: effective height %d is less than %d heights after the block", c.Effective, AuthorityDelay)
		case c.Effective > h+MaxAuthorityDelay:
			return fail("effective height %d is more than %d heights after the block", c.Effective, MaxAuthorityDelay)
		case c.Effective < lastEffective:
			return fail("effective height %d is below %d, that of a change committed before it", c.Effective, lastEffective)
		case a.repeats(n, cs[:i], c):
			return fail("committed before: its votes count once")
		}
		vals := proj.Validators()
		var next []Validator
		switch c.Op {
		case AuthorityAdd:
			if proj.Contains(c.Validator) {
				return fail("%s is already a validator", c.Validator)
			}
			next = append(append(next, vals...), Validator{Key: c.Validator, Name: c.Name})
		case AuthorityRemove:
			if !proj.Contains(c.Validator) {
				return fail("%s is not a validator", c.Validator)
			}
			if proj.Len()-1 < MinValidators {
				return fail("it would leave %d validators, fewer than %d", proj.Len()-1, MinValidators)
			}
			for _, v := range vals {
				if v.Key != c.Validator {
					next = append(next, v)
				}
			}
		}
		ns, err := NewValidatorSet(next, a.quorum)
		if err != nil {
			return fail("%v", err)
		}
		if a.attest > ns.Len() {
			return fail("attest quorum %d exceeds the %d validators it would leave", a.attest, ns.Len())
		}
		if votes != votesUnchecked {
			if err := a.verifyVotes(c, inForce); err != nil {
				return nil, fmt.Errorf("%s at height %d: %w", c, h, err)
			}
			if votes == votesQuorum && len(c.Sigs) < inForce.Quorum() {
				return fail("%d votes, the quorum is %d of %d", len(c.Sigs), inForce.Quorum(), inForce.Len())
			}
			if len(c.Sigs) == 0 {
				return fail("no vote")
			}
		}
		out = append(out, ns)
		proj, lastEffective = ns, c.Effective
	}
	return out, nil
}
