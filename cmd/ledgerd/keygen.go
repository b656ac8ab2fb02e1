package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/ledger"
)

func newKeygenCmd(stdout io.Writer) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create a new node key",
		Long: `keygen creates a new ed25519 node key file (mode 0600) and prints its public
key. The public key is the node's identity and, when listed in a genesis, its
validator key. An existing file is never overwritten.`,
		Example: "  ledgerd keygen --out ./node0/node.key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir := filepath.Dir(out); dir != "" {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return err
				}
			}
			priv, err := writeKey(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\npublic key %s\n", out, publicOf(priv))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", keyFile, "key file to create")
	return cmd
}

type initFlags struct {
	chain         string
	engine        string
	validators    []string
	blockInterval time.Duration
	attestQuorum  int
	quorum        int
	bits          uint32
	retarget      uint64
	confirmations uint64
	out           string
	time          int64
}

func (f *initFlags) genesis() (*ledger.Genesis, error) {
	g := &ledger.Genesis{
		Chain:         f.chain,
		Time:          f.time,
		Engine:        f.engine,
		BlockInterval: f.blockInterval.Milliseconds(),
		AttestQuorum:  f.attestQuorum,
	}
	if g.Time == 0 {
		g.Time = time.Now().UnixMilli()
	}
	switch f.engine {
	case ledger.EnginePoA:
		g.Quorum = f.quorum
		for i, v := range f.validators {
			ks, name, ok := strings.Cut(v, "=")
			if !ok {
				name = fmt.Sprintf("validator%d", i)
			}
			k, err := ledger.ParsePublicKey(ks)
			if err != nil {
				return nil, usageErrorf("--validator %q: %v (want <hex public key>[=<name>])", v, err)
			}
			g.Validators = append(g.Validators, ledger.Validator{Key: k, Name: name})
		}
	case ledger.EnginePoW:
		if len(f.validators) > 0 {
			return nil, usageErrorf("--validator is for poa chains; pow chains have open membership")
		}
		g.Bits, g.Retarget, g.Confirmations = f.bits, f.retarget, f.confirmations
	default:
		return nil, usageErrorf("--engine %q: want poa or pow", f.engine)
	}
	if err := g.Validate(); err != nil {
		return nil, usageErrorf("%v", err)
	}
	return g, nil
}

func (f *initFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.chain, "chain", "", "chain id: 1-64 of [A-Za-z0-9._-] (required)")
	fl.StringVar(&f.engine, "engine", ledger.EnginePoA, "consensus engine: poa or pow")
	fl.StringArrayVar(&f.validators, "validator", nil, "poa validator as <hex public key>[=<name>] (repeat for each)")
	fl.DurationVar(&f.blockInterval, "block-interval", time.Second, "poa: least time between blocks; pow: target block interval")
	fl.IntVar(&f.attestQuorum, "attest-quorum", -1, "attestations a record needs; -1 means f+1 (poa) or 1 (pow); 0 means the proposer's word is enough")
	fl.IntVar(&f.quorum, "quorum", 0, "poa: precommits that commit a block; 0 means more than 2/3")
	fl.Uint32Var(&f.bits, "bits", 16, "pow: initial difficulty in leading zero bits")
	fl.Uint64Var(&f.retarget, "retarget", 32, "pow: blocks between difficulty adjustments")
	fl.Uint64Var(&f.confirmations, "confirmations", 6, "pow: depth at which a record is final")
	fl.Int64Var(&f.time, "time", 0, "genesis time in unix milliseconds (default now)")
}

func newInitCmd(stdout io.Writer) *cobra.Command {
	var f initFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a genesis for a new chain",
		Long: `init writes a chain's genesis: its id, consensus engine, parameters and, for
proof of authority, the validators' public keys. Every replica of the chain
uses the same genesis file; its hash identifies the chain, and clients pin it.`,
		Example: `  ledgerd init --chain acme-tags --out genesis.txt \
    --validator 1f3c...e9=alice --validator 88ab...01=bob \
    --validator 0c2d...7f=carol --validator d4e5...12=dave`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := f.genesis()
			if err != nil {
				return err
			}
			if f.out == "" || f.out == "-" {
				_, err := stdout.Write(g.Format())
				return err
			}
			if err := writeFileNew(f.out, g.Format(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\ngenesis hash %s\n", f.out, g.Hash())
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.out, "out", "-", "file to write (never overwritten); - for stdout")
	return cmd
}
