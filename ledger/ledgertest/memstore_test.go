package ledgertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

func TestMemStore(t *testing.T) {
	TestStore(t, func(t *testing.T) ledger.Store { return NewMemStore() })
}

// Broken stores, each breaking one rule of ledger.Store. TestStore must
// fail for every one of them.
type (
	// noPrevCheck appends a block whatever its prev hash.
	noPrevCheck struct{ *MemStore }
	// partialAppend writes the records before a conflicting key.
	partialAppend struct{ *MemStore }
	// sharedBlock returns its own block, not a copy.
	sharedBlock struct{ *MemStore }
	// plainNotFound reports a missing record without wrapping ErrNotFound.
	plainNotFound struct{ *MemStore }
	// anyHashCount accepts any number of stored hashes.
	anyHashCount struct{ *MemStore }
)

func (s noPrevCheck) Append(ctx context.Context, b *ledger.Block, hashes []ledger.Hash) error {
	c := *b
	if head, err := s.Head(ctx); err == nil {
		c.Header.Prev = head.Hash()
	}
	if err := s.MemStore.Append(ctx, &c, hashes); err != nil {
		return err
	}
	s.mu.Lock()
	s.blocks[len(s.blocks)-1].Header = b.Header
	s.mu.Unlock()
	return nil
}

func (s partialAppend) Append(ctx context.Context, b *ledger.Block, hashes []ledger.Hash) error {
	err := s.MemStore.Append(ctx, b, hashes)
	if errors.Is(err, ledger.ErrConflict) {
		s.mu.Lock()
		for _, r := range b.Records {
			if _, ok := s.keys[r.Key]; ok {
				break
			}
			s.keys[r.Key] = int64(len(s.records))
			s.records = append(s.records, ledger.Entry{Record: r, Index: int64(len(s.records)), Height: b.Header.Height})
		}
		s.mu.Unlock()
	}
	return err
}

func (s sharedBlock) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if height >= uint64(len(s.blocks)) {
		return nil, ledger.ErrNotFound
	}
	return s.blocks[height], nil
}

func (s plainNotFound) Record(ctx context.Context, index int64) (*ledger.Entry, error) {
	e, err := s.MemStore.Record(ctx, index)
	if err != nil {
		return nil, errors.New("no such record")
	}
	return e, nil
}

func (s anyHashCount) Append(ctx context.Context, b *ledger.Block, hashes []ledger.Hash) error {
	s.mu.RLock()
	var old int64
	if n := len(s.blocks); n > 0 {
		old = int64(s.blocks[n-1].Header.LogSize)
	}
	s.mu.RUnlock()
	want := ledger.StoredHashCount(int64(b.Header.LogSize)) - ledger.StoredHashCount(old)
	fixed := make([]ledger.Hash, want)
	copy(fixed, hashes)
	return s.MemStore.Append(ctx, b, fixed)
}

var brokenStores = map[string]func() ledger.Store{
	"noPrevCheck":   func() ledger.Store { return noPrevCheck{NewMemStore()} },
	"partialAppend": func() ledger.Store { return partialAppend{NewMemStore()} },
	"sharedBlock":   func() ledger.Store { return sharedBlock{NewMemStore()} },
	"plainNotFound": func() ledger.Store { return plainNotFound{NewMemStore()} },
	"anyHashCount":  func() ledger.Store { return anyHashCount{NewMemStore()} },
}

// TestBrokenStore runs TestStore on the broken store named by
// LEDGERTEST_BROKEN; it is run by TestStoreCatchesBrokenStores only.
func TestBrokenStore(t *testing.T) {
	name := os.Getenv("LEDGERTEST_BROKEN")
	if name == "" {
		t.Skip("run by TestStoreCatchesBrokenStores")
	}
	TestStore(t, func(t *testing.T) ledger.Store { return brokenStores[name]() })
}

func TestStoreCatchesBrokenStores(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary once per broken store")
	}
	for name := range brokenStores {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenStore$", "-test.count=1")
			cmd.Env = append(os.Environ(), "LEDGERTEST_BROKEN="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("TestStore(%s) passed; want a failure\n%s", name, out)
			}
			if !strings.Contains(string(out), "--- FAIL") {
				t.Fatalf("TestStore(%s) did not report a test failure: %v\n%s", name, err, out)
			}
		})
	}
}
