package api

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// recordAnswer returns a valid answer for the record at index from a
// fresh environment.
func recordAnswer(t *testing.T, e *env, index int64) *RecordResponse {
	t.Helper()
	ent, err := e.b.chain.Store.Record(context.Background(), index)
	if err != nil {
		t.Fatal(err)
	}
	rr, _, err := e.c.Record(context.Background(), ent.Record.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := VerifyRecord(e.b.chain.Genesis, rr); err != nil {
		t.Fatalf("VerifyRecord(untampered) = %v", err)
	}
	return rr
}

// clone deep-copies v through JSON, as a tampering node would re-encode it.
func clone[T any](t *testing.T, v *T) *T {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// rehash makes the checkpoint's JSON fields agree with its (altered) header
// text, as a careful forger would.
func rehash(t *testing.T, cp *Checkpoint) {
	h, err := ledger.ParseHeader([]byte(cp.Header))
	if err != nil {
		t.Fatal(err)
	}
	*cp = Checkpoint{Height: h.Height, Hash: h.Hash(), LogSize: h.LogSize, LogRoot: h.LogRoot, Time: h.Time,
		Header: cp.Header, Certificate: cp.Certificate}
}

func TestVerifyRecordTampering(t *testing.T) {
	e := newEnv(t, Config{})
	g := e.b.chain.Genesis
	good := recordAnswer(t, e, 6) // block 3, with a proof of several hashes
	other := recordAnswer(t, e, 2)
	blk1 := e.blocks[1]
	g2 := *g
	g2.Chain = "test2"
	otherChain := ledgertest.NewChainFrom(t, &g2, e.b.chain.Signers)
	otherChain.Next([]ledger.Record{recordFor(mustKey(t, "example.org/a/b@v1"))})

	tests := []struct {
		name   string
		tamper func(r *RecordResponse)
	}{
		{"flip a proof byte", func(r *RecordResponse) { r.Proof[0][5] ^= 1 }},
		{"flip the last proof byte", func(r *RecordResponse) { r.Proof[len(r.Proof)-1][31] ^= 0x80 }},
		{"drop a proof hash", func(r *RecordResponse) { r.Proof = r.Proof[:len(r.Proof)-1] }},
		{"add a proof hash", func(r *RecordResponse) { r.Proof = append(r.Proof, r.Proof[0]) }},
		{"no proof", func(r *RecordResponse) { r.Proof = nil }},
		{"another record's proof", func(r *RecordResponse) { r.Proof = other.Proof }},
		{"change log_root", func(r *RecordResponse) { r.Checkpoint.LogRoot[0] ^= 1 }},
		{"change log_size", func(r *RecordResponse) { r.Checkpoint.LogSize++ }},
		{"change hash", func(r *RecordResponse) { r.Checkpoint.Hash[31] ^= 1 }},
		{"change height", func(r *RecordResponse) { r.Checkpoint.Height-- }},
		{"change time", func(r *RecordResponse) { r.Checkpoint.Time++ }},
		{"alter header text (time)", func(r *RecordResponse) {
			r.Checkpoint.Header = strings.Replace(r.Checkpoint.Header, "time 1", "time 2", 1)
			rehash(t, &r.Checkpoint)
		}},
		{"alter header text (log root)", func(r *RecordResponse) {
			h, _ := ledger.ParseHeader([]byte(r.Checkpoint.Header))
			h.LogRoot[0] ^= 1
			r.Checkpoint.Header = string(h.Format())
			rehash(t, &r.Checkpoint)
		}},
		{"malformed header text", func(r *RecordResponse) { r.Checkpoint.Header += "extra line\n" }},
		{"swap certificate", func(r *RecordResponse) { r.Checkpoint.Certificate = string(blk1.Certificate.Format()) }},
		{"no certificate", func(r *RecordResponse) { r.Checkpoint.Certificate = "" }},
		{"certificate below quorum", func(r *RecordResponse) {
			c, _ := ledger.ParseCertificate([]byte(r.Checkpoint.Certificate))
			c.Sigs = c.Sigs[:2]
			r.Checkpoint.Certificate = string(c.Format())
		}},
		{"certificate signature flipped", func(r *RecordResponse) {
			c, _ := ledger.ParseCertificate([]byte(r.Checkpoint.Certificate))
			c.Sigs[1].Sig[0] ^= 1
			r.Checkpoint.Certificate = string(c.Format())
		}},
		{"older checkpoint, same proof", func(r *RecordResponse) {
			r.Checkpoint = NewCheckpoint(&blk1.Header, blk1.Certificate)
		}},
		{"change commit", func(r *RecordResponse) { r.Commit = other.Commit }},
		{"change tree", func(r *RecordResponse) { r.Tree = other.Tree }},
		{"add h1", func(r *RecordResponse) { r.H1 = "h1:" + r.Tree[3:] }},
		{"change index", func(r *RecordResponse) { r.Index++ }},
		{"negative index", func(r *RecordResponse) { r.Index = -1 }},
		{"change key", func(r *RecordResponse) {
			r.Key, r.Repo, r.Tag = other.Key, other.Repo, other.Tag
		}},
		{"key disagrees with repo", func(r *RecordResponse) { r.Repo = other.Repo }},
		{"non-canonical key", func(r *RecordResponse) {
			r.Key = "https://" + r.Key
		}},
		{"status pending", func(r *RecordResponse) { r.Status = StatusPending }},
		{"height above checkpoint", func(r *RecordResponse) { r.Height = r.Checkpoint.Height + 1 }},
		{"checkpoint of another chain", func(r *RecordResponse) {
			r.Checkpoint = NewCheckpoint(&otherChain.Head().Header, otherChain.Head().Certificate)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := clone(t, good)
			tt.tamper(r)
			ent, _, err := VerifyRecord(g, r)
			if err == nil {
				t.Fatalf("VerifyRecord(tampered) = %+v, nil; want an error", ent)
			}
			if !errors.Is(err, ErrVerification) {
				t.Fatalf("VerifyRecord(tampered) = %v, does not wrap ErrVerification", err)
			}
			t.Log(err)
		})
	}

	// The same answer against another chain's genesis fails.
	if _, _, err := VerifyRecord(otherChain.Genesis, good); !errors.Is(err, ErrVerification) {
		t.Errorf("VerifyRecord(other genesis) = %v", err)
	}
}

func TestVerifyCheckpoint(t *testing.T) {
	e := newEnv(t, Config{})
	g := e.b.chain.Genesis
	gen := NewCheckpoint(&e.blocks[0].Header, nil)
	if h, err := VerifyCheckpoint(g, &gen); err != nil || h.Hash() != g.Block().Hash() {
		t.Errorf("VerifyCheckpoint(genesis) = %v, %v", h, err)
	}
	bad := []struct {
		name string
		cp   Checkpoint
	}{
		{"genesis with a certificate", func() Checkpoint {
			cp := gen
			cp.Certificate = string(e.blocks[1].Certificate.Format())
			return cp
		}()},
		{"another genesis block", func() Checkpoint {
			h := e.blocks[0].Header
			h.Time++
			return NewCheckpoint(&h, nil)
		}()},
		{"block 1 without certificate", NewCheckpoint(&e.blocks[1].Header, nil)},
		{"block 1 with block 2's certificate", NewCheckpoint(&e.blocks[1].Header, e.blocks[2].Certificate)},
	}
	for _, tt := range bad {
		if _, err := VerifyCheckpoint(g, &tt.cp); !errors.Is(err, ErrVerification) {
			t.Errorf("VerifyCheckpoint(%s) = %v, want ErrVerification", tt.name, err)
		}
	}
	for i, b := range e.blocks[1:] {
		cp := NewCheckpoint(&b.Header, b.Certificate)
		if _, err := VerifyCheckpoint(g, &cp); err != nil {
			t.Errorf("VerifyCheckpoint(block %d) = %v", i+1, err)
		}
	}
}

func TestVerifyConsistency(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	hdr := func(i int) *ledger.Header { h := e.blocks[i].Header; return &h }
	for i := range e.blocks {
		for j := i; j < len(e.blocks); j++ {
			p, err := e.c.Consistency(ctx, hdr(i).LogSize, hdr(j).LogSize)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(hdr(i), hdr(j), p); err != nil {
				t.Errorf("VerifyConsistency(%d, %d) = %v", i, j, err)
			}
		}
	}
	p, err := e.c.Consistency(ctx, hdr(1).LogSize, hdr(3).LogSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Proof) == 0 {
		t.Fatal("empty proof from 5 to 12")
	}
	forked := *hdr(3)
	forked.LogRoot[0] ^= 1
	sameHeight := *hdr(3)
	sameHeight.Time++
	tests := []struct {
		name           string
		older, newer   *ledger.Header
		tamper         func(p *ConsistencyProof)
		wantSubstrings string
	}{
		{"flipped proof", hdr(1), hdr(3), func(p *ConsistencyProof) { p.Proof[0][0] ^= 1 }, "fork"},
		{"short proof", hdr(1), hdr(3), func(p *ConsistencyProof) { p.Proof = p.Proof[1:] }, "fork"},
		{"other root", hdr(1), &forked, func(p *ConsistencyProof) {}, "fork"},
		{"rollback", hdr(3), hdr(1), func(p *ConsistencyProof) {}, "rollback"},
		{"two heads at one height", hdr(3), &sameHeight, func(p *ConsistencyProof) {}, "fork"},
		{"proof for other sizes", hdr(1), hdr(3), func(p *ConsistencyProof) { p.From = 4 }, "proof is from"},
	}
	for _, tt := range tests {
		q := clone(t, p)
		tt.tamper(q)
		err := VerifyConsistency(tt.older, tt.newer, q)
		if !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), tt.wantSubstrings) {
			t.Errorf("VerifyConsistency(%s) = %v, want ErrVerification saying %q", tt.name, err, tt.wantSubstrings)
		}
	}
}

