package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoints as C2SP signed notes, co-signed by the validators.
//
// SPEC: c2sp.org/tlog-checkpoint, c2sp.org/signed-note. A block's
// checkpoint is the note text
//
//	<chain id>
//	<log size>
//	<base64 log root>
//	block <height> <hex block hash>
//
// (the last line is an extension line binding the note to one block), and
// each validator signs that text with its validator key as an Ed25519 note
// signature under the key name <chain id>/<validator name>. A note carrying
// the signatures of a quorum of the validators is a checkpoint every client
// can check with golang.org/x/mod/sumdb/note and the validators' verifier
// keys (VerifierKey), without knowing anything of vcsledger's own formats.
//
// The note text starts with the chain id, a line without '/', so it is
// never a vote, attestation or proposal message (whose first lines all
// contain '/'): a checkpoint signature cannot be replayed as another role's.

// Errors of checkpoint verification.
var (
	// ErrNoQuorum: a note that verifies, but not with a quorum of validators.
	ErrNoQuorum = errors.New("ledger: checkpoint lacks a quorum of validator signatures")
)

// Limits of the checkpoint encodings.
const (
	// MaxCosignatureBytes caps a co-signature message (a valid one is
	// about 500 bytes).
	MaxCosignatureBytes = 1024
	// MaxNoteBytes caps a signed checkpoint note (a note with 1,000
	// signatures is about 130 KB).
	MaxNoteBytes = 256 << 10
	// MaxProofBytes caps a tlog-proof bundle (one carrying validator-set
	// changes holds every change's votes).
	MaxProofBytes = 4 << 20
)

// A Checkpoint is what a block says about the log: the log's size and root
// after the block, bound to the block's height and hash.
type Checkpoint struct {
	Chain   string
	Height  uint64
	Block   Hash // the block hash
	LogSize uint64
	LogRoot Hash
}

// CheckpointOf returns the checkpoint of the block with header h.
func CheckpointOf(h *Header) Checkpoint {
	return Checkpoint{Chain: h.Chain, Height: h.Height, Block: h.Hash(), LogSize: h.LogSize, LogRoot: h.LogRoot}
}

// Text returns the checkpoint's note text, the bytes validators sign.
func (c *Checkpoint) Text() []byte {
	var b bytes.Buffer
	b.Grow(len(c.Chain) + 140)
	b.WriteString(c.Chain + "\n")
	b.WriteString(strconv.FormatUint(c.LogSize, 10) + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(c.LogRoot[:]) + "\n")
	b.WriteString("block " + strconv.FormatUint(c.Height, 10) + " " + c.Block.String() + "\n")
	return b.Bytes()
}

