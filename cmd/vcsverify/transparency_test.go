package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// The tests in this file follow golang.org/x/mod/sumdb's client tests: a
// real node, and between it and the client a proxy that plays a lying or
// stale node. Every lie must end in a loud failure (SECURITY ERROR, exit 1,
// or exit 2 for a node that is merely behind), never in "verified".

// rawProxy returns the URL of a proxy to target that lets rewrite change
// the status and body of every answer (rewrite returns them unchanged to
// pass an answer through).
func rawProxy(t *testing.T, target string, rewrite func(r *http.Request, status int, body []byte) (int, []byte)) string {
	t.Helper()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
		req.Header = r.Header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		status, body := rewrite(r, resp.StatusCode, body)
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(proxy.Close)
	return proxy.URL
}

// mustFail checks that a command failed loudly: exit 1 with a SECURITY
// ERROR (or want, when another code is wanted) and no "verified" output.
func mustFail(t *testing.T, what string, want, code int, out, stderr string) {
	t.Helper()
	if code != want || (want == exitMismatch && !strings.Contains(out+stderr, "SECURITY ERROR")) || strings.HasPrefix(out, "verified") {
		t.Errorf("%s: exit %d, want %d (with SECURITY ERROR for 1)\n%s%s", what, code, want, out, stderr)
	}
}

// appendTags records tags of repo through nodeURL.
func appendTags(t *testing.T, nodeURL, repo string, tags ...string) {
	t.Helper()
	for _, tag := range tags {
		if code, out, stderr := vcsverify(t, t.TempDir(), "append", "--node", nodeURL, repo, tag); code != exitOK {
			t.Fatalf("append %s: exit %d\n%s%s", tag, code, out, stderr)
		}
	}
}

