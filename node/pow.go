package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/mempool"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// A pow node (DESIGN §3 pow) keeps every block it accepted, main chain and
// side branches, in a consensus.Tree and in the store (side blocks in the
// store's side table), and follows the tree's fork choice: when the best
// tip is not the store's head, the branch from their fork is validated
// against the chain up to the fork (ledger.ValidateBranch) and the store
// switches to it in one transaction (sqlitestore.Store.ReorgWithPending).
// Records of the blocks it abandoned go back into the mempool unless the new
// chain has them, written to the pending journal in that same transaction. Blocks arrive from gossip (blocks topic), from the miner
// and from sync (pow_sync.go); all go through accept.

// Limits of the pow block handling.
const (
	maxOrphans      = 1024            // blocks kept while their ancestors are fetched
	maxPruned       = 4096            // pruned block hashes remembered
	powInbox        = 256             // gossiped blocks waiting to be handled
	powRefreshEvery = 2 * time.Second // a mining template is rebuilt at least this often
	pruneFactor     = 10              // side branches forking deeper than this many times the confirmations are pruned
)

// errBadBlock wraps the refusals of a block that put its sender at fault:
// it fails a rule any node checks (work, bits, time order, attestations,
// the block's body against the chain). The peer that served it is struck
// (p2p.Host.Strike), as gossip validation strikes senders. A record that
// this node hashes to something else is not one: the tag may have moved.
var errBadBlock = errors.New("invalid block")

func badBlock(err error) error {
	if err == nil || errors.Is(err, errBadBlock) {
		return err
	}
	return fmt.Errorf("%w: %w", errBadBlock, err)
}

// pruneDepth returns K: a side branch whose fork is more than K blocks
// below the main chain's head is deleted (from the block tree and the
// store). A heavier branch forking deeper is still followed: sync fetches
// it again from the fork.
func pruneDepth(confirmations uint64) uint64 {
	return pruneFactor * max(confirmations, 1)
}

// powState is the pow engine's state. mu guards everything in it and
// serializes block handling.
type powState struct {
	mu      sync.Mutex
	params  consensus.PoWParams
	tree    *consensus.Tree
	seal    *consensus.PoWSeal // ancestors from the tree
	main    *consensus.TreeNode
	orphans map[ledger.Hash]*ledger.Block       // by hash, parent unknown
	miner   *consensus.Miner                    // nil: not mining
	job     *ledger.Block                       // the block being mined (nonce 0)
	jobID   uint64                              // its number from the miner
	checked map[ledger.Key]ledger.Record        // records this node fetched and hashed itself
	side    map[ledger.Hash]*consensus.TreeNode // blocks of the tree off the main chain
	pruned  map[ledger.Hash]bool                // blocks pruned, not fetched again while remembered
	syncing bool                                // a sync is fetching a branch: no pruning meanwhile

	// Mining figures for /v1/status: blocks mined, and the hash rate
	// measured at each template refresh.
	mined      uint64
	rate       float64
	rateAt     time.Time
	rateHashes uint64

	inbox chan powMsg
	kick  chan peer.ID  // sync from this peer ("" any)
	head  chan struct{} // closed and replaced when the main chain changes
}

type powMsg struct {
	b    *ledger.Block
	from peer.ID
}

// initPoW sets up a pow node in New.
func (n *Node) initPoW() error {
	p, err := consensus.NewPoWParams(n.g)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	signer, err := ledger.NewSigner(n.cfg.Key)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	// A miner attests the records it fetched and hashed (its attester runs
	// when it mines, maybeAttest): those are the records it includes.
	n.signer = signer
	n.pow = &powState{
		params:  p,
		orphans: make(map[ledger.Hash]*ledger.Block),
		checked: make(map[ledger.Key]ledger.Record),
		side:    make(map[ledger.Hash]*consensus.TreeNode),
		pruned:  make(map[ledger.Hash]bool),
		inbox:   make(chan powMsg, powInbox),
		kick:    make(chan peer.ID, 16),
		head:    make(chan struct{}),
	}
	return nil
}

