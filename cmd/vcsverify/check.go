package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/vcs"
)

// A report is the outcome of check, append and lookup, printed as text or,
// with --json, as one object.
type report struct {
	Result string        `json:"result"` // verified, appended, mismatch, not_found, pending, found
	Key    string        `json:"key"`
	Repo   string        `json:"repo"`
	Tag    string        `json:"tag"`
	Local  *localHash    `json:"local,omitempty"`
	Ledger *ledgerRecord `json:"ledger,omitempty"`
	Node   string        `json:"node,omitempty"`
	Reason string        `json:"reason,omitempty"`
}

type localHash struct {
	Commit    string `json:"commit"`
	TagObject string `json:"tag_object,omitempty"`
	Tree      string `json:"tree"`
	H1        string `json:"h1,omitempty"`
}

type ledgerRecord struct {
	Commit         string `json:"commit"`
	Tree           string `json:"tree"`
	H1             string `json:"h1,omitempty"`
	Index          int64  `json:"index"`
	Height         uint64 `json:"height"`
	CheckpointSize uint64 `json:"checkpoint_log_size"`
	CheckpointAt   uint64 `json:"checkpoint_height"`
	// Status is the API's: committed, or on a pow chain final once the
	// record is under the chain's confirmations. Confirmations (pow
	// only) is the blocks from the record's to the checkpoint's, both
	// counted; Final those the chain requires.
	Status        string `json:"status"`
	Confirmations uint64 `json:"confirmations,omitempty"`
	Final         uint64 `json:"final_confirmations,omitempty"`
	pow           bool
}

func (lc *ledgerClient) ledgerRecord(r *lookupResult) *ledgerRecord {
	e := r.entry
	lr := &ledgerRecord{Commit: e.Record.Commit, Tree: e.Record.Tree, H1: e.Record.H1, Index: e.Index, Height: e.Height,
		CheckpointSize: r.header.LogSize, CheckpointAt: r.header.Height, Status: api.StatusCommitted}
	if lc.g.Engine == ledger.EnginePoW {
		lr.pow = true
		lr.Confirmations, _ = lc.confirmations(r)
		lr.Final = lc.g.Confirmations
		if lr.Confirmations >= lr.Final {
			lr.Status = api.StatusFinal
		}
	}
	return lr
}

func (r *report) print(w io.Writer, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(r)
		return
	}
	switch r.Result {
	case "mismatch":
		fmt.Fprintf(w, "SECURITY ERROR: %s does not match the ledger\n", r.Key)
		fmt.Fprintf(w, "  ledger:  commit %s\n           tree   %s\n           (record %d, block %d, first seen and agreed by the validators)\n",
			r.Ledger.Commit, r.Ledger.Tree, r.Ledger.Index, r.Ledger.Height)
		fmt.Fprintf(w, "  fetched: commit %s\n           tree   %s\n", r.Local.Commit, r.Local.Tree)
		fmt.Fprintf(w, "The tag now points at different code than the ledger recorded. Do not use it.\n")
		return
	case "not_found":
		fmt.Fprintf(w, "not in the ledger: %s\n", r.Key)
	case "pending":
		fmt.Fprintf(w, "pending: %s (not committed yet)\n", r.Key)
	default:
		fmt.Fprintf(w, "%s: %s\n", r.Result, r.Key)
	}
	if r.Local != nil {
		fmt.Fprintf(w, "  commit  %s\n  tree    %s\n", r.Local.Commit, r.Local.Tree)
		if r.Local.H1 != "" {
			fmt.Fprintf(w, "  h1      %s\n", r.Local.H1)
		}
	} else if r.Ledger != nil {
		fmt.Fprintf(w, "  commit  %s\n  tree    %s\n", r.Ledger.Commit, r.Ledger.Tree)
		if r.Ledger.H1 != "" {
			fmt.Fprintf(w, "  h1      %s\n", r.Ledger.H1)
		}
	}
	switch l := r.Ledger; {
	case l == nil:
	case l.pow:
		fmt.Fprintf(w, "  ledger  record %d in block %d, proven in the log of %d records at block %d\n",
			l.Index, l.Height, l.CheckpointSize, l.CheckpointAt)
		if l.Status == api.StatusFinal {
			fmt.Fprintf(w, "  final   %d confirmations (the chain requires %d)\n", l.Confirmations, l.Final)
		} else {
			fmt.Fprintf(w, "  NOT FINAL YET: %d of %d confirmations (accepted with --confirmations); a branch with more work could still replace this block\n",
				l.Confirmations, l.Final)
		}
	default:
		fmt.Fprintf(w, "  ledger  record %d in block %d, proven in the log of %d records signed at block %d\n",
			l.Index, l.Height, l.CheckpointSize, l.CheckpointAt)
	}
	if r.Reason != "" {
		fmt.Fprintf(w, "  %s\n", r.Reason)
	}
}

