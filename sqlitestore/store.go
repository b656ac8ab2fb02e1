// Package sqlitestore implements ledger.Store on SQLite (mattn/go-sqlite3),
// and keeps the node's other durable state in the same file: the mempool's
// pending journal, small named state values (such as the consensus engine's
// last-signed state) and evidence of misbehaviour. It imports only ledger.
//
// # Schema
//
// The file is marked with PRAGMA application_id 0x76636c67 ("vclg") and
// PRAGMA user_version 3:
//
//	blocks(height INTEGER PRIMARY KEY,      -- 0 is the genesis block
//	       hash BLOB NOT NULL,              -- SHA-256 of header, checked at Open
//	       header BLOB NOT NULL,            -- canonical header bytes
//	       first_index INTEGER NOT NULL,    -- log index of the block's first record
//	       cert BLOB,                       -- canonical certificate bytes; NULL if none
//	       attestations BLOB NOT NULL)      -- the block's attestations, see below
//	chunks(first INTEGER PRIMARY KEY,       -- log index of the row's first entry
//	       height INTEGER NOT NULL,         -- block that committed its entries
//	       first_hash INTEGER NOT NULL,     -- StoredHashCount(first)
//	       hashes BLOB NOT NULL,            -- the tlog stored hashes its entries add
//	       data BLOB NOT NULL)              -- up to 32 entries' canonical bytes
//	authorities(idx INTEGER PRIMARY KEY)    -- the log indexes of authority changes
//	keys(h INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (h, idx)) WITHOUT ROWID
//	                                        -- the key index of records 0 to n-1
//	keys_indexed(n INTEGER NOT NULL)        -- one row
//	pending(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, data BLOB NOT NULL)
//	state(name TEXT PRIMARY KEY, data BLOB NOT NULL)
//	evidence(seq INTEGER PRIMARY KEY AUTOINCREMENT, digest BLOB NOT NULL UNIQUE,
//	         kind TEXT NOT NULL, data BLOB NOT NULL, added INTEGER NOT NULL)
//	side(hash BLOB NOT NULL UNIQUE, height INTEGER NOT NULL, data BLOB NOT NULL)
//	                                        -- blocks off the main chain (pow), see reorg.go
//
// The log's entries, key records and authority changes alike, are stored
// up to 32 consecutive entries of one block to a chunks row (chunk.go): a
// row per entry cost about a microsecond of SQLite's per-row work each, on
// append and on every read of many entries. A read of one entry reads its
// row (found by the last first at or below its index) and splits it.
// Authorities reads the authority changes listed in authorities.
//
// The key index is the keys table, whose rows hold 8 bytes of each key's
// SHA-256 (h) and its record's index, and, for the records from
// keys_indexed.n on (the tail), a table in memory that Open reads back from
// the chunks rows; Append adds the tail to the table, sorted, in one
// transaction, once it holds a quarter of the records indexed (at least
// 65,536, at most 262,144). Keys arrive in random order, and indexed one
// by one they dirtied about one index page per record (keyindex.go).
// Lookup, Append's check that no key repeats and FirstCommitted look in
// the tail first and in the table second, confirming each row found for h
// by reading its record's key. Files of versions 1 and 2, which kept a
// records row per entry, are upgraded to version 3 at Open, in one
// transaction (upgrade.go).
//
// Pending ids and data are opaque to the store. The node keeps mempool
// entries under their keys and the validator-set changes collecting votes
// under "vcsledger-authority/1 <change id>"; LoadPendingPrefix reads one
// kind by a range of the id index.
//
// Headers, records and certificates are stored in their canonical encodings
// (ledger's Format) and parsed on read, so reads return exactly what was
// appended. Appending record i adds the tlog stored hashes
// StoredHashCount(i) to StoredHashCount(i+1)-1: the hash of the record at
// level 0 and then one for each complete subtree the record closes. They are
// kept in the chunks row of record i, 32 bytes each in index order, so that
// ReadHashes finds stored hash x (level l, n) in the row of record
// (n+1)<<l - 1, at offset 32*(x - first_hash). Proofs read only the rows
// holding the hashes they need, and only their hashes column.
//
// A block's attestations are one blob, a sequence of entries, each one of
//
//	0x00 uvarint(j) validator[32] signature[64]
//	0x01 uvarint(len) canonical attestation bytes
//
// The first form is an attestation, on the block's chain, of the block's
// record j exactly: its canonical bytes are those fields around record j's,
// so storing them again would triple a record's size on disk. Any other
// attestation is stored whole. Both read back as the Attestation appended.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL. Append writes a
// block, its records, certificate, attestations and stored log hashes in one
// transaction: after a crash at any moment the block is there whole or not
// at all, and when Append returns nil the block is on disk (fsynced).
// AppendWithPending also deletes the block's mempool entries from the
// pending journal in that transaction. PutPending, DeletePending, PutState
// and AddEvidence are durable when they return. All writes go through one
// connection, one at a time; reads use a pool of read-only connections and
// see only committed transactions, so never part of a block.
//
// # Checks at Open
//
// Open refuses, with an error wrapping ledger.ErrCorrupt, a file that is not
// a SQLite database, one that fails SQLite's integrity check (PRAGMA
// integrity_check on files under 64 MiB, quick_check above), one of another
// application, and one whose tail does not verify: the newest blocks'
// headers parse, agree with their stored hashes and link to each other, the
// last chunks row ends the log where the head says, there are as many
// chunks rows as the blocks' entries fill, the head block parses, and its
// records with the older stored hashes give exactly the stored hashes it
// added and the head's log root. Reading the key index's tail splits every
// chunks row from keys_indexed.n on. Damage further back is found when it is read (a read
// of a row that fails to parse, or of a header that fails its stored hash,
// returns an error wrapping ErrCorrupt), and by ledger.Audit, which checks
// everything. Open also reads the rows holding the cached stored hashes
// (see below); one of them missing or malformed leaves the cache empty and
// is reported where it is read.
//
// # Memory and speed
//
// The stored log hashes are kept in memory (hashCache), within a bound
// (WithHashCache, default 64 MiB): every level of the tree from the lowest
// one that fits the bound up. A log of n records has at most 2n stored
// hashes, 64 bytes per record (HashCacheBytesPerRecord), so the default
// holds every level up to about 1M records, and levels 1 and up (half of
// that per record) up to 2M. A proof reads from memory every hash at the
// levels held, and from the file only those below them, which lie in rows
// next to each other, in one query. The cache is filled at Open (reading
// the hashes of the chunks rows that hold level low and up: every row's
// for 2^low <= 32, else one lookup per 2^low records), extended by Append, cut back and
// extended by Reorg, and read again from the file by the first Append
// after anything else changed the head (until then, proofs read the file).
//
// Every connection runs with wal_autocheckpoint = 16384 pages (the WAL
// grows to 64 MiB before its pages are copied back into the database, so
// that an index page many blocks touch is copied once for all of them),
// journal_size_limit = 64 MiB, and mmap_size = 1 GiB (pages are read
// through a read-only memory map).
//
// Store implements ledger.BlockScanner: Audit reads blocks in batches of
// about 8,192 records (two queries per batch) and the records are parsed on
// every CPU while Audit checks the batch before.
package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mattn/go-sqlite3"

	"github.com/vcsledger/vcsledger/ledger"
)

