package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

const proofFormat = "vcsledger-proof/1"

// A proofBundle is everything needed to check a record offline: the chain's
// genesis (its validators), the record, its inclusion proof and the
// checkpoint (header and certificate) it is proven against.
type proofBundle struct {
	Format  string              `json:"format"`
	Genesis string              `json:"genesis"` // canonical genesis text
	Record  *api.RecordResponse `json:"record"`
}

func writeProofBundle(path string, g *ledger.Genesis, r *api.RecordResponse) error {
	b, err := json.MarshalIndent(proofBundle{Format: proofFormat, Genesis: string(g.Format()), Record: r}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'))
}

func newVerifyProofCmd(stdout, stderr io.Writer) *cobra.Command {
	var genesisFile string
	cmd := &cobra.Command{
		Use:   "verify-proof FILE",
		Short: "Check an offline proof bundle (no network)",
		Long: `verify-proof checks a bundle written by 'vcsverify lookup --proof-out': the
checkpoint's certificate against the chain's validators, and the record's
inclusion proof against the checkpoint's log root. The validators come from
--genesis, or from the genesis this client pinned for the bundle's chain; a
bundle whose genesis differs from the pinned one is a SECURITY ERROR. With
neither, the bundle's own genesis is used and the output says so.

Exit 0 verified, 1 SECURITY ERROR, 2 anything else.`,
		Example: "  vcsverify lookup --proof-out cobra.proof github.com/spf13/cobra@v1.10.2\n  vcsverify verify-proof cobra.proof",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON := globalBool(cmd, "json")
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var pb proofBundle
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&pb); err != nil || pb.Format != proofFormat || pb.Record == nil {
				return &exitError{code: exitOther, err: fmt.Errorf("%s is not a %s bundle: %v", args[0], proofFormat, err)}
			}
			bg, err := ledger.ParseGenesis([]byte(pb.Genesis))
			if err != nil {
				return &exitError{code: exitOther, err: fmt.Errorf("%s: %w", args[0], err)}
			}
			g, trust := bg, "the bundle's own genesis (nothing pinned: pass --genesis to check against the chain you trust)"
			if genesisFile != "" {
				b, err := os.ReadFile(genesisFile)
				if err != nil {
					return err
				}
				if g, err = ledger.ParseGenesis(b); err != nil {
					return &exitError{code: exitOther, err: fmt.Errorf("--genesis %s: %w", genesisFile, err)}
				}
				trust = "--genesis " + genesisFile
			} else if st, err := openState(); err == nil {
				if pinned, err := st.pinnedGenesis(bg.Chain); err == nil {
					g, trust = pinned, "the pinned genesis of chain "+bg.Chain
				}
			}
			if g.Hash() != bg.Hash() {
				return securityErrorf("the bundle's genesis %s is not %s (%s)", bg.Hash(), g.Hash(), trust)
			}
			e, h, err := api.VerifyRecord(g, pb.Record)
			if err != nil {
				return securityErrorf("%s does not verify: %v", args[0], err)
			}
			if asJSON {
				return writeJSON(stdout, map[string]any{"result": "verified", "key": e.Record.Key.String(), "commit": e.Record.Commit,
					"tree": e.Record.Tree, "index": e.Index, "height": e.Height, "checkpoint_height": h.Height, "trusted": trust})
			}
			fmt.Fprintf(stdout, "verified: %s\n  commit  %s\n  tree    %s\n  ledger  record %d in block %d, proven in the log of %d records signed at block %d\n  trusted %s\n",
				e.Record.Key, e.Record.Commit, e.Record.Tree, e.Index, e.Height, h.LogSize, h.Height, trust)
			return nil
		},
	}
	cmd.Flags().StringVar(&genesisFile, "genesis", "", "genesis file of the chain you trust")
	return cmd
}
