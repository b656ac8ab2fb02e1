package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/node"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// changedSetNode starts a node (a replica, not a validator) on a chain of
// four validators v0-v3 that added v4 (effective at 4), removed v0
// (effective at 7) and added v5 (effective at 9), built offline into its
// database up to block 9, with the
// co-signatures of its head by a quorum of the set in force there. It returns
// the node's URL, the genesis and the keys of a record committed before
// the changes and of one committed after them.
func changedSetNode(t *testing.T) (string, *ledger.Genesis, string, string) {
	t.Helper()
	ctx := context.Background()
	c := ledgertest.NewChain(t, 4)
	v4 := ledgertest.Signer(4)
	c.AddSigner(v4)
	rng := rand.New(rand.NewPCG(5, 6))
	c.Next(ledgertest.Records(rng, 0, 2))
	c.NextWith(nil, []ledger.AuthorityChange{c.Change(ledger.AuthorityAdd, v4.Public(), "v4", 4)})
	c.Next(nil)
	c.NextWith(nil, []ledger.AuthorityChange{c.Change(ledger.AuthorityRemove, ledgertest.Signer(0).Public(), "", 7)})
	c.Next(nil)
	c.Next(nil)
	v5 := ledgertest.Signer(5)
	c.AddSigner(v5)
	c.NextWith(nil, []ledger.AuthorityChange{c.Change(ledger.AuthorityAdd, v5.Public(), "v5", 9)})
	c.Next(nil)
	c.Next(ledgertest.Records(rng, 2, 2))
	head := &c.Head().Header

	path := filepath.Join(t.TempDir(), "ledger.db")
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.InitStore(ctx, st, c.Genesis); err != nil {
		t.Fatal(err)
	}
	for h := uint64(1); h <= head.Height; h++ {
		if err := st.Append(ctx, c.Blocks()[h], c.Stored(h)); err != nil {
			t.Fatal(err)
		}
	}
	cp := ledger.CheckpointOf(head)
	var rows []sqlitestore.Cosig
	// A bare quorum of the set in force (v1 to v5), v1, v2, v4 and v5:
	// the genesis set sees two of its own, the set after the first
	// addition alone three of five.
	for _, s := range []*ledger.Signer{ledgertest.Signer(1), ledgertest.Signer(2), v4, v5} {
		cs := ledger.Cosign(s, cp)
		rows = append(rows, sqlitestore.Cosig{Height: head.Height, Validator: cs.Validator, Sig: cs.Sig})
	}
	if err := st.AddCosigs(ctx, rows...); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Record(ctx, 1)
	after, _ := st.Record(ctx, int64(head.LogSize)-1)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{Genesis: c.Genesis, Key: key, DBPath: path, HTTPAddr: "127.0.0.1:0", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return "http://" + n.HTTPAddr(), c.Genesis, before.Record.Key.String(), after.Record.Key.String()
}

// TestProofAcrossSetChanges: on a chain that added a validator and then
// removed one, lookup --proof-out writes tlog-proofs that carry the
// changes, and verify-proof checks them offline against the pinned genesis
// or --genesis alone: a record committed before the changes and one after.
// The same proof without the changes, or with only the first or the
// second, fails. GET /v1/validators shows the set in force and its quorum.
func TestProofAcrossSetChanges(t *testing.T) {
	nodeURL, g, before, after := changedSetNode(t)
	cl, err := api.NewClient(nodeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := cl.Validators(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if vs.Height != 10 || len(vs.Validators) != 5 || vs.Quorum != 4 {
		t.Errorf("GET /v1/validators: height %d, %d validators, quorum %d; want 10, 5, 4", vs.Height, len(vs.Validators), vs.Quorum)
	}
	home := t.TempDir()
	gfile := filepath.Join(t.TempDir(), "genesis.txt")
	os.WriteFile(gfile, g.Format(), 0o644)
	for _, key := range []string{before, after} {
		proof := filepath.Join(t.TempDir(), "proof")
		if code, out, stderr := vcsverify(t, home, "lookup", "--node", nodeURL, "--proof-out", proof, key); code != exitOK {
			t.Fatalf("lookup --proof-out %s: exit %d\n%s%s", key, code, out, stderr)
		}
		data, err := os.ReadFile(proof)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ledger.ParseProof(data)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ledger.ParseProofExtra(p.Extra)
		if err != nil || len(e.Changes) != 3 || e.Record.Key.String() != key {
			t.Fatalf("the proof's extra data: %+v, %v; want the record of %s and three changes", e, err, key)
		}
		t.Setenv("VCSVERIFY_NODE", "http://127.0.0.1:1")
		code, out, stderr := vcsverify(t, home, "verify-proof", proof)
		if code != exitOK || !strings.HasPrefix(out, "verified: "+key) || !strings.Contains(out, "3 validator-set changes") {
			t.Fatalf("verify-proof: exit %d\n%s%s", code, out, stderr)
		}
		if code, out, stderr := vcsverify(t, t.TempDir(), "verify-proof", "--genesis", gfile, proof); code != exitOK {
			t.Fatalf("verify-proof --genesis: exit %d\n%s%s", code, out, stderr)
		}
		for name, changes := range map[string][]ledger.ProvenChange{"no change": nil, "only the first": e.Changes[:1], "only the second": e.Changes[1:2]} {
			x := *p
			short := ledger.ProofExtra{Record: e.Record, Changes: changes}
			x.Extra = short.Format()
			bad := filepath.Join(t.TempDir(), "bad")
			os.WriteFile(bad, x.Format(), 0o644)
			code, out, stderr := vcsverify(t, home, "verify-proof", bad)
			mustFail(t, "verify-proof with "+name, exitMismatch, code, out, stderr)
		}
	}
}

// TestProofOnPoW: a pow chain has no co-signed checkpoints, so no offline
// proofs: GET /checkpoint and lookup --proof-out say so (404, exit 2).
func TestProofOnPoW(t *testing.T) {
	_, key := newChain(t, "powproof")
	g := &ledger.Genesis{Chain: "powproof", Time: time.Now().Add(-time.Minute).UnixMilli(), Engine: ledger.EnginePoW,
		BlockInterval: 100, AttestQuorum: -1, Bits: 8, Retarget: 4, Confirmations: 6}
	n := startNodeOf(t, g, key, "127.0.0.1:0")
	nodeURL := "http://" + n.HTTPAddr()
	cl, err := api.NewClient(nodeURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.CosignedCheckpoint(context.Background())
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(ae.Message, "proof of work") {
		t.Errorf("GET /checkpoint on a pow node = %v; want a 404 that says the chain runs proof of work", err)
	}
	proof := filepath.Join(t.TempDir(), "proof")
	code, out, stderr := vcsverify(t, t.TempDir(), "lookup", "--node", nodeURL, "--proof-out", proof, "example.com/a@v1")
	mustFail(t, "lookup --proof-out on a pow chain", exitOther, code, out, stderr)
	if !strings.Contains(stderr, "proof of work") {
		t.Errorf("lookup --proof-out on a pow chain does not say why: %s", stderr)
	}
	if _, err := os.Stat(proof); err == nil {
		t.Errorf("lookup --proof-out on a pow chain wrote %s", proof)
	}
}
