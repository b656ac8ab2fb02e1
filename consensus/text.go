package consensus

import (
	"fmt"
	"strconv"

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
// follow ledger's rules (ledger.TextReader), with the fields only this
// package's encodings have.
type lineReader struct{ *ledger.TextReader }

func newLineReader(what string, b []byte) *lineReader {
	return &lineReader{ledger.NewTextReaderFunc(b, func(line int, msg string) error {
		return &FormatError{What: what, Line: line, Msg: msg}
	})}
}

func (l *lineReader) round(name string) uint32 {
	n := l.Uint(name)
	if l.Err() == nil && n > MaxRound {
		l.Fail("field %q: round %d out of range", name, n)
	}
	return uint32(n)
}

func (l *lineReader) chain() string {
	c := l.Field("chain")
	if l.Err() == nil {
		if err := ledger.CheckChainID(c); err != nil {
			l.Fail("%v", err)
		}
	}
	return c
}

func (l *lineReader) polRound(name string) int32 {
	v := l.Field(name)
	if l.Err() != nil {
		return 0
	}
	r, err := parseRound(v)
	if err != nil {
		l.Fail("field %q: %v", name, err)
	}
	return r
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
