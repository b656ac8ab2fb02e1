package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/vcsledger/vcsledger/api"
)

// Evidence: two signed statements that cannot both be true (two
// checkpoints of one height, a checkpoint whose log does not extend
// another's). When the client sees such a pair it prints both in the
// SECURITY ERROR and keeps them under $VCSVERIFY_HOME/chains/<chain>/evidence/,
// so that they can be shown to the chain's operators.

// An evidencePart is one signed statement, labelled with where it came from.
type evidencePart struct {
	label string
	text  []byte
}

// evidence saves parts as evidence of kind and returns the text to print:
// each part, indented, and where the file is.
func (lc *ledgerClient) evidence(kind string, parts ...evidencePart) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "evidence (%s):\n", kind)
	for _, p := range parts {
		fmt.Fprintf(&b, "%s:\n%s\n", p.label, indent(p.text))
	}
	dir, err := lc.st.chainDir(lc.g.Chain)
	if err == nil {
		dir = filepath.Join(dir, "evidence")
		path := filepath.Join(dir, time.Now().UTC().Format("20060102T150405.000000000Z")+"-"+kind+".txt")
		if err = writeAtomic(path, b.Bytes()); err == nil {
			fmt.Fprintf(&b, "(saved in %s)", path)
			return b.String()
		}
	}
	fmt.Fprintf(&b, "(not saved: %v)", err)
	return b.String()
}

// indent returns text with every line indented by a tab.
func indent(text []byte) string {
	s := strings.TrimSuffix(string(text), "\n")
	return "\t" + strings.ReplaceAll(s, "\n", "\n\t")
}

// nodeEvidence is the evidence a node holds (GET /v1/evidence).
type nodeEvidence struct {
	Node     string         `json:"node"`
	Evidence []api.Evidence `json:"evidence"`
}

// nodesEvidence asks every node for the evidence it holds; a node that
// cannot answer is reported on stderr and skipped.
func (lc *ledgerClient) nodesEvidence(ctx context.Context) []nodeEvidence {
	var out []nodeEvidence
	for _, cn := range lc.conns {
		ev, err := cn.c.Evidence(ctx, 0)
		if err != nil {
			lc.progress("vcsverify: node %s: evidence: %v", cn.url, err)
			continue
		}
		if len(ev) > 0 {
			out = append(out, nodeEvidence{Node: cn.url, Evidence: ev})
		}
	}
	return out
}

// printNodesEvidence prints what nodesEvidence found.
func printNodesEvidence(w io.Writer, evs []nodeEvidence) {
	for _, ne := range evs {
		fmt.Fprintf(w, "WARNING: node %s holds %d item(s) of evidence of validator misbehaviour:\n", ne.Node, len(ne.Evidence))
		for _, e := range ne.Evidence {
			fmt.Fprintf(w, "  %s, added %s:\n%s\n", e.Kind, e.Added.UTC().Format(time.RFC3339), indent([]byte(e.Data)))
		}
	}
}
