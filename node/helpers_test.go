package node

// Helpers for the node package's tests: real git repositories built with
// the git CLI, genesis values, and single nodes run in this process on
// 127.0.0.1 with their SQLite file under t.TempDir(). Nothing shipped is
// replaced by a fake. They are meant for any test of this package (end to
// end, network, benchmarks); node_test.go's testNet runs several validators
// of one chain on top of the same kind of Config.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// gitEnv is the environment of every git command the helpers run: no user
// or system configuration, fixed identities and dates, so that fixtures do
// not depend on the machine.
var gitEnv = append(os.Environ(),
	"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
	"GIT_AUTHOR_NAME=fixture", "GIT_AUTHOR_EMAIL=fixture@example.com",
	"GIT_COMMITTER_NAME=fixture", "GIT_COMMITTER_EMAIL=fixture@example.com",
	"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z",
)

// A fixtureRepo is a real git repository in a temporary directory, built
// with the git CLI.
type fixtureRepo struct {
	tb  testing.TB
	Dir string
}

// newFixtureRepo creates an empty repository (default branch main).
func newFixtureRepo(tb testing.TB) *fixtureRepo {
	tb.Helper()
	r := &fixtureRepo{tb: tb, Dir: filepath.Join(tb.TempDir(), "repo")}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	r.git("-c", "init.defaultBranch=main", "init", "-q")
	return r
}

// git runs git in the repository and returns its trimmed standard output.
func (r *fixtureRepo) git(args ...string) string {
	r.tb.Helper()
	return r.gitIn(nil, args...)
}

// gitIn runs git with stdin and returns its trimmed standard output.
func (r *fixtureRepo) gitIn(stdin []byte, args ...string) string {
	r.tb.Helper()
	cmd := exec.Command("git", append([]string{"-c", "commit.gpgSign=false", "-c", "tag.gpgSign=false"}, args...)...)
	cmd.Dir = r.Dir
	cmd.Env = gitEnv
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.tb.Fatalf("git %q: %v\n%s", args, err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path -> content, relative to the work tree), commits
// everything and returns the commit id.
func (r *fixtureRepo) commit(msg string, files map[string]string) string {
	r.tb.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.tb.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	return r.rev("HEAD")
}

// tag points the lightweight tag name at rev (HEAD when empty), moving it
// if it exists: that is how an attacker rewrites a release.
func (r *fixtureRepo) tag(name, rev string) {
	r.tb.Helper()
	if rev == "" {
		rev = "HEAD"
	}
	r.git("tag", "-f", name, rev)
}

// release commits a file whose content names the release and tags it.
func (r *fixtureRepo) release(tag string) string {
	r.tb.Helper()
	c := r.commit("release "+tag, map[string]string{"VERSION": tag + "\n"})
	r.tag(tag, c)
	return c
}

// tagMany creates n lightweight tags prefix0 .. prefix<n-1> on HEAD with one
// git process, and returns their names.
func (r *fixtureRepo) tagMany(prefix string, n int) []string {
	r.tb.Helper()
	head := r.rev("HEAD")
	var in bytes.Buffer
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
		fmt.Fprintf(&in, "create refs/tags/%s %s\n", names[i], head)
	}
	r.gitIn(in.Bytes(), "update-ref", "--stdin")
	return names
}

// hostileTag tags a commit whose tree holds a file whose name contains a
// newline, written with plumbing (git's porcelain refuses nothing here, but
// the tree is made byte by byte so no check of any git version interferes).
// DESIGN §2: such a tree is an error, never a hash.
func (r *fixtureRepo) hostileTag(tag string) string {
	r.tb.Helper()
	blob := r.gitIn([]byte("hostile\n"), "hash-object", "-w", "--stdin")
	id, err := hex.DecodeString(blob)
	if err != nil {
		r.tb.Fatal(err)
	}
	var tree bytes.Buffer
	tree.WriteString("100644 evil\nname")
	tree.WriteByte(0)
	tree.Write(id)
	treeID := r.gitIn(tree.Bytes(), "hash-object", "-w", "-t", "tree", "--literally", "--stdin")
	c := r.gitIn([]byte("hostile\n"), "commit-tree", treeID)
	r.tag(tag, c)
	return c
}

// rev returns the commit id rev peels to.
func (r *fixtureRepo) rev(rev string) string {
	r.tb.Helper()
	return r.git("rev-parse", rev+"^{commit}")
}

// key returns the ledger key of the repository at tag.
func (r *fixtureRepo) key(tag string) ledger.Key {
	r.tb.Helper()
	k, err := ledger.NewKey(r.Dir, tag)
	if err != nil {
		r.tb.Fatalf("NewKey(%s, %s) = %v", r.Dir, tag, err)
	}
	return k
}

// newGenesis returns a valid PoA genesis of chain for the validators whose
// keys are given. attestQuorum -1 is the default (f+1: 1 for fewer than four
// validators); 0 means the proposer's own attestation is enough.
func newGenesis(tb testing.TB, chain string, attestQuorum int, keys ...ed25519.PrivateKey) *ledger.Genesis {
	tb.Helper()
	g := &ledger.Genesis{Chain: chain, Time: time.Now().UnixMilli(), Engine: ledger.EnginePoA, BlockInterval: 50, AttestQuorum: attestQuorum}
	for i, k := range keys {
		g.Validators = append(g.Validators, ledger.Validator{Key: publicKeyOf(k), Name: fmt.Sprintf("v%d", i)})
	}
	if err := g.Validate(); err != nil {
		tb.Fatalf("genesis: %v", err)
	}
	return g
}

