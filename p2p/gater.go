package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// A gater is the host's connection gater: it refuses dials to and
// connections from blocked peers. A peer is blocked indefinitely by
// Host.Block, or until a deadline when banned for misbehaviour.
type gater struct {
	now func() time.Time

	mu    sync.Mutex
	until map[peer.ID]time.Time // zero: until Unblock
}

func newGater(now func() time.Time) *gater {
	return &gater{now: now, until: make(map[peer.ID]time.Time)}
}

// block blocks p until t (forever when t is zero). A ban never shortens an
// existing block.
func (g *gater) block(p peer.ID, t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, ok := g.until[p]
	switch {
	case !ok, t.IsZero():
		g.until[p] = t
	case !old.IsZero() && t.After(old):
		g.until[p] = t
	}
}

func (g *gater) unblock(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.until, p)
}

func (g *gater) blocked(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.until[p]
	if !ok {
		return false
	}
	if !t.IsZero() && !g.now().Before(t) {
		delete(g.until, p)
		return false
	}
	return true
}

func (g *gater) list() []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var out []peer.ID
	for p, t := range g.until {
		if t.IsZero() || now.Before(t) {
			out = append(out, p)
		}
	}
	return out
}

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return !g.blocked(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.blocked(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.blocked(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
