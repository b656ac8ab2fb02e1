package mempool

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// fakeRepos is a HashFunc test double for the vcs package: each key's
// repository answers at once unless told to block, be slow or fail.
type fakeRepos struct {
	mu    sync.Mutex
	calls map[ledger.Key]int
	block map[ledger.Key]bool          // wait for ctx
	slow  map[ledger.Key]time.Duration // answer after this long
	fails map[ledger.Key]int           // fail this many calls first
}

func newRepos() *fakeRepos {
	return &fakeRepos{
		calls: make(map[ledger.Key]int),
		block: make(map[ledger.Key]bool),
		slow:  make(map[ledger.Key]time.Duration),
		fails: make(map[ledger.Key]int),
	}
}

var errUnreachable = errors.New("repository unreachable")

func (r *fakeRepos) hash(ctx context.Context, k ledger.Key) (ledger.Record, error) {
	r.mu.Lock()
	r.calls[k]++
	n, block, slow, fails := r.calls[k], r.block[k], r.slow[k], r.fails[k]
	r.mu.Unlock()
	switch {
	case block:
		<-ctx.Done()
		return ledger.Record{}, ctx.Err()
	case slow > 0:
		select {
		case <-time.After(slow):
		case <-ctx.Done():
			return ledger.Record{}, ctx.Err()
		}
	}
	if n <= fails {
		return ledger.Record{}, errUnreachable
	}
	return record(k, ""), nil
}

func (r *fakeRepos) count(k ledger.Key) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[k]
}

func (r *fakeRepos) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		n += c
	}
	return n
}

// gossip records what OnAttest was given.
type gossip struct {
	mu   sync.Mutex
	atts []ledger.Attestation
}

func (g *gossip) onAttest(a ledger.Attestation) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.atts = append(g.atts, a)
}

func (g *gossip) keys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, a := range g.atts {
		out = append(out, a.Record.Key.String())
	}
	slices.Sort(out)
	return out
}

func (f *fixture) attester(t *testing.T, repos *fakeRepos, g *gossip, mod func(*AttesterConfig)) *Attester {
	t.Helper()
	cfg := AttesterConfig{
		Pool:     f.pool,
		Hash:     repos.hash,
		Signer:   f.vals[0],
		Workers:  2,
		OnAttest: g.onAttest,
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := NewAttester(cfg)
	if err != nil {
		t.Fatalf("NewAttester: %v", err)
	}
	if err := a.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	return a
}

// attestedBySelf returns the sorted keys holding this node's attestation.
func (f *fixture) attestedBySelf() []string {
	var out []string
	for _, e := range f.pool.List(0) {
		for _, a := range e.Attestations {
			if a.Validator == f.cfg.Self {
				out = append(out, e.Key.String())
			}
		}
	}
	slices.Sort(out)
	return out
}

func sortedKeys(ks ...ledger.Key) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.String())
	}
	slices.Sort(out)
	return out
}

func TestAttesterBlockedRepoDoesNotStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 2, nil)
		repos, g := newRepos(), &gossip{}
		var keys []ledger.Key
		for i := range 6 {
			keys = append(keys, testKey(t, i))
			f.add(t, keys[i])
		}
		hung := keys[1]
		repos.block[hung] = true
		repos.slow[keys[3]] = 10 * time.Second
		a := f.attester(t, repos, g, nil) // two workers, one of them stuck on hung
		defer a.Close(context.Background())

		time.Sleep(11 * time.Second)
		synctest.Wait()
		want := sortedKeys(keys[0], keys[2], keys[3], keys[4], keys[5])
		if got := f.attestedBySelf(); !slices.Equal(got, want) {
			t.Fatalf("attested %v, want %v", got, want)
		}
		if got := g.keys(); !slices.Equal(got, want) {
			t.Errorf("OnAttest got %v, want %v", got, want)
		}
		if got := readyKeys(f.pool.Ready(0, 0)); len(got) != 5 {
			t.Errorf("Ready(0) = %v, want the 5 attested", got)
		}
		for _, at := range g.atts {
			if err := at.Verify(); err != nil || at.Chain != testChain || at.Validator != f.cfg.Self {
				t.Errorf("attestation %+v: %v", at, err)
			}
		}
		if e, _ := f.pool.Get(hung); e.Attempts != 0 || e.Error != "" {
			t.Errorf("hung key before its timeout: %+v", e)
		}

		// After the timeout the reason is visible and a retry is scheduled.
		time.Sleep(DefaultTimeout)
		synctest.Wait()
		e, _ := f.pool.Get(hung)
		if e.Attempts != 1 || !strings.Contains(e.Error, "timed out after 2m0s") {
			t.Errorf("hung key after timeout: attempts %d, error %q", e.Attempts, e.Error)
		}
		time.Sleep(DefaultRetryMin + DefaultTimeout)
		synctest.Wait()
		if n := repos.count(hung); n != 2 {
			t.Errorf("hung key fetched %d times, want 2", n)
		}
		if e, _ := f.pool.Get(hung); e.Attempts != 2 {
			t.Errorf("hung key after retry: attempts %d, want 2", e.Attempts)
		}
	})
}

func TestAttesterRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 1, nil)
		repos, g := newRepos(), &gossip{}
		k := testKey(t, 0)
		repos.fails[k] = 3
		f.add(t, k)
		a := f.attester(t, repos, g, func(c *AttesterConfig) { c.RetryMin, c.RetryMax = time.Second, 3*time.Second })
		defer a.Close(context.Background())

		// Attempts at 0 s, then 1 s, 2 s (doubling) and 3 s (capped) later.
		for i, wait := range []time.Duration{0, time.Second, 2 * time.Second} {
			time.Sleep(wait)
			synctest.Wait()
			e, _ := f.pool.Get(k)
			if e.Attempts != i+1 || !strings.Contains(e.Error, errUnreachable.Error()) {
				t.Fatalf("after attempt %d: attempts %d, error %q", i+1, e.Attempts, e.Error)
			}
			if n := repos.count(k); n != i+1 {
				t.Fatalf("after attempt %d: %d fetches", i+1, n)
			}
		}
		time.Sleep(3*time.Second - time.Millisecond)
		synctest.Wait()
		if n := repos.count(k); n != 3 {
			t.Fatalf("retried before the backoff: %d fetches, want 3", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		e, _ := f.pool.Get(k)
		if len(e.Attestations) != 1 || e.Error != "" || e.Attempts != 3 {
			t.Errorf("after success: %+v; want attested, no error, 3 failed attempts", e)
		}
		if got := g.keys(); len(got) != 1 {
			t.Errorf("OnAttest called %d times, want 1", len(got))
		}
	})
}

func TestAttesterNewEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 2, nil)
		repos, g := newRepos(), &gossip{}
		a := f.attester(t, repos, g, func(c *AttesterConfig) { c.Workers = 3 })
		defer a.Close(context.Background())
		var keys []ledger.Key
		for i := range 20 {
			keys = append(keys, testKey(t, i))
			f.add(t, keys[i])
			if i%7 == 0 {
				synctest.Wait()
			}
		}
		// A key this validator has attested already (from gossip before a
		// restart, say) is not fetched.
		done := testKey(t, 99)
		f.attest(t, 0, record(done, ""))
		synctest.Wait()
		if got := f.attestedBySelf(); !slices.Equal(got, sortedKeys(append(keys, done)...)) {
			t.Errorf("attested %d keys, want %d", len(got), len(keys)+1)
		}
		if n := repos.total(); n != len(keys) {
			t.Errorf("%d fetches, want %d (one per key)", n, len(keys))
		}
		if got := g.keys(); len(got) != len(keys) {
			t.Errorf("OnAttest called %d times, want %d", len(got), len(keys))
		}
	})
}

func TestAttesterCloseWithFetchesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 1, nil)
		repos, g := newRepos(), &gossip{}
		for i := range 4 {
			k := testKey(t, i)
			repos.block[k] = true
			f.add(t, k)
		}
		a := f.attester(t, repos, g, nil)
		synctest.Wait()
		if n := repos.total(); n != 2 {
			t.Fatalf("%d fetches in flight, want 2 (the workers)", n)
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Fatalf("Close = %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v", d)
		}
		// Cancellation is not a failure of the repository.
		for _, e := range f.pool.List(0) {
			if e.Attempts != 0 || e.Error != "" {
				t.Errorf("%s: attempts %d, error %q after Close", e.Key, e.Attempts, e.Error)
			}
		}
		if err := a.Close(ctx); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if err := a.Open(ctx); err == nil {
			t.Errorf("Open after Close = nil, want an error")
		}
	})
}

