package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/ledger"
)

func newVerifierKeysCmd(stdout io.Writer) *cobra.Command {
	var genesis, home string
	cmd := &cobra.Command{
		Use:   "verifier-keys",
		Short: "Print the validators' checkpoint-note verifier keys",
		Long: `verifier-keys prints, one per line, the note verifier key of each validator of
a proof-of-authority genesis: <chain>/<name>+<key id>+<base64 key>, as
golang.org/x/mod/sumdb/note.NewVerifier reads it. Every validator co-signs
the checkpoint of each block with its validator key; a node serves the newest
one signed by a quorum at GET /checkpoint (docs/FORMAT.md, "Checkpoints").`,
		Example: "  ledgerd verifier-keys --genesis genesis.txt\n  ledgerd verifier-keys --home ./node0",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := genesis
			switch {
			case path == "" && home == "":
				return usageErrorf("--genesis FILE or --home DIR is required")
			case path == "":
				path = filepath.Join(home, genesisFile)
			}
			g, err := readGenesis(path)
			if err != nil {
				return usageErrorf("%v", err)
			}
			if g.Engine != ledger.EnginePoA {
				return usageErrorf("%s: a %s chain has no validators", path, g.Engine)
			}
			for _, v := range g.Validators {
				fmt.Fprintln(stdout, ledger.VerifierKey(g.Chain, v))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&genesis, "genesis", "", "genesis file")
	cmd.Flags().StringVar(&home, "home", "", "home directory (its "+genesisFile+")")
	return cmd
}
