package sqlitestore

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vcsledger/vcsledger/ledger"
)

// point returns ctx for a statement that reads a few rows through an index
// (microseconds): without its cancellation, which go-sqlite3 watches from
// a goroutine it starts for each statement run with a context that can be
// cancelled. Reads of many rows keep ctx.
func point(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// A queryer is a *sql.DB or a *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readErr wraps an error of reading what: sql.ErrNoRows becomes
// ledger.ErrNotFound, so nothing above the store sees SQL.
func readErr(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlitestore: %s: %w", what, ledger.ErrNotFound)
	}
	return fmt.Errorf("sqlitestore: %s: %w", what, err)
}

// corruptRow reports a stored value that does not parse or does not agree
// with where it is stored.
func corruptRow(err error, format string, args ...any) error {
	return fmt.Errorf("sqlitestore: %s: %w: %w", fmt.Sprintf(format, args...), ledger.ErrCorrupt, err)
}

// parseHeaderAt parses the header stored at height with its stored hash.
func parseHeaderAt(data, hash []byte, height uint64) (*ledger.Header, error) {
	if sum := ledger.SumSHA256(data); !bytes.Equal(sum[:], hash) {
		return nil, corruptRow(fmt.Errorf("header hashes to %s, stored hash is %x", sum, hash), "header %d", height)
	}
	h, err := ledger.ParseHeader(data)
	if err != nil {
		return nil, corruptRow(err, "header %d", height)
	}
	if h.Height != height {
		return nil, corruptRow(fmt.Errorf("row holds height %d", h.Height), "header %d", height)
	}
	return h, nil
}

// Head returns the newest header, or an error wrapping ledger.ErrNotFound
// when the store is empty.
func (s *Store) Head(ctx context.Context) (*ledger.Header, error) {
	h := s.head.Load()
	if h == nil {
		return nil, fmt.Errorf("sqlitestore: head: %w", ledger.ErrNotFound)
	}
	c := *h
	return &c, nil
}

// Header returns the header at height.
func (s *Store) Header(ctx context.Context, height uint64) (*ledger.Header, error) {
	if height > math.MaxInt64 {
		return nil, fmt.Errorf("sqlitestore: header %d: %w", height, ledger.ErrNotFound)
	}
	var data, hash []byte
	if err := s.r.QueryRowContext(point(ctx), "SELECT header, hash FROM blocks WHERE height = ?", int64(height)).Scan(&data, &hash); err != nil {
		return nil, readErr(err, "header %d", height)
	}
	return parseHeaderAt(data, hash, height)
}

// Headers returns up to limit headers from height from on, in order.
func (s *Store) Headers(ctx context.Context, from uint64, limit int) ([]ledger.Header, error) {
	if limit <= 0 || from > math.MaxInt64 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT height, header, hash FROM blocks WHERE height >= ? ORDER BY height LIMIT ?", int64(from), limit)
	if err != nil {
		return nil, readErr(err, "headers from %d", from)
	}
	defer rows.Close()
	var out []ledger.Header
	for rows.Next() {
		var height int64
		var data, hash []byte
		if err := rows.Scan(&height, &data, &hash); err != nil {
			return nil, readErr(err, "headers from %d", from)
		}
		h, err := parseHeaderAt(data, hash, uint64(height))
		if err != nil {
			return nil, err
		}
		out = append(out, *h)
	}
	if err := rows.Err(); err != nil {
		return nil, readErr(err, "headers from %d", from)
	}
	return out, nil
}

// Block returns the whole block at height.
func (s *Store) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	if height > math.MaxInt64 {
		return nil, fmt.Errorf("sqlitestore: block %d: %w", height, ledger.ErrNotFound)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, readErr(err, "block %d", height)
	}
	defer tx.Rollback()
	return readBlock(ctx, tx, height)
}

