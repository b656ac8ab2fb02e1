package ledger_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

func t1(s string) string {
	h := sha256.Sum256([]byte(s))
	return "t1:" + base64.StdEncoding.EncodeToString(h[:])
}

func h1(s string) string {
	h := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(h[:])
}

func mustKey(t testing.TB, s string) ledger.Key {
	t.Helper()
	k, err := ledger.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sampleRecord(t testing.TB, withH1 bool) ledger.Record {
	r := ledger.Record{
		Key:    mustKey(t, "github.com/golang/go@go1.21.0"),
		Commit: "c19c3a3ec4b4e7b2a0b0c0bd7a3b3ba7f0d2c7e1",
		Tree:   t1("go1.21.0"),
	}
	if withH1 {
		r.H1 = h1("go1.21.0")
	}
	return r
}

func sampleHeader(engine string) ledger.Header {
	h := ledger.Header{
		Chain:   "main-net_1.0",
		Height:  42,
		Prev:    ledger.SumSHA256([]byte("prev")),
		Time:    1_700_000_042_000,
		Engine:  engine,
		Records: 3,
		LogSize: 100,
		LogRoot: ledger.SumSHA256([]byte("root")),
	}
	switch engine {
	case ledger.EnginePoA:
		h.Proposer = ledgertest.Signer(1).Public()
	case ledger.EnginePoW:
		h.Bits = 20
		h.Nonce = 123456789
	}
	return h
}

func sampleGenesis(engine string) *ledger.Genesis {
	g := &ledger.Genesis{Chain: "main", Time: 1_700_000_000_000, Engine: engine, BlockInterval: 2000, AttestQuorum: -1}
	switch engine {
	case ledger.EnginePoA:
		for i := 0; i < 4; i++ {
			g.Validators = append(g.Validators, ledger.Validator{Key: ledgertest.Signer(i).Public(), Name: fmt.Sprintf("val-%d", i)})
		}
	case ledger.EnginePoW:
		g.Bits, g.Retarget, g.Confirmations = 16, 100, 6
	}
	return g
}

func sampleVote(typ string, nilBlock bool) ledger.SignedVote {
	v := ledger.Vote{Chain: "main", Type: typ, Height: 7, Round: 2, Block: ledger.SumSHA256([]byte("block"))}
	if nilBlock {
		v.Block = ledger.ZeroHash
	}
	return ledger.SignVote(ledgertest.Signer(2), v)
}

func sampleCertificate(t testing.TB) *ledger.Certificate {
	var votes []ledger.SignedVote
	for i := 3; i >= 0; i-- {
		votes = append(votes, ledger.SignVote(ledgertest.Signer(i), ledger.Vote{Chain: "main", Type: ledger.Precommit, Height: 7, Round: 1, Block: ledger.SumSHA256([]byte("block"))}))
	}
	c, err := ledger.NewCertificate(votes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sampleBlock(t testing.TB) *ledger.Block {
	c := ledgertest.NewChain(t, 4)
	c.Next(nil)
	return c.Next([]ledger.Record{sampleRecord(t, true), sampleRecord2(t)})
}

func sampleRecord2(t testing.TB) ledger.Record {
	return ledger.Record{
		Key:    mustKey(t, "ssh://git@example.com:2222/team/tool.git@release/2.0"),
		Commit: strings.Repeat("0123456789abcdef", 4),
		Tree:   t1("tool"),
	}
}

// An encoding is one canonical encoding under test: its bytes and its
// parser, which on success returns the value's Format().
type encoding struct {
	name  string
	data  []byte
	parse func([]byte) ([]byte, error)
}

func encodings(t testing.TB) []encoding {
	rec, rech1 := sampleRecord(t, false), sampleRecord(t, true)
	poa, pow := sampleHeader(ledger.EnginePoA), sampleHeader(ledger.EnginePoW)
	gpoa, gpow := sampleGenesis(ledger.EnginePoA), sampleGenesis(ledger.EnginePoW)
	pre, preNil := sampleVote(ledger.Prevote, false), sampleVote(ledger.Precommit, true)
	att := ledger.Attest(ledgertest.Signer(1), "main", rech1)
	att2 := ledger.Attest(ledgertest.Signer(1), "main", rec)
	cert := sampleCertificate(t)
	blk := sampleBlock(t)
	gblk := gpoa.Block()
	return []encoding{
		{"record", rec.Format(), parseRecord},
		{"record with h1", rech1.Format(), parseRecord},
		{"poa header", poa.Format(), parseHeader},
		{"pow header", pow.Format(), parseHeader},
		{"prevote", pre.Vote.Format(), parseVote},
		{"nil precommit", preNil.Vote.Format(), parseVote},
		{"signed prevote", pre.Format(), parseSignedVote},
		{"signed nil precommit", preNil.Format(), parseSignedVote},
		{"certificate", cert.Format(), parseCertificate},
		{"attestation with h1", att.Format(), parseAttestation},
		{"attestation", att2.Format(), parseAttestation},
		{"poa genesis", gpoa.Format(), parseGenesis},
		{"pow genesis", gpow.Format(), parseGenesis},
		{"block", blk.Format(), parseBlock},
		{"genesis block", gblk.Format(), parseBlock},
	}
}

func parseRecord(b []byte) ([]byte, error) {
	x, err := ledger.ParseRecord(b)
	if err != nil {
		return nil, err
	}
	return x.Format(), nil
}

func parseHeader(b []byte) ([]byte, error) {
	x, err := ledger.ParseHeader(b)
	if err != nil {
		return nil, err
	}
	return x.Format(), nil
}

func parseVote(b []byte) ([]byte, error) {
	x, err := ledger.ParseVote(b)
	if err != nil {
		return nil, err
	}
	return x.Format(), nil
}

func parseSignedVote(b []byte) ([]byte, error) {
	x, err := ledger.ParseSignedVote(b)
	if err != nil {
		return nil, err
	}
	return x.Format(), nil
}

func parseCertificate(b []byte) ([]byte, error) {
	x, err := ledger.ParseCertificate(b)
	if err != nil {
		return nil, err
	}
	return x.Format(), nil
}

func parseAttestation(b []byte) ([]byte, error) {
	x, err := ledger.ParseAttestation(b)
	if err != nil {
		return nil, err
	}
	return x.Format(), nil
}

func parseGenesis(b []byte) ([]byte, error) {
	x, err := ledger.ParseGenesis(b)
	if err != nil {
		return nil, err
	}
	return x.Format(), nil
}

func parseBlock(b []byte) ([]byte, error) {
	x, err := ledger.ParseBlock(b)
	if err != nil {
		return nil, err
	}
	return x.Format(), nil
}

func TestRoundTrip(t *testing.T) {
	for _, e := range encodings(t) {
		got, err := e.parse(e.data)
		if err != nil || !bytes.Equal(got, e.data) {
			t.Errorf("Parse %s(%q) = %q, %v; want the input back", e.name, e.data, got, err)
		}
	}
}

func TestBlockWriter(t *testing.T) {
	c := ledgertest.NewChain(t, 4)
	c.Next(nil)
	records := []ledger.Record{sampleRecord(t, true), sampleRecord2(t)} // with h1 and without
	b := c.NextWith(records, []ledger.AuthorityChange{c.Change(ledger.AuthorityAdd, ledgertest.Signer(4).Public(), "v4", 5)})
	b.Attestations = append(b.Attestations, ledger.Attest(ledgertest.Signer(9), "elsewhere", records[0]))
	refs := len(b.Attestations) - 1 // attestations of the block's own records

	w := ledger.NewBlockWriter(b.Header.Format(), 0)
	for i := range b.Records {
		w.Record(b.Records[i].Format())
	}
	w.Authority(b.Authority[0].Format())
	w.Certificate(b.Certificate.Format())
	for i, a := range b.Attestations {
		if i == refs {
			w.Attestation(a.Format())
			continue
		}
		if err := w.AttestationOf(a.Chain, a.Validator, a.Record.Format(), a.Sig); err != nil {
			t.Fatalf("AttestationOf(%s) = %v", a.Record.Key, err)
		}
	}
	if got, want := w.Bytes(), b.Format(); !bytes.Equal(got, want) {
		t.Errorf("BlockWriter wrote\n%q\nwant Format's\n%q", got, want)
	}
	if got, err := ledger.ParseBlock(w.Bytes()); err != nil || !reflect.DeepEqual(got, b) {
		t.Errorf("ParseBlock(BlockWriter's bytes) = %+v, %v; want %+v", got, err, b)
	}

	a := b.Attestations[0]
	for _, bad := range [][]byte{nil, []byte("vcsledger-record/1"), a.Format()} {
		w := ledger.NewBlockWriter(b.Header.Format(), 0)
		before := bytes.Clone(w.Bytes())
		if err := w.AttestationOf(a.Chain, a.Validator, bad, a.Sig); !errors.Is(err, ledger.ErrMalformed) || !bytes.Equal(w.Bytes(), before) {
			t.Errorf("AttestationOf(record %q) = %v, wrote %d bytes; want ErrMalformed and nothing written", bad, err, len(w.Bytes())-len(before))
		}
	}
}

func TestRoundTripValues(t *testing.T) {
	for _, r := range []ledger.Record{sampleRecord(t, false), sampleRecord(t, true), sampleRecord2(t)} {
		got, err := ledger.ParseRecord(r.Format())
		if err != nil || *got != r {
			t.Errorf("ParseRecord(%q) = %+v, %v; want %+v", r.Format(), got, err, r)
		}
	}
	for _, h := range []ledger.Header{sampleHeader(ledger.EnginePoA), sampleHeader(ledger.EnginePoW)} {
		got, err := ledger.ParseHeader(h.Format())
		if err != nil || *got != h {
			t.Errorf("ParseHeader(%q) = %+v, %v; want %+v", h.Format(), got, err, h)
		}
	}
	for _, sv := range []ledger.SignedVote{sampleVote(ledger.Prevote, false), sampleVote(ledger.Precommit, true)} {
		got, err := ledger.ParseSignedVote(sv.Format())
		if err != nil || *got != sv {
			t.Errorf("ParseSignedVote(%q) = %+v, %v; want %+v", sv.Format(), got, err, sv)
		}
		v, err := ledger.ParseVote(sv.Vote.Format())
		if err != nil || *v != sv.Vote {
			t.Errorf("ParseVote(%q) = %+v, %v; want %+v", sv.Vote.Format(), v, err, sv.Vote)
		}
	}
	c := sampleCertificate(t)
	if got, err := ledger.ParseCertificate(c.Format()); err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("ParseCertificate(%q) = %+v, %v; want %+v", c.Format(), got, err, c)
	}
	a := ledger.Attest(ledgertest.Signer(1), "main", sampleRecord(t, true))
	if got, err := ledger.ParseAttestation(a.Format()); err != nil || *got != a {
		t.Errorf("ParseAttestation(%q) = %+v, %v; want %+v", a.Format(), got, err, a)
	}
	for _, g := range []*ledger.Genesis{sampleGenesis(ledger.EnginePoA), sampleGenesis(ledger.EnginePoW)} {
		got, err := ledger.ParseGenesis(g.Format())
		// Validators come back sorted by key.
		want := *g
		if vs, err := g.ValidatorSet(); err == nil {
			want.Validators = vs.Validators()
		}
		if err != nil || !reflect.DeepEqual(got, &want) {
			t.Errorf("ParseGenesis(%q) = %+v, %v; want %+v", g.Format(), got, err, &want)
		}
	}
	b := sampleBlock(t)
	if got, err := ledger.ParseBlock(b.Format()); err != nil || !reflect.DeepEqual(got, b) {
		t.Errorf("ParseBlock = %+v, %v; want %+v", got, err, b)
	}
}

var (
	reHex    = regexp.MustCompile(`[0-9a-f]{64,}`)
	reNumber = regexp.MustCompile(`(?m)^(height|round|time|records|nonce|bits|quorum|attest_quorum|block_interval_ms|retarget|confirmations|log) ([0-9]+)`)
)

// mutations of a canonical text encoding, each of which must be refused.
var mutations = []struct {
	name string
	f    func([]byte) []byte
}{
	{"empty", func(b []byte) []byte { return nil }},
	{"missing final LF", func(b []byte) []byte { return b[:len(b)-1] }},
	{"extra LF", func(b []byte) []byte { return append(b, '\n') }},
	{"trailing byte", func(b []byte) []byte { return append(b, 'x') }},
	{"trailing NUL", func(b []byte) []byte { return append(b, 0) }},
	{"unknown last line", func(b []byte) []byte { return append(b, "extra 1\n"...) }},
	{"unknown second line", func(b []byte) []byte {
		i := bytes.IndexByte(b, '\n')
		return append(append(b[:i+1:i+1], "extra 1\n"...), b[i+1:]...)
	}},
	{"CRLF", func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }},
	{"CR before last LF", func(b []byte) []byte { return append(b[:len(b)-1], "\r\n"...) }},
	{"wrong magic version", func(b []byte) []byte { return bytes.Replace(b, []byte("/1\n"), []byte("/2\n"), 1) }},
	{"magic upper case", func(b []byte) []byte {
		i := bytes.IndexByte(b, '\n')
		return append(bytes.ToUpper(b[:i:i]), b[i:]...)
	}},
	{"leading space", func(b []byte) []byte { return append([]byte(" "), b...) }},
	{"BOM", func(b []byte) []byte { return append([]byte("\ufeff"), b...) }},
	{"second and third lines swapped", func(b []byte) []byte {
		ls := bytes.SplitAfter(b, []byte("\n"))
		if len(ls) < 4 {
			return nil
		}
		ls[1], ls[2] = ls[2], ls[1]
		return bytes.Join(ls, nil)
	}},
	{"last two lines swapped", func(b []byte) []byte {
		ls := bytes.SplitAfter(b, []byte("\n"))
		ls = ls[:len(ls)-1] // the empty string after the last LF
		ls[len(ls)-1], ls[len(ls)-2] = ls[len(ls)-2], ls[len(ls)-1]
		return bytes.Join(ls, nil)
	}},
	{"double space after second field name", func(b []byte) []byte {
		ls := bytes.SplitAfter(b, []byte("\n"))
		ls[1] = bytes.Replace(ls[1], []byte(" "), []byte("  "), 1)
		return bytes.Join(ls, nil)
	}},
	{"trailing space on second line", func(b []byte) []byte {
		ls := bytes.SplitAfter(b, []byte("\n"))
		ls[1] = append(ls[1][:len(ls[1])-1:len(ls[1])-1], " \n"...)
		return bytes.Join(ls, nil)
	}},
	{"tab for space", func(b []byte) []byte {
		ls := bytes.SplitAfter(b, []byte("\n"))
		ls[1] = bytes.Replace(ls[1], []byte(" "), []byte("\t"), 1)
		return bytes.Join(ls, nil)
	}},
	{"upper-case hex", func(b []byte) []byte {
		loc := reHex.FindIndex(b)
		if loc == nil {
			return nil
		}
		out := append([]byte(nil), b...)
		copy(out[loc[0]:], bytes.ToUpper(b[loc[0]:loc[1]]))
		if bytes.Equal(out, b) {
			return nil
		}
		return out
	}},
	{"short hex", func(b []byte) []byte {
		loc := reHex.FindIndex(b)
		if loc == nil {
			return nil
		}
		return append(b[:loc[1]-1:loc[1]-1], b[loc[1]:]...)
	}},
	{"leading zero", func(b []byte) []byte { return reNumber.ReplaceAll(b, []byte("$1 0$2")) }},
	{"plus sign", func(b []byte) []byte { return reNumber.ReplaceAll(b, []byte("$1 +$2")) }},
	{"minus sign", func(b []byte) []byte { return reNumber.ReplaceAll(b, []byte("$1 -$2")) }},
	{"huge number", func(b []byte) []byte { return reNumber.ReplaceAll(b, []byte("$1 ${2}99999999999999999999")) }},
}

func TestStrict(t *testing.T) {
	for _, e := range encodings(t) {
		if e.name == "block" || e.name == "genesis block" {
			continue // not line-based; see TestParseBlockStrict
		}
		for _, m := range mutations {
			in := m.f(append([]byte(nil), e.data...))
			if in == nil && m.name != "empty" || bytes.Equal(in, e.data) {
				continue // the mutation does not apply
			}
			got, err := e.parse(in)
			if err == nil {
				t.Errorf("Parse %s (%s) = %q, nil; want error\ninput: %q", e.name, m.name, got, in)
				continue
			}
			if !errors.Is(err, ledger.ErrMalformed) && !strings.Contains(err.Error(), "genesis") {
				t.Errorf("Parse %s (%s) = %v; want ErrMalformed", e.name, m.name, err)
			}
		}
	}
}

// TestStrictEveryByte flips each byte of each encoding in turn (to a few
// values): the parser must either refuse the result or return a value that
// formats back to exactly it.
func TestStrictEveryByte(t *testing.T) {
	for _, e := range encodings(t) {
		step := 1
		if len(e.data) > 1000 {
			step = 7 // blocks: their sections are covered one by one above
		}
		for i := 0; i < len(e.data); i += step {
			for _, c := range []byte{'\n', ' ', '0', 'A', e.data[i] ^ 1} {
				in := append([]byte(nil), e.data...)
				in[i] = c
				if got, err := e.parse(in); err == nil && !bytes.Equal(got, in) {
					t.Fatalf("Parse %s(%q) = %q; want it back or an error", e.name, in, got)
				}
			}
		}
	}
}

func lines(ls ...string) []byte { return []byte(strings.Join(ls, "\n") + "\n") }

func TestParseRecordStrict(t *testing.T) {
	r := sampleRecord(t, true)
	key, commit, tree, hh := "key "+r.Key.String(), "commit "+r.Commit, "tree "+r.Tree, "h1 "+r.H1
	if _, err := ledger.ParseRecord(lines("vcsledger-record/1", key, commit, tree, hh)); err != nil {
		t.Fatalf("ParseRecord(valid) = %v", err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"non-canonical key", lines("vcsledger-record/1", "key https://github.com/golang/go.git@go1.21.0", commit, tree)},
		{"key without tag", lines("vcsledger-record/1", "key github.com/golang/go", commit, tree)},
		{"key with bad tag", lines("vcsledger-record/1", "key github.com/golang/go@v1..2", commit, tree)},
		{"empty key", lines("vcsledger-record/1", "key ", commit, tree)},
		{"no key line", lines("vcsledger-record/1", commit, tree)},
		{"commit 39 digits", lines("vcsledger-record/1", key, "commit "+r.Commit[:39], tree)},
		{"commit 41 digits", lines("vcsledger-record/1", key, "commit "+r.Commit+"0", tree)},
		{"commit 63 digits", lines("vcsledger-record/1", key, "commit "+strings.Repeat("a", 63), tree)},
		{"commit upper case", lines("vcsledger-record/1", key, "commit "+strings.ToUpper(r.Commit), tree)},
		{"commit not hex", lines("vcsledger-record/1", key, "commit "+strings.Repeat("g", 40), tree)},
		{"commit and tree swapped", lines("vcsledger-record/1", key, tree, commit)},
		{"h1 before tree", lines("vcsledger-record/1", key, commit, hh, tree)},
		{"tree twice", lines("vcsledger-record/1", key, commit, tree, tree)},
		{"h1 twice", lines("vcsledger-record/1", key, commit, tree, hh, hh)},
		{"empty h1", lines("vcsledger-record/1", key, commit, tree, "h1 ")},
		{"tree without prefix", lines("vcsledger-record/1", key, commit, "tree "+strings.TrimPrefix(r.Tree, "t1:"))},
		{"tree with h1 prefix", lines("vcsledger-record/1", key, commit, "tree "+r.H1)},
		{"h1 with t1 prefix", lines("vcsledger-record/1", key, commit, tree, "h1 "+r.Tree)},
		{"tree too short", lines("vcsledger-record/1", key, commit, "tree t1:"+base64.StdEncoding.EncodeToString(make([]byte, 31)))},
		{"tree too long", lines("vcsledger-record/1", key, commit, "tree t1:"+base64.StdEncoding.EncodeToString(make([]byte, 33)))},
		{"tree unpadded", lines("vcsledger-record/1", key, commit, "tree "+strings.TrimRight(r.Tree, "="))},
		{"tree URL base64", lines("vcsledger-record/1", key, commit, "tree t1:"+base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)))},
		// 32 bytes encode to 43 digits and '='; the last digit carries 2
		// unused bits, which canonical base64 sets to zero.
		{"tree non-zero padding bits", lines("vcsledger-record/1", key, commit, "tree t1:"+base64.StdEncoding.EncodeToString(make([]byte, 32))[:42]+"B=")},
		{"unknown field", lines("vcsledger-record/1", key, commit, tree, "go h1:x")},
		{"magic only", lines("vcsledger-record/1")},
	} {
		if got, err := ledger.ParseRecord(tc.in); err == nil {
			t.Errorf("ParseRecord(%s) = %+v, nil; want error", tc.name, got)
		}
	}
	// Check refuses what ParseRecord refuses, for values built in code.
	for _, tc := range []struct {
		name   string
		change func(r *ledger.Record)
	}{
		{"zero key", func(r *ledger.Record) { r.Key = ledger.Key{} }},
		{"non-canonical repo", func(r *ledger.Record) { r.Key.Repo = "GitHub.com/golang/go" }},
		{"bad tag", func(r *ledger.Record) { r.Key.Tag = "v1 " }},
		{"bad commit", func(r *ledger.Record) { r.Commit = "x" }},
		{"empty tree", func(r *ledger.Record) { r.Tree = "" }},
		{"bad h1", func(r *ledger.Record) { r.H1 = "h1:" }},
	} {
		r := sampleRecord(t, true)
		tc.change(&r)
		if err := r.Check(); !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("Record.Check(%s) = %v; want ErrMalformed", tc.name, err)
		}
	}
	for _, c := range []string{strings.Repeat("a", 40), strings.Repeat("0", 64)} {
		if err := ledger.CheckCommit(c); err != nil {
			t.Errorf("CheckCommit(%q) = %v; want nil", c, err)
		}
	}
}

