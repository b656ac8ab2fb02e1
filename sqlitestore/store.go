// Package sqlitestore implements ledger.Store on SQLite (mattn/go-sqlite3),
// plus the node's other durable state in the same file: the mempool's
// pending journal, small named state values (the consensus engine's
// last-signed state) and evidence.
//
// Schema (user_version 1):
//
//	blocks(height INTEGER PRIMARY KEY, hash BLOB UNIQUE, header BLOB, cert BLOB, first_index INTEGER)
//	records(idx INTEGER PRIMARY KEY, key TEXT UNIQUE, height INTEGER, data BLOB)
//	attestations(height INTEGER, seq INTEGER, data BLOB, PRIMARY KEY(height, seq))
//	hashes(idx INTEGER PRIMARY KEY, h BLOB)         -- tlog stored hashes
//	pending(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, data BLOB)
//	state(name TEXT PRIMARY KEY, data BLOB)
//	evidence(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, data BLOB, added INTEGER, UNIQUE(kind, data))
//
// Every value is stored in its canonical encoding (ledger's Format) and
// parsed on read, so a read returns exactly what was appended.
//
// Durability: the database runs in WAL mode with synchronous=FULL. Append
// writes a block, its records, attestations and stored log hashes in one
// transaction: after a crash at any moment the block is there whole or not at
// all, and once Append returns it is on disk. Writes go through one
// connection; reads use a pool and see only committed transactions.
//
// Open checks the file (PRAGMA quick_check) and the chain's tail (the head
// parses, counts agree, the last blocks link, the log root recomputed from
// the stored hashes matches the head); a store failing either is refused
// with an error wrapping ledger.ErrCorrupt.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/mattn/go-sqlite3"

	"github.com/vcsledger/vcsledger/ledger"
)

const schemaVersion = 1

const schema = `
CREATE TABLE IF NOT EXISTS blocks (
	height INTEGER PRIMARY KEY,
	hash BLOB NOT NULL UNIQUE,
	header BLOB NOT NULL,
	cert BLOB,
	first_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
	idx INTEGER PRIMARY KEY,
	key TEXT NOT NULL UNIQUE,
	height INTEGER NOT NULL,
	data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS attestations (
	height INTEGER NOT NULL,
	seq INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (height, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hashes (
	idx INTEGER PRIMARY KEY,
	h BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	id TEXT NOT NULL UNIQUE,
	data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
	name TEXT PRIMARY KEY,
	data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	kind TEXT NOT NULL,
	data BLOB NOT NULL,
	added INTEGER NOT NULL,
	UNIQUE (kind, data)
);
`

// A Store is a ledger.Store in one SQLite file.
type Store struct {
	path string
	w    *sql.DB // one connection: all writes
	r    *sql.DB // readers

	mu   sync.Mutex     // serializes writes and guards head
	head *ledger.Header // nil when empty
}

var _ ledger.Store = (*Store)(nil)

func dsn(path string, readOnly bool) string {
	v := url.Values{}
	v.Set("_journal_mode", "WAL")
	v.Set("_synchronous", "FULL")
	v.Set("_busy_timeout", "10000")
	v.Set("_foreign_keys", "0")
	if readOnly {
		v.Set("mode", "ro")
	} else {
		v.Set("_txlock", "immediate")
	}
	return "file:" + url.PathEscape(path) + "?" + v.Encode()
}

// Open opens (creating if needed) the store at path and verifies it.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlitestore: empty path")
	}
	w, err := sql.Open("sqlite3", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	s := &Store{path: path, w: w}
	if err := s.init(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite3", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s.r = r
	if err := s.verifyTail(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func corrupt(path string, format string, args ...any) error {
	return fmt.Errorf("sqlitestore: %s: %w: %s", path, ledger.ErrCorrupt, fmt.Sprintf(format, args...))
}

func (s *Store) init(ctx context.Context) error {
	var check string
	if err := s.w.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&check); err != nil {
		var se sqlite3.Error
		if errors.As(err, &se) && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt) {
			return corrupt(s.path, "%v", err)
		}
		return fmt.Errorf("sqlitestore: %s: %w", s.path, err)
	}
	if check != "ok" {
		return corrupt(s.path, "quick_check: %s", check)
	}
	var ver int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&ver); err != nil {
		return fmt.Errorf("sqlitestore: %s: %w", s.path, err)
	}
	switch ver {
	case 0:
		var n int
		if err := s.w.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
			return fmt.Errorf("sqlitestore: %s: %w", s.path, err)
		}
		if n != 0 {
			return corrupt(s.path, "not a vcsledger store (tables without a schema version)")
		}
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("sqlitestore: create schema: %w", err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return err
		}
		return tx.Commit()
	case schemaVersion:
		return nil
	default:
		return fmt.Errorf("sqlitestore: %s: schema version %d, this build knows %d", s.path, ver, schemaVersion)
	}
}