// openPoW builds the block tree from the store: the main chain, then the
// side blocks, and switches to the best tip if it is not the head (a crash
// between storing a side block and the reorg it called for).
func (n *Node) openPoW(ctx context.Context) error {
	ps := n.pow
	g := n.g.Block().Header
	tree, err := consensus.NewTree(ps.params, &g)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	for from := uint64(1); ; {
		hs, err := n.store.Headers(ctx, from, 1024)
		if err != nil {
			return err
		}
		for i := range hs {
			if _, err := tree.Insert(&hs[i]); err != nil {
				return fmt.Errorf("node: main chain: %w", err)
			}
		}
		if len(hs) < 1024 {
			break
		}
		from += uint64(len(hs))
	}
	head, err := n.store.Head(ctx)
	if err != nil {
		return err
	}
	side, err := n.store.SideHeaders(ctx)
	if err != nil {
		return err
	}
	for i := range side {
		if x, err := tree.Insert(&side[i]); err == nil { // a side block whose parent is gone stays out
			ps.side[x.Hash] = x
		}
	}
	if ps.seal, err = consensus.NewPoWSeal(n.g, tree); err != nil {
		return err
	}
	ps.tree = tree
	ps.main = tree.Get(head.Hash())
	if ps.main == nil {
		return fmt.Errorf("node: head %d is not in the block tree", head.Height)
	}
	if n.cfg.Mine {
		if ps.miner, err = consensus.NewMiner(n.cfg.MineWorkers); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := n.powSwitch(ctx); err != nil {
		return err
	}
	n.pruneSide(ctx)
	return nil
}

// runPoW starts the pow goroutines: block handling, sync and the miner.
func (n *Node) runPoW(ctx context.Context) {
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.powReceive(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.powSyncLoop(ctx)
	}()
	if n.pow.miner != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer n.pow.miner.Close()
			n.powMine(ctx)
		}()
	}
}

// powReceive handles gossiped blocks one at a time.
func (n *Node) powReceive(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-n.pow.inbox:
			if err := n.accept(ctx, m.b, m.from); err != nil {
				n.log.Debug("block refused", "height", m.b.Header.Height, "hash", m.b.Hash().String(), "from", m.from, "err", err)
				if errors.Is(err, errBadBlock) && n.host != nil && m.from != "" {
					n.host.Strike(m.from, err)
				}
			}
		}
	}
}

// powGossipCheck is the cheap check of a gossiped pow block before it is
// forwarded: this chain, a pow header with its work done, no certificate,
// not from the future.
func (n *Node) powGossipCheck(b *ledger.Block) error {
	h := &b.Header
	switch {
	case h.Chain != n.g.Chain:
		return fmt.Errorf("block for chain %q", h.Chain)
	case h.Engine != ledger.EnginePoW:
		return fmt.Errorf("block of engine %q on a pow chain", h.Engine)
	case b.Certificate != nil:
		return fmt.Errorf("pow block %d with a certificate", h.Height)
	}
	if err := consensus.CheckWork(h); err != nil {
		return err
	}
	return consensus.CheckFuture(h, n.cfg.Now(), n.cfg.MaxClockDrift)
}

// powDeliver queues a gossiped block.
func (n *Node) powDeliver(b *ledger.Block, from peer.ID) {
	select {
	case n.pow.inbox <- powMsg{b, from}:
	default:
		n.log.Warn("pow block inbox full; block dropped", "height", b.Header.Height)
	}
}

