package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/node"
	"github.com/vcsledger/vcsledger/sqlitestore"
	"github.com/vcsledger/vcsledger/vcs"
)

// TestPoWAppendWaitsForFinal runs vcsverify against a mining node of a pow
// chain: append returns once the record is final (or --confirmations
// deep), and later lookups, while the chain keeps growing, verify against
// the final checkpoints the client keeps.
func TestPoWAppendWaitsForFinal(t *testing.T) {
	_, key := newChain(t, "powcli")
	g := &ledger.Genesis{Chain: "powcli", Time: time.Now().Add(-time.Minute).UnixMilli(), Engine: ledger.EnginePoW,
		BlockInterval: 100, AttestQuorum: -1, Bits: 8, Retarget: 4, Confirmations: 6}
	dir := t.TempDir()
	n, err := node.New(node.Config{Genesis: g, Key: key, DBPath: filepath.Join(dir, "ledger.db"), HTTPAddr: "127.0.0.1:0",
		CacheDir: filepath.Join(dir, "cache"), Mine: true, MineWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	nodeURL := "http://" + n.HTTPAddr()
	repo := cliRepo(t)
	cliRelease(t, repo, "v2", "two\n")
	home := t.TempDir()

	code, out, stderr := vcsverify(t, home, "append", "--json", "--node", nodeURL, repo, "v1")
	if code != exitOK {
		t.Fatalf("append: exit %d\n%s%s", code, out, stderr)
	}
	var res struct {
		Ledger struct {
			Height     uint64 `json:"height"`
			Checkpoint uint64 `json:"checkpoint_height"`
		} `json:"ledger"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Ledger.Height == 0 {
		t.Fatalf("append output %q: %v", out, err)
	}
	if l := res.Ledger; l.Checkpoint+1 < l.Height+g.Confirmations {
		t.Fatalf("append returned the record at %d verified against block %d: not final", l.Height, l.Checkpoint)
	}
	if code, out, stderr := vcsverify(t, home, "append", "--confirmations", "1", "--node", nodeURL, repo, "v2"); code != exitOK {
		t.Fatalf("append --confirmations 1: exit %d\n%s%s", code, out, stderr)
	}
	for i := 0; i < 5; i++ {
		if code, out, stderr := vcsverify(t, home, "check", "--node", nodeURL, repo, "v1"); code != exitOK {
			t.Fatalf("check %d: exit %d\n%s%s", i, code, out, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPoWCheckWaitsForFinal serves a pow chain whose head buries a record
// under 3 of the 6 confirmations it needs, from a node that does not mine:
// check and lookup do not report it verified (exit 2 when --timeout ends),
// --confirmations 3 accepts it and says it is not final, and once a miner
// joins, check waits until the record is final and verifies it.
func TestPoWCheckWaitsForFinal(t *testing.T) {
	ctx := context.Background()
	_, key := newChain(t, "powfinal")
	g := &ledger.Genesis{Chain: "powfinal", Time: time.Now().Add(-time.Hour).UnixMilli(), Engine: ledger.EnginePoW,
		BlockInterval: 1000, AttestQuorum: 0, Bits: 1, Retarget: 1000, Confirmations: 6}
	repo := cliRepo(t)
	k, err := ledger.NewKey("file://"+repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	h, err := vcs.Hash(ctx, k.Repo, k.Tag, vcs.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rec := ledger.Record{Key: k, Commit: h.Commit, Tree: h.Tree, H1: h.H1}

	// The replica's store: blocks 1 to 4, the record in block 2.
	dir := t.TempDir()
	db := filepath.Join(dir, "ledger.db")
	s, err := sqlitestore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.InitStore(ctx, s, g); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		var recs []ledger.Record
		if i == 2 {
			recs = []ledger.Record{rec}
		}
		b, stored := ledgertest.NextPoWBlock(t, s, recs, 0)
		for consensus.CheckWork(&b.Header) != nil {
			b.Header.Nonce++
		}
		if err := s.Append(ctx, b, stored); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The miner that joins later starts from a copy: a miner starting
	// from the genesis would mine a heavier branch without the record at
	// once (bits 1).
	mdir := t.TempDir()
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mdir, "ledger.db"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	replica, err := node.New(node.Config{Genesis: g, Key: key, DBPath: db, HTTPAddr: "127.0.0.1:0", CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Close(context.Background()) })
	nodeURL := "http://" + replica.HTTPAddr()
	home := t.TempDir()

	for _, args := range [][]string{
		{"check", "--timeout", "1s", "--node", nodeURL, repo, "v1"},
		{"lookup", "--timeout", "1s", "--node", nodeURL, k.String()},
	} {
		code, out, stderr := vcsverify(t, home, args...)
		if code != exitOther || out != "" || !strings.Contains(stderr, "not final") || !strings.Contains(stderr, "3 of the 6 confirmations") {
			t.Errorf("%s of a record 3 blocks deep: exit %d, stdout %q, stderr %q; want exit 2, nothing verified, not final", args[0], code, out, stderr)
		}
	}
	code, out, stderr := vcsverify(t, home, "lookup", "--json", "--confirmations", "3", "--node", nodeURL, k.String())
	var res struct {
		Result string
		Ledger ledgerRecord
	}
	if err := json.Unmarshal([]byte(out), &res); code != exitOK || err != nil {
		t.Fatalf("lookup --confirmations 3: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if l := res.Ledger; res.Result != "found" || l.Status != "committed" || l.Confirmations != 3 || l.Final != 6 || l.Height != 2 {
		t.Errorf("lookup --confirmations 3 = %s", out)
	}
	code, out, stderr = vcsverify(t, home, "check", "--confirmations", "3", "--node", nodeURL, repo, "v1")
	if code != exitOK || !strings.Contains(out, "NOT FINAL YET: 3 of 6 confirmations") {
		t.Errorf("check --confirmations 3: exit %d\n%s%s", code, out, stderr)
	}

	// A miner joins: check waits for the blocks that make the record final.
	_, mkey := newChain(t, "powfinal")
	miner, err := node.New(node.Config{Genesis: g, Key: mkey, DBPath: filepath.Join(mdir, "ledger.db"), HTTPAddr: "127.0.0.1:0",
		CacheDir: filepath.Join(mdir, "cache"), Bootstrap: replica.P2PAddrs(), Mine: true, MineWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := miner.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { miner.Close(context.Background()) })
	code, out, stderr = vcsverify(t, home, "check", "--json", "--timeout", "2m", "--node", nodeURL, repo, "v1")
	res.Ledger = ledgerRecord{}
	if err := json.Unmarshal([]byte(out), &res); code != exitOK || err != nil {
		t.Fatalf("check with a miner: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if l := res.Ledger; res.Result != "verified" || l.Status != "final" || l.Confirmations < 6 {
		t.Errorf("check with a miner = %s; want verified, final", out)
	}
}
