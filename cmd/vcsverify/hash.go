package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/vcs"
)

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
	H1Note    string `json:"h1_note,omitempty"`
}

func newHashCmd(stdout, stderr io.Writer) *cobra.Command {
	var module, subdir string
	cmd := &cobra.Command{
		Use:   "hash <repo> <tag>",
		Short: "Fetch a tag and print its tree hash (t1), Go h1 and commit",
		Long: `hash fetches <repo> at <tag> (objects only, depth 1, no checkout) and prints
the canonical key, the commit the tag peels to, the t1 tree hash and, for Go
modules, the h1 hashes go.sum records. It does not talk to the ledger.

<repo> is a URL (https://, http://, ssh://, git://, file://), an scp-style
git@host:path, or a local path.`,
		Example: `  vcsverify hash https://github.com/spf13/cobra v1.10.2
  vcsverify hash --json ./myrepo v1.0.0
  vcsverify hash --module example.com/mono/sub --subdir sub https://example.com/mono sub/v1.2.0`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, quiet := globalBool(cmd, "json"), globalBool(cmd, "quiet")
			key, fetch, err := keyOf(args[0], args[1])
			if err != nil {
				return err
			}
			opts := vcs.Options{Module: module, Subdir: subdir, HTTPAuth: httpAuthFromEnv}
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
				Tree: res.Tree, H1: res.H1, GoModH1: res.GoModH1, Module: res.Module, H1Note: res.H1Note}
			if asJSON {
				return writeJSON(stdout, out)
			}
			fmt.Fprintf(stdout, "key     %s\ncommit  %s\n", out.Key, out.Commit)
			if out.TagObject != "" {
				fmt.Fprintf(stdout, "tagobj  %s\n", out.TagObject)
			}
			fmt.Fprintf(stdout, "tree    %s\n", out.Tree)
			if out.H1 != "" {
				fmt.Fprintf(stdout, "h1      %s  (%s)\ngo.mod  %s\n", out.H1, out.Module, out.GoModH1)
			} else if out.H1Note != "" {
				fmt.Fprintf(stdout, "h1      none: %s\n", out.H1Note)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&module, "module", "", "Go module path to compute h1 for (default: the go.mod's)")
	cmd.Flags().StringVar(&subdir, "subdir", "", "the Go module's directory within the repository")
	return cmd
}

// httpAuthFromEnv supplies HTTPS credentials from VCSVERIFY_HTTP_USER and
// VCSVERIFY_HTTP_TOKEN (optionally limited to VCSVERIFY_HTTP_HOST).
func httpAuthFromEnv(host string) (user, password string, ok bool) {
	token := os.Getenv("VCSVERIFY_HTTP_TOKEN")
	if token == "" {
		return "", "", false
	}
	if h := os.Getenv("VCSVERIFY_HTTP_HOST"); h != "" && !strings.EqualFold(h, host) {
		return "", "", false
	}
	user = os.Getenv("VCSVERIFY_HTTP_USER")
	if user == "" {
		user = "x-access-token"
	}
	return user, token, true
}
