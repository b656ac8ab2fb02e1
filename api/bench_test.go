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
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// benchChain is the chain BenchmarkLookupWithProof reads, built once per
// process: VCSLEDGER_BENCH_RECORDS records (default 100,000) in blocks of
// 10,000 on a one-validator chain.
var benchChain = sync.OnceValues(func() (*ledgertest.Chain, error) {
	return buildBenchChain()
})

// benchDir holds benchStore's file; TestMain removes it.
var benchDir string

// benchStore is benchChain's blocks in a sqlitestore, as a node keeps
// them, opened once per process.
var benchStore = sync.OnceValues(func() (*sqlitestore.Store, error) {
	chain, err := benchChain()
	if err != nil {
		return nil, err
	}
	if benchDir, err = os.MkdirTemp("", "api-bench-"); err != nil {
		return nil, err
	}
	return storeOf(context.Background(), filepath.Join(benchDir, "ledger.db"), chain)
})

// storeOf returns a new sqlitestore at path holding chain's blocks.
func storeOf(ctx context.Context, path string, chain *ledgertest.Chain) (*sqlitestore.Store, error) {
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	for i, b := range chain.Blocks() {
		if i == 0 {
			err = ledger.InitStore(ctx, s, chain.Genesis)
		} else {
			err = s.Append(ctx, b, chain.Stored(b.Header.Height))
		}
		if err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		if s, err := benchStore(); err == nil {
			s.Close()
		}
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// sqliteBackend is fakeBackend with the chain read from a sqlitestore.
type sqliteBackend struct {
	*fakeBackend
	store ledger.Store
}

func (b sqliteBackend) Store() ledger.Store { return b.store }

func buildBenchChain() (*ledgertest.Chain, error) {
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
}

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
// the same run, two bare net/http handlers over the same store (a
// sqlitestore, as a node's): one doing the same work (lookup, proof, JSON)
// without the API's routing, strict parsing, metrics and logging, and one
// doing only the SQLite point read (Lookup) and writing the record. Each
// answers max(b.N, benchMinRequests) requests from 4 concurrent clients
// over keep-alive connections on 127.0.0.1, the three taking turns in ten
// rounds. Reported: req/s and p99 latency of each, the ratios of the API's
// req/s to the bare ones', CPU time per request (of the whole process,
// clients included) of the API and the point read and their ratio, and as
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
	store, err := benchStore()
	if err != nil {
		b.Fatal(err)
	}
	backend := sqliteBackend{newFakeBackend(b, chain), store}
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
		{"read", bareReadHandler(store)},
	}

	// The keys asked for: random records of the whole log.
	rng := rand.New(rand.NewPCG(1, 1))
	paths := make([]string, 4096)
	for i := range paths {
		e, err := store.Record(ctx, rng.Int64N(int64(head.LogSize)))
		if err != nil {
			b.Fatal(err)
		}
		paths[i] = "/v1/records/" + url.PathEscape(e.Record.Key.String())
	}

	n := max(b.N, benchMinRequests)
	const clients = 4
	// The handlers take turns, rounds times each, so that the load of
	// this shared machine weighs on all of them alike.
	const rounds = 10
	type phase struct {
		lat     []time.Duration
		elapsed time.Duration
		cpu     time.Duration
	}
	phases := make([]phase, len(servers))
	type conn struct {
		ts *httptest.Server
		hc *http.Client
	}
	conns := make([]conn, len(servers))
	for k, srv := range servers {
		ts := httptest.NewServer(srv.h)
		defer ts.Close()
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		defer hc.CloseIdleConnections()
		conns[k] = conn{ts, hc}
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
	}
	b.ResetTimer()
	for r := range rounds {
		lo, hi := n*r/rounds, n*(r+1)/rounds
		for k, srv := range servers {
			ts, hc := conns[k].ts, conns[k].hc
			runtime.GC() // start each phase with the same heap
			lat := make([][]time.Duration, clients)
			var wg sync.WaitGroup
			start, cpu0 := time.Now(), cpuTime()
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := lo + c; i < hi; i += clients {
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
			p := &phases[k]
			p.elapsed += time.Since(start)
			p.cpu += cpuTime() - cpu0
			p.lat = append(p.lat, slices.Concat(lat...)...)
		}
	}
	type result struct {
		rps     float64
		p99     time.Duration
		elapsed time.Duration
		cpu     float64 // µs of this process's CPU time per request, client side included
	}
	results := map[string]result{}
	for k, srv := range servers {
		p := &phases[k]
		slices.Sort(p.lat)
		results[srv.name] = result{float64(len(p.lat)) / p.elapsed.Seconds(), p.lat[len(p.lat)*99/100], p.elapsed,
			float64(p.cpu.Nanoseconds()) / 1e3 / float64(len(p.lat))}
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
	b.ReportMetric(api.cpu, "api_cpu_µs/req")
	b.ReportMetric(read.cpu, "read_cpu_µs/req")
	b.ReportMetric(read.cpu/api.cpu, "api/read_cpu")
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

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
