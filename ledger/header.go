package ledger

import (
	"crypto/sha256"
	"fmt"
	"strconv"
)

const headerMagic = "vcsledger-block/1"

// Engines name the consensus engine a chain runs.
const (
	EnginePoA = "poa"
	EnginePoW = "pow"
)

// MaxChainIDLen is the longest chain id.
const MaxChainIDLen = 64

// A Header is a block header. Its hash, SHA-256 of Format(), is the block
// hash. Every header commits to the log after its block, so any header is a
// checkpoint of the log.
type Header struct {
	Chain    string
	Height   uint64
	Prev     Hash  // hash of the previous header; zero at genesis
	Time     int64 // unix milliseconds
	Engine   string
	Proposer PublicKey // poa only
	Records  uint64    // records in this block
	LogSize  uint64    // log size after this block
	LogRoot  Hash      // log root after this block
	Bits     uint32    // pow only: difficulty, leading zero bits of the hash
	Nonce    uint64    // pow only
}

// Format returns the header's canonical bytes (docs/FORMAT.md, "Block header").
func (h *Header) Format() []byte {
	var b TextWriter
	b.Grow(320)
	b.WriteString(headerMagic + "\n")
	b.Line("chain", h.Chain)
	b.Uint("height", h.Height)
	b.Line("prev", h.Prev.String())
	b.Line("time", strconv.FormatInt(h.Time, 10))
	b.Line("engine", h.Engine)
	if h.Engine == EnginePoA {
		b.Line("proposer", h.Proposer.String())
	}
	b.Uint("records", h.Records)
	b.Line("log", strconv.FormatUint(h.LogSize, 10)+" "+h.LogRoot.String())
	if h.Engine == EnginePoW {
		b.Uint("bits", uint64(h.Bits))
		b.Uint("nonce", h.Nonce)
	}
	return b.Bytes()
}

// Hash returns the block hash, SHA-256 of the header's canonical bytes.
func (h *Header) Hash() Hash { return sha256.Sum256(h.Format()) }

// ParseHeader parses a header's canonical bytes strictly.
func ParseHeader(b []byte) (*Header, error) {
	l := NewTextReader("header", b)
	l.Magic(headerMagic)
	var h Header
	h.Chain = l.Field("chain")
	if l.err == nil {
		if err := CheckChainID(h.Chain); err != nil {
			l.Fail("%v", err)
		}
	}
	h.Height = l.Uint("height")
	h.Prev = l.Hash("prev")
	t := l.Uint("time")
	if t > 1<<62 {
		l.Fail("time %d out of range", t)
	}
	h.Time = int64(t)
	h.Engine = l.Field("engine")
	switch {
	case l.err != nil:
	case h.Engine == EnginePoA:
		h.Proposer = l.PubKey("proposer")
	case h.Engine == EnginePoW:
	default:
		l.Fail("unknown engine %q", clip(h.Engine))
	}
	h.Records = l.Uint("records")
	if s, ok := l.Next(); ok {
		var size, root string
		if n, _ := fmt.Sscanf(s, "log %s %s", &size, &root); n != 2 || "log "+size+" "+root != s {
			l.Fail("want \"log <size> <root>\", have %q", clip(s))
		} else {
			var err error
			if h.LogSize, err = parseCanonicalUint(size); err != nil {
				l.Fail("log size: %v", err)
			} else if err := parseHexFixed(root, h.LogRoot[:]); err != nil {
				l.Fail("log root: %v", err)
			}
		}
	}
	if h.Engine == EnginePoW {
		bits := l.Uint("bits")
		if bits > 256 {
			l.Fail("bits %d out of range", bits)
		}
		h.Bits = uint32(bits)
		h.Nonce = l.Uint("nonce")
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	return &h, nil
}

// CheckChainID reports whether id is a valid chain id: 1 to 64 bytes of
// ASCII letters, digits, '.', '_' and '-'.
func CheckChainID(id string) error {
	if id == "" || len(id) > MaxChainIDLen {
		return fmt.Errorf("ledger: chain id %q: want 1 to %d bytes", clip(id), MaxChainIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("ledger: chain id %q: character %q not allowed", clip(id), c)
		}
	}
	return nil
}
