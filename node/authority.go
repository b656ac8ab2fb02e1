package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// Validator-set changes (ledger.AuthorityChange): the node follows the
// chain's validator set through its seal's ledger.Authorities, and keeps
// the changes proposed but not committed yet, with the votes collected for
// them, in an authority pool. Changes travel on the attest topic (they are
// validators' signed statements too) and enter a block once they carry the
// quorum of the set in force.
//
// The pool is durable: each change, with every vote collected, is in the
// store's pending journal under the id authorityJournalPrefix + its ID (no
// mempool id, a key, holds a space) before the pool shows it, and leaves
// the journal when a block commits it or it can no longer enter one. Open
// reloads the journal, and every authorityRegossipEvery the node publishes
// its pooled changes again, so that a restart loses no vote and a peer that
// was down or joined later learns what is collecting votes.

// maxProposedChanges bounds the authority pool.
const maxProposedChanges = 64

// authorityJournalPrefix starts the pending-journal id of a pooled change.
const authorityJournalPrefix = "vcsledger-authority/1 "

// authorityRegossipEvery is how often the pooled changes are published
// again.
const authorityRegossipEvery = 5 * time.Second

func authorityJournalID(id ledger.Hash) string { return authorityJournalPrefix + id.String() }

// isAuthorityJournalID reports whether a pending-journal id is a pooled
// change's rather than a mempool entry's.
func isAuthorityJournalID(id string) bool { return strings.HasPrefix(id, authorityJournalPrefix) }

// ErrAuthorityPoolFull is returned when the authority pool holds
// maxProposedChanges changes.
var ErrAuthorityPoolFull = errors.New("node: too many proposed authority changes")

// authPool holds proposed changes by ID, with every valid vote heard.
type authPool struct {
	mu sync.Mutex
	m  map[ledger.Hash]*ledger.AuthorityChange
}

// auth returns the validator-set history the node follows (its seal's).
func (n *Node) auth() *ledger.Authorities { return n.seal.Authorities() }

// current returns the validator set in force at the next height.
func (n *Node) current() *ledger.ValidatorSet {
	a := n.auth()
	vs, err := a.At(a.Through() + 1)
	if err != nil {
		return a.Genesis() // cannot happen: Through+1 is always known
	}
	return vs
}

// setFor returns the set in force at height h, or for a height not known
// yet the set after every committed change.
func (n *Node) setFor(h uint64) *ledger.ValidatorSet {
	if vs, err := n.auth().At(h); err == nil {
		return vs
	}
	return n.auth().Projected()
}

// member reports whether k is a validator now or will be once the
// committed changes are in force (a validator being added attests and
// votes as soon as it follows the chain).
func (n *Node) member(k ledger.PublicKey) bool {
	return n.current().Contains(k) || n.auth().Projected().Contains(k)
}

// isAuthorityMsg reports whether a payload of the attest topic is an
// authority change rather than an attestation.
func isAuthorityMsg(data []byte) bool {
	return bytes.HasPrefix(data, []byte("vcsledger-authority/1\n"))
}

// SubmitAuthority adds a proposed change, or votes for one, to the pool:
// c must follow the rules at the next height except for the number of its
// votes, carry at least one vote, and every vote must verify and be by a
// validator in force at the next height. Its votes are merged with those
// already heard for the same change. It returns the pooled change with every
// vote collected so far, durable in the store, and tells the peers when it
// heard a new vote.
func (n *Node) SubmitAuthority(ctx context.Context, c *ledger.AuthorityChange) (*ledger.AuthorityChange, error) {
	merged, added, err := n.addAuthority(ctx, c)
	if err != nil {
		return nil, err
	}
	if added {
		n.publish(ctx, topicAttest, merged.Format())
		n.kickPool()
	}
	return merged, nil
}

