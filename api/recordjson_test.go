package api

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// TestRecordJSON checks that the record answer is written exactly as
// json.Marshal writes the RecordResponse, for every shape a record takes.
func TestRecordJSON(t *testing.T) {
	e := newEnv(t, Config{})
	head := e.b.chain.Head()
	cp, err := encodeCheckpoint(&head.Header, head.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	genesis := e.blocks[0]
	cp0, err := encodeCheckpoint(&genesis.Header, nil)
	if err != nil {
		t.Fatal(err)
	}
	proof := []ledger.Hash{ledger.SumSHA256([]byte("a")), ledger.SumSHA256([]byte("b"))}
	base := Record{Key: "https://example.com/r@v1.0.0", Repo: "https://example.com/r", Tag: "v1.0.0",
		Commit: "0123456789abcdef0123456789abcdef01234567", Tree: "t1:abc+/=", Index: 12, Height: 3, Status: StatusCommitted}
	tests := []struct {
		name string
		edit func(*provenRecord)
	}{
		{"plain", func(*provenRecord) {}},
		{"h1", func(p *provenRecord) { p.rec.H1 = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" }},
		{"final with confirmations", func(p *provenRecord) { p.rec.Status, p.rec.Confirmations = StatusFinal, 18446744073709551615 }},
		{"nil proof", func(p *provenRecord) { p.proof = nil }},
		{"empty proof", func(p *provenRecord) { p.proof = []ledger.Hash{} }},
		{"genesis checkpoint", func(p *provenRecord) { p.cp = cp0 }},
		{"escaped text", func(p *provenRecord) {
			p.rec.Repo, p.rec.Tag = "file:///srv/a&b<c>\"d\\e", "t\u2028\x01é\xff"
		}},
		{"zero", func(p *provenRecord) { p.rec = Record{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &provenRecord{rec: base, proof: proof, cp: cp}
			tt.edit(p)
			want, err := json.Marshal(p.response())
			if err != nil {
				t.Fatal(err)
			}
			if got := p.appendJSON(nil); !bytes.Equal(got, want) {
				t.Errorf("appendJSON = %s\nwant %s", got, want)
			}
		})
	}
}

// TestRecordAnswer checks GET /v1/records/{key} against the RecordResponse
// it stands for, and that the checkpoint it carries follows the head: a
// record asked for after a new block is proven against the new head, and
// verifies. The chain is read from memory (ledgertest) and from a
// sqlitestore, which proves records from its hash cache.
func TestRecordAnswer(t *testing.T) {
	for _, kind := range []string{"memory", "sqlite"} {
		t.Run(kind, func(t *testing.T) { testRecordAnswer(t, kind == "sqlite") })
	}
}

func testRecordAnswer(t *testing.T, sqlite bool) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	chain := e.b.chain
	var store *sqlitestore.Store
	if sqlite {
		var err error
		if store, err = storeOf(ctx, filepath.Join(t.TempDir(), "ledger.db"), chain); err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if e.s, err = NewServer(Config{}, sqliteBackend{e.b, store}, nil); err != nil {
			t.Fatal(err)
		}
	}
	check := func(index int64) *RecordResponse {
		t.Helper()
		ent, err := chain.Store.Record(ctx, index)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		e.s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/records/"+url.PathEscape(ent.Record.Key.String()), nil))
		body, hdr := w.Body.Bytes(), w.Header()
		if w.Code != http.StatusOK || hdr.Get("Content-Type") != "application/json" || hdr.Get("X-Content-Type-Options") != "nosniff" ||
			hdr.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("GET record %d = %d %v %s", index, w.Code, hdr, body)
		}
		// What the answer stands for, proven over the chain in memory.
		head := chain.Head()
		proof, err := ledger.ProveRecord(ledger.HashReaderOf(ctx, chain.Store), int64(head.Header.LogSize), index)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&RecordResponse{Record: NewRecord(ent, StatusCommitted), Proof: proof, Checkpoint: NewCheckpoint(&head.Header, head.Certificate)})
		if want = append(want, '\n'); !bytes.Equal(body, want) {
			t.Fatalf("GET record %d = %s\nwant %s", index, body, want)
		}
		var rr RecordResponse
		if err := json.Unmarshal(body, &rr); err != nil {
			t.Fatal(err)
		}
		if got, _, err := VerifyRecord(chain.Genesis, &rr); err != nil || got.Record != ent.Record {
			t.Fatalf("VerifyRecord(record %d) = %+v, %v", index, got, err)
		}
		return &rr
	}
	for _, i := range []int64{0, 4, 11} {
		if rr := check(i); rr.Checkpoint.Height != 3 || rr.Checkpoint.LogSize != 12 {
			t.Fatalf("record %d proven against height %d, log size %d; want the head 3, 12", i, rr.Checkpoint.Height, rr.Checkpoint.LogSize)
		}
	}
	cached := e.s.checkpoint.p.Load()
	b := e.b.commit(ledgertest.Records(rand.New(rand.NewPCG(3, 3)), 12, 3)...)
	if store != nil {
		if err := store.Append(ctx, b, chain.Stored(b.Header.Height)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int64{4, 14} {
		rr := check(i)
		if rr.Checkpoint.Height != b.Header.Height || rr.Checkpoint.Hash != b.Hash() || rr.Checkpoint.LogSize != 15 {
			t.Fatalf("after block %d: record %d proven against height %d (%s), log size %d", b.Header.Height, i, rr.Checkpoint.Height, rr.Checkpoint.Hash, rr.Checkpoint.LogSize)
		}
	}
	if e.s.checkpoint.p.Load() == cached {
		t.Fatalf("the encoded checkpoint was not replaced after a new block")
	}
	// GET /v1/checkpoint answers the same newest checkpoint.
	w := httptest.NewRecorder()
	e.s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/checkpoint", nil))
	var cp Checkpoint
	if err := json.Unmarshal(w.Body.Bytes(), &cp); err != nil || cp.Height != b.Header.Height || cp.Header != string(b.Header.Format()) || cp.Certificate != string(b.Certificate.Format()) {
		t.Fatalf("GET /v1/checkpoint = %s, %v; want height %d", w.Body.Bytes(), err, b.Header.Height)
	}
}

// TestCheckpointCache checks that an encoded checkpoint is reused only for
// the same header and certificate.
func TestCheckpointCache(t *testing.T) {
	e := newEnv(t, Config{})
	var c checkpointCache
	b2, b3 := e.blocks[2], e.blocks[3]
	first, err := c.get(&b3.Header, b3.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	h := b3.Header
	if again, _ := c.get(&h, b3.Certificate); again != first {
		t.Errorf("get(same header and certificate) encoded again")
	}
	cert := *b3.Certificate
	if other, _ := c.get(&h, &cert); other == first {
		t.Errorf("get(another certificate) = the cached checkpoint")
	}
	older, _ := c.get(&b2.Header, b2.Certificate)
	if older.cp.Height != 2 || older.cp.Certificate != string(b2.Certificate.Format()) || !bytes.Contains(older.json, []byte(`"height":2,`)) {
		t.Errorf("get(block 2) = %+v %s", older.cp, older.json)
	}
}
