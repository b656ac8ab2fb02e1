package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/sqlitestore"
	"github.com/vcsledger/vcsledger/sqlitestore/sqlitestoretest"
)

// A ledgerdProc is a ledgerd process: this test binary run as ledgerd (see
// TestMain).
type ledgerdProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	url     string
	done    chan struct{} // closed when the process has exited
	serving chan string   // the URL it prints when it serves HTTP
	err     error         // its exit status, once done
	logs    syncBuffer    // its stderr
}

// startLedgerd runs 'ledgerd args...' and waits until it prints that it
// serves HTTP (ledgerd dev does).
func startLedgerd(t *testing.T, args ...string) *ledgerdProc {
	t.Helper()
	p := spawnLedgerd(t, args...)
	select {
	case p.url = <-p.serving:
	case <-p.done:
		t.Fatalf("ledgerd %v exited before serving: %v\n%s", args, p.err, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("ledgerd %v did not serve within 60s\n%s", args, p.logs.String())
	}
	return p
}

// spawnLedgerd starts 'ledgerd args...' without waiting for it; p.serving
// gets the URL it prints when it serves HTTP (ledgerd dev does).
func spawnLedgerd(t *testing.T, args ...string) *ledgerdProc {
	t.Helper()
	p := &ledgerdProc{t: t, done: make(chan struct{}), serving: make(chan string, 1)}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), execAsLedgerd+"=1")
	p.cmd.Stderr = &p.logs
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "serving http://"); ok {
				select {
				case p.serving <- "http://" + strings.Fields(rest)[0]:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL and waits for the process to die.
func (p *ledgerdProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and checks that the process exits cleanly.
func (p *ledgerdProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.t.Fatalf("ledgerd did not stop within 40s of SIGTERM\n%s", p.logs.String())
	}
	if p.err != nil {
		p.t.Fatalf("ledgerd exited with %v after SIGTERM\n%s", p.err, p.logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loopbackClient returns an API client of url whose connections come from
// 127.0.0.<i>: the node's rate limit is per submitter address, and these
// tests stand for several clients.
func loopbackClient(t *testing.T, url string, i int) *api.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i))}}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil && ctx.Err() == nil {
			// Systems that route only 127.0.0.1 (macOS): one submitter.
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		return c, err
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4}
	c, err := api.NewClient(url, &http.Client{Transport: tr, Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// killRepo builds a repository with n tags t0..t<n-1> and returns its path.
func killRepo(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	git := func(stdin string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("", "init", "-q")
	os.WriteFile(filepath.Join(dir, "f"), []byte("content\n"), 0o644)
	git("", "add", "f")
	git("", "commit", "-qm", "one")
	head := git("", "rev-parse", "HEAD")
	var refs strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&refs, "create refs/tags/t%d %s\n", i, head)
	}
	git(refs.String(), "update-ref", "--stdin")
	return dir
}

// acks are what the node acknowledged: records it answered committed (with
// the verified entry) and records it accepted as pending.
type acks struct {
	mu        sync.Mutex
	committed map[ledger.Key]ledger.Entry
	pending   map[ledger.Key]bool
}

// load submits keys from 4 clients (half with ?wait, half without) until
// stop is set or the keys run out, recording every acknowledgement.
func (a *acks) load(t *testing.T, g *ledger.Genesis, url string, keys []ledger.Key, next *atomic.Int64, stop *atomic.Bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		c := loopbackClient(t, url, 10+w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := next.Add(1) - 1
				if int(i) >= len(keys) {
					return
				}
				k := keys[i]
				wait := time.Duration(0)
				if i%2 == 0 {
					wait = 10 * time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				resp, err := c.Submit(ctx, api.SubmitRequest{Key: k.String()}, wait)
				cancel()
				if err != nil {
					continue // not acknowledged (the node was killed, or refused it)
				}
				a.mu.Lock()
				if resp.Record != nil {
					e, _, err := api.VerifyRecord(g, resp.Record)
					if err != nil {
						t.Errorf("acknowledged record %s does not verify: %v", k, err)
					} else {
						a.committed[k] = *e
					}
				} else {
					a.pending[k] = true
				}
				a.mu.Unlock()
			}
		}()
	}
	return &wg
}

// check asks the node for every acknowledged record: committed ones must
// be there unchanged, pending ones pending or committed.
func (a *acks) check(t *testing.T, g *ledger.Genesis, c *api.Client, when string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	ctx := context.Background()
	for k, want := range a.committed {
		resp, _, err := c.Record(ctx, k)
		if err != nil || resp == nil {
			t.Fatalf("%s: acknowledged record %s is not committed: %v", when, k, err)
		}
		e, _, err := api.VerifyRecord(g, resp)
		if err != nil || *e != want {
			t.Fatalf("%s: record %s = %+v, %v; acknowledged %+v", when, k, e, err, want)
		}
	}
	for k := range a.pending {
		resp, p, err := c.Record(ctx, k)
		if err != nil || (resp == nil && p == nil) {
			t.Fatalf("%s: accepted record %s was lost: %v", when, k, err)
		}
	}
}

// TestKill9KeepsAcknowledged runs 'ledgerd dev' as a process, streams
// submissions at it from four clients and kills it with SIGKILL at a
// random moment, three times. After every restart on the same home each
// record it acknowledged as committed is there unchanged, and each it
// accepted as pending is pending or committed; in the end every accepted
// record commits, and 'ledgerd audit' passes on the store and fails, naming
// the height, once a record row is tampered with.
func TestKill9KeepsAcknowledged(t *testing.T) {
	repo := killRepo(t, 400)
	var keys []ledger.Key
	for i := 0; i < 400; i++ {
		k, err := ledger.NewKey(repo, fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	home := filepath.Join(t.TempDir(), "node")
	addr := freeAddr(t)
	dev := func() *ledgerdProc {
		return startLedgerd(t, "dev", "--home", home, "--http", addr, "--log-level", "warn")
	}
	a := &acks{committed: map[ledger.Key]ledger.Entry{}, pending: map[ledger.Key]bool{}}
	var next atomic.Int64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	var g *ledger.Genesis
	for round := 0; round < 3; round++ {
		p := dev()
		if g == nil {
			var err error
			if g, err = readGenesis(filepath.Join(home, genesisFile)); err != nil {
				t.Fatal(err)
			}
		}
		a.check(t, g, loopbackClient(t, p.url, 2), fmt.Sprintf("after restart %d", round))
		var stop atomic.Bool
		wg := a.load(t, g, p.url, keys, &next, &stop)
		delay := time.Duration(300+rng.IntN(1200)) * time.Millisecond
		time.Sleep(delay)
		stop.Store(true)
		p.kill() // while submissions and their waits are in flight
		wg.Wait()
		t.Logf("round %d: SIGKILL after %v; %d submitted so far, %d acknowledged committed, %d pending",
			round, delay, next.Load(), len(a.committed), len(a.pending))
	}
	if len(a.committed) == 0 || len(a.pending) == 0 {
		t.Fatalf("the load got %d committed and %d pending acknowledgements; want some of each", len(a.committed), len(a.pending))
	}

	p := dev()
	c := loopbackClient(t, p.url, 2)
	a.check(t, g, c, "after the last restart")
	// Nothing accepted is lost: the journal kept every pending record (and
	// its attestation), and each commits.
	deadline := time.Now().Add(45 * time.Second)
	for k := range a.pending {
		for {
			resp, pend, err := c.Record(context.Background(), k)
			if resp != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("accepted record %s not committed 45s after restart: pending %+v, %v", k, pend, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	p.stop()

	db, gpath := filepath.Join(home, dbFile), filepath.Join(home, genesisFile)
	code, out, stderr := ledgerd("audit", "--db", db, "--genesis", gpath)
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("audit after three SIGKILLs: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("audit: %s", strings.TrimSpace(out))
	auditTampered(t, db, gpath)
}

// auditTampered flips bytes of a record of the store at db and checks
// that 'ledgerd audit' exits 1 naming the record's block, and passes again
// once the record is restored.
func auditTampered(t *testing.T, db, gpath string) {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	head, err := s.Head(context.Background())
	if err != nil || head.LogSize == 0 {
		s.Close()
		t.Fatalf("records in the store: %v, %v", head, err)
	}
	idx := int64(head.LogSize / 2)
	e, err := s.Record(context.Background(), idx)
	s.Close()
	if err != nil || e.Authority != nil {
		t.Fatalf("record %d: %+v, %v", idx, e, err)
	}
	orig, height := e.Record.Format(), e.Height
	replace := func(from, to []byte) {
		if err := sqlitestoretest.ReplaceEntryBytes(db, from, to); err != nil {
			t.Fatal(err)
		}
	}
	// One hex digit of the commit (the record still parses), then a byte
	// anywhere.
	i := bytes.Index(orig, []byte("\ncommit ")) + len("\ncommit ") + 7
	digit := bytes.Clone(orig)
	digit[i] = "10"[min(1, int(digit[i]-'0'))]
	anywhere := bytes.Clone(orig)
	anywhere[rand.IntN(len(anywhere))] ^= 0x20
	for name, data := range map[string][]byte{"a commit digit": digit, "any byte": anywhere} {
		replace(orig, data)
		code, _, stderr := ledgerd("audit", "--db", db, "--genesis", gpath)
		if code != 1 || !strings.Contains(stderr, fmt.Sprintf("height %d", height)) {
			t.Errorf("audit of a store with %s of record %d flipped: exit %d, want 1 naming height %d\n%s", name, idx, code, height, stderr)
		}
		replace(data, orig)
	}
	if code, out, stderr := ledgerd("audit", "--db", db, "--genesis", gpath); code != 0 {
		t.Errorf("audit of the restored store: exit %d\n%s%s", code, out, stderr)
	}
}

// freeAddr returns a free 127.0.0.1 address.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