func globalBool(cmd *cobra.Command, name string) bool {
	v, _ := cmd.Flags().GetBool(name)
	return v
}

func newCheckCmd(stdout, stderr io.Writer) *cobra.Command {
	var lf ledgerFlags
	var doAppend bool
	var module, subdir string
	cmd := &cobra.Command{
		Use:   "check <repo> <tag>",
		Short: "Fetch a tag, hash it and compare with the ledger",
		Long: `check clones <repo> at <tag> (objects only, no checkout), hashes the tree and
compares the hash with the ledger's record for <repo>@<tag>. The ledger's
answer is verified: the record's inclusion proof against a checkpoint signed
by a quorum of the chain's validators, which the client pinned on first
contact. On a proof-of-work chain check waits until the record is final
(the chain's confirmations deep; at most --timeout, then exit 2) before it
answers either way; --confirmations N accepts a record N blocks deep, which
a branch with more work could still replace (reported as NOT FINAL YET).

Exit codes: 0 verified; 1 SECURITY ERROR (the tag now points at other code,
or the ledger nodes lie or disagree); 3 not in the ledger (see --append);
2 anything else.`,
		Example: `  vcsverify check https://github.com/spf13/cobra v1.10.2
  vcsverify check --append ./myrepo v1.0.0
  VCSVERIFY_NODE=https://ledger.example.org vcsverify check --json github.com/acme/lib v2.3.4`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheck(cmd, stdout, stderr, &lf, args[0], args[1], doAppend, vcs.Options{Module: module, Subdir: subdir})
		},
	}
	lf.register(cmd)
	cmd.Flags().BoolVar(&doAppend, "append", false, "when the ledger has no record yet, ask it to record this one and wait for the commit")
	cmd.Flags().StringVar(&module, "module", "", "Go module path (for h1), when it is not the go.mod's")
	cmd.Flags().StringVar(&subdir, "subdir", "", "the Go module's directory within the repository")
	return cmd
}

func newAppendCmd(stdout, stderr io.Writer) *cobra.Command {
	var lf ledgerFlags
	cmd := &cobra.Command{
		Use:   "append <repo> <tag>",
		Short: "Ask the ledger to record a tag and wait for the commit",
		Long: `append asks the ledger to record <repo>@<tag>. The validators fetch the
repository and compute the hash themselves; append waits until the record is
committed, verifies it, and prints it; on a pow chain it waits until the
record is final (buried under the chain's confirmations), or only
--confirmations blocks deep. A key that is already recorded is printed as it
stands. append does not clone the repository: use
'check --append' to compare with what you fetch.`,
		Example: "  vcsverify append https://github.com/spf13/cobra v1.10.2",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, quiet := globalBool(cmd, "json"), globalBool(cmd, "quiet")
			key, _, err := keyOf(args[0], args[1])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), lf.timeout)
			defer cancel()
			lc, err := lf.connect(ctx, stderr, quiet)
			if err != nil {
				return err
			}
			res, err := lc.appendAndWait(ctx, key, api.Claim{})
			if err != nil {
				return err
			}
			rep := &report{Result: "appended", Key: key.String(), Repo: key.Repo, Tag: key.Tag, Ledger: lc.ledgerRecord(res), Node: res.node}
			rep.print(stdout, asJSON)
			return nil
		},
	}
	lf.register(cmd)
	return cmd
}

// keyOf canonicalises a repository argument and tag into a key, and
// returns what to fetch.
func keyOf(repo, tag string) (ledger.Key, string, error) {
	fetch, err := localRepo(repo)
	if err != nil {
		return ledger.Key{}, "", &exitError{code: exitOther, err: err}
	}
	key, err := ledger.NewKey(fetch, tag)
	if err != nil {
		return ledger.Key{}, "", &exitError{code: exitOther, err: err}
	}
	return key, fetch, nil
}

