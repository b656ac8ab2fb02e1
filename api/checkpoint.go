package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/vcsledger/vcsledger/ledger"
)

// Checkpoints as C2SP signed notes (docs/FORMAT.md, "Checkpoints"):
//
//	GET /checkpoint              the newest checkpoint note signed by a quorum of validators (text/plain; 404 on pow chains)
//	GET /v1/proof/inclusion      an inclusion proof in the log of any size up to the head's

// An InclusionProof answers GET /v1/proof/inclusion: that record Index is
// in the log of Size records.
type InclusionProof struct {
	Index int64         `json:"index"`
	Size  uint64        `json:"size"`
	Proof []ledger.Hash `json:"proof"`
}

func (s *Server) getNote(w http.ResponseWriter, r *http.Request, _ string) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	if s.g.Engine == ledger.EnginePoW {
		return errf(http.StatusNotFound, CodeNotFound, "chain %s runs proof of work: no validators co-sign its checkpoints, so it has no checkpoint note (GET /v1/checkpoint serves its head, as good as the work above it)", s.g.Chain)
	}
	msg, err := s.b.CosignedCheckpoint(r.Context())
	if errors.Is(err, ledger.ErrNotFound) {
		return errf(http.StatusNotFound, CodeNotFound, "no checkpoint co-signed by a quorum of validators yet")
	}
	if err != nil {
		return fmt.Errorf("api: co-signed checkpoint: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(msg)
	return nil
}

// noteFor returns the co-signed note of the checkpoint at height, if it is
// the newest one the backend has ("" otherwise).
func (s *Server) noteFor(ctx context.Context, height uint64) string {
	msg, err := s.b.CosignedCheckpoint(ctx)
	if err != nil {
		return ""
	}
	if c, err := ledger.ParseCheckpointText(noteText(msg)); err != nil || c.Height != height {
		return ""
	}
	return string(msg)
}

// noteText returns the text of a signed note: up to and including the LF
// before the last empty line.
func noteText(msg []byte) []byte {
	for i := len(msg) - 2; i >= 0; i-- {
		if msg[i] == '\n' && msg[i+1] == '\n' {
			return msg[:i+1]
		}
	}
	return nil
}

func (s *Server) getInclusion(w http.ResponseWriter, r *http.Request, _ string) error {
	q, err := parseQuery(r, "index", "size")
	if err != nil {
		return err
	}
	if _, ok := q.v["index"]; !ok {
		return badRequest("query parameter index is required")
	}
	ctx := r.Context()
	head, err := s.store.Head(ctx)
	if err != nil {
		return err
	}
	if head.LogSize == 0 {
		return errf(http.StatusNotFound, CodeNotFound, "the log is empty")
	}
	top := int64(head.LogSize)
	size, err := q.int("size", top, 1, top)
	if err != nil {
		return err
	}
	index, err := q.int("index", 0, 0, size-1)
	if err != nil {
		return err
	}
	proof, err := ledger.ProveRecord(ledger.HashReaderOf(ctx, s.store), size, index)
	if err != nil {
		return err
	}
	return s.writeJSON(w, http.StatusOK, InclusionProof{Index: index, Size: uint64(size), Proof: proof})
}

// CosignedCheckpoint returns the node's newest checkpoint note signed by a
// quorum of validators (GET /checkpoint); verify it with VerifyNote. A node
// that has none answers an error matching ErrNotFound.
func (c *Client) CosignedCheckpoint(ctx context.Context) ([]byte, error) {
	var raw []byte
	if _, err := c.do(ctx, http.MethodGet, "/checkpoint", nil, nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// Inclusion returns the proof that record index is in the log of size
// records; check it with ledger.CheckRecord against a verified root.
func (c *Client) Inclusion(ctx context.Context, index int64, size uint64) (*InclusionProof, error) {
	q := url.Values{"index": {strconv.FormatInt(index, 10)}, "size": {strconv.FormatUint(size, 10)}}
	var p InclusionProof
	if _, err := c.do(ctx, http.MethodGet, "/v1/proof/inclusion", q, nil, &p); err != nil {
		return nil, err
	}
	if p.Index != index || p.Size != size {
		return nil, verifyErr("asked for the inclusion of %d in %d, node answered %d in %d", index, size, p.Index, p.Size)
	}
	return &p, nil
}

// VerifyNote checks a signed checkpoint note against g's validators
// (ledger.OpenCheckpoint: a quorum of them signed it) and returns the
// checkpoint. Errors wrap ErrVerification.
func VerifyNote(g *ledger.Genesis, msg []byte) (*ledger.Checkpoint, error) {
	vals, err := g.ValidatorSet()
	if err != nil {
		return nil, verifyErr("%w", err)
	}
	c, _, err := ledger.OpenCheckpoint(msg, g.Chain, vals)
	if err != nil {
		return nil, verifyErr("%w", err)
	}
	return c, nil
}
