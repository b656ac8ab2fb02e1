package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// TestTestnetPoW is the operator's path for a proof-of-work chain with real
// processes: 'ledgerd testnet --engine pow' writes three homes whose nodes
// all mine; a record submitted to each node with ?wait comes back final,
// every node serves every record at the same place in the log, and
// 'ledgerd audit' (work, difficulty, times, attestations) passes on every
// store.
func TestTestnetPoW(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three ledgerd processes")
	}
	const n = 3
	repo := killRepo(t, n)
	dir := filepath.Join(t.TempDir(), "net")
	base := testnetBasePort(t, n)
	if code, out, stderr := ledgerd("testnet", "--nodes", fmt.Sprint(n), "--dir", dir, "--base-port", fmt.Sprint(base),
		"--engine", "pow", "--block-interval", "200ms"); code != 0 || !strings.Contains(out, "pow") {
		t.Fatalf("testnet --engine pow: exit %d\n%s%s", code, out, stderr)
	}
	home := func(i int) string { return filepath.Join(dir, fmt.Sprintf("node%d", i)) }
	url := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", base+i) }
	g, err := readGenesis(filepath.Join(home(0), genesisFile))
	if err != nil {
		t.Fatal(err)
	}
	if g.Engine != ledger.EnginePoW {
		t.Fatalf("testnet genesis engine %q, want pow", g.Engine)
	}
	procs := make([]*ledgerdProc, n)
	clients := make([]*api.Client, n)
	for i := range procs {
		procs[i] = startTestnetNode(t, home(i), url(i))
		clients[i] = loopbackClient(t, url(i), 40+i)
	}
	ctx := context.Background()
	var keys []ledger.Key
	want := map[ledger.Key]int64{}
	for i := 0; i < n; i++ {
		k, err := ledger.NewKey(repo, fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		resp, err := clients[i].Submit(ctx, api.SubmitRequest{Key: k.String()}, 60*time.Second)
		if err != nil || resp.Record == nil || resp.Status != api.StatusFinal {
			t.Fatalf("submit %s to node %d with wait: %+v, %v\n%s", k, i, resp, err, procs[i].logs.String())
		}
		if resp.Record.Confirmations < g.Confirmations {
			t.Fatalf("final record with %d confirmations, want at least %d", resp.Record.Confirmations, g.Confirmations)
		}
		want[k] = resp.Record.Index
	}
	for i, c := range clients {
		for _, k := range keys {
			e := waitRecord(t, c, g, k, 60*time.Second)
			if e.Index != want[k] {
				t.Errorf("node %d serves %s at index %d; it was final at %d", i, k, e.Index, want[k])
			}
		}
	}
	for i, p := range procs {
		p.stop()
		code, out, stderr := ledgerd("audit", "--db", filepath.Join(home(i), dbFile), "--genesis", filepath.Join(home(i), genesisFile))
		if code != 0 || !strings.HasPrefix(out, "ok: ") {
			t.Errorf("audit of node %d: exit %d\n%s%s", i, code, out, stderr)
		}
	}
}
