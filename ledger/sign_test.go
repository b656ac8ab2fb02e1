package ledger_test

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"filippo.io/edwards25519"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

func TestSignedVoteVerify(t *testing.T) {
	sv := sampleVote(ledger.Precommit, false)
	if err := sv.Verify(); err != nil {
		t.Fatalf("Verify() = %v; want nil", err)
	}
	if sv.Validator != ledgertest.Signer(2).Public() {
		t.Errorf("SignVote set validator %v, want the signer's key", sv.Validator)
	}
	for _, tc := range []struct {
		name   string
		change func(v *ledger.SignedVote)
	}{
		{"other chain (replay across chains)", func(v *ledger.SignedVote) { v.Chain = "other" }},
		{"prevote for a precommit", func(v *ledger.SignedVote) { v.Type = ledger.Prevote }},
		{"height", func(v *ledger.SignedVote) { v.Height++ }},
		{"round", func(v *ledger.SignedVote) { v.Round++ }},
		{"block", func(v *ledger.SignedVote) { v.Block[31] ^= 1 }},
		{"nil block", func(v *ledger.SignedVote) { v.Block = ledger.ZeroHash }},
		{"validator", func(v *ledger.SignedVote) { v.Validator = ledgertest.Signer(3).Public() }},
		{"signature R", func(v *ledger.SignedVote) { v.Sig[0] ^= 1 }},
		{"signature s", func(v *ledger.SignedVote) { v.Sig[40] ^= 1 }},
		{"zero signature", func(v *ledger.SignedVote) { v.Sig = ledger.Signature{} }},
	} {
		v := sv
		tc.change(&v)
		if err := v.Verify(); !errors.Is(err, ledger.ErrBadSignature) {
			t.Errorf("Verify(%s changed) = %v; want ErrBadSignature", tc.name, err)
		}
	}
	// Parsed back, the vote still verifies.
	p, err := ledger.ParseSignedVote(sv.Format())
	if err != nil || p.Verify() != nil {
		t.Errorf("ParseSignedVote then Verify = %v, %v", err, p.Verify())
	}
}

func TestAttestationVerify(t *testing.T) {
	r := sampleRecord(t, true)
	a := ledger.Attest(ledgertest.Signer(1), "main", r)
	if err := a.Verify(); err != nil {
		t.Fatalf("Verify() = %v; want nil", err)
	}
	for _, tc := range []struct {
		name   string
		change func(a *ledger.Attestation)
	}{
		{"other chain (replay across chains)", func(a *ledger.Attestation) { a.Chain = "other" }},
		{"key", func(a *ledger.Attestation) { a.Record.Key.Tag = "go1.21.1" }},
		{"commit", func(a *ledger.Attestation) { a.Record.Commit = strings.Repeat("0", 40) }},
		{"tree", func(a *ledger.Attestation) { a.Record.Tree = t1("other") }},
		{"h1", func(a *ledger.Attestation) { a.Record.H1 = h1("other") }},
		{"h1 dropped", func(a *ledger.Attestation) { a.Record.H1 = "" }},
		{"validator", func(a *ledger.Attestation) { a.Validator = ledgertest.Signer(0).Public() }},
		{"signature", func(a *ledger.Attestation) { a.Sig[63] ^= 0x10 }},
	} {
		x := a
		tc.change(&x)
		if err := x.Verify(); !errors.Is(err, ledger.ErrBadSignature) {
			t.Errorf("Verify(%s changed) = %v; want ErrBadSignature", tc.name, err)
		}
	}
}

// TestNoCrossRoleSignatures checks that no signed message of one kind is
// also a message of another kind: the magic lines differ and every message
// carries the chain id.
func TestNoCrossRoleSignatures(t *testing.T) {
	s := ledgertest.Signer(1)
	r := sampleRecord(t, false)
	a := ledger.Attest(s, "main", r)
	sv := ledger.SignVote(s, ledger.Vote{Chain: "main", Type: ledger.Precommit, Height: 1, Block: r.LeafHash()})
	if s.Public().Verify(r.Format(), a.Sig) || s.Public().Verify(sv.Vote.Format(), a.Sig) || s.Public().Verify(a.Message(), sv.Sig) {
		t.Errorf("a signature verified for a message of another role")
	}
	for _, m := range [][]byte{a.Message(), sv.Vote.Format()} {
		if !strings.Contains(string(m), "\nchain main\n") {
			t.Errorf("signed message %q does not carry the chain id", m)
		}
	}
}