func TestVerifyBlockTampering(t *testing.T) {
	e := newEnv(t, Config{})
	g := e.b.chain.Genesis
	good, err := e.c.Block(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBlock(g, good); err != nil {
		t.Fatalf("VerifyBlock(3) = %v", err)
	}
	b1 := NewBlock(e.blocks[1], StatusCommitted)
	tests := []struct {
		name   string
		tamper func(b *Block)
	}{
		{"record commit", func(b *Block) { b.Records[0].Commit = b1.Records[0].Commit }},
		{"record dropped", func(b *Block) { b.Records = b.Records[1:] }},
		{"record index", func(b *Block) { b.Records[1].Index++ }},
		{"attestation dropped", func(b *Block) { b.Attestations = b.Attestations[1:] }},
		{"attestation of another block", func(b *Block) { b.Attestations[0] = b1.Attestations[0] }},
		{"certificate of another block", func(b *Block) { b.Certificate = b1.Certificate }},
		{"hash", func(b *Block) { b.Hash[0] ^= 1 }},
		{"height", func(b *Block) { b.Height = 2 }},
	}
	for _, tt := range tests {
		b := clone(t, good)
		tt.tamper(b)
		if _, err := VerifyBlock(g, b); !errors.Is(err, ErrVerification) {
			t.Errorf("VerifyBlock(%s) = %v, want ErrVerification", tt.name, err)
		}
	}
}
