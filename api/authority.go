package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/vcsledger/vcsledger/ledger"
)

// An AuthorityBackend is a Backend of a poa chain whose validator set can
// change (docs/FORMAT.md, "Authority change"). The server answers the
// validator set of the next height, the changes committed but not in force,
// the changes still collecting votes, POST /v1/authority and GET
// /v1/authority when its Backend implements it.
type AuthorityBackend interface {
	// Authorities returns the validator-set history the node follows.
	Authorities() *ledger.Authorities
	// ProposedAuthority returns the changes collecting votes.
	ProposedAuthority() []ledger.AuthorityChange
	// SubmitAuthority adds a proposed change or votes for one, and
	// returns it with every vote collected. A change the rules refuse
	// wraps ledger.ErrBadAuthority (400).
	SubmitAuthority(ctx context.Context, c *ledger.AuthorityChange) (*ledger.AuthorityChange, error)
}

// An AuthorityInfo is one validator-set change in GET /v1/validators and
// POST /v1/authority.
type AuthorityInfo struct {
	Change    string           `json:"change"` // canonical text, votes included
	ID        ledger.Hash      `json:"id"`     // SHA-256 of the change without its votes
	Op        string           `json:"op"`
	Validator ledger.PublicKey `json:"validator"`
	Name      string           `json:"name,omitempty"`
	Effective uint64           `json:"effective"`
	Votes     int              `json:"votes"`
	Quorum    int              `json:"quorum"`           // votes it needs, by the set in force at the next height
	Height    uint64           `json:"height,omitempty"` // the block that committed it (committed changes)
}

func newAuthorityInfo(c *ledger.AuthorityChange, quorum int, height uint64) AuthorityInfo {
	return AuthorityInfo{Change: string(c.Format()), ID: c.ID(), Op: c.Op, Validator: c.Validator, Name: c.Name,
		Effective: c.Effective, Votes: len(c.Sigs), Quorum: quorum, Height: height}
}

// An AuthorityEntry is a committed change in GET /v1/authority, with what
// proves it: the header and certificate of the block that committed it,
// and the inclusion proof of its leaf in that header's log.
type AuthorityEntry struct {
	Change      string        `json:"change"`
	Index       int64         `json:"index"`
	Height      uint64        `json:"height"`
	Header      string        `json:"header"`      // canonical header of block Height
	Certificate string        `json:"certificate"` // its certificate
	Proof       []ledger.Hash `json:"proof"`       // leaf Index in the log of the header's size
}

// An AuthorityHistory answers GET /v1/authority: every validator-set change
// committed through Height, in log order.
type AuthorityHistory struct {
	Height  uint64           `json:"height"`
	Changes []AuthorityEntry `json:"changes"`
}

// An AuthoritySubmit is the body of POST /v1/authority: a change with one
// or more votes.
type AuthoritySubmit struct {
	Change string `json:"change"`
}

func (s *Server) authority() (AuthorityBackend, error) {
	ab, ok := s.b.(AuthorityBackend)
	if !ok || s.g.Engine != ledger.EnginePoA {
		return nil, errf(http.StatusNotFound, CodeNotFound, "this chain's validator set does not change")
	}
	return ab, nil
}

// fillValidators adds to a GET /v1/validators answer the quorum of the set
// in force at the next height (the genesis's, for a backend whose set does
// not change; none on pow chains), and the set's height, the pending and
// the proposed changes.
func (s *Server) fillValidators(vs *ValidatorSet) {
	if s.g.Engine != ledger.EnginePoA {
		return
	}
	ab, ok := s.b.(AuthorityBackend)
	if !ok {
		if set, err := s.g.ValidatorSet(); err == nil {
			vs.Quorum = set.Quorum()
		}
		return
	}
	a := ab.Authorities()
	next := a.Through() + 1
	vs.Height = next
	set, err := a.At(next)
	if err != nil {
		return
	}
	vs.Quorum = set.Quorum()
	vs.AttestationsNeeded = a.AttestationsNeeded(set)
	for _, e := range a.Pending(next) {
		vs.Pending = append(vs.Pending, newAuthorityInfo(&e.Change, set.Quorum(), e.Height))
	}
	for _, c := range ab.ProposedAuthority() {
		vs.Proposed = append(vs.Proposed, newAuthorityInfo(&c, set.Quorum(), 0))
	}
}

