package ledger

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
)

const recordMagic = "vcsledger-record/1"

// A Record is what the ledger stores for a key: the commit its tag peeled to
// and the t1 hash of that commit's tree, with the Go h1 hash for modules.
type Record struct {
	Key    Key
	Commit string // lowercase hex commit id (40 digits for SHA-1, 64 for SHA-256 repositories)
	Tree   string // "t1:" + base64 of a SHA-256
	H1     string // optional "h1:" + base64 of a SHA-256
}

// Format returns the record's canonical bytes (docs/FORMAT.md, "Record").
func (r *Record) Format() []byte { return r.AppendFormat(make([]byte, 0, r.size())) }

// size returns the length of r's canonical bytes.
func (r *Record) size() int {
	n := len(recordMagic) + len("\nkey @\ncommit \ntree \n") + len(r.Key.Repo) + len(r.Key.Tag) + len(r.Commit) + len(r.Tree)
	if r.H1 != "" {
		n += len("h1 \n") + len(r.H1)
	}
	return n
}

// AppendFormat appends the record's canonical bytes to b and returns the
// extended buffer.
func (r *Record) AppendFormat(b []byte) []byte {
	b = append(b, recordMagic+"\nkey "...)
	b = append(b, r.Key.Repo...)
	b = append(b, '@')
	b = append(b, r.Key.Tag...)
	b = append(b, "\ncommit "...)
	b = append(b, r.Commit...)
	b = append(b, "\ntree "...)
	b = append(b, r.Tree...)
	b = append(b, '\n')
	if r.H1 != "" {
		b = append(b, "h1 "...)
		b = append(b, r.H1...)
		b = append(b, '\n')
	}
	return b
}

// EncodedKey returns the key line's text (<repo>@<tag>) of b, which
// begins as a record's canonical bytes do, without parsing or checking
// the rest; false when b does not begin with a record's magic and key
// lines. Only bytes that ParseRecord accepts hold a valid key.
func EncodedKey(b []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(b, []byte(recordMagic+"\nkey "))
	if !ok {
		return "", false
	}
	key, _, ok := bytes.Cut(rest, []byte("\n"))
	return string(key), ok && len(key) > 0
}

// LeafHash returns the record's RFC 6962 leaf hash, SHA-256(0x00 || bytes).
func (r *Record) LeafHash() Hash {
	var buf [512]byte
	return leafHash(r.AppendFormat(buf[:0]))
}

// leafHash returns SHA-256(0x00 || data), tlog.RecordHash without its
// allocation.
func leafHash(data []byte) Hash {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out Hash
	h.Sum(out[:0])
	return out
}

// Check reports whether every field of r is well formed.
func (r *Record) Check() error {
	fail := func(format string, args ...any) error {
		return &FormatError{What: "record", Msg: fmt.Sprintf(format, args...)}
	}
	k, err := NewKey(r.Key.Repo, r.Key.Tag)
	if err != nil {
		return fail("%v", err)
	}
	if k != r.Key {
		return fail("key %q is not canonical (want %q)", r.Key.String(), k.String())
	}
	return r.checkFields()
}

// checkFields checks every field of r but the key.
func (r *Record) checkFields() error {
	fail := func(format string, args ...any) error {
		return &FormatError{What: "record", Msg: fmt.Sprintf(format, args...)}
	}
	if err := CheckCommit(r.Commit); err != nil {
		return fail("%v", err)
	}
	if err := checkSHA256Hash("t1:", r.Tree); err != nil {
		return fail("tree: %v", err)
	}
	if r.H1 != "" {
		if err := checkSHA256Hash("h1:", r.H1); err != nil {
			return fail("h1: %v", err)
		}
	}
	return nil
}

