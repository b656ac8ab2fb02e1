package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// by consensus. The Syncer verifies blocks ahead of storing them: Seal
	// is called once per block, in height order, from one goroutine, for
	// blocks whose parents may not be stored yet, so it must not read them
	// from the store.
	Seal ledger.SealChecker
	// Lock is the node's append lock. The Syncer holds it from reading
	// the head to Store.Append, one block at a time, and appends a block
	// only on the very head it was verified on, so that blocks committed
	// by consensus (appended under the same lock) and synced blocks never
	// race. Nil: a private mutex, for a store nothing else appends to.
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
// from it in a pipeline: it requests the next range while it verifies
// blocks and stores the blocks verified before them (syncFrom). Every
// block passes ledger.ValidateNext's checks with the seal before it is
// stored; a peer that serves a block that fails, or a different
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
		n, err := s.syncFrom(ctx, best, local)
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

// syncAhead is how many verified blocks at most wait to be stored.
const syncAhead = 4

// A verified is a block the verifier passed, with the head it was
// verified on and the stored log hashes it adds; or, last, the error
// that ended the fetch or the verification.
type verified struct {
	b      *ledger.Block
	parent *ledger.Header
	hashes []ledger.Hash
	last   bool // the last block of a fetched range
	err    error
}

// syncFrom fetches, verifies and stores blocks from p after local up to
// p's head, in a pipeline: a fetcher asks for the next range while a
// verifier checks, block after block, each one on top of the blocks it
// checked before (ledger.ValidateParsed with the seal, against a view of
// the store that holds their log hashes until they are stored: window),
// and this goroutine stores each verified block in its own transaction.
// At most one fetched range waits for the verifier (besides the one it
// works on) and syncAhead verified blocks for the store. A block that
// fails ends the pipeline: the blocks before it are stored, it and those
// after it are not.
func (s *Syncer) syncFrom(ctx context.Context, p PeerInfo, local *ledger.Header) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	ranges := make(chan fetched, 1)
	out := make(chan verified, syncAhead)
	var storedHashes atomic.Int64 // the stored log hashes the store holds, as far as the verifier needs to know
	storedHashes.Store(ledger.StoredHashCount(int64(local.LogSize)))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(ranges)
		s.fetch(ctx, p, local.Height, ranges)
	}()
	go func() {
		defer wg.Done()
		defer close(out)
		s.verify(ctx, local, ranges, out, &storedHashes)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()
	appended := 0
	for v := range out {
		if err := ctx.Err(); err != nil {
			return appended, err
		}
		if v.err != nil {
			return appended, v.err
		}
		added, err := s.store(ctx, v)
		if err != nil {
			return appended, err
		}
		storedHashes.Store(ledger.StoredHashCount(int64(v.b.Header.LogSize)))
		if added {
			appended++
		}
		if v.last {
			s.report()
		}
	}
	return appended, ctx.Err()
}

// A fetched is a range of blocks as the fetcher got them, or the error
// that ended the fetch.
type fetched struct {
	blocks []*ledger.ParsedBlock
	err    error
}

