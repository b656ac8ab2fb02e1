package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

func doRaw(tb testing.TB, ts *httptest.Server, method, target string, body []byte, hdr http.Header) (int, http.Header, []byte) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+target, rd)
	if err != nil {
		tb.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func TestClientEndpoints(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	g := e.b.chain.Genesis

	gi, err := e.c.Genesis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pg, err := gi.Parse(); err != nil || pg.Hash() != g.Hash() {
		t.Fatalf("Genesis().Parse() = %v, %v; want the chain's genesis", pg, err)
	}

	cp, err := e.c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head, err := VerifyCheckpoint(g, cp)
	if err != nil {
		t.Fatalf("VerifyCheckpoint(head) = %v", err)
	}
	if head.Height != 3 || head.LogSize != 12 {
		t.Fatalf("checkpoint at height %d log %d, want 3 and 12", head.Height, head.LogSize)
	}

	st, err := e.c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Chain != "test" || st.Genesis != g.Hash() || st.Height != 3 || st.LogSize != 12 || st.HeadHash != head.Hash() ||
		st.NodeID != "12D3KooWtest" || st.FetchErrors != 3 {
		t.Errorf("Status() = %+v", st)
	}

	// Every block verifies on its own, and the records of the blocks are
	// the records of the log.
	bp, err := e.c.Blocks(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(bp.Blocks) != 4 || bp.Height != 3 {
		t.Fatalf("Blocks(0) = %d headers, height %d; want 4, 3", len(bp.Blocks), bp.Height)
	}
	var fromBlocks []Record
	for i, hi := range bp.Blocks {
		if hi.Hash != e.blocks[i].Hash() || hi.Height != uint64(i) {
			t.Errorf("Blocks()[%d] = %s at %d, want %s", i, hi.Hash, hi.Height, e.blocks[i].Hash())
		}
		b, err := e.c.Block(ctx, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		lb, err := VerifyBlock(g, b)
		if err != nil {
			t.Fatalf("VerifyBlock(%d) = %v", i, err)
		}
		if !reflect.DeepEqual(lb.Records, e.blocks[i].Records) && len(lb.Records)+len(e.blocks[i].Records) > 0 {
			t.Errorf("block %d records differ", i)
		}
		if got, want := len(lb.Attestations), len(e.blocks[i].Attestations); got != want {
			t.Errorf("block %d: %d attestations, want %d", i, got, want)
		}
		fromBlocks = append(fromBlocks, b.Records...)
	}
	if bp, err := e.c.Blocks(ctx, 2, 1); err != nil || len(bp.Blocks) != 1 || bp.Blocks[0].Height != 2 {
		t.Errorf("Blocks(2, 1) = %+v, %v", bp, err)
	}

	// Paging through the records, three at a time.
	var paged []Record
	for after := int64(-1); ; {
		p, err := e.c.Records(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if p.LogSize != 12 {
			t.Errorf("Records page log size %d, want 12", p.LogSize)
		}
		if len(p.Records) == 0 {
			break
		}
		paged = append(paged, p.Records...)
		after = p.Records[len(p.Records)-1].Index
	}
	if !reflect.DeepEqual(paged, fromBlocks) {
		t.Errorf("paged records differ from the blocks' records:\n%+v\n%+v", paged, fromBlocks)
	}

	// Every record looks up and verifies against the head.
	for _, r := range paged {
		key := mustKey(t, r.Key)
		rr, pi, err := e.c.Record(ctx, key)
		if err != nil || pi != nil {
			t.Fatalf("Record(%s) = %v, %v", key, pi, err)
		}
		ent, h, err := VerifyRecord(g, rr)
		if err != nil {
			t.Fatalf("VerifyRecord(%s) = %v", key, err)
		}
		if ent.Record.Key != key || ent.Index != r.Index || ent.Height != r.Height || h.Hash() != head.Hash() {
			t.Errorf("VerifyRecord(%s) = %+v at %s", key, ent, h.Hash())
		}
	}

	// The log at block 1 is a prefix of the head's.
	old, err := VerifyCheckpoint(g, ptr(NewCheckpoint(&e.blocks[1].Header, e.blocks[1].Certificate)))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := e.c.Consistency(ctx, old.LogSize, head.LogSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(old, head, cons); err != nil {
		t.Errorf("VerifyConsistency(1, head) = %v", err)
	}

	peers, err := e.c.Peers(ctx)
	if err != nil || len(peers) != 1 || peers[0].ID != "12D3KooWpeer" {
		t.Errorf("Peers() = %+v, %v", peers, err)
	}
	vs, err := e.c.Validators(ctx)
	if err != nil || len(vs.Validators) != 4 || vs.Quorum != 3 || vs.AttestationsNeeded != 2 {
		t.Errorf("Validators() = %+v, %v", vs, err)
	}
	ev, err := e.c.Evidence(ctx, 0)
	if err != nil || len(ev) != 1 || ev[0].Kind != "vote" {
		t.Errorf("Evidence() = %+v, %v", ev, err)
	}
	if _, err := e.c.Submit(ctx, SubmitRequest{Key: "example.org/x/y@v1"}, 0); err != nil {
		t.Fatal(err)
	}
	mp, err := e.c.Mempool(ctx, 10)
	if err != nil || len(mp) != 1 || mp[0].Key != "example.org/x/y@v1" || mp[0].Repo != "example.org/x/y" ||
		mp[0].Tag != "v1" || mp[0].Status != StatusPending || mp[0].Needed != 2 {
		t.Errorf("Mempool() = %+v, %v", mp, err)
	}
	if err := e.c.Health(ctx); err != nil {
		t.Errorf("Health() = %v", err)
	}
	if err := e.c.Ready(ctx); err != nil {
		t.Errorf("Ready() = %v", err)
	}
	e.b.mu.Lock()
	e.b.ready = errors.New("catching up")
	e.b.mu.Unlock()
	if err := e.c.Ready(ctx); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "catching up") {
		t.Errorf("Ready() when not ready = %v, want ErrUnavailable saying why", err)
	}
	if m, err := e.c.Metrics(ctx); err != nil || !bytes.Contains(m, []byte("vcsledger_height 3")) {
		t.Errorf("Metrics() = %.200q, %v", m, err)
	}
	if doc, err := e.c.OpenAPI(ctx); err != nil || !json.Valid(doc) {
		t.Errorf("OpenAPI() = %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestRecordPaths(t *testing.T) {
	e := newEnv(t, Config{})
	file := mustKey(t, "file:///srv/git/repo@v1.0.0")
	gh := mustKey(t, "github.com/a/b@release/v2")
	e.b.commit(recordFor(file), recordFor(gh))
	tests := []struct {
		path string
		want string
	}{
		{"/v1/records/github.com%2Fa%2Fb@release%2Fv2", gh.String()},
		{"/v1/records/github.com/a/b@release/v2", gh.String()},
		{"/v1/records/https:%2F%2FGitHub.com%2Fa%2Fb.git@release%2Fv2", gh.String()},
		{"/v1/records/https://GitHub.com/a/b.git/@release/v2", gh.String()},
		{"/v1/records/git@github.com:a%2Fb@release/v2", gh.String()},
		{"/v1/records/file:%2F%2F%2Fsrv%2Fgit%2Frepo@v1.0.0", file.String()},
		{"/v1/records/file:///srv/git/repo@v1.0.0", file.String()},
		{"/v1/records/%2Fsrv%2Fgit%2Frepo@v1.0.0", file.String()},
	}
	for _, tt := range tests {
		status, _, body := e.do(t, "GET", tt.path, nil, nil)
		var rr RecordResponse
		if status != http.StatusOK || json.Unmarshal(body, &rr) != nil || rr.Key != tt.want {
			t.Errorf("GET %s = %d %.200s, want 200 with key %s", tt.path, status, body, tt.want)
			continue
		}
		if _, _, err := VerifyRecord(e.b.chain.Genesis, &rr); err != nil {
			t.Errorf("GET %s: VerifyRecord = %v", tt.path, err)
		}
	}
}

func TestRecordPendingAndUnknown(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	key := mustKey(t, "example.org/p/q@v0.1.0")
	if _, _, err := e.c.Record(ctx, key); !errors.Is(err, ErrNotFound) || !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("Record(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := e.c.Submit(ctx, SubmitRequest{Repo: "https://example.org/p/q.git", Tag: "v0.1.0"}, 0); err != nil {
		t.Fatal(err)
	}
	e.b.mu.Lock()
	e.b.pending[key].LastError = "dial tcp: connection refused"
	e.b.pending[key].Attempts = 2
	e.b.mu.Unlock()
	rr, p, err := e.c.Record(ctx, key)
	if err != nil || rr != nil || p == nil {
		t.Fatalf("Record(pending) = %v, %v, %v", rr, p, err)
	}
	if p.Status != StatusPending || p.Key != key.String() || p.LastError == "" || p.Attempts != 2 || p.Needed != 2 || p.Added.IsZero() {
		t.Errorf("Record(pending) = %+v", p)
	}
	e.b.commit(recordFor(key))
	if rr, _, err := e.c.Record(ctx, key); err != nil || rr == nil || rr.Status != StatusCommitted {
		t.Errorf("Record(committed) = %+v, %v", rr, err)
	}
}

func TestSubmit(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	g := e.b.chain.Genesis
	key := mustKey(t, "example.org/s/t@v1.2.3")
	rec := recordFor(key)
	other := recordFor(mustKey(t, "example.org/other@v9"))

	// New: pending, 202; the same again is the same entry.
	for range 2 {
		resp, err := e.c.Submit(ctx, SubmitRequest{Key: key.String(), Commit: rec.Commit}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != StatusPending || resp.Pending == nil || resp.Record != nil || resp.Mismatch != nil {
			t.Fatalf("Submit(new) = %+v", resp)
		}
	}
	// A claim that disagrees with what validators attested is reported.
	e.b.attest(key, rec.Commit, rec.Tree, 1)
	resp, err := e.c.Submit(ctx, SubmitRequest{Key: key.String(), Commit: rec.Commit, Tree: other.Tree}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &Mismatch{Source: "attested", Fields: []string{"tree"}, Claim: Claim{Commit: rec.Commit, Tree: other.Tree}, Commit: rec.Commit, Tree: rec.Tree}
	if !reflect.DeepEqual(resp.Mismatch, want) {
		t.Errorf("Submit(bad claim, attested) mismatch = %+v, want %+v", resp.Mismatch, want)
	}

	// Committed: 200 with the record and its proof.
	e.b.commit(rec)
	resp, err = e.c.Submit(ctx, SubmitRequest{Repo: "git@example.org:s/t.git", Tag: "v1.2.3"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != StatusCommitted || resp.Record == nil || resp.Pending != nil || resp.Mismatch != nil {
		t.Fatalf("Submit(committed) = %+v", resp)
	}
	if ent, _, err := VerifyRecord(g, resp.Record); err != nil || ent.Record != rec {
		t.Errorf("VerifyRecord(Submit(committed)) = %+v, %v", ent, err)
	}
	resp, err = e.c.Submit(ctx, SubmitRequest{Key: key.String(), Commit: other.Commit, Tree: other.Tree}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want = &Mismatch{Source: "committed", Fields: []string{"commit", "tree"}, Claim: Claim{Commit: other.Commit, Tree: other.Tree}, Commit: rec.Commit, Tree: rec.Tree}
	if !reflect.DeepEqual(resp.Mismatch, want) {
		t.Errorf("Submit(bad claim, committed) mismatch = %+v, want %+v", resp.Mismatch, want)
	}

	// The backend's refusals.
	refusals := []struct {
		err        error
		status     int
		is         error
		retryAfter time.Duration
	}{
		{fmt.Errorf("mempool: pool full: %w", ErrFull), 503, ErrFull, 0},
		{&RateLimitError{RetryAfter: 1500 * time.Millisecond}, 429, ErrRateLimited, 2 * time.Second},
		{fmt.Errorf("wrapped: %w", ErrRateLimited), 429, ErrRateLimited, 0},
		{fmt.Errorf("x: %w", ledger.ErrInvalidKey), 400, ledger.ErrInvalidKey, 0},
		{fmt.Errorf("x: %w", ErrInvalidClaim), 400, ErrInvalidClaim, 0},
		{fmt.Errorf("shutting down: %w", ErrUnavailable), 503, ErrUnavailable, 0},
		{errors.New("disk on fire"), 500, ErrInternal, 0},
	}
	for _, r := range refusals {
		e.b.mu.Lock()
		e.b.submitErr = r.err
		e.b.mu.Unlock()
		_, err := e.c.Submit(ctx, SubmitRequest{Key: "example.org/new@v1"}, 0)
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != r.status || !errors.Is(err, r.is) || ae.RetryAfter != r.retryAfter {
			t.Errorf("Submit when backend says %v = %v, want %d matching %v, retry after %v", r.err, err, r.status, r.is, r.retryAfter)
		}
		if ae != nil && strings.Contains(ae.Message, "disk on fire") {
			t.Errorf("internal error text leaked to the client: %q", ae.Message)
		}
	}
	e.b.mu.Lock()
	defer e.b.mu.Unlock()
	for _, s := range e.b.submits {
		if s != "127.0.0.1" {
			t.Errorf("submitter %q, want the client's address 127.0.0.1", s)
		}
	}
}

func TestSubmitWait(t *testing.T) {
	e := newEnv(t, Config{MaxWait: 5 * time.Second})
	ctx := context.Background()
	key := mustKey(t, "example.org/w/x@v1")

	// The wait ends first: 202.
	start := time.Now()
	resp, err := e.c.Submit(ctx, SubmitRequest{Key: key.String()}, 50*time.Millisecond)
	if err != nil || resp.Status != StatusPending {
		t.Fatalf("Submit(wait 50ms, never committed) = %+v, %v", resp, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Submit(wait 50ms) returned after %v", d)
	}

	// The backend commits while the request waits: 200 with the record.
	go func() {
		for {
			if _, ok := e.b.Pending(key); ok {
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		e.b.commit(recordFor(key))
	}()
	resp, err = e.c.Submit(ctx, SubmitRequest{Key: key.String()}, time.Minute) // capped at 5 s
	if err != nil || resp.Status != StatusCommitted || resp.Record == nil {
		t.Fatalf("Submit(wait, committed meanwhile) = %+v, %v", resp, err)
	}
	if _, _, err := VerifyRecord(e.b.chain.Genesis, resp.Record); err != nil {
		t.Errorf("VerifyRecord(waited record) = %v", err)
	}
	m, err := e.c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`vcsledger_http_wait_seconds_count{result="committed"} 1`, `vcsledger_http_wait_seconds_count{result="timeout"} 1`} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestWriteToken(t *testing.T) {
	e := newEnv(t, Config{WriteToken: "s3cret"})
	ctx := context.Background()
	req := SubmitRequest{Key: "example.org/a/b@v1"}
	for _, tok := range []string{"", "wrong", "s3cre", "S3CRET", "s3cret2"} {
		c := e.c
		if tok != "" {
			c = c.WithToken(tok)
		}
		if _, err := c.Submit(ctx, req, 0); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("Submit with token %q = %v, want ErrUnauthorized", tok, err)
		}
	}
	status, hdr, _ := e.do(t, "POST", "/v1/records", []byte(`{"key":"example.org/a/b@v1"}`), nil)
	if status != 401 || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("POST without token = %d, WWW-Authenticate %q", status, hdr.Get("WWW-Authenticate"))
	}
	if _, err := e.c.WithToken("s3cret").Submit(ctx, req, 0); err != nil {
		t.Errorf("Submit with the token = %v", err)
	}
	if _, err := e.c.Status(ctx); err != nil {
		t.Errorf("reads need no token: Status() = %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, Config{})
	big := append([]byte(`{"key":"`), bytes.Repeat([]byte("a"), MaxBodyBytes)...)
	big = append(big, `"}`...)
	tests := []struct {
		name, method, path string
		body               string
		status             int
		code               string
	}{
		{"malformed JSON", "POST", "/v1/records", `{"key":`, 400, CodeBadRequest},
		{"not JSON", "POST", "/v1/records", `key=x`, 400, CodeBadRequest},
		{"empty body", "POST", "/v1/records", ``, 400, CodeBadRequest},
		{"array", "POST", "/v1/records", `["example.org/a/b@v1"]`, 400, CodeBadRequest},
		{"null", "POST", "/v1/records", `null`, 400, CodeBadRequest},
		{"unknown field", "POST", "/v1/records", `{"key":"example.org/a/b@v1","force":true}`, 400, CodeBadRequest},
		{"field in another case", "POST", "/v1/records", `{"Key":"example.org/a/b@v1"}`, 400, CodeBadRequest},
		{"repeated field", "POST", "/v1/records", `{"key":"example.org/a/b@v1","key":"example.org/c/d@v1"}`, 400, CodeBadRequest},
		{"trailing data", "POST", "/v1/records", `{"key":"example.org/a/b@v1"} {}`, 400, CodeBadRequest},
		{"trailing brace", "POST", "/v1/records", `{"key":"example.org/a/b@v1"}}`, 400, CodeBadRequest},
		{"wrong type", "POST", "/v1/records", `{"key":1}`, 400, CodeBadRequest},
		{"invalid UTF-8", "POST", "/v1/records", "{\"key\":\"example.org/a/b@v\xff\"}", 400, CodeBadRequest},
		{"body over 1 MiB", "POST", "/v1/records", string(big), 413, CodeTooLarge},
		{"no key", "POST", "/v1/records", `{}`, 400, CodeBadRequest},
		{"key and repo", "POST", "/v1/records", `{"key":"example.org/a/b@v1","repo":"example.org/a/b","tag":"v1"}`, 400, CodeBadRequest},
		{"repo without tag", "POST", "/v1/records", `{"repo":"example.org/a/b"}`, 400, CodeBadRequest},
		{"bad key", "POST", "/v1/records", `{"key":"example.org/a/b"}`, 400, CodeInvalidKey},
		{"bad tag", "POST", "/v1/records", `{"repo":"example.org/a/b","tag":"v1..2"}`, 400, CodeInvalidKey},
		{"bad claim commit", "POST", "/v1/records", `{"key":"example.org/a/b@v1","commit":"ABC"}`, 400, CodeInvalidClaim},
		{"bad claim tree", "POST", "/v1/records", `{"key":"example.org/a/b@v1","tree":"sha256:abc"}`, 400, CodeInvalidClaim},
		{"bad wait", "POST", "/v1/records?wait=soon", `{"key":"example.org/a/b@v1"}`, 400, CodeBadRequest},
		{"negative wait", "POST", "/v1/records?wait=-1s", `{"key":"example.org/a/b@v1"}`, 400, CodeBadRequest},
		{"unknown query on POST", "POST", "/v1/records?force=1", `{"key":"example.org/a/b@v1"}`, 400, CodeBadRequest},
		{"bad key in path", "GET", "/v1/records/no-tag-here", "", 400, CodeInvalidKey},
		{"key with space", "GET", "/v1/records/example.org/a/b@v%201", "", 400, CodeInvalidKey},
		{"empty key", "GET", "/v1/records/", "", 400, CodeInvalidKey},
		{"query on record", "GET", "/v1/records/example.org/a/b@v1?x=1", "", 400, CodeBadRequest},
		{"limit 0", "GET", "/v1/records?limit=0", "", 400, CodeBadRequest},
		{"limit too big", "GET", "/v1/records?limit=1001", "", 400, CodeBadRequest},
		{"limit not a number", "GET", "/v1/records?limit=ten", "", 400, CodeBadRequest},
		{"after below -1", "GET", "/v1/records?after=-2", "", 400, CodeBadRequest},
		{"repeated parameter", "GET", "/v1/records?after=1&after=2", "", 400, CodeBadRequest},
		{"unknown parameter", "GET", "/v1/records?afer=1", "", 400, CodeBadRequest},
		{"malformed query", "GET", "/v1/records?after=%zz", "", 400, CodeBadRequest},
		{"block height not a number", "GET", "/v1/blocks/tip", "", 400, CodeBadRequest},
		{"block height negative", "GET", "/v1/blocks/-1", "", 400, CodeBadRequest},
		{"block beyond head", "GET", "/v1/blocks/99", "", 404, CodeNotFound},
		{"block path too long", "GET", "/v1/blocks/1/records", "", 400, CodeBadRequest},
		{"blocks from negative", "GET", "/v1/blocks?from=-1", "", 400, CodeBadRequest},
		{"consistency without from", "GET", "/v1/proof/consistency?to=3", "", 400, CodeBadRequest},
		{"consistency from > to", "GET", "/v1/proof/consistency?from=5&to=3", "", 400, CodeBadRequest},
		{"consistency beyond head", "GET", "/v1/proof/consistency?from=1&to=13", "", 400, CodeBadRequest},
		{"mempool limit", "GET", "/v1/mempool?limit=100000", "", 400, CodeBadRequest},
		{"evidence limit", "GET", "/v1/evidence?limit=-5", "", 400, CodeBadRequest},
		{"query on status", "GET", "/v1/status?verbose=1", "", 400, CodeBadRequest},
		{"wrong method", "DELETE", "/v1/records", "", 405, CodeMethodNotAllowed},
		{"POST to a record", "POST", "/v1/records/example.org/a/b@v1", `{}`, 405, CodeMethodNotAllowed},
		{"PUT status", "PUT", "/v1/status", "", 405, CodeMethodNotAllowed},
		{"unknown path", "GET", "/v2/records", "", 404, CodeNotFound},
		{"trailing slash", "GET", "/v1/status/", "", 404, CodeNotFound},
		{"unknown UI file", "GET", "/ui/secret.txt", "", 404, CodeNotFound},
		{"UI path escape", "GET", "/ui/..%2fopenapi.json", "", 404, CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.method == "POST" {
				body = []byte(tt.body)
			}
			status, hdr, data := e.do(t, tt.method, tt.path, body, nil)
			var eb errorBody
			if err := json.Unmarshal(data, &eb); err != nil || status != tt.status || eb.Error.Code != tt.code || eb.Error.Message == "" {
				t.Fatalf("%s %s = %d %.300s, want %d with code %s", tt.method, tt.path, status, data, tt.status, tt.code)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if status == 405 && hdr.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
			t.Logf("%d %s", status, eb.Error.Message)
		})
	}
}

func TestUI(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tt := range []struct{ path, ctype string }{
		{"/", "text/html; charset=utf-8"},
		{"/ui/app.js", "text/javascript; charset=utf-8"},
		{"/ui/style.css", "text/css; charset=utf-8"},
	} {
		status, hdr, body := e.do(t, "GET", tt.path, nil, nil)
		if status != 200 || hdr.Get("Content-Type") != tt.ctype || len(body) == 0 {
			t.Errorf("GET %s = %d %q", tt.path, status, hdr.Get("Content-Type"))
		}
		if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: CSP %q", tt.path, csp)
		}
		// No external assets: nothing but same-origin paths.
		if bytes.Contains(body, []byte("http://")) || bytes.Contains(body, []byte("https://")) || bytes.Contains(body, []byte("//cdn")) {
			t.Errorf("GET %s refers to another origin", tt.path)
		}
	}
	// Every endpoint the page reads exists.
	_, _, js := e.do(t, "GET", "/ui/app.js", nil, nil)
	for _, p := range []string{"/v1/status", "/v1/checkpoint", "/v1/blocks?", "/v1/mempool", "/v1/validators", "/v1/peers", "/v1/evidence", "/v1/records/"} {
		if !bytes.Contains(js, []byte(`"`+p)) {
			t.Errorf("app.js does not read %s", p)
		}
	}
}

func TestHead(t *testing.T) {
	e := newEnv(t, Config{})
	status, hdr, body := e.do(t, "HEAD", "/v1/status", nil, nil)
	if status != 200 || len(body) != 0 || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD /v1/status = %d, %d bytes", status, len(body))
	}
}

func TestServeShutdown(t *testing.T) {
	chainEnv := newEnv(t, Config{})
	s, err := NewServer(Config{MaxWait: time.Minute}, chainEnv.b, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	c, err := NewClient("http://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A request waiting for a commit is in flight when the server stops:
	// it is answered (202) and Serve returns.
	waited := make(chan error, 1)
	go func() {
		resp, err := c.Submit(context.Background(), SubmitRequest{Key: "example.org/slow/repo@v1"}, time.Minute)
		if err == nil && resp.Status != StatusPending {
			err = fmt.Errorf("status %s, want pending", resp.Status)
		}
		waited <- err
	}()
	for {
		if _, ok := chainEnv.b.Pending(mustKey(t, "example.org/slow/repo@v1")); ok {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	cancel()
	if err := <-waited; err != nil {
		t.Errorf("in-flight wait: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve() = %v after cancel", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if _, err := c.Status(context.Background()); err == nil {
		t.Errorf("server still answers after Serve returned")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{MaxWait: time.Second, WriteTimeout: time.Second}, false},
		{Config{ReadTimeout: -1}, false},
		{Config{WriteToken: "a b"}, false},
		{Config{WriteToken: "token", MaxWait: 2 * time.Minute}, true},
	}
	for _, tt := range tests {
		cfg := tt.cfg
		if err := cfg.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok %v", tt.cfg, err, tt.ok)
		}
	}
	cfg := Config{}
	cfg.Validate()
	if cfg.MaxWait != DefaultMaxWait || cfg.WriteTimeout <= cfg.MaxWait || cfg.ReadHeaderTimeout == 0 {
		t.Errorf("defaults not filled: %+v", cfg)
	}
}

func TestClientErrors(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://x", "http://", "http://x?y=1"} {
		if _, err := NewClient(u, nil); err == nil {
			t.Errorf("NewClient(%q) = nil error", u)
		}
	}
	// A proxy in front of a node may answer errors that are not ours.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "upstream overloaded", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	c, err := NewClient(ts.URL+"/ledger/", ts.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Status(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 503 || !errors.Is(err, ErrUnavailable) || ae.RetryAfter != 7*time.Second ||
		!strings.Contains(ae.Message, "upstream overloaded") {
		t.Errorf("Status() from a proxy error = %#v", err)
	}
}
