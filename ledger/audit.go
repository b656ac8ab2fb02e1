package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// An AuditError reports the first height at which a store fails Audit.
type AuditError struct {
	Height uint64
	Err    error
}

func (e *AuditError) Error() string {
	return fmt.Sprintf("ledger: audit failed at height %d: %v", e.Height, e.Err)
}

// Unwrap returns ErrCorrupt and the underlying error.
func (e *AuditError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// An AuditReport summarises a successful Audit.
type AuditReport struct {
	Blocks  uint64 // blocks checked, genesis included
	Records int64  // records checked
	Bytes   int64  // canonical record bytes hashed
	Head    Header
}

// A BlockScanner is a Store that can hand Audit its blocks in order, in
// bulk, with the leaf hashes of their records and the stored log hashes
// each block added. Audit uses it when the store has it; sqlitestore.Store
// does.
type BlockScanner interface {
	// ScanBlocks calls fn with each block from height from to height to
	// (inclusive), in order, until fn returns an error. With the block
	// come leaves, the leaf hash of each of its records (b.Records, in
	// order; authority changes are not included), and hashes, the stored
	// log hashes the block's records added (stored hashes
	// StoredHashCount(LogSize-Records) to StoredHashCount(LogSize)-1, in
	// order). Blocks carry their attestations only when attestations is
	// true; when false, the store still checks that it holds them intact.
	//
	// Every record it passes was parsed from its canonical bytes with
	// ParseRecord (or ParseRecordString), so it has passed Record.Check's
	// checks, and its leaf hash is SHA-256(0x00 || those bytes), computed
	// by ScanBlocks; authority changes are parsed with
	// ParseAuthorityChange, and Audit checks and hashes them again. An
	// error of ScanBlocks that fn did not return is about the block after
	// the last one fn was given. fn must not keep b, leaves or hashes
	// after it returns: ScanBlocks may reuse their memory.
	ScanBlocks(ctx context.Context, from, to uint64, attestations bool, fn func(b *Block, leaves, hashes []Hash) error) error
}

// Audit re-verifies a whole store from genesis: every header's link to its
// parent, every record's encoding and leaf hash (authority changes too, and
// the store's list of them), no key committed twice,
// every header's log size and root recomputed from the records alone, every
// stored log hash the store would serve proofs from, and (when seal is not
// nil) every block's seal. g, when not nil, must produce block 0. It returns
// an *AuditError naming the first bad height.
//
// Each record is checked and hashed once: by Record.Check and the hash of
// its formatted bytes, or, from a BlockScanner, by the ParseRecord that
// read it from its canonical bytes and the hash of those bytes.
//
// Audit keeps O(log n) hashes and, per key, a 64-bit fingerprint and log
// index in memory (16 bytes a key). It looks for a key committed twice
// once it has checked the blocks; two keys whose fingerprints meet are
// compared in full, both read back from the store, so a key is reported
// committed twice only when it is. progress, when not nil, is called
// after each block.
func Audit(ctx context.Context, s Store, g *Genesis, seal SealChecker, progress func(height uint64)) (*AuditReport, error) {
	head, err := s.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger: audit: %w", err)
	}
	a := &auditor{ctx: ctx, s: s, g: g, seal: seal, keys: newKeySet(head.LogSize)}
	err = a.blocks(head.Height, progress)
	var ae *AuditError
	if err != nil && !errors.As(err, &ae) {
		return nil, err
	}
	if ae == nil {
		ae = a.authorities()
	}
	// A key committed twice in the blocks that passed is the first
	// failure when its block comes first.
	if re := a.repeat(); re != nil && (ae == nil || re.Height < ae.Height) {
		ae = re
	}
	if ae != nil {
		return nil, ae
	}
	a.rep.Head = a.parent
	return &a.rep, nil
}

// blocks checks the blocks from 0 to height in order, calling progress
// after each; it returns an *AuditError for the first that fails, or the
// context's error.
func (a *auditor) blocks(height uint64, progress func(height uint64)) error {
	next := uint64(0) // the height being checked
	check := func(b *Block, leaves, hashes []Hash) error {
		if err := a.block(b, leaves, hashes); err != nil {
			return &AuditError{Height: next, Err: err}
		}
		for i := range b.Authority {
			a.auth = append(a.auth, AuthorityEntry{Change: b.Authority[i], Index: int64(b.Header.LogSize) - int64(len(b.Authority)-i), Height: next})
		}
		a.parent = b.Header
		a.sizes = append(a.sizes, b.Header.LogSize)
		a.rep.Blocks++
		if progress != nil {
			progress(next)
		}
		next++
		return nil
	}
	sc, ok := a.s.(BlockScanner)
	if !ok {
		for next <= height {
			if err := a.ctx.Err(); err != nil {
				return err
			}
			b, err := a.s.Block(a.ctx, next)
			if err != nil {
				return &AuditError{Height: next, Err: err}
			}
			if err := check(b, nil, nil); err != nil {
				return err
			}
		}
		return nil
	}
	// Only the seal looks at attestations.
	err := sc.ScanBlocks(a.ctx, 0, height, a.seal != nil, func(b *Block, leaves, hashes []Hash) error {
		if b.Header.Height != next {
			return &AuditError{Height: next, Err: fmt.Errorf("store gave block %d", b.Header.Height)}
		}
		if len(leaves) != len(b.Records) {
			return &AuditError{Height: next, Err: fmt.Errorf("store gave %d leaf hashes for %d records", len(leaves), len(b.Records))}
		}
		return check(b, leaves, hashes)
	})
	var ae *AuditError
	switch {
	case errors.As(err, &ae):
		return err
	case err != nil && a.ctx.Err() != nil:
		return a.ctx.Err()
	case err != nil:
		return &AuditError{Height: next, Err: err}
	case next != height+1:
		return &AuditError{Height: next, Err: errors.New("store gave no block")}
	}
	return nil
}

