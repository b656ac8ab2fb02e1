package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// benchChain is the chain BenchmarkLookupWithProof reads, built once per
// process: VCSLEDGER_BENCH_RECORDS records (default 100,000) in blocks of
// 10,000 on a one-validator chain.
var benchChain = sync.OnceValues(func() (*ledgertest.Chain, error) {
	n := 100_000
	if s := os.Getenv("VCSLEDGER_BENCH_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("VCSLEDGER_BENCH_RECORDS=%q: want a positive number", s)
		}
		n = v
	}
	tb := &onceTB{}
	signer := ledgertest.Signer(0)
	g := &ledger.Genesis{Chain: "bench", Time: 1_700_000_000_000, Engine: ledger.EnginePoA, BlockInterval: 1000,
		AttestQuorum: 0, Validators: []ledger.Validator{{Key: signer.Public(), Name: "v0"}}}
	chain := ledgertest.NewChainFrom(tb, g, []*ledger.Signer{signer})
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < n; i += 10_000 {
		chain.Next(ledgertest.Records(rng, i, min(10_000, n-i)))
	}
	return chain, tb.err
})

// onceTB lets the chain builder run outside any one benchmark.
type onceTB struct {
	testing.TB
	err error
}

func (t *onceTB) Helper()                   {}
func (t *onceTB) Fatal(args ...any)         { t.err = fmt.Errorf("%v", fmt.Sprint(args...)); panic(t.err) }
func (t *onceTB) Fatalf(f string, a ...any) { t.Fatal(fmt.Sprintf(f, a...)) }

// benchMinRequests is how many requests each handler answers at least,
// whatever -benchtime says, so that req/s and p99 mean something even at
// -benchtime 1x.
const benchMinRequests = 5000

// BenchmarkLookupWithProof measures GET /v1/records/{key} (a point read, an
// inclusion proof and the checkpoint, through the API server) against, in
// the same run, two bare net/http handlers over the same store: one doing
// the same work (lookup, proof, JSON) without the API's routing, strict
// parsing, metrics and logging, and one doing only the point read. Each
// answers max(b.N, benchMinRequests) requests from 4 concurrent clients
// over keep-alive connections on 127.0.0.1. Reported: req/s and p99
// latency of each, the ratios of the API's req/s to the bare ones', and as
// ns/op the API's wall time per request.
func BenchmarkLookupWithProof(b *testing.B) {
	chain, err := benchChain()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	head, err := chain.Store.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	backend := newFakeBackend(b, chain)
	s, err := NewServer(Config{}, backend, nil)
	if err != nil {
		b.Fatal(err)
	}
	servers := []struct {
		name string
		h    http.Handler
	}{
		{"api", s},
		{"bare", bareProofHandler(backend)},
		{"read", bareReadHandler(chain.Store)},
	}

	// The keys asked for: random records of the whole log.
	rng := rand.New(rand.NewPCG(1, 1))
	paths := make([]string, 4096)
	for i := range paths {
		e, err := chain.Store.Record(ctx, rng.Int64N(int64(head.LogSize)))
		if err != nil {
			b.Fatal(err)
		}
		paths[i] = "/v1/records/" + url.PathEscape(e.Record.Key.String())
	}

	n := max(b.N, benchMinRequests)
	const clients = 4
	type result struct {
		rps     float64
		p99     time.Duration
		elapsed time.Duration
	}
	results := map[string]result{}
	b.ResetTimer()
	for _, srv := range servers {
		ts := httptest.NewServer(srv.h)
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		// Every handler answers a record that verifies.
		resp, err := hc.Get(ts.URL + paths[0])
		if err != nil {
			b.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: GET %s = %d %s", srv.name, paths[0], resp.StatusCode, data)
		}
		if srv.name != "read" {
			var rr RecordResponse
			if err := json.Unmarshal(data, &rr); err != nil {
				b.Fatal(err)
			}
			if _, _, err := VerifyRecord(chain.Genesis, &rr); err != nil {
				b.Fatalf("%s: %v", srv.name, err)
			}
		}

		runtime.GC() // start each phase with the same heap
		lat := make([][]time.Duration, clients)
		var wg sync.WaitGroup
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; i < n; i += clients {
					t0 := time.Now()
					resp, err := hc.Get(ts.URL + paths[i%len(paths)])
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("%s: status %d", srv.name, resp.StatusCode)
						return
					}
					lat[c] = append(lat[c], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		hc.CloseIdleConnections()
		ts.Close()
		all := slices.Concat(lat...)
		slices.Sort(all)
		results[srv.name] = result{float64(len(all)) / elapsed.Seconds(), all[len(all)*99/100], elapsed}
	}
	b.StopTimer()
	api, bare, read := results["api"], results["bare"], results["read"]
	b.ReportMetric(float64(head.LogSize), "records")
	b.ReportMetric(api.rps, "api_req/s")
	b.ReportMetric(bare.rps, "bare_req/s")
	b.ReportMetric(read.rps, "read_req/s")
	b.ReportMetric(api.rps/bare.rps, "api/bare")
	b.ReportMetric(api.rps/read.rps, "api/read")
	b.ReportMetric(float64(api.p99.Microseconds())/1000, "api_p99_ms")
	b.ReportMetric(float64(bare.p99.Microseconds())/1000, "bare_p99_ms")
	b.ReportMetric(float64(read.p99.Microseconds())/1000, "read_p99_ms")
	// ns/op: wall time per API request (4 clients in parallel).
	b.ReportMetric(float64(api.elapsed.Nanoseconds())/float64(n), "ns/op")
}

// bareProofHandler answers GET /v1/records/{key} as a minimal handler
// would: the same lookup, proof and checkpoint, written as JSON.
func bareProofHandler(b Backend) http.Handler {
	store := b.Store()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		key, err := ledger.ParseKey(r.URL.Path[len("/v1/records/"):])
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e, err := store.Lookup(ctx, key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		hdr, cert, err := b.Checkpoint(ctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		proof, err := ledger.ProveRecord(ledger.HashReaderOf(ctx, store), int64(hdr.LogSize), e.Index)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(RecordResponse{Record: NewRecord(e, StatusCommitted), Proof: proof, Checkpoint: NewCheckpoint(hdr, cert)})
	})
}

// bareReadHandler answers with the point read alone: the record as JSON,
// no proof, no checkpoint.
func bareReadHandler(store ledger.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := ledger.ParseKey(r.URL.Path[len("/v1/records/"):])
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e, err := store.Lookup(r.Context(), key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(NewRecord(e, StatusCommitted))
	})
}
