package ledger_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// provenChanges returns c's changes in force at height h, each with its
// inclusion proof in the log of size records.
func provenChanges(t testing.TB, c *ledgertest.Chain, h, size uint64) []ledger.ProvenChange {
	t.Helper()
	var out []ledger.ProvenChange
	for _, e := range c.Auth.Entries() {
		if e.Change.Effective > h {
			continue
		}
		hashes, err := ledger.ProveRecord(ledger.HashReaderOf(t.Context(), c.Store), int64(size), e.Index)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ledger.ProvenChange{AuthorityEntry: e, Hashes: hashes})
	}
	return out
}

// noteOf returns cp's note signed by signers, as validators of vals.
func noteOf(t testing.TB, cp ledger.Checkpoint, vals *ledger.ValidatorSet, signers ...*ledger.Signer) []byte {
	t.Helper()
	var sigs []ledger.Cosignature
	for _, s := range signers {
		sigs = append(sigs, ledger.Cosign(s, cp))
	}
	msg, err := ledger.FormatNote(cp, vals, sigs)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// setChangeProof builds a chain of four validators v0-v3 that adds v4
// (effective at 4) and then removes v0 (effective at 7), with records
// before, between and after, and one more change committed at the head and
// not yet in force. It returns the chain and a tlog-proof of record 1
// (committed before both changes) against the head's checkpoint, signed
// by v1, v2 and v4: a quorum of the set in force there ({v1..v4}, 3 of
// 4), but neither of the genesis set (v4 is unknown to it) nor of the set
// after the addition alone (4 of 5).
func setChangeProof(t testing.TB) (*ledgertest.Chain, *ledger.Proof) {
	t.Helper()
	c := ledgertest.NewChain(t, 4)
	rng := rand.New(rand.NewPCG(3, 4))
	v4 := ledgertest.Signer(4)
	c.AddSigner(v4)
	add := func(s *ledger.Signer, name string, effective uint64) []ledger.AuthorityChange {
		return []ledger.AuthorityChange{c.Change(ledger.AuthorityAdd, s.Public(), name, effective)}
	}
	c.Next(ledgertest.Records(rng, 0, 3))                                                                             // block 1
	c.NextWith(ledgertest.Records(rng, 3, 1), add(v4, "v4", 4))                                                       // 2: add v4
	c.Next(nil)                                                                                                       // 3
	c.NextWith(nil, []ledger.AuthorityChange{c.Change(ledger.AuthorityRemove, ledgertest.Signer(0).Public(), "", 7)}) // 4: remove v0
	c.Next(ledgertest.Records(rng, 4, 2))                                                                             // 5
	c.Next(nil)                                                                                                       // 6
	c.Next(ledgertest.Records(rng, 6, 2))                                                                             // 7
	c.NextWith(nil, add(ledgertest.Signer(5), "v5", 10))                                                              // 8: add v5, from 10
	head := &c.Head().Header
	cp := ledger.CheckpointOf(head)
	vals := c.ValsAt(head.Height)
	if vals.Len() != 4 || vals.Contains(ledgertest.Signer(0).Public()) || !vals.Contains(v4.Public()) {
		t.Fatalf("set at the head: %v", vals.Validators())
	}
	e, err := c.Store.Record(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := ledger.ProveRecord(ledger.HashReaderOf(t.Context(), c.Store), int64(cp.LogSize), 1)
	if err != nil {
		t.Fatal(err)
	}
	extra := ledger.ProofExtra{Record: e.Record, Changes: provenChanges(t, c, head.Height, head.LogSize)}
	if len(extra.Changes) != 2 {
		t.Fatalf("%d changes in force at the head, want 2", len(extra.Changes))
	}
	note := noteOf(t, cp, vals, ledgertest.Signer(1), ledgertest.Signer(2), v4)
	return c, &ledger.Proof{Extra: extra.Format(), Index: 1, Hashes: hashes, Checkpoint: note}
}

// TestProofAcrossSetChanges: a tlog-proof of a chain that added and then
// removed a validator carries both changes; it verifies against the
// genesis alone. Without the changes, with one of them, in another order,
// with forged votes, a wrong height or index, a change not in force yet,
// or any flipped byte, it does not.
func TestProofAcrossSetChanges(t *testing.T) {
	c, p := setChangeProof(t)
	enc := p.Format()
	got, err := ledger.ParseProof(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Format(), enc) {
		t.Fatalf("ParseProof(Format()).Format() differs")
	}
	r, cp, err := got.Verify(c.Genesis)
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	want, _ := c.Store.Record(t.Context(), 1)
	if *r != want.Record || *cp != ledger.CheckpointOf(&c.Head().Header) {
		t.Errorf("Verify() = %+v, %+v", r, cp)
	}
	extra, err := ledger.ParseProofExtra(p.Extra)
	if err != nil || !bytes.Equal(extra.Format(), p.Extra) {
		t.Fatalf("ParseProofExtra = %v", err)
	}

	with := func(change func(e *ledger.ProofExtra)) *ledger.Proof {
		e, _ := ledger.ParseProofExtra(p.Extra)
		change(e)
		x := *p
		x.Extra = e.Format()
		return &x
	}
	pending := provenChanges(t, c, 100, c.Head().Header.LogSize)[2]
	forged := func(e *ledger.ProofExtra) {
		ch := &e.Changes[0].Change
		ch.Sigs = nil
		ch.AddVote(ch.Vote(ledgertest.Signer(4)))
		for _, i := range []int{1, 2} {
			ch.AddVote(ch.Vote(ledgertest.Signer(i)))
		}
	}
	for name, x := range map[string]*ledger.Proof{
		"no change":       with(func(e *ledger.ProofExtra) { e.Changes = nil }),
		"only the add":    with(func(e *ledger.ProofExtra) { e.Changes = e.Changes[:1] }),
		"only the remove": with(func(e *ledger.ProofExtra) { e.Changes = e.Changes[1:] }),
		"swapped":         with(func(e *ledger.ProofExtra) { e.Changes[0], e.Changes[1] = e.Changes[1], e.Changes[0] }),
		"twice":           with(func(e *ledger.ProofExtra) { e.Changes = append(e.Changes, e.Changes[1]) }),
		"forged votes":    with(forged),
		"too few votes":   with(func(e *ledger.ProofExtra) { e.Changes[1].Change.Sigs = e.Changes[1].Change.Sigs[:2] }),
		"later height":    with(func(e *ledger.ProofExtra) { e.Changes[0].Height = 3 }),
		"other index":     with(func(e *ledger.ProofExtra) { e.Changes[1].Index-- }),
		"hash dropped":    with(func(e *ledger.ProofExtra) { e.Changes[0].Hashes = e.Changes[0].Hashes[1:] }),
		"not in force":    with(func(e *ledger.ProofExtra) { e.Changes = append(e.Changes, pending) }),
	} {
		if r, _, err := x.Verify(c.Genesis); err == nil {
			t.Errorf("%s: Verify() = %s, nil; want an error", name, r.Key)
		}
	}
	// Another chain's genesis with the same validators.
	g := *c.Genesis
	g.Chain = "other"
	if _, _, err := got.Verify(&g); err == nil {
		t.Errorf("Verify(another chain's genesis) = nil")
	}
	// Flipped bytes (a sample: every signature check is slow).
	for i := 0; i < len(enc); i += 7 {
		bad := append([]byte(nil), enc...)
		bad[i] ^= 0x01
		x, err := ledger.ParseProof(bad)
		if err != nil {
			continue
		}
		if r, _, err := x.Verify(c.Genesis); err == nil {
			t.Fatalf("byte %d ^ 1: Verify() = %s, nil; want an error", i, r.Key)
		}
	}
}

func TestParseProofExtra(t *testing.T) {
	_, p := setChangeProof(t)
	good := string(p.Extra)
	e, err := ledger.ParseProofExtra(p.Extra)
	if err != nil {
		t.Fatal(err)
	}
	rec := e.Record.Format()
	if plain, err := ledger.ParseProofExtra(rec); err != nil || plain.Record != e.Record || len(plain.Changes) != 0 || !bytes.Equal(plain.Format(), rec) {
		t.Errorf("ParseProofExtra(a record) = %+v, %v", plain, err)
	}
	for _, bad := range []string{
		"",
		"vcsledger-proof-extra/1\n",
		"vcsledger-proof-extra/1\nrecord 0\n",
		"vcsledger-proof-extra/1\nrecord " + strconv.Itoa(len(rec)) + "\n" + string(rec), // no change
		"vcsledger-proof-extra/1\nrecord " + strconv.Itoa(len(rec)) + "\n" + string(rec) + string(rec),
		strings.Replace(good, "vcsledger-proof-extra/1", "vcsledger-proof-extra/2", 1),
		strings.Replace(good, "\nheight ", "\nheight 0", 1),
		strings.Replace(good, "\nindex ", "\nindex 0", 1),
		strings.Replace(good, "\nhash ", "\nhash AAAA\nhash ", 1),
		good + "authority 1\nx",
		good + "trailing",
	} {
		if _, err := ledger.ParseProofExtra([]byte(bad)); !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("ParseProofExtra(%.80q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParseProofExtra(f *testing.F) {
	for _, s := range checkpointSeeds(f)["FuzzParseProofExtra"] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ledger.ParseProofExtra(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Format(), b) {
			t.Fatalf("ParseProofExtra accepted a non-canonical encoding %q", b)
		}
	})
}

// setChangeProofExtra returns the extra data of setChangeProof's proof.
func setChangeProofExtra(tb testing.TB) []byte {
	_, p := setChangeProof(tb)
	return p.Extra
}
