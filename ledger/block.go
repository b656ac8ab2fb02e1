package ledger

import (
	"bytes"
	"fmt"
	"strconv"
)

const blockMagic = "vcsledger-blockdata/1"

// Limits on a block, so that no peer can make a node allocate without bound.
const (
	MaxBlockRecords = 100_000
	MaxBlockBytes   = 64 << 20
)

// A Block is a header, the records it adds to the log in order (its key
// records, then its authority changes), and what seals and supports it: the
// poa certificate and the key records' attestations. Only the header is
// hashed; the certificate and attestations are self-authenticating
// signatures kept with the body. The header's record count is that of both
// kinds (Leaves).
type Block struct {
	Header       Header
	Records      []Record
	Authority    []AuthorityChange // poa: validator-set changes, after the records in the log
	Certificate  *Certificate      // poa; nil for pow and for the genesis block
	Attestations []Attestation     // in record order, each record's in validator order
}

// Hash returns the block hash.
func (b *Block) Hash() Hash { return b.Header.Hash() }

// Format returns the block's canonical transport and storage encoding
// (docs/FORMAT.md, "Block data"): a magic line, then length-prefixed
// sections "header", "record"*, "authority"*, "certificate"?,
// "attestation"*.
func (b *Block) Format() []byte {
	w := NewBlockWriter(b.Header.Format(), 0)
	for i := range b.Records {
		w.Record(b.Records[i].Format())
	}
	for i := range b.Authority {
		w.Authority(b.Authority[i].Format())
	}
	if b.Certificate != nil {
		w.Certificate(b.Certificate.Format())
	}
	for i := range b.Attestations {
		w.Attestation(b.Attestations[i].Format())
	}
	return w.Bytes()
}

// A BlockWriter builds a block's canonical encoding (Format) from the
// canonical encodings of its parts, without parsing them, so that a store
// keeping those encodings can send a block without decoding it. The parts
// must be written in Format's order: the header (NewBlockWriter), the key
// records, the authority changes, the certificate if any, the
// attestations. A BlockWriter checks neither the order nor the parts.
type BlockWriter struct{ buf []byte }

// NewBlockWriter starts a block's encoding with its header's canonical
// bytes; size is a hint of the whole encoding's length.
func NewBlockWriter(header []byte, size int) *BlockWriter {
	w := &BlockWriter{buf: make([]byte, 0, max(size, len(blockMagic)+len(header)+32))}
	w.buf = append(w.buf, blockMagic+"\n"...)
	w.part("header", header)
	return w
}

// section appends a section line of name for size bytes.
func (w *BlockWriter) section(name string, size int) {
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendInt(w.buf, int64(size), 10)
	w.buf = append(w.buf, '\n')
}

// part appends a section of name holding data.
func (w *BlockWriter) part(name string, data []byte) {
	w.section(name, len(data))
	w.buf = append(w.buf, data...)
}

// Record writes a key record's canonical bytes (Record.Format).
func (w *BlockWriter) Record(data []byte) { w.part("record", data) }

// Authority writes an authority change's canonical bytes
// (AuthorityChange.Format).
func (w *BlockWriter) Authority(data []byte) { w.part("authority", data) }

// Certificate writes the certificate's canonical bytes (Certificate.Format).
func (w *BlockWriter) Certificate(data []byte) { w.part("certificate", data) }

// Attestation writes an attestation's canonical bytes (Attestation.Format).
func (w *BlockWriter) Attestation(data []byte) { w.part("attestation", data) }

// AttestationOf writes the attestation by v on chain, with signature sig,
// of the record whose canonical bytes are record: what Attestation writes
// for it, built without parsing the record. Only the record's first line
// is checked: a record that does not start with the record magic line is
// ErrMalformed, and nothing is written.
func (w *BlockWriter) AttestationOf(chain string, v PublicKey, record []byte, sig Signature) error {
	body, ok := bytes.CutPrefix(record, []byte(recordMagic+"\n"))
	if !ok {
		return &FormatError{What: "record", Line: 1, Msg: "missing " + recordMagic}
	}
	w.section("attestation", attestSize(chain, body))
	w.buf = appendSig(appendAttestMessage(w.buf, chain, v, body), sig)
	return nil
}

// Bytes returns the encoding written.
func (w *BlockWriter) Bytes() []byte { return w.buf }