// blockHead returns the block at height from its row in blocks, without
// its records and attestations: the header, checked against its stored
// hash, the certificate, and the first record's index, checked against the
// header.
func blockHead(height uint64, hdr, hash, cert []byte, first int64) (*ledger.Block, error) {
	h, err := parseHeaderAt(hdr, hash, height)
	if err != nil {
		return nil, err
	}
	b := &ledger.Block{Header: *h}
	if cert != nil {
		if b.Certificate, err = ledger.ParseCertificate(cert); err != nil {
			return nil, corruptRow(err, "block %d: certificate", height)
		}
	}
	if h.Records > ledger.MaxBlockRecords || h.Records > h.LogSize || first != int64(h.LogSize-h.Records) {
		return nil, corruptRow(fmt.Errorf("first record %d, header says %d records ending the log at %d", first, h.Records, h.LogSize), "block %d", height)
	}
	return b, nil
}

// A blockRow is a blocks row's stored bytes.
type blockRow struct {
	header, cert, atts []byte
	first              int64 // the first record's log index
}

// readBlockHead reads the row of the block at height: the block without
// records and attestations (blockHead), and the row's bytes.
func readBlockHead(ctx context.Context, q queryer, height uint64) (*ledger.Block, *blockRow, error) {
	var r blockRow
	var hash []byte
	if err := q.QueryRowContext(ctx, "SELECT header, hash, cert, attestations, first_index FROM blocks WHERE height = ?", int64(height)).Scan(&r.header, &hash, &r.cert, &r.atts, &r.first); err != nil {
		return nil, nil, readErr(err, "block %d", height)
	}
	b, err := blockHead(height, r.header, hash, r.cert, r.first)
	if err != nil {
		return nil, nil, err
	}
	return b, &r, nil
}

// readBlock reads the block at height; q must see one snapshot (a
// transaction), so that the block is read whole.
func readBlock(ctx context.Context, q queryer, height uint64) (*ledger.Block, error) {
	b, row, err := readBlockHead(ctx, q, height)
	if err != nil {
		return nil, err
	}
	atts, first := row.atts, row.first
	h := &b.Header
	b.Records = make([]ledger.Record, 0, h.Records)
	n := 0 // entries read
	if h.Records > 0 {
		rows, err := q.QueryContext(ctx, "SELECT idx, height, data FROM records WHERE idx >= ? AND idx < ? ORDER BY idx", first, first+int64(h.Records))
		if err != nil {
			return nil, readErr(err, "block %d: records", height)
		}
		defer rows.Close()
		for rows.Next() {
			var idx, rh int64
			var data sql.RawBytes // parsed into strings before the next row
			if err := rows.Scan(&idx, &rh, &data); err != nil {
				return nil, readErr(err, "block %d: records", height)
			}
			want := first + int64(n)
			if idx != want || rh != int64(height) {
				return nil, corruptRow(fmt.Errorf("record %d of height %d where record %d belongs", idx, rh, want), "block %d", height)
			}
			n++
			if isAuthority(data) {
				c, err := ledger.ParseAuthorityChange(data)
				if err != nil {
					return nil, corruptRow(err, "block %d: record %d", height, idx)
				}
				b.Authority = append(b.Authority, *c)
				continue
			}
			if len(b.Authority) > 0 {
				return nil, corruptRow(fmt.Errorf("key record after an authority change"), "block %d: record %d", height, idx)
			}
			r, err := ledger.ParseRecord(data)
			if err != nil {
				return nil, corruptRow(err, "block %d: record %d", height, idx)
			}
			b.Records = append(b.Records, *r)
		}
		if err := rows.Err(); err != nil {
			return nil, readErr(err, "block %d: records", height)
		}
		if uint64(n) != h.Records {
			return nil, corruptRow(fmt.Errorf("header says %d records, %d stored", h.Records, n), "block %d", height)
		}
	}
	if b.Attestations, err = decodeAttestations(atts, &b.Header, b.Records); err != nil {
		return nil, corruptRow(err, "block %d: attestations", height)
	}
	return b, nil
}

// isAuthority reports whether a records row holds an authority change.
func isAuthority(data []byte) bool {
	return bytes.HasPrefix(data, []byte(authorityPrefix[:len(authorityPrefix)-1]+"\n"))
}

