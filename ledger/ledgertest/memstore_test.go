package ledgertest

import (
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
)

func TestMemStore(t *testing.T) {
	TestStore(t, func(t *testing.T) ledger.Store { return NewMemStore() })
}
