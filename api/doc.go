// Package api is vcsledger's HTTP API (DESIGN §6): a Server that answers
// over a Backend the node implements, a Go Client with one method per
// endpoint, the pure functions that check what a node answers
// (VerifyCheckpoint, VerifyRecord, VerifyConsistency, VerifyBlock), the
// OpenAPI document served at /v1/openapi.json and the admin UI's files.
//
// The wire format is JSON. Field names are part of the contract and are
// described in openapi.json; hashes are lowercase hex, canonical encodings
// (headers, certificates, attestations, the genesis) travel as their exact
// text. Errors are {"error": {"code": "...", "message": "..."}} with the
// matching HTTP status; the codes are the Code* constants. Request bodies
// over MaxBodyBytes are refused with 413; request JSON is decoded strictly
// (unknown, repeated or differently-cased fields and trailing data are
// refused with 400), and so are query parameters.
//
// Trust: a node is never trusted. The Client checks only that answers are
// well formed; a caller verifies a record with VerifyRecord against the
// genesis it pinned, which checks the checkpoint's certificate and the
// record's inclusion proof, and a later checkpoint against an earlier one
// with VerifyConsistency. Every verification failure wraps ErrVerification.
package api
