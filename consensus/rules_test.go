package consensus

import (
	"errors"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// A ruleEnv is one validator's engine at height 1 of a 4-validator chain,
// fed hand-made messages from the other three.
type ruleEnv struct {
	t    *testing.T
	f    *fixture
	app  *testApp
	e    *PoA
	me   int
	head ledger.Header
	now  time.Time
	sent []Message // everything the engine sent
	acts Actions   // actions of the last call
}

const (
	tPropose   = 3 * time.Second
	tPrevote   = time.Second
	tPrecommit = time.Second
	tDelta     = 500 * time.Millisecond
)

// newRuleEnv returns an engine of a validator that is not the proposer of
// rounds 0 to 2.
func newRuleEnv(t *testing.T) *ruleEnv {
	t.Helper()
	f := newFixture(t, 4, 0)
	head := f.genesis()
	me := otherThan(4, f.proposerIdx(&head, 0), f.proposerIdx(&head, 1), f.proposerIdx(&head, 2))
	return newRuleEnvAs(t, f, me)
}

func newRuleEnvAs(t *testing.T, f *fixture, me int) *ruleEnv {
	t.Helper()
	head := f.genesis()
	app := newTestApp(t, f, 1, f.signers[me].Public())
	cfg := Config{Chain: f.g.Chain, Validators: f.vals, Signer: f.signers[me], BlockInterval: time.Second, App: app,
		TimeoutPropose: tPropose, TimeoutPrevote: tPrevote, TimeoutPrecommit: tPrecommit, TimeoutDelta: tDelta}
	e, err := NewPoA(cfg, &head, nil)
	if err != nil {
		t.Fatal(err)
	}
	env := &ruleEnv{t: t, f: f, app: app, e: e, me: me, head: head, now: genesisTime.Add(10 * time.Second)}
	env.note(e.Start(env.now))
	return env
}

func (env *ruleEnv) note(a Actions) Actions {
	env.acts = a
	env.sent = append(env.sent, a.Send...)
	return a
}

func (env *ruleEnv) recv(m *Message) Actions {
	env.t.Helper()
	a, err := env.e.Receive(env.now, m)
	if err != nil {
		env.t.Fatalf("Receive: %v", err)
	}
	return env.note(a)
}

func (env *ruleEnv) tick(d time.Duration) Actions {
	env.now = env.now.Add(d)
	return env.note(env.e.Tick(env.now))
}

// block returns a fresh valid block for height 1.
func (env *ruleEnv) block() *ledger.Block {
	env.t.Helper()
	b, err := env.app.build(&env.head, env.now.UnixMilli(), env.f.signers[0].Public())
	if err != nil {
		env.t.Fatal(err)
	}
	return b
}

func (env *ruleEnv) propose(r uint32, b *ledger.Block, pol int32) Actions {
	return env.recv(env.f.proposal(env.f.proposerIdx(&env.head, r), b, r, pol))
}

// votes delivers votes of type typ at round r for block from validators
// idxs (never from env.me).
func (env *ruleEnv) votes(typ string, r uint32, block ledger.Hash, idxs ...int) {
	env.t.Helper()
	for _, i := range idxs {
		if i == env.me {
			env.t.Fatalf("votes from the engine's own validator")
		}
		env.recv(env.f.vote(i, typ, 1, r, block))
	}
}

// others returns n validators other than me.
func (env *ruleEnv) others(n int) []int {
	var out []int
	for i := 0; i < 4 && len(out) < n; i++ {
		if i != env.me {
			out = append(out, i)
		}
	}
	return out
}

// own returns the engine's own distinct votes of type typ at round r, in
// order (rebroadcasts are not repeated).
func (env *ruleEnv) own(typ string, r uint32) []ledger.Hash {
	var out []ledger.Hash
	seen := make(map[ledger.SignedVote]bool)
	for _, v := range votesIn(env.sent, typ) {
		if v.Round == r && v.Validator == env.f.signers[env.me].Public() && !seen[*v] {
			seen[*v] = true
			out = append(out, v.Block)
		}
	}
	return out
}

func (env *ruleEnv) wantOwn(typ string, r uint32, want ledger.Hash) {
	env.t.Helper()
	got := env.own(typ, r)
	if len(got) != 1 || got[0] != want {
		env.t.Fatalf("own %ss at round %d = %v, want exactly [%s]", typ, r, got, hashOrNil(want))
	}
}

func (env *ruleEnv) wantNoOwn(typ string, r uint32) {
	env.t.Helper()
	if got := env.own(typ, r); len(got) != 0 {
		env.t.Fatalf("own %ss at round %d = %v, want none", typ, r, got)
	}
}

func (env *ruleEnv) wantStatus(round uint32, step Step) Status {
	env.t.Helper()
	st := env.e.Status()
	if st.Round != round || st.Step != step {
		env.t.Fatalf("status round %d step %s, want round %d step %s", st.Round, st.Step, round, step)
	}
	return st
}

// lockOn makes the engine lock on b at round r (its proposal): a polka of
// the three others.
func (env *ruleEnv) lockOn(r uint32, b *ledger.Block) {
	env.t.Helper()
	env.propose(r, b, -1)
	env.votes(ledger.Prevote, r, b.Hash(), env.others(3)...)
	st := env.e.Status()
	if st.LockedRound != int32(r) || st.LockedBlock != b.Hash() {
		env.t.Fatalf("not locked on the polka: %+v", st)
	}
}

// skipTo moves the engine to round r by the f+1 rule: nil precommits of two
// others at r (which leave the prevotes of r free for the test).
func (env *ruleEnv) skipTo(r uint32) {
	env.t.Helper()
	env.votes(ledger.Precommit, r, ledger.Hash{}, env.others(2)...)
	if st := env.e.Status(); st.Round != r {
		env.t.Fatalf("f+1 messages at round %d: status round %d", r, st.Round)
	}
}

var nilHash ledger.Hash

// Line 22: a proposal with no POL round is prevoted if valid and the
// engine is not locked on another block; else nil.
func TestRuleProposalPrevote(t *testing.T) {
	for _, tc := range []struct {
		name    string
		invalid bool
		lock    bool // locked on another block in round 0; proposal in round 1
		same    bool // the proposal of round 1 is the locked block (POL -1 anyway)
		want    bool // prevote the block (else nil)
	}{
		{name: "valid", want: true},
		{name: "invalid", invalid: true},
		{name: "locked on another", lock: true},
		{name: "locked on it", lock: true, same: true, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newRuleEnv(t)
			r := uint32(0)
			b := env.block()
			if tc.lock {
				x := env.block()
				env.lockOn(0, x)
				env.skipTo(1)
				r = 1
				if tc.same {
					b = x
				}
			}
			if tc.invalid {
				env.app.checkErr = func(*ledger.Block) error { return errors.New("bad block") }
			}
			env.propose(r, b, -1)
			env.wantStatus(r, StepPrevote)
			if tc.want {
				env.wantOwn(ledger.Prevote, r, b.Hash())
			} else {
				env.wantOwn(ledger.Prevote, r, nilHash)
			}
		})
	}
}

