package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// testnetBasePort returns a base port P for 'ledgerd testnet' such that the
// HTTP ports P..P+n-1 and the peer ports P+1000.. are free right now.
func testnetBasePort(t *testing.T, n int) int {
	t.Helper()
	free := func(port int) bool {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return false
		}
		ln.Close()
		return true
	}
	for try := 0; try < 200; try++ {
		p := 20000 + rand.IntN(20000)
		ok := true
		for i := 0; i < n && ok; i++ {
			ok = free(p+i) && free(p+p2pPortOffset+i)
		}
		if ok {
			return p
		}
	}
	t.Fatal("no free port range for a testnet")
	return 0
}

// startTestnetNode runs 'ledgerd run --home home' as a process and waits
// until url answers /readyz.
func startTestnetNode(t *testing.T, home, url string) *ledgerdProc {
	t.Helper()
	p := spawnLedgerd(t, "run", "--home", home, "--log-level", "warn")
	p.url = url
	c := loopbackClient(t, url, 2)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ready(ctx)
		cancel()
		if err == nil {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("ledgerd run --home %s exited: %v\n%s", home, p.err, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledgerd run --home %s not ready within 60s: %v\n%s", home, err, p.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTestnetProcesses is the operator's path with real processes: 'ledgerd
// testnet --nodes 4' writes the homes, four 'ledgerd run' processes form
// the network, and records submitted to different nodes commit on all of
// them. The proposer of the next height is killed with SIGKILL while
// submissions stream in; the other three keep committing, the killed node
// restarts on its home and catches up, every acknowledged record is on
// every node with the same block hashes everywhere, and 'ledgerd audit'
// passes on all four stores.
func TestTestnetProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four ledgerd processes")
	}
	const n = 4
	repo := killRepo(t, 120)
	var keys []ledger.Key
	for i := 0; i < 120; i++ {
		k, err := ledger.NewKey(repo, fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	dir := filepath.Join(t.TempDir(), "net")
	base := testnetBasePort(t, n)
	if code, out, stderr := ledgerd("testnet", "--nodes", fmt.Sprint(n), "--dir", dir, "--base-port", fmt.Sprint(base),
		"--block-interval", "200ms", "--attest-quorum", "2"); code != 0 {
		t.Fatalf("testnet: exit %d\n%s%s", code, out, stderr)
	}
	home := func(i int) string { return filepath.Join(dir, fmt.Sprintf("node%d", i)) }
	url := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", base+i) }
	g, err := readGenesis(filepath.Join(home(0), genesisFile))
	if err != nil {
		t.Fatal(err)
	}
	procs := make([]*ledgerdProc, n)
	for i := range procs {
		procs[i] = startTestnetNode(t, home(i), url(i))
	}
	clients := make([]*api.Client, n)
	for i := range clients {
		clients[i] = loopbackClient(t, url(i), 20+i)
	}
	ctx := context.Background()

	// A record through each node, each verified on the next one.
	for i := 0; i < n; i++ {
		k := keys[i]
		resp, err := clients[i].Submit(ctx, api.SubmitRequest{Key: k.String()}, 30*time.Second)
		if err != nil || resp.Record == nil {
			t.Fatalf("submit %s to node %d: %+v, %v\n%s", k, i, resp, err, procs[i].logs.String())
		}
		got := waitRecord(t, clients[(i+1)%n], g, k, 30*time.Second)
		if got.Record.Key != k {
			t.Fatalf("node %d serves %+v for %s", (i+1)%n, got, k)
		}
	}

	// Kill the proposer of the next height under load.
	st, err := clients[0].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := g.ValidatorSet()
	if err != nil {
		t.Fatal(err)
	}
	next := vals.Proposer(g.Chain, st.HeadHash, st.Height+1, 0).String()
	victim := -1
	for i := range clients {
		s, err := clients[i].Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if s.ValidatorKey == next {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("no node has the proposer key %s", next)
	}
	survivor := (victim + 1) % n
	a := &acks{committed: map[ledger.Key]ledger.Entry{}, pending: map[ledger.Key]bool{}}
	var idx atomic.Int64
	idx.Store(n)
	var stop atomic.Bool
	wg := a.load(t, g, url(survivor), keys, &idx, &stop)
	time.Sleep(300 * time.Millisecond)
	procs[victim].kill()
	t.Logf("killed node %d, the proposer of height %d, with %d records submitted", victim, st.Height+1, idx.Load())
	wg.Wait() // the load runs the keys out against a live node
	if len(a.committed) == 0 {
		t.Fatal("nothing acknowledged as committed with the proposer killed")
	}

	procs[victim] = startTestnetNode(t, home(victim), url(victim))
	head := waitSameHead(t, clients, 90*time.Second)
	t.Logf("after the restart all %d nodes are at height %d (%d records acknowledged committed, %d pending)",
		n, head.Height, len(a.committed), len(a.pending))
	// Pending acknowledgements commit too; then every node has everything.
	for k := range a.pending {
		waitRecord(t, clients[victim], g, k, 60*time.Second)
	}
	waitSameHead(t, clients, 60*time.Second)
	for i, c := range clients {
		a.check(t, g, c, fmt.Sprintf("node %d", i))
		for _, k := range keys[:n] {
			waitRecord(t, c, g, k, time.Second)
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

// waitRecord waits until c serves key committed, verifies the answer
// against g and returns it.
func waitRecord(t *testing.T, c *api.Client, g *ledger.Genesis, key ledger.Key, timeout time.Duration) *ledger.Entry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, _, err := c.Record(context.Background(), key)
		if resp != nil {
			e, _, err := api.VerifyRecord(g, resp)
			if err != nil {
				t.Fatalf("%s from %s does not verify: %v", key, c.BaseURL(), err)
			}
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not committed on %s within %v: %v", key, c.BaseURL(), timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSameHead waits until every client reports the same head and returns
// it; then it checks that all nodes hold the same block hash at every height.
func waitSameHead(t *testing.T, clients []*api.Client, timeout time.Duration) *api.Status {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		var first *api.Status
		same := true
		for _, c := range clients {
			s, err := c.Status(ctx)
			if err != nil {
				same = false
				break
			}
			if first == nil {
				first = s
			} else if s.Height != first.Height || s.HeadHash != first.HeadHash {
				same = false
			}
		}
		if same {
			for h := uint64(0); h <= first.Height; h += 100 {
				var want []ledger.Hash
				for i, c := range clients {
					page, err := c.Blocks(ctx, h, 100)
					if err != nil {
						t.Fatalf("node %d blocks from %d: %v", i, h, err)
					}
					var got []ledger.Hash
					for _, hd := range page.Blocks {
						got = append(got, hd.Hash)
					}
					if i == 0 {
						want = got
					} else if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("node %d disagrees with node 0 on the blocks from height %d", i, h)
					}
				}
			}
			return first
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes did not agree on a head within %v", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
