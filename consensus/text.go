package consensus

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/vcsledger/vcsledger/ledger"
)

// A FormatError says where an encoding of this package was refused. It
// wraps ErrMalformed.
type FormatError struct {
	What string // "message", "proposal", "signstate", "evidence"
	Line int    // 1-based line number, 0 when not known
	Msg  string
}

func (e *FormatError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("consensus: malformed %s: line %d: %s", e.What, e.Line, e.Msg)
	}
	return fmt.Sprintf("consensus: malformed %s: %s", e.What, e.Msg)
}

// Unwrap returns ErrMalformed.
func (e *FormatError) Unwrap() error { return ErrMalformed }

// lineReader reads the canonical text encodings of this package, which
// follow ledger's rules: LF-terminated "name value" lines in a fixed order,
// canonical numbers, lowercase hex, nothing after the last line.
type lineReader struct {
	what string
	rest []byte
	n    int
	err  error
}

func newLineReader(what string, b []byte) *lineReader { return &lineReader{what: what, rest: b} }

func (l *lineReader) fail(format string, args ...any) {
	if l.err == nil {
		l.err = &FormatError{What: l.what, Line: l.n, Msg: fmt.Sprintf(format, args...)}
	}
}

func (l *lineReader) next() (string, bool) {
	if l.err != nil {
		return "", false
	}
	l.n++
	i := bytes.IndexByte(l.rest, '\n')
	if i < 0 {
		if len(l.rest) == 0 {
			l.fail("unexpected end")
		} else {
			l.fail("line not terminated by LF")
		}
		return "", false
	}
	s := string(l.rest[:i])
	l.rest = l.rest[i+1:]
	if strings.IndexByte(s, '\r') >= 0 {
		l.fail("carriage return")
		return "", false
	}
	return s, true
}

func (l *lineReader) magic(want string) {
	if s, ok := l.next(); ok && s != want {
		l.fail("want %q, have %q", want, clip(s))
	}
}

// field reads "name value" with a non-empty value without spaces.
func (l *lineReader) field(name string) string {
	s, ok := l.next()
	if !ok {
		return ""
	}
	v, found := strings.CutPrefix(s, name+" ")
	if !found {
		l.fail("want field %q, have %q", name, clip(s))
		return ""
	}
	if v == "" || strings.IndexByte(v, ' ') >= 0 {
		l.fail("field %q: bad value %q", name, clip(v))
		return ""
	}
	return v
}

// fields reads "name v1 v2 ... vn" with exactly n non-empty values.
func (l *lineReader) fields(name string, n int) []string {
	s, ok := l.next()
	if !ok {
		return nil
	}
	v, found := strings.CutPrefix(s, name+" ")
	if !found {
		l.fail("want field %q, have %q", name, clip(s))
		return nil
	}
	f := strings.Split(v, " ")
	if len(f) != n {
		l.fail("field %q: want %d values", name, n)
		return nil
	}
	for _, x := range f {
		if x == "" {
			l.fail("field %q: empty value", name)
			return nil
		}
	}
	return f
}

func (l *lineReader) uint(name string) uint64 {
	v := l.field(name)
	if l.err != nil {
		return 0
	}
	n, err := parseUint(v)
	if err != nil {
		l.fail("field %q: %v", name, err)
	}
	return n
}

func (l *lineReader) round(name string) uint32 {
	n := l.uint(name)
	if l.err == nil && n > MaxRound {
		l.fail("field %q: round %d out of range", name, n)
	}
	return uint32(n)
}

func (l *lineReader) chain() string {
	c := l.field("chain")
	if l.err == nil {
		if err := ledger.CheckChainID(c); err != nil {
			l.fail("%v", err)
		}
	}
	return c
}

func (l *lineReader) polRound(name string) int32 {
	v := l.field(name)
	if l.err != nil {
		return 0
	}
	r, err := parseRound(v)
	if err != nil {
		l.fail("field %q: %v", name, err)
	}
	return r
}

func (l *lineReader) hash(name string) ledger.Hash {
	v := l.field(name)
	if l.err != nil {
		return ledger.Hash{}
	}
	h, err := ledger.ParseHash(v)
	if err != nil {
		l.fail("field %q: %v", name, err)
	}
	return h
}

func (l *lineReader) key(name string) ledger.PublicKey {
	v := l.field(name)
	if l.err != nil {
		return ledger.PublicKey{}
	}
	k, err := ledger.ParsePublicKey(v)
	if err != nil {
		l.fail("field %q: %v", name, err)
	}
	return k
}

func (l *lineReader) sig(name string) ledger.Signature {
	v := l.field(name)
	if l.err != nil {
		return ledger.Signature{}
	}
	s, err := ledger.ParseSignature(v)
	if err != nil {
		l.fail("field %q: %v", name, err)
	}
	return s
}

// section reads "name <length>\n" and the length bytes after it.
func (l *lineReader) section(name string, max int) []byte {
	n := l.uint(name)
	if l.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(l.rest)) {
		l.fail("section %q: bad length %d", name, n)
		return nil
	}
	b := l.rest[:n]
	l.rest = l.rest[n:]
	return b
}

func (l *lineReader) peek(name string) bool {
	return l.err == nil && bytes.HasPrefix(l.rest, []byte(name+" "))
}

func (l *lineReader) end() error {
	if l.err == nil && len(l.rest) > 0 {
		l.n++
		l.fail("unexpected trailing data")
	}
	return l.err
}

// parseUint parses a canonical decimal: no sign, no leading zeros.
func parseUint(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("non-canonical number %q", clip(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("non-canonical number %q", clip(s))
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %q out of range", clip(s))
	}
	return n, nil
}

// parseRound parses a round or -1 (none).
func parseRound(s string) (int32, error) {
	if s == "-1" {
		return -1, nil
	}
	n, err := parseUint(s)
	if err != nil {
		return 0, err
	}
	if n > MaxRound {
		return 0, fmt.Errorf("round %d out of range", n)
	}
	return int32(n), nil
}

// textBuf builds canonical encodings.
type textBuf struct{ bytes.Buffer }

func (b *textBuf) line(name string, values ...string) {
	b.WriteString(name)
	for _, v := range values {
		b.WriteByte(' ')
		b.WriteString(v)
	}
	b.WriteByte('\n')
}

func (b *textBuf) uint(name string, v uint64) { b.line(name, strconv.FormatUint(v, 10)) }

func (b *textBuf) section(name string, data []byte) {
	b.line(name, strconv.Itoa(len(data)))
	b.Write(data)
}

// hashOrNil is a hash in text, "nil" for the zero hash (a vote for nil).
func hashOrNil(h ledger.Hash) string {
	if h.IsZero() {
		return "nil"
	}
	return h.String()
}

func parseHashOrNil(s string) (ledger.Hash, error) {
	if s == "nil" {
		return ledger.Hash{}, nil
	}
	h, err := ledger.ParseHash(s)
	if err == nil && h.IsZero() {
		err = fmt.Errorf("zero hash: write nil")
	}
	return h, err
}

func clip(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