// TestPlainRecord checks ParseRecord's one-pass shortcut against its full
// parse: on the golden records, random records and every one-byte change
// of them, what the shortcut accepts the full parse accepts as the same
// record; and the shortcut decides the plain records, with and without h1.
// On every input, ParseRecordString gives what ParseRecord gives.
func TestPlainRecord(t *testing.T) {
	var inputs [][]byte
	for _, withH1 := range []bool{false, true} {
		r := sampleRecord(t, withH1)
		inputs = append(inputs, r.Format())
	}
	for _, r := range ledgertest.Records(rand.New(rand.NewPCG(3, 3)), 0, 50) {
		inputs = append(inputs, r.Format())
	}
	var vecs []recordVector
	readVector(t, "records.json", &vecs)
	for _, v := range vecs {
		enc, err := base64.StdEncoding.DecodeString(v.Encoded)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, enc)
	}
	plain := len(inputs)
	for _, in := range inputs[:plain] {
		for i := range in {
			for _, c := range []byte{'\n', ' ', '.', '/', '@', '0', 'A', '=', in[i] ^ 1, in[i] ^ 0x20} {
				out := append([]byte(nil), in...)
				out[i] = c
				inputs = append(inputs, out, out[:i], append(out[:i+1:i+1], in[i:]...))
			}
		}
	}
	decided := 0
	for i, in := range inputs {
		// ParseRecordString decides as ParseRecord does.
		pr, perr := ledger.ParseRecord(in)
		sr, serr := ledger.ParseRecordString(string(in))
		if (perr == nil) != (serr == nil) || perr == nil && *pr != sr || perr != nil && perr.Error() != serr.Error() {
			t.Fatalf("ParseRecordString(%q) = %+v, %v; ParseRecord gives %+v, %v", in, sr, serr, pr, perr)
		}
		r, ok := ledger.PlainRecord(in)
		if !ok {
			if i < 2 {
				t.Errorf("PlainRecord(%q) does not decide a plain record", in)
			}
			continue
		}
		decided++
		full, err := ledger.ParseRecordFull(in)
		if err != nil || *full != *r {
			t.Fatalf("PlainRecord(%q) = %+v; the full parse gives %+v, %v", in, r, full, err)
		}
	}
	t.Logf("%d of %d inputs decided by PlainRecord", decided, len(inputs))
}

