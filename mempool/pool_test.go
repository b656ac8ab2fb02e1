package mempool

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

func TestConfigValidate(t *testing.T) {
	good := func() Config { return Config{Chain: testChain} }
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"no chain", func(c *Config) { c.Chain = "" }, false},
		{"bad chain", func(c *Config) { c.Chain = "a chain" }, false},
		{"negative entries", func(c *Config) { c.MaxEntries = -1 }, false},
		{"negative bytes", func(c *Config) { c.MaxBytes = -1 }, false},
		{"rate off", func(c *Config) { c.Rate = -1 }, true},
		{"rate below -1", func(c *Config) { c.Rate = -2 }, false},
		{"negative burst", func(c *Config) { c.Burst = -1 }, false},
		{"negative expiry", func(c *Config) { c.Expiry = -time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mod(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
	c := good()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxEntries != DefaultMaxEntries || c.MaxBytes != DefaultMaxBytes || c.Rate != DefaultRate ||
		c.Burst != DefaultBurst || c.Expiry != DefaultExpiry || c.Now == nil || c.Logger == nil {
		t.Errorf("Validate() left defaults unset: %+v", c)
	}
}

func TestAdd(t *testing.T) {
	ctx := context.Background()
	type step struct {
		key       string
		claim     Claim
		submitter string
		advance   time.Duration // clock advance before the step
		wantErr   error         // nil: accepted
		wantAdded bool
	}
	k0, k1, k2 := "github.com/example/repo0@v1.0.0", "github.com/example/repo1@v1.0.1", "github.com/example/repo2@v1.0.2"
	tr := record(ledger.Key{}, "x").Tree
	tests := []struct {
		name  string
		mod   func(*Config)
		setup func(t *testing.T, f *fixture)
		raw   *ledger.Key // a key given as is, not parsed
		steps []step
	}{
		{
			name:  "new",
			steps: []step{{key: k0, wantAdded: true}},
		},
		{
			name: "duplicate is one entry",
			steps: []step{
				{key: k0, submitter: "a", wantAdded: true},
				{key: k0, submitter: "b", claim: Claim{Tree: tr}},
			},
		},
		{
			name: "committed key answers with the record",
			setup: func(t *testing.T, f *fixture) {
				f.chain.commit(record(mustKey(t, k0), "c"))
			},
			steps: []step{{key: k0, wantErr: ErrCommitted}, {key: k1, wantAdded: true}},
		},
		{
			name:  "lookup failure",
			setup: func(t *testing.T, f *fixture) { f.chain.err = errDisk },
			steps: []step{{key: k0, wantErr: errDisk}},
		},
		{
			name:  "claim",
			steps: []step{{key: k0, claim: Claim{Commit: strings.Repeat("ab", 20), Tree: tr}, wantAdded: true}},
		},
		{
			name: "malformed claims",
			steps: []step{
				{key: k0, claim: Claim{Commit: "ABC"}, wantErr: ErrInvalidClaim},
				{key: k0, claim: Claim{Commit: strings.Repeat("AB", 20)}, wantErr: ErrInvalidClaim},
				{key: k0, claim: Claim{Tree: "h1:" + tr[3:]}, wantErr: ErrInvalidClaim},
				{key: k0, claim: Claim{Tree: "t1:abc"}, wantErr: ErrInvalidClaim},
			},
		},
		{
			name: "full by count",
			mod:  func(c *Config) { c.MaxEntries = 2 },
			steps: []step{
				{key: k0, wantAdded: true},
				{key: k1, wantAdded: true},
				{key: k2, wantErr: ErrFull},
				{key: k0}, // a pending key is still answered
			},
		},
		{
			name: "full by bytes",
			mod:  func(c *Config) { c.MaxBytes = 150 }, // one entry is ~100 bytes
			steps: []step{
				{key: k0, wantAdded: true},
				{key: k1, wantErr: ErrFull},
			},
		},
		{
			name: "rate limit",
			mod:  func(c *Config) { c.Rate, c.Burst = 60, 2 }, // one per second, two at once
			steps: []step{
				{key: k0, submitter: "10.0.0.1", wantAdded: true},
				{key: k0, submitter: "10.0.0.1"}, // duplicates cost a token too
				{key: k1, submitter: "10.0.0.1", wantErr: ErrRateLimited},
				{key: k1, submitter: "10.0.0.2", wantAdded: true}, // another submitter
				{key: k2, submitter: "", wantAdded: true},         // never limited
				{key: k2, submitter: "10.0.0.1", advance: 999 * time.Millisecond, wantErr: ErrRateLimited},
				{key: k2, submitter: "10.0.0.1", advance: time.Millisecond},
				{key: k2, submitter: "10.0.0.1", wantErr: ErrRateLimited},
			},
		},
		{
			name: "rate limit off",
			mod:  func(c *Config) { c.Rate, c.Burst = -1, 1 },
			steps: []step{
				{key: k0, submitter: "x", wantAdded: true},
				{key: k1, submitter: "x", wantAdded: true},
				{key: k2, submitter: "x", wantAdded: true},
			},
		},
		{
			name:  "journal failure",
			setup: func(t *testing.T, f *fixture) { f.journal.setFail(errDisk) },
			steps: []step{{key: k0, wantErr: errDisk}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 1, tt.mod)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			want := 0
			for i, s := range tt.steps {
				f.clock.Advance(s.advance)
				k := mustKey(t, s.key)
				e, added, err := f.pool.Add(ctx, k, s.claim, s.submitter)
				if !errors.Is(err, s.wantErr) || (s.wantErr == nil) != (err == nil) {
					t.Fatalf("step %d: Add(%s) error = %v, want %v", i, k, err, s.wantErr)
				}
				if added != s.wantAdded {
					t.Fatalf("step %d: Add(%s) added = %v, want %v", i, k, added, s.wantAdded)
				}
				if added {
					want++
				}
				if err != nil {
					continue
				}
				if e.Key != k {
					t.Fatalf("step %d: Add(%s) = entry of %s", i, k, e.Key)
				}
				if added && (e.Claim != s.claim || e.Submitter != s.submitter || !e.Added.Equal(f.clock.Now())) {
					t.Errorf("step %d: Add(%s) = %+v, want claim %+v, submitter %q, added %v", i, k, e, s.claim, s.submitter, f.clock.Now())
				}
			}
			if n, _ := f.pool.Stats(); n != want {
				t.Errorf("Stats() count = %d, want %d", n, want)
			}
			if n := f.journal.Len(); n != want {
				t.Errorf("journal holds %d items, want %d", n, want)
			}
		})
	}
}

func TestAddCommittedAnswer(t *testing.T) {
	f := newFixture(t, 1, nil)
	r := record(testKey(t, 0), "x")
	want := f.chain.commit(r)
	_, _, err := f.pool.Add(context.Background(), r.Key, Claim{}, "c")
	var ce *CommittedError
	if !errors.As(err, &ce) {
		t.Fatalf("Add(committed) = %v, want *CommittedError", err)
	}
	if ce.Entry != want {
		t.Errorf("CommittedError.Entry = %+v, want %+v", ce.Entry, want)
	}
}

func TestAddRateLimitRetryAfter(t *testing.T) {
	f := newFixture(t, 1, func(c *Config) { c.Rate, c.Burst = 6, 1 }) // one per 10 s
	ctx := context.Background()
	if _, _, err := f.pool.Add(ctx, testKey(t, 0), Claim{}, "s"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(4 * time.Second)
	_, _, err := f.pool.Add(ctx, testKey(t, 1), Claim{}, "s")
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("Add = %v, want *RateLimitError", err)
	}
	if rl.Submitter != "s" || rl.RetryAfter < 6*time.Second || rl.RetryAfter > 6*time.Second+time.Millisecond {
		t.Errorf("RateLimitError = %+v, want submitter s, retry after 6s", rl)
	}
}

func TestAddMalformedKey(t *testing.T) {
	tests := []struct {
		name string
		key  ledger.Key
	}{
		{"zero", ledger.Key{}},
		{"not canonical repo", ledger.Key{Repo: "https://GitHub.com/a/b.git", Tag: "v1"}},
		{"bad tag", ledger.Key{Repo: "github.com/a/b", Tag: "v1..2"}},
		{"white space", ledger.Key{Repo: "github.com/a/b", Tag: "v 1"}},
		{"too long", ledger.Key{Repo: "github.com/a/" + strings.Repeat("b", 600), Tag: "v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 1, nil)
			_, _, err := f.pool.Add(context.Background(), tt.key, Claim{}, "s")
			if !errors.Is(err, ledger.ErrInvalidKey) {
				t.Fatalf("Add(%q) = %v, want ledger.ErrInvalidKey", tt.key, err)
			}
			if n, _ := f.pool.Stats(); n != 0 {
				t.Errorf("Stats() count = %d, want 0", n)
			}
		})
	}
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 3, nil)
	var keys []ledger.Key
	for i := range 5 {
		k := testKey(t, i)
		keys = append(keys, k)
		claim := Claim{}
		if i == 1 {
			claim = Claim{Commit: record(k, "x").Commit}
		}
		if _, _, err := f.pool.Add(ctx, k, claim, fmt.Sprintf("client%d", i)); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Second)
	}
	f.attest(t, 0, record(keys[1], ""))
	f.attest(t, 2, record(keys[1], ""))
	f.attest(t, 1, record(keys[3], ""))
	// A key known only by an attestation.
	late := testKey(t, 9)
	f.attest(t, 1, record(late, ""))
	f.pool.SetError(keys[4], "unreachable")

	before := f.pool.List(0)
	count, size := f.pool.Stats()
	readyBefore := f.pool.Ready(1, 0)

	f.reopen(t)
	after := f.pool.List(0)
	for i := range before {
		// Fetch errors are not journaled.
		before[i].Error, before[i].ErrorAt, before[i].Attempts = "", time.Time{}, 0
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("after restart List() =\n%+v\nwant\n%+v", after, before)
	}
	if c, s := f.pool.Stats(); c != count || s != size {
		t.Errorf("after restart Stats() = %d, %d; want %d, %d", c, s, count, size)
	}
	if got := f.pool.Ready(1, 0); !reflect.DeepEqual(got, readyBefore) {
		t.Errorf("after restart Ready(1) = %v, want %v", readyKeys(got), readyKeys(readyBefore))
	}

	// A new key goes after the reloaded ones.
	k5 := testKey(t, 5)
	f.add(t, k5)
	if got, want := keysOf(f.pool.List(0)), append(keysOf(before), k5.String()); !slices.Equal(got, want) {
		t.Errorf("List() = %v, want %v", got, want)
	}

	// Keys committed while the node was down leave the pool and the journal.
	f.chain.commit(record(keys[0], ""))
	f.chain.commit(record(late, ""))
	f.reopen(t)
	if _, ok := f.pool.Get(keys[0]); ok {
		t.Errorf("committed key %s still pending after restart", keys[0])
	}
	if n := f.journal.Len(); n != 5 {
		t.Errorf("journal holds %d items, want 5", n)
	}
}