// Line 28: a proposal with POL round vr is prevoted once a polka for it at
// vr is seen, if the engine's lock is not newer than vr (or is on it).
func TestRulePOLProposal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lockR    uint32 // lock on another block at this round
		pol      int32
		want     bool
		noPolka  bool
		noLocked bool
	}{
		{name: "lock older than pol", lockR: 0, pol: 1, want: true},
		{name: "lock newer than pol", lockR: 1, pol: 0, want: false},
		{name: "not locked", noLocked: true, pol: 1, want: true},
		{name: "no polka seen", noLocked: true, pol: 1, noPolka: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newRuleEnv(t)
			y := env.block()
			if !tc.noLocked {
				if tc.lockR > 0 {
					env.skipTo(tc.lockR)
				}
				env.lockOn(tc.lockR, env.block())
			}
			env.skipTo(2)
			env.propose(2, y, tc.pol)
			env.wantStatus(2, StepPropose) // waits for the POL
			env.wantNoOwn(ledger.Prevote, 2)
			if tc.noPolka {
				env.tick(tPropose + 2*tDelta)
				env.wantOwn(ledger.Prevote, 2, nilHash) // timeout
				return
			}
			voters := env.others(3)
			if tc.pol == int32(tc.lockR) && !tc.noLocked {
				voters = env.others(3) // the engine's own round-vr prevote went to its locked block
			}
			env.votes(ledger.Prevote, uint32(tc.pol), y.Hash(), voters...)
			env.wantStatus(2, StepPrevote)
			if tc.want {
				env.wantOwn(ledger.Prevote, 2, y.Hash())
			} else {
				env.wantOwn(ledger.Prevote, 2, nilHash)
			}
		})
	}
}

