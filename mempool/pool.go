package mempool

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// Committed is what the pool asks of the chain: the record committed for a
// key, or an error wrapping ledger.ErrNotFound. ledger.Store satisfies it.
// Lookup must be safe for concurrent use.
type Committed interface {
	Lookup(ctx context.Context, key ledger.Key) (*ledger.Entry, error)
}

// A Pool holds pending records. It is safe for concurrent use: changes are
// serialized and each is journaled before it becomes visible; reads (Get,
// List, Ready, Stats) never wait for the journal.
type Pool struct {
	cfg       Config
	journal   Journal
	committed Committed
	limit     *limiter

	// wmu serializes changes, so that the journal sees them in the order
	// they are applied and a check (pending? committed? room?) still holds
	// when its change is applied. Lock order: wmu, then mu.
	wmu sync.Mutex

	mu      sync.RWMutex // guards the fields below and entries' fields
	entries map[ledger.Key]*entry
	order   []*entry // arrival order, ascending entry.order; removed entries linger until compacted
	dead    int      // removed entries in order
	next    int64    // order of the next new entry
	bytes   int64

	cmu     sync.Mutex // guards changed and watched
	changed chan struct{}
	watched bool
}

// An entry is an Entry with the pool's bookkeeping.
type entry struct {
	Entry
	order int64 // place in arrival order
	size  int   // bytes of the journal encoding
	dead  bool  // removed from the pool

	// Cached from Attestations by retally.
	best  ledger.Record // the record most validators attested
	bestN int           // how many did
	self  int           // index of Config.Self's attestation, -1 when none
}

// New returns a pool holding what j holds. Items whose key was committed
// meanwhile, and items that do not decode (logged), are deleted from j.
// Attestations for another chain or by signers cfg.Validators refuses are
// not loaded. Signatures are not verified again: the journal holds only
// what the pool verified. Loaded entries are not subject to the pool's
// limits, and keep their place in arrival order and their Added time (so
// entries older than the expiry go at the next Expire).
func New(ctx context.Context, cfg Config, j Journal, c Committed) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if j == nil || c == nil {
		return nil, errors.New("mempool: new: nil journal or committed")
	}
	p := &Pool{
		cfg:       cfg,
		journal:   j,
		committed: c,
		limit:     newLimiter(max(cfg.Rate, 0), cfg.Burst),
		entries:   make(map[ledger.Key]*entry),
		changed:   make(chan struct{}),
	}
	type loaded struct {
		e     *Entry
		order int64
	}
	var items []loaded
	var drop []string
	err := j.LoadPending(ctx, func(id string, data []byte) error {
		e, order, err := decodeEntry(data)
		if err == nil && e.Key.String() != id {
			err = fmt.Errorf("%w: id %.80q holds the entry of %s", errJournal, id, e.Key)
		}
		if err != nil {
			cfg.Logger.Error("mempool: dropping unreadable journal item", "id", id, "err", err)
			drop = append(drop, id)
			return nil
		}
		e.Attestations = slices.DeleteFunc(e.Attestations, func(a ledger.Attestation) bool {
			return a.Chain != cfg.Chain || !p.allowed(a.Validator)
		})
		items = append(items, loaded{e, order})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mempool: load journal: %w", err)
	}
	slices.SortFunc(items, func(a, b loaded) int { return cmp.Compare(a.order, b.order) })
	for _, it := range items {
		switch _, err := c.Lookup(ctx, it.e.Key); {
		case err == nil:
			drop = append(drop, it.e.Key.String())
			continue
		case !errors.Is(err, ledger.ErrNotFound):
			return nil, fmt.Errorf("mempool: load journal: lookup %s: %w", it.e.Key, err)
		}
		if _, dup := p.entries[it.e.Key]; dup {
			continue // a journal that keeps one item per id cannot have this
		}
		p.insert(*it.e, it.order, len(encodeEntry(it.e, it.order)))
		p.next = max(p.next, it.order+1)
	}
	if len(drop) > 0 {
		if err := j.DeletePending(ctx, drop...); err != nil {
			return nil, fmt.Errorf("mempool: load journal: delete: %w", err)
		}
	}
	return p, nil
}

