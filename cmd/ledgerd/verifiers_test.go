package main

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestVerifierKeys(t *testing.T) {
	dir := t.TempDir()
	if code, out, stderr := ledgerd("testnet", "--nodes", "4", "--dir", filepath.Join(dir, "net"), "--base-port", "31000"); code != 0 {
		t.Fatalf("testnet: exit %d\n%s%s", code, out, stderr)
	}
	home := filepath.Join(dir, "net", "node0")
	code, out, stderr := ledgerd("verifier-keys", "--home", home)
	if code != 0 {
		t.Fatalf("verifier-keys: exit %d\n%s", code, stderr)
	}
	g, err := readGenesis(filepath.Join(home, genesisFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(g.Validators) {
		t.Fatalf("verifier-keys printed %d lines for %d validators:\n%s", len(lines), len(g.Validators), out)
	}
	for i, l := range lines {
		v, err := note.NewVerifier(l)
		if err != nil || v.Name() != g.Chain+"/"+g.Validators[i].Name {
			t.Errorf("line %q: note.NewVerifier = %v, %v", l, v, err)
		}
	}
	if code, _, _ := ledgerd("verifier-keys"); code != 2 {
		t.Errorf("verifier-keys without a genesis: exit %d, want 2", code)
	}
	if code, _, _ := ledgerd("verifier-keys", "--genesis", filepath.Join(dir, "none")); code != 2 {
		t.Errorf("verifier-keys of a missing file: exit %d, want 2", code)
	}
}