// Lines 34 and 61: 2f+1 prevotes of any kind start the prevote timeout;
// when it expires the engine precommits nil.
func TestRulePrevoteTimeout(t *testing.T) {
	env := newRuleEnv(t)
	b := env.block()
	env.propose(0, b, -1)
	env.wantOwn(ledger.Prevote, 0, b.Hash())
	o := env.others(2)
	env.votes(ledger.Prevote, 0, b.Hash(), o[0])
	if !env.acts.Wake.After(env.now.Add(tPrevote)) {
		t.Fatalf("prevote timeout started before 2f+1 prevotes")
	}
	env.votes(ledger.Prevote, 0, nilHash, o[1])
	if want := env.now.Add(tPrevote); !env.acts.Wake.Equal(want) {
		t.Fatalf("Wake = %v, want the prevote timeout %v", env.acts.Wake, want)
	}
	env.tick(tPrevote - time.Millisecond)
	env.wantNoOwn(ledger.Precommit, 0)
	env.tick(time.Millisecond)
	env.wantOwn(ledger.Precommit, 0, nilHash)
	env.wantStatus(0, StepPrecommit)
}

// Line 36: a polka for the round's proposal locks it, precommits it and
// makes it the valid value; after the engine precommitted (here nil by
// timeout) only the valid value changes.
func TestRulePolka(t *testing.T) {
	t.Run("in prevote step", func(t *testing.T) {
		env := newRuleEnv(t)
		b := env.block()
		env.propose(0, b, -1)
		env.votes(ledger.Prevote, 0, b.Hash(), env.others(2)...)
		env.wantOwn(ledger.Precommit, 0, b.Hash())
		st := env.wantStatus(0, StepPrecommit)
		if st.LockedRound != 0 || st.LockedBlock != b.Hash() || st.ValidRound != 0 || st.ValidBlock != b.Hash() {
			t.Errorf("status %+v, want locked and valid at round 0 on the block", st)
		}
	})
	t.Run("in precommit step", func(t *testing.T) {
		env := newRuleEnv(t)
		b := env.block()
		env.propose(0, b, -1)
		o := env.others(3)
		env.votes(ledger.Prevote, 0, nilHash, o[0])
		env.votes(ledger.Prevote, 0, b.Hash(), o[1])
		env.tick(tPrevote)
		env.wantOwn(ledger.Precommit, 0, nilHash)
		env.votes(ledger.Prevote, 0, b.Hash(), o[2])
		st := env.wantStatus(0, StepPrecommit)
		env.wantOwn(ledger.Precommit, 0, nilHash)
		if st.LockedRound != -1 || st.ValidRound != 0 || st.ValidBlock != b.Hash() {
			t.Errorf("status %+v, want unlocked, valid at round 0", st)
		}
	})
	t.Run("polka without proposal", func(t *testing.T) {
		env := newRuleEnv(t)
		b := env.block()
		env.votes(ledger.Prevote, 0, b.Hash(), env.others(3)...)
		env.tick(tPropose) // prevote nil, no proposal seen
		env.wantOwn(ledger.Prevote, 0, nilHash)
		env.wantNoOwn(ledger.Precommit, 0)
		env.propose(0, b, -1) // the proposal arrives late
		env.wantOwn(ledger.Precommit, 0, b.Hash())
	})
}

// Line 44: a polka for nil precommits nil.
func TestRuleNilPolka(t *testing.T) {
	env := newRuleEnv(t)
	o := env.others(2)
	env.votes(ledger.Prevote, 0, nilHash, o[0]) // starts round 0
	env.tick(tPropose)
	env.wantOwn(ledger.Prevote, 0, nilHash)
	env.wantNoOwn(ledger.Precommit, 0)
	env.votes(ledger.Prevote, 0, nilHash, o[1])
	env.wantOwn(ledger.Precommit, 0, nilHash)
	env.wantStatus(0, StepPrecommit)
}

