package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"

	"github.com/vcsledger/vcsledger/ledger"
)

// A BlockSource is what the sync protocol serves blocks from: a subset of
// ledger.Store, which satisfies it. Methods are called concurrently; reads
// of what does not exist return an error wrapping ledger.ErrNotFound.
type BlockSource interface {
	// Head returns the newest header (ledger.ErrNotFound when empty).
	Head(ctx context.Context) (*ledger.Header, error)
	// Headers returns up to limit headers from height from on, in order.
	Headers(ctx context.Context, from uint64, limit int) ([]ledger.Header, error)
	// Block returns the whole block at height.
	Block(ctx context.Context, height uint64) (*ledger.Block, error)
}

// A BlockBytesSource is a BlockSource that also returns a block's
// canonical encoding directly, as a store keeping its parts' encodings can
// without decoding and encoding the block again. The sync protocol serves
// blocks with BlockBytes when its Config.Source has it. BlockBytes(ctx, h)
// returns exactly Block(ctx, h).Format(), or an error (one wrapping
// ledger.ErrNotFound for a height the source does not hold).
type BlockBytesSource interface {
	BlockSource
	BlockBytes(ctx context.Context, height uint64) ([]byte, error)
}

// A Handler validates and receives the messages of the gossip topics.
// topic is one of Topics (without the chain prefix); from is the text form
// of the id of the peer that sent the message to us (which forwarded it,
// and may not be its author: messages are unsigned and anonymous at the
// pubsub level, see doc.go).
//
// Validate runs before a message is delivered or forwarded, concurrently
// for many messages, and must not block for long. It returns nil to accept
// the message; an error wrapping ErrIgnore to drop it without blame; any
// other error to reject it, which scores down from and counts towards
// banning it. Our own publishes are not passed to Validate.
//
// Deliver receives each accepted message once, in one goroutine per topic;
// a slow Deliver fills the topic's buffer (Config.QueueSize) and then
// messages are dropped.
type Handler interface {
	Validate(topic string, from string, data []byte) error
	Deliver(topic string, from string, data []byte)
}

// A Host is a node's libp2p host: identity, transports, the connection
// gater, the hello handshake, the gossip topics and the sync protocol. It
// is safe for concurrent use.
type Host struct {
	cfg       Config
	log       *slog.Logger
	host      host.Host
	ps        *pubsub.PubSub
	topics    map[string]*topic
	gater     *gater
	strikes   *strikes
	helloID   protocol.ID
	syncID    protocol.ID
	sync2ID   protocol.ID // sync/1 and co-signatures (cosigsync.go)
	bootstrap []peer.AddrInfo
	redial    chan peer.ID

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	peers   map[peer.ID]*peerState
	scores  map[peer.ID]float64
	mesh    map[string]map[peer.ID]bool // full topic name -> grafted peers
	kickers []func()
	drops   dropCounters
}

// New starts a host: it listens on cfg.Listen, joins the chain's topics,
// serves the hello and sync protocols, and dials the bootstrap peers in
// the background. Close stops it. ctx bounds only the start.
func New(ctx context.Context, cfg Config) (*Host, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("p2p: key: %w", err)
	}
	boot, _ := parseBootstrap(cfg.Bootstrap)
	var listen []ma.Multiaddr
	for _, s := range cfg.Listen {
		m, _ := ma.NewMultiaddr(s)
		listen = append(listen, m)
	}
	h := &Host{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "p2p"),
		gater:   newGater(time.Now),
		strikes: newStrikes(time.Now, cfg.InvalidWindow),
		helloID: protocol.ID("/vcsledger/" + cfg.Chain + "/hello/1"),
		syncID:  protocol.ID("/vcsledger/" + cfg.Chain + "/sync/1"),
		sync2ID: protocol.ID("/vcsledger/" + cfg.Chain + "/sync/2"),
		redial:  make(chan peer.ID, 64),
		peers:   make(map[peer.ID]*peerState),
		scores:  make(map[peer.ID]float64),
		mesh:    make(map[string]map[peer.ID]bool),
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(&cfg, h.helloID, h.syncID, h.sync2ID)), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	lh, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.NoListenAddrs, // listen once the handlers are in place
		libp2p.Security(noise.ID, noise.New),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(h.gater),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent(cfg.Version),
	)
	if err != nil {
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("p2p: libp2p: %w", err)
	}
	h.host = lh
	h.ctx, h.cancel = context.WithCancel(context.Background())
	for _, ai := range boot {
		if ai.ID != lh.ID() {
			h.bootstrap = append(h.bootstrap, ai)
			cm.Protect(ai.ID, "bootstrap")
		}
	}
	if err := h.start(ctx, listen); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func (h *Host) start(ctx context.Context, listen []ma.Multiaddr) error {
	h.host.SetStreamHandler(h.helloID, h.handleHello)
	if h.cfg.Source != nil {
		h.host.SetStreamHandler(h.syncID, h.handleSync)
		if _, ok := h.cfg.Source.(CosigSource); ok {
			h.host.SetStreamHandler(h.sync2ID, h.handleSync)
		}
	}
	sub, err := h.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return fmt.Errorf("p2p: event bus: %w", err)
	}
	h.goBackground(func() { h.watchPeers(sub) })
	if err := h.startGossip(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := h.host.Network().Listen(listen...); err != nil {
		return fmt.Errorf("p2p: listen: %w", err)
	}
	h.goBackground(h.reconnectLoop)
	if h.cfg.MDNS {
		if err := h.startMDNS(); err != nil {
			return err
		}
	}
	h.log.Info("p2p host started", "id", h.ID(), "addrs", h.Addrs(), "bootstrap", len(h.bootstrap))
	return nil
}