// TestSHA256Base64 checks the base64 digit table against encoding/base64's
// strict decoder, on every last digit and on random values.
func TestSHA256Base64(t *testing.T) {
	strict := base64.StdEncoding.Strict()
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range 2000 {
		var sum [32]byte
		for j := range sum {
			sum[j] = byte(rng.Uint32())
		}
		s := []byte(base64.StdEncoding.EncodeToString(sum[:]))
		switch {
		case i < 256:
			s[42] = byte(i) // every byte as the last digit
		case i < 512:
			s[i%44] = byte(i) // every byte somewhere
		}
		var out [33]byte
		n, err := strict.Decode(out[:], s)
		want := err == nil && n == 32
		if got := ledger.IsSHA256Base64(string(s)); got != want {
			t.Errorf("isSHA256Base64(%q) = %v; strict decoding gives %d bytes, %v", s, got, n, err)
		}
	}
}

func TestRecordLeafHash(t *testing.T) {
	r := sampleRecord(t, true)
	want := sha256.Sum256(append([]byte{0}, r.Format()...))
	if got := r.LeafHash(); got != ledger.Hash(want) {
		t.Errorf("LeafHash() = %v, want %x", got, want)
	}
	wantText := "vcsledger-record/1\nkey github.com/golang/go@go1.21.0\ncommit c19c3a3ec4b4e7b2a0b0c0bd7a3b3ba7f0d2c7e1\ntree " + t1("go1.21.0") + "\nh1 " + h1("go1.21.0") + "\n"
	if got := string(r.Format()); got != wantText {
		t.Errorf("Format() = %q, want %q", got, wantText)
	}
}