const (
	applicationID = 0x76636c67 // "vclg"
	schemaVersion = 3
)

const schema = `
CREATE TABLE blocks (
	height INTEGER PRIMARY KEY,
	hash BLOB NOT NULL,
	header BLOB NOT NULL,
	first_index INTEGER NOT NULL,
	cert BLOB,
	attestations BLOB NOT NULL
);
` + entriesSchema + `
INSERT INTO keys_indexed VALUES (0);
CREATE TABLE pending (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL UNIQUE,
	data BLOB NOT NULL
);
CREATE TABLE state (
	name TEXT PRIMARY KEY,
	data BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE evidence (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	digest BLOB NOT NULL UNIQUE,
	kind TEXT NOT NULL,
	data BLOB NOT NULL,
	added INTEGER NOT NULL
);
`

// entriesSchema creates the tables of the log's entries and their key
// index (chunk.go, keyindex.go).
const entriesSchema = `
CREATE TABLE chunks (
	first INTEGER PRIMARY KEY,
	height INTEGER NOT NULL,
	first_hash INTEGER NOT NULL,
	hashes BLOB NOT NULL,
	data BLOB NOT NULL
);
CREATE TABLE authorities (idx INTEGER PRIMARY KEY);
CREATE TABLE keys (
	h INTEGER NOT NULL,
	idx INTEGER NOT NULL,
	PRIMARY KEY (h, idx)
) WITHOUT ROWID;
CREATE TABLE keys_indexed (n INTEGER NOT NULL);
`

