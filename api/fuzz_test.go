package api

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// FuzzParseSubmit fuzzes the strict decoder of POST /v1/records bodies
// (seed corpus in testdata/fuzz/FuzzParseSubmit). A body is either refused
// with a 400-class error or yields a canonical key and a well-formed claim
// that survive a round trip.
func FuzzParseSubmit(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		key, claim, err := parseSubmit(data)
		if err != nil {
			e, fault := toError(err)
			if fault || e.Status != http.StatusBadRequest {
				t.Fatalf("parseSubmit(%q) = %v, answered as %d (server fault %v); want a 400", data, err, e.Status, fault)
			}
			return
		}
		if !utf8.Valid(data) || !json.Valid(data) {
			t.Fatalf("parseSubmit accepted %q, which is not valid UTF-8 JSON", data)
		}
		if k, err := ledger.ParseKey(key.String()); err != nil || k != key {
			t.Fatalf("parseSubmit(%q) key %q is not canonical: %v, %v", data, key, k, err)
		}
		if claim != nil && (claim.IsZero() || claim.check() != nil) {
			t.Fatalf("parseSubmit(%q) claim %+v", data, claim)
		}
		req := SubmitRequest{Key: key.String()}
		if claim != nil {
			req.Commit, req.Tree = claim.Commit, claim.Tree
		}
		again, _ := json.Marshal(req)
		key2, claim2, err := parseSubmit(again)
		if err != nil || key2 != key || (claim == nil) != (claim2 == nil) || (claim != nil && *claim != *claim2) {
			t.Fatalf("round trip of %q: %q = %v, %+v, %v", data, again, key2, claim2, err)
		}
	})
}

// FuzzVerifyRecord feeds VerifyRecord answers a hostile node could send:
// mutations of a valid answer. None may pass unless it shows the record
// the chain really holds at that index.
func FuzzVerifyRecord(f *testing.F) {
	chain := ledgertest.NewChain(f, 4)
	rng := rand.New(rand.NewPCG(1, 2))
	chain.Next(ledgertest.Records(rng, 0, 5))
	chain.Next(ledgertest.Records(rng, 5, 7))
	s, err := NewServer(Config{}, newFakeBackend(f, chain), nil)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	for _, i := range []int64{0, 6, 11} {
		ent, err := chain.Store.Record(ctx, i)
		if err != nil {
			f.Fatal(err)
		}
		p, err := s.prove(ctx, ent)
		if err != nil {
			f.Fatal(err)
		}
		data := p.appendJSON(nil)
		f.Add(data)
	}
	g := chain.Genesis
	f.Fuzz(func(t *testing.T, data []byte) {
		var r RecordResponse
		if json.Unmarshal(data, &r) != nil {
			return
		}
		ent, _, err := VerifyRecord(g, &r)
		if err != nil {
			return
		}
		want, err := chain.Store.Record(ctx, ent.Index)
		if err != nil || want.Record != ent.Record {
			t.Fatalf("VerifyRecord passed %s at index %d, the chain holds %+v", ent.Record.Key, ent.Index, want)
		}
	})
}