// accept handles a block from anywhere: the checks that need no chain
// (work, time, attestations, and re-verification of its records), then,
// under the lock, the tree's rules, storing it as a side block and
// following the fork choice. A block whose parent is unknown waits as an
// orphan while sync fetches its ancestors from the peer that sent it.
func (n *Node) accept(ctx context.Context, b *ledger.Block, from peer.ID) (err error) {
	ps := n.pow
	hash := b.Hash()
	ps.mu.Lock()
	known := ps.tree.Get(hash) != nil
	ps.mu.Unlock()
	if known {
		return nil
	}
	if err := n.powGossipCheck(b); err != nil {
		if errors.Is(err, consensus.ErrFuture) {
			return err // maybe only this node's clock
		}
		return badBlock(err)
	}
	if err := ledger.CheckAttestations(b, nil, ps.params.Attest); err != nil {
		return badBlock(err)
	}
	for i := range b.Records {
		if err := b.Records[i].Check(); err != nil {
			return badBlock(err)
		}
	}
	if err := n.reverify(ctx, b); err != nil {
		return err
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.tree.Get(b.Header.Prev) == nil {
		for oh := range ps.orphans { // full: make room (any will do)
			if len(ps.orphans) < maxOrphans {
				break
			}
			delete(ps.orphans, oh)
		}
		ps.orphans[hash] = b
		select {
		case ps.kick <- from:
		default:
		}
		return nil
	}
	if err := n.addBlock(ctx, b); err != nil {
		return err
	}
	defer func() {
		if x := ps.tree.Get(hash); x != nil && x.Invalid && err == nil {
			err = fmt.Errorf("%w: block %d %s is on a branch that failed validation", errBadBlock, b.Header.Height, hash)
		}
	}()
	// Orphans waiting for this block, and for theirs.
	for progress := true; progress; {
		progress = false
		for oh, ob := range ps.orphans {
			if ps.tree.Get(ob.Header.Prev) == nil {
				continue
			}
			delete(ps.orphans, oh)
			progress = true
			if err := n.addBlock(ctx, ob); err != nil {
				n.log.Debug("orphan block refused", "height", ob.Header.Height, "err", err)
			}
		}
	}
	return n.powSwitch(ctx)
}

// addBlock adds b, whose parent is in the tree, to the tree and the store's
// side blocks. ps.mu is held.
func (n *Node) addBlock(ctx context.Context, b *ledger.Block) error {
	ps := n.pow
	known := ps.tree.Get(b.Hash()) != nil
	x, err := ps.tree.Add(ctx, &b.Header)
	if err != nil {
		if errors.Is(err, consensus.ErrBadWork) {
			return badBlock(err)
		}
		return err
	}
	if !known {
		ps.side[x.Hash] = x
	}
	if err := n.store.PutSide(ctx, b); err != nil {
		// Not stored: take it out of consideration until it comes again.
		ps.tree.MarkInvalid(b.Hash())
		return err
	}
	return nil
}

// powSwitch makes the store's main chain the tree's best tip: it
// validates the branch from their fork block by block and switches to it
// in one transaction, or to the longest valid prefix that is still better
// than the head, marking the first invalid block and its descendants
// invalid and trying the next best tip. ps.mu is held.
func (n *Node) powSwitch(ctx context.Context) error {
	ps := n.pow
	for {
		best := ps.tree.Best()
		if best == ps.main {
			return nil
		}
		fork := consensus.Fork(ps.main, best)
		nodes := consensus.Branch(fork, best)
		blocks := make([]*ledger.Block, len(nodes))
		for i, x := range nodes {
			b, err := n.store.SideBlock(ctx, x.Hash)
			if err != nil {
				ps.tree.MarkInvalid(x.Hash) // lost: never switch to it
				n.log.Error("side block missing from the store", "height", x.Header.Height, "err", err)
				blocks = nil
				break
			}
			blocks[i] = b
		}
		if blocks == nil {
			continue
		}
		hashes, good, err := ledger.ValidateBranch(ctx, n.store, fork.Header.Height, blocks, ps.seal)
		if err != nil {
			if !errors.Is(err, ledger.ErrInvalidBlock) {
				return err
			}
			n.log.Warn("invalid block on a branch", "height", nodes[good].Header.Height, "hash", nodes[good].Hash.String(), "err", err)
			ps.tree.MarkInvalid(nodes[good].Hash)
			if good == 0 || !consensus.Better(nodes[good-1], ps.main) {
				continue
			}
			blocks, hashes, nodes = blocks[:good], hashes[:good], nodes[:good]
		}
		if err := n.reorg(ctx, fork, nodes[len(nodes)-1], blocks, hashes); err != nil {
			return err
		}
	}
}

// reorg switches the store to blocks after fork, ending at tip, and puts
// the records of the abandoned blocks back into the mempool in the same
// transaction (mempool.Pool.Reinsert), then tells waiting clients and
// mines on the new head. ps.mu is held.
func (n *Node) reorg(ctx context.Context, fork, tip *consensus.TreeNode, blocks []*ledger.Block, hashes [][]ledger.Hash) error {
	ps := n.pow
	var removed []*ledger.Block
	for h := fork.Header.Height + 1; h <= ps.main.Header.Height; h++ {
		b, err := n.store.Block(ctx, h)
		if err != nil {
			return err
		}
		removed = append(removed, b)
	}
	var ids []string
	onNew := make(map[ledger.Key]bool)
	for _, b := range blocks {
		for i := range b.Records {
			ids = append(ids, b.Records[i].Key.String())
			onNew[b.Records[i].Key] = true
		}
	}
	back := 0
	err := n.pool.Reinsert(ctx, removed, func(k ledger.Key) bool { return onNew[k] }, func(items []mempool.JournalItem) error {
		put := make([]sqlitestore.PendingItem, len(items))
		for i, it := range items {
			put[i] = sqlitestore.PendingItem{ID: it.ID, Data: it.Data}
		}
		back = len(items)
		n.appendMu.Lock()
		defer n.appendMu.Unlock()
		return n.store.ReorgWithPending(ctx, fork.Header.Height, blocks, hashes, ids, put)
	})
	if err != nil {
		return err
	}
	for x := ps.main; x != fork; x = x.Parent {
		ps.side[x.Hash] = x
	}
	for x := tip; x != fork; x = x.Parent {
		delete(ps.side, x.Hash)
	}
	ps.main = tip
	if len(removed) > 0 {
		n.log.Warn("chain reorganized", "fork", fork.Header.Height, "abandoned", len(removed), "adopted", len(blocks), "pending_again", back)
	}
	for _, b := range blocks {
		n.appended(ctx, b, true) // ReorgWithPending deleted their journal items
	}
	close(ps.head)
	ps.head = make(chan struct{})
	n.mineLocked(ctx)
	n.pruneSide(ctx)
	return nil
}

// pruneSide deletes the side branches that fork more than pruneDepth
// blocks below the main chain's head, unless a sync is fetching blocks
// (its branch may fork that deep and not be heavier yet). ps.mu is held.
func (n *Node) pruneSide(ctx context.Context) {
	ps := n.pow
	k := pruneDepth(n.g.Confirmations)
	tip := ps.main.Header.Height
	if ps.syncing || ps.tree.Best() != ps.main || tip <= k || len(ps.side) == 0 {
		return
	}
	var gone []ledger.Hash
	for _, x := range ps.side {
		if ps.side[x.Parent.Hash] != nil || x.Parent.Header.Height >= tip-k {
			continue // not the first block of a branch, or a recent fork
		}
		gone = append(gone, ps.tree.Remove(x.Hash)...)
	}
	if len(gone) == 0 {
		return
	}
	if len(ps.pruned)+len(gone) > maxPruned {
		clear(ps.pruned)
	}
	for _, h := range gone {
		delete(ps.side, h)
		ps.pruned[h] = true
	}
	if err := n.store.DeleteSide(ctx, gone); err != nil {
		n.log.Warn("delete pruned side blocks", "err", err) // deleted at the next start
		return
	}
	n.log.Info("side branches pruned", "blocks", len(gone), "forked_below", tip-k)
}

// headChanged returns a channel closed when the main chain next changes.
func (n *Node) headChanged() <-chan struct{} {
	n.pow.mu.Lock()
	defer n.pow.mu.Unlock()
	return n.pow.head
}

// powMine hands the miner a new template whenever the chain or the mempool
// changes (and every powRefreshEvery, for the time) and accepts what it
// solves.
func (n *Node) powMine(ctx context.Context) {
	ps := n.pow
	t := time.NewTicker(powRefreshEvery)
	defer t.Stop()
	changed := n.pool.Changed()
	ps.mu.Lock()
	n.mineLocked(ctx)
	ps.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case sol := <-ps.miner.Found():
			ps.mu.Lock()
			job, current := ps.job, ps.jobID == sol.Job
			ps.mu.Unlock()
			if job == nil || !current {
				continue // solved a template replaced meanwhile
			}
			h := sol.Header
			b := *job
			b.Header = h
			if err := n.accept(ctx, &b, ""); err != nil {
				n.log.Error("mined block refused", "height", h.Height, "err", err)
				continue
			}
			n.log.Info("block mined", "height", h.Height, "hash", b.Hash().String(), "records", len(b.Records), "bits", h.Bits)
			n.publish(ctx, topicBlocks, b.Format())
			ps.mu.Lock()
			ps.mined++
			if ps.job == job {
				n.mineLocked(ctx)
			}
			ps.mu.Unlock()
		case <-changed:
			changed = n.pool.Changed()
			ps.mu.Lock()
			n.mineLocked(ctx)
			ps.mu.Unlock()
		case now := <-t.C:
			ps.mu.Lock()
			hashes := ps.miner.Hashes()
			if !ps.rateAt.IsZero() {
				ps.rate = float64(hashes-ps.rateHashes) / now.Sub(ps.rateAt).Seconds()
			}
			ps.rateAt, ps.rateHashes = now, hashes
			n.mineLocked(ctx)
			ps.mu.Unlock()
		}
	}
}

