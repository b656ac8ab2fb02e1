package ledger

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
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
func (r *Record) Format() []byte {
	var b textBuf
	b.WriteString(recordMagic + "\n")
	b.line("key", r.Key.String())
	b.line("commit", r.Commit)
	b.line("tree", r.Tree)
	if r.H1 != "" {
		b.line("h1", r.H1)
	}
	return b.Bytes()
}

// LeafHash returns the record's RFC 6962 leaf hash, SHA-256(0x00 || bytes).
func (r *Record) LeafHash() Hash { return Hash(tlog.RecordHash(r.Format())) }

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
	l := newLines("record", b)
	l.magic(recordMagic)
	var r Record
	ks := l.field("key")
	if l.err == nil {
		k, err := ParseKey(ks)
		if err != nil {
			l.fail("%v", err)
		} else if k.String() != ks {
			l.fail("key %q is not canonical (want %q)", clip(ks), clip(k.String()))
		}
		r.Key = k
	}
	r.Commit = l.field("commit")
	r.Tree = l.field("tree")
	if l.peek("h1") {
		r.H1 = l.field("h1")
	}
	if err := l.end(); err != nil {
		return nil, err
	}
	if err := r.Check(); err != nil {
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
	buf := make([]byte, len(s)/2)
	if err := parseHexFixed(s, buf); err != nil {
		return fmt.Errorf("commit %q: %v", clip(s), err)
	}
	return nil
}

// checkSHA256Hash checks prefix + standard base64 of 32 bytes, canonical.
func checkSHA256Hash(prefix, s string) error {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return fmt.Errorf("%q does not start with %q", clip(s), prefix)
	}
	sum, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil || len(sum) != sha256.Size {
		return fmt.Errorf("%q is not %s followed by base64 of 32 bytes", clip(s), prefix)
	}
	return nil
}
