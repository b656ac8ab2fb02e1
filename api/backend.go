package api

import (
	"context"

	"github.com/vcsledger/vcsledger/ledger"
)

// A Backend is what the server needs from a node. Every method is safe for
// concurrent use and called on the request's goroutine; those that take a
// ctx return promptly once it is done. Values returned are the server's to
// keep (it does not modify them).
//
// Errors: reads of what does not exist wrap ledger.ErrNotFound (404); a
// store that fails verification wraps ledger.ErrCorrupt (500, never
// served). Submit refuses with errors wrapping ledger.ErrInvalidKey or
// ErrInvalidClaim (400), ErrRateLimited (429; a *RateLimitError sets
// Retry-After), ErrFull (503) or ErrUnavailable (503). Any other error is a
// 500 whose text is logged, not shown.
type Backend interface {
	// Genesis returns the chain's genesis. It never changes.
	Genesis() *ledger.Genesis
	// Store returns the committed chain: headers, blocks, records, key
	// lookups and the stored log hashes proofs are built from.
	Store() ledger.Store
	// Checkpoint returns the newest committed header and its certificate
	// (nil at genesis and on pow chains). The header is in Store.
	Checkpoint(ctx context.Context) (*ledger.Header, *ledger.Certificate, error)
	// CosignedCheckpoint returns the newest checkpoint note (docs/FORMAT.md,
	// "Checkpoints") signed by a quorum of the validators, of a block in
	// Store, or an error wrapping ledger.ErrNotFound when there is none.
	CosignedCheckpoint(ctx context.Context) ([]byte, error)

	// Submit asks the ledger to record key for submitter (the client's
	// address), with the client's claim (nil for none). It answers the
	// committed entry when the key is already committed, else the pending
	// record (accepted now or earlier).
	Submit(ctx context.Context, key ledger.Key, claim *Claim, submitter string) (*SubmitResult, error)
	// Pending returns the pending record of key, if the key is pending.
	Pending(key ledger.Key) (*PendingInfo, bool)
	// WaitCommitted blocks until key is committed, and returns its entry,
	// or until ctx is done, and returns ctx's error.
	WaitCommitted(ctx context.Context, key ledger.Key) (*ledger.Entry, error)
	// Mempool returns up to limit pending records, oldest first.
	Mempool(limit int) []PendingInfo

	// Status returns the node's fields of Status (see Status).
	Status() Status
	// Peers returns the connected peers.
	Peers() []Peer
	// Validators returns the current validator set (empty on pow chains).
	Validators() []Validator
	// Evidence returns up to limit items of evidence, newest first.
	Evidence(ctx context.Context, limit int) ([]Evidence, error)
	// Ready returns nil when the node can serve (store open, caught up
	// enough to answer), else why not (for /readyz).
	Ready() error
}

// A SubmitResult is Backend.Submit's answer: exactly one field is set.
type SubmitResult struct {
	Committed *ledger.Entry // the key was already committed
	Pending   *PendingInfo  // the key is pending
}
