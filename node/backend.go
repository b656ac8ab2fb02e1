package node

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/mempool"
)

func (n *Node) openAPI(ctx context.Context) error {
	if n.cfg.HTTPAddr == "" || n.cfg.HTTPAddr == "off" {
		return nil
	}
	srv, err := api.NewServer(api.Config{WriteToken: n.cfg.WriteToken}, backend{n}, n.log)
	if err != nil {
		return fmt.Errorf("node: api: %w", err)
	}
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("node: http listen: %w", err)
	}
	n.server, n.ln = srv, ln
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		// ctx is the node's run context: Close cancels it, and Serve then
		// shuts down gracefully.
		if err := srv.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
			n.log.Error("http server", "err", err)
		}
	}()
	return nil
}

// backend implements api.Backend.
type backend struct{ n *Node }

func (b backend) Genesis() *ledger.Genesis { return b.n.g }
func (b backend) Store() ledger.Store      { return b.n.store }

// A checkpoint is the head's header and certificate, kept so that record
// answers do not read the head block (up to MaxBlockRecords records) each.
type checkpoint struct {
	hdr  ledger.Header
	cert *ledger.Certificate
}

func (b backend) Checkpoint(ctx context.Context) (*ledger.Header, *ledger.Certificate, error) {
	h, err := b.n.store.Head(ctx)
	if err != nil {
		return nil, nil, err
	}
	if h.Height == 0 {
		return h, nil, nil
	}
	if cp := b.n.checkpoint.Load(); cp != nil && cp.hdr == *h {
		// Shared, as the certificate is: the server never modifies them.
		return &cp.hdr, cp.cert, nil
	}
	blk, err := b.n.store.Block(ctx, h.Height)
	if err != nil {
		return nil, nil, err
	}
	// A certificate is never modified once parsed: callers share it.
	b.n.checkpoint.Store(&checkpoint{hdr: blk.Header, cert: blk.Certificate})
	return &blk.Header, blk.Certificate, nil
}

func (b backend) Submit(ctx context.Context, key ledger.Key, claim *api.Claim, submitter string) (*api.SubmitResult, error) {
	n := b.n
	var c mempool.Claim
	if claim != nil {
		c = mempool.Claim{Commit: claim.Commit, Tree: claim.Tree}
	}
	e, added, err := n.pool.Add(ctx, key, c, submitter)
	var ce *mempool.CommittedError
	var rl *mempool.RateLimitError
	switch {
	case errors.As(err, &rl):
		return nil, &api.RateLimitError{RetryAfter: rl.RetryAfter}
	case errors.As(err, &ce):
		entry := ce.Entry
		return &api.SubmitResult{Committed: &entry}, nil
	case errors.Is(err, mempool.ErrFull):
		return nil, fmt.Errorf("%w: %v", api.ErrFull, err)
	case errors.Is(err, mempool.ErrRateLimited):
		return nil, fmt.Errorf("%w: %v", api.ErrRateLimited, err)
	case errors.Is(err, mempool.ErrInvalidClaim):
		return nil, fmt.Errorf("%w: %v", api.ErrInvalidClaim, err)
	case err != nil:
		return nil, err
	}
	if added {
		n.announcePending(ctx, pendingItem{Key: key.String(), Commit: c.Commit, Tree: c.Tree})
	}
	return &api.SubmitResult{Pending: b.pendingInfo(&e)}, nil
}

func (b backend) pendingInfo(e *mempool.Entry) *api.PendingInfo {
	p := &api.PendingInfo{
		Key:          e.Key.String(),
		Added:        e.Added,
		Attestations: len(e.Attestations),
		LastError:    e.Error,
		Attempts:     e.Attempts,
	}
	if !e.ErrorAt.IsZero() {
		t := e.ErrorAt
		p.LastErrorAt = &t
	}
	if !e.Claim.IsZero() {
		p.Claim = &api.Claim{Commit: e.Claim.Commit, Tree: e.Claim.Tree}
	}
	if r, count := e.Attested(); count > 0 {
		p.Attested = &api.Attested{Commit: r.Commit, Tree: r.Tree, H1: r.H1, Count: count}
	}
	return p
}

func (b backend) Pending(key ledger.Key) (*api.PendingInfo, bool) {
	e, ok := b.n.pool.Get(key)
	if !ok {
		return nil, false
	}
	return b.pendingInfo(&e), true
}

