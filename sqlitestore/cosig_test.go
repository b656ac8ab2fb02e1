package sqlitestore

import (
	"context"
	"errors"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

func TestCosigs(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if _, err := s.LatestCosigned(ctx, 1); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("LatestCosigned of an empty table = %v, want ErrNotFound", err)
	}
	sig := func(h uint64, v int, b byte) Cosig {
		c := Cosig{Height: h, Validator: ledgertest.Signer(v).Public()}
		c.Sig[0] = b
		return c
	}
	if err := s.AddCosigs(ctx, sig(1, 0, 1), sig(1, 1, 1), sig(2, 0, 1), sig(3, 2, 1), sig(3, 1, 1)); err != nil {
		t.Fatal(err)
	}
	// A second signature by a validator for a height keeps the first.
	if err := s.AddCosigs(ctx, sig(1, 0, 2), sig(2, 1, 1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    int
		want uint64
	}{{1, 3}, {2, 3}, {3, 0}} {
		got, err := s.LatestCosigned(ctx, tc.n)
		switch {
		case tc.want == 0 && !errors.Is(err, ledger.ErrNotFound):
			t.Errorf("LatestCosigned(%d) = %d, %v; want ErrNotFound", tc.n, got, err)
		case tc.want != 0 && (err != nil || got != tc.want):
			t.Errorf("LatestCosigned(%d) = %d, %v; want %d", tc.n, got, err, tc.want)
		}
	}
	got, err := s.Cosigs(ctx, 1)
	if err != nil || len(got) != 2 {
		t.Fatalf("Cosigs(1) = %v, %v", got, err)
	}
	for _, c := range got {
		if c.Sig[0] != 1 || c.Height != 1 {
			t.Errorf("Cosigs(1) has %+v, want the first signatures", c)
		}
	}
	if got[0].Validator.Compare(got[1].Validator) >= 0 {
		t.Errorf("Cosigs(1) not in key order")
	}
	if got, err := s.Cosigs(ctx, 9); err != nil || len(got) != 0 {
		t.Errorf("Cosigs(9) = %v, %v; want none", got, err)
	}

	// Durable across a reopen, and a store made before the table existed
	// gains it.
	path := s.Path()
	s.Close()
	s2, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Cosigs(ctx, 3); err != nil || len(got) != 2 {
		t.Fatalf("Cosigs(3) after a reopen = %v, %v", got, err)
	}
	if _, err := s2.w.ExecContext(ctx, "DROP TABLE cosigs"); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if got, err := s3.Cosigs(ctx, 1); err != nil || len(got) != 0 {
		t.Errorf("Cosigs(1) after the table was recreated = %v, %v", got, err)
	}
}