// goBackground runs f in a goroutine that Close waits for; after Close it
// does nothing.
func (h *Host) goBackground(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// Close stops the host: it leaves the topics, closes every connection and
// waits for its goroutines.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.closeGossip()
	// Let the host's own goroutines see the cancel and return before the
	// swarm goes: a dial that starts while libp2p closes its transports can
	// panic inside libp2p (v0.51: swarm.nonProxyAddr on a nil transport).
	// Bounded, because one may wait on a stream only the close will end.
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	err := h.host.Close()
	<-done
	if err != nil {
		return fmt.Errorf("p2p: close: %w", err)
	}
	return nil
}

// ID returns the host's peer id.
func (h *Host) ID() peer.ID { return h.host.ID() }

// Addrs returns the host's listen multiaddrs with /p2p/<id>, as other
// nodes put them in Config.Bootstrap.
func (h *Host) Addrs() []string {
	addrs, err := h.host.Network().InterfaceListenAddresses()
	if err != nil {
		addrs = h.host.Addrs()
	}
	suffix := "/p2p/" + h.ID().String()
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String() + suffix
	}
	return out
}

// Connect dials a peer given by a multiaddr ending in /p2p/<id>. The peer
// is not redialed when the link drops (bootstrap peers are).
func (h *Host) Connect(ctx context.Context, addr string) error {
	ai, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return fmt.Errorf("p2p: connect %q: %w", addr, err)
	}
	if err := h.host.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("p2p: connect %s: %w", ai.ID, err)
	}
	return nil
}

// Block disconnects p and refuses connections to and from it until
// Unblock(p). Operators use it to shut out a peer; tests to partition.
func (h *Host) Block(p peer.ID) {
	h.gater.block(p, time.Time{})
	h.host.Network().ClosePeer(p)
}

// Unblock lifts a Block or a ban of p, clears its strikes and, if it is a
// bootstrap peer, redials it at once.
func (h *Host) Unblock(p peer.ID) {
	h.gater.unblock(p)
	h.strikes.reset(p)
	select {
	case h.redial <- p:
	default:
	}
}

// Blocked returns the peers blocked or banned now.
func (h *Host) Blocked() []peer.ID { return h.gater.list() }

// ban disconnects p and refuses it for the ban duration.
func (h *Host) ban(p peer.ID, reason string) { h.banAfter(p, reason, 0) }

// banAfter bans p at once but leaves its connections open for linger, so
// that what we last wrote to it (a hello saying why) can arrive.
func (h *Host) banAfter(p peer.ID, reason string, linger time.Duration) {
	if p == h.ID() {
		return
	}
	h.log.Warn("banning peer", "peer", p, "for", h.cfg.BanDuration, "reason", reason)
	h.gater.block(p, time.Now().Add(h.cfg.BanDuration))
	if linger <= 0 {
		h.host.Network().ClosePeer(p)
		return
	}
	h.goBackground(func() {
		t := time.NewTimer(linger)
		defer t.Stop()
		select {
		case <-t.C:
		case <-h.ctx.Done():
		}
		h.host.Network().ClosePeer(p)
	})
}

