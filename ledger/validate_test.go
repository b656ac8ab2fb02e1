package ledger_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// testChain returns a chain of 4 validators with 3 blocks of records.
func testChain(t *testing.T) *ledgertest.Chain {
	c := ledgertest.NewChain(t, 4)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 3; i++ {
		c.Next(ledgertest.Records(rng, i*4, 4))
	}
	return c
}

func TestCheckLink(t *testing.T) {
	c := testChain(t)
	parent := c.Blocks()[2].Header
	next := c.Blocks()[3]
	if err := ledger.CheckLink(&parent, next); err != nil {
		t.Fatalf("CheckLink(valid) = %v", err)
	}
	for _, tc := range []struct {
		field  string
		change func(b *ledger.Block)
	}{
		{"chain", func(b *ledger.Block) { b.Header.Chain = "other" }},
		{"engine", func(b *ledger.Block) { b.Header.Engine = ledger.EnginePoW }},
		{"height", func(b *ledger.Block) { b.Header.Height++ }},
		{"height", func(b *ledger.Block) { b.Header.Height = parent.Height }},
		{"prev", func(b *ledger.Block) { b.Header.Prev[3] ^= 1 }},
		{"time", func(b *ledger.Block) { b.Header.Time = parent.Time - 1 }},
		{"records", func(b *ledger.Block) { b.Records = b.Records[1:] }},
		{"records", func(b *ledger.Block) { b.Header.Records++ }},
		{"log", func(b *ledger.Block) { b.Header.LogSize++ }},
	} {
		b := *next
		tc.change(&b)
		err := ledger.CheckLink(&parent, &b)
		var ve *ledger.ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field || ve.Height != b.Header.Height || !errors.Is(err, ledger.ErrInvalidBlock) {
			t.Errorf("CheckLink(%s changed) = %v; want a *ValidationError for field %q at height %d", tc.field, err, tc.field, b.Header.Height)
		}
	}
	// The same time as the parent is allowed.
	b := *next
	b.Header.Time = parent.Time
	if err := ledger.CheckLink(&parent, &b); err != nil {
		t.Errorf("CheckLink(time equal to parent's) = %v; want nil", err)
	}
}

// sealFunc is a SealChecker.
type sealFunc func(ctx context.Context, parent *ledger.Header, b *ledger.Block) error

func (f sealFunc) CheckSeal(ctx context.Context, parent *ledger.Header, b *ledger.Block) error {
	return f(ctx, parent, b)
}

