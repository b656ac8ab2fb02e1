package vcs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixtures is the directory testdata/repos/build.sh built, shared by every
// test of the package (the repositories are only read, except by tests that
// copy them first).
var fixtures string

// benchHelper, when set (by bench_test.go), runs a benchmark helper process.
var benchHelper func(mode string) int

// cleanups run after all tests and benchmarks.
var cleanups []func()

func TestMain(m *testing.M) {
	if mode := os.Getenv("VCS_BENCH_HELPER"); mode != "" && benchHelper != nil {
		os.Exit(benchHelper(mode))
	}
	dir, err := os.MkdirTemp("", "vcs-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := buildFixtures(dir); err != nil {
			fmt.Fprintln(os.Stderr, "building fixtures:", err)
			return 2
		}
		fixtures = dir
		defer func() {
			for _, f := range cleanups {
				f()
			}
		}()
		return m.Run()
	}()
	os.Exit(code)
}

func buildFixtures(dir string) error {
	cmd := exec.Command("sh", "../testdata/repos/build.sh", dir)
	cmd.Env = gitEnv(dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	// The go command disables export-ignore and export-subst before it runs
	// git archive (cmd/go/internal/modfetch/codehost.ensureGitAttributes);
	// zip.CreateFromVCS does not, so the fixtures do it for it.
	for _, r := range []string{"basic", "gomod", "legacy"} {
		p := filepath.Join(dir, r, ".git", "info", "attributes")
		if err := os.WriteFile(p, []byte("\n* -export-subst -export-ignore\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// gitEnv is an environment for running git deterministically, without the
// user's configuration.
func gitEnv(home string) []string {
	env := []string{
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=" + home,
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z",
		"LC_ALL=C", "TZ=UTC",
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	return env
}

// git runs git in dir and returns its standard output.
func git(t testing.TB, dir string, args ...string) []byte {
	t.Helper()
	return gitIn(t, dir, nil, args...)
}

func gitIn(t testing.TB, dir string, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "advice.detachedHead=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// copyRepo copies fixture repository name into a new temporary directory,
// for tests that change it.
func copyRepo(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("cp", "-a", filepath.Join(fixtures, name), dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// gitT1 computes t1 of rev's tree independently of this package, from the
// output of git ls-tree and git cat-file.
func gitT1(t testing.TB, dir, rev string) string {
	t.Helper()
	type line struct{ path, text string }
	var lines []line
	for _, rec := range bytes.Split(git(t, dir, "ls-tree", "-r", "-z", "--full-tree", rev), []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, path, _ := bytes.Cut(rec, []byte{'\t'})
		f := strings.Fields(string(meta))
		mode, typ, oid := f[0], f[1], f[2]
		var sum [32]byte
		if typ == "commit" {
			sum = sha256.Sum256([]byte(oid))
		} else {
			sum = sha256.Sum256(git(t, dir, "cat-file", "blob", oid))
		}
		lines = append(lines, line{string(path), fmt.Sprintf("%s %x %s\n", mode, sum, path)})
	}
	slices.SortFunc(lines, func(a, b line) int { return strings.Compare(a.path, b.path) })
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l.text))
	}
	return "t1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// gitServer serves the repositories under root over smart HTTP with git
// http-backend. wrap, if set, wraps the handler (for auth or faults).
type gitServer struct {
	*httptest.Server
	mu    sync.Mutex
	packs int // upload-pack POSTs served
}

func newGitServer(t testing.TB, root string, wrap func(http.Handler) http.Handler) *gitServer {
	t.Helper()
	execPath := strings.TrimSpace(string(git(t, root, "--exec-path")))
	backend := filepath.Join(execPath, "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("no git-http-backend: %v", err)
	}
	gs := &gitServer{}
	var h http.Handler = &cgi.Handler{
		Path:   backend,
		Env:    append(gitEnv(root), "GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1"),
		Stderr: io.Discard,
	}
	inner := h
	h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			gs.mu.Lock()
			gs.packs++
			gs.mu.Unlock()
		}
		inner.ServeHTTP(w, r)
	})
	if wrap != nil {
		h = wrap(h)
	}
	gs.Server = httptest.NewServer(h)
	t.Cleanup(gs.Close)
	return gs
}

func (gs *gitServer) uploads() int {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.packs
}

// gitDaemon serves root over git:// and returns its base URL, or skips.
func gitDaemon(t testing.TB, root string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+root,
		"--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), root)
	cmd.Env = gitEnv(root)
	if err := cmd.Start(); err != nil {
		t.Skipf("git daemon: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Skipf("git daemon did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "git://" + addr
}

func execGit(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	return cmd
}
