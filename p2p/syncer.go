package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/ledger"
)

// Syncer defaults.
const (
	DefaultSyncBatch    = 128
	DefaultSyncInterval = 10 * time.Second
	statusTimeout       = 10 * time.Second
)

// A SyncConfig configures a Syncer.
type SyncConfig struct {
	// Store is the node's store. It must hold at least the genesis block
	// (ledger.InitStore). The Syncer reads its head, validates against it
	// and appends to it.
	Store ledger.Store
	// Seal checks each block's consensus seal (the engine's checker). It
	// is required: a synced block is verified exactly as a block committed
	// by consensus.
	Seal ledger.SealChecker
	// Lock is the node's append lock. The Syncer holds it from reading
	// the head through ledger.ValidateNext to Store.Append, one block at a
	// time, so that blocks committed by consensus (appended under the same
	// lock) and synced blocks never race. Nil: a private mutex, for a
	// store nothing else appends to.
	Lock sync.Locker
	// OnAppend, when set, is called after each block the Syncer stored,
	// in height order, without the lock held. The node uses it to tell the
	// consensus engine and the mempool.
	OnAppend func(ctx context.Context, b *ledger.Block)
	// OnStoreError, when set, is called when the store fails (not the
	// peer): reading it, or validating or appending the block at height
	// (0 when the head could not be read). The Syncer tries again at its
	// next Sync.
	OnStoreError func(height uint64, err error)
	// OnProgress, when set, is called after each batch of blocks and when
	// a Sync ends.
	OnProgress func(SyncProgress)
	// Logger: nil means the host's.
	Logger *slog.Logger
	// Batch is the blocks asked for per request (the server may send
	// fewer). Default DefaultSyncBatch.
	Batch int
	// Interval is how often Run looks for a peer ahead of us when nothing
	// kicks it. Default DefaultSyncInterval.
	Interval time.Duration
}

// A SyncProgress reports a Syncer's state.
type SyncProgress struct {
	Syncing bool
	Peer    peer.ID // the peer being synced from
	Height  uint64  // our head
	Target  uint64  // the best head a peer reported
	Blocks  int64   // blocks the Syncer appended since it was made
	Records int64   // records in those blocks
}

// A Syncer catches a store up with the network: it asks the connected
// peers for their heads, picks the highest above ours, and fetches blocks
// from it, requesting the next range while it validates and stores the
// current one. Every block passes ledger.ValidateNext with the seal before
// it is stored; a peer that serves a block that fails, or a different
// block at a height we have, is banned and the Syncer moves on to the next
// best peer. It serves catch-up after downtime and brand-new replicas
// syncing from genesis alike.
type Syncer struct {
	h    *Host
	cfg  SyncConfig
	log  *slog.Logger
	lock sync.Locker
	kick chan struct{}

	running sync.Mutex // one Sync at a time

	mu   sync.Mutex
	prog SyncProgress
}

// NewSyncer returns a Syncer fetching through h. h kicks it whenever a
// peer passes the hello; make one Syncer per host.
func NewSyncer(h *Host, cfg SyncConfig) (*Syncer, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("p2p: syncer: no store")
	case cfg.Seal == nil:
		return nil, errors.New("p2p: syncer: no seal checker")
	case cfg.Batch < 0 || cfg.Batch > maxSyncBlocksPerRequest:
		return nil, fmt.Errorf("p2p: syncer: batch %d: want 1 to %d", cfg.Batch, maxSyncBlocksPerRequest)
	case cfg.Interval < 0:
		return nil, fmt.Errorf("p2p: syncer: negative interval")
	}
	if cfg.Batch == 0 {
		cfg.Batch = DefaultSyncBatch
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultSyncInterval
	}
	s := &Syncer{h: h, cfg: cfg, log: cfg.Logger, lock: cfg.Lock, kick: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = h.log
	}
	if s.lock == nil {
		s.lock = new(sync.Mutex)
	}
	h.addKicker(s.Kick)
	return s, nil
}

