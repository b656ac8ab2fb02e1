package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

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

// Audit re-verifies a whole store from genesis: every header's link to its
// parent, every record's encoding and leaf hash (authority changes too, and
// the store's list of them), no key committed twice,
// every header's log size and root recomputed from the records alone, every
// stored log hash the store would serve proofs from, and (when seal is not
// nil) every block's seal. g, when not nil, must produce block 0. It returns
// an *AuditError naming the first bad height.
//
// Audit keeps O(log n) hashes and one key digest per record in memory.
// progress, when not nil, is called after each block.
func Audit(ctx context.Context, s Store, g *Genesis, seal SealChecker, progress func(height uint64)) (*AuditReport, error) {
	head, err := s.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger: audit: %w", err)
	}
	rep := &AuditReport{}
	var f frontier
	keys := make(map[[16]byte]struct{})
	var parent *Header
	var auth []AuthorityEntry
	for height := uint64(0); height <= head.Height; height++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := s.Block(ctx, height)
		if err != nil {
			return nil, &AuditError{Height: height, Err: err}
		}
		if err := auditBlock(ctx, s, g, seal, parent, b, &f, keys, rep); err != nil {
			return nil, &AuditError{Height: height, Err: err}
		}
		for i := range b.Authority {
			auth = append(auth, AuthorityEntry{Change: b.Authority[i], Index: int64(b.Header.LogSize) - int64(len(b.Authority)-i), Height: height})
		}
		parent = &b.Header
		rep.Blocks++
		if progress != nil {
			progress(height)
		}
	}
	rep.Head = *parent
	// The store's list of authority changes (what LoadAuthorities reads)
	// must be the one the blocks give.
	listed, err := s.Authorities(ctx)
	if err != nil {
		return nil, &AuditError{Height: head.Height, Err: fmt.Errorf("authority changes: %w", err)}
	}
	if len(listed) != len(auth) {
		return nil, &AuditError{Height: head.Height, Err: fmt.Errorf("the store lists %d authority changes, the blocks hold %d", len(listed), len(auth))}
	}
	for i := range auth {
		if listed[i].Index != auth[i].Index || listed[i].Height != auth[i].Height || listed[i].Change.LeafHash() != auth[i].Change.LeafHash() {
			return nil, &AuditError{Height: auth[i].Height, Err: fmt.Errorf("the store lists authority change %d as %d at height %d, the blocks give %d", i, listed[i].Index, listed[i].Height, auth[i].Index)}
		}
	}
	return rep, nil
}

func auditBlock(ctx context.Context, s Store, g *Genesis, seal SealChecker, parent *Header, b *Block, f *frontier, keys map[[16]byte]struct{}, rep *AuditReport) error {
	h := &b.Header
	if parent == nil {
		if h.Height != 0 || !h.Prev.IsZero() || h.Records != 0 || h.LogSize != 0 || h.LogRoot != EmptyLogRoot || b.Leaves() != 0 {
			return errors.New("block 0 is not a genesis block")
		}
		if g != nil && h.Hash() != g.Block().Hash() {
			return fmt.Errorf("block 0 is %s, the genesis gives %s", h.Hash(), g.Block().Hash())
		}
		return nil
	}
	if err := CheckLink(parent, b); err != nil {
		return err
	}
	before := f.size
	for i := range b.Records {
		r := &b.Records[i]
		if err := r.Check(); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		k := sha256.Sum256([]byte(r.Key.String()))
		var d [16]byte
		copy(d[:], k[:])
		if _, dup := keys[d]; dup {
			return fmt.Errorf("key %s committed twice", r.Key)
		}
		keys[d] = struct{}{}
		data := r.Format()
		rep.Bytes += int64(len(data))
		if err := f.add(Hash(tlog.RecordHash(data))); err != nil {
			return err
		}
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
		rep.Bytes += int64(len(data))
		if err := f.add(Hash(tlog.RecordHash(data))); err != nil {
			return err
		}
	}
	rep.Records += int64(b.Leaves())
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
		idx := make([]int64, 0, hi-lo)
		for i := lo; i < hi; i++ {
			idx = append(idx, i)
		}
		got, err := s.ReadHashes(ctx, idx)
		if err != nil {
			return fmt.Errorf("stored hashes: %w", err)
		}
		if len(got) != len(idx) {
			return fmt.Errorf("stored hashes: read %d, want %d", len(got), len(idx))
		}
		for i, x := range f.added {
			if got[i] != x {
				return fmt.Errorf("stored log hash %d is %s, records give %s", idx[i], got[i], x)
			}
		}
	}
	f.added = f.added[:0]
	if seal != nil {
		if err := seal.CheckSeal(ctx, parent, b); err != nil {
			return fmt.Errorf("seal: %w", err)
		}
	}
	return nil
}

// A frontier is the right edge of a tlog tree: for each level, the newest
// complete subtree hash. It is all that appending and hashing the tree
// needs, so the log can be rebuilt in O(log n) memory.
type frontier struct {
	size  int64
	level []frontierHash // by level
	added []Hash         // stored hashes computed since last reset, in index order
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

func (f *frontier) add(leaf Hash) error {
	hs, err := tlog.StoredHashesForRecordHash(f.size, tlog.Hash(leaf), tlogReader{f})
	if err != nil {
		return err
	}
	// hs[i] is the hash at level i of the subtree that record size completes.
	for level, h := range hs {
		n := f.size >> uint(level)
		if level == len(f.level) {
			f.level = append(f.level, frontierHash{})
		}
		f.level[level] = frontierHash{n: n, hash: Hash(h)}
		f.added = append(f.added, Hash(h))
	}
	f.size++
	return nil
}

func (f *frontier) root() (Hash, error) { return LogRoot(f, f.size) }
