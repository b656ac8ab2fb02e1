package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/node"
)

func newRunCmd(stderr io.Writer) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run --home DIR",
		Short: "Run a replica",
		Long: `run starts a replica from its home directory (see 'ledgerd dev' or
'ledgerd testnet' to create one). Settings come from DIR/config.json, then
LEDGERD_* environment variables, then flags. SIGINT or SIGTERM stops it
cleanly; SIGKILL loses nothing that was acknowledged.`,
		Example: "  ledgerd run --home ./node0\n  LEDGERD_HTTP=127.0.0.1:9090 ledgerd run --home ./node0",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.nodeConfig(cmd, stderr)
			if err != nil {
				return err
			}
			return runNode(cmd.Context(), cfg, nil)
		},
	}
	f.register(cmd)
	return cmd
}

// runNode runs a node until SIGINT/SIGTERM or ctx ends. ready, when not
// nil, is called once the node serves.
func runNode(ctx context.Context, cfg *node.Config, ready func(*node.Node)) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.New(*cfg)
	if err != nil {
		return err
	}
	if err := n.Open(ctx); err != nil {
		return err
	}
	if ready != nil {
		ready(n)
	}
	<-ctx.Done()
	cfg.Logger.Info("stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Close(sctx)
}

func newDevCmd(stdout, stderr io.Writer) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "dev --home DIR [--http ADDR]",
		Short: "Run a single-validator chain to try vcsledger",
		Long: `dev is one command to try vcsledger. On first use it creates DIR with a node
key, a single-validator genesis (chain id "dev") and a config; afterwards it
reuses them. It serves the HTTP API on --http (default ` + node.DefaultHTTPAddr + `) and
listens for peers on a free port unless configured.`,
		Example: "  ledgerd dev --home ./devnode\n  vcsverify check --append --node http://127.0.0.1:8080 https://github.com/spf13/cobra v1.10.2",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.home == "" {
				return usageErrorf("--home is required")
			}
			created, err := ensureDevHome(f.home)
			if err != nil {
				return err
			}
			cfg, err := f.nodeConfig(cmd, stderr)
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(stdout, "created %s (chain %q, genesis %s)\n", f.home, cfg.Genesis.Chain, cfg.Genesis.Hash())
			}
			return runNode(cmd.Context(), cfg, func(n *node.Node) {
				fmt.Fprintf(stdout, "ledgerd dev: serving http://%s  (data in %s; Ctrl-C to stop)\n", n.HTTPAddr(), f.home)
			})
		},
	}
	f.register(cmd)
	return cmd
}

// ensureDevHome creates a dev home (key, genesis, config) unless one exists.
func ensureDevHome(home string) (created bool, err error) {
	gpath := filepath.Join(home, genesisFile)
	if _, err := os.Stat(gpath); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return false, err
	}
	kpath := filepath.Join(home, keyFile)
	priv, err := readKey(kpath)
	if errors.Is(err, os.ErrNotExist) {
		priv, err = writeKey(kpath)
	}
	if err != nil {
		return false, err
	}
	g := &ledger.Genesis{
		Chain:         "dev",
		Time:          time.Now().UnixMilli(),
		Engine:        ledger.EnginePoA,
		BlockInterval: 200,
		AttestQuorum:  -1,
		Validators:    []ledger.Validator{{Key: publicOf(priv), Name: "dev"}},
	}
	if _, err := os.Stat(filepath.Join(home, configFile)); errors.Is(err, os.ErrNotExist) {
		if err := writeFileConfig(filepath.Join(home, configFile), &fileConfig{}); err != nil {
			return false, err
		}
	}
	if err := writeFileNew(gpath, g.Format(), 0o644); err != nil {
		return false, err
	}
	return true, nil
}
