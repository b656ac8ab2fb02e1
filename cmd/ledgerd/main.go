// Command ledgerd runs a vcsledger replica.
//
//	ledgerd keygen                 new node key
//	ledgerd init                   write a genesis for a chain
//	ledgerd run --home DIR         run a replica
//	ledgerd dev --home DIR         try it: one command, a single-validator chain
//	ledgerd testnet --nodes N --dir DIR   homes for a local network
//	ledgerd authority propose|vote|list   change the validator set
//	ledgerd audit --db FILE        verify a store offline
//	ledgerd verifier-keys --genesis FILE   the validators' checkpoint-note verifier keys
//
// Exit codes: 0 success, 1 audit found a bad block, 2 anything else.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

var version = "dev"

// An exitError carries the process exit code for an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "ledgerd: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 2
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ledgerd",
		Short: "Run a vcsledger replica",
		Long: `ledgerd runs one replica of a vcsledger chain: an append-only, hash-chained
ledger of git tag tree hashes, replicated peer to peer and agreed by proof of
authority (or proof of work). Clients (vcsverify) verify every answer.

Start here:  ledgerd dev --home ./devnode`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newKeygenCmd(stdout),
		newInitCmd(stdout),
		newRunCmd(stderr),
		newDevCmd(stdout, stderr),
		newTestnetCmd(stdout),
		newAuditCmd(stdout, stderr),
		newAuthorityCmd(stdout),
		newVerifierKeysCmd(stdout),
	)
	return root
}