// Add admits key as pending for submitter with the client's claim (the zero
// Claim for none). It returns the pending entry and whether this call added
// it; a key already pending is returned as it is (the claim is not merged).
//
// The submitter is who is rate limited: a client's address for API
// submissions. Records relayed by peers were limited at the node their
// client reached; relay them with an empty submitter, since a peer id would
// hold a whole network's submissions to one client's rate.
//
// Refusals, in the order they are checked: a key that is not canonical
// (wraps ledger.ErrInvalidKey); a malformed claim (ErrInvalidClaim); a
// submitter over its rate (*RateLimitError, ErrRateLimited; an empty
// submitter is never limited); a committed key (*CommittedError,
// ErrCommitted, carrying the committed record); a full pool (ErrFull); and
// a journal failure. An accepted entry is in the journal before Add returns.
func (p *Pool) Add(ctx context.Context, key ledger.Key, claim Claim, submitter string) (Entry, bool, error) {
	if err := checkKey(key); err != nil {
		return Entry{}, false, err
	}
	if err := claim.check(); err != nil {
		return Entry{}, false, err
	}
	if wait, ok := p.limit.allow(submitter, p.cfg.Now()); !ok {
		return Entry{}, false, &RateLimitError{Submitter: submitter, RetryAfter: wait}
	}
	if e, ok := p.Get(key); ok {
		return e, false, nil
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if e, ok := p.Get(key); ok {
		return e, false, nil
	}
	// Looking up under wmu orders this check with Remove: a node appends a
	// block and then removes its keys, so either the lookup sees the key
	// committed or the removal comes after the insertion.
	if err := p.checkCommitted(ctx, key); err != nil {
		return Entry{}, false, err
	}
	e := Entry{Key: key, Claim: claim, Added: p.stamp(), Submitter: submitter}
	order := p.next
	data := encodeEntry(&e, order)
	if err := p.checkRoom(len(data)); err != nil {
		return Entry{}, false, err
	}
	if err := p.journal.PutPending(ctx, key.String(), data); err != nil {
		return Entry{}, false, fmt.Errorf("mempool: add %s: journal: %w", key, err)
	}
	p.mu.Lock()
	x := p.insert(e, order, len(data)).export()
	p.mu.Unlock()
	p.notify()
	return x, true, nil
}

// AddAttestation adds a validator's attestation to the pending entry of its
// key, creating the entry when the key is not pending yet (attestations can
// arrive before the record's gossip; such entries have no submitter and are
// subject to the pool's limits). The attestation is journaled with the
// entry before AddAttestation returns.
//
// It returns nil for an attestation the pool already has. It refuses, with
// no change to the pool: an attestation for another chain, of a malformed
// record, or whose signature does not verify (ErrInvalidAttestation, and
// ledger.ErrBadSignature for a signature); a signer Config.Validators
// refuses (ErrNotValidator); a second, different record from a validator
// that already attested the key (*ConflictError, ErrConflict: the evidence
// to keep); a committed key (*CommittedError); a full pool or entry
// (ErrFull); and a journal failure.
func (p *Pool) AddAttestation(ctx context.Context, a ledger.Attestation) error {
	if p.has(&a) {
		return nil
	}
	if err := p.checkAttestation(&a); err != nil {
		return err
	}
	if err := a.Verify(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidAttestation, err)
	}
	_, err := p.addAttestation(ctx, a, true)
	return err
}

// errGone is addAttestation's answer when the key is not pending and create
// is false.
var errGone = errors.New("mempool: key not pending")

