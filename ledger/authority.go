package ledger

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

const authorityMagic = "vcsledger-authority/1"

// Operations of an authority change.
const (
	AuthorityAdd    = "add"
	AuthorityRemove = "remove"
)

// Rules of validator-set changes (docs/FORMAT.md, "Authority change").
const (
	// AuthorityDelay is the least number of heights between the block that
	// includes a change and the height it takes effect at: a change
	// included at height h has an effective height of at least h +
	// AuthorityDelay. Two, so that the set of height h+2 is known once the
	// block at h is: a node deciding h+1 can check messages of h+2.
	AuthorityDelay = 2
	// MaxAuthorityDelay is the most: a change included at h takes effect
	// at h + MaxAuthorityDelay at the latest, so that no change can freeze
	// later ones (effective heights never decrease) far into the future.
	MaxAuthorityDelay = 100_000
	// MinValidators is the smallest set a removal may leave: four, the
	// smallest set that tolerates a faulty validator (n = 3f+1, f = 1). A
	// set of four or fewer can grow but not shrink.
	MinValidators = 4
)

// An AuthorityChange adds a validator to a poa chain's set or removes one.
// It is a record of its own kind: a leaf of the chain's log, carried in a
// block after the key records, voted in by more than the quorum of the set
// in force at the block's height, and in force from its Effective height
// on. The votes are signatures of Message() by validators of that set.
type AuthorityChange struct {
	Chain     string
	Op        string    // AuthorityAdd or AuthorityRemove
	Validator PublicKey // the validator added or removed
	Name      string    // its name; add only
	Effective uint64    // the first height the changed set decides
	Sigs      []CertSig // votes, sorted by validator key, each key once
}

// Message returns the bytes each voting validator signs: the change without
// its votes (docs/FORMAT.md, "Authority change").
func (c *AuthorityChange) Message() []byte {
	var b TextWriter
	b.WriteString(authorityMagic + "\n")
	b.Line("chain", c.Chain)
	b.Line("op", c.Op)
	b.Line("validator", c.Validator.String())
	if c.Op == AuthorityAdd {
		b.Line("name", c.Name)
	}
	b.Uint("effective", c.Effective)
	return b.Bytes()
}

// Format returns the change's canonical bytes: Message() followed by one
// "sig <validator> <signature>" line per vote. These bytes are the log leaf.
func (c *AuthorityChange) Format() []byte {
	b := c.Message()
	for _, s := range c.Sigs {
		b = append(b, "sig "+s.Validator.String()+" "+s.Sig.String()+"\n"...)
	}
	return b
}

// LeafHash returns the change's RFC 6962 leaf hash, SHA-256(0x00 ||
// Format()).
func (c *AuthorityChange) LeafHash() Hash { return Hash(tlog.RecordHash(c.Format())) }

// ID returns the hash of Message(): it names the change whatever votes it
// carries.
func (c *AuthorityChange) ID() Hash { return SumSHA256(c.Message()) }

// String describes the change for logs and errors.
func (c *AuthorityChange) String() string {
	if c.Op == AuthorityAdd {
		return fmt.Sprintf("add %s (%s) from height %d", c.Validator, c.Name, c.Effective)
	}
	return fmt.Sprintf("remove %s from height %d", c.Validator, c.Effective)
}

// Check reports whether every field of c is well formed and its votes are
// sorted and distinct. It verifies no signature.
func (c *AuthorityChange) Check() error {
	fail := func(format string, args ...any) error {
		return &FormatError{What: "authority change", Msg: fmt.Sprintf(format, args...)}
	}
	if err := CheckChainID(c.Chain); err != nil {
		return fail("%v", err)
	}
	switch c.Op {
	case AuthorityAdd:
		if err := checkName(c.Name); err != nil {
			return fail("%v", err)
		}
	case AuthorityRemove:
		if c.Name != "" {
			return fail("a removal carries no name")
		}
	default:
		return fail("unknown op %q", clip(c.Op))
	}
	if err := c.Validator.Check(); err != nil {
		return fail("%v", err)
	}
	if c.Effective > 1<<62 {
		return fail("effective height %d out of range", c.Effective)
	}
	for i := 1; i < len(c.Sigs); i++ {
		if c.Sigs[i-1].Validator.Compare(c.Sigs[i].Validator) >= 0 {
			return fail("votes not sorted by validator or repeated")
		}
	}
	return nil
}

