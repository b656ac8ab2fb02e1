package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/vcsledger/vcsledger/ledger"
)

// Append stores b as the next block with the stored log hashes it adds.
func (s *Store) Append(ctx context.Context, b *ledger.Block, hashes []ledger.Hash) error {
	return s.AppendWithPending(ctx, b, hashes, nil)
}

// AppendWithPending appends b like Append and, in the same transaction,
// deletes the pending journal entries pendingIDs (the mempool entries the
// block committed), so a crash can neither lose them nor keep them twice.
func (s *Store) AppendWithPending(ctx context.Context, b *ledger.Block, hashes []ledger.Hash, pendingIDs []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &b.Header
	var oldSize uint64
	switch {
	case s.head == nil && h.Height != 0:
		return fmt.Errorf("sqlitestore: append height %d to an empty store: %w", h.Height, ledger.ErrOutOfOrder)
	case s.head == nil && !h.Prev.IsZero():
		return fmt.Errorf("sqlitestore: append genesis with prev %s: %w", h.Prev, ledger.ErrOutOfOrder)
	case s.head != nil && h.Height != s.head.Height+1:
		return fmt.Errorf("sqlitestore: append height %d after head %d: %w", h.Height, s.head.Height, ledger.ErrOutOfOrder)
	case s.head != nil && h.Prev != s.head.Hash():
		return fmt.Errorf("sqlitestore: append height %d: prev %s is not the head %s: %w", h.Height, h.Prev, s.head.Hash(), ledger.ErrOutOfOrder)
	}
	if s.head != nil {
		oldSize = s.head.LogSize
	}
	if h.Records != uint64(len(b.Records)) || h.LogSize != oldSize+h.Records {
		return fmt.Errorf("sqlitestore: append height %d: header counts %d records, log %d; body has %d after %d: %w",
			h.Height, h.Records, h.LogSize, len(b.Records), oldSize, ledger.ErrInvalidBlock)
	}
	if want := ledger.StoredHashCount(int64(h.LogSize)) - ledger.StoredHashCount(int64(oldSize)); int64(len(hashes)) != want {
		return fmt.Errorf("sqlitestore: append height %d: %d stored hashes, want %d: %w", h.Height, len(hashes), want, ledger.ErrInvalidBlock)
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: append height %d: %w", h.Height, err)
	}
	defer tx.Rollback()
	hash := h.Hash()
	var cert []byte
	if b.Certificate != nil {
		cert = b.Certificate.Format()
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO blocks(height, hash, header, cert, first_index) VALUES (?, ?, ?, ?, ?)",
		int64(h.Height), hash[:], h.Format(), cert, int64(oldSize)); err != nil {
		return fmt.Errorf("sqlitestore: append height %d: %w", h.Height, err)
	}
	if len(b.Records) > 0 {
		st, err := tx.PrepareContext(ctx, "INSERT INTO records(idx, key, height, data) VALUES (?, ?, ?, ?)")
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range b.Records {
			r := &b.Records[i]
			if _, err := st.ExecContext(ctx, int64(oldSize)+int64(i), r.Key.String(), int64(h.Height), r.Format()); err != nil {
				var se sqlite3.Error
				if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
					return fmt.Errorf("sqlitestore: append height %d: key %s: %w", h.Height, r.Key, ledger.ErrConflict)
				}
				return fmt.Errorf("sqlitestore: append height %d: %w", h.Height, err)
			}
		}
	}
	if len(b.Attestations) > 0 {
		st, err := tx.PrepareContext(ctx, "INSERT INTO attestations(height, seq, data) VALUES (?, ?, ?)")
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range b.Attestations {
			if _, err := st.ExecContext(ctx, int64(h.Height), i, b.Attestations[i].Format()); err != nil {
				return fmt.Errorf("sqlitestore: append height %d: %w", h.Height, err)
			}
		}
	}
	if len(hashes) > 0 {
		st, err := tx.PrepareContext(ctx, "INSERT INTO hashes(idx, h) VALUES (?, ?)")
		if err != nil {
			return err
		}
		defer st.Close()
		base := ledger.StoredHashCount(int64(oldSize))
		for i := range hashes {
			if _, err := st.ExecContext(ctx, base+int64(i), hashes[i][:]); err != nil {
				return fmt.Errorf("sqlitestore: append height %d: %w", h.Height, err)
			}
		}
	}
	if err := deletePending(ctx, tx, pendingIDs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: append height %d: commit: %w", h.Height, err)
	}
	hc := *h
	s.head = &hc
	return nil
}

// A PendingItem is one entry of the pending journal.
type PendingItem struct {
	ID   string
	Data []byte
}

// PutPending stores (or replaces) a pending journal entry, durably.
func (s *Store) PutPending(ctx context.Context, id string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.w.ExecContext(ctx, "INSERT INTO pending(id, data) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET data = excluded.data", id, data)
	if err != nil {
		return fmt.Errorf("sqlitestore: put pending: %w", err)
	}
	return nil
}

// DeletePending removes pending journal entries; absent ids are ignored.
func (s *Store) DeletePending(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: delete pending: %w", err)
	}
	defer tx.Rollback()
	if err := deletePending(ctx, tx, ids); err != nil {
		return err
	}
	return tx.Commit()
}

func deletePending(ctx context.Context, tx *sql.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, "DELETE FROM pending WHERE id = ?")
	if err != nil {
		return err
	}
	defer st.Close()
	for _, id := range ids {
		if _, err := st.ExecContext(ctx, id); err != nil {
			return fmt.Errorf("sqlitestore: delete pending: %w", err)
		}
	}
	return nil
}

// LoadPending returns the pending journal in insertion order.
func (s *Store) LoadPending(ctx context.Context) ([]PendingItem, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, data FROM pending ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: load pending: %w", err)
	}
	defer rows.Close()
	var out []PendingItem
	for rows.Next() {
		var it PendingItem
		if err := rows.Scan(&it.ID, &it.Data); err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// PutState stores a named state value durably.
func (s *Store) PutState(ctx context.Context, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.ExecContext(ctx, "INSERT INTO state(name, data) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET data = excluded.data", name, data); err != nil {
		return fmt.Errorf("sqlitestore: put state %s: %w", name, err)
	}
	return nil
}

// GetState returns a named state value, or ledger.ErrNotFound.
func (s *Store) GetState(ctx context.Context, name string) ([]byte, error) {
	var data []byte
	if err := s.r.QueryRowContext(ctx, "SELECT data FROM state WHERE name = ?", name).Scan(&data); err != nil {
		return nil, notFound(err, "state %s", name)
	}
	return data, nil
}

// An EvidenceItem is stored evidence of misbehaviour.
type EvidenceItem struct {
	Kind  string
	Data  []byte
	Added time.Time
}

// AddEvidence stores evidence; an identical item is stored once.
func (s *Store) AddEvidence(ctx context.Context, kind string, data []byte, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.ExecContext(ctx, "INSERT OR IGNORE INTO evidence(kind, data, added) VALUES (?, ?, ?)", kind, data, now.UnixMilli()); err != nil {
		return fmt.Errorf("sqlitestore: add evidence: %w", err)
	}
	return nil
}

// Evidence returns up to limit evidence items, newest first.
func (s *Store) Evidence(ctx context.Context, limit int) ([]EvidenceItem, error) {
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
			return nil, err
		}
		it.Added = time.UnixMilli(ms)
		out = append(out, it)
	}
	return out, rows.Err()
}
