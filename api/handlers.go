package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// Bodies of the list endpoints.
type (
	peersBody struct {
		Peers []Peer `json:"peers"`
	}
	mempoolBody struct {
		Pending []PendingInfo `json:"pending"`
	}
	evidenceBody struct {
		Evidence []Evidence `json:"evidence"`
	}
	statusBody struct {
		Status string `json:"status"`
	}
)

// A ValidatorSet answers GET /v1/validators.
type ValidatorSet struct {
	Height             uint64          `json:"height,omitempty"`    // the height this set decides (the next one); poa
	Validators         []Validator     `json:"validators"`          // the set in force at Height
	Quorum             int             `json:"quorum"`              // precommits that commit a block (0 on pow chains)
	AttestationsNeeded int             `json:"attestations_needed"` // attestations a record needs to enter a block
	Pending            []AuthorityInfo `json:"pending,omitempty"`   // changes committed, in force from their effective height
	Proposed           []AuthorityInfo `json:"proposed,omitempty"`  // changes collecting votes
}

// parseKeyParam parses the key in a path.
func parseKeyParam(s string) (ledger.Key, error) {
	if s == "" {
		return ledger.Key{}, errf(http.StatusBadRequest, CodeInvalidKey, "missing key after /v1/records/")
	}
	return ledger.ParseKey(s)
}

func (s *Server) getRecord(w http.ResponseWriter, r *http.Request, param string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	key, err := parseKeyParam(param)
	if err != nil {
		return err
	}
	ctx := r.Context()
	e, err := s.lookup(ctx, key)
	if err != nil {
		return err
	}
	if e != nil {
		return s.writeProven(ctx, w, e)
	}
	if p, ok := s.b.Pending(key); ok {
		return s.writeJSON(w, http.StatusAccepted, s.fillPending(p))
	}
	// The key may have committed, and left the pool, since the lookup.
	if e, err = s.lookup(ctx, key); err != nil {
		return err
	}
	if e != nil {
		return s.writeProven(ctx, w, e)
	}
	return errf(http.StatusNotFound, CodeNotFound, "%s is neither committed nor pending", key)
}

// lookup returns the committed entry of key, or nil.
func (s *Server) lookup(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	e, err := s.store.Lookup(ctx, key)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("api: lookup %s: %w", key, err)
	}
	return e, nil
}

// prove proves e against the newest checkpoint.
func (s *Server) prove(ctx context.Context, e *ledger.Entry) (*provenRecord, error) {
	hdr, cert, err := s.b.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("api: checkpoint: %w", err)
	}
	var cp *encodedCheckpoint
	if uint64(e.Index) < hdr.LogSize {
		cp, err = s.checkpoint.get(hdr, cert)
	} else {
		// Committed after the checkpoint was read: prove against the
		// record's own block, which is committed and certified too.
		b, err := s.store.Block(ctx, e.Height)
		if err != nil {
			return nil, fmt.Errorf("api: block %d of record %d: %w", e.Height, e.Index, err)
		}
		cp, err = encodeCheckpoint(&b.Header, b.Certificate)
	}
	if err != nil {
		return nil, err
	}
	proof, err := ledger.ProveRecord(ledger.HashReaderOf(ctx, s.store), int64(cp.hdr.LogSize), e.Index)
	if err != nil {
		return nil, err
	}
	return &provenRecord{rec: s.newRecord(e, cp.hdr.Height), proof: proof, cp: cp}, nil
}

// writeProven proves e and writes it as a RecordResponse.
func (s *Server) writeProven(ctx context.Context, w http.ResponseWriter, e *ledger.Entry) error {
	p, err := s.prove(ctx, e)
	if err != nil {
		return err
	}
	s.writeRecord(w, http.StatusOK, p)
	return nil
}

// status returns the status of a record committed at height when the head
// is at head: committed, or final once buried deep enough on a pow chain.
func (s *Server) status(height, head uint64) string {
	if s.g.Engine == ledger.EnginePoW && head >= height && head-height+1 >= s.g.Confirmations {
		return StatusFinal
	}
	return StatusCommitted
}

// fillPending fills the fields of p the server derives.
func (s *Server) fillPending(p *PendingInfo) *PendingInfo {
	q := *p
	if k, err := ledger.ParseKey(q.Key); err == nil {
		q.Key, q.Repo, q.Tag = k.String(), k.Repo, k.Tag
	}
	q.Status = StatusPending
	q.Needed = s.g.AttestationsNeeded()
	return &q
}