// addAttestation adds a checked and verified attestation. It reports
// whether the pool changed.
func (p *Pool) addAttestation(ctx context.Context, a ledger.Attestation, create bool) (bool, error) {
	key := a.Record.Key
	p.wmu.Lock()
	defer p.wmu.Unlock()
	var (
		base  Entry
		order int64
	)
	p.mu.RLock()
	e := p.entries[key]
	if e != nil {
		base, order = e.Entry, e.order
	}
	p.mu.RUnlock()
	if e == nil {
		if !create {
			return false, errGone
		}
		if err := p.checkCommitted(ctx, key); err != nil {
			return false, err
		}
		base, order = Entry{Key: key, Added: p.stamp()}, p.next
	}
	i, found := slices.BinarySearchFunc(base.Attestations, a.Validator, func(x ledger.Attestation, v ledger.PublicKey) int {
		return x.Validator.Compare(v)
	})
	if found {
		if old := base.Attestations[i]; old.Record != a.Record {
			return false, &ConflictError{A: old, B: a}
		}
		return false, nil
	}
	if p.cfg.Validators == nil && len(base.Attestations) >= p.cfg.MaxAttestations {
		return false, fmt.Errorf("%w: %s already has %d attestations", ErrFull, key, len(base.Attestations))
	}
	base.Attestations = slices.Insert(slices.Clone(base.Attestations), i, a)
	data := encodeEntry(&base, order)
	if e == nil {
		if err := p.checkRoom(len(data)); err != nil {
			return false, err
		}
	}
	if err := p.journal.PutPending(ctx, key.String(), data); err != nil {
		return false, fmt.Errorf("mempool: attestation of %s: journal: %w", key, err)
	}
	p.mu.Lock()
	if e == nil {
		e = p.insert(base, order, len(data))
	} else {
		p.bytes += int64(len(data) - e.size)
		e.size = len(data)
		e.Attestations = base.Attestations
		e.retally(p.cfg.Self)
	}
	if e.self >= 0 {
		e.Error, e.ErrorAt = "", time.Time{}
	}
	p.mu.Unlock()
	p.notify()
	return true, nil
}

// Has reports whether the pool holds exactly a (same record and
// signature): an attestation it verified when it accepted it.
func (p *Pool) Has(a ledger.Attestation) bool { return p.has(&a) }

// has reports whether the pool holds exactly a (same record and signature).
func (p *Pool) has(a *ledger.Attestation) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	e := p.entries[a.Record.Key]
	if e == nil {
		return false
	}
	i, ok := e.find(a.Validator)
	return ok && e.Attestations[i] == *a
}

// checkAttestation checks what it can without the signature.
func (p *Pool) checkAttestation(a *ledger.Attestation) error {
	if a.Chain != p.cfg.Chain {
		return fmt.Errorf("%w: for chain %.80q, not %q", ErrInvalidAttestation, a.Chain, p.cfg.Chain)
	}
	if err := a.Record.Check(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidAttestation, err)
	}
	if !p.allowed(a.Validator) {
		return fmt.Errorf("%w: %s attesting %s", ErrNotValidator, a.Validator, a.Record.Key)
	}
	return nil
}

func (p *Pool) allowed(v ledger.PublicKey) bool {
	return p.cfg.Validators == nil || p.cfg.Validators(v)
}

// Ready returns up to limit records (all when limit <= 0), in arrival
// order, that may enter a block with need attestations:
//
//   - need >= 1: at least need distinct validators attested the same record
//     (commit, tree and h1). When validators disagree, the record most of
//     them attested counts (see Entry.Attested).
//   - need <= 0 (attest_quorum 0, "the proposer's word is enough"): this
//     node's validator (Config.Self) attested the record, i.e. this node
//     fetched and hashed it itself. A client's claim never suffices, and a
//     pool whose Config.Self is zero has nothing ready at need 0.
//
// Each Ready carries every attestation agreeing with its record. A block
// needs only need of them per record, and ledger.CheckAttestations verifies
// every one it is given: a proposer with a large validator set trims them to
// keep the block under ledger.MaxBlockBytes.
func (p *Pool) Ready(need, limit int) []Ready {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []Ready
	for _, e := range p.order {
		if limit > 0 && len(out) >= limit {
			break
		}
		if e.dead {
			continue
		}
		if r, ok := e.ready(need); ok {
			out = append(out, Ready{Record: r, Attestations: agreeing(e.Attestations, r)})
		}
	}
	return out
}

// Remove drops keys from the pool and the journal, typically after a block
// committed them. Keys that are not pending are ignored. The entries leave
// the pool even when the journal fails; the journal's leftovers are dropped
// at the next New, as their keys are committed.
func (p *Pool) Remove(ctx context.Context, keys ...ledger.Key) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	ids := p.drop(keys)
	if len(ids) == 0 {
		return nil
	}
	if err := p.journal.DeletePending(ctx, ids...); err != nil {
		return fmt.Errorf("mempool: remove: journal: %w", err)
	}
	return nil
}