func runCheck(cmd *cobra.Command, stdout, stderr io.Writer, lf *ledgerFlags, repo, tag string, doAppend bool, opts vcs.Options) error {
	asJSON, quiet := globalBool(cmd, "json"), globalBool(cmd, "quiet")
	key, fetch, err := keyOf(repo, tag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), lf.timeout)
	defer cancel()
	lc, err := lf.connect(ctx, stderr, quiet)
	if err != nil {
		return err
	}
	if cache := os.Getenv("VCSVERIFY_CACHE"); cache != "" {
		opts.CacheDir = cache
	} else if dir, err := vcs.DefaultCacheDir(); err == nil {
		opts.CacheDir = dir
	}
	if !quiet && isTerminal(stderr) {
		opts.Progress = stderr
	}
	opts.HTTPAuth = httpAuthFromEnv
	lc.progress("fetching %s at %s", fetch, tag)
	res, err := vcs.Hash(ctx, fetch, tag, opts)
	if err != nil {
		return &exitError{code: exitOther, err: err}
	}
	local := &localHash{Commit: res.Commit, TagObject: res.TagObject, Tree: res.Tree, H1: res.H1}
	rep := &report{Key: key.String(), Repo: key.Repo, Tag: key.Tag, Local: local}

	found, err := lc.lookup(ctx, key)
	if err != nil {
		return err
	}
	if found.entry == nil {
		if !doAppend {
			rep.Result = "not_found"
			if found.pending != nil {
				rep.Result = "pending"
				rep.Reason = "a record is pending; run again later, or with --append to wait for it"
			} else {
				rep.Reason = "run with --append to record it"
			}
			rep.print(stdout, asJSON)
			return &exitError{code: exitNotFound, err: fmt.Errorf("%s is not in the ledger", key)}
		}
		lc.progress("not in the ledger yet: appending %s", key)
		if found, err = lc.appendAndWait(ctx, key, api.Claim{Commit: res.Commit, Tree: res.Tree}); err != nil {
			return err
		}
		rep.Result = "appended"
	} else {
		// pow: wait until final (or --confirmations deep) before
		// answering either way.
		if found, err = lc.awaitDepth(ctx, "check", key, found); err != nil {
			return err
		}
		rep.Result = "verified"
	}
	rep.Ledger = lc.ledgerRecord(found)
	rep.Node = found.node
	if found.entry.Record.Commit != res.Commit || found.entry.Record.Tree != res.Tree {
		rep.Result = "mismatch"
		rep.print(stdout, asJSON)
		return &exitError{code: exitMismatch, err: fmt.Errorf("SECURITY ERROR: %s: fetched tree %s (commit %s), the ledger has %s (commit %s)",
			key, res.Tree, res.Commit, found.entry.Record.Tree, found.entry.Record.Commit)}
	}
	rep.print(stdout, asJSON)
	return nil
}

// appendAndWait submits key (with the client's claim) to the first node
// that accepts it and waits until every node's verified answer shows it
// committed and, on a pow chain, buried under the chain's confirmations
// (final) or --confirmations blocks (awaitDepth).
func (lc *ledgerClient) appendAndWait(ctx context.Context, key ledger.Key, claim api.Claim) (*lookupResult, error) {
	req := api.SubmitRequest{Key: key.String(), Commit: claim.Commit, Tree: claim.Tree}
	var submitted bool
	var lastErr error
	for _, cn := range lc.conns {
		resp, err := cn.c.Submit(ctx, req, 0)
		if err != nil {
			lastErr = fmt.Errorf("node %s: %w", cn.url, err)
			lc.progress("vcsverify: %v", lastErr)
			continue
		}
		submitted = true
		if resp.Mismatch != nil {
			lc.progress("warning: the validators computed commit %s tree %s; you fetched commit %s tree %s",
				resp.Mismatch.Commit, resp.Mismatch.Tree, claim.Commit, claim.Tree)
		}
		break
	}
	if !submitted {
		return nil, &exitError{code: exitOther, err: fmt.Errorf("append %s: %w", key, lastErr)}
	}
	return lc.awaitDepth(ctx, "append", key, nil)
}

