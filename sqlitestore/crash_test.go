package sqlitestore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// helperEnv names the store a TestHelperProcess child appends to.
const helperEnv = "SQLITESTORE_CRASH_STORE"

// TestHelperProcess is not a test: run by TestCrashSafety as a child
// process, it appends blocks to the store named by $SQLITESTORE_CRASH_STORE
// until it is killed, reporting on stdout what is durable, each line
// written only after the call that made it durable returned:
//
//	pending <id>   PutPending(id) returned
//	state <n>      PutState("height", n) returned
//	block <h>      AppendWithPending of height h returned
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestCrashSafety")
	}
	if err := crashHelper(path); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func crashHelper(path string) error {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		return err
	}
	c := newTestChain(4)
	if err := ledger.InitStore(ctx, s, c.gen); err != nil {
		return err
	}
	head, err := s.Head(ctx)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for {
		n := rng.IntN(40)
		first := int(head.LogSize)
		// The block's records are pending first, as a node's mempool
		// keeps them, and leave the journal with the block.
		ids := make([]string, n)
		for i := range ids {
			ids[i] = testRecord(first + i).Key.String()
			if err := s.PutPending(ctx, ids[i], []byte("pending "+ids[i])); err != nil {
				return err
			}
			fmt.Printf("pending %s\n", ids[i])
		}
		b, stored, err := c.next(ledger.HashReaderOf(ctx, s), head, first, n)
		if err != nil {
			return err
		}
		if err := s.AppendWithPending(ctx, b, stored, ids); err != nil {
			return err
		}
		fmt.Printf("block %d\n", b.Header.Height)
		head = &b.Header
		if err := s.PutState(ctx, "height", []byte(strconv.FormatUint(head.Height, 10))); err != nil {
			return err
		}
		fmt.Printf("state %d\n", head.Height)
	}
}

// TestCrashSafety kills a process appending to a store (SIGKILL) at random
// moments, several times, and checks after each kill that the store opens,
// passes ledger.Audit with the seal checked, and holds every block, pending
// entry and state value the child had been told was durable.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	c := newTestChain(4)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var acked uint64 // highest block acknowledged so far, over all runs
	var ackedState uint64
	pendingAcked := make(map[string]bool)
	const rounds = 6
	for round := 0; round < rounds; round++ {
		cmd, lines, stderr := startChild(t, "TestHelperProcess", helperEnv, path)
		// Kill at a random moment: in even rounds while the child may
		// still be opening and recovering the store, in odd rounds after
		// it acknowledged its first block.
		delay := time.Duration(rng.IntN(400)) * time.Millisecond
		var kill <-chan time.Time
		if round%2 == 0 {
			kill = time.After(delay)
		}
		blocks := 0
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				kind, val, _ := strings.Cut(l, " ")
				switch kind {
				case "block":
					h, _ := strconv.ParseUint(val, 10, 64)
					acked = max(acked, h)
					blocks++
					if blocks == 1 && kill == nil {
						kill = time.After(delay)
					}
				case "state":
					h, _ := strconv.ParseUint(val, 10, 64)
					ackedState = max(ackedState, h)
				case "pending":
					pendingAcked[val] = true
				}
			case <-kill:
				cmd.Process.Kill() // SIGKILL
				kill = nil
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("round %d: child made no progress in 60s; stderr:\n%s", round, stderr.String())
			}
		}
		waitKilled(t, cmd, stderr, round)

		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("round %d: Open after kill = %v", round, err)
		}
		head, err := s.Head(ctx)
		switch {
		case errors.Is(err, ledger.ErrNotFound) && acked == 0:
		case err != nil:
			t.Fatalf("round %d: Head() = %v", round, err)
		case head.Height < acked:
			t.Fatalf("round %d: head %d after kill; block %d was acknowledged", round, head.Height, acked)
		default:
			rep, err := ledger.Audit(ctx, s, c.gen, testSeal{c}, nil)
			if err != nil {
				t.Fatalf("round %d: Audit = %v", round, err)
			}
			t.Logf("round %d: killed after %v; %d blocks acknowledged in this run, store holds %d blocks, %d records", round, delay, blocks, rep.Blocks, rep.Records)
		}
		if v, err := s.GetState(ctx, "height"); ackedState > 0 && (err != nil || mustUint(v) < ackedState) {
			t.Fatalf("round %d: GetState(height) = %q, %v; %d was acknowledged", round, v, err, ackedState)
		}
		pend, err := s.LoadPending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		isPending := make(map[string]bool)
		for _, p := range pend {
			isPending[p.ID] = true
			k, _ := ledger.ParseKey(p.ID)
			if _, err := s.Lookup(ctx, k); err == nil {
				t.Errorf("round %d: %s is both committed and pending", round, p.ID)
			}
		}
		for id := range pendingAcked {
			if isPending[id] {
				continue
			}
			k, _ := ledger.ParseKey(id)
			if _, err := s.Lookup(ctx, k); err != nil {
				t.Errorf("round %d: acknowledged pending %s is neither pending nor committed: %v", round, id, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if acked == 0 {
		t.Fatalf("no block was acknowledged in %d runs", rounds)
	}
}

func mustUint(b []byte) uint64 {
	n, _ := strconv.ParseUint(string(b), 10, 64)
	return n
}

// startChild runs this test binary as the child process of test, with env
// set to path, and returns it, its stdout lines (closed at its end) and
// its stderr.
func startChild(t *testing.T, test, env, path string) (*exec.Cmd, <-chan string, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env+"="+path)
	stderr := new(strings.Builder)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines, stderr
}

// waitKilled waits for the child of round to end and fails unless SIGKILL
// ended it.
func waitKilled(t *testing.T, cmd *exec.Cmd, stderr *strings.Builder, round int) {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("round %d: child exited with %v, not killed; stderr:\n%s", round, err, stderr.String())
	}
}