// Kick makes Run look for a peer ahead of us now (the node calls it when
// a block arrives from the future, or consensus finds itself behind).
func (s *Syncer) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Progress returns the Syncer's state.
func (s *Syncer) Progress() SyncProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prog
}

// Run syncs whenever kicked (and when a peer passes the hello) and every
// Interval, until ctx ends. Errors are logged.
func (s *Syncer) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sync failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Sync catches up with the best head the connected peers report, trying
// the next best peer when one fails or misbehaves. It returns nil when no
// reachable, well-behaved peer is ahead of us; an error only when ctx
// ends or the store fails.
func (s *Syncer) Sync(ctx context.Context) error {
	s.running.Lock()
	defer s.running.Unlock()
	skip := make(map[peer.ID]bool)
	defer s.update(func(p *SyncProgress) { p.Syncing, p.Peer = false, "" })
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		local, err := s.cfg.Store.Head(ctx)
		if err != nil {
			if s.cfg.OnStoreError != nil && ctx.Err() == nil {
				s.cfg.OnStoreError(0, err)
			}
			return fmt.Errorf("p2p: sync: head: %w", err)
		}
		best, ok := s.best(ctx, local.Height, skip)
		s.update(func(p *SyncProgress) {
			p.Height = local.Height
			p.Syncing, p.Peer = ok, best.ID
			if ok {
				p.Target = best.Height
			}
		})
		if !ok {
			s.report()
			return nil
		}
		s.log.Info("syncing", "peer", best.ID, "from", local.Height+1, "to", best.Height)
		n, err := s.syncFrom(ctx, best, local.Height)
		var se *storeError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &se):
			if s.cfg.OnStoreError != nil {
				s.cfg.OnStoreError(se.height, se.err)
			}
			return fmt.Errorf("p2p: sync: %w", se.err)
		case err != nil && isPeerFault(err):
			s.h.ban(best.ID, err.Error())
			skip[best.ID] = true
		case err != nil:
			s.log.Info("sync from peer failed", "peer", best.ID, "appended", n, "err", err)
			skip[best.ID] = true
		case n == 0:
			s.log.Info("peer served nothing past our head", "peer", best.ID, "claimed", best.Height)
			skip[best.ID] = true
		}
	}
}

// best asks every connected peer not in skip for its head and returns the
// highest above height.
func (s *Syncer) best(ctx context.Context, height uint64, skip map[peer.ID]bool) (PeerInfo, bool) {
	peers := s.h.Peers()
	var wg sync.WaitGroup
	heads := make([]*ledger.Header, len(peers))
	for i, p := range peers {
		if skip[p.ID] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, statusTimeout)
			defer cancel()
			heads[i], _ = s.h.Status(ctx, p.ID)
		}()
	}
	wg.Wait()
	var best PeerInfo
	found := false
	for i, hd := range heads {
		if hd == nil || hd.Height <= height {
			continue
		}
		if !found || hd.Height > best.Height {
			best, found = peers[i], true
			best.Height, best.Head = hd.Height, hd.Hash()
		}
	}
	return best, found
}