// mineLocked starts mining the block after the main chain's head. ps.mu is
// held. Mining never blocks: the miner's workers run on their own.
func (n *Node) mineLocked(ctx context.Context) {
	ps := n.pow
	if ps.miner == nil {
		return
	}
	b, err := n.template(ctx)
	if err != nil {
		n.log.Error("build a block to mine", "err", err)
		ps.miner.Stop()
		ps.job = nil
		return
	}
	var seed [8]byte
	rand.Read(seed[:])
	id, err := ps.miner.Mine(b.Header, binary.LittleEndian.Uint64(seed[:]))
	if err != nil {
		n.log.Error("mine", "err", err)
		return
	}
	ps.job, ps.jobID = b, id
}

// template returns the block to mine after the head: the records this node
// fetched and hashed itself (its own attestation first, then others
// agreeing, up to what the chain needs), the log after them, the time now
// (not before the parent's), and the bits the retarget rule gives.
func (n *Node) template(ctx context.Context) (*ledger.Block, error) {
	ps := n.pow
	parent := &ps.main.Header
	need := ps.params.Attest
	self := n.signer.Public()
	b := &ledger.Block{}
	var leaves []ledger.Hash
	for _, r := range n.pool.Ready(0, n.cfg.MaxBlockRecords) {
		if _, err := n.store.Lookup(ctx, r.Record.Key); err == nil {
			continue
		}
		var atts []ledger.Attestation
		for _, a := range r.Attestations {
			if a.Validator == self {
				atts = append([]ledger.Attestation{a}, atts...)
			} else if len(atts) < max(need, 1) {
				atts = append(atts, a)
			}
		}
		if len(atts) == 0 || atts[0].Validator != self || len(atts) < need {
			continue
		}
		b.Records = append(b.Records, r.Record)
		b.Attestations = append(b.Attestations, atts[:max(need, 1)]...)
		leaves = append(leaves, r.Record.LeafHash())
	}
	_, root, err := ledger.AppendLog(ledger.HashReaderOf(ctx, n.store), int64(parent.LogSize), leaves)
	if err != nil {
		return nil, err
	}
	bits, err := consensus.NextBits(ctx, ps.params, ps.tree, parent)
	if err != nil {
		return nil, err
	}
	b.Header = ledger.Header{
		Chain:   n.g.Chain,
		Height:  parent.Height + 1,
		Prev:    ps.main.Hash,
		Time:    max(n.cfg.Now().UnixMilli(), parent.Time),
		Engine:  ledger.EnginePoW,
		Records: uint64(len(b.Records)),
		LogSize: parent.LogSize + uint64(len(b.Records)),
		LogRoot: root,
		Bits:    bits,
	}
	return b, nil
}

