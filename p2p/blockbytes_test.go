package p2p

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/sqlitestore"
	"github.com/vcsledger/vcsledger/sqlitestore/sqlitestoretest"
)

var _ BlockBytesSource = (*sqlitestore.Store)(nil)

// sqliteCopy returns a SQLite store in a temporary directory holding c's
// blocks.
func sqliteCopy(t *testing.T, c *ledgertest.Chain) *sqlitestore.Store {
	t.Helper()
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := ledger.InitStore(ctx, s, c.Genesis); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Blocks()[1:] {
		if err := s.Append(ctx, b, c.Stored(b.Header.Height)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestServeBlockBytes: a host serving a SQLite store sends its stored
// encodings (BlockBytes), within the same caps, and a replica syncs from
// it.
func TestServeBlockBytes(t *testing.T) {
	c := buildChain(t, 4, 40, 50) // blocks of ~30 KiB, 2 attestations a record
	src := sqliteCopy(t, c)
	server, client := syncPair(t, c.Genesis, src, func(cfg *Config) { cfg.SyncMaxBlocks = 16 })
	ctx := context.Background()
	checkBlockCaps(t, client, server, c)

	store := freshStore(t, c.Genesis)
	s, err := NewSyncer(client, SyncConfig{Store: store, Seal: newSeal(t, c.Genesis)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sameChain(t, store, c.Store)
}

// TestServeCorruptBlockBytes: a block the server's store finds corrupt
// when it reads its stored encodings is reported to the client in an
// error line, which does not count against the server.
func TestServeCorruptBlockBytes(t *testing.T) {
	c := buildChain(t, 4, 20, 5)
	src := sqliteCopy(t, c)
	path := src.Path()
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	// Records 20 to 24 are block 5's. Record 22 gets another commit, which
	// Block would parse and serve; BlockBytes finds that its bytes do not
	// hash to its stored leaf hash.
	if err := sqlitestoretest.FlipCommit(path, c.Blocks()[5].Records[2].Commit); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	server, client := syncPair(t, c.Genesis, src, nil)
	if bs, err := client.FetchBlocks(ctx, server.ID(), 1, 4); err != nil || len(bs) != 4 {
		t.Fatalf("FetchBlocks(1, 4) = %d blocks, %v; want 4", len(bs), err)
	}
	_, err = client.FetchBlocks(ctx, server.ID(), 1, 10)
	var re *RemoteError
	if !errors.As(err, &re) || re.Peer != server.ID() || !strings.Contains(re.Msg, "record 22") {
		t.Fatalf("FetchBlocks(1, 10) over a corrupt block 5 = %v; want a RemoteError", err)
	}
	t.Logf("FetchBlocks = %v", err)
	if pi, _ := client.Peer(server.ID()); pi.Invalid != 0 {
		t.Errorf("server has %d strikes for reporting its store's error", pi.Invalid)
	}
}
