package sqlitestore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vcsledger/vcsledger/ledger"
)

// The key index: the keys table holds a row for the key of every record
// below keys_indexed.n, and the newest records' keys (the tail) are kept
// in memory and merged into the table in sorted batches.
//
// A row of the keys table is (h, idx): idx the record's log index and h
// its key's keyHash, 8 bytes of the key's SHA-256. Two keys may share h
// (a collision can be searched for), so the table is keyed by both, and
// every row found for a key's h is confirmed by reading the record it
// points to. A row is two integers rather than the key's text: merging
// 1M random keys in batches of 262,144 took 0.98 us of CPU per key so,
// against 2.50 us with the keys themselves (scratch measurements beside a
// plain table, 2 cores).
//
// Keys arrive in no order. Indexed as they are appended, a block of 1,000
// records dirtied about one index page per record, which the WAL writes,
// checksums and copies back: at 1M records that was 7 KiB written and 11
// us of CPU per record, five times a plain insert. A merge inserts the
// tail sorted, so each index page it touches is written once for all the
// tail's keys on it.
//
// The tail holds up to keyMergeMax records and a block (more only while
// merges fail, which leaves the tail as it was), and is read back from the
// chunks table at Open. Reads look in the tail first and in the table
// second: a merge removes keys from the tail only after its transaction
// committed, so a reader that misses them in the tail finds them in the
// table.

const (
	keyMergeMin = 1 << 16
	keyMergeMax = 1 << 18
)

// keyMergeAt is the tail length at which Append merges: a quarter of the
// keys indexed, within [keyMergeMin, keyMergeMax], so that up to 1M
// records a merge writes at most every index page once per quarter of
// the index, and the tail stays under about 30 MiB.
func keyMergeAt(indexed int64) int64 {
	return min(max(indexed/4, keyMergeMin), keyMergeMax)
}

// keyHash is the h column of key's rows in the keys table: the first 8
// bytes of the SHA-256 of the key (<repo>@<tag>), big-endian, as a signed
// integer.
func keyHash(key string) int64 {
	var buf [512]byte
	d := sha256.Sum256(append(buf[:0], key...))
	return int64(binary.BigEndian.Uint64(d[:8]))
}

// A tailKey is a key of the tail: its record's log index and keyHash.
type tailKey struct{ idx, h int64 }

type keyIndex struct {
	mu      sync.RWMutex
	indexed int64      // records [0, indexed) are in the keys table
	tail    *tailKeys  // the keys of records [indexed, size)
	filter  keyFilters // the keys table's keys
	mergeAt int64      // if > 0, the tail length that merges (tests)
}