// Lines 47 and 65: 2f+1 precommits of any kind start the precommit timeout,
// which starts the next round; timeouts grow with the round.
func TestRulePrecommitTimeout(t *testing.T) {
	env := newRuleEnv(t)
	b := env.block()
	o := env.others(3)
	env.votes(ledger.Precommit, 0, b.Hash(), o[0])
	env.votes(ledger.Precommit, 0, nilHash, o[1])
	if env.acts.Wake.Equal(env.now.Add(tPrecommit)) {
		t.Fatalf("precommit timeout with 2 precommits")
	}
	env.votes(ledger.Precommit, 0, nilHash, o[2])
	if want := env.now.Add(tPrecommit); !env.acts.Wake.Equal(want) {
		t.Fatalf("Wake = %v, want the precommit timeout %v", env.acts.Wake, want)
	}
	for r := uint32(1); r <= 3; r++ {
		env.tick(tPrecommit + time.Duration(r-1)*tDelta)
		env.wantStatus(r, StepPropose)
		// timeoutPropose(r) = base + r*delta
		if want := env.now.Add(tPropose + time.Duration(r)*tDelta); !env.e.proposeAt.Equal(want) {
			t.Fatalf("round %d: propose timeout at %v, want %v", r, env.e.proposeAt, want)
		}
		env.votes(ledger.Precommit, r, nilHash, o...)
	}
}

// Line 49: 2f+1 precommits for a block commit it, in whatever round they
// are and whatever round the proposal came in; the certificate is made of
// those precommits.
func TestRuleCommit(t *testing.T) {
	env := newRuleEnv(t)
	b := env.block()
	env.propose(0, b, -1)
	env.skipTo(3)
	o := env.others(3)
	env.votes(ledger.Precommit, 1, b.Hash(), o[0], o[1])
	if env.acts.Commit != nil {
		t.Fatal("commit with 2 precommits")
	}
	env.votes(ledger.Precommit, 1, b.Hash(), o[2])
	c := env.acts.Commit
	if c == nil {
		t.Fatal("no commit after 2f+1 precommits for a proposed block")
	}
	if c.Hash() != b.Hash() || c.Certificate == nil || c.Certificate.Round != 1 {
		t.Fatalf("committed %s with certificate %+v", c.Hash(), c.Certificate)
	}
	if err := env.f.seal.CheckSeal(t.Context(), &env.head, c); err != nil {
		t.Fatalf("seal of the committed block: %v", err)
	}
	if st := env.e.Status(); st.Height != 2 || st.Round != 0 || st.Step != StepNewHeight || st.LockedRound != -1 {
		t.Errorf("status after commit %+v, want height 2 round 0 new-height unlocked", st)
	}
}

// Line 49 needs the block: precommits first, proposal later.
func TestRuleCommitWaitsForBlock(t *testing.T) {
	env := newRuleEnv(t)
	b := env.block()
	env.votes(ledger.Precommit, 0, b.Hash(), env.others(3)...)
	if env.acts.Commit != nil {
		t.Fatal("commit without the block")
	}
	env.tick(DefaultRebroadcast)
	if env.acts.Behind != 1 {
		t.Errorf("Behind = %d with a commit quorum for an unknown block, want 1", env.acts.Behind)
	}
	env.propose(0, b, -1)
	if env.acts.Commit == nil || env.acts.Commit.Hash() != b.Hash() {
		t.Fatalf("no commit once the proposal arrived")
	}
	// An invalid block is never committed, even with a quorum.
	env2 := newRuleEnv(t)
	env2.app.checkErr = func(*ledger.Block) error { return errors.New("bad") }
	b2 := env2.block()
	env2.propose(0, b2, -1)
	env2.votes(ledger.Precommit, 0, b2.Hash(), env2.others(3)...)
	if env2.acts.Commit != nil {
		t.Fatal("committed an invalid block")
	}
}

// Line 55: f+1 messages of a higher round move the engine there; f do not.
func TestRuleSkipRound(t *testing.T) {
	env := newRuleEnv(t)
	env.tick(0) // nothing
	o := env.others(2)
	env.recv(env.f.vote(o[0], ledger.Precommit, 1, 5, nilHash))
	env.wantStatus(0, StepPropose) // the message started round 0
	env.recv(env.f.vote(o[1], ledger.Prevote, 1, 7, nilHash))
	env.wantStatus(5, StepPropose) // 2 validators at round >= 5
	// Far rounds count for the rule but are not stored.
	env.recv(env.f.vote(o[0], ledger.Prevote, 1, 100_000, nilHash))
	env.recv(env.f.vote(o[1], ledger.Prevote, 1, 90_000, nilHash))
	env.wantStatus(90_000, StepPropose)
	if n := len(env.e.rounds); n > 2*roundWindow {
		t.Errorf("%d rounds kept", n)
	}
}

