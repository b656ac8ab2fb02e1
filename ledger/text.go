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

// A TextReader reads a canonical text encoding: LF-terminated lines of the
// form "name value", in a fixed order, canonical numbers, lowercase hex,
// with nothing after the last line. This package's encodings are read with
// it, and so are those of packages that follow the same rules (consensus).
// Its first error sticks: later reads return zero values, and End and Err
// return that error.
//
// The strings it returns share one copy of the input, made once.
type TextReader struct {
	what  string
	rest  []byte // the input not read yet
	str   string // rest as a string: the lines are cut from it
	n     int
	err   error
	mkErr func(line int, msg string) error
}

// NewTextReader returns a reader of b, an encoding of what ("header",
// "vote", ...), whose errors are *FormatError.
func NewTextReader(what string, b []byte) *TextReader {
	return &TextReader{what: what, rest: b, str: string(b)}
}

// NewTextReaderFunc returns a reader of b whose errors mkErr makes from a
// 1-based line number (0 when not known) and a message.
func NewTextReaderFunc(b []byte, mkErr func(line int, msg string) error) *TextReader {
	return &TextReader{rest: b, str: string(b), mkErr: mkErr}
}

// skip consumes n bytes of the input.
func (l *TextReader) skip(n int) {
	l.rest, l.str = l.rest[n:], l.str[n:]
}

// Fail records an error at the current line, unless one is recorded.
func (l *TextReader) Fail(format string, args ...any) {
	if l.err != nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if l.mkErr != nil {
		l.err = l.mkErr(l.n, msg)
	} else {
		l.err = &FormatError{What: l.what, Line: l.n, Msg: msg}
	}
}

// Err returns the error recorded, if any.
func (l *TextReader) Err() error { return l.err }

// More reports whether there is no error and input is left.
func (l *TextReader) More() bool { return l.err == nil && len(l.rest) > 0 }

// Next returns the next line without its LF.
func (l *TextReader) Next() (string, bool) {
	if l.err != nil {
		return "", false
	}
	if len(l.rest) == 0 {
		l.n++
		l.Fail("unexpected end")
		return "", false
	}
	i := strings.IndexByte(l.str, '\n')
	l.n++
	if i < 0 {
		l.Fail("line not terminated by LF")
		return "", false
	}
	s := l.str[:i]
	l.skip(i + 1)
	if strings.IndexByte(s, '\r') >= 0 {
		l.Fail("carriage return")
		return "", false
	}
	return s, true
}

// Peek reports whether the next line starts with "name ".
func (l *TextReader) Peek(name string) bool {
	return l.err == nil && hasField(l.str, name)
}

// hasField reports whether s starts with name and a space.
func hasField(s, name string) bool {
	return len(s) > len(name) && s[len(name)] == ' ' && s[:len(name)] == name
}

// cutField returns what follows "name " in s, if s starts with it.
func cutField(s, name string) (string, bool) {
	if !hasField(s, name) {
		return "", false
	}
	return s[len(name)+1:], true
}

// Magic reads a line that must equal want.
func (l *TextReader) Magic(want string) {
	s, ok := l.Next()
	if ok && s != want {
		l.Fail("want %q, have %q", want, clip(s))
	}
}

// Field reads a line "name value" and returns value, which must be
// non-empty and contain no space.
func (l *TextReader) Field(name string) string {
	s, ok := l.Next()
	if !ok {
		return ""
	}
	v, found := cutField(s, name)
	if !found {
		l.Fail("want field %q, have %q", name, clip(s))
		return ""
	}
	if v == "" || strings.IndexByte(v, ' ') >= 0 {
		l.Fail("field %q: bad value %q", name, clip(v))
		return ""
	}
	return v
}

// Fields reads a line "name v1 ... vn" with exactly n non-empty values.
func (l *TextReader) Fields(name string, n int) []string {
	s, ok := l.Next()
	if !ok {
		return nil
	}
	v, found := cutField(s, name)
	if !found {
		l.Fail("want field %q, have %q", name, clip(s))
		return nil
	}
	f := strings.Split(v, " ")
	if len(f) != n {
		l.Fail("field %q: want %d values", name, n)
		return nil
	}
	for _, x := range f {
		if x == "" {
			l.Fail("field %q: empty value", name)
			return nil
		}
	}
	return f
}

// Uint reads "name <decimal>" in canonical form (no sign, no leading
// zeros).
func (l *TextReader) Uint(name string) uint64 {
	v := l.Field(name)
	if l.err != nil {
		return 0
	}
	n, err := parseCanonicalUint(v)
	if err != nil {
		l.Fail("field %q: %v", name, err)
	}
	return n
}

// Hash reads "name <hash>" in lowercase hex.
func (l *TextReader) Hash(name string) Hash {
	v := l.Field(name)
	if l.err != nil {
		return Hash{}
	}
	var h Hash
	if err := parseHexFixed(v, h[:]); err != nil {
		l.Fail("field %q: %v", name, err)
	}
	return h
}

// PubKey reads "name <public key>".
func (l *TextReader) PubKey(name string) PublicKey {
	v := l.Field(name)
	if l.err != nil {
		return PublicKey{}
	}
	k, err := ParsePublicKey(v)
	if err != nil {
		l.Fail("field %q: %v", name, err)
	}
	return k
}

// Sig reads "name <signature>".
func (l *TextReader) Sig(name string) Signature {
	v := l.Field(name)
	if l.err != nil {
		return Signature{}
	}
	s, err := ParseSignature(v)
	if err != nil {
		l.Fail("field %q: %v", name, err)
	}
	return s
}

// Section reads "name <length>" and the length bytes after it, at most max.
func (l *TextReader) Section(name string, max int) []byte {
	n := l.Uint(name)
	if l.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(l.rest)) {
		l.Fail("section %q: bad length %d", name, n)
		return nil
	}
	b := l.rest[:n]
	l.skip(int(n))
	return b
}

// End checks that nothing follows the last line and returns the error
// recorded, if any.
func (l *TextReader) End() error {
	if l.err == nil && len(l.rest) > 0 {
		l.n++
		l.Fail("unexpected trailing data")
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

// A TextWriter builds a canonical text encoding, line by line.
type TextWriter struct{ bytes.Buffer }

// Line writes "name v1 ... vn".
func (b *TextWriter) Line(name string, values ...string) {
	b.WriteString(name)
	for _, v := range values {
		b.WriteByte(' ')
		b.WriteString(v)
	}
	b.WriteByte('\n')
}

// Uint writes "name <decimal>".
func (b *TextWriter) Uint(name string, v uint64) { b.Line(name, strconv.FormatUint(v, 10)) }

// Section writes "name <length>" and data after it.
func (b *TextWriter) Section(name string, data []byte) {
	b.Line(name, strconv.Itoa(len(data)))
	b.Write(data)
}
