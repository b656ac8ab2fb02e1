package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/node"
	"github.com/vcsledger/vcsledger/sqlitestore"
	"github.com/vcsledger/vcsledger/sqlitestore/sqlitestoretest"
)

func ledgerd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAuditExitCodes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "ledger.db")
	c := ledgertest.NewChain(t, 4)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 5; i++ {
		c.Next(ledgertest.Records(rng, i*10, 10))
	}
	s, err := sqlitestore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for h, b := range c.Blocks() {
		var stored = c.Stored(uint64(h))
		if err := s.Append(ctx, b, stored); err != nil {
			t.Fatalf("append %d: %v", h, err)
		}
	}
	s.Close()
	gpath := filepath.Join(dir, "genesis.txt")
	os.WriteFile(gpath, c.Genesis.Format(), 0o644)

	if code, out, stderr := ledgerd("audit", "--db", db, "--genesis", gpath); code != 0 || !strings.HasPrefix(out, "ok: 6 blocks, 50 records") {
		t.Fatalf("audit of a sound store: exit %d\n%s%s", code, out, stderr)
	}
	// Flip a digit of a record's commit in block 3 (records 20..29).
	if err := sqlitestoretest.FlipCommit(db, c.Blocks()[3].Records[5].Commit); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := ledgerd("audit", "--db", db, "--genesis", gpath)
	if code != 1 || !strings.Contains(stderr, "height 3") {
		t.Fatalf("audit of a tampered store: exit %d, want 1 naming height 3\n%s", code, stderr)
	}
	if code, _, _ := ledgerd("audit"); code != 2 {
		t.Errorf("audit without --db: exit %d, want 2", code)
	}
}

func TestInitAndTestnet(t *testing.T) {
	dir := t.TempDir()
	if code, out, stderr := ledgerd("testnet", "--nodes", "4", "--dir", filepath.Join(dir, "net"), "--base-port", "30000"); code != 0 || !strings.Contains(out, "wrote 4 homes") {
		t.Fatalf("testnet: exit %d\n%s%s", code, out, stderr)
	}
	for i := 0; i < 4; i++ {
		home := filepath.Join(dir, "net", "node"+string(rune('0'+i)))
		g, err := readGenesis(filepath.Join(home, genesisFile))
		if err != nil || len(g.Validators) != 4 {
			t.Fatalf("node%d genesis: %v", i, err)
		}
		fc, err := readFileConfig(filepath.Join(home, configFile))
		if err != nil || len(fc.Bootstrap) != 3 {
			t.Fatalf("node%d config: %+v, %v", i, fc, err)
		}
	}
	// testnet never overwrites homes.
	if code, _, _ := ledgerd("testnet", "--nodes", "4", "--dir", filepath.Join(dir, "net")); code != 2 {
		t.Errorf("testnet into a used directory: exit %d, want 2", code)
	}
	// init refuses bad validators with a usage error.
	if code, _, stderr := ledgerd("init", "--chain", "x", "--validator", "nothex"); code != 2 || !strings.Contains(stderr, "--validator") {
		t.Errorf("init with a bad key: exit %d (%s)", code, stderr)
	}
	if code, out, _ := ledgerd("keygen", "--out", filepath.Join(dir, "k", "node.key")); code != 0 || !strings.Contains(out, "public key") {
		t.Errorf("keygen: exit %d", code)
	}
	if code, _, _ := ledgerd("keygen", "--out", filepath.Join(dir, "k", "node.key")); code != 2 {
		t.Errorf("keygen over an existing key: exit %d, want 2", code)
	}
}

// TestRunRefusesBadTimeouts: a timeout_propose that is no duration, or out
// of range, in config.json or the environment stops 'ledgerd run' before
// it opens anything, naming the setting.
func TestRunRefusesBadTimeouts(t *testing.T) {
	home, cpath, fc := testnetHome(t)
	for _, bad := range []string{"soon", "10ms", "2h"} {
		fc.TimeoutPropose = bad
		rewriteConfig(t, cpath, fc)
		runRefused(t, home, "timeout_propose", fmt.Sprintf("timeout_propose %q", bad))
	}
	fc.TimeoutPropose = "1s"
	rewriteConfig(t, cpath, fc)
	t.Setenv("LEDGERD_TIMEOUT_PROPOSE", "-1s")
	runRefused(t, home, "timeout_propose", "LEDGERD_TIMEOUT_PROPOSE=-1s")
	noStoreCreated(t, home)
}

