package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/vcsledger/vcsledger/ledger"
)

// Log entries (key records and authority changes) are stored in the chunks
// table, up to chunkEntries consecutive entries of one block to a row:
//
//	chunks(first INTEGER PRIMARY KEY,   -- log index of the row's first entry
//	       height INTEGER NOT NULL,     -- the block that committed them
//	       first_hash INTEGER NOT NULL, -- tlog stored-hash index of the first of hashes: StoredHashCount(first)
//	       hashes BLOB NOT NULL,        -- the stored hashes the entries add, 32 bytes each, in index order
//	       data BLOB NOT NULL)          -- each entry as uvarint(len) and its canonical bytes
//
// A block's entries start a new row, so a row never holds two blocks'. A
// row per entry cost about a microsecond of SQLite's row handling per
// entry, on append and on every read of many entries (Audit, sync, Block);
// 32 to a row, appends insert a 32nd of the rows, and a read of one entry
// reads and splits one row of about 8 KiB. A row of that size spills
// into overflow pages, whose last is on average half empty: 16 to a row
// took 430 bytes of disk per record, 32 take 380. hashes comes before
// data so that a proof's read of a hash stops before the entries' bytes.
const chunkEntries = 32

// appendChunkEntry appends one entry's bytes to a chunks row's data.
func appendChunkEntry(data, entry []byte) []byte {
	data = binary.AppendUvarint(data, uint64(len(entry)))
	return append(data, entry...)
}

// A chunkRow is a chunks row read back and split, its data read as T:
// []byte, or string for entries parsed into records whose fields are
// substrings of it (the row's one copy out of SQLite then serves them all).
type chunkRow[T string | []byte] struct {
	first, height int64
	hashes        []byte // the stored hashes its entries add
	entries       []T    // each entry's bytes, slices of the row's data
}

// end returns the log index after the row's last entry.
func (c *chunkRow[T]) end() int64 { return c.first + int64(len(c.entries)) }

// hashesOf returns the stored hashes entries a to z-1 add, a and z-1 in
// the row.
func (c *chunkRow[T]) hashesOf(a, z int64) []byte {
	base := ledger.StoredHashCount(c.first)
	return c.hashes[32*(ledger.StoredHashCount(a)-base) : 32*(ledger.StoredHashCount(z)-base)]
}

// split fills c from a row's columns, reusing c.entries, and checks that
// they agree with each other: the entries parse, there are 1 to
// chunkEntries of them, and hashes holds exactly the stored hashes they
// add, the first of them at firstHash.
func (c *chunkRow[T]) split(first, height, firstHash int64, hashes []byte, data T) error {
	c.first, c.height, c.hashes, c.entries = first, height, hashes, c.entries[:0]
	for len(data) > 0 {
		// For a string, a copy of the few bytes the length can take.
		n, w := binary.Uvarint([]byte(data[:min(len(data), binary.MaxVarintLen64)]))
		if w <= 0 || n > uint64(len(data)-w) {
			return corruptRow(fmt.Errorf("entry %d is cut short", len(c.entries)), "chunk at %d", first)
		}
		c.entries = append(c.entries, data[w:w+int(n)])
		data = data[w+int(n):]
		if len(c.entries) > chunkEntries {
			return corruptRow(fmt.Errorf("more than %d entries", chunkEntries), "chunk at %d", first)
		}
	}
	if len(c.entries) == 0 {
		return corruptRow(errors.New("no entries"), "chunk at %d", first)
	}
	if first < 0 || first > maxStoredHash/2 || firstHash != ledger.StoredHashCount(first) {
		return corruptRow(fmt.Errorf("first stored hash %d", firstHash), "chunk at %d", first)
	}
	if want := 32 * (ledger.StoredHashCount(c.end()) - firstHash); int64(len(hashes)) != want {
		return corruptRow(fmt.Errorf("%d bytes of stored hashes, want %d", len(hashes), want), "chunk at %d", first)
	}
	return nil
}

// chunkColumns are the columns scanChunks reads, in split's order.
const chunkColumns = "first, height, first_hash, hashes, data"

// chunkColumnsAs returns chunkColumns with data read as T: for a string,
// cast to TEXT, whose bytes SQLite leaves as they are.
func chunkColumnsAs[T string | []byte]() string {
	var zero T
	if _, ok := any(zero).(string); ok {
		return "first, height, first_hash, hashes, CAST(data AS TEXT)"
	}
	return chunkColumns
}

