package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

const genesisMagic = "vcsledger-genesis/1"

// A Validator is a member of a proof-of-authority validator set.
type Validator struct {
	Key  PublicKey
	Name string // operator-chosen label: 1 to 64 of [A-Za-z0-9._-]
}

// A ValidatorSet is a proof-of-authority validator set, sorted by key.
type ValidatorSet struct {
	vals   []Validator
	quorum int
}

// NewValidatorSet returns the set of vals with commit quorum q; q = 0 means
// the default, more than two thirds (floor(2n/3)+1).
func NewValidatorSet(vals []Validator, q int) (*ValidatorSet, error) {
	if len(vals) == 0 {
		return nil, fmt.Errorf("ledger: empty validator set")
	}
	s := &ValidatorSet{vals: append([]Validator(nil), vals...)}
	sort.Slice(s.vals, func(i, j int) bool { return s.vals[i].Key.Compare(s.vals[j].Key) < 0 })
	for i := 1; i < len(s.vals); i++ {
		if s.vals[i-1].Key == s.vals[i].Key {
			return nil, fmt.Errorf("ledger: validator %s listed twice", s.vals[i].Key)
		}
	}
	n := len(s.vals)
	if q == 0 {
		q = 2*n/3 + 1
	}
	if q < 0 || q > n || q*3 <= 2*n {
		return nil, fmt.Errorf("ledger: quorum %d of %d validators: want more than two thirds and at most all", q, n)
	}
	s.quorum = q
	return s, nil
}

// Len returns the number of validators.
func (s *ValidatorSet) Len() int { return len(s.vals) }

// Quorum returns how many precommits commit a block.
func (s *ValidatorSet) Quorum() int { return s.quorum }

// MaxFaulty returns f, the most faulty validators the set tolerates:
// floor((n-1)/3).
func (s *ValidatorSet) MaxFaulty() int { return (len(s.vals) - 1) / 3 }

// Validators returns the validators sorted by key. The caller must not
// modify the result.
func (s *ValidatorSet) Validators() []Validator { return s.vals }

// Contains reports whether k is a validator.
func (s *ValidatorSet) Contains(k PublicKey) bool { return s.Index(k) >= 0 }

// Index returns k's position in the sorted set, or -1.
func (s *ValidatorSet) Index(k PublicKey) int {
	i := sort.Search(len(s.vals), func(i int) bool { return s.vals[i].Key.Compare(k) >= 0 })
	if i < len(s.vals) && s.vals[i].Key == k {
		return i
	}
	return -1
}

// Proposer returns the proposer of (height, round) after the block prev
// (DESIGN §3): the validator at index
//
//	be64(sha256("vcsledger-proposer/1" || chain || prev || be64(height) || be32(round))[:8]) mod n
//
// of the keys sorted bytewise.
func (s *ValidatorSet) Proposer(chain string, prev Hash, height uint64, round uint32) PublicKey {
	h := sha256.New()
	h.Write([]byte("vcsledger-proposer/1"))
	h.Write([]byte(chain))
	h.Write(prev[:])
	var buf [12]byte
	binary.BigEndian.PutUint64(buf[:8], height)
	binary.BigEndian.PutUint32(buf[8:], round)
	h.Write(buf[:])
	sum := h.Sum(nil)
	i := binary.BigEndian.Uint64(sum[:8]) % uint64(len(s.vals))
	return s.vals[i].Key
}

// A Genesis fixes a chain: its id, engine, parameters and, for poa, the
// validators. Its hash identifies the chain; nodes refuse peers of another
// genesis hash and clients pin it.
type Genesis struct {
	Chain         string
	Time          int64  // unix milliseconds; the genesis block's time
	Engine        string // EnginePoA or EnginePoW
	BlockInterval int64  // milliseconds between blocks (poa: at least; pow: target)
	AttestQuorum  int    // attestations a record needs; -1 means the default f+1 (poa) or 1 (pow)
	Quorum        int    // poa: precommits that commit a block; 0 means more than 2/3
	Validators    []Validator
	Bits          uint32 // pow: initial difficulty
	Retarget      uint64 // pow: blocks between difficulty adjustments
	Confirmations uint64 // pow: depth at which a record is final
}

// Format returns the genesis's canonical bytes (docs/FORMAT.md, "Genesis").
// Validators are written sorted by key.
func (g *Genesis) Format() []byte {
	var b TextWriter
	b.WriteString(genesisMagic + "\n")
	b.Line("chain", g.Chain)
	b.Line("time", strconv.FormatInt(g.Time, 10))
	b.Line("engine", g.Engine)
	b.Line("block_interval_ms", strconv.FormatInt(g.BlockInterval, 10))
	b.Line("attest_quorum", strconv.Itoa(g.AttestQuorum))
	switch g.Engine {
	case EnginePoA:
		b.Line("quorum", strconv.Itoa(g.Quorum))
		vals := append([]Validator(nil), g.Validators...)
		sort.Slice(vals, func(i, j int) bool { return vals[i].Key.Compare(vals[j].Key) < 0 })
		for _, v := range vals {
			b.Line("validator", v.Key.String()+" "+v.Name)
		}
	case EnginePoW:
		b.Uint("bits", uint64(g.Bits))
		b.Uint("retarget", g.Retarget)
		b.Uint("confirmations", g.Confirmations)
	}
	return b.Bytes()
}

// Hash returns the genesis hash, SHA-256 of its canonical bytes.
func (g *Genesis) Hash() Hash { return sha256.Sum256(g.Format()) }

