package api

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/vcsledger/vcsledger/ledger"
)

func TestCheckpointNote(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	vs, err := e.c.Validators(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var verifiers []note.Verifier
	for _, v := range vs.Validators {
		nv, err := note.NewVerifier(v.VerifierKey)
		if err != nil {
			t.Fatalf("validator %s: note.NewVerifier(%q) = %v", v.Name, v.VerifierKey, err)
		}
		verifiers = append(verifiers, nv)
	}
	msg, err := e.c.CosignedCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil || len(n.Sigs) < vs.Quorum {
		t.Fatalf("note.Open(GET /checkpoint) = %+v, %v; want %d signatures", n, err, vs.Quorum)
	}
	head := e.blocks[len(e.blocks)-1]
	c, err := VerifyNote(e.b.Genesis(), msg)
	if err != nil || *c != ledger.CheckpointOf(&head.Header) {
		t.Fatalf("VerifyNote(GET /checkpoint) = %+v, %v; want the head's", c, err)
	}
	status, hdr, _ := e.do(t, http.MethodGet, "/checkpoint", nil, nil)
	if status != 200 || hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("GET /checkpoint: %d %s", status, hdr.Get("Content-Type"))
	}
	cp, err := e.c.Checkpoint(ctx)
	if err != nil || cp.Note != string(msg) {
		t.Errorf("GET /v1/checkpoint note = %q, %v; want the note of GET /checkpoint", cp.Note, err)
	}
	msg[len(msg)-5] ^= 1
	if _, err := VerifyNote(e.b.Genesis(), msg); !errors.Is(err, ErrVerification) {
		t.Errorf("VerifyNote of a damaged note = %v, want ErrVerification", err)
	}
}

func TestInclusionProofs(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	head := e.blocks[len(e.blocks)-1].Header
	for size := uint64(1); size <= head.LogSize; size++ {
		root, err := ledger.LogRoot(ledger.HashReaderOf(ctx, e.b.Store()), int64(size))
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < int64(size); i++ {
			p, err := e.c.Inclusion(ctx, i, size)
			if err != nil {
				t.Fatalf("Inclusion(%d, %d) = %v", i, size, err)
			}
			r, err := e.b.Store().Record(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.CheckRecord(p.Proof, int64(size), root, i, r.Record.LeafHash()); err != nil {
				t.Errorf("Inclusion(%d, %d) does not verify: %v", i, size, err)
			}
		}
	}
	for _, q := range []string{"", "?size=3", "?index=-1", "?index=3&size=3", "?index=0&size=0", "?index=0&size=99", "?index=x", "?index=0&other=1"} {
		if status, _, body := e.do(t, http.MethodGet, "/v1/proof/inclusion"+q, nil, nil); status != 400 {
			t.Errorf("GET /v1/proof/inclusion%s: %d %s, want 400", q, status, body)
		}
	}
}
