package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/node"
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
