package ledger

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// The log is one RFC 6962 Merkle tree over every record of the chain, in
// commit order, hashed and proven with golang.org/x/mod/sumdb/tlog. Its
// stored hashes are numbered as tlog numbers them (StoredHashIndex).

// EmptyLogRoot is the root of the empty log: SHA-256 of the empty string
// (RFC 6962 §2.1, MTH({}) = SHA-256()).
var EmptyLogRoot = Hash(sha256.Sum256(nil))

// ErrBadProof is returned when an inclusion or consistency proof fails.
var ErrBadProof = errors.New("ledger: invalid proof")

// A HashReader reads stored log hashes by their tlog stored-hash index.
// ReadHashes returns exactly one hash per index, in order, or an error; it
// is given only indexes of hashes that exist.
type HashReader interface {
	ReadHashes(indexes []int64) ([]Hash, error)
}

// A HashReaderFunc is a function that implements HashReader.
type HashReaderFunc func(indexes []int64) ([]Hash, error)

// ReadHashes calls f.
func (f HashReaderFunc) ReadHashes(indexes []int64) ([]Hash, error) { return f(indexes) }

type tlogReader struct{ r HashReader }

func (t tlogReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	hs, err := t.r.ReadHashes(indexes)
	if err != nil {
		return nil, err
	}
	if len(hs) != len(indexes) {
		return nil, fmt.Errorf("ledger: read %d hashes, want %d", len(hs), len(indexes))
	}
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = tlog.Hash(h)
	}
	return out, nil
}

// StoredHashCount returns how many stored hashes a log of n records has.
func StoredHashCount(n int64) int64 { return tlog.StoredHashCount(n) }

// LogRoot returns the root of the log's first n records.
func LogRoot(r HashReader, n int64) (Hash, error) {
	if n == 0 {
		return EmptyLogRoot, nil
	}
	h, err := tlog.TreeHash(n, tlogReader{r})
	return Hash(h), err
}

// AppendLog computes what appending leaves (record leaf hashes) to a log of
// size records adds: the stored hashes for positions StoredHashCount(size)
// onwards, in order, and the new root. r reads the existing stored hashes.
func AppendLog(r HashReader, size int64, leaves []Hash) (stored []Hash, root Hash, err error) {
	base := tlog.StoredHashCount(size)
	cache := make(map[int64]Hash)
	overlay := HashReaderFunc(func(indexes []int64) ([]Hash, error) {
		out := make([]Hash, len(indexes))
		var miss []int64
		for i, x := range indexes {
			switch {
			case x >= base:
				if x-base >= int64(len(stored)) {
					return nil, fmt.Errorf("ledger: stored hash %d not yet computed", x)
				}
				out[i] = stored[x-base]
			default:
				if h, ok := cache[x]; ok {
					out[i] = h
				} else {
					miss = append(miss, x)
				}
			}
		}
		if len(miss) > 0 {
			hs, err := r.ReadHashes(miss)
			if err != nil {
				return nil, err
			}
			if len(hs) != len(miss) {
				return nil, fmt.Errorf("ledger: read %d hashes, want %d", len(hs), len(miss))
			}
			for j, x := range miss {
				cache[x] = hs[j]
			}
			for i, x := range indexes {
				if x < base {
					out[i] = cache[x]
				}
			}
		}
		return out, nil
	})
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(size+int64(i), tlog.Hash(leaf), tlogReader{overlay})
		if err != nil {
			return nil, Hash{}, fmt.Errorf("ledger: append record %d: %w", size+int64(i), err)
		}
		for _, h := range hs {
			stored = append(stored, Hash(h))
		}
	}
	root, err = LogRoot(overlay, size+int64(len(leaves)))
	if err != nil {
		return nil, Hash{}, err
	}
	return stored, root, nil
}

// ProveRecord returns the inclusion proof that record index is in the log of
// size records.
func ProveRecord(r HashReader, size, index int64) ([]Hash, error) {
	p, err := tlog.ProveRecord(size, index, tlogReader{r})
	if err != nil {
		return nil, fmt.Errorf("ledger: prove record %d in log of %d: %w", index, size, err)
	}
	return fromTlog(p), nil
}

// CheckRecord verifies an inclusion proof: that leaf is record index of the
// log of size records with the given root.
func CheckRecord(proof []Hash, size int64, root Hash, index int64, leaf Hash) error {
	if index < 0 || index >= size {
		return fmt.Errorf("%w: record %d outside log of %d", ErrBadProof, index, size)
	}
	if err := tlog.CheckRecord(toTlog(proof), size, tlog.Hash(root), index, tlog.Hash(leaf)); err != nil {
		return fmt.Errorf("%w: record %d in log of %d: %v", ErrBadProof, index, size, err)
	}
	return nil
}

// ProveTree returns the consistency proof that the log of size n is a prefix
// of the log of size t (0 <= n <= t). The proof from an empty log is empty.
func ProveTree(r HashReader, t, n int64) ([]Hash, error) {
	if n == 0 || n == t {
		return []Hash{}, nil
	}
	p, err := tlog.ProveTree(t, n, tlogReader{r})
	if err != nil {
		return nil, fmt.Errorf("ledger: prove log %d extends %d: %w", t, n, err)
	}
	return fromTlog(p), nil
}

// CheckTree verifies a consistency proof: that the log of size t with root
// tRoot extends the log of size n with root nRoot.
func CheckTree(proof []Hash, t int64, tRoot Hash, n int64, nRoot Hash) error {
	switch {
	case n < 0 || n > t:
		return fmt.Errorf("%w: log of %d cannot extend log of %d", ErrBadProof, t, n)
	case n == 0:
		if nRoot != EmptyLogRoot || len(proof) != 0 {
			return fmt.Errorf("%w: empty log has root %s", ErrBadProof, EmptyLogRoot)
		}
		return nil
	case n == t:
		if nRoot != tRoot || len(proof) != 0 {
			return fmt.Errorf("%w: logs of equal size %d have different roots", ErrBadProof, n)
		}
		return nil
	}
	if err := tlog.CheckTree(toTlog(proof), t, tlog.Hash(tRoot), n, tlog.Hash(nRoot)); err != nil {
		return fmt.Errorf("%w: log %d extends %d: %v", ErrBadProof, t, n, err)
	}
	return nil
}

func fromTlog(p []tlog.Hash) []Hash {
	out := make([]Hash, len(p))
	for i, h := range p {
		out[i] = Hash(h)
	}
	return out
}

func toTlog(p []Hash) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		out[i] = tlog.Hash(h)
	}
	return out
}