func (b backend) WaitCommitted(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	n := b.n
	for {
		ch := make(chan struct{})
		n.mu.Lock()
		n.waiters[key] = append(n.waiters[key], ch)
		n.mu.Unlock()
		// Look after registering, so a commit in between is not missed.
		e, err := n.store.Lookup(ctx, key)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, ledger.ErrNotFound) {
			return nil, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			n.mu.Lock()
			ws := n.waiters[key]
			for i, w := range ws {
				if w == ch {
					n.waiters[key] = append(ws[:i], ws[i+1:]...)
					break
				}
			}
			if len(n.waiters[key]) == 0 {
				delete(n.waiters, key)
			}
			n.mu.Unlock()
			return nil, ctx.Err()
		}
	}
}

func (b backend) Mempool(limit int) []api.PendingInfo {
	es := b.n.pool.List(limit)
	out := make([]api.PendingInfo, len(es))
	for i := range es {
		out[i] = *b.pendingInfo(&es[i])
	}
	return out
}

func (b backend) Status() api.Status {
	n := b.n
	n.mu.Lock()
	st := n.status
	c := n.counters
	n.mu.Unlock()
	count, bytes := n.pool.Stats()
	s := api.Status{
		Version:      Version,
		Round:        st.Round,
		Step:         st.Step.String(),
		Mempool:      count,
		MempoolBytes: bytes,
		FetchErrors:  c.fetchErrors,

		AppendFailures: c.appendFailures,
	}
	if st := n.stalled.Load(); st != nil {
		s.Stalled = st.Error()
	}
	if n.IsValidator() {
		s.ValidatorKey = n.signer.Public().String()
	}
	if n.host != nil {
		s.NodeID = n.host.ID().String()
		peers := n.host.Peers()
		s.Peers = len(peers)
		for _, p := range peers {
			s.InvalidMessages += uint64(p.Invalid)
		}
	}
	if n.syncer != nil {
		s.Syncing = n.syncer.Progress().Syncing
	}
	if n.pow != nil {
		s.Mining = n.miningStatus(context.Background())
		n.pow.mu.Lock()
		s.Syncing = n.pow.syncing
		n.pow.mu.Unlock()
	}
	return s
}

func (b backend) Peers() []api.Peer {
	n := b.n
	if n.host == nil {
		return nil
	}
	var out []api.Peer
	for _, p := range n.host.Peers() {
		ap := api.Peer{ID: p.ID.String(), Addrs: []string{p.Addr}}
		if k, ok := validatorKeyOf(p.ID); ok && n.pow == nil && n.current().Contains(k) {
			vals := n.current()
			ap.ValidatorKey = k.String()
			ap.Name = vals.Validators()[vals.Index(k)].Name
		}
		out = append(out, ap)
	}
	return out
}

func (b backend) Validators() []api.Validator {
	n := b.n
	online := map[ledger.PublicKey]bool{}
	if n.host != nil {
		for _, p := range n.host.Peers() {
			if k, ok := validatorKeyOf(p.ID); ok {
				online[k] = true
			}
		}
	}
	var out []api.Validator
	if n.pow != nil {
		return out // pow: open membership
	}
	for _, v := range n.current().Validators() {
		self := n.signer.Public() == v.Key
		out = append(out, api.Validator{Key: v.Key, Name: v.Name, Self: self, Online: self || online[v.Key]})
	}
	return out
}

func (b backend) Evidence(ctx context.Context, limit int) ([]api.Evidence, error) {
	items, err := b.n.store.Evidence(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.Evidence, len(items))
	for i, it := range items {
		out[i] = api.Evidence{Kind: it.Kind, Data: string(it.Data), Added: it.Added}
		if ev, err := consensus.ParseEvidence(it.Data); err == nil {
			out[i].Validator = ev.Offender().String()
			out[i].Height = ev.Height()
		} else if c := firstCosig(it.Data); c != nil { // cosign.go
			out[i].Validator = c.Validator.String()
			out[i].Height = c.Height
		}
	}
	return out, nil
}

func (b backend) Ready() error {
	if st := b.n.stalled.Load(); st != nil {
		return st
	}
	if _, err := b.n.store.Head(context.Background()); err != nil {
		return err
	}
	return nil
}

// Version is the node's version string, set by the build.
var Version = "dev"

// validatorKeyOf returns the ed25519 key a peer id embeds (a node's identity
// is its key, so a validator's peer id names its validator key).
func validatorKeyOf(id peer.ID) (ledger.PublicKey, bool) {
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return ledger.PublicKey{}, false
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != len(ledger.PublicKey{}) {
		return ledger.PublicKey{}, false
	}
	var k ledger.PublicKey
	copy(k[:], raw)
	return k, true
}
