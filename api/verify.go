package api

import (
	"fmt"
	"math/bits"

	"github.com/vcsledger/vcsledger/ledger"
)

// The Verify functions check what a node answered against the genesis the
// caller pinned, trusting nothing else in the answer. They are pure. Every
// error they return wraps ErrVerification.

func verifyErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrVerification}, args...)...)
}

// VerifyCheckpoint checks a checkpoint and returns its header: the header
// text parses, is of g's chain and engine, and agrees with the JSON fields;
// at height 0 it is g's genesis block and carries no certificate; on a poa
// chain above height 0 the certificate is a quorum of g's validators'
// precommits for this header's hash at its height.
//
// On a pow chain a checkpoint cannot prove itself: only the header's own
// work (its hash below its bits) is checked. Trust a pow checkpoint only
// after auditing the chain's work up to it.
func VerifyCheckpoint(g *ledger.Genesis, cp *Checkpoint) (*ledger.Header, error) {
	return VerifyCheckpointWith(g, nil, cp)
}

// VerifyCheckpointWith is VerifyCheckpoint on a poa chain whose validator
// set changed: the certificate is checked against the set auth (from
// VerifyAuthority) gives for the checkpoint's height. A nil auth means the
// genesis set.
func VerifyCheckpointWith(g *ledger.Genesis, auth *ledger.Authorities, cp *Checkpoint) (*ledger.Header, error) {
	h, err := ledger.ParseHeader([]byte(cp.Header))
	if err != nil {
		return nil, verifyErr("checkpoint header: %w", err)
	}
	hash := h.Hash()
	switch {
	case h.Chain != g.Chain || h.Engine != g.Engine:
		return nil, verifyErr("checkpoint is of chain %q (%s), want %q (%s)", h.Chain, h.Engine, g.Chain, g.Engine)
	case hash != cp.Hash:
		return nil, verifyErr("checkpoint header hashes to %s, response says %s", hash, cp.Hash)
	case h.Height != cp.Height || h.LogSize != cp.LogSize || h.LogRoot != cp.LogRoot || h.Time != cp.Time:
		return nil, verifyErr("checkpoint fields (height %d, log %d %s, time %d) disagree with its header (height %d, log %d %s, time %d)",
			cp.Height, cp.LogSize, cp.LogRoot, cp.Time, h.Height, h.LogSize, h.LogRoot, h.Time)
	}
	if h.Height == 0 {
		if want := g.Block().Hash(); hash != want {
			return nil, verifyErr("checkpoint at height 0 is %s, the genesis block is %s", hash, want)
		}
		if cp.Certificate != "" {
			return nil, verifyErr("checkpoint at height 0 carries a certificate")
		}
		return h, nil
	}
	switch g.Engine {
	case ledger.EnginePoA:
		if err := verifyCertificate(g, auth, h, cp.Certificate); err != nil {
			return nil, err
		}
	case ledger.EnginePoW:
		if cp.Certificate != "" {
			return nil, verifyErr("pow checkpoint carries a certificate")
		}
		if err := checkWork(h); err != nil {
			return nil, err
		}
	default:
		return nil, verifyErr("unknown engine %q", g.Engine)
	}
	return h, nil
}

// verifyCertificate checks that text is a certificate of h by the
// validators in force at its height (auth's, or g's when auth is nil).
func verifyCertificate(g *ledger.Genesis, auth *ledger.Authorities, h *ledger.Header, text string) error {
	if text == "" {
		return verifyErr("block %d has no certificate", h.Height)
	}
	cert, err := ledger.ParseCertificate([]byte(text))
	if err != nil {
		return verifyErr("certificate of block %d: %w", h.Height, err)
	}
	vals, err := setAt(g, auth, h.Height)
	if err != nil {
		return err
	}
	if err := cert.Verify(vals, g.Chain, h.Height, h.Hash()); err != nil {
		return verifyErr("block %d: %w", h.Height, err)
	}
	return nil
}

// checkWork checks that h's hash has at least h.Bits leading zero bits.
func checkWork(h *ledger.Header) error {
	hash := h.Hash()
	zeros := 0
	for _, b := range hash {
		zeros += bits.LeadingZeros8(b)
		if b != 0 {
			break
		}
	}
	if h.Bits == 0 || zeros < int(h.Bits) {
		return verifyErr("block %d hash %s has %d leading zero bits, header asks %d", h.Height, hash, zeros, h.Bits)
	}
	return nil
}

