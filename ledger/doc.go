// Package ledger is the domain core of vcsledger: keys, records, block
// headers, votes, certificates and attestations with their canonical
// encodings; the RFC 6962 Merkle log over all records; chain validation; and
// the Store interface that storage adapters implement.
//
// The package is pure: it does no I/O, starts no goroutines and reads no
// clock. Everything that varies (the store, the consensus seal, the time) is
// passed in. The encodings are specified for independent implementers in
// docs/FORMAT.md; golden vectors live in testdata/vectors.
package ledger
