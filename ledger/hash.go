package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// A Hash is a SHA-256 hash: of a block header, of a log record (leaf) or of a
// log tree. Its text form is 64 lowercase hex digits.
type Hash [32]byte

// ZeroHash is the all-zero hash, the prev hash of a genesis header.
var ZeroHash Hash

// String returns h as lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the all-zero hash.
func (h Hash) IsZero() bool { return h == ZeroHash }

// MarshalText implements encoding.TextMarshaler (lowercase hex).
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts only 64
// lowercase hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	x, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = x
	return nil
}

// ParseHash parses 64 lowercase hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if err := parseHexFixed(s, h[:]); err != nil {
		return Hash{}, fmt.Errorf("ledger: invalid hash %q: %w", clip(s), err)
	}
	return h, nil
}

// SumSHA256 returns the SHA-256 hash of b.
func SumSHA256(b []byte) Hash { return sha256.Sum256(b) }

// parseHexFixed decodes exactly len(dst)*2 lowercase hex digits into dst.
func parseHexFixed(s string, dst []byte) error {
	if len(s) != 2*len(dst) {
		return fmt.Errorf("want %d hex digits, have %d", 2*len(dst), len(s))
	}
	for i := range dst {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		if hi|lo > 0xf {
			return fmt.Errorf("not lowercase hex")
		}
		dst[i] = hi<<4 | lo
	}
	return nil
}

// hexValue is the value of each lowercase hex digit, 0xff for the other
// bytes.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// clip shortens s for use in an error message.
func clip(s string) string {
	const max = 80
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
