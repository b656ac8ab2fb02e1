package mempool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// A Journal keeps the pool's entries durably, so that a restart loses
// nothing the pool accepted. sqlitestore.Store's pending table is the
// production journal; MemJournal is one in memory.
//
// An item's id is its entry's key in canonical text form (Key.String()), so
// a store can delete the entries a block commits in the block's own
// transaction (sqlitestore.(*Store).AppendWithPending). Data is opaque to
// the journal, at most a few KiB per item.
//
// Rules:
//   - PutPending stores the item id, replacing any item with that id; when
//     it returns nil the item is durable.
//   - DeletePending removes the items; ids that are absent are not an error.
//   - LoadPending calls fn once for every stored item, in any order, and
//     stops with fn's error if fn returns one.
//   - A Pool never calls its journal from two goroutines at once, but other
//     users of the same store may.
//
// LoadPending takes a callback so that a store can satisfy the interface
// whatever its own item type; sqlitestore's returns a slice, which an
// adapter ranges over.
type Journal interface {
	PutPending(ctx context.Context, id string, data []byte) error
	DeletePending(ctx context.Context, ids ...string) error
	LoadPending(ctx context.Context, fn func(id string, data []byte) error) error
}

// A MemJournal is a Journal in memory, safe for concurrent use. The zero
// value is empty and ready to use.
type MemJournal struct {
	mu    sync.Mutex
	items map[string][]byte
}

var _ Journal = (*MemJournal)(nil)

// PutPending implements Journal.
func (j *MemJournal) PutPending(ctx context.Context, id string, data []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.items == nil {
		j.items = make(map[string][]byte)
	}
	j.items[id] = bytes.Clone(data)
	return nil
}

// DeletePending implements Journal.
func (j *MemJournal) DeletePending(ctx context.Context, ids ...string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, id := range ids {
		delete(j.items, id)
	}
	return nil
}

// LoadPending implements Journal; it calls fn in id order.
func (j *MemJournal) LoadPending(ctx context.Context, fn func(id string, data []byte) error) error {
	j.mu.Lock()
	ids := make([]string, 0, len(j.items))
	for id := range j.items {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	data := make([][]byte, len(ids))
	for i, id := range ids {
		data[i] = bytes.Clone(j.items[id])
	}
	j.mu.Unlock()
	for i, id := range ids {
		if err := fn(id, data[i]); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of items in the journal.
func (j *MemJournal) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.items)
}

// journalVersion is the version of the journal item encoding.
const journalVersion = 1

// journalItem is an entry's journal encoding: JSON, with the attestations
// in their canonical text (ledger.Attestation.Format). Order is the entry's
// place in arrival order; Added is Unix milliseconds.
type journalItem struct {
	V            int      `json:"v"`
	Key          string   `json:"key"`
	Order        int64    `json:"order"`
	Added        int64    `json:"added"`
	Submitter    string   `json:"submitter,omitempty"`
	Commit       string   `json:"commit,omitempty"`
	Tree         string   `json:"tree,omitempty"`
	Attestations []string `json:"attestations,omitempty"`
}

// encodeEntry returns the journal encoding of e with arrival order order.
func encodeEntry(e *Entry, order int64) []byte {
	it := journalItem{
		V:         journalVersion,
		Key:       e.Key.String(),
		Order:     order,
		Added:     e.Added.UnixMilli(),
		Submitter: e.Submitter,
		Commit:    e.Claim.Commit,
		Tree:      e.Claim.Tree,
	}
	for i := range e.Attestations {
		it.Attestations = append(it.Attestations, string(e.Attestations[i].Format()))
	}
	b, err := json.Marshal(it)
	if err != nil {
		panic("mempool: encode entry: " + err.Error()) // strings and integers only
	}
	return b
}

// errJournal is wrapped by every refusal of a journal item.
var errJournal = errors.New("mempool: bad journal item")

// decodeEntry parses an entry's journal encoding strictly: the key, the
// claim and every attestation must be well formed, the attestations must be
// for the key, one per validator. It does not verify signatures: the journal
// holds only what the pool verified before writing it.
func decodeEntry(data []byte) (*Entry, int64, error) {
	fail := func(format string, args ...any) (*Entry, int64, error) {
		return nil, 0, fmt.Errorf("%w: %s", errJournal, fmt.Sprintf(format, args...))
	}
	var it journalItem
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&it); err != nil {
		return fail("%v", err)
	}
	if dec.More() {
		return fail("trailing data")
	}
	if it.V != journalVersion {
		return fail("version %d, want %d", it.V, journalVersion)
	}
	k, err := ledger.ParseKey(it.Key)
	if err != nil {
		return fail("%v", err)
	}
	if k.String() != it.Key {
		return fail("key %.80q is not canonical", it.Key)
	}
	e := &Entry{
		Key:       k,
		Claim:     Claim{Commit: it.Commit, Tree: it.Tree},
		Added:     time.UnixMilli(it.Added),
		Submitter: it.Submitter,
	}
	if err := e.Claim.check(); err != nil {
		return fail("%v", err)
	}
	for _, s := range it.Attestations {
		a, err := ledger.ParseAttestation([]byte(s))
		if err != nil {
			return fail("%v", err)
		}
		if a.Record.Key != k {
			return fail("attestation of %s in the entry of %s", a.Record.Key, k)
		}
		if n := len(e.Attestations); n > 0 && e.Attestations[n-1].Validator.Compare(a.Validator) >= 0 {
			return fail("attestations not sorted by validator, or repeated")
		}
		e.Attestations = append(e.Attestations, *a)
	}
	return e, it.Order, nil
}

// isT1 reports whether s is "t1:" followed by the canonical standard base64
// of 32 bytes, the form of a tree hash (DESIGN §2).
func isT1(s string) bool {
	rest, ok := strings.CutPrefix(s, "t1:")
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	return err == nil && len(b) == sha256.Size
}
