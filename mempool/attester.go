package mempool

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// A HashFunc fetches key's repository at key.Tag and returns the record it
// hashes to (DESIGN §2). It is called from several goroutines at once and
// must return promptly once ctx is done. The node wires it to the vcs
// package; tests use a fake.
type HashFunc func(ctx context.Context, key ledger.Key) (ledger.Record, error)

// Attester defaults, used when an AttesterConfig field is zero.
const (
	DefaultWorkers  = 4
	DefaultTimeout  = 2 * time.Minute
	DefaultRetryMin = 30 * time.Second
	DefaultRetryMax = 10 * time.Minute
)

// AttesterConfig configures an Attester.
type AttesterConfig struct {
	Pool   *Pool          // the pool to watch and add attestations to; required
	Hash   HashFunc       // required
	Signer *ledger.Signer // required; its key must be the pool's Config.Self
	Chain  string         // chain id; default the pool's, and it must be the pool's

	Workers  int           // concurrent fetches; default 4
	Timeout  time.Duration // per fetch; default 2 min
	RetryMin time.Duration // delay before retrying a failed fetch; default 30 s, doubling per failure
	RetryMax time.Duration // longest delay between retries; default 10 min

	// OnAttest, if set, is called with each attestation the attester adds
	// to the pool, after it is journaled (the node gossips it). It is
	// called from the attester's goroutine and must not block for long.
	OnAttest func(ledger.Attestation)

	Logger *slog.Logger // default: discard
}

// Validate fills defaults and reports what is missing or wrong.
func (c *AttesterConfig) Validate() error {
	switch {
	case c.Pool == nil:
		return errors.New("mempool: attester config: no pool")
	case c.Hash == nil:
		return errors.New("mempool: attester config: no hash function")
	case c.Signer == nil:
		return errors.New("mempool: attester config: no signer")
	case c.Signer.Public() != c.Pool.cfg.Self:
		return fmt.Errorf("mempool: attester config: signer %s is not the pool's Self %s", c.Signer.Public(), c.Pool.cfg.Self)
	}
	if c.Chain == "" {
		c.Chain = c.Pool.cfg.Chain
	}
	if c.Chain != c.Pool.cfg.Chain {
		return fmt.Errorf("mempool: attester config: chain %q, the pool's is %q", c.Chain, c.Pool.cfg.Chain)
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Workers < 0 || c.Workers > 256:
		return fmt.Errorf("mempool: attester config: workers %d: want 1 to 256", c.Workers)
	case c.Timeout < 0 || c.RetryMin < 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("mempool: attester config: timeout %v, retry %v to %v", c.Timeout, c.RetryMin, c.RetryMax)
	}
	return nil
}

// An Attester makes this validator's attestations: it watches its pool for
// entries it has not attested, fetches and hashes each with at most Workers
// at once and Timeout each, signs the record, adds the attestation to the
// pool and hands it to OnAttest.
//
// A failed fetch is recorded on the entry (Pool.SetError: the reason shows
// in the pending status) and retried after RetryMin, doubling up to
// RetryMax, for as long as the entry is pending; the pool's Expire drops
// entries that stay unattested. A slow or hung repository holds one worker
// for at most Timeout; the others go on.
//
// It never attests a key twice: it skips entries holding its attestation,
// which is journaled with the entry, so a restart does not attest again.
type Attester struct {
	cfg  AttesterConfig
	self ledger.PublicKey

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewAttester returns an attester; Open starts it.
func NewAttester(cfg AttesterConfig) (*Attester, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Attester{cfg: cfg, self: cfg.Signer.Public()}, nil
}

// Open starts the attester's goroutines; Close stops them. An attester is
// opened at most once. ctx's values reach the HashFunc; its cancellation
// does not stop the attester.
func (a *Attester) Open(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done != nil {
		return errors.New("mempool: attester already opened")
	}
	ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	a.done = make(chan struct{})
	go a.run(ctx)
	return nil
}

// Close cancels the fetches in flight and waits for the attester's
// goroutines to return, or for ctx to be done.
func (a *Attester) Close(ctx context.Context) error {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mempool: attester close: %w", ctx.Err())
	}
}

// A result is the outcome of one fetch.
type result struct {
	key ledger.Key
	rec ledger.Record
	err error
}