func scanEntry(data []byte, idx, height int64) (*ledger.Entry, error) {
	if isAuthority(data) {
		c, err := ledger.ParseAuthorityChange(data)
		if err != nil {
			return nil, corruptRow(err, "record %d", idx)
		}
		return &ledger.Entry{Authority: c, Index: idx, Height: uint64(height)}, nil
	}
	r, err := ledger.ParseRecord(data)
	if err != nil {
		return nil, corruptRow(err, "record %d", idx)
	}
	return &ledger.Entry{Record: *r, Index: idx, Height: uint64(height)}, nil
}

// Record returns the record at log index.
func (s *Store) Record(ctx context.Context, index int64) (*ledger.Entry, error) {
	var data []byte
	var height int64
	if err := s.r.QueryRowContext(point(ctx), "SELECT height, data FROM records WHERE idx = ?", index).Scan(&height, &data); err != nil {
		return nil, readErr(err, "record %d", index)
	}
	return scanEntry(data, index, height)
}

// Records returns up to limit records from log index from on, in order.
func (s *Store) Records(ctx context.Context, from int64, limit int) ([]ledger.Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT idx, height, data FROM records WHERE idx >= ? ORDER BY idx LIMIT ?", max(from, 0), limit)
	if err != nil {
		return nil, readErr(err, "records from %d", from)
	}
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() {
		var idx, height int64
		var data []byte
		if err := rows.Scan(&idx, &height, &data); err != nil {
			return nil, readErr(err, "records from %d", from)
		}
		e, err := scanEntry(data, idx, height)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	if err := rows.Err(); err != nil {
		return nil, readErr(err, "records from %d", from)
	}
	return out, nil
}

// Lookup returns the record committed for key: from the key index's tail
// in memory, or through the keys table (keyindex.go).
func (s *Store) Lookup(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	ks := key.String()
	var data []byte
	var idx, height int64
	var err error
	i, inTail, inTable := s.keys.get(ks)
	switch {
	case inTail:
		idx = i
		err = s.r.QueryRowContext(point(ctx), "SELECT height, data FROM records WHERE idx = ?", idx).Scan(&height, &data)
	case !inTable:
		err = sql.ErrNoRows
	default:
		err = s.r.QueryRowContext(point(ctx), "SELECT r.idx, r.height, r.data FROM keys AS k JOIN records AS r ON r.idx = k.idx WHERE k.key = ?", ks).Scan(&idx, &height, &data)
	}
	if err != nil {
		return nil, readErr(err, "key %s", key)
	}
	e, err := scanEntry(data, idx, height)
	if err != nil {
		return nil, err
	}
	if e.Authority != nil || e.Record.Key != key {
		if inTail && s.keys.stale(ks, idx) {
			// A reorg replaced the record between the two reads.
			return nil, fmt.Errorf("sqlitestore: key %s: %w", key, ledger.ErrNotFound)
		}
		return nil, corruptRow(fmt.Errorf("row holds another key"), "key %s at %d", key, idx)
	}
	return e, nil
}

var _ ledger.KeyChecker = (*Store)(nil)

// FirstCommitted returns the position in keys of the first key committed,
// or -1 (see ledger.KeyChecker): the key index's tail in memory, then one
// query that probes the keys table for each key without reading a record.
// A block may hold 100,000 keys, so the query keeps ctx's cancellation
// (see point).
func (s *Store) FirstCommitted(ctx context.Context, keys []ledger.Key) (int, error) {
	list := make([]string, len(keys))
	for i, k := range keys {
		list[i] = k.String()
	}
	first, maybe, at := s.keys.firstInTail(list)
	i, err := firstInTable(ctx, s.r, maybe)
	switch {
	case err != nil:
		return 0, readErr(err, "%d keys", len(keys))
	case i >= 0:
		return at[i], nil
	}
	return first, nil
}

// Authorities returns every authority change committed, in log order:
// those of the key index's tail, and the rest through the keys table
// (their keys share a prefix no key record has).
func (s *Store) Authorities(ctx context.Context) ([]ledger.AuthorityEntry, error) {
	// The tail first: a merge that commits between the two reads leaves
	// its changes in both, never in neither.
	tail := s.keys.tailAuthorities()
	var out []ledger.AuthorityEntry
	scan := func(q string, args ...any) error {
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return readErr(err, "authority changes")
		}
		defer rows.Close()
		for rows.Next() {
			var idx, height int64
			var data []byte
			if err := rows.Scan(&idx, &height, &data); err != nil {
				return readErr(err, "authority changes")
			}
			c, err := ledger.ParseAuthorityChange(data)
			if err != nil {
				return corruptRow(err, "record %d", idx)
			}
			out = append(out, ledger.AuthorityEntry{Change: *c, Index: idx, Height: uint64(height)})
		}
		if err := rows.Err(); err != nil {
			return readErr(err, "authority changes")
		}
		return nil
	}
	if err := scan("SELECT r.idx, r.height, r.data FROM keys AS k JOIN records AS r ON r.idx = k.idx WHERE k.key >= ? AND k.key < ?",
		authorityPrefix, authorityPrefix[:len(authorityPrefix)-1]+"!"); err != nil {
		return nil, err
	}
	for _, idx := range tail {
		if err := scan("SELECT idx, height, data FROM records WHERE idx = ? AND key = ?", idx, authorityKey(idx)); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b ledger.AuthorityEntry) int { return cmp.Compare(a.Index, b.Index) })
	return slices.CompactFunc(out, func(a, b ledger.AuthorityEntry) bool { return a.Index == b.Index }), nil
}