// Strike counts one invalid item p served that only the caller could find
// invalid (a block that fails the node's validation after the sync
// protocol's checks passed), as an invalid gossip message counts: at
// Config.MaxInvalid within Config.InvalidWindow p is banned.
func (h *Host) Strike(p peer.ID, err error) { h.strike(p, err) }

// strike counts one invalid message or response from p and bans p when it
// reaches Config.MaxInvalid.
func (h *Host) strike(p peer.ID, err error) {
	if p == h.ID() {
		return
	}
	n := h.strikes.add(p)
	h.log.Debug("invalid data from peer", "peer", p, "strikes", n, "err", err)
	if n >= h.cfg.MaxInvalid {
		h.ban(p, fmt.Sprintf("%d invalid messages, last: %v", n, err))
	}
}

// watchPeers starts the hello on each new connection and forgets peers
// that left.
func (h *Host) watchPeers(sub event.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-h.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			switch ev.Connectedness {
			case network.Connected:
				if h.gater.blocked(ev.Peer) {
					h.host.Network().ClosePeer(ev.Peer)
					continue
				}
				h.startHello(ev.Peer)
			case network.NotConnected:
				h.dropPeerState(ev.Peer)
				h.mu.Lock()
				for _, m := range h.mesh {
					delete(m, ev.Peer)
				}
				h.mu.Unlock()
				select {
				case h.redial <- ev.Peer:
				default:
				}
			}
		}
	}
}

// reconnectLoop keeps the bootstrap peers connected: a peer that is not
// connected (and not blocked) is dialed, with a per-peer exponential
// backoff (with jitter) from ReconnectMin to ReconnectMax after failures.
func (h *Host) reconnectLoop() {
	if len(h.bootstrap) == 0 {
		return
	}
	type dialState struct {
		delay   time.Duration
		next    time.Time
		dialing bool
	}
	state := make(map[peer.ID]*dialState, len(h.bootstrap))
	for _, ai := range h.bootstrap {
		state[ai.ID] = &dialState{delay: h.cfg.ReconnectMin}
	}
	type result struct {
		p   peer.ID
		err error
	}
	results := make(chan result, len(h.bootstrap))
	var dials sync.WaitGroup
	defer dials.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-timer.C:
		case p := <-h.redial:
			if s := state[p]; s != nil && !s.dialing && h.host.Network().Connectedness(p) != network.Connected {
				s.delay, s.next = h.cfg.ReconnectMin, time.Time{}
			}
		case r := <-results:
			s := state[r.p]
			s.dialing = false
			if r.err != nil {
				if h.ctx.Err() != nil {
					return
				}
				h.log.Debug("redial failed", "peer", r.p, "retry in", s.delay, "err", r.err)
				jitter := time.Duration(rand.Int64N(int64(s.delay)/4 + 1))
				s.next = time.Now().Add(s.delay + jitter)
				s.delay = min(2*s.delay, h.cfg.ReconnectMax)
			} else {
				s.delay, s.next = h.cfg.ReconnectMin, time.Time{}
			}
		}
		now := time.Now()
		wait := h.cfg.ReconnectMax
		for _, ai := range h.bootstrap {
			s := state[ai.ID]
			switch {
			case s.dialing:
			case h.host.Network().Connectedness(ai.ID) == network.Connected:
				s.delay, s.next = h.cfg.ReconnectMin, time.Time{}
			case h.gater.blocked(ai.ID):
				wait = min(wait, h.cfg.ReconnectMin)
			case now.Before(s.next):
				wait = min(wait, s.next.Sub(now))
			default:
				s.dialing = true
				dials.Add(1)
				go func(ai peer.AddrInfo) {
					defer dials.Done()
					ctx, cancel := context.WithTimeout(h.ctx, h.cfg.HelloTimeout)
					defer cancel()
					// Our backoff replaces the swarm's.
					err := h.host.Connect(network.WithForceDirectDial(ctx, "bootstrap"), ai)
					results <- result{ai.ID, err}
				}(ai)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// addKicker registers f to be called when a peer passes the hello.
func (h *Host) addKicker(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kickers = append(h.kickers, f)
}

// OnHello registers f to be called, without blocking, whenever a peer
// passes the hello (the node asks new peers for what gossip does not
// repeat).
func (h *Host) OnHello(f func()) { h.addKicker(f) }

func (h *Host) syncKick() {
	h.mu.Lock()
	ks := append([]func(){}, h.kickers...)
	h.mu.Unlock()
	for _, f := range ks {
		f()
	}
}