func TestValidateNext(t *testing.T) {
	ctx := context.Background()
	c := testChain(t)
	s := c.Store
	parent := c.Head().Header
	rng := rand.New(rand.NewPCG(2, 2))
	fresh := ledgertest.Records(rng, 100, 3)
	b, stored := c.Unsealed(fresh)
	b.Certificate = c.Certify(b, nil)

	var sealed int
	seal := sealFunc(func(ctx context.Context, p *ledger.Header, blk *ledger.Block) error {
		sealed++
		if *p != parent || blk != b {
			t.Errorf("CheckSeal called with parent %d, block %d", p.Height, blk.Header.Height)
		}
		return blk.Certificate.Verify(c.Vals, blk.Header.Chain, blk.Header.Height, blk.Hash())
	})
	got, err := ledger.ValidateNext(ctx, s, &parent, b, seal)
	if err != nil || sealed != 1 {
		t.Fatalf("ValidateNext(valid) = %v (seal checked %d times)", err, sealed)
	}
	if len(got) != len(stored) {
		t.Fatalf("ValidateNext gave %d stored hashes, want %d", len(got), len(stored))
	}
	for i := range got {
		if got[i] != stored[i] {
			t.Fatalf("ValidateNext stored hash %d = %v, want %v", i, got[i], stored[i])
		}
	}

	committed := c.Blocks()[2].Records[1]
	badRecord := fresh[1]
	badRecord.Commit = strings.ToUpper(badRecord.Commit)
	for _, tc := range []struct {
		name    string
		field   string
		records []ledger.Record
		change  func(b *ledger.Block)
		seal    ledger.SealChecker
		is      error
	}{
		{name: "chain", field: "chain", change: func(b *ledger.Block) { b.Header.Chain = "x" }},
		{name: "prev", field: "prev", change: func(b *ledger.Block) { b.Header.Prev = ledger.ZeroHash }},
		{name: "record count", field: "records", change: func(b *ledger.Block) { b.Records = b.Records[:2] }},
		{name: "malformed record", field: "record", records: []ledger.Record{fresh[0], badRecord, fresh[2]}},
		{name: "non-canonical key", field: "record", records: []ledger.Record{fresh[0], func() ledger.Record {
			r := fresh[1]
			r.Key.Repo = "https://" + r.Key.Repo
			return r
		}(), fresh[2]}},
		{name: "committed key", field: "key", records: []ledger.Record{fresh[0], fresh[1], committed}, is: ledger.ErrConflict},
		{name: "committed key, other record", field: "key", records: []ledger.Record{func() ledger.Record {
			r := committed
			r.Tree = t1("other")
			return r
		}()}, is: ledger.ErrConflict},
		{name: "key twice in block", field: "key", records: []ledger.Record{fresh[0], fresh[1], fresh[0]}},
		{name: "log root", field: "log", change: func(b *ledger.Block) { b.Header.LogRoot[0] ^= 1 }},
		{name: "records reordered", field: "log", change: func(b *ledger.Block) { b.Records[0], b.Records[1] = b.Records[1], b.Records[0] }},
		{name: "record replaced", field: "log", change: func(b *ledger.Block) { b.Records[2] = ledgertest.RandomRecord(rng, 999) }},
		{name: "seal", field: "seal", seal: sealFunc(func(context.Context, *ledger.Header, *ledger.Block) error { return ledger.ErrBadCertificate }), is: ledger.ErrBadCertificate},
	} {
		var blk *ledger.Block
		if tc.records != nil {
			// A block that is right in every way but its records.
			blk, _ = c.Unsealed(tc.records[:1])
			blk.Records = tc.records
			blk.Header.Records = uint64(len(tc.records))
			blk.Header.LogSize = parent.LogSize + uint64(len(tc.records))
		} else {
			cp := *b
			cp.Records = append([]ledger.Record(nil), b.Records...)
			blk = &cp
		}
		if tc.change != nil {
			tc.change(blk)
		}
		_, err := ledger.ValidateNext(ctx, s, &parent, blk, tc.seal)
		var ve *ledger.ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field || ve.Height != parent.Height+1 || !errors.Is(err, ledger.ErrInvalidBlock) {
			t.Errorf("ValidateNext(%s) = %v; want a *ValidationError for field %q at height %d", tc.name, err, tc.field, parent.Height+1)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("ValidateNext(%s) = %v; want it to wrap %v", tc.name, err, tc.is)
		}
		// The same block from its encoding: a malformed record or a wrong
		// count fails the parse, anything else ValidateParsed as
		// ValidateNext.
		p, err := ledger.ParseBlockLeaves(blk.Format())
		if parseFails := tc.field == "record" || tc.field == "records"; parseFails != (err != nil) {
			t.Fatalf("ParseBlockLeaves(%s) = %v", tc.name, err)
		} else if parseFails {
			continue
		}
		_, err = ledger.ValidateParsed(ctx, s, &parent, p, tc.seal)
		if !errors.As(err, &ve) || ve.Field != tc.field || ve.Height != parent.Height+1 || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("ValidateParsed(%s) = %v; want a *ValidationError for field %q at height %d", tc.name, err, tc.field, parent.Height+1)
		}
	}
	// A valid block from its encoding: the same stored hashes, the same
	// leaves as the records give.
	p, err := ledger.ParseBlockLeaves(b.Format())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ledger.ValidateParsed(ctx, s, &parent, p, nil); err != nil || !slices.Equal(got, stored) {
		t.Errorf("ValidateParsed(valid) = %d hashes, %v; want ValidateNext's %d", len(got), err, len(stored))
	}
	// Records changed after the parse are checked and hashed again.
	p.Block.Records = p.Block.Records[:2]
	p.Block.Header.Records, p.Block.Header.LogSize = 2, parent.LogSize+2
	if _, err := ledger.ValidateParsed(ctx, s, &parent, p, nil); !errors.As(err, new(*ledger.ValidationError)) {
		t.Errorf("ValidateParsed(records cut after the parse) = %v; want a *ValidationError", err)
	}
	// A store that fails is not an invalid block.
	boom := errors.New("disk on fire")
	broken := failingLookup{c.Store, boom}
	if _, err := ledger.ValidateNext(ctx, broken, &parent, b, nil); !errors.Is(err, boom) || errors.Is(err, ledger.ErrInvalidBlock) {
		t.Errorf("ValidateNext(store failing) = %v; want boom, not ErrInvalidBlock", err)
	}
	// Nothing was appended by validation.
	if head, _ := s.Head(ctx); head.Height != parent.Height {
		t.Errorf("ValidateNext appended: head %d", head.Height)
	}
}

