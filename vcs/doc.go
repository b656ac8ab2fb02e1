// Package vcs fetches one tag of a git repository and hashes the tree it
// points to, as DESIGN.md §2 specifies: the tree hash t1 always, and for Go
// modules the h1 hashes that go.sum records for the module and its go.mod.
//
// Hash is the entry point: it lists the remote's refs, fetches the objects of
// the tag at depth 1 (never a checkout, never history, never other refs) into
// a content-addressed cache, peels the tag to its commit and hashes the
// commit's tree from git objects. Every call asks the remote which object the
// tag names now, so a moved tag is always noticed; only the object transfer is
// skipped when the cache already holds that object.
//
// Hostile repositories are errors, not hashes: paths with a newline or NUL,
// malformed trees, and anything over the configured Limits stop the work with
// an error wrapping ErrHostile or ErrLimit. Nothing from the repository is
// ever written as a file: the only files vcs writes are pack, index and digest
// files under the cache directory, named by object ids.
//
// All errors returned by Hash are *Error values that wrap one of the
// sentinel errors below, so callers map them with errors.Is.
//
// Hash is safe for concurrent use; calls that need the same object share one
// fetch through a lock file in the cache directory.
//
// vcs never imports the ledger: it knows repositories and tags, not keys.
package vcs
