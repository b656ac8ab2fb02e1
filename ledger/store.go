package ledger

import (
	"context"
	"errors"
)

// Errors a Store returns, which callers map with errors.Is.
var (
	// ErrNotFound: no such block, record or key.
	ErrNotFound = errors.New("ledger: not found")
	// ErrConflict: the key is already committed (with this or another record).
	ErrConflict = errors.New("ledger: key already committed")
	// ErrCorrupt: the stored data fails verification; it must not be served.
	ErrCorrupt = errors.New("ledger: store corrupt")
	// ErrOutOfOrder: a block appended at a height other than head+1.
	ErrOutOfOrder = errors.New("ledger: block out of order")
)

// An Entry is a committed record with its place in the log and the chain.
// An entry of the log that is an authority change, not a key record, has
// Authority set and a zero Record.
type Entry struct {
	Record    Record
	Authority *AuthorityChange
	Index     int64  // position in the log, from 0
	Height    uint64 // height of the block that committed it
}

// A Store keeps one chain: blocks from genesis, their records and the log's
// stored hashes. Implementations: ledgertest.MemStore (memory) and
// sqlitestore.Store (SQLite); both pass ledgertest.TestStore.
//
// Rules every implementation follows:
//   - Append is atomic: after a crash at any moment, either the whole block
//     (header, records, certificate, attestations, stored hashes) is there
//     or none of it. When Append returns nil the block is durable.
//   - Append checks only what a store can check cheaply: the height is
//     head+1 (0 into an empty store; else ErrOutOfOrder), the prev hash
//     matches the head, len(hashes) is what the block adds to the log, and
//     no key is committed twice (ErrConflict). Full validation is
//     ValidateNext's job, before Append.
//   - A block's log entries are its records, then its authority changes;
//     Record and Records return both kinds (Entry.Authority), Lookup only
//     key records.
//   - Reads of what does not exist return an error wrapping ErrNotFound.
//   - Methods are safe for concurrent use; reads see only whole blocks.
//   - Returned values are the caller's to keep and modify.
type Store interface {
	// Append stores b as the next block, with hashes, the stored log hashes
	// the block's records add (see AppendLog).
	Append(ctx context.Context, b *Block, hashes []Hash) error

	// Head returns the newest header, or ErrNotFound for an empty store.
	Head(ctx context.Context) (*Header, error)
	// Header returns the header at height.
	Header(ctx context.Context, height uint64) (*Header, error)
	// Headers returns up to limit headers from height from on, in order.
	Headers(ctx context.Context, from uint64, limit int) ([]Header, error)
	// Block returns the whole block at height.
	Block(ctx context.Context, height uint64) (*Block, error)

	// Record returns the record at log index.
	Record(ctx context.Context, index int64) (*Entry, error)
	// Records returns up to limit records from log index from on, in order.
	Records(ctx context.Context, from int64, limit int) ([]Entry, error)
	// Lookup returns the record committed for key.
	Lookup(ctx context.Context, key Key) (*Entry, error)
	// Authorities returns every authority change committed, in log
	// order, without reading every block.
	Authorities(ctx context.Context) ([]AuthorityEntry, error)

	// ReadHashes returns the stored log hashes at the given tlog
	// stored-hash indexes, in order (one per index).
	ReadHashes(ctx context.Context, indexes []int64) ([]Hash, error)

	// Close releases the store's resources.
	Close() error
}

// A KeyChecker is a Store that can tell whether keys are committed without
// reading their records: ValidateNext asks it about a whole block's keys at
// once. sqlitestore.Store, ledgertest.MemStore and Overlay have it.
type KeyChecker interface {
	// FirstCommitted returns the position in keys of the first key that is
	// committed, or -1 when none is.
	FirstCommitted(ctx context.Context, keys []Key) (int, error)
}

// FirstCommitted returns the position in keys of the first key committed in
// s, or -1 when none is: through s's KeyChecker when it has one, else by
// Lookup of each key.
func FirstCommitted(ctx context.Context, s Store, keys []Key) (int, error) {
	if kc, ok := s.(KeyChecker); ok {
		return kc.FirstCommitted(ctx, keys)
	}
	for i, k := range keys {
		switch _, err := s.Lookup(ctx, k); {
		case err == nil:
			return i, nil
		case !errors.Is(err, ErrNotFound):
			return 0, err
		}
	}
	return -1, nil
}

// HashReaderOf adapts s to a HashReader bound to ctx.
func HashReaderOf(ctx context.Context, s Store) HashReader {
	return HashReaderFunc(func(indexes []int64) ([]Hash, error) { return s.ReadHashes(ctx, indexes) })
}
