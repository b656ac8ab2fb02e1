// Package mempool holds a node's pending records: what clients and peers
// asked the ledger to record, with the attestations validators made of them,
// until a block commits them (DESIGN §3 "Attestations", §4 "Mempool").
//
// A Pool admits, deduplicates, bounds, orders and persists pending entries.
// It refuses a key already committed (answering with the committed record), a
// malformed key or claim, a submitter over its rate and any entry that would
// make the pool too big. A key pending twice is one entry. Every accepted
// entry and every accepted attestation is written to a Journal before the
// call returns, so a restart loses nothing the pool accepted.
//
// An Attester is a validator's worker: it fetches and hashes every pending
// record itself, in parallel with consensus, signs an attestation of the
// result and adds it to the pool, so that a slow or unreachable repository
// never stalls a block.
//
// Defaults (see Config):
//
//	entries      100,000
//	bytes        64 MiB (of journal encoding)
//	rate         600 adds per minute per submitter, burst 60
//	expiry       1 h for records that are not ready
//	attestations 32 per entry when any signer may attest (Validators nil)
//	attester     4 workers, 2 min per fetch, retries after 30 s doubling to 10 min
//
// The pool reads time only from Config.Now. The Attester runs goroutines and
// uses the runtime's clock for its fetch timeouts and retry timers.
package mempool

import (
	"errors"
	"fmt"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// Errors the pool returns; callers map them with errors.Is. Refused keys
// wrap ledger.ErrInvalidKey, refused signatures ledger.ErrBadSignature.
var (
	// ErrFull: the pool is at its entry or byte limit (HTTP 503).
	ErrFull = errors.New("mempool: pool full")
	// ErrRateLimited: the submitter is over its rate (HTTP 429); see RateLimitError.
	ErrRateLimited = errors.New("mempool: rate limited")
	// ErrCommitted: the key is already committed; see CommittedError.
	ErrCommitted = errors.New("mempool: key already committed")
	// ErrInvalidClaim: the client's claimed commit or tree is malformed (HTTP 400).
	ErrInvalidClaim = errors.New("mempool: invalid claim")
	// ErrInvalidAttestation: wrong chain, malformed record or bad signature.
	ErrInvalidAttestation = errors.New("mempool: invalid attestation")
	// ErrNotValidator: the attestation's signer is not an allowed validator.
	ErrNotValidator = errors.New("mempool: signer is not a validator")
	// ErrConflict: a validator attested two different records for one key;
	// see ConflictError.
	ErrConflict = errors.New("mempool: conflicting attestations")
)

// A CommittedError refuses a key that is already committed. Entry is the
// committed record, which is the answer the client wants.
type CommittedError struct {
	Entry ledger.Entry
}

func (e *CommittedError) Error() string {
	return fmt.Sprintf("mempool: %s already committed at index %d, height %d",
		e.Entry.Record.Key, e.Entry.Index, e.Entry.Height)
}

// Unwrap returns ErrCommitted.
func (e *CommittedError) Unwrap() error { return ErrCommitted }

// A RateLimitError refuses an add from a submitter over its rate.
type RateLimitError struct {
	Submitter  string
	RetryAfter time.Duration // when the next add will be accepted
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("mempool: submitter %q over its rate; retry after %v", e.Submitter, e.RetryAfter)
}

// Unwrap returns ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// A ConflictError is evidence that a validator attested two different
// records for one key. A is the attestation the pool keeps (the first it
// accepted), B the conflicting one it refused. Both signatures verify: the
// node keeps the pair as evidence and serves it.
type ConflictError struct {
	A, B ledger.Attestation
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("mempool: validator %s attested two records for %s: commit %s tree %s, then commit %s tree %s",
		e.A.Validator, e.A.Record.Key, e.A.Record.Commit, e.A.Record.Tree, e.B.Record.Commit, e.B.Record.Tree)
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// A Claim is what a client says a key hashes to: the commit its tag peels to
// and/or its t1 tree hash. Either field may be empty; the zero Claim claims
// nothing. A claim is never trusted: validators compute the record
// themselves, and Entry.ClaimMismatch tells the client when they disagree.
type Claim struct {
	Commit string // lowercase hex commit id, or empty
	Tree   string // "t1:..." tree hash, or empty
}

// IsZero reports whether c claims nothing.
func (c Claim) IsZero() bool { return c == Claim{} }

// check reports whether the claim's fields are well formed.
func (c Claim) check() error {
	if c.Commit != "" {
		if err := ledger.CheckCommit(c.Commit); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidClaim, err)
		}
	}
	if c.Tree != "" && !isT1(c.Tree) {
		return fmt.Errorf("%w: tree %.80q is not t1: followed by base64 of 32 bytes", ErrInvalidClaim, c.Tree)
	}
	return nil
}

// An Entry is one pending record as the pool holds it. Entries returned by
// the pool are copies, the caller's to keep.
type Entry struct {
	Key       ledger.Key
	Claim     Claim     // what the client claimed, if anything
	Added     time.Time // when the pool accepted it (millisecond precision)
	Submitter string    // who added it; empty when created by an attestation or reinserted

	// Attestations are the validators' signed records for Key, at most one
	// per validator, sorted by validator key. They may disagree.
	Attestations []ledger.Attestation

	// Error is the reason this node's attester last failed to fetch or hash
	// the record, cleared when it attests; Attempts counts those failures.
	// Neither survives a restart.
	Error    string
	ErrorAt  time.Time
	Attempts int
}

// Attested returns the record most validators attested and how many did
// (0 when none has). A tie goes to the record whose canonical bytes sort
// first, so every node holding the same attestations picks the same record.
func (e *Entry) Attested() (ledger.Record, int) { return tally(e.Attestations) }

// ClaimMismatch reports whether some validator attested a commit or tree
// that differs from a non-empty field of the client's claim: the client
// should be told that the repository does not hash to what it computed.
func (e *Entry) ClaimMismatch() bool {
	for i := range e.Attestations {
		r := &e.Attestations[i].Record
		if e.Claim.Commit != "" && r.Commit != e.Claim.Commit || e.Claim.Tree != "" && r.Tree != e.Claim.Tree {
			return true
		}
	}
	return false
}

// A Ready record has enough agreeing attestations to enter a block.
type Ready struct {
	Record       ledger.Record
	Attestations []ledger.Attestation // those agreeing with Record, sorted by validator key
}
