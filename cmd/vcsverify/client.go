package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// Exit codes (DESIGN §7).
const (
	exitOK       = 0
	exitMismatch = 1
	exitOther    = 2
	exitNotFound = 3
)

// securityErrorf is a SECURITY ERROR: a mismatch, a fork, a rollback or a
// changed genesis. It exits 1.
func securityErrorf(format string, args ...any) error {
	return &exitError{code: exitMismatch, err: fmt.Errorf("SECURITY ERROR: "+format, args...)}
}

// ledgerFlags are the flags of every command that talks to the ledger.
type ledgerFlags struct {
	nodes   []string
	genesis string
	token   string
	timeout time.Duration
	confs   uint64 // pow: confirmations check, lookup and append wait for; 0: the chain's (final)
}

const defaultNode = "http://127.0.0.1:8080"

func (f *ledgerFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.nodes, "node", nil, "ledger node URL; repeat to ask several, which must all agree (env VCSVERIFY_NODE, comma-separated; default "+defaultNode+")")
	fl.StringVar(&f.genesis, "genesis", "", "pin the chain to this genesis file instead of trusting the first node on first contact")
	fl.StringVar(&f.token, "token", "", "bearer token for appends (env VCSVERIFY_TOKEN)")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Minute, "how long to wait for the ledger (and for an append to commit)")
	fl.Uint64Var(&f.confs, "confirmations", 0, "pow chains: wait (up to --timeout) until the record is this many blocks deep before answering (1 = committed); default the chain's confirmations, when it is final")
}

func (f *ledgerFlags) nodeURLs() []string {
	urls := f.nodes
	if len(urls) == 0 {
		for _, u := range strings.Split(os.Getenv("VCSVERIFY_NODE"), ",") {
			if u = strings.TrimSpace(u); u != "" {
				urls = append(urls, u)
			}
		}
	}
	if len(urls) == 0 {
		urls = []string{defaultNode}
	}
	for i, u := range urls {
		urls[i] = strings.TrimRight(u, "/")
	}
	return urls
}

// A conn is one node, with the chain it serves verified against the pin.
type conn struct {
	url string
	c   *api.Client
}

// A ledgerClient talks to one or more nodes of one chain and verifies every
// answer against the pinned genesis and the newest checkpoint it verified.
type ledgerClient struct {
	g      *ledger.Genesis
	conns  []conn
	st     *state
	stderr io.Writer
	quiet  bool
	auths  map[string]*ledger.Authorities // per node URL (authority.go)
	confs  uint64                         // --confirmations
}

func (f *ledgerFlags) connect(ctx context.Context, stderr io.Writer, quiet bool) (*ledgerClient, error) {
	st, err := openState()
	if err != nil {
		return nil, err
	}
	var pinned *ledger.Genesis
	if f.genesis != "" {
		b, err := os.ReadFile(f.genesis)
		if err != nil {
			return nil, err
		}
		if pinned, err = ledger.ParseGenesis(b); err != nil {
			return nil, fmt.Errorf("--genesis %s: %w", f.genesis, err)
		}
	}
	token := f.token
	if token == "" {
		token = os.Getenv("VCSVERIFY_TOKEN")
	}
	lc := &ledgerClient{st: st, stderr: stderr, quiet: quiet, confs: f.confs}
	hc := &http.Client{Timeout: f.timeout + 30*time.Second}
	for _, u := range f.nodeURLs() {
		c, err := api.NewClient(u, hc)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", u, err)
		}
		if token != "" {
			c = c.WithToken(token)
		}
		gi, err := c.Genesis(ctx)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", u, err)
		}
		g, err := gi.Parse()
		if err != nil {
			return nil, fmt.Errorf("node %s serves an invalid genesis: %w", u, err)
		}
		if pinned != nil && g.Hash() != pinned.Hash() {
			return nil, securityErrorf("node %s serves genesis %s, but --genesis %s is %s", u, g.Hash(), f.genesis, pinned.Hash())
		}
		if lc.g != nil && g.Hash() != lc.g.Hash() {
			return nil, securityErrorf("nodes disagree on the chain: %s serves genesis %s, %s serves %s", lc.conns[0].url, lc.g.Hash(), u, g.Hash())
		}
		if err := st.pinGenesis(g, u); err != nil {
			return nil, err
		}
		lc.g = g
		lc.conns = append(lc.conns, conn{url: u, c: c})
	}
	return lc, nil
}

func (lc *ledgerClient) progress(format string, args ...any) {
	if !lc.quiet {
		fmt.Fprintf(lc.stderr, format+"\n", args...)
	}
}

