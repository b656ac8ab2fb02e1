package p2p

import (
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// resourceLimits returns the resource manager's fixed limits (doc.go,
// "Resource limits"): libp2p's default scaling limits and its service
// limits scaled to cfg.MaxMemory and cfg.MaxFDs (not to the machine, so a
// node behaves the same everywhere), our two protocols' limits, and the
// system connection, memory and descriptor caps from cfg.
func resourceLimits(cfg *Config, helloID protocol.ID, syncIDs ...protocol.ID) rcmgr.ConcreteLimitConfig {
	l := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&l)
	// hello: one short stream each way per connection.
	l.AddProtocolLimit(helloID,
		rcmgr.BaseLimit{StreamsInbound: 128, StreamsOutbound: 128, Streams: 256, Memory: 16 << 20},
		rcmgr.BaseLimitIncrease{})
	l.AddProtocolPeerLimit(helloID,
		rcmgr.BaseLimit{StreamsInbound: 2, StreamsOutbound: 2, Streams: 4, Memory: 1 << 20},
		rcmgr.BaseLimitIncrease{})
	// sync (each version): our Syncer keeps at most two requests in
	// flight per peer.
	for _, id := range syncIDs {
		l.AddProtocolLimit(id,
			rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 256 << 20},
			rcmgr.BaseLimitIncrease{})
		l.AddProtocolPeerLimit(id,
			rcmgr.BaseLimit{StreamsInbound: 4, StreamsOutbound: 4, Streams: 8, Memory: 64 << 20},
			rcmgr.BaseLimitIncrease{})
	}
	scaled := l.Scale(cfg.MaxMemory, cfg.MaxFDs)
	conns := rcmgr.LimitVal(cfg.MaxConns)
	part := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:         conns,
			ConnsInbound:  conns,
			ConnsOutbound: conns,
			Memory:        rcmgr.LimitVal64(cfg.MaxMemory),
			FD:            rcmgr.LimitVal(cfg.MaxFDs),
		},
	}
	return part.Build(scaled)
}
