package node

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// BenchmarkNetworkSync measures a brand-new replica catching up: a
// validator of a four-validator chain serves VCSLEDGER_BENCH_SYNC_RECORDS
// records (default 200,000; the figure to quote is at 1,000,000) in blocks
// of 10,000, each certified by the four, and a replica started on an
// empty database fetches them over the sync protocol on 127.0.0.1,
// validating every block (links, every record and key, the log root, the
// certificate) and appending it durably (synchronous=FULL), as it does for
// any block it syncs. The timer runs from the replica's start until it
// holds every record.
//
// Beside it, in the same run: the same records' canonical bytes inserted
// into a plain SQLite table (id, data) with the store's pragmas, one
// transaction per 10,000: the baseline. Target: sync >= 0.5x raw. And the
// time the serving validator's store took to Append the same blocks as
// the chain was built, which a sync cannot beat: sync/append is how much
// of the sync's fetching and verifying is hidden behind its writes.
//
// Reported: records/s synced, raw_records/s, sync/raw, append_records/s,
// sync/append.
func BenchmarkNetworkSync(b *testing.B) {
	n := benchEnv(b, "VCSLEDGER_BENCH_SYNC_RECORDS", 200_000)
	const per = 10_000
	c := newCluster(b, clusterOpts{validators: 4, followers: 1, attestQuorum: 0, blockInterval: 1000,
		genesisAge: time.Duration(n/per+2) * time.Second})
	var signers []*ledger.Signer
	for i := range 4 {
		signers = append(signers, c.signer(i))
	}
	chain := filepath.Join(c.dir, "chain.db")
	appending, err := writeChainStore(b, chain, c.g, signers, n, per)
	if err != nil {
		b.Fatal(err)
	}
	c.seed(0, chain)
	c.start(0)
	const replica = 4

	var syncRate, rawRate float64
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		if it > 0 {
			c.stop(replica)
		}
		runtime.GC()
		b.StartTimer()
		start := time.Now()
		if it == 0 {
			c.start(replica)
		} else {
			c.startEmpty(replica)
		}
		waitLogSize(b, c.members[replica], uint64(n), 30*time.Minute)
		syncRate += float64(n) / time.Since(start).Seconds()
		b.StopTimer()
		rawRate += float64(n) / rawInsert(b, filepath.Join(c.dir, fmt.Sprintf("raw%d.db", it)), n, per).Seconds()
	}
	logLoad(b)
	syncRate /= float64(b.N)
	rawRate /= float64(b.N)
	b.ReportMetric(float64(n), "records")
	b.ReportMetric(syncRate, "records/s")
	b.ReportMetric(rawRate, "raw_records/s")
	b.ReportMetric(syncRate/rawRate, "sync/raw")
	appendRate := float64(n) / appending.Seconds()
	b.ReportMetric(appendRate, "append_records/s")
	b.ReportMetric(syncRate/appendRate, "sync/append")
	b.ReportMetric(0, "ns/op")
}

// rawInsert inserts the canonical bytes of benchRecords(n, per) into a
// plain table of a new SQLite file at path, with the store's pragmas (WAL,
// synchronous=FULL), one transaction per per records, and returns the
// time the inserts took.
func rawInsert(b *testing.B, path string, n, per int) time.Duration {
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=FULL")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE raw (id INTEGER PRIMARY KEY, data BLOB NOT NULL)"); err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	id := 0
	err = benchRecords(n, per, func(recs []ledger.Record) error {
		data := make([][]byte, len(recs))
		for i := range recs {
			data[i] = recs[i].Format()
		}
		t0 := time.Now()
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		ins, err := tx.Prepare("INSERT INTO raw (id, data) VALUES (?, ?)")
		if err != nil {
			return err
		}
		for i := range data {
			if _, err := ins.Exec(id, data[i]); err != nil {
				return err
			}
			id++
		}
		ins.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
		took += time.Since(t0)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return took
}