type failingLookup struct {
	*ledgertest.MemStore
	err error
}

func (f failingLookup) Lookup(context.Context, ledger.Key) (*ledger.Entry, error) { return nil, f.err }

func (f failingLookup) FirstCommitted(context.Context, []ledger.Key) (int, error) {
	return 0, f.err
}

func TestAppendNextAndInitStore(t *testing.T) {
	ctx := context.Background()
	c := testChain(t)
	s := ledgertest.NewMemStore()
	if err := ledger.AppendNext(ctx, s, c.Blocks()[1], nil); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("AppendNext(empty store) = %v; want ErrNotFound", err)
	}
	if err := ledger.InitStore(ctx, s, c.Genesis); err != nil {
		t.Fatalf("InitStore(empty) = %v", err)
	}
	if err := ledger.InitStore(ctx, s, c.Genesis); err != nil {
		t.Fatalf("InitStore(again) = %v", err)
	}
	bad := *c.Genesis
	bad.Validators = nil
	if err := ledger.InitStore(ctx, ledgertest.NewMemStore(), &bad); err == nil {
		t.Errorf("InitStore(genesis without validators) = nil; want error")
	}
	other := *c.Genesis
	other.Time++
	if err := ledger.InitStore(ctx, s, &other); !errors.Is(err, ledger.ErrCorrupt) {
		t.Errorf("InitStore(other genesis) = %v; want ErrCorrupt", err)
	}
	for _, b := range c.Blocks()[1:] {
		if err := ledger.AppendNext(ctx, s, b, nil); err != nil {
			t.Fatalf("AppendNext(height %d) = %v", b.Header.Height, err)
		}
	}
	if err := ledger.AppendNext(ctx, s, c.Blocks()[2], nil); !errors.Is(err, ledger.ErrInvalidBlock) {
		t.Errorf("AppendNext(old block) = %v; want ErrInvalidBlock", err)
	}
	if head, _ := s.Head(ctx); head.Hash() != c.Head().Hash() {
		t.Errorf("head %d after AppendNext, want %d", head.Height, c.Head().Header.Height)
	}
	// The genesis block is fixed by the genesis.
	g := c.Genesis.Block()
	if g.Header.Height != 0 || !g.Header.Prev.IsZero() || g.Header.LogRoot != ledger.EmptyLogRoot || g.Header.LogSize != 0 ||
		g.Header.Time != c.Genesis.Time || g.Header.Proposer != c.Vals.Proposer("test", ledger.ZeroHash, 0, 0) || g.Certificate != nil {
		t.Errorf("Genesis.Block() = %+v", g)
	}
}

func TestCheckAttestations(t *testing.T) {
	c := ledgertest.NewChain(t, 4)
	rng := rand.New(rand.NewPCG(3, 3))
	b, _ := c.Unsealed(ledgertest.Records(rng, 0, 3))
	need := c.Genesis.AttestationsNeeded()
	if need != 2 || len(b.Attestations) != 6 {
		t.Fatalf("need %d, %d attestations; want 2 and 6", need, len(b.Attestations))
	}
	if err := ledger.CheckAttestations(b, c.Vals, need); err != nil {
		t.Fatalf("CheckAttestations(valid) = %v", err)
	}
	if err := ledger.CheckAttestations(b, nil, need); err != nil {
		t.Errorf("CheckAttestations(any signer) = %v", err)
	}
	stranger := ledgertest.Signer(77)
	for _, tc := range []struct {
		name   string
		change func(b *ledger.Block)
		need   int
		sig    bool
	}{
		{"one short", func(b *ledger.Block) { b.Attestations = b.Attestations[1:] }, 2, false},
		{"need three", func(b *ledger.Block) {}, 3, false},
		{"same validator twice", func(b *ledger.Block) { b.Attestations[1] = b.Attestations[0] }, 2, false},
		{"other chain", func(b *ledger.Block) { b.Attestations[0] = ledger.Attest(c.Signers[0], "other", b.Records[0]) }, 2, false},
		{"another tree", func(b *ledger.Block) {
			r := b.Records[0]
			r.Tree = t1("evil")
			b.Attestations[0] = ledger.Attest(c.Signers[0], "test", r)
		}, 2, false},
		{"key not in block", func(b *ledger.Block) {
			b.Attestations = append(b.Attestations, ledger.Attest(c.Signers[0], "test", ledgertest.RandomRecord(rng, 500)))
		}, 2, false},
		{"not a validator", func(b *ledger.Block) { b.Attestations[0] = ledger.Attest(stranger, "test", b.Records[0]) }, 2, false},
		{"bad signature", func(b *ledger.Block) { b.Attestations[3].Sig[9] ^= 1 }, 2, true},
		{"bad signature on an extra attestation", func(b *ledger.Block) {
			a := ledger.Attest(c.Signers[3], "test", b.Records[2])
			a.Sig[0] ^= 1
			b.Attestations = append(b.Attestations, a)
		}, 2, true},
	} {
		x := *b
		x.Attestations = append([]ledger.Attestation(nil), b.Attestations...)
		tc.change(&x)
		err := ledger.CheckAttestations(&x, c.Vals, tc.need)
		if !errors.Is(err, ledger.ErrBadAttestation) || errors.Is(err, ledger.ErrBadSignature) != tc.sig {
			t.Errorf("CheckAttestations(%s) = %v; want an error (bad signature: %v)", tc.name, err, tc.sig)
		}
	}
	// A stranger's attestation counts on a chain without a validator set.
	x := *b
	x.Attestations = []ledger.Attestation{}
	for _, r := range b.Records {
		x.Attestations = append(x.Attestations, ledger.Attest(stranger, "test", r))
	}
	if err := ledger.CheckAttestations(&x, nil, 1); err != nil {
		t.Errorf("CheckAttestations(pow, stranger) = %v; want nil", err)
	}
	if err := ledger.CheckAttestations(&x, nil, 0); err != nil {
		t.Errorf("CheckAttestations(need 0) = %v; want nil", err)
	}
	x.Attestations = nil
	if err := ledger.CheckAttestations(&x, c.Vals, 0); err != nil {
		t.Errorf("CheckAttestations(none, need 0) = %v; want nil", err)
	}
}