func (s *Server) postRecord(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := s.authorize(r); err != nil {
		return err
	}
	q, err := parseQuery(r, "wait", "confirmations")
	if err != nil {
		return err
	}
	wait, err := q.duration("wait")
	if err != nil {
		return err
	}
	confs, err := s.wantConfirmations(q)
	if err != nil {
		return err
	}
	wait = min(wait, s.cfg.MaxWait)
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	key, claim, err := parseSubmit(data)
	if err != nil {
		return err
	}
	ctx := r.Context()
	res, err := s.b.Submit(ctx, key, claim, submitter(r))
	if err != nil {
		return err
	}
	e, p := res.Committed, res.Pending
	if e == nil && p == nil {
		return fmt.Errorf("api: backend answered neither committed nor pending for %s", key)
	}
	if e == nil && wait > 0 {
		if e, err = s.wait(ctx, key, wait, confs); err != nil {
			return err
		}
		if e == nil {
			if np, ok := s.b.Pending(key); ok {
				p = np
			} else if e, err = s.lookup(ctx, key); err != nil {
				return err
			}
		}
	}
	var resp SubmitResponse
	status := http.StatusAccepted
	if e != nil {
		p, err := s.prove(ctx, e)
		if err != nil {
			return err
		}
		rr := p.response()
		resp.Status, resp.Record = rr.Status, rr
		resp.Mismatch = mismatch(claim, "committed", e.Record.Commit, e.Record.Tree)
		status = http.StatusOK
	} else {
		resp.Status, resp.Pending = StatusPending, s.fillPending(p)
		if a := p.Attested; a != nil {
			resp.Mismatch = mismatch(claim, "attested", a.Commit, a.Tree)
		}
	}
	if m := resp.Mismatch; m != nil {
		s.log.Warn("submitted claim disagrees with the ledger", "key", key.String(), "source", m.Source,
			"fields", strings.Join(m.Fields, ","), "claim_commit", m.Claim.Commit, "claim_tree", m.Claim.Tree,
			"commit", m.Commit, "tree", m.Tree, "submitter", submitter(r))
	}
	return s.writeJSON(w, status, resp)
}

// wait waits up to d for key to commit and, on a pow chain, to have confs
// confirmations (powwait.go). It returns nil, nil when the wait ends before
// the commit (or the server is shutting down), and the entry, committed
// but not yet buried deep enough, when it ends before the confirmations.
func (s *Server) wait(ctx context.Context, key ledger.Key, d time.Duration, confs uint64) (*ledger.Entry, error) {
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	stop := context.AfterFunc(s.drain, cancel)
	defer stop()
	e, err := s.b.WaitCommitted(wctx, key)
	if err == nil && confs > 1 {
		e, err = s.waitConfirmations(wctx, key, e, confs)
	}
	switch {
	case err == nil:
		s.metrics.wait.WithLabelValues("committed").Observe(time.Since(start).Seconds())
		return e, nil
	case wctx.Err() != nil:
		s.metrics.wait.WithLabelValues("timeout").Observe(time.Since(start).Seconds())
		return nil, nil
	}
	return nil, fmt.Errorf("api: wait for %s: %w", key, err)
}

// mismatch compares a claim with the ledger's commit and tree.
func mismatch(c *Claim, source, commit, tree string) *Mismatch {
	if c == nil {
		return nil
	}
	var fields []string
	if c.Commit != "" && c.Commit != commit {
		fields = append(fields, "commit")
	}
	if c.Tree != "" && c.Tree != tree {
		fields = append(fields, "tree")
	}
	if len(fields) == 0 {
		return nil
	}
	return &Mismatch{Source: source, Fields: fields, Claim: *c, Commit: commit, Tree: tree}
}