// scanChunks calls fn with each row of the chunks table holding log
// entries lo to hi-1, in order: the row holding lo first (it may begin
// before lo), then each row beginning where the one before ended. The row
// is valid only during fn (a string row's entries stay valid after). A
// row that does not split, or that does not begin where the one before
// ended, is ErrCorrupt; entries missing at the end are ErrNotFound, about
// the first one missing. q must see one snapshot.
func scanChunks[T string | []byte](ctx context.Context, q queryer, lo, hi int64, fn func(c *chunkRow[T]) error) error {
	if lo >= hi {
		return nil
	}
	rows, err := q.QueryContext(ctx, "SELECT "+chunkColumnsAs[T]()+" FROM chunks WHERE first >= coalesce((SELECT first FROM chunks WHERE first <= ?1 ORDER BY first DESC LIMIT 1), ?1) AND first < ?2 ORDER BY first", lo, hi)
	if err != nil {
		return readErr(err, "entry %d", lo)
	}
	defer rows.Close()
	var c chunkRow[T]
	next := lo // the first entry not yet given to fn
	for rows.Next() {
		var first, height, firstHash int64
		var hashes sql.RawBytes
		var data T
		// []byte data is scanned as RawBytes: not copied again.
		var dest any = &data
		if b, ok := dest.(*[]byte); ok {
			dest = (*sql.RawBytes)(b)
		}
		if err := rows.Scan(&first, &height, &firstHash, &hashes, dest); err != nil {
			return readErr(err, "entry %d", next)
		}
		if err := c.split(first, height, firstHash, hashes, data); err != nil {
			return err
		}
		switch {
		case next == lo && first > lo:
			return fmt.Errorf("sqlitestore: entry %d: %w", lo, ledger.ErrNotFound)
		case next == lo && c.end() <= lo:
			// The row before lo: lo is past the end of the log.
			return fmt.Errorf("sqlitestore: entry %d: %w", lo, ledger.ErrNotFound)
		case next > lo && first != next:
			return corruptRow(fmt.Errorf("begins at %d, after a row ending at %d", first, next), "chunk at %d", first)
		}
		if err := fn(&c); err != nil {
			return err
		}
		next = c.end()
	}
	if err := rows.Err(); err != nil {
		return readErr(err, "entry %d", next)
	}
	if next < hi {
		return fmt.Errorf("sqlitestore: entry %d: %w", next, ledger.ErrNotFound)
	}
	return nil
}

// readChunkAt reads and splits the chunks row holding log entry idx, or
// the last row before it: the row with the greatest first at or below
// idx (one lookup). No such row is ErrNotFound.
func readChunkAt(ctx context.Context, q queryer, idx int64) (*chunkRow[[]byte], error) {
	var first, height, firstHash int64
	var hashes, data []byte
	err := q.QueryRowContext(ctx, "SELECT "+chunkColumns+" FROM chunks WHERE first <= ? ORDER BY first DESC LIMIT 1", idx).Scan(&first, &height, &firstHash, &hashes, &data)
	if err != nil {
		return nil, readErr(err, "entry %d", idx)
	}
	var c chunkRow[[]byte]
	if err := c.split(first, height, firstHash, hashes, data); err != nil {
		return nil, err
	}
	return &c, nil
}

// readEntry returns the bytes of log entry idx and the height of its block,
// from the chunks row holding it (one lookup).
func readEntry(ctx context.Context, q queryer, idx int64) (data []byte, height int64, err error) {
	c, err := readChunkAt(point(ctx), q, idx)
	if err != nil {
		return nil, 0, err
	}
	if idx >= c.end() {
		return nil, 0, fmt.Errorf("sqlitestore: entry %d: %w", idx, ledger.ErrNotFound)
	}
	return c.entries[idx-c.first], c.height, nil
}