// testnetHome writes the home of a one-node testnet and returns it, its
// config file and that file's settings.
func testnetHome(t *testing.T) (home, cpath string, fc *fileConfig) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "net")
	if code, out, stderr := ledgerd("testnet", "--nodes", "1", "--dir", dir); code != 0 {
		t.Fatalf("testnet: exit %d\n%s%s", code, out, stderr)
	}
	home = filepath.Join(dir, "node0")
	cpath = filepath.Join(home, configFile)
	fc, err := readFileConfig(cpath)
	if err != nil {
		t.Fatal(err)
	}
	return home, cpath, fc
}

// homeConfig returns the node configuration 'ledgerd run --home home'
// would run with.
func homeConfig(home string) (*node.Config, error) {
	var f runFlags
	cmd := &cobra.Command{}
	f.register(cmd)
	f.home = home
	return f.nodeConfig(cmd, io.Discard)
}

// runRefused runs `ledgerd run --home home` and checks that it fails
// with an error naming mention; what says what was wrong, for the report.
func runRefused(t *testing.T, home, mention, what string) {
	t.Helper()
	if code, _, stderr := ledgerd("run", "--home", home); code == 0 || !strings.Contains(stderr, mention) {
		t.Errorf("run with %s: exit %d\n%s", what, code, stderr)
	}
}

// noStoreCreated checks that home has no store: runs that were refused
// created nothing.
func noStoreCreated(t *testing.T, home string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(home, dbFile)); err == nil {
		t.Errorf("a refused run created %s", dbFile)
	}
}

// rewriteConfig replaces the config file at path with fc.
func rewriteConfig(t *testing.T, path string, fc *fileConfig) {
	t.Helper()
	b, err := json.Marshal(fc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestProofCacheSetting: proof_cache_mb in config.json, overridden by
// LEDGERD_PROOF_CACHE_MB, bounds the node's in-memory copy of the stored
// hashes (0: none; unset: the default); a negative or malformed value stops
// 'ledgerd run' before it opens anything, naming the setting.
func TestProofCacheSetting(t *testing.T) {
	home, cpath, fc := testnetHome(t)
	mb := func(v int64) *int64 { return &v }
	t.Setenv("LEDGERD_PROOF_CACHE_MB", "") // restored after the test
	for _, tt := range []struct {
		file *int64 // nil: unset
		env  string // "" for none
		want int64  // node.Config.ProofCacheBytes before Validate
	}{
		{nil, "", 0},
		{mb(256), "", 256 << 20},
		{mb(0), "", -1},
		{mb(256), "8", 8 << 20},
		{nil, "0", -1},
	} {
		fc.ProofCacheMB = tt.file
		rewriteConfig(t, cpath, fc)
		if tt.env != "" {
			os.Setenv("LEDGERD_PROOF_CACHE_MB", tt.env)
		} else {
			os.Unsetenv("LEDGERD_PROOF_CACHE_MB")
		}
		what := fmt.Sprintf("proof_cache_mb unset, LEDGERD_PROOF_CACHE_MB %q", tt.env)
		if tt.file != nil {
			what = fmt.Sprintf("proof_cache_mb %d, LEDGERD_PROOF_CACHE_MB %q", *tt.file, tt.env)
		}
		cfg, err := homeConfig(home)
		if err != nil {
			t.Fatalf("config with %s: %v", what, err)
		}
		if cfg.ProofCacheBytes != tt.want {
			t.Errorf("config with %s: ProofCacheBytes %d, want %d", what, cfg.ProofCacheBytes, tt.want)
		}
	}
	os.Unsetenv("LEDGERD_PROOF_CACHE_MB")
	fc.ProofCacheMB = mb(-1)
	rewriteConfig(t, cpath, fc)
	runRefused(t, home, "proof_cache_mb", "proof_cache_mb -1")
	fc.ProofCacheMB = nil
	rewriteConfig(t, cpath, fc)
	os.Setenv("LEDGERD_PROOF_CACHE_MB", "64MiB")
	runRefused(t, home, "LEDGERD_PROOF_CACHE_MB", "LEDGERD_PROOF_CACHE_MB=64MiB")
	noStoreCreated(t, home)
}