// A Store is a ledger.Store in one SQLite file, with the node's pending
// journal, state values and evidence. Its methods are safe for concurrent
// use.
type Store struct {
	path string
	w    *sql.DB // one connection: every write
	r    *sql.DB // read-only connections

	wmu  sync.Mutex                    // serializes Append and guards head changes
	head atomic.Pointer[ledger.Header] // nil while the store is empty

	cache hashCache // the upper levels of the stored log hashes
	keys  keyIndex  // the key index's tail (keyindex.go)

	scanRecords int64 // about how many records a ScanBlocks batch reads
}

var _ ledger.Store = (*Store)(nil)

// An IntegrityCheck is the SQLite check Open runs over the whole file.
type IntegrityCheck int

const (
	// CheckAuto runs integrity_check on files under 64 MiB and
	// quick_check on larger ones.
	CheckAuto IntegrityCheck = iota
	// CheckQuick runs PRAGMA quick_check: every page and record is
	// well formed (O(n), without comparing indexes to their tables).
	CheckQuick
	// CheckFull runs PRAGMA integrity_check: quick_check, and every index
	// entry matches its table row.
	CheckFull
)

// autoFullLimit is the file size up to which CheckAuto runs integrity_check.
const autoFullLimit = 64 << 20

type config struct {
	readers    int
	check      IntegrityCheck
	cacheBytes int64 // bound of the hash cache
	keyMerge   int64 // if > 0, the key index tail length that merges
	scanBatch  int64 // if > 0, the records a ScanBlocks batch reads
}

// An Option configures Open.
type Option func(*config)

// WithReaders sets the number of read connections (default 4).
func WithReaders(n int) Option { return func(c *config) { c.readers = n } }

// WithIntegrityCheck sets the check Open runs (default CheckAuto).
func WithIntegrityCheck(c IntegrityCheck) Option { return func(cf *config) { cf.check = c } }

func (c *config) validate() error {
	if c.readers < 1 || c.readers > 64 {
		return fmt.Errorf("sqlitestore: %d readers: want 1 to 64", c.readers)
	}
	if c.check < CheckAuto || c.check > CheckFull {
		return fmt.Errorf("sqlitestore: unknown integrity check %d", c.check)
	}
	if c.cacheBytes < 0 {
		return fmt.Errorf("sqlitestore: hash cache of %d bytes: want 0 or more", c.cacheBytes)
	}
	return nil
}

// driverName is go-sqlite3 with the connection settings the DSN cannot
// carry (see connPragmas), registered once.
const driverName = "sqlite3-vcsledger"