// insertChunks writes the entries of a block at height, log indexes first
// on, with the stored hashes they add (hashes, from StoredHashCount(first)
// on), as rows of up to chunkEntries entries.
func insertChunks(ctx context.Context, tx *sql.Tx, height, first int64, entries [][]byte, hashes []byte) error {
	if len(entries) == 0 {
		return nil
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO chunks ("+chunkColumns+") VALUES (?, ?, ?, ?, ?)")
	if err != nil {
		return err
	}
	defer ins.Close()
	base := ledger.StoredHashCount(first)
	var data []byte
	for i := 0; i < len(entries); i += chunkEntries {
		part := entries[i:min(i+chunkEntries, len(entries))]
		data = data[:0]
		for _, e := range part {
			data = appendChunkEntry(data, e)
		}
		lo, hi := first+int64(i), first+int64(i+len(part))
		h0, h1 := ledger.StoredHashCount(lo), ledger.StoredHashCount(hi)
		if _, err := ins.ExecContext(ctx, lo, height, h0, hashes[32*(h0-base):32*(h1-base)], data); err != nil {
			return fmt.Errorf("entries %d to %d: %w", lo, hi-1, err)
		}
	}
	return nil
}

// A hashSpan is the stored hashes of a chunks row.
type hashSpan struct {
	first  int64  // the row's first entry
	base   int64  // the stored-hash index of hashes[0:32]
	hashes []byte // a whole number of hashes
}

// hashSpans are spans in order of first, each once.
type hashSpans []hashSpan

// hash returns stored hash x from the span of the row holding its record,
// or false when the spans do not hold it.
func (sp hashSpans) hash(x int64) (ledger.Hash, bool) {
	rec, _ := hashSlot(x)
	i, _ := slices.BinarySearchFunc(sp, rec, func(s hashSpan, rec int64) int { return cmp.Compare(s.first, rec+1) })
	if rec < 0 || i == 0 {
		return ledger.Hash{}, false
	}
	s := &sp[i-1]
	off := x - s.base
	if off < 0 || 32*off+32 > int64(len(s.hashes)) {
		return ledger.Hash{}, false
	}
	return ledger.Hash(s.hashes[32*off : 32*off+32]), true
}

// spansQuery reads the stored hashes of the rows holding entries ?1 to ?2.
const spansQuery = "SELECT first, first_hash, hashes FROM chunks WHERE first >= coalesce((SELECT first FROM chunks WHERE first <= ?1 ORDER BY first DESC LIMIT 1), ?1) AND first <= ?2 ORDER BY first"

// spansAtQuery reads the stored hashes of the rows holding the entries of
// the JSON array ?1, looking up each row.
const spansAtQuery = "SELECT c.first, c.first_hash, c.hashes FROM json_each(?1) AS j JOIN chunks AS c ON c.first = (SELECT first FROM chunks WHERE first <= j.value ORDER BY first DESC LIMIT 1)"

// readSpans reads the spans a query of spansQuery's columns returns,
// sorted, and checks that each row's first stored hash is where its first
// entry's belongs.
func readSpans(ctx context.Context, q queryer, query string, args ...any) (hashSpans, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, readErr(err, "read hashes")
	}
	defer rows.Close()
	var sp hashSpans
	for rows.Next() {
		var s hashSpan
		if err := rows.Scan(&s.first, &s.base, &s.hashes); err != nil {
			return nil, readErr(err, "read hashes")
		}
		if s.first < 0 || s.first > maxStoredHash/2 || s.base != ledger.StoredHashCount(s.first) || len(s.hashes)%32 != 0 {
			return nil, corruptRow(fmt.Errorf("first stored hash %d, %d bytes of stored hashes", s.base, len(s.hashes)), "chunk at %d", s.first)
		}
		sp = append(sp, s)
	}
	if err := rows.Err(); err != nil {
		return nil, readErr(err, "read hashes")
	}
	slices.SortFunc(sp, func(a, b hashSpan) int { return cmp.Compare(a.first, b.first) })
	return slices.CompactFunc(sp, func(a, b hashSpan) bool { return a.first == b.first }), nil
}

// readSpansAt reads the spans of the rows holding entries recs.
func readSpansAt(ctx context.Context, q queryer, recs []int64) (hashSpans, error) {
	arg, err := json.Marshal(recs)
	if err != nil {
		return nil, err
	}
	return readSpans(ctx, q, spansAtQuery, string(arg))
}

// scanBlockEntries calls fn with each of the n entries of the block at
// height, from log index first on: its index, its bytes and the stored
// hashes it adds, both valid only during fn. A row of another block, and
// an entry missing, are ErrCorrupt.
func scanBlockEntries(ctx context.Context, q queryer, height uint64, first, n int64, fn func(idx int64, data, hashes []byte) error) error {
	seen := int64(0)
	err := scanChunks(ctx, q, first, first+n, func(c *chunkRow[[]byte]) error {
		if c.height != int64(height) || c.end() > first+n {
			return corruptRow(fmt.Errorf("entries %d to %d of height %d where its entries belong", c.first, c.end()-1, c.height), "block %d", height)
		}
		for i, e := range c.entries {
			idx := c.first + int64(i)
			if err := fn(idx, e, c.hashesOf(idx, idx+1)); err != nil {
				return err
			}
			seen++
		}
		return nil
	})
	if errors.Is(err, ledger.ErrNotFound) {
		return corruptRow(fmt.Errorf("header says %d records, %d stored", n, seen), "block %d", height)
	}
	return err
}
