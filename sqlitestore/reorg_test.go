package sqlitestore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// reorgHelperEnv names the store a TestReorgHelperProcess child works on.
const reorgHelperEnv = "SQLITESTORE_REORG_STORE"

// reorgBranches returns the two branches the reorg crash test switches
// between: A, 20 blocks from genesis, and B, 25 blocks after A's block 5.
// s must hold at least A's first 5 blocks for B.
func reorgBranches(t testing.TB, s ledger.Store, withB bool) (a, b []*ledger.Block, ha, hb [][]ledger.Hash) {
	recs := func(first int) func(i int) []ledger.Record {
		return func(i int) []ledger.Record {
			return ledgertest.Records(rand.New(rand.NewPCG(uint64(first+i), 3)), first+i*30, 1+i%30)
		}
	}
	a, ha = ledgertest.PoWBranch(t, s, 0, 20, recs(0), 0)
	if withB {
		b, hb = ledgertest.PoWBranch(t, s, 5, 25, recs(100_000), 1)
	}
	return a, b, ha, hb
}

// keysAbove returns the record keys of blocks, as pending journal ids.
func keysAbove(blocks []*ledger.Block) []string {
	var ids []string
	for _, b := range blocks {
		for i := range b.Records {
			ids = append(ids, b.Records[i].Key.String())
		}
	}
	return ids
}

// pendingOf returns the pending journal items of ids, as a node's mempool
// would put them back.
func pendingOf(ids []string) []PendingItem {
	out := make([]PendingItem, len(ids))
	for i, id := range ids {
		out[i] = PendingItem{ID: id, Data: []byte("pending " + id)}
	}
	return out
}

// TestReorgHelperProcess is not a test: run by TestReorgCrashSafety as a
// child process, it builds branch A, with B's records pending, then
// switches the main chain between A and B until it is killed, printing
// "tip A" or "tip B" after each Reorg returned. Each switch takes the new
// branch's records out of the pending journal and puts the abandoned
// branch's back, as a node does (ReorgWithPending).
func TestReorgHelperProcess(t *testing.T) {
	path := os.Getenv(reorgHelperEnv)
	if path == "" {
		t.Skip("helper process for TestReorgCrashSafety")
	}
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	if err := ledger.InitStore(ctx, s, ledgertest.PoWGenesis()); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	a, _, ha, _ := reorgBranches(t, s, false)
	head, _ := s.Head(ctx)
	for i := range a { // A's blocks a previous run did not append
		if a[i].Header.Height <= head.Height {
			continue
		}
		if err := s.Append(ctx, a[i], ha[i]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
	}
	a, b, ha, hb := reorgBranches(t, s, true)
	if head, _ := s.Head(ctx); head.Hash() == a[len(a)-1].Hash() {
		// B's records are pending (a no-op after the first run).
		for _, it := range pendingOf(keysAbove(b)) {
			if err := s.PutPending(ctx, it.ID, it.Data); err != nil {
				fmt.Fprintln(os.Stderr, "helper:", err)
				os.Exit(3)
			}
		}
	}
	for {
		head, _ := s.Head(ctx)
		to, hs, from, name := b, hb, a[5:], "B"
		if head.Hash() == b[len(b)-1].Hash() {
			to, hs, from, name = a[5:], ha[5:], b, "A"
		}
		if err := s.ReorgWithPending(ctx, 5, to, hs, keysAbove(to), pendingOf(keysAbove(from))); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		fmt.Printf("tip %s\n", name)
	}
}

// TestReorgCrashSafety kills (SIGKILL) a process switching a store's main
// chain back and forth between two branches, at random moments, and checks
// after each kill that the store opens, passes ledger.Audit, and holds one
// branch whole as its main chain and the other's blocks as side blocks, and
// that each record of either branch is either committed or pending, never
// both and never neither.
func TestReorgCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	reorgs := 0
	for round := 0; round < 5; round++ {
		cmd, lines, stderr := startChild(t, "TestReorgHelperProcess", reorgHelperEnv, path)
		// Kill after a random number of acknowledged reorgs, so that the
		// kill lands at a random point of the next one.
		killAfter := 1 + rng.IntN(6)
		seen := 0
	read:
		for {
			select {
			case _, ok := <-lines:
				if !ok {
					break read
				}
				seen++
				if seen == killAfter {
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
					cmd.Process.Kill()
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("round %d: child made no progress in 60s; stderr:\n%s", round, stderr.String())
			}
		}
		waitKilled(t, cmd, stderr, round)
		reorgs += seen

		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("round %d: Open after kill = %v", round, err)
		}
		rep, err := ledger.Audit(ctx, s, ledgertest.PoWGenesis(), nil, nil)
		if err != nil {
			t.Fatalf("round %d: Audit() = %v", round, err)
		}
		a, b, _, _ := reorgBranches(t, s, true)
		on, off := a, b
		if rep.Head.Hash() == b[len(b)-1].Hash() {
			on, off = b, a[5:]
		} else if rep.Head.Hash() != a[len(a)-1].Hash() {
			t.Fatalf("round %d: head %d %s is neither branch's tip", round, rep.Head.Height, rep.Head.Hash())
		}
		for _, blk := range on {
			if h, err := s.Header(ctx, blk.Header.Height); err != nil || h.Hash() != blk.Hash() {
				t.Fatalf("round %d: main chain lacks block %d of the branch at its tip: %v", round, blk.Header.Height, err)
			}
		}
		for _, blk := range off {
			if _, err := s.SideBlock(ctx, blk.Hash()); err != nil {
				t.Fatalf("round %d: block %d of the other branch is not a side block: %v", round, blk.Header.Height, err)
			}
		}
		items, err := s.LoadPending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pending := make(map[string]bool)
		for _, it := range items {
			if string(it.Data) != "pending "+it.ID {
				t.Fatalf("round %d: pending %s holds %q", round, it.ID, it.Data)
			}
			pending[it.ID] = true
		}
		for _, blk := range append(a[5:], b...) {
			for i := range blk.Records {
				k := blk.Records[i].Key
				_, err := s.Lookup(ctx, k)
				if committed := err == nil; committed == pending[k.String()] {
					t.Fatalf("round %d: record %s of block %d: committed %v, pending %v (%v)", round, k, blk.Header.Height, committed, pending[k.String()], err)
				}
			}
		}
		t.Logf("round %d: killed after %d reorgs; head %d, %d records", round, seen, rep.Head.Height, rep.Records)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if reorgs == 0 {
		t.Fatal("no reorg was acknowledged")
	}
}
