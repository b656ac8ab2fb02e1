package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/vcsledger/vcsledger/ledger"
)

// The gossip topics (DESIGN §5). On the wire each is scoped to the chain:
// "vcsledger/<chain>/<topic>".
const (
	TopicMempool   = "mempool"
	TopicAttest    = "attest"
	TopicConsensus = "consensus"
	TopicBlocks    = "blocks"
)

// Topics lists the gossip topics.
var Topics = []string{TopicMempool, TopicAttest, TopicConsensus, TopicBlocks}

// Peer score parameters (doc.go, "Peer scoring"). Only invalid messages
// (P4) and gossip misbehaviour (P7) count; the app-specific score sinks
// banned peers.
const (
	scoreGossipThreshold   = -100
	scorePublishThreshold  = -500
	scoreGraylistThreshold = -1000
	scoreInvalidWeight     = -10 // per topic: -10 * invalid², so 10 invalid messages reach the graylist
	scoreInvalidDecay      = 0.997
	scoreBehaviourWeight   = -1
	scoreBehaviourLimit    = 10
	scoreBehaviourDecay    = 0.99
	scoreBanned            = -1e6
)

// A topic is one joined gossip topic.
type topic struct {
	name    string // short name, one of Topics
	full    string // vcsledger/<chain>/<name>
	maxSize int
	t       *pubsub.Topic
	sub     *pubsub.Subscription
}

// msgID is a message's id: SHA-256 of its data, so that the same payload
// is one message whoever publishes or forwards it.
func msgID(m *pb.Message) string {
	sum := sha256.Sum256(m.Data)
	return string(sum[:])
}

func (h *Host) startGossip() error {
	q := h.cfg.QueueSize
	params := &pubsub.PeerScoreParams{
		Topics:            make(map[string]*pubsub.TopicScoreParams),
		AppSpecificScore:  h.appScore,
		AppSpecificWeight: 1,
		// Validators and testnets run several nodes behind one address:
		// no IP colocation penalty.
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    scoreBehaviourWeight,
		BehaviourPenaltyThreshold: scoreBehaviourLimit,
		BehaviourPenaltyDecay:     scoreBehaviourDecay,
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               h.cfg.BanDuration,
	}
	h.topics = make(map[string]*topic, len(Topics))
	for _, name := range Topics {
		t := &topic{name: name, full: "vcsledger/" + h.cfg.Chain + "/" + name, maxSize: h.cfg.MaxPoolMessageBytes}
		if name == TopicConsensus || name == TopicBlocks {
			t.maxSize = h.cfg.MaxMessageBytes
		}
		h.topics[name] = t
		params.Topics[t.full] = &pubsub.TopicScoreParams{
			TopicWeight:                    1,
			TimeInMeshQuantum:              time.Second,
			InvalidMessageDeliveriesWeight: scoreInvalidWeight,
			InvalidMessageDeliveriesDecay:  scoreInvalidDecay,
		}
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:   scoreGossipThreshold,
		PublishThreshold:  scorePublishThreshold,
		GraylistThreshold: scoreGraylistThreshold,
	}
	ps, err := pubsub.NewGossipSub(h.ctx, h.host,
		pubsub.WithMessageIdFn(msgID),
		// Payloads authenticate themselves (signed votes, attestations,
		// certified blocks) or need no author (pending keys), so messages
		// carry no author, sequence number or pubsub signature.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMaxMessageSize(h.cfg.MaxMessageBytes+64<<10),
		pubsub.WithPeerOutboundQueueSize(q),
		pubsub.WithValidateQueueSize(q),
		pubsub.WithValidateThrottle(q),
		pubsub.WithPeerExchange(false),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(h.inspectScores, time.Second),
		pubsub.WithRawTracer(tracer{h}),
	)
	if err != nil {
		return fmt.Errorf("p2p: gossipsub: %w", err)
	}
	h.ps = ps
	for _, name := range Topics {
		t := h.topics[name]
		if err := ps.RegisterTopicValidator(t.full, h.validator(t), pubsub.WithValidatorConcurrency(q), pubsub.WithValidatorTimeout(h.cfg.HelloTimeout+10*time.Second)); err != nil {
			return fmt.Errorf("p2p: topic %s: %w", t.full, err)
		}
		if t.t, err = ps.Join(t.full); err != nil {
			return fmt.Errorf("p2p: join %s: %w", t.full, err)
		}
		if t.sub, err = t.t.Subscribe(pubsub.WithBufferSize(q)); err != nil {
			return fmt.Errorf("p2p: subscribe %s: %w", t.full, err)
		}
		h.goBackground(func() { h.deliver(t) })
	}
	return nil
}