// ParseBlock parses a block's canonical encoding strictly. It checks the
// encodings and that the record count (key records and authority changes)
// matches the header; it verifies no signatures and no chain rules (see
// ValidateNext).
func ParseBlock(data []byte) (*Block, error) {
	b, _, err := parseBlock(data, false)
	return b, err
}

// A ParsedBlock is a block decoded by ParseBlockLeaves, with what decoding
// it established: its records are well formed (ParseRecord checks every
// field) and leaves are their leaf hashes, hashed from the bytes decoded.
// ValidateParsed uses both. Block must not be modified.
type ParsedBlock struct {
	Block  *Block
	leaves []Hash
}

// ParseBlockLeaves parses a block as ParseBlock does and hashes its
// records' leaves from the bytes parsed (a parsed record formats back to
// exactly them), for ValidateParsed.
func ParseBlockLeaves(data []byte) (*ParsedBlock, error) {
	b, leaves, err := parseBlock(data, true)
	if err != nil {
		return nil, err
	}
	return &ParsedBlock{Block: b, leaves: leaves}, nil
}

// parseBlock is ParseBlock; with hash set it also returns the records'
// leaf hashes.
func parseBlock(data []byte, hash bool) (*Block, []Hash, error) {
	if len(data) > MaxBlockBytes {
		return nil, nil, &FormatError{What: "block", Msg: fmt.Sprintf("%d bytes, more than %d", len(data), MaxBlockBytes)}
	}
	rest, ok := bytes.CutPrefix(data, []byte(blockMagic+"\n"))
	if !ok {
		return nil, nil, &FormatError{What: "block", Line: 1, Msg: "missing " + blockMagic}
	}
	next := func() (name string, body []byte, err error) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 || i > 64 {
			return "", nil, &FormatError{What: "block", Msg: "bad section line"}
		}
		line := string(rest[:i])
		name, n, ok := cutSpace(line)
		if !ok {
			return "", nil, &FormatError{What: "block", Msg: fmt.Sprintf("bad section line %q", clip(line))}
		}
		size, err := parseCanonicalUint(n)
		if err != nil || size > uint64(len(rest)-i-1) {
			return "", nil, &FormatError{What: "block", Msg: fmt.Sprintf("bad section length in %q", clip(line))}
		}
		body = rest[i+1 : i+1+int(size)]
		rest = rest[i+1+int(size):]
		return name, body, nil
	}
	var b Block
	var leaves []Hash
	name, body, err := next()
	if err != nil {
		return nil, nil, err
	}
	if name != "header" {
		return nil, nil, &FormatError{What: "block", Msg: "first section is not the header"}
	}
	h, err := ParseHeader(body)
	if err != nil {
		return nil, nil, err
	}
	b.Header = *h
	if h.Records > MaxBlockRecords {
		return nil, nil, &FormatError{What: "block", Msg: fmt.Sprintf("%d records, more than %d", h.Records, MaxBlockRecords)}
	}
	b.Records = make([]Record, 0, h.Records)
	if hash {
		leaves = make([]Hash, 0, h.Records)
	}
	for len(rest) > 0 {
		name, body, err := next()
		if err != nil {
			return nil, nil, err
		}
		switch {
		case name == "record" && len(b.Authority) == 0 && b.Certificate == nil && len(b.Attestations) == 0:
			r, err := ParseRecordString(string(body))
			if err != nil {
				return nil, nil, err
			}
			b.Records = append(b.Records, r)
			if hash {
				leaves = append(leaves, leafHash(body))
			}
		case name == "authority" && b.Certificate == nil && len(b.Attestations) == 0:
			c, err := ParseAuthorityChange(body)
			if err != nil {
				return nil, nil, err
			}
			b.Authority = append(b.Authority, *c)
		case name == "certificate" && b.Certificate == nil && len(b.Attestations) == 0:
			c, err := ParseCertificate(body)
			if err != nil {
				return nil, nil, err
			}
			b.Certificate = c
		case name == "attestation":
			a, err := ParseAttestation(body)
			if err != nil {
				return nil, nil, err
			}
			b.Attestations = append(b.Attestations, *a)
		default:
			return nil, nil, &FormatError{What: "block", Msg: fmt.Sprintf("unexpected section %q", clip(name))}
		}
	}
	if uint64(b.Leaves()) != h.Records {
		return nil, nil, &FormatError{What: "block", Msg: fmt.Sprintf("header says %d records, body has %d", h.Records, b.Leaves())}
	}
	return &b, leaves, nil
}

func cutSpace(s string) (string, string, bool) {
	i := bytes.IndexByte([]byte(s), ' ')
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
