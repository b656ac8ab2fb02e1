package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
)

const signStateName = "consensus/poa/signstate"

// maxClockDrift is how far in the future of a validator's clock a proposed
// block's time may be.
const maxClockDrift = 10 * time.Second

func (n *Node) openEngine(ctx context.Context) error {
	head, err := n.store.Head(ctx)
	if err != nil {
		return err
	}
	var st *consensus.SignState
	switch data, err := n.store.GetState(ctx, signStateName); {
	case err == nil:
		if st, err = consensus.ParseSignState(data); err != nil {
			return fmt.Errorf("node: stored signing state: %w", err)
		}
	case !errors.Is(err, ledger.ErrNotFound):
		return err
	}
	cfg := consensus.Config{
		Chain:          n.g.Chain,
		Sets:           n.auth(),
		Signer:         n.signer,
		BlockInterval:  time.Duration(n.g.BlockInterval) * time.Millisecond,
		TimeoutPropose: n.cfg.TimeoutPropose,
		App:            app{n},
	}
	n.engine, err = consensus.NewPoA(cfg, head, st)
	return err
}

// loop owns the engine.
func (n *Node) loop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	n.do(ctx, n.engine.Start(n.cfg.Now()), timer)
	changed := n.pool.Changed()
	for {
		var acts consensus.Actions
		if n.stalled.Load() != nil {
			// Take no part until the store has the blocks the network
			// committed: drop messages, tick nothing (stall.go).
			select {
			case <-ctx.Done():
				return
			case <-n.inbox:
			case <-changed:
				changed = n.pool.Changed()
			case <-timer.C:
				n.resume(ctx, timer)
			case <-n.synced:
				n.resume(ctx, timer)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case m := <-n.inbox:
			var err error
			acts, err = n.engine.Receive(n.cfg.Now(), m)
			if err != nil {
				n.log.Debug("consensus message refused", "err", err)
			}
		case <-timer.C:
			acts = n.engine.Tick(n.cfg.Now())
		case <-changed:
			changed = n.pool.Changed()
			acts = n.engine.Tick(n.cfg.Now())
		case <-n.authChanged:
			acts = n.engine.Tick(n.cfg.Now())
		case <-n.synced:
			head, err := n.store.Head(ctx)
			if err != nil {
				n.log.Error("read head", "err", err)
				continue
			}
			acts = n.engine.Advance(n.cfg.Now(), head)
		}
		n.do(ctx, acts, timer)
		// After a commit the engine wants Tick at once (its Wake is now) to
		// start the next height. Call it before any other event: a message
		// or a synced head handled first would release the engine's hold
		// without starting the height, and its Wake (the next rebroadcast,
		// up to 2 s away) would replace the timer, so the next proposer sat
		// idle that long.
		for acts.Commit != nil && ctx.Err() == nil && n.stalled.Load() == nil {
			acts = n.engine.Tick(n.cfg.Now())
			n.do(ctx, acts, timer)
		}
	}
}

// do carries out the engine's actions in order: persist, send, commit.
func (n *Node) do(ctx context.Context, a consensus.Actions, timer *time.Timer) {
	if a.Persist != nil {
		if err := n.store.PutState(ctx, signStateName, a.Persist.Format()); err != nil {
			// Never send what was not persisted: a restart could then sign
			// a conflicting vote.
			n.log.Error("persist signing state; not sending", "err", err)
			a.Send = nil
		}
	}
	for i := range a.Send {
		n.publish(ctx, topicConsensus, a.Send[i].Format())
	}
	for _, ev := range a.Evidence {
		n.addEvidence(ctx, ev.Kind(), ev.Format())
	}
	if a.Commit != nil {
		if err := n.commit(ctx, a.Commit); err != nil && ctx.Err() == nil {
			// The engine has moved past a block the store lacks.
			n.stall(a.Commit.Header.Height, fmt.Errorf("append committed block %d: %w", a.Commit.Header.Height, err))
			n.kickSyncer(timer)
			return
		}
	}
	if a.Behind > 0 && n.syncer != nil {
		n.syncer.Kick()
	}
	if !a.Wake.IsZero() {
		d := max(a.Wake.Sub(n.cfg.Now()), 0)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(d)
	}
	n.mu.Lock()
	n.status = n.engine.Status()
	n.mu.Unlock()
}

