package sqlitestore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

func TestConformance(t *testing.T) {
	ledgertest.TestStore(t, func(t *testing.T) ledger.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