// Forget drops keys from the pool but not from the journal: for keys whose
// journal items the caller has deleted itself, as a node does in the
// transaction that appends the block committing them. Keys that are not
// pending are ignored.
func (p *Pool) Forget(keys ...ledger.Key) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.drop(keys)
}

// drop removes keys from the pool and returns the journal ids of those
// that were pending; p.wmu must be held.
func (p *Pool) drop(keys []ledger.Key) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, k := range keys {
		if e := p.entries[k]; e != nil {
			p.remove(e)
			ids = append(ids, k.String())
		}
	}
	p.compact()
	return ids
}

// Expire drops, from the pool and the journal, the entries added at least
// Config.Expiry ago that are not ready at need (see Ready): records that
// could not be fetched or attested in time. Ready records wait for a block
// however old they are. It returns the dropped entries, so that the node
// can report them; they are dropped even when the journal fails.
func (p *Pool) Expire(ctx context.Context, need int) ([]Entry, error) {
	now := p.cfg.Now()
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.Lock()
	var out []Entry
	var ids []string
	for _, e := range p.order {
		if e.dead || now.Sub(e.Added) < p.cfg.Expiry {
			continue
		}
		if _, ok := e.ready(need); ok {
			continue
		}
		out = append(out, e.export())
		ids = append(ids, e.Key.String())
		p.remove(e)
	}
	p.compact()
	p.mu.Unlock()
	if len(ids) == 0 {
		return nil, nil
	}
	if err := p.journal.DeletePending(ctx, ids...); err != nil {
		return out, fmt.Errorf("mempool: expire: journal: %w", err)
	}
	return out, nil
}

// A JournalItem is an item for the pool's journal: Journal.PutPending's
// id and data.
type JournalItem struct {
	ID   string
	Data []byte
}

// Reinsert puts back the records of blocks that left the chain (a pow
// reorg), with the attestations the blocks carried, except those whose key
// onNew reports committed on the chain that replaces them. A key already
// pending keeps its entry and gains the block's attestations of validators
// it lacks. Reinserted entries ignore the pool's limits (they were accepted
// once), keep no submitter and go to the end of arrival order. Their
// attestations are not verified again: they were when their block was.
//
// Reinsert does not write the journal itself: it calls write, holding the
// pool's write lock, with the items the journal needs (one per entry added
// or extended), and the pool changes only if write returns nil. A node's
// write switches the chain and puts the items in one transaction
// (sqlitestore's ReorgWithPending), so that a crash leaves every record of
// an abandoned block either on the chain or pending. write is called even
// when there are no items. Reinsert returns write's error.
func (p *Pool) Reinsert(ctx context.Context, blocks []*ledger.Block, onNew func(ledger.Key) bool, write func([]JournalItem) error) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	type change struct {
		old   *entry // nil: a new entry
		e     Entry
		order int64
		size  int
	}
	var changes []change
	at := make(map[ledger.Key]int) // index in changes
	next := p.next
	p.mu.RLock()
	for _, b := range blocks {
		for i := range b.Records {
			k := b.Records[i].Key
			if _, dup := at[k]; dup || onNew(k) || checkKey(k) != nil {
				continue
			}
			c := change{old: p.entries[k]}
			if c.old != nil {
				c.e, c.order = c.old.Entry, c.old.order
				c.e.Attestations = slices.Clone(c.e.Attestations)
			} else {
				c.e, c.order = Entry{Key: k, Added: p.stamp()}, next
				next++
			}
			at[k] = len(changes)
			changes = append(changes, c)
		}
	}
	p.mu.RUnlock()
	grown := make([]bool, len(changes))
	for _, b := range blocks {
		for _, a := range b.Attestations {
			j, ok := at[a.Record.Key]
			if !ok || a.Chain != p.cfg.Chain || !p.allowed(a.Validator) {
				continue
			}
			c := &changes[j]
			i, found := slices.BinarySearchFunc(c.e.Attestations, a.Validator, func(x ledger.Attestation, v ledger.PublicKey) int {
				return x.Validator.Compare(v)
			})
			if found || p.cfg.Validators == nil && len(c.e.Attestations) >= p.cfg.MaxAttestations {
				continue // the entry's own attestation stays
			}
			c.e.Attestations = slices.Insert(c.e.Attestations, i, a)
			grown[j] = true
		}
	}
	var items []JournalItem
	keep := changes[:0]
	for j, c := range changes {
		if c.old != nil && !grown[j] {
			continue // pending already, durably, and unchanged
		}
		data := encodeEntry(&c.e, c.order)
		c.size = len(data)
		items = append(items, JournalItem{ID: c.e.Key.String(), Data: data})
		keep = append(keep, c)
	}
	if err := write(items); err != nil {
		return err
	}
	if len(keep) == 0 {
		return nil
	}
	p.mu.Lock()
	for _, c := range keep {
		e := c.old
		if e == nil {
			e = p.insert(c.e, c.order, c.size)
		} else {
			p.bytes += int64(c.size - e.size)
			e.size = c.size
			e.Attestations = c.e.Attestations
			e.retally(p.cfg.Self)
		}
		if e.self >= 0 {
			e.Error, e.ErrorAt = "", time.Time{}
		}
	}
	p.mu.Unlock()
	p.notify()
	return nil
}