func (h *Host) closeGossip() {
	for _, t := range h.topics {
		if t.sub != nil {
			t.sub.Cancel()
		}
	}
}

// validator returns the pubsub validator of t: size cap, then the peer's
// hello (waiting for it if under way), then Handler.Validate.
func (h *Host) validator(t *topic) pubsub.ValidatorEx {
	return func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		local := from == h.ID()
		if len(m.Data) > t.maxSize {
			if !local {
				h.strike(from, fmt.Errorf("%w: %d bytes on %s", ErrTooLarge, len(m.Data), t.name))
			}
			return pubsub.ValidationReject
		}
		if local {
			return pubsub.ValidationAccept
		}
		if !h.waitVerified(ctx, from) {
			return pubsub.ValidationIgnore
		}
		if h.cfg.Handler == nil {
			return pubsub.ValidationAccept
		}
		err := h.cfg.Handler.Validate(t.name, from.String(), m.Data)
		switch {
		case err == nil:
			return pubsub.ValidationAccept
		case errors.Is(err, ErrIgnore):
			return pubsub.ValidationIgnore
		default:
			h.strike(from, fmt.Errorf("topic %s: %w", t.name, err))
			return pubsub.ValidationReject
		}
	}
}

// deliver hands t's accepted messages to the handler until the host stops.
func (h *Host) deliver(t *topic) {
	for {
		m, err := t.sub.Next(h.ctx)
		if err != nil {
			return
		}
		local := m.ReceivedFrom == h.ID()
		if !local && t.name == TopicBlocks {
			h.noteBlockHead(m.ReceivedFrom, m.Data)
		}
		if h.cfg.Handler != nil && (!local || h.cfg.DeliverOwn) {
			h.cfg.Handler.Deliver(t.name, m.ReceivedFrom.String(), m.Data)
		}
	}
}

// noteBlockHead raises p's known head to the block p forwarded; only the
// header section of the block encoding is parsed.
func (h *Host) noteBlockHead(p peer.ID, data []byte) {
	hdr, err := blockHeader(data)
	if err != nil {
		return
	}
	h.mu.Lock()
	s := h.peers[p]
	h.mu.Unlock()
	if s != nil {
		s.noteHead(hdr.Height, hdr.Hash())
	}
}

// blockHeader parses the header section of a ledger.Block encoding.
func blockHeader(data []byte) (*ledger.Header, error) {
	rest, ok := bytes.CutPrefix(data, []byte("vcsledger-blockdata/1\nheader "))
	if !ok {
		return nil, fmt.Errorf("%w: not a block", ErrProtocol)
	}
	i := bytes.IndexByte(rest, '\n')
	if i < 0 || i > 8 {
		return nil, fmt.Errorf("%w: bad header section", ErrProtocol)
	}
	n, err := parseUint(string(rest[:i]))
	if err != nil || n > uint64(len(rest)-i-1) {
		return nil, fmt.Errorf("%w: bad header length", ErrProtocol)
	}
	return ledger.ParseHeader(rest[i+1 : i+1+int(n)])
}

