package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/p2p"
)

// Gossip topics (DESIGN §5); p2p scopes them to the chain.
const (
	topicMempool   = p2p.TopicMempool
	topicAttest    = p2p.TopicAttest
	topicConsensus = p2p.TopicConsensus
	topicBlocks    = p2p.TopicBlocks
)

// A pendingMsg announces pending records on the mempool topic.
type pendingMsg struct {
	Records []pendingItem `json:"records"`
}

type pendingItem struct {
	Key    string `json:"key"`
	Commit string `json:"commit,omitempty"`
	Tree   string `json:"tree,omitempty"`
}

func (n *Node) openP2P(ctx context.Context) error {
	var src p2p.BlockSource = n.store
	if n.pow == nil {
		src = cosigSource{n.store} // sync/2 serves co-signatures (cosign_pull.go)
	}
	h, err := p2p.New(ctx, p2p.Config{
		Chain:     n.g.Chain,
		Genesis:   n.g.Hash(),
		Key:       n.cfg.PeerKey,
		Listen:    n.cfg.P2PListen,
		Bootstrap: n.cfg.Bootstrap,
		MDNS:      n.cfg.MDNS,
		Logger:    n.log,
		Version:   "vcsledger/" + Version,
		Source:    src,
		Handler:   gossip{n},
	})
	if err != nil {
		return fmt.Errorf("node: p2p: %w", err)
	}
	n.host = h
	if n.pow != nil {
		return nil // pow_sync.go syncs branches
	}
	h.OnHello(n.cosignPullKick)
	n.syncer, err = p2p.NewSyncer(h, p2p.SyncConfig{
		Store:  n.store,
		Seal:   n.seal,
		Lock:   &n.appendMu,
		Logger: n.log,
		OnAppend: func(ctx context.Context, b *ledger.Block) {
			n.appended(ctx, b, false)
			n.kickEngine()
		},
		OnStoreError: func(height uint64, err error) {
			n.stall(height, fmt.Errorf("append synced block: %w", err))
			n.kickEngine()
		},
	})
	if err != nil {
		return fmt.Errorf("node: p2p sync: %w", err)
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.syncer.Run(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.reannounce(ctx)
	}()
	return nil
}

func (n *Node) publish(ctx context.Context, topic string, data []byte) {
	if n.host == nil {
		return
	}
	if topic != topicBlocks {
		data = n.sent.wrap(data, time.Now()) // resend.go
	}
	if err := n.host.Publish(ctx, topic, data); err != nil && ctx.Err() == nil {
		n.log.Warn("publish", "topic", topic, "err", err)
	}
}

// gossip validates and delivers messages from peers.
type gossip struct{ n *Node }

// Validate runs before a message is forwarded: only well-formed, correctly
// signed messages travel on.
func (g gossip) Validate(topic string, from string, data []byte) error {
	n := g.n
	if topic != topicBlocks {
		var err error
		if data, err = unwrapResend(data); err != nil {
			return err
		}
	}
	switch topic {
	case topicMempool:
		_, err := parsePending(data)
		return err
	case topicAttest:
		if ledger.IsCosignature(data) {
			if n.pow != nil {
				return fmt.Errorf("checkpoint co-signature on a pow chain")
			}
			return n.validateCosig(data) // cosign.go
		}
		if isAuthorityMsg(data) {
			if n.pow != nil {
				return fmt.Errorf("authority change on a pow chain")
			}
			return n.checkAuthorityMsg(data) // authority.go
		}
		a, err := ledger.ParseAttestation(data)
		if err != nil {
			return err
		}
		if a.Chain != n.g.Chain {
			return fmt.Errorf("attestation for chain %q", a.Chain)
		}
		if n.pow == nil && !n.member(a.Validator) {
			return fmt.Errorf("attestation by non-validator %s", a.Validator)
		}
		if n.pool.Has(*a) {
			return nil // verified when the pool took it (a re-announcement)
		}
		return a.Verify()
	case topicConsensus:
		if n.pow != nil {
			return fmt.Errorf("consensus message on a pow chain")
		}
		m, err := n.parseConsensus(data)
		if err != nil {
			return err
		}
		// Verify checks signatures, not the chain: a message another chain's
		// validator signed with the same key is refused here rather than
		// forwarded for every engine to refuse.
		chain := ""
		if m.Proposal != nil {
			chain = m.Proposal.Chain
		} else if m.Vote != nil {
			chain = m.Vote.Chain
		}
		if chain != n.g.Chain {
			return fmt.Errorf("consensus message for chain %q", chain)
		}
		h := uint64(0)
		if m.Proposal != nil {
			h = m.Proposal.Height
		} else {
			h = m.Vote.Height
		}
		return m.Verify(n.setFor(h))
	case topicBlocks:
		if n.storedBlock(context.Background(), data) {
			return fmt.Errorf("%w: block already stored", p2p.ErrIgnore)
		}
		b, err := n.parseBlock(data)
		if err != nil {
			return err
		}
		if n.pow != nil {
			return n.powGossipCheck(b)
		}
		if b.Header.Chain != n.g.Chain {
			return fmt.Errorf("block for chain %q", b.Header.Chain)
		}
		if b.Certificate == nil {
			return fmt.Errorf("block %d without certificate", b.Header.Height)
		}
		return b.Certificate.Verify(n.setFor(b.Header.Height), n.g.Chain, b.Header.Height, b.Hash())
	}
	return fmt.Errorf("unknown topic %q", topic)
}

// Deliver hands a validated message to its consumer.
func (g gossip) Deliver(topic string, from string, data []byte) {
	n := g.n
	ctx := context.Background()
	if topic != topicBlocks {
		var err error
		if data, err = unwrapResend(data); err != nil {
			return
		}
	}
	switch topic {
	case topicMempool:
		items, err := parsePending(data)
		if err != nil {
			return
		}
		for _, it := range items {
			k, _ := ledger.ParseKey(it.Key)
			// Relayed records carry no submitter: the rate limit is applied
			// where a client submitted them.
			n.pool.Add(ctx, k, claimOf(it.Commit, it.Tree), "")
		}
	case topicAttest:
		if ledger.IsCosignature(data) {
			n.deliverCosig(ctx, data)
			return
		}
		if isAuthorityMsg(data) {
			n.deliverAuthorityMsg(data)
			return
		}
		a, err := ledger.ParseAttestation(data)
		if err == nil {
			if err := n.pool.AddAttestation(ctx, *a); err != nil {
				n.noteAttestConflict(ctx, err)
			}
		}
	case topicConsensus:
		m, err := n.parseConsensus(data)
		if err == nil {
			select {
			case n.inbox <- m:
			default:
				n.log.Warn("consensus inbox full; message dropped")
			}
		}
	case topicBlocks:
		b, err := n.parseBlock(data)
		if err != nil {
			return
		}
		if n.pow != nil {
			n.powDeliver(b, peer.ID(from))
			return
		}
		head, err := n.store.Head(ctx)
		if err != nil {
			return
		}
		switch {
		case b.Header.Height == head.Height+1:
			if err := n.gossipedBlock(ctx, b); err != nil {
				n.log.Debug("gossiped block not appended", "height", b.Header.Height, "err", err)
			}
		case b.Header.Height > head.Height+1 && n.syncer != nil:
			n.syncer.Kick()
		}
	}
}

func parsePending(data []byte) ([]pendingItem, error) {
	var m pendingMsg
	if err := strictJSON(data, &m); err != nil {
		return nil, fmt.Errorf("pending message: %w", err)
	}
	if len(m.Records) == 0 || len(m.Records) > 10_000 {
		return nil, fmt.Errorf("pending message with %d records", len(m.Records))
	}
	for _, it := range m.Records {
		if _, err := ledger.ParseKey(it.Key); err != nil {
			return nil, err
		}
		if it.Commit != "" {
			if err := ledger.CheckCommit(it.Commit); err != nil {
				return nil, err
			}
		}
	}
	return m.Records, nil
}