// TestEncodedKey checks that EncodedKey reads the key of every record's
// canonical bytes, and no key from other bytes.
func TestEncodedKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range 200 {
		r := ledgertest.RandomRecord(rng, i)
		if k, ok := ledger.EncodedKey(r.Format()); !ok || k != r.Key.String() {
			t.Fatalf("EncodedKey(record of %s) = %q, %v", r.Key, k, ok)
		}
	}
	for _, b := range []string{"", "vcsledger-record/1\n", "vcsledger-record/1\nkey ", "vcsledger-record/1\nkey \n", "vcsledger-record/1\nkey a@b", "vcsledger-authority/1\nchain x\n", "x\nkey a@b\n"} {
		if k, ok := ledger.EncodedKey([]byte(b)); ok {
			t.Errorf("EncodedKey(%q) = %q, true; want false", b, k)
		}
	}
}

func TestParseHeaderStrict(t *testing.T) {
	hpoa, hpow := sampleHeader(ledger.EnginePoA), sampleHeader(ledger.EnginePoW)
	poa, pow := string(hpoa.Format()), string(hpow.Format())
	for _, tc := range []struct {
		name, in string
	}{
		{"unknown engine", strings.Replace(poa, "engine poa", "engine pos", 1)},
		{"poa without proposer", regexp.MustCompile(`proposer [0-9a-f]+\n`).ReplaceAllString(poa, "")},
		{"poa with bits", poa + "bits 1\nnonce 1\n"},
		{"pow with proposer", strings.Replace(pow, "records ", "proposer "+ledgertest.Signer(1).Public().String()+"\nrecords ", 1)},
		{"pow without nonce", strings.Replace(pow, "nonce 123456789\n", "", 1)},
		{"pow bits 257", strings.Replace(pow, "bits 20", "bits 257", 1)},
		{"log without root", regexp.MustCompile(`log 100 [0-9a-f]+`).ReplaceAllString(poa, "log 100")},
		{"log with three fields", regexp.MustCompile(`log 100 ([0-9a-f]+)`).ReplaceAllString(poa, "log 100 $1 1")},
		{"log size 0100", strings.Replace(poa, "log 100 ", "log 0100 ", 1)},
		{"log two spaces", strings.Replace(poa, "log 100 ", "log  100 ", 1)},
		{"log trailing space", regexp.MustCompile(`log 100 ([0-9a-f]+)`).ReplaceAllString(poa, "log 100 $1 ")},
		{"log root short", regexp.MustCompile(`log 100 ([0-9a-f]+)[0-9a-f]`).ReplaceAllString(poa, "log 100 $1")},
		{"time past 2^62", strings.Replace(poa, "time 1700000042000", "time 4611686018427387905", 1)},
		{"negative time", strings.Replace(poa, "time 1700000042000", "time -1", 1)},
		{"chain id with space", strings.Replace(poa, "chain main-net_1.0", "chain main net", 1)},
		{"chain id with slash", strings.Replace(poa, "chain main-net_1.0", "chain main/net", 1)},
		{"chain id 65 bytes", strings.Replace(poa, "chain main-net_1.0", "chain "+strings.Repeat("c", 65), 1)},
		{"prev short", regexp.MustCompile(`prev [0-9a-f]`).ReplaceAllString(poa, "prev ")},
	} {
		if got, err := ledger.ParseHeader([]byte(tc.in)); err == nil {
			t.Errorf("ParseHeader(%s) = %+v, nil; want error\ninput: %q", tc.name, got, tc.in)
		} else if !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("ParseHeader(%s) = %v; want ErrMalformed", tc.name, err)
		}
	}
	// Boundaries that are accepted.
	h := sampleHeader(ledger.EnginePoW)
	h.Height, h.Nonce, h.LogSize, h.Records, h.Bits, h.Time = 1<<64-1, 1<<64-1, 1<<64-1, 0, 256, 1<<62
	if got, err := ledger.ParseHeader(h.Format()); err != nil || *got != h {
		t.Errorf("ParseHeader(%q) = %+v, %v; want %+v", h.Format(), got, err, h)
	}
	var fe *ledger.FormatError
	_, err := ledger.ParseHeader([]byte(strings.Replace(poa, "height 42", "height 042", 1)))
	if !errors.As(err, &fe) || fe.What != "header" || fe.Line != 3 {
		t.Errorf("ParseHeader(height 042) = %v; want a *FormatError for header line 3", err)
	}
}