// ParseCheckpointText parses a checkpoint's note text strictly: exactly
// the four lines Text writes, in canonical form.
func ParseCheckpointText(b []byte) (*Checkpoint, error) {
	fail := func(format string, args ...any) (*Checkpoint, error) {
		return nil, &FormatError{What: "checkpoint", Msg: fmt.Sprintf(format, args...)}
	}
	ls := strings.Split(string(b), "\n")
	if len(ls) != 5 || ls[4] != "" {
		return fail("want 4 LF-terminated lines")
	}
	var c Checkpoint
	c.Chain = ls[0]
	if err := CheckChainID(c.Chain); err != nil {
		return fail("origin: %v", err)
	}
	var err error
	if c.LogSize, err = parseCanonicalUint(ls[1]); err != nil {
		return fail("log size: %v", err)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(ls[2])
	if err != nil || len(root) != len(c.LogRoot) {
		return fail("root hash %q: want the base64 of 32 bytes", clip(ls[2]))
	}
	copy(c.LogRoot[:], root)
	rest, ok := strings.CutPrefix(ls[3], "block ")
	height, hash, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 {
		return fail("want \"block <height> <hash>\", have %q", clip(ls[3]))
	}
	if c.Height, err = parseCanonicalUint(height); err != nil {
		return fail("block height: %v", err)
	}
	if err := parseHexFixed(hash, c.Block[:]); err != nil {
		return fail("block hash: %v", err)
	}
	if !bytes.Equal(c.Text(), b) {
		return fail("not canonical")
	}
	return &c, nil
}

// NoteOrigin returns the first line of a note: a checkpoint's chain id.
func NoteOrigin(msg []byte) string {
	origin, _, _ := bytes.Cut(msg, []byte("\n"))
	return string(origin)
}

// KeyName returns the note key name of validator name on chain:
// "<chain id>/<name>".
func KeyName(chain, name string) string { return chain + "/" + name }

// sigTypeEd25519 is the signed-note signature type of Ed25519 keys.
const sigTypeEd25519 = 0x01

// KeyID returns the note key ID of key k under name: the first four bytes,
// big-endian, of SHA-256(name || 0x0A || 0x01 || k).
func KeyID(name string, k PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{sigTypeEd25519})
	h.Write(k[:])
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// VerifierKey returns the note verifier key of validator v on chain, as
// golang.org/x/mod/sumdb/note.NewVerifier reads it:
// "<key name>+<8 hex digits of the key ID>+<base64(0x01 || key)>".
func VerifierKey(chain string, v Validator) string {
	name := KeyName(chain, v.Name)
	return fmt.Sprintf("%s+%08x+%s", name, KeyID(name, v.Key),
		base64.StdEncoding.EncodeToString(append([]byte{sigTypeEd25519}, v.Key[:]...)))
}

// A noteVerifier checks a validator's note signatures under the ZIP-215
// rules, as every other validator signature is checked.
type noteVerifier struct {
	name string
	id   uint32
	key  PublicKey
}

func (v *noteVerifier) Name() string    { return v.name }
func (v *noteVerifier) KeyHash() uint32 { return v.id }
func (v *noteVerifier) Verify(msg, sig []byte) bool {
	var s Signature
	if len(sig) != len(s) {
		return false
	}
	copy(s[:], sig)
	return verifyBoth(v.key, msg, s)
}

// verifyBoth reports whether sig verifies under ZIP-215 (as every node
// decides) and under crypto/ed25519 (as stock note verifiers decide), so
// that a note made of valid co-signatures is valid for both. An honest
// signer's signatures pass both.
func verifyBoth(k PublicKey, msg []byte, sig Signature) bool {
	return k.Verify(msg, sig) && ed25519.Verify(ed25519.PublicKey(k[:]), msg, sig[:])
}

// NoteVerifiers returns the note verifiers of the validators of chain.
func NoteVerifiers(chain string, vals *ValidatorSet) note.Verifiers {
	var list []note.Verifier
	for _, v := range vals.Validators() {
		name := KeyName(chain, v.Name)
		list = append(list, &noteVerifier{name: name, id: KeyID(name, v.Key), key: v.Key})
	}
	return note.VerifierList(list...)
}

// OpenCheckpoint verifies a signed checkpoint note of chain: the note is
// well formed (at most MaxNoteBytes), every signature by a validator's key
// verifies (signatures by other keys are ignored, as the signed-note
// specification asks), at least a quorum of distinct validators signed,
// and the text is a checkpoint of chain. It returns the checkpoint and the
// validators that signed it. Errors wrap ErrMalformed, ErrBadSignature or
// ErrNoQuorum.
func OpenCheckpoint(msg []byte, chain string, vals *ValidatorSet) (*Checkpoint, []PublicKey, error) {
	if len(msg) > MaxNoteBytes {
		return nil, nil, &FormatError{What: "checkpoint note", Msg: fmt.Sprintf("%d bytes, more than %d", len(msg), MaxNoteBytes)}
	}
	n, err := note.Open(msg, NoteVerifiers(chain, vals))
	var ise *note.InvalidSignatureError
	var une *note.UnverifiedNoteError
	switch {
	case errors.As(err, &ise):
		return nil, nil, fmt.Errorf("checkpoint note: signature by %s+%08x: %w", ise.Name, ise.Hash, ErrBadSignature)
	case errors.As(err, &une):
		return nil, nil, fmt.Errorf("checkpoint note: no signature by a validator of chain %q: %w", chain, ErrNoQuorum)
	case err != nil:
		return nil, nil, &FormatError{What: "checkpoint note", Msg: err.Error()}
	}
	c, err := ParseCheckpointText([]byte(n.Text))
	if err != nil {
		return nil, nil, err
	}
	if c.Chain != chain {
		return nil, nil, fmt.Errorf("checkpoint note of chain %q, want %q: %w", c.Chain, chain, ErrMalformed)
	}
	byID := map[string]PublicKey{}
	for _, v := range vals.Validators() {
		name := KeyName(chain, v.Name)
		byID[fmt.Sprintf("%s+%08x", name, KeyID(name, v.Key))] = v.Key
	}
	seen := map[PublicKey]bool{}
	var signers []PublicKey
	for _, s := range n.Sigs {
		// note.Open accepts base64 whose unused low bits are set; a
		// validator's signature has one encoding only.
		if raw, err := base64.StdEncoding.Strict().DecodeString(s.Base64); err != nil || base64.StdEncoding.EncodeToString(raw) != s.Base64 {
			return nil, nil, &FormatError{What: "checkpoint note", Msg: fmt.Sprintf("signature by %s: non-canonical base64", s.Name)}
		}
		k := byID[fmt.Sprintf("%s+%08x", s.Name, s.Hash)]
		if !seen[k] {
			seen[k] = true
			signers = append(signers, k)
		}
	}
	sort.Slice(signers, func(i, j int) bool { return signers[i].Compare(signers[j]) < 0 })
	if len(signers) < vals.Quorum() {
		return nil, nil, fmt.Errorf("checkpoint at height %d signed by %d validators, quorum is %d: %w", c.Height, len(signers), vals.Quorum(), ErrNoQuorum)
	}
	return c, signers, nil
}

// A Cosignature is one validator's signature of a checkpoint, as the
// validators gossip them.
type Cosignature struct {
	Checkpoint
	Validator PublicKey
	Sig       Signature // over Checkpoint.Text()
}

const cosigMagic = "vcsledger-cosig/1"

// Cosign signs the checkpoint c with s.
func Cosign(s *Signer, c Checkpoint) Cosignature {
	return Cosignature{Checkpoint: c, Validator: s.Public(), Sig: s.Sign(c.Text())}
}

// Verify checks the co-signature's signature: valid under ZIP-215 and
// under crypto/ed25519 both (see verifyBoth).
func (c *Cosignature) Verify() error {
	if !verifyBoth(c.Validator, c.Text(), c.Sig) {
		return fmt.Errorf("co-signature of checkpoint %d by %s: %w", c.Height, c.Validator, ErrBadSignature)
	}
	return nil
}

// Format returns the co-signature's canonical bytes:
//
//	vcsledger-cosig/1
//	chain <chain id>
//	height <n>
//	block <hex block hash>
//	log <log size> <hex log root>
//	validator <hex public key>
//	sig <hex signature of the checkpoint's note text>
func (c *Cosignature) Format() []byte {
	var b TextWriter
	b.Grow(520)
	b.WriteString(cosigMagic + "\n")
	b.Line("chain", c.Chain)
	b.Uint("height", c.Height)
	b.Line("block", c.Block.String())
	b.Line("log", strconv.FormatUint(c.LogSize, 10)+" "+c.LogRoot.String())
	b.Line("validator", c.Validator.String())
	b.Line("sig", c.Sig.String())
	return b.Bytes()
}

// IsCosignature reports whether b starts as a co-signature does (to tell
// it from other messages on one topic); ParseCosignature decides.
func IsCosignature(b []byte) bool { return bytes.HasPrefix(b, []byte(cosigMagic+"\n")) }

// ParseCosignature parses a co-signature's canonical bytes (at most
// MaxCosignatureBytes). It does not verify the signature.
func ParseCosignature(b []byte) (*Cosignature, error) {
	if len(b) > MaxCosignatureBytes {
		return nil, &FormatError{What: "co-signature", Msg: fmt.Sprintf("%d bytes, more than %d", len(b), MaxCosignatureBytes)}
	}
	l := NewTextReader("co-signature", b)
	l.Magic(cosigMagic)
	var c Cosignature
	c.Chain = l.Field("chain")
	if l.err == nil {
		if err := CheckChainID(c.Chain); err != nil {
			l.Fail("%v", err)
		}
	}
	c.Height = l.Uint("height")
	c.Block = l.Hash("block")
	if s, ok := l.Next(); ok {
		rest, _ := strings.CutPrefix(s, "log ")
		size, root, found := strings.Cut(rest, " ")
		var err error
		switch {
		case !strings.HasPrefix(s, "log ") || !found:
			l.Fail("want \"log <size> <root>\", have %q", clip(s))
		default:
			if c.LogSize, err = parseCanonicalUint(size); err != nil {
				l.Fail("log size: %v", err)
			} else if err := parseHexFixed(root, c.LogRoot[:]); err != nil {
				l.Fail("log root: %v", err)
			}
		}
	}
	c.Validator = l.PubKey("validator")
	sig := l.Field("sig")
	if l.err == nil {
		var err error
		if c.Sig, err = ParseSignature(sig); err != nil {
			l.Fail("%v", err)
		}
	}
	if err := l.End(); err != nil {
		return nil, err
	}
	return &c, nil
}

// FormatNote returns the signed note of checkpoint c with the signatures
// sigs, one line per validator, in the order of the validators' keys.
// Every co-signature must be of c, by a distinct validator of vals; FormatNote
// does not verify them.
func FormatNote(c Checkpoint, vals *ValidatorSet, sigs []Cosignature) ([]byte, error) {
	if len(sigs) == 0 {
		return nil, errors.New("ledger: a note needs at least one signature")
	}
	sorted := append([]Cosignature(nil), sigs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Validator.Compare(sorted[j].Validator) < 0 })
	var b bytes.Buffer
	b.Write(c.Text())
	b.WriteString("\n")
	for i, s := range sorted {
		if s.Checkpoint != c {
			return nil, fmt.Errorf("ledger: co-signature by %s is of another checkpoint", s.Validator)
		}
		if i > 0 && sorted[i-1].Validator == s.Validator {
			return nil, fmt.Errorf("ledger: two co-signatures by %s", s.Validator)
		}
		j := vals.Index(s.Validator)
		if j < 0 {
			return nil, fmt.Errorf("ledger: co-signature by %s, not a validator", s.Validator)
		}
		name := KeyName(c.Chain, vals.Validators()[j].Name)
		var raw [4 + len(Signature{})]byte
		binary.BigEndian.PutUint32(raw[:4], KeyID(name, s.Validator))
		copy(raw[4:], s.Sig[:])
		b.WriteString("— " + name + " " + base64.StdEncoding.EncodeToString(raw[:]) + "\n")
	}
	return b.Bytes(), nil
}

