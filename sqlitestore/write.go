package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/vcsledger/vcsledger/ledger"
)

// Append stores b as the next block with hashes, the stored log hashes its
// records add, in one transaction (see ledger.Store). It refuses a block at
// another height than head+1 or whose prev is not the head (ErrOutOfOrder),
// a hash count other than what the records add (ledger.ErrInvalidBlock) and
// a key already committed or twice in b (ErrConflict); a refused block
// leaves nothing behind.
func (s *Store) Append(ctx context.Context, b *ledger.Block, hashes []ledger.Hash) error {
	return s.AppendWithPending(ctx, b, hashes, nil)
}

// AppendWithPending appends b like Append and, in the same transaction,
// deletes the pending journal entries pendingIDs (the mempool entries b
// commits; absent ids are ignored). A crash therefore never leaves a
// committed record pending, nor loses a pending one its block did not
// commit.
func (s *Store) AppendWithPending(ctx context.Context, b *ledger.Block, hashes []ledger.Hash, pendingIDs []string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	h := &b.Header
	fail := func(format string, args ...any) error {
		return fmt.Errorf("sqlitestore: append height %d: %w", h.Height, fmt.Errorf(format, args...))
	}
	head := s.head.Load()
	var size uint64
	switch {
	case head == nil && (h.Height != 0 || !h.Prev.IsZero()):
		return fmt.Errorf("sqlitestore: append height %d with prev %s to an empty store: %w", h.Height, h.Prev, ledger.ErrOutOfOrder)
	case head != nil && h.Height != head.Height+1:
		return fmt.Errorf("sqlitestore: append height %d after head %d: %w", h.Height, head.Height, ledger.ErrOutOfOrder)
	case head != nil && h.Prev != head.Hash():
		return fmt.Errorf("sqlitestore: append height %d: prev %s is not the head %s: %w", h.Height, h.Prev, head.Hash(), ledger.ErrOutOfOrder)
	}
	if head != nil {
		size = head.LogSize
	}
	if h.Records != uint64(b.Leaves()) || h.LogSize != size+h.Records {
		return fmt.Errorf("sqlitestore: append height %d: header says %d records ending the log at %d; body has %d after %d: %w",
			h.Height, h.Records, h.LogSize, b.Leaves(), size, ledger.ErrInvalidBlock)
	}
	base := ledger.StoredHashCount(int64(size))
	if want := ledger.StoredHashCount(int64(h.LogSize)) - base; int64(len(hashes)) != want {
		return fmt.Errorf("sqlitestore: append height %d: %d stored hashes, %d records after %d add %d: %w",
			h.Height, len(hashes), len(b.Records), size, want, ledger.ErrInvalidBlock)
	}

	// Once begun, the transaction runs to its end whatever ctx does: with
	// a context that can be cancelled, go-sqlite3 watches every statement
	// from a goroutine of its own, which made appends 15-25% slower on a
	// busy node.
	if err := ctx.Err(); err != nil {
		return fail("%w", err)
	}
	ctx = context.WithoutCancel(ctx)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail("begin: %w", err)
	}
	defer tx.Rollback()
	kw := s.keys.write(int64(size))
	if err := insertBlock(ctx, tx, kw, b, hashes, size); err != nil {
		return err
	}
	if err := deletePending(ctx, tx, pendingIDs); err != nil {
		return fail("%w", err)
	}
	if err := tx.Commit(); err != nil {
		// SQLite rolls back a transaction whose COMMIT fails; make sure the
		// head is what the file holds.
		s.reloadHead(ctx)
		return fail("commit: %w", err)
	}
	kw.committed()
	c := *h
	s.head.Store(&c)
	s.mergeKeys(ctx, int64(h.LogSize))
	if !s.cache.appended(head, &c, int64(size), hashes) {
		// After a reorg or a failed commit: read it again. Should that
		// fail, proofs read every hash from the file until it succeeds.
		s.loadCache(context.WithoutCancel(ctx), s.w)
	}
	return nil
}

// reloadHead sets the head from the file, after a failed commit.
func (s *Store) reloadHead(ctx context.Context) {
	var data []byte
	err := s.w.QueryRowContext(context.WithoutCancel(ctx), "SELECT header FROM blocks ORDER BY height DESC LIMIT 1").Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		s.head.Store(nil)
	case err == nil:
		if h, err := ledger.ParseHeader(data); err == nil {
			s.head.Store(h)
		}
	}
}

// insertBlock writes b, whose log starts at size records, with the stored
// log hashes its records add, in tx, and adds its keys to kw. A key
// already committed, or twice in b, is ErrConflict.
func insertBlock(ctx context.Context, tx *sql.Tx, kw *keyWrite, b *ledger.Block, hashes []ledger.Hash, size uint64) error {
	h := &b.Header
	fail := func(format string, args ...any) error {
		return fmt.Errorf("sqlitestore: append height %d: %w", h.Height, fmt.Errorf(format, args...))
	}
	hash := h.Hash()
	var cert []byte
	if b.Certificate != nil {
		cert = b.Certificate.Format()
	}
	atts := encodeAttestations(h, b.Records, b.Attestations)

	if _, err := tx.ExecContext(ctx, "INSERT INTO blocks (height, hash, header, first_index, cert, attestations) VALUES (?, ?, ?, ?, ?, ?)",
		int64(h.Height), hash[:], h.Format(), int64(size), cert, atts); err != nil {
		return fail("%w", err)
	}
	if b.Leaves() == 0 {
		return nil
	}
	keys := make([]string, len(b.Records))
	for i := range b.Records {
		keys[i] = b.Records[i].Key.String()
	}
	key, err := kw.conflict(ctx, tx, keys, int64(size))
	switch {
	case err != nil:
		return fail("key index: %w", err)
	case key != "":
		return fmt.Errorf("sqlitestore: append height %d: key %s: %w", h.Height, key, ledger.ErrConflict)
	}
	// The entries' canonical bytes, in one buffer.
	entries := make([][]byte, 0, b.Leaves())
	buf := make([]byte, 0, 256*b.Leaves())
	for i := range b.Records {
		at := len(buf)
		buf = b.Records[i].AppendFormat(buf)
		entries = append(entries, buf[at:len(buf):len(buf)])
	}
	for i := range b.Authority {
		entries = append(entries, b.Authority[i].Format())
		idx := int64(size) + int64(len(b.Records)+i)
		if _, err := tx.ExecContext(ctx, "INSERT INTO authorities (idx) VALUES (?)", idx); err != nil {
			return fail("authority change %d: %w", idx, err)
		}
	}
	stored := make([]byte, 0, 32*len(hashes))
	for _, x := range hashes {
		stored = append(stored, x[:]...)
	}
	if err := insertChunks(ctx, tx, int64(h.Height), int64(size), entries, stored); err != nil {
		return fail("%w", err)
	}
	return nil
}

// authorityMagic begins an authority change's canonical bytes
// (docs/FORMAT.md, "Authority change").
const authorityMagic = "vcsledger-authority/1\n"
