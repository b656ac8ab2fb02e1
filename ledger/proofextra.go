package ledger

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
)

// The extra data of a tlog-proof (docs/FORMAT.md, "Proof bundle").
//
// SPEC: c2sp.org/tlog-proof leaves the extra data to the application. On a
// chain whose validator set is still the genesis's at the checkpoint's
// height it is the record's canonical bytes. Once the set has changed, an
// offline verifier that trusts only the genesis needs the changes to know
// which validators must have signed the checkpoint: the extra data is then
//
//	vcsledger-proof-extra/1
//	record <n>\n<n bytes: the record>
//	authority <n>\n<n bytes: a proven change>      (one per change, in log order)
//
// and a proven change is
//
//	height <height of the block that committed the change>
//	index <the change's log index>
//	hash <base64 hash>                             (its inclusion proof in the checkpoint's log, one per line)
//	<the change's canonical bytes, votes included>
//
// The changes are every change in force at the checkpoint's height: the
// verifier derives the set of that height from the genesis by applying
// them in order, each checked against the set before it (its votes a
// quorum of the set in force at its height), and proves each one's leaf in
// the same checkpoint's log as the record's.

const proofExtraMagic = "vcsledger-proof-extra/1"

// A ProvenChange is a committed authority change with its inclusion proof
// in a checkpoint's log.
type ProvenChange struct {
	AuthorityEntry        // the change, its log index, the height that committed it
	Hashes         []Hash // RFC 6962 inclusion proof of its leaf
}

// A ProofExtra is the extra data of a tlog-proof: the record, and the
// validator-set changes in force at the checkpoint's height with their
// proofs.
type ProofExtra struct {
	Record  Record
	Changes []ProvenChange
}

// Format returns the extra data: the record's bytes when there is no
// change, the sectioned form above otherwise.
func (e *ProofExtra) Format() []byte {
	if len(e.Changes) == 0 {
		return e.Record.Format()
	}
	var b bytes.Buffer
	b.WriteString(proofExtraMagic + "\n")
	section := func(name string, data []byte) {
		b.WriteString(name + " " + strconv.Itoa(len(data)) + "\n")
		b.Write(data)
	}
	section("record", e.Record.Format())
	for i := range e.Changes {
		section("authority", e.Changes[i].format())
	}
	return b.Bytes()
}

func (c *ProvenChange) format() []byte {
	var b TextWriter
	b.Uint("height", c.Height)
	b.Uint("index", uint64(c.Index))
	for _, h := range c.Hashes {
		b.Line("hash", base64.StdEncoding.EncodeToString(h[:]))
	}
	b.Write(c.Change.Format())
	return b.Bytes()
}

// ParseProofExtra parses a tlog-proof's extra data strictly: a record's
// canonical bytes, or the sectioned form (at least one change; every
// part canonical, at most 63 hashes per change). It verifies nothing.
func ParseProofExtra(b []byte) (*ProofExtra, error) {
	rest, ok := bytes.CutPrefix(b, []byte(proofExtraMagic+"\n"))
	if !ok {
		r, err := ParseRecord(b)
		if err != nil {
			return nil, err
		}
		return &ProofExtra{Record: *r}, nil
	}
	fail := func(format string, args ...any) (*ProofExtra, error) {
		return nil, &FormatError{What: "proof extra data", Msg: fmt.Sprintf(format, args...)}
	}
	next := func() (string, []byte, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 || i > 64 {
			return "", nil, false
		}
		name, n, ok := cutSpace(string(rest[:i]))
		size, err := parseCanonicalUint(n)
		if !ok || err != nil || size > uint64(len(rest)-i-1) {
			return "", nil, false
		}
		body := rest[i+1 : i+1+int(size)]
		rest = rest[i+1+int(size):]
		return name, body, true
	}
	var e ProofExtra
	name, body, ok := next()
	if !ok || name != "record" {
		return fail("first section is not the record")
	}
	r, err := ParseRecord(body)
	if err != nil {
		return nil, err
	}
	e.Record = *r
	for len(rest) > 0 {
		name, body, ok := next()
		if !ok || name != "authority" {
			return fail("want an authority section")
		}
		c, err := parseProvenChange(body)
		if err != nil {
			return nil, err
		}
		e.Changes = append(e.Changes, *c)
	}
	if len(e.Changes) == 0 {
		return fail("no authority section (a record alone is the record's bytes)")
	}
	return &e, nil
}

