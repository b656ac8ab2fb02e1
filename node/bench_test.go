package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/sqlitestore"
	"github.com/vcsledger/vcsledger/vcs"
)

// Benchmarks of one node on 127.0.0.1, over HTTP, on a real SQLite file:
//
//	go test -run '^$' -bench . -benchtime 1x ./node/
//
// Environment:
//
//	VCSLEDGER_BENCH_SUBMIT   records submitted per iteration of BenchmarkSubmitCommit (default 300)
//	VCSLEDGER_BENCH_CLIENTS  its concurrent clients, each waiting for its record to commit (default 32)
//	VCSLEDGER_BENCH_RECORDS  records in the store BenchmarkLookupWithProof reads (default 1,000,000)

func benchEnv(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

// benchClients are HTTP clients whose connections come from distinct
// loopback addresses (127.0.1.1, 127.0.1.2, ...): the node limits each submitter address
// (mempool default: bursts of 60, then 10 per second), and the benchmark
// stands for many clients, not one bulk importer.
func benchClients(b *testing.B, url string, n int) []*api.Client {
	return benchClientsFrom(b, url, n, 0)
}

// benchClientsFrom is benchClients with source addresses from the first
// one after the offset-th.
func benchClientsFrom(b *testing.B, url string, n, offset int) []*api.Client {
	cs := make([]*api.Client, n)
	for i := range cs {
		a := i + offset
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+a/250), byte(1+a%250))}}
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil && ctx.Err() == nil {
				// Systems that route only 127.0.0.1 (macOS): one submitter.
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
			return c, err
		}
		tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 2}
		c, err := api.NewClient(url, &http.Client{Transport: tr, Timeout: 2 * time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		cs[i] = c
	}
	return cs
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type result struct {
	rps float64
	p99 time.Duration
}

// logLoad logs the machine's load average: figures from a shared machine
// mean little without it.
func logLoad(b *testing.B) {
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.Logf("load average %s (%d CPUs)", strings.TrimSpace(string(data)), runtime.NumCPU())
	}
}

// BenchmarkSubmitCommit measures a single validator taking records from
// clients over HTTP to committed blocks: each iteration submits
// VCSLEDGER_BENCH_SUBMIT new keys (distinct tags of one local repository)
// from VCSLEDGER_BENCH_CLIENTS (32) concurrent clients with POST
// /v1/records?wait=60s, and each answer must be the committed record. The validator's attester really
// fetches every key over file:// (git upload-pack) and hashes it.
//
// Reported: committed records/s (records of the iteration over its wall
// time) and the submit-to-commit latency of each request, p50 and p99.
//
// attest_quorum=1 is the default for one validator; attest_quorum=0 ("the
// proposer's word is enough") still needs the proposer's own attestation
// (mempool.Pool.Ready: a client's claim never suffices), so it fetches
// every key too: the two differ only in what blocks must carry.
func BenchmarkSubmitCommit(b *testing.B) {
	for _, quorum := range []int{1, 0} {
		b.Run(fmt.Sprintf("attest_quorum=%d", quorum), func(b *testing.B) { benchSubmitCommit(b, quorum) })
	}
}

func benchSubmitCommit(b *testing.B, quorum int) {
	per := benchEnv(b, "VCSLEDGER_BENCH_SUBMIT", 300)
	clients := benchEnv(b, "VCSLEDGER_BENCH_CLIENTS", 32)
	_, key, _ := ed25519.GenerateKey(nil)
	g := newGenesis(b, "bench", quorum, key)
	g.BlockInterval = 200 // as 'ledgerd dev' and 'ledgerd testnet' make them
	tn := startNode(b, Config{Genesis: g, Key: key})
	repo := newFixtureRepo(b)
	repo.release("v0")
	cs := benchClients(b, tn.URL(), clients)

	var lat []time.Duration
	var records int
	var elapsed time.Duration
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		tags := repo.tagMany(fmt.Sprintf("b%d.", it), per)
		keys := make(chan ledger.Key, len(tags))
		for _, tag := range tags {
			keys <- repo.key(tag)
		}
		close(keys)
		runtime.GC()
		b.StartTimer()
		start := time.Now()
		lat = append(lat, submitWait(b, cs, keys)...)
		elapsed += time.Since(start)
		records += per
	}
	b.StopTimer()
	if b.Failed() {
		return
	}
	logLoad(b)
	slices.Sort(lat)
	head := tn.head()
	b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50_ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99_ms")
	b.ReportMetric(float64(head.LogSize)/float64(head.Height), "records/block")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(records), "ns/op")
}