// tailCheck is how many blocks at the tail Open re-links.
const tailCheck = 16

func (s *Store) verifyTail(ctx context.Context) error {
	var height sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT max(height) FROM blocks").Scan(&height); err != nil {
		return corrupt(s.path, "%v", err)
	}
	if !height.Valid {
		var n int
		if err := s.r.QueryRowContext(ctx, "SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM hashes)").Scan(&n); err != nil {
			return corrupt(s.path, "%v", err)
		}
		if n != 0 {
			return corrupt(s.path, "records or hashes without blocks")
		}
		return nil
	}
	top := uint64(height.Int64)
	from := uint64(0)
	if top >= tailCheck {
		from = top - tailCheck + 1
	}
	var prev *ledger.Header
	for h := from; h <= top; h++ {
		hd, err := s.readHeader(ctx, s.r, h)
		if err != nil {
			return corrupt(s.path, "height %d: %v", h, err)
		}
		if prev != nil && (hd.Prev != prev.Hash() || hd.Height != prev.Height+1 || hd.LogSize != prev.LogSize+hd.Records) {
			return corrupt(s.path, "height %d does not link to height %d", h, prev.Height)
		}
		prev = hd
	}
	head := prev
	var nrec, nhash, maxrec int64
	if err := s.r.QueryRowContext(ctx, "SELECT count(*), coalesce(max(idx)+1, 0) FROM records").Scan(&nrec, &maxrec); err != nil {
		return corrupt(s.path, "%v", err)
	}
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM hashes").Scan(&nhash); err != nil {
		return corrupt(s.path, "%v", err)
	}
	if uint64(nrec) != head.LogSize || uint64(maxrec) != head.LogSize {
		return corrupt(s.path, "head says %d records, table has %d", head.LogSize, nrec)
	}
	if want := ledger.StoredHashCount(int64(head.LogSize)); nhash != want {
		return corrupt(s.path, "%d stored hashes, log of %d needs %d", nhash, head.LogSize, want)
	}
	root, err := ledger.LogRoot(ledger.HashReaderOf(ctx, s), int64(head.LogSize))
	if err != nil {
		return corrupt(s.path, "log root: %v", err)
	}
	if root != head.LogRoot {
		return corrupt(s.path, "stored hashes give log root %s, head %d says %s", root, head.Height, head.LogRoot)
	}
	s.head = head
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlitestore: %s: %w", fmt.Sprintf(format, args...), ledger.ErrNotFound)
	}
	return fmt.Errorf("sqlitestore: %s: %w", fmt.Sprintf(format, args...), err)
}

func (s *Store) readHeader(ctx context.Context, q queryer, height uint64) (*ledger.Header, error) {
	var data []byte
	if err := q.QueryRowContext(ctx, "SELECT header FROM blocks WHERE height = ?", int64(height)).Scan(&data); err != nil {
		return nil, notFound(err, "header %d", height)
	}
	h, err := ledger.ParseHeader(data)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: header %d: %w: %w", height, ledger.ErrCorrupt, err)
	}
	if h.Height != height {
		return nil, fmt.Errorf("sqlitestore: header %d: %w: row holds height %d", height, ledger.ErrCorrupt, h.Height)
	}
	return h, nil
}

// Head returns the newest header.
func (s *Store) Head(ctx context.Context) (*ledger.Header, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == nil {
		return nil, fmt.Errorf("sqlitestore: head: %w", ledger.ErrNotFound)
	}
	h := *s.head
	return &h, nil
}

// Header returns the header at height.
func (s *Store) Header(ctx context.Context, height uint64) (*ledger.Header, error) {
	return s.readHeader(ctx, s.r, height)
}

// Headers returns up to limit headers from height from on.
func (s *Store) Headers(ctx context.Context, from uint64, limit int) ([]ledger.Header, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT header FROM blocks WHERE height >= ? ORDER BY height LIMIT ?", int64(from), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: headers: %w", err)
	}
	defer rows.Close()
	var out []ledger.Header
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("sqlitestore: headers: %w", err)
		}
		h, err := ledger.ParseHeader(data)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: headers: %w: %w", ledger.ErrCorrupt, err)
		}
		out = append(out, *h)
	}
	return out, rows.Err()
}