// SetError records why this node failed to fetch or hash key's record, for
// the pending status clients see, and counts the attempt. It is not
// journaled. Keys that are not pending are ignored.
func (p *Pool) SetError(key ledger.Key, reason string) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.entries[key]; e != nil {
		e.Error, e.ErrorAt = reason, now
		e.Attempts++
	}
}

// Get returns key's pending entry.
func (p *Pool) Get(key ledger.Key) (Entry, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	e := p.entries[key]
	if e == nil {
		return Entry{}, false
	}
	return e.export(), true
}

// List returns up to limit entries (all when limit <= 0) in arrival order.
func (p *Pool) List(limit int) []Entry {
	p.mu.RLock()
	defer p.mu.RUnlock()
	n := len(p.entries)
	if limit > 0 {
		n = min(n, limit)
	}
	out := make([]Entry, 0, n)
	for _, e := range p.order {
		if len(out) >= n {
			break
		}
		if !e.dead {
			out = append(out, e.export())
		}
	}
	return out
}

// Stats returns the number of pending entries and their size in bytes, as
// counted against Config.MaxEntries and MaxBytes.
func (p *Pool) Stats() (count int, bytes int64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.entries), p.bytes
}

// Changed returns a channel that is closed at the next change that may
// interest a proposer or an attester: a new entry or a new attestation.
// Any number of goroutines may wait. Take the channel before looking at the
// pool and keep it until it fires, then take the next one:
//
//	ch := p.Changed()
//	for {
//		... look at the pool ...
//		select {
//		case <-ch:
//			ch = p.Changed()
//		case <-other:
//		}
//	}
//
// Calling Changed afresh at each select would miss the changes made while
// the caller was busy with something else.
func (p *Pool) Changed() <-chan struct{} {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	p.watched = true
	return p.changed
}

func (p *Pool) notify() {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if p.watched {
		close(p.changed)
		p.changed = make(chan struct{})
		p.watched = false
	}
}

// unattested returns up to n keys, after arrival order after, that v has not
// attested, and the order to continue from.
func (p *Pool) unattested(after int64, v ledger.PublicKey, n int) ([]ledger.Key, int64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	i, _ := slices.BinarySearchFunc(p.order, after, func(e *entry, o int64) int {
		if e.order <= o {
			return -1
		}
		return 1
	})
	var keys []ledger.Key
	for ; i < len(p.order) && len(keys) < n; i++ {
		e := p.order[i]
		after = e.order
		if _, ok := e.find(v); !e.dead && !ok {
			keys = append(keys, e.Key)
		}
	}
	return keys, after
}

// needs reports whether key is pending without an attestation by v.
func (p *Pool) needs(key ledger.Key, v ledger.PublicKey) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	e := p.entries[key]
	if e == nil {
		return false
	}
	_, ok := e.find(v)
	return !ok
}

