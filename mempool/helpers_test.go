package mempool

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

const testChain = "test-chain"

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeChain is a Committed over a map.
type fakeChain struct {
	mu   sync.Mutex
	recs map[ledger.Key]ledger.Entry
	err  error // returned by every Lookup when set
}

func newChain() *fakeChain { return &fakeChain{recs: make(map[ledger.Key]ledger.Entry)} }

func (c *fakeChain) Lookup(ctx context.Context, k ledger.Key) (*ledger.Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	e, ok := c.recs[k]
	if !ok {
		return nil, fmt.Errorf("fake: %s: %w", k, ledger.ErrNotFound)
	}
	return &e, nil
}

func (c *fakeChain) commit(r ledger.Record) ledger.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := ledger.Entry{Record: r, Index: int64(len(c.recs)), Height: uint64(len(c.recs) + 1)}
	c.recs[r.Key] = e
	return e
}

// failJournal is a MemJournal whose writes fail while fail is set.
type failJournal struct {
	MemJournal
	mu   sync.Mutex
	fail error
	puts int
}

var errDisk = errors.New("disk on fire")

func (j *failJournal) setFail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.fail = err
}

func (j *failJournal) PutPending(ctx context.Context, id string, data []byte) error {
	j.mu.Lock()
	err := j.fail
	j.puts++
	j.mu.Unlock()
	if err != nil {
		return err
	}
	return j.MemJournal.PutPending(ctx, id, data)
}

func (j *failJournal) DeletePending(ctx context.Context, ids ...string) error {
	j.mu.Lock()
	err := j.fail
	j.mu.Unlock()
	if err != nil {
		return err
	}
	return j.MemJournal.DeletePending(ctx, ids...)
}

// signers returns n deterministic signers, sorted by public key.
func signers(t testing.TB, n int) []*ledger.Signer {
	t.Helper()
	var out []*ledger.Signer
	for i := range n {
		seed := sha256.Sum256([]byte(fmt.Sprintf("validator %d", i)))
		s, err := ledger.NewSigner(ed25519.NewKeyFromSeed(seed[:]))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Public().Compare(out[j-1].Public()) < 0; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func mustKey(t testing.TB, s string) ledger.Key {
	t.Helper()
	k, err := ledger.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testKey returns the i-th test key.
func testKey(t testing.TB, i int) ledger.Key {
	return mustKey(t, fmt.Sprintf("github.com/example/repo%d@v1.0.%d", i, i))
}

// record returns a well-formed record of k; variant selects its hashes, so
// that two variants of one key disagree.
func record(k ledger.Key, variant string) ledger.Record {
	c := sha256.Sum256([]byte("commit " + k.String() + variant))
	h := sha256.Sum256([]byte("tree " + k.String() + variant))
	return ledger.Record{
		Key:    k,
		Commit: hex.EncodeToString(c[:20]),
		Tree:   "t1:" + base64.StdEncoding.EncodeToString(h[:]),
	}
}

// fixture is a pool over a MemJournal and a fakeChain with a fake clock.
type fixture struct {
	pool    *Pool
	cfg     Config
	journal *failJournal
	chain   *fakeChain
	clock   *fakeClock
	vals    []*ledger.Signer
}

// newFixture returns a pool of validators vals[0..n-1], vals[0] being Self;
// mod, if not nil, adjusts the config.
func newFixture(t testing.TB, n int, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{journal: &failJournal{}, chain: newChain(), clock: newClock(), vals: signers(t, n+1)}
	members := make(map[ledger.PublicKey]bool)
	for _, s := range f.vals[:n] {
		members[s.Public()] = true
	}
	f.cfg = Config{
		Chain:      testChain,
		Self:       f.vals[0].Public(),
		Validators: func(k ledger.PublicKey) bool { return members[k] },
		Now:        f.clock.Now,
	}
	if mod != nil {
		mod(&f.cfg)
	}
	f.reopen(t)
	return f
}

// reopen replaces f.pool with a new pool over the same journal and chain,
// as after a restart.
func (f *fixture) reopen(t testing.TB) {
	t.Helper()
	p, err := New(context.Background(), f.cfg, f.journal, f.chain)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.pool = p
}

func (f *fixture) add(t testing.TB, k ledger.Key) Entry {
	t.Helper()
	e, _, err := f.pool.Add(context.Background(), k, Claim{}, "")
	if err != nil {
		t.Fatalf("Add(%s) = %v", k, err)
	}
	return e
}

func (f *fixture) attest(t testing.TB, v int, r ledger.Record) ledger.Attestation {
	t.Helper()
	a := ledger.Attest(f.vals[v], testChain, r)
	if err := f.pool.AddAttestation(context.Background(), a); err != nil {
		t.Fatalf("AddAttestation(validator %d, %s) = %v", v, r.Key, err)
	}
	return a
}

func keysOf(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Key.String())
	}
	return out
}

func readyKeys(rs []Ready) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Record.Key.String())
	}
	return out
}