func parseProvenChange(b []byte) (*ProvenChange, error) {
	l := NewTextReader("proven authority change", b)
	var c ProvenChange
	c.Height = l.Uint("height")
	idx := l.Uint("index")
	if l.err == nil && idx >= 1<<63 {
		l.Fail("index %d out of range", idx)
	}
	c.Index = int64(idx)
	for l.Peek("hash") {
		v := l.Field("hash")
		h, err := base64.StdEncoding.Strict().DecodeString(v)
		switch {
		case l.err != nil:
		case err != nil || len(h) != len(Hash{}):
			l.Fail("hash %q: want the base64 of 32 bytes", clip(v))
		case len(c.Hashes) == 63:
			l.Fail("more than 63 hashes")
		default:
			c.Hashes = append(c.Hashes, Hash(h))
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	ch, err := ParseAuthorityChange(l.rest)
	if err != nil {
		return nil, err
	}
	c.Change = *ch
	return &c, nil
}

// noteCheckpoint returns the checkpoint a signed note's text claims,
// without verifying any signature.
func noteCheckpoint(msg []byte) (*Checkpoint, error) {
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return nil, &FormatError{What: "checkpoint note", Msg: "no empty line after the text"}
	}
	return ParseCheckpointText(msg[:i+1])
}

// Verify checks the proof against the chain of genesis g, trusting g
// alone: the validator set of the checkpoint's height is g's set changed
// by the extra data's changes (each checked against the set before it,
// and all in force at that height), the checkpoint is a note signed by a
// quorum of that set (OpenCheckpoint), and the hashes prove the record's
// leaf at Index, and each change's leaf at its index, in the
// checkpoint's log. It returns the record and the checkpoint.
//
// A bundle that leaves a change out cannot be told from a complete one
// here: the verifier then expects signatures of validators the chain
// removed, or does not expect those of validators it added (see
// docs/FORMAT.md, "Proof bundle").
func (p *Proof) Verify(g *Genesis) (*Record, *Checkpoint, error) {
	e, err := ParseProofExtra(p.Extra)
	if err != nil {
		return nil, nil, fmt.Errorf("tlog-proof extra data: %w", err)
	}
	claimed, err := noteCheckpoint(p.Checkpoint)
	if err != nil {
		return nil, nil, err
	}
	vals, err := g.ValidatorSet()
	if err != nil {
		return nil, nil, err
	}
	if len(e.Changes) > 0 {
		es := make([]AuthorityEntry, len(e.Changes))
		for i := range e.Changes {
			es[i] = e.Changes[i].AuthorityEntry
			if es[i].Change.Effective > claimed.Height {
				return nil, nil, fmt.Errorf("tlog-proof: %s is not in force at the checkpoint's height %d: %w", &es[i].Change, claimed.Height, ErrMalformed)
			}
		}
		a, err := AuthoritiesOf(g, es, claimed.Height)
		if err != nil {
			return nil, nil, fmt.Errorf("tlog-proof: validator-set changes: %w", err)
		}
		if vals, err = a.At(claimed.Height); err != nil {
			return nil, nil, err
		}
	}
	c, _, err := OpenCheckpoint(p.Checkpoint, g.Chain, vals)
	if err != nil {
		return nil, nil, err
	}
	for i := range e.Changes {
		pc := &e.Changes[i]
		if err := CheckRecord(pc.Hashes, int64(c.LogSize), c.LogRoot, pc.Index, pc.Change.LeafHash()); err != nil {
			return nil, nil, fmt.Errorf("%s at index %d in the log of %d records: %w", &pc.Change, pc.Index, c.LogSize, err)
		}
	}
	r := &e.Record
	if err := CheckRecord(p.Hashes, int64(c.LogSize), c.LogRoot, p.Index, r.LeafHash()); err != nil {
		return nil, nil, fmt.Errorf("record %s at index %d in the log of %d records: %w", r.Key, p.Index, c.LogSize, err)
	}
	return r, c, nil
}
