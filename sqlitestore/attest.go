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

// decodeAttestations parses a blocks.attestations blob of the block with
// header h and records.
func decodeAttestations(buf []byte, h *ledger.Header, records []ledger.Record) ([]ledger.Attestation, error) {
	var out []ledger.Attestation
	for len(buf) > 0 {
		tag := buf[0]
		buf = buf[1:]
		n, k := binary.Uvarint(buf)
		if k <= 0 {
			return nil, fmt.Errorf("entry %d: %w", len(out), errShortAttestations)
		}
		buf = buf[k:]
		switch tag {
		case attRef:
			if n >= uint64(len(records)) {
				return nil, fmt.Errorf("entry %d: record %d of %d", len(out), n, len(records))
			}
			a := ledger.Attestation{Chain: h.Chain, Record: records[n]}
			if len(buf) < len(a.Validator)+len(a.Sig) {
				return nil, fmt.Errorf("entry %d: %w", len(out), errShortAttestations)
			}
			buf = buf[copy(a.Validator[:], buf):]
			buf = buf[copy(a.Sig[:], buf):]
			out = append(out, a)
		case attWhole:
			if n > uint64(len(buf)) {
				return nil, fmt.Errorf("entry %d: %w", len(out), errShortAttestations)
			}
			a, err := ledger.ParseAttestation(buf[:n])
			if err != nil {
				return nil, fmt.Errorf("entry %d: %w", len(out), err)
			}
			buf = buf[n:]
			out = append(out, *a)
		default:
			return nil, fmt.Errorf("entry %d: unknown tag %#x", len(out), tag)
		}
	}
	return out, nil
}
