package main

import (
	"context"
	"fmt"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
)

// finalCheckpoint returns, for a verified head h of a pow chain, the
// newest final header of its chain (buried under the genesis's
// confirmations) as a checkpoint, or nil when the chain is shorter. The
// headers from it to h are fetched from the node and must link to each
// other and carry their work. On a pow chain the client remembers only
// final checkpoints: a newer block may still be replaced by a heavier
// branch, which is no rollback.
func (lc *ledgerClient) finalCheckpoint(ctx context.Context, cn conn, h *ledger.Header) (*api.Checkpoint, *ledger.Header, error) {
	conf := lc.g.Confirmations
	if h.Height+1 < conf || h.Height == 0 {
		return nil, nil, nil
	}
	from := h.Height + 1 - conf
	page, err := cn.c.Blocks(ctx, from, int(conf))
	if err != nil {
		return nil, nil, fmt.Errorf("node %s: headers %d to %d: %w", cn.url, from, h.Height, err)
	}
	var hs []*ledger.Header
	for _, bi := range page.Blocks {
		x, err := ledger.ParseHeader([]byte(bi.Header))
		if err != nil {
			return nil, nil, securityErrorf("node %s: header %d: %v", cn.url, bi.Height, err)
		}
		if x.Height > h.Height {
			break
		}
		hs = append(hs, x)
	}
	if len(hs) == 0 || hs[0].Height != from || hs[len(hs)-1].Height != h.Height {
		// The node's chain moved on meanwhile (or was reorganized): pin
		// nothing this time.
		return nil, nil, nil
	}
	if hs[len(hs)-1].Hash() != h.Hash() {
		return nil, nil, nil
	}
	for i, x := range hs {
		if x.Height > 0 {
			if err := consensus.CheckWork(x); err != nil {
				return nil, nil, securityErrorf("node %s: block %d: %v", cn.url, x.Height, err)
			}
		}
		if i > 0 && x.Prev != hs[i-1].Hash() {
			return nil, nil, securityErrorf("node %s: block %d does not link to block %d", cn.url, x.Height, hs[i-1].Height)
		}
	}
	cp := api.NewCheckpoint(hs[0], nil)
	return &cp, hs[0], nil
}
