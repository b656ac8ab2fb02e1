package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

func TestAuthorityChangeEncoding(t *testing.T) {
	c := ledgertest.NewChain(t, 4)
	add := c.Change(ledger.AuthorityAdd, ledgertest.Signer(4).Public(), "v4", 5)
	rm := c.Change(ledger.AuthorityRemove, ledgertest.Signer(1).Public(), "", 7)
	unsigned := ledger.AuthorityChange{Chain: "test", Op: ledger.AuthorityAdd, Validator: ledgertest.Signer(4).Public(), Name: "v4", Effective: 3}
	for _, ch := range []ledger.AuthorityChange{add, rm, unsigned} {
		enc := ch.Format()
		p, err := ledger.ParseAuthorityChange(enc)
		if err != nil {
			t.Fatalf("ParseAuthorityChange(%q) = %v", enc, err)
		}
		if !bytes.Equal(p.Format(), enc) {
			t.Errorf("ParseAuthorityChange(%q).Format() = %q", enc, p.Format())
		}
		if !bytes.HasPrefix(enc, ch.Message()) || p.ID() != ch.ID() {
			t.Errorf("Format does not start with Message, or the ID changed")
		}
		if want := sha256.Sum256(append([]byte{0}, enc...)); ch.LeafHash() != ledger.Hash(want) {
			t.Errorf("LeafHash = %s, want SHA-256(0x00 || bytes) %x", ch.LeafHash(), want)
		}
	}
	if strings.Contains(string(rm.Message()), "name ") {
		t.Errorf("a removal carries a name line:\n%s", rm.Message())
	}
	good := string(add.Format())
	key := ledgertest.Signer(4).Public().String()
	for _, bad := range []string{
		"",
		strings.Replace(good, "vcsledger-authority/1", "vcsledger-authority/2", 1),
		strings.Replace(good, "op add", "op replace", 1),
		strings.Replace(good, "name v4\n", "", 1),
		strings.Replace(good, "name v4\n", "name v 4\n", 1),
		strings.Replace(good, "effective 5", "effective 05", 1),
		strings.Replace(good, "effective 5", "effective -5", 1),
		strings.Replace(good, "chain test", "chain te st", 1),
		strings.Replace(good, "chain test", "chain t/est", 1),
		strings.Replace(good, key, strings.ToUpper(key), 1),
		strings.Replace(good, key, strings.Repeat("0", 64), 1), // small order
		good + "sig " + key,
		good + "trailing\n",
		strings.Replace(good, "\n", "\r\n", 1),
		string(rm.Format()[:len(rm.Message())]) + "name x\n",
		// votes out of order
		string(add.Message()) + "sig " + add.Sigs[1].Validator.String() + " " + add.Sigs[1].Sig.String() + "\nsig " + add.Sigs[0].Validator.String() + " " + add.Sigs[0].Sig.String() + "\n",
		// a vote twice
		string(add.Message()) + "sig " + add.Sigs[0].Validator.String() + " " + add.Sigs[0].Sig.String() + "\nsig " + add.Sigs[0].Validator.String() + " " + add.Sigs[0].Sig.String() + "\n",
	} {
		if p, err := ledger.ParseAuthorityChange([]byte(bad)); err == nil {
			t.Errorf("ParseAuthorityChange(%q) = %v, want an error", bad, p)
		} else if !errors.Is(err, ledger.ErrMalformed) && !strings.Contains(err.Error(), "public key") {
			t.Errorf("ParseAuthorityChange(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestAuthorityVotes(t *testing.T) {
	c := ledgertest.NewChain(t, 4)
	ch := ledger.AuthorityChange{Chain: "test", Op: ledger.AuthorityAdd, Validator: ledgertest.Signer(9).Public(), Name: "n", Effective: 3}
	for _, i := range []int{3, 0, 2, 0} {
		ch.AddVote(ch.Vote(ledgertest.Signer(i)))
	}
	if len(ch.Sigs) != 3 || ch.Check() != nil {
		t.Fatalf("AddVote gave %d votes (%v), want 3 sorted", len(ch.Sigs), ch.Check())
	}
	if err := ch.VerifyVotes(c.Vals); err != nil {
		t.Errorf("VerifyVotes = %v", err)
	}
	outsider := ch
	outsider.Sigs = append([]ledger.CertSig(nil), ch.Sigs...)
	outsider.AddVote(outsider.Vote(ledgertest.Signer(7)))
	if err := outsider.VerifyVotes(c.Vals); !errors.Is(err, ledger.ErrBadAuthority) {
		t.Errorf("VerifyVotes with a non-member's vote = %v, want ErrBadAuthority", err)
	}
	moved := ch
	moved.Effective = 4 // the votes were for effective 3
	if err := moved.VerifyVotes(c.Vals); !errors.Is(err, ledger.ErrBadSignature) {
		t.Errorf("VerifyVotes of votes for another effective height = %v, want ErrBadSignature", err)
	}
	other := ch
	other.Chain = "other"
	if err := other.VerifyVotes(c.Vals); !errors.Is(err, ledger.ErrBadSignature) {
		t.Errorf("VerifyVotes of votes replayed on another chain = %v, want ErrBadSignature", err)
	}
}

// TestAuthoritiesVerifiesAgain: a change whose votes verified once is
// checked without verifying them again, but a copy whose vote was altered,
// or which carries another vote, is verified afresh.
func TestAuthoritiesVerifiesAgain(t *testing.T) {
	c := ledgertest.NewChain(t, 4)
	a, err := ledger.NewAuthorities(c.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	ch := ledger.AuthorityChange{Chain: c.Genesis.Chain, Op: ledger.AuthorityAdd, Validator: ledgertest.Signer(9).Public(), Name: "n", Effective: 3}
	ch.AddVote(ch.Vote(ledgertest.Signer(0)))
	for i := 0; i < 2; i++ {
		if err := a.CheckChange(&ch, false); err != nil {
			t.Fatalf("CheckChange #%d = %v", i+1, err)
		}
	}
	forged := ch
	forged.Sigs = append([]ledger.CertSig(nil), ch.Sigs...)
	forged.Sigs[0].Sig[5] ^= 1
	if err := a.CheckChange(&forged, false); !errors.Is(err, ledger.ErrBadSignature) {
		t.Errorf("CheckChange with an altered vote after a good one = %v, want ErrBadSignature", err)
	}
	more := ch
	more.Sigs = append([]ledger.CertSig(nil), ch.Sigs...)
	more.AddVote(ledger.CertSig{Validator: ledgertest.Signer(1).Public(), Sig: ch.Sigs[0].Sig})
	if err := a.CheckChange(&more, false); !errors.Is(err, ledger.ErrBadSignature) {
		t.Errorf("CheckChange with another's signature as a vote = %v, want ErrBadSignature", err)
	}
}

// TestAuthoritiesReplay: a committed change cannot be committed again,
// even where the rules it passed then would pass again (an addition and
// the removal of the same key, both effective at one height, then the
// addition's votes replayed).
func TestAuthoritiesReplay(t *testing.T) {
	c := ledgertest.NewChain(t, 5)
	v5 := ledgertest.Signer(5)
	add := c.Change(ledger.AuthorityAdd, v5.Public(), "v5", 10)
	rm := c.Change(ledger.AuthorityRemove, v5.Public(), "", 10)
	b, _ := c.UnsealedWith(nil, []ledger.AuthorityChange{add, rm, add})
	if err := c.Auth.Check(b); !errors.Is(err, ledger.ErrBadAuthority) {
		t.Errorf("add, remove, add in one block: Check = %v, want ErrBadAuthority", err)
	}
	c.NextWith(nil, []ledger.AuthorityChange{add}) // height 1
	c.NextWith(nil, []ledger.AuthorityChange{rm})  // height 2
	b, _ = c.UnsealedWith(nil, []ledger.AuthorityChange{add})
	if err := c.Auth.Check(b); !errors.Is(err, ledger.ErrBadAuthority) || !strings.Contains(err.Error(), "committed before") {
		t.Errorf("the addition replayed: Check = %v, want ErrBadAuthority (committed before)", err)
	}
	if err := c.Auth.CheckChange(&add, true); !errors.Is(err, ledger.ErrBadAuthority) {
		t.Errorf("the addition replayed: CheckChange = %v, want ErrBadAuthority", err)
	}
	// The same addition at another effective height is a new change.
	again := c.Change(ledger.AuthorityAdd, v5.Public(), "v5", 11)
	if err := c.Auth.CheckChange(&again, true); err != nil {
		t.Errorf("a new addition of the key: CheckChange = %v", err)
	}
}

// TestAuthoritiesRules builds a chain of 4, adds a fifth and removes one,
// and checks every refusal on the way.
func TestAuthoritiesRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := ledgertest.NewChain(t, 4)
	v4 := ledgertest.Signer(4)
	c.AddSigner(v4)
	c.Next(ledgertest.Records(rng, 0, 2)) // height 1

	check := func(name string, changes []ledger.AuthorityChange, want error) {
		t.Helper()
		b, _ := c.UnsealedWith(nil, changes)
		err := c.Auth.Check(b)
		if want == nil && err != nil {
			t.Errorf("%s: Check = %v, want nil", name, err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: Check = %v, want %v", name, err, want)
		}
		if _, err2 := ledger.ValidateNext(t.Context(), c.Store, &c.Head().Header, b, nil); err2 != nil {
			t.Errorf("%s: ValidateNext (no seal) = %v; the format is fine", name, err2)
		}
	}
	h := c.Head().Header.Height + 1 // 2
	add := c.Change(ledger.AuthorityAdd, v4.Public(), "v4", h+ledger.AuthorityDelay)
	check("add", []ledger.AuthorityChange{add}, nil)

	few := add
	few.Sigs = add.Sigs[:2]
	check("two votes of four", []ledger.AuthorityChange{few}, ledger.ErrBadAuthority)
	stale := c.Change(ledger.AuthorityAdd, v4.Public(), "v4", h+1)
	check("effective next height", []ledger.AuthorityChange{stale}, ledger.ErrBadAuthority)
	far := c.Change(ledger.AuthorityAdd, v4.Public(), "v4", h+ledger.MaxAuthorityDelay+1)
	check("effective too far", []ledger.AuthorityChange{far}, ledger.ErrBadAuthority)
	exist := c.Change(ledger.AuthorityAdd, ledgertest.Signer(2).Public(), "again", h+5)
	check("add an existing key", []ledger.AuthorityChange{exist}, ledger.ErrBadAuthority)
	unknown := c.Change(ledger.AuthorityRemove, ledgertest.Signer(8).Public(), "", h+5)
	check("remove an unknown key", []ledger.AuthorityChange{unknown}, ledger.ErrBadAuthority)
	below := c.Change(ledger.AuthorityRemove, ledgertest.Signer(2).Public(), "", h+5)
	check("remove below the minimum", []ledger.AuthorityChange{below}, ledger.ErrBadAuthority)
	outsider := add
	outsider.Sigs = append([]ledger.CertSig(nil), add.Sigs...)
	outsider.AddVote(outsider.Vote(ledgertest.Signer(9)))
	check("a non-member's vote", []ledger.AuthorityChange{outsider}, ledger.ErrBadAuthority)
	check("the same change twice", []ledger.AuthorityChange{add, add}, ledger.ErrBadAuthority)
	other := ledger.AuthorityChange{Chain: "other", Op: ledger.AuthorityAdd, Validator: v4.Public(), Name: "v4", Effective: h + 2}
	for _, s := range c.Signers {
		other.AddVote(other.Vote(s))
	}
	b, _ := c.UnsealedWith(nil, []ledger.AuthorityChange{other})
	if err := c.Auth.Check(b); !errors.Is(err, ledger.ErrBadAuthority) {
		t.Errorf("a change of another chain: Check = %v", err)
	}
	if _, err := ledger.ValidateNext(t.Context(), c.Store, &c.Head().Header, b, nil); !errors.Is(err, ledger.ErrInvalidBlock) {
		t.Errorf("a change of another chain: ValidateNext = %v, want ErrInvalidBlock", err)
	}

	// Commit the addition at height 2, effective at 4.
	c.NextWith(nil, []ledger.AuthorityChange{add})
	if got := c.ValsAt(3); got.Len() != 4 || got.Contains(v4.Public()) {
		t.Errorf("set at 3 has %d validators (v4: %v), want the genesis four", got.Len(), got.Contains(v4.Public()))
	}
	if got := c.ValsAt(4); got.Len() != 5 || !got.Contains(v4.Public()) || got.Quorum() != 4 {
		t.Errorf("set at 4 has %d validators, quorum %d, want 5 with v4, quorum 4", got.Len(), got.Quorum())
	}
	if _, err := c.Auth.At(5); !errors.Is(err, ledger.ErrHeightUnknown) {
		t.Errorf("At(5) with blocks through 2 = %v, want ErrHeightUnknown", err)
	}
	if p := c.Auth.Pending(3); len(p) != 1 || p[0].Height != 2 || p[0].Index != 2 {
		t.Errorf("Pending(3) = %+v, want the addition at height 2 index 2", p)
	}
	// A replay of the same change is stale or a duplicate.
	check("the addition again", []ledger.AuthorityChange{add}, ledger.ErrBadAuthority)
	// A change effective before a committed one is refused.
	rm0 := c.Change(ledger.AuthorityRemove, ledgertest.Signer(0).Public(), "", 5)
	check("remove, effective at 5 (after the addition)", []ledger.AuthorityChange{rm0}, nil)
	// The projected set already has five: removing one is allowed.
	c.NextWith(ledgertest.Records(rng, 2, 1), nil) // height 3, by the genesis four
	// Height 4 is decided by five: the new validator signs and attests.
	b4 := c.NextWith(ledgertest.Records(rng, 3, 2), nil)
	if b4.Certificate.Verify(c.ValsAt(4), "test", 4, b4.Hash()) != nil || len(b4.Certificate.Sigs) != 5 {
		t.Errorf("block 4's certificate is not by the five")
	}
	if err := b4.Certificate.Verify(c.Vals, "test", 4, b4.Hash()); err == nil {
		t.Errorf("block 4's certificate verifies with the genesis set, which lacks v4")
	}
	rm := c.Change(ledger.AuthorityRemove, ledgertest.Signer(0).Public(), "", 7)
	if len(rm.Sigs) != 5 {
		t.Fatalf("the removal has %d votes, want 5", len(rm.Sigs))
	}
	c.NextWith(nil, []ledger.AuthorityChange{rm}) // height 5, effective 7
	c.Next(nil)                                   // 6
	c.Next(ledgertest.Records(rng, 5, 1))         // 7
	s7 := c.ValsAt(7)
	if s7.Len() != 4 || s7.Contains(ledgertest.Signer(0).Public()) || !s7.Contains(v4.Public()) {
		t.Errorf("set at 7: %d validators; want four without v0, with v4", s7.Len())
	}
	if s6 := c.ValsAt(6); s6.Len() != 5 {
		t.Errorf("set at 6 has %d validators, want 5", s6.Len())
	}
	// The removed validator's votes no longer count.
	late := c.Change(ledger.AuthorityAdd, ledgertest.Signer(6).Public(), "v6", 10)
	late.AddVote(late.Vote(ledgertest.Signer(0)))
	check("a removed validator's vote", []ledger.AuthorityChange{late}, ledger.ErrBadAuthority)

	// The history derived again from the store, and by Audit.
	ctx := t.Context()
	loaded, err := ledger.LoadAuthorities(ctx, c.Store, c.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Through() != 7 || len(loaded.Entries()) != 2 {
		t.Fatalf("LoadAuthorities: through %d, %d entries; want 7 and 2", loaded.Through(), len(loaded.Entries()))
	}
	for h := uint64(0); h <= 9; h++ {
		a, _ := c.Auth.At(h)
		b, _ := loaded.At(h)
		if a == nil || b == nil || !sameSet(a, b) {
			t.Errorf("At(%d) differs between the followed and the loaded history", h)
		}
	}
	if _, err := ledger.Audit(ctx, c.Store, c.Genesis, nil, nil); err != nil {
		t.Errorf("Audit = %v", err)
	}
	// Apply again of an applied block is a no-op; of another one an error.
	if err := loaded.Apply(c.Blocks()[5]); err != nil {
		t.Errorf("Apply(block 5) again = %v", err)
	}
	if err := loaded.Apply(c.Blocks()[4]); err != nil {
		t.Errorf("Apply(block 4) again = %v", err)
	}
	fake := *c.Blocks()[4]
	fake.Authority = []ledger.AuthorityChange{rm}
	if err := loaded.Apply(&fake); !errors.Is(err, ledger.ErrBadAuthority) {
		t.Errorf("Apply of another block 4 = %v", err)
	}
}

func sameSet(a, b *ledger.ValidatorSet) bool {
	if a.Len() != b.Len() || a.Quorum() != b.Quorum() {
		return false
	}
	for i, v := range a.Validators() {
		if b.Validators()[i] != v {
			return false
		}
	}
	return true
}

func TestAuthoritiesGenesisQuorum(t *testing.T) {
	// With an explicit genesis quorum, a change that makes it impossible
	// or unsafe is refused.
	g := &ledger.Genesis{Chain: "q", Time: 1, Engine: ledger.EnginePoA, BlockInterval: 1000, AttestQuorum: -1, Quorum: 4}
	var signers []*ledger.Signer
	for i := 0; i < 5; i++ {
		signers = append(signers, ledgertest.Signer(i))
		g.Validators = append(g.Validators, ledger.Validator{Key: ledgertest.Signer(i).Public(), Name: "v"})
	}
	c := ledgertest.NewChainFrom(t, g, signers)
	add := c.Change(ledger.AuthorityAdd, ledgertest.Signer(5).Public(), "v5", 3)
	b, _ := c.UnsealedWith(nil, []ledger.AuthorityChange{add})
	if err := c.Auth.Check(b); !errors.Is(err, ledger.ErrBadAuthority) {
		t.Errorf("adding a sixth with quorum 4 (not more than 2/3 of 6): Check = %v", err)
	}
	rm := c.Change(ledger.AuthorityRemove, ledgertest.Signer(0).Public(), "", 3)
	b, _ = c.UnsealedWith(nil, []ledger.AuthorityChange{rm})
	if err := c.Auth.Check(b); err != nil {
		t.Errorf("removing one of five with quorum 4: Check = %v", err)
	}
}

func TestAuthorityStores(t *testing.T) {
	// Both stores keep authority changes as log entries of their own kind.
	c := ledgertest.NewChain(t, 4)
	c.AddSigner(ledgertest.Signer(4))
	rng := rand.New(rand.NewPCG(3, 4))
	c.Next(ledgertest.Records(rng, 0, 3))
	add := c.Change(ledger.AuthorityAdd, ledgertest.Signer(4).Public(), "v4", 4)
	b := c.NextWith(ledgertest.Records(rng, 3, 2), []ledger.AuthorityChange{add})
	ctx := context.Background()
	e, err := c.Store.Record(ctx, 5)
	if err != nil || e.Authority == nil || e.Authority.LeafHash() != add.LeafHash() || e.Height != 2 {
		t.Fatalf("Record(5) = %+v, %v; want the authority change at height 2", e, err)
	}
	got, err := c.Store.Block(ctx, 2)
	if err != nil || !bytes.Equal(got.Format(), b.Format()) {
		t.Fatalf("Block(2) reads back another block (%v)", err)
	}
	parsed, err := ledger.ParseBlock(b.Format())
	if err != nil || len(parsed.Authority) != 1 || !bytes.Equal(parsed.Format(), b.Format()) {
		t.Fatalf("ParseBlock(Format()) = %v", err)
	}
	// A record section after an authority section is refused.
	bad := bytes.Replace(b.Format(), []byte("authority "), []byte("authorityx "), 1)
	if _, err := ledger.ParseBlock(bad); err == nil {
		t.Errorf("ParseBlock accepted an unknown section")
	}
}

// authorityVectors returns authority.json (docs/FORMAT.md, "Authority
// change"): the vector chain continued by a block that adds a fifth
// validator, erin, and the changes every implementation must accept or
// refuse at that height.
func authorityVectors(t *testing.T) any {
	c := vectorChain(t, vectorRecords(t))
	erin, err := ledger.NewSigner(ed25519.NewKeyFromSeed(vectorSeed(4)))
	if err != nil {
		t.Fatal(err)
	}
	c.AddSigner(erin)
	h := c.Head().Header.Height + 1 // 7
	type changeVector struct {
		Height  uint64 `json:"height"`
		Encoded string `json:"encoded"`
		Message string `json:"message"`
		Leaf    string `json:"leaf_hash"`
		Valid   bool   `json:"valid"`
		Note    string `json:"note"`
	}
	var out struct {
		Validator struct {
			Name      string `json:"name"`
			Seed      string `json:"seed"`
			PublicKey string `json:"public_key"`
		} `json:"validator"`
		Changes   []changeVector `json:"changes"`
		BlockData struct {
			Height  uint64 `json:"height"`
			Encoded string `json:"encoded"`
		} `json:"block_data"`
		Sets []struct {
			Height     uint64   `json:"height"`
			Validators []string `json:"validators"`
			Quorum     int      `json:"quorum"`
		} `json:"sets"`
		Proof authorityProofVector `json:"proof"`
	}
	out.Validator.Name, out.Validator.Seed, out.Validator.PublicKey = "erin", hex.EncodeToString(vectorSeed(4)), erin.Public().String()
	add := c.Change(ledger.AuthorityAdd, erin.Public(), "erin", h+ledger.AuthorityDelay)
	few := add
	few.Sigs = add.Sigs[:2]
	stale := c.Change(ledger.AuthorityAdd, erin.Public(), "erin", h+1)
	rmBelow := c.Change(ledger.AuthorityRemove, c.Signers[0].Public(), "", h+2)
	exist := c.Change(ledger.AuthorityAdd, c.Signers[1].Public(), "bob2", h+2)
	outsider := add
	outsider.Sigs = append([]ledger.CertSig(nil), add.Sigs...)
	outsider.AddVote(outsider.Vote(erin))
	for _, v := range []struct {
		c     ledger.AuthorityChange
		valid bool
		note  string
	}{
		{add, true, "add erin at height 7, effective 9, voted by all four"},
		{few, false, "two votes: the quorum of four is three"},
		{stale, false, "effective 8: less than 2 heights after the block"},
		{rmBelow, false, "removing one of four leaves three, below the minimum of four"},
		{exist, false, "adding a key that is already a validator"},
		{outsider, false, "a vote by erin, not yet a validator"},
	} {
		b, _ := c.UnsealedWith(nil, []ledger.AuthorityChange{v.c})
		if err := c.Auth.Check(b); (err == nil) != v.valid {
			t.Fatalf("authority vector %q: Check = %v", v.note, err)
		}
		out.Changes = append(out.Changes, changeVector{h, b64(v.c.Format()), b64(v.c.Message()), v.c.LeafHash().String(), v.valid, v.note})
	}
	b := c.NextWith(nil, []ledger.AuthorityChange{add})
	out.BlockData.Height, out.BlockData.Encoded = b.Header.Height, b64(b.Format())
	c.Next(nil)
	for _, height := range []uint64{h, h + 1, h + 2} {
		vs := c.ValsAt(height)
		var keys []string
		for _, v := range vs.Validators() {
			keys = append(keys, v.Key.String())
		}
		out.Sets = append(out.Sets, struct {
			Height     uint64   `json:"height"`
			Validators []string `json:"validators"`
			Quorum     int      `json:"quorum"`
		}{height, keys, vs.Quorum()})
	}
	out.Proof = authorityProof(t, c, erin)
	return out
}

// An authorityProofVector is a tlog-proof across validator-set changes
// (docs/FORMAT.md, "Proof bundle").
type authorityProofVector struct {
	Record  int      `json:"record"`
	Height  uint64   `json:"height"`
	Signers []string `json:"signers"`
	Encoded string   `json:"encoded"`
	Note    string   `json:"note"`
}

// authorityProof continues the vector chain after block 8: block 9 removes
// alice (effective at 11), blocks 10 and 11 are empty. It returns the
// tlog-proof of record 0 against block 11's checkpoint, signed by erin,
// bob and carol: a quorum of the set of height 11 (bob, carol, dave,
// erin), which the genesis set alone does not see (erin is unknown to it).
func authorityProof(t *testing.T, c *ledgertest.Chain, erin *ledger.Signer) authorityProofVector {
	var alice ledger.PublicKey
	named := map[string]*ledger.Signer{"erin": erin}
	for i, v := range c.Vals.Validators() {
		named[v.Name] = c.Signers[i]
		if v.Name == "alice" {
			alice = v.Key
		}
	}
	c.NextWith(nil, []ledger.AuthorityChange{c.Change(ledger.AuthorityRemove, alice, "", 11)})
	c.Next(nil)
	c.Next(nil)
	head := &c.Head().Header
	cp := ledger.CheckpointOf(head)
	signers := []string{"bob", "carol", "erin"}
	var ss []*ledger.Signer
	for _, name := range signers {
		ss = append(ss, named[name])
	}
	e, err := c.Store.Record(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	hashes, err := ledger.ProveRecord(ledger.HashReaderOf(t.Context(), c.Store), int64(cp.LogSize), 0)
	if err != nil {
		t.Fatal(err)
	}
	extra := ledger.ProofExtra{Record: e.Record, Changes: provenChanges(t, c, head.Height, head.LogSize)}
	p := ledger.Proof{Extra: extra.Format(), Index: 0, Hashes: hashes, Checkpoint: noteOf(t, cp, c.ValsAt(head.Height), ss...)}
	if _, _, err := p.Verify(c.Genesis); err != nil {
		t.Fatalf("the vector proof does not verify: %v", err)
	}
	return authorityProofVector{Record: 0, Height: head.Height, Signers: signers, Encoded: b64(p.Format()),
		Note: "record 0 against block 11, after erin's addition (block 7, effective 9) and alice's removal (block 9, effective 11)"}
}

// TestAuthorityVectorsIndependent checks authority.json without the code
// that wrote it: the message is the change up to its first sig line, the
// leaf hash SHA-256(0x00 || bytes), each vote an ed25519 signature of the
// message.
func TestAuthorityVectorsIndependent(t *testing.T) {
	var av struct {
		Validator struct {
			Name      string `json:"name"`
			Seed      string `json:"seed"`
			PublicKey string `json:"public_key"`
		} `json:"validator"`
		Sets []struct {
			Height     uint64   `json:"height"`
			Validators []string `json:"validators"`
			Quorum     int      `json:"quorum"`
		} `json:"sets"`
		Changes []struct {
			Height  uint64 `json:"height"`
			Encoded string `json:"encoded"`
			Message string `json:"message"`
			Leaf    string `json:"leaf_hash"`
			Valid   bool   `json:"valid"`
			Note    string `json:"note"`
		} `json:"changes"`
		BlockData struct {
			Height  uint64 `json:"height"`
			Encoded string `json:"encoded"`
		} `json:"block_data"`
		Proof authorityProofVector `json:"proof"`
	}
	readVector(t, "authority.json", &av)
	if len(av.Changes) == 0 {
		t.Fatal("authority.json has no changes")
	}
	for i, c := range av.Changes {
		enc, msg := unb64(t, c.Encoded), unb64(t, c.Message)
		if !bytes.HasPrefix(enc, []byte("vcsledger-authority/1\nchain vcsledger-vectors\nop ")) {
			t.Errorf("changes[%d] does not start with the magic and chain: %q", i, enc)
		}
		i0 := bytes.Index(enc, []byte("\nsig "))
		if i0 < 0 || !bytes.Equal(enc[:i0+1], msg) {
			t.Errorf("changes[%d]: message is not the bytes before the first sig line", i)
			continue
		}
		leaf := sha256.Sum256(append([]byte{0}, enc...))
		if hex.EncodeToString(leaf[:]) != c.Leaf {
			t.Errorf("changes[%d].leaf_hash = %s, want %x", i, c.Leaf, leaf)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(enc[i0+1:]), "\n"), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "sig" {
				t.Fatalf("changes[%d]: bad sig line %q", i, line)
			}
			if !ed25519.Verify(unhex(t, f[1]), msg, unhex(t, f[2])) {
				t.Errorf("changes[%d] (%s): the vote of %s does not verify", i, c.Note, f[1])
			}
		}
	}
	if !bytes.Contains(unb64(t, av.BlockData.Encoded), []byte("\nauthority ")) {
		t.Errorf("block_data has no authority section")
	}
	seed := unhex(t, av.Validator.Seed)
	if pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey); hex.EncodeToString(pub) != av.Validator.PublicKey {
		t.Errorf("validator seed gives %x, vector says %s", pub, av.Validator.PublicKey)
	}
	if n := len(av.Sets); n != 3 || len(av.Sets[0].Validators) != 4 || len(av.Sets[2].Validators) != 5 || av.Sets[2].Quorum != 4 {
		t.Errorf("sets = %+v; want four validators before the effective height, five (quorum 4) from it", av.Sets)
	}
}

// TestAuthorityProofVectorIndependent checks authority.json's proof
// without the code that wrote it: the extra data's sections, the record
// and both changes proven with RFC 6962 in the log of block 11 (the 25
// vector records, erin's addition, alice's removal), the removal voted by
// four of the five, and the note opened with the stock note package by
// the set of height 11 but not by the genesis set.
func TestAuthorityProofVectorIndependent(t *testing.T) {
	var av struct {
		Changes []struct {
			Height  uint64 `json:"height"`
			Encoded string `json:"encoded"`
			Message string `json:"message"`
			Leaf    string `json:"leaf_hash"`
			Valid   bool   `json:"valid"`
			Note    string `json:"note"`
		} `json:"changes"`
		Validator struct {
			Name      string `json:"name"`
			Seed      string `json:"seed"`
			PublicKey string `json:"public_key"`
		} `json:"validator"`
		BlockData json.RawMessage      `json:"block_data"`
		Sets      json.RawMessage      `json:"sets"`
		Proof     authorityProofVector `json:"proof"`
	}
	var cv checkpointVectors
	var recs []recordVector
	readVector(t, "authority.json", &av)
	readVector(t, "checkpoints.json", &cv)
	readVector(t, "records.json", &recs)
	enc := string(unb64(t, av.Proof.Encoded))
	head, after, ok := strings.Cut(enc, "\n\n")
	if !ok {
		t.Fatal("the proof has no empty line")
	}
	noteMsg := []byte(after)
	ls := strings.Split(head, "\n")
	if ls[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(ls[1], "extra ") || ls[2] != "index 0" {
		t.Fatalf("proof starts %q", ls[:3])
	}
	extra := unb64(t, strings.TrimPrefix(ls[1], "extra "))

	// Sections: "<name> <n>\n" and n bytes.
	rest, ok := bytes.CutPrefix(extra, []byte("vcsledger-proof-extra/1\n"))
	if !ok {
		t.Fatalf("extra data starts %q", extra[:min(len(extra), 40)])
	}
	var names []string
	var bodies [][]byte
	for len(rest) > 0 {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		f := strings.Fields(string(line))
		n := 0
		if len(f) == 2 {
			fmt.Sscan(f[1], &n)
		}
		if len(f) != 2 || n > len(after) {
			t.Fatalf("bad section line %q", line)
		}
		names, bodies, rest = append(names, f[0]), append(bodies, after[:n]), after[n:]
	}
	if strings.Join(names, " ") != "record authority authority" || string(bodies[0]) != string(unb64(t, recs[0].Encoded)) {
		t.Fatalf("sections %q; want the record (records.json[0]) and two changes", names)
	}
	type proven struct {
		height, index string
		hashes        []string
		change        []byte
	}
	var changes []proven
	for _, b := range bodies[1:] {
		var p proven
		for {
			line, after, _ := bytes.Cut(b, []byte("\n"))
			k, v, _ := strings.Cut(string(line), " ")
			switch k {
			case "height":
				p.height = v
			case "index":
				p.index = v
			case "hash":
				p.hashes = append(p.hashes, v)
			}
			if k != "height" && k != "index" && k != "hash" {
				break
			}
			b = after
		}
		p.change = b
		changes = append(changes, p)
	}
	add := unb64(t, av.Changes[0].Encoded)
	if !av.Changes[0].Valid || !bytes.Equal(changes[0].change, add) || changes[0].height != "7" || changes[0].index != "25" {
		t.Errorf("first change: height %s index %s, want erin's addition at 7, index 25", changes[0].height, changes[0].index)
	}
	rm := changes[1].change
	if changes[1].height != "9" || changes[1].index != "26" ||
		!bytes.HasPrefix(rm, []byte("vcsledger-authority/1\nchain vcsledger-vectors\nop remove\nvalidator ")) {
		t.Errorf("second change: height %s index %s %q, want a removal at 9, index 26", changes[1].height, changes[1].index, rm)
	}
	// The removal's votes: four of the five in force at height 9.
	members := map[string]bool{av.Validator.PublicKey: true}
	for _, vk := range cv.VerifierKeys {
		members[vk.PublicKey] = true
	}
	i0 := bytes.Index(rm, []byte("\nsig "))
	votes := 0
	for _, line := range strings.Split(strings.TrimSuffix(string(rm[i0+1:]), "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && members[f[1]] && ed25519.Verify(unhex(t, f[1]), rm[:i0+1], unhex(t, f[2])) {
			votes++
		}
	}
	if votes < 4 {
		t.Errorf("the removal carries %d valid votes of members, want 4 at least", votes)
	}

	// The log of block 11: the records, then the two changes.
	var leaves []rfcHash
	for _, r := range recs {
		leaves = append(leaves, hash32(t, r.LeafHash))
	}
	for _, c := range changes {
		leaves = append(leaves, sha256.Sum256(append([]byte{0}, c.change...)))
	}
	text := strings.Split(string(noteMsg), "\n")
	root := rfcRoot(leaves)
	if text[0] != "vcsledger-vectors" || text[1] != "27" || text[2] != base64.StdEncoding.EncodeToString(root[:]) || !strings.HasPrefix(text[3], "block 11 ") {
		t.Fatalf("note text %q, want the log of 27 leaves at block 11", text[:4])
	}
	check := func(what string, index int, got []string) {
		path := rfcPath(index, leaves)
		if len(got) != len(path) {
			t.Errorf("%s: %d hashes, RFC 6962 gives %d", what, len(got), len(path))
			return
		}
		for i := range path {
			if got[i] != base64.StdEncoding.EncodeToString(path[i][:]) {
				t.Errorf("%s: hash %d differs from RFC 6962's", what, i)
			}
		}
	}
	check("record 0", 0, ls[3:])
	check("the addition", 25, changes[0].hashes)
	check("the removal", 26, changes[1].hashes)

	// The note: three signatures; a quorum (3 of 4) of bob, carol, dave
	// and erin, but only two of the genesis's validators.
	var genesisVerifiers, verifiers []note.Verifier
	removed := strings.TrimPrefix(strings.Split(string(rm), "\n")[3], "validator ")
	for _, vk := range cv.VerifierKeys {
		v, err := note.NewVerifier(vk.VerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		genesisVerifiers = append(genesisVerifiers, v)
		if vk.PublicKey != removed {
			verifiers = append(verifiers, v)
		}
	}
	name := "vcsledger-vectors/erin"
	pub := unhex(t, av.Validator.PublicKey)
	sum := sha256.Sum256(append(append([]byte(name+"\n"), 1), pub...))
	ev, err := note.NewVerifier(name + "+" + hex.EncodeToString(sum[:4]) + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, pub...)))
	if err != nil {
		t.Fatal(err)
	}
	verifiers = append(verifiers, ev)
	if n, err := note.Open(noteMsg, note.VerifierList(verifiers...)); err != nil || len(n.Sigs) != 3 || len(verifiers) != 4 {
		t.Errorf("note.Open with the set of height 11 = %v, %v; want 3 signatures of 4 validators", n, err)
	}
	if n, err := note.Open(noteMsg, note.VerifierList(genesisVerifiers...)); err == nil && len(n.Sigs)*3 > 2*len(genesisVerifiers) {
		t.Errorf("the note is a quorum of the genesis set too: the vector shows nothing")
	}
}

func FuzzParseAuthorityChange(f *testing.F) {
	c := ledgertest.NewChain(f, 4)
	add := c.Change(ledger.AuthorityAdd, ledgertest.Signer(4).Public(), "v4", 5)
	rm := c.Change(ledger.AuthorityRemove, ledgertest.Signer(1).Public(), "", 7)
	f.Add(add.Format())
	f.Add(rm.Format())
	f.Add(rm.Message())
	f.Fuzz(func(t *testing.T, data []byte) {
		ch, err := ledger.ParseAuthorityChange(data)
		if err != nil {
			return
		}
		if !bytes.Equal(ch.Format(), data) {
			t.Fatalf("ParseAuthorityChange(%q).Format() = %q", data, ch.Format())
		}
		if err := ch.Check(); err != nil {
			t.Fatalf("a parsed change fails Check: %v", err)
		}
	})
}
