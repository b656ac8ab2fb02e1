package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/mempool"
	"github.com/vcsledger/vcsledger/vcs"
)

// journal adapts the store's pending table to the mempool's Journal. The
// table holds the authority pool's changes too (authority.go), which the
// mempool does not see.
type journal struct{ n *Node }

func (j journal) PutPending(ctx context.Context, id string, data []byte) error {
	return j.n.store.PutPending(ctx, id, data)
}

func (j journal) DeletePending(ctx context.Context, ids ...string) error {
	return j.n.store.DeletePending(ctx, ids...)
}

func (j journal) LoadPending(ctx context.Context, fn func(id string, data []byte) error) error {
	items, err := j.n.store.LoadPending(ctx)
	if err != nil {
		return err
	}
	for _, it := range items {
		if isAuthorityJournalID(it.ID) {
			continue
		}
		if err := fn(it.ID, it.Data); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) openPool(ctx context.Context) error {
	mc := mempool.Config{
		Chain:      n.g.Chain,
		MaxEntries: n.cfg.PoolMaxRecords,
		MaxBytes:   n.cfg.PoolMaxBytes,
		Rate:       n.cfg.SubmitRate,
		Burst:      n.cfg.SubmitBurst,
		Expiry:     n.cfg.PendingExpiry,
		Now:        n.cfg.Now,
		Logger:     n.log,
	}
	if n.pow == nil {
		mc.Validators = n.member
	} // pow: anyone may attest
	mc.Self = n.signer.Public()
	p, err := mempool.New(ctx, mc, journal{n}, n.store)
	if err != nil {
		return fmt.Errorf("node: mempool: %w", err)
	}
	n.pool = p
	return nil
}

// fetchRecord fetches key's repository and hashes it: the record this
// node attests.
func (n *Node) fetchRecord(ctx context.Context, key ledger.Key) (ledger.Record, error) {
	cache := n.cfg.CacheDir
	if cache == "" {
		cache = filepath.Join(filepath.Dir(n.cfg.DBPath), "cache")
	}
	res, err := vcs.Hash(ctx, key.FetchURL(), key.Tag, vcs.Options{CacheDir: cache, Timeout: n.cfg.FetchTimeout})
	if err != nil {
		n.mu.Lock()
		n.counters.fetchErrors++
		n.mu.Unlock()
		return ledger.Record{}, err
	}
	r := ledger.Record{Key: key, Commit: res.Commit, Tree: res.Tree, H1: res.H1}
	return r, r.Check()
}

func (n *Node) openAttester(ctx context.Context) error {
	a, err := mempool.NewAttester(mempool.AttesterConfig{
		Pool:    n.pool,
		Hash:    n.fetchRecord,
		Signer:  n.signer,
		Chain:   n.g.Chain,
		Workers: n.cfg.AttestWorkers,
		Timeout: n.cfg.FetchTimeout,
		Logger:  n.log,
		OnAttest: func(a ledger.Attestation) {
			if n.gossipsAttestations() {
				n.publish(context.Background(), topicAttest, a.Format())
			}
		},
	})
	if err != nil {
		return fmt.Errorf("node: attester: %w", err)
	}
	if err := a.Open(ctx); err != nil {
		return err
	}
	n.attester = a
	return nil
}

// gossipsAttestations reports whether attestations travel between nodes.
// With attest_quorum 0 only the proposer's own counts (mempool.Pool.Ready),
// and blocks carry none: sending each node's attestation of each record to
// every other node would cost a signature check and a journal write per
// record per node for nothing.
func (n *Node) gossipsAttestations() bool { return n.g.AttestationsNeeded() > 0 }

func claimOf(commit, tree string) mempool.Claim {
	return mempool.Claim{Commit: commit, Tree: tree}
}

// noteAttestConflict keeps a validator's two different attestations for one
// key as evidence.
func (n *Node) noteAttestConflict(ctx context.Context, err error) {
	var ce *mempool.ConflictError
	if errors.As(err, &ce) {
		n.addEvidence(ctx, "attestation", append(ce.A.Format(), ce.B.Format()...))
	}
}

func (n *Node) addEvidence(ctx context.Context, kind string, data []byte) {
	if err := n.store.AddEvidence(ctx, kind, data, n.cfg.Now()); err != nil {
		n.log.Error("store evidence", "kind", kind, "err", err)
		return
	}
	n.log.Warn("evidence of misbehaviour recorded", "kind", kind)
}

// strictJSON decodes exactly one JSON value with no unknown fields.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}
