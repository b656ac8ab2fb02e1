package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/vcsledger/vcsledger/ledger"
)

// Side blocks (ledger.Reorger) live in their own table, created at Open:
//
//	side(hash BLOB NOT NULL UNIQUE,    -- block hash
//	     height INTEGER NOT NULL,
//	     data BLOB NOT NULL)           -- the block's canonical encoding (ledger.Block.Format)
//
// A reorg moves the replaced main-chain blocks into it and takes the new
// ones out, in the one transaction that rewrites blocks and records.
const sideSchema = `
CREATE TABLE IF NOT EXISTS side (
	hash BLOB NOT NULL UNIQUE,
	height INTEGER NOT NULL,
	data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS side_height ON side (height);
`

var _ ledger.Reorger = (*Store)(nil)

// createSide creates the side table in a store that lacks it.
func (s *Store) createSide(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, sideSchema); err != nil {
		return s.fileErr("create side table", err)
	}
	return nil
}

// Reorg implements ledger.Reorger: the replaced blocks, their records and
// stored hashes leave the main chain and the new ones enter it in one
// transaction.
func (s *Store) Reorg(ctx context.Context, fork uint64, blocks []*ledger.Block, hashes [][]ledger.Hash) error {
	return s.ReorgWithPending(ctx, fork, blocks, hashes, nil, nil)
}

