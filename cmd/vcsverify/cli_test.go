package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/node"
)

// newChain returns the genesis of a single-validator chain with a fresh
// key and the default attest quorum (1: the node fetches every repository
// itself), and the validator's key.
func newChain(t *testing.T, chain string) (*ledger.Genesis, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub ledger.PublicKey
	copy(pub[:], priv.Public().(ed25519.PublicKey))
	g := &ledger.Genesis{Chain: chain, Time: time.Now().UnixMilli(), Engine: ledger.EnginePoA, BlockInterval: 50,
		AttestQuorum: -1, Validators: []ledger.Validator{{Key: pub, Name: "v0"}}}
	return g, priv
}

// startNode starts a single-validator node of a new chain (see newChain)
// in this process, serving HTTP on addr ("127.0.0.1:0" for any port).
func startNode(t *testing.T, chain, addr string) *node.Node {
	t.Helper()
	g, key := newChain(t, chain)
	return startNodeOf(t, g, key, addr)
}

// startNodeOf starts a node of g with key and its own store, serving HTTP
// on addr. It is closed when the test ends.
func startNodeOf(t *testing.T, g *ledger.Genesis, key ed25519.PrivateKey, addr string) *node.Node {
	t.Helper()
	dir := t.TempDir()
	n, err := node.New(node.Config{Genesis: g, Key: key, DBPath: filepath.Join(dir, "ledger.db"), HTTPAddr: addr, CacheDir: filepath.Join(dir, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// cliNode starts a node (see startNode) and returns its URL.
func cliNode(t *testing.T) string {
	t.Helper()
	return "http://" + startNode(t, "clitest", "127.0.0.1:0").HTTPAddr()
}

// cliRepo builds a real repository with tag v1 and returns its path.
func cliRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cliGit(t, dir, "init", "-q")
	cliRelease(t, dir, "v1", "one\n")
	return dir
}

// cliRelease commits a.txt with content and points tag at the commit,
// moving the tag if it exists.
func cliRelease(t *testing.T, dir, tag, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	cliGit(t, dir, "add", "a.txt")
	cliGit(t, dir, "commit", "-qm", tag)
	cliGit(t, dir, "tag", "-f", tag)
}

func cliGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// vcsverify runs the command in this process with client state in home
// and returns its exit code and output.
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

	// The tag is moved to other code: SECURITY ERROR, exit 1, and both
	// hashes and both commits are printed.
	cliRelease(t, repo, "v1", "evil\n")
	newCommit := cliGit(t, repo, "rev-parse", "v1^{commit}")
	code, out, stderr = vcsverify(t, home, "check", "--node", nodeURL, repo, "v1")
	if code != exitMismatch || !strings.Contains(out, "SECURITY ERROR") {
		t.Fatalf("check of a moved tag: exit %d, want 1 with SECURITY ERROR\n%s%s", code, out, stderr)
	}
	_, hashOut, _ := vcsverify(t, home, "hash", "--json", repo, "v1")
	var h hashOutput
	if err := json.Unmarshal([]byte(hashOut), &h); err != nil || h.Commit != newCommit {
		t.Fatalf("hash --json of the moved tag = %s (%v)", hashOut, err)
	}
	for what, s := range map[string]string{"ledger tree": rep.Ledger.Tree, "ledger commit": rep.Ledger.Commit, "fetched tree": h.Tree, "fetched commit": h.Commit} {
		if !strings.Contains(out, s) {
			t.Errorf("the SECURITY ERROR does not show the %s %s:\n%s", what, s, out)
		}
	}
	// Appending again does not overwrite the ledger.
	if code, _, _ := vcsverify(t, home, "check", "--append", "--node", nodeURL, repo, "v1"); code != exitMismatch {
		t.Fatalf("check --append of a moved tag: exit %d, want 1", code)
	}
	if code, out, stderr := vcsverify(t, home, "audit", "--node", nodeURL); code != exitOK {
		t.Fatalf("audit: exit %d\n%s%s", code, out, stderr)
	}
}

// tamperProxy returns the URL of a proxy to target that passes every
// request through and lets tamper rewrite the decoded JSON of 200 answers
// to paths with prefix.
func tamperProxy(t *testing.T, target, prefix string, tamper func(path string, m map[string]any)) string {
	t.Helper()
	return rawProxy(t, target, func(r *http.Request, status int, body []byte) (int, []byte) {
		if !strings.HasPrefix(r.URL.Path, prefix) || status != http.StatusOK {
			return status, body
		}
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			tamper(r.URL.Path, m)
			body, _ = json.Marshal(m)
		}
		return status, body
	})
}

// rewriteHeader changes a checkpoint's header with change and rewrites the
// checkpoint's hash and fields to match, as a careful liar would: only the
// certificate can then tell.
func rewriteHeader(t *testing.T, cp map[string]any, change func(h *ledger.Header)) {
	h, err := ledger.ParseHeader([]byte(cp["header"].(string)))
	if err != nil {
		t.Errorf("tamper: %v", err)
		return
	}
	change(h)
	cp["header"] = string(h.Format())
	cp["hash"] = h.Hash().String()
	cp["log_root"] = h.LogRoot.String()
	cp["log_size"] = h.LogSize
	cp["time"] = h.Time
	cp["height"] = h.Height
}

// TestTamperedAnswers puts a proxy between the client and an honest node
// that alters record answers: the client must exit 1 with a SECURITY ERROR,
// never verify.
func TestTamperedAnswers(t *testing.T) {
	n := startNode(t, "clitest", "127.0.0.1:0")
	nodeURL := "http://" + n.HTTPAddr()
	repo := cliRepo(t)
	// Three records, so that record v1's proof has hashes to flip, and
	// other records' fields to swap in.
	cliRelease(t, repo, "v2", "two\n")
	cliRelease(t, repo, "v3", "three\n")
	for _, tag := range []string{"v1", "v2", "v3"} {
		if code, out, stderr := vcsverify(t, t.TempDir(), "check", "--append", "--node", nodeURL, repo, tag); code != exitOK {
			t.Fatalf("check --append %s: exit %d\n%s%s", tag, code, out, stderr)
		}
	}
	other := recordJSON(t, nodeURL, "file://"+repo+"@v2")
	key := "file://" + repo + "@v1"

	tampers := map[string]func(map[string]any){
		"proof byte": func(m map[string]any) {
			p := m["proof"].([]any)
			p[len(p)-1] = flipHex(p[len(p)-1].(string), 17)
		},
		"proof hash dropped": func(m map[string]any) {
			p := m["proof"].([]any)
			m["proof"] = p[:len(p)-1]
		},
		"proof hash added": func(m map[string]any) {
			m["proof"] = append(m["proof"].([]any), strings.Repeat("ab", 32))
		},
		"log_root field": func(m map[string]any) {
			cp := m["checkpoint"].(map[string]any)
			cp["log_root"] = flipHex(cp["log_root"].(string), 0)
		},
		"log root in a rehashed header": func(m map[string]any) {
			rewriteHeader(t, m["checkpoint"].(map[string]any), func(h *ledger.Header) { h.LogRoot[5] ^= 1 })
		},
		"log size in a rehashed header": func(m map[string]any) {
			rewriteHeader(t, m["checkpoint"].(map[string]any), func(h *ledger.Header) { h.LogSize++ })
		},
		"certificate signature": func(m map[string]any) {
			cp := m["checkpoint"].(map[string]any)
			c := cp["certificate"].(string)
			i := strings.LastIndex(c, " ") + 10
			cp["certificate"] = c[:i] + flipHex(c[i:], 0)
		},
		"commit flipped": func(m map[string]any) { m["commit"] = flipHex(m["commit"].(string), 0) },
		"commit swapped": func(m map[string]any) { m["commit"] = other["commit"] },
		"tree swapped":   func(m map[string]any) { m["tree"] = other["tree"] },
		"index":          func(m map[string]any) { m["index"] = other["index"] },
		"h1 added":       func(m map[string]any) { m["h1"] = "h1:" + strings.Repeat("A", 43) + "=" },
		"another record's answer": func(m map[string]any) {
			for _, f := range []string{"commit", "tree", "index", "height", "proof", "checkpoint"} {
				m[f] = other[f]
			}
		},
	}
	for name, tamper := range tampers {
		t.Run(name, func(t *testing.T) {
			proxy := tamperProxy(t, nodeURL, "/v1/records/", func(_ string, m map[string]any) { tamper(m) })
			for _, args := range [][]string{{"lookup", "--node", proxy, key}, {"check", "--node", proxy, repo, "v1"}} {
				code, out, stderr := vcsverify(t, t.TempDir(), args...)
				t.Logf("%s: exit %d: %.240s", args[0], code, stderr)
				if code != exitMismatch || !strings.Contains(out+stderr, "SECURITY ERROR") {
					t.Errorf("%s through a proxy that alters the %s: exit %d, want 1 with a SECURITY ERROR\n%s%s", args[0], name, code, out, stderr)
				}
			}
		})
	}

	// A "not in the ledger" answer rests on the checkpoint: a forged one is
	// a SECURITY ERROR, not exit 3.
	t.Run("checkpoint behind a not-found answer", func(t *testing.T) {
		proxy := tamperProxy(t, nodeURL, "/v1/checkpoint", func(_ string, m map[string]any) {
			rewriteHeader(t, m, func(h *ledger.Header) { h.LogRoot[0] ^= 1 })
		})
		code, out, stderr := vcsverify(t, t.TempDir(), "lookup", "--node", proxy, "example.com/none@v1")
		if code != exitMismatch || !strings.Contains(out+stderr, "SECURITY ERROR") {
			t.Errorf("lookup of an unknown key through a proxy that forges the checkpoint: exit %d, want 1\n%s%s", code, out, stderr)
		}
	})

}

// TestForkedHistory runs two nodes of one chain whose validator signed two
// different histories (the same genesis and key, separate stores): a
// client that verified one and then meets the other reports a fork or a
// rewritten history as a SECURITY ERROR, and never accepts the other's
// record for a key it saw.
func TestForkedHistory(t *testing.T) {
	g, key := newChain(t, "clitest")
	a := "http://" + startNodeOf(t, g, key, "127.0.0.1:0").HTTPAddr()
	b := "http://" + startNodeOf(t, g, key, "127.0.0.1:0").HTTPAddr()
	c := "http://" + startNodeOf(t, g, key, "127.0.0.1:0").HTTPAddr()
	repo := cliRepo(t)
	cliRelease(t, repo, "v2", "two\n")
	cliRelease(t, repo, "v3", "three\n")
	key1 := "file://" + repo + "@v1"
	// a: v1 at height 1. b: v2 at height 1 (a fork at height 1).
	// c: v2, v3, v1 (a history that does not extend a's log).
	for _, step := range []struct{ node, tag string }{{a, "v1"}, {b, "v2"}, {c, "v2"}, {c, "v3"}, {c, "v1"}} {
		if code, out, stderr := vcsverify(t, t.TempDir(), "append", "--node", step.node, repo, step.tag); code != exitOK {
			t.Fatalf("append %s to %s: exit %d\n%s%s", step.tag, step.node, code, out, stderr)
		}
	}
	for _, tc := range []struct {
		name, other string
		args        []string
	}{
		{"fork at the same height", b, []string{"lookup", "--node", b, "file://" + repo + "@v2"}},
		{"fork at the same height, not found", b, []string{"lookup", "--node", b, "example.com/none@v1"}},
		{"rewritten history", c, []string{"lookup", "--node", c, key1}},
		{"rewritten history, check", c, []string{"check", "--node", c, repo, "v1"}},
		{"both nodes at once", b, []string{"lookup", "--node", a, "--node", b, key1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			if code, out, stderr := vcsverify(t, home, "lookup", "--node", a, key1); code != exitOK {
				t.Fatalf("lookup on a: exit %d\n%s%s", code, out, stderr)
			}
			code, out, stderr := vcsverify(t, home, tc.args...)
			t.Logf("%v: exit %d: %.200s", tc.args[0], code, stderr)
			if code != exitMismatch || !strings.Contains(out+stderr, "SECURITY ERROR") {
				t.Errorf("%v after verifying a's chain: exit %d, want 1 with a SECURITY ERROR\n%s%s", tc.args, code, out, stderr)
			}
		})
	}
	// The audit of a mirror of a's chain against c is a SECURITY ERROR too.
	home, mirror := t.TempDir(), t.TempDir()
	if code, out, stderr := vcsverify(t, home, "audit", "--node", a, "--mirror", mirror); code != exitOK {
		t.Fatalf("audit of a: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := vcsverify(t, t.TempDir(), "audit", "--node", c, "--mirror", mirror); code != exitMismatch || !strings.Contains(out+stderr, "SECURITY ERROR") {
		t.Errorf("audit of c into a's mirror: exit %d, want 1 with a SECURITY ERROR\n%s%s", code, out, stderr)
	}
}

// recordJSON returns the node's answer for key, decoded.
func recordJSON(t *testing.T, nodeURL, key string) map[string]any {
	t.Helper()
	resp, err := http.Get(nodeURL + "/v1/records/" + url.PathEscape(key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET record %s: %d %v", key, resp.StatusCode, err)
	}
	return m
}

// flipHex changes the hex digit of s at i.
func flipHex(s string, i int) string {
	b := []byte(s)
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}

// TestGenesisPinned replaces the node behind a URL the client knows by
// another chain's node at the same address: a changed genesis is a
// SECURITY ERROR (exit 1), whatever the command.
func TestGenesisPinned(t *testing.T) {
	repo := cliRepo(t)
	home := t.TempDir()
	a := startNode(t, "clitest", "127.0.0.1:0")
	addr := a.HTTPAddr()
	nodeURL := "http://" + addr
	if code, out, stderr := vcsverify(t, home, "check", "--append", "--node", nodeURL, repo, "v1"); code != exitOK {
		t.Fatalf("check --append: exit %d\n%s%s", code, out, stderr)
	}
	for _, tc := range []struct{ name, chain string }{
		{"same chain id, another validator", "clitest"},
		{"another chain id", "elsewhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a != nil {
				a.Close(context.Background())
				a = nil
			}
			b := startNode(t, tc.chain, addr)
			// The impostor knows the record too, with other content.
			other := cliRepo(t)
			cliRelease(t, other, "v1", "impostor\n")
			for _, args := range [][]string{
				{"lookup", "--node", nodeURL, "file://" + repo + "@v1"},
				{"lookup", "--node", nodeURL, "example.com/none@v1"},
				{"check", "--node", nodeURL, repo, "v1"},
				{"append", "--node", nodeURL, other, "v1"},
				{"audit", "--node", nodeURL},
			} {
				code, out, stderr := vcsverify(t, home, args...)
				if code != exitMismatch || !strings.Contains(out+stderr, "SECURITY ERROR") {
					t.Errorf("%s against a changed genesis: exit %d, want 1 with a SECURITY ERROR\n%s%s", args[0], code, out, stderr)
				}
			}
			b.Close(context.Background())
		})
	}
}

// TestJSONOutputs runs every command with --json and checks that the
// output is one JSON object with the fields machines rely on, and that exit
// codes follow DESIGN §7: 0 verified, 3 not in the ledger (or pending).
func TestJSONOutputs(t *testing.T) {
	n := startNode(t, "clitest", "127.0.0.1:0")
	nodeURL := "http://" + n.HTTPAddr()
	repo := cliRepo(t)
	cliRelease(t, repo, "v2", "two\n")
	home := t.TempDir()
	commit1 := cliGit(t, repo, "rev-parse", "v1^{commit}")
	key1 := "file://" + repo + "@v1"

	run := func(want int, args ...string) map[string]any {
		t.Helper()
		code, out, stderr := vcsverify(t, home, append([]string{"--json"}, args...)...)
		if code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, code, want, out, stderr)
		}
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%v --json: %v\n%s", args, err, out)
		}
		if dec.More() {
			t.Fatalf("%v --json: more than one JSON value\n%s", args, out)
		}
		return m
	}
	want := func(m map[string]any, fields map[string]any) {
		t.Helper()
		for f, v := range fields {
			got, ok := m[f]
			switch {
			case !ok:
				t.Errorf("JSON has no %q: %v", f, m)
			case v != nil && got != v:
				t.Errorf("JSON %q = %v, want %v", f, got, v)
			}
		}
	}

	h := run(exitOK, "hash", repo, "v1")
	want(h, map[string]any{"key": key1, "repo": "file://" + repo, "tag": "v1", "commit": commit1, "tree": nil})
	tree1, _ := h["tree"].(string)
	if !strings.HasPrefix(tree1, "t1:") {
		t.Fatalf("hash --json tree = %q", tree1)
	}

	want(run(exitNotFound, "lookup", "--node", nodeURL, key1), map[string]any{"result": "not_found", "key": key1})
	m := run(exitNotFound, "check", "--node", nodeURL, repo, "v1")
	want(m, map[string]any{"result": "not_found", "key": key1, "local": nil, "reason": nil})

	m = run(exitOK, "append", "--node", nodeURL, repo, "v1")
	want(m, map[string]any{"result": "appended", "key": key1, "repo": "file://" + repo, "tag": "v1", "node": nodeURL, "ledger": nil})
	l := m["ledger"].(map[string]any)
	want(l, map[string]any{"commit": commit1, "tree": tree1, "index": 0.0, "height": nil, "checkpoint_log_size": nil, "checkpoint_height": nil})

	m = run(exitOK, "check", "--node", nodeURL, repo, "v1")
	want(m, map[string]any{"result": "verified", "key": key1, "local": nil, "ledger": nil})
	if m["local"].(map[string]any)["tree"] != tree1 || m["ledger"].(map[string]any)["tree"] != tree1 {
		t.Errorf("check --json: local %v, ledger %v; want tree %s in both", m["local"], m["ledger"], tree1)
	}
	want(run(exitOK, "check", "--append", "--node", nodeURL, repo, "v2"), map[string]any{"result": "appended"})

	proof := filepath.Join(t.TempDir(), "v1.proof")
	m = run(exitOK, "lookup", "--node", nodeURL, "--proof-out", proof, key1)
	want(m, map[string]any{"result": "found", "key": key1, "ledger": nil, "node": nodeURL})
	want(run(exitOK, "verify-proof", proof), map[string]any{"result": "verified", "key": key1, "commit": commit1, "tree": tree1, "index": 0.0})

	// A pending key (its tag does not exist, so it never gets attested) is
	// reported as pending with exit 3 by lookup and check.
	c, err := api.NewClient(nodeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	key404 := "file://" + repo + "@v404"
	if _, err := c.Submit(context.Background(), api.SubmitRequest{Key: key404}, 0); err != nil {
		t.Fatal(err)
	}
	want(run(exitNotFound, "lookup", "--node", nodeURL, key404), map[string]any{"result": "pending", "key": key404})

	mirror := t.TempDir()
	m = run(exitOK, "audit", "--node", nodeURL, "--mirror", mirror)
	want(m, map[string]any{"chain": "clitest", "height": nil, "hash": nil, "log_size": 2.0, "log_root": nil, "new_blocks": nil, "node": nodeURL})
	if m["new_blocks"] != m["height"] {
		t.Errorf("first audit into an empty mirror: new_blocks %v, height %v", m["new_blocks"], m["height"])
	}
	m = run(exitOK, "audit", "--node", nodeURL, "--mirror", mirror)
	want(m, map[string]any{"new_blocks": 0.0, "log_size": 2.0})

	// The moved tag, in JSON: result mismatch with both sides.
	cliRelease(t, repo, "v1", "evil\n")
	m = run(exitMismatch, "check", "--node", nodeURL, repo, "v1")
	want(m, map[string]any{"result": "mismatch", "key": key1})
	loc, led := m["local"].(map[string]any), m["ledger"].(map[string]any)
	if led["tree"] != tree1 || led["commit"] != commit1 || loc["tree"] == tree1 || loc["commit"] == commit1 {
		t.Errorf("check --json of a moved tag: local %v, ledger %v; want the ledger's tree %s and commit %s and the fetched ones", loc, led, tree1, commit1)
	}
}