// commit appends a block the network committed (by consensus, or gossiped
// on the blocks topic): it is validated against the store and appended
// durably, together with the removal of its records from the pending
// journal, and only then are clients told.
func (n *Node) commit(ctx context.Context, b *ledger.Block) error {
	n.appendMu.Lock()
	parent, err := n.store.Head(ctx)
	if err != nil {
		n.appendMu.Unlock()
		return err
	}
	if b.Header.Height <= parent.Height {
		n.appendMu.Unlock()
		return nil // already have it (sync got there first)
	}
	stored, err := n.validateCommitted(ctx, parent, b)
	if err != nil {
		n.appendMu.Unlock()
		return err
	}
	ids := make([]string, len(b.Records))
	for i := range b.Records {
		ids[i] = b.Records[i].Key.String()
	}
	err = n.store.AppendWithPending(ctx, b, stored, ids)
	n.appendMu.Unlock()
	if err != nil {
		return err
	}
	n.appended(ctx, b, true)
	n.publish(ctx, topicBlocks, b.Format())
	return nil
}

// appended runs after a block is durably stored, however it arrived: its
// records leave the mempool and waiting clients are told. journaled says
// that the append removed the records from the pending journal too.
func (n *Node) appended(ctx context.Context, b *ledger.Block, journaled bool) {
	keys := make([]ledger.Key, len(b.Records))
	now := n.cfg.Now()
	for i := range b.Records {
		keys[i] = b.Records[i].Key
		if e, ok := n.pool.Get(keys[i]); ok && n.server != nil && e.Submitter != "" {
			n.server.ObserveAppend(now.Sub(e.Added))
		}
	}
	if journaled {
		n.pool.Forget(keys...)
	} else if err := n.pool.Remove(ctx, keys...); err != nil {
		n.log.Error("remove committed records from the mempool", "err", err)
	}
	n.pruneAuthority(b) // authority.go
	for i := range b.Authority {
		n.log.Info("validator-set change committed", "change", b.Authority[i].String(), "height", b.Header.Height)
	}
	if err := n.maybeAttest(); err != nil {
		n.log.Error("start the attester", "err", err)
	}
	n.mu.Lock()
	n.counters.committedRecs += uint64(len(b.Records))
	for _, k := range keys {
		for _, ch := range n.waiters[k] {
			close(ch)
		}
		delete(n.waiters, k)
	}
	n.mu.Unlock()
	n.log.Info("block committed", "height", b.Header.Height, "records", len(b.Records), "hash", b.Hash().String())
	n.cosignKick() // cosign.go
}

// gossipedBlock appends a block heard on the blocks topic and tells the
// engine, which may still be deciding that height.
func (n *Node) gossipedBlock(ctx context.Context, b *ledger.Block) error {
	if err := n.commit(ctx, b); err != nil {
		if !errors.Is(err, ledger.ErrInvalidBlock) && ctx.Err() == nil {
			// Not the block's fault: the store's.
			n.stall(b.Header.Height, fmt.Errorf("append gossiped block %d: %w", b.Header.Height, err))
			n.kickEngine()
		}
		return err
	}
	n.kickEngine()
	return nil
}

// kickEngine tells the consensus loop that the store's head moved.
func (n *Node) kickEngine() {
	select {
	case n.synced <- struct{}{}:
	default:
	}
}

// app is what the engine asks of the node.
type app struct{ n *Node }

func (a app) Ready() bool {
	n := a.n
	next := n.auth().Through() + 1
	return len(n.pool.Ready(n.auth().AttestationsNeeded(n.setFor(next)), 1)) > 0 || n.authorityWork()
}

