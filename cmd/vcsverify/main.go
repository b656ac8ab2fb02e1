// Command vcsverify checks git tags against a vcsledger ledger.
//
//	vcsverify hash   <repo> <tag>
//	vcsverify check  <repo> <tag> [--append]
//	vcsverify append <repo> <tag>
//	vcsverify lookup <key>
//	vcsverify audit  [--from N] [--mirror DIR]
//	vcsverify verify-proof FILE
//
// Exit codes: 0 verified; 1 mismatch or any other SECURITY ERROR; 3 not in
// the ledger; 2 anything else.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes vcsverify with args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "vcsverify: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitOther
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "vcsverify",
		Short: "Check git tags against a replicated ledger of their tree hashes",
		Long: `vcsverify fetches a repository at a tag, hashes the tree the tag points at,
and checks the hash against a vcsledger ledger: the first time a repo@tag is
seen its hash is recorded, and from then on a different hash is a SECURITY
ERROR. Every ledger answer is verified (inclusion proof, checkpoint signed by
a quorum of the pinned validators); no single node is trusted.

Exit codes: 0 verified, 1 SECURITY ERROR, 3 not in the ledger, 2 anything else.

Environment: VCSVERIFY_NODE (ledger URLs, comma-separated), VCSVERIFY_HOME
(pinned genesis and checkpoints), VCSVERIFY_CACHE (fetched objects),
VCSVERIFY_TOKEN (bearer token for appends), VCSVERIFY_HTTP_TOKEN,
VCSVERIFY_HTTP_USER and VCSVERIFY_HTTP_HOSTS (credentials for fetching
private repositories over HTTPS, and the hosts they are sent to; never
printed).`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return checkHTTPEnv()
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().Bool("json", false, "print one JSON object for machines")
	root.PersistentFlags().BoolP("quiet", "q", false, "no progress on stderr")
	root.AddCommand(
		newHashCmd(stdout, stderr),
		newCheckCmd(stdout, stderr),
		newAppendCmd(stdout, stderr),
		newLookupCmd(stdout, stderr),
		newAuditCmd(stdout, stderr),
		newVerifyProofCmd(stdout, stderr),
	)
	return root
}
