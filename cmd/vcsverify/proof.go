package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// Offline proof bundles are C2SP tlog-proofs (docs/FORMAT.md, "Proof
// bundle"): the record (and the validator-set changes that lead from the
// genesis to the checkpoint's set) as the extra data, its index and
// inclusion proof, and a checkpoint note signed by a quorum of the
// validators.

// noteWait is how long lookup --proof-out waits for a co-signed checkpoint
// that covers the record (validators sign a block's checkpoint right after
// they store it).
const noteWait = 30 * time.Second

// proofBundle builds the tlog-proof of a verified lookup result: it fetches
// the newest co-signed checkpoint from the node that answered, checks it
// (quorum, and consistent with the checkpoint the record was proven
// against) and proves the record in its log.
func (lc *ledgerClient) proofBundle(ctx context.Context, res *lookupResult) (*ledger.Proof, error) {
	if err := lc.canProve(); err != nil {
		return nil, err
	}
	var cn conn
	for _, c := range lc.conns {
		if c.url == res.node {
			cn = c
		}
	}
	deadline := time.Now().Add(noteWait)
	var msg []byte
	var nc *ledger.Checkpoint
	for {
		var err error
		msg, err = cn.c.CosignedCheckpoint(ctx)
		switch {
		case err == nil:
			var vn *verifiedNote
			if vn, err = lc.verifyNote(ctx, cn, msg); err != nil {
				return nil, err
			}
			nc = vn.c
		case !errors.Is(err, api.ErrNotFound):
			return nil, fmt.Errorf("node %s: co-signed checkpoint: %w", cn.url, err)
		}
		if nc != nil && nc.LogSize > uint64(res.entry.Index) {
			break
		}
		if time.Now().After(deadline) {
			return nil, &exitError{code: exitOther, err: fmt.Errorf("node %s has no checkpoint co-signed by a quorum of validators that covers record %d yet (try again later)", cn.url, res.entry.Index)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := lc.checkNote(ctx, cn, msg, nc, res.header, res.resp.Checkpoint); err != nil {
		return nil, err
	}
	ip, err := cn.c.Inclusion(ctx, res.entry.Index, nc.LogSize)
	if err != nil {
		return nil, fmt.Errorf("node %s: inclusion proof: %w", cn.url, err)
	}
	extra := ledger.ProofExtra{Record: res.entry.Record}
	// The validator-set changes in force at the note's height, proven in
	// its log, so that verify-proof derives that height's set from the
	// genesis alone.
	a, err := lc.authority(ctx, cn, nc.Height)
	if err != nil {
		return nil, err
	}
	if a != nil {
		for _, e := range a.Entries() {
			if e.Change.Effective > nc.Height {
				break
			}
			cp, err := cn.c.Inclusion(ctx, e.Index, nc.LogSize)
			if err != nil {
				return nil, fmt.Errorf("node %s: inclusion proof of %s: %w", cn.url, &e.Change, err)
			}
			extra.Changes = append(extra.Changes, ledger.ProvenChange{AuthorityEntry: e, Hashes: cp.Proof})
		}
	}
	p := &ledger.Proof{Extra: extra.Format(), Index: res.entry.Index, Hashes: ip.Proof, Checkpoint: msg}
	if _, _, err := p.Verify(lc.g); err != nil {
		return nil, securityErrorf("node %s's proof of %s in its co-signed checkpoint at height %d fails verification: %v", cn.url, res.entry.Record.Key, nc.Height, err)
	}
	return p, nil
}

// canProve refuses offline proofs of a pow chain.
func (lc *ledgerClient) canProve() error {
	if lc.g.Engine != ledger.EnginePoA {
		return &exitError{code: exitOther, err: fmt.Errorf("chain %s runs proof of work: no validators co-sign its checkpoints, so there is no offline proof of its records (a pow checkpoint is only as good as the work above it, which only the live network shows); verify with 'vcsverify lookup' against the nodes, or keep a mirror with 'vcsverify audit --mirror'", lc.g.Chain)}
	}
	return nil
}

// A verifiedNote is a co-signed checkpoint note that verified.
type verifiedNote struct {
	msg     []byte
	c       *ledger.Checkpoint
	signers int
}

// verifyNote verifies a checkpoint note from node cn: a quorum of the
// validator set in force at its height (as the node proves the chain's
// validator-set changes) signed it.
func (lc *ledgerClient) verifyNote(ctx context.Context, cn conn, msg []byte) (*verifiedNote, error) {
	bad := func(err error) error {
		return securityErrorf("node %s serves a checkpoint note that fails verification: %v\n%s", cn.url, err, indent(msg))
	}
	if len(msg) > ledger.MaxNoteBytes {
		return nil, bad(fmt.Errorf("%d bytes", len(msg)))
	}
	text := msg
	if i := bytes.LastIndex(msg, []byte("\n\n")); i >= 0 {
		text = msg[:i+1]
	}
	claimed, err := ledger.ParseCheckpointText(text)
	if err != nil {
		return nil, bad(err)
	}
	vals, err := lc.g.ValidatorSet()
	if err != nil {
		return nil, err
	}
	a, err := lc.authority(ctx, cn, claimed.Height)
	if err != nil {
		return nil, err
	}
	if a != nil {
		if vals, err = a.At(claimed.Height); err != nil {
			vals = a.Projected()
		}
	}
	c, signers, err := ledger.OpenCheckpoint(msg, lc.g.Chain, vals)
	if err != nil {
		return nil, bad(err)
	}
	return &verifiedNote{msg: msg, c: c, signers: len(signers)}, nil
}

// checkNote checks that a verified checkpoint note nc and a verified
// checkpoint h (with its JSON form cp) from node cn describe one log: the
// same block at one height, or a consistency proof between their logs.
func (lc *ledgerClient) checkNote(ctx context.Context, cn conn, msg []byte, nc *ledger.Checkpoint, h *ledger.Header, cp api.Checkpoint) error {
	conflict := func(format string, args ...any) error {
		ev := lc.evidence("checkpoint",
			evidencePart{"co-signed checkpoint note from " + cn.url, msg},
			evidencePart{"checkpoint (header and certificate) from " + cn.url, []byte(cp.Header + cp.Certificate)})
		return securityErrorf(format+"\n%s", append(args, ev)...)
	}
	mine := ledger.CheckpointOf(h)
	switch {
	case nc.Height == h.Height:
		if *nc != mine {
			return conflict("fork: node %s's co-signed checkpoint at height %d is block %s (log %d %s), its certificate signs block %s (log %d %s)",
				cn.url, nc.Height, nc.Block, nc.LogSize, nc.LogRoot, mine.Block, mine.LogSize, mine.LogRoot)
		}
		return nil
	case nc.Height < h.Height && nc.LogSize > h.LogSize, nc.Height > h.Height && nc.LogSize < h.LogSize:
		return conflict("node %s's co-signed checkpoint (height %d, log %d) and its checkpoint (height %d, log %d) cannot both be true",
			cn.url, nc.Height, nc.LogSize, h.Height, h.LogSize)
	}
	older, newer := *nc, mine
	if nc.Height > h.Height {
		older, newer = mine, *nc
	}
	p, err := cn.c.Consistency(ctx, older.LogSize, newer.LogSize)
	if err != nil {
		return fmt.Errorf("node %s: consistency proof %d..%d: %w", cn.url, older.LogSize, newer.LogSize, err)
	}
	if err := ledger.CheckTree(p.Proof, int64(newer.LogSize), newer.LogRoot, int64(older.LogSize), older.LogRoot); err != nil {
		return conflict("fork: node %s's co-signed checkpoint at height %d and its checkpoint at height %d are not of one log: %v", cn.url, nc.Height, h.Height, err)
	}
	return nil
}

// A proofBundle is the JSON bundle earlier clients wrote (format
// vcsledger-proof/1); verify-proof still reads it.
type proofBundle struct {
	Format  string              `json:"format"`
	Genesis string              `json:"genesis"` // canonical genesis text
	Record  *api.RecordResponse `json:"record"`
}

const proofFormat = "vcsledger-proof/1"

func newVerifyProofCmd(stdout, stderr io.Writer) *cobra.Command {
	var genesisFile string
	cmd := &cobra.Command{
		Use:   "verify-proof FILE",
		Short: "Check an offline proof bundle (no network)",
		Long: `verify-proof checks a proof written by 'vcsverify lookup --proof-out', a C2SP
tlog-proof (c2sp.org/tlog-proof): the checkpoint note must be signed by a
quorum of the chain's validators of the checkpoint's height, and the
inclusion proof must show the record (the proof's extra data) at its index
in that checkpoint's log. The validators are those of --genesis, or of the
genesis this client pinned for the chain the note names (with neither,
nothing can be trusted and the command fails), changed by the validator-set
changes the proof carries: each must be voted by a quorum of the set before
it and be proven in the same checkpoint's log. The JSON bundles of earlier
versions are still read. Proof-of-work chains have no offline proofs.

Exit 0 verified, 1 SECURITY ERROR (it does not verify), 2 anything else.`,
		Example: "  vcsverify lookup --proof-out cobra.tlog-proof github.com/spf13/cobra@v1.10.2\n  vcsverify verify-proof cobra.tlog-proof",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON := globalBool(cmd, "json")
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if bytes.HasPrefix(data, []byte("{")) {
				return verifyJSONBundle(stdout, args[0], data, genesisFile, asJSON)
			}
			p, err := ledger.ParseProof(data)
			if err != nil {
				return &exitError{code: exitOther, err: fmt.Errorf("%s is not a tlog-proof: %w", args[0], err)}
			}
			chain := ledger.NoteOrigin(p.Checkpoint)
			g, trust, err := trustedGenesis(genesisFile, chain)
			if err != nil {
				return err
			}
			if g.Chain != chain {
				return securityErrorf("%s is a proof for chain %q, %s is chain %q", args[0], chain, trust, g.Chain)
			}
			if g.Engine != ledger.EnginePoA {
				return &exitError{code: exitOther, err: fmt.Errorf("%s: chain %s runs proof of work, whose checkpoints no validators sign: it has no offline proofs", trust, g.Chain)}
			}
			r, c, err := p.Verify(g)
			if err != nil {
				return securityErrorf("%s does not verify against %s: %v", args[0], trust, err)
			}
			if e, err := ledger.ParseProofExtra(p.Extra); err == nil && len(e.Changes) > 0 {
				trust += fmt.Sprintf(" and %s proven in the checkpoint's log", changesText(len(e.Changes)))
			}
			if asJSON {
				return writeJSON(stdout, map[string]any{"result": "verified", "key": r.Key.String(), "commit": r.Commit,
					"tree": r.Tree, "h1": r.H1, "index": p.Index, "checkpoint_height": c.Height, "checkpoint_hash": c.Block,
					"log_size": c.LogSize, "trusted": trust})
			}
			fmt.Fprintf(stdout, "verified: %s\n  commit  %s\n  tree    %s\n  ledger  record %d, proven in the log of %d records co-signed at block %d\n  trusted %s\n",
				r.Key, r.Commit, r.Tree, p.Index, c.LogSize, c.Height, trust)
			return nil
		},
	}
	cmd.Flags().StringVar(&genesisFile, "genesis", "", "genesis file of the chain you trust")
	return cmd
}

// trustedGenesis returns the genesis to verify a proof of chain against:
// --genesis, or the one pinned for chain.
func trustedGenesis(genesisFile, chain string) (*ledger.Genesis, string, error) {
	if genesisFile != "" {
		b, err := os.ReadFile(genesisFile)
		if err != nil {
			return nil, "", err
		}
		g, err := ledger.ParseGenesis(b)
		if err != nil {
			return nil, "", &exitError{code: exitOther, err: fmt.Errorf("--genesis %s: %w", genesisFile, err)}
		}
		return g, "--genesis " + genesisFile, nil
	}
	st, err := openState()
	if err != nil {
		return nil, "", err
	}
	if ledger.CheckChainID(chain) != nil {
		return nil, "", securityErrorf("the proof's checkpoint names no valid chain (%.64q)", chain)
	}
	g, err := st.pinnedGenesis(chain)
	if err != nil {
		return nil, "", &exitError{code: exitOther, err: fmt.Errorf("no genesis pinned for chain %q (%v): pass --genesis FILE with the chain's genesis, or use this chain once with --node", chain, err)}
	}
	return g, "the pinned genesis of chain " + chain, nil
}

// verifyJSONBundle checks a JSON bundle of earlier versions.
func verifyJSONBundle(stdout io.Writer, path string, data []byte, genesisFile string, asJSON bool) error {
	var pb proofBundle
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pb); err != nil || pb.Format != proofFormat || pb.Record == nil {
		return &exitError{code: exitOther, err: fmt.Errorf("%s is not a %s bundle: %v", path, proofFormat, err)}
	}
	bg, err := ledger.ParseGenesis([]byte(pb.Genesis))
	if err != nil {
		return &exitError{code: exitOther, err: fmt.Errorf("%s: %w", path, err)}
	}
	g, trust := bg, "the bundle's own genesis (nothing pinned: pass --genesis to check against the chain you trust)"
	switch pg, t, err := trustedGenesis(genesisFile, bg.Chain); {
	case err == nil:
		g, trust = pg, t
	case genesisFile != "":
		return err
	}
	if g.Hash() != bg.Hash() {
		return securityErrorf("the bundle's genesis %s is not %s (%s)", bg.Hash(), g.Hash(), trust)
	}
	e, h, err := api.VerifyRecord(g, pb.Record)
	if err != nil {
		return securityErrorf("%s does not verify: %v", path, err)
	}
	if asJSON {
		return writeJSON(stdout, map[string]any{"result": "verified", "key": e.Record.Key.String(), "commit": e.Record.Commit,
			"tree": e.Record.Tree, "index": e.Index, "height": e.Height, "checkpoint_height": h.Height, "trusted": trust})
	}
	fmt.Fprintf(stdout, "verified: %s\n  commit  %s\n  tree    %s\n  ledger  record %d in block %d, proven in the log of %d records signed at block %d\n  trusted %s\n",
		e.Record.Key, e.Record.Commit, e.Record.Tree, e.Index, e.Height, h.LogSize, h.Height, trust)
	return nil
}

// changesText says "1 validator-set change" or "n validator-set changes".
func changesText(n int) string {
	if n == 1 {
		return "1 validator-set change"
	}
	return fmt.Sprintf("%d validator-set changes", n)
}
