package p2p

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/ledger"
)

// A PeerInfo describes a connected peer that passed the hello: what it
// reported about itself and its head as last seen (from the hello, from a
// sync status request, or from a block it forwarded on the blocks topic,
// whichever is highest).
type PeerInfo struct {
	ID      peer.ID
	Addr    string // remote multiaddr of one connection
	Version string
	Height  uint64
	Head    ledger.Hash // hash of the block at Height; zero when only a height is known
	Score   float64     // gossipsub score, refreshed every second
	Invalid int         // invalid messages and responses in the current window
}

type helloStatus int

const (
	helloPending helloStatus = iota
	helloOK
	helloFailed
)

// A peerState is what the host knows about one connected peer.
type peerState struct {
	mu      sync.Mutex
	status  helloStatus
	ready   chan struct{} // closed when status leaves helloPending
	running bool          // our own hello exchange is under way
	version string
	height  uint64
	head    ledger.Hash
}

func newPeerState() *peerState { return &peerState{ready: make(chan struct{})} }

// verify records a valid hello and reports whether it is the first.
func (s *peerState) verify(h *hello) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == helloFailed {
		return false
	}
	first := s.status == helloPending
	if first {
		s.status = helloOK
		close(s.ready)
	}
	s.version = h.Version
	if h.Height >= s.height {
		s.height, s.head = h.Height, h.Head
	}
	return first
}

func (s *peerState) fail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == helloPending {
		s.status = helloFailed
		close(s.ready)
	}
}

func (s *peerState) verified() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status == helloOK
}

// noteHead raises the peer's known head to height (with hash, which may be
// zero when unknown).
func (s *peerState) noteHead(height uint64, hash ledger.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if height > s.height || height == s.height && s.head.IsZero() {
		s.height, s.head = height, hash
	}
}

// setHead sets the peer's head as the peer itself reported it.
func (s *peerState) setHead(height uint64, hash ledger.Hash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.height, s.head = height, hash
}

// peerState returns p's state, creating a pending one.
func (h *Host) peerState(p peer.ID) *peerState {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.peers[p]
	if s == nil {
		s = newPeerState()
		h.peers[p] = s
	}
	return s
}

func (h *Host) dropPeerState(p peer.ID) {
	h.mu.Lock()
	s := h.peers[p]
	delete(h.peers, p)
	h.mu.Unlock()
	if s != nil {
		s.fail()
	}
}

// waitVerified waits until p's hello has been accepted (true) or refused,
// p is gone, the hello timeout passes or ctx ends (false).
func (h *Host) waitVerified(ctx context.Context, p peer.ID) bool {
	if p == h.host.ID() {
		return true
	}
	if !h.isConnected(p) {
		return false
	}
	s := h.peerState(p)
	t := time.NewTimer(h.cfg.HelloTimeout)
	defer t.Stop()
	select {
	case <-s.ready:
		return s.verified()
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	case <-h.ctx.Done():
		return false
	}
}

func (h *Host) isConnected(p peer.ID) bool {
	return h.host.Network().Connectedness(p) == network.Connected
}

// startHello starts our side of the hello with p unless it is done or
// under way. A hello that failed earlier (say, timed out) is forgotten:
// a new connection gets a new one.
func (h *Host) startHello(p peer.ID) {
	h.mu.Lock()
	if s := h.peers[p]; s != nil {
		s.mu.Lock()
		failed := s.status == helloFailed
		s.mu.Unlock()
		if failed {
			delete(h.peers, p)
		}
	}
	h.mu.Unlock()
	s := h.peerState(p)
	s.mu.Lock()
	start := s.status == helloPending && !s.running
	s.running = start || s.running
	s.mu.Unlock()
	if !start {
		return
	}
	h.goBackground(func() {
		h.sayHello(p)
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	})
}

// Peers returns the connected peers that passed the hello, sorted by id.
func (h *Host) Peers() []PeerInfo {
	h.mu.Lock()
	ids := make([]peer.ID, 0, len(h.peers))
	states := make([]*peerState, 0, len(h.peers))
	for p, s := range h.peers {
		ids = append(ids, p)
		states = append(states, s)
	}
	scores := h.scores
	h.mu.Unlock()
	var out []PeerInfo
	for i, p := range ids {
		s := states[i]
		s.mu.Lock()
		ok, info := s.status == helloOK, PeerInfo{ID: p, Version: s.version, Height: s.height, Head: s.head}
		s.mu.Unlock()
		if !ok {
			continue
		}
		conns := h.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		info.Addr = conns[0].RemoteMultiaddr().String()
		info.Score = scores[p]
		info.Invalid = h.strikes.count(p)
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Peer returns what is known of p, if it is connected and passed the hello.
func (h *Host) Peer(p peer.ID) (PeerInfo, bool) {
	for _, pi := range h.Peers() {
		if pi.ID == p {
			return pi, true
		}
	}
	return PeerInfo{}, false
}

// A strikes counts each peer's invalid messages and responses within a
// window. Counts survive disconnects, so reconnecting does not reset them.
type strikes struct {
	now    func() time.Time
	window time.Duration

	mu sync.Mutex
	m  map[peer.ID]*strike
}

type strike struct {
	n     int
	since time.Time
}

func newStrikes(now func() time.Time, window time.Duration) *strikes {
	return &strikes{now: now, window: window, m: make(map[peer.ID]*strike)}
}

// add counts one strike against p and returns its count in the window.
func (s *strikes) add(p peer.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for q, st := range s.m {
		if now.Sub(st.since) > s.window {
			delete(s.m, q)
		}
	}
	st := s.m[p]
	if st == nil {
		st = &strike{since: now}
		s.m[p] = st
	}
	st.n++
	return st.n
}

func (s *strikes) count(p peer.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.m[p]; st != nil && s.now().Sub(st.since) <= s.window {
		return st.n
	}
	return 0
}

func (s *strikes) reset(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, p)
}

// isPeerFault reports whether err shows the peer misbehaving (rather than
// failing, timing out or being unreachable).
func isPeerFault(err error) bool {
	return errors.Is(err, ErrRefused) || errors.Is(err, ErrProtocol) || errors.Is(err, ledger.ErrInvalidBlock)
}
