package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// buildLedgerd builds the ledgerd binary into a temporary directory.
func buildLedgerd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ledgerd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDev starts 'ledgerd dev' on home and waits until it serves.
func startDev(t *testing.T, bin, home string, port int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--home", home, "--http", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "warn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "serving http://") {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("ledgerd dev exited before serving")
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("ledgerd dev did not start")
	}
	return cmd
}

// TestKill9KeepsAcknowledged runs a dev node as a process, appends records
// while killing it with SIGKILL, and checks after a restart that every
// record the node acknowledged as committed is there, and every record it
// accepted as pending is still pending or committed.
func TestKill9KeepsAcknowledged(t *testing.T) {
	bin := buildLedgerd(t)
	repo := t.TempDir()
	gitc := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@e", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	gitc("init", "-q")
	const tags = 40
	for i := 0; i < tags; i++ {
		os.WriteFile(filepath.Join(repo, "f"), fmt.Appendf(nil, "%d\n", i), 0o644)
		gitc("add", "f")
		gitc("commit", "-qm", fmt.Sprint(i))
		gitc("tag", fmt.Sprintf("v0.0.%d", i))
	}
	home := filepath.Join(t.TempDir(), "node")
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	c, err := api.NewClient(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	committed := map[ledger.Key]ledger.Record{}
	pending := map[ledger.Key]bool{}
	next := 0
	for round := 0; round < 3; round++ {
		proc := startDev(t, bin, home, port)
		// Submit for a while, then SIGKILL in the middle of it.
		deadline := time.Now().Add(time.Duration(300+round*200) * time.Millisecond)
		for next < tags && time.Now().Before(deadline) {
			k, _ := ledger.NewKey(repo, fmt.Sprintf("v0.0.%d", next))
			next++
			wait := time.Duration(0)
			if next%2 == 0 {
				wait = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := c.Submit(ctx, api.SubmitRequest{Key: k.String()}, wait)
			cancel()
			switch {
			case err != nil:
				t.Logf("submit %s: %v", k, err)
			case resp.Record != nil:
				e, err := resp.Record.Entry()
				if err != nil {
					t.Fatal(err)
				}
				committed[k] = e.Record
			default:
				pending[k] = true
			}
		}
		proc.Process.Signal(syscall.SIGKILL)
		proc.Wait()
	}
	if len(committed) == 0 || len(pending) == 0 {
		t.Fatalf("the load acknowledged %d committed and %d pending records; want some of each", len(committed), len(pending))
	}
	// Restart: every acknowledged record is there; accepted ones are not lost.
	proc := startDev(t, bin, home, port)
	defer func() { proc.Process.Signal(syscall.SIGTERM); proc.Wait() }()
	g, err := readGenesis(filepath.Join(home, genesisFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for k, want := range committed {
		resp, _, err := c.Record(ctx, k)
		if err != nil || resp == nil {
			t.Fatalf("acknowledged record %s missing after SIGKILL: %v", k, err)
		}
		e, _, err := api.VerifyRecord(g, resp)
		if err != nil || e.Record != want {
			t.Fatalf("record %s after restart = %+v, %v; want %+v", k, e, err, want)
		}
	}
	for k := range pending {
		resp, p, err := c.Record(ctx, k)
		if err != nil || (resp == nil && p == nil) {
			t.Errorf("accepted record %s lost after SIGKILL: %v", k, err)
		}
	}
	t.Logf("%d committed and %d pending acknowledgements survived 3 SIGKILLs", len(committed), len(pending))
	proc.Process.Signal(syscall.SIGTERM)
	proc.Wait()
	if code, out, stderr := ledgerd("audit", "--db", filepath.Join(home, dbFile), "--genesis", filepath.Join(home, genesisFile)); code != 0 {
		t.Fatalf("audit after SIGKILLs: exit %d\n%s%s", code, out, stderr)
	}
}
