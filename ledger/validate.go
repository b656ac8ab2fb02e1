package ledger

import (
	"context"
	"errors"
	"fmt"
)

// ErrInvalidBlock is wrapped by every ValidationError.
var ErrInvalidBlock = errors.New("ledger: invalid block")

// A ValidationError says which field of the block at which height failed.
type ValidationError struct {
	Height uint64
	Field  string // "height", "prev", "time", "records", "log", "key", "seal", ...
	Err    error
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("ledger: invalid block at height %d: %s: %v", e.Height, e.Field, e.Err)
}

// Unwrap returns both ErrInvalidBlock and the underlying error.
func (e *ValidationError) Unwrap() []error { return []error{ErrInvalidBlock, e.Err} }

func invalid(h uint64, field, format string, args ...any) error {
	return &ValidationError{Height: h, Field: field, Err: fmt.Errorf(format, args...)}
}

// A SealChecker checks a block's consensus seal: for poa the proposer and
// the certificate against the validator set, for pow the work and the
// difficulty, and in both the attestations the chain's rules ask for. It is
// implemented by the consensus engines; ledger only calls it.
type SealChecker interface {
	CheckSeal(ctx context.Context, parent *Header, b *Block) error
}

// CheckLink checks everything about b that follows from its parent header
// alone: chain, engine, height, prev hash, time not before the parent, and
// the record count. It does not look at the log or the seal.
func CheckLink(parent *Header, b *Block) error {
	h := &b.Header
	switch {
	case h.Chain != parent.Chain:
		return invalid(h.Height, "chain", "chain %q, want %q", h.Chain, parent.Chain)
	case h.Engine != parent.Engine:
		return invalid(h.Height, "engine", "engine %q, want %q", h.Engine, parent.Engine)
	case h.Height != parent.Height+1:
		return invalid(h.Height, "height", "height %d after parent %d", h.Height, parent.Height)
	case h.Prev != parent.Hash():
		return invalid(h.Height, "prev", "prev %s, want %s", h.Prev, parent.Hash())
	case h.Time < parent.Time:
		return invalid(h.Height, "time", "time %d before parent's %d", h.Time, parent.Time)
	case h.Records != uint64(b.Leaves()):
		return invalid(h.Height, "records", "header says %d records, body has %d", h.Records, b.Leaves())
	case h.LogSize != parent.LogSize+h.Records:
		return invalid(h.Height, "log", "log size %d, want %d + %d", h.LogSize, parent.LogSize, h.Records)
	}
	return nil
}

// ValidateNext checks that b is a valid next block for the chain in s, whose
// head is parent: CheckLink, every record well formed and its key neither
// committed before nor repeated in b, every authority change well formed
// (only poa blocks carry them), the log size and root after b, and the seal
// (unless seal is nil; the poa seal checks the authority changes' rules). It returns the stored log hashes to pass to
// s.Append.
func ValidateNext(ctx context.Context, s Store, parent *Header, b *Block, seal SealChecker) ([]Hash, error) {
	return validateNext(ctx, s, parent, b, nil, seal)
}

// ValidateParsed is ValidateNext for a block parsed by ParseBlockLeaves:
// it checks the same, but takes the records' form, which the parse
// checked, and their leaf hashes, which it computed, from p instead of
// checking and hashing each record again.
func ValidateParsed(ctx context.Context, s Store, parent *Header, p *ParsedBlock, seal SealChecker) ([]Hash, error) {
	return validateNext(ctx, s, parent, p.Block, p.leaves, seal)
}