// connPragmas are run on every new connection.
//
// wal_autocheckpoint: a checkpoint copies every page the WAL holds back to
// the database file and fsyncs it. A block's records update the key index
// at up to one page per record, so with SQLite's default (1,000 pages)
// nearly every block's commit also checkpointed; at 16,384 pages (64 MiB)
// a page the key index touches in many blocks is copied back once for all
// of them. journal_size_limit truncates the WAL file back to that size
// after a checkpoint.
//
// mmap_size: pages are read through a read-only memory map instead of
// read(2) into the page cache; the key index is read at random by Append
// and Lookup, and every page by Audit. Writes still go through the WAL.
const connPragmas = `PRAGMA wal_autocheckpoint = 16384;
PRAGMA journal_size_limit = 67108864;
PRAGMA mmap_size = 1073741824;`

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{
		ConnectHook: func(c *sqlite3.SQLiteConn) error {
			_, err := c.Exec(connPragmas, nil)
			return err
		},
	})
}

// dsn returns the go-sqlite3 data source name for path: a writer (BEGIN
// IMMEDIATE, so a write transaction never has to upgrade its lock) or a
// read-only reader. Open it with driverName.
func dsn(path string, readOnly bool) string {
	v := url.Values{}
	v.Set("_journal_mode", "WAL")
	v.Set("_synchronous", "FULL")
	v.Set("_busy_timeout", "10000")
	v.Set("_stmt_cache_size", "32")
	v.Set("_cache_size", "-16384") // KiB: 16 MiB per connection
	if readOnly {
		v.Set("mode", "ro")
	} else {
		v.Set("_txlock", "immediate")
	}
	// A file: URI, so that ?, # and % in the path stay part of it.
	return "file:" + strings.ReplaceAll(url.PathEscape(path), "%2F", "/") + "?" + v.Encode()
}

// Open opens the store at path, creating it if it does not exist, and
// verifies it (see the package comment). A store that fails verification is
// refused with an error wrapping ledger.ErrCorrupt.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{readers: 4, check: CheckAuto, cacheBytes: DefaultHashCacheBytes}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("sqlitestore: open: empty path")
	}
	w, err := sql.Open(driverName, dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{path: path, w: w}
	s.cache.max = cfg.cacheBytes / 32
	s.keys.mergeAt = cfg.keyMerge
	s.scanRecords = cmp.Or(cfg.scanBatch, scanRecords)
	if err := s.init(ctx, cfg); err != nil {
		w.Close()
		return nil, err
	}
	if err := s.createSide(ctx); err != nil { // reorg.go
		w.Close()
		return nil, err
	}
	if err := s.initCosigs(ctx); err != nil { // cosig.go
		w.Close()
		return nil, err
	}
	r, err := sql.Open(driverName, dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(cfg.readers)
	r.SetMaxIdleConns(cfg.readers)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	s.r = r
	if err := s.verifyTail(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.loadKeys(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.loadCache(ctx, s.r); err != nil {
		s.Close()
		return nil, s.tailErr(err, "stored hashes")
	}
	return s, nil
}

// loadKeys reads the key index's tail.
func (s *Store) loadKeys(ctx context.Context) error {
	var size int64
	if h := s.head.Load(); h != nil {
		size = int64(h.LogSize)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.fileErr("key index", err)
	}
	defer tx.Rollback()
	if err := s.keys.load(ctx, tx, size); err != nil {
		if errors.Is(err, errCorruptIndex) || errors.Is(err, ledger.ErrCorrupt) {
			return s.corrupt("%v", err)
		}
		return s.fileErr("key index", err)
	}
	return nil
}

// loadCache fills the hash cache for the head from the file.
func (s *Store) loadCache(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return s.cache.load(ctx, tx, s.head.Load())
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database. The store must not be used afterwards.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlitestore: close %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) corrupt(format string, args ...any) error {
	return fmt.Errorf("sqlitestore: %s: %w: %s", s.path, ledger.ErrCorrupt, fmt.Sprintf(format, args...))
}

// fileErr classifies an error from opening or checking the file: SQLite's
// "not a database" and "malformed" are corruption.
func (s *Store) fileErr(what string, err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt) {
		return s.corrupt("%s: %v", what, err)
	}
	return fmt.Errorf("sqlitestore: %s: %s: %w", s.path, what, err)
}

// tailErr classifies an error of reading the tail: a missing or malformed
// row is corruption, a canceled context or an I/O error is not.
func (s *Store) tailErr(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("sqlitestore: %s: %s: %w", s.path, what, err)
	case errors.Is(err, ledger.ErrCorrupt):
		return fmt.Errorf("sqlitestore: %s: %s: %w", s.path, what, err)
	case errors.Is(err, ledger.ErrNotFound):
		return s.corrupt("%s: %v", what, err)
	}
	return s.fileErr(what, err)
}

// init checks the file and creates the schema in a new one.
func (s *Store) init(ctx context.Context, cfg config) error {
	var appID, ver int
	if err := s.w.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return s.fileErr("open", err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&ver); err != nil {
		return s.fileErr("open", err)
	}
	if appID == 0 && ver == 0 {
		var n int
		if err := s.w.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			return s.fileErr("open", err)
		}
		if n != 0 {
			return s.corrupt("not a vcsledger store: a SQLite database of another application")
		}
		return s.create(ctx)
	}
	switch {
	case appID != applicationID:
		return s.corrupt("not a vcsledger store: application_id %#x", appID)
	case ver > schemaVersion:
		return fmt.Errorf("sqlitestore: %s: schema version %d is newer than this build's %d", s.path, ver, schemaVersion)
	case ver == 1 || ver == 2:
		if err := s.integrity(ctx, cfg.check); err != nil {
			return err
		}
		return s.upgradeRecords(ctx, ver)
	case ver != schemaVersion:
		return s.corrupt("schema version %d", ver)
	}
	return s.integrity(ctx, cfg.check)
}

