package ledger_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/vcsledger/vcsledger/ledger"
)

// testdata/vectors/checkpoints.json (docs/FORMAT.md, "Checkpoints"), written
// by go test ./ledger -run CheckpointVectors -update, like the other vector
// files, and checked independently with the stock note package,
// crypto/ed25519 and the test's own RFC 6962 code.

type checkpointVectors struct {
	VerifierKeys []struct {
		Name        string `json:"name"`
		PublicKey   string `json:"public_key"`
		KeyName     string `json:"key_name"`
		KeyID       string `json:"key_id"`
		VerifierKey string `json:"verifier_key"`
	} `json:"verifier_keys"`
	Checkpoints []struct {
		Height       uint64   `json:"height"`
		Text         string   `json:"text"`
		Cosignatures []string `json:"cosignatures"`
		Note         string   `json:"note"`
	} `json:"checkpoints"`
	Proofs []struct {
		Record  int    `json:"record"`
		Height  uint64 `json:"height"`
		Encoded string `json:"encoded"`
	} `json:"proofs"`
}

// checkpointVectorNotes are the signers (indexes in key order) of each
// vector checkpoint's note: all four, and a bare quorum.
var checkpointVectorNotes = map[uint64][]int{2: {0, 1, 2, 3}, 6: {0, 2, 3}}

func generateCheckpointVectors(t *testing.T) checkpointVectors {
	records := vectorRecords(t)
	c := vectorChain(t, records)
	var cv checkpointVectors
	for _, v := range c.Vals.Validators() {
		name := ledger.KeyName(c.Genesis.Chain, v.Name)
		cv.VerifierKeys = append(cv.VerifierKeys, struct {
			Name        string `json:"name"`
			PublicKey   string `json:"public_key"`
			KeyName     string `json:"key_name"`
			KeyID       string `json:"key_id"`
			VerifierKey string `json:"verifier_key"`
		}{v.Name, v.Key.String(), name, fmt.Sprintf("%08x", ledger.KeyID(name, v.Key)), ledger.VerifierKey(c.Genesis.Chain, v)})
	}
	notes := map[uint64][]byte{}
	for _, h := range []uint64{2, 6} {
		cp := ledger.CheckpointOf(&c.Blocks()[h].Header)
		var sigs []ledger.Cosignature
		var encs []string
		for _, s := range c.Signers {
			cs := ledger.Cosign(s, cp)
			sigs = append(sigs, cs)
			encs = append(encs, b64(cs.Format()))
		}
		var quorum []ledger.Cosignature
		for _, i := range checkpointVectorNotes[h] {
			quorum = append(quorum, sigs[i])
		}
		msg, err := ledger.FormatNote(cp, c.Vals, quorum)
		if err != nil {
			t.Fatal(err)
		}
		notes[h] = msg
		cv.Checkpoints = append(cv.Checkpoints, struct {
			Height       uint64   `json:"height"`
			Text         string   `json:"text"`
			Cosignatures []string `json:"cosignatures"`
			Note         string   `json:"note"`
		}{h, b64(cp.Text()), encs, b64(msg)})
	}
	for _, rp := range []struct {
		record int
		height uint64
	}{{0, 6}, {7, 6}, {1, 2}} {
		size := int64(c.Blocks()[rp.height].Header.LogSize)
		hashes, err := ledger.ProveRecord(ledger.HashReaderOf(t.Context(), c.Store), size, int64(rp.record))
		if err != nil {
			t.Fatal(err)
		}
		p := ledger.Proof{Extra: records[rp.record].Format(), Index: int64(rp.record), Hashes: hashes, Checkpoint: notes[rp.height]}
		cv.Proofs = append(cv.Proofs, struct {
			Record  int    `json:"record"`
			Height  uint64 `json:"height"`
			Encoded string `json:"encoded"`
		}{rp.record, rp.height, b64(p.Format())})
	}
	return cv
}

func TestCheckpointVectors(t *testing.T) {
	want := marshalVector(generateCheckpointVectors(t))
	path := filepath.Join(vectorDir, "checkpoints.json")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./ledger -run CheckpointVectors -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the code generates (if on purpose, run go test ./ledger -run CheckpointVectors -update and say so in docs/FORMAT.md)", path)
	}
}

