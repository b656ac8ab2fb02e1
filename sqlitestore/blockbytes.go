package sqlitestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/vcsledger/vcsledger/ledger"
)

// BlockBytes returns the canonical encoding of the block at height: the
// bytes Block(ctx, height).Format() returns, assembled from the stored
// canonical bytes of its header, records, authority changes, certificate
// and attestations (ledger.BlockWriter) without parsing the records, for
// the sync protocol to serve to peers, which parse and verify every block
// they receive.
//
// It checks what Block checks except the records' and authority changes'
// encodings: the header parses, hashes to its stored hash and is the one
// at height; the rows are the header's count of records, in log order,
// of this block, key records before authority changes; the certificate
// parses; the attestations blob is well formed, refers to the block's key
// records, and the attestations stored whole parse. Instead of parsing
// the records and authority changes, it checks that each one's bytes hash
// to the leaf hash stored in its row: they are the bytes appended, unless
// both were changed in agreement (and a key record an attestation refers
// to begins with the record magic line). A failed check is an error wrapping
// ledger.ErrCorrupt; a height the store does not hold is
// ledger.ErrNotFound.
func (s *Store) BlockBytes(ctx context.Context, height uint64) ([]byte, error) {
	return inBlockTx(ctx, s, height, readBlockBytes)
}

// leafPrefix is the byte before a record's bytes in its leaf hash.
var leafPrefix = []byte{0}

// readBlockBytes is BlockBytes in q, which must see one snapshot.
func readBlockBytes(ctx context.Context, q queryer, height uint64) ([]byte, error) {
	b, row, err := readBlockHead(ctx, q, height)
	if err != nil {
		return nil, err
	}
	hdr, cert, atts, first := row.header, row.cert, row.atts, row.first
	h := &b.Header
	// The entries' bytes one after the other, where each ends, and their
	// leaf hashes (the first stored hash of each).
	var recs, leaves []byte
	var cuts []int
	if h.Records > 0 {
		// Sized for records of up to 256 bytes, which most are
		// (readBlockHead refused a count over MaxBlockRecords).
		recs = make([]byte, 0, 256*h.Records)
		leaves = make([]byte, 0, 32*h.Records)
		cuts = make([]int, 0, h.Records)
		err := scanBlockEntries(ctx, q, height, first, int64(h.Records), func(_ int64, data, hashes []byte) error {
			recs = append(recs, data...)
			cuts = append(cuts, len(recs))
			leaves = append(leaves, hashes[:32]...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// An attestation of a record takes 98 bytes in the blob, about 430
	// in the block.
	w := ledger.NewBlockWriter(hdr, len(hdr)+len(recs)+24*int(h.Records)+len(cert)+len(atts)*9/2+64)

	// ends[j] is where key record j ends in recs, for the attestations
	// that refer to it.
	var ends []int
	var leaf [sha256.Size]byte
	sum := sha256.New()
	off, authority := 0, 0
	for i, end := range cuts {
		idx := first + int64(i)
		data := recs[off:end]
		off = end
		sum.Reset()
		sum.Write(leafPrefix)
		sum.Write(data)
		if !bytes.Equal(sum.Sum(leaf[:0]), leaves[32*i:32*i+32]) {
			return nil, corruptRow(fmt.Errorf("bytes do not hash to the stored leaf hash"), "block %d: record %d", height, idx)
		}
		switch {
		case isAuthority(data):
			w.Authority(data)
			authority++
		case authority > 0:
			return nil, corruptRow(fmt.Errorf("key record after an authority change"), "block %d: record %d", height, idx)
		default:
			w.Record(data)
			ends = append(ends, off)
		}
	}
	if cert != nil {
		w.Certificate(cert)
	}
	var e attEntry
	for i := 0; len(atts) > 0; i++ {
		rest, err := nextAttestation(atts, len(ends), &e)
		if err != nil {
			return nil, corruptRow(fmt.Errorf("entry %d: %w", i, err), "block %d: attestations", height)
		}
		atts = rest
		if e.tag == attWhole {
			if _, err := ledger.ParseAttestation(e.whole); err != nil {
				return nil, corruptRow(fmt.Errorf("entry %d: %w", i, err), "block %d: attestations", height)
			}
			w.Attestation(e.whole)
			continue
		}
		start := 0
		if e.record > 0 {
			start = ends[e.record-1]
		}
		if err := w.AttestationOf(h.Chain, ledger.PublicKey(e.validator), recs[start:ends[e.record]], ledger.Signature(e.sig)); err != nil {
			return nil, corruptRow(fmt.Errorf("entry %d: %w", i, err), "block %d: attestations", height)
		}
	}
	return w.Bytes(), nil
}