// authorities checks the store's list of authority changes (what
// LoadAuthorities reads) against the one the blocks give.
func (a *auditor) authorities() *AuditError {
	listed, err := a.s.Authorities(a.ctx)
	if err != nil {
		return &AuditError{Height: a.parent.Height, Err: fmt.Errorf("authority changes: %w", err)}
	}
	auth := a.auth
	if len(listed) != len(auth) {
		return &AuditError{Height: a.parent.Height, Err: fmt.Errorf("the store lists %d authority changes, the blocks hold %d", len(listed), len(auth))}
	}
	for i := range auth {
		if listed[i].Index != auth[i].Index || listed[i].Height != auth[i].Height || listed[i].Change.LeafHash() != auth[i].Change.LeafHash() {
			return &AuditError{Height: auth[i].Height, Err: fmt.Errorf("the store lists authority change %d as %d at height %d, the blocks give %d", i, listed[i].Index, listed[i].Height, auth[i].Index)}
		}
	}
	return nil
}

// An auditor is Audit's state between blocks.
type auditor struct {
	ctx    context.Context
	s      Store
	g      *Genesis
	seal   SealChecker
	parent Header // valid once rep.Blocks > 0
	f      frontier
	keys   *keySet          // the keys seen
	auth   []AuthorityEntry // the authority changes seen
	sizes  []uint64         // the log size after each block that passed, by height
	rep    AuditReport
	buf    []byte // 0x00 || a record's canonical bytes
}

// auditedKey returns the key of the key record at log index j, read back
// from the store, which must be the record audited: its leaf hash is the
// stored hash the audit checked.
func (a *auditor) auditedKey(j int64) (Key, error) {
	e, err := a.s.Record(a.ctx, j)
	if err != nil {
		return Key{}, fmt.Errorf("record %d: %w", j, err)
	}
	hs, err := a.s.ReadHashes(a.ctx, []int64{tlog.StoredHashIndex(0, j)})
	if err != nil {
		return Key{}, fmt.Errorf("stored hash of record %d: %w", j, err)
	}
	if e.Authority != nil || len(hs) != 1 || e.Record.LeafHash() != hs[0] {
		return Key{}, fmt.Errorf("record %d as the store reads it is not the record audited", j)
	}
	return e.Record.Key, nil
}

// repeat returns an *AuditError for the first key record, among those of
// the blocks that passed, whose key an earlier record has, or nil if
// there is none.
func (a *auditor) repeat() *AuditError {
	var end int64
	if len(a.sizes) > 0 {
		end = int64(a.sizes[len(a.sizes)-1])
	}
	same := func(i, j int64) (bool, error) {
		ki, err := a.auditedKey(i)
		if err != nil {
			return false, err
		}
		kj, err := a.auditedKey(j)
		return ki == kj, err
	}
	i, j, err := a.keys.repeat(end, same)
	switch {
	case err != nil:
		return &AuditError{Height: a.heightOf(j), Err: fmt.Errorf("looking for a key committed twice: %w", err)}
	case j < 0:
		return nil
	}
	k, err := a.auditedKey(j)
	if err != nil {
		return &AuditError{Height: a.heightOf(j), Err: err}
	}
	return &AuditError{Height: a.heightOf(j), Err: fmt.Errorf("key %s committed twice (log indexes %d and %d)", k, i, j)}
}

// heightOf returns the height of the block, among those that passed, that
// holds log index j.
func (a *auditor) heightOf(j int64) uint64 {
	h, _ := slices.BinarySearch(a.sizes, uint64(j)+1)
	return uint64(h)
}