// A Proof is an offline proof that a record is in the log, in the C2SP
// tlog-proof format (SPEC: c2sp.org/tlog-proof): the record (with the
// validator-set changes that lead from the genesis to the checkpoint's
// set, when there are any) as the extra data (ProofExtra), its index, its
// inclusion proof and a signed checkpoint note of the log the proof is
// for.
type Proof struct {
	Extra      []byte // ProofExtra.Format() (not trusted: every leaf in it is proven)
	Index      int64
	Hashes     []Hash // RFC 6962 inclusion proof, from the leaf's sibling up
	Checkpoint []byte // the signed note, verbatim
}

const proofMagic = "c2sp.org/tlog-proof@v1"

// Format returns the proof's text:
//
//	c2sp.org/tlog-proof@v1
//	extra <base64 extra data>        (omitted when there is none)
//	index <n>
//	<base64 hash>                    (one line per proof hash)
//	<empty line>
//	<signed checkpoint note>
func (p *Proof) Format() []byte {
	var b bytes.Buffer
	b.WriteString(proofMagic + "\n")
	if len(p.Extra) > 0 {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Extra) + "\n")
	}
	b.WriteString("index " + strconv.FormatInt(p.Index, 10) + "\n")
	for _, h := range p.Hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(p.Checkpoint)
	return b.Bytes()
}

