package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// Co-signed checkpoints (docs/FORMAT.md, "Checkpoints").
//
// A validator signs the checkpoint note of every block it stores, however
// the block arrived (its own commit, gossip or sync), keeps its signature
// and sends it to the others on the attest topic. Every node keeps the
// validators' signatures of the blocks it has, per height, and serves the
// newest checkpoint signed by a quorum as a note (GET /checkpoint).
//
// The signing runs on a goroutine of its own, after the block is durable,
// so that neither consensus nor sync waits for it. A node that catches up
// on many blocks at once signs only the newest cosignCatchUp of them, and
// sends only the signatures of blocks made in the last cosignGossipAge:
// clients want the newest checkpoint, and it was co-signed when it was new.
//
// Co-signatures heard from peers are checked before they are forwarded
// (p2p validation: chain, validator, signature) and then against the
// node's chain: one of the block the node has at that height is stored;
// one of another block, or of another root for a log size the node has,
// is evidence. Those of heights the node does not have yet (a peer
// committed first) wait in memory, up to cosignAhead heights above the
// head, until the block arrives.
//
// Gossip sends each co-signature once; a node that missed them asks its
// peers (cosign_pull.go).
const (
	cosignCatchUp   = 1024
	cosignGossipAge = 10 * time.Minute
	cosignAhead     = 64
)

// cosigner is the node's co-signing state.
type cosigner struct {
	kick chan struct{}
	pull chan struct{} // ask peers for co-signatures now (cosign_pull.go)

	mu    sync.Mutex
	ahead map[uint64]map[ledger.PublicKey]ledger.Cosignature // waiting for their block
	done  uint64                                             // newest height the worker handled

	latest atomic.Pointer[cosignedNote]
}

// A cosignedNote is the newest checkpoint note with a quorum.
type cosignedNote struct {
	height uint64
	sigs   int
	msg    []byte
}

// openCosign loads the newest co-signed note and starts the signer.
func (n *Node) openCosign(ctx, rctx context.Context) error {
	head, err := n.store.Head(ctx)
	if err != nil {
		return err
	}
	n.cos.done = head.Height
	// The newest height with a quorum of its validator set's signatures.
	switch h, err := n.store.LatestCosigned(ctx, 1); {
	case err == nil:
		for lo := h - min(h, cosignCatchUp); h > lo && !n.refreshNote(ctx, h); h-- {
		}
	case !errors.Is(err, ledger.ErrNotFound):
		return err
	}
	// A validator that stopped before signing its newest blocks signs
	// them now.
	if n.signsAt(head.Height) && head.Height > 0 {
		if own, err := n.store.Cosigs(ctx, head.Height); err == nil && !hasCosig(own, n.signer.Public()) {
			n.cos.done = head.Height - min(head.Height, cosignCatchUp)
		}
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.cosignLoop(rctx)
	}()
	go func() {
		defer n.wg.Done()
		n.cosignPullLoop(rctx)
	}()
	n.cosignKick()
	n.cosignPullKick()
	return nil
}

// signsAt reports whether this node is a validator of the set that
// commits the block at height h.
func (n *Node) signsAt(h uint64) bool { return n.setFor(h).Contains(n.signer.Public()) }

func hasCosig(cs []sqlitestore.Cosig, k ledger.PublicKey) bool {
	for _, c := range cs {
		if c.Validator == k {
			return true
		}
	}
	return false
}

// cosignKick tells the signer that blocks were stored.
func (n *Node) cosignKick() {
	select {
	case n.cos.kick <- struct{}{}:
	default:
	}
}

func (n *Node) cosignLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.cos.kick:
		}
		if err := n.cosignNew(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("co-sign checkpoints", "err", err)
		}
	}
}