func TestVerifyBatch(t *testing.T) {
	var items []ledger.SignedItem
	for i := 0; i < 1200; i++ { // enough for batches verified in parallel
		s := ledgertest.Signer(i % 7)
		msg := []byte(fmt.Sprintf("message %d", i))
		items = append(items, ledger.SignedItem{Key: s.Public(), Msg: msg, Sig: s.Sign(msg)})
	}
	if err := ledger.VerifyBatch(nil); err != nil {
		t.Errorf("VerifyBatch(nil) = %v; want nil", err)
	}
	for _, n := range []int{1, 2, 40, 1200} {
		if err := ledger.VerifyBatch(items[:n]); err != nil {
			t.Errorf("VerifyBatch(%d good) = %v; want nil", n, err)
		}
	}
	for _, bad := range []int{0, 1, 17, 39, 600, 1199} {
		for _, n := range []int{bad + 1, 40, 1200} {
			if n < bad+1 {
				continue
			}
			c := append([]ledger.SignedItem(nil), items[:n]...)
			c[bad].Msg = []byte("tampered")
			err := ledger.VerifyBatch(c)
			if !errors.Is(err, ledger.ErrBadSignature) || !strings.Contains(err.Error(), fmt.Sprintf("signature %d ", bad)) {
				t.Errorf("VerifyBatch(%d items, %d tampered) = %v; want ErrBadSignature naming %d", n, bad, err, bad)
			}
		}
	}
}

// smallOrderKey is the identity point: under ZIP-215 it verifies the
// signature (R = identity, s = 0) for any message.
var smallOrderKey = ledger.PublicKey{1}

func TestZIP215(t *testing.T) {
	var forged ledger.Signature
	forged[0] = 1 // R = identity, s = 0
	if !smallOrderKey.Verify([]byte("anything at all"), forged) {
		t.Fatalf("identity key does not verify the identity signature; the ZIP-215 rules changed")
	}
	if err := smallOrderKey.Check(); err == nil {
		t.Errorf("PublicKey.Check(identity) = nil; want error")
	}
	// y = p + 1 = 2^255 - 18 is a non-canonical encoding of y = 1.
	// Non-canonical encodings exist for y = p to 2^255 - 1 (y = 0 to 18):
	// each that decodes to a point of large order must still be refused.
	found := 0
	for y := 0; y <= 18; y++ {
		var k ledger.PublicKey
		for i := range k {
			k[i] = 0xff
		}
		k[0], k[31] = byte(0xed+y), 0x7f // p = 2^255 - 19 ends in 0xed
		p, err := new(edwards25519.Point).SetBytes(k[:])
		if err != nil {
			continue
		}
		if err := k.Check(); err == nil {
			t.Errorf("PublicKey.Check(%v) = nil; want error", k)
		}
		if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 0 {
			found++
			if err := k.Check(); err == nil || !strings.Contains(err.Error(), "non-canonical") {
				t.Errorf("PublicKey.Check(%v) = %v; want non-canonical", k, err)
			}
		}
	}
	if found == 0 {
		t.Errorf("no non-canonical encoding of a large-order point tried")
	}
	for i := 0; i < 10; i++ {
		if k := ledgertest.Signer(i).Public(); k.Check() != nil {
			t.Errorf("PublicKey.Check(%v) = %v; want nil", k, k.Check())
		}
	}
	g := sampleGenesis(ledger.EnginePoA)
	g.Validators[0].Key = smallOrderKey
	if err := g.Validate(); err == nil {
		t.Errorf("Genesis.Validate(small-order validator key) = nil; want error")
	}
	if _, err := ledger.ParseGenesis(g.Format()); err == nil {
		t.Errorf("ParseGenesis(small-order validator key) = nil error; want error")
	}
}