// syncFrom fetches and stores blocks from p from height+1 to p's head. A
// fetcher goroutine keeps one batch ahead of the one being validated.
func (s *Syncer) syncFrom(ctx context.Context, p PeerInfo, height uint64) (int, error) {
	type batch struct {
		blocks []*ledger.Block
		err    error
	}
	ctx, cancel := context.WithCancel(ctx)
	batches := make(chan batch, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		// The first requests are small, so that validating and storing
		// start while the next, larger batches are on their way: a batch
		// of full blocks is tens of MiB, which a peer reads, sends and we
		// parse before its first block can be stored.
		ask := 1
		for from := height + 1; from <= p.Height; {
			n := int(min(uint64(min(ask, s.cfg.Batch)), p.Height-from+1))
			ask *= 2
			bs, err := s.h.FetchBlocks(ctx, p.ID, from, n)
			select {
			case batches <- batch{bs, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(bs) == 0 {
				return
			}
			from += uint64(len(bs))
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	appended := 0
	for b := range batches {
		if b.err != nil {
			return appended, b.err
		}
		if len(b.blocks) == 0 {
			return appended, fmt.Errorf("p2p: peer %s reported height %d but served no block", p.ID, p.Height)
		}
		for _, blk := range b.blocks {
			added, err := s.apply(ctx, blk)
			if err != nil {
				return appended, err
			}
			if added {
				appended++
			}
		}
		s.report()
	}
	return appended, nil
}

// A storeError is a failure of our own store (not the peer's fault), at
// the block of height (0: reading the head).
type storeError struct {
	height uint64
	err    error
}

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// apply validates b against the store's head and appends it, under the
// append lock. A block at a height we already have must be the very
// block we have (consensus may have committed it meanwhile); it is then
// skipped.
func (s *Syncer) apply(ctx context.Context, b *ledger.Block) (bool, error) {
	s.lock.Lock()
	added, err := s.applyLocked(ctx, b)
	s.lock.Unlock()
	if err != nil || !added {
		return false, err
	}
	s.update(func(p *SyncProgress) {
		p.Height = b.Header.Height
		p.Blocks++
		p.Records += int64(len(b.Records))
	})
	if s.cfg.OnAppend != nil {
		s.cfg.OnAppend(ctx, b)
	}
	return true, nil
}

func (s *Syncer) applyLocked(ctx context.Context, b *ledger.Block) (bool, error) {
	st := s.cfg.Store
	head, err := st.Head(ctx)
	if err != nil {
		return false, &storeError{0, fmt.Errorf("head: %w", err)}
	}
	height := b.Header.Height
	switch {
	case height <= head.Height:
		have, err := st.Header(ctx, height)
		if err != nil {
			return false, &storeError{height, fmt.Errorf("header %d: %w", height, err)}
		}
		if have.Hash() != b.Hash() {
			return false, &ledger.ValidationError{Height: height, Field: "hash",
				Err: fmt.Errorf("block %s, we committed %s", b.Hash(), have.Hash())}
		}
		return false, nil
	case height > head.Height+1:
		return false, &storeError{height, fmt.Errorf("block %d does not follow our head %d", height, head.Height)}
	}
	stored, err := ledger.ValidateNext(ctx, keysChecked{st}, head, b, s.cfg.Seal)
	if err != nil {
		if errors.Is(err, ledger.ErrInvalidBlock) {
			return false, err
		}
		return false, &storeError{height, err}
	}
	switch err := st.Append(ctx, b, stored); {
	case errors.Is(err, ledger.ErrConflict):
		return false, &ledger.ValidationError{Height: height, Field: "key", Err: err}
	case err != nil:
		return false, &storeError{height, fmt.Errorf("append %d: %w", height, err)}
	}
	return true, nil
}

// keysChecked is the store as ledger.ValidateNext sees it for a synced
// block: every key not committed yet. One check of ValidateNext is left to
// the store: ledger.Store.Append refuses, atomically, a block holding a
// key already committed (ErrConflict), and applyLocked takes that refusal
// as the block's fault, as it takes ValidateNext's. Looking every key up
// before appending took about half of a sync's time.
type keysChecked struct{ ledger.Store }

func (keysChecked) Lookup(ctx context.Context, key ledger.Key) (*ledger.Entry, error) {
	return nil, fmt.Errorf("p2p: sync: key %s: left to Append: %w", key, ledger.ErrNotFound)
}

func (s *Syncer) update(f func(*SyncProgress)) {
	s.mu.Lock()
	f(&s.prog)
	s.mu.Unlock()
}

func (s *Syncer) report() {
	if s.cfg.OnProgress != nil {
		s.cfg.OnProgress(s.Progress())
	}
}