func TestAttesterRestartDoesNotReattest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 2, nil)
		repos, g := newRepos(), &gossip{}
		var keys []ledger.Key
		for i := range 5 {
			keys = append(keys, testKey(t, i))
			f.add(t, keys[i])
		}
		a := f.attester(t, repos, g, nil)
		synctest.Wait()
		if err := a.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := repos.total(); n != 5 {
			t.Fatalf("%d fetches before restart, want 5", n)
		}

		f.reopen(t)
		k := testKey(t, 5)
		f.add(t, k)
		g2 := &gossip{}
		a = f.attester(t, repos, g2, nil)
		defer a.Close(context.Background())
		synctest.Wait()
		if n := repos.total(); n != 6 {
			t.Errorf("%d fetches after restart, want 6 (only the new key)", n)
		}
		if got := g2.keys(); !slices.Equal(got, []string{k.String()}) {
			t.Errorf("after restart OnAttest got %v, want [%s]", got, k)
		}
	})
}

func TestAttesterKeyCommittedWhileFetching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 2, nil)
		repos, g := newRepos(), &gossip{}
		k := testKey(t, 0)
		repos.slow[k] = time.Minute
		f.add(t, k)
		a := f.attester(t, repos, g, nil)
		defer a.Close(context.Background())
		synctest.Wait()
		f.chain.commit(record(k, ""))
		if err := f.pool.Remove(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if _, ok := f.pool.Get(k); ok {
			t.Errorf("committed key is pending again after its fetch finished")
		}
		if got := g.keys(); len(got) != 0 {
			t.Errorf("OnAttest got %v, want nothing", got)
		}
	})
}

func TestAttesterBadRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, 1, nil)
		k, other := testKey(t, 0), testKey(t, 1)
		f.add(t, k)
		wrong := func(ctx context.Context, key ledger.Key) (ledger.Record, error) { return record(other, ""), nil }
		a, err := NewAttester(AttesterConfig{Pool: f.pool, Hash: wrong, Signer: f.vals[0]})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer a.Close(context.Background())
		synctest.Wait()
		e, _ := f.pool.Get(k)
		if len(e.Attestations) != 0 || e.Attempts != 1 || !strings.Contains(e.Error, "returned the record of") {
			t.Errorf("entry = %+v, want no attestation and the reason", e)
		}
		if _, ok := f.pool.Get(other); ok {
			t.Errorf("the wrong key was attested")
		}
	})
}

func TestAttesterConfig(t *testing.T) {
	f := newFixture(t, 2, nil)
	repos := newRepos()
	tests := []struct {
		name string
		cfg  AttesterConfig
		ok   bool
	}{
		{"ok", AttesterConfig{Pool: f.pool, Hash: repos.hash, Signer: f.vals[0]}, true},
		{"chain", AttesterConfig{Pool: f.pool, Hash: repos.hash, Signer: f.vals[0], Chain: testChain}, true},
		{"no pool", AttesterConfig{Hash: repos.hash, Signer: f.vals[0]}, false},
		{"no hash", AttesterConfig{Pool: f.pool, Signer: f.vals[0]}, false},
		{"no signer", AttesterConfig{Pool: f.pool, Hash: repos.hash}, false},
		{"signer is not Self", AttesterConfig{Pool: f.pool, Hash: repos.hash, Signer: f.vals[1]}, false},
		{"other chain", AttesterConfig{Pool: f.pool, Hash: repos.hash, Signer: f.vals[0], Chain: "other"}, false},
		{"workers", AttesterConfig{Pool: f.pool, Hash: repos.hash, Signer: f.vals[0], Workers: -1}, false},
		{"retry", AttesterConfig{Pool: f.pool, Hash: repos.hash, Signer: f.vals[0], RetryMin: time.Hour, RetryMax: time.Minute}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAttester(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewAttester = %v, want ok %v", err, tt.ok)
			}
			if err == nil && (a.cfg.Workers != DefaultWorkers || a.cfg.Timeout != DefaultTimeout || a.cfg.Chain != testChain) {
				t.Errorf("defaults not filled: %+v", a.cfg)
			}
		})
	}
}

func TestAttesterEnoughAttestations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Open membership with room for one attestation, taken by another
		// node: this node's is not needed, and is not retried.
		f := newFixture(t, 2, func(c *Config) { c.Validators, c.MaxAttestations = nil, 1 })
		repos, g := newRepos(), &gossip{}
		k := testKey(t, 0)
		f.attest(t, 1, record(k, ""))
		a := f.attester(t, repos, g, nil)
		defer a.Close(context.Background())
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := repos.count(k); n != 1 {
			t.Errorf("fetched %d times, want 1", n)
		}
		if e, _ := f.pool.Get(k); e.Error != "" || e.Attempts != 0 || len(e.Attestations) != 1 {
			t.Errorf("entry = %+v, want no error and the other node's attestation", e)
		}
		if len(g.keys()) != 0 {
			t.Errorf("OnAttest called for a refused attestation")
		}
	})
}
