package consensus

import (
	"testing"
	"time"
)

// A one-validator chain commits from Start and Tick alone, once there is
// work and the block interval has passed, and makes no empty blocks.
func TestSingleValidator(t *testing.T) {
	f := newFixture(t, 1, 0)
	app := newTestApp(t, f, 1, f.signers[0].Public())
	head := f.genesis()
	e, err := NewPoA(Config{Chain: f.g.Chain, Validators: f.vals, Signer: f.signers[0], BlockInterval: time.Second, App: app}, &head, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := genesisTime.Add(5 * time.Second)

	// No work: nothing happens, however long we wait.
	a := e.Start(now)
	if a.Commit != nil || len(a.Send) > 0 || a.Persist != nil {
		t.Fatalf("Start without work = %+v, want nothing", a)
	}
	if a.Wake.IsZero() {
		t.Fatalf("Start: Wake is zero, want a poll time")
	}
	for i := 0; i < 10; i++ {
		now = now.Add(time.Minute)
		if a := e.Tick(now); a.Commit != nil || len(a.Send) > 0 {
			t.Fatalf("Tick without work = %+v, want nothing", a)
		}
	}
	if app.proposes != 0 {
		t.Errorf("App.Propose called %d times without work, want 0", app.proposes)
	}
	if st := e.Status(); st.Step != StepNewHeight || st.Height != 1 {
		t.Errorf("Status = %+v, want height 1 step new-height", st)
	}

	// Work arrives: the block commits at once (the interval has passed).
	app.ready = true
	app.perBlock = 3
	a = e.Tick(now)
	if a.Commit == nil {
		t.Fatalf("Tick with work: no commit; actions %+v, status %+v", a, e.Status())
	}
	if a.Persist == nil {
		t.Errorf("commit without Persist of the signing state")
	}
	if got := len(a.Send); got != 3 {
		t.Errorf("sent %d messages, want proposal, prevote, precommit", got)
	}
	if !a.Wake.Equal(now) {
		t.Errorf("Wake after commit = %v, want now (the engine continues on the next call)", a.Wake)
	}
	b := a.Commit
	if b.Header.Height != 1 || len(b.Records) != 3 || b.Certificate == nil {
		t.Fatalf("committed %+v", b.Header)
	}
	app.appendBlock(t, f.seal, b)

	// The next block waits for the interval after the first.
	next := time.UnixMilli(b.Header.Time).Add(time.Second)
	a = e.Tick(now.Add(time.Millisecond))
	if a.Commit != nil {
		t.Fatalf("second block before the interval passed")
	}
	if !a.Wake.Equal(next) {
		t.Errorf("Wake = %v, want the end of the block interval %v", a.Wake, next)
	}
	a = e.Tick(next)
	if a.Commit == nil || a.Commit.Header.Height != 2 {
		t.Fatalf("Tick at the interval's end: commit %v, want height 2", a.Commit)
	}
	app.appendBlock(t, f.seal, a.Commit)

	// Work runs out: no empty block.
	app.ready = false
	for i := 0; i < 5; i++ {
		now = next.Add(time.Duration(i+1) * time.Minute)
		if a := e.Tick(now); a.Commit != nil {
			t.Fatalf("empty block committed at height %d", a.Commit.Header.Height)
		}
	}
}
