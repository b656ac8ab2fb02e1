package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/node"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

func newAuditCmd(stdout, stderr io.Writer) *cobra.Command {
	var db, genesis string
	cmd := &cobra.Command{
		Use:   "audit --db FILE [--genesis FILE]",
		Short: "Verify a store offline",
		Long: `audit re-verifies a whole store from genesis without the network: every
header's link to its parent, every record's encoding and hash, that no key is
committed twice, every log root recomputed from the records, and the stored
hashes proofs are served from. With --genesis it also checks block 0 and every
block's certificate and attestations against the validators.

Exit 0 when the store is sound; exit 1 naming the first bad height.`,
		Example: "  ledgerd audit --db ./node0/ledger.db --genesis ./node0/genesis.txt",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if db == "" {
				return usageErrorf("--db is required")
			}
			var g *ledger.Genesis
			var seal ledger.SealChecker
			if genesis != "" {
				var err error
				if g, err = readGenesis(genesis); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			// No proofs are served: the stored hashes are read from the
			// file, where the audit checks them, not kept in memory.
			s, err := sqlitestore.Open(ctx, db, sqlitestore.WithHashCache(0))
			if err != nil {
				if errors.Is(err, ledger.ErrCorrupt) {
					return &exitError{code: 1, err: err}
				}
				return err
			}
			defer s.Close()
			if g != nil {
				if seal, err = node.SealChecker(g, s); err != nil {
					return err
				}
			}
			start := time.Now()
			last := start
			rep, err := ledger.Audit(ctx, s, g, seal, func(h uint64) {
				if now := time.Now(); now.Sub(last) > 2*time.Second {
					last = now
					fmt.Fprintf(stderr, "audit: height %d\n", h)
				}
			})
			if err != nil {
				var ae *ledger.AuditError
				if errors.As(err, &ae) {
					return &exitError{code: 1, err: err}
				}
				return err
			}
			d := time.Since(start)
			fmt.Fprintf(stdout, "ok: %d blocks, %d records, head %d %s, log %d %s (%.1fs)\n",
				rep.Blocks, rep.Records, rep.Head.Height, rep.Head.Hash(), rep.Head.LogSize, rep.Head.LogRoot, d.Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "SQLite store to verify (required)")
	cmd.Flags().StringVar(&genesis, "genesis", "", "genesis file: also verify block 0, certificates and attestations")
	return cmd
}
