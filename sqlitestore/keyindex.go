package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// The key index: the keys table holds the key of every record below
// keys_indexed.n, and the newest records' keys (the tail) are kept in
// memory and merged into the table in sorted batches.
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
// records table at Open. Reads look in the tail first and in the table
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

type keyIndex struct {
	mu      sync.RWMutex
	indexed int64            // records [0, indexed) are in the keys table
	tail    map[string]int64 // key column -> log index of records [indexed, size)
	auth    []int64          // the authority changes among them
	filter  keyFilters       // the keys table's keys
	mergeAt int64            // if > 0, the tail length that merges (tests)
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
	// The filter's build reads every key of the table: it counts them too.
	f, err := buildKeyFilter(ctx, q, indexed)
	if err != nil {
		return fmt.Errorf("key index: %w", err)
	}
	if f.keys != indexed {
		return fmt.Errorf("key index: %d keys for %d records: %w", f.keys, indexed, errCorruptIndex)
	}
	rows, err := q.QueryContext(ctx, "SELECT idx, key FROM records WHERE idx >= ? ORDER BY idx", indexed)
	if err != nil {
		return fmt.Errorf("key index: %w", err)
	}
	defer rows.Close()
	tail := make(map[string]int64, size-indexed)
	var auth []int64
	for rows.Next() {
		var idx int64
		var key string
		if err := rows.Scan(&idx, &key); err != nil {
			return fmt.Errorf("key index: %w", err)
		}
		if _, dup := tail[key]; dup {
			return fmt.Errorf("key index: key %s twice: %w", key, errCorruptIndex)
		}
		tail[key] = idx
		if strings.HasPrefix(key, authorityPrefix) {
			auth = append(auth, idx)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("key index: %w", err)
	}
	k.mu.Lock()
	k.indexed, k.tail, k.auth, k.filter = indexed, tail, auth, keyFilters{f}
	k.mu.Unlock()
	return nil
}

// errCorruptIndex marks a key index that does not agree with the records;
// Open reports it as corruption.
var errCorruptIndex = errors.New("key index does not match the records")

// get returns the log index of key if it is in the tail, and else
// whether the keys table may hold it.
func (k *keyIndex) get(key string) (idx int64, inTail, inTable bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if idx, ok := k.tail[key]; ok {
		return idx, true, false
	}
	return 0, false, k.filter.mayHave(key)
}

// firstInTail returns the position in keys of the first one in the tail,
// or -1, and those before it that the keys table may hold, with their
// positions.
func (k *keyIndex) firstInTail(keys []string) (first int, maybe []string, at []int) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for i, key := range keys {
		if _, ok := k.tail[key]; ok {
			return i, maybe, at
		}
		if k.filter.mayHave(key) {
			maybe, at = append(maybe, key), append(at, i)
		}
	}
	return -1, maybe, at
}

// tailAuthorities returns the log indexes of the authority changes in the
// tail.
func (k *keyIndex) tailAuthorities() []int64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]int64(nil), k.auth...)
}

// firstInTable returns the position in keys of the first one in the keys
// table, or -1: one query, probing the table for each key.
func firstInTable(ctx context.Context, q queryer, keys []string) (int, error) {
	if len(keys) == 0 {
		return -1, nil
	}
	arg, err := json.Marshal(keys)
	if err != nil {
		return 0, err
	}
	var i int64
	err = q.QueryRowContext(ctx, "SELECT j.key FROM json_each(?) AS j WHERE EXISTS (SELECT 1 FROM keys WHERE key = j.value) ORDER BY j.key LIMIT 1",
		string(arg)).Scan(&i)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return -1, nil
	case err != nil:
		return 0, err
	case i < 0 || i >= int64(len(keys)):
		return 0, fmt.Errorf("position %d of %d keys", i, len(keys))
	}
	return int(i), nil
}

// A keyWrite is the key index as a write transaction sees it: the keys
// table through the transaction, the tail's keys below limit (a reorg
// replaces the records from limit on), and the keys the transaction
// added. Only the writer, holding Store.wmu, makes one.
type keyWrite struct {
	k     *keyIndex
	limit int64
	added map[string]int64
	auth  []int64
}

func (k *keyIndex) write(limit int64) *keyWrite {
	return &keyWrite{k: k, limit: limit, added: make(map[string]int64)}
}

// conflict returns the first of keys already committed or added, or twice
// in keys, or "".
func (w *keyWrite) conflict(ctx context.Context, tx *sql.Tx, keys []string) (string, error) {
	seen := make(map[string]bool, len(keys))
	var maybe []string
	for _, key := range keys {
		// The writer holds wmu, so the tail and the filter do not change
		// under it.
		if idx, ok := w.k.tail[key]; ok && idx < w.limit {
			return key, nil
		}
		if _, ok := w.added[key]; ok || seen[key] {
			return key, nil
		}
		seen[key] = true
		if w.k.filter.mayHave(key) {
			maybe = append(maybe, key)
		}
	}
	i, err := firstInTable(ctx, tx, maybe)
	if err != nil || i < 0 {
		return "", err
	}
	return maybe[i], nil
}

// add records that the transaction committed key at idx.
func (w *keyWrite) add(key string, idx int64) {
	w.added[key] = idx
	if strings.HasPrefix(key, authorityPrefix) {
		w.auth = append(w.auth, idx)
	}
}

// committed applies a committed transaction to the tail: the records
// from limit on are gone (a reorg replaced them) and w's are added.
func (w *keyWrite) committed() {
	k := w.k
	k.mu.Lock()
	defer k.mu.Unlock()
	if w.limit < k.indexed+int64(len(k.tail)) {
		for key, idx := range k.tail {
			if idx >= w.limit {
				delete(k.tail, key)
			}
		}
		kept := k.auth[:0]
		for _, idx := range k.auth {
			if idx < w.limit {
				kept = append(kept, idx)
			}
		}
		k.auth = kept
	}
	k.indexed = min(k.indexed, w.limit)
	for key, idx := range w.added {
		k.tail[key] = idx
	}
	k.auth = append(k.auth, w.auth...)
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
	if err := mergeTail(ctx, s.w, k.indexed, size); err != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.filter = k.filter.add(k.tail)
	k.indexed, k.tail, k.auth = size, make(map[string]int64), nil
}

// mergeTail inserts the keys of records [from, to) into the keys table,
// sorted, in one transaction.
func mergeTail(ctx context.Context, db *sql.DB, from, to int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO keys (key, idx) SELECT key, idx FROM records WHERE idx >= ? AND idx < ? ORDER BY key", from, to); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE keys_indexed SET n = ?", to); err != nil {
		return err
	}
	return tx.Commit()
}

// withKeyMerge makes Append merge the tail once it holds n records, n > 0
// (tests, to merge often in small stores).
func withKeyMerge(n int64) Option { return func(c *config) { c.keyMerge = n } }

// stale reports whether the tail no longer maps key to idx: a reorg
// replaced the record a reader found there.
func (k *keyIndex) stale(key string, idx int64) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	i, ok := k.tail[key]
	return !ok || i != idx
}