// fetch asks p for the blocks after height up to p's head, range after
// range, and sends them to ranges until it has them all, a request fails
// or ctx ends.
func (s *Syncer) fetch(ctx context.Context, p PeerInfo, height uint64, ranges chan<- fetched) {
	// The first requests are small, so that validating and storing start
	// while the next, larger ranges are on their way: a range of full
	// blocks is tens of MiB, which a peer reads, sends and we parse before
	// its first block can be stored.
	ask := 1
	for from := height + 1; from <= p.Height; {
		n := int(min(uint64(min(ask, s.cfg.Batch)), p.Height-from+1))
		ask *= 2
		bs, err := s.h.fetchParsed(ctx, p.ID, from, n)
		if err == nil && len(bs) == 0 {
			err = fmt.Errorf("p2p: peer %s reported height %d but served no block at %d", p.ID, p.Height, from)
		}
		select {
		case ranges <- fetched{bs, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
		from += uint64(len(bs))
	}
}

// verify checks the fetched blocks in order, each on top of the previous
// one (the first on local), and sends each block that passes to out; the
// first failure, of the fetch or of a block, is sent last.
func (s *Syncer) verify(ctx context.Context, local *ledger.Header, ranges <-chan fetched, out chan<- verified, storedHashes *atomic.Int64) {
	send := func(v verified) bool {
		select {
		case out <- v:
			return true
		case <-ctx.Done():
			return false
		}
	}
	view := &window{Store: s.cfg.Store, base: storedHashes.Load(), stored: storedHashes}
	parent := local
	for r := range ranges {
		if r.err != nil {
			send(verified{err: r.err})
			return
		}
		for i, pb := range r.blocks {
			view.trim()
			hashes, err := ledger.ValidateParsed(ctx, view, parent, pb, s.cfg.Seal)
			if err != nil {
				if !errors.Is(err, ledger.ErrInvalidBlock) {
					err = &storeError{pb.Block.Header.Height, err}
				}
				send(verified{err: err})
				return
			}
			view.add(hashes)
			if !send(verified{b: pb.Block, parent: parent, hashes: hashes, last: i == len(r.blocks)-1}) {
				return
			}
			parent = &pb.Block.Header
			r.blocks[i] = nil // the store's now: the range holds it no longer
		}
	}
}

// A window is the store as the verifier sees it: the stored log hashes
// of the blocks verified but perhaps not stored yet, from index base on,
// are held here until the store holds them (stored, which the storing
// goroutine advances); older ones are read from the store. Keys are
// never found committed (FirstCommitted). Only ledger.ValidateParsed uses it, which reads
// nothing else.
type window struct {
	ledger.Store
	base   int64
	hashes []ledger.Hash
	stored *atomic.Int64
}

// trim drops the hashes the store holds.
func (w *window) trim() {
	if n := min(w.stored.Load()-w.base, int64(len(w.hashes))); n > 0 {
		w.hashes = w.hashes[n:]
		w.base += n
	}
}

func (w *window) add(hashes []ledger.Hash) { w.hashes = append(w.hashes, hashes...) }

func (w *window) ReadHashes(ctx context.Context, indexes []int64) ([]ledger.Hash, error) {
	out := make([]ledger.Hash, len(indexes))
	var old []int64
	for i, x := range indexes {
		switch {
		case x < w.base:
			old = append(old, x)
		case x-w.base < int64(len(w.hashes)):
			out[i] = w.hashes[x-w.base]
		default:
			return nil, fmt.Errorf("p2p: sync: stored hash %d: %w", x, ledger.ErrNotFound)
		}
	}
	if len(old) == 0 {
		return out, nil
	}
	hs, err := w.Store.ReadHashes(ctx, old)
	if err != nil {
		return nil, err
	}
	if len(hs) != len(old) {
		return nil, fmt.Errorf("p2p: sync: store read %d hashes, want %d", len(hs), len(old))
	}
	for i, x := range indexes {
		if x < w.base {
			out[i], hs = hs[0], hs[1:]
		}
	}
	return out, nil
}

// A storeError is a failure of our own store (not the peer's fault), at
// the block of height (0: reading the head).
type storeError struct {
	height uint64
	err    error
}

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// store appends v.b, under the append lock, if the store's head is the
// block it was verified on; a block at a height we already have must be
// the very block we have (consensus may have committed it meanwhile), and
// is then skipped.
func (s *Syncer) store(ctx context.Context, v verified) (bool, error) {
	s.lock.Lock()
	added, err := s.storeLocked(ctx, v)
	s.lock.Unlock()
	if err != nil || !added {
		return false, err
	}
	b := v.b
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

func (s *Syncer) storeLocked(ctx context.Context, v verified) (bool, error) {
	st, b := s.cfg.Store, v.b
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
	if *head != *v.parent {
		// Our head is not the block the peer's chain has below b, which
		// we verified b on.
		return false, &ledger.ValidationError{Height: height, Field: "prev",
			Err: fmt.Errorf("block %s follows %s, our head is %s", b.Hash(), b.Header.Prev, head.Hash())}
	}
	// The append is not cancelled: it is one block, and syncFrom looks at
	// ctx between blocks. With a context that can be cancelled, the SQLite
	// driver runs every statement on a goroutine of its own, so as to
	// interrupt it: appends were 15-25% slower while the fetching and
	// verifying goroutines keep the process busy.
	switch err := st.Append(context.WithoutCancel(ctx), b, v.hashes); {
	case errors.Is(err, ledger.ErrConflict):
		return false, &ledger.ValidationError{Height: height, Field: "key", Err: err}
	case err != nil:
		return false, &storeError{height, fmt.Errorf("append %d: %w", height, err)}
	}
	return true, nil
}

// FirstCommitted finds no key committed: that check of ledger.ValidateNext's
// is left to the store: ledger.Store.Append refuses, atomically, a block
// holding a key already committed (ErrConflict), and storeLocked takes
// that refusal as the block's fault, as it takes a failed verification.
// Looking every key up before appending took about half of a sync's time.
func (*window) FirstCommitted(context.Context, []ledger.Key) (int, error) { return -1, nil }

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
