package p2p

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// TestSyncRefusesCommittedKey: a block certified by the whole validator
// set, whose header, log root and attestations are right, but which holds
// a key committed in an earlier block, is refused. The Syncer leaves that
// check to the store's Append (ErrConflict), which refuses the block
// whole; the peer serving it is banned.
func TestSyncRefusesCommittedKey(t *testing.T) {
	const per = 3
	c := buildChain(t, 4, 2, per)
	again := c.Blocks()[1].Records[0]
	again.Commit = "0123456789abcdef0123456789abcdef01234567"
	recs := append(ledgertest.Records(newRand(), 100, per-1), again)
	bad, _ := c.Unsealed(recs)
	bad.Certificate = c.Certify(bad, nil)

	liar := startHost(t, testConfig(c.Genesis.Hash(), nil, extraBlock{c.Store, bad}))
	client := startHost(t, testConfig(c.Genesis.Hash(), nil, nil, liar))
	eventually(t, 10*time.Second, "hello", func() bool { return hasPeers(client, liar) })
	store := freshStore(t, c.Genesis)
	s, err := NewSyncer(client, SyncConfig{Store: store, Seal: newSeal(t, c.Genesis)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync = %v", err)
	}
	if head, _ := store.Head(ctx); head.Height != 2 {
		t.Fatalf("head after sync = %d, want 2 (the bad block 3 refused)", head.Height)
	}
	if e, err := store.Lookup(ctx, again.Key); err != nil || e.Height != 1 || e.Record.Commit == again.Commit {
		t.Errorf("Lookup(%s) = %+v, %v; want block 1's record", again.Key, e, err)
	}
	if !slices.Contains(client.Blocked(), liar.ID()) {
		t.Errorf("the peer serving a committed key again is not banned")
	}
}

// extraBlock serves a store's blocks and then b, as its head.
type extraBlock struct {
	*ledgertest.MemStore
	b *ledger.Block
}

func (s extraBlock) Head(ctx context.Context) (*ledger.Header, error) { return &s.b.Header, nil }

func (s extraBlock) Headers(ctx context.Context, from uint64, limit int) ([]ledger.Header, error) {
	hs, err := s.MemStore.Headers(ctx, from, limit)
	if err == nil && len(hs) < limit && from <= s.b.Header.Height {
		hs = append(hs, s.b.Header)
	}
	return hs, err
}

func (s extraBlock) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	if height == s.b.Header.Height {
		return s.b, nil
	}
	return s.MemStore.Block(ctx, height)
}