// ParseAuthorityChange parses a change's canonical bytes strictly: the
// result formats back to exactly b. A change may carry no votes (a
// proposal not signed yet); a block's changes must carry a quorum.
func ParseAuthorityChange(b []byte) (*AuthorityChange, error) {
	l := NewTextReader("authority change", b)
	l.Magic(authorityMagic)
	var c AuthorityChange
	c.Chain = l.Field("chain")
	c.Op = l.Field("op")
	c.Validator = l.PubKey("validator")
	if l.err == nil && c.Op == AuthorityAdd {
		c.Name = l.Field("name")
	}
	c.Effective = l.Uint("effective")
	if l.err == nil && len(l.str) > 0 {
		// One vote per line left.
		c.Sigs = make([]CertSig, 0, strings.Count(l.str, "\n")+1)
	}
	for l.err == nil && len(l.rest) > 0 {
		s, ok := l.Next()
		if !ok {
			break
		}
		k, sig, err := parseSigLine(s)
		if err != nil {
			l.Fail("%v", err)
			break
		}
		c.Sigs = append(c.Sigs, CertSig{Validator: k, Sig: sig})
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// parseSigLine parses "sig <hex key> <hex signature>".
func parseSigLine(s string) (PublicKey, Signature, error) {
	rest, found := strings.CutPrefix(s, "sig ")
	var ks, ss string
	if found {
		ks, ss, found = strings.Cut(rest, " ")
	}
	if !found {
		return PublicKey{}, Signature{}, fmt.Errorf("want \"sig <validator> <signature>\", have %q", clip(s))
	}
	k, err := ParsePublicKey(ks)
	if err != nil {
		return PublicKey{}, Signature{}, err
	}
	sig, err := ParseSignature(ss)
	if err != nil {
		return PublicKey{}, Signature{}, err
	}
	return k, sig, nil
}

// Vote signs c's message with s and returns the vote. AddVote puts it in c.
func (c *AuthorityChange) Vote(s *Signer) CertSig {
	return CertSig{Validator: s.Public(), Sig: s.Sign(c.Message())}
}

// AddVote adds v to c's votes, in key order. It reports whether v was new;
// a vote by a validator that already voted is ignored. It verifies nothing.
func (c *AuthorityChange) AddVote(v CertSig) bool {
	i := sort.Search(len(c.Sigs), func(i int) bool { return c.Sigs[i].Validator.Compare(v.Validator) >= 0 })
	if i < len(c.Sigs) && c.Sigs[i].Validator == v.Validator {
		return false
	}
	c.Sigs = append(c.Sigs, CertSig{})
	copy(c.Sigs[i+1:], c.Sigs[i:])
	c.Sigs[i] = v
	return true
}

// VerifyVotes checks every vote of c: each signer is a member of vals and
// its signature of Message() verifies. It does not count them against the
// quorum. Errors wrap ErrBadAuthority (and ErrBadSignature).
func (c *AuthorityChange) VerifyVotes(vals *ValidatorSet) error {
	msg := c.Message()
	items := make([]SignedItem, 0, len(c.Sigs))
	for i, s := range c.Sigs {
		if i > 0 && c.Sigs[i-1].Validator.Compare(s.Validator) >= 0 {
			return fmt.Errorf("%w: votes not sorted or repeated", ErrBadAuthority)
		}
		if !vals.Contains(s.Validator) {
			return fmt.Errorf("%w: vote by %s, not a validator", ErrBadAuthority, s.Validator)
		}
		items = append(items, SignedItem{Key: s.Validator, Msg: msg, Sig: s.Sig})
	}
	if err := VerifyBatch(items); err != nil {
		return fmt.Errorf("%w: %w", ErrBadAuthority, err)
	}
	return nil
}

// ErrBadAuthority is wrapped by every refusal of an authority change.
var ErrBadAuthority = errors.New("ledger: invalid authority change")

// An AuthorityEntry is an authority change committed to the chain: the
// change, its log index and the height of the block that included it.
type AuthorityEntry struct {
	Change AuthorityChange
	Index  int64
	Height uint64
}

// Leaves returns the number of log leaves b adds: its key records, then its
// authority changes.
func (b *Block) Leaves() int { return len(b.Records) + len(b.Authority) }

// LeafHashes returns the leaf hashes b adds to the log, in log order: its
// key records, then its authority changes.
func (b *Block) LeafHashes() []Hash {
	out := make([]Hash, 0, b.Leaves())
	for i := range b.Records {
		out = append(out, b.Records[i].LeafHash())
	}
	for i := range b.Authority {
		out = append(out, b.Authority[i].LeafHash())
	}
	return out
}