// load reads the tail of a log of size records from q.
func (k *keyIndex) load(ctx context.Context, q queryer, size int64) error {
	var indexed int64
	switch err := q.QueryRowContext(ctx, "SELECT n FROM keys_indexed").Scan(&indexed); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("key index: no count of records indexed: %w", errCorruptIndex)
	case err != nil:
		return fmt.Errorf("key index: %w", err)
	}
	if indexed < 0 || indexed > size {
		return fmt.Errorf("key index: %d records indexed of %d: %w", indexed, size, errCorruptIndex)
	}
	// The filter's build reads every row of the table: it counts them too.
	f, err := buildKeyFilter(ctx, q, indexed)
	if err != nil {
		return fmt.Errorf("key index: %w", err)
	}
	// Every entry below indexed is a key record in the table or an
	// authority change.
	var auth int64
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM authorities WHERE idx < ?", indexed).Scan(&auth); err != nil {
		return fmt.Errorf("key index: %w", err)
	}
	if f.keys+auth != indexed {
		return fmt.Errorf("key index: %d keys and %d authority changes for %d entries: %w", f.keys, auth, indexed, errCorruptIndex)
	}
	tail := newTailKeys(size - indexed)
	err = scanChunks(ctx, q, indexed, size, func(c *chunkRow[[]byte]) error {
		for i, e := range c.entries {
			idx := c.first + int64(i)
			if idx < indexed {
				continue
			}
			key, ok := ledger.EncodedKey(e)
			if !ok {
				if isAuthority(e) {
					continue
				}
				return corruptRow(errors.New("not a record"), "record %d at height %d", idx, c.height)
			}
			if len(key) > ledger.MaxKeyLen {
				return corruptRow(fmt.Errorf("key of %d bytes", len(key)), "record %d at height %d", idx, c.height)
			}
			if _, dup := tail.get(key); dup {
				return fmt.Errorf("key %s twice (record %d at height %d): %w", key, idx, c.height, errCorruptIndex)
			}
			tail.put(key, tailKey{idx, keyHash(key)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("key index: %w", err)
	}
	k.mu.Lock()
	k.indexed, k.tail, k.filter = indexed, tail, keyFilters{f}
	k.mu.Unlock()
	return nil
}

// errCorruptIndex marks a key index that does not agree with the records;
// Open reports it as corruption.
var errCorruptIndex = errors.New("key index does not match the records")

// get returns the log index of key if it is in the tail, and else its
// keyHash and whether the keys table may hold it.
func (k *keyIndex) get(key string) (idx int64, inTail bool, h int64, inTable bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if t, ok := k.tail.get(key); ok {
		return t.idx, true, t.h, false
	}
	h = keyHash(key)
	return 0, false, h, k.filter.mayHave(h)
}

// A keyProbe is a key to look for in the keys table, with its keyHash and
// its position in the caller's list.
type keyProbe struct {
	key string
	h   int64
	at  int
}

// firstInTail returns the position in keys of the first one in the tail,
// or -1, and those before it that the keys table may hold.
func (k *keyIndex) firstInTail(keys []string) (first int, maybe []keyProbe) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for i, key := range keys {
		if _, ok := k.tail.get(key); ok {
			return i, maybe
		}
		if h := keyHash(key); k.filter.mayHave(h) {
			maybe = append(maybe, keyProbe{key, h, i})
		}
	}
	return -1, maybe
}

// firstInTable returns the first of probes whose key the keys table holds,
// and its record's log index, or nil: one query for the rows of their keyHashes, then a read of each
// row's record, in probe order, until one holds the key. q must see one
// snapshot.
func firstInTable(ctx context.Context, q queryer, probes []keyProbe) (*keyProbe, int64, error) {
	if len(probes) == 0 {
		return nil, 0, nil
	}
	hs := make([]int64, len(probes))
	for i, p := range probes {
		hs[i] = p.h
	}
	arg, err := json.Marshal(hs)
	if err != nil {
		return nil, 0, err
	}
	rows, err := q.QueryContext(ctx, "SELECT j.key, k.idx FROM json_each(?) AS j JOIN keys AS k ON k.h = j.value ORDER BY j.key, k.idx", string(arg))
	if err != nil {
		return nil, 0, err
	}
	type hit struct{ probe, idx int64 }
	var hits []hit
	for rows.Next() {
		var x hit
		if err := rows.Scan(&x.probe, &x.idx); err != nil {
			rows.Close()
			return nil, 0, err
		}
		if x.probe < 0 || x.probe >= int64(len(probes)) {
			rows.Close()
			return nil, 0, fmt.Errorf("position %d of %d keys", x.probe, len(probes))
		}
		hits = append(hits, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	for _, x := range hits {
		ok, err := holdsKey(ctx, q, x.idx, probes[x.probe].key)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			return &probes[x.probe], x.idx, nil
		}
	}
	return nil, 0, nil
}

// holdsKey reports whether log entry idx is the record of key. An entry
// the keys table points to that is missing is corruption.
func holdsKey(ctx context.Context, q queryer, idx int64, key string) (bool, error) {
	data, _, err := readEntry(ctx, q, idx)
	if errors.Is(err, ledger.ErrNotFound) {
		return false, corruptRow(errors.New("the key index points to it"), "record %d", idx)
	}
	if err != nil {
		return false, err
	}
	k, ok := ledger.EncodedKey(data)
	return ok && k == key, nil
}

// A keyWrite is the key index as a write transaction sees it: the keys
// table through the transaction, the tail's keys below limit (a reorg
// replaces the records from limit on), and the keys the transaction
// added. Only the writer, holding Store.wmu, makes one.
type keyWrite struct {
	k     *keyIndex
	limit int64
	added map[string]tailKey
}

func (k *keyIndex) write(limit int64) *keyWrite {
	return &keyWrite{k: k, limit: limit}
}

// conflict returns the first of keys already committed or added, or
// twice in keys, or "". It adds the others to w, the record of keys[i]
// at log index first+i: if it returns a key, the transaction must not
// commit.
func (w *keyWrite) conflict(ctx context.Context, tx *sql.Tx, keys []string, first int64) (string, error) {
	if w.added == nil {
		w.added = make(map[string]tailKey, len(keys))
	}
	var maybe []keyProbe
	for i, key := range keys {
		// The writer holds wmu, so the tail and the filter do not change
		// under it.
		if t, ok := w.k.tail.get(key); ok && t.idx < w.limit {
			return key, nil
		}
		if _, ok := w.added[key]; ok {
			return key, nil
		}
		h := keyHash(key)
		w.added[key] = tailKey{first + int64(i), h}
		if w.k.filter.mayHave(h) {
			maybe = append(maybe, keyProbe{key, h, i})
		}
	}
	p, _, err := firstInTable(ctx, tx, maybe)
	if err != nil || p == nil {
		return "", err
	}
	return p.key, nil
}

// committed applies a committed transaction to the tail: the records
// from limit on are gone (a reorg replaced them) and w's are added.
func (w *keyWrite) committed() {
	k := w.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if w.limit < k.indexed+int64(k.tail.len()) {
		k.tail.cut(w.limit)
	}
	k.indexed = min(k.indexed, w.limit)
	for key, t := range w.added {
		k.tail.put(key, t)
	}
}

// cut removes from the keys table, in tx, the keys of the records a reorg
// replaces from log index limit on. That scans the table, but only a reorg
// reaching below the tail does it.
func (w *keyWrite) cut(ctx context.Context, tx *sql.Tx) error {
	if w.limit >= w.k.indexed {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM keys WHERE idx >= ?", w.limit); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "UPDATE keys_indexed SET n = ?", w.limit)
	return err
}

// mergeKeys moves the tail of a log of size records into the keys table
// once it is long enough (see keyMergeAt). It runs after an Append, under
// wmu. A merge that fails leaves the tail as it was, for the next Append
// to try again: the block it follows is committed either way.
func (s *Store) mergeKeys(ctx context.Context, size int64) {
	k := &s.keys
	at := k.mergeAt
	if at <= 0 {
		at = keyMergeAt(k.indexed)
	}
	if size-k.indexed < at {
		return
	}
	if err := insertKeys(ctx, s.w, k.tail, size); err != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.filter = k.filter.add(k.tail)
	// The next tail grows to about as many keys as this one.
	k.indexed, k.tail = size, newTailKeys(int64(k.tail.len()))
}

// keyRowsPerInsert is how many keys rows one INSERT statement of
// insertKeys writes: binding one statement's parameters costs far less
// than running a statement per row.
const keyRowsPerInsert = 256

// insertKeys inserts the rows of keys into the keys table and sets
// keys_indexed to n, in one transaction.
func insertKeys(ctx context.Context, db *sql.DB, keys *tailKeys, n int64) error {
	rows := slices.AppendSeq(make([]tailKey, 0, keys.len()), keys.values())
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := insertKeyRows(ctx, tx, rows, n); err != nil {
		return err
	}
	return tx.Commit()
}

// insertKeyRows inserts rows into the keys table in tx, sorted (it sorts
// rows), and sets keys_indexed to n.
func insertKeyRows(ctx context.Context, tx *sql.Tx, rows []tailKey, n int64) error {
	slices.SortFunc(rows, func(a, b tailKey) int {
		if a.h != b.h { // almost always
			return cmp.Compare(a.h, b.h)
		}
		return cmp.Compare(a.idx, b.idx)
	})
	ins, err := tx.PrepareContext(ctx, "INSERT INTO keys (h, idx) VALUES (?, ?)"+strings.Repeat(", (?, ?)", keyRowsPerInsert-1))
	if err != nil {
		return err
	}
	defer ins.Close()
	args := make([]any, 0, 2*keyRowsPerInsert)
	for len(rows) >= keyRowsPerInsert {
		args = args[:0]
		for _, t := range rows[:keyRowsPerInsert] {
			args = append(args, t.h, t.idx)
		}
		if _, err := ins.ExecContext(ctx, args...); err != nil {
			return err
		}
		rows = rows[keyRowsPerInsert:]
	}
	for _, t := range rows {
		if _, err := tx.ExecContext(ctx, "INSERT INTO keys (h, idx) VALUES (?, ?)", t.h, t.idx); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, "UPDATE keys_indexed SET n = ?", n)
	return err
}

// withKeyMerge makes Append merge the tail once it holds n records, n > 0
// (tests, to merge often in small stores).
func withKeyMerge(n int64) Option { return func(c *config) { c.keyMerge = n } }

// stale reports whether the tail no longer maps key to idx: a reorg
// replaced the record a reader found there.
func (k *keyIndex) stale(key string, idx int64) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	t, ok := k.tail.get(key)
	return !ok || t.idx != idx
}
