package ledger

import (
	"context"
	"errors"
	"fmt"
)

// A Reorger is a Store whose main chain can switch to another branch, as a
// pow chain's does: blocks off the main chain (side blocks) are kept too.
// Implementations: ledgertest.MemStore and sqlitestore.Store; both pass
// ledgertest.TestStore's Reorg tests.
//
// Rules, besides Store's:
//   - Reorg is atomic: after a crash at any moment the store holds either
//     the old main chain or the new one, whole, never a mix and never
//     less. When it returns nil the new chain is durable.
//   - Reorg checks what a store can check cheaply, as Append does: fork is
//     at most the head's height, the blocks link to the block at fork and
//     to each other, each one's log size follows, the hash counts are what
//     the records add, and no key is committed twice on the new chain
//     (ErrConflict). A refused Reorg changes nothing. Full validation is
//     ValidateBranch's job, before Reorg.
//   - The blocks a Reorg takes off the main chain become side blocks; the
//     side blocks it puts on the main chain stop being side blocks.
//   - Log reads (Record, Records, ReadHashes), Lookup and block reads
//     follow the main chain: after a Reorg they answer for the new one.
type Reorger interface {
	Store

	// Reorg replaces the main chain's blocks above height fork with
	// blocks (blocks[0] at fork+1), whose stored log hashes are hashes
	// (hashes[i] for blocks[i], as ValidateBranch returns them).
	Reorg(ctx context.Context, fork uint64, blocks []*Block, hashes [][]Hash) error

	// PutSide stores b as a side block (a block off the main chain),
	// durably. Storing a side block again, or a block on the main chain,
	// does nothing. It checks only that b's header and body agree.
	PutSide(ctx context.Context, b *Block) error
	// SideBlock returns the side block of hash h (ErrNotFound if there
	// is none, or it is on the main chain).
	SideBlock(ctx context.Context, h Hash) (*Block, error)
	// SideHeaders returns the headers of every side block, by height.
	SideHeaders(ctx context.Context) ([]Header, error)
	// DeleteSide deletes the side blocks of hashes, durably (pruning
	// branches nobody needs). Hashes of blocks that are not side blocks,
	// main-chain blocks included, are ignored.
	DeleteSide(ctx context.Context, hashes []Hash) error
}

// ValidateBranch checks that blocks are a valid branch after the block at
// height fork of s's main chain (ValidateNext for each, against the chain
// up to fork and the blocks before it) and returns their stored log hashes
// for s.Reorg. On failure the error is the first invalid block's
// (a ValidationError), and good says how many blocks before it passed.
func ValidateBranch(ctx context.Context, s Store, fork uint64, blocks []*Block, seal SealChecker) (hashes [][]Hash, good int, err error) {
	o, err := NewOverlay(ctx, s, fork)
	if err != nil {
		return nil, 0, err
	}
	for i, b := range blocks {
		parent, _ := o.Head(ctx)
		stored, err := ValidateNext(ctx, o, parent, b, seal)
		if err != nil {
			return hashes, i, err
		}
		if err := o.Append(ctx, b, stored); err != nil {
			return hashes, i, err
		}
		hashes = append(hashes, stored)
	}
	return hashes, len(blocks), nil
}

// An Overlay is a read view of a Store's main chain up to a height, to
// which blocks can be appended in memory: the chain a reorg would make,
// before it is made. Reads at or below the fork go to the base store,
// which must not change while the Overlay is used. It is not safe for
// concurrent use.
type Overlay struct {
	base     Store
	fork     Header
	baseHash int64 // stored hashes of the log up to fork
	blocks   []*Block
	hashes   []Hash
	keys     map[Key]Entry
	entries  []Entry
}

var _ Store = (*Overlay)(nil)

