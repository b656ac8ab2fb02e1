package consensus

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// sampleMessages returns valid messages of every shape.
func sampleMessages(t testing.TB) (*fixture, []*Message) {
	f := newFixture(t, 4, 1)
	head := f.genesis()
	app := newTestApp(t, f, 3, f.signers[0].Public())
	b, err := app.build(&head, head.Time+1000, f.signers[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range b.Records {
		b.Attestations = append(b.Attestations, ledger.Attest(f.signers[1], f.g.Chain, r))
	}
	empty, err := app.build(&head, head.Time+2000, f.signers[1].Public())
	if err != nil {
		t.Fatal(err)
	}
	empty.Records, empty.Header.Records, empty.Header.LogSize, empty.Header.LogRoot = nil, 0, 0, ledger.EmptyLogRoot
	return f, []*Message{
		f.proposal(f.proposerIdx(&head, 0), b, 0, -1),
		f.proposal(f.proposerIdx(&head, 3), b, 3, 1),
		f.proposal(f.proposerIdx(&head, 1), empty, 1, -1),
		f.vote(0, ledger.Prevote, 1, 0, b.Hash()),
		f.vote(1, ledger.Precommit, 1, 7, nilHash),
		f.vote(2, ledger.Precommit, 1<<40, MaxRound, b.Hash()),
	}
}

func TestMessageRoundTrip(t *testing.T) {
	f, msgs := sampleMessages(t)
	for i, m := range msgs {
		data := m.Format()
		got, err := ParseMessage(data)
		if err != nil {
			t.Fatalf("message %d: ParseMessage: %v\n%s", i, err, data)
		}
		if !bytes.Equal(got.Format(), data) {
			t.Errorf("message %d does not round-trip", i)
		}
		if err := got.Verify(f.vals); err != nil {
			t.Errorf("message %d: Verify = %v", i, err)
		}
	}
}

func TestProposalSignBytes(t *testing.T) {
	p := SignedProposal{Chain: "test", Height: 5, Round: 2, POLRound: -1, Block: ledger.Hash{1}, Proposer: ledger.PublicKey{2}}
	want := "vcsledger-proposal/1\nchain test\nheight 5\nround 2\npol -1\nblock " + p.Block.String() + "\nproposer " + p.Proposer.String() + "\n"
	if got := string(p.SignBytes()); got != want {
		t.Errorf("SignBytes() =\n%s\nwant\n%s", got, want)
	}
}

func TestParseMessageRefuses(t *testing.T) {
	_, msgs := sampleMessages(t)
	vote := string(msgs[3].Format())
	var sw ledger.TextWriter // proposal of one block, body of another
	sw.WriteString(messageMagic + "\n")
	sp := msgs[0].Proposal.Signed()
	sw.Section("proposal", sp.Format())
	sw.Section("block", msgs[2].Proposal.Block.Format())
	swapped := sw.String()
	for _, tc := range []struct{ name, data string }{
		{"empty", ""},
		{"no magic", strings.TrimPrefix(vote, messageMagic+"\n")},
		{"unknown section", messageMagic + "\ncommit 3\nabc"},
		{"trailing", vote + "x"},
		{"short", vote[:len(vote)-1]},
		{"length leading zero", strings.Replace(vote, "vote ", "vote 0", 1)},
		{"block mismatch", swapped},
		{"crlf", strings.Replace(vote, "\n", "\r\n", 1)},
		{"huge length", messageMagic + "\nvote 99999999999999999999999\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseMessage([]byte(tc.data)); !errors.Is(err, ErrMalformed) && !errors.Is(err, ledger.ErrMalformed) {
				t.Errorf("ParseMessage = %v, want a malformed-encoding error", err)
			}
		})
	}
}

func TestSignStateRoundTrip(t *testing.T) {
	env := newRuleEnv(t)
	x := env.block()
	env.lockOn(0, x)
	st := env.e.signed
	if st == nil || len(st.Blocks) != 1 {
		t.Fatalf("Persist %+v", st)
	}
	got := persisted(t, st)
	if got.LockedBlock != x.Hash() || got.Blocks[0].Hash() != x.Hash() {
		t.Errorf("parsed %+v", got)
	}
	bad := *st
	bad.LockedRound = -1 // a lock without round
	if _, err := ParseSignState(bad.Format()); err == nil {
		t.Error("ParseSignState accepted a lock without a round")
	}
	bad = *st
	bad.Blocks = append(bad.Blocks, st.Blocks[0])
	if _, err := ParseSignState(bad.Format()); err == nil {
		t.Error("ParseSignState accepted a block twice")
	}
}

