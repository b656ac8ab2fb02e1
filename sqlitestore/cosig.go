package sqlitestore

import (
	"context"
	"fmt"

	"github.com/vcsledger/vcsledger/ledger"
)

// Validators' co-signatures of checkpoints (ledger.Cosignature) are kept
// in a table of their own, created at Open in any store that lacks it
// (stores of schema version 1 made before it existed gain it then):
//
//	cosigs(height INTEGER NOT NULL,       -- the block whose checkpoint was signed
//	       validator BLOB NOT NULL,       -- 32-byte public key
//	       sig BLOB NOT NULL,             -- 64-byte signature of the checkpoint's note text
//	       PRIMARY KEY (height, validator)) WITHOUT ROWID
//
// A row is a signature of the checkpoint of the block stored at its
// height; the store does not check it (the node does, before AddCosigs).
const cosigSchema = `
CREATE TABLE IF NOT EXISTS cosigs (
	height INTEGER NOT NULL,
	validator BLOB NOT NULL,
	sig BLOB NOT NULL,
	PRIMARY KEY (height, validator)
) WITHOUT ROWID;
`

func (s *Store) initCosigs(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, cosigSchema); err != nil {
		return s.fileErr("create cosigs table", err)
	}
	return nil
}

// A Cosig is one validator's signature of the checkpoint of the block at
// Height.
type Cosig struct {
	Height    uint64
	Validator ledger.PublicKey
	Sig       ledger.Signature
}

// AddCosigs stores co-signatures in one transaction, durably. A validator's
// second signature for a height is ignored: the first one stays.
func (s *Store) AddCosigs(ctx context.Context, cs ...Cosig) error {
	if len(cs) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: add co-signatures: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, "INSERT INTO cosigs (height, validator, sig) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
	if err != nil {
		return fmt.Errorf("sqlitestore: add co-signatures: %w", err)
	}
	defer ins.Close()
	for _, c := range cs {
		if c.Height > 1<<63-1 {
			return fmt.Errorf("sqlitestore: co-signature at height %d out of range", c.Height)
		}
		if _, err := ins.ExecContext(ctx, int64(c.Height), c.Validator[:], c.Sig[:]); err != nil {
			return fmt.Errorf("sqlitestore: add co-signature at height %d: %w", c.Height, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: add co-signatures: %w", err)
	}
	return nil
}

// Cosigs returns the co-signatures stored for height, by validator key.
func (s *Store) Cosigs(ctx context.Context, height uint64) ([]Cosig, error) {
	if height > 1<<63-1 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT validator, sig FROM cosigs WHERE height = ? ORDER BY validator", int64(height))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: co-signatures at height %d: %w", height, err)
	}
	defer rows.Close()
	var out []Cosig
	for rows.Next() {
		var k, sig []byte
		if err := rows.Scan(&k, &sig); err != nil {
			return nil, fmt.Errorf("sqlitestore: co-signatures at height %d: %w", height, err)
		}
		c := Cosig{Height: height}
		if len(k) != len(c.Validator) || len(sig) != len(c.Sig) {
			return nil, s.corrupt("co-signature at height %d: %d-byte key, %d-byte signature", height, len(k), len(sig))
		}
		copy(c.Validator[:], k)
		copy(c.Sig[:], sig)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: co-signatures at height %d: %w", height, err)
	}
	return out, nil
}

// LatestCosigned returns the highest height with at least n co-signatures,
// or an error wrapping ledger.ErrNotFound when there is none.
func (s *Store) LatestCosigned(ctx context.Context, n int) (uint64, error) {
	var h int64
	err := s.r.QueryRowContext(ctx, "SELECT height FROM cosigs GROUP BY height HAVING count(*) >= ? ORDER BY height DESC LIMIT 1", n).Scan(&h)
	if err != nil {
		return 0, readErr(err, "a height with %d co-signatures", n)
	}
	return uint64(h), nil
}