// cosignNew handles the blocks stored since the last call: signs their
// checkpoints (validators), stores the signatures with those of peers
// that waited for the blocks, and sends its own.
func (n *Node) cosignNew(ctx context.Context) error {
	head, err := n.store.Head(ctx)
	if err != nil {
		return err
	}
	from := n.cos.done + 1
	if head.Height >= cosignCatchUp && from < head.Height-cosignCatchUp+1 {
		from = head.Height - cosignCatchUp + 1
	}
	from = max(from, 1)
	var rows []sqlitestore.Cosig
	var own []ledger.Cosignature
	var touched []uint64
	now := n.cfg.Now()
	for h := from; h <= head.Height; {
		hdrs, err := n.store.Headers(ctx, h, int(min(head.Height-h+1, 256)))
		if err != nil {
			return err
		}
		if len(hdrs) == 0 {
			return fmt.Errorf("node: no header at height %d", h)
		}
		for i := range hdrs {
			hdr := &hdrs[i]
			cp := ledger.CheckpointOf(hdr)
			if n.signsAt(hdr.Height) {
				cs := ledger.Cosign(n.signer, cp)
				rows = append(rows, sqlitestore.Cosig{Height: hdr.Height, Validator: cs.Validator, Sig: cs.Sig})
				if now.Sub(time.UnixMilli(hdr.Time)) <= cosignGossipAge {
					own = append(own, cs)
				}
			}
			n.cos.mu.Lock()
			waiting := n.cos.ahead[hdr.Height]
			delete(n.cos.ahead, hdr.Height)
			n.cos.mu.Unlock()
			for _, c := range waiting {
				if c.Checkpoint == cp {
					rows = append(rows, sqlitestore.Cosig{Height: c.Height, Validator: c.Validator, Sig: c.Sig})
				} else {
					n.cosigConflict(ctx, &c, hdr)
				}
			}
			touched = append(touched, hdr.Height)
		}
		h = hdrs[len(hdrs)-1].Height + 1
	}
	// Forget what waited for heights now below the head but skipped.
	n.cos.mu.Lock()
	for h := range n.cos.ahead {
		if h <= head.Height {
			delete(n.cos.ahead, h)
		}
	}
	n.cos.done = head.Height
	n.cos.mu.Unlock()
	if err := n.store.AddCosigs(ctx, rows...); err != nil {
		return err
	}
	for i := range own {
		n.publish(ctx, topicAttest, own[i].Format())
	}
	// The newest heights first: refreshNote keeps only the newest note.
	for i := len(touched) - 1; i >= 0; i-- {
		if n.refreshNote(ctx, touched[i]) {
			break
		}
	}
	return nil
}

// validateCosig checks a co-signature from the network before it is
// forwarded: well formed, of this chain, by a validator of the set at its
// height (for a height not known yet, the set after every committed
// change), signature valid.
func (n *Node) validateCosig(data []byte) error {
	c, err := ledger.ParseCosignature(data)
	if err != nil {
		return err
	}
	return n.checkCosig(c)
}

// checkCosig checks a parsed co-signature as validateCosig does.
func (n *Node) checkCosig(c *ledger.Cosignature) error {
	if c.Chain != n.g.Chain {
		return fmt.Errorf("co-signature for chain %q", c.Chain)
	}
	if !n.setFor(c.Height).Contains(c.Validator) {
		return fmt.Errorf("co-signature by non-validator %s", c.Validator)
	}
	return c.Verify()
}

// deliverCosig takes a validated co-signature from the network.
func (n *Node) deliverCosig(ctx context.Context, data []byte) {
	c, err := ledger.ParseCosignature(data)
	if err != nil {
		return
	}
	if err := n.takeCosig(ctx, c); err != nil && ctx.Err() == nil {
		n.log.Warn("co-signature from the network", "height", c.Height, "validator", c.Validator.String(), "err", err)
	}
}

func (n *Node) takeCosig(ctx context.Context, c *ledger.Cosignature) error {
	n.cos.mu.Lock()
	head, err := n.store.Head(ctx)
	if err != nil {
		n.cos.mu.Unlock()
		return err
	}
	if c.Height > head.Height {
		defer n.cos.mu.Unlock()
		if c.LogSize <= head.LogSize {
			// A log this node has: the root must be its own.
			root, err := ledger.LogRoot(ledger.HashReaderOf(ctx, n.store), int64(c.LogSize))
			if err != nil {
				return err
			}
			if root != c.LogRoot {
				hdr, err := n.headerWithLogSize(ctx, c.LogSize, head)
				if err != nil {
					return fmt.Errorf("co-signature of a log of %d records with another root: %w", c.LogSize, err)
				}
				n.cosigConflict(ctx, c, hdr)
				return nil
			}
		}
		if c.Height > head.Height+cosignAhead {
			return nil // too far ahead: sync first
		}
		w := n.cos.ahead[c.Height]
		if w == nil {
			w = make(map[ledger.PublicKey]ledger.Cosignature)
			n.cos.ahead[c.Height] = w
		}
		if prev, ok := w[c.Validator]; ok {
			if prev.Checkpoint != c.Checkpoint {
				n.addEvidence(ctx, evidenceCheckpoint, append(prev.Format(), c.Format()...))
			}
			return nil
		}
		w[c.Validator] = *c
		return nil
	}
	n.cos.mu.Unlock()
	hdr, err := n.store.Header(ctx, c.Height)
	if err != nil {
		return err
	}
	if ledger.CheckpointOf(hdr) != c.Checkpoint {
		n.cosigConflict(ctx, c, hdr)
		return nil
	}
	if err := n.store.AddCosigs(ctx, sqlitestore.Cosig{Height: c.Height, Validator: c.Validator, Sig: c.Sig}); err != nil {
		return err
	}
	n.refreshNote(ctx, c.Height)
	return nil
}

