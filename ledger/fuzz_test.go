package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/vcsledger/vcsledger/ledger"
)

// Fuzz targets for every parser. Each checks that the parser does not
// panic and that whatever it accepts formats back to exactly the input.
// The seed corpus is in testdata/fuzz/<FuzzName>, written by -update from
// the same seeds as f.Add; run one with
//
//	go test ./ledger -run '^$' -fuzz '^FuzzParseRecord$' -fuzztime 30s

// seeds returns the canonical encodings of the test samples, named.
func seeds(t testing.TB) map[string][][]byte {
	out := map[string][][]byte{}
	for _, e := range encodings(t) {
		var name string
		switch {
		case strings.HasPrefix(e.name, "signed"):
			name = "FuzzParseSignedVote"
		case strings.Contains(e.name, "vote") || strings.Contains(e.name, "precommit"):
			name = "FuzzParseVote"
		case e.name == "block":
			continue // too big to mutate quickly; see the small blocks below
		case strings.Contains(e.name, "block"):
			name = "FuzzParseBlock"
		case strings.Contains(e.name, "genesis"):
			name = "FuzzParseGenesis"
		case strings.Contains(e.name, "header"):
			name = "FuzzParseHeader"
		case strings.Contains(e.name, "record"):
			name = "FuzzParseRecord"
		case strings.Contains(e.name, "certificate"):
			name = "FuzzParseCertificate"
		case strings.Contains(e.name, "attestation"):
			name = "FuzzParseAttestation"
		default:
			t.Fatalf("no fuzz target for %s", e.name)
		}
		out[name] = append(out[name], e.data)
	}
	// Small blocks mutate faster than the 4-validator sample block: one
	// record with one attestation and a one-signature certificate, and the
	// same without its certificate.
	b := sampleBlock(t)
	small := &ledger.Block{Header: b.Header, Records: b.Records[:1], Attestations: b.Attestations[:1]}
	small.Header.Records = 1
	cert := *b.Certificate
	cert.Sigs = cert.Sigs[:1]
	small.Certificate = &cert
	out["FuzzParseBlock"] = append(out["FuzzParseBlock"], small.Format())
	small.Certificate = nil
	out["FuzzParseBlock"] = append(out["FuzzParseBlock"], small.Format())
	for name, ss := range checkpointSeeds(t) {
		out[name] = append(out[name], ss...)
	}
	for _, tc := range keyCases {
		out["FuzzParseKey"] = append(out["FuzzParseKey"], []byte(tc.in))
	}
	for _, tc := range repoCases {
		out["FuzzParseKey"] = append(out["FuzzParseKey"], []byte(tc.in+"@v1"))
	}
	return out
}

func addSeeds(f *testing.F, name string) {
	ss := seeds(f)[name]
	if len(ss) == 0 {
		f.Fatalf("no seeds for %s", name)
	}
	for _, s := range ss {
		if name == "FuzzParseKey" {
			f.Add(string(s))
		} else {
			f.Add(s)
		}
	}
}

// TestFuzzSeedCorpus writes (with -update) or checks the committed seed
// corpus: one file per seed in testdata/fuzz/<FuzzName>.
func TestFuzzSeedCorpus(t *testing.T) {
	for name, ss := range seeds(t) {
		dir := filepath.Join("testdata", "fuzz", name)
		if *update {
			old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
			for _, p := range old {
				os.Remove(p)
			}
		}
		for _, s := range ss {
			var body string
			if name == "FuzzParseKey" {
				body = fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)
			} else {
				body = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			}
			sum := sha256.Sum256([]byte(body))
			path := filepath.Join(dir, fmt.Sprintf("seed-%x", sum[:8]))
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != body {
				t.Errorf("%s is missing or stale (run go test ./ledger -run FuzzSeedCorpus -update): %v", path, err)
			}
		}
	}
}

// roundTrip checks the property every parser has.
func roundTrip[T any](t *testing.T, data []byte, parse func([]byte) (T, error), format func(T) []byte) {
	v, err := parse(data)
	if err != nil {
		if !errors.Is(err, ledger.ErrMalformed) && !strings.HasPrefix(err.Error(), "ledger: invalid genesis") {
			t.Fatalf("parse(%q) = %v; want an error wrapping ErrMalformed", data, err)
		}
		return
	}
	if got := format(v); !bytes.Equal(got, data) {
		t.Fatalf("parse(%q) then Format() = %q; want the input", data, got)
	}
}

func FuzzParseRecord(f *testing.F) {
	addSeeds(f, "FuzzParseRecord")
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, ok := ledger.PlainRecord(data); ok {
			if full, err := ledger.ParseRecordFull(data); err != nil || *full != *r {
				t.Fatalf("PlainRecord(%q) = %+v; the full parse gives %+v, %v", data, r, full, err)
			}
		}
		pr, perr := ledger.ParseRecord(data)
		if sr, serr := ledger.ParseRecordString(string(data)); (perr == nil) != (serr == nil) || perr == nil && *pr != sr {
			t.Fatalf("ParseRecordString(%q) = %+v, %v; ParseRecord gives %+v, %v", data, sr, serr, pr, perr)
		}
		roundTrip(t, data, ledger.ParseRecord, func(r *ledger.Record) []byte {
			if err := r.Check(); err != nil {
				t.Fatalf("ParseRecord(%q) accepted a record Check refuses: %v", data, err)
			}
			return r.Format()
		})
	})
}