// validateNext is ValidateNext; recordLeaves, when not nil, are the leaf
// hashes of b's records, which are known to be well formed.
func validateNext(ctx context.Context, s Store, parent *Header, b *Block, recordLeaves []Hash, seal SealChecker) ([]Hash, error) {
	if err := CheckLink(parent, b); err != nil {
		return nil, err
	}
	if len(recordLeaves) != len(b.Records) {
		recordLeaves = nil // not the records parsed: check them
	}
	h := &b.Header
	seen := make(map[Key]bool, len(b.Records))
	keys := make([]Key, len(b.Records))
	leaves := make([]Hash, len(b.Records), b.Leaves())
	for i := range b.Records {
		r := &b.Records[i]
		if recordLeaves == nil {
			if err := r.Check(); err != nil {
				return nil, invalid(h.Height, "record", "record %d: %v", i, err)
			}
		}
		if seen[r.Key] {
			return nil, invalid(h.Height, "key", "key %s twice in the block", r.Key)
		}
		seen[r.Key] = true
		keys[i] = r.Key
		if recordLeaves == nil {
			leaves[i] = r.LeafHash()
		}
	}
	switch i, err := FirstCommitted(ctx, s, keys); {
	case err != nil:
		return nil, fmt.Errorf("ledger: validate height %d: %w", h.Height, err)
	case i >= 0:
		return nil, &ValidationError{Height: h.Height, Field: "key", Err: fmt.Errorf("%s: %w", keys[i], ErrConflict)}
	}
	if recordLeaves != nil {
		copy(leaves, recordLeaves)
	}
	if len(b.Authority) > 0 && h.Engine != EnginePoA {
		return nil, invalid(h.Height, "authority", "a %s block carries authority changes", h.Engine)
	}
	for i := range b.Authority {
		c := &b.Authority[i]
		if err := c.Check(); err != nil {
			return nil, invalid(h.Height, "authority", "change %d: %v", i, err)
		}
		if c.Chain != h.Chain {
			return nil, invalid(h.Height, "authority", "change %d is of chain %q", i, c.Chain)
		}
		leaves = append(leaves, c.LeafHash())
	}
	stored, root, err := AppendLog(HashReaderOf(ctx, s), int64(parent.LogSize), leaves)
	if err != nil {
		return nil, fmt.Errorf("ledger: validate height %d: %w", h.Height, err)
	}
	if root != h.LogRoot {
		return nil, invalid(h.Height, "log", "log root %s, records give %s", h.LogRoot, root)
	}
	if seal != nil {
		if err := seal.CheckSeal(ctx, parent, b); err != nil {
			return nil, &ValidationError{Height: h.Height, Field: "seal", Err: err}
		}
	}
	return stored, nil
}

// AppendNext validates b as the next block of s (ValidateNext against s's
// head) and appends it.
func AppendNext(ctx context.Context, s Store, b *Block, seal SealChecker) error {
	parent, err := s.Head(ctx)
	if err != nil {
		return err
	}
	stored, err := ValidateNext(ctx, s, parent, b, seal)
	if err != nil {
		return err
	}
	return s.Append(ctx, b, stored)
}

// InitStore appends the genesis block to an empty store, or checks that a
// non-empty store's block 0 is g's.
func InitStore(ctx context.Context, s Store, g *Genesis) error {
	if err := g.Validate(); err != nil {
		return err
	}
	want := g.Block()
	switch h0, err := s.Header(ctx, 0); {
	case err == nil:
		if h0.Hash() != want.Hash() {
			return fmt.Errorf("%w: block 0 is %s, genesis gives %s (another chain's store?)", ErrCorrupt, h0.Hash(), want.Hash())
		}
		return nil
	case errors.Is(err, ErrNotFound):
		return s.Append(ctx, want, nil)
	default:
		return err
	}
}

// ErrBadAttestation is wrapped by every CheckAttestations failure.
var ErrBadAttestation = errors.New("ledger: invalid attestation")

// CheckAttestations checks that every record of b carries valid
// attestations, matching the record exactly, from at least need distinct
// members of vals (any signer when vals is nil, as on pow chains).
// Attestations that are not needed are still verified. Every error wraps
// ErrBadAttestation (and ErrBadSignature when a signature fails).
func CheckAttestations(b *Block, vals *ValidatorSet, need int) error {
	byKey := make(map[Key]*Record, len(b.Records))
	for i := range b.Records {
		byKey[b.Records[i].Key] = &b.Records[i]
	}
	count := make(map[Key]map[PublicKey]bool)
	items := make([]SignedItem, 0, len(b.Attestations))
	for i := range b.Attestations {
		a := &b.Attestations[i]
		r := byKey[a.Record.Key]
		switch {
		case a.Chain != b.Header.Chain:
			return fmt.Errorf("%w %d: chain %q", ErrBadAttestation, i, a.Chain)
		case r == nil:
			return fmt.Errorf("%w %d: key %s is not in the block", ErrBadAttestation, i, a.Record.Key)
		case a.Record != *r:
			return fmt.Errorf("%w %d by %s: attests another record for %s", ErrBadAttestation, i, a.Validator, r.Key)
		case vals != nil && !vals.Contains(a.Validator):
			return fmt.Errorf("%w %d: signer %s is not a validator", ErrBadAttestation, i, a.Validator)
		}
		if count[r.Key] == nil {
			count[r.Key] = make(map[PublicKey]bool)
		}
		if count[r.Key][a.Validator] {
			return fmt.Errorf("%w %d: %s attests %s twice", ErrBadAttestation, i, a.Validator, r.Key)
		}
		count[r.Key][a.Validator] = true
		items = append(items, SignedItem{Key: a.Validator, Msg: a.Message(), Sig: a.Sig})
	}
	for i := range b.Records {
		if n := len(count[b.Records[i].Key]); n < need {
			return fmt.Errorf("%w: record %s has %d attestations, needs %d", ErrBadAttestation, b.Records[i].Key, n, need)
		}
	}
	if err := VerifyBatch(items); err != nil {
		return fmt.Errorf("%w: %w", ErrBadAttestation, err)
	}
	return nil
}
