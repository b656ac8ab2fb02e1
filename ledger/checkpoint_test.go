package ledger_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// cosignedChain returns a 4-validator chain with blocks of records and the
// checkpoint of its head.
func cosignedChain(t *testing.T) (*ledgertest.Chain, ledger.Checkpoint) {
	t.Helper()
	c := ledgertest.NewChain(t, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	c.Next(ledgertest.Records(rng, 0, 3))
	c.Next(ledgertest.Records(rng, 3, 4))
	return c, ledger.CheckpointOf(&c.Head().Header)
}

// signedNote returns cp's note signed by the chain's signers at idx.
func signedNote(t *testing.T, c *ledgertest.Chain, cp ledger.Checkpoint, idx ...int) []byte {
	t.Helper()
	var sigs []ledger.Cosignature
	for _, i := range idx {
		sigs = append(sigs, ledger.Cosign(c.Signers[i], cp))
	}
	msg, err := ledger.FormatNote(cp, c.Vals, sigs)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func stockVerifiers(t *testing.T, c *ledgertest.Chain) note.Verifiers {
	t.Helper()
	var vs []note.Verifier
	for _, v := range c.Vals.Validators() {
		nv, err := note.NewVerifier(ledger.VerifierKey(c.Genesis.Chain, v))
		if err != nil {
			t.Fatalf("note.NewVerifier(VerifierKey(%s)) = %v", v.Name, err)
		}
		vs = append(vs, nv)
	}
	return note.VerifierList(vs...)
}

func TestCheckpointText(t *testing.T) {
	c, cp := cosignedChain(t)
	text := cp.Text()
	got, err := ledger.ParseCheckpointText(text)
	if err != nil || *got != cp {
		t.Fatalf("ParseCheckpointText(Text()) = %+v, %v; want %+v", got, err, cp)
	}
	h := c.Head().Header
	want := "test\n7\n" + b64(h.LogRoot[:]) + "\nblock 2 " + h.Hash().String() + "\n"
	if string(text) != want {
		t.Errorf("Text() = %q, want %q", text, want)
	}
	for _, bad := range []string{
		"", "test\n7\n" + b64(h.LogRoot[:]) + "\n",
		strings.Replace(want, "\n7\n", "\n07\n", 1),
		strings.Replace(want, "\n7\n", "\n-7\n", 1),
		strings.Replace(want, "block 2", "block 02", 1),
		strings.Replace(want, "block 2 ", "block 2  ", 1),
		strings.Replace(want, "block ", "blocks ", 1),
		strings.Replace(want, h.Hash().String(), strings.ToUpper(h.Hash().String()), 1),
		strings.Replace(want, "test\n", "te st\n", 1),
		strings.Replace(want, "test\n", "a/b\n", 1),
		strings.TrimSuffix(want, "\n"),
		want + "extra\n",
		strings.Replace(want, "=\n", "\n", 1),
		strings.Replace(want, "\n", "\r\n", 1),
	} {
		if _, err := ledger.ParseCheckpointText([]byte(bad)); !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("ParseCheckpointText(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

// TestCheckpointNote checks signed notes with the stock note package and
// with OpenCheckpoint's quorum rule.
func TestCheckpointNote(t *testing.T) {
	c, cp := cosignedChain(t)
	all := signedNote(t, c, cp, 0, 1, 2, 3)
	n, err := note.Open(all, stockVerifiers(t, c))
	if err != nil || len(n.Sigs) != 4 || n.Text != string(cp.Text()) {
		t.Fatalf("note.Open(note of 4) = %+v, %v", n, err)
	}
	got, signers, err := ledger.OpenCheckpoint(all, "test", c.Vals)
	if err != nil || *got != cp || len(signers) != 4 {
		t.Fatalf("OpenCheckpoint(note of 4) = %+v, %d signers, %v", got, len(signers), err)
	}
	if _, s, err := ledger.OpenCheckpoint(signedNote(t, c, cp, 3, 1, 0), "test", c.Vals); err != nil || len(s) != 3 {
		t.Fatalf("OpenCheckpoint(note of 3 of 4) = %d signers, %v", len(s), err)
	}

	// A signature by a key no validator holds is ignored, and one line
	// repeated counts once.
	stranger := ledgertest.Signer(99)
	foreign := ledger.Cosign(stranger, cp)
	two := signedNote(t, c, cp, 0, 1)
	strangerVals, err := ledger.NewValidatorSet([]ledger.Validator{{Key: stranger.Public(), Name: "x"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	fline, err := ledger.FormatNote(cp, strangerVals, []ledger.Cosignature{foreign})
	if err != nil {
		t.Fatal(err)
	}
	sigLine := fline[bytes.LastIndex(fline, []byte("\n\n"))+2:]
	line0 := two[bytes.LastIndex(two, []byte("\n\n"))+2:]
	line0 = line0[:bytes.IndexByte(line0, '\n')+1]
	for name, msg := range map[string][]byte{
		"2 of 4":                    two,
		"2 of 4 and a stranger":     append(append([]byte(nil), two...), sigLine...),
		"2 of 4, one line repeated": append(append([]byte(nil), two...), bytes.Repeat(line0, 3)...),
	} {
		if _, _, err := ledger.OpenCheckpoint(msg, "test", c.Vals); !errors.Is(err, ledger.ErrNoQuorum) {
			t.Errorf("OpenCheckpoint(%s) = %v, want ErrNoQuorum", name, err)
		}
	}
	if _, _, err := ledger.OpenCheckpoint(fline, "test", c.Vals); !errors.Is(err, ledger.ErrNoQuorum) {
		t.Errorf("OpenCheckpoint(a stranger's note) = %v, want ErrNoQuorum", err)
	}

	// Another chain's validators, or the right ones under another chain id.
	other := cp
	other.Chain = "other"
	if _, _, err := ledger.OpenCheckpoint(signedNote(t, c, other, 0, 1, 2), "test", c.Vals); err == nil {
		t.Error("OpenCheckpoint accepted a note of chain other as chain test")
	}
	if _, _, err := ledger.OpenCheckpoint(all, "other", c.Vals); err == nil {
		t.Error("OpenCheckpoint accepted chain test's note as chain other's")
	}
}

// TestCheckpointNoteFlips flips every byte of a note signed by exactly a
// quorum: each must be refused, never opened.
func TestCheckpointNoteFlips(t *testing.T) {
	c, cp := cosignedChain(t)
	msg := signedNote(t, c, cp, 0, 2, 3)
	for i := range msg {
		for _, x := range []byte{0x01, 0x40} {
			bad := append([]byte(nil), msg...)
			bad[i] ^= x
			if got, _, err := ledger.OpenCheckpoint(bad, "test", c.Vals); err == nil {
				t.Fatalf("OpenCheckpoint with byte %d ^ %#x = %+v, nil; want an error", i, x, got)
			}
		}
	}
	// A bad signature by a validator is an invalid signature, not just
	// a missing one.
	sig := ledger.Cosign(c.Signers[1], cp)
	sig.Sig[10] ^= 1
	bad, err := ledger.FormatNote(cp, c.Vals, []ledger.Cosignature{ledger.Cosign(c.Signers[0], cp), sig, ledger.Cosign(c.Signers[2], cp), ledger.Cosign(c.Signers[3], cp)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.OpenCheckpoint(bad, "test", c.Vals); !errors.Is(err, ledger.ErrBadSignature) {
		t.Errorf("OpenCheckpoint(a note with one bad signature of 4) = %v, want ErrBadSignature", err)
	}
}

func TestCosignature(t *testing.T) {
	c, cp := cosignedChain(t)
	cs := ledger.Cosign(c.Signers[2], cp)
	enc := cs.Format()
	if !ledger.IsCosignature(enc) {
		t.Errorf("IsCosignature(%q) = false", enc)
	}
	got, err := ledger.ParseCosignature(enc)
	if err != nil || *got != cs {
		t.Fatalf("ParseCosignature(Format()) = %+v, %v", got, err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	for _, change := range []func(*ledger.Cosignature){
		func(c *ledger.Cosignature) { c.Chain = "other" },
		func(c *ledger.Cosignature) { c.Height++ },
		func(c *ledger.Cosignature) { c.Block[0] ^= 1 },
		func(c *ledger.Cosignature) { c.LogSize++ },
		func(c *ledger.Cosignature) { c.LogRoot[31] ^= 1 },
		func(c *ledger.Cosignature) { c.Validator = c2(t).Signers[0].Public() },
	} {
		x := cs
		change(&x)
		if err := x.Verify(); !errors.Is(err, ledger.ErrBadSignature) {
			t.Errorf("Verify of a changed co-signature %+v = %v, want ErrBadSignature", x.Checkpoint, err)
		}
	}
	s := string(enc)
	for _, bad := range []string{
		"", s[:len(s)-1], s + "\n", strings.Replace(s, "height 2", "height 02", 1),
		strings.Replace(s, "chain test", "chain a/b", 1),
		strings.Replace(s, "log 7 ", "log  7 ", 1),
		strings.Replace(s, "log 7 ", "log 7", 1),
		strings.Replace(s, "vcsledger-cosig/1", "vcsledger-cosig/2", 1),
		s[:strings.Index(s, "validator")],
		strings.Replace(s, "sig ", "sig  ", 1),
		s + strings.Repeat("x", ledger.MaxCosignatureBytes),
	} {
		if _, err := ledger.ParseCosignature([]byte(bad)); !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("ParseCosignature(%.80q) = %v, want ErrMalformed", bad, err)
		}
	}
}

// c2 is a second chain, for keys that are not validators of the first.
func c2(t *testing.T) *ledgertest.Chain {
	g := &ledger.Genesis{Chain: "test2", Time: 1, Engine: ledger.EnginePoA, BlockInterval: 1, AttestQuorum: -1,
		Validators: []ledger.Validator{{Key: ledgertest.Signer(50).Public(), Name: "w"}}}
	return ledgertest.NewChainFrom(t, g, []*ledger.Signer{ledgertest.Signer(50)})
}

func TestVerifierKey(t *testing.T) {
	c, _ := cosignedChain(t)
	v := c.Vals.Validators()[0]
	vkey := ledger.VerifierKey("test", v)
	nv, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if nv.Name() != "test/"+v.Name || nv.KeyHash() != ledger.KeyID("test/"+v.Name, v.Key) {
		t.Errorf("note.NewVerifier(%s): name %s hash %08x", vkey, nv.Name(), nv.KeyHash())
	}
}

// recordProof returns a tlog-proof of record index in the chain's head log,
// signed by the signers at idx.
func recordProof(t *testing.T, c *ledgertest.Chain, cp ledger.Checkpoint, index int64, idx ...int) *ledger.Proof {
	t.Helper()
	e, err := c.Store.Record(t.Context(), index)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := ledger.ProveRecord(ledger.HashReaderOf(t.Context(), c.Store), int64(cp.LogSize), index)
	if err != nil {
		t.Fatal(err)
	}
	return &ledger.Proof{Extra: e.Record.Format(), Index: index, Hashes: hashes, Checkpoint: signedNote(t, c, cp, idx...)}
}

func TestProof(t *testing.T) {
	c, cp := cosignedChain(t)
	p := recordProof(t, c, cp, 4, 0, 1, 3)
	enc := p.Format()
	if !bytes.HasPrefix(enc, []byte("c2sp.org/tlog-proof@v1\nextra ")) {
		t.Errorf("Format() = %q", enc)
	}
	got, err := ledger.ParseProof(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Format(), enc) {
		t.Errorf("ParseProof(Format()).Format() differs:\n%s\n%s", got.Format(), enc)
	}
	r, gcp, err := got.Verify(c.Genesis)
	if err != nil || *gcp != cp {
		t.Fatalf("Verify() = %v, %+v", err, gcp)
	}
	want, _ := c.Store.Record(t.Context(), 4)
	if *r != want.Record {
		t.Errorf("Verify() record = %+v, want %+v", r, want.Record)
	}

	// Every flipped byte is refused, never verified.
	for i := range enc {
		for _, x := range []byte{0x01, 0x40} {
			bad := append([]byte(nil), enc...)
			bad[i] ^= x
			p, err := ledger.ParseProof(bad)
			if err != nil {
				continue
			}
			if r, _, err := p.Verify(c.Genesis); err == nil {
				t.Fatalf("byte %d ^ %#x: Verify() = %v, nil; want an error", i, x, r.Key)
			}
		}
	}
	// Another record's bytes, index or proof with this note.
	other := recordProof(t, c, cp, 5, 0, 1, 3)
	for name, change := range map[string]func(p *ledger.Proof){
		"extra":        func(p *ledger.Proof) { p.Extra = other.Extra },
		"index":        func(p *ledger.Proof) { p.Index = other.Index },
		"hashes":       func(p *ledger.Proof) { p.Hashes = other.Hashes },
		"no extra":     func(p *ledger.Proof) { p.Extra = nil },
		"hash dropped": func(p *ledger.Proof) { p.Hashes = p.Hashes[1:] },
		"index beyond": func(p *ledger.Proof) { p.Index = 7 },
		"2 signatures": func(p *ledger.Proof) { p.Checkpoint = signedNote(t, c, cp, 0, 1) },
	} {
		x := *recordProof(t, c, cp, 4, 0, 1, 3)
		change(&x)
		if _, _, err := x.Verify(c.Genesis); err == nil {
			t.Errorf("Verify() with another %s = nil, want an error", name)
		}
	}
	for _, bad := range []string{
		"", "c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v1\nindex 0\n",
		"c2sp.org/tlog-proof@v1\nindex 0\n\n",
		"c2sp.org/tlog-proof@v1\nindex 01\n\nx\n",
		"c2sp.org/tlog-proof@v1\nextra \nindex 0\n\nx\n",
		"c2sp.org/tlog-proof@v2\nindex 0\n\nx\n",
		"c2sp.org/tlog-proof@v1\nindex 0\nAAAA\n\nx\n",
		"c2sp.org/tlog-proof@v1\nindex 9223372036854775808\n\nx\n",
		"c2sp.org/tlog-proof@v1\nindex 0\n" + strings.Repeat(b64(make([]byte, 32))+"\n", 64) + "\nx\n",
	} {
		if _, err := ledger.ParseProof([]byte(bad)); !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("ParseProof(%.60q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParseCosignature(f *testing.F) {
	for _, s := range checkpointSeeds(f)["FuzzParseCosignature"] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ledger.ParseCosignature(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Format(), b) {
			t.Fatalf("ParseCosignature accepted a non-canonical encoding %q", b)
		}
	})
}

func FuzzParseCheckpointText(f *testing.F) {
	for _, s := range checkpointSeeds(f)["FuzzParseCheckpointText"] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ledger.ParseCheckpointText(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Text(), b) {
			t.Fatalf("ParseCheckpointText accepted a non-canonical text %q", b)
		}
	})
}

func FuzzParseProof(f *testing.F) {
	for _, s := range checkpointSeeds(f)["FuzzParseProof"] {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ledger.ParseProof(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Format(), b) {
			t.Fatalf("ParseProof accepted a non-canonical encoding %q", b)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	for _, s := range checkpointSeeds(f)["FuzzOpenCheckpoint"] {
		f.Add(s)
	}
	c := ledgertest.NewChain(f, 4)
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, signers, err := ledger.OpenCheckpoint(b, "test", c.Vals)
		if err == nil && (len(signers) < c.Vals.Quorum() || cp.Chain != "test") {
			t.Fatalf("OpenCheckpoint(%q) = %+v with %d signers", b, cp, len(signers))
		}
	})
}

// checkpointSeeds returns the fuzz seeds of the checkpoint encodings.
func checkpointSeeds(tb testing.TB) map[string][][]byte {
	c := ledgertest.NewChain(tb, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	c.Next(ledgertest.Records(rng, 0, 3))
	c.Next(ledgertest.Records(rng, 3, 4))
	cp := ledger.CheckpointOf(&c.Head().Header)
	var sigs []ledger.Cosignature
	for _, s := range c.Signers {
		sigs = append(sigs, ledger.Cosign(s, cp))
	}
	msg, err := ledger.FormatNote(cp, c.Vals, sigs[:3])
	if err != nil {
		tb.Fatal(err)
	}
	e, err := c.Store.Record(tb.Context(), 2)
	if err != nil {
		tb.Fatal(err)
	}
	hashes, err := ledger.ProveRecord(ledger.HashReaderOf(tb.Context(), c.Store), int64(cp.LogSize), 2)
	if err != nil {
		tb.Fatal(err)
	}
	p := ledger.Proof{Extra: e.Record.Format(), Index: 2, Hashes: hashes, Checkpoint: msg}
	return map[string][][]byte{
		"FuzzParseCosignature":    {sigs[0].Format(), sigs[1].Format()},
		"FuzzParseCheckpointText": {cp.Text()},
		"FuzzParseProof":          {p.Format()},
		"FuzzOpenCheckpoint":      {msg},
		"FuzzParseProofExtra":     {e.Record.Format(), setChangeProofExtra(tb)},
	}
}
