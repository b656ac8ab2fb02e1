package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/vcs"
)

// e2eNode starts a single validator with the default attest quorum (1), so
// that its attester really fetches every repository over file://.
func e2eNode(t *testing.T) *testNode {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, Config{Genesis: newGenesis(t, "e2e", -1, key), Key: key})
}

// localHash hashes repo at tag the way a client does, independently of the
// node.
func localHash(t *testing.T, r *fixtureRepo, tag string) *vcs.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := vcs.Hash(ctx, "file://"+r.Dir, tag, vcs.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("vcs.Hash(%s, %s) = %v", r.Dir, tag, err)
	}
	return res
}

// TestE2EClient drives one node through the Go client: append, pending,
// committed, verified; a second submission answers the committed record; a
// moved tag changes nothing in the ledger and a claim of the new code is
// reported as a mismatch; checkpoints and consistency proofs verify; a
// restart keeps everything and the store audits.
func TestE2EClient(t *testing.T) {
	repo := newFixtureRepo(t)
	repo.release("v1.0.0")
	repo.release("v1.1.0")
	tn := e2eNode(t)
	c := tn.client()
	ctx := context.Background()
	g := tn.Cfg.Genesis

	k1 := repo.key("v1.0.0")
	want1 := localHash(t, repo, "v1.0.0")

	// Append without waiting: 202 pending, with the key and what it needs.
	resp, err := c.Submit(ctx, api.SubmitRequest{Key: k1.String()}, 0)
	if err != nil {
		t.Fatalf("Submit(%s) = %v", k1, err)
	}
	if resp.Status != api.StatusPending || resp.Pending == nil || resp.Record != nil {
		t.Fatalf("Submit(%s) = status %q record %v; want pending", k1, resp.Status, resp.Record)
	}
	if p := resp.Pending; p.Key != k1.String() || p.Repo != k1.Repo || p.Tag != k1.Tag || p.Status != api.StatusPending || p.Needed != 1 {
		t.Errorf("pending answer = %+v; want key %s, status pending, 1 attestation needed", p, k1)
	}

	// Committed: the validator computed what the client computes, and the
	// answer's proof verifies against a certified checkpoint.
	e1 := tn.waitCommitted(k1, 20*time.Second)
	if e1.Record.Commit != want1.Commit || e1.Record.Tree != want1.Tree || e1.Index != 0 {
		t.Fatalf("committed %s = commit %s tree %s index %d; want commit %s tree %s index 0",
			k1, e1.Record.Commit, e1.Record.Tree, e1.Index, want1.Commit, want1.Tree)
	}
	if e1.Record.Commit != repo.rev("v1.0.0") {
		t.Errorf("commit %s, git says %s", e1.Record.Commit, repo.rev("v1.0.0"))
	}
	cp1, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := api.VerifyCheckpoint(g, cp1)
	if err != nil {
		t.Fatalf("VerifyCheckpoint = %v", err)
	}

	// Submitting a committed key answers the committed record (200).
	resp, err = c.Submit(ctx, api.SubmitRequest{Repo: repo.Dir, Tag: "v1.0.0"}, 0)
	if err != nil {
		t.Fatalf("Submit(repo, tag) of a committed key = %v", err)
	}
	if resp.Status != api.StatusCommitted || resp.Record == nil {
		t.Fatalf("Submit of a committed key = status %q; want committed with the record", resp.Status)
	}
	if e, _, err := api.VerifyRecord(g, resp.Record); err != nil || *e != *e1 {
		t.Fatalf("Submit of a committed key: record %+v, %v; want %+v", e, err, e1)
	}

	// ?wait answers once committed, with a claim that agrees: no mismatch.
	k2 := repo.key("v1.1.0")
	want2 := localHash(t, repo, "v1.1.0")
	resp, err = c.Submit(ctx, api.SubmitRequest{Key: k2.String(), Commit: want2.Commit, Tree: want2.Tree}, 30*time.Second)
	if err != nil {
		t.Fatalf("Submit(%s, wait) = %v", k2, err)
	}
	if resp.Status != api.StatusCommitted || resp.Record == nil || resp.Mismatch != nil {
		t.Fatalf("Submit(%s, wait) = status %q mismatch %+v; want committed, no mismatch", k2, resp.Status, resp.Mismatch)
	}
	e2, h2, err := api.VerifyRecord(g, resp.Record)
	if err != nil {
		t.Fatalf("VerifyRecord(%s) = %v", k2, err)
	}
	if e2.Index != 1 || e2.Record.Tree != want2.Tree || h2.LogSize < 2 {
		t.Errorf("%s = index %d tree %s, checkpoint log size %d; want index 1 tree %s", k2, e2.Index, e2.Record.Tree, h2.LogSize, want2.Tree)
	}
	// The newer checkpoint provably extends the older one.
	cp2, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h2, err = api.VerifyCheckpoint(g, cp2)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := c.Consistency(ctx, h1.LogSize, h2.LogSize)
	if err != nil {
		t.Fatalf("Consistency(%d, %d) = %v", h1.LogSize, h2.LogSize, err)
	}
	if err := api.VerifyConsistency(h1, h2, cons); err != nil {
		t.Fatalf("VerifyConsistency(%d, %d) = %v", h1.LogSize, h2.LogSize, err)
	}
	// The records page lists both in log order; every block verifies.
	page, err := c.Records(ctx, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 2 || page.Records[0].Key != k1.String() || page.Records[1].Key != k2.String() {
		t.Errorf("Records(-1) = %+v; want %s, %s", page.Records, k1, k2)
	}
	for h := uint64(1); h <= h2.Height; h++ {
		b, err := c.Block(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.VerifyBlock(g, b); err != nil {
			t.Errorf("VerifyBlock(%d) = %v", h, err)
		}
	}

	// An attacker moves v1.0.0. The ledger keeps what it recorded, and a
	// client that claims the new code is told it disagrees.
	repo.commit("malicious", map[string]string{"VERSION": "pwned\n"})
	repo.tag("v1.0.0", "")
	moved := localHash(t, repo, "v1.0.0")
	if moved.Tree == want1.Tree {
		t.Fatal("moving the tag did not change its tree hash")
	}
	resp, err = c.Submit(ctx, api.SubmitRequest{Key: k1.String(), Commit: moved.Commit, Tree: moved.Tree}, 0)
	if err != nil {
		t.Fatalf("Submit(moved %s) = %v", k1, err)
	}
	m := resp.Mismatch
	if resp.Status != api.StatusCommitted || m == nil || m.Source != "committed" || m.Tree != want1.Tree || m.Commit != want1.Commit ||
		m.Claim.Tree != moved.Tree || len(m.Fields) != 2 {
		t.Fatalf("Submit(moved %s) = status %q mismatch %+v; want committed, a mismatch on commit and tree naming both hashes", k1, resp.Status, m)
	}
	if e := tn.waitCommitted(k1, time.Second); *e != *e1 {
		t.Fatalf("after the tag moved, the ledger serves %+v; want %+v", e, e1)
	}

	// A clean restart keeps everything, and the store audits.
	tn.restart()
	for _, want := range []*ledger.Entry{e1, e2} {
		if got := tn.waitCommitted(want.Record.Key, 5*time.Second); *got != *want {
			t.Errorf("after restart %s = %+v; want %+v", want.Record.Key, got, want)
		}
	}
	if head := tn.audit(); head.LogSize != 2 {
		t.Errorf("audited head log size %d, want 2", head.LogSize)
	}
}

// postRaw posts body to the node's records endpoint and returns the status
// and the decoded error answer (if any).
func postRaw(t *testing.T, url string, body []byte) (int, string, string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/records", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST /v1/records: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &eb); err != nil {
			t.Errorf("status %d: error body %q is not {\"error\": {...}}: %v", resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode, eb.Error.Code, eb.Error.Message
}

// TestE2EBadInputs sends what a careless or hostile client sends. Every
// malformed request gets a clear 4xx and changes nothing; unreachable and
// hostile repositories stay pending with a visible error, never block other
// records and are never committed.
func TestE2EBadInputs(t *testing.T) {
	tn := e2eNode(t)
	url := tn.URL()
	ctx := context.Background()
	before := tn.head()

	long := "example.com/" + strings.Repeat("a", ledger.MaxKeyLen) + "@v1"
	big := append([]byte(`{"key":"example.com/a@v1","tree":"`), bytes.Repeat([]byte("A"), api.MaxBodyBytes)...)
	big = append(big, `"}`...)
	for _, tc := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"empty body", ``, 400, api.CodeBadRequest},
		{"malformed JSON", `{"key": "example.com/a@v1"`, 400, api.CodeBadRequest},
		{"not an object", `["example.com/a@v1"]`, 400, api.CodeBadRequest},
		{"unknown field", `{"key": "example.com/a@v1", "force": true}`, 400, api.CodeBadRequest},
		{"field in another case", `{"Key": "example.com/a@v1"}`, 400, api.CodeBadRequest},
		{"repeated field", `{"key": "example.com/a@v1", "key": "example.com/b@v1"}`, 400, api.CodeBadRequest},
		{"trailing data", `{"key": "example.com/a@v1"} {}`, 400, api.CodeBadRequest},
		{"trailing garbage", `{"key": "example.com/a@v1"}x`, 400, api.CodeBadRequest},
		{"wrong type", `{"key": 42}`, 400, api.CodeBadRequest},
		{"invalid UTF-8", "{\"key\": \"example.com/\xff@v1\"}", 400, api.CodeBadRequest},
		{"no key", `{}`, 400, ""},
		{"key and repo", `{"key": "example.com/a@v1", "repo": "example.com/a", "tag": "v1"}`, 400, ""},
		{"space in key", `{"key": "example.com/a b@v1"}`, 400, api.CodeInvalidKey},
		{"tab in key", `{"key": "example.com/a\t@v1"}`, 400, api.CodeInvalidKey},
		{"newline in key", `{"key": "example.com/a@v1\n"}`, 400, api.CodeInvalidKey},
		{"control char in key", `{"key": "example.com/a\u0001@v1"}`, 400, api.CodeInvalidKey},
		{"DEL in tag", `{"repo": "example.com/a", "tag": "v1\u007f"}`, 400, api.CodeInvalidKey},
		{"key over 512 bytes", `{"key": "` + long + `"}`, 400, api.CodeInvalidKey},
		{"invalid ref name", `{"repo": "example.com/a", "tag": "v1..2"}`, 400, api.CodeInvalidKey},
		{"no tag", `{"key": "example.com/a"}`, 400, api.CodeInvalidKey},
		{"malformed claimed commit", `{"key": "example.com/a@v1", "commit": "xyz"}`, 400, api.CodeInvalidClaim},
		{"malformed claimed tree", `{"key": "example.com/a@v1", "tree": "sha256:abc"}`, 400, api.CodeInvalidClaim},
		{"body over 1 MiB", string(big), 413, api.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code, msg := postRaw(t, url, []byte(tc.body))
			if status != tc.status || (tc.code != "" && code != tc.code) || msg == "" {
				t.Errorf("POST %.60q = %d %q %q; want %d %q with a message", tc.body, status, code, msg, tc.status, tc.code)
			}
		})
	}
	// GET of a malformed key is refused the same way.
	for _, k := range []string{"example.com%2Fa%20b@v1", "example.com%2Fa%01@v1"} {
		resp, err := http.Get(url + "/v1/records/" + k)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("GET /v1/records/%s = %d, want 400", k, resp.StatusCode)
		}
	}
	// None of it reached the mempool or the store.
	if ps, err := tn.client().Mempool(ctx, 0); err != nil || len(ps) != 0 {
		t.Fatalf("mempool after refused requests = %v, %v; want empty", ps, err)
	}
	if h := tn.head(); h.Hash() != before.Hash() {
		t.Fatalf("head moved from %d to %d after refused requests", before.Height, h.Height)
	}

	// Unreachable repositories and a hostile one (a file name with a
	// newline) are accepted as pending, fail to fetch with a visible error,
	// and do not hold back a good record submitted after them.
	hostile := newFixtureRepo(t)
	hostile.release("v1")
	hostile.hostileTag("evil")
	good := newFixtureRepo(t)
	good.release("v1")
	bad := map[string]ledger.Key{
		"missing directory": mustKey(t, filepath.Join(t.TempDir(), "nothing-here"), "v1"),
		"missing tag":       good.key("v404"),
		"refused port":      mustKey(t, "http://127.0.0.1:1/none.git", "v1"),
		"hostile tree":      hostile.key("evil"),
	}
	c := tn.client()
	for name, k := range bad {
		resp, err := c.Submit(ctx, api.SubmitRequest{Key: k.String()}, 0)
		if err != nil || resp.Status != api.StatusPending {
			t.Fatalf("Submit(%s: %s) = %+v, %v; want pending", name, k, resp, err)
		}
	}
	gk := good.key("v1")
	if _, err := c.Submit(ctx, api.SubmitRequest{Key: gk.String()}, 0); err != nil {
		t.Fatal(err)
	}
	tn.waitCommitted(gk, 20*time.Second)
	for name, k := range bad {
		p := tn.waitPendingError(k, 20*time.Second)
		t.Logf("%s: pending with error %q", name, p.LastError)
		if name == "hostile tree" && !strings.Contains(p.LastError, "newline") {
			t.Errorf("hostile tree: error %q does not say what is wrong (a newline in a path)", p.LastError)
		}
	}
	// The good tag of the hostile repository commits; its evil tag never.
	hk := hostile.key("v1")
	if _, err := c.Submit(ctx, api.SubmitRequest{Key: hk.String()}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	tn.waitCommitted(hk, 5*time.Second)
	head := tn.audit()
	if head.LogSize != 2 {
		t.Errorf("log size %d after the good records; want 2 (nothing else committed)", head.LogSize)
	}
	for name, k := range bad {
		if _, err := tn.Store().Lookup(ctx, k); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("%s: store Lookup(%s) = %v; want not found", name, k, err)
		}
	}
	if st, err := c.Status(ctx); err != nil || st.Mempool != len(bad) || st.FetchErrors < uint64(len(bad)) {
		t.Errorf("status = %+v, %v; want %d pending and at least as many fetch errors", st, err, len(bad))
	}
}

func mustKey(t *testing.T, repo, tag string) ledger.Key {
	t.Helper()
	k, err := ledger.NewKey(repo, tag)
	if err != nil {
		t.Fatalf("NewKey(%s, %s) = %v", repo, tag, err)
	}
	return k
}