// ParseGenesis parses and checks a genesis's canonical bytes.
func ParseGenesis(b []byte) (*Genesis, error) {
	l := NewTextReader("genesis", b)
	l.Magic(genesisMagic)
	var g Genesis
	g.Chain = l.Field("chain")
	if t := l.Uint("time"); t > 1<<62 {
		l.Fail("time %d out of range", t)
	} else {
		g.Time = int64(t)
	}
	g.Engine = l.Field("engine")
	if bi := l.Uint("block_interval_ms"); bi > 1<<62 {
		l.Fail("block_interval_ms %d out of range", bi)
	} else {
		g.BlockInterval = int64(bi)
	}
	if aq := l.Field("attest_quorum"); l.err == nil {
		if aq == "-1" {
			g.AttestQuorum = -1
		} else if n, err := parseCanonicalUint(aq); err != nil || n > 1<<20 {
			l.Fail("attest_quorum: %q", clip(aq))
		} else {
			g.AttestQuorum = int(n)
		}
	}
	switch {
	case l.err != nil:
	case g.Engine == EnginePoA:
		if q := l.Uint("quorum"); q > 1<<20 {
			l.Fail("quorum %d out of range", q)
		} else {
			g.Quorum = int(q)
		}
		for l.err == nil && l.Peek("validator") {
			s, _ := l.Next()
			ks, name, ok := strings.Cut(strings.TrimPrefix(s, "validator "), " ")
			if !ok {
				l.Fail("want \"validator <key> <name>\"")
				break
			}
			k, err := ParsePublicKey(ks)
			if err != nil {
				l.Fail("%v", err)
				break
			}
			g.Validators = append(g.Validators, Validator{Key: k, Name: name})
		}
	case g.Engine == EnginePoW:
		if bits := l.Uint("bits"); bits > 255 {
			l.Fail("bits %d out of range", bits)
		} else {
			g.Bits = uint32(bits)
		}
		g.Retarget = l.Uint("retarget")
		g.Confirmations = l.Uint("confirmations")
	default:
		l.Fail("unknown engine %q", clip(g.Engine))
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if string(g.Format()) != string(b) {
		return nil, &FormatError{What: "genesis", Msg: "not canonical (validators must be sorted by key)"}
	}
	return &g, nil
}

// Validate reports whether g is a usable genesis.
func (g *Genesis) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("ledger: invalid genesis: "+format, args...)
	}
	if err := CheckChainID(g.Chain); err != nil {
		return fail("%v", err)
	}
	if g.Time < 0 || g.Time > 1<<62 {
		return fail("time %d out of range", g.Time)
	}
	if g.BlockInterval <= 0 || g.BlockInterval > 24*3600*1000 {
		return fail("block interval %d ms: want 1 ms to 1 day", g.BlockInterval)
	}
	if g.AttestQuorum < -1 || g.AttestQuorum > 1<<20 {
		return fail("attest quorum %d", g.AttestQuorum)
	}
	switch g.Engine {
	case EnginePoA:
		vs, err := NewValidatorSet(g.Validators, g.Quorum)
		if err != nil {
			return fail("%v", err)
		}
		for _, v := range g.Validators {
			if err := checkName(v.Name); err != nil {
				return fail("validator %s: %v", v.Key, err)
			}
			if err := v.Key.Check(); err != nil {
				return fail("validator: %v", err)
			}
		}
		if g.AttestQuorum > vs.Len() {
			return fail("attest quorum %d exceeds %d validators", g.AttestQuorum, vs.Len())
		}
	case EnginePoW:
		if g.Bits == 0 || g.Bits > 255 {
			return fail("bits %d: want 1 to 255", g.Bits)
		}
		if g.Retarget == 0 {
			return fail("retarget interval must be positive")
		}
		if g.Confirmations == 0 {
			return fail("confirmations must be positive")
		}
		if len(g.Validators) > 0 {
			return fail("pow chains have no validators")
		}
	default:
		return fail("unknown engine %q", g.Engine)
	}
	return nil
}

// ValidatorSet returns the genesis validator set (poa only).
func (g *Genesis) ValidatorSet() (*ValidatorSet, error) {
	if g.Engine != EnginePoA {
		return nil, fmt.Errorf("ledger: %s chain has no validator set", g.Engine)
	}
	return NewValidatorSet(g.Validators, g.Quorum)
}

// AttestationsNeeded returns how many distinct validators must attest a
// record before it may enter a block.
func (g *Genesis) AttestationsNeeded() int {
	if g.AttestQuorum >= 0 {
		return g.AttestQuorum
	}
	if g.Engine == EnginePoA {
		return (len(g.Validators)-1)/3 + 1
	}
	return 1
}

// Block returns the genesis block (height 0), which is fully determined by
// the genesis: no records, the empty log, no certificate.
func (g *Genesis) Block() *Block {
	h := Header{
		Chain:   g.Chain,
		Height:  0,
		Time:    g.Time,
		Engine:  g.Engine,
		LogRoot: EmptyLogRoot,
	}
	switch g.Engine {
	case EnginePoA:
		if vs, err := g.ValidatorSet(); err == nil {
			h.Proposer = vs.Proposer(g.Chain, ZeroHash, 0, 0)
		}
	case EnginePoW:
		h.Bits = g.Bits
	}
	return &Block{Header: h}
}

func checkName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("name %q: want 1 to 64 bytes", clip(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q: character %q not allowed", clip(s), c)
		}
	}
	return nil
}
