package ledger

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

const (
	voteMagic   = "vcsledger-vote/1"
	certMagic   = "vcsledger-cert/1"
	attestMagic = "vcsledger-attest/1"
)

// VoteTypes of the BFT engine.
const (
	Prevote   = "prevote"
	Precommit = "precommit"
)

// A Vote is a validator's prevote or precommit for a block (or for nil, the
// zero Hash) at a height and round. The signed message is Format(), which is
// domain-separated by its first line and the chain id.
type Vote struct {
	Chain     string
	Type      string // Prevote or Precommit
	Height    uint64
	Round     uint32
	Block     Hash // zero for a vote for nil
	Validator PublicKey
}

// A SignedVote is a vote and its signature.
type SignedVote struct {
	Vote
	Sig Signature
}

// Format returns the vote's canonical bytes: the message a validator signs.
func (v *Vote) Format() []byte {
	var b TextWriter
	b.WriteString(voteMagic + "\n")
	v.formatBody(&b)
	return b.Bytes()
}

func (v *Vote) formatBody(b *TextWriter) {
	b.Line("chain", v.Chain)
	b.Line("type", v.Type)
	b.Uint("height", v.Height)
	b.Uint("round", uint64(v.Round))
	if v.Block.IsZero() {
		b.Line("block", "nil")
	} else {
		b.Line("block", v.Block.String())
	}
	b.Line("validator", v.Validator.String())
}

// Format returns the signed vote's canonical bytes: the vote, then "sig <hex>".
func (sv *SignedVote) Format() []byte {
	b := sv.Vote.Format()
	return append(b, "sig "+sv.Sig.String()+"\n"...)
}

// Verify checks the vote's signature.
func (sv *SignedVote) Verify() error {
	if !sv.Validator.Verify(sv.Vote.Format(), sv.Sig) {
		return fmt.Errorf("vote by %s at height %d round %d: %w", sv.Validator, sv.Height, sv.Round, ErrBadSignature)
	}
	return nil
}

// SignVote signs v with s; v.Validator is set to the signer's key.
func SignVote(s *Signer, v Vote) SignedVote {
	v.Validator = s.Public()
	return SignedVote{Vote: v, Sig: s.Sign(v.Format())}
}

// ParseVote parses a vote's canonical bytes (without signature).
func ParseVote(b []byte) (*Vote, error) {
	l := NewTextReader("vote", b)
	v := parseVoteLines(l)
	if err := l.End(); err != nil {
		return nil, err
	}
	return v, nil
}