// ReadHashes returns the stored log hashes at the given tlog stored-hash
// indexes, in order: those at the levels the hash cache holds from memory,
// the others from the record rows that hold them (see readHashes), in one
// query unless more than 500 rows are needed, then in one transaction.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]ledger.Hash, error) {
	if len(indexes) == 0 {
		return []ledger.Hash{}, nil
	}
	out := make([]ledger.Hash, len(indexes))
	miss := s.cache.get(s.head.Load(), indexes, out)
	if len(miss) == 0 {
		return out, nil
	}
	idx := make([]int64, len(miss))
	for j, i := range miss {
		idx[j] = indexes[i]
	}
	if len(idx) <= fewHashes {
		if hs, ok := readFew(ctx, s.r, idx); ok {
			for j, i := range miss {
				out[i] = hs[j]
			}
			return out, nil
		}
	}
	var q queryer = s.r
	if len(idx) > inChunk {
		tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return nil, readErr(err, "read hashes")
		}
		defer tx.Rollback()
		q = tx
	}
	hs, err := readHashes(ctx, q, idx)
	if err != nil {
		return nil, err
	}
	for j, i := range miss {
		out[i] = hs[j]
	}
	return out, nil
}

// fewHashes is the most hashes readFew reads.
const fewHashes = 8

// fewQueries[k] is readFew's query for k hashes: one row, the k hashes
// concatenated, each read by a rowid lookup of its row that checks the
// row's length; NULL when a row is missing or of the wrong length.
var fewQueries = func() []string {
	qs := make([]string, fewHashes+1)
	for k := 1; k <= fewHashes; k++ {
		parts := make([]string, k)
		for i := range parts {
			parts[i] = "(SELECT CASE WHEN length(hashes) = ? THEN substr(hashes, ?, 32) END FROM records WHERE idx = ?)"
		}
		qs[k] = "SELECT " + strings.Join(parts, " || ")
	}
	return qs
}()

// readFew reads a few stored hashes (a proof's, below the cached levels) in
// one query of one row. It reports false when it cannot (an index no log
// has, a missing or malformed row), for readHashes to read them again and
// say what is wrong.
func readFew(ctx context.Context, q queryer, indexes []int64) ([]ledger.Hash, bool) {
	args := make([]any, 0, 3*len(indexes))
	for _, x := range indexes {
		rec, level := hashSlot(x)
		if rec < 0 {
			return nil, false
		}
		args = append(args, 32*(ledger.StoredHashCount(rec+1)-ledger.StoredHashCount(rec)), 1+32*level, rec)
	}
	var buf []byte
	if err := q.QueryRowContext(point(ctx), fewQueries[len(indexes)], args...).Scan(&buf); err != nil || len(buf) != 32*len(indexes) {
		return nil, false
	}
	out := make([]ledger.Hash, len(indexes))
	for i := range out {
		out[i] = ledger.Hash(buf[32*i : 32*i+32])
	}
	return out, true
}