func (s *Store) create(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fileErr("create schema", err)
	}
	defer tx.Rollback()
	stmts := schema + fmt.Sprintf("PRAGMA application_id = %d; PRAGMA user_version = %d;", applicationID, schemaVersion)
	if _, err := tx.ExecContext(ctx, stmts); err != nil {
		return s.fileErr("create schema", err)
	}
	if err := tx.Commit(); err != nil {
		return s.fileErr("create schema", err)
	}
	return nil
}

// integrity runs SQLite's own check of every page, row and index.
func (s *Store) integrity(ctx context.Context, c IntegrityCheck) error {
	pragma := "quick_check"
	if c == CheckFull {
		pragma = "integrity_check"
	}
	if c == CheckAuto {
		if fi, err := os.Stat(s.path); err == nil && fi.Size() < autoFullLimit {
			pragma = "integrity_check"
		}
	}
	rows, err := s.w.QueryContext(ctx, "PRAGMA "+pragma+"(5)")
	if err != nil {
		return s.fileErr(pragma, err)
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return s.fileErr(pragma, err)
		}
		msgs = append(msgs, strings.ReplaceAll(m, "\n", "; "))
	}
	if err := rows.Err(); err != nil {
		return s.fileErr(pragma, err)
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		return s.corrupt("%s: %s", pragma, strings.Join(msgs, "; "))
	}
	return nil
}

// chunkCountQuery counts the chunks rows and the rows the blocks' entries
// need (?2 to a row), from the blocks' first indexes and the log's size
// ?1.
const chunkCountQuery = `SELECT (SELECT count(*) FROM chunks),
	(SELECT coalesce(sum((n + ?2 - 1) / ?2), 0) FROM (SELECT lead(first_index, 1, ?1) OVER (ORDER BY height) - first_index AS n FROM blocks))`

// tailBlocks is how many of the newest blocks Open re-links.
const tailBlocks = 16