func (s *Server) postAuthority(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := s.authorize(r); err != nil {
		return err
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	ab, err := s.authority()
	if err != nil {
		return err
	}
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	var req AuthoritySubmit
	if err := decodeStrict(data, &req); err != nil {
		return badRequest("%v", err)
	}
	c, err := ledger.ParseAuthorityChange([]byte(req.Change))
	if err != nil {
		return badRequest("change: %v", err)
	}
	got, err := ab.SubmitAuthority(r.Context(), c)
	switch {
	case errors.Is(err, ledger.ErrBadAuthority), errors.Is(err, ledger.ErrBadSignature), errors.Is(err, ledger.ErrHeightUnknown):
		return badRequest("%v", err)
	case err != nil:
		return err
	}
	a := ab.Authorities()
	q := 0
	if set, err := a.At(a.Through() + 1); err == nil {
		q = set.Quorum()
	}
	return s.writeJSON(w, http.StatusAccepted, newAuthorityInfo(got, q, 0))
}

func (s *Server) getAuthority(w http.ResponseWriter, r *http.Request, _ string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	ab, err := s.authority()
	if err != nil {
		return err
	}
	a := ab.Authorities()
	ctx := r.Context()
	out := AuthorityHistory{Height: a.Through(), Changes: []AuthorityEntry{}}
	for _, e := range a.Entries() {
		b, err := s.store.Block(ctx, e.Height)
		if err != nil {
			return err
		}
		if b.Certificate == nil {
			return fmt.Errorf("api: block %d has no certificate", e.Height)
		}
		proof, err := ledger.ProveRecord(ledger.HashReaderOf(ctx, s.store), int64(b.Header.LogSize), e.Index)
		if err != nil {
			return err
		}
		out.Changes = append(out.Changes, AuthorityEntry{Change: string(e.Change.Format()), Index: e.Index, Height: e.Height,
			Header: string(b.Header.Format()), Certificate: string(b.Certificate.Format()), Proof: proof})
	}
	return s.writeJSON(w, http.StatusOK, out)
}

// Authority asks GET /v1/authority: the chain's committed validator-set
// changes with their proofs; verify them with VerifyAuthority.
func (c *Client) Authority(ctx context.Context) (*AuthorityHistory, error) {
	var out AuthorityHistory
	if _, err := c.do(ctx, http.MethodGet, "/v1/authority", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SubmitAuthority posts a change with its votes to POST /v1/authority and
// returns the node's pooled change, with every vote it collected.
func (c *Client) SubmitAuthority(ctx context.Context, ch *ledger.AuthorityChange) (*AuthorityInfo, error) {
	var out AuthorityInfo
	if _, err := c.do(ctx, http.MethodPost, "/v1/authority", nil, AuthoritySubmit{Change: string(ch.Format())}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyAuthority checks a GET /v1/authority answer against the genesis g
// and returns the validator-set history it proves, through the answer's
// height: each change, in order, is in the log of the block that committed
// it (inclusion proof against its header), whose certificate is a quorum of
// the set in force at that height by the history before it, and follows the
// rules there (its votes a quorum of that set). A history with a change
// left out cannot be told from a complete one by this check alone (see
// docs/OPERATORS.md); vcsverify audit, which reads every block, can.
func VerifyAuthority(g *ledger.Genesis, hist *AuthorityHistory) (*ledger.Authorities, error) {
	a, err := ledger.NewAuthorities(g)
	if err != nil {
		return nil, verifyErr("%w", err)
	}
	var prev uint64
	for i := 0; i < len(hist.Changes); {
		e := &hist.Changes[i]
		h, err := ledger.ParseHeader([]byte(e.Header))
		if err != nil {
			return nil, verifyErr("authority change %d: header: %w", i, err)
		}
		if h.Height != e.Height || h.Height <= prev || h.Chain != g.Chain {
			return nil, verifyErr("authority change %d: header of height %d for a change at %d", i, h.Height, e.Height)
		}
		// Every change of that block, in order.
		b := &ledger.Block{Header: *h}
		j := i
		for ; j < len(hist.Changes) && hist.Changes[j].Height == e.Height; j++ {
			x := &hist.Changes[j]
			c, err := ledger.ParseAuthorityChange([]byte(x.Change))
			if err != nil {
				return nil, verifyErr("authority change %d: %w", j, err)
			}
			if x.Header != e.Header || x.Index != e.Index+int64(j-i) {
				return nil, verifyErr("authority change %d: not with the others of block %d", j, e.Height)
			}
			if err := ledger.CheckRecord(x.Proof, int64(h.LogSize), h.LogRoot, x.Index, c.LeafHash()); err != nil {
				return nil, verifyErr("authority change %d: %w", j, err)
			}
			b.Authority = append(b.Authority, *c)
		}
		if last := b.Authority[len(b.Authority)-1]; hist.Changes[j-1].Index != int64(h.LogSize)-1 {
			return nil, verifyErr("authority change %s is not the end of block %d's log", last.String(), h.Height)
		}
		// The chain through the block before is known to have no other
		// change: follow it with empty blocks.
		for t := a.Through() + 1; t < h.Height; t++ {
			if err := a.Follow(&ledger.Block{Header: ledger.Header{Height: t}}); err != nil {
				return nil, verifyErr("%w", err)
			}
		}
		vals, err := a.At(h.Height)
		if err != nil {
			return nil, verifyErr("%w", err)
		}
		cert, err := ledger.ParseCertificate([]byte(e.Certificate))
		if err != nil {
			return nil, verifyErr("authority change %d: certificate: %w", i, err)
		}
		if err := cert.Verify(vals, g.Chain, h.Height, h.Hash()); err != nil {
			return nil, verifyErr("block %d: %w", h.Height, err)
		}
		if err := a.Apply(b); err != nil {
			return nil, verifyErr("block %d: %w", h.Height, err)
		}
		prev = h.Height
		i = j
	}
	for t := a.Through() + 1; t <= hist.Height; t++ {
		if err := a.Follow(&ledger.Block{Header: ledger.Header{Height: t}}); err != nil {
			return nil, verifyErr("%w", err)
		}
	}
	return a, nil
}