func TestNewSigner(t *testing.T) {
	if _, err := ledger.NewSigner(make([]byte, 31)); err == nil {
		t.Errorf("NewSigner(31 bytes) = nil error; want error")
	}
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	s, err := ledger.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("m")
	if sig := s.Sign(msg); !ed25519.Verify(priv.Public().(ed25519.PublicKey), msg, sig[:]) {
		t.Errorf("Sign gave a signature crypto/ed25519 refuses")
	}
}

func fourValidators(t testing.TB) ([]*ledger.Signer, *ledger.ValidatorSet) {
	var signers []*ledger.Signer
	var vals []ledger.Validator
	for i := 0; i < 4; i++ {
		signers = append(signers, ledgertest.Signer(i))
		vals = append(vals, ledger.Validator{Key: signers[i].Public(), Name: fmt.Sprint("v", i)})
	}
	vs, err := ledger.NewValidatorSet(vals, 0)
	if err != nil {
		t.Fatal(err)
	}
	return signers, vs
}

func certify(t *testing.T, chain string, height uint64, block ledger.Hash, signers ...*ledger.Signer) *ledger.Certificate {
	t.Helper()
	var votes []ledger.SignedVote
	for _, s := range signers {
		votes = append(votes, ledger.SignVote(s, ledger.Vote{Chain: chain, Type: ledger.Precommit, Height: height, Round: 3, Block: block}))
	}
	c, err := ledger.NewCertificate(votes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertificateVerify(t *testing.T) {
	signers, vs := fourValidators(t)
	block := ledger.SumSHA256([]byte("block"))
	if vs.Quorum() != 3 || vs.MaxFaulty() != 1 || vs.Len() != 4 {
		t.Fatalf("4 validators: quorum %d, f %d, len %d; want 3, 1, 4", vs.Quorum(), vs.MaxFaulty(), vs.Len())
	}
	good := certify(t, "main", 5, block, signers[3], signers[1], signers[0])
	if err := good.Verify(vs, "main", 5, block); err != nil {
		t.Fatalf("Verify(3 of 4) = %v; want nil", err)
	}
	if err := certify(t, "main", 5, block, signers...).Verify(vs, "main", 5, block); err != nil {
		t.Errorf("Verify(4 of 4) = %v; want nil", err)
	}
	stranger := ledgertest.Signer(99)
	for _, tc := range []struct {
		name string
		cert *ledger.Certificate
		// what Verify is asked
		chain  string
		height uint64
		block  ledger.Hash
	}{
		{"2 of 4", certify(t, "main", 5, block, signers[0], signers[2]), "main", 5, block},
		{"2 of 4 and a stranger", certify(t, "main", 5, block, signers[0], signers[2], stranger), "main", 5, block},
		{"wrong height", good, "main", 6, block},
		{"wrong block", good, "main", 5, ledger.SumSHA256([]byte("other"))},
		{"wrong chain", good, "other", 5, block},
		{"signed for another chain", certify(t, "other", 5, block, signers...), "main", 5, block},
	} {
		if err := tc.cert.Verify(vs, tc.chain, tc.height, tc.block); !errors.Is(err, ledger.ErrBadCertificate) {
			t.Errorf("Verify(%s) = %v; want ErrBadCertificate", tc.name, err)
		}
	}
	// Tampered certificates.
	for _, tc := range []struct {
		name   string
		change func(c *ledger.Certificate)
		sig    bool // fails on a signature
	}{
		{"duplicate signer", func(c *ledger.Certificate) { c.Sigs = append(c.Sigs[:2:2], c.Sigs[1]) }, false},
		{"unsorted", func(c *ledger.Certificate) { c.Sigs[0], c.Sigs[1] = c.Sigs[1], c.Sigs[0] }, false},
		{"round changed", func(c *ledger.Certificate) { c.Round++ }, true},
		{"signature swapped", func(c *ledger.Certificate) { c.Sigs[0].Sig, c.Sigs[1].Sig = c.Sigs[1].Sig, c.Sigs[0].Sig }, true},
		{"one bad signature", func(c *ledger.Certificate) { c.Sigs[2].Sig[5] ^= 1 }, true},
		{"no signatures", func(c *ledger.Certificate) { c.Sigs = nil }, false},
	} {
		c := *good
		c.Sigs = append([]ledger.CertSig(nil), good.Sigs...)
		tc.change(&c)
		err := c.Verify(vs, "main", 5, block)
		if !errors.Is(err, ledger.ErrBadCertificate) || errors.Is(err, ledger.ErrBadSignature) != tc.sig {
			t.Errorf("Verify(%s) = %v; want ErrBadCertificate (bad signature: %v)", tc.name, err, tc.sig)
		}
	}
	// A precommit for nil or a prevote is no certificate vote.
	pre := ledger.SignVote(signers[0], ledger.Vote{Chain: "main", Type: ledger.Prevote, Height: 5, Block: block})
	nilVote := ledger.SignVote(signers[0], ledger.Vote{Chain: "main", Type: ledger.Precommit, Height: 5})
	other := ledger.SignVote(signers[1], ledger.Vote{Chain: "main", Type: ledger.Precommit, Height: 6, Block: block})
	pc := ledger.SignVote(signers[1], ledger.Vote{Chain: "main", Type: ledger.Precommit, Height: 5, Block: block})
	for _, votes := range [][]ledger.SignedVote{nil, {pre}, {nilVote}, {pc, other}, {pc, pre}} {
		if c, err := ledger.NewCertificate(votes); err == nil {
			t.Errorf("NewCertificate(%d votes) = %+v, nil; want error", len(votes), c)
		}
	}
	// Duplicates collapse and signatures come out sorted.
	c, err := ledger.NewCertificate([]ledger.SignedVote{pc, pc, pc})
	if err != nil || len(c.Sigs) != 1 {
		t.Errorf("NewCertificate(one vote thrice) = %+v, %v; want one signature", c, err)
	}
	for i := 1; i < len(good.Sigs); i++ {
		if good.Sigs[i-1].Validator.Compare(good.Sigs[i].Validator) >= 0 {
			t.Errorf("NewCertificate: signatures not sorted by key")
		}
	}
	if v := good.Vote(signers[0].Public()); v.Type != ledger.Precommit || v.Block != block || v.Round != 3 || v.Height != 5 {
		t.Errorf("Certificate.Vote = %+v", v)
	}
}

func TestValidatorSet(t *testing.T) {
	key := func(i int) ledger.PublicKey { return ledgertest.Signer(i).Public() }
	val := func(i int) ledger.Validator { return ledger.Validator{Key: key(i), Name: fmt.Sprint("v", i)} }
	for _, tc := range []struct {
		n, q, wantQ, wantF int
	}{
		{1, 0, 1, 0}, {2, 0, 2, 0}, {3, 0, 3, 0}, {4, 0, 3, 1}, {5, 0, 4, 1}, {6, 0, 5, 1},
		{7, 0, 5, 2}, {10, 0, 7, 3}, {100, 0, 67, 33}, {4, 4, 4, 1}, {7, 6, 6, 2},
	} {
		var vals []ledger.Validator
		for i := 0; i < tc.n; i++ {
			vals = append(vals, val(i))
		}
		vs, err := ledger.NewValidatorSet(vals, tc.q)
		if err != nil || vs.Quorum() != tc.wantQ || vs.MaxFaulty() != tc.wantF {
			t.Errorf("NewValidatorSet(%d, %d) quorum, f = %v; want %d, %d", tc.n, tc.q, err, tc.wantQ, tc.wantF)
			continue
		}
		// f faulty validators can never stop a quorum of honest ones, and
		// two quorums always share an honest validator.
		if tc.n-tc.wantF < vs.Quorum() && tc.q == 0 || 2*vs.Quorum()-tc.n <= tc.wantF {
			t.Errorf("%d validators: quorum %d, f %d is not safe and live", tc.n, vs.Quorum(), tc.wantF)
		}
		vs2 := vs.Validators()
		for i := 1; i < len(vs2); i++ {
			if vs2[i-1].Key.Compare(vs2[i].Key) >= 0 {
				t.Errorf("Validators() not sorted by key")
			}
		}
		for i, v := range vs2 {
			if vs.Index(v.Key) != i || !vs.Contains(v.Key) {
				t.Errorf("Index(%v) = %d, want %d", v.Key, vs.Index(v.Key), i)
			}
		}
		if vs.Contains(key(1000)) || vs.Index(key(1000)) != -1 {
			t.Errorf("Contains(stranger) = true")
		}
	}
	for _, tc := range []struct {
		name string
		vals []ledger.Validator
		q    int
	}{
		{"empty", nil, 0},
		{"duplicate", []ledger.Validator{val(0), val(1), val(0)}, 0},
		{"quorum 2/3 exactly", []ledger.Validator{val(0), val(1), val(2)}, 2},
		{"quorum above n", []ledger.Validator{val(0), val(1), val(2)}, 4},
		{"negative quorum", []ledger.Validator{val(0), val(1), val(2)}, -1},
		{"quorum wrapping", []ledger.Validator{val(0), val(1), val(2), val(3)}, math.MinInt64 + 3074457345618258606}, // 3q wraps to 10,
	} {
		if vs, err := ledger.NewValidatorSet(tc.vals, tc.q); err == nil {
			t.Errorf("NewValidatorSet(%s) = quorum %d, nil; want error", tc.name, vs.Quorum())
		}
	}
}

func TestProposer(t *testing.T) {
	_, vs := fourValidators(t)
	prev := ledger.SumSHA256([]byte("prev"))
	// The definition of DESIGN §3, computed here independently.
	want := func(chain string, prev ledger.Hash, h uint64, r uint32) ledger.PublicKey {
		msg := []byte("vcsledger-proposer/1" + chain)
		msg = append(msg, prev[:]...)
		msg = binary.BigEndian.AppendUint64(msg, h)
		msg = binary.BigEndian.AppendUint32(msg, r)
		sum := ledger.SumSHA256(msg)
		return vs.Validators()[binary.BigEndian.Uint64(sum[:8])%uint64(vs.Len())].Key
	}
	for h := uint64(0); h < 20; h++ {
		for r := uint32(0); r < 5; r++ {
			got := vs.Proposer("main", prev, h, r)
			if w := want("main", prev, h, r); got != w {
				t.Errorf("Proposer(main, %d, %d) = %v, want %v", h, r, got, w)
			}
			if again := vs.Proposer("main", prev, h, r); again != got {
				t.Errorf("Proposer(main, %d, %d) not deterministic", h, r)
			}
		}
	}
	// The order validators were listed in does not matter.
	var rev []ledger.Validator
	for i := vs.Len() - 1; i >= 0; i-- {
		rev = append(rev, vs.Validators()[i])
	}
	vs2, _ := ledger.NewValidatorSet(rev, 0)
	if vs2.Proposer("main", prev, 9, 1) != vs.Proposer("main", prev, 9, 1) {
		t.Errorf("Proposer depends on the order validators were listed in")
	}
	// Every input matters, and the distribution is fair: over 40,000
	// (prev, height, round) each of 4 validators proposes about 10,000
	// times; 4.5 standard deviations (sqrt(40000 * 1/4 * 3/4) = 87) is 390.
	count := make(map[ledger.PublicKey]int)
	changed := map[string]int{}
	for i := 0; i < 10000; i++ {
		p := ledger.SumSHA256(binary.BigEndian.AppendUint64(nil, uint64(i)))
		for r := uint32(0); r < 4; r++ {
			k := vs.Proposer("main", p, uint64(i), r)
			count[k]++
			if vs.Proposer("main2", p, uint64(i), r) != k {
				changed["chain"]++
			}
			if vs.Proposer("main", p, uint64(i)+1, r) != k {
				changed["height"]++
			}
			if vs.Proposer("main", p, uint64(i), r+1) != k {
				changed["round"]++
			}
			p2 := p
			p2[31] ^= 1
			if vs.Proposer("main", p2, uint64(i), r) != k {
				changed["prev"]++
			}
		}
	}
	for _, v := range vs.Validators() {
		if c := count[v.Key]; c < 10000-390 || c > 10000+390 {
			t.Errorf("validator %v proposes %d of 40000 times; want about 10000", v.Key, c)
		}
	}
	// A change of input changes the proposer 3/4 of the time: 30000 ± 390.
	for _, what := range []string{"chain", "height", "round", "prev"} {
		if c := changed[what]; c < 30000-390 || c > 30000+390 {
			t.Errorf("changing the %s changed the proposer %d of 40000 times; want about 30000", what, c)
		}
	}
}
