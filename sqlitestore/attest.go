package sqlitestore

import (
	"encoding/binary"
	"errors"
	"fmt"

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
	validator ledger.PublicKey
	sig       ledger.Signature
	whole     []byte
}

// nextAttestation reads the entry at the start of buf, an attestations
// blob of a block of records key records, and returns it and the rest of
// buf. It does not parse an attestation stored whole.
func nextAttestation(buf []byte, records int) (attEntry, []byte, error) {
	e := attEntry{tag: buf[0]}
	buf = buf[1:]
	n, k := binary.Uvarint(buf)
	if k <= 0 {
		return e, nil, errShortAttestations
	}
	buf = buf[k:]
	switch e.tag {
	case attRef:
		if n >= uint64(records) {
			return e, nil, fmt.Errorf("record %d of %d", n, records)
		}
		e.record = int(n)
		if len(buf) < len(e.validator)+len(e.sig) {
			return e, nil, errShortAttestations
		}
		buf = buf[copy(e.validator[:], buf):]
		buf = buf[copy(e.sig[:], buf):]
	case attWhole:
		if n > uint64(len(buf)) {
			return e, nil, errShortAttestations
		}
		e.whole, buf = buf[:n], buf[n:]
	default:
		return e, nil, fmt.Errorf("unknown tag %#x", e.tag)
	}
	return e, buf, nil
}

// decodeAttestations parses a blocks.attestations blob of the block with
// header h and records.
func decodeAttestations(buf []byte, h *ledger.Header, records []ledger.Record) ([]ledger.Attestation, error) {
	var out []ledger.Attestation
	for len(buf) > 0 {
		e, rest, err := nextAttestation(buf, len(records))
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", len(out), err)
		}
		buf = rest
		if e.tag == attWhole {
			a, err := ledger.ParseAttestation(e.whole)
			if err != nil {
				return nil, fmt.Errorf("entry %d: %w", len(out), err)
			}
			out = append(out, *a)
			continue
		}
		out = append(out, ledger.Attestation{Chain: h.Chain, Record: records[e.record], Validator: e.validator, Sig: e.sig})
	}
	return out, nil
}