// ParseProof parses a tlog-proof (at most MaxProofBytes) strictly: the
// lines Format writes, canonical base64 and decimal, at most 63 proof
// hashes, and a non-empty checkpoint. It verifies nothing (Verify does,
// and parses the extra data).
func ParseProof(b []byte) (*Proof, error) {
	fail := func(format string, args ...any) (*Proof, error) {
		return nil, &FormatError{What: "tlog-proof", Msg: fmt.Sprintf(format, args...)}
	}
	if len(b) > MaxProofBytes {
		return fail("%d bytes, more than %d", len(b), MaxProofBytes)
	}
	rest := b
	line := func() (string, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		s := string(rest[:i])
		rest = rest[i+1:]
		return s, true
	}
	if s, ok := line(); !ok || s != proofMagic {
		return fail("first line is not %q", proofMagic)
	}
	var p Proof
	s, ok := line()
	if v, found := strings.CutPrefix(s, "extra "); ok && found {
		extra, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil || len(extra) == 0 || base64.StdEncoding.EncodeToString(extra) != v {
			return fail("extra: not canonical base64 of non-empty data")
		}
		p.Extra = extra
		s, ok = line()
	}
	v, found := strings.CutPrefix(s, "index ")
	if !ok || !found {
		return fail("want \"index <n>\"")
	}
	idx, err := parseCanonicalUint(v)
	if err != nil || idx >= 1<<63 {
		return fail("index %q", clip(v))
	}
	p.Index = int64(idx)
	for {
		s, ok := line()
		if !ok {
			return fail("no empty line before the checkpoint")
		}
		if s == "" {
			break
		}
		h, err := base64.StdEncoding.Strict().DecodeString(s)
		if err != nil || len(h) != len(Hash{}) {
			return fail("proof hash %q: want the base64 of 32 bytes", clip(s))
		}
		if len(p.Hashes) == 63 {
			return fail("more than 63 proof hashes")
		}
		p.Hashes = append(p.Hashes, Hash(h))
	}
	if len(rest) == 0 {
		return fail("no checkpoint")
	}
	p.Checkpoint = append([]byte(nil), rest...)
	return &p, nil
}