// evidenceCheckpoint is the evidence kind of conflicting checkpoints.
const evidenceCheckpoint = "checkpoint"

// cosigConflict keeps a co-signature that conflicts with the block hdr
// this node committed (another block at its height, or another root for
// its log size) as evidence: the co-signature, then hdr's header and
// certificate.
func (n *Node) cosigConflict(ctx context.Context, c *ledger.Cosignature, hdr *ledger.Header) {
	data := append(c.Format(), hdr.Format()...)
	if b, err := n.store.Block(ctx, hdr.Height); err == nil && b.Certificate != nil {
		data = append(data, b.Certificate.Format()...)
	}
	n.log.Warn("co-signed checkpoint conflicts with the committed chain", "validator", c.Validator.String(),
		"height", c.Height, "block", c.Block.String(), "committed", hdr.Hash().String())
	n.addEvidence(ctx, evidenceCheckpoint, data)
}

// firstCosig returns the co-signature that checkpoint evidence starts
// with, or nil.
func firstCosig(data []byte) *ledger.Cosignature {
	if !ledger.IsCosignature(data) {
		return nil
	}
	i := bytes.Index(data, []byte("\nsig "))
	if i < 0 {
		return nil
	}
	j := bytes.IndexByte(data[i+1:], '\n')
	if j < 0 {
		return nil
	}
	c, err := ledger.ParseCosignature(data[:i+1+j+1])
	if err != nil {
		return nil
	}
	return c
}

// headerWithLogSize finds the header, at or below head, whose log size is
// size.
func (n *Node) headerWithLogSize(ctx context.Context, size uint64, head *ledger.Header) (*ledger.Header, error) {
	var ferr error
	i := sort.Search(int(head.Height)+1, func(i int) bool {
		h, err := n.store.Header(ctx, uint64(i))
		if err != nil {
			ferr = err
			return true
		}
		return h.LogSize >= size
	})
	if ferr != nil {
		return nil, ferr
	}
	h, err := n.store.Header(ctx, uint64(i))
	if err != nil {
		return nil, err
	}
	if h.LogSize != size {
		return nil, fmt.Errorf("no block ends the log at %d records: %w", size, ledger.ErrNotFound)
	}
	return h, nil
}

// refreshNote rebuilds the served note from the signatures stored for
// height, if they are a quorum and the note would be newer (or have more
// signatures) than the one served. It reports whether height has a quorum.
func (n *Node) refreshNote(ctx context.Context, height uint64) bool {
	if cur := n.cos.latest.Load(); cur != nil && cur.height > height {
		return false
	}
	vals := n.setFor(height)
	rows, err := n.store.Cosigs(ctx, height)
	if err != nil || len(rows) < vals.Quorum() {
		return false
	}
	hdr, err := n.store.Header(ctx, height)
	if err != nil {
		return false
	}
	cp := ledger.CheckpointOf(hdr)
	sigs := make([]ledger.Cosignature, 0, len(rows))
	for _, r := range rows {
		if vals.Contains(r.Validator) {
			sigs = append(sigs, ledger.Cosignature{Checkpoint: cp, Validator: r.Validator, Sig: r.Sig})
		}
	}
	if len(sigs) < vals.Quorum() {
		return false
	}
	msg, err := ledger.FormatNote(cp, vals, sigs)
	if err != nil {
		n.log.Error("format checkpoint note", "height", height, "err", err)
		return false
	}
	next := &cosignedNote{height: height, sigs: len(sigs), msg: msg}
	for {
		cur := n.cos.latest.Load()
		if cur != nil && (cur.height > height || cur.height == height && cur.sigs >= next.sigs) {
			return true
		}
		if n.cos.latest.CompareAndSwap(cur, next) {
			return true
		}
	}
}

// CosignedCheckpoint implements api.Backend.
func (b backend) CosignedCheckpoint(ctx context.Context) ([]byte, error) {
	if cur := b.n.cos.latest.Load(); cur != nil {
		return cur.msg, nil
	}
	return nil, fmt.Errorf("node: no co-signed checkpoint: %w", ledger.ErrNotFound)
}