// submitter names the client for the backend's rate limits: its IP
// address.
func submitter(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) listRecords(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r, "after", "limit")
	if err != nil {
		return err
	}
	after, err := q.int("after", -1, -1, math.MaxInt64-1)
	if err != nil {
		return err
	}
	limit, err := q.limit()
	if err != nil {
		return err
	}
	ctx := r.Context()
	es, err := s.store.Records(ctx, after+1, limit)
	if err != nil {
		return err
	}
	head, err := s.store.Head(ctx)
	if err != nil {
		return err
	}
	// Authority changes are log entries but not key records: they are
	// served by GET /v1/authority and with their blocks.
	page := RecordsPage{Records: make([]Record, 0, len(es)), LogSize: head.LogSize}
	for i := range es {
		if es[i].Authority == nil {
			page.Records = append(page.Records, s.newRecord(&es[i], head.Height))
		}
	}
	return s.writeJSON(w, http.StatusOK, page)
}

func (s *Server) listBlocks(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r, "from", "limit")
	if err != nil {
		return err
	}
	from, err := q.int("from", 0, 0, math.MaxInt64)
	if err != nil {
		return err
	}
	limit, err := q.limit()
	if err != nil {
		return err
	}
	ctx := r.Context()
	hs, err := s.store.Headers(ctx, uint64(from), limit)
	if err != nil {
		return err
	}
	head, err := s.store.Head(ctx)
	if err != nil {
		return err
	}
	page := BlocksPage{Blocks: make([]HeaderInfo, len(hs)), Height: head.Height}
	for i := range hs {
		page.Blocks[i] = NewHeaderInfo(&hs[i])
	}
	return s.writeJSON(w, http.StatusOK, page)
}

func (s *Server) getBlock(w http.ResponseWriter, r *http.Request, param string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	height, err := strconv.ParseUint(param, 10, 64)
	if err != nil {
		return badRequest("block height %.40q: want a decimal number", param)
	}
	ctx := r.Context()
	head, err := s.store.Head(ctx)
	if err != nil {
		return err
	}
	if height > head.Height {
		return errf(http.StatusNotFound, CodeNotFound, "no block at height %d; the head is at %d", height, head.Height)
	}
	b, err := s.store.Block(ctx, height)
	if err != nil {
		return err
	}
	return s.writeJSON(w, http.StatusOK, NewBlock(b, s.status(height, head.Height)))
}

// NewBlock returns the API form of b, its records with status.
func NewBlock(b *ledger.Block, status string) *Block {
	h := &b.Header
	out := &Block{
		Height:       h.Height,
		Hash:         h.Hash(),
		Header:       string(h.Format()),
		Records:      make([]Record, len(b.Records)),
		Attestations: make([]string, len(b.Attestations)),
	}
	if b.Certificate != nil {
		out.Certificate = string(b.Certificate.Format())
	}
	first := int64(h.LogSize) - int64(b.Leaves())
	for i := range b.Records {
		out.Records[i] = NewRecord(&ledger.Entry{Record: b.Records[i], Index: first + int64(i), Height: h.Height}, status)
	}
	for i := range b.Authority {
		out.Authority = append(out.Authority, string(b.Authority[i].Format()))
	}
	for i := range b.Attestations {
		out.Attestations[i] = string(b.Attestations[i].Format())
	}
	return out
}

func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request, _ string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	hdr, cert, err := s.b.Checkpoint(r.Context())
	if err != nil {
		return fmt.Errorf("api: checkpoint: %w", err)
	}
	e, err := s.checkpoint.get(hdr, cert)
	if err != nil {
		return err
	}
	cp := e.cp
	cp.Note = s.noteFor(r.Context(), hdr.Height) // checkpoint.go
	return s.writeJSON(w, http.StatusOK, cp)
}

func (s *Server) getConsistency(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r, "from", "to")
	if err != nil {
		return err
	}
	if _, ok := q.v["from"]; !ok {
		return badRequest("query parameter from is required")
	}
	ctx := r.Context()
	head, err := s.store.Head(ctx)
	if err != nil {
		return err
	}
	size := int64(head.LogSize)
	to, err := q.int("to", size, 0, size)
	if err != nil {
		return err
	}
	from, err := q.int("from", 0, 0, to)
	if err != nil {
		return err
	}
	proof, err := ledger.ProveTree(ledger.HashReaderOf(ctx, s.store), to, from)
	if err != nil {
		return err
	}
	return s.writeJSON(w, http.StatusOK, ConsistencyProof{From: uint64(from), To: uint64(to), Proof: proof})
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request, _ string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	st, err := s.readStatus(r.Context())
	if err != nil {
		return err
	}
	return s.writeJSON(w, http.StatusOK, st)
}