// addAuthority merges c into the pool, and into the journal before the
// pool shows it.
func (n *Node) addAuthority(ctx context.Context, c *ledger.AuthorityChange) (*ledger.AuthorityChange, bool, error) {
	if err := n.auth().CheckChange(c, false); err != nil {
		return nil, false, err
	}
	id := c.ID()
	p := &n.authPool
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[ledger.Hash]*ledger.AuthorityChange)
	}
	have := p.m[id]
	if have == nil && len(p.m) >= maxProposedChanges {
		return nil, false, ErrAuthorityPoolFull
	}
	next := *c
	next.Sigs = nil
	if have != nil {
		next.Sigs = slices.Clone(have.Sigs)
	}
	added := have == nil
	for _, v := range c.Sigs {
		if next.AddVote(v) {
			added = true
		}
	}
	if added {
		if err := n.store.PutPending(ctx, authorityJournalID(id), next.Format()); err != nil {
			return nil, false, fmt.Errorf("node: keep proposed authority change: %w", err)
		}
		p.m[id] = &next
	}
	out := *p.m[id]
	out.Sigs = slices.Clone(out.Sigs)
	return &out, added, nil
}

// loadAuthority fills the pool from the journal at Open: each change with
// the votes of validators in force at the next height, as long as it can
// still enter a block. The others leave the journal.
func (n *Node) loadAuthority(ctx context.Context) error {
	items, err := n.store.LoadPendingPrefix(ctx, authorityJournalPrefix)
	if err != nil {
		return fmt.Errorf("node: load proposed authority changes: %w", err)
	}
	vals := n.current()
	p := &n.authPool
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[ledger.Hash]*ledger.AuthorityChange)
	}
	var drop []string
	for _, it := range items {
		c, err := ledger.ParseAuthorityChange(it.Data)
		switch {
		case err != nil:
		case authorityJournalID(c.ID()) != it.ID:
			err = fmt.Errorf("journal id %.80q holds change %s", it.ID, c.ID())
		case len(p.m) >= maxProposedChanges:
			err = ErrAuthorityPoolFull
		default:
			c.Sigs = slices.DeleteFunc(c.Sigs, func(s ledger.CertSig) bool { return !vals.Contains(s.Validator) })
			err = errors.New("no vote left by a validator in force")
			if len(c.Sigs) > 0 {
				err = n.auth().CheckChange(c, false)
			}
		}
		if err != nil {
			n.log.Info("proposed authority change dropped", "id", it.ID, "err", err)
			drop = append(drop, it.ID)
			continue
		}
		p.m[c.ID()] = c
	}
	if len(p.m) > 0 {
		n.log.Info("proposed authority changes reloaded", "changes", len(p.m))
	}
	if err := n.store.DeletePending(ctx, drop...); err != nil {
		return fmt.Errorf("node: load proposed authority changes: %w", err)
	}
	return nil
}

// regossipAuthority publishes the pooled changes again every
// authorityRegossipEvery, until ctx ends.
func (n *Node) regossipAuthority(ctx context.Context) {
	if n.pow != nil {
		return // pow chains have no validator set
	}
	n.everyWithPeers(ctx, authorityRegossipEvery, func() {
		for _, c := range n.ProposedAuthority() {
			n.publish(ctx, topicAttest, c.Format())
		}
	})
}

// ProposedAuthority returns the changes in the pool, by effective height.
func (n *Node) ProposedAuthority() []ledger.AuthorityChange {
	p := &n.authPool
	p.mu.Lock()
	out := make([]ledger.AuthorityChange, 0, len(p.m))
	for _, c := range p.m {
		cp := *c
		cp.Sigs = slices.Clone(c.Sigs)
		out = append(out, cp)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Effective != out[j].Effective {
			return out[i].Effective < out[j].Effective
		}
		a, b := out[i].ID(), out[j].ID()
		return bytes.Compare(a[:], b[:]) < 0
	})
	return out
}

// pruneAuthority drops from the pool the changes a block committed and
// those that can no longer enter a block (stale, or made invalid by the
// committed changes).
func (n *Node) pruneAuthority(b *ledger.Block) {
	if n.pow != nil {
		return // pow chains have no validator set
	}
	committed := make(map[ledger.Hash]bool, len(b.Authority))
	for i := range b.Authority {
		committed[b.Authority[i].ID()] = true
	}
	a := n.auth()
	vals := n.current()
	p := &n.authPool
	p.mu.Lock()
	defer p.mu.Unlock()
	var drop []string
	for id, c := range p.m {
		if committed[id] {
			delete(p.m, id)
			drop = append(drop, authorityJournalID(id))
			continue
		}
		// Votes of validators no longer in the set cannot count. (The
		// journal keeps them until the change's next vote; a reload drops
		// them again.)
		c.Sigs = slices.DeleteFunc(c.Sigs, func(s ledger.CertSig) bool { return !vals.Contains(s.Validator) })
		err := errors.New("no vote left by a validator in force")
		if len(c.Sigs) > 0 {
			err = a.CheckChange(c, false)
		}
		if err != nil {
			n.log.Info("proposed authority change dropped", "change", c.String(), "err", err)
			delete(p.m, id)
			drop = append(drop, authorityJournalID(id))
		}
	}
	// A failure leaves them in the journal, which the next Open prunes.
	if err := n.store.DeletePending(n.runCtx, drop...); err != nil {
		n.log.Error("drop proposed authority changes from the journal", "err", err)
	}
}