// Block returns the whole block at height.
func (s *Store) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: block %d: %w", height, err)
	}
	defer tx.Rollback()
	var hdr, cert []byte
	var first int64
	if err := tx.QueryRowContext(ctx, "SELECT header, cert, first_index FROM blocks WHERE height = ?", int64(height)).Scan(&hdr, &cert, &first); err != nil {
		return nil, notFound(err, "block %d", height)
	}
	bad := func(err error) error {
		return fmt.Errorf("sqlitestore: block %d: %w: %w", height, ledger.ErrCorrupt, err)
	}
	h, err := ledger.ParseHeader(hdr)
	if err != nil {
		return nil, bad(err)
	}
	b := &ledger.Block{Header: *h}
	if cert != nil {
		if b.Certificate, err = ledger.ParseCertificate(cert); err != nil {
			return nil, bad(err)
		}
	}
	if h.Records > 0 {
		b.Records = make([]ledger.Record, 0, h.Records)
		rows, err := tx.QueryContext(ctx, "SELECT data FROM records WHERE idx >= ? AND idx < ? ORDER BY idx", first, first+int64(h.Records))
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: block %d: %w", height, err)
		}
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				rows.Close()
				return nil, err
			}
			r, err := ledger.ParseRecord(data)
			if err != nil {
				rows.Close()
				return nil, bad(err)
			}
			b.Records = append(b.Records, *r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		if uint64(len(b.Records)) != h.Records {
			return nil, bad(fmt.Errorf("header says %d records, %d stored", h.Records, len(b.Records)))
		}
	}
	rows, err := tx.QueryContext(ctx, "SELECT data FROM attestations WHERE height = ? ORDER BY seq", int64(height))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: block %d: %w", height, err)
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, err
		}
		a, err := ledger.ParseAttestation(data)
		if err != nil {
			return nil, bad(err)
		}
		b.Attestations = append(b.Attestations, *a)
	}
	return b, rows.Err()
}

func scanEntry(data []byte, idx, height int64) (*ledger.Entry, error) {
	r, err := ledger.ParseRecord(data)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: record %d: %w: %w", idx, ledger.ErrCorrupt, err)
	}
	return &ledger.Entry{Record: *r, Index: idx, Height: uint64(height)}, nil
}

// Record returns the record at log index.
func (s *Store) Record(ctx context.Context, index int64) (*ledger.Entry, error) {
	var data []byte
	var height int64
	if err := s.r.QueryRowContext(ctx, "SELECT data, height FROM records WHERE idx = ?", index).Scan(&data, &height); err != nil {
		return nil, notFound(err, "record %d", index)
	}
	return scanEntry(data, index, height)
}

// Records returns up to limit records from index from on.
func (s *Store) Records(ctx context.Context, from int64, limit int) ([]ledger.Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT idx, data, height FROM records WHERE idx >= ? ORDER BY idx LIMIT ?", from, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: records: %w", err)
	}
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() {
		var idx, height int64
		var data []byte
		if err := rows.Scan(&idx, &data, &height); err != nil {
			return nil, err
		}
		e, err := scanEntry(data, idx, height)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}

// Lookup returns the record committed for key.
func (s *Store) Lookup(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	var data []byte
	var idx, height int64
	if err := s.r.QueryRowContext(ctx, "SELECT idx, data, height FROM records WHERE key = ?", key.String()).Scan(&idx, &data, &height); err != nil {
		return nil, notFound(err, "key %s", key)
	}
	e, err := scanEntry(data, idx, height)
	if err != nil {
		return nil, err
	}
	if e.Record.Key != key {
		return nil, fmt.Errorf("sqlitestore: key %s: %w: row holds %s", key, ledger.ErrCorrupt, e.Record.Key)
	}
	return e, nil
}

// ReadHashes returns the stored log hashes at indexes, in order.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]ledger.Hash, error) {
	out := make([]ledger.Hash, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	pos := make(map[int64][]int, len(indexes))
	for i, x := range indexes {
		pos[x] = append(pos[x], i)
	}
	const chunk = 500
	uniq := make([]int64, 0, len(pos))
	for x := range pos {
		uniq = append(uniq, x)
	}
	found := 0
	for len(uniq) > 0 {
		n := min(chunk, len(uniq))
		part := uniq[:n]
		uniq = uniq[n:]
		args := make([]any, n)
		for i, x := range part {
			args[i] = x
		}
		q := "SELECT idx, h FROM hashes WHERE idx IN (?" + strings.Repeat(",?", n-1) + ")"
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: read hashes: %w", err)
		}
		for rows.Next() {
			var idx int64
			var h []byte
			if err := rows.Scan(&idx, &h); err != nil {
				rows.Close()
				return nil, err
			}
			if len(h) != len(ledger.Hash{}) {
				rows.Close()
				return nil, fmt.Errorf("sqlitestore: stored hash %d: %w: %d bytes", idx, ledger.ErrCorrupt, len(h))
			}
			for _, i := range pos[idx] {
				copy(out[i][:], h)
				found++
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	if found != len(indexes) {
		return nil, fmt.Errorf("sqlitestore: read hashes: %w: %d of %d indexes missing", ledger.ErrNotFound, len(indexes)-found, len(indexes))
	}
	return out, nil
}
