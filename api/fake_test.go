package api

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// fakeBackend is a Backend over a real chain (ledgertest.Chain, a MemStore)
// and an in-test pending map.
type fakeBackend struct {
	chain *ledgertest.Chain

	mu        sync.Mutex
	pending   map[ledger.Key]*PendingInfo
	order     []ledger.Key
	committed chan struct{} // closed and replaced at each commit
	submitErr error
	ready     error
	submits   []string // submitters seen
}

func newFakeBackend(tb testing.TB, chain *ledgertest.Chain) *fakeBackend {
	return &fakeBackend{
		chain:     chain,
		pending:   make(map[ledger.Key]*PendingInfo),
		committed: make(chan struct{}),
	}
}

func (f *fakeBackend) Genesis() *ledger.Genesis { return f.chain.Genesis }
func (f *fakeBackend) Store() ledger.Store      { return f.chain.Store }

func (f *fakeBackend) Checkpoint(ctx context.Context) (*ledger.Header, *ledger.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.chain.Head()
	h := b.Header
	return &h, b.Certificate, nil
}

// CosignedCheckpoint returns the head's note signed by every validator
// (none at genesis).
func (f *fakeBackend) CosignedCheckpoint(ctx context.Context) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.chain.Head().Header
	if h.Height == 0 {
		return nil, ledger.ErrNotFound
	}
	cp := ledger.CheckpointOf(&h)
	var sigs []ledger.Cosignature
	for _, s := range f.chain.Signers {
		sigs = append(sigs, ledger.Cosign(s, cp))
	}
	return ledger.FormatNote(cp, f.chain.Vals, sigs)
}

func (f *fakeBackend) Submit(ctx context.Context, key ledger.Key, claim *Claim, submitter string) (*SubmitResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits = append(f.submits, submitter)
	if f.submitErr != nil {
		return nil, f.submitErr
	}
	if e, err := f.chain.Store.Lookup(ctx, key); err == nil {
		return &SubmitResult{Committed: e}, nil
	}
	p, ok := f.pending[key]
	if !ok {
		p = &PendingInfo{Key: key.String(), Added: time.UnixMilli(1_700_000_000_000).UTC(), Claim: claim}
		f.pending[key] = p
		f.order = append(f.order, key)
	}
	q := *p
	return &SubmitResult{Pending: &q}, nil
}

func (f *fakeBackend) Pending(key ledger.Key) (*PendingInfo, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pending[key]
	if !ok {
		return nil, false
	}
	q := *p
	return &q, true
}

func (f *fakeBackend) WaitCommitted(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	for {
		f.mu.Lock()
		ch := f.committed
		f.mu.Unlock()
		if e, err := f.chain.Store.Lookup(ctx, key); err == nil {
			return e, nil
		} else if !errors.Is(err, ledger.ErrNotFound) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

func (f *fakeBackend) Mempool(limit int) []PendingInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []PendingInfo
	for _, k := range f.order {
		if p, ok := f.pending[k]; ok && len(out) < limit {
			out = append(out, *p)
		}
	}
	return out
}

// attest sets what validators attested for a pending key.
func (f *fakeBackend) attest(key ledger.Key, commit, tree string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pending[key]
	p.Attestations = n
	p.Attested = &Attested{Commit: commit, Tree: tree, Count: n}
}

// commit commits records in a new block and wakes waiters.
func (f *fakeBackend) commit(records ...ledger.Record) *ledger.Block {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.chain.Next(records)
	for _, r := range records {
		delete(f.pending, r.Key)
	}
	close(f.committed)
	f.committed = make(chan struct{})
	return b
}

func (f *fakeBackend) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Status{NodeID: "12D3KooWtest", Version: "test", Peers: 1, Mempool: len(f.pending), MempoolBytes: 100, FetchErrors: 3, InvalidMessages: 2}
}

func (f *fakeBackend) Peers() []Peer {
	return []Peer{{ID: "12D3KooWpeer", Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}, Direction: "outbound"}}
}

func (f *fakeBackend) Validators() []Validator {
	var out []Validator
	for i, v := range f.chain.Vals.Validators() {
		out = append(out, Validator{Key: v.Key, Name: v.Name, Self: i == 0, Online: true})
	}
	return out
}

func (f *fakeBackend) Evidence(ctx context.Context, limit int) ([]Evidence, error) {
	return []Evidence{{Kind: "vote", Height: 3, Data: "vcsledger-vote/1\n", Added: time.UnixMilli(1_700_000_000_000).UTC()}}, nil
}

func (f *fakeBackend) Ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready
}

// recordFor returns the record validators compute for key in these tests.
func recordFor(key ledger.Key) ledger.Record {
	c := sha1.Sum([]byte(key.String()))
	t := sha256.Sum256([]byte(key.String()))
	return ledger.Record{Key: key, Commit: hex.EncodeToString(c[:]), Tree: "t1:" + base64.StdEncoding.EncodeToString(t[:])}
}

func mustKey(tb testing.TB, s string) ledger.Key {
	tb.Helper()
	k, err := ledger.ParseKey(s)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// env is a running test server.
type env struct {
	b      *fakeBackend
	s      *Server
	ts     *httptest.Server
	c      *Client
	blocks []*ledger.Block // committed by newEnv, genesis first
}

// newEnv starts a server over a 4-validator chain with three blocks of
// records (5, 0 and 7 records) and a client of it.
func newEnv(tb testing.TB, cfg Config) *env {
	tb.Helper()
	chain := ledgertest.NewChain(tb, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	chain.Next(ledgertest.Records(rng, 0, 5))
	chain.Next(nil)
	chain.Next(ledgertest.Records(rng, 5, 7))
	b := newFakeBackend(tb, chain)
	s, err := NewServer(cfg, b, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(s)
	tb.Cleanup(ts.Close)
	c, err := NewClient(ts.URL, ts.Client())
	if err != nil {
		tb.Fatal(err)
	}
	return &env{b: b, s: s, ts: ts, c: c, blocks: chain.Blocks()}
}

// do sends a raw request and returns the status, headers and body.
func (e *env) do(tb testing.TB, method, target string, body []byte, hdr http.Header) (int, http.Header, []byte) {
	tb.Helper()
	return doRaw(tb, e.ts, method, target, body, hdr)
}