func TestRestartDropsBadItems(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 2, nil)
	k0, k1 := testKey(t, 0), testKey(t, 1)
	f.add(t, k0)
	f.attest(t, 1, record(k0, ""))
	f.journal.MemJournal.PutPending(ctx, "garbage", []byte("{"))
	// A good item filed under another key's id.
	f.journal.MemJournal.PutPending(ctx, k1.String(), encodeEntry(&Entry{Key: k0}, 7))
	// The validator set changed: validator 1 is out, and its attestation is
	// not loaded.
	f.cfg.Validators = func(k ledger.PublicKey) bool { return k == f.vals[0].Public() }
	f.reopen(t)
	if got := keysOf(f.pool.List(0)); !slices.Equal(got, []string{k0.String()}) {
		t.Fatalf("List() = %v, want [%s]", got, k0)
	}
	if e, _ := f.pool.Get(k0); len(e.Attestations) != 0 {
		t.Errorf("attestation of a former validator loaded: %v", e.Attestations)
	}
	if n := f.journal.Len(); n != 1 {
		t.Errorf("journal holds %d items, want 1", n)
	}
}

func TestAddAttestation(t *testing.T) {
	ctx := context.Background()
	k := mustKey(t, "github.com/example/repo@v1.0.0")
	good := record(k, "")
	tests := []struct {
		name    string
		att     func(f *fixture) ledger.Attestation
		wantErr []error // all must match; nil: accepted
		wantN   int     // attestations on the entry afterwards
	}{
		{
			name:  "accepted",
			att:   func(f *fixture) ledger.Attestation { return ledger.Attest(f.vals[1], testChain, good) },
			wantN: 2,
		},
		{
			name:  "duplicate",
			att:   func(f *fixture) ledger.Attestation { return ledger.Attest(f.vals[0], testChain, good) },
			wantN: 1,
		},
		{
			name: "bad signature",
			att: func(f *fixture) ledger.Attestation {
				a := ledger.Attest(f.vals[1], testChain, good)
				a.Sig[0] ^= 1
				return a
			},
			wantErr: []error{ErrInvalidAttestation, ledger.ErrBadSignature},
			wantN:   1,
		},
		{
			name: "signed by another key",
			att: func(f *fixture) ledger.Attestation {
				a := ledger.Attest(f.vals[2], testChain, good)
				a.Validator = f.vals[1].Public()
				return a
			},
			wantErr: []error{ErrInvalidAttestation, ledger.ErrBadSignature},
			wantN:   1,
		},
		{
			name: "copy of own with a bad signature",
			att: func(f *fixture) ledger.Attestation {
				a := ledger.Attest(f.vals[0], testChain, good)
				a.Sig[5] ^= 1
				return a
			},
			wantErr: []error{ErrInvalidAttestation},
			wantN:   1,
		},
		{
			name:    "other chain",
			att:     func(f *fixture) ledger.Attestation { return ledger.Attest(f.vals[1], "other-chain", good) },
			wantErr: []error{ErrInvalidAttestation},
			wantN:   1,
		},
		{
			name: "malformed record",
			att: func(f *fixture) ledger.Attestation {
				r := good
				r.Commit = "XYZ"
				return ledger.Attest(f.vals[1], testChain, r)
			},
			wantErr: []error{ErrInvalidAttestation, ledger.ErrMalformed},
			wantN:   1,
		},
		{
			name:    "not a validator",
			att:     func(f *fixture) ledger.Attestation { return ledger.Attest(f.vals[3], testChain, good) },
			wantErr: []error{ErrNotValidator},
			wantN:   1,
		},
		{
			name:    "conflicting",
			att:     func(f *fixture) ledger.Attestation { return ledger.Attest(f.vals[0], testChain, record(k, "moved")) },
			wantErr: []error{ErrConflict},
			wantN:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 3, nil)
			f.add(t, k)
			f.attest(t, 0, good)
			before, _ := f.pool.Get(k)
			puts := f.journal.puts
			err := f.pool.AddAttestation(ctx, tt.att(f))
			for _, w := range tt.wantErr {
				if !errors.Is(err, w) {
					t.Errorf("AddAttestation = %v, want %v", err, w)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Errorf("AddAttestation = %v, want nil", err)
			}
			after, _ := f.pool.Get(k)
			if len(after.Attestations) != tt.wantN {
				t.Errorf("entry has %d attestations, want %d", len(after.Attestations), tt.wantN)
			}
			if tt.wantN == len(before.Attestations) {
				if !reflect.DeepEqual(after, before) {
					t.Errorf("entry changed:\n%+v\nwas\n%+v", after, before)
				}
				if f.journal.puts != puts {
					t.Errorf("journal written %d times, want none", f.journal.puts-puts)
				}
			}
		})
	}
}