func publicKeyOf(k ed25519.PrivateKey) ledger.PublicKey {
	var p ledger.PublicKey
	copy(p[:], k.Public().(ed25519.PublicKey))
	return p
}

// A testNode is one node run in this process. Its Config is kept so that it
// can be restarted on the same store and HTTP address.
type testNode struct {
	tb  testing.TB
	Cfg Config
	*Node
}

// startNode opens a node with cfg. Genesis and Key are required; the rest
// defaults for tests: a fresh directory under tb.TempDir() for the store and
// the fetch cache, HTTP on a free port of 127.0.0.1, 30 s fetch timeout. The
// node is closed when the test ends.
func startNode(tb testing.TB, cfg Config) *testNode {
	tb.Helper()
	if cfg.DBPath == "" {
		cfg.DBPath = filepath.Join(tb.TempDir(), "ledger.db")
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(filepath.Dir(cfg.DBPath), "cache")
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 30 * time.Second
	}
	tn := &testNode{tb: tb, Cfg: cfg}
	tn.open()
	tb.Cleanup(tn.stop)
	return tn
}

func (tn *testNode) open() {
	tn.tb.Helper()
	n, err := New(tn.Cfg)
	if err != nil {
		tn.tb.Fatalf("node.New: %v", err)
	}
	if err := n.Open(context.Background()); err != nil {
		tn.tb.Fatalf("node.Open: %v", err)
	}
	tn.Node = n
	// A restart keeps the URL clients know.
	tn.Cfg.HTTPAddr = n.HTTPAddr()
}

// stop closes the node (a clean shutdown); it is a no-op when stopped.
func (tn *testNode) stop() {
	if tn.Node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tn.Node.Close(ctx); err != nil {
		tn.tb.Errorf("close node: %v", err)
	}
	tn.Node = nil
}

// restart stops the node and opens it again on the same store and address.
func (tn *testNode) restart() {
	tn.tb.Helper()
	tn.stop()
	tn.open()
}

// URL is the node's API base URL.
func (tn *testNode) URL() string { return "http://" + tn.Cfg.HTTPAddr }

// client returns an API client of the node.
func (tn *testNode) client() *api.Client {
	tn.tb.Helper()
	c, err := api.NewClient(tn.URL(), &http.Client{Timeout: 90 * time.Second})
	if err != nil {
		tn.tb.Fatal(err)
	}
	return c
}

// waitCommitted polls the node until it serves key committed, verifies the
// answer against the genesis (proof and signed checkpoint) and returns the
// entry.
func (tn *testNode) waitCommitted(key ledger.Key, timeout time.Duration) *ledger.Entry {
	tn.tb.Helper()
	c := tn.client()
	deadline := time.Now().Add(timeout)
	for {
		resp, p, err := c.Record(context.Background(), key)
		if resp != nil && tn.Cfg.Genesis.Engine == ledger.EnginePoW {
			e, _, err := api.VerifyRecord(tn.Cfg.Genesis, resp) // the checkpoint's work
			if err != nil {
				tn.tb.Fatalf("VerifyRecord(%s) = %v", key, err)
			}
			return e
		}
		if resp != nil {
			// The certificate is checked against the set in force at its
			// height, by the history the node proves.
			hist, err := c.Authority(context.Background())
			if err != nil {
				tn.tb.Fatalf("Authority() = %v", err)
			}
			auth, err := api.VerifyAuthority(tn.Cfg.Genesis, hist)
			if err != nil {
				tn.tb.Fatalf("VerifyAuthority = %v", err)
			}
			e, _, err := api.VerifyRecordWith(tn.Cfg.Genesis, auth, resp)
			if err != nil {
				tn.tb.Fatalf("VerifyRecord(%s) = %v", key, err)
			}
			return e
		}
		if time.Now().After(deadline) {
			var last string
			if p != nil {
				last = fmt.Sprintf("pending, %d attestations, last error %q", p.Attestations, p.LastError)
			}
			tn.tb.Fatalf("%s not committed after %v (%s; err %v)", key, timeout, last, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPendingError polls the node until key is pending with a fetch error,
// and returns the pending record.
func (tn *testNode) waitPendingError(key ledger.Key, timeout time.Duration) *api.PendingInfo {
	tn.tb.Helper()
	c := tn.client()
	deadline := time.Now().Add(timeout)
	for {
		resp, p, err := c.Record(context.Background(), key)
		switch {
		case resp != nil:
			tn.tb.Fatalf("%s committed (commit %s tree %s), want pending with an error", key, resp.Commit, resp.Tree)
		case err != nil && !errors.Is(err, api.ErrNotFound):
			tn.tb.Fatalf("Record(%s) = %v", key, err)
		case p != nil && p.LastError != "":
			return p
		}
		if time.Now().After(deadline) {
			tn.tb.Fatalf("%s: no fetch error reported after %v (pending %+v, err %v)", key, timeout, p, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// audit re-verifies the node's whole store from genesis, with the
// consensus seal, and returns the head.
func (tn *testNode) audit() *ledger.Header {
	tn.tb.Helper()
	seal, err := SealChecker(tn.Cfg.Genesis, tn.Store())
	if err != nil {
		tn.tb.Fatal(err)
	}
	rep, err := ledger.Audit(context.Background(), tn.Store(), tn.Cfg.Genesis, seal, nil)
	if err != nil {
		tn.tb.Fatalf("Audit = %v", err)
	}
	return &rep.Head
}

// head returns the store's head.
func (tn *testNode) head() *ledger.Header {
	tn.tb.Helper()
	h, err := tn.Store().Head(context.Background())
	if err != nil {
		tn.tb.Fatal(err)
	}
	return h
}