// checkCheckpoint compares a verified checkpoint from node url with the
// newest one cached for the chain, advancing the cache when the node's is
// newer and provably extends it. It returns behind = true when the node's
// checkpoint is older than the cached one: its "not found" answers cannot
// be trusted.
func (lc *ledgerClient) checkCheckpoint(ctx context.Context, cn conn, cp *api.Checkpoint, h *ledger.Header) (behind bool, err error) {
	if lc.g.Engine == ledger.EnginePoW {
		// pow.go: only final checkpoints are remembered and compared.
		if cp, h, err = lc.finalCheckpoint(ctx, cn, h); cp == nil || err != nil {
			return false, err
		}
	}
	saved := savedCheckpoint{Header: cp.Header, Certificate: cp.Certificate, Node: cn.url}
	err = lc.st.advanceCheckpoint(lc.g.Chain, h, saved, func(cached *ledger.Header) error {
		// evidence returns the two signed checkpoints (evidence.go).
		evidence := func(kind string, more ...evidencePart) string {
			old, _, err := lc.st.checkpoint(lc.g.Chain)
			if err != nil {
				old = &savedCheckpoint{Header: string(cached.Format())}
			}
			parts := append([]evidencePart{
				{"checkpoint from " + cn.url, []byte(cp.Header + cp.Certificate)},
				{"checkpoint this client verified before (from " + old.Node + ")", []byte(old.Header + old.Certificate)},
			}, more...)
			return lc.evidence(kind, parts...)
		}
		switch {
		case cached.Height == h.Height && cached.Hash() != h.Hash():
			return securityErrorf("fork: node %s serves block %d %s, but this client verified block %d %s before\n%s",
				cn.url, h.Height, h.Hash(), cached.Height, cached.Hash(), evidence("fork"))
		case cached.Height > h.Height:
			behind = true
			return nil
		case cached.Height < h.Height:
			p, err := cn.c.Consistency(ctx, cached.LogSize, h.LogSize)
			if err != nil {
				return fmt.Errorf("node %s: consistency proof %d..%d: %w", cn.url, cached.LogSize, h.LogSize, err)
			}
			if err := api.VerifyConsistency(cached, h, p); err != nil {
				var proof []byte
				for _, x := range p.Proof {
					proof = append(proof, x.String()+"\n"...)
				}
				return securityErrorf("node %s's log at block %d does not extend the log this client verified at block %d (a rewritten history): %v\n%s",
					cn.url, h.Height, cached.Height, err,
					evidence("rewritten-history", evidencePart{fmt.Sprintf("consistency proof from log %d to %d, from %s", p.From, p.To, cn.url), proof}))
			}
		}
		return nil
	})
	return behind, err
}

// lookupResult is what the nodes said about a key.
type lookupResult struct {
	entry   *ledger.Entry
	resp    *api.RecordResponse // the verified answer: record, proof, checkpoint
	header  *ledger.Header      // checkpoint the entry is proven against
	node    string
	pending *api.PendingInfo
}

// lookup asks every node for key and verifies every answer. All nodes that
// know the key must report the same record; a key is reported not found
// only by a node that is not behind the client's newest checkpoint.
func (lc *ledgerClient) lookup(ctx context.Context, key ledger.Key) (*lookupResult, error) {
	var found *lookupResult
	var pending *api.PendingInfo
	trustedMiss := false
	var lastErr error
	for _, cn := range lc.conns {
		resp, pend, err := cn.c.Record(ctx, key)
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			lastErr = fmt.Errorf("node %s: %w", cn.url, err)
			lc.progress("vcsverify: %v", lastErr)
			continue
		}
		if resp != nil {
			e, h, err := lc.verifyRecord(ctx, cn, resp)
			var se *exitError
			if errors.As(err, &se) {
				return nil, err
			}
			if err != nil {
				return nil, securityErrorf("node %s answered %s with a record that fails verification: %v", cn.url, key, err)
			}
			if _, err := lc.checkCheckpoint(ctx, cn, &resp.Checkpoint, h); err != nil {
				return nil, err
			}
			if found != nil && (found.entry.Record != e.Record || found.entry.Index != e.Index) {
				return nil, securityErrorf("nodes disagree on %s: %s says commit %s tree %s (index %d), %s says commit %s tree %s (index %d)",
					key, found.node, found.entry.Record.Commit, found.entry.Record.Tree, found.entry.Index,
					cn.url, e.Record.Commit, e.Record.Tree, e.Index)
			}
			found = &lookupResult{entry: e, resp: resp, header: h, node: cn.url}
			continue
		}
		// Not committed on this node: trust that only if the node is not
		// behind what this client has already verified.
		cp, err := cn.c.Checkpoint(ctx)
		if err != nil {
			lastErr = fmt.Errorf("node %s: %w", cn.url, err)
			continue
		}
		h, err := lc.verifyCheckpoint(ctx, cn, cp)
		var se *exitError
		if errors.As(err, &se) {
			return nil, err
		}
		if err != nil {
			return nil, securityErrorf("node %s serves a checkpoint that fails verification: %v", cn.url, err)
		}
		behind, err := lc.checkCheckpoint(ctx, cn, cp, h)
		if err != nil {
			return nil, err
		}
		if behind {
			lastErr = fmt.Errorf("node %s is behind (its checkpoint is older than one this client verified, or it was rolled back): its answer is not trusted", cn.url)
			lc.progress("vcsverify: %v", lastErr)
			continue
		}
		trustedMiss = true
		if pend != nil {
			pending = pend
		}
	}
	switch {
	case found != nil && trustedMiss:
		// Some node does not have it yet: it is still catching up; the
		// verified record stands.
		return found, nil
	case found != nil:
		return found, nil
	case trustedMiss:
		return &lookupResult{pending: pending}, nil
	case lastErr != nil:
		return nil, lastErr
	}
	return nil, errors.New("no node answered")
}

// localRepo turns a repository argument into what vcs fetches and what the
// key is made of: local paths become absolute file:// URLs.
func localRepo(arg string) (fetch string, err error) {
	if strings.Contains(arg, "://") || isSCP(arg) {
		return arg, nil
	}
	if _, err := os.Stat(arg); err == nil || strings.HasPrefix(arg, ".") || strings.HasPrefix(arg, "/") {
		abs, err := filepath.Abs(arg)
		if err != nil {
			return "", err
		}
		return "file://" + abs, nil
	}
	// host/path without a scheme: fetch over https.
	return "https://" + arg, nil
}

func isSCP(s string) bool {
	colon := strings.IndexByte(s, ':')
	slash := strings.IndexByte(s, '/')
	return colon > 0 && (slash < 0 || colon < slash) && strings.Contains(s[:colon], "@")
}
