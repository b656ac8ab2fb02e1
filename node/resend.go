package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Sending the same gossip again.
//
// Gossipsub remembers the id of each message it has published or delivered
// (p2p's message id is the SHA-256 of the payload) for two minutes, and
// until its next once-a-minute sweep after that; publishing a payload it
// remembers is silently a no-op. Yet the node sends the same bytes again on
// purpose: the consensus engine rebroadcasts its proposal and votes for
// peers that missed them, and the mempool re-announces what is still
// pending. Without help, votes sent into a partition were not sent again
// for two to three minutes after it healed, and the network stood still.
//
// So a payload published within resendWindow is published again inside a
// resend envelope, whose bytes (and id) differ each time:
//
//	vcsledger-resend/1 <16 lowercase hex digits>\n<payload>
//
// A receiver unwraps it before validating and delivering the payload,
// which its consumer (engine, mempool) takes like any copy it already has.
// Blocks are never resent this way (sync fetches what a node missed).
const (
	resendMagic  = "vcsledger-resend/1 "
	resendHeader = len(resendMagic) + 16 + 1
	// resendWindow covers gossipsub's memory: TimeCacheDuration (2 min)
	// plus its sweep interval (1 min).
	resendWindow = 3 * time.Minute
)

// Re-announcing the mempool: every reannounceEvery, the keys pending for
// at least that long (oldest first, up to reannounceMax) are announced on
// the mempool topic again, and a validator publishes its own attestations
// of them again, so that what was accepted while a node was cut off (a
// partition, a restart) reaches the others once it is back.
const (
	reannounceEvery = 5 * time.Second
	reannounceMax   = 1000
	// announceBytes caps one announcement, below the mempool topic's
	// message cap (p2p.DefaultMaxPoolMsgBytes).
	announceBytes = 512 << 10
)

// sent remembers when each payload was last published (by digest), for
// resendWindow.
type sent struct {
	mu    sync.Mutex
	at    map[[32]byte]time.Time
	order []sentItem // in publish order, to forget the old ones
}

type sentItem struct {
	sum [32]byte
	at  time.Time
}

// wrap returns data to publish now: data itself the first time in
// resendWindow, else data inside a resend envelope.
func (s *sent) wrap(data []byte, now time.Time) []byte {
	sum := sha256.Sum256(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at == nil {
		s.at = make(map[[32]byte]time.Time)
	}
	for len(s.order) > 0 && now.Sub(s.order[0].at) > resendWindow {
		if it := s.order[0]; s.at[it.sum] == it.at {
			delete(s.at, it.sum)
		}
		s.order = s.order[1:]
	}
	last, seen := s.at[sum]
	if !seen || now.Sub(last) > resendWindow {
		s.at[sum] = now
		s.order = append(s.order, sentItem{sum, now})
		return data
	}
	out := make([]byte, 0, resendHeader+len(data))
	out = append(out, resendMagic...)
	out = fmt.Appendf(out, "%016x\n", rand.Uint64())
	return append(out, data...)
}

// unwrapResend returns the payload of a resend envelope, or data itself
// when it is not one.
func unwrapResend(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, []byte(resendMagic)) {
		return data, nil
	}
	if len(data) < resendHeader || data[resendHeader-1] != '\n' {
		return nil, fmt.Errorf("malformed resend envelope")
	}
	nonce := data[len(resendMagic) : resendHeader-1]
	if _, err := hex.Decode(make([]byte, 8), nonce); err != nil || bytes.ContainsAny(nonce, "ABCDEF") {
		return nil, fmt.Errorf("malformed resend envelope nonce")
	}
	inner := data[resendHeader:]
	if bytes.HasPrefix(inner, []byte(resendMagic)) {
		return nil, fmt.Errorf("nested resend envelope")
	}
	return inner, nil
}

// reannounce re-announces the old pending records until ctx ends.
func (n *Node) reannounce(ctx context.Context) {
	n.everyWithPeers(ctx, reannounceEvery, func() {
		cutoff := n.cfg.Now().Add(-reannounceEvery)
		var items []pendingItem
		for _, e := range n.pool.List(reannounceMax) {
			if e.Added.After(cutoff) {
				continue
			}
			items = append(items, pendingItem{Key: e.Key.String(), Commit: e.Claim.Commit, Tree: e.Claim.Tree})
			if n.signer == nil || !n.gossipsAttestations() {
				continue
			}
			for _, a := range e.Attestations {
				if a.Validator == n.signer.Public() {
					n.publish(ctx, topicAttest, a.Format())
				}
			}
		}
		n.announcePending(ctx, items...)
	})
}

// everyWithPeers calls f every d while the node has peers, until ctx ends.
func (n *Node) everyWithPeers(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.host != nil && len(n.host.Peers()) > 0 {
			f()
		}
	}
}

// announcePending announces items on the mempool topic, in messages of at
// most announceBytes.
func (n *Node) announcePending(ctx context.Context, items ...pendingItem) {
	for len(items) > 0 {
		k, size := 0, 0
		for k < len(items) && k < 10_000 {
			size += len(items[k].Key) + len(items[k].Commit) + len(items[k].Tree) + 40
			if k > 0 && size > announceBytes {
				break
			}
			k++
		}
		data, err := json.Marshal(pendingMsg{Records: items[:k]})
		if err != nil {
			return
		}
		n.publish(ctx, topicMempool, data)
		items = items[k:]
	}
}