// Locking and unlocking on polkas: a locked validator prevotes nil on
// another block but relocks on a newer polka for it.
func TestRelockOnNewerPolka(t *testing.T) {
	env := newRuleEnv(t)
	x, y := env.block(), env.block()
	env.lockOn(0, x)
	env.skipTo(1)
	env.propose(1, y, -1)
	env.wantOwn(ledger.Prevote, 1, nilHash)
	env.votes(ledger.Prevote, 1, y.Hash(), env.others(3)...)
	env.wantOwn(ledger.Precommit, 1, y.Hash())
	st := env.e.Status()
	if st.LockedRound != 1 || st.LockedBlock != y.Hash() {
		t.Fatalf("after a newer polka: %+v, want locked on it at round 1", st)
	}
	// A polka in a round the engine already left does not unlock.
	env2 := newRuleEnv(t)
	env2.lockOn(0, x)
	env2.skipTo(2)
	env2.propose(1, y, -1)
	env2.votes(ledger.Prevote, 1, y.Hash(), env2.others(3)...)
	if st := env2.e.Status(); st.LockedBlock != x.Hash() {
		t.Fatalf("lock moved by a polka of an old round: %+v", st)
	}
}

// A proposer with a valid value proposes it again with its POL round and
// sends the polka along.
func TestProposeValidValue(t *testing.T) {
	f := newFixture(t, 4, 0)
	head := f.genesis()
	me := otherThan(4, f.proposerIdx(&head, 0))
	var r uint32
	for r = 1; f.proposerIdx(&head, r) != me; r++ {
	}
	env := newRuleEnvAs(t, f, me)
	x := env.block()
	env.lockOn(0, x)
	env.skipTo(r)
	props := proposalsIn(env.acts.Send)
	if len(props) != 1 {
		t.Fatalf("proposer of round %d sent %d proposals", r, len(props))
	}
	p := props[0]
	if p.Block.Hash() != x.Hash() || p.POLRound != 0 || p.Round != r {
		t.Fatalf("proposal %s pol %d round %d, want the valid value with pol 0", p.Block.Hash(), p.POLRound, p.Round)
	}
	if n := len(votesIn(env.acts.Send, ledger.Prevote)); n < 3 {
		t.Errorf("proposal sent with %d prevotes, want the POL's (at least 3) and its own", n)
	}
	env.wantOwn(ledger.Prevote, r, x.Hash())
}

// Equivocation is kept as evidence and does not count twice.
func TestEquivocation(t *testing.T) {
	env := newRuleEnv(t)
	b := env.block()
	o := env.others(3)
	env.recv(env.f.vote(o[0], ledger.Prevote, 1, 0, b.Hash()))
	env.recv(env.f.vote(o[0], ledger.Prevote, 1, 0, nilHash))
	if len(env.acts.Evidence) != 1 || env.acts.Evidence[0].Kind() != KindDuplicateVote {
		t.Fatalf("evidence %v, want one duplicate vote", env.acts.Evidence)
	}
	ev := env.acts.Evidence[0]
	if err := ev.Verify(env.f.vals); err != nil || ev.Offender() != env.f.signers[o[0]].Public() {
		t.Fatalf("evidence Verify = %v, offender %s", err, ev.Offender())
	}
	parsed, err := ParseEvidence(ev.Format())
	if err != nil || string(parsed.Format()) != string(ev.Format()) {
		t.Fatalf("ParseEvidence round trip: %v", err)
	}
	env.recv(env.f.vote(o[0], ledger.Prevote, 1, 0, nilHash)) // same again: no new evidence
	if len(env.acts.Evidence) != 0 {
		t.Errorf("evidence repeated")
	}
	// o[0] counts once: with o[1] that is 2 prevotes for b, no polka yet.
	env.propose(0, b, -1)
	env.votes(ledger.Prevote, 0, b.Hash(), o[1])
	if got := env.e.rounds[0].prevotes.total; got != 3 {
		t.Errorf("prevotes counted %d, want 3 (me, o0 once, o1)", got)
	}

	// Two proposals for one round.
	pi := env.f.proposerIdx(&env.head, 0)
	env.recv(env.f.proposal(pi, env.block(), 0, -1))
	if len(env.acts.Evidence) != 1 || env.acts.Evidence[0].Kind() != KindDuplicateProposal {
		t.Fatalf("evidence %v, want one duplicate proposal", env.acts.Evidence)
	}
	if err := env.acts.Evidence[0].Verify(env.f.vals); err != nil {
		t.Fatalf("duplicate proposal Verify: %v", err)
	}
	env.recv(env.f.proposal(pi, env.block(), 0, -1)) // a third: dropped
	if n := len(env.e.rounds[0].proposals); n != 2 {
		t.Errorf("%d proposals kept for one round, want 2", n)
	}
}

