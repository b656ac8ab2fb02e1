package p2p

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/ledger"
)

// Version 2 of the sync protocol, /vcsledger/<chain>/sync/2, serves every
// request of version 1 and one more:
//
//	cosigs <from> <count>\n
//
// whose items are the validators' co-signatures of the checkpoints of the
// blocks at heights from to from+count-1 that the server stores
// (ledger.Cosignature.Format, docs/FORMAT.md "Checkpoints"), in height
// order, at most MaxCosigHeights heights and maxCosigItems items. Nodes
// gossip co-signatures once, as they make them; a node that was down, or
// is new, asks its peers for those of its head with this request, so that
// it can serve a checkpoint note signed by a quorum without waiting for
// the next block. A server registers sync/2 only when its Source is a
// CosigSource; a client asking a peer that runs version 1 only gets an
// error and asks another peer.
const (
	// MaxCosigHeights is the most heights one cosigs request covers.
	MaxCosigHeights = 64
	maxCosigItems   = 8192
)

// A CosigSource is a BlockSource that also serves co-signatures of
// checkpoints (sync/2).
type CosigSource interface {
	BlockSource
	// Cosignatures returns the co-signatures stored for the blocks at
	// heights from to from+count-1, in height order. It returns what it
	// has (nothing, for heights it does not have).
	Cosignatures(ctx context.Context, from uint64, count int) ([]ledger.Cosignature, error)
}

func (h *Host) serveCosigs(ctx context.Context, item func([]byte) error, req *request) error {
	src, ok := h.cfg.Source.(CosigSource)
	if !ok {
		return fmt.Errorf("%w: no co-signatures here", errServe)
	}
	cs, err := src.Cosignatures(ctx, req.From, min(req.Count, MaxCosigHeights))
	if err != nil {
		return fmt.Errorf("%w: %v", errServe, err)
	}
	for i := range cs[:min(len(cs), maxCosigItems)] {
		if err := item(cs[i].Format()); err != nil {
			return err
		}
	}
	return nil
}

// FetchCosigs asks p (over sync/2) for the co-signatures of the
// checkpoints of the blocks at heights from to from+count-1 (count at most
// MaxCosigHeights). Each must parse, be of our chain and of a height in
// the range, in height order, and pass check (the caller's: the signer is
// a validator of that height, the signature verifies); a peer that sends
// anything else is struck, as for invalid gossip, and nothing is returned.
// A peer that does not run sync/2 answers an error.
func (h *Host) FetchCosigs(ctx context.Context, p peer.ID, from uint64, count int, check func(*ledger.Cosignature) error) ([]ledger.Cosignature, error) {
	count = max(1, min(count, MaxCosigHeights))
	items, err := h.requestOn(ctx, p, h.sync2ID, &request{Kind: reqCosigs, From: from, Count: count},
		responseLimits{items: maxCosigItems, itemSize: ledger.MaxCosignatureBytes, total: maxCosigItems * ledger.MaxCosignatureBytes})
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Cosignature, 0, len(items))
	last := from
	for _, data := range items {
		c, err := ledger.ParseCosignature(data)
		switch {
		case err != nil:
		case c.Chain != h.cfg.Chain:
			err = fmt.Errorf("co-signature of chain %q", c.Chain)
		case c.Height < last || c.Height-from >= uint64(count):
			err = fmt.Errorf("co-signature of height %d, asked for %d from %d", c.Height, count, from)
		case check != nil:
			err = check(c)
		}
		if err != nil {
			err = fmt.Errorf("p2p: co-signatures from %s: %w: %v", p, ErrProtocol, err)
			h.strike(p, err)
			return nil, err
		}
		last = c.Height
		out = append(out, *c)
	}
	return out, nil
}