// ParseRecord parses a record's canonical bytes. It is strict: the result
// formats back to exactly b.
func ParseRecord(b []byte) (*Record, error) {
	r, err := ParseRecordString(string(b))
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// ParseRecordString is ParseRecord of canonical bytes held in a string.
// The record's fields are substrings of s, so a reader holding many
// records' bytes in one string parses them without copying.
func ParseRecordString(s string) (Record, error) {
	var r Record
	if parsePlainRecord(&r, s) {
		return r, nil
	}
	x, err := parseRecord([]byte(s))
	if err != nil {
		return Record{}, err
	}
	return *x, nil
}

// parsePlainRecord parses s into *r in one pass when it is a valid record
// whose key plainKey accepts; false says only that the full parse decides
// (*r is then to be overwritten). r's fields are substrings of s.
func parsePlainRecord(r *Record, s string) bool {
	const head = recordMagic + "\nkey "
	if !strings.HasPrefix(s, head) {
		return false
	}
	s = s[len(head):]
	n := strings.IndexByte(s, '\n')
	if n < 0 {
		return false
	}
	var ok bool
	if r.Key, ok = plainKey(s[:n]); !ok {
		return false
	}
	// The other lines are of fixed lengths: no search for their ends.
	s = s[n+1:]
	const commit = "commit "
	if !strings.HasPrefix(s, commit) {
		return false
	}
	s = s[len(commit):]
	n = 40
	if len(s) > n && s[n] != '\n' {
		n = 64
	}
	if len(s) <= n || s[n] != '\n' || !isLowerHex(s[:n]) {
		return false
	}
	r.Commit, s = s[:n], s[n+1:]
	if r.Tree, s, ok = cutHashLine(s, "tree ", "t1:"); !ok {
		return false
	}
	if s != "" {
		if r.H1, s, ok = cutHashLine(s, "h1 ", "h1:"); !ok || s != "" {
			return false
		}
	}
	return true
}

// cutHashLine cuts the line name, value, LF off the start of s, where
// value is prefix and the canonical base64 of 32 bytes, and returns value
// and the rest of s.
func cutHashLine(s, name, prefix string) (value, rest string, ok bool) {
	end := len(name) + len(prefix) + 44
	if len(s) <= end || s[end] != '\n' || s[:len(name)] != name || s[len(name):len(name)+len(prefix)] != prefix || !isSHA256Base64(s[len(name)+len(prefix):end]) {
		return "", "", false
	}
	return s[len(name):end], s[end+1:], true
}

// parseRecord is ParseRecord's full parse, which explains what is wrong.
func parseRecord(b []byte) (*Record, error) {
	l := NewTextReader("record", b)
	l.Magic(recordMagic)
	var r Record
	ks := l.Field("key")
	if l.err == nil {
		k, err := ParseKey(ks)
		if err != nil {
			l.Fail("%v", err)
		} else if !k.is(ks) {
			l.Fail("key %q is not canonical (want %q)", clip(ks), clip(k.String()))
		}
		r.Key = k
	}
	r.Commit = l.Field("commit")
	r.Tree = l.Field("tree")
	if l.Peek("h1") {
		r.H1 = l.Field("h1")
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	// The key is canonical (ParseKey's result formats back to the line):
	// what Check would add is the other fields.
	if err := r.checkFields(); err != nil {
		return nil, err
	}
	return &r, nil
}

// CheckCommit reports whether s is a lowercase hex commit id of 40 (SHA-1)
// or 64 (SHA-256) digits.
func CheckCommit(s string) error {
	if len(s) != 40 && len(s) != 64 {
		return fmt.Errorf("commit %q: want 40 or 64 lowercase hex digits", clip(s))
	}
	if !isLowerHex(s) {
		return fmt.Errorf("commit %q: not lowercase hex", clip(s))
	}
	return nil
}

// isLowerHex reports whether every byte of s is a lowercase hex digit.
func isLowerHex(s string) bool {
	// The OR of the digits' values: above 0xf if a byte is not one. Four
	// at a time, into four ORs, ran twice as fast as one at a time.
	var a, b, c, d byte
	i := 0
	for ; i+4 <= len(s); i += 4 {
		q := s[i : i+4]
		a |= hexValue[q[0]]
		b |= hexValue[q[1]]
		c |= hexValue[q[2]]
		d |= hexValue[q[3]]
	}
	for ; i < len(s); i++ {
		a |= hexValue[s[i]]
	}
	return a|b|c|d <= 0xf
}

// checkSHA256Hash checks prefix + standard base64 of 32 bytes, canonical.
func checkSHA256Hash(prefix, s string) error {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return fmt.Errorf("%q does not start with %q", clip(s), prefix)
	}
	if !isSHA256Base64(rest) {
		return fmt.Errorf("%q is not %s followed by base64 of 32 bytes", clip(s), prefix)
	}
	return nil
}

// base64Value is the value of each byte of the standard base64 alphabet,
// -1 for the others.
var base64Value = func() (t [256]int8) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = -1
	}
	for i := range len(alphabet) {
		t[alphabet[i]] = int8(i)
	}
	return t
}()

// isSHA256Base64 reports whether s is the standard, padded base64 of 32
// bytes, in its one canonical form: 43 digits, the last of which carries
// 4 bits of the data and 2 zero bits, then '='.
func isSHA256Base64(s string) bool {
	if len(s) != 44 || s[43] != '=' {
		return false
	}
	// The OR of the digits' values: negative if a byte is not one.
	var acc int8
	for i := range 43 {
		acc |= base64Value[s[i]]
	}
	return acc >= 0 && base64Value[s[42]]&3 == 0
}