// readStatus returns the backend's status with the chain fields filled.
func (s *Server) readStatus(ctx context.Context) (*Status, error) {
	head, err := s.store.Head(ctx)
	if err != nil {
		return nil, err
	}
	st := s.b.Status()
	st.Chain, st.Genesis, st.Engine = s.g.Chain, s.genesis.Hash, s.g.Engine
	st.Height, st.HeadHash, st.HeadTime, st.LogSize = head.Height, head.Hash(), head.Time, head.LogSize
	return &st, nil
}

func (s *Server) getPeers(w http.ResponseWriter, r *http.Request, _ string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	peers := s.b.Peers()
	if peers == nil {
		peers = []Peer{}
	}
	return s.writeJSON(w, http.StatusOK, peersBody{peers})
}

func (s *Server) getValidators(w http.ResponseWriter, r *http.Request, _ string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	vs := ValidatorSet{Validators: s.b.Validators(), AttestationsNeeded: s.g.AttestationsNeeded()}
	if vs.Validators == nil {
		vs.Validators = []Validator{}
	}
	for i := range vs.Validators {
		v := &vs.Validators[i]
		v.VerifierKey = ledger.VerifierKey(s.g.Chain, ledger.Validator{Key: v.Key, Name: v.Name})
	}
	s.fillValidators(&vs) // authority.go: the set in force, its quorum, changes
	return s.writeJSON(w, http.StatusOK, vs)
}

func (s *Server) getMempool(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r, "limit")
	if err != nil {
		return err
	}
	limit, err := q.limit()
	if err != nil {
		return err
	}
	ps := s.b.Mempool(limit)
	out := mempoolBody{Pending: make([]PendingInfo, 0, len(ps))}
	for i := range ps {
		out.Pending = append(out.Pending, *s.fillPending(&ps[i]))
	}
	return s.writeJSON(w, http.StatusOK, out)
}

func (s *Server) getEvidence(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r, "limit")
	if err != nil {
		return err
	}
	limit, err := q.limit()
	if err != nil {
		return err
	}
	ev, err := s.b.Evidence(r.Context(), limit)
	if err != nil {
		return fmt.Errorf("api: evidence: %w", err)
	}
	if ev == nil {
		ev = []Evidence{}
	}
	return s.writeJSON(w, http.StatusOK, evidenceBody{ev})
}

func (s *Server) getGenesis(w http.ResponseWriter, r *http.Request, _ string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	return s.writeJSON(w, http.StatusOK, s.genesis)
}

func (s *Server) getHealth(w http.ResponseWriter, r *http.Request, _ string) error {
	return s.writeJSON(w, http.StatusOK, statusBody{"ok"})
}

func (s *Server) getReady(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := s.b.Ready(); err != nil {
		return errf(http.StatusServiceUnavailable, CodeUnavailable, "not ready: %v", err)
	}
	if s.drain.Err() != nil {
		return errf(http.StatusServiceUnavailable, CodeUnavailable, "shutting down")
	}
	return s.writeJSON(w, http.StatusOK, statusBody{"ready"})
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request, _ string) error {
	return s.writeStatic(w, "application/json", openapiJSON)
}

// The admin UI's files: index.html at /, the rest under /ui/. They load
// nothing from elsewhere, which the CSP enforces.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) getUI(w http.ResponseWriter, r *http.Request, _ string) error {
	return s.serveUIFile(w, "index.html")
}

func (s *Server) getUIFile(w http.ResponseWriter, r *http.Request, param string) error {
	if param == "index.html" || strings.Contains(param, "/") {
		return errf(http.StatusNotFound, CodeNotFound, "no UI file %.80q", param)
	}
	return s.serveUIFile(w, param)
}

var uiTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

func (s *Server) serveUIFile(w http.ResponseWriter, name string) error {
	ctype, ok := uiTypes[path.Ext(name)]
	data, err := uiFiles.ReadFile("ui/" + name)
	if !ok || err != nil {
		return errf(http.StatusNotFound, CodeNotFound, "no UI file %.80q", name)
	}
	w.Header().Set("Content-Security-Policy", uiCSP)
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	return s.writeStatic(w, ctype, data)
}

func (s *Server) writeStatic(w http.ResponseWriter, ctype string, data []byte) error {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(data)
	return nil
}

func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request, _ string) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}
