package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every error that refuses an encoding.
var ErrMalformed = errors.New("ledger: malformed encoding")

// A FormatError says where a canonical encoding was refused.
type FormatError struct {
	What string // "record", "header", "vote", ...
	Line int    // 1-based line number, 0 when not known
	Msg  string
}

func (e *FormatError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("ledger: malformed %s: line %d: %s", e.What, e.Line, e.Msg)
	}
	return fmt.Sprintf("ledger: malformed %s: %s", e.What, e.Msg)
}

// Unwrap returns ErrMalformed.
func (e *FormatError) Unwrap() error { return ErrMalformed }

// lines reads a canonical text encoding: LF-terminated lines of the form
// "name value", in a fixed order, with nothing after the last line.
type lines struct {
	what string
	rest []byte
	n    int
	err  error
}

func newLines(what string, b []byte) *lines { return &lines{what: what, rest: b} }

func (l *lines) fail(format string, args ...any) {
	if l.err == nil {
		l.err = &FormatError{What: l.what, Line: l.n, Msg: fmt.Sprintf(format, args...)}
	}
}

// next returns the next line without its LF.
func (l *lines) next() (string, bool) {
	if l.err != nil {
		return "", false
	}
	if len(l.rest) == 0 {
		l.n++
		l.fail("unexpected end")
		return "", false
	}
	i := bytes.IndexByte(l.rest, '\n')
	l.n++
	if i < 0 {
		l.fail("line not terminated by LF")
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

// peek reports whether the next line starts with "name ".
func (l *lines) peek(name string) bool {
	return l.err == nil && bytes.HasPrefix(l.rest, []byte(name+" "))
}

// magic reads a line that must equal want.
func (l *lines) magic(want string) {
	s, ok := l.next()
	if ok && s != want {
		l.fail("want %q, have %q", want, clip(s))
	}
}

// field reads a line "name value" and returns value, which must be non-empty
// and contain no space unless rest is set.
func (l *lines) field(name string) string {
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

// uint reads "name <decimal>" in canonical form (no sign, no leading zeros).
func (l *lines) uint(name string) uint64 {
	v := l.field(name)
	if l.err != nil {
		return 0
	}
	n, err := parseCanonicalUint(v)
	if err != nil {
		l.fail("field %q: %v", name, err)
	}
	return n
}

func (l *lines) hash(name string) Hash {
	v := l.field(name)
	if l.err != nil {
		return Hash{}
	}
	var h Hash
	if err := parseHexFixed(v, h[:]); err != nil {
		l.fail("field %q: %v", name, err)
	}
	return h
}

func (l *lines) pubKey(name string) PublicKey {
	v := l.field(name)
	if l.err != nil {
		return PublicKey{}
	}
	k, err := ParsePublicKey(v)
	if err != nil {
		l.fail("field %q: %v", name, err)
	}
	return k
}

// end checks that nothing follows the last line.
func (l *lines) end() error {
	if l.err == nil && len(l.rest) > 0 {
		l.n++
		l.fail("unexpected trailing data")
	}
	return l.err
}

func parseCanonicalUint(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || !isDecimal(s) {
		return 0, fmt.Errorf("non-canonical number %q", clip(s))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("number %q out of range", clip(s))
	}
	return n, nil
}

// textBuf builds canonical encodings.
type textBuf struct{ bytes.Buffer }

func (b *textBuf) line(name, value string) {
	b.WriteString(name)
	b.WriteByte(' ')
	b.WriteString(value)
	b.WriteByte('\n')
}

func (b *textBuf) uint(name string, v uint64) { b.line(name, strconv.FormatUint(v, 10)) }