// BenchmarkAttestFetch measures what the attester does per record in
// BenchmarkNetworkSubmit: fetch a release of the local fixture repository
// (a commit of its own, so a pack of its own) over file:// into the node's
// cache and hash its tree. It bounds the submit benchmarks: the attester
// runs 4 of these at once.
func BenchmarkAttestFetch(b *testing.B) {
	repo := newFixtureRepo(b)
	repo.release("v0")
	tags := repo.releaseMany("f", max(b.N, 1))
	cache := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := vcs.Hash(context.Background(), "file://"+repo.Dir, tags[i], vcs.Options{CacheDir: cache}); err != nil {
			b.Fatal(err)
		}
	}
}

// writeLookupStore writes the store BenchmarkLookupWithProof reads: n
// records in blocks of 10,000 on a one-validator chain (attest quorum 0, so
// blocks carry no attestations), every block certified.
func writeLookupStore(b *testing.B, path string, n int) (*ledger.Genesis, error) {
	signer := ledgertest.Signer(0)
	g := &ledger.Genesis{Chain: "bench", Time: time.Now().Add(-time.Hour).UnixMilli(), Engine: ledger.EnginePoA,
		BlockInterval: 1000, AttestQuorum: 0, Validators: []ledger.Validator{{Key: signer.Public(), Name: "v0"}}}
	_, err := writeChainStore(b, path, g, []*ledger.Signer{signer}, n, 10_000)
	return g, err
}

// writeChainStore writes a chain of g into a new SQLite file at path: n
// records (ledgertest.Records from a fixed seed, so benchRecords gives the
// same ones) in blocks of per, each block certified by signers and per
// block interval after its parent. It builds the chain block by block
// straight into the file (the ledgertest chain keeps only the genesis and
// signs certificates), so that a million records never sit in memory.
// It returns the time spent in the store's Append.
func writeChainStore(b *testing.B, path string, g *ledger.Genesis, signers []*ledger.Signer, n, per int) (appending time.Duration, err error) {
	ctx := context.Background()
	certs := ledgertest.NewChainFrom(b, g, signers)
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if err := ledger.InitStore(ctx, st, g); err != nil {
		return 0, err
	}
	start := time.Now()
	parent := g.Block().Header
	err = benchRecords(n, per, func(recs []ledger.Record) error {
		leaves := make([]ledger.Hash, len(recs))
		for j := range recs {
			leaves[j] = recs[j].LeafHash()
		}
		stored, root, err := ledger.AppendLog(ledger.HashReaderOf(ctx, st), int64(parent.LogSize), leaves)
		if err != nil {
			return err
		}
		blk := &ledger.Block{Records: recs, Header: ledger.Header{
			Chain: g.Chain, Height: parent.Height + 1, Prev: parent.Hash(), Time: parent.Time + g.BlockInterval,
			Engine: ledger.EnginePoA, Proposer: signers[0].Public(), Records: uint64(len(recs)),
			LogSize: parent.LogSize + uint64(len(recs)), LogRoot: root,
		}}
		blk.Certificate = certs.Certify(blk, nil)
		t0 := time.Now()
		if err := st.Append(ctx, blk, stored); err != nil {
			return err
		}
		appending += time.Since(t0)
		parent = blk.Header
		return nil
	})
	if err != nil {
		return 0, err
	}
	b.Logf("built a store of %d records in %d blocks in %v (%v in Append)", parent.LogSize, parent.Height,
		time.Since(start).Round(time.Millisecond), appending.Round(time.Millisecond))
	return appending, nil
}

