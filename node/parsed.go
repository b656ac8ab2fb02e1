package node

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/p2p"
)

// Large gossip messages (proposals and blocks of thousands of records) are
// parsed once: the topic validator parses a message, and Deliver and every
// later copy of the same bytes (the engine rebroadcasts its proposal; every
// validator publishes the block it committed) take the parsed value from
// here. Parsed values are shared and must not be modified.
const (
	parsedMinBytes = 64 << 10 // smaller messages are cheaper to parse again than to hash
	parsedEntries  = 8
)

// parsedCache maps the SHA-256 of message bytes to their parsed value,
// keeping the last parsedEntries.
type parsedCache struct {
	mu    sync.Mutex
	items map[[32]byte]any
	order [][32]byte
}

func (c *parsedCache) get(sum [32]byte) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.items[sum]
	return v, ok
}

func (c *parsedCache) put(sum [32]byte, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = make(map[[32]byte]any)
	}
	if _, ok := c.items[sum]; ok {
		return
	}
	if len(c.order) >= parsedEntries {
		delete(c.items, c.order[0])
		c.order = c.order[1:]
	}
	c.items[sum] = v
	c.order = append(c.order, sum)
}

// parseCached returns parse(data), from the cache for large data.
func parseCached[T any](c *parsedCache, data []byte, parse func([]byte) (*T, error)) (*T, error) {
	if len(data) < parsedMinBytes {
		return parse(data)
	}
	sum := sha256.Sum256(data)
	if v, ok := c.get(sum); ok {
		return v.(*T), nil
	}
	v, err := parse(data)
	if err != nil {
		return nil, err
	}
	c.put(sum, v)
	return v, nil
}

func (n *Node) parseConsensus(data []byte) (*consensus.Message, error) {
	return parseCached(&n.parsed, data, consensus.ParseMessage)
}

func (n *Node) parseBlock(data []byte) (*ledger.Block, error) {
	return parseCached(&n.parsed, data, ledger.ParseBlock)
}

// storedBlock reports whether data is the encoding of a block whose header
// the store already holds, reading only its header section: a block
// every validator publishes after committing it costs the others no parse.
func (n *Node) storedBlock(ctx context.Context, data []byte) bool {
	hdr, err := p2p.BlockHeader(data)
	if err != nil {
		return false
	}
	have, err := n.store.Header(ctx, hdr.Height)
	return err == nil && have.Hash() == hdr.Hash()
}