func TestPoASeal(t *testing.T) {
	f := newFixture(t, 4, -1) // f+1 = 2 attestations per record
	head := f.genesis()
	app := newTestApp(t, f, 5, f.signers[0].Public())
	b, err := app.build(&head, head.Time+1000, f.signers[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range b.Records {
		for _, s := range f.signers[:2] {
			b.Attestations = append(b.Attestations, ledger.Attest(s, f.g.Chain, r))
		}
	}
	certify := func(signers []*ledger.Signer, block ledger.Hash) *ledger.Certificate {
		var votes []ledger.SignedVote
		for _, s := range signers {
			votes = append(votes, ledger.SignVote(s, ledger.Vote{Chain: f.g.Chain, Type: ledger.Precommit, Height: 1, Round: 2, Block: block}))
		}
		c, err := ledger.NewCertificate(votes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	b.Certificate = certify(f.signers[:3], b.Hash())
	if err := f.seal.CheckSeal(t.Context(), &head, b); err != nil {
		t.Fatalf("CheckSeal of a good block: %v", err)
	}
	if _, err := ledger.ValidateNext(t.Context(), app.store, &head, b, f.seal); err != nil {
		t.Fatalf("ValidateNext with PoASeal: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(b *ledger.Block)
	}{
		{"no certificate", func(b *ledger.Block) { b.Certificate = nil }},
		{"short certificate", func(b *ledger.Block) { b.Certificate = certify(f.signers[:2], b.Hash()) }},
		{"certificate of another block", func(b *ledger.Block) { b.Certificate = certify(f.signers, ledger.Hash{9}) }},
		{"proposer not a validator", func(b *ledger.Block) {
			b.Header.Proposer = ledger.PublicKey{1}
			b.Certificate = certify(f.signers, b.Hash())
		}},
		{"missing attestation", func(b *ledger.Block) { b.Attestations = b.Attestations[1:] }},
		{"other chain", func(b *ledger.Block) { b.Header.Chain = "other" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *b
			c.Attestations = append([]ledger.Attestation(nil), b.Attestations...)
			tc.mutate(&c)
			if err := f.seal.CheckSeal(t.Context(), &head, &c); err == nil {
				t.Errorf("CheckSeal accepted a block with %s", tc.name)
			}
		})
	}
	g := *f.g
	g.Engine, g.Validators, g.Bits, g.Retarget, g.Confirmations = ledger.EnginePoW, nil, 8, 10, 6
	if _, err := NewPoASeal(&g); err == nil {
		t.Error("NewPoASeal accepted a pow genesis")
	}
}

func TestConfigValidate(t *testing.T) {
	f := newFixture(t, 1, 0)
	app := newTestApp(t, f, 1, f.signers[0].Public())
	c := Config{Chain: "test", Validators: f.vals, App: app}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TimeoutPropose != DefaultTimeoutPropose || c.Rebroadcast != DefaultRebroadcast || c.TimeoutDelta != DefaultTimeoutDelta {
		t.Errorf("defaults not filled: %+v", c)
	}
	for _, bad := range []Config{
		{Chain: "", Validators: f.vals, App: app},
		{Chain: "test", App: app},
		{Chain: "test", Validators: f.vals},
		{Chain: "test", Validators: f.vals, App: app, TimeoutPrevote: -1},
		{Chain: "test", Validators: f.vals, App: app, BlockInterval: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

// fuzzSeeds returns the seed inputs of each fuzz target.
func fuzzSeeds(t testing.TB) map[string][][]byte {
	f, msgs := sampleMessages(t)
	seeds := map[string][][]byte{}
	for _, m := range msgs {
		seeds["FuzzParseMessage"] = append(seeds["FuzzParseMessage"], m.Format())
	}
	a, b := *msgs[3].Vote, *msgs[3].Vote
	b.Block = ledger.Hash{}
	b.Sig = f.signers[0].Sign(b.Vote.Format())
	pa, pb := msgs[0].Proposal.Signed(), msgs[2].Proposal.Signed()
	pb.Round = pa.Round
	seeds["FuzzParseEvidence"] = [][]byte{newDuplicateVote(a, b).Format(), newDuplicateProposal(pa, pb).Format()}
	env := newRuleEnv(t.(*testing.T))
	env.lockOn(0, env.block())
	seeds["FuzzParseSignState"] = [][]byte{env.e.signed.Format()}
	return seeds
}

// TestFuzzCorpus rewrites testdata/fuzz with -update-corpus, and otherwise
// checks that the corpus is there.
func TestFuzzCorpus(t *testing.T) {
	for name, inputs := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", name)
		if !*updateCorpus {
			if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
				t.Errorf("no seed corpus in %s (go test -run TestFuzzCorpus -update-corpus)", dir)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, in := range inputs {
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	fx := newFixture(f, 4, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ledger.ErrMalformed) {
				t.Fatalf("error %v is not a malformed-encoding error", err)
			}
			return
		}
		if !bytes.Equal(m.Format(), data) {
			t.Fatalf("accepted a non-canonical encoding:\n%q\nformats as\n%q", data, m.Format())
		}
		_ = m.Verify(fx.vals) // must not panic
	})
}

func FuzzParseSignState(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignState(data)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Format(), data) {
			t.Fatalf("accepted a non-canonical encoding:\n%q\nformats as\n%q", data, s.Format())
		}
	})
}

func FuzzParseEvidence(f *testing.F) {
	fx := newFixture(f, 4, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := ParseEvidence(data)
		if err != nil {
			return
		}
		if !bytes.Equal(ev.Format(), data) {
			t.Fatalf("accepted a non-canonical encoding:\n%q\nformats as\n%q", data, ev.Format())
		}
		_ = ev.Verify(fx.vals)
	})
}