func TestAttestationsNeeded(t *testing.T) {
	for _, tc := range []struct {
		engine   string
		n, quota int
		want     int
	}{
		{ledger.EnginePoA, 1, -1, 1}, {ledger.EnginePoA, 3, -1, 1}, {ledger.EnginePoA, 4, -1, 2},
		{ledger.EnginePoA, 7, -1, 3}, {ledger.EnginePoA, 7, 0, 0}, {ledger.EnginePoA, 7, 5, 5},
		{ledger.EnginePoW, 0, -1, 1}, {ledger.EnginePoW, 0, 0, 0}, {ledger.EnginePoW, 0, 3, 3},
	} {
		g := sampleGenesis(tc.engine)
		g.AttestQuorum = tc.quota
		g.Validators = nil
		for i := 0; i < tc.n; i++ {
			g.Validators = append(g.Validators, ledger.Validator{Key: ledgertest.Signer(i).Public(), Name: "v"})
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("Validate(%s, %d validators) = %v", tc.engine, tc.n, err)
		}
		if got := g.AttestationsNeeded(); got != tc.want {
			t.Errorf("AttestationsNeeded(%s, %d validators, attest_quorum %d) = %d, want %d", tc.engine, tc.n, tc.quota, got, tc.want)
		}
	}
}

func TestGenesisValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		engine string
		change func(g *ledger.Genesis)
	}{
		{"bad chain", ledger.EnginePoA, func(g *ledger.Genesis) { g.Chain = "" }},
		{"negative time", ledger.EnginePoA, func(g *ledger.Genesis) { g.Time = -1 }},
		{"zero interval", ledger.EnginePoA, func(g *ledger.Genesis) { g.BlockInterval = 0 }},
		{"interval over a day", ledger.EnginePoA, func(g *ledger.Genesis) { g.BlockInterval = 24*3600*1000 + 1 }},
		{"attest quorum -2", ledger.EnginePoA, func(g *ledger.Genesis) { g.AttestQuorum = -2 }},
		{"attest quorum above n", ledger.EnginePoA, func(g *ledger.Genesis) { g.AttestQuorum = 5 }},
		{"no validators", ledger.EnginePoA, func(g *ledger.Genesis) { g.Validators = nil }},
		{"bad name", ledger.EnginePoA, func(g *ledger.Genesis) { g.Validators[0].Name = "" }},
		{"negative quorum", ledger.EnginePoA, func(g *ledger.Genesis) { g.Quorum = -3 }},
		{"engine", ledger.EnginePoA, func(g *ledger.Genesis) { g.Engine = "x" }},
		{"pow attest quorum 2^20+1", ledger.EnginePoW, func(g *ledger.Genesis) { g.AttestQuorum = 1<<20 + 1 }},
		{"pow bits 0", ledger.EnginePoW, func(g *ledger.Genesis) { g.Bits = 0 }},
		{"pow bits 256", ledger.EnginePoW, func(g *ledger.Genesis) { g.Bits = 256 }},
		{"pow retarget 0", ledger.EnginePoW, func(g *ledger.Genesis) { g.Retarget = 0 }},
		{"pow confirmations 0", ledger.EnginePoW, func(g *ledger.Genesis) { g.Confirmations = 0 }},
		{"pow validators", ledger.EnginePoW, func(g *ledger.Genesis) {
			g.Validators = []ledger.Validator{{Key: ledgertest.Signer(0).Public(), Name: "v"}}
		}},
	} {
		g := sampleGenesis(tc.engine)
		tc.change(g)
		if err := g.Validate(); err == nil {
			t.Errorf("Genesis.Validate(%s) = nil; want error", tc.name)
		}
		// Format writes no validators for pow, so that one parses.
		if _, err := ledger.ParseGenesis(g.Format()); err == nil && tc.name != "pow validators" {
			t.Errorf("ParseGenesis(%s) = nil error; want error", tc.name)
		}
	}
	if _, err := sampleGenesis(ledger.EnginePoW).ValidatorSet(); err == nil {
		t.Errorf("ValidatorSet() of a pow genesis = nil error")
	}
	g := sampleGenesis(ledger.EnginePoW)
	if b := g.Block(); b.Header.Bits != g.Bits || b.Header.Engine != ledger.EnginePoW {
		t.Errorf("pow Genesis.Block() = %+v", b.Header)
	}
}

func TestOverlayFirstCommitted(t *testing.T) {
	ctx := context.Background()
	c := testChain(t) // records 0-3 at height 1, 4-7 at 2, 8-11 at 3
	keyOf := func(i int64) ledger.Key {
		e, err := c.Store.Record(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		return e.Record.Key
	}
	absent := ledger.Key{Repo: "example.com/nobody/none", Tag: "v1"}

	// A view at height 1 holds records 0-3 only.
	low, err := ledger.NewOverlay(ctx, c.Store, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		keys []ledger.Key
		want int
	}{
		{[]ledger.Key{absent, keyOf(5), keyOf(9)}, -1},
		{[]ledger.Key{keyOf(5), absent, keyOf(2)}, 2},
		{[]ledger.Key{keyOf(8), keyOf(3), keyOf(0)}, 1},
	} {
		if got, err := low.FirstCommitted(ctx, tc.keys); err != nil || got != tc.want {
			t.Errorf("view at 1: FirstCommitted(%v) = %d, %v; want %d", tc.keys, got, err, tc.want)
		}
	}

	// A view at the head, with a block the store does not have.
	top, err := ledger.NewOverlay(ctx, c.Store, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	b, stored := c.Unsealed(ledgertest.Records(rng, 100, 3))
	b.Certificate = c.Certify(b, nil)
	if err := top.Append(ctx, b, stored); err != nil {
		t.Fatal(err)
	}
	fresh := b.Records[1].Key
	if got, err := top.FirstCommitted(ctx, []ledger.Key{absent, keyOf(4), fresh}); err != nil || got != 1 {
		t.Errorf("view at 3+1: FirstCommitted = %d, %v; want 1", got, err)
	}
	if got, err := top.FirstCommitted(ctx, []ledger.Key{absent, fresh, keyOf(4)}); err != nil || got != 1 {
		t.Errorf("view at 3+1: FirstCommitted = %d, %v; want 1", got, err)
	}
	if got, err := c.Store.FirstCommitted(ctx, []ledger.Key{absent, fresh}); err != nil || got != -1 {
		t.Errorf("store: FirstCommitted(a key only the view has) = %d, %v; want -1", got, err)
	}

	// The view refuses a block repeating a key it holds, and changes
	// nothing.
	again := &ledger.Block{Header: b.Header, Records: b.Records[:1]}
	again.Header.Height, again.Header.Prev = b.Header.Height+1, b.Header.Hash()
	again.Header.Records, again.Header.LogSize = 1, b.Header.LogSize+1
	n := ledger.StoredHashCount(int64(again.Header.LogSize)) - ledger.StoredHashCount(int64(b.Header.LogSize))
	if err := top.Append(ctx, again, make([]ledger.Hash, n)); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("Append(a key the view holds) = %v; want ErrConflict", err)
	}
	if head, _ := top.Head(ctx); head.Height != b.Header.Height {
		t.Errorf("view head %d after a refused Append, want %d", head.Height, b.Header.Height)
	}
}
