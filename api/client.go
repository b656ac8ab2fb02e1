package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// maxResponseBytes bounds what the Client reads of one answer: a block may
// hold up to ledger.MaxBlockRecords records with their attestations.
const maxResponseBytes = 256 << 20

// A Client calls one node's HTTP API. It has one method per endpoint; each
// returns the decoded answer or an error, a *Error for an error answer
// (match it with errors.Is against ErrNotFound, ErrRateLimited, ...). The
// Client checks that answers are well formed, not that they are true: use
// the Verify functions for that. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
}

// NewClient returns a client of the node at baseURL (such as
// "http://127.0.0.1:8080"), using hc (http.DefaultClient when nil).
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("api: node URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("api: node URL %q: want http(s)://host[:port][/path]", baseURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: u, hc: hc}, nil
}

// WithToken returns a copy of c that sends token as a bearer token with
// writes.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = token
	return &cc
}

// BaseURL returns the node's URL.
func (c *Client) BaseURL() string { return c.base.String() }

// do sends a request to path (already escaped) with query and body, and
// decodes a 2xx answer into out (when not nil). It returns the status.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any) (int, error) {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("api: encode request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, fmt.Errorf("api: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("api: %s %s: reading answer: %w", method, path, err)
	}
	if len(data) > maxResponseBytes {
		return resp.StatusCode, fmt.Errorf("api: %s %s: answer larger than %d bytes", method, path, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, decodeError(resp, data)
	}
	if out == nil {
		return resp.StatusCode, nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, fmt.Errorf("api: %s %s: malformed answer: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// decodeError turns an error answer into a *Error, whatever its body.
func decodeError(resp *http.Response, data []byte) error {
	e := &Error{Status: resp.StatusCode}
	var body errorBody
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	} else {
		e.Message = strings.TrimSpace(string(data[:min(len(data), 200)]))
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// Record looks key up. It returns the committed record with its proof
// (status 200), or the pending record (202); a key the node does not know
// is an error matching ErrNotFound. The answer's key must be the one asked
// for; verify the record with VerifyRecord.
func (c *Client) Record(ctx context.Context, key ledger.Key) (*RecordResponse, *PendingInfo, error) {
	var raw []byte
	status, err := c.do(ctx, http.MethodGet, "/v1/records/"+url.PathEscape(key.String()), nil, nil, &raw)
	if err != nil {
		return nil, nil, err
	}
	if status == http.StatusAccepted {
		var p PendingInfo
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, nil, fmt.Errorf("api: record %s: malformed answer: %w", key, err)
		}
		if p.Key != key.String() {
			return nil, nil, verifyErr("asked for %s, node answered pending %q", key, p.Key)
		}
		return nil, &p, nil
	}
	var r RecordResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, fmt.Errorf("api: record %s: malformed answer: %w", key, err)
	}
	if r.Key != key.String() {
		return nil, nil, verifyErr("asked for %s, node answered %q", key, r.Key)
	}
	return &r, nil, nil
}

// Submit asks the node to record req's key. With wait > 0 the node waits up
// to wait (capped by the node) for the record to commit. The answer's
// Record is set when the key is committed, Pending otherwise.
func (c *Client) Submit(ctx context.Context, req SubmitRequest, wait time.Duration) (*SubmitResponse, error) {
	var q url.Values
	if wait > 0 {
		q = url.Values{"wait": {wait.String()}}
	}
	var resp SubmitResponse
	if _, err := c.do(ctx, http.MethodPost, "/v1/records", q, req, &resp); err != nil {
		return nil, err
	}
	if (resp.Record == nil) == (resp.Pending == nil) {
		return nil, fmt.Errorf("api: submit %s: malformed answer: want exactly one of record and pending", req.Key+req.Repo)
	}
	return &resp, nil
}

// Records returns up to limit committed records after log index after (-1
// for the first page), in log order. limit 0 means the node's default.
func (c *Client) Records(ctx context.Context, after int64, limit int) (*RecordsPage, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p RecordsPage
	if _, err := c.do(ctx, http.MethodGet, "/v1/records", q, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Block returns the block at height.
func (c *Client) Block(ctx context.Context, height uint64) (*Block, error) {
	var b Block
	if _, err := c.do(ctx, http.MethodGet, "/v1/blocks/"+strconv.FormatUint(height, 10), nil, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Blocks returns up to limit headers from height from on. limit 0 means
// the node's default.
func (c *Client) Blocks(ctx context.Context, from uint64, limit int) (*BlocksPage, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p BlocksPage
	if _, err := c.do(ctx, http.MethodGet, "/v1/blocks", q, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Checkpoint returns the node's newest checkpoint; verify it with
// VerifyCheckpoint.
func (c *Client) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	var cp Checkpoint
	if _, err := c.do(ctx, http.MethodGet, "/v1/checkpoint", nil, nil, &cp); err != nil {
		return nil, err
	}
	return &cp, nil
}

// Consistency returns the proof that the log of size to extends the log of
// size from; verify it with VerifyConsistency.
func (c *Client) Consistency(ctx context.Context, from, to uint64) (*ConsistencyProof, error) {
	q := url.Values{"from": {strconv.FormatUint(from, 10)}, "to": {strconv.FormatUint(to, 10)}}
	var p ConsistencyProof
	if _, err := c.do(ctx, http.MethodGet, "/v1/proof/consistency", q, nil, &p); err != nil {
		return nil, err
	}
	if p.From != from || p.To != to {
		return nil, verifyErr("asked for a proof from %d to %d, node answered %d to %d", from, to, p.From, p.To)
	}
	return &p, nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if _, err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Peers returns the node's connected peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var b peersBody
	if _, err := c.do(ctx, http.MethodGet, "/v1/peers", nil, nil, &b); err != nil {
		return nil, err
	}
	return b.Peers, nil
}

// Validators returns the chain's validator set as the node sees it.
func (c *Client) Validators(ctx context.Context) (*ValidatorSet, error) {
	var vs ValidatorSet
	if _, err := c.do(ctx, http.MethodGet, "/v1/validators", nil, nil, &vs); err != nil {
		return nil, err
	}
	return &vs, nil
}

// Mempool returns up to limit pending records, oldest first (limit 0: the
// node's default).
func (c *Client) Mempool(ctx context.Context, limit int) ([]PendingInfo, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var b mempoolBody
	if _, err := c.do(ctx, http.MethodGet, "/v1/mempool", q, nil, &b); err != nil {
		return nil, err
	}
	return b.Pending, nil
}

// Evidence returns up to limit items of evidence, newest first (limit 0:
// the node's default).
func (c *Client) Evidence(ctx context.Context, limit int) ([]Evidence, error) {
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	var b evidenceBody
	if _, err := c.do(ctx, http.MethodGet, "/v1/evidence", q, nil, &b); err != nil {
		return nil, err
	}
	return b.Evidence, nil
}

// Genesis returns the node's genesis; GenesisInfo.Parse checks it.
func (c *Client) Genesis(ctx context.Context) (*GenesisInfo, error) {
	var g GenesisInfo
	if _, err := c.do(ctx, http.MethodGet, "/v1/genesis", nil, nil, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// Health returns nil when the node's process answers (/healthz).
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
	return err
}

// Ready returns nil when the node can serve (/readyz), else an error
// matching ErrUnavailable that says why.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}

// Metrics returns the node's Prometheus metrics, in the text format.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	var raw []byte
	if _, err := c.do(ctx, http.MethodGet, "/metrics", nil, nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// OpenAPI returns the node's OpenAPI document.
func (c *Client) OpenAPI(ctx context.Context) ([]byte, error) {
	var raw []byte
	if _, err := c.do(ctx, http.MethodGet, "/v1/openapi.json", nil, nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}