// verifyTail checks the newest blocks and the log they end (see the package
// comment), and loads the head.
func (s *Store) verifyTail(ctx context.Context) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.fileErr("verify", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT height, hash, header, first_index FROM blocks ORDER BY height DESC LIMIT ?", tailBlocks)
	if err != nil {
		return s.fileErr("verify", err)
	}
	var tail []ledger.Header // newest first
	for rows.Next() {
		var height, first int64
		var hash, data []byte
		if err := rows.Scan(&height, &hash, &data, &first); err != nil {
			rows.Close()
			return s.fileErr("verify", err)
		}
		h, err := ledger.ParseHeader(data)
		if err != nil {
			rows.Close()
			return s.corrupt("block %d: header: %v", height, err)
		}
		switch hh := h.Hash(); {
		case h.Height != uint64(height):
			err = fmt.Errorf("row %d holds the header of height %d", height, h.Height)
		case string(hash) != string(hh[:]):
			err = fmt.Errorf("header hashes to %s, stored hash is %x", hh, hash)
		case h.Records > h.LogSize || first != int64(h.LogSize-h.Records):
			err = fmt.Errorf("first record index %d, header says %d records ending the log at %d", first, h.Records, h.LogSize)
		case len(tail) > 0 && (tail[len(tail)-1].Height != h.Height+1 || tail[len(tail)-1].Prev != hh || tail[len(tail)-1].LogSize != h.LogSize+tail[len(tail)-1].Records):
			err = fmt.Errorf("block %d does not link to it", tail[len(tail)-1].Height)
		}
		if err != nil {
			rows.Close()
			return s.corrupt("block %d: %v", height, err)
		}
		tail = append(tail, *h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.fileErr("verify", err)
	}

	// The log's end: the end of the last chunks row.
	var end int64
	switch c, err := readChunkAt(ctx, tx, math.MaxInt64); {
	case errors.Is(err, ledger.ErrNotFound):
	case err != nil:
		return s.tailErr(err, "last entries")
	default:
		end = c.end()
	}
	if len(tail) == 0 {
		if end != 0 {
			return s.corrupt("%d entries without blocks", end)
		}
		return nil
	}
	head := &tail[0]
	if last := &tail[len(tail)-1]; last.Height == 0 && (!last.Prev.IsZero() || last.LogSize != 0) {
		return s.corrupt("block 0 is not a genesis block")
	}
	size := int64(head.LogSize)
	if end != size {
		return s.corrupt("head %d ends the log at %d records; the entries stored end at %d", head.Height, size, end)
	}
	// Every block's entries fill whole chunks rows but its last: as many
	// rows as that are stored.
	var nrows, needed int64
	if err := tx.QueryRowContext(ctx, chunkCountQuery, size, chunkEntries).Scan(&nrows, &needed); err != nil {
		return s.fileErr("verify", err)
	}
	if nrows != needed {
		return s.corrupt("%d chunks rows hold the entries of the blocks, which need %d", nrows, needed)
	}
	// The head block parses, and its records with the older stored hashes
	// give exactly the stored hashes it added and the head's log root.
	b, err := readBlock(ctx, tx, head.Height)
	if err != nil {
		return s.tailErr(err, "head block %d", head.Height)
	}
	if b.Header != *head {
		return s.corrupt("head block %d reads back another header", head.Height)
	}
	old := size - int64(b.Leaves())
	leaves := b.LeafHashes()
	hr := ledger.HashReaderFunc(func(idx []int64) ([]ledger.Hash, error) { return readHashes(ctx, tx, idx) })
	want, root, err := ledger.AppendLog(hr, old, leaves)
	if err != nil {
		return s.tailErr(err, "log before head block %d", head.Height)
	}
	if root != head.LogRoot {
		return s.corrupt("head %d says log root %s; its records and the stored hashes give %s", head.Height, head.LogRoot, root)
	}
	added := make([]int64, len(want))
	for i := range added {
		added[i] = ledger.StoredHashCount(old) + int64(i)
	}
	got, err := readHashes(ctx, tx, added)
	if err != nil {
		return s.tailErr(err, "head block %d: stored hashes", head.Height)
	}
	for i := range got {
		if got[i] != want[i] {
			return s.corrupt("head block %d: stored hash %d is %s; its records give %s", head.Height, added[i], got[i], want[i])
		}
	}
	s.head.Store(head)
	return nil
}
