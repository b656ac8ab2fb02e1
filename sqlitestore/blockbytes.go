package sqlitestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"math"

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
// to begins with the record magic line). A failed check is an error
// wrapping ledger.ErrCorrupt; a height the store does not hold is
// ledger.ErrNotFound.
func (s *Store) BlockBytes(ctx context.Context, height uint64) ([]byte, error) {
	if height > math.MaxInt64 {
		return nil, fmt.Errorf("sqlitestore: block %d: %w", height, ledger.ErrNotFound)
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, readErr(err, "block %d", height)
	}
	defer tx.Rollback()
	return readBlockBytes(ctx, tx, height)
}

// leafPrefix is the byte before a record's bytes in its leaf hash.
var leafPrefix = []byte{0}

// readBlockBytes is BlockBytes in q, which must see one snapshot.
func readBlockBytes(ctx context.Context, q queryer, height uint64) ([]byte, error) {
	var hdr, hash, cert, atts []byte
	var first int64
	if err := q.QueryRowContext(ctx, "SELECT header, hash, cert, attestations, first_index FROM blocks WHERE height = ?", int64(height)).Scan(&hdr, &hash, &cert, &atts, &first); err != nil {
		return nil, readErr(err, "block %d", height)
	}
	b, err := blockHead(height, hdr, hash, cert, first)
	if err != nil {
		return nil, err
	}
	h := &b.Header
	// Records take about 200 bytes; an attestation of one, about 430
	// bytes, is 98 in the blob.
	w := ledger.NewBlockWriter(hdr, len(hdr)+int(h.Records)*256+len(cert)+len(atts)*9/2+64)

	// keyRecs holds the key records' bytes, ends where each ends, for the
	// attestations that refer to them.
	var keyRecs []byte
	var ends []int
	if h.Records > 0 {
		rows, err := q.QueryContext(ctx, "SELECT idx, height, data, hashes FROM records WHERE idx >= ? AND idx < ? ORDER BY idx", first, first+int64(h.Records))
		if err != nil {
			return nil, readErr(err, "block %d: records", height)
		}
		defer rows.Close()
		var leaf [sha256.Size]byte
		sum := sha256.New()
		n, authority := 0, 0
		for rows.Next() {
			var idx, rh int64
			var data, hashes sql.RawBytes // copied before the next row
			if err := rows.Scan(&idx, &rh, &data, &hashes); err != nil {
				return nil, readErr(err, "block %d: records", height)
			}
			want := first + int64(n)
			if idx != want || rh != int64(height) {
				return nil, corruptRow(fmt.Errorf("record %d of height %d where record %d belongs", idx, rh, want), "block %d", height)
			}
			n++
			if size := 32 * (ledger.StoredHashCount(idx+1) - ledger.StoredHashCount(idx)); int64(len(hashes)) != size {
				return nil, corruptRow(fmt.Errorf("%d bytes of stored hashes, want %d", len(hashes), size), "block %d: record %d", height, idx)
			}
			sum.Reset()
			sum.Write(leafPrefix)
			sum.Write(data)
			if !bytes.Equal(sum.Sum(leaf[:0]), hashes[:32]) {
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
				if len(atts) > 0 {
					keyRecs = append(keyRecs, data...)
					ends = append(ends, len(keyRecs))
				}
			}
		}
		if err := rows.Err(); err != nil {
			return nil, readErr(err, "block %d: records", height)
		}
		if uint64(n) != h.Records {
			return nil, corruptRow(fmt.Errorf("header says %d records, %d stored", h.Records, n), "block %d", height)
		}
	}
	if cert != nil {
		w.Certificate(cert)
	}
	for i := 0; len(atts) > 0; i++ {
		e, rest, err := nextAttestation(atts, len(ends))
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
		if err := w.AttestationOf(h.Chain, e.validator, keyRecs[start:ends[e.record]], e.sig); err != nil {
			return nil, corruptRow(fmt.Errorf("entry %d: %w", i, err), "block %d: attestations", height)
		}
	}
	return w.Bytes(), nil
}