// block checks b after a.parent. leaves, when not nil, are the leaf
// hashes of b's records, which passed Record.Check's checks already (see
// BlockScanner); hashes, when not nil, are the stored hashes the store
// holds for b.
func (a *auditor) block(b *Block, leaves, hashes []Hash) error {
	h := &b.Header
	if a.rep.Blocks == 0 {
		if h.Height != 0 || !h.Prev.IsZero() || h.Records != 0 || h.LogSize != 0 || h.LogRoot != EmptyLogRoot || b.Leaves() != 0 {
			return errors.New("block 0 is not a genesis block")
		}
		if a.g != nil && h.Hash() != a.g.Block().Hash() {
			return fmt.Errorf("block 0 is %s, the genesis gives %s", h.Hash(), a.g.Block().Hash())
		}
		return nil
	}
	parent := &a.parent
	if err := CheckLink(parent, b); err != nil {
		return err
	}
	f := &a.f
	before := f.size
	f.added = f.added[:0]
	for i := range b.Records {
		r := &b.Records[i]
		var leaf Hash
		if leaves != nil {
			leaf = leaves[i]
			a.rep.Bytes += int64(r.size())
		} else {
			if err := r.Check(); err != nil {
				return fmt.Errorf("record %d: %w", i, err)
			}
			a.buf = r.AppendFormat(append(a.buf[:0], 0))
			a.rep.Bytes += int64(len(a.buf) - 1)
			leaf = sha256.Sum256(a.buf)
		}
		// Whether the key repeats one before it is found at the end.
		a.keys.add(a.keys.fingerprint(r.Key), before+int64(i))
		f.add(leaf)
	}
	for i := range b.Authority {
		c := &b.Authority[i]
		if err := c.Check(); err != nil {
			return fmt.Errorf("authority change %d: %w", i, err)
		}
		if h.Engine != EnginePoA || c.Chain != h.Chain {
			return fmt.Errorf("authority change %d of chain %q in a %s block", i, c.Chain, h.Engine)
		}
		data := c.Format()
		a.rep.Bytes += int64(len(data))
		f.add(Hash(tlog.RecordHash(data)))
	}
	a.rep.Records += int64(b.Leaves())
	if uint64(f.size) != h.LogSize {
		return fmt.Errorf("log size %d, records give %d", h.LogSize, f.size)
	}
	root, err := f.root()
	if err != nil {
		return err
	}
	if root != h.LogRoot {
		return fmt.Errorf("log root %s, records give %s", h.LogRoot, root)
	}
	// The stored hashes the store serves proofs from must be the ones the
	// records give.
	if lo, hi := tlog.StoredHashCount(before), tlog.StoredHashCount(f.size); hi > lo {
		if hashes == nil {
			idx := make([]int64, 0, hi-lo)
			for i := lo; i < hi; i++ {
				idx = append(idx, i)
			}
			if hashes, err = a.s.ReadHashes(a.ctx, idx); err != nil {
				return fmt.Errorf("stored hashes: %w", err)
			}
		}
		if int64(len(hashes)) != hi-lo {
			return fmt.Errorf("stored hashes: read %d, want %d", len(hashes), hi-lo)
		}
		for i, x := range f.added {
			if hashes[i] != x {
				return fmt.Errorf("stored log hash %d is %s, records give %s", lo+int64(i), hashes[i], x)
			}
		}
	}
	if a.seal != nil {
		if err := a.seal.CheckSeal(a.ctx, parent, b); err != nil {
			return fmt.Errorf("seal: %w", err)
		}
	}
	return nil
}

// A frontier is the right edge of a tlog tree: for each level, the newest
// complete subtree hash that is a left child (the hashes the log's root
// reads). It is all that appending and hashing the tree needs, so the log
// can be rebuilt in O(log n) memory.
type frontier struct {
	size  int64
	level []frontierHash // by level
	added []Hash         // stored hashes computed since last reset, in index order

	// Interior hashes, SHA-256(0x01 || left || right), through one
	// digest: a few percent faster than sha256.Sum256 of each.
	d    hash.Hash
	node [1 + 2*len(Hash{})]byte
	sum  Hash // the digest's output, here so that it is not allocated
}

type frontierHash struct {
	n    int64
	hash Hash
}

func (f *frontier) ReadHashes(indexes []int64) ([]Hash, error) {
	out := make([]Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		if level >= len(f.level) || f.level[level].n != n {
			return nil, fmt.Errorf("ledger: stored hash %d (level %d, %d) not on the frontier", x, level, n)
		}
		out[i] = f.level[level].hash
	}
	return out, nil
}

// add appends the record whose leaf hash is leaf: it computes the stored
// hashes record f.size adds (tlog.StoredHashesForRecordHash: the leaf, then
// the hash of each subtree it completes) into f.added.
func (f *frontier) add(leaf Hash) {
	if f.d == nil {
		f.d = sha256.New()
		f.node[0] = 0x01
	}
	x, n := leaf, f.size
	for level := 0; ; level++ {
		// x is the hash of subtree n at level.
		f.added = append(f.added, x)
		if level == len(f.level) {
			f.level = append(f.level, frontierHash{})
		}
		if n&1 == 0 {
			// A left child, which the root reads until its sibling comes.
			f.level[level] = frontierHash{n: n, hash: x}
			break
		}
		// A right child: with its left sibling it completes subtree n/2
		// of the level above.
		copy(f.node[1:], f.level[level].hash[:])
		copy(f.node[1+len(Hash{}):], x[:])
		f.d.Reset()
		f.d.Write(f.node[:])
		f.d.Sum(f.sum[:0])
		x = f.sum
		n >>= 1
	}
	f.size++
}

func (f *frontier) root() (Hash, error) { return LogRoot(f, f.size) }
