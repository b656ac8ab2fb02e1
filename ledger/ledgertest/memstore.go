// Package ledgertest provides what tests of ledger.Store implementations and
// of packages built on the ledger need: MemStore, an in-memory Store; the
// conformance suite TestStore that every Store implementation runs; and
// Chain, a builder of valid signed chains.
package ledgertest

import (
	"context"
	"fmt"
	"sync"

	"github.com/vcsledger/vcsledger/ledger"
)

// A MemStore is an in-memory ledger.Store, safe for concurrent use.
type MemStore struct {
	mu      sync.RWMutex
	blocks  []*ledger.Block
	records []ledger.Entry
	keys    map[ledger.Key]int64
	hashes  []ledger.Hash
	side    map[ledger.Hash]*ledger.Block // side blocks (memreorg.go)
}

var _ ledger.Reorger = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{keys: make(map[ledger.Key]int64)} }

// Append implements ledger.Store.
func (m *MemStore) Append(ctx context.Context, b *ledger.Block, hashes []ledger.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := &b.Header
	var oldSize uint64
	if n := len(m.blocks); n == 0 {
		if h.Height != 0 || !h.Prev.IsZero() {
			return fmt.Errorf("memstore: append height %d to empty store: %w", h.Height, ledger.ErrOutOfOrder)
		}
	} else {
		head := &m.blocks[n-1].Header
		if h.Height != head.Height+1 || h.Prev != head.Hash() {
			return fmt.Errorf("memstore: append height %d after %d: %w", h.Height, head.Height, ledger.ErrOutOfOrder)
		}
		oldSize = head.LogSize
	}
	if h.Records != uint64(b.Leaves()) || h.LogSize != oldSize+h.Records {
		return fmt.Errorf("memstore: append height %d: record counts disagree: %w", h.Height, ledger.ErrInvalidBlock)
	}
	if want := ledger.StoredHashCount(int64(h.LogSize)) - ledger.StoredHashCount(int64(oldSize)); int64(len(hashes)) != want {
		return fmt.Errorf("memstore: append height %d: %d hashes, want %d: %w", h.Height, len(hashes), want, ledger.ErrInvalidBlock)
	}
	seen := make(map[ledger.Key]bool)
	for _, r := range b.Records {
		if _, ok := m.keys[r.Key]; ok || seen[r.Key] {
			return fmt.Errorf("memstore: key %s: %w", r.Key, ledger.ErrConflict)
		}
		seen[r.Key] = true
	}
	m.blocks = append(m.blocks, copyBlock(b))
	for i, r := range b.Records {
		idx := int64(oldSize) + int64(i)
		m.records = append(m.records, ledger.Entry{Record: r, Index: idx, Height: h.Height})
		m.keys[r.Key] = idx
	}
	for i := range b.Authority {
		c := copyChange(&b.Authority[i])
		idx := int64(oldSize) + int64(len(b.Records)+i)
		m.records = append(m.records, ledger.Entry{Authority: &c, Index: idx, Height: h.Height})
	}
	m.hashes = append(m.hashes, hashes...)
	return nil
}

func copyBlock(b *ledger.Block) *ledger.Block {
	c := &ledger.Block{Header: b.Header}
	c.Records = append([]ledger.Record(nil), b.Records...)
	for i := range b.Authority {
		c.Authority = append(c.Authority, copyChange(&b.Authority[i]))
	}
	c.Attestations = append([]ledger.Attestation(nil), b.Attestations...)
	if b.Certificate != nil {
		cc := *b.Certificate
		cc.Sigs = append([]ledger.CertSig(nil), b.Certificate.Sigs...)
		c.Certificate = &cc
	}
	return c
}

func copyChange(c *ledger.AuthorityChange) ledger.AuthorityChange {
	d := *c
	d.Sigs = append([]ledger.CertSig(nil), c.Sigs...)
	return d
}

// Authorities implements ledger.Store.
func (m *MemStore) Authorities(ctx context.Context) ([]ledger.AuthorityEntry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []ledger.AuthorityEntry
	for _, e := range m.records {
		if e.Authority != nil {
			out = append(out, ledger.AuthorityEntry{Change: copyChange(e.Authority), Index: e.Index, Height: e.Height})
		}
	}
	return out, nil
}

// Head implements ledger.Store.
func (m *MemStore) Head(ctx context.Context) (*ledger.Header, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.blocks) == 0 {
		return nil, fmt.Errorf("memstore: head: %w", ledger.ErrNotFound)
	}
	h := m.blocks[len(m.blocks)-1].Header
	return &h, nil
}

// Header implements ledger.Store.
func (m *MemStore) Header(ctx context.Context, height uint64) (*ledger.Header, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if height >= uint64(len(m.blocks)) {
		return nil, fmt.Errorf("memstore: header %d: %w", height, ledger.ErrNotFound)
	}
	h := m.blocks[height].Header
	return &h, nil
}

// Headers implements ledger.Store.
func (m *MemStore) Headers(ctx context.Context, from uint64, limit int) ([]ledger.Header, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []ledger.Header
	for h := from; h < uint64(len(m.blocks)) && len(out) < limit; h++ {
		out = append(out, m.blocks[h].Header)
	}
	return out, nil
}

// Block implements ledger.Store.
func (m *MemStore) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if height >= uint64(len(m.blocks)) {
		return nil, fmt.Errorf("memstore: block %d: %w", height, ledger.ErrNotFound)
	}
	return copyBlock(m.blocks[height]), nil
}

// Record implements ledger.Store.
func (m *MemStore) Record(ctx context.Context, index int64) (*ledger.Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if index < 0 || index >= int64(len(m.records)) {
		return nil, fmt.Errorf("memstore: record %d: %w", index, ledger.ErrNotFound)
	}
	e := copyEntry(m.records[index])
	return &e, nil
}

func copyEntry(e ledger.Entry) ledger.Entry {
	if e.Authority != nil {
		c := copyChange(e.Authority)
		e.Authority = &c
	}
	return e
}

// Records implements ledger.Store.
func (m *MemStore) Records(ctx context.Context, from int64, limit int) ([]ledger.Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []ledger.Entry
	for i := max(from, 0); i < int64(len(m.records)) && len(out) < limit; i++ {
		out = append(out, copyEntry(m.records[i]))
	}
	return out, nil
}

// Lookup implements ledger.Store.
func (m *MemStore) Lookup(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	idx, ok := m.keys[key]
	if !ok {
		return nil, fmt.Errorf("memstore: key %s: %w", key, ledger.ErrNotFound)
	}
	e := m.records[idx]
	return &e, nil
}

// FirstCommitted implements ledger.KeyChecker.
func (m *MemStore) FirstCommitted(ctx context.Context, keys []ledger.Key) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for i, k := range keys {
		if _, ok := m.keys[k]; ok {
			return i, nil
		}
	}
	return -1, nil
}

// ReadHashes implements ledger.Store.
func (m *MemStore) ReadHashes(ctx context.Context, indexes []int64) ([]ledger.Hash, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]ledger.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("memstore: stored hash %d: %w", x, ledger.ErrNotFound)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

// Close implements ledger.Store.
func (m *MemStore) Close() error { return nil }