func TestHeaderFormat(t *testing.T) {
	h := sampleHeader(ledger.EnginePoA)
	want := "vcsledger-block/1\nchain main-net_1.0\nheight 42\nprev " + h.Prev.String() + "\ntime 1700000042000\nengine poa\nproposer " +
		h.Proposer.String() + "\nrecords 3\nlog 100 " + h.LogRoot.String() + "\n"
	if got := string(h.Format()); got != want {
		t.Errorf("Format() = %q, want %q", got, want)
	}
	if got, want := h.Hash(), ledger.Hash(sha256.Sum256([]byte(want))); got != want {
		t.Errorf("Hash() = %v, want %v", got, want)
	}
	p := sampleHeader(ledger.EnginePoW)
	if got := string(p.Format()); !strings.HasSuffix(got, "\nengine pow\nrecords 3\nlog 100 "+p.LogRoot.String()+"\nbits 20\nnonce 123456789\n") {
		t.Errorf("pow Format() = %q", got)
	}
}

func TestParseVoteStrict(t *testing.T) {
	sv := sampleVote(ledger.Prevote, false)
	v := string(sv.Vote.Format())
	s := string(sv.Format())
	for _, tc := range []struct {
		name string
		in   string
		sig  bool
	}{
		{"zero block instead of nil", strings.Replace(v, "block "+sv.Block.String(), "block "+ledger.ZeroHash.String(), 1), false},
		{"block NIL", strings.Replace(v, "block "+sv.Block.String(), "block NIL", 1), false},
		{"block empty", strings.Replace(v, "block "+sv.Block.String(), "block ", 1), false},
		{"unknown type", strings.Replace(v, "type prevote", "type propose", 1), false},
		{"round 2^31+1", strings.Replace(v, "round 2", "round 2147483649", 1), false},
		{"vote with signature", s, false},
		{"signed vote without signature", v, true},
		{"signature short", s[:len(s)-2] + "\n", true},
		{"signature twice", s + s[strings.LastIndex(s[:len(s)-1], "\n")+1:], true},
		{"attest magic", strings.Replace(s, "vcsledger-vote/1", "vcsledger-attest/1", 1), true},
		{"bad validator", strings.Replace(v, "validator "+sv.Validator.String(), "validator 00", 1), false},
	} {
		var err error
		if tc.sig {
			_, err = ledger.ParseSignedVote([]byte(tc.in))
		} else {
			_, err = ledger.ParseVote([]byte(tc.in))
		}
		if !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("Parse vote (%s) = %v; want ErrMalformed\ninput: %q", tc.name, err, tc.in)
		}
	}
}