// TestCheckpointVectorsIndependent checks checkpoints.json against the
// other vector files with the stock note package and crypto/ed25519.
func TestCheckpointVectorsIndependent(t *testing.T) {
	var cv checkpointVectors
	var sv signatureVectors
	var blocks []blockVector
	var recs []recordVector
	readVector(t, "checkpoints.json", &cv)
	readVector(t, "signatures.json", &sv)
	readVector(t, "blocks.json", &blocks)
	readVector(t, "records.json", &recs)
	g, err := ledger.ParseGenesis(unb64(t, sv.Genesis.Encoded))
	if err != nil {
		t.Fatal(err)
	}

	// Verifier keys: name+keyid+base64(0x01 || key), the key ID the first
	// four bytes of SHA-256(name || LF || 0x01 || key).
	var verifiers []note.Verifier
	keys := map[string]ed25519.PublicKey{}
	if len(cv.VerifierKeys) != len(sv.Validators) {
		t.Fatalf("checkpoints.json has %d verifier keys, signatures.json %d validators", len(cv.VerifierKeys), len(sv.Validators))
	}
	for _, vk := range cv.VerifierKeys {
		pub := unhex(t, vk.PublicKey)
		if vk.KeyName != g.Chain+"/"+vk.Name {
			t.Errorf("key name %q, want %q", vk.KeyName, g.Chain+"/"+vk.Name)
		}
		sum := sha256.Sum256(append(append([]byte(vk.KeyName+"\n"), 1), pub...))
		if id := hex.EncodeToString(sum[:4]); id != vk.KeyID {
			t.Errorf("key id of %s = %s, SHA-256 gives %s", vk.Name, vk.KeyID, id)
		}
		if want := vk.KeyName + "+" + vk.KeyID + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, pub...)); vk.VerifierKey != want {
			t.Errorf("verifier key %s, want %s", vk.VerifierKey, want)
		}
		v, err := note.NewVerifier(vk.VerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		verifiers = append(verifiers, v)
		keys[vk.PublicKey] = pub
	}

	// Checkpoints: the note text of block h, co-signatures verifying over
	// it with crypto/ed25519, and notes the stock note package opens.
	for _, c := range cv.Checkpoints {
		h, err := ledger.ParseHeader(unb64(t, blocks[c.Height].Encoded))
		if err != nil {
			t.Fatal(err)
		}
		text := string(unb64(t, c.Text))
		want := fmt.Sprintf("%s\n%d\n%s\nblock %d %s\n", h.Chain, h.LogSize, base64.StdEncoding.EncodeToString(h.LogRoot[:]), c.Height, blocks[c.Height].Hash)
		if text != want {
			t.Errorf("checkpoint %d text %q, want %q", c.Height, text, want)
		}
		if len(c.Cosignatures) != len(keys) {
			t.Errorf("checkpoint %d has %d co-signatures, want %d", c.Height, len(c.Cosignatures), len(keys))
		}
		for _, enc := range c.Cosignatures {
			ls := strings.Split(string(unb64(t, enc)), "\n")
			if len(ls) != 8 || ls[0] != "vcsledger-cosig/1" || ls[1] != "chain "+h.Chain ||
				ls[2] != fmt.Sprintf("height %d", c.Height) || ls[3] != "block "+blocks[c.Height].Hash ||
				ls[4] != fmt.Sprintf("log %d %s", h.LogSize, h.LogRoot) || ls[7] != "" {
				t.Errorf("checkpoint %d co-signature %q", c.Height, ls)
				continue
			}
			pub := keys[strings.TrimPrefix(ls[5], "validator ")]
			sig := unhex(t, strings.TrimPrefix(ls[6], "sig "))
			if pub == nil || !ed25519.Verify(pub, []byte(text), sig) {
				t.Errorf("checkpoint %d co-signature %s does not verify over the text", c.Height, ls[5])
			}
		}
		n, err := note.Open(unb64(t, c.Note), note.VerifierList(verifiers...))
		if err != nil || n.Text != text || len(n.Sigs) != len(checkpointVectorNotes[c.Height]) {
			t.Errorf("note.Open(checkpoint %d note) = %+v, %v", c.Height, n, err)
		}
		if len(n.Sigs)*3 <= 2*len(keys) {
			t.Errorf("checkpoint %d note has %d signatures of %d validators: not a quorum", c.Height, len(n.Sigs), len(keys))
		}
	}

	// Proofs: the tlog-proof lines, the record as extra data, and the RFC
	// 6962 audit path in the log of the checkpoint.
	var leaves []rfcHash
	for _, r := range recs {
		leaves = append(leaves, hash32(t, r.LeafHash))
	}
	for _, p := range cv.Proofs {
		enc := string(unb64(t, p.Encoded))
		head, note_, ok := strings.Cut(enc, "\n\n")
		if !ok {
			t.Fatalf("proof of record %d has no empty line", p.Record)
		}
		ls := strings.Split(head, "\n")
		if ls[0] != "c2sp.org/tlog-proof@v1" || ls[1] != "extra "+recs[p.Record].Encoded || ls[2] != fmt.Sprintf("index %d", p.Record) {
			t.Errorf("proof of record %d starts %q", p.Record, ls[:3])
		}
		h, err := ledger.ParseHeader(unb64(t, blocks[p.Height].Encoded))
		if err != nil {
			t.Fatal(err)
		}
		path := rfcPath(p.Record, leaves[:h.LogSize])
		if len(ls)-3 != len(path) {
			t.Errorf("proof of record %d has %d hashes, RFC 6962 gives %d", p.Record, len(ls)-3, len(path))
			continue
		}
		for i, s := range ls[3:] {
			if base64.StdEncoding.EncodeToString(path[i][:]) != s {
				t.Errorf("proof of record %d hash %d = %s, RFC 6962 gives %x", p.Record, i, s, path[i])
			}
		}
		var wantNote string
		for _, c := range cv.Checkpoints {
			if c.Height == p.Height {
				wantNote = string(unb64(t, c.Note))
			}
		}
		if note_ != wantNote {
			t.Errorf("proof of record %d: checkpoint is not the note of block %d", p.Record, p.Height)
		}
		if rfcRoot(leaves[:h.LogSize]) != h.LogRoot {
			t.Errorf("block %d log root is not RFC 6962's", p.Height)
		}
	}
}
