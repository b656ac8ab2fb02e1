package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// gitRepo builds a real repository in a temporary directory with tags
// v1..vN, each on its own commit, and returns its path.
func gitRepo(t *testing.T, tags int) string {
	t.Helper()
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q")
	for i := 1; i <= tags; i++ {
		if err := os.WriteFile(filepath.Join(dir, "file.txt"), fmt.Appendf(nil, "release %d\n", i), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "file.txt")
		git("commit", "-qm", fmt.Sprintf("release %d", i))
		git("tag", fmt.Sprintf("v%d", i))
	}
	return dir
}

// testKey is a deterministic node key.
func testKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("node test key"), uint64(i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

// testNet is n validators of one chain, run in this process on 127.0.0.1
// with SQLite files in a temporary directory.
type testNet struct {
	t     *testing.T
	g     *ledger.Genesis
	dir   string
	nodes []*Node
}

func newTestNet(t *testing.T, n, attestQuorum int) *testNet {
	t.Helper()
	g := &ledger.Genesis{Chain: "nodetest", Time: time.Now().UnixMilli(), Engine: ledger.EnginePoA, BlockInterval: 50, AttestQuorum: attestQuorum}
	for i := 0; i < n; i++ {
		var k ledger.PublicKey
		copy(k[:], testKey(i).Public().(ed25519.PublicKey))
		g.Validators = append(g.Validators, ledger.Validator{Key: k, Name: fmt.Sprintf("v%d", i)})
	}
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	tn := &testNet{t: t, g: g, dir: t.TempDir(), nodes: make([]*Node, n)}
	for i := 0; i < n; i++ {
		tn.start(i)
	}
	t.Cleanup(func() {
		for i := range tn.nodes {
			tn.stop(i)
		}
	})
	return tn
}

// start (re)starts node i, bootstrapping to every running node.
func (tn *testNet) start(i int) {
	tn.t.Helper()
	var boot []string
	for j, o := range tn.nodes {
		if j != i && o != nil {
			boot = append(boot, o.P2PAddrs()...)
		}
	}
	cfg := Config{
		Genesis:   tn.g,
		Key:       testKey(i),
		DBPath:    filepath.Join(tn.dir, fmt.Sprintf("node%d.db", i)),
		HTTPAddr:  "127.0.0.1:0",
		Bootstrap: boot,
		CacheDir:  filepath.Join(tn.dir, fmt.Sprintf("cache%d", i)),
	}
	n, err := New(cfg)
	if err != nil {
		tn.t.Fatal(err)
	}
	if err := n.Open(context.Background()); err != nil {
		tn.t.Fatalf("open node %d: %v", i, err)
	}
	tn.nodes[i] = n
}

func (tn *testNet) stop(i int) {
	if n := tn.nodes[i]; n != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			tn.t.Errorf("close node %d: %v", i, err)
		}
		tn.nodes[i] = nil
	}
}

func (tn *testNet) client(i int) *api.Client {
	c, err := api.NewClient("http://"+tn.nodes[i].HTTPAddr(), nil)
	if err != nil {
		tn.t.Fatal(err)
	}
	return c
}