// NewOverlay returns a view of s's main chain up to height fork.
func NewOverlay(ctx context.Context, s Store, fork uint64) (*Overlay, error) {
	h, err := s.Header(ctx, fork)
	if err != nil {
		return nil, fmt.Errorf("ledger: overlay at %d: %w", fork, err)
	}
	return &Overlay{base: s, fork: *h, baseHash: StoredHashCount(int64(h.LogSize)), keys: make(map[Key]Entry)}, nil
}

// Blocks returns the blocks appended to the view.
func (o *Overlay) Blocks() []*Block { return o.blocks }

// Append adds b after the view's head, checked as Store.Append says.
func (o *Overlay) Append(ctx context.Context, b *Block, hashes []Hash) error {
	head, _ := o.Head(ctx)
	h := &b.Header
	switch {
	case h.Height != head.Height+1 || h.Prev != head.Hash():
		return fmt.Errorf("ledger: overlay: append height %d after %d: %w", h.Height, head.Height, ErrOutOfOrder)
	case h.Records != uint64(len(b.Records)) || h.LogSize != head.LogSize+h.Records:
		return fmt.Errorf("ledger: overlay: append height %d: record counts disagree: %w", h.Height, ErrInvalidBlock)
	case int64(len(hashes)) != StoredHashCount(int64(h.LogSize))-StoredHashCount(int64(head.LogSize)):
		return fmt.Errorf("ledger: overlay: append height %d: %d hashes: %w", h.Height, len(hashes), ErrInvalidBlock)
	}
	seen := make(map[Key]bool, len(b.Records))
	keys := make([]Key, len(b.Records))
	for i := range b.Records {
		k := b.Records[i].Key
		if seen[k] {
			return fmt.Errorf("ledger: overlay: key %s: %w", k, ErrConflict)
		}
		seen[k] = true
		keys[i] = k
	}
	switch i, err := o.FirstCommitted(ctx, keys); {
	case err != nil:
		return fmt.Errorf("ledger: overlay: append height %d: %w", h.Height, err)
	case i >= 0:
		return fmt.Errorf("ledger: overlay: key %s: %w", keys[i], ErrConflict)
	}
	o.blocks = append(o.blocks, b)
	o.hashes = append(o.hashes, hashes...)
	for i := range b.Records {
		e := Entry{Record: b.Records[i], Index: int64(head.LogSize) + int64(i), Height: h.Height}
		o.entries = append(o.entries, e)
		o.keys[e.Record.Key] = e
	}
	return nil
}

// Head returns the view's newest header.
func (o *Overlay) Head(ctx context.Context) (*Header, error) {
	if n := len(o.blocks); n > 0 {
		h := o.blocks[n-1].Header
		return &h, nil
	}
	h := o.fork
	return &h, nil
}

// Header returns the view's header at height.
func (o *Overlay) Header(ctx context.Context, height uint64) (*Header, error) {
	if height <= o.fork.Height {
		return o.base.Header(ctx, height)
	}
	if i := height - o.fork.Height - 1; i < uint64(len(o.blocks)) {
		h := o.blocks[i].Header
		return &h, nil
	}
	return nil, fmt.Errorf("ledger: overlay: header %d: %w", height, ErrNotFound)
}

// Headers returns up to limit of the view's headers from height from on.
func (o *Overlay) Headers(ctx context.Context, from uint64, limit int) ([]Header, error) {
	var out []Header
	for h := from; len(out) < limit; h++ {
		x, err := o.Header(ctx, h)
		if err != nil {
			break
		}
		out = append(out, *x)
	}
	return out, nil
}

// Block returns the view's block at height.
func (o *Overlay) Block(ctx context.Context, height uint64) (*Block, error) {
	if height <= o.fork.Height {
		return o.base.Block(ctx, height)
	}
	if i := height - o.fork.Height - 1; i < uint64(len(o.blocks)) {
		return o.blocks[i], nil
	}
	return nil, fmt.Errorf("ledger: overlay: block %d: %w", height, ErrNotFound)
}