// run is the attester's loop. It alone owns the scheduling state; fetches
// run in goroutines it starts (at most Workers) and waits for.
func (a *Attester) run(ctx context.Context) {
	defer close(a.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	results := make(chan result, a.cfg.Workers) // one slot per fetch in flight: sends never block
	inflight := make(map[ledger.Key]bool)
	waiting := make(map[ledger.Key]bool) // in retries
	var retries retryQueue
	cursor, more := int64(math.MinInt64), true
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	start := func(k ledger.Key) {
		inflight[k] = true
		wg.Go(func() { results <- a.fetch(ctx, k) })
	}
	pool := a.cfg.Pool
	changed := pool.Changed() // kept until it fires, so no change goes unseen
	for {
		now := time.Now()
		for len(inflight) < a.cfg.Workers && retries.Len() > 0 && !retries[0].due.After(now) {
			k := heap.Pop(&retries).(retry).key
			delete(waiting, k)
			if !inflight[k] && pool.needs(k, a.self) {
				start(k)
			}
		}
		for more && len(inflight) < a.cfg.Workers {
			n := a.cfg.Workers - len(inflight)
			var keys []ledger.Key
			keys, cursor = pool.unattested(cursor, a.self, n)
			more = len(keys) == n
			for _, k := range keys {
				if !inflight[k] && !waiting[k] {
					start(k)
				}
			}
		}
		var wake <-chan time.Time
		if len(inflight) < a.cfg.Workers && retries.Len() > 0 {
			timer.Reset(time.Until(retries[0].due))
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			changed = pool.Changed()
			more = true
		case r := <-results:
			delete(inflight, r.key)
			if ctx.Err() != nil {
				return // closing: not a failure of the repository
			}
			if d, ok := a.settle(ctx, r); !ok {
				heap.Push(&retries, retry{key: r.key, due: time.Now().Add(d)})
				waiting[r.key] = true
			}
		case <-wake:
		}
	}
}

// fetch hashes key's repository, within the timeout.
func (a *Attester) fetch(ctx context.Context, key ledger.Key) result {
	fctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	rec, err := a.cfg.Hash(fctx, key)
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(fctx.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("fetch timed out after %v: %w", a.cfg.Timeout, err)
	case err == nil && rec.Key != key:
		err = fmt.Errorf("hash function returned the record of %s", rec.Key)
	case err == nil:
		err = rec.Check()
	}
	return result{key: key, rec: rec, err: err}
}

// settle attests a fetched record, or records the failure. It reports
// false, with the delay before the next attempt, when the key is to be
// retried.
func (a *Attester) settle(ctx context.Context, r result) (time.Duration, bool) {
	pool := a.cfg.Pool
	log := a.cfg.Logger.With("key", r.key.String())
	if r.err == nil {
		att := ledger.Attest(a.cfg.Signer, a.cfg.Chain, r.rec)
		if !pool.allowed(a.self) {
			r.err = fmt.Errorf("%w: this node (%s)", ErrNotValidator, a.self)
		} else {
			added, err := pool.addAttestation(ctx, att, false)
			switch {
			case errors.Is(err, errGone):
				return 0, true // committed or expired while fetching
			case errors.Is(err, ErrFull):
				return 0, true // enough others attested (open membership)
			case errors.Is(err, ErrConflict):
				// This key signed another record for the key: another node
				// runs with the same key, or the journal was tampered with.
				log.Error("own attestation conflicts with one already pending", "err", err)
				return 0, true
			case err != nil:
				r.err = err
			default:
				if added {
					log.Debug("attested", "commit", r.rec.Commit, "tree", r.rec.Tree)
					if a.cfg.OnAttest != nil {
						a.cfg.OnAttest(att)
					}
				}
				return 0, true
			}
		}
	}
	pool.SetError(r.key, r.err.Error())
	e, ok := pool.Get(r.key)
	if !ok {
		return 0, true
	}
	d := a.backoff(e.Attempts)
	log.Info("fetch failed; will retry", "attempts", e.Attempts, "retry_in", d, "err", r.err)
	return d, false
}

// backoff returns the delay after the n-th failure: RetryMin doubled n-1
// times, at most RetryMax.
func (a *Attester) backoff(n int) time.Duration {
	d := a.cfg.RetryMin
	for i := 1; i < n && d < a.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, a.cfg.RetryMax)
}

// A retry is a key to fetch again at due.
type retry struct {
	key ledger.Key
	due time.Time
}

// retryQueue is a min-heap of retries by due time.
type retryQueue []retry

func (q retryQueue) Len() int           { return len(q) }
func (q retryQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q retryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *retryQueue) Push(x any)        { *q = append(*q, x.(retry)) }
func (q *retryQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