// Publish publishes data on topic (one of Topics). It fails when data is
// over the topic's size cap.
func (h *Host) Publish(ctx context.Context, topic string, data []byte) error {
	t := h.topics[topic]
	if t == nil {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	if len(data) > t.maxSize {
		return fmt.Errorf("%w: %d bytes on %s, cap %d", ErrTooLarge, len(data), topic, t.maxSize)
	}
	if err := t.t.Publish(ctx, data); err != nil {
		if h.ctx.Err() != nil {
			return ErrClosed
		}
		return fmt.Errorf("p2p: publish on %s: %w", topic, err)
	}
	return nil
}

// TopicPeers returns the peers that passed the hello and are in our mesh
// for topic: those we forward its messages to.
func (h *Host) TopicPeers(topic string) []peer.ID {
	t := h.topics[topic]
	if t == nil {
		return nil
	}
	h.mu.Lock()
	var out []peer.ID
	for p := range h.mesh[t.full] {
		if s := h.peers[p]; s != nil && s.verified() {
			out = append(out, p)
		}
	}
	h.mu.Unlock()
	slices.Sort(out)
	return out
}

// WaitTopicPeers waits until at least n peers that passed the hello are in
// our mesh for topic. Until a peer is grafted, messages we forward do not
// reach it: the first messages on a fresh topic are otherwise lost.
func (h *Host) WaitTopicPeers(ctx context.Context, topic string, n int) error {
	if h.topics[topic] == nil {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if len(h.TopicPeers(topic)) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("p2p: waiting for %d peers on %s: %w", n, topic, ctx.Err())
		case <-h.ctx.Done():
			return ErrClosed
		case <-tick.C:
		}
	}
}

// appScore is the app-specific score: banned peers sink below every
// threshold.
func (h *Host) appScore(p peer.ID) float64 {
	if h.gater.blocked(p) {
		return scoreBanned
	}
	return 0
}

// inspectScores keeps the scores for Peers and bans a peer that fell below
// the graylist threshold.
func (h *Host) inspectScores(scores map[peer.ID]float64) {
	h.mu.Lock()
	h.scores = scores
	h.mu.Unlock()
	for p, s := range scores {
		if s <= scoreGraylistThreshold && !h.gater.blocked(p) {
			h.ban(p, fmt.Sprintf("gossip score %.0f", s))
		}
	}
}

// A DropStats counts gossip messages lost to full queues: pubsub drops them
// without telling the sender, so the host counts them (and log each time a count
// passes a power of two).
type DropStats struct {
	Outbound   uint64 // messages not sent because a peer's outbound queue was full
	Validation uint64 // incoming messages dropped because validation was saturated
	Delivery   uint64 // accepted messages dropped because Deliver fell behind
}

type dropCounters struct{ outbound, validation, delivery atomic.Uint64 }

// Drops returns the gossip messages dropped so far.
func (h *Host) Drops() DropStats {
	return DropStats{
		Outbound:   h.drops.outbound.Load(),
		Validation: h.drops.validation.Load(),
		Delivery:   h.drops.delivery.Load(),
	}
}

func (h *Host) countDrop(c *atomic.Uint64, kind string, n uint64) {
	if n == 0 {
		return
	}
	v := c.Add(n)
	if bits.Len64(v) != bits.Len64(v-n) { // crossed a power of two
		h.log.Warn("gossip messages dropped", "kind", kind, "total", v)
	}
}

// A tracer follows the mesh (Graft, Prune) and counts drops.
type tracer struct{ h *Host }

func (t tracer) Graft(p peer.ID, topic string) {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	if t.h.mesh[topic] == nil {
		t.h.mesh[topic] = make(map[peer.ID]bool)
	}
	t.h.mesh[topic][p] = true
}

func (t tracer) Prune(p peer.ID, topic string) {
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	delete(t.h.mesh[topic], p)
}

func (t tracer) DropRPC(rpc *pubsub.RPC, p peer.ID) {
	t.h.countDrop(&t.h.drops.outbound, "outbound queue full", uint64(len(rpc.GetPublish())))
}

func (t tracer) RejectMessage(m *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		t.h.countDrop(&t.h.drops.validation, reason, 1)
	}
}

func (t tracer) UndeliverableMessage(m *pubsub.Message) {
	t.h.countDrop(&t.h.drops.delivery, "subscriber too slow", 1)
}

func (tracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (tracer) OnClosedOutboundStream(peer.ID)           {}
func (tracer) Join(string)                              {}
func (tracer) Leave(string)                             {}
func (tracer) ValidateMessage(*pubsub.Message)          {}
func (tracer) DeliverMessage(*pubsub.Message)           {}
func (tracer) DuplicateMessage(*pubsub.Message)         {}
func (tracer) ThrottlePeer(peer.ID)                     {}
func (tracer) RecvRPC(*pubsub.RPC)                      {}
func (tracer) SendRPC(*pubsub.RPC, peer.ID)             {}