// reverify fetches and hashes the records of b that this node has not
// hashed itself, when Config.Reverify is on, and refuses the block if a
// repository it can fetch hashes to something else. A repository it cannot
// fetch does not make the block invalid: the block's attestations vouch for
// it.
func (n *Node) reverify(ctx context.Context, b *ledger.Block) error {
	if n.cfg.NoReverify {
		return nil
	}
	for i := range b.Records {
		r := &b.Records[i]
		n.pow.mu.Lock()
		have, ok := n.pow.checked[r.Key]
		n.pow.mu.Unlock()
		if !ok && n.signer != nil {
			if e, found := n.pool.Get(r.Key); found {
				for _, a := range e.Attestations {
					if a.Validator == n.signer.Public() {
						have, ok = a.Record, true
					}
				}
			}
		}
		if !ok {
			got, err := n.fetchRecord(ctx, r.Key)
			if err != nil {
				n.log.Info("cannot re-verify a record; trusting its attestations", "key", r.Key.String(), "err", err)
				continue
			}
			have = got
			n.pow.mu.Lock()
			if len(n.pow.checked) > 100_000 {
				clear(n.pow.checked)
			}
			n.pow.checked[r.Key] = got
			n.pow.mu.Unlock()
		}
		if have != *r {
			return fmt.Errorf("record %s: this node hashed commit %s tree %s; the block says commit %s tree %s",
				r.Key, have.Commit, have.Tree, r.Commit, r.Tree)
		}
	}
	return nil
}

// miningStatus returns the pow part of /v1/status.
func (n *Node) miningStatus(ctx context.Context) *api.Mining {
	ps := n.pow
	ps.mu.Lock()
	defer ps.mu.Unlock()
	m := &api.Mining{
		Miner:       ps.miner != nil,
		Active:      ps.miner != nil && ps.job != nil,
		BlocksMined: ps.mined,
		HashRate:    ps.rate,
		ChainWork:   ps.main.Work.String(),
		SideBlocks:  len(ps.side),
	}
	if ps.miner != nil {
		m.Workers, m.Hashes = ps.miner.Workers(), ps.miner.Hashes()
	}
	if bits, err := consensus.NextBits(ctx, ps.params, ps.tree, &ps.main.Header); err == nil {
		m.Bits = bits
	}
	return m
}

// HeadChanged implements api.HeadNotifier: on pow chains a channel closed
// at the next change of the main chain; nil (poll) on poa chains.
func (b backend) HeadChanged() <-chan struct{} {
	if b.n.pow == nil {
		return nil
	}
	return b.n.headChanged()
}