// TestProofBundle: lookup --proof-out writes a C2SP tlog-proof that
// verify-proof checks with no network, against the pinned genesis or
// --genesis; any flipped byte, another chain's genesis or no trusted
// genesis at all fails.
func TestProofBundle(t *testing.T) {
	g, key := newChain(t, "clitest")
	n := startNodeOf(t, g, key, "127.0.0.1:0")
	nodeURL := "http://" + n.HTTPAddr()
	repo := cliRepo(t)
	cliRelease(t, repo, "v2", "two\n")
	cliRelease(t, repo, "v3", "three\n")
	appendTags(t, nodeURL, repo, "v1", "v2", "v3")
	home := t.TempDir()
	proof := filepath.Join(t.TempDir(), "v2.tlog-proof")
	key2 := "file://" + repo + "@v2"
	if code, out, stderr := vcsverify(t, home, "lookup", "--node", nodeURL, "--proof-out", proof, key2); code != exitOK {
		t.Fatalf("lookup --proof-out: exit %d\n%s%s", code, out, stderr)
	}
	data, err := os.ReadFile(proof)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("c2sp.org/tlog-proof@v1\nextra ")) || !bytes.Contains(data, []byte("\nindex 1\n")) || !bytes.Contains(data, []byte("\n\nclitest\n")) {
		t.Fatalf("the proof is not a tlog-proof of index 1 with a clitest checkpoint:\n%s", data)
	}
	p, err := ledger.ParseProof(data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ledger.ParseRecord(p.Extra)
	if err != nil || r.Key.String() != key2 {
		t.Fatalf("extra data is %q, %v; want the record of %s", p.Extra, err, key2)
	}

	// Offline: the pinned genesis, or --genesis in a home that pinned
	// nothing.
	t.Setenv("VCSVERIFY_NODE", "http://127.0.0.1:1")
	if code, out, stderr := vcsverify(t, home, "verify-proof", proof); code != exitOK || !strings.HasPrefix(out, "verified: "+key2) {
		t.Fatalf("verify-proof: exit %d\n%s%s", code, out, stderr)
	}
	gfile := filepath.Join(t.TempDir(), "genesis.txt")
	os.WriteFile(gfile, g.Format(), 0o644)
	if code, out, stderr := vcsverify(t, t.TempDir(), "verify-proof", "--genesis", gfile, proof); code != exitOK {
		t.Fatalf("verify-proof --genesis: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr := vcsverify(t, t.TempDir(), "verify-proof", proof)
	mustFail(t, "verify-proof with nothing pinned", exitOther, code, out, stderr)
	if !strings.Contains(stderr, "--genesis") {
		t.Errorf("verify-proof with nothing pinned does not say what to do: %s", stderr)
	}
	// The same chain id with another validator: the signatures are not
	// the trusted validators'.
	impostor, _ := newChain(t, "clitest")
	ifile := filepath.Join(t.TempDir(), "impostor.txt")
	os.WriteFile(ifile, impostor.Format(), 0o644)
	code, out, stderr = vcsverify(t, t.TempDir(), "verify-proof", "--genesis", ifile, proof)
	mustFail(t, "verify-proof against another validator set", exitMismatch, code, out, stderr)
	other, _ := newChain(t, "elsewhere")
	ofile := filepath.Join(t.TempDir(), "other.txt")
	os.WriteFile(ofile, other.Format(), 0o644)
	code, out, stderr = vcsverify(t, t.TempDir(), "verify-proof", "--genesis", ofile, proof)
	mustFail(t, "verify-proof against another chain", exitMismatch, code, out, stderr)

	// Every flipped byte fails.
	bad := filepath.Join(t.TempDir(), "bad.tlog-proof")
	for i := range data {
		flipped := append([]byte(nil), data...)
		flipped[i] ^= 0x01
		os.WriteFile(bad, flipped, 0o644)
		code, out, stderr := vcsverify(t, home, "verify-proof", bad)
		if code == exitOK || strings.HasPrefix(out, "verified") || stderr == "" {
			t.Fatalf("verify-proof with byte %d (%q) flipped: exit %d\n%s%s", i, data[i], code, out, stderr)
		}
	}

	// A JSON bundle of earlier versions is still read.
	legacy, _ := json.Marshal(proofBundle{Format: proofFormat, Genesis: string(g.Format()), Record: recordAnswer(t, nodeURL, key2)})
	os.WriteFile(bad, legacy, 0o644)
	if code, out, stderr := vcsverify(t, home, "verify-proof", bad); code != exitOK || !strings.HasPrefix(out, "verified: "+key2) {
		t.Errorf("verify-proof of a JSON bundle: exit %d\n%s%s", code, out, stderr)
	}
}

// recordAnswer returns the node's record answer for key.
func recordAnswer(t *testing.T, nodeURL, key string) *api.RecordResponse {
	t.Helper()
	c, err := api.NewClient(nodeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ledger.ParseKey(key)
	if err != nil {
		t.Fatal(err)
	}
	rr, _, err := c.Record(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestTamperedNotes puts a proxy that alters GET /checkpoint between the
// client and an honest node: lookup --proof-out and audit fail with a
// SECURITY ERROR and write no proof.
func TestTamperedNotes(t *testing.T) {
	n := startNode(t, "clitest", "127.0.0.1:0")
	nodeURL := "http://" + n.HTTPAddr()
	repo := cliRepo(t)
	cliRelease(t, repo, "v2", "two\n")
	appendTags(t, nodeURL, repo, "v1", "v2")
	key1 := "file://" + repo + "@v1"
	// Wait for the co-signed note of the head.
	c, _ := api.NewClient(nodeURL, nil)
	var note []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		msg, err := c.CosignedCheckpoint(context.Background())
		if err == nil && bytes.HasPrefix(msg, []byte("clitest\n2\n")) {
			note = msg
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no co-signed note of log size 2: %q %v", msg, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sig := bytes.LastIndex(note, []byte(" ")) + 1
	tampers := map[string]func([]byte) []byte{
		"log size":        func(b []byte) []byte { return bytes.Replace(b, []byte("clitest\n2\n"), []byte("clitest\n3\n"), 1) },
		"root byte":       func(b []byte) []byte { b[len("clitest\n2\n")+3] ^= 1; return b },
		"block line":      func(b []byte) []byte { i := bytes.Index(b, []byte("block ")) + 20; b[i] ^= 1; return b },
		"signature byte":  func(b []byte) []byte { b[sig+20] ^= 1; return b },
		"key id":          func(b []byte) []byte { b[sig+1] ^= 1; return b },
		"signature gone":  func(b []byte) []byte { return b[:bytes.LastIndex(b, []byte("\n\n"))+2] },
		"origin":          func(b []byte) []byte { b[0] = 'C'; return b },
		"truncated":       func(b []byte) []byte { return b[:len(b)-10] },
		"another note":    func(b []byte) []byte { return []byte("clitest\n2\nAAAA\n\n— x y\n") },
		"empty":           func(b []byte) []byte { return nil },
		"stranger signed": func(b []byte) []byte { return strangerNote(t, b) },
	}
	for name, tamper := range tampers {
		t.Run(name, func(t *testing.T) {
			proxy := rawProxy(t, nodeURL, func(r *http.Request, status int, body []byte) (int, []byte) {
				if r.URL.Path == "/checkpoint" && status == 200 {
					return status, tamper(append([]byte(nil), body...))
				}
				return status, body
			})
			out := filepath.Join(t.TempDir(), "p")
			code, stdout, stderr := vcsverify(t, t.TempDir(), "lookup", "--node", proxy, "--proof-out", out, key1)
			mustFail(t, "lookup --proof-out", exitMismatch, code, stdout, stderr)
			if _, err := os.Stat(out); err == nil {
				t.Errorf("lookup --proof-out wrote %s from a tampered note", out)
			}
			code, stdout, stderr = vcsverify(t, t.TempDir(), "audit", "--node", proxy)
			mustFail(t, "audit", exitMismatch, code, stdout, stderr)
		})
	}
}

// strangerNote re-signs a note's text with a key that is not a validator,
// under the validator's key name.
func strangerNote(t *testing.T, msg []byte) []byte {
	text := msg[:bytes.LastIndex(msg, []byte("\n\n"))+1]
	cp, err := ledger.ParseCheckpointText(text)
	if err != nil {
		t.Fatal(err)
	}
	g, k := newChain(t, "clitest")
	s, _ := ledger.NewSigner(k)
	vals, _ := g.ValidatorSet()
	out, err := ledger.FormatNote(*cp, vals, []ledger.Cosignature{ledger.Cosign(s, *cp)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStaleNode: a node that serves an older checkpoint than one the
// client verified (rolled back, or behind) is not trusted: its "not found"
// is exit 2, never exit 3, and never leads to an append; a node whose
// co-signed note is of another history is a SECURITY ERROR.
func TestStaleNode(t *testing.T) {
	g, key := newChain(t, "clitest")
	a := "http://" + startNodeOf(t, g, key, "127.0.0.1:0").HTTPAddr()
	repo := cliRepo(t)
	cliRelease(t, repo, "v2", "two\n")
	appendTags(t, a, repo, "v1")
	old := recordJSON(t, a, "file://"+repo+"@v1")["checkpoint"]
	appendTags(t, a, repo, "v2")
	key2 := "file://" + repo + "@v2"

	var posts atomic.Int32
	stale := rawProxy(t, a, func(r *http.Request, status int, body []byte) (int, []byte) {
		switch {
		case r.Method == http.MethodPost:
			posts.Add(1)
		case r.URL.Path == "/v1/checkpoint":
			b, _ := json.Marshal(old)
			return 200, b
		case strings.HasPrefix(r.URL.Path, "/v1/records/") && strings.HasSuffix(r.URL.Path, "@v2"):
			return 404, []byte(`{"error":{"code":"not_found","message":"unknown"}}`)
		}
		return status, body
	})
	home := t.TempDir()
	if code, out, stderr := vcsverify(t, home, "lookup", "--node", a, key2); code != exitOK {
		t.Fatalf("lookup on the live node: exit %d\n%s%s", code, out, stderr)
	}
	for _, args := range [][]string{
		{"lookup", "--node", stale, key2},
		{"lookup", "--node", stale, "example.com/none@v1"},
		{"check", "--node", stale, repo, "v2"},
		{"check", "--append", "--node", stale, repo, "v2"},
	} {
		code, out, stderr := vcsverify(t, home, args...)
		mustFail(t, strings.Join(args[:1], " ")+" on a node behind the cached checkpoint", exitOther, code, out, stderr)
		if !strings.Contains(stderr, "behind") {
			t.Errorf("%v: the error does not say the node is behind:\n%s", args, stderr)
		}
	}
	if posts.Load() != 0 {
		t.Errorf("the client submitted %d records to a node whose not-found it could not trust", posts.Load())
	}
	// With a live node too, the live node's record stands.
	if code, out, stderr := vcsverify(t, home, "lookup", "--node", stale, "--node", a, key2); code != exitOK {
		t.Errorf("lookup on the stale and the live node: exit %d\n%s%s", code, out, stderr)
	}

	// A node of a forked history (same genesis and key, another block at
	// height 1) behind a note: lookup --proof-out against a's records with
	// b's note is a fork, with both checkpoints printed as evidence.
	b := "http://" + startNodeOf(t, g, key, "127.0.0.1:0").HTTPAddr()
	appendTags(t, b, repo, "v2")
	bc, _ := api.NewClient(b, nil)
	var bnote []byte
	for deadline := time.Now().Add(30 * time.Second); bnote == nil; time.Sleep(20 * time.Millisecond) {
		bnote, _ = bc.CosignedCheckpoint(context.Background())
		if time.Now().After(deadline) {
			t.Fatal("node b serves no co-signed note")
		}
	}
	forked := rawProxy(t, a, func(r *http.Request, status int, body []byte) (int, []byte) {
		if r.URL.Path == "/checkpoint" {
			return 200, bnote
		}
		return status, body
	})
	code, out, stderr := vcsverify(t, home, "lookup", "--node", forked, "--proof-out", filepath.Join(t.TempDir(), "p"), "file://"+repo+"@v1")
	mustFail(t, "lookup --proof-out with a forked note", exitMismatch, code, out, stderr)
	bsig := string(bnote[bytes.LastIndex(bnote[:len(bnote)-1], []byte(" "))+1:])
	if !strings.Contains(stderr, "evidence (checkpoint)") || !strings.Contains(stderr, bsig) {
		t.Errorf("the fork is reported without the evidence:\n%s", stderr)
	}
	evs, _ := filepath.Glob(filepath.Join(home, "chains", "clitest", "evidence", "*-checkpoint.txt"))
	if len(evs) == 0 {
		t.Errorf("no evidence file kept under %s", home)
	}
	code, out, stderr = vcsverify(t, t.TempDir(), "audit", "--node", forked)
	mustFail(t, "audit with a forked note", exitMismatch, code, out, stderr)

	// Two nodes that disagree, asked at once by a client that cached
	// nothing.
	code, out, stderr = vcsverify(t, t.TempDir(), "lookup", "--node", a, "--node", b, key2)
	mustFail(t, "lookup on two forked nodes", exitMismatch, code, out, stderr)
	if !strings.Contains(stderr, a) || !strings.Contains(stderr, b) {
		t.Errorf("the disagreement does not name both nodes:\n%s", stderr)
	}
}

// TestTamperedBlocks: audit through a proxy that flips bytes in block
// answers is a SECURITY ERROR, and the mirror keeps only what verified.
func TestTamperedBlocks(t *testing.T) {
	n := startNode(t, "clitest", "127.0.0.1:0")
	nodeURL := "http://" + n.HTTPAddr()
	repo := cliRepo(t)
	cliRelease(t, repo, "v2", "two\n")
	appendTags(t, nodeURL, repo, "v1", "v2")
	flips := map[string]func(m map[string]any){
		"header byte": func(m map[string]any) {
			h := []byte(m["header"].(string))
			h[len(h)-5] ^= 1
			m["header"] = string(h)
		},
		"record tree": func(m map[string]any) {
			r := m["records"].([]any)[0].(map[string]any)
			r["tree"] = "t1:" + strings.Repeat("B", 43) + "="
		},
		"record commit": func(m map[string]any) {
			r := m["records"].([]any)[0].(map[string]any)
			r["commit"] = flipHex(r["commit"].(string), 3)
		},
		"certificate signature": func(m map[string]any) {
			c := m["certificate"].(string)
			i := strings.LastIndex(c, " ") + 7
			m["certificate"] = c[:i] + flipHex(c[i:], 0)
		},
		"attestation signature": func(m map[string]any) {
			as := m["attestations"].([]any)
			a := as[0].(string)
			i := strings.LastIndex(a, " ") + 9
			as[0] = a[:i] + flipHex(a[i:], 0)
		},
		"attestation dropped": func(m map[string]any) { m["attestations"] = []any{} },
		"certificate dropped": func(m map[string]any) { delete(m, "certificate") },
	}
	for name, flip := range flips {
		t.Run(name, func(t *testing.T) {
			proxy := tamperProxy(t, nodeURL, "/v1/blocks/2", func(_ string, m map[string]any) { flip(m) })
			mirror := t.TempDir()
			code, out, stderr := vcsverify(t, t.TempDir(), "audit", "--node", proxy, "--mirror", mirror)
			mustFail(t, "audit", exitMismatch, code, out, stderr)
			// The honest node then extends the mirror from block 1.
			code, out, stderr = vcsverify(t, t.TempDir(), "--json", "audit", "--node", nodeURL, "--mirror", mirror)
			if code != exitOK || !strings.Contains(out, `"new_blocks": 1`) {
				t.Errorf("audit of the honest node into the same mirror: exit %d\n%s%s", code, out, stderr)
			}
		})
	}
}

// TestAuditShowsEvidence: audit prints the evidence a node holds.
func TestAuditShowsEvidence(t *testing.T) {
	n := startNode(t, "clitest", "127.0.0.1:0")
	nodeURL := "http://" + n.HTTPAddr()
	repo := cliRepo(t)
	appendTags(t, nodeURL, repo, "v1")
	if err := n.Store().AddEvidence(context.Background(), "checkpoint", []byte("vcsledger-cosig/1\nchain clitest\n"), time.Now()); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := vcsverify(t, t.TempDir(), "audit", "--node", nodeURL)
	if code != exitOK || !strings.Contains(out, "WARNING: node "+nodeURL+" holds 1 item(s) of evidence") || !strings.Contains(out, "\tvcsledger-cosig/1") {
		t.Errorf("audit of a node with evidence: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "co-signed checkpoint: block 1, signed by 1 validators") {
		t.Errorf("audit does not report the co-signed checkpoint:\n%s", out)
	}
	code, out, _ = vcsverify(t, t.TempDir(), "--json", "audit", "--node", nodeURL)
	var rep auditReport
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || len(rep.Evidence) != 1 || rep.CosignedHeight == nil {
		t.Errorf("audit --json: exit %d, %v: %+v", code, err, rep)
	}
}
