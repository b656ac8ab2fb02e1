package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/vcs"
)

// hashOutput is what hash --json prints.
type hashOutput struct {
	Key       string `json:"key"`
	Repo      string `json:"repo"`
	Tag       string `json:"tag"`
	Commit    string `json:"commit"`
	TagObject string `json:"tag_object,omitempty"`
	Tree      string `json:"tree"`
	H1        string `json:"h1,omitempty"`
	GoModH1   string `json:"gomod_h1,omitempty"`
	Module    string `json:"module,omitempty"`
	Version   string `json:"version,omitempty"`
	H1Note    string `json:"h1_note,omitempty"`
}

func newHashCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		module, subdir string
		timeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "hash <repo> <tag>",
		Short: "Fetch a tag and print its tree hash (t1), Go h1 and commit",
		Long: `hash fetches <repo> at <tag> (objects only, depth 1, no checkout) and prints
the canonical key, the commit the tag peels to, the t1 tree hash and, for Go
modules, the h1 hashes go.sum records for <module>@<tag> and its go.mod. It
does not talk to the ledger.

<repo> is a URL (https://, http://, ssh://, git://, file://), an scp-style
git@host:path, or a local path (made absolute: the key is file:///abs/path).

h1 is computed when the tree has a go.mod at the root (or at --subdir), or
when --module names the module, and the tag is a canonical semantic version
("v1.2.3", or "<subdir>/v1.2.3" for a module in a subdirectory). Otherwise
the output says why there is no h1.

Fetched objects are cached in $VCSVERIFY_CACHE (default: the user cache
directory's vcsverify); the remote is still asked which commit the tag names
on every run. HTTPS credentials come from VCSVERIFY_HTTP_TOKEN (and
VCSVERIFY_HTTP_USER, default x-access-token), sent only to the hosts listed in
VCSVERIFY_HTTP_HOSTS; ssh uses the SSH agent and ~/.ssh/known_hosts.

Exit status: 0 hashed, 2 anything else.`,
		Example: `  vcsverify hash https://github.com/spf13/cobra v1.10.2
  vcsverify hash --json ./myrepo v1.0.0
  vcsverify hash git@github.com:org/private.git v2.3.0
  vcsverify hash --subdir client/v3 https://github.com/etcd-io/etcd client/v3/v3.5.0
  vcsverify hash --module example.com/legacy https://example.com/legacy.git v2.0.0`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, quiet := globalBool(cmd, "json"), globalBool(cmd, "quiet")
			key, fetch, err := keyOf(args[0], args[1])
			if err != nil {
				return err
			}
			opts := vcs.Options{Module: module, Subdir: subdir, Timeout: timeout, HTTPAuth: httpAuthFromEnv}
			if cache := os.Getenv("VCSVERIFY_CACHE"); cache != "" {
				opts.CacheDir = cache
			} else if dir, err := vcs.DefaultCacheDir(); err == nil {
				opts.CacheDir = dir
			}
			if !quiet && isTerminal(stderr) {
				opts.Progress = stderr
			}
			res, err := vcs.Hash(cmd.Context(), fetch, args[1], opts)
			if err != nil {
				return &exitError{code: exitOther, err: err}
			}
			out := hashOutput{Key: key.String(), Repo: key.Repo, Tag: key.Tag, Commit: res.Commit, TagObject: res.TagObject,
				Tree: res.Tree, H1: res.H1, GoModH1: res.GoModH1, Module: res.Module, Version: res.Version, H1Note: res.H1Note}
			if asJSON {
				return writeJSON(stdout, out)
			}
			fmt.Fprintf(stdout, "key     %s\ncommit  %s\n", out.Key, out.Commit)
			if out.TagObject != "" {
				fmt.Fprintf(stdout, "tagobj  %s\n", out.TagObject)
			}
			fmt.Fprintf(stdout, "tree    %s\n", out.Tree)
			if out.H1 != "" {
				fmt.Fprintf(stdout, "h1      %s  (%s@%s)\ngo.mod  %s\n", out.H1, out.Module, out.Version, out.GoModH1)
			} else if out.H1Note != "" {
				fmt.Fprintf(stdout, "h1      none: %s\n", out.H1Note)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&module, "module", "", "Go module path to compute h1 for (default: the go.mod's)")
	cmd.Flags().StringVar(&subdir, "subdir", "", "the Go module's directory within the repository")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "give up after this long (0: never)")
	return cmd
}

// Environment variables with HTTPS credentials for fetching.
const (
	envHTTPUser  = "VCSVERIFY_HTTP_USER"
	envHTTPToken = "VCSVERIFY_HTTP_TOKEN"
	envHTTPHosts = "VCSVERIFY_HTTP_HOSTS"
)

// checkHTTPEnv refuses a token that names no host: sent everywhere, it
// would reach whatever server a repository argument names.
func checkHTTPEnv() error {
	if os.Getenv(envHTTPToken) != "" && len(httpHosts()) == 0 {
		return &exitError{code: exitOther, err: errors.New(envHTTPToken + " is set but " + envHTTPHosts +
			" is not: list the hosts the token is for, comma-separated (e.g. github.com)")}
	}
	return nil
}

func httpHosts() []string {
	var hosts []string
	for _, h := range strings.Split(os.Getenv(envHTTPHosts), ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// httpAuthFromEnv supplies HTTPS credentials from VCSVERIFY_HTTP_TOKEN and
// VCSVERIFY_HTTP_USER for the hosts listed in VCSVERIFY_HTTP_HOSTS, and none
// for any other host. vcs asks only for https:// URLs (and http:// on a
// loopback address).
func httpAuthFromEnv(host string) (user, password string, ok bool) {
	token := os.Getenv(envHTTPToken)
	if token == "" {
		return "", "", false
	}
	for _, h := range httpHosts() {
		if strings.EqualFold(h, host) {
			user = os.Getenv(envHTTPUser)
			if user == "" {
				user = "x-access-token"
			}
			return user, token, true
		}
	}
	return "", "", false
}
