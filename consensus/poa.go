package consensus

import (
	"fmt"
	"slices"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// roundWindow bounds memory: messages of rounds more than roundWindow above
// the current one are not kept (only their round is noted, for the f+1 rule
// that skips to a higher round), and the next height's buffer keeps rounds
// below roundWindow.
const roundWindow = 16

// maxTimeout caps a round timeout, however high the round.
const maxTimeout = 24 * time.Hour

// A PoA is the proof-of-authority BFT engine of one node: Tendermint's
// Algorithm 1 (Buchman, Kwon, Milosevic, "The latest gossip on BFT
// consensus", 2018) as a deterministic state machine. See the package
// comment for how a node drives it.
//
// A PoA is not safe for concurrent use: one goroutine owns it.
type PoA struct {
	cfg    Config
	sign   func([]byte) ledger.Signature // nil for a non-validator
	verify verifyFunc
	self   ledger.PublicKey

	// The height being decided (h_p) and its parent, the head.
	head     ledger.Header
	headHash ledger.Hash
	vals     *ledger.ValidatorSet // of height h
	selfIdx  int                  // index of self in vals; -1 when not a validator at h
	h        uint64
	round    uint32
	step     Step
	started  bool // round 0 has started: there was work or a message
	hold     bool // a block was committed in this call: nothing more until the next

	lockedRound int32
	lockedBlock ledger.Hash
	validRound  int32
	validBlock  ledger.Hash

	rounds   map[uint32]*roundState
	blocks   map[ledger.Hash]*blockInfo
	maxRound []int64              // per validator index: highest round of its messages at h; -1: none
	maxVote  []*ledger.SignedVote // per validator index: its vote of the highest round
	just     []*ledger.SignedVote // the votes that justify the current round (persisted, relayed)
	commits  []slot               // rounds with a precommit quorum for a block (line 49 candidates)
	evSeen   map[evKey]bool

	proposed    bool // signed a proposal in the current round
	ownProposal *Proposal
	ownVotes    [2]*ledger.SignedVote // prevote, precommit of the current round
	lastCommit  *ledger.SignedVote    // own precommit for the block committed at h-1

	proposeAt, prevoteAt, precommitAt time.Time // zero: not scheduled
	rebroadcastAt                     time.Time
	relayAt                           time.Time     // next relay to validators that seem behind
	relayEvery                        time.Duration // doubles after each relay in a round

	future  future
	heights map[ledger.PublicKey]uint64 // highest height of each validator's messages
	behind  uint64                      // highest Behind reported

	signed   *SignState // last message signed (persisted before it is sent)
	dirty    bool       // signed changed: persist it
	restored bool       // Start sends the restored last message again

	now  time.Time
	acts Actions
}

// NewPoA returns an engine deciding the block after head, the head of the
// node's store. st is the signing state last persisted (Actions.Persist),
// nil on first start: when it is for head.Height+1 the engine resumes its
// round, step, lock and valid value; in any case it never signs anything at
// or before st's last message that differs from it. A state for a later
// height (the node failed to append a block it committed) makes the engine
// follow without signing until sync brings it there. A st of another chain
// or validator is an error. Call Start next.
func NewPoA(cfg Config, head *ledger.Header, st *SignState) (*PoA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if head == nil {
		return nil, fmt.Errorf("consensus: no head")
	}
	if head.Chain != cfg.Chain || head.Engine != ledger.EnginePoA {
		return nil, fmt.Errorf("consensus: head is a block of chain %q engine %q, want chain %q engine %q", head.Chain, head.Engine, cfg.Chain, ledger.EnginePoA)
	}
	e := &PoA{
		cfg:     cfg,
		verify:  verifySig,
		heights: make(map[ledger.PublicKey]uint64),
	}
	if cfg.Signer != nil {
		e.self = cfg.Signer.Public()
		e.sign = cfg.Signer.Sign
	}
	e.enterHeight(*head)
	if e.vals == nil {
		return nil, fmt.Errorf("consensus: the validator set of height %d is not known", e.h)
	}
	if st != nil && e.sign != nil {
		if st.Chain != cfg.Chain || st.Validator != e.self {
			return nil, fmt.Errorf("consensus: signing state is of chain %q validator %s, want chain %q validator %s", st.Chain, st.Validator, cfg.Chain, e.self)
		}
		if err := st.check(); err != nil {
			return nil, fmt.Errorf("consensus: signing state: %w", err)
		}
		s := *st
		e.signed = &s
		if st.Height == e.h {
			e.restore(st)
		}
	}
	return e, nil
}

// restore resumes the height where st left it.
func (e *PoA) restore(st *SignState) {
	e.started = true
	e.round, e.step = st.Round, st.Step
	e.lockedRound, e.lockedBlock = st.LockedRound, st.LockedBlock
	e.validRound, e.validBlock = st.ValidRound, st.ValidBlock
	for _, b := range st.Blocks {
		if b.Header.Prev == e.headHash {
			e.addBlock(b.Hash(), b)
		}
	}
	e.proposed = st.Step == StepPropose
	e.roundState(e.round)
	e.restored = true
}

// Start starts the engine at time now: it sends again the last message it
// signed before a restart, and starts round 0 if there is work.
func (e *PoA) Start(now time.Time) Actions {
	e.begin(now)
	e.rebroadcastAt = now.Add(e.cfg.Rebroadcast)
	if e.restored {
		e.restored = false
		e.resendSigned()
	}
	if s := e.signed; s != nil && s.Height > e.h {
		// It signed at a height its store lacks (the node failed to
		// append a commit): the chain is there at least. It signs
		// nothing below that height, so it must sync.
		e.behind = s.Height - 1
		e.acts.Behind = s.Height - 1
	}
	e.tick()
	return e.end()
}

// Tick runs the timers due at now, polls App.Ready while idle, and resends
// the engine's messages every Rebroadcast.
func (e *PoA) Tick(now time.Time) Actions {
	e.begin(now)
	e.tick()
	return e.end()
}

// Receive handles a message from the network. A message of an earlier
// height, a duplicate, or one of a round too far ahead is ignored. A
// message that does not verify (bad signature, signer not a validator or not
// the round's proposer, another chain or parent) changes nothing and
// Receive returns an error wrapping ErrInvalid, so that the node can score
// the peer down. The error does not stop the Actions from being carried out.
func (e *PoA) Receive(now time.Time, m *Message) (Actions, error) {
	e.begin(now)
	err := e.receive(m)
	if err == nil {
		e.run()
	}
	return e.end(), err
}

// Advance tells the engine that the node appended blocks from sync up to
// head: if head is at or above the height being decided, the engine jumps
// to head.Height+1.
func (e *PoA) Advance(now time.Time, head *ledger.Header) Actions {
	e.begin(now)
	if head != nil && head.Chain == e.cfg.Chain && head.Height >= e.h {
		e.enterHeight(*head)
		e.replayFuture()
		e.tick()
	}
	return e.end()
}

// Status returns a snapshot of the engine.
func (e *PoA) Status() Status {
	return Status{
		Height:      e.h,
		Round:       e.round,
		Step:        e.step,
		Proposer:    e.proposer(e.round),
		LockedRound: e.lockedRound,
		LockedBlock: e.lockedBlock,
		ValidRound:  e.validRound,
		ValidBlock:  e.validBlock,
		Validator:   e.canSign(),
	}
}

// valsAt returns the validator set of height h, or nil when it is not
// known (Config.Sets does not reach h).
func (e *PoA) valsAt(h uint64) *ledger.ValidatorSet {
	if e.cfg.Sets == nil {
		return e.cfg.Validators
	}
	vs, err := e.cfg.Sets.At(h)
	if err != nil {
		return nil
	}
	return vs
}

func (e *PoA) proposer(r uint32) ledger.PublicKey {
	return e.vals.Proposer(e.cfg.Chain, e.headHash, e.h, r)
}

func (e *PoA) canSign() bool { return e.sign != nil && e.selfIdx >= 0 }

func (e *PoA) begin(now time.Time) {
	e.now = now
	e.acts = Actions{}
	if e.hold {
		e.hold = false
		e.replayFuture()
	}
}

func (e *PoA) end() Actions {
	if e.dirty {
		s := *e.signed
		e.acts.Persist = &s
		e.dirty = false
	}
	e.acts.Wake = e.wake()
	a := e.acts
	e.acts = Actions{}
	return a
}

// enterHeight starts deciding the block after hdr.
func (e *PoA) enterHeight(hdr ledger.Header) {
	e.head = hdr
	e.headHash = hdr.Hash()
	e.h = hdr.Height + 1
	if vs := e.valsAt(e.h); vs != nil || e.vals == nil {
		e.vals = vs
	}
	e.selfIdx = -1
	if e.sign != nil {
		e.selfIdx = e.vals.Index(e.self)
	}
	e.round, e.step, e.started = 0, StepNewHeight, false
	e.lockedRound, e.lockedBlock = -1, ledger.Hash{}
	e.validRound, e.validBlock = -1, ledger.Hash{}
	e.rounds = make(map[uint32]*roundState)
	e.blocks = make(map[ledger.Hash]*blockInfo)
	e.maxRound = make([]int64, e.vals.Len())
	e.maxVote = make([]*ledger.SignedVote, e.vals.Len())
	e.just = nil
	for i := range e.maxRound {
		e.maxRound[i] = -1
	}
	e.commits = nil
	e.evSeen = make(map[evKey]bool)
	e.proposed, e.ownProposal, e.ownVotes = false, nil, [2]*ledger.SignedVote{}
	e.proposeAt, e.prevoteAt, e.precommitAt = time.Time{}, time.Time{}, time.Time{}
	if e.future.height != e.h {
		e.future.reset(e.h)
	}
}

// intervalEnd is the earliest time of a block at h.
func (e *PoA) intervalEnd() time.Time {
	return time.UnixMilli(e.head.Time).Add(e.cfg.BlockInterval)
}

func (e *PoA) timeout(base time.Duration) time.Duration {
	r := time.Duration(min(e.round, 1<<20))
	return min(base+r*e.cfg.TimeoutDelta, maxTimeout)
}

func (e *PoA) roundState(r uint32) *roundState {
	rs := e.rounds[r]
	if rs == nil {
		rs = &roundState{}
		e.rounds[r] = rs
	}
	return rs
}

// startRound is StartRound(round) of Algorithm 1. The proposal itself is
// made by run (tryPropose), which also retries while the proposer waits for
// the block interval or for work.
func (e *PoA) startRound(r uint32, just []*ledger.SignedVote) {
	e.round, e.step, e.started = r, StepPropose, true
	e.just = just
	e.proposed, e.ownProposal, e.ownVotes = false, nil, [2]*ledger.SignedVote{}
	e.prevoteAt, e.precommitAt = time.Time{}, time.Time{}
	e.relayEvery = e.cfg.Rebroadcast
	e.relayAt = e.now.Add(e.relayEvery)
	// Every node, the proposer too, times out on a proposal that does not
	// come: the proposer may have nothing to propose.
	e.proposeAt = later(e.now, e.intervalEnd()).Add(e.timeout(e.cfg.TimeoutPropose))
	e.roundState(r)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// tick is Tick's body.
func (e *PoA) tick() {
	if !e.started && e.canSign() && e.cfg.App.Ready() {
		e.startRound(0, nil)
	}
	e.run()
	due := func(t time.Time) bool { return !t.IsZero() && !e.now.Before(t) }
	for e.started && !e.hold {
		switch {
		case e.step == StepPropose && due(e.proposeAt):
			// OnTimeoutPropose (line 57).
			e.proposeAt = time.Time{}
			e.prevote(ledger.Hash{})
		case e.step == StepPrevote && due(e.prevoteAt):
			// OnTimeoutPrevote (line 61).
			e.prevoteAt = time.Time{}
			e.precommit(ledger.Hash{})
		case due(e.precommitAt):
			// OnTimeoutPrecommit (line 65).
			e.precommitAt = time.Time{}
			if e.round < MaxRound {
				e.startRound(e.round+1, e.rounds[e.round].precommits.all())
			}
		default:
			e.rebroadcast()
			return
		}
		e.run()
	}
	if !e.hold {
		e.rebroadcast()
	}
}

// wake returns when the engine next wants Tick.
func (e *PoA) wake() time.Time {
	if e.hold {
		return e.now
	}
	w := e.rebroadcastAt
	if w.IsZero() {
		w = e.now.Add(e.cfg.Rebroadcast)
	}
	early := func(t time.Time) {
		if !t.IsZero() && t.Before(w) {
			w = t
		}
	}
	if e.started {
		switch e.step {
		case StepPropose:
			early(e.proposeAt)
			if !e.proposed && e.canSign() && e.proposer(e.round) == e.self && e.now.Before(e.intervalEnd()) {
				early(e.intervalEnd())
			}
		case StepPrevote:
			early(e.prevoteAt)
		}
		early(e.precommitAt)
	}
	return later(w, e.now)
}

// receive verifies m and hands it to the state of its height.
func (e *PoA) receive(m *Message) error {
	if m == nil || (m.Proposal == nil) == (m.Vote == nil) {
		return fmt.Errorf("%w: want exactly one of proposal and vote", ErrInvalid)
	}
	if c := m.chain(); c != e.cfg.Chain {
		return fmt.Errorf("%w: message for chain %q", ErrInvalid, clip(c))
	}
	if p := m.Proposal; p != nil && p.Block == nil {
		return fmt.Errorf("%w: proposal without block", ErrInvalid)
	}
	h := m.height()
	if h < e.h {
		return nil // stale
	}
	var hash ledger.Hash // of a proposed block
	if p := m.Proposal; p != nil {
		hash = p.Block.Hash()
	}
	switch {
	case h == e.h:
		if p := m.Proposal; p != nil && p.Block.Header.Prev != e.headHash {
			return fmt.Errorf("%w: proposal at height %d after block %s, not %s", ErrInvalid, h, p.Block.Header.Prev, e.headHash)
		}
		if e.known(m, hash) {
			return nil
		}
	case h == e.h+1:
		if e.future.known(m, hash) {
			return nil
		}
	}
	vals := e.vals
	if h != e.h {
		if vals = e.valsAt(h); vals == nil {
			return nil // the set of that height is not known yet: as if lost
		}
	}
	if err := m.verify(vals, e.verify); err != nil {
		return err
	}
	e.noteHeight(m.signer(), h)
	switch {
	case h == e.h:
		e.deliver(m, hash)
	case h == e.h+1:
		e.bufferFuture(m, hash)
	}
	return nil
}

// known reports whether m, of the current height, is already recorded
// exactly (same content and signature), so that resent messages cost no
// signature check. A proposal whose block was found invalid is not known: the
// same header may come again with other attestations (which the proposer
// does not sign), from a peer that did not strip them.
func (e *PoA) known(m *Message, hash ledger.Hash) bool {
	if p := m.Proposal; p != nil {
		rs := e.rounds[p.Round]
		if rs == nil {
			return false
		}
		for _, q := range rs.proposals {
			if q.same(p, hash) {
				bi := e.blocks[hash]
				return bi == nil || bi.b == p.Block || !bi.checked || bi.err == nil
			}
		}
		return false
	}
	v := m.Vote
	rs := e.rounds[v.Round]
	if rs == nil || (v.Type != ledger.Prevote && v.Type != ledger.Precommit) {
		return false
	}
	return rs.set(v.Type).has(e.vals.Index(v.Validator), v)
}

// deliver records a verified message of the current height. A message for
// the height starts round 0 if it has not started.
func (e *PoA) deliver(m *Message, hash ledger.Hash) {
	if !e.started {
		e.startRound(0, nil)
	}
	if m.Proposal != nil {
		e.addProposal(m.Proposal, hash)
	} else {
		e.addVote(m.Vote)
	}
}

func (e *PoA) noteRound(idx int, r uint32) {
	if idx >= 0 && int64(r) > e.maxRound[idx] {
		e.maxRound[idx] = int64(r)
	}
}

func (e *PoA) addProposal(p *Proposal, hash ledger.Hash) {
	e.noteRound(e.vals.Index(p.Proposer), p.Round)
	if p.Round > e.round+roundWindow {
		return
	}
	rs := e.roundState(p.Round)
	for _, q := range rs.proposals {
		if q.POLRound == p.POLRound && q.hash == hash {
			e.addBlock(hash, p.Block) // replaces an invalid copy
			return
		}
	}
	if len(rs.proposals) > 0 {
		k := evKey{k: p.Proposer, height: p.Height, round: p.Round, kind: 'p'}
		e.evidence(k, newDuplicateProposal(rs.proposals[0].Signed(), p.Signed()))
		if len(rs.proposals) >= 2 {
			return
		}
	}
	rs.proposals = append(rs.proposals, proposed{p, hash})
	e.addBlock(hash, p.Block)
}

// addBlock records a proposed block. A block already known and found
// invalid is replaced: the same header may come with other attestations.
func (e *PoA) addBlock(hash ledger.Hash, b *ledger.Block) {
	if bi := e.blocks[hash]; bi != nil {
		if bi.checked && bi.err != nil && bi.b != b {
			*bi = blockInfo{b: b}
		}
		return
	}
	e.blocks[hash] = &blockInfo{b: b}
}

func (e *PoA) addVote(v *ledger.SignedVote) {
	idx := e.vals.Index(v.Validator)
	e.noteRound(idx, v.Round)
	if idx >= 0 && (e.maxVote[idx] == nil || v.Round > e.maxVote[idx].Round) {
		e.maxVote[idx] = v
	}
	if v.Round > e.round+roundWindow {
		return
	}
	rs := e.roundState(v.Round)
	first, added, reached := rs.set(v.Type).add(idx, e.vals.Len(), v, e.vals.Quorum(), e.keepVote)
	if first != nil {
		k := evKey{k: v.Validator, height: v.Height, round: v.Round, kind: voteKind(v.Type)}
		e.evidence(k, newDuplicateVote(*first, *v))
	}
	if added && reached && v.Type == ledger.Precommit && !v.Block.IsZero() {
		e.commits = append(e.commits, slot{v.Round, v.Block})
	}
}

// keepVote reports whether a conflicting vote for block deserves room in a
// full slot: it is for nil or for a proposed block.
func (e *PoA) keepVote(block ledger.Hash) bool { return block.IsZero() || e.blocks[block] != nil }

// polka returns the block of a polka in rs that line 36 applies to.
func (e *PoA) polka(rs *roundState) (ledger.Hash, bool) {
	if e.step < StepPrevote || rs.polka {
		return ledger.Hash{}, false
	}
	for _, v := range rs.prevotes.quorums {
		if !v.IsZero() && e.valid(v) {
			return v, true
		}
	}
	return ledger.Hash{}, false
}

func (e *PoA) evidence(k evKey, ev Evidence) {
	if e.evSeen[k] {
		return
	}
	e.evSeen[k] = true
	e.acts.Evidence = append(e.acts.Evidence, ev)
}

// bufferFuture keeps a verified message of the next height.
func (e *PoA) bufferFuture(m *Message, hash ledger.Hash) {
	f := &e.future
	if f.height != e.h+1 {
		f.reset(e.h + 1)
	}
	if p := m.Proposal; p != nil {
		if p.Round >= roundWindow {
			return
		}
		if q, ok := f.props[p.Round]; ok {
			if q.POLRound != p.POLRound || q.hash != hash {
				k := evKey{k: p.Proposer, height: p.Height, round: p.Round, kind: 'p'}
				e.evidence(k, newDuplicateProposal(q.Signed(), p.Signed()))
			}
			return
		}
		f.props[p.Round] = proposed{p, hash}
		return
	}
	v := m.Vote
	if v.Round >= roundWindow {
		return
	}
	k := evKey{k: v.Validator, height: v.Height, round: v.Round, kind: voteKind(v.Type)}
	if q := f.votes[k]; q != nil {
		if q.Block != v.Block {
			e.evidence(k, newDuplicateVote(*q, *v))
		}
		return
	}
	f.votes[k] = v
}

// known reports whether m is buffered exactly.
func (f *future) known(m *Message, hash ledger.Hash) bool {
	if p := m.Proposal; p != nil {
		q, ok := f.props[p.Round]
		return ok && f.height == p.Height && q.same(p, hash)
	}
	v := m.Vote
	q := f.votes[evKey{k: v.Validator, height: v.Height, round: v.Round, kind: voteKind(v.Type)}]
	return f.height == v.Height && q != nil && *q == *v
}

// replayFuture delivers the buffered messages of the height just entered.
func (e *PoA) replayFuture() {
	for _, m := range e.future.take(e.h) {
		var hash ledger.Hash
		if p := m.Proposal; p != nil {
			if p.Block.Header.Prev != e.headHash {
				continue // proposed after another parent: not of this chain
			}
			hash = p.Block.Hash()
		}
		e.deliver(m, hash)
	}
	e.run()
}

// noteHeight records that k sent a message at height h, and reports Behind
// when f+1 validators (so at least one correct one) are two or more heights
// ahead. One height ahead is usual for a moment (others commit first), so
// that is reported by rebroadcast only if it lasts.
func (e *PoA) noteHeight(k ledger.PublicKey, h uint64) {
	if h <= e.heights[k] {
		return
	}
	e.heights[k] = h
	if t := e.networkHeight(); t > e.h+1 && t-1 > e.behind {
		e.behind = t - 1
		e.acts.Behind = t - 1
	}
}

// networkHeight returns the (f+1)-th highest height of the validators'
// messages: at least one correct validator works at that height or above.
func (e *PoA) networkHeight() uint64 {
	hs := make([]uint64, 0, e.vals.Len())
	for _, v := range e.vals.Validators() {
		hs = append(hs, e.heights[v.Key])
	}
	slices.Sort(hs)
	return hs[len(hs)-1-e.vals.MaxFaulty()]
}

// run applies the upon-rules of Algorithm 1 until none applies.
func (e *PoA) run() {
	for i := 0; e.started && !e.hold && i < 10_000; i++ {
		if !e.apply() {
			return
		}
	}
}

// apply applies one rule that applies, and reports whether there was one.
// Line numbers are Algorithm 1's.
func (e *PoA) apply() bool {
	// Line 49: a quorum of precommits for a proposed valid block in any
	// round decides it.
	if e.tryCommit() {
		return true
	}
	// Line 55: f+1 validators at a higher round: go there.
	if r, ok := e.skipRound(); ok {
		var just []*ledger.SignedVote
		for _, v := range e.maxVote {
			if v != nil && v.Round >= r {
				just = append(just, v)
			}
		}
		e.startRound(r, just)
		return true
	}
	rs := e.roundState(e.round)
	q := e.vals.Quorum()
	if e.step == StepPropose {
		if e.tryPropose() {
			return true
		}
		if len(rs.proposals) > 0 {
			p := rs.proposals[0]
			hash := p.hash
			if p.POLRound == -1 {
				// Line 22.
				if e.valid(hash) && (e.lockedRound == -1 || e.lockedBlock == hash) {
					e.prevote(hash)
				} else {
					e.prevote(ledger.Hash{})
				}
				return true
			}
			vr := p.POLRound
			if pol := e.rounds[uint32(vr)]; uint32(vr) < e.round && pol != nil && pol.prevotes.hasQuorum(hash) {
				// Line 28.
				if e.valid(hash) && (e.lockedRound <= vr || e.lockedBlock == hash) {
					e.prevote(hash)
				} else {
					e.prevote(ledger.Hash{})
				}
				return true
			}
		}
	}
	if e.step == StepPrevote && !rs.prevoteTimer && rs.prevotes.total >= q {
		// Line 34.
		rs.prevoteTimer = true
		e.prevoteAt = e.now.Add(e.timeout(e.cfg.TimeoutPrevote))
		return true
	}
	if v, ok := e.polka(rs); ok {
		// Line 36.
		rs.polka = true
		if e.step == StepPrevote {
			e.lockedRound, e.lockedBlock = int32(e.round), v
			e.validRound, e.validBlock = int32(e.round), v
			e.precommit(v)
		}
		e.validRound, e.validBlock = int32(e.round), v
		return true
	}
	if e.step == StepPrevote && rs.prevotes.hasQuorum(ledger.Hash{}) {
		// Line 44.
		e.precommit(ledger.Hash{})
		return true
	}
	if !rs.precommitTimer && rs.precommits.total >= q {
		// Line 47.
		rs.precommitTimer = true
		e.precommitAt = e.now.Add(e.timeout(e.cfg.TimeoutPrecommit))
		return true
	}
	return false
}

// valid is valid(v) of Algorithm 1 for a proposed block of this height. A
// valid result is kept for the height; an invalid one is retried in later
// rounds, as the time check depends on the clock.
func (e *PoA) valid(hash ledger.Hash) bool {
	bi := e.blocks[hash]
	if bi == nil {
		return false
	}
	if bi.checked && (bi.err == nil || bi.round == e.round) {
		return bi.err == nil
	}
	bi.err = e.checkBlock(bi.b)
	bi.checked, bi.round = true, e.round
	return bi.err == nil
}

// checkBlock checks b as the next block after the head: what the engine
// knows, then App.Check.
func (e *PoA) checkBlock(b *ledger.Block) error {
	h := &b.Header
	switch {
	case h.Chain != e.cfg.Chain || h.Engine != ledger.EnginePoA:
		return fmt.Errorf("consensus: block of chain %q engine %q", h.Chain, h.Engine)
	case h.Height != e.h || h.Prev != e.headHash:
		return fmt.Errorf("consensus: block at height %d after %s, want %d after %s", h.Height, h.Prev, e.h, e.headHash)
	case b.Certificate != nil:
		return fmt.Errorf("consensus: proposed block with a certificate")
	case !e.vals.Contains(h.Proposer):
		return fmt.Errorf("consensus: block proposer %s is not a validator", h.Proposer)
	case h.Time < e.head.Time+e.cfg.BlockInterval.Milliseconds():
		return fmt.Errorf("consensus: block time %d is less than %s after its parent's %d", h.Time, e.cfg.BlockInterval, e.head.Time)
	}
	return e.cfg.App.Check(&e.head, b, e.now)
}

// tryCommit is line 49.
func (e *PoA) tryCommit() bool {
	for _, c := range e.commits {
		if e.blocks[c.block] == nil || !e.valid(c.block) {
			continue
		}
		e.commit(c)
		return true
	}
	return false
}

func (e *PoA) commit(c slot) {
	rs := e.rounds[c.round]
	var votes []ledger.SignedVote
	for _, v := range rs.precommits.forBlock(c.block) {
		votes = append(votes, *v)
	}
	cert, err := ledger.NewCertificate(votes)
	if err != nil {
		panic("consensus: certificate of a precommit quorum: " + err.Error())
	}
	b := *e.blocks[c.block].b
	b.Certificate = cert
	e.acts.Commit = &b
	e.lastCommit = nil
	if own := rs.precommits.first(e.selfIdx); own != nil && own.Block == c.block {
		e.lastCommit = own
	}
	e.enterHeight(b.Header)
	// Sign nothing for the next height before the node has appended b.
	e.hold = true
}

// skipRound is line 55: the round to skip to, when f+1 validators have sent
// messages of rounds above the current one. It takes the (f+1)-th highest of
// the validators' highest rounds, so a round at least one correct validator
// has reached.
func (e *PoA) skipRound() (uint32, bool) {
	need := e.vals.MaxFaulty() + 1
	ahead := 0
	for _, r := range e.maxRound {
		if r > int64(e.round) {
			ahead++
		}
	}
	if ahead < need {
		return 0, false
	}
	rs := slices.Clone(e.maxRound)
	slices.Sort(rs)
	return uint32(rs[len(rs)-need]), true
}

// tryPropose is the proposer's part of StartRound: propose the valid value
// if there is one, else a new block from App.Propose, once now is past the
// block interval and (for a new block) there is work.
func (e *PoA) tryPropose() bool {
	if e.step != StepPropose || e.proposed || !e.canSign() || e.proposer(e.round) != e.self || e.now.Before(e.intervalEnd()) {
		return false
	}
	var b *ledger.Block
	pol := int32(-1)
	if e.validRound >= 0 {
		if bi := e.blocks[e.validBlock]; bi != nil {
			b, pol = bi.b, e.validRound
		}
	}
	if b == nil {
		if !e.cfg.App.Ready() {
			return false
		}
		nb, err := e.cfg.App.Propose(&e.head, e.h, e.now)
		if err != nil || nb == nil || e.checkBlock(nb) != nil {
			return false // nothing to propose (or a faulty App): try again later
		}
		b = nb
		e.addBlock(b.Hash(), b)
		bi := e.blocks[b.Hash()]
		bi.checked, bi.err = true, nil
	}
	hash := b.Hash()
	p := &Proposal{Chain: e.cfg.Chain, Height: e.h, Round: e.round, POLRound: pol, Block: b, Proposer: e.self}
	sig, ok := e.signAt(StepPropose, hash, pol, p.SignBytes())
	e.proposed = true
	if !ok {
		return false
	}
	p.Sig = sig
	e.ownProposal = p
	e.addProposal(p, hash)
	e.sendProposal(p)
	return true
}

// sendProposal sends p and, for a re-proposal, the prevotes of its POL round
// for its block, which the other validators need to accept it (line 28).
func (e *PoA) sendProposal(p *Proposal) {
	e.resend(Message{Proposal: p})
	if p.POLRound >= 0 {
		if rs := e.rounds[uint32(p.POLRound)]; rs != nil {
			for _, v := range rs.prevotes.forBlock(p.Block.Hash()) {
				e.resend(Message{Vote: v})
			}
		}
	}
}

func (e *PoA) prevote(block ledger.Hash) {
	e.vote(ledger.Prevote, StepPrevote, block)
	e.step = StepPrevote
}

func (e *PoA) precommit(block ledger.Hash) {
	e.vote(ledger.Precommit, StepPrecommit, block)
	e.step = StepPrecommit
}

// vote signs, counts and sends a vote, if this node is a validator that may
// sign it.
func (e *PoA) vote(typ string, step Step, block ledger.Hash) {
	if !e.canSign() {
		return
	}
	v := ledger.Vote{Chain: e.cfg.Chain, Type: typ, Height: e.h, Round: e.round, Block: block, Validator: e.self}
	sig, ok := e.signAt(step, block, -1, v.Format())
	if !ok {
		return
	}
	sv := &ledger.SignedVote{Vote: v, Sig: sig}
	e.ownVotes[step-StepPrevote] = sv
	e.addVote(sv)
	e.send(Message{Vote: sv})
}

// signAt signs msg, the message for (h, round, step) with block and pol,
// unless that would conflict with the last message signed: only what comes
// after it, or the very same message again, may be signed. It records the
// new signing state, with the lock, valid value and their blocks, to be
// persisted before the message is sent.
func (e *PoA) signAt(step Step, block ledger.Hash, pol int32, msg []byte) (ledger.Signature, bool) {
	if s := e.signed; s != nil {
		switch s.compare(e.h, e.round, step) {
		case -1:
			return ledger.Signature{}, false
		case 0:
			if s.Block == block && s.POLRound == pol {
				return s.Sig, true
			}
			return ledger.Signature{}, false
		}
	}
	s := &SignState{
		Chain: e.cfg.Chain, Validator: e.self,
		Height: e.h, Round: e.round, Step: step, Block: block, POLRound: pol,
		Sig:         e.sign(msg),
		LockedRound: e.lockedRound, LockedBlock: e.lockedBlock,
		ValidRound: e.validRound, ValidBlock: e.validBlock,
	}
	// Votes others may need after a restart (see SignState): the own
	// prevote of the round, the round's justification and the polka of the
	// valid value, each once.
	var votes []*ledger.SignedVote
	if p := e.ownVotes[0]; step == StepPrecommit && p != nil && p.Round == e.round {
		votes = append(votes, p)
	}
	votes = append(votes, e.just...)
	if rs := e.rounds[uint32(e.validRound)]; e.validRound >= 0 && rs != nil {
		votes = append(votes, rs.prevotes.forBlock(e.validBlock)...)
	}
	for i, v := range votes {
		if !slices.ContainsFunc(votes[:i], func(o *ledger.SignedVote) bool { return *o == *v }) {
			s.Votes = append(s.Votes, *v)
		}
	}
	keep := []ledger.Hash{e.lockedBlock, e.validBlock}
	if step == StepPropose {
		keep = append(keep, block)
	}
	for _, h := range keep {
		if h.IsZero() || s.block(h) != nil {
			continue
		}
		if bi := e.blocks[h]; bi != nil {
			s.Blocks = append(s.Blocks, bi.b)
		}
	}
	e.signed = s
	e.dirty = true
	return s.Sig, true
}

// resendSigned sends again the messages of the restored signing state.
func (e *PoA) resendSigned() {
	s := e.signed
	for i := range s.Votes {
		v := &s.Votes[i]
		if verifyVote(v, e.vals, e.verify) != nil {
			continue // a damaged state: these votes only help liveness
		}
		e.addVote(v)
		switch {
		case v.Validator == e.self && v.Type == ledger.Prevote && v.Round == s.Round && s.Step == StepPrecommit:
			e.ownVotes[0] = v
			e.send(Message{Vote: v})
		case v.Type == ledger.Prevote && int32(v.Round) == s.ValidRound && v.Block == s.ValidBlock:
			// the valid value's polka: kept in its round, sent with a re-proposal
		default:
			e.just = append(e.just, v)
		}
	}
	switch s.Step {
	case StepPropose:
		e.proposeAt = later(e.now, e.intervalEnd()).Add(e.timeout(e.cfg.TimeoutPropose))
		bi := e.blocks[s.Block]
		if bi == nil {
			return
		}
		p := &Proposal{Chain: s.Chain, Height: s.Height, Round: s.Round, POLRound: s.POLRound, Block: bi.b, Proposer: e.self, Sig: s.Sig}
		e.ownProposal = p
		e.addProposal(p, s.Block)
		e.sendProposal(p)
	case StepPrevote, StepPrecommit:
		typ := ledger.Prevote
		if s.Step == StepPrecommit {
			typ = ledger.Precommit
		}
		sv := &ledger.SignedVote{Vote: ledger.Vote{Chain: s.Chain, Type: typ, Height: s.Height, Round: s.Round, Block: s.Block, Validator: e.self}, Sig: s.Sig}
		e.ownVotes[s.Step-StepPrevote] = sv
		e.addVote(sv)
		e.send(Message{Vote: sv})
	}
	e.run()
}

func (e *PoA) send(m Message) { e.acts.Send = append(e.acts.Send, m) }

// resend sends m again unless it is already being sent in this call.
func (e *PoA) resend(m Message) {
	for _, s := range e.acts.Send {
		if s.Vote == m.Vote && s.Proposal == m.Proposal {
			return
		}
	}
	e.send(m)
}

// rebroadcast runs every Rebroadcast. It sends the engine's own messages of
// the current round again. When a validator seems to be in an earlier round
// (its messages were lost, or it restarted), it relays the votes of the
// current round and those that justify it, so that the validator can catch
// up by the timeout and f+1 rules; within a round it backs off (Rebroadcast,
// twice that, ... up to 32 times), as a validator that is down or silent
// would otherwise cost n relays per period from every validator. It resends
// its precommit for the last block, for validators still deciding it, and
// reports Behind while messages show the network ahead.
func (e *PoA) rebroadcast() {
	if e.now.Before(e.rebroadcastAt) {
		return
	}
	e.rebroadcastAt = e.now.Add(e.cfg.Rebroadcast)
	if e.started && e.canSign() {
		if p := e.ownProposal; p != nil && p.Round == e.round {
			e.sendProposal(p)
		}
		for _, v := range e.ownVotes {
			if v != nil && v.Round == e.round {
				e.resend(Message{Vote: v})
			}
		}
		if !e.now.Before(e.relayAt) && e.someoneBehind() {
			e.relay()
			e.relayEvery = min(2*e.relayEvery, 32*e.cfg.Rebroadcast)
			e.relayAt = e.now.Add(e.relayEvery)
		}
	}
	if v := e.lastCommit; v != nil && v.Height+1 == e.h && e.canSign() {
		e.resend(Message{Vote: v})
	}
	behind := uint64(0)
	if t := e.networkHeight(); t > e.h {
		behind = t - 1
	}
	for _, c := range e.commits {
		if e.blocks[c.block] == nil {
			behind = max(behind, e.h) // committed, but the proposal never came
		}
	}
	if behind > 0 {
		e.behind = max(e.behind, behind)
		e.acts.Behind = behind
	}
}

func (e *PoA) someoneBehind() bool {
	for i, r := range e.maxRound {
		if i != e.selfIdx && r < int64(e.round) {
			return true
		}
	}
	return false
}

// relay sends the votes of the current round, and the previous round's
// precommits when they are a quorum (they are why this node moved on).
func (e *PoA) relay() {
	send := func(s *voteSet) {
		for _, v := range s.all() {
			e.resend(Message{Vote: v}) // own ones too: the previous round's are not rebroadcast
		}
	}
	rs := e.rounds[e.round]
	send(&rs.prevotes)
	send(&rs.precommits)
	for _, v := range e.just {
		e.resend(Message{Vote: v})
	}
	if e.round > 0 {
		if prev := e.rounds[e.round-1]; prev != nil && prev.precommits.total >= e.vals.Quorum() {
			send(&prev.precommits)
		}
	}
}
