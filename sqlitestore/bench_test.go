package sqlitestore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// The benchmarks work on a store of VCSLEDGER_BENCH_RECORDS records
// (default 1,000,000) in blocks of 1,000, each record with one attestation
// and each block certified, as a one-validator chain makes them. Run them
// once each:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./sqlitestore
//
// BenchmarkAppend1M builds the store the others read, inserting each
// block's records into a plain table too (the baseline) right after the
// block; run alone, each of
// them builds it first, untimed.

const benchPerBlock = 1000

func benchRecords(tb testing.TB) int {
	s := os.Getenv("VCSLEDGER_BENCH_RECORDS")
	if s == "" {
		return 1_000_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < benchPerBlock {
		tb.Fatalf("VCSLEDGER_BENCH_RECORDS=%q: want a number of at least %d", s, benchPerBlock)
	}
	return n
}

// benchFixture is the store the read benchmarks share, in a directory
// TestMain removes.
var benchFixture struct {
	mu    sync.Mutex
	dir   string
	path  string
	n     int
	chain *testChain
}

func benchDir(tb testing.TB) string {
	benchFixture.mu.Lock()
	defer benchFixture.mu.Unlock()
	if benchFixture.dir == "" {
		d, err := os.MkdirTemp("", "sqlitestore-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		benchFixture.dir = d
	}
	return benchFixture.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchFixture.dir != "" {
		os.RemoveAll(benchFixture.dir)
	}
	os.Exit(code)
}

// appendStats are the figures of one build of the benchmark store.
type appendStats struct {
	records  int
	appendIn time.Duration // inside Append only
	cpu      time.Duration // CPU time inside Append
	bytes    int64         // database and WAL files after Close
}

// buildBenchStore appends n records in blocks of benchPerBlock to a new
// store at path, timing only the Append calls (and stopping b's timer
// while blocks are built). Each block's records are also inserted into
// each of raws right after the block is appended, so that all share this
// machine's load alike.
func buildBenchStore(b *testing.B, path string, n int, raws ...*rawDB) (*testChain, appendStats) {
	ctx := context.Background()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	c := newTestChain(1)
	s, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	if err := ledger.InitStore(ctx, s, c.gen); err != nil {
		b.Fatal(err)
	}
	head := &c.gen.Block().Header
	var mem memHashes
	var st appendStats
	data := make([][]byte, 0, benchPerBlock)
	for int(head.LogSize) < n {
		b.StopTimer()
		k := min(benchPerBlock, n-int(head.LogSize))
		blk, stored, err := c.next(&mem, head, int(head.LogSize), k)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0, c0 := time.Now(), cpuTime()
		if err := s.Append(ctx, blk, stored); err != nil {
			b.Fatal(err)
		}
		st.appendIn += time.Since(t0)
		st.cpu += cpuTime() - c0
		if len(raws) > 0 {
			b.StopTimer()
			data = data[:0]
			for i := range blk.Records {
				data = append(data, blk.Records[i].Format())
			}
			for _, raw := range raws {
				raw.insert(b, int(head.LogSize), blk.Records, data)
			}
			b.StartTimer()
		}
		mem = append(mem, stored...)
		head = &blk.Header
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	st.records = int(head.LogSize)
	st.bytes = diskSize(path)
	return c, st
}

// cpuTime returns the CPU time this process has used, user and system:
// beside wall time, it shows what a benchmark costs on a machine that
// other work shares.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func diskSize(path string) int64 {
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// A rawDB is the baseline: the same canonical record bytes inserted into a
// plain table, on a connection of the same settings as the store's (WAL,
// synchronous=FULL and the rest, see dsn and connPragmas), one transaction
// per block. A keyed rawDB's table has a unique key column too, as a
// store that finds records by key must have: the least such a store
// writes.
type rawDB struct {
	path  string
	db    *sql.DB
	keyed bool
	st    appendStats
}

func openRaw(b *testing.B, path string, keyed bool) *rawDB {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	db, err := sql.Open(driverName, dsn(path, false))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	table := "CREATE TABLE raw (id INTEGER PRIMARY KEY, data BLOB NOT NULL)"
	if keyed {
		table = "CREATE TABLE raw (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, data BLOB NOT NULL)"
	}
	if _, err := db.Exec(table); err != nil {
		b.Fatal(err)
	}
	return &rawDB{path: path, db: db, keyed: keyed}
}

// insert inserts data, the canonical bytes of records, as rows first,
// first+1, ... in one transaction.
func (r *rawDB) insert(b *testing.B, first int, records []ledger.Record, data [][]byte) {
	t0, c0 := time.Now(), cpuTime()
	tx, err := r.db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	q := "INSERT INTO raw (id, data) VALUES (?, ?)"
	if r.keyed {
		q = "INSERT INTO raw (id, data, key) VALUES (?, ?, ?)"
	}
	ins, err := tx.Prepare(q)
	if err != nil {
		b.Fatal(err)
	}
	for j, d := range data {
		args := []any{first + j, d}
		if r.keyed {
			args = append(args, records[j].Key.String())
		}
		if _, err := ins.Exec(args...); err != nil {
			b.Fatal(err)
		}
	}
	ins.Close()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	r.st.appendIn += time.Since(t0)
	r.st.cpu += cpuTime() - c0
	r.st.records += len(data)
}

func (r *rawDB) close(b *testing.B) appendStats {
	if err := r.db.Close(); err != nil {
		b.Fatal(err)
	}
	r.st.bytes = diskSize(r.path)
	os.Remove(r.path)
	return r.st
}

// BenchmarkAppend1M reports the store's append rate beside two baselines
// of the same run: raw (plain inserts of the records' bytes, the target's
// baseline) and keyed (the same with a unique key column: what any store
// that looks records up by key writes at the least). keyed-vs-raw is the
// share of raw's rate left once a key index is kept.
func BenchmarkAppend1M(b *testing.B) {
	n := benchRecords(b)
	dir := benchDir(b)
	path := filepath.Join(dir, "ledger.db")
	var st, raw, keyed appendStats
	var c *testChain
	for i := 0; i < b.N; i++ {
		benchFixture.mu.Lock()
		benchFixture.n = 0 // being rebuilt
		benchFixture.mu.Unlock()
		rdb := openRaw(b, filepath.Join(dir, "raw.db"), false)
		kdb := openRaw(b, filepath.Join(dir, "keyed.db"), true)
		c, st = buildBenchStore(b, path, n, rdb, kdb)
		raw, keyed = rdb.close(b), kdb.close(b)
	}
	b.StopTimer()
	benchFixture.mu.Lock()
	benchFixture.path, benchFixture.n, benchFixture.chain = path, n, c
	benchFixture.mu.Unlock()
	rate := func(s appendStats) float64 { return float64(s.records) / s.appendIn.Seconds() }
	cpu := func(s appendStats) float64 { return float64(s.cpu.Nanoseconds()) / 1e3 / float64(s.records) }
	b.ReportMetric(float64(st.records), "records")
	b.ReportMetric(rate(st), "records/s")
	b.ReportMetric(float64(st.bytes)/float64(st.records), "disk-B/record")
	b.ReportMetric(rate(raw), "raw-records/s")
	b.ReportMetric(float64(raw.bytes)/float64(raw.records), "raw-disk-B/record")
	b.ReportMetric(rate(st)/rate(raw), "ratio-vs-raw")
	b.ReportMetric(cpu(st), "cpu-µs/record")
	b.ReportMetric(cpu(raw), "raw-cpu-µs/record")
	b.ReportMetric(cpu(raw)/cpu(st), "cpu-ratio-vs-raw")
	b.ReportMetric(rate(keyed), "keyed-records/s")
	b.ReportMetric(cpu(keyed), "keyed-cpu-µs/record")
	b.ReportMetric(rate(st)/rate(keyed), "ratio-vs-keyed")
	b.ReportMetric(rate(keyed)/rate(raw), "keyed-vs-raw")
}

// fixture returns the shared benchmark store, building it if needed.
func fixture(b *testing.B) (*Store, *testChain, int) {
	n := benchRecords(b)
	benchFixture.mu.Lock()
	ready := benchFixture.n == n
	benchFixture.mu.Unlock()
	if !ready {
		path := filepath.Join(benchDir(b), "ledger.db")
		c, _ := buildBenchStore(b, path, n)
		benchFixture.mu.Lock()
		benchFixture.path, benchFixture.n, benchFixture.chain = path, n, c
		benchFixture.mu.Unlock()
	}
	s, err := Open(context.Background(), benchFixture.path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, benchFixture.chain, n
}

func BenchmarkLookup1M(b *testing.B) {
	s, _, n := fixture(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	keys := make([]ledger.Key, 4096)
	for i := range keys {
		keys[i] = testRecord(rng.IntN(n)).Key
	}
	const per = 2000 // lookups per op, so that -benchtime 1x is an average
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < per; j++ {
			if _, err := s.Lookup(ctx, keys[(i*per+j)%len(keys)]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(b.N*per), "µs/lookup")
}

// BenchmarkKeyCheck1M measures what ValidateNext asks of the store for a
// block of new keys: whether any is committed. Beside FirstCommitted (one
// query for the block), the same through Lookup of each key, as a store
// without ledger.KeyChecker is asked.
func BenchmarkKeyCheck1M(b *testing.B) {
	s, _, n := fixture(b)
	ctx := context.Background()
	keys := make([]ledger.Key, benchPerBlock)
	for i := range keys {
		keys[i] = testRecord(n + i).Key // not committed
	}
	var batch, each time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if got, err := s.FirstCommitted(ctx, keys); err != nil || got != -1 {
			b.Fatalf("FirstCommitted = %d, %v", got, err)
		}
		t1 := time.Now()
		for _, k := range keys {
			if _, err := s.Lookup(ctx, k); !errors.Is(err, ledger.ErrNotFound) {
				b.Fatalf("Lookup(%s) = %v", k, err)
			}
		}
		batch += t1.Sub(t0)
		each += time.Since(t1)
	}
	per := float64(b.N * len(keys))
	b.ReportMetric(float64(batch.Nanoseconds())/1e3/per, "µs/key-batch")
	b.ReportMetric(float64(each.Nanoseconds())/1e3/per, "µs/key-lookup")
}

// BenchmarkProof1M proves records (ledger.ProveRecord over ReadHashes, as
// the API does) and consistency between the head and older blocks, and
// checks the proofs.
func BenchmarkProof1M(b *testing.B) {
	s, _, n := fixture(b)
	ctx := context.Background()
	head, err := s.Head(ctx)
	if err != nil {
		b.Fatal(err)
	}
	size := int64(head.LogSize)
	hr := ledger.HashReaderOf(ctx, s)
	rng := rand.New(rand.NewPCG(2, 2))
	// Older checkpoints to prove consistency from: block headers.
	var proveIncl, proveCons, checkIncl, checkCons time.Duration
	const per = 500 // proofs per op, so that -benchtime 1x is an average
	b.ResetTimer()
	for i := 0; i < b.N*per; i++ {
		idx := rng.Int64N(size)
		old, err := s.Header(ctx, uint64(1+rng.IntN(int(head.Height))))
		if err != nil {
			b.Fatal(err)
		}
		e, err := s.Record(ctx, idx)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		p, err := ledger.ProveRecord(hr, size, idx)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := ledger.CheckRecord(p, size, head.LogRoot, idx, e.Record.LeafHash()); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		q, err := ledger.ProveTree(hr, size, int64(old.LogSize))
		if err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := ledger.CheckTree(q, size, head.LogRoot, int64(old.LogSize), old.LogRoot); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		proveIncl += t1.Sub(t0)
		checkIncl += t2.Sub(t1)
		proveCons += t3.Sub(t2)
		checkCons += t4.Sub(t3)
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N*per) }
	b.ReportMetric(us(proveIncl), "µs/inclusion-proof")
	b.ReportMetric(us(checkIncl), "µs/inclusion-check")
	b.ReportMetric(us(proveCons), "µs/consistency-proof")
	b.ReportMetric(us(checkCons), "µs/consistency-check")
	_ = n
}

// BenchmarkOpen1M opens the store: the integrity check (quick_check at
// this size), the tail verification and the hash cache's fill (with the
// default bound, every stored hash; "cache-4MiB": the levels that fit in
// 4 MiB).
func BenchmarkOpen1M(b *testing.B) {
	s, _, _ := fixture(b)
	path := s.Path()
	s.Close()
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		check IntegrityCheck
		cache int64
	}{{"auto", CheckAuto, DefaultHashCacheBytes}, {"full", CheckFull, DefaultHashCacheBytes}, {"cache-4MiB", CheckAuto, 4 << 20}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s, err := Open(ctx, path, WithIntegrityCheck(c.check), WithHashCache(c.cache))
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/open")
			b.ReportMetric(float64(diskSize(path))/1e6, "MB-file")
		})
	}
}

// BenchmarkAudit1M reports ledger.Audit's rate beside SHA-256 of the same
// record bytes in memory (the target's baseline) and beside only reading
// the records' rows from the file (read-rows-vs-sha256: the most of the
// baseline's rate an audit reading rows one by one can reach). Each is
// the best of a few runs (the audit's of three per op), so that neither
// carries more of this shared machine's noise than the other.
func BenchmarkAudit1M(b *testing.B) {
	s, c, n := fixture(b)
	ctx := context.Background()
	var rep *ledger.AuditReport
	var auditIn, auditCPU time.Duration
	for i := 0; i < b.N; i++ {
		best, bestCPU := time.Duration(math.MaxInt64), time.Duration(0)
		for range 3 {
			t0, c0 := time.Now(), cpuTime()
			var err error
			if rep, err = ledger.Audit(ctx, s, c.gen, nil, nil); err != nil {
				b.Fatal(err)
			}
			if d := time.Since(t0); d < best {
				best, bestCPU = d, cpuTime()-c0
			}
		}
		auditIn += best
		auditCPU += bestCPU
	}
	b.StopTimer()
	if rep.Records != int64(n) {
		b.Fatalf("Audit checked %d records, want %d", rep.Records, n)
	}
	// Baseline: SHA-256 over the same canonical record bytes, in memory.
	data := make([][]byte, n)
	var total int64
	for i := range data {
		r := testRecord(i)
		data[i] = r.Format()
		total += int64(len(data[i]))
	}
	if total != rep.Bytes {
		b.Fatalf("records hold %d bytes, Audit hashed %d", total, rep.Bytes)
	}
	// The best of five runs: the baseline should not carry this shared
	// machine's noise.
	rawIn := time.Duration(math.MaxInt64)
	var sink byte
	for range 5 {
		t0 := time.Now()
		for _, d := range data {
			h := sha256.Sum256(d)
			sink ^= h[0]
		}
		rawIn = min(rawIn, time.Since(t0))
	}
	_ = sink
	// Beside it: only reading the same rows, in log order, from the store's
	// file through database/sql, as any audit of this file must (best of
	// three).
	readIn := time.Duration(math.MaxInt64)
	for range 3 {
		t0 := time.Now()
		rows, err := s.r.QueryContext(ctx, "SELECT "+chunkColumns+" FROM chunks ORDER BY first")
		if err != nil {
			b.Fatal(err)
		}
		var read int64
		var c chunkRow[[]byte]
		for rows.Next() {
			var first, height, firstHash int64
			var hashes, data sql.RawBytes
			if err := rows.Scan(&first, &height, &firstHash, &hashes, &data); err != nil {
				b.Fatal(err)
			}
			if err := c.split(first, height, firstHash, hashes, data); err != nil {
				b.Fatal(err)
			}
			for _, e := range c.entries {
				read += int64(len(e))
			}
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
		if read != total {
			b.Fatalf("read %d bytes of records, want %d", read, total)
		}
		readIn = min(readIn, time.Since(t0))
	}
	b.ReportMetric(float64(readIn.Nanoseconds())/1e3/float64(n), "read-rows-µs/record")
	b.ReportMetric(rawIn.Seconds()/readIn.Seconds(), "read-rows-vs-sha256")
	per := auditIn / time.Duration(b.N)
	mbs := float64(rep.Bytes) / 1e6 / per.Seconds()
	rawMBs := float64(total) / 1e6 / rawIn.Seconds()
	b.ReportMetric(float64(rep.Records)/per.Seconds(), "records/s")
	b.ReportMetric(mbs, "MB/s")
	b.ReportMetric(float64(n)/rawIn.Seconds(), "raw-sha256-records/s")
	b.ReportMetric(rawMBs, "raw-sha256-MB/s")
	b.ReportMetric(mbs/rawMBs, "ratio-vs-sha256")
	b.ReportMetric(float64(auditCPU.Nanoseconds())/1e3/float64(int64(b.N)*rep.Records), "cpu-µs/record")
	b.ReportMetric(float64(rawIn.Nanoseconds())/1e3/float64(n), "raw-sha256-µs/record")
}

// BenchmarkUpgrade1M opens the store after turning it into a file of
// schema version 2 (untimed): the upgrade rewrites its records rows as
// chunks rows and builds the keys table anew. It leaves the store at
// version 3.
func BenchmarkUpgrade1M(b *testing.B) {
	s, _, _ := fixture(b)
	path := s.Path()
	s.Close()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		downgrade(b, path, 2)
		b.StartTimer()
		s, err := Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/open")
	b.ReportMetric(float64(diskSize(path))/1e6, "MB-file")
}