func TestParseCertificateStrict(t *testing.T) {
	c := sampleCertificate(t)
	s := string(c.Format())
	ls := strings.SplitAfter(s, "\n")
	head, sigs := strings.Join(ls[:5], ""), ls[5:len(ls)-1]
	for _, tc := range []struct {
		name, in string
	}{
		{"no signatures", head},
		{"unsorted", head + sigs[1] + sigs[0] + strings.Join(sigs[2:], "")},
		{"repeated", head + sigs[0] + strings.Join(sigs, "")},
		{"sig line without signature", head + "sig " + c.Sigs[0].Validator.String() + "\n"},
		{"sig line with three fields", head + strings.TrimSuffix(sigs[0], "\n") + " 00\n"},
		{"nil block", strings.Replace(s, "block "+c.Block.String(), "block nil", 1)},
		{"unknown line between sigs", head + sigs[0] + "x y\n" + strings.Join(sigs[1:], "")},
	} {
		if _, err := ledger.ParseCertificate([]byte(tc.in)); !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("ParseCertificate(%s) = %v; want ErrMalformed\ninput: %q", tc.name, err, tc.in)
		}
	}
}

func TestParseAttestationStrict(t *testing.T) {
	a := ledger.Attest(ledgertest.Signer(1), "main", sampleRecord(t, true))
	s := string(a.Format())
	msg := string(a.Message())
	sigLine := s[len(msg):]
	for _, tc := range []struct {
		name, in string
	}{
		{"no signature", msg},
		{"signature first", strings.Replace(msg, "chain main\n", "chain main\n"+sigLine, 1)},
		{"signature before h1", strings.Replace(s, "h1 ", strings.TrimSuffix(sigLine, "\n")+"\nh1 ", 1)},
		{"two signatures", s + sigLine},
		{"record magic inside", strings.Replace(s, "key ", "vcsledger-record/1\nkey ", 1)},
		{"non-canonical key", strings.Replace(s, "key github.com/golang/go@", "key https://github.com/golang/go@", 1)},
		{"no record", strings.Split(s, "key ")[0] + sigLine},
		{"validator and chain swapped", strings.Replace(s, "chain main\nvalidator "+a.Validator.String()+"\n", "validator "+a.Validator.String()+"\nchain main\n", 1)},
		{"sig glued to tree", strings.Replace(s, "\nsig ", "sig ", 1)},
	} {
		if _, err := ledger.ParseAttestation([]byte(tc.in)); !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("ParseAttestation(%s) = %v; want ErrMalformed\ninput: %q", tc.name, err, tc.in)
		}
	}
	want := "vcsledger-attest/1\nchain main\nvalidator " + a.Validator.String() + "\nkey github.com/golang/go@go1.21.0\ncommit " +
		a.Record.Commit + "\ntree " + a.Record.Tree + "\nh1 " + a.Record.H1 + "\n"
	if msg != want {
		t.Errorf("Message() = %q, want %q", msg, want)
	}
}