// ParseSignedVote parses a signed vote's canonical bytes. It does not verify
// the signature.
func ParseSignedVote(b []byte) (*SignedVote, error) {
	l := NewTextReader("vote", b)
	v := parseVoteLines(l)
	sig := l.Field("sig")
	var sv SignedVote
	if l.err == nil {
		s, err := ParseSignature(sig)
		if err != nil {
			l.Fail("%v", err)
		}
		sv = SignedVote{Vote: *v, Sig: s}
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	return &sv, nil
}

func parseVoteLines(l *TextReader) *Vote {
	l.Magic(voteMagic)
	var v Vote
	v.Chain = l.Field("chain")
	if l.err == nil {
		if err := CheckChainID(v.Chain); err != nil {
			l.Fail("%v", err)
		}
	}
	v.Type = l.Field("type")
	if l.err == nil && v.Type != Prevote && v.Type != Precommit {
		l.Fail("unknown vote type %q", clip(v.Type))
	}
	v.Height = l.Uint("height")
	r := l.Uint("round")
	if r > 1<<31 {
		l.Fail("round %d out of range", r)
	}
	v.Round = uint32(r)
	if l.Peek("block") && strings.HasPrefix(l.str, "block nil\n") {
		l.Next()
	} else {
		v.Block = l.Hash("block")
		if l.err == nil && v.Block.IsZero() {
			l.Fail("zero block hash: write nil")
		}
	}
	v.Validator = l.PubKey("validator")
	return &v
}

// A CertSig is one validator's precommit signature in a certificate.
type CertSig struct {
	Validator PublicKey
	Sig       Signature
}

// A Certificate proves a block committed: precommit signatures for its hash
// at one height and round from more than the quorum of validators. Sigs are
// sorted by validator key, each key at most once.
type Certificate struct {
	Chain  string
	Height uint64
	Round  uint32
	Block  Hash
	Sigs   []CertSig
}

// Format returns the certificate's canonical bytes.
func (c *Certificate) Format() []byte {
	var b TextWriter
	b.WriteString(certMagic + "\n")
	b.Line("chain", c.Chain)
	b.Uint("height", c.Height)
	b.Uint("round", uint64(c.Round))
	b.Line("block", c.Block.String())
	for _, s := range c.Sigs {
		b.Line("sig", s.Validator.String()+" "+s.Sig.String())
	}
	return b.Bytes()
}

// ParseCertificate parses a certificate's canonical bytes strictly. It does
// not verify signatures; see Certificate.Verify.
func ParseCertificate(b []byte) (*Certificate, error) {
	l := NewTextReader("certificate", b)
	l.Magic(certMagic)
	var c Certificate
	c.Chain = l.Field("chain")
	if l.err == nil {
		if err := CheckChainID(c.Chain); err != nil {
			l.Fail("%v", err)
		}
	}
	c.Height = l.Uint("height")
	r := l.Uint("round")
	if r > 1<<31 {
		l.Fail("round %d out of range", r)
	}
	c.Round = uint32(r)
	c.Block = l.Hash("block")
	for l.err == nil && len(l.rest) > 0 {
		s, ok := l.Next()
		if !ok {
			break
		}
		var ks, ss string
		rest, found := strings.CutPrefix(s, "sig ")
		if found {
			ks, ss, found = strings.Cut(rest, " ")
		}
		if !found {
			l.Fail("want \"sig <validator> <signature>\", have %q", clip(s))
			break
		}
		k, err := ParsePublicKey(ks)
		if err != nil {
			l.Fail("%v", err)
			break
		}
		sig, err := ParseSignature(ss)
		if err != nil {
			l.Fail("%v", err)
			break
		}
		if n := len(c.Sigs); n > 0 && c.Sigs[n-1].Validator.Compare(k) >= 0 {
			l.Fail("signatures not sorted by validator or repeated")
			break
		}
		c.Sigs = append(c.Sigs, CertSig{Validator: k, Sig: sig})
	}
	if l.err == nil && len(c.Sigs) == 0 {
		l.Fail("no signatures")
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Vote returns the precommit that sig signed.
func (c *Certificate) Vote(v PublicKey) Vote {
	return Vote{Chain: c.Chain, Type: Precommit, Height: c.Height, Round: c.Round, Block: c.Block, Validator: v}
}

// NewCertificate builds a certificate from precommits for one block at one
// height and round. It checks that they agree; it does not verify signatures.
func NewCertificate(votes []SignedVote) (*Certificate, error) {
	if len(votes) == 0 {
		return nil, errors.New("ledger: certificate without votes")
	}
	v0 := votes[0].Vote
	c := &Certificate{Chain: v0.Chain, Height: v0.Height, Round: v0.Round, Block: v0.Block}
	seen := make(map[PublicKey]bool)
	for _, sv := range votes {
		if sv.Type != Precommit || sv.Chain != c.Chain || sv.Height != c.Height || sv.Round != c.Round || sv.Block != c.Block || c.Block.IsZero() {
			return nil, errors.New("ledger: certificate votes disagree")
		}
		if seen[sv.Validator] {
			continue
		}
		seen[sv.Validator] = true
		c.Sigs = append(c.Sigs, CertSig{Validator: sv.Validator, Sig: sv.Sig})
	}
	sort.Slice(c.Sigs, func(i, j int) bool { return c.Sigs[i].Validator.Compare(c.Sigs[j].Validator) < 0 })
	return c, nil
}

// Verify checks that c certifies block hash at height for chain: every
// signature is a valid precommit by a member of vals, and together they
// reach vals' quorum.
func (c *Certificate) Verify(vals *ValidatorSet, chain string, height uint64, block Hash) error {
	if c.Chain != chain || c.Height != height || c.Block != block {
		return fmt.Errorf("%w: certificate is for chain %q height %d block %s, want chain %q height %d block %s",
			ErrBadCertificate, c.Chain, c.Height, c.Block, chain, height, block)
	}
	items := make([]SignedItem, 0, len(c.Sigs))
	for i, s := range c.Sigs {
		if i > 0 && c.Sigs[i-1].Validator.Compare(s.Validator) >= 0 {
			return fmt.Errorf("%w: signatures not sorted or repeated", ErrBadCertificate)
		}
		if !vals.Contains(s.Validator) {
			return fmt.Errorf("%w: signer %s is not a validator", ErrBadCertificate, s.Validator)
		}
		v := c.Vote(s.Validator)
		items = append(items, SignedItem{Key: s.Validator, Msg: v.Format(), Sig: s.Sig})
	}
	if len(items) < vals.Quorum() {
		return fmt.Errorf("%w: %d signatures, quorum is %d of %d", ErrBadCertificate, len(items), vals.Quorum(), vals.Len())
	}
	if err := VerifyBatch(items); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCertificate, err)
	}
	return nil
}

// ErrBadCertificate is wrapped by every certificate verification failure.
var ErrBadCertificate = errors.New("ledger: invalid certificate")

// An Attestation is a validator's signed statement that it fetched a key's
// repository itself and computed the record's commit, tree and h1.
type Attestation struct {
	Chain     string
	Record    Record
	Validator PublicKey
	Sig       Signature
}

// Message returns the bytes the validator signs: the attest magic, the chain
// id, the validator key, then the record's fields.
func (a *Attestation) Message() []byte {
	rec := a.Record.Format()
	return appendAttestMessage(nil, a.Chain, a.Validator, rec[len(recordMagic)+1:])
}

// Format returns the attestation's canonical bytes: Message() then "sig <hex>".
func (a *Attestation) Format() []byte {
	return appendSig(a.Message(), a.Sig)
}

// attestSize returns the length of an attestation's canonical bytes
// whose record's lines after the magic line are body.
func attestSize(chain string, body []byte) int {
	return len(attestMagic+"\nchain \nvalidator \nsig \n") + len(chain) + 2*len(PublicKey{}) + len(body) + 2*len(Signature{})
}

// appendAttestMessage appends an attestation's message, whose record's
// lines after the magic line are body, with room for the signature line.
func appendAttestMessage(b []byte, chain string, v PublicKey, body []byte) []byte {
	b = slices.Grow(b, attestSize(chain, body))
	b = append(b, attestMagic+"\nchain "...)
	b = append(b, chain...)
	b = append(b, "\nvalidator "...)
	b = hex.AppendEncode(b, v[:])
	b = append(b, '\n')
	return append(b, body...)
}

// appendSig appends an attestation's signature line.
func appendSig(b []byte, sig Signature) []byte {
	b = append(b, "sig "...)
	b = hex.AppendEncode(b, sig[:])
	return append(b, '\n')
}

// Verify checks the attestation's signature.
func (a *Attestation) Verify() error {
	if !a.Validator.Verify(a.Message(), a.Sig) {
		return fmt.Errorf("attestation of %s by %s: %w", a.Record.Key, a.Validator, ErrBadSignature)
	}
	return nil
}

// Attest signs an attestation of r on chain by s.
func Attest(s *Signer, chain string, r Record) Attestation {
	a := Attestation{Chain: chain, Record: r, Validator: s.Public()}
	a.Sig = s.Sign(a.Message())
	return a
}

// ParseAttestation parses an attestation's canonical bytes. It does not
// verify the signature.
func ParseAttestation(b []byte) (*Attestation, error) {
	l := NewTextReader("attestation", b)
	l.Magic(attestMagic)
	var a Attestation
	a.Chain = l.Field("chain")
	if l.err == nil {
		if err := CheckChainID(a.Chain); err != nil {
			l.Fail("%v", err)
		}
	}
	a.Validator = l.PubKey("validator")
	if l.err != nil {
		return nil, l.err
	}
	// The record fields follow, then the signature line.
	// A valid signature line is the last len("sig \n")+128 bytes, so
	// look there first.
	i := len(l.str) - len("sig \n") - 2*len(a.Sig)
	if i < 0 || !strings.HasPrefix(l.str[i:], "sig ") {
		i = strings.LastIndex(l.str, "sig ")
	}
	if i < 0 || (i > 0 && l.rest[i-1] != '\n') {
		l.Fail("missing signature")
		return nil, l.err
	}
	rec, err := ParseRecord(append([]byte(recordMagic+"\n"), l.rest[:i]...))
	if err != nil {
		return nil, fmt.Errorf("ledger: malformed attestation: %w", err)
	}
	a.Record = *rec
	l.skip(i)
	sig := l.Field("sig")
	if l.err == nil {
		if a.Sig, err = ParseSignature(sig); err != nil {
			l.Fail("%v", err)
		}
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	return &a, nil
}