// maxStoredHash bounds the stored-hash indexes hashSlot maps (a log of
// 2^55 records), well inside what tlog's index arithmetic handles without
// overflowing.
const maxStoredHash = 1 << 56

// hashSlot says where stored hash x is kept: in record rec's row at level.
// For x < 0, or so large that no log could have it, rec is -1.
func hashSlot(x int64) (rec int64, level int) {
	if x < 0 || x >= maxStoredHash {
		return -1, 0
	}
	level, n := tlog.SplitStoredHashIndex(x)
	return (n+1)<<uint(level) - 1, level
}

// inChunk is how many rows readHashes asks for in one IN query, well under
// SQLite's limit on bound parameters.
const inChunk = 500

// readHashes reads the stored hashes at indexes from the record rows that
// hold them: one range query when those rows are close together (a
// block's new hashes), else IN queries of up to inChunk rows (a proof's,
// spread over the log; faster than a query per row, measured). q must see
// one snapshot when more than one query is needed.
func readHashes(ctx context.Context, q queryer, indexes []int64) ([]ledger.Hash, error) {
	out := make([]ledger.Hash, len(indexes))
	lo, hi := int64(math.MaxInt64), int64(-1)
	for _, x := range indexes {
		rec, _ := hashSlot(x)
		if rec < 0 {
			return nil, fmt.Errorf("sqlitestore: stored hash %d: %w", x, ledger.ErrNotFound)
		}
		lo, hi = min(lo, rec), max(hi, rec)
	}
	// rows[rec] is record rec's stored hashes, once read.
	rows := make(map[int64][]byte, len(indexes))
	scan := func(r *sql.Rows) error {
		defer r.Close()
		for r.Next() {
			var idx int64
			var hs []byte
			if err := r.Scan(&idx, &hs); err != nil {
				return readErr(err, "read hashes")
			}
			if want := 32 * (ledger.StoredHashCount(idx+1) - ledger.StoredHashCount(idx)); int64(len(hs)) != want {
				return corruptRow(fmt.Errorf("%d bytes of stored hashes, want %d", len(hs), want), "record %d", idx)
			}
			rows[idx] = hs
		}
		if err := r.Err(); err != nil {
			return readErr(err, "read hashes")
		}
		return nil
	}
	if hi-lo < int64(2*len(indexes)) {
		r, err := q.QueryContext(ctx, "SELECT idx, hashes FROM records WHERE idx BETWEEN ? AND ?", lo, hi)
		if err != nil {
			return nil, readErr(err, "read hashes")
		}
		if err := scan(r); err != nil {
			return nil, err
		}
	} else {
		// A proof's hashes lie in rows far apart: one query for them all.
		recs := make([]any, 0, len(indexes))
		seen := make(map[int64]bool, len(indexes))
		for _, x := range indexes {
			if rec, _ := hashSlot(x); !seen[rec] {
				seen[rec] = true
				recs = append(recs, rec)
			}
		}
		for len(recs) > 0 {
			part := recs[:min(inChunk, len(recs))]
			recs = recs[len(part):]
			r, err := q.QueryContext(ctx, "SELECT idx, hashes FROM records WHERE idx IN (?"+strings.Repeat(",?", len(part)-1)+")", part...)
			if err != nil {
				return nil, readErr(err, "read hashes")
			}
			if err := scan(r); err != nil {
				return nil, err
			}
		}
	}
	var missing []string
	for i, x := range indexes {
		rec, level := hashSlot(x)
		hs, ok := rows[rec]
		if !ok {
			if len(missing) < 5 {
				missing = append(missing, fmt.Sprint(x))
			}
			continue
		}
		copy(out[i][:], hs[32*level:])
	}
	if missing != nil {
		return nil, fmt.Errorf("sqlitestore: stored hashes %s: %w", strings.Join(missing, ", "), ledger.ErrNotFound)
	}
	return out, nil
}