// readyAuthority returns the pooled changes that may enter the block at
// height, in order, each with only the votes of the set in force there, and
// only while they reach its quorum and the rules accept them together.
func (n *Node) readyAuthority(height uint64) []ledger.AuthorityChange {
	a := n.auth()
	if a.Through()+1 != height {
		return nil
	}
	vals, err := a.At(height)
	if err != nil {
		return nil
	}
	var out []ledger.AuthorityChange
	for _, c := range n.ProposedAuthority() {
		c.Sigs = slices.DeleteFunc(c.Sigs, func(s ledger.CertSig) bool { return !vals.Contains(s.Validator) })
		if len(c.Sigs) < vals.Quorum() {
			continue
		}
		probe := &ledger.Block{Header: ledger.Header{Height: height}, Authority: append(slices.Clone(out), c)}
		if a.Check(probe) == nil {
			out = probe.Authority
		}
	}
	return out
}

// authorityWork reports whether the chain should make a block for the
// validator set's sake: a change is ready to enter one, or the chain has
// not reached the effective height of a committed change (blocks, empty if
// need be, carry it there, so that the changed set decides a block).
func (n *Node) authorityWork() bool {
	a := n.auth()
	head := a.Through()
	if len(a.Pending(head)) > 0 {
		return true
	}
	return len(n.readyAuthority(head+1)) > 0
}

// kickPool wakes the consensus loop as new mempool work does.
func (n *Node) kickPool() {
	select {
	case n.authChanged <- struct{}{}:
	default:
	}
}

// checkAuthorityMsg validates an authority change heard on the attest
// topic: well formed, of this chain, with votes that verify by members.
func (n *Node) checkAuthorityMsg(data []byte) error {
	c, err := ledger.ParseAuthorityChange(data)
	if err != nil {
		return err
	}
	if c.Chain != n.g.Chain {
		return fmt.Errorf("authority change for chain %q", c.Chain)
	}
	if len(c.Sigs) == 0 {
		return errors.New("authority change without a vote")
	}
	return c.VerifyVotes(n.current())
}

// deliverAuthorityMsg adds a change heard from a peer to the pool.
func (n *Node) deliverAuthorityMsg(data []byte) {
	c, err := ledger.ParseAuthorityChange(data)
	if err != nil {
		return
	}
	if _, added, err := n.addAuthority(n.runCtx, c); err != nil {
		n.log.Debug("authority change from a peer refused", "err", err)
	} else if added {
		n.kickPool()
	}
}

// maybeAttest starts the attester once this node's key is a validator, or
// is about to be one: from Open, and after each block.
func (n *Node) maybeAttest() error {
	if n.pow != nil && !n.cfg.Mine || n.pow == nil && !n.member(n.signer.Public()) {
		return nil // pow: miners attest what they include
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.attester != nil {
		return nil
	}
	return n.openAttester(n.runCtx)
}

// Authorities implements api.AuthorityBackend.
func (b backend) Authorities() *ledger.Authorities { return b.n.auth() }

// ProposedAuthority implements api.AuthorityBackend.
func (b backend) ProposedAuthority() []ledger.AuthorityChange { return b.n.ProposedAuthority() }

// SubmitAuthority implements api.AuthorityBackend.
func (b backend) SubmitAuthority(ctx context.Context, c *ledger.AuthorityChange) (*ledger.AuthorityChange, error) {
	got, err := b.n.SubmitAuthority(ctx, c)
	if errors.Is(err, ErrAuthorityPoolFull) {
		return nil, fmt.Errorf("%w: %v", api.ErrUnavailable, err)
	}
	return got, err
}
