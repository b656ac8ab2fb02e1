package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/ledger"
)

// Sync on a pow chain: a peer's head that this node does not know is a
// branch to fetch. The peer serves its main chain by height
// (/vcsledger/<chain>/sync/1), so this node walks the peer's headers down
// from the lower of the two heads until it meets a block it knows (the
// fork), then fetches the peer's blocks above the fork and accepts them
// like gossiped ones: the fork choice decides whether the chain switches.
// The p2p Syncer is not used: it follows one chain by height and treats a
// different block at a known height as a fault.

const (
	powSyncEvery   = 2 * time.Second // how often peers' heads are asked for
	powSyncHeaders = 256             // headers per request while looking for the fork
	powSyncBlocks  = 64              // blocks per request
	powSyncTimeout = 30 * time.Second
)

// powSyncLoop syncs from every peer every powSyncEvery, and from one peer
// when an orphan block from it kicks the loop.
func (n *Node) powSyncLoop(ctx context.Context) {
	t := time.NewTicker(powSyncEvery)
	defer t.Stop()
	for {
		var only peer.ID
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case only = <-n.pow.kick:
		}
		if n.host == nil {
			continue
		}
		for _, p := range n.host.Peers() {
			if only != "" && p.ID != only {
				continue
			}
			if err := n.powSyncFrom(ctx, p.ID); err != nil && ctx.Err() == nil {
				n.log.Debug("pow sync", "peer", p.ID, "err", err)
			}
		}
	}
}

func (n *Node) known(h ledger.Hash) bool {
	n.pow.mu.Lock()
	defer n.pow.mu.Unlock()
	return n.pow.tree.Get(h) != nil
}

// powSyncFrom fetches p's branch if its head is unknown here. A peer whose
// head is a block this node found invalid, or that serves one, is struck
// (p2p.Host.Strike): ten strikes in ten minutes ban it, as for gossip.
func (n *Node) powSyncFrom(ctx context.Context, p peer.ID) error {
	ctx, cancel := context.WithTimeout(ctx, powSyncTimeout)
	defer cancel()
	head, err := n.host.Status(ctx, p)
	if err != nil {
		return err
	}
	ps := n.pow
	ps.mu.Lock()
	x, pruned := ps.tree.Get(head.Hash()), ps.pruned[head.Hash()]
	top := min(head.Height, ps.tree.Best().Header.Height)
	if x == nil && !pruned {
		ps.syncing = true
	}
	ps.mu.Unlock()
	switch {
	case x != nil && x.Invalid:
		err := fmt.Errorf("%w: the peer's head %d %s is on a branch that failed validation", errBadBlock, head.Height, head.Hash())
		n.host.Strike(p, err)
		return err
	case x != nil || pruned:
		return nil
	}
	defer func() {
		ps.mu.Lock()
		ps.syncing = false
		ps.mu.Unlock()
	}()
	fork, err := n.findFork(ctx, p, top)
	if err != nil {
		return err
	}
	for from := fork + 1; from <= head.Height; {
		bs, err := n.host.FetchBlocks(ctx, p, from, int(min(powSyncBlocks, head.Height-from+1)))
		if err != nil {
			return err
		}
		if len(bs) == 0 {
			return nil // the peer's chain changed meanwhile
		}
		for _, b := range bs {
			if err := n.accept(ctx, b, p); err != nil {
				if errors.Is(err, errBadBlock) {
					n.host.Strike(p, err)
				}
				return fmt.Errorf("block %d from %s: %w", b.Header.Height, p, err)
			}
		}
		from += uint64(len(bs))
	}
	return nil
}

// findFork returns the highest height at or below top at which p's main
// chain has a block this node knows.
func (n *Node) findFork(ctx context.Context, p peer.ID, top uint64) (uint64, error) {
	for hi := top; ; {
		lo := hi - min(hi, powSyncHeaders-1)
		hs, err := n.host.FetchHeaders(ctx, p, lo, int(hi-lo+1))
		if err != nil {
			return 0, err
		}
		for i := len(hs) - 1; i >= 0; i-- {
			if n.known(hs[i].Hash()) {
				return hs[i].Height, nil
			}
		}
		if lo == 0 {
			return 0, fmt.Errorf("peer %s shares no block with this node", p)
		}
		hi = lo - 1
	}
}