func (a app) Propose(parent *ledger.Header, height uint64, now time.Time) (*ledger.Block, error) {
	n := a.n
	vals, err := n.auth().At(height)
	if err != nil {
		return nil, err
	}
	need := n.auth().AttestationsNeeded(vals)
	ready := n.pool.Ready(need, n.cfg.MaxBlockRecords)
	changes := n.readyAuthority(height) // authority.go
	if len(ready) == 0 && !n.authorityWork() {
		return nil, nil
	}
	ctx := context.Background()
	b := &ledger.Block{Authority: changes}
	leaves := make([]ledger.Hash, 0, len(ready))
	for _, r := range ready {
		// A record committed meanwhile (the pool has not heard yet) is skipped.
		if _, err := n.store.Lookup(ctx, r.Record.Key); err == nil {
			continue
		}
		// Only the attestations the chain needs, by validators in force,
		// go into the block.
		atts := slices.DeleteFunc(slices.Clone(r.Attestations), func(a ledger.Attestation) bool { return !vals.Contains(a.Validator) })
		if len(atts) < need {
			continue
		}
		b.Records = append(b.Records, r.Record)
		// None when the proposer's word is enough.
		if len(atts) > need {
			atts = atts[:max(need, 0)]
		}
		b.Attestations = append(b.Attestations, atts...)
		leaves = append(leaves, r.Record.LeafHash())
	}
	if len(b.Records) == 0 && !n.authorityWork() {
		return nil, nil
	}
	for i := range b.Authority {
		leaves = append(leaves, b.Authority[i].LeafHash())
	}
	stored, root, err := ledger.AppendLog(ledger.HashReaderOf(ctx, n.store), int64(parent.LogSize), leaves)
	if err != nil {
		return nil, err
	}
	t := now.UnixMilli()
	if t < parent.Time {
		t = parent.Time
	}
	b.Header = ledger.Header{
		Chain:    n.g.Chain,
		Height:   height,
		Prev:     parent.Hash(),
		Time:     t,
		Engine:   ledger.EnginePoA,
		Proposer: n.signer.Public(),
		Records:  uint64(b.Leaves()),
		LogSize:  parent.LogSize + uint64(b.Leaves()),
		LogRoot:  root,
	}
	// Built to pass ValidateNext: records the pool checked, each key once
	// and not committed, the log computed above. Check need not redo it.
	n.checked.Store(newCheckedBlock(parent, b, stored))
	return b, nil
}

func (a app) Check(parent *ledger.Header, b *ledger.Block, now time.Time) error {
	n := a.n
	if b.Header.Time > now.Add(maxClockDrift).UnixMilli() {
		return fmt.Errorf("block time %d is more than %s ahead of this node's clock", b.Header.Time, maxClockDrift)
	}
	vals, err := n.auth().At(b.Header.Height)
	if err != nil {
		return err
	}
	if !vals.Contains(b.Header.Proposer) {
		return fmt.Errorf("proposer %s is not a validator", b.Header.Proposer)
	}
	if err := n.auth().Check(b); err != nil {
		return err
	}
	if n.checked.Load().matches(parent, b) {
		return nil // this node built this very block, or checked it already
	}
	if err := ledger.CheckAttestations(b, vals, n.auth().AttestationsNeeded(vals)); err != nil {
		return err
	}
	stored, err := ledger.ValidateNext(context.Background(), n.store, parent, b, nil)
	if err == nil {
		n.checked.Store(newCheckedBlock(parent, b, stored))
	}
	return err
}

// A checkedBlock is the last proposal app.Check found valid after parent
// (or app.Propose built), with the log hashes it computed: when consensus
// commits that very block (the engine commits a copy of the proposal it
// checked, sharing its records and attestations), commit need not check
// every record again.
type checkedBlock struct {
	parent, hash ledger.Hash
	recs         []ledger.Record
	auth         []ledger.AuthorityChange
	atts         []ledger.Attestation
	stored       []ledger.Hash
}

func newCheckedBlock(parent *ledger.Header, b *ledger.Block, stored []ledger.Hash) *checkedBlock {
	return &checkedBlock{parent: parent.Hash(), hash: b.Hash(), recs: b.Records, auth: b.Authority, atts: b.Attestations, stored: stored}
}

// matches reports whether b after parent is the block that was checked:
// the same header after the same parent, and the very same records,
// authority changes and attestations (not equal copies: the same memory,
// which nothing writes).
func (c *checkedBlock) matches(parent *ledger.Header, b *ledger.Block) bool {
	return c != nil && c.parent == parent.Hash() && c.hash == b.Hash() &&
		sameSlice(c.recs, b.Records) && sameSlice(c.auth, b.Authority) && sameSlice(c.atts, b.Attestations)
}

func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// validateCommitted validates b, committed by the network, as the next
// block after parent, and returns its stored log hashes. A block that
// app.Check validated after the same parent has its seal (certificate and
// attestations) checked; any other goes through ledger.ValidateNext.
func (n *Node) validateCommitted(ctx context.Context, parent *ledger.Header, b *ledger.Block) ([]ledger.Hash, error) {
	if c := n.checked.Load(); c.matches(parent, b) {
		if err := ledger.CheckLink(parent, b); err != nil {
			return nil, err
		}
		if err := n.seal.CheckSeal(ctx, parent, b); err != nil {
			return nil, &ledger.ValidationError{Height: b.Header.Height, Field: "seal", Err: err}
		}
		return c.stored, nil
	}
	return ledger.ValidateNext(ctx, n.store, parent, b, n.seal)
}
