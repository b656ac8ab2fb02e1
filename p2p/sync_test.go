package p2p

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// syncPair starts a server host serving src and a client host connected
// to it, and waits for the hello.
func syncPair(t testing.TB, g *ledger.Genesis, src BlockSource, cfgServer func(*Config)) (server, client *Host) {
	t.Helper()
	cfg := testConfig(g.Hash(), nil, src)
	if cfgServer != nil {
		cfgServer(&cfg)
	}
	server = startHost(t, cfg)
	client = startHost(t, testConfig(g.Hash(), nil, nil, server))
	eventually(t, 10*time.Second, "hello", func() bool { return hasPeers(client, server) })
	return server, client
}

func TestStatusAndHeads(t *testing.T) {
	c := buildChain(t, 1, 5, 2)
	server, client := syncPair(t, c.Genesis, c.Store, nil)
	ctx := context.Background()
	// The hello told the client the server's head.
	pi, _ := client.Peer(server.ID())
	if pi.Height != 5 || pi.Head != c.Head().Hash() {
		t.Errorf("peer head after hello = %d %s, want 5 %s", pi.Height, pi.Head, c.Head().Hash())
	}
	c.Next(ledgertest.Records(newRand(), 1000, 2))
	head, err := client.Status(ctx, server.ID())
	if err != nil {
		t.Fatal(err)
	}
	if head.Hash() != c.Head().Hash() {
		t.Errorf("Status = %d %s, want %d %s", head.Height, head.Hash(), 6, c.Head().Hash())
	}
	if pi, _ := client.Peer(server.ID()); pi.Height != 6 {
		t.Errorf("peer height after Status = %d, want 6", pi.Height)
	}
	// A block forwarded on the blocks topic raises the forwarder's head.
	waitMesh(t, 1, server, client)
	b7 := c.Next(ledgertest.Records(newRand(), 2000, 2))
	if err := server.Publish(ctx, TopicBlocks, b7.Format()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "head raised by the blocks topic", func() bool {
		pi, _ := client.Peer(server.ID())
		return pi.Height == 7 && pi.Head == b7.Hash()
	})
	hs, err := client.FetchHeaders(ctx, server.ID(), 2, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 6 || hs[0].Height != 2 || hs[5].Hash() != c.Head().Hash() {
		t.Errorf("FetchHeaders(2, 100) = %d headers", len(hs))
	}
	// Beyond the head: nothing.
	bs, err := client.FetchBlocks(ctx, server.ID(), 8, 10)
	if err != nil || len(bs) != 0 {
		t.Errorf("FetchBlocks(8, 10) = %d blocks, %v; want none", len(bs), err)
	}
	// A host without a source does not serve sync.
	if _, err := server.Status(ctx, client.ID()); err == nil {
		t.Errorf("Status of a host without source succeeded")
	}
}

func TestFetchBlocksLimits(t *testing.T) {
	c := buildChain(t, 1, 40, 50) // blocks of ~30 KiB
	server, client := syncPair(t, c.Genesis, c.Store, func(cfg *Config) {
		cfg.SyncMaxBlocks = 16
	})
	ctx := context.Background()
	bs, err := client.FetchBlocks(ctx, server.ID(), 1, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 16 {
		t.Errorf("FetchBlocks(1, 30) from a server capped at 16 = %d blocks", len(bs))
	}
	for i, b := range bs {
		if want := c.Blocks()[1+i]; b.Hash() != want.Hash() || len(b.Records) != 50 || b.Certificate == nil || len(b.Attestations) != 50 {
			t.Errorf("block %d differs from the chain's", 1+i)
		}
	}
	checkBlockCaps(t, client, server, c)
}

// checkBlockCaps asks server, capped at 16 blocks, for 30 blocks from
// height 1 under byte caps, and checks that it sends whole blocks up to
// the smaller of the client's and the server's cap, but always at least
// one, exactly as c encodes them.
func checkBlockCaps(t *testing.T, client, server *Host, c *ledgertest.Chain) {
	t.Helper()
	size := len(c.Blocks()[1].Format())
	for _, tc := range []struct{ maxBytes, want int }{
		{1, 1},
		{size, 1},
		{2*size + size/2, 2},
		{1 << 30, 16},
	} {
		items, err := client.request(context.Background(), server.ID(), &request{Kind: reqBlocks, From: 1, Count: 30, MaxBytes: tc.maxBytes},
			responseLimits{items: 30, itemSize: ledger.MaxBlockBytes, total: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != tc.want {
			t.Errorf("blocks request with max bytes %d = %d blocks, want %d", tc.maxBytes, len(items), tc.want)
		}
		for i, data := range items {
			if want := c.Blocks()[1+i].Format(); !bytes.Equal(data, want) {
				t.Errorf("block %d served differs from the chain's", 1+i)
			}
		}
	}
}

// TestSyncFromGenesis syncs a brand-new replica: 1,100 blocks.
func TestSyncFromGenesis(t *testing.T) {
	const blocks = 1050
	c := buildChain(t, 1, blocks, 2)
	server, client := syncPair(t, c.Genesis, c.Store, nil)
	store := freshStore(t, c.Genesis)
	var mu sync.Mutex
	var appended []uint64
	var progress []SyncProgress
	s, err := NewSyncer(client, SyncConfig{
		Store: store,
		Seal:  newSeal(t, c.Genesis),
		OnAppend: func(ctx context.Context, b *ledger.Block) {
			mu.Lock()
			appended = append(appended, b.Header.Height)
			mu.Unlock()
		},
		OnProgress: func(p SyncProgress) { mu.Lock(); progress = append(progress, p); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("synced %d blocks in %v", blocks, time.Since(start))
	sameChain(t, store, c.Store)
	mu.Lock()
	if len(appended) != blocks || appended[0] != 1 || !slices.IsSorted(appended) {
		t.Errorf("OnAppend called for %d blocks (first %v), want 1..%d in order", len(appended), appended[:min(1, len(appended))], blocks)
	}
	last := progress[len(progress)-1]
	if last.Syncing || last.Height != blocks || last.Target != blocks || last.Blocks != blocks || last.Records != 2*blocks {
		t.Errorf("last progress = %+v", last)
	}
	mu.Unlock()
	if p := s.Progress(); p.Syncing || p.Height != blocks {
		t.Errorf("Progress() = %+v", p)
	}
	// Caught up: another Sync does nothing.
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if p := s.Progress(); p.Blocks != blocks {
		t.Errorf("second Sync appended %d blocks", p.Blocks-blocks)
	}
	_ = server
}

// TestSyncTampered: a peer ahead of an honest one serves a tampered block.
// The syncer detects it, stores nothing invalid, bans the peer and
// finishes from the honest one.
func TestSyncTampered(t *testing.T) {
	c := buildChain(t, 4, 24, 2)
	const at, honestHead = 12, 18
	tests := []struct {
		name   string
		tamper func(*ledger.Block)
	}{
		{"flipped record byte", func(b *ledger.Block) {
			r := []byte(b.Records[1].Tree)
			if r[10] == 'A' {
				r[10] = 'B'
			} else {
				r[10] = 'A'
			}
			b.Records[1].Tree = string(r)
		}},
		{"bad certificate signature", func(b *ledger.Block) { b.Certificate.Sigs[0].Sig[5] ^= 1 }},
		{"certificate short of quorum", func(b *ledger.Block) { b.Certificate.Sigs = b.Certificate.Sigs[:2] }},
		{"no certificate", func(b *ledger.Block) { b.Certificate = nil }},
		{"missing attestation", func(b *ledger.Block) { b.Attestations = b.Attestations[1:] }},
		{"other header", func(b *ledger.Block) { b.Header.Time++ }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			honest := startHost(t, testConfig(c.Genesis.Hash(), nil, limitSource{c.Store, honestHead}))
			bad := startHost(t, testConfig(c.Genesis.Hash(), nil, tamperSource{c.Store, at, tc.tamper}))
			client := startHost(t, testConfig(c.Genesis.Hash(), nil, nil, honest, bad))
			eventually(t, 10*time.Second, "hello", func() bool { return hasPeers(client, honest, bad) })
			store := freshStore(t, c.Genesis)
			checked := &checkingStore{MemStore: store, seal: newSeal(t, c.Genesis), t: t}
			s, err := NewSyncer(client, SyncConfig{Store: checked, Seal: newSeal(t, c.Genesis), Batch: 4})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			head, _ := store.Head(ctx)
			if head.Height != honestHead {
				t.Fatalf("head after sync = %d, want the honest peer's %d", head.Height, honestHead)
			}
			samePrefix(t, store, c.Store, honestHead)
			if !slices.Contains(client.Blocked(), bad.ID()) {
				t.Errorf("the tampering peer is not banned")
			}
			if slices.Contains(client.Blocked(), honest.ID()) {
				t.Errorf("the honest peer is banned")
			}
			if connected(client, bad) {
				t.Errorf("still connected to the tampering peer")
			}
		})
	}
}

// TestSyncBadBlockMidRange: the only peer serves a bad block in the middle
// of a range the syncer fetched in one request and verifies ahead of its
// writes. The blocks before it are stored, it and every block after it
// are not, and the peer is banned.
func TestSyncBadBlockMidRange(t *testing.T) {
	// Ranges of 1, 2, 4, 8 and 16 blocks from height 1: 21 is inside the
	// range 16 to 31.
	const blocks, at = 40, 21
	c := buildChain(t, 4, blocks, 2)
	for _, tc := range []struct {
		name   string
		tamper func(*ledger.Block)
	}{
		{"log root", func(b *ledger.Block) { b.Header.LogRoot[0] ^= 1 }},
		{"bad certificate signature", func(b *ledger.Block) { b.Certificate.Sigs[0].Sig[5] ^= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := startHost(t, testConfig(c.Genesis.Hash(), nil, tamperSource{c.Store, at, tc.tamper}))
			client := startHost(t, testConfig(c.Genesis.Hash(), nil, nil, bad))
			eventually(t, 10*time.Second, "hello", func() bool { return hasPeers(client, bad) })
			store := freshStore(t, c.Genesis)
			var mu sync.Mutex
			var appended []uint64
			s, err := NewSyncer(client, SyncConfig{
				Store: &checkingStore{MemStore: store, seal: newSeal(t, c.Genesis), t: t},
				Seal:  newSeal(t, c.Genesis),
				Batch: 32,
				OnAppend: func(ctx context.Context, b *ledger.Block) {
					mu.Lock()
					appended = append(appended, b.Header.Height)
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			samePrefix(t, store, c.Store, at-1)
			mu.Lock()
			if len(appended) != at-1 || appended[len(appended)-1] != at-1 {
				t.Errorf("OnAppend called for %d blocks, up to %v; want 1 to %d", len(appended), appended[len(appended)-1:], at-1)
			}
			mu.Unlock()
			if !slices.Contains(client.Blocked(), bad.ID()) {
				t.Errorf("the peer serving block %d tampered is not banned", at)
			}
		})
	}
}

// TestSyncCancelled: a sync cancelled while blocks are fetched and
// verified ahead leaves the store at the last block it stored, each one
// whole and valid; the next Sync goes on from there.
func TestSyncCancelled(t *testing.T) {
	const blocks, stopAt = 300, 50
	c := buildChain(t, 1, blocks, 2)
	_, client := syncPair(t, c.Genesis, c.Store, nil)
	store := freshStore(t, c.Genesis)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var appended atomic.Int64
	s, err := NewSyncer(client, SyncConfig{
		Store: &checkingStore{MemStore: store, seal: newSeal(t, c.Genesis), t: t},
		Seal:  newSeal(t, c.Genesis),
		Batch: 64,
		OnAppend: func(context.Context, *ledger.Block) {
			if appended.Add(1) == stopAt {
				cancel()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync cancelled = %v, want context.Canceled", err)
	}
	samePrefix(t, store, c.Store, stopAt)
	head, _ := store.Head(context.Background())
	if root, err := ledger.LogRoot(ledger.HashReaderOf(context.Background(), store), int64(head.LogSize)); err != nil || root != head.LogRoot {
		t.Errorf("log root of the stored hashes = %v, %v; want the head's %v", root, err, head.LogRoot)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sameChain(t, store, c.Store)
	if n := appended.Load(); n != blocks {
		t.Errorf("OnAppend called %d times, want %d", n, blocks)
	}
}

// A checkingStore fails the test if a block that does not pass the seal
// check reaches Append.
type checkingStore struct {
	*ledgertest.MemStore
	seal poaSeal
	t    testing.TB
}

func (s *checkingStore) Append(ctx context.Context, b *ledger.Block, hashes []ledger.Hash) error {
	parent, err := s.MemStore.Head(ctx)
	if err != nil {
		return err
	}
	if _, err := ledger.ValidateNext(ctx, s.MemStore, parent, b, s.seal); err != nil {
		s.t.Errorf("invalid block reached Append: %v", err)
	}
	return s.MemStore.Append(ctx, b, hashes)
}

// TestSyncRacesConsensus appends blocks "from consensus" under the same
// lock while the syncer runs: every block is stored once, nothing fails.
func TestSyncRacesConsensus(t *testing.T) {
	const blocks = 200
	c := buildChain(t, 1, blocks, 1)
	_, client := syncPair(t, c.Genesis, c.Store, nil)
	store := freshStore(t, c.Genesis)
	var lock sync.Mutex
	var synced int
	s, err := NewSyncer(client, SyncConfig{
		Store: store, Seal: newSeal(t, c.Genesis), Lock: &lock, Batch: 16,
		OnAppend: func(context.Context, *ledger.Block) { synced++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var consensus int
	done := make(chan error, 1)
	go func() {
		seal := newSeal(t, c.Genesis)
		for _, b := range c.Blocks()[1:] {
			lock.Lock()
			err := ledger.AppendNext(ctx, store, b, seal)
			lock.Unlock()
			switch {
			case err == nil:
				consensus++
			case errors.Is(err, ledger.ErrInvalidBlock):
				// The syncer stored it first: height no longer next.
			default:
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sameChain(t, store, c.Store)
	if synced+consensus != blocks {
		t.Errorf("syncer stored %d, consensus %d: want %d in all", synced, consensus, blocks)
	}
	t.Logf("syncer stored %d blocks, consensus %d", synced, consensus)
}

// TestSyncerRun: the background loop catches up when kicked.
func TestSyncerRun(t *testing.T) {
	c := buildChain(t, 1, 20, 1)
	server := startHost(t, testConfig(c.Genesis.Hash(), nil, c.Store))
	client := startHost(t, testConfig(c.Genesis.Hash(), nil, nil))
	store := freshStore(t, c.Genesis)
	s, err := NewSyncer(client, SyncConfig{Store: store, Seal: newSeal(t, c.Genesis), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The new peer's hello kicks the loop.
	if err := client.Connect(ctx, server.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "synced to 20", func() bool { h, _ := store.Head(ctx); return h.Height == 20 })
	c.Next(ledgertest.Records(newRand(), 5000, 1))
	s.Kick()
	eventually(t, 10*time.Second, "synced to 21", func() bool { h, _ := store.Head(ctx); return h.Height == 21 })
}