// Messages that do not verify are refused without any change.
func TestReceiveRefuses(t *testing.T) {
	env := newRuleEnv(t)
	b := env.block()
	stranger := newFixture(t, 5, 0).signers // keys 0..4: the fifth is not ours
	var alien *ledger.Signer
	for _, s := range stranger {
		if !env.f.vals.Contains(s.Public()) {
			alien = s
		}
	}
	pi := env.f.proposerIdx(&env.head, 0)
	notProposer := otherThan(4, pi, env.me)
	badSig := env.f.vote(env.others(1)[0], ledger.Prevote, 1, 0, b.Hash())
	badSig.Vote.Sig[0] ^= 1
	otherChain := ledger.SignVote(env.f.signers[env.others(1)[0]], ledger.Vote{Chain: "other", Type: ledger.Prevote, Height: 1, Block: b.Hash()})
	alienVote := ledger.SignVote(alien, ledger.Vote{Chain: env.f.g.Chain, Type: ledger.Prevote, Height: 1, Block: b.Hash()})
	otherParent := *b
	otherParent.Header.Prev[0] ^= 1
	badType := env.f.vote(env.others(1)[0], ledger.Prevote, 1, 0, b.Hash())
	badType.Vote.Type = "commit"
	for _, tc := range []struct {
		name string
		m    *Message
	}{
		{"nil", nil},
		{"empty", &Message{}},
		{"both", &Message{Vote: badSig.Vote, Proposal: env.f.proposal(pi, b, 0, -1).Proposal}},
		{"bad signature", badSig},
		{"other chain", &Message{Vote: &otherChain}},
		{"not a validator", &Message{Vote: &alienVote}},
		{"not the proposer", env.f.proposal(notProposer, b, 0, -1)},
		{"other parent", env.f.proposal(pi, &otherParent, 0, -1)},
		{"bad vote type", badType},
		{"pol not below round", env.f.proposal(pi, b, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := env.e.Status()
			a, err := env.e.Receive(env.now, tc.m)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Receive = %v, want ErrInvalid", err)
			}
			if len(a.Send) > 0 || a.Persist != nil || a.Commit != nil || len(a.Evidence) > 0 {
				t.Errorf("actions %+v for a refused message", a)
			}
			if after := env.e.Status(); after != before {
				t.Errorf("status %+v -> %+v", before, after)
			}
			if len(env.e.rounds) != 0 {
				t.Errorf("refused message left round state")
			}
		})
	}
	// Stale messages are ignored without error.
	if _, err := env.e.Receive(env.now, env.f.vote(env.others(1)[0], ledger.Prevote, 0, 0, nilHash)); err != nil {
		t.Errorf("stale message: %v", err)
	}
}

