package ledgertest

import (
	"context"
	"fmt"
	"sort"

	"github.com/vcsledger/vcsledger/ledger"
)

// Reorg implements ledger.Reorger.
func (m *MemStore) Reorg(ctx context.Context, fork uint64, blocks []*ledger.Block, hashes [][]ledger.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if fork >= uint64(len(m.blocks)) {
		return fmt.Errorf("memstore: reorg at %d above head %d: %w", fork, len(m.blocks)-1, ledger.ErrOutOfOrder)
	}
	if len(hashes) != len(blocks) {
		return fmt.Errorf("memstore: reorg: %d blocks, %d hash lists: %w", len(blocks), len(hashes), ledger.ErrInvalidBlock)
	}
	// Check the new chain against the kept one before changing anything.
	parent := m.blocks[fork].Header
	seen := make(map[ledger.Key]bool)
	for i, b := range blocks {
		h := &b.Header
		if h.Height != parent.Height+1 || h.Prev != parent.Hash() {
			return fmt.Errorf("memstore: reorg: height %d does not follow %d: %w", h.Height, parent.Height, ledger.ErrOutOfOrder)
		}
		if h.Records != uint64(len(b.Records)) || h.LogSize != parent.LogSize+h.Records {
			return fmt.Errorf("memstore: reorg: height %d: record counts disagree: %w", h.Height, ledger.ErrInvalidBlock)
		}
		if want := ledger.StoredHashCount(int64(h.LogSize)) - ledger.StoredHashCount(int64(parent.LogSize)); int64(len(hashes[i])) != want {
			return fmt.Errorf("memstore: reorg: height %d: %d hashes, want %d: %w", h.Height, len(hashes[i]), want, ledger.ErrInvalidBlock)
		}
		for _, r := range b.Records {
			idx, ok := m.keys[r.Key]
			if ok && m.records[idx].Height <= fork || seen[r.Key] {
				return fmt.Errorf("memstore: reorg: key %s: %w", r.Key, ledger.ErrConflict)
			}
			seen[r.Key] = true
		}
		parent = *h
	}
	if m.side == nil {
		m.side = make(map[ledger.Hash]*ledger.Block)
	}
	size := m.blocks[fork].Header.LogSize
	for _, b := range m.blocks[fork+1:] {
		m.side[b.Hash()] = b
	}
	for _, e := range m.records[size:] {
		delete(m.keys, e.Record.Key)
	}
	m.blocks = m.blocks[:fork+1]
	m.records = m.records[:size]
	m.hashes = m.hashes[:ledger.StoredHashCount(int64(size))]
	for i, b := range blocks {
		delete(m.side, b.Hash())
		m.blocks = append(m.blocks, copyBlock(b))
		for j, r := range b.Records {
			idx := int64(b.Header.LogSize-b.Header.Records) + int64(j)
			m.records = append(m.records, ledger.Entry{Record: r, Index: idx, Height: b.Header.Height})
			m.keys[r.Key] = idx
		}
		m.hashes = append(m.hashes, hashes[i]...)
	}
	return nil
}

// PutSide implements ledger.Reorger.
func (m *MemStore) PutSide(ctx context.Context, b *ledger.Block) error {
	if b.Header.Records != uint64(len(b.Records)) {
		return fmt.Errorf("memstore: side block: header says %d records, body has %d: %w", b.Header.Records, len(b.Records), ledger.ErrInvalidBlock)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := b.Hash()
	if n := b.Header.Height; n < uint64(len(m.blocks)) && m.blocks[n].Hash() == h {
		return nil
	}
	if m.side == nil {
		m.side = make(map[ledger.Hash]*ledger.Block)
	}
	if m.side[h] == nil {
		m.side[h] = copyBlock(b)
	}
	return nil
}

// SideBlock implements ledger.Reorger.
func (m *MemStore) SideBlock(ctx context.Context, h ledger.Hash) (*ledger.Block, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	b := m.side[h]
	if b == nil {
		return nil, fmt.Errorf("memstore: side block %s: %w", h, ledger.ErrNotFound)
	}
	return copyBlock(b), nil
}

// DeleteSide implements ledger.Reorger.
func (m *MemStore) DeleteSide(ctx context.Context, hashes []ledger.Hash) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range hashes {
		delete(m.side, h)
	}
	return nil
}

// SideHeaders implements ledger.Reorger.
func (m *MemStore) SideHeaders(ctx context.Context) ([]ledger.Header, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]ledger.Header, 0, len(m.side))
	for _, b := range m.side {
		out = append(out, b.Header)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Height != out[j].Height {
			return out[i].Height < out[j].Height
		}
		hi, hj := out[i].Hash(), out[j].Hash()
		return string(hi[:]) < string(hj[:])
	})
	return out, nil
}