func TestParseGenesisStrict(t *testing.T) {
	g := sampleGenesis(ledger.EnginePoA)
	s := string(g.Format())
	vs, _ := g.ValidatorSet()
	val := func(i int) string {
		return "validator " + vs.Validators()[i].Key.String() + " " + vs.Validators()[i].Name + "\n"
	}
	pow := string(sampleGenesis(ledger.EnginePoW).Format())
	for _, tc := range []struct {
		name, in string
	}{
		{"validators unsorted", strings.Replace(s, val(0)+val(1), val(1)+val(0), 1)},
		{"validator twice", strings.Replace(s, val(0), val(0)+val(0), 1)},
		{"no validators", strings.Replace(strings.Replace(strings.Replace(strings.Replace(s, val(0), "", 1), val(1), "", 1), val(2), "", 1), val(3), "", 1)},
		{"validator without name", strings.Replace(s, val(0), "validator "+vs.Validators()[0].Key.String()+"\n", 1)},
		{"validator name with space", strings.Replace(s, val(0), "validator "+vs.Validators()[0].Key.String()+" a b\n", 1)},
		{"validator name with slash", strings.Replace(s, val(0), "validator "+vs.Validators()[0].Key.String()+" a/b\n", 1)},
		{"quorum 2 of 4", strings.Replace(s, "quorum 0", "quorum 2", 1)},
		{"quorum 5 of 4", strings.Replace(s, "quorum 0", "quorum 5", 1)},
		{"quorum 2^63+3", strings.Replace(s, "quorum 0", "quorum 9223372036854775811", 1)},
		{"quorum 2^64-1", strings.Replace(s, "quorum 0", "quorum 18446744073709551615", 1)},
		{"attest_quorum -2", strings.Replace(s, "attest_quorum -1", "attest_quorum -2", 1)},
		{"attest_quorum 5 of 4", strings.Replace(s, "attest_quorum -1", "attest_quorum 5", 1)},
		{"attest_quorum 01", strings.Replace(s, "attest_quorum -1", "attest_quorum 01", 1)},
		{"attest_quorum -01", strings.Replace(s, "attest_quorum -1", "attest_quorum -01", 1)},
		{"block interval 0", strings.Replace(s, "block_interval_ms 2000", "block_interval_ms 0", 1)},
		{"block interval 2^63", strings.Replace(s, "block_interval_ms 2000", "block_interval_ms 9223372036854775808", 1)},
		{"time 2^63", strings.Replace(s, "time 1700000000000", "time 9223372036854775808", 1)},
		{"unknown engine", strings.Replace(s, "engine poa", "engine pos", 1)},
		{"bad chain id", strings.Replace(s, "chain main", "chain ma:in", 1)},
		{"pow with validators", pow + val(0)},
		{"pow bits 0", strings.Replace(pow, "bits 16", "bits 0", 1)},
		{"pow bits 256", strings.Replace(pow, "bits 16", "bits 256", 1)},
		{"pow bits 2^32+16", strings.Replace(pow, "bits 16", "bits 4294967312", 1)},
		{"pow retarget 0", strings.Replace(pow, "retarget 100", "retarget 0", 1)},
		{"pow confirmations 0", strings.Replace(pow, "confirmations 6", "confirmations 0", 1)},
		{"pow with quorum", strings.Replace(pow, "bits 16", "quorum 0\nbits 16", 1)},
	} {
		if got, err := ledger.ParseGenesis([]byte(tc.in)); err == nil {
			t.Errorf("ParseGenesis(%s) = %+v, nil; want error\ninput: %q", tc.name, got, tc.in)
		}
	}
}