// VerifyRecord checks a record answer and returns the entry and the
// checkpoint's header: the checkpoint verifies (VerifyCheckpoint), the
// record's fields rebuild a well-formed ledger record whose canonical key
// is Repo@Tag, and the proof shows that record's leaf at Index in the log
// of the checkpoint's size and root.
//
// The entry's Height is not covered by the proof: check it against the
// block if it matters. VerifyRecord does not know which key was asked for:
// the caller compares the entry's key with it (Client.Record does).
func VerifyRecord(g *ledger.Genesis, r *RecordResponse) (*ledger.Entry, *ledger.Header, error) {
	return VerifyRecordWith(g, nil, r)
}

// VerifyRecordWith is VerifyRecord with the validator-set history auth
// (see VerifyCheckpointWith).
func VerifyRecordWith(g *ledger.Genesis, auth *ledger.Authorities, r *RecordResponse) (*ledger.Entry, *ledger.Header, error) {
	h, err := VerifyCheckpointWith(g, auth, &r.Checkpoint)
	if err != nil {
		return nil, nil, err
	}
	e, err := r.Record.Entry()
	if err != nil {
		return nil, nil, verifyErr("record: %w", err)
	}
	if e.Height > h.Height {
		return nil, nil, verifyErr("record %s at height %d is above its checkpoint's %d", r.Key, e.Height, h.Height)
	}
	if err := ledger.CheckRecord(r.Proof, int64(h.LogSize), h.LogRoot, e.Index, e.Record.LeafHash()); err != nil {
		return nil, nil, verifyErr("record %s: %w", r.Key, err)
	}
	return e, h, nil
}

// VerifyConsistency checks that newer's log extends older's: p proves the
// log of newer.LogSize records (root newer.LogRoot) has the log of
// older.LogSize records (root older.LogRoot) as its prefix. Both headers
// are verified checkpoints of one chain (VerifyCheckpoint); a newer header
// below the older one is a rollback, and two different headers at one
// height a fork. Either is reported as a verification failure.
func VerifyConsistency(older, newer *ledger.Header, p *ConsistencyProof) error {
	switch {
	case older.Chain != newer.Chain:
		return verifyErr("checkpoints of chains %q and %q", older.Chain, newer.Chain)
	case newer.Height < older.Height || newer.LogSize < older.LogSize:
		return verifyErr("rollback: checkpoint at height %d (log %d) is behind the one verified before, at height %d (log %d)",
			newer.Height, newer.LogSize, older.Height, older.LogSize)
	case newer.Height == older.Height && newer.Hash() != older.Hash():
		return verifyErr("fork: two checkpoints at height %d: %s and %s", newer.Height, older.Hash(), newer.Hash())
	case p.From != older.LogSize || p.To != newer.LogSize:
		return verifyErr("proof is from log %d to %d, want %d to %d", p.From, p.To, older.LogSize, newer.LogSize)
	}
	if err := ledger.CheckTree(p.Proof, int64(newer.LogSize), newer.LogRoot, int64(older.LogSize), older.LogRoot); err != nil {
		return verifyErr("fork: log at height %d does not extend log at height %d: %w", newer.Height, older.Height, err)
	}
	return nil
}

// VerifyBlock decodes a block answer and checks what the block alone
// proves: its header, records and attestations parse and agree with the
// JSON fields; at height 0 it is g's genesis block; on a poa chain its
// certificate is a quorum of g's validators and every record carries the
// attestations g asks for. It does not check the block's place in the
// chain (its prev hash and log root): that needs the chain before it
// (ledger.ValidateNext).
func VerifyBlock(g *ledger.Genesis, b *Block) (*ledger.Block, error) {
	return VerifyBlockWith(g, nil, b)
}