func FuzzParseHeader(f *testing.F) {
	addSeeds(f, "FuzzParseHeader")
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, ledger.ParseHeader, (*ledger.Header).Format)
	})
}

func FuzzParseBlock(f *testing.F) {
	addSeeds(f, "FuzzParseBlock")
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, ledger.ParseBlock, func(b *ledger.Block) []byte {
			if uint64(len(b.Records)) != b.Header.Records {
				t.Fatalf("ParseBlock(%q): %d records, header says %d", data, len(b.Records), b.Header.Records)
			}
			return b.Format()
		})
		// ParseBlockLeaves agrees, and hashes the leaves the records give.
		b, err := ledger.ParseBlock(data)
		p, perr := ledger.ParseBlockLeaves(data)
		if (err == nil) != (perr == nil) {
			t.Fatalf("ParseBlock(%q) = %v but ParseBlockLeaves = %v", data, err, perr)
		}
		if err != nil {
			return
		}
		leaves := ledger.ParsedLeaves(p)
		if !bytes.Equal(p.Block.Format(), b.Format()) || len(leaves) != len(b.Records) {
			t.Fatalf("ParseBlockLeaves(%q) differs from ParseBlock: %d leaves for %d records", data, len(leaves), len(b.Records))
		}
		for i := range b.Records {
			if leaves[i] != b.Records[i].LeafHash() {
				t.Fatalf("ParseBlockLeaves(%q): leaf %d is not record %d's leaf hash", data, i, i)
			}
		}
	})
}

func FuzzParseVote(f *testing.F) {
	addSeeds(f, "FuzzParseVote")
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, ledger.ParseVote, (*ledger.Vote).Format)
	})
}

func FuzzParseSignedVote(f *testing.F) {
	addSeeds(f, "FuzzParseSignedVote")
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, ledger.ParseSignedVote, func(v *ledger.SignedVote) []byte {
			_ = v.Verify() // must not panic on any key or signature
			return v.Format()
		})
	})
}

func FuzzParseCertificate(f *testing.F) {
	addSeeds(f, "FuzzParseCertificate")
	_, vs := fourValidators(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, ledger.ParseCertificate, func(c *ledger.Certificate) []byte {
			_ = c.Verify(vs, c.Chain, c.Height, c.Block) // must not panic
			return c.Format()
		})
	})
}

func FuzzParseAttestation(f *testing.F) {
	addSeeds(f, "FuzzParseAttestation")
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, ledger.ParseAttestation, func(a *ledger.Attestation) []byte {
			_ = a.Verify()
			return a.Format()
		})
	})
}

func FuzzParseGenesis(f *testing.F) {
	addSeeds(f, "FuzzParseGenesis")
	f.Fuzz(func(t *testing.T, data []byte) {
		roundTrip(t, data, ledger.ParseGenesis, func(g *ledger.Genesis) []byte {
			if err := g.Validate(); err != nil {
				t.Fatalf("ParseGenesis(%q) accepted a genesis Validate refuses: %v", data, err)
			}
			_ = g.Block().Hash()
			return g.Format()
		})
	})
}

// FuzzParseKey checks that a parsed key is canonical: it contains no white
// space or control character, fits MaxKeyLen, parses back to itself, and
// its repository is its own canonical form.
func FuzzParseKey(f *testing.F) {
	addSeeds(f, "FuzzParseKey")
	f.Fuzz(func(t *testing.T, s string) {
		if k, ok := ledger.PlainKey(s); ok {
			if full, err := ledger.ParseKeyFull(s); err != nil || full != k {
				t.Fatalf("PlainKey(%q) = %+v; the full parse gives %+v, %v", s, k, full, err)
			}
		}
		k, err := ledger.ParseKey(s)
		if err != nil {
			var ke *ledger.KeyError
			if !errors.Is(err, ledger.ErrInvalidKey) || !errors.As(err, &ke) {
				t.Fatalf("ParseKey(%q) = %v; want a *KeyError", s, err)
			}
			return
		}
		ks := k.String()
		if len(ks) > ledger.MaxKeyLen || strings.ContainsFunc(ks, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
		}) {
			t.Fatalf("ParseKey(%q) = %q: too long, or white space or control characters", s, ks)
		}
		if strings.Contains(k.Tag, "@") || ledger.CheckTag(k.Tag) != nil {
			t.Fatalf("ParseKey(%q) gave tag %q", s, k.Tag)
		}
		k2, err := ledger.ParseKey(ks)
		if err != nil || k2 != k {
			t.Fatalf("ParseKey(%q) = %+v; ParseKey(%q) = %+v, %v; want the same key", s, k, ks, k2, err)
		}
		if r, err := ledger.CanonicalRepo(k.Repo); err != nil || r != k.Repo {
			t.Fatalf("CanonicalRepo(%q) = %q, %v; want it unchanged", k.Repo, r, err)
		}
		rec := ledger.Record{Key: k, Commit: strings.Repeat("a", 40), Tree: t1("x")}
		if err := rec.Check(); err != nil {
			t.Fatalf("a record of key %q is refused: %v", ks, err)
		}
		if got, err := ledger.ParseRecord(rec.Format()); err != nil || got.Key != k {
			t.Fatalf("ParseRecord of key %q = %v", ks, err)
		}
	})
}
