package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
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
	return inBlockTx(ctx, s, height, readBlock)
}

// inBlockTx runs read for the block at height in a read transaction, so
// that it sees the block whole.
func inBlockTx[T any](ctx context.Context, s *Store, height uint64, read func(context.Context, queryer, uint64) (T, error)) (T, error) {
	var zero T
	if height > math.MaxInt64 {
		return zero, fmt.Errorf("sqlitestore: block %d: %w", height, ledger.ErrNotFound)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return zero, readErr(err, "block %d", height)
	}
	defer tx.Rollback()
	return read(ctx, tx, height)
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
	err = scanBlockEntries(ctx, q, height, first, int64(h.Records), func(idx int64, data, _ []byte) error {
		var r ledger.Record
		c, err := parseEntry(string(data), &r)
		switch {
		case err != nil:
			return corruptRow(err, "block %d: record %d", height, idx)
		case c != nil:
			b.Authority = append(b.Authority, *c)
		case len(b.Authority) > 0:
			return corruptRow(fmt.Errorf("key record after an authority change"), "block %d: record %d", height, idx)
		default:
			b.Records = append(b.Records, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if b.Attestations, err = decodeAttestations(atts, &b.Header, b.Records); err != nil {
		return nil, corruptRow(err, "block %d: attestations", height)
	}
	return b, nil
}

// isAuthority reports whether an entry's bytes are an authority change's.
func isAuthority(data []byte) bool {
	return bytes.HasPrefix(data, []byte(authorityMagic))
}

// parseEntry parses a log entry's stored bytes, held in text: an
// authority change, which it returns, or else a key record, into *r,
// whose fields are substrings of text.
func parseEntry(text string, r *ledger.Record) (*ledger.AuthorityChange, error) {
	if strings.HasPrefix(text, authorityMagic) {
		return ledger.ParseAuthorityChange([]byte(text))
	}
	var err error
	*r, err = ledger.ParseRecordString(text)
	return nil, err
}

// scanEntry returns log entry idx of the block at height from its stored
// bytes.
func scanEntry(data []byte, idx, height int64) (*ledger.Entry, error) {
	e := &ledger.Entry{Index: idx, Height: uint64(height)}
	c, err := parseEntry(string(data), &e.Record)
	if err != nil {
		return nil, corruptRow(err, "record %d", idx)
	}
	e.Authority = c
	return e, nil
}

// Record returns the record at log index.
func (s *Store) Record(ctx context.Context, index int64) (*ledger.Entry, error) {
	if index < 0 {
		return nil, fmt.Errorf("sqlitestore: record %d: %w", index, ledger.ErrNotFound)
	}
	data, height, err := readEntry(ctx, s.r, index)
	if err != nil {
		return nil, err
	}
	return scanEntry(data, index, height)
}

// Records returns up to limit records from log index from on, in order.
func (s *Store) Records(ctx context.Context, from int64, limit int) ([]ledger.Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	from = max(from, 0)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, readErr(err, "records from %d", from)
	}
	defer tx.Rollback()
	var out []ledger.Entry
	err = scanChunks(ctx, tx, from, from+int64(limit), func(c *chunkRow[[]byte]) error {
		for i, data := range c.entries {
			idx := c.first + int64(i)
			if idx < from || len(out) == limit {
				continue
			}
			e, err := scanEntry(data, idx, c.height)
			if err != nil {
				return err
			}
			out = append(out, *e)
		}
		return nil
	})
	if errors.Is(err, ledger.ErrNotFound) {
		// Records past the end of the log are not an error.
		err = nil
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Lookup returns the record committed for key: from the key index's tail
// in memory, or through the keys table (keyindex.go).
func (s *Store) Lookup(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	ks := key.String()
	idx, inTail, h, inTable := s.keys.get(ks)
	switch {
	case inTail:
		data, height, err := readEntry(ctx, s.r, idx)
		if err != nil {
			return nil, err
		}
		e, err := scanEntry(data, idx, height)
		if err != nil {
			return nil, err
		}
		if e.Authority == nil && e.Record.Key == key {
			return e, nil
		}
		if s.keys.stale(ks, idx) {
			// A reorg replaced the record between the two reads.
			return nil, fmt.Errorf("sqlitestore: key %s: %w", key, ledger.ErrNotFound)
		}
		return nil, corruptRow(fmt.Errorf("holds another key"), "key %s: record %d", key, idx)
	case inTable:
		// The rows for h, each with its record's chunks row: one query.
		rows, err := s.r.QueryContext(point(ctx), "SELECT k.idx, "+chunkColumns+" FROM keys AS k JOIN chunks AS c ON c.first = (SELECT d.first FROM chunks AS d WHERE d.first <= k.idx ORDER BY d.first DESC LIMIT 1) WHERE k.h = ?", h)
		if err != nil {
			return nil, readErr(err, "key %s", key)
		}
		defer rows.Close()
		var c chunkRow[[]byte]
		for rows.Next() {
			var idx, first, height, firstHash int64
			var hashes, data sql.RawBytes
			if err := rows.Scan(&idx, &first, &height, &firstHash, &hashes, &data); err != nil {
				return nil, readErr(err, "key %s", key)
			}
			if err := c.split(first, height, firstHash, hashes, data); err != nil {
				return nil, err
			}
			if idx >= c.end() {
				return nil, corruptRow(errors.New("the key index points to it"), "record %d", idx)
			}
			if k, ok := ledger.EncodedKey(c.entries[idx-first]); ok && k == ks {
				return scanEntry(c.entries[idx-first], idx, height)
			}
		}
		if err := rows.Err(); err != nil {
			return nil, readErr(err, "key %s", key)
		}
	}
	return nil, fmt.Errorf("sqlitestore: key %s: %w", key, ledger.ErrNotFound)
}

var _ ledger.KeyChecker = (*Store)(nil)

// FirstCommitted returns the position in keys of the first key committed,
// or -1 (see ledger.KeyChecker): the key index's tail in memory, then one
// query that probes the keys table for the others the filters let
// through, reading only the records it finds rows for. A block may hold
// 100,000 keys, so the query keeps ctx's cancellation (see point).
func (s *Store) FirstCommitted(ctx context.Context, keys []ledger.Key) (int, error) {
	list := make([]string, len(keys))
	for i, k := range keys {
		list[i] = k.String()
	}
	first, maybe := s.keys.firstInTail(list)
	if len(maybe) == 0 {
		return first, nil
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, readErr(err, "%d keys", len(keys))
	}
	defer tx.Rollback()
	p, _, err := firstInTable(ctx, tx, maybe)
	switch {
	case err != nil:
		return 0, readErr(err, "%d keys", len(keys))
	case p != nil:
		return p.at, nil
	}
	return first, nil
}

// Authorities returns every authority change committed, in log order,
// through the authorities table.
func (s *Store) Authorities(ctx context.Context) ([]ledger.AuthorityEntry, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, readErr(err, "authority changes")
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT idx FROM authorities ORDER BY idx")
	if err != nil {
		return nil, readErr(err, "authority changes")
	}
	var idxs []int64
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx); err != nil {
			rows.Close()
			return nil, readErr(err, "authority changes")
		}
		idxs = append(idxs, idx)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, readErr(err, "authority changes")
	}
	var out []ledger.AuthorityEntry
	for _, idx := range idxs {
		data, height, err := readEntry(ctx, tx, idx)
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, corruptRow(errors.New("listed as an authority change"), "record %d", idx)
		}
		if err != nil {
			return nil, err
		}
		if !isAuthority(data) {
			return nil, corruptRow(errors.New("listed as an authority change, holds a key record"), "record %d", idx)
		}
		c, err := ledger.ParseAuthorityChange(data)
		if err != nil {
			return nil, corruptRow(err, "record %d", idx)
		}
		out = append(out, ledger.AuthorityEntry{Change: *c, Index: idx, Height: uint64(height)})
	}
	return out, nil
}

// ReadHashes returns the stored log hashes at the given tlog stored-hash
// indexes, in order: those at the levels the hash cache holds from memory,
// the others from the chunks rows that hold them (see readHashes), in one
// query.
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
	var hs []ledger.Hash
	ok := false
	if len(idx) <= fewHashes {
		hs, ok = readFew(ctx, s.r, idx)
	}
	if !ok {
		var err error
		if hs, err = readHashes(ctx, s.r, idx); err != nil {
			return nil, err
		}
	}
	for j, i := range miss {
		out[i] = hs[j]
	}
	return out, nil
}

// fewHashes is the most hashes readFew reads.
const fewHashes = 8

// fewQueries[k] is readFew's query for k hashes: for each, the row of the
// chunks row holding its record (one lookup), with the hash cut from the
// row's stored hashes.
var fewQueries = func() []string {
	qs := make([]string, fewHashes+1)
	for k := 1; k <= fewHashes; k++ {
		parts := make([]string, k)
		for i := range parts {
			parts[i] = fmt.Sprintf("SELECT * FROM (SELECT %d, first, first_hash, length(hashes), substr(hashes, 1 + 32 * (? - first_hash), 32) FROM chunks WHERE first <= ? ORDER BY first DESC LIMIT 1)", i)
		}
		qs[k] = strings.Join(parts, " UNION ALL ")
	}
	return qs
}()

// readFew reads a few stored hashes (a proof's, below the cached levels) in
// one query. It reports false when it cannot (an index no log has, a
// missing or malformed row), for readHashes to read them again and say
// what is wrong.
func readFew(ctx context.Context, q queryer, indexes []int64) ([]ledger.Hash, bool) {
	args := make([]any, 0, 2*len(indexes))
	for _, x := range indexes {
		rec, _ := hashSlot(x)
		if rec < 0 {
			return nil, false
		}
		args = append(args, x, rec)
	}
	rows, err := q.QueryContext(point(ctx), fewQueries[len(indexes)], args...)
	if err != nil {
		return nil, false
	}
	defer rows.Close()
	out := make([]ledger.Hash, len(indexes))
	got := 0
	for rows.Next() {
		var i int
		var first, base, n int64
		var h sql.RawBytes
		if err := rows.Scan(&i, &first, &base, &n, &h); err != nil || i < 0 || i >= len(indexes) {
			return nil, false
		}
		x := indexes[i]
		rec, _ := hashSlot(x)
		if base != ledger.StoredHashCount(first) || first > rec || x < base || 32*(x-base+1) > n || len(h) != 32 {
			return nil, false
		}
		out[i] = ledger.Hash(h)
		got++
	}
	if rows.Err() != nil || got != len(indexes) {
		return nil, false
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

// readHashes reads the stored hashes at indexes from the chunks rows that
// hold them: one range query when those rows are close together (a
// block's new hashes), else one query that looks up each row (a proof's,
// spread over the log). q must see one snapshot.
func readHashes(ctx context.Context, q queryer, indexes []int64) ([]ledger.Hash, error) {
	lo, hi := int64(math.MaxInt64), int64(-1)
	for _, x := range indexes {
		rec, _ := hashSlot(x)
		if rec < 0 {
			return nil, fmt.Errorf("sqlitestore: stored hash %d: %w", x, ledger.ErrNotFound)
		}
		lo, hi = min(lo, rec), max(hi, rec)
	}
	var sp hashSpans
	var err error
	if hi-lo < int64(chunkEntries*len(indexes)) {
		sp, err = readSpans(ctx, q, spansQuery, lo, hi)
	} else {
		recs := make([]int64, len(indexes))
		for i, x := range indexes {
			recs[i], _ = hashSlot(x)
		}
		sp, err = readSpansAt(ctx, q, recs)
	}
	if err != nil {
		return nil, err
	}
	out := make([]ledger.Hash, len(indexes))
	var missing []string
	for i, x := range indexes {
		h, ok := sp.hash(x)
		if !ok {
			if len(missing) < 5 {
				missing = append(missing, fmt.Sprint(x))
			}
			continue
		}
		out[i] = h
	}
	if missing != nil {
		return nil, fmt.Errorf("sqlitestore: stored hashes %s: %w", strings.Join(missing, ", "), ledger.ErrNotFound)
	}
	return out, nil
}
