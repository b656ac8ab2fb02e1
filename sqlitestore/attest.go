package sqlitestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/vcsledger/vcsledger/ledger"
)

// Entry tags of the attestations blob (see the package comment).
const (
	attRef   = 0x00 // uvarint(j) validator[32] sig[64]: of the block's record j
	attWhole = 0x01 // uvarint(len) canonical attestation bytes
)

// encodeAttestations returns the blocks.attestations blob for h's block of
// records.
func encodeAttestations(h *ledger.Header, records []ledger.Record, atts []ledger.Attestation) []byte {
	if len(atts) == 0 {
		return []byte{}
	}
	pos := make(map[ledger.Key]int, len(records))
	for j := range records {
		pos[records[j].Key] = j
	}
	buf := make([]byte, 0, len(atts)*(1+3+len(ledger.PublicKey{})+len(ledger.Signature{})))
	for i := range atts {
		a := &atts[i]
		if j, ok := pos[a.Record.Key]; ok && a.Chain == h.Chain && a.Record == records[j] {
			buf = append(buf, attRef)
			buf = binary.AppendUvarint(buf, uint64(j))
			buf = append(buf, a.Validator[:]...)
			buf = append(buf, a.Sig[:]...)
			continue
		}
		data := a.Format()
		buf = append(buf, attWhole)
		buf = binary.AppendUvarint(buf, uint64(len(data)))
		buf = append(buf, data...)
	}
	return buf
}

var errShortAttestations = errors.New("truncated")

// An attEntry is one entry of an attestations blob: with tag attRef, an
// attestation of the block's record with Validator and Sig; with attWhole,
// an attestation's canonical bytes.
type attEntry struct {
	tag       byte
	record    int
	validator []byte // len(ledger.PublicKey{}) bytes
	sig       []byte // len(ledger.Signature{}) bytes
	whole     []byte
}

// nextAttestation reads the entry at the start of buf, an attestations
// blob of a block of records key records, into *e, and returns the rest of
// buf. It does not parse an attestation stored whole.
func nextAttestation(buf []byte, records int, e *attEntry) ([]byte, error) {
	*e = attEntry{tag: buf[0]}
	buf = buf[1:]
	n, k := binary.Uvarint(buf)
	if k <= 0 {
		return nil, errShortAttestations
	}
	buf = buf[k:]
	switch e.tag {
	case attRef:
		if n >= uint64(records) {
			return nil, fmt.Errorf("record %d of %d", n, records)
		}
		e.record = int(n)
		const v, s = len(ledger.PublicKey{}), len(ledger.Signature{})
		if len(buf) < v+s {
			return nil, errShortAttestations
		}
		e.validator, e.sig, buf = buf[:v], buf[v:v+s], buf[v+s:]
	case attWhole:
		if n > uint64(len(buf)) {
			return nil, errShortAttestations
		}
		e.whole, buf = buf[:n], buf[n:]
	default:
		return nil, fmt.Errorf("unknown tag %#x", e.tag)
	}
	return buf, nil
}

// decodeAttestations parses a blocks.attestations blob of the block with
// header h and records.
func decodeAttestations(buf []byte, h *ledger.Header, records []ledger.Record) ([]ledger.Attestation, error) {
	return appendAttestations(nil, buf, h, records)
}

// attRefSize is the size of an attRef entry of a record j < 128, the
// smallest a blob's entries usually are.
const attRefSize = 1 + 1 + len(ledger.PublicKey{}) + len(ledger.Signature{})

// appendAttestations is decodeAttestations appending to dst. On an error
// it returns dst as it was.
func appendAttestations(dst []ledger.Attestation, buf []byte, h *ledger.Header, records []ledger.Record) ([]ledger.Attestation, error) {
	start := len(dst)
	dst = slices.Grow(dst, len(buf)/attRefSize)
	var e attEntry
	for i := 0; len(buf) > 0; i++ {
		rest, err := nextAttestation(buf, len(records), &e)
		if err != nil {
			return dst[:start], fmt.Errorf("entry %d: %w", i, err)
		}
		buf = rest
		if e.tag == attWhole {
			a, err := ledger.ParseAttestation(e.whole)
			if err != nil {
				return dst[:start], fmt.Errorf("entry %d: %w", i, err)
			}
			dst = append(dst, *a)
			continue
		}
		dst = append(dst, ledger.Attestation{Chain: h.Chain, Record: records[e.record], Validator: ledger.PublicKey(e.validator), Sig: ledger.Signature(e.sig)})
	}
	return dst, nil
}

// checkAttestations checks an attestations blob as decodeAttestations
// would, without the block: it returns how many of the block's records
// the blob's entries refer to (the highest record number plus one), which
// decodeAttestations would refuse if the block had fewer.
func checkAttestations(buf []byte) (refs int, err error) {
	var e attEntry
	for i := 0; len(buf) > 0; i++ {
		if buf, err = nextAttestation(buf, math.MaxInt, &e); err != nil {
			return 0, fmt.Errorf("entry %d: %w", i, err)
		}
		if e.tag == attWhole {
			if _, err := ledger.ParseAttestation(e.whole); err != nil {
				return 0, fmt.Errorf("entry %d: %w", i, err)
			}
			continue
		}
		refs = max(refs, e.record+1)
	}
	return refs, nil
}
