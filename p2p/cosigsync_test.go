package p2p

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// cosigStore serves a chain's blocks and, for sync/2, co-signatures of
// its checkpoints by every validator, or what serve returns when set.
type cosigStore struct {
	*ledgertest.MemStore
	c     *ledgertest.Chain
	serve func(from uint64, count int) []ledger.Cosignature
}

func (s cosigStore) Cosignatures(ctx context.Context, from uint64, count int) ([]ledger.Cosignature, error) {
	if s.serve != nil {
		return s.serve(from, count), nil
	}
	var out []ledger.Cosignature
	for h := from; h < from+uint64(count) && h < uint64(len(s.c.Blocks())); h++ {
		for _, v := range s.c.Signers {
			out = append(out, ledger.Cosign(v, ledger.CheckpointOf(&s.c.Blocks()[h].Header)))
		}
	}
	return out, nil
}

// TestFetchCosigs: a host whose source serves co-signatures answers sync/2
// cosigs requests with those of the heights asked; one that serves blocks
// only speaks sync/1 and answers no cosigs request (no blame); a server
// that answers co-signatures of other heights, of another chain or that
// fail the caller's check is struck, and nothing it sent is returned.
func TestFetchCosigs(t *testing.T) {
	c := buildChain(t, 4, 6, 1)
	ctx := context.Background()
	src := cosigStore{MemStore: c.Store, c: c}
	server, client := syncPair(t, c.Genesis, src, nil)
	valid := func(cs *ledger.Cosignature) error { return cs.Verify() }
	got, err := client.FetchCosigs(ctx, server.ID(), 3, 2, valid)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 || got[0].Height != 3 || got[7].Height != 4 || got[0].Checkpoint != ledger.CheckpointOf(&c.Blocks()[3].Header) {
		t.Fatalf("FetchCosigs(3, 2) = %d co-signatures (%+v)", len(got), got)
	}
	// Beyond the head: nothing, no error.
	if got, err := client.FetchCosigs(ctx, server.ID(), 7, 10, valid); err != nil || len(got) != 0 {
		t.Errorf("FetchCosigs(7, 10) = %d, %v; want none", len(got), err)
	}
	// The request is refused on sync/1.
	if _, err := client.request(ctx, server.ID(), &request{Kind: reqCosigs, From: 1, Count: 1}, responseLimits{items: 10, itemSize: 1024, total: 1 << 20}); err == nil {
		t.Errorf("a cosigs request on sync/1 was answered")
	}

	// A sync/1-only server.
	old, client2 := syncPair(t, c.Genesis, c.Store, nil)
	if _, err := client2.FetchCosigs(ctx, old.ID(), 1, 1, valid); err == nil {
		t.Errorf("FetchCosigs from a sync/1 server = nil error")
	}
	if pi, _ := client2.Peer(old.ID()); pi.Invalid != 0 {
		t.Errorf("asking a sync/1 server struck it (%d)", pi.Invalid)
	}

	// Lying servers.
	cp := func(h int) ledger.Checkpoint { return ledger.CheckpointOf(&c.Blocks()[h].Header) }
	bad := ledger.Cosign(c.Signers[0], cp(2))
	bad.Sig[0] ^= 1
	ocp := cp(2)
	ocp.Chain = "other"
	for name, serve := range map[string]func(uint64, int) []ledger.Cosignature{
		"height below": func(uint64, int) []ledger.Cosignature {
			return []ledger.Cosignature{ledger.Cosign(c.Signers[0], cp(1))}
		},
		"height above": func(uint64, int) []ledger.Cosignature {
			return []ledger.Cosignature{ledger.Cosign(c.Signers[0], cp(5))}
		},
		"out of order": func(uint64, int) []ledger.Cosignature {
			return []ledger.Cosignature{ledger.Cosign(c.Signers[0], cp(3)), ledger.Cosign(c.Signers[0], cp(2))}
		},
		"another chain": func(uint64, int) []ledger.Cosignature { return []ledger.Cosignature{ledger.Cosign(c.Signers[0], ocp)} },
		"bad signature": func(uint64, int) []ledger.Cosignature { return []ledger.Cosignature{bad} },
		"valid then junk": func(uint64, int) []ledger.Cosignature {
			return []ledger.Cosignature{ledger.Cosign(c.Signers[0], cp(2)), bad}
		},
	} {
		t.Run(name, func(t *testing.T) {
			liar, cl := syncPair(t, c.Genesis, cosigStore{MemStore: c.Store, c: c, serve: serve}, nil)
			got, err := cl.FetchCosigs(ctx, liar.ID(), 2, 2, valid)
			if !errors.Is(err, ErrProtocol) || got != nil {
				t.Errorf("FetchCosigs = %d, %v; want ErrProtocol and nothing", len(got), err)
			}
			eventually(t, 5*time.Second, "the liar struck", func() bool { pi, _ := cl.Peer(liar.ID()); return pi.Invalid == 1 })
		})
	}
}