// waitRecord waits until node i serves key committed, verifies the answer
// and returns the entry.
func (tn *testNet) waitRecord(i int, key ledger.Key, timeout time.Duration) *ledger.Entry {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, _, err := tn.client(i).Record(context.Background(), key)
		if err == nil && resp != nil {
			e, _, err := api.VerifyRecord(tn.g, resp)
			if err != nil {
				tn.t.Fatalf("node %d: VerifyRecord(%s) = %v", i, key, err)
			}
			return e
		}
		if time.Now().After(deadline) {
			tn.t.Fatalf("node %d: %s not committed after %s (last error %v)", i, key, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkConverged checks that the running nodes hold identical chains that
// pass Audit with the consensus seal.
func (tn *testNet) checkConverged() {
	tn.t.Helper()
	ctx := context.Background()
	var want []ledger.Hash
	for i, n := range tn.nodes {
		if n == nil {
			continue
		}
		seal, _ := SealChecker(tn.g, n.Store())
		rep, err := ledger.Audit(ctx, n.Store(), tn.g, seal, nil)
		if err != nil {
			tn.t.Fatalf("node %d: Audit = %v", i, err)
		}
		var got []ledger.Hash
		for h := uint64(0); h <= rep.Head.Height; h++ {
			hd, err := n.Store().Header(ctx, h)
			if err != nil {
				tn.t.Fatal(err)
			}
			got = append(got, hd.Hash())
		}
		if want == nil {
			want = got
			continue
		}
		for h := 0; h < min(len(want), len(got)); h++ {
			if want[h] != got[h] {
				tn.t.Fatalf("node %d: block %d is %s, another node has %s", i, h, got[h], want[h])
			}
		}
	}
}

func TestSingleNodeAppendVerifyRestart(t *testing.T) {
	repo := gitRepo(t, 2)
	tn := newTestNet(t, 1, -1)
	key, err := ledger.NewKey(repo, "v1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resp, err := tn.client(0).Submit(ctx, api.SubmitRequest{Key: key.String()}, 30*time.Second)
	if err != nil {
		t.Fatalf("Submit(%s) = %v", key, err)
	}
	if resp.Status != api.StatusCommitted || resp.Record == nil {
		t.Fatalf("Submit(%s, wait) status = %q, want committed", key, resp.Status)
	}
	e := tn.waitRecord(0, key, 10*time.Second)
	want := gitRevParse(t, repo, "v1")
	if e.Record.Commit != want || e.Index != 0 || e.Height != 1 {
		t.Errorf("record = commit %s index %d height %d, want commit %s index 0 height 1", e.Record.Commit, e.Index, e.Height, want)
	}
	// A claim that disagrees with what the validator computed is reported,
	// and the ledger keeps what the validator computed.
	key2, _ := ledger.NewKey(repo, "v2")
	bad := "t1:" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	resp, err = tn.client(0).Submit(ctx, api.SubmitRequest{Key: key2.String(), Tree: bad}, 30*time.Second)
	if err != nil {
		t.Fatalf("Submit(%s with claim) = %v", key2, err)
	}
	if resp.Mismatch == nil {
		t.Errorf("Submit(%s with a wrong claim): no mismatch reported", key2)
	}
	e2 := tn.waitRecord(0, key2, 10*time.Second)
	if e2.Record.Tree == bad {
		t.Errorf("the ledger recorded the client's claim %s", bad)
	}
	// A restart keeps everything.
	tn.stop(0)
	tn.start(0)
	if got := tn.waitRecord(0, key, 5*time.Second); got.Record != e.Record {
		t.Errorf("after restart: record %+v, want %+v", got.Record, e.Record)
	}
	tn.checkConverged()
}

func TestSingleNodeUnfetchableRepoStaysPending(t *testing.T) {
	repo := gitRepo(t, 1)
	tn := newTestNet(t, 1, -1)
	ctx := context.Background()
	missing, _ := ledger.NewKey(filepath.Join(t.TempDir(), "nothing-here"), "v1")
	if _, err := tn.client(0).Submit(ctx, api.SubmitRequest{Key: missing.String()}, 0); err != nil {
		t.Fatalf("Submit(%s) = %v", missing, err)
	}
	good, _ := ledger.NewKey(repo, "v1")
	if _, err := tn.client(0).Submit(ctx, api.SubmitRequest{Key: good.String()}, 0); err != nil {
		t.Fatalf("Submit(%s) = %v", good, err)
	}
	// The unreachable repository does not block the good one.
	tn.waitRecord(0, good, 15*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, p, err := tn.client(0).Record(ctx, missing)
		if err != nil || p == nil {
			t.Fatalf("Record(%s) = pending %v, %v; want pending", missing, p, err)
		}
		if p.LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Record(%s): no fetch error reported", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFourValidators(t *testing.T) {
	repo := gitRepo(t, 3)
	tn := newTestNet(t, 4, -1)
	ctx := context.Background()
	// Submit through every node in turn; every node serves every record.
	var keys []ledger.Key
	for i := 1; i <= 2; i++ {
		k, _ := ledger.NewKey(repo, fmt.Sprintf("v%d", i))
		if _, err := tn.client(i).Submit(ctx, api.SubmitRequest{Key: k.String()}, 0); err != nil {
			t.Fatalf("Submit(%s) via node %d = %v", k, i, err)
		}
		keys = append(keys, k)
	}
	for _, k := range keys {
		for i := range tn.nodes {
			tn.waitRecord(i, k, 30*time.Second)
		}
	}
	// One validator down: the other three still commit.
	tn.stop(3)
	k3, _ := ledger.NewKey(repo, "v3")
	if _, err := tn.client(0).Submit(ctx, api.SubmitRequest{Key: k3.String()}, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		tn.waitRecord(i, k3, 30*time.Second)
	}
	// It comes back and catches up.
	tn.start(3)
	tn.waitRecord(3, k3, 30*time.Second)
	tn.checkConverged()
}

func gitRevParse(t *testing.T, repo, rev string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "rev-parse", rev+"^{commit}").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out[:40])
}
