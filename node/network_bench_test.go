package node

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/mempool"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// Benchmarks of a network of four validators run in this process on
// 127.0.0.1, each with its own SQLite file and libp2p host, wired as
// 'ledgerd testnet' wires processes (network_helpers_test.go):
//
//	go test -run '^$' -bench 'Network' -benchtime 1x ./node/
//
// Environment (besides benchmarks of bench_test.go):
//
//	VCSLEDGER_BENCH_NET_SUBMIT  records submitted per iteration of BenchmarkNetworkSubmit (default 400)
//	VCSLEDGER_BENCH_NET_READY   ready records committed per iteration of BenchmarkNetworkCommit (default 20,000)
//	VCSLEDGER_BENCH_SYNC_RECORDS records BenchmarkNetworkSync syncs (default 200,000; quote 1,000,000)

// BenchmarkNetworkSubmit measures four validators taking records from
// clients over HTTP to committed blocks. Each iteration submits
// VCSLEDGER_BENCH_NET_SUBMIT new keys (distinct tags of one local
// repository) from VCSLEDGER_BENCH_CLIENTS (32) concurrent clients spread
// over the four nodes, each with POST /v1/records?wait=60s, and each answer
// must be the committed record. The validators' attesters really fetch
// every key over file:// and hash it.
//
// attest_quorum=2 is the default f+1 for four validators: blocks carry two
// validators' attestations per record. attest_quorum=0 is the proposer's
// word: blocks carry none, but the proposer must have fetched and hashed
// the record itself (mempool.Pool.Ready), so every validator fetches every
// key.
//
// Reported: committed records/s, submit-to-commit p50 and p99, records per
// block.
func BenchmarkNetworkSubmit(b *testing.B) {
	for _, quorum := range []int{0, 2} {
		b.Run(fmt.Sprintf("attest_quorum=%d", quorum), func(b *testing.B) { benchNetworkSubmit(b, quorum) })
	}
}

func benchNetworkSubmit(b *testing.B, quorum int) {
	per := benchEnv(b, "VCSLEDGER_BENCH_NET_SUBMIT", 400)
	clients := benchEnv(b, "VCSLEDGER_BENCH_CLIENTS", 32)
	c := newCluster(b, clusterOpts{validators: 4, attestQuorum: quorum, blockInterval: 200})
	c.startAll()
	c.waitPeers(3, 30*time.Second)
	repo := newFixtureRepo(b)
	repo.release("v0")
	var cs []*api.Client
	for i, m := range c.members {
		cs = append(cs, benchClientsFrom(b, m.url, clients/len(c.members), i*64)...)
	}

	var lat []time.Duration
	var records int
	var elapsed time.Duration
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		keys := make(chan ledger.Key, per)
		for _, tag := range repo.releaseMany(fmt.Sprintf("n%d.", it), per) {
			keys <- repo.key(tag)
		}
		close(keys)
		runtime.GC()
		b.StartTimer()
		start := time.Now()
		l := submitWait(b, cs, keys)
		elapsed += time.Since(start)
		lat = append(lat, l...)
		records += per
	}
	b.StopTimer()
	if b.Failed() {
		return
	}
	logLoad(b)
	slices.Sort(lat)
	head := c.waitConverged(time.Minute)
	b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50_ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99_ms")
	b.ReportMetric(float64(head.LogSize)/float64(head.Height), "records/block")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(records), "ns/op")
}

// submitWait submits every key of keys with ?wait=60s from each client
// concurrently, fails the benchmark unless each answer is the committed
// record, and returns the latencies.
func submitWait(b *testing.B, cs []*api.Client, keys <-chan ledger.Key) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				t0 := time.Now()
				resp, err := c.Submit(context.Background(), api.SubmitRequest{Key: k.String()}, 60*time.Second)
				d := time.Since(t0)
				if err != nil {
					b.Errorf("Submit(%s) = %v", k, err)
					return
				}
				if resp.Status != api.StatusCommitted {
					b.Errorf("Submit(%s, wait 60s) = %s; want committed", k, resp.Status)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat
}

// releaseMany makes n releases prefix0 .. prefix<n-1> with one git
// process: each a commit on main that changes the file VERSION, and a
// lightweight tag on it. Unlike tagMany's tags, every one names its own
// commit and tree, as distinct releases do, so each is a fetch of its own.
func (r *fixtureRepo) releaseMany(prefix string, n int) []string {
	r.tb.Helper()
	var in bytes.Buffer
	names := make([]string, n)
	parent := r.rev("HEAD")
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
		version := names[i] + "\n"
		fmt.Fprintf(&in, "commit refs/heads/main\ncommitter fixture <fixture@example.com> 1704164645 +0000\ndata %d\n%s\n", len(names[i]), names[i])
		if i == 0 {
			fmt.Fprintf(&in, "from %s\n", parent)
		}
		fmt.Fprintf(&in, "M 100644 inline VERSION\ndata %d\n%s\n", len(version), version)
		fmt.Fprintf(&in, "reset refs/tags/%s\nfrom refs/heads/main\n\n", names[i])
	}
	r.gitIn(in.Bytes(), "fast-import", "--quiet")
	r.git("reset", "-q", "--hard", "main")
	return names
}

