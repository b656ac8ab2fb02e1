package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/node"
)

// cliNode starts a single-validator node in this process and returns its
// URL.
func cliNode(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub ledger.PublicKey
	copy(pub[:], priv.Public().(ed25519.PublicKey))
	g := &ledger.Genesis{Chain: "clitest", Time: time.Now().UnixMilli(), Engine: ledger.EnginePoA, BlockInterval: 50,
		AttestQuorum: -1, Validators: []ledger.Validator{{Key: pub, Name: "v0"}}}
	dir := t.TempDir()
	n, err := node.New(node.Config{Genesis: g, Key: priv, DBPath: filepath.Join(dir, "ledger.db"), HTTPAddr: "127.0.0.1:0", CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return "http://" + n.HTTPAddr()
}

// cliRepo builds a real repository with tag v1 and returns its path.
func cliRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"commit", "-qm", "one"}, {"tag", "v1"}} {
		if args[0] == "add" {
			os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\n"), 0o644)
		}
		cliGit(t, dir, args...)
	}
	return dir
}

func cliGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// vcsverify runs the command in this process with a fresh client state per
// test and returns its exit code and output.
func vcsverify(t *testing.T, home string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("VCSVERIFY_HOME", home)
	t.Setenv("VCSVERIFY_CACHE", filepath.Join(home, "cache"))
	t.Setenv("VCSVERIFY_NODE", "")
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"-q"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckAppendMoveTag(t *testing.T) {
	nodeURL := cliNode(t)
	repo := cliRepo(t)
	home := t.TempDir()

	if code, _, stderr := vcsverify(t, home, "check", "--node", nodeURL, repo, "v1"); code != exitNotFound {
		t.Fatalf("check before append: exit %d, want %d (%s)", code, exitNotFound, stderr)
	}
	code, out, stderr := vcsverify(t, home, "check", "--json", "--append", "--node", nodeURL, repo, "v1")
	if code != exitOK {
		t.Fatalf("check --append: exit %d, want 0\n%s%s", code, out, stderr)
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Result != "appended" || rep.Ledger == nil || rep.Local == nil || rep.Ledger.Tree != rep.Local.Tree {
		t.Fatalf("check --append --json = %s (%v)", out, err)
	}
	if code, out, stderr := vcsverify(t, home, "check", "--node", nodeURL, repo, "v1"); code != exitOK || !strings.HasPrefix(out, "verified") {
		t.Fatalf("check: exit %d, want 0\n%s%s", code, out, stderr)
	}
	key := "file://" + repo + "@v1"
	if code, out, _ := vcsverify(t, home, "lookup", "--node", nodeURL, key); code != exitOK || !strings.Contains(out, rep.Local.Tree) {
		t.Fatalf("lookup: exit %d\n%s", code, out)
	}
	if code, _, _ := vcsverify(t, home, "lookup", "--node", nodeURL, "example.com/none@v9"); code != exitNotFound {
		t.Fatalf("lookup of an unknown key: exit %d, want %d", code, exitNotFound)
	}

	// The tag is moved to other code: SECURITY ERROR, exit 1, both hashes.
	os.WriteFile(filepath.Join(repo, "a.txt"), []byte("evil\n"), 0o644)
	cliGit(t, repo, "commit", "-qam", "evil")
	cliGit(t, repo, "tag", "-f", "v1")
	code, out, stderr = vcsverify(t, home, "check", "--node", nodeURL, repo, "v1")
	if code != exitMismatch || !strings.Contains(out, "SECURITY ERROR") || !strings.Contains(out, rep.Local.Tree) {
		t.Fatalf("check of a moved tag: exit %d, want 1 with SECURITY ERROR and the ledger's hash\n%s%s", code, out, stderr)
	}
	// Appending again does not overwrite the ledger.
	if code, _, _ := vcsverify(t, home, "check", "--append", "--node", nodeURL, repo, "v1"); code != exitMismatch {
		t.Fatalf("check --append of a moved tag: exit %d, want 1", code)
	}
	if code, out, stderr := vcsverify(t, home, "audit", "--node", nodeURL); code != exitOK {
		t.Fatalf("audit: exit %d\n%s%s", code, out, stderr)
	}
}

// TestTamperedAnswers puts a proxy between the client and an honest node
// that alters record answers: the client must fail loudly, never verify.
func TestTamperedAnswers(t *testing.T) {
	nodeURL := cliNode(t)
	repo := cliRepo(t)
	home := t.TempDir()
	if code, out, stderr := vcsverify(t, home, "check", "--append", "--node", nodeURL, repo, "v1"); code != exitOK {
		t.Fatalf("check --append: exit %d\n%s%s", code, out, stderr)
	}
	target, _ := url.Parse(nodeURL)
	tampers := map[string]func(map[string]any){
		"proof byte": func(m map[string]any) {
			p := m["proof"].([]any)
			if len(p) == 0 {
				// a one-record log has an empty proof: add a bogus hash
				m["proof"] = []any{strings.Repeat("00", 32)}
				return
			}
			s := p[0].(string)
			p[0] = flipHex(s)
		},
		"log root": func(m map[string]any) {
			cp := m["checkpoint"].(map[string]any)
			cp["log_root"] = flipHex(cp["log_root"].(string))
		},
		"commit": func(m map[string]any) { m["commit"] = flipHex(m["commit"].(string)) },
		"tree":   func(m map[string]any) { m["tree"] = "t1:" + strings.Repeat("A", 43) + "=" },
		"header": func(m map[string]any) {
			cp := m["checkpoint"].(map[string]any)
			cp["header"] = strings.Replace(cp["header"].(string), "time ", "time 1", 1)
		},
	}
	for name, tamper := range tampers {
		t.Run(name, func(t *testing.T) {
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				req, _ := http.NewRequest(r.Method, target.String()+r.URL.RequestURI(), r.Body)
				req.Header = r.Header
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					http.Error(w, err.Error(), 502)
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if strings.HasPrefix(r.URL.Path, "/v1/records/") && resp.StatusCode == 200 {
					var m map[string]any
					if json.Unmarshal(body, &m) == nil {
						tamper(m)
						body, _ = json.Marshal(m)
					}
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(resp.StatusCode)
				w.Write(body)
			}))
			defer proxy.Close()
			key := "file://" + repo + "@v1"
			for _, args := range [][]string{{"lookup", "--node", proxy.URL, key}, {"check", "--node", proxy.URL, repo, "v1"}} {
				code, out, stderr := vcsverify(t, t.TempDir(), args...)
				if code == exitOK || !strings.Contains(out+stderr, "SECURITY ERROR") {
					t.Errorf("%v through a proxy that alters the %s: exit %d, want a SECURITY ERROR\n%s%s", args[0], name, code, out, stderr)
				}
			}
		})
	}
}

func flipHex(s string) string {
	b := []byte(s)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

func TestGenesisPinned(t *testing.T) {
	home := t.TempDir()
	a := cliNode(t)
	if code, _, stderr := vcsverify(t, home, "lookup", "--node", a, "example.com/x@v1"); code != exitNotFound {
		t.Fatalf("lookup: exit %d (%s)", code, stderr)
	}
	// Another chain with the same id and another validator, at the same URL
	// as far as the client knows: a changed genesis is a security error.
	b := cliNode(t)
	st := filepath.Join(home, "nodes.json")
	data, _ := os.ReadFile(st)
	os.WriteFile(st, bytes.ReplaceAll(data, []byte(a), []byte(b)), 0o600)
	code, out, stderr := vcsverify(t, home, "lookup", "--node", b, "example.com/x@v1")
	if code != exitMismatch || !strings.Contains(out+stderr, "SECURITY ERROR") {
		t.Fatalf("lookup against a changed genesis: exit %d, want 1 SECURITY ERROR\n%s%s", code, out, stderr)
	}
}