// benchRecords calls fn with n records, per at a time, the same for the
// same n and per in every run.
func benchRecords(n, per int, fn func([]ledger.Record) error) error {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < n; i += per {
		if err := fn(ledgertest.Records(rng, i, min(per, n-i))); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkLookupWithProof measures GET /v1/records/{key} served by a real
// node (a non-validator replica opened on a store of
// VCSLEDGER_BENCH_RECORDS records): a SQLite point read, an inclusion proof
// and the signed checkpoint. In the same run, on the same SQLite file, two
// bare net/http handlers answer the same requests: "read" does only the
// point read (the record as JSON), "proof" the same work as the node
// without the API's routing, strict parsing, metrics and logging. Each
// answers max(b.N, 5000) requests from 4 concurrent keep-alive clients,
// in 5 rounds taken in turn.
//
// Reported: req/s and p99 of each, and node/read and node/proof ratios
// (target: node/read >= 0.8).
func BenchmarkLookupWithProof(b *testing.B) {
	n := benchEnv(b, "VCSLEDGER_BENCH_RECORDS", 1_000_000)
	path := filepath.Join(b.TempDir(), "ledger.db")
	g, err := writeLookupStore(b, path, n)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(nil) // not a validator: a replica
	tn := startNode(b, Config{Genesis: g, Key: key, DBPath: path})
	st := tn.Store()
	head := tn.head()
	if head.LogSize != uint64(n) {
		b.Fatalf("store has %d records, want %d", head.LogSize, n)
	}

	rng := rand.New(rand.NewPCG(1, 1))
	paths := make([]string, 4096)
	for i := range paths {
		e, err := st.Record(ctx, rng.Int64N(int64(head.LogSize)))
		if err != nil {
			b.Fatal(err)
		}
		paths[i] = "/v1/records/" + url.PathEscape(e.Record.Key.String())
	}

	// The bare proof handler reads the head's certificate once, as the node
	// does (the head does not move in this benchmark).
	headBlock, err := st.Block(ctx, head.Height)
	if err != nil {
		b.Fatal(err)
	}
	cert := headBlock.Certificate
	bare := func(proof bool) string {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			k, err := ledger.ParseKey(r.URL.Path[len("/v1/records/"):])
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			e, err := st.Lookup(ctx, k)
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if !proof {
				json.NewEncoder(w).Encode(api.NewRecord(e, api.StatusCommitted))
				return
			}
			hdr, err := st.Head(ctx)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			p, err := ledger.ProveRecord(ledger.HashReaderOf(ctx, st), int64(hdr.LogSize), e.Index)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			json.NewEncoder(w).Encode(api.RecordResponse{Record: api.NewRecord(e, api.StatusCommitted), Proof: p, Checkpoint: api.NewCheckpoint(hdr, cert)})
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		return "http://" + ln.Addr().String()
	}
	targets := []struct{ name, url string }{{"node", tn.URL()}, {"read", bare(false)}, {"proof", bare(true)}}

	reqs := max(b.N, 5000)
	const clients, rounds = 4, 5
	hcs := make([]*http.Client, len(targets))
	for i, tg := range targets {
		hcs[i] = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
		// Every target answers a record; the node's verifies.
		resp, err := hcs[i].Get(tg.url + paths[0])
		if err != nil {
			b.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: GET %s = %d %s", tg.name, paths[0], resp.StatusCode, data)
		}
		if tg.name == "node" {
			var rr api.RecordResponse
			if err := json.Unmarshal(data, &rr); err != nil {
				b.Fatal(err)
			}
			if _, _, err := api.VerifyRecord(g, &rr); err != nil {
				b.Fatalf("node answer: %v", err)
			}
		}
	}
	// The targets take turns, rounds times each, so that a change in the
	// load of a shared machine does not favour one of them.
	lats := make([][]time.Duration, len(targets))
	busy := make([]time.Duration, len(targets))
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		for ti, tg := range targets {
			hc := hcs[ti]
			runtime.GC()
			lat := make([][]time.Duration, clients)
			var wg sync.WaitGroup
			start := time.Now()
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := r*reqs/rounds + c; i < (r+1)*reqs/rounds; i += clients {
						t0 := time.Now()
						resp, err := hc.Get(tg.url + paths[i%len(paths)])
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("%s: status %d", tg.name, resp.StatusCode)
							return
						}
						lat[c] = append(lat[c], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			busy[ti] += time.Since(start)
			lats[ti] = append(lats[ti], slices.Concat(lat...)...)
		}
	}
	res := map[string]result{}
	for ti, tg := range targets {
		hcs[ti].CloseIdleConnections()
		slices.Sort(lats[ti])
		res[tg.name] = result{float64(len(lats[ti])) / busy[ti].Seconds(), percentile(lats[ti], 0.99)}
	}
	b.StopTimer()
	logLoad(b)
	node, read, proof := res["node"], res["read"], res["proof"]
	b.ReportMetric(float64(head.LogSize), "records")
	b.ReportMetric(node.rps, "node_req/s")
	b.ReportMetric(read.rps, "read_req/s")
	b.ReportMetric(proof.rps, "proof_req/s")
	b.ReportMetric(node.rps/read.rps, "node/read")
	b.ReportMetric(node.rps/proof.rps, "node/proof")
	b.ReportMetric(ms(node.p99), "node_p99_ms")
	b.ReportMetric(ms(read.p99), "read_p99_ms")
	b.ReportMetric(ms(proof.p99), "proof_p99_ms")
	b.ReportMetric(0, "ns/op")
}
