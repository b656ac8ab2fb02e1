package consensus

import (
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// persisted returns the SignState a node would have stored: the last
// Persist, through its encoding.
func persisted(t *testing.T, st *SignState) *SignState {
	t.Helper()
	if st == nil {
		t.Fatal("no signing state persisted")
	}
	p, err := ParseSignState(st.Format())
	if err != nil {
		t.Fatalf("ParseSignState(Format()): %v", err)
	}
	if string(p.Format()) != string(st.Format()) {
		t.Fatalf("SignState does not round-trip")
	}
	return p
}

// restart replaces env's engine by one started from st, as after a crash.
func (env *ruleEnv) restart(st *SignState) Actions {
	env.t.Helper()
	cfg := env.e.cfg
	head := env.e.head
	e, err := NewPoA(cfg, &head, persisted(env.t, st))
	if err != nil {
		env.t.Fatal(err)
	}
	env.e = e
	return env.note(e.Start(env.now))
}

// noConflicts fails if msgs hold two different messages of one signer for
// one (height, round, step).
func noConflicts(t *testing.T, msgs []Message) {
	t.Helper()
	seen := make(map[evKey]Message)
	for _, m := range msgs {
		var k evKey
		var id string
		if p := m.Proposal; p != nil {
			k = evKey{k: p.Proposer, height: p.Height, round: p.Round, kind: 'p'}
			s := p.Signed()
			id = string(s.SignBytes())
		} else {
			v := m.Vote
			k = evKey{k: v.Validator, height: v.Height, round: v.Round, kind: voteKind(v.Type)}
			id = string(v.Format())
		}
		if old, ok := seen[k]; ok {
			oid := ""
			if old.Proposal != nil {
				s := old.Proposal.Signed()
				oid = string(s.SignBytes())
			} else {
				oid = string(old.Vote.Format())
			}
			if oid != id {
				t.Fatalf("conflicting messages signed by %s at height %d round %d %c:\n%s\n%s", k.k, k.height, k.round, k.kind, oid, id)
			}
		}
		seen[k] = m
	}
}

// A validator that crashes after persisting its signing state but before
// sending, and restarts from it, sends the same message again and keeps its
// lock: it never signs a conflicting vote.
func TestRestartAfterPersistBeforeSend(t *testing.T) {
	env := newRuleEnv(t)
	x, y := env.block(), env.block()
	env.propose(0, x, -1)
	o := env.others(3)
	env.votes(ledger.Prevote, 0, x.Hash(), o[0], o[1]) // polka: lock and precommit x
	a := env.acts
	if a.Persist == nil || a.Persist.Step != StepPrecommit || a.Persist.LockedBlock != x.Hash() {
		t.Fatalf("Persist %+v, want the precommit with the lock", a.Persist)
	}
	lost := votesIn(a.Send, ledger.Precommit)
	if len(lost) != 1 {
		t.Fatalf("sent %d precommits", len(lost))
	}
	// Crash: a.Send never leaves the node.
	env.sent = env.sent[:len(env.sent)-len(a.Send)]

	a = env.restart(a.Persist)
	again := votesIn(a.Send, ledger.Precommit)
	if len(again) != 1 || *again[0] != *lost[0] {
		t.Fatalf("after restart sent %v, want the persisted precommit %v again", again, lost[0])
	}
	st := env.wantStatus(0, StepPrecommit)
	if st.LockedRound != 0 || st.LockedBlock != x.Hash() {
		t.Fatalf("status after restart %+v, want locked on x at round 0", st)
	}
	// The same round's proposal again: no new prevote.
	env.propose(0, x, -1)
	// A Byzantine proposer of round 1 offers y: the lock holds.
	env.skipTo(1)
	env.propose(1, y, -1)
	env.wantOwn(ledger.Prevote, 1, nilHash)
	noConflicts(t, env.sent)

	// A crash right after the prevote of round 1, before it was sent.
	a = env.acts
	if a.Persist == nil || a.Persist.Step != StepPrevote || a.Persist.Round != 1 || a.Persist.LockedBlock != x.Hash() {
		t.Fatalf("Persist %+v, want prevote round 1 still locked on x", a.Persist)
	}
	env.sent = env.sent[:len(env.sent)-len(a.Send)]
	env.restart(a.Persist)
	env.wantStatus(1, StepPrevote)
	// The proposer's rebroadcast brings y again (the restart lost it) and
	// the others prevote it: the relock (line 36) still works.
	env.propose(1, y, -1)
	env.wantOwn(ledger.Prevote, 1, nilHash)
	env.votes(ledger.Prevote, 1, y.Hash(), o...)
	env.wantOwn(ledger.Precommit, 1, y.Hash())
	noConflicts(t, env.sent)
}

// The last message persisted is what counts: an engine restarted from an
// older state than the messages it signed would be unsafe, so a node must
// persist before sending; an engine never signs at or below its state's
// slot unless identical.
func TestSignGuard(t *testing.T) {
	env := newRuleEnv(t)
	x := env.block()
	env.propose(0, x, -1)
	st := *env.e.signed
	if st.Step != StepPrevote || st.Block != x.Hash() {
		t.Fatalf("signed %+v", st)
	}
	if _, ok := env.e.signAt(StepPrevote, nilHash, -1, []byte("x")); ok {
		t.Error("signed a conflicting prevote for the same slot")
	}
	if sig, ok := env.e.signAt(StepPrevote, x.Hash(), -1, []byte("x")); !ok || sig != st.Sig {
		t.Error("refused to sign the same prevote again, or signed it anew")
	}
	if _, ok := env.e.signAt(StepPropose, x.Hash(), -1, []byte("x")); ok {
		t.Error("signed a proposal for a slot before the last signed one")
	}
}

// A one-validator chain whose node crashed after persisting the precommit
// but before appending the block commits the same block after the restart:
// the locked block is in the signing state.
func TestRestartSingleValidatorBeforeAppend(t *testing.T) {
	f := newFixture(t, 1, 0)
	app := newTestApp(t, f, 1, f.signers[0].Public())
	app.ready = true
	head := f.genesis()
	cfg := Config{Chain: f.g.Chain, Validators: f.vals, Signer: f.signers[0], BlockInterval: time.Second, App: app}
	e, err := NewPoA(cfg, &head, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := genesisTime.Add(time.Minute)
	a := e.Start(now)
	if a.Commit == nil {
		t.Fatal("no commit")
	}
	want := a.Commit.Hash()
	if len(a.Persist.Blocks) != 1 {
		t.Fatalf("signing state keeps %d blocks, want the locked one", len(a.Persist.Blocks))
	}
	// Crash before the append: restart from genesis and the signing state.
	app.next += 1000 // the mempool would now offer other records
	e, err = NewPoA(cfg, &head, persisted(t, a.Persist))
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	a = e.Start(now)
	for i := 0; a.Commit == nil && i < 100; i++ {
		now = later(a.Wake, now)
		a = e.Tick(now)
	}
	if a.Commit == nil || a.Commit.Hash() != want {
		t.Fatalf("after restart committed %v, want the same block %s", a.Commit, want)
	}
	app.appendBlock(t, f.seal, a.Commit)
}

// A signing state of an older height only guards; one of another validator
// or chain is refused.
func TestRestartStates(t *testing.T) {
	env := newRuleEnv(t)
	x := env.block()
	env.propose(0, x, -1)
	st := persisted(t, env.acts.Persist)

	other := *st
	other.Validator = env.f.signers[(env.me+1)%4].Public()
	head := env.head
	if _, err := NewPoA(env.e.cfg, &head, &other); err == nil {
		t.Error("NewPoA accepted another validator's signing state")
	}
	// The chain moved on (sync) while the node was down: the old state
	// only guards, the engine starts fresh at the new height.
	head.Height = 7
	e, err := NewPoA(env.e.cfg, &head, st)
	if err != nil {
		t.Fatal(err)
	}
	if s := e.Status(); s.Height != 8 || s.Step != StepNewHeight {
		t.Errorf("status %+v, want height 8 new-height", s)
	}
}

// A validator restarted after locking still holds the polka of its valid
// value: as proposer it proposes the value again with the POL prevotes and
// prevotes it itself (line 28).
func TestRestartKeepsPolka(t *testing.T) {
	f := newFixture(t, 4, 0)
	head := f.genesis()
	me := otherThan(4, f.proposerIdx(&head, 0))
	var r uint32
	for r = 1; f.proposerIdx(&head, r) != me; r++ {
	}
	env := newRuleEnvAs(t, f, me)
	x := env.block()
	env.lockOn(0, x)
	env.restart(env.e.signed)
	env.skipTo(r)
	props := proposalsIn(env.acts.Send)
	if len(props) != 1 || props[0].Block.Hash() != x.Hash() || props[0].POLRound != 0 {
		t.Fatalf("after restart, proposer of round %d sent %v, want x with pol 0", r, props)
	}
	pol := 0
	for _, v := range votesIn(env.acts.Send, ledger.Prevote) {
		if v.Round == 0 && v.Block == x.Hash() {
			pol++
		}
	}
	if pol < 3 {
		t.Errorf("re-proposal sent with %d POL prevotes, want at least 3", pol)
	}
	env.wantOwn(ledger.Prevote, r, x.Hash())
}
