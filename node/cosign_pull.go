package node

import (
	"context"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/p2p"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// Co-signatures a node missed (docs/FORMAT.md, "Checkpoints").
//
// Validators gossip each co-signature once, when they make it. A node that
// was down while blocks were committed, or that syncs a chain from an
// empty database, gets the blocks from its peers but hears none of those
// signatures, so it would have no checkpoint note with a quorum until the
// next block. It asks its peers for them instead (sync/2 "cosigs"
// requests, p2p/cosigsync.go): whenever its newest note is older than its
// head, right after a peer passes the hello, and otherwise when its head
// has lacked a note for a whole cosignPullEvery (blocks made a moment ago
// get their signatures by gossip). It asks for the newest cosignPullHeights
// heights up to its head, one peer after the other, until it has a note
// for its head. Every co-signature is checked as one from gossip is, then
// stored or kept as evidence (takeCosig).
const (
	cosignPullEvery   = 2 * time.Second
	cosignPullHeights = 16
)

// cosigSource serves the node's store to the sync protocol, with the
// stored co-signatures of checkpoints (p2p.CosigSource).
type cosigSource struct {
	*sqlitestore.Store
}

// The sync protocol serves the store's blocks from their stored encodings
// (sqlitestore.Store.BlockBytes), with co-signatures or without.
var (
	_ p2p.BlockBytesSource = (*sqlitestore.Store)(nil)
	_ p2p.BlockBytesSource = cosigSource{}
)

// Cosignatures implements p2p.CosigSource.
func (s cosigSource) Cosignatures(ctx context.Context, from uint64, count int) ([]ledger.Cosignature, error) {
	var out []ledger.Cosignature
	for h := from; h-from < uint64(count); h++ {
		rows, err := s.Cosigs(ctx, h)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			continue
		}
		hdr, err := s.Header(ctx, h)
		if err != nil {
			return nil, err
		}
		cp := ledger.CheckpointOf(hdr)
		for _, r := range rows {
			out = append(out, ledger.Cosignature{Checkpoint: cp, Validator: r.Validator, Sig: r.Sig})
		}
	}
	return out, nil
}

// cosignPullLoop asks peers for co-signatures while the node has no note
// for its head (see above).
func (n *Node) cosignPullLoop(ctx context.Context) {
	t := time.NewTicker(cosignPullEvery)
	defer t.Stop()
	var lacking uint64 // the head that lacked a note at the last tick
	for {
		now := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.cos.pull:
			now = true
		}
		head, err := n.store.Head(ctx)
		if err != nil || head.Height == 0 {
			continue
		}
		if cur := n.cos.latest.Load(); cur != nil && cur.height >= head.Height {
			continue
		}
		if !now && lacking != head.Height {
			lacking = head.Height
			continue
		}
		n.pullCosigs(ctx, head.Height)
	}
}

// cosignPullKick makes the pull loop ask now (a peer passed the hello).
func (n *Node) cosignPullKick() {
	select {
	case n.cos.pull <- struct{}{}:
	default:
	}
}

// pullCosigs asks the peers, one after the other, for the co-signatures of
// the heights up to head, until the node has a note for head.
func (n *Node) pullCosigs(ctx context.Context, head uint64) {
	if n.host == nil {
		return
	}
	from := head - min(head-1, cosignPullHeights-1)
	for _, p := range n.host.Peers() {
		if p.Height != 0 && p.Height < from {
			continue // behind us: it has none of these
		}
		cs, err := n.host.FetchCosigs(ctx, p.ID, from, int(head-from+1), n.checkCosig)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.log.Debug("co-signatures from peer", "peer", p.ID, "err", err)
			continue
		}
		for i := range cs {
			if err := n.takeCosig(ctx, &cs[i]); err != nil && ctx.Err() == nil {
				n.log.Warn("co-signature from a peer", "peer", p.ID, "height", cs[i].Height, "err", err)
			}
		}
		if cur := n.cos.latest.Load(); cur != nil && cur.height >= head {
			n.log.Info("co-signed checkpoint recovered from a peer", "height", head, "peer", p.ID)
			return
		}
	}
}