// BenchmarkNetworkCommit measures what four validators commit when records
// are ready: the path from mempool to durable, certified block on every
// node (proposal, validation by each validator, votes, append with fsync,
// mempool removal, the blocks topic), without the fetches. Before the
// timer starts, each validator's pending journal is filled with
// VCSLEDGER_BENCH_NET_READY records (default 20,000) carrying its own
// attestation, signed with its key through the mempool's API: what its
// attester would have left after fetching them. The chain has
// attest_quorum 0, so blocks carry no attestations. The timer runs from
// the nodes' start until every node holds every record.
//
// Reported: committed records/s over the whole run (start-up and mesh
// forming included) and between the first and the last block's times,
// records per block, milliseconds between blocks (p50 and max).
func BenchmarkNetworkCommit(b *testing.B) {
	n := benchEnv(b, "VCSLEDGER_BENCH_NET_READY", 20_000)
	var wall, steady, perBlock, gapP50, gapMax float64
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		c := newCluster(b, clusterOpts{validators: 4, attestQuorum: 0, blockInterval: 200})
		rng := rand.New(rand.NewPCG(uint64(it), 3))
		recs := ledgertest.Records(rng, 0, n)
		for i := range c.members {
			c.preloadReady(i, recs)
		}
		runtime.GC()
		b.StartTimer()
		start := time.Now()
		c.startAll()
		for _, m := range c.members {
			waitLogSize(b, m, uint64(n), 5*time.Minute)
		}
		took := time.Since(start)
		b.StopTimer()
		head := c.waitConverged(time.Minute)
		c.checkIdentical()
		hs, err := c.members[0].Store().Headers(context.Background(), 1, int(head.Height))
		if err != nil {
			b.Fatal(err)
		}
		var gaps []time.Duration
		for k := 1; k < len(hs); k++ {
			gaps = append(gaps, time.Duration(hs[k].Time-hs[k-1].Time)*time.Millisecond)
		}
		slices.Sort(gaps)
		wall += float64(n) / took.Seconds()
		if len(hs) > 1 {
			span := time.Duration(hs[len(hs)-1].Time-hs[0].Time) * time.Millisecond
			steady += float64(n-int(hs[0].Records)) / span.Seconds()
			gapP50 += ms(percentile(gaps, 0.5))
			gapMax += ms(gaps[len(gaps)-1])
		}
		perBlock += float64(n) / float64(head.Height)
		for i := range c.members {
			c.stop(i)
		}
	}
	logLoad(b)
	N := float64(b.N)
	b.ReportMetric(wall/N, "records/s")
	b.ReportMetric(steady/N, "steady_records/s")
	b.ReportMetric(perBlock/N, "records/block")
	b.ReportMetric(gapP50/N, "block_gap_p50_ms")
	b.ReportMetric(gapMax/N, "block_gap_max_ms")
	b.ReportMetric(0, "ns/op")
}

// preloadReady writes recs into member i's store, before its first start,
// as pending entries holding its own attestation (mempool.Pool's journal),
// as if its attester had fetched and hashed each one.
func (c *cluster) preloadReady(i int, recs []ledger.Record) {
	c.tb.Helper()
	ctx := context.Background()
	cfg := c.config(i, "ledger.db")
	if err := os.MkdirAll(filepath.Dir(cfg.DBPath), 0o755); err != nil {
		c.tb.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, cfg.DBPath)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer st.Close()
	if err := ledger.InitStore(ctx, st, c.g); err != nil {
		c.tb.Fatal(err)
	}
	signer := c.signer(i)
	vals := c.vals()
	p, err := mempool.New(ctx, mempool.Config{Chain: c.g.Chain, Self: signer.Public(), Validators: vals.Contains}, journal{&Node{store: st}}, st)
	if err != nil {
		c.tb.Fatal(err)
	}
	for _, r := range recs {
		if err := p.AddAttestation(ctx, ledger.Attest(signer, c.g.Chain, r)); err != nil {
			c.tb.Fatal(err)
		}
	}
}

// waitLogSize waits until member m's store holds at least n records.
func waitLogSize(tb testing.TB, m *member, n uint64, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h, err := m.Store().Head(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if h.LogSize >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d records committed after %v", h.LogSize, n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