// ReorgWithPending reorganizes like Reorg and, in the same transaction,
// deletes the pending journal entries pendingIDs (the mempool entries the
// new blocks commit), as AppendWithPending does, and puts the entries put
// (as PutPending does; the mempool entries of the records the replaced
// blocks held that the new ones do not). After a crash the store holds
// either the old chain and the old journal or the new chain and the new
// journal: a record of an abandoned block is never neither committed nor
// pending.
func (s *Store) ReorgWithPending(ctx context.Context, fork uint64, blocks []*ledger.Block, hashes [][]ledger.Hash, pendingIDs []string, put []PendingItem) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("sqlitestore: reorg at %d: %w", fork, fmt.Errorf(format, args...))
	}
	head := s.head.Load()
	switch {
	case head == nil || fork > head.Height || fork > math.MaxInt64:
		return fail("fork above the head: %w", ledger.ErrOutOfOrder)
	case len(hashes) != len(blocks):
		return fail("%d blocks, %d hash lists: %w", len(blocks), len(hashes), ledger.ErrInvalidBlock)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail("begin: %w", err)
	}
	defer tx.Rollback()
	var data, hash []byte
	if err := tx.QueryRowContext(ctx, "SELECT header, hash FROM blocks WHERE height = ?", int64(fork)).Scan(&data, &hash); err != nil {
		return fail("%w", readErr(err, "header %d", fork))
	}
	parent, err := parseHeaderAt(data, hash, fork)
	if err != nil {
		return err
	}
	forkSize := int64(parent.LogSize)
	for i, b := range blocks {
		h := &b.Header
		switch want := ledger.StoredHashCount(int64(parent.LogSize+h.Records)) - ledger.StoredHashCount(int64(parent.LogSize)); {
		case h.Height != parent.Height+1 || h.Prev != parent.Hash():
			return fail("height %d does not follow %d: %w", h.Height, parent.Height, ledger.ErrOutOfOrder)
		case h.Records != uint64(len(b.Records)) || h.LogSize != parent.LogSize+h.Records:
			return fail("height %d: header says %d records ending the log at %d; body has %d after %d: %w",
				h.Height, h.Records, h.LogSize, len(b.Records), parent.LogSize, ledger.ErrInvalidBlock)
		case int64(len(hashes[i])) != want:
			return fail("height %d: %d stored hashes, want %d: %w", h.Height, len(hashes[i]), want, ledger.ErrInvalidBlock)
		}
		parent = h
	}
	// The replaced blocks become side blocks.
	for height := fork + 1; height <= head.Height; height++ {
		b, err := readBlock(ctx, tx, height)
		if err != nil {
			return fail("read replaced block: %w", err)
		}
		if err := putSide(ctx, tx, b); err != nil {
			return fail("%w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM chunks WHERE first >= ?; DELETE FROM authorities WHERE idx >= ?", forkSize, forkSize); err != nil {
		return fail("%w", err)
	}
	kw := s.keys.write(forkSize)
	if err := kw.cut(ctx, tx); err != nil {
		return fail("key index: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM blocks WHERE height > ?", int64(fork)); err != nil {
		return fail("%w", err)
	}
	size := uint64(forkSize)
	for i, b := range blocks {
		if err := insertBlock(ctx, tx, kw, b, hashes[i], size); err != nil {
			return fmt.Errorf("sqlitestore: reorg at %d: %w", fork, err)
		}
		hh := b.Hash()
		if _, err := tx.ExecContext(ctx, "DELETE FROM side WHERE hash = ?", hh[:]); err != nil {
			return fail("%w", err)
		}
		size = b.Header.LogSize
	}
	if err := deletePending(ctx, tx, pendingIDs); err != nil {
		return fail("%w", err)
	}
	if err := putPending(ctx, tx, put); err != nil {
		return fail("%w", err)
	}
	if err := tx.Commit(); err != nil {
		s.reloadHead(ctx)
		return fail("commit: %w", err)
	}
	kw.committed()
	c := *parent
	s.head.Store(&c)
	// The cache keeps the log's first forkSize records' hashes; should it
	// not be up to date, the next Append reads it again.
	s.cache.reorged(head, &c, forkSize, hashes)
	return nil
}

func putSide(ctx context.Context, tx *sql.Tx, b *ledger.Block) error {
	h := b.Hash()
	_, err := tx.ExecContext(ctx, "INSERT INTO side (hash, height, data) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING",
		h[:], int64(b.Header.Height), b.Format())
	return err
}

// PutSide implements ledger.Reorger.
func (s *Store) PutSide(ctx context.Context, b *ledger.Block) error {
	if b.Header.Records != uint64(len(b.Records)) || b.Header.Height > math.MaxInt64 {
		return fmt.Errorf("sqlitestore: side block %d: header says %d records, body has %d: %w", b.Header.Height, b.Header.Records, len(b.Records), ledger.ErrInvalidBlock)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: side block: %w", err)
	}
	defer tx.Rollback()
	h := b.Hash()
	var one int
	switch err := tx.QueryRowContext(ctx, "SELECT 1 FROM blocks WHERE height = ? AND hash = ?", int64(b.Header.Height), h[:]).Scan(&one); {
	case err == nil:
		return nil // on the main chain
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlitestore: side block: %w", err)
	}
	if err := putSide(ctx, tx, b); err != nil {
		return fmt.Errorf("sqlitestore: side block %s: %w", h, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: side block %s: %w", h, err)
	}
	return nil
}

// SideBlock implements ledger.Reorger.
func (s *Store) SideBlock(ctx context.Context, h ledger.Hash) (*ledger.Block, error) {
	var data []byte
	if err := s.r.QueryRowContext(ctx, "SELECT data FROM side WHERE hash = ?", h[:]).Scan(&data); err != nil {
		return nil, readErr(err, "side block %s", h)
	}
	b, err := ledger.ParseBlock(data)
	if err != nil {
		return nil, corruptRow(err, "side block %s", h)
	}
	if b.Hash() != h {
		return nil, corruptRow(fmt.Errorf("holds block %s", b.Hash()), "side block %s", h)
	}
	return b, nil
}

// DeleteSide implements ledger.Reorger, in one transaction.
func (s *Store) DeleteSide(ctx context.Context, hashes []ledger.Hash) error {
	if len(hashes) == 0 {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: delete side blocks: %w", err)
	}
	defer tx.Rollback()
	del, err := tx.PrepareContext(ctx, "DELETE FROM side WHERE hash = ?")
	if err != nil {
		return fmt.Errorf("sqlitestore: delete side blocks: %w", err)
	}
	defer del.Close()
	for _, h := range hashes {
		if _, err := del.ExecContext(ctx, h[:]); err != nil {
			return fmt.Errorf("sqlitestore: delete side block %s: %w", h, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: delete side blocks: %w", err)
	}
	return nil
}

// SideHeaders implements ledger.Reorger. It parses every side block.
func (s *Store) SideHeaders(ctx context.Context) ([]ledger.Header, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT hash, data FROM side ORDER BY height, hash")
	if err != nil {
		return nil, readErr(err, "side blocks")
	}
	defer rows.Close()
	var out []ledger.Header
	for rows.Next() {
		var hash, data []byte
		if err := rows.Scan(&hash, &data); err != nil {
			return nil, readErr(err, "side blocks")
		}
		b, err := ledger.ParseBlock(data)
		if err != nil {
			return nil, corruptRow(err, "side block %x", hash)
		}
		if hh := b.Hash(); string(hh[:]) != string(hash) {
			return nil, corruptRow(fmt.Errorf("holds block %s", hh), "side block %x", hash)
		}
		out = append(out, b.Header)
	}
	if err := rows.Err(); err != nil {
		return nil, readErr(err, "side blocks")
	}
	return out, nil
}