func TestParseBlockStrict(t *testing.T) {
	b := sampleBlock(t)
	data := string(b.Format())
	if len(b.Records) != 2 || b.Certificate == nil || len(b.Attestations) != 4 {
		t.Fatalf("sample block has %d records, cert %v, %d attestations", len(b.Records), b.Certificate != nil, len(b.Attestations))
	}
	section := func(name string, body []byte) string { return fmt.Sprintf("%s %d\n%s", name, len(body), body) }
	hdr := section("header", b.Header.Format())
	rec := section("record", b.Records[0].Format()) + section("record", b.Records[1].Format())
	cert := section("certificate", b.Certificate.Format())
	var att string
	for i := range b.Attestations {
		att += section("attestation", b.Attestations[i].Format())
	}
	magic := "vcsledger-blockdata/1\n"
	if data != magic+hdr+rec+cert+att {
		t.Fatalf("Block.Format() = %q, want %q", data, magic+hdr+rec+cert+att)
	}
	// Without a certificate and attestations the block is still well formed.
	if _, err := ledger.ParseBlock([]byte(magic + hdr + rec)); err != nil {
		t.Errorf("ParseBlock(no certificate, no attestations) = %v; want nil", err)
	}
	if _, err := ledger.ParseBlock([]byte(magic + hdr + rec + att)); err != nil {
		t.Errorf("ParseBlock(attestations, no certificate) = %v; want nil", err)
	}
	oneRec := section("record", b.Records[0].Format())
	for _, tc := range []struct {
		name, in string
	}{
		{"empty", ""},
		{"magic only", magic},
		{"wrong magic", "vcsledger-block/1\n" + hdr + rec + cert + att},
		{"no header", magic + rec + cert + att},
		{"header twice", magic + hdr + hdr + rec + cert + att},
		{"one record, header says two", magic + hdr + oneRec + cert + att},
		{"three records, header says two", magic + hdr + rec + oneRec + cert + att},
		{"record after certificate", magic + hdr + oneRec + cert + section("record", b.Records[1].Format()) + att},
		{"certificate after attestations", magic + hdr + rec + att + cert},
		{"certificate twice", magic + hdr + rec + cert + cert + att},
		{"record after attestation", magic + hdr + oneRec + att + section("record", b.Records[1].Format())},
		{"unknown section", magic + hdr + rec + cert + att + section("evidence", []byte("x\n"))},
		{"trailing byte", data + "x"},
		{"trailing LF", data + "\n"},
		{"length too long", strings.Replace(data, fmt.Sprintf("header %d\n", len(b.Header.Format())), fmt.Sprintf("header %d\n", len(b.Header.Format())+1), 1)},
		{"length too short", strings.Replace(data, fmt.Sprintf("header %d\n", len(b.Header.Format())), fmt.Sprintf("header %d\n", len(b.Header.Format())-1), 1)},
		{"length past the end", magic + "header 99999\n" + string(b.Header.Format())},
		{"length with leading zero", strings.Replace(data, "header ", "header 0", 1)},
		{"length with plus", strings.Replace(data, "header ", "header +", 1)},
		{"length negative", magic + "header -1\n"},
		{"length huge", magic + "header 18446744073709551616\n"},
		{"section line without length", magic + "header\n" + string(b.Header.Format())},
		{"section line two spaces", strings.Replace(data, "header ", "header  ", 1)},
		{"section line CRLF", strings.Replace(data, fmt.Sprintf("header %d\n", len(b.Header.Format())), fmt.Sprintf("header %d\r\n", len(b.Header.Format())), 1)},
		{"bad record", magic + hdr + section("record", []byte("vcsledger-record/1\n")) + oneRec + cert + att},
		{"empty record", magic + hdr + section("record", nil) + oneRec + cert + att},
		{"bad certificate", magic + hdr + rec + section("certificate", []byte("x\n")) + att},
		{"bad attestation", magic + hdr + rec + cert + section("attestation", []byte("x\n"))},
		{"header with trailing bytes", magic + section("header", append(b.Header.Format(), 'x')) + rec + cert + att},
	} {
		if got, err := ledger.ParseBlock([]byte(tc.in)); err == nil {
			t.Errorf("ParseBlock(%s) = %+v, nil; want error", tc.name, got)
		} else if !errors.Is(err, ledger.ErrMalformed) {
			t.Errorf("ParseBlock(%s) = %v; want ErrMalformed", tc.name, err)
		}
	}
	big := make([]byte, ledger.MaxBlockBytes+1)
	copy(big, magic)
	if _, err := ledger.ParseBlock(big); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("ParseBlock(%d bytes) = %v; want ErrMalformed", len(big), err)
	}
	h := b.Header
	h.Records = ledger.MaxBlockRecords + 1
	if _, err := ledger.ParseBlock([]byte(magic + section("header", h.Format()))); !errors.Is(err, ledger.ErrMalformed) {
		t.Errorf("ParseBlock(header says %d records) = %v; want ErrMalformed", h.Records, err)
	}
}

func TestHashText(t *testing.T) {
	h := ledger.SumSHA256([]byte("abc"))
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if h.String() != want {
		t.Errorf("SumSHA256(abc) = %v, want %s", h, want)
	}
	if got, err := ledger.ParseHash(want); err != nil || got != h {
		t.Errorf("ParseHash(%q) = %v, %v; want %v", want, got, err, h)
	}
	for _, bad := range []string{"", strings.ToUpper(want), want[:63], want + "0", "0x" + want[2:], strings.Repeat("g", 64)} {
		if _, err := ledger.ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) = nil error; want error", bad)
		}
		if _, err := ledger.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) = nil error; want error", bad)
		}
	}
	if _, err := ledger.ParseSignature(want); err == nil {
		t.Errorf("ParseSignature(64 digits) = nil error; want error")
	}
	// Every byte in every place: only lowercase hex digits parse, to the
	// value encoding/hex gives.
	for c := range 256 {
		for _, at := range []int{0, 1, 62, 63} {
			in := []byte(want)
			in[at] = byte(c)
			got, err := ledger.ParseHash(string(in))
			dec, derr := hex.DecodeString(string(in))
			ok := derr == nil && strings.ToLower(string(in)) == string(in)
			if (err == nil) != ok || ok && !bytes.Equal(got[:], dec) {
				t.Errorf("ParseHash(%q) = %v, %v; encoding/hex gives %x, %v", in, got, err, dec, derr)
			}
		}
	}
	var h2 ledger.Hash
	if err := h2.UnmarshalText([]byte(want)); err != nil || h2 != h {
		t.Errorf("Hash.UnmarshalText(%q) = %v, %v", want, h2, err)
	}
	if b, _ := h.MarshalText(); string(b) != want {
		t.Errorf("Hash.MarshalText() = %s, want %s", b, want)
	}
	if !ledger.ZeroHash.IsZero() || h.IsZero() {
		t.Errorf("IsZero wrong")
	}
	k := ledgertest.Signer(0).Public()
	var k2 ledger.PublicKey
	if b, _ := k.MarshalText(); k2.UnmarshalText(b) != nil || k2 != k {
		t.Errorf("PublicKey text round trip: %v, want %v", k2, k)
	}
	sig := ledgertest.Signer(0).Sign([]byte("m"))
	var sig2 ledger.Signature
	if b, _ := sig.MarshalText(); sig2.UnmarshalText(b) != nil || sig2 != sig {
		t.Errorf("Signature text round trip: %v, want %v", sig2, sig)
	}
}