func TestConflictEvidence(t *testing.T) {
	f := newFixture(t, 2, nil)
	k := testKey(t, 0)
	first := f.attest(t, 1, record(k, ""))
	second := ledger.Attest(f.vals[1], testChain, record(k, "moved"))
	err := f.pool.AddAttestation(context.Background(), second)
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("AddAttestation(conflicting) = %v, want *ConflictError", err)
	}
	if ce.A != first || ce.B != second {
		t.Errorf("ConflictError = %+v, want A the first and B the second attestation", ce)
	}
	for _, a := range []ledger.Attestation{ce.A, ce.B} {
		if err := a.Verify(); err != nil {
			t.Errorf("evidence does not verify: %v", err)
		}
	}
}

func TestAttestationCreatesEntry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 2, nil)
	k := testKey(t, 0)
	f.attest(t, 1, record(k, ""))
	e, ok := f.pool.Get(k)
	if !ok || e.Submitter != "" || len(e.Attestations) != 1 {
		t.Fatalf("Get(%s) = %+v, %v; want an entry with one attestation", k, e, ok)
	}
	// A client's add of the key finds it pending.
	if _, added, err := f.pool.Add(ctx, k, Claim{}, "c"); err != nil || added {
		t.Errorf("Add = added %v, %v; want the existing entry", added, err)
	}
	// Late attestations of committed keys do not resurrect them.
	k1 := testKey(t, 1)
	f.chain.commit(record(k1, ""))
	if err := f.pool.AddAttestation(ctx, ledger.Attest(f.vals[1], testChain, record(k1, ""))); !errors.Is(err, ErrCommitted) {
		t.Errorf("AddAttestation(committed key) = %v, want ErrCommitted", err)
	}
	// They count against the pool's limits.
	f = newFixture(t, 2, func(c *Config) { c.MaxEntries = 1 })
	f.add(t, k)
	if err := f.pool.AddAttestation(ctx, ledger.Attest(f.vals[1], testChain, record(k1, ""))); !errors.Is(err, ErrFull) {
		t.Errorf("AddAttestation(new key, full pool) = %v, want ErrFull", err)
	}
}

