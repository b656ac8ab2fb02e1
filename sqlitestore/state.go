package sqlitestore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"time"
)

// A PendingItem is one entry of the pending journal: the mempool's id for a
// pending record and its data, opaque to the store.
type PendingItem struct {
	ID   string
	Data []byte
}

// PutPending stores data under id in the pending journal, durably. Putting
// an id again replaces its data and keeps its place in the order.
func (s *Store) PutPending(ctx context.Context, id string, data []byte) error {
	if _, err := s.w.ExecContext(ctx, putPendingSQL, id, nonNil(data)); err != nil {
		return fmt.Errorf("sqlitestore: put pending %q: %w", id, err)
	}
	return nil
}

const putPendingSQL = "INSERT INTO pending (id, data) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data"

// putPending puts items in tx as PutPending does.
func putPending(ctx context.Context, tx *sql.Tx, items []PendingItem) error {
	if len(items) == 0 {
		return nil
	}
	put, err := tx.PrepareContext(ctx, putPendingSQL)
	if err != nil {
		return fmt.Errorf("put pending: %w", err)
	}
	defer put.Close()
	for _, it := range items {
		if _, err := put.ExecContext(ctx, it.ID, nonNil(it.Data)); err != nil {
			return fmt.Errorf("put pending %q: %w", it.ID, err)
		}
	}
	return nil
}

// DeletePending removes entries from the pending journal in one
// transaction, durably; absent ids are ignored.
func (s *Store) DeletePending(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: delete pending: %w", err)
	}
	defer tx.Rollback()
	if err := deletePending(ctx, tx, ids); err != nil {
		return fmt.Errorf("sqlitestore: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: delete pending: %w", err)
	}
	return nil
}

func deletePending(ctx context.Context, tx *sql.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	del, err := tx.PrepareContext(ctx, "DELETE FROM pending WHERE id = ?")
	if err != nil {
		return fmt.Errorf("delete pending: %w", err)
	}
	defer del.Close()
	for _, id := range ids {
		if _, err := del.ExecContext(ctx, id); err != nil {
			return fmt.Errorf("delete pending %q: %w", id, err)
		}
	}
	return nil
}

// LoadPending returns the pending journal in insertion order.
func (s *Store) LoadPending(ctx context.Context) ([]PendingItem, error) {
	return s.loadPending(ctx, "SELECT id, data FROM pending ORDER BY seq")
}

// LoadPendingPrefix returns the entries of the pending journal whose id
// starts with prefix, in insertion order. The node keeps items other than
// the mempool's in the journal under ids no key can be (they hold a space),
// and reads them back with this.
func (s *Store) LoadPendingPrefix(ctx context.Context, prefix string) ([]PendingItem, error) {
	if prefix == "" || prefix[len(prefix)-1] == 0xff {
		return nil, fmt.Errorf("sqlitestore: load pending: prefix %q: want a non-empty prefix not ending in 0xff", prefix)
	}
	// The ids from prefix up to, not including, prefix with its last byte
	// incremented: a range of the id index.
	end := prefix[:len(prefix)-1] + string([]byte{prefix[len(prefix)-1] + 1})
	return s.loadPending(ctx, "SELECT id, data FROM pending WHERE id >= ? AND id < ? ORDER BY seq", prefix, end)
}

func (s *Store) loadPending(ctx context.Context, query string, args ...any) ([]PendingItem, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: load pending: %w", err)
	}
	defer rows.Close()
	var out []PendingItem
	for rows.Next() {
		var it PendingItem
		if err := rows.Scan(&it.ID, &it.Data); err != nil {
			return nil, fmt.Errorf("sqlitestore: load pending: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: load pending: %w", err)
	}
	return out, nil
}

// PutState stores data under name, durably, replacing any earlier value.
func (s *Store) PutState(ctx context.Context, name string, data []byte) error {
	if _, err := s.w.ExecContext(ctx, "INSERT INTO state (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data", name, nonNil(data)); err != nil {
		return fmt.Errorf("sqlitestore: put state %q: %w", name, err)
	}
	return nil
}

// GetState returns the value stored under name, or an error wrapping
// ledger.ErrNotFound.
func (s *Store) GetState(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	if err := s.r.QueryRowContext(ctx, "SELECT data FROM state WHERE name = ?", name).Scan(&data); err != nil {
		return nil, readErr(err, "state %q", name)
	}
	return nonNil(data), nil
}

// An EvidenceItem is a piece of stored evidence of misbehaviour (such as two
// conflicting signed votes), with the time it was first added.
type EvidenceItem struct {
	Kind  string
	Data  []byte
	Added time.Time
}

// AddEvidence stores evidence of kind, durably, added at now. An item
// identical in kind and data to one stored is not stored again.
func (s *Store) AddEvidence(ctx context.Context, kind string, data []byte, now time.Time) error {
	d := sha256.New()
	fmt.Fprintf(d, "%d:%s", len(kind), kind)
	d.Write(data)
	if _, err := s.w.ExecContext(ctx, "INSERT INTO evidence (digest, kind, data, added) VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING",
		d.Sum(nil), kind, nonNil(data), now.UnixMilli()); err != nil {
		return fmt.Errorf("sqlitestore: add evidence: %w", err)
	}
	return nil
}

// Evidence returns up to limit evidence items, newest first; limit <= 0
// means all of them.
func (s *Store) Evidence(ctx context.Context, limit int) ([]EvidenceItem, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, "SELECT kind, data, added FROM evidence ORDER BY seq DESC LIMIT ?", limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: evidence: %w", err)
	}
	defer rows.Close()
	var out []EvidenceItem
	for rows.Next() {
		var it EvidenceItem
		var ms int64
		if err := rows.Scan(&it.Kind, &it.Data, &ms); err != nil {
			return nil, fmt.Errorf("sqlitestore: evidence: %w", err)
		}
		it.Data = nonNil(it.Data)
		it.Added = time.UnixMilli(ms)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: evidence: %w", err)
	}
	return out, nil
}

// nonNil returns b, or an empty slice for nil: go-sqlite3 stores a nil
// []byte as NULL, which the NOT NULL columns refuse.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
