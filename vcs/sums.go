package vcs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sort"

	"github.com/go-git/go-git/v5/plumbing"
)

// A .sums file sits beside each pack the indexer writes and holds the
// SHA-256 and size of every blob in the pack:
//
//	"vcsverify-blobsums/1\n"
//	records, sorted by id, no id twice: id (20 bytes) || sha256 (32) || size (8, big-endian)
//	sha256 of all the bytes above (32)
//
// The trailing checksum guards against a truncated or damaged cache: a file
// that fails it is ignored, and the blobs are hashed from the pack instead.

const (
	sumsMagic  = "vcsverify-blobsums/1\n"
	sumsRecLen = 20 + 32 + 8
)

var errBadSums = errors.New("vcs: malformed blob sums file")

func encodeSums(sums []blobSum) []byte {
	b := make([]byte, 0, len(sumsMagic)+len(sums)*sumsRecLen+32)
	b = append(b, sumsMagic...)
	for _, s := range sums {
		b = append(b, s.id[:]...)
		b = append(b, s.digest[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(s.size))
	}
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// A sumTable answers digest lookups from one decoded .sums file.
type sumTable struct {
	recs []byte // the records, sumsRecLen bytes each
}

// parseSums checks a .sums file and returns its table.
func parseSums(data []byte) (*sumTable, error) {
	if len(data) < len(sumsMagic)+32 || !bytes.HasPrefix(data, []byte(sumsMagic)) {
		return nil, errBadSums
	}
	body, trailer := data[:len(data)-32], data[len(data)-32:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], trailer) {
		return nil, errBadSums
	}
	recs := body[len(sumsMagic):]
	if len(recs)%sumsRecLen != 0 {
		return nil, errBadSums
	}
	for i := sumsRecLen; i < len(recs); i += sumsRecLen {
		if bytes.Compare(recs[i-sumsRecLen:i-sumsRecLen+20], recs[i:i+20]) >= 0 {
			return nil, errBadSums
		}
	}
	for i := 0; i < len(recs); i += sumsRecLen {
		if binary.BigEndian.Uint64(recs[i+52:i+60]) > 1<<62 {
			return nil, errBadSums
		}
	}
	return &sumTable{recs: recs}, nil
}

func (t *sumTable) len() int { return len(t.recs) / sumsRecLen }

// lookup returns the digest and size of blob id.
func (t *sumTable) lookup(id plumbing.Hash) (digest [32]byte, size int64, ok bool) {
	n := t.len()
	i := sort.Search(n, func(i int) bool {
		return bytes.Compare(t.recs[i*sumsRecLen:i*sumsRecLen+20], id[:]) >= 0
	})
	if i == n {
		return digest, 0, false
	}
	r := t.recs[i*sumsRecLen : (i+1)*sumsRecLen]
	if !bytes.Equal(r[:20], id[:]) {
		return digest, 0, false
	}
	copy(digest[:], r[20:52])
	return digest, int64(binary.BigEndian.Uint64(r[52:60])), true
}

// sumSet looks digests up in several tables.
type sumSet []*sumTable

func (s sumSet) lookup(id plumbing.Hash) ([32]byte, int64, bool) {
	for _, t := range s {
		if d, n, ok := t.lookup(id); ok {
			return d, n, true
		}
	}
	return [32]byte{}, 0, false
}