// Messages of the next height are buffered and count once the engine gets
// there.
func TestNextHeightBuffered(t *testing.T) {
	env := newRuleEnv(t)
	b1 := env.block()
	env.propose(0, b1, -1)
	o := env.others(3)

	// The others commit b1 and go on to height 2 before this engine does.
	h1 := b1.Header
	other := newTestApp(t, env.f, 2, env.f.signers[0].Public()) // another node's view
	if err := ledger.AppendNext(t.Context(), other.store, b1, nil); err != nil {
		t.Fatal(err)
	}
	b2, err := other.build(&h1, h1.Time+1000, env.f.signers[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	pi := env.f.proposerIdx(&h1, 0)
	env.recv(env.f.proposal(pi, b2, 0, -1))
	for _, i := range o {
		if i != pi {
			env.recv(env.f.vote(i, ledger.Prevote, 2, 0, b2.Hash()))
		}
	}
	env.votes(ledger.Precommit, 0, b1.Hash(), o...)
	c := env.acts.Commit
	if c == nil {
		t.Fatal("no commit of height 1")
	}
	for _, m := range env.acts.Send {
		if m.height() == 2 {
			t.Fatalf("sent a height-2 message with the commit of height 1 (before the node appended it)")
		}
	}
	env.app.appendBlock(t, env.f.seal, c)
	env.now = time.UnixMilli(b2.Header.Time).Add(time.Second)
	env.tick(0)
	if st := env.e.Status(); st.Height != 2 || st.Step < StepPrevote {
		t.Fatalf("status %+v after the buffered height-2 messages, want height 2 past propose", st)
	}
	var mine []ledger.Hash
	for _, v := range votesIn(env.acts.Send, ledger.Prevote) {
		if v.Height == 2 && v.Validator == env.f.signers[env.me].Public() {
			mine = append(mine, v.Block)
		}
	}
	if len(mine) != 1 || mine[0] != b2.Hash() {
		t.Fatalf("own height-2 prevotes %v, want the buffered proposal's block", mine)
	}
}

// Messages from f+1 validators two heights ahead report Behind; Advance
// jumps to the synced head.
func TestBehindAndAdvance(t *testing.T) {
	env := newRuleEnv(t)
	o := env.others(2)
	env.recv(env.f.vote(o[0], ledger.Prevote, 5, 0, nilHash))
	if env.acts.Behind != 0 {
		t.Errorf("Behind = %d after one validator ahead, want 0", env.acts.Behind)
	}
	env.recv(env.f.vote(o[1], ledger.Prevote, 6, 0, nilHash))
	if env.acts.Behind != 4 {
		t.Errorf("Behind = %d, want 4 (f+1 validators at height 5 or more)", env.acts.Behind)
	}
	head := env.head
	head.Height = 4
	env.note(env.e.Advance(env.now, &head))
	if st := env.e.Status(); st.Height != 5 {
		t.Errorf("after Advance to 4: height %d, want 5", st.Height)
	}
	old := env.head
	env.note(env.e.Advance(env.now, &old))
	if st := env.e.Status(); st.Height != 5 {
		t.Errorf("Advance to an older head moved the engine to %d", st.Height)
	}
}

// A Byzantine validator cannot make the engine keep messages without bound.
func TestMemoryBounded(t *testing.T) {
	env := newRuleEnv(t)
	byz := env.others(1)[0]
	for r := uint32(0); r < 2000; r += 7 {
		env.recv(env.f.vote(byz, ledger.Prevote, 1, r, nilHash))
		env.recv(env.f.vote(byz, ledger.Precommit, 2, r, nilHash))
	}
	if n := len(env.e.rounds); n > roundWindow+1 {
		t.Errorf("%d rounds kept, want at most %d", n, roundWindow+1)
	}
	if n := len(env.e.future.votes); n > 2*roundWindow {
		t.Errorf("%d next-height votes kept", n)
	}
	if st := env.e.Status(); st.Round != 0 {
		t.Errorf("one validator moved the engine to round %d", st.Round)
	}
}

// A proposal relayed with its block damaged where the signature does not
// reach (the attestations) does not hide the proposer's own copy: the
// engine takes the copy that checks.
func TestDamagedCopyReplaced(t *testing.T) {
	env := newRuleEnv(t)
	good := env.block()
	bad := *good
	bad.Attestations = []ledger.Attestation{{Chain: "junk"}}
	env.app.checkErr = func(b *ledger.Block) error {
		if len(b.Attestations) > 0 {
			return errors.New("bad attestation")
		}
		return nil
	}
	pi := env.f.proposerIdx(&env.head, 0)
	m := env.f.proposal(pi, good, 0, -1)
	damaged := *m.Proposal
	damaged.Block = &bad
	env.recv(&Message{Proposal: &damaged})
	env.wantOwn(ledger.Prevote, 0, nilHash)
	env.recv(m)
	env.votes(ledger.Prevote, 0, good.Hash(), env.others(3)...)
	env.wantOwn(ledger.Precommit, 0, good.Hash())
}