// awaitDepth returns key's verified record once it is as deep as the
// client wants: at once on a poa chain, whose commits are final; on a pow
// chain once it is final, or --confirmations blocks deep. res is the
// answer so far (nil: none yet); until then it looks the key up again every
// 250 ms, printing progress, and fails with exit 2 when ctx ends first
// (--timeout): a record that is not deep enough is never reported as if it
// were. cmd names the command in errors.
func (lc *ledgerClient) awaitDepth(ctx context.Context, cmd string, key ledger.Key, res *lookupResult) (*lookupResult, error) {
	start := time.Now()
	last := ""
	for {
		if res == nil {
			var err error
			if res, err = lc.lookup(ctx, key); err != nil {
				return nil, err
			}
		}
		msg := "waiting for the record to be committed"
		if res.entry != nil {
			have, want := lc.confirmations(res)
			if have >= want {
				return res, nil
			}
			msg = fmt.Sprintf("committed in block %d, %d of %d confirmations", res.entry.Height, have, want)
		}
		if p := res.pending; p != nil && res.entry == nil {
			msg = fmt.Sprintf("pending: %d/%d attestations", p.Attestations, p.Needed)
			if p.LastError != "" {
				msg += "; last fetch error: " + p.LastError
			}
		}
		if msg != last {
			lc.progress("%s (%s)", msg, time.Since(start).Round(time.Second))
			last = msg
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("%s %s: not committed after %s: %w", cmd, key, time.Since(start).Round(time.Second), ctx.Err())
			if res.entry != nil {
				have, want := lc.confirmations(res)
				err = fmt.Errorf("%s %s: not final after %s: committed in block %d with %d of the %d confirmations required (--confirmations %d accepts it as it stands, --timeout waits longer): %w",
					cmd, key, time.Since(start).Round(time.Second), res.entry.Height, have, want, max(have, 1), ctx.Err())
			}
			return nil, &exitError{code: exitOther, err: err}
		case <-time.After(250 * time.Millisecond):
		}
		res = nil
	}
}

func newLookupCmd(stdout, stderr io.Writer) *cobra.Command {
	var lf ledgerFlags
	var proofOut string
	cmd := &cobra.Command{
		Use:   "lookup <key>",
		Short: "Look a key up in the ledger (proof verified, no clone)",
		Long: `lookup prints the ledger's record for <key> (<repo>@<tag>) after verifying its
inclusion proof and the signed checkpoint it is proven against. It does not
fetch the repository. With --proof-out it also writes an offline proof that
'vcsverify verify-proof' checks with no network (proof-of-authority chains
only: nobody co-signs the checkpoints of a proof-of-work chain). On a
proof-of-work chain it waits until the record is final, as check does
(--confirmations N for fewer). Exit 0 found, 3 not in the ledger, 1
SECURITY ERROR, 2 anything else (such as not final within --timeout).`,
		Example: "  vcsverify lookup github.com/spf13/cobra@v1.10.2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, quiet := globalBool(cmd, "json"), globalBool(cmd, "quiet")
			key, err := ledger.ParseKey(args[0])
			if err != nil {
				return &exitError{code: exitOther, err: err}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), lf.timeout)
			defer cancel()
			lc, err := lf.connect(ctx, stderr, quiet)
			if err != nil {
				return err
			}
			if proofOut != "" {
				if err := lc.canProve(); err != nil { // proof.go
					return err
				}
			}
			res, err := lc.lookup(ctx, key)
			if err != nil {
				return err
			}
			rep := &report{Key: key.String(), Repo: key.Repo, Tag: key.Tag}
			if res.entry == nil {
				rep.Result = "not_found"
				if res.pending != nil {
					rep.Result = "pending"
				}
				rep.print(stdout, asJSON)
				return &exitError{code: exitNotFound, err: fmt.Errorf("%s is not in the ledger", key)}
			}
			if res, err = lc.awaitDepth(ctx, "lookup", key, res); err != nil {
				return err
			}
			rep.Result, rep.Ledger, rep.Node = "found", lc.ledgerRecord(res), res.node
			if proofOut != "" {
				p, err := lc.proofBundle(ctx, res) // proof.go
				if err != nil {
					return err
				}
				if err := writeAtomic(proofOut, p.Format()); err != nil {
					return err
				}
				lc.progress("wrote proof bundle %s (check it offline with 'vcsverify verify-proof %s')", proofOut, proofOut)
			}
			rep.print(stdout, asJSON)
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&proofOut, "proof-out", "", "also write an offline proof (C2SP tlog-proof: record, inclusion proof, checkpoint co-signed by a quorum of validators) to this file")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// confirmations returns how many blocks bury res's record on the chain of
// the checkpoint it was proven against, and how many check, lookup and
// append wait for: 1 and 1 on poa chains, whose commits are final.
func (lc *ledgerClient) confirmations(res *lookupResult) (have, want uint64) {
	if lc.g.Engine != ledger.EnginePoW {
		return 1, 1
	}
	want = lc.g.Confirmations
	if lc.confs > 0 {
		want = lc.confs
	}
	if res.header != nil && res.header.Height >= res.entry.Height {
		have = res.header.Height - res.entry.Height + 1
	}
	return have, want
}