func TestMaxAttestationsOpenMembership(t *testing.T) {
	f := newFixture(t, 4, func(c *Config) { c.Validators, c.MaxAttestations = nil, 3 })
	k := testKey(t, 0)
	for i := range 3 {
		f.attest(t, i, record(k, ""))
	}
	err := f.pool.AddAttestation(context.Background(), ledger.Attest(f.vals[3], testChain, record(k, "")))
	if !errors.Is(err, ErrFull) {
		t.Errorf("AddAttestation(4th) = %v, want ErrFull", err)
	}
}

func TestReady(t *testing.T) {
	// Five validators; Self is validator 0. Each case lists who attested
	// which variant of one key.
	type att struct {
		v       int
		variant string
	}
	tests := []struct {
		name string
		atts []att
		need int
		want string // variant it is ready with; "-" not ready
		n    int    // agreeing attestations returned
	}{
		{"need 0, none", nil, 0, "-", 0},
		{"need 0, others only", []att{{1, "a"}, {2, "a"}}, 0, "-", 0},
		{"need 0, self", []att{{0, "a"}}, 0, "a", 1},
		{"need 0, self outvoted", []att{{0, "a"}, {1, "b"}, {2, "b"}}, 0, "a", 1},
		{"need 1, none", nil, 1, "-", 0},
		{"need 1, one", []att{{3, "a"}}, 1, "a", 1},
		{"need 2, one", []att{{3, "a"}}, 2, "-", 0},
		{"need 2, two", []att{{3, "a"}, {1, "a"}}, 2, "a", 2},
		{"need 2, two disagree", []att{{3, "a"}, {1, "b"}}, 2, "-", 0},
		{"need 2, two of three agree", []att{{3, "a"}, {1, "b"}, {2, "b"}}, 2, "b", 2},
		{"need 3, two of three agree", []att{{3, "a"}, {1, "b"}, {2, "b"}}, 3, "-", 0},
		{"need 3, three", []att{{0, "a"}, {1, "a"}, {4, "a"}}, 3, "a", 3},
		{"need 3, three of four", []att{{0, "a"}, {1, "a"}, {4, "a"}, {2, "b"}}, 3, "a", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 5, nil)
			k := testKey(t, 0)
			f.add(t, k)
			for _, a := range tt.atts {
				f.attest(t, a.v, record(k, a.variant))
			}
			got := f.pool.Ready(tt.need, 10)
			if tt.want == "-" {
				if len(got) != 0 {
					t.Fatalf("Ready(%d) = %v, want none", tt.need, readyKeys(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("Ready(%d) = %d records, want 1", tt.need, len(got))
			}
			if want := record(k, tt.want); got[0].Record != want {
				t.Errorf("Ready(%d) record = %+v, want variant %q", tt.need, got[0].Record, tt.want)
			}
			if len(got[0].Attestations) != tt.n {
				t.Errorf("Ready(%d) has %d attestations, want %d", tt.need, len(got[0].Attestations), tt.n)
			}
			for i, a := range got[0].Attestations {
				if a.Record != got[0].Record {
					t.Errorf("attestation %d is of another record", i)
				}
				if i > 0 && got[0].Attestations[i-1].Validator.Compare(a.Validator) >= 0 {
					t.Errorf("attestations not sorted by validator")
				}
			}
		})
	}
}

func TestReadyTie(t *testing.T) {
	// Two validators disagree and need is 1: every node picks the record
	// whose canonical bytes sort first, whatever the arrival order.
	var picks []ledger.Record
	for _, order := range [][]int{{1, 2}, {2, 1}} {
		f := newFixture(t, 3, nil)
		k := testKey(t, 0)
		variants := map[int]string{1: "a", 2: "b"}
		for _, v := range order {
			f.attest(t, v, record(k, variants[v]))
		}
		got := f.pool.Ready(1, 0)
		if len(got) != 1 {
			t.Fatalf("Ready(1) = %d records, want 1", len(got))
		}
		picks = append(picks, got[0].Record)
	}
	if picks[0] != picks[1] {
		t.Errorf("tie broken by arrival order: %v then %v", picks[0], picks[1])
	}
	a, b := record(testKey(t, 0), "a"), record(testKey(t, 0), "b")
	want := a
	if string(b.Format()) < string(a.Format()) {
		want = b
	}
	if picks[0] != want {
		t.Errorf("tie picked %v, want %v", picks[0], want)
	}
}

func TestReadyOrderAndLimit(t *testing.T) {
	f := newFixture(t, 2, nil)
	var keys []ledger.Key
	for i := range 6 {
		keys = append(keys, testKey(t, i))
		f.add(t, keys[i])
	}
	// Attested out of order; odd keys only.
	for _, i := range []int{5, 1, 3} {
		f.attest(t, 1, record(keys[i], ""))
	}
	want := []string{keys[1].String(), keys[3].String(), keys[5].String()}
	if got := readyKeys(f.pool.Ready(1, 0)); !slices.Equal(got, want) {
		t.Errorf("Ready(1, 0) = %v, want %v", got, want)
	}
	if got := readyKeys(f.pool.Ready(1, 2)); !slices.Equal(got, want[:2]) {
		t.Errorf("Ready(1, 2) = %v, want %v", got, want[:2])
	}
	if err := f.pool.Remove(context.Background(), keys[1]); err != nil {
		t.Fatal(err)
	}
	if got := readyKeys(f.pool.Ready(1, 0)); !slices.Equal(got, want[1:]) {
		t.Errorf("after Remove, Ready(1, 0) = %v, want %v", got, want[1:])
	}
}

func TestClaimMismatch(t *testing.T) {
	k := testKey(t, 0)
	r := record(k, "")
	other := record(k, "moved")
	tests := []struct {
		name  string
		claim Claim
		atts  []ledger.Record
		want  bool
	}{
		{"no claim", Claim{}, []ledger.Record{r}, false},
		{"no attestation", Claim{Commit: other.Commit}, nil, false},
		{"agrees", Claim{Commit: r.Commit, Tree: r.Tree}, []ledger.Record{r}, false},
		{"commit only agrees", Claim{Commit: r.Commit}, []ledger.Record{r}, false},
		{"tree differs", Claim{Tree: other.Tree}, []ledger.Record{r}, true},
		{"commit differs", Claim{Commit: other.Commit, Tree: r.Tree}, []ledger.Record{r}, true},
		{"one of two differs", Claim{Tree: r.Tree}, []ledger.Record{r, other}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 3, nil)
			if _, _, err := f.pool.Add(context.Background(), k, tt.claim, "c"); err != nil {
				t.Fatal(err)
			}
			for i, r := range tt.atts {
				f.attest(t, i, r)
			}
			e, _ := f.pool.Get(k)
			if got := e.ClaimMismatch(); got != tt.want {
				t.Errorf("ClaimMismatch() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 2, func(c *Config) { c.Expiry = time.Hour })
	old, oldReady, young := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	f.add(t, old)
	f.add(t, oldReady)
	f.attest(t, 1, record(oldReady, ""))
	f.pool.SetError(old, "connection refused")
	f.clock.Advance(30 * time.Minute)
	f.add(t, young)

	if got, err := f.pool.Expire(ctx, 1); err != nil || len(got) != 0 {
		t.Fatalf("Expire at 30 min = %v, %v; want none", keysOf(got), err)
	}
	f.clock.Advance(30 * time.Minute)
	got, err := f.pool.Expire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{old.String()}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("Expire at 1 h = %v, want %v", keysOf(got), want)
	}
	if got[0].Error != "connection refused" || got[0].Attempts != 1 {
		t.Errorf("expired entry = %+v, want its error and attempts", got[0])
	}
	// At need 2 the attested one is not ready either.
	got, _ = f.pool.Expire(ctx, 2)
	if want := []string{oldReady.String()}; !slices.Equal(keysOf(got), want) {
		t.Errorf("Expire(need 2) = %v, want %v", keysOf(got), want)
	}
	if got := keysOf(f.pool.List(0)); !slices.Equal(got, []string{young.String()}) {
		t.Errorf("List() = %v, want [%s]", got, young)
	}
	if n := f.journal.Len(); n != 1 {
		t.Errorf("journal holds %d items, want 1", n)
	}
	// Expired keys may be added again.
	if _, added, err := f.pool.Add(ctx, old, Claim{}, "c"); err != nil || !added {
		t.Errorf("Add(expired key) = %v, %v; want added", added, err)
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 1, nil)
	var keys []ledger.Key
	for i := range 200 {
		keys = append(keys, testKey(t, i))
		f.add(t, keys[i])
	}
	// Remove most, with one unknown key, forcing a compaction.
	if err := f.pool.Remove(ctx, append(keys[:150:150], testKey(t, 999))...); err != nil {
		t.Fatal(err)
	}
	if got := keysOf(f.pool.List(0)); !slices.Equal(got, keysOf(entriesOf(keys[150:]))) {
		t.Errorf("List() after Remove = %d entries, want the last 50", len(got))
	}
	if n, size := f.pool.Stats(); n != 50 || size <= 0 {
		t.Errorf("Stats() = %d, %d; want 50 and their size", n, size)
	}
	if n := f.journal.Len(); n != 50 {
		t.Errorf("journal holds %d items, want 50", n)
	}
	// A journal failure is reported, and the entries leave the pool anyway.
	f.journal.setFail(errDisk)
	if err := f.pool.Remove(ctx, keys[150]); !errors.Is(err, errDisk) {
		t.Errorf("Remove with a failing journal = %v, want %v", err, errDisk)
	}
	if _, ok := f.pool.Get(keys[150]); ok {
		t.Errorf("removed key still pending")
	}
	if got := f.pool.List(10); len(got) != 10 {
		t.Errorf("List(10) = %d entries", len(got))
	}
}

func entriesOf(keys []ledger.Key) []Entry {
	var out []Entry
	for _, k := range keys {
		out = append(out, Entry{Key: k})
	}
	return out
}

func TestStatsBytes(t *testing.T) {
	f := newFixture(t, 2, nil)
	k := testKey(t, 0)
	f.add(t, k)
	_, b1 := f.pool.Stats()
	f.attest(t, 1, record(k, ""))
	_, b2 := f.pool.Stats()
	if b2 <= b1 {
		t.Errorf("bytes after an attestation = %d, want more than %d", b2, b1)
	}
	if err := f.pool.Remove(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	if n, b := f.pool.Stats(); n != 0 || b != 0 {
		t.Errorf("Stats() of an empty pool = %d, %d", n, b)
	}
}

func TestChanged(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 2, nil)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	k := testKey(t, 0)
	ch := f.pool.Changed()
	if closed(ch) {
		t.Fatal("Changed() closed before any change")
	}
	f.add(t, k)
	if !closed(ch) {
		t.Error("Changed() not closed by Add")
	}
	ch = f.pool.Changed()
	f.pool.Add(ctx, k, Claim{}, "") // duplicate: no change
	f.pool.SetError(k, "x")
	if closed(ch) {
		t.Error("Changed() closed by a duplicate Add or SetError")
	}
	f.attest(t, 1, record(k, ""))
	if !closed(ch) {
		t.Error("Changed() not closed by AddAttestation")
	}
}

func TestSetError(t *testing.T) {
	f := newFixture(t, 1, nil)
	k := testKey(t, 0)
	f.add(t, k)
	f.pool.SetError(k, "first")
	f.clock.Advance(time.Minute)
	f.pool.SetError(k, "second")
	f.pool.SetError(testKey(t, 1), "not pending") // ignored
	e, _ := f.pool.Get(k)
	if e.Error != "second" || e.Attempts != 2 || !e.ErrorAt.Equal(f.clock.Now()) {
		t.Errorf("entry = %+v, want error second, 2 attempts, at %v", e, f.clock.Now())
	}
	// This node's attestation clears the error (but not the count).
	f.attest(t, 0, record(k, ""))
	e, _ = f.pool.Get(k)
	if e.Error != "" || e.Attempts != 2 {
		t.Errorf("after attesting, entry = %+v, want no error, 2 attempts", e)
	}
}

// TestReinsert puts back the records of an abandoned block: the journal
// items go to the caller's write, and the pool changes only when it
// succeeds; what write stores is what a restart loads.
func TestReinsert(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 3, func(c *Config) { c.MaxEntries = 1 })
	k0, k1, k2 := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	f.add(t, k2)
	f.attest(t, 1, record(k2, ""))
	b := &ledger.Block{Records: []ledger.Record{record(k0, ""), record(k1, ""), record(k2, "")}}
	for _, r := range b.Records {
		b.Attestations = append(b.Attestations, ledger.Attest(f.vals[1], testChain, r), ledger.Attest(f.vals[2], testChain, r))
	}
	onNew := func(k ledger.Key) bool { return k == k1 } // on the new chain
	before := f.journal.Len()

	// A failed write changes nothing.
	boom := errors.New("boom")
	if err := f.pool.Reinsert(ctx, []*ledger.Block{b}, onNew, func([]JournalItem) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Reinsert(failing write) = %v, want boom", err)
	}
	if got := keysOf(f.pool.List(0)); !slices.Equal(got, []string{k2.String()}) {
		t.Fatalf("after a failed write List() = %v, want [%s]", got, k2)
	}
	if e, _ := f.pool.Get(k2); len(e.Attestations) != 1 {
		t.Fatalf("after a failed write %s has %d attestations, want 1", k2, len(e.Attestations))
	}

	var items []JournalItem
	write := func(its []JournalItem) error {
		items = its
		for _, it := range its {
			if err := f.journal.MemJournal.PutPending(ctx, it.ID, it.Data); err != nil {
				return err
			}
		}
		return nil
	}
	if err := f.pool.Reinsert(ctx, []*ledger.Block{b}, onNew, write); err != nil {
		t.Fatalf("Reinsert = %v", err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	// k2 gains vals[2]'s attestation; k0 is new; k1 is on the new chain.
	if want := []string{k0.String(), k2.String()}; !slices.Equal(slices.Sorted(slices.Values(ids)), slices.Sorted(slices.Values(want))) {
		t.Errorf("journal items %v, want %v", ids, want)
	}
	if f.journal.Len() != before+1 {
		t.Errorf("journal holds %d items, want %d", f.journal.Len(), before+1)
	}
	if got, want := keysOf(f.pool.List(0)), []string{k2.String(), k0.String()}; !slices.Equal(got, want) {
		t.Errorf("List() = %v, want %v (limits ignored, committed skipped)", got, want)
	}
	if got := readyKeys(f.pool.Ready(2, 0)); !slices.Equal(got, []string{k2.String(), k0.String()}) {
		t.Errorf("Ready(2) = %v, want [%s %s]", got, k2, k0)
	}
	// Again: nothing changes, nothing to write.
	if err := f.pool.Reinsert(ctx, []*ledger.Block{b}, onNew, write); err != nil || len(items) != 0 {
		t.Errorf("Reinsert again = %v with %d items, want none", err, len(items))
	}
	f.reopen(t)
	if got, want := keysOf(f.pool.List(0)), []string{k2.String(), k0.String()}; !slices.Equal(got, want) {
		t.Errorf("after reopening List() = %v, want %v", got, want)
	}
	if got := readyKeys(f.pool.Ready(2, 0)); !slices.Equal(got, []string{k2.String(), k0.String()}) {
		t.Errorf("after reopening Ready(2) = %v", got)
	}
}

// TestConcurrent runs adds, attestations, reads and removals at once; run
// with -race.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 3, func(c *Config) { c.Rate = -1 })
	const n = 300
	keys := make([]ledger.Key, n)
	for i := range keys {
		keys[i] = testKey(t, i)
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := w; i < n; i += 3 {
				// Attestations may create the entry first, and the
				// committer commit it before this add.
				if _, _, err := f.pool.Add(ctx, keys[i], Claim{}, fmt.Sprint("s", w)); err != nil && !errors.Is(err, ErrCommitted) {
					t.Errorf("Add: %v", err)
				}
			}
		})
	}
	for v := range 3 {
		wg.Go(func() {
			for i := range n {
				a := ledger.Attest(f.vals[v], testChain, record(keys[i], ""))
				if err := f.pool.AddAttestation(ctx, a); err != nil && !errors.Is(err, ErrCommitted) {
					t.Errorf("AddAttestation: %v", err)
				}
			}
		})
	}
	wg.Go(func() {
		committed := 0
		for committed < n/2 {
			rs := f.pool.Ready(2, 20)
			var ks []ledger.Key
			for _, r := range rs {
				if committed < n/2 {
					f.chain.commit(r.Record)
					ks = append(ks, r.Record.Key)
					committed++
				}
			}
			if err := f.pool.Remove(ctx, ks...); err != nil {
				t.Errorf("Remove: %v", err)
			}
			f.pool.List(10)
			f.pool.Stats()
			f.pool.SetError(keys[committed%n], "x")
		}
	})
	wg.Wait()
	count, _ := f.pool.Stats()
	if count != n-n/2 {
		t.Errorf("Stats() count = %d, want %d", count, n-n/2)
	}
	for _, e := range f.pool.List(0) {
		if len(e.Attestations) != 3 {
			t.Errorf("%s has %d attestations, want 3", e.Key, len(e.Attestations))
		}
	}
	if f.journal.Len() != count {
		t.Errorf("journal holds %d items, pool %d", f.journal.Len(), count)
	}
}