// VerifyBlockWith is VerifyBlock with the validator-set history auth (see
// VerifyCheckpointWith).
func VerifyBlockWith(g *ledger.Genesis, auth *ledger.Authorities, b *Block) (*ledger.Block, error) {
	lb, err := b.Ledger()
	if err != nil {
		return nil, verifyErr("%w", err)
	}
	h := &lb.Header
	if h.Chain != g.Chain || h.Engine != g.Engine {
		return nil, verifyErr("block is of chain %q (%s), want %q (%s)", h.Chain, h.Engine, g.Chain, g.Engine)
	}
	if h.Height == 0 {
		if want := g.Block().Hash(); lb.Hash() != want {
			return nil, verifyErr("block 0 is %s, the genesis block is %s", lb.Hash(), want)
		}
		if lb.Certificate != nil || len(lb.Attestations) > 0 {
			return nil, verifyErr("block 0 carries a certificate or attestations")
		}
		return lb, nil
	}
	var vals *ledger.ValidatorSet
	need := g.AttestationsNeeded()
	switch g.Engine {
	case ledger.EnginePoA:
		if err := verifyCertificate(g, auth, h, b.Certificate); err != nil {
			return nil, err
		}
		if vals, err = setAt(g, auth, h.Height); err != nil {
			return nil, err
		}
		if auth != nil {
			need = auth.AttestationsNeeded(vals)
		}
	case ledger.EnginePoW:
		if lb.Certificate != nil {
			return nil, verifyErr("pow block %d carries a certificate", h.Height)
		}
		if err := checkWork(h); err != nil {
			return nil, err
		}
	}
	if err := ledger.CheckAttestations(lb, vals, need); err != nil {
		return nil, verifyErr("block %d: %w", h.Height, err)
	}
	return lb, nil
}

// Ledger decodes b into a ledger block. It checks that every canonical text
// parses, that Hash and Height are the header's, and that each record's
// fields, index and height agree with the header; it verifies no
// signature (VerifyBlock does).
func (b *Block) Ledger() (*ledger.Block, error) {
	h, err := ledger.ParseHeader([]byte(b.Header))
	if err != nil {
		return nil, fmt.Errorf("api: block header: %w", err)
	}
	if h.Hash() != b.Hash || h.Height != b.Height {
		return nil, fmt.Errorf("api: block header is %s at height %d, response says %s at %d", h.Hash(), h.Height, b.Hash, b.Height)
	}
	if uint64(len(b.Records)+len(b.Authority)) != h.Records {
		return nil, fmt.Errorf("api: block %d header says %d records, response has %d", h.Height, h.Records, len(b.Records)+len(b.Authority))
	}
	lb := &ledger.Block{Header: *h, Records: make([]ledger.Record, len(b.Records))}
	for i, text := range b.Authority {
		c, err := ledger.ParseAuthorityChange([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("api: block %d authority change %d: %w", h.Height, i, err)
		}
		lb.Authority = append(lb.Authority, *c)
	}
	first := int64(h.LogSize) - int64(h.Records)
	for i := range b.Records {
		e, err := b.Records[i].Entry()
		if err != nil {
			return nil, fmt.Errorf("api: block %d record %d: %w", h.Height, i, err)
		}
		if e.Index != first+int64(i) || e.Height != h.Height {
			return nil, fmt.Errorf("api: block %d record %d: index %d height %d, want index %d height %d",
				h.Height, i, e.Index, e.Height, first+int64(i), h.Height)
		}
		lb.Records[i] = e.Record
	}
	if b.Certificate != "" {
		if lb.Certificate, err = ledger.ParseCertificate([]byte(b.Certificate)); err != nil {
			return nil, fmt.Errorf("api: block %d certificate: %w", h.Height, err)
		}
	}
	for i, text := range b.Attestations {
		a, err := ledger.ParseAttestation([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("api: block %d attestation %d: %w", h.Height, i, err)
		}
		lb.Attestations = append(lb.Attestations, *a)
	}
	return lb, nil
}

// setAt returns the validator set in force at height h: auth's, or the
// genesis set when auth is nil.
func setAt(g *ledger.Genesis, auth *ledger.Authorities, h uint64) (*ledger.ValidatorSet, error) {
	if auth == nil {
		vals, err := g.ValidatorSet()
		if err != nil {
			return nil, verifyErr("%w", err)
		}
		return vals, nil
	}
	if auth.Chain() != g.Chain {
		return nil, verifyErr("validator history of chain %q for chain %q", auth.Chain(), g.Chain)
	}
	vals, err := auth.At(h)
	if err != nil {
		return nil, verifyErr("block %d: %w", h, err)
	}
	return vals, nil
}
