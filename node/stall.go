package node

import (
	"context"
	"fmt"
	"time"
)

// Stalling on a store failure.
//
// When a block the network committed (by consensus, on the blocks topic,
// or fetched by the syncer) cannot be appended, the store lacks a block
// that the rest of the network, and possibly this node's engine, has moved
// past. The node then stops taking part in consensus: the loop drops
// consensus messages and ticks the engine no more, so it signs no vote and
// proposes no block at a height whose parent it does not have. It reports
// the failure (an error log, /readyz answers 503, /v1/status "stalled" and
// the append_failures counter, vcsledger_stalled and
// vcsledger_append_failures_total in /metrics), and every stallRetry it
// asks the syncer to fetch what it lacks from its peers. Once the store's
// head reaches the block that failed, the engine is made anew from the
// store and the signing state persisted there, exactly as after a
// restart, and the node takes part again.
const stallRetry = time.Second

// A stall is why the node takes no part in consensus.
type stall struct {
	height uint64 // the store must reach this height
	err    error
	since  time.Time
}

func (s *stall) Error() string {
	return fmt.Sprintf("stalled since %s: %v; resyncing from peers", s.since.UTC().Format(time.RFC3339), s.err)
}

// stall records that appending the block at height failed with err.
func (n *Node) stall(height uint64, err error) {
	n.mu.Lock()
	n.counters.appendFailures++
	n.mu.Unlock()
	if old := n.stalled.Load(); old != nil && old.height >= height {
		n.log.Error("store failure while stalled", "height", height, "err", err)
		return
	}
	n.stalled.Store(&stall{height: height, err: err, since: n.cfg.Now()})
	n.log.Error("append failed: taking no part in consensus until resynced from peers", "height", height, "err", err)
}

// kickSyncer asks the syncer to fetch what the store lacks, and sets the
// timer to try again after stallRetry.
func (n *Node) kickSyncer(timer *time.Timer) {
	if n.syncer != nil {
		n.syncer.Kick()
	}
	resetTimer(timer, stallRetry)
}

// resume ends the stall when the store has caught up: a new engine starts
// from the store's head and signing state. Otherwise it asks the syncer
// again.
func (n *Node) resume(ctx context.Context, timer *time.Timer) {
	st := n.stalled.Load()
	if st == nil {
		return
	}
	head, err := n.store.Head(ctx)
	if err != nil || head.Height < st.height {
		n.kickSyncer(timer)
		return
	}
	if err := n.openEngine(ctx); err != nil {
		n.log.Error("restart consensus engine after a stall", "err", err)
		n.kickSyncer(timer)
		return
	}
	n.stalled.Store(nil)
	n.log.Info("store caught up: taking part in consensus again", "height", head.Height, "stalled_for", n.cfg.Now().Sub(st.since).Round(time.Millisecond))
	n.do(ctx, n.engine.Start(n.cfg.Now()), timer)
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}