// Record returns the view's record at log index.
func (o *Overlay) Record(ctx context.Context, index int64) (*Entry, error) {
	if index >= 0 && index < int64(o.fork.LogSize) {
		return o.base.Record(ctx, index)
	}
	if i := index - int64(o.fork.LogSize); i >= 0 && i < int64(len(o.entries)) {
		e := o.entries[i]
		return &e, nil
	}
	return nil, fmt.Errorf("ledger: overlay: record %d: %w", index, ErrNotFound)
}

// Records returns up to limit of the view's records from log index from.
func (o *Overlay) Records(ctx context.Context, from int64, limit int) ([]Entry, error) {
	var out []Entry
	for i := max(from, 0); len(out) < limit; i++ {
		e, err := o.Record(ctx, i)
		if err != nil {
			break
		}
		out = append(out, *e)
	}
	return out, nil
}

// Lookup returns the record committed for key on the view's chain.
func (o *Overlay) Lookup(ctx context.Context, key Key) (*Entry, error) {
	if e, ok := o.keys[key]; ok {
		return &e, nil
	}
	e, err := o.base.Lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	if e.Height > o.fork.Height {
		return nil, fmt.Errorf("ledger: overlay: key %s: %w", key, ErrNotFound)
	}
	return e, nil
}

// FirstCommitted returns the position in keys of the first key committed in
// the view, or -1 (see KeyChecker): in the blocks appended to the view, or
// in the base store at or below the fork.
func (o *Overlay) FirstCommitted(ctx context.Context, keys []Key) (int, error) {
	first := -1
	for i, k := range keys {
		if _, ok := o.keys[k]; ok {
			first = i
			break
		}
	}
	rest := keys
	if first >= 0 {
		rest = keys[:first]
	}
	// A key the base has committed above the fork is not in the view.
	for off := 0; len(rest) > 0; {
		i, err := FirstCommitted(ctx, o.base, rest)
		if err != nil || i < 0 {
			return first, err
		}
		switch e, err := o.base.Lookup(ctx, rest[i]); {
		case err == nil && e.Height <= o.fork.Height:
			return off + i, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return 0, err
		}
		off += i + 1
		rest = rest[i+1:]
	}
	return first, nil
}

// ReadHashes returns the view's stored log hashes.
func (o *Overlay) ReadHashes(ctx context.Context, indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	var low []int64
	for _, x := range indexes {
		if x < o.baseHash {
			low = append(low, x)
		}
	}
	var got []Hash
	if len(low) > 0 {
		var err error
		if got, err = o.base.ReadHashes(ctx, low); err != nil {
			return nil, err
		}
	}
	for i, x := range indexes {
		switch {
		case x < 0:
			return nil, fmt.Errorf("ledger: overlay: stored hash %d: %w", x, ErrNotFound)
		case x < o.baseHash:
			out[i], got = got[0], got[1:]
		case x-o.baseHash < int64(len(o.hashes)):
			out[i] = o.hashes[x-o.baseHash]
		default:
			return nil, fmt.Errorf("ledger: overlay: stored hash %d: %w", x, ErrNotFound)
		}
	}
	return out, nil
}

// Close does nothing: the base store is the caller's.
func (o *Overlay) Close() error { return nil }

// Authorities returns the view's authority changes: the base store's up to
// the fork, then those of the blocks appended (pow chains have none).
func (o *Overlay) Authorities(ctx context.Context) ([]AuthorityEntry, error) {
	es, err := o.base.Authorities(ctx)
	if err != nil {
		return nil, err
	}
	var out []AuthorityEntry
	for _, e := range es {
		if e.Height <= o.fork.Height {
			out = append(out, e)
		}
	}
	for _, b := range o.blocks {
		for i := range b.Authority {
			out = append(out, AuthorityEntry{Change: b.Authority[i], Index: int64(b.Header.LogSize) - int64(len(b.Authority)-i), Height: b.Header.Height})
		}
	}
	return out, nil
}