// checkCommitted returns a *CommittedError when key is committed.
func (p *Pool) checkCommitted(ctx context.Context, key ledger.Key) error {
	c, err := p.committed.Lookup(ctx, key)
	switch {
	case err == nil:
		return &CommittedError{Entry: *c}
	case errors.Is(err, ledger.ErrNotFound):
		return nil
	default:
		return fmt.Errorf("mempool: lookup %s: %w", key, err)
	}
}

// checkRoom reports whether a new entry of size bytes fits.
func (p *Pool) checkRoom(size int) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if n := len(p.entries); n >= p.cfg.MaxEntries {
		return fmt.Errorf("%w: %d entries, the limit", ErrFull, n)
	}
	if p.bytes+int64(size) > p.cfg.MaxBytes {
		return fmt.Errorf("%w: %d bytes pending, limit %d", ErrFull, p.bytes, p.cfg.MaxBytes)
	}
	return nil
}

// stamp returns the time now, at the journal's millisecond precision.
func (p *Pool) stamp() time.Time { return time.UnixMilli(p.cfg.Now().UnixMilli()) }

// insert adds a new entry; p.mu must be held.
func (p *Pool) insert(x Entry, order int64, size int) *entry {
	e := &entry{Entry: x, order: order, size: size}
	e.retally(p.cfg.Self)
	p.entries[x.Key] = e
	p.order = append(p.order, e)
	p.bytes += int64(size)
	p.next = max(p.next, order+1)
	return e
}

// remove drops e; p.mu must be held. Call compact afterwards.
func (p *Pool) remove(e *entry) {
	e.dead = true
	delete(p.entries, e.Key)
	p.bytes -= int64(e.size)
	p.dead++
}

// compact drops removed entries from p.order once they are half of it.
func (p *Pool) compact() {
	if p.dead < 64 || p.dead < len(p.order)/2 {
		return
	}
	p.order = slices.DeleteFunc(p.order, func(e *entry) bool { return e.dead })
	p.dead = 0
}

// export returns a copy of e's Entry that the caller may keep.
func (e *entry) export() Entry {
	x := e.Entry
	x.Attestations = slices.Clone(e.Attestations)
	return x
}

func (e *entry) find(v ledger.PublicKey) (int, bool) {
	return slices.BinarySearchFunc(e.Attestations, v, func(x ledger.Attestation, v ledger.PublicKey) int {
		return x.Validator.Compare(v)
	})
}

func (e *entry) retally(self ledger.PublicKey) {
	e.best, e.bestN = tally(e.Attestations)
	e.self = -1
	if self != (ledger.PublicKey{}) {
		if i, ok := e.find(self); ok {
			e.self = i
		}
	}
}

// ready returns the record e is ready with at need (see Pool.Ready).
func (e *entry) ready(need int) (ledger.Record, bool) {
	if need <= 0 {
		if e.self < 0 {
			return ledger.Record{}, false
		}
		return e.Attestations[e.self].Record, true
	}
	return e.best, e.bestN >= need
}

// tally returns the record most attestations agree on and how many do; a
// tie goes to the record whose canonical bytes sort first.
func tally(atts []ledger.Attestation) (ledger.Record, int) {
	var (
		best  ledger.Record
		bestN int
		bestB []byte
	)
	for i := range atts {
		r := atts[i].Record
		if bestN > 0 && r == best {
			continue
		}
		n := 0
		for j := range atts {
			if atts[j].Record == r {
				n++
			}
		}
		if n < bestN {
			continue
		}
		b := r.Format()
		if n > bestN || bytes.Compare(b, bestB) < 0 {
			best, bestN, bestB = r, n, b
		}
	}
	return best, bestN
}

// agreeing returns the attestations of r, in their (validator) order.
func agreeing(atts []ledger.Attestation, r ledger.Record) []ledger.Attestation {
	var out []ledger.Attestation
	for _, a := range atts {
		if a.Record == r {
			out = append(out, a)
		}
	}
	return out
}

// checkKey refuses a key that is not canonical.
func checkKey(k ledger.Key) error {
	c, err := ledger.NewKey(k.Repo, k.Tag)
	if err != nil {
		return err
	}
	if c != k {
		return &ledger.KeyError{Input: k.String(), Reason: "not canonical (want " + c.String() + ")"}
	}
	return nil
}
