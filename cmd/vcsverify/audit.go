package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

func newAuditCmd(stdout, stderr io.Writer) *cobra.Command {
	var lf ledgerFlags
	var from uint64
	var mirror string
	cmd := &cobra.Command{
		Use:   "audit [--from N] [--mirror DIR]",
		Short: "Download the chain and verify every link, signature and root",
		Long: `audit downloads the chain from a node and verifies it as a replica would:
every header's link to its parent, every certificate (a quorum of the pinned
validators), every record's attestations, and every log root recomputed from
the records. Blocks below --from are checked for links and roots but not
signatures.

With --mirror DIR the verified chain is kept in DIR/mirror.db; later runs
fetch only what is new, after checking that the node's chain still contains
the mirror's newest block. A node that rewrote history is a SECURITY ERROR.

The node's co-signed checkpoint (GET /checkpoint) must be signed by a
quorum of the validators and name the block the audited chain has at its
height. audit also shows the evidence of misbehaviour every node holds
(GET /v1/evidence), with a WARNING; evidence alone does not fail the audit.`,
		Example: "  vcsverify audit\n  vcsverify audit --mirror ~/.cache/vcsledger-mirror",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, quiet := globalBool(cmd, "json"), globalBool(cmd, "quiet")
			ctx := cmd.Context()
			lc, err := lf.connect(ctx, stderr, quiet)
			if err != nil {
				return err
			}
			dir := mirror
			if dir == "" {
				tmp, err := os.MkdirTemp("", "vcsverify-audit-*")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			} else if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			rep, err := lc.audit(ctx, lc.conns[0], filepath.Join(dir, "mirror.db"), from)
			if err != nil {
				return err
			}
			rep.Evidence = lc.nodesEvidence(ctx) // evidence.go
			if asJSON {
				return writeJSON(stdout, rep)
			}
			fmt.Fprintf(stdout, "audit ok: %s blocks 0..%d verified (%d new), %d records, head %s, log root %s\n",
				lc.g.Chain, rep.Height, rep.NewBlocks, rep.LogSize, rep.Hash, rep.LogRoot)
			if rep.CosignedHeight != nil {
				fmt.Fprintf(stdout, "co-signed checkpoint: block %d, signed by %d validators\n", *rep.CosignedHeight, rep.CosignedBy)
			}
			printNodesEvidence(stdout, rep.Evidence)
			if mirror != "" {
				fmt.Fprintf(stdout, "mirror: %s\n", filepath.Join(mirror, "mirror.db"))
			}
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().Uint64Var(&from, "from", 0, "verify signatures and attestations from this height on")
	cmd.Flags().StringVar(&mirror, "mirror", "", "keep the verified chain in this directory and fetch only what is new")
	return cmd
}

type auditReport struct {
	Chain     string      `json:"chain"`
	Height    uint64      `json:"height"`
	Hash      ledger.Hash `json:"hash"`
	LogSize   uint64      `json:"log_size"`
	LogRoot   ledger.Hash `json:"log_root"`
	NewBlocks uint64      `json:"new_blocks"`
	Node      string      `json:"node"`
	// CosignedHeight is the height of the node's co-signed checkpoint
	// (GET /checkpoint), checked against the audited chain; nil when the
	// node serves none.
	CosignedHeight *uint64        `json:"cosigned_height,omitempty"`
	CosignedBy     int            `json:"cosigned_by,omitempty"` // validators that signed it
	Evidence       []nodeEvidence `json:"evidence,omitempty"`    // what the nodes hold
}

func (lc *ledgerClient) audit(ctx context.Context, cn conn, path string, from uint64) (*auditReport, error) {
	s, err := sqlitestore.Open(ctx, path)
	if err != nil {
		return nil, &exitError{code: exitOther, err: fmt.Errorf("mirror: %w", err)}
	}
	defer s.Close()
	if err := ledger.InitStore(ctx, s, lc.g); err != nil {
		return nil, securityErrorf("mirror %s is not of chain %s: %v", path, lc.g.Chain, err)
	}
	// The seal follows the validator set from the mirror's head on (the
	// mirror holds only verified blocks).
	auth, err := ledger.LoadAuthorities(ctx, s, lc.g)
	if err != nil {
		return nil, securityErrorf("mirror %s: %v", path, err)
	}
	seal, err := consensus.NewPoASealAt(lc.g, auth)
	if err != nil {
		return nil, err
	}
	// The co-signed note first: it is then at most as new as the chain
	// audited below.
	note, err := lc.fetchNote(ctx, cn)
	if err != nil {
		return nil, err
	}
	cp, err := cn.c.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cn.url, err)
	}
	top, err := lc.verifyCheckpoint(ctx, cn, cp)
	var se *exitError
	if errors.As(err, &se) {
		return nil, err
	}
	if err != nil {
		return nil, securityErrorf("node %s serves a checkpoint that fails verification: %v", cn.url, err)
	}
	if _, err := lc.checkCheckpoint(ctx, cn, cp, top); err != nil {
		return nil, err
	}
	head, err := s.Head(ctx)
	if err != nil {
		return nil, err
	}
	// The node's chain must contain the mirror's newest block.
	if head.Height > 0 {
		if top.Height < head.Height {
			mine, err := s.Header(ctx, top.Height)
			if err != nil {
				return nil, err
			}
			if mine.Hash() != top.Hash() {
				return nil, securityErrorf("node %s serves block %d %s, the mirror has %s: history was rewritten", cn.url, top.Height, top.Hash(), mine.Hash())
			}
			return nil, &exitError{code: exitOther, err: fmt.Errorf("node %s is at height %d, behind the mirror's %d (rolled back or still syncing)", cn.url, top.Height, head.Height)}
		}
		b, err := cn.c.Block(ctx, head.Height)
		if err != nil {
			return nil, fmt.Errorf("node %s: block %d: %w", cn.url, head.Height, err)
		}
		if b.Hash != head.Hash() {
			return nil, securityErrorf("node %s serves block %d %s, the mirror verified %s: history was rewritten", cn.url, head.Height, b.Hash, head.Hash())
		}
	}
	start, last := time.Now(), time.Now()
	var added uint64
	for h := head.Height + 1; h <= top.Height; h++ {
		ab, err := cn.c.Block(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("node %s: block %d: %w", cn.url, h, err)
		}
		b, err := ab.Ledger()
		if err != nil {
			return nil, securityErrorf("node %s serves a malformed block %d: %v", cn.url, h, err)
		}
		var sc ledger.SealChecker = seal
		if h < from {
			sc = nil
		}
		err = ledger.AppendNext(ctx, s, b, sc)
		if err == nil && sc == nil {
			// Below --from the seal is not checked, but the validator
			// set still follows the chain's changes.
			err = seal.Follow(b)
		}
		if err != nil {
			var ve *ledger.ValidationError
			if errors.As(err, &ve) {
				return nil, securityErrorf("node %s serves an invalid block %d: %v", cn.url, h, err)
			}
			return nil, err
		}
		added++
		if time.Since(last) > 2*time.Second {
			last = time.Now()
			lc.progress("audit: block %d of %d (%.0f blocks/s)", h, top.Height, float64(added)/time.Since(start).Seconds())
		}
	}
	mine, err := s.Head(ctx)
	if err != nil {
		return nil, err
	}
	if mine.Height == top.Height && mine.Hash() != top.Hash() {
		return nil, securityErrorf("node %s's checkpoint %s is not the block its chain gives at height %d (%s)", cn.url, top.Hash(), top.Height, mine.Hash())
	}
	rep := &auditReport{Chain: lc.g.Chain, Height: mine.Height, Hash: mine.Hash(), LogSize: mine.LogSize, LogRoot: mine.LogRoot, NewBlocks: added, Node: cn.url}
	if note != nil && note.c.Height <= mine.Height {
		h, err := s.Header(ctx, note.c.Height)
		if err != nil {
			return nil, err
		}
		if ledger.CheckpointOf(h) != *note.c {
			blk, err := s.Block(ctx, h.Height)
			if err != nil {
				return nil, err
			}
			cert := ""
			if blk.Certificate != nil {
				cert = string(blk.Certificate.Format())
			}
			return nil, securityErrorf("fork: node %s's co-signed checkpoint at height %d is block %s (log %d %s); the audited chain has block %s (log %d %s)\n%s",
				cn.url, note.c.Height, note.c.Block, note.c.LogSize, note.c.LogRoot, h.Hash(), h.LogSize, h.LogRoot,
				lc.evidence("checkpoint", evidencePart{"co-signed checkpoint note from " + cn.url, note.msg},
					evidencePart{"block " + strconv.FormatUint(h.Height, 10) + " of the audited chain (header and certificate)", append(h.Format(), cert...)}))
		}
		rep.CosignedHeight, rep.CosignedBy = &note.c.Height, note.signers
	}
	return rep, nil
}

// fetchNote returns the node's co-signed checkpoint, verified (a quorum of
// the validators signed it), or nil when the node has none (a pow chain,
// or no block co-signed yet).
func (lc *ledgerClient) fetchNote(ctx context.Context, cn conn) (*verifiedNote, error) {
	if lc.g.Engine != ledger.EnginePoA {
		return nil, nil
	}
	msg, err := cn.c.CosignedCheckpoint(ctx)
	if errors.Is(err, api.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: co-signed checkpoint: %w", cn.url, err)
	}
	return lc.verifyNote(ctx, cn, msg) // proof.go
}
