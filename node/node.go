// Package node wires one vcsledger replica: the SQLite store, the mempool
// and its attester, the consensus engine, the peer-to-peer network and the
// HTTP API. A Node owns every goroutine it starts: Open starts them, Close
// stops them in order and waits.
//
// One goroutine (the consensus loop) owns the engine: it feeds it messages,
// ticks and synced heads, and carries out what the engine returns in the
// order that keeps a validator honest: persist the signing state, then send;
// append a committed block durably, then tell waiting clients.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/mempool"
	"github.com/vcsledger/vcsledger/p2p"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// A Node is one replica.
type Node struct {
	cfg    Config
	log    *slog.Logger
	g      *ledger.Genesis
	signer *ledger.Signer     // the node's key; it signs while in the validator set
	seal   *consensus.PoASeal // follows the store's validator set (authority.go); nil on pow chains
	pow    *powState          // pow chains only (pow.go)

	store    *sqlitestore.Store
	pool     *mempool.Pool
	attester *mempool.Attester
	engine   *consensus.PoA
	host     *p2p.Host
	syncer   *p2p.Syncer
	server   *api.Server
	ln       net.Listener

	inbox       chan *consensus.Message
	synced      chan struct{}
	authPool    authPool      // proposed validator-set changes (authority.go)
	authChanged chan struct{} // the authority pool has news for the engine
	runCtx      context.Context
	sent        sent        // payloads published lately (resend.go)
	parsed      parsedCache // large gossip messages parsed lately (parsed.go)

	appendMu sync.Mutex // serializes appends: consensus commits and sync

	checkpoint atomic.Pointer[checkpoint]   // the newest head's, see backend.Checkpoint
	cos        cosigner                     // co-signed checkpoints (cosign.go)
	checked    atomic.Pointer[checkedBlock] // the last proposal found valid (loop.go)
	stalled    atomic.Pointer[stall]        // set while the node takes no part in consensus (stall.go)

	mu       sync.Mutex
	waiters  map[ledger.Key][]chan struct{}
	status   consensus.Status
	lastErr  map[string]string
	counters counters

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

type counters struct {
	fetchErrors    uint64
	invalidMsgs    uint64
	committedRecs  uint64
	appendFailures uint64
}

// New checks cfg and returns a Node; Open starts it.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger,
		g:           cfg.Genesis,
		inbox:       make(chan *consensus.Message, 1024),
		synced:      make(chan struct{}, 1),
		authChanged: make(chan struct{}, 1),
		cos:         cosigner{pull: make(chan struct{}, 1), kick: make(chan struct{}, 1), ahead: make(map[uint64]map[ledger.PublicKey]ledger.Cosignature)},
		waiters:     make(map[ledger.Key][]chan struct{}),
	}
	if cfg.Genesis.Engine == ledger.EnginePoW {
		if err := n.initPoW(); err != nil {
			return nil, err
		}
		return n, nil
	}
	if _, err := cfg.Genesis.ValidatorSet(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	signer, err := ledger.NewSigner(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.signer = signer
	return n, nil
}

// SealChecker returns the seal checker for the blocks of g's chain in s,
// for offline verification of s's main chain (ledgerd audit).
func SealChecker(g *ledger.Genesis, s ledger.Store) (ledger.SealChecker, error) {
	if g.Engine == ledger.EnginePoW {
		return consensus.NewPoWSeal(g, consensus.StoreAncestors(s))
	}
	return consensus.NewPoASeal(g)
}

// IsValidator reports whether this node's key is in the validator set in
// force at the next height (it signs for the chain).
func (n *Node) IsValidator() bool {
	if n.seal == nil {
		return false
	}
	return n.current().Contains(n.signer.Public())
}

// HTTPAddr returns the address the API listens on ("" when off).
func (n *Node) HTTPAddr() string {
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// P2PAddrs returns the node's full peer-to-peer multiaddrs.
func (n *Node) P2PAddrs() []string {
	if n.host == nil {
		return nil
	}
	return n.host.Addrs()
}

// Store returns the node's store (for tests and tools).
func (n *Node) Store() *sqlitestore.Store { return n.store }

// Open opens the store, restores the mempool and the signing state, joins
// the network, starts the engine, the attester and the API.
func (n *Node) Open(ctx context.Context) (err error) {
	rctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	defer func() {
		if err != nil {
			n.Close(context.Background())
		}
	}()
	if n.store, err = sqlitestore.Open(ctx, n.cfg.DBPath, sqlitestore.WithHashCache(max(n.cfg.ProofCacheBytes, 0))); err != nil {
		return err
	}
	if err := ledger.InitStore(ctx, n.store, n.g); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if n.pow == nil {
		auth, err := ledger.LoadAuthorities(ctx, n.store, n.g)
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		if n.seal, err = consensus.NewPoASealAt(n.g, auth); err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	n.runCtx = rctx
	if n.pow == nil { // pow chains have no validator set
		if err := n.loadAuthority(ctx); err != nil { // authority.go
			return err
		}
	}
	if err := n.openPool(ctx); err != nil {
		return err
	}
	if err := n.openP2P(rctx); err != nil {
		return err
	}
	if n.pow != nil {
		err = n.openPoW(ctx)
	} else {
		err = n.openEngine(ctx)
	}
	if err != nil {
		return err
	}
	if n.pow == nil { // validators co-sign poa checkpoints; pow has none
		if err := n.openCosign(ctx, rctx); err != nil {
			return err
		}
	}
	if err := n.maybeAttest(); err != nil {
		return err
	}
	if err := n.openAPI(rctx); err != nil {
		return err
	}
	if n.pow != nil {
		n.runPoW(rctx)
	} else {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.loop(rctx)
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.housekeeping(rctx)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.regossipAuthority(rctx)
	}()
	head, _ := n.store.Head(ctx)
	n.log.Info("node open", "chain", n.g.Chain, "genesis", n.g.Hash().String(), "height", head.Height,
		"validator", n.IsValidator(), "http", n.HTTPAddr(), "p2p", n.P2PAddrs())
	return nil
}

// Close stops the node: the API first (no new requests), then the
// attester, the consensus loop and the network, and last the store.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	var errs []error
	if n.cancel != nil {
		n.cancel()
	}
	if n.attester != nil {
		errs = append(errs, n.attester.Close(ctx))
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("node: close: %w", ctx.Err()))
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	return errors.Join(errs...)
}

// housekeeping expires pending records that never got attested.
func (n *Node) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			expired, err := n.pool.Expire(ctx, n.g.AttestationsNeeded())
			if err != nil {
				n.log.Error("expire pending records", "err", err)
			}
			for _, e := range expired {
				n.log.Info("pending record expired", "key", e.Key.String(), "error", e.Error)
			}
		}
	}
}
