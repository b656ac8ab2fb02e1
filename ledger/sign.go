package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"filippo.io/edwards25519"
	"github.com/hdevalence/ed25519consensus"
)

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = errors.New("ledger: invalid signature")

// A PublicKey is an ed25519 public key. Its text form is 64 lowercase hex
// digits.
type PublicKey [ed25519.PublicKeySize]byte

// A Signature is an ed25519 signature. Its text form is 128 lowercase hex
// digits.
type Signature [ed25519.SignatureSize]byte

// ParsePublicKey parses 64 lowercase hex digits.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	if err := parseHexFixed(s, k[:]); err != nil {
		return PublicKey{}, fmt.Errorf("ledger: invalid public key %q: %w", clip(s), err)
	}
	return k, nil
}

// ParseSignature parses 128 lowercase hex digits.
func ParseSignature(s string) (Signature, error) {
	var sig Signature
	if err := parseHexFixed(s, sig[:]); err != nil {
		return Signature{}, fmt.Errorf("ledger: invalid signature %q: %w", clip(s), err)
	}
	return sig, nil
}

func (k PublicKey) String() string { return hex.EncodeToString(k[:]) }
func (s Signature) String() string { return hex.EncodeToString(s[:]) }

// Compare orders keys bytewise, as validator sets are sorted.
func (k PublicKey) Compare(o PublicKey) int { return bytes.Compare(k[:], o[:]) }

// MarshalText implements encoding.TextMarshaler.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *PublicKey) UnmarshalText(b []byte) error {
	x, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*k = x
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Signature) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Signature) UnmarshalText(b []byte) error {
	x, err := ParseSignature(string(b))
	if err != nil {
		return err
	}
	*s = x
	return nil
}

// Verify reports whether sig is a valid signature of msg by k under the
// ZIP-215 rules (ed25519consensus), which every node applies identically.
func (k PublicKey) Verify(msg []byte, sig Signature) bool {
	return ed25519consensus.Verify(ed25519.PublicKey(k[:]), msg, sig[:])
}

// Check reports whether k can be a validator key: the canonical encoding of
// a curve point that is not of small order. Under ZIP-215 a small-order key
// verifies the signature (R = identity, s = 0) for every message, so anyone
// could sign as it; a non-canonical encoding gives one key two names.
func (k PublicKey) Check() error {
	p, err := new(edwards25519.Point).SetBytes(k[:])
	if err != nil {
		return fmt.Errorf("ledger: public key %s: not a curve point", k)
	}
	if !bytes.Equal(p.Bytes(), k[:]) {
		return fmt.Errorf("ledger: public key %s: non-canonical encoding", k)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("ledger: public key %s: small order", k)
	}
	return nil
}

// A Signer signs messages with one ed25519 key. It is what a validator holds.
type Signer struct {
	priv ed25519.PrivateKey
	pub  PublicKey
}

// NewSigner returns a Signer for an ed25519 private key.
func NewSigner(priv ed25519.PrivateKey) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ledger: private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	s := &Signer{priv: priv}
	copy(s.pub[:], priv.Public().(ed25519.PublicKey))
	return s, nil
}

// Public returns the signer's public key.
func (s *Signer) Public() PublicKey { return s.pub }

// Sign signs msg.
func (s *Signer) Sign(msg []byte) Signature {
	var sig Signature
	copy(sig[:], ed25519.Sign(s.priv, msg))
	return sig
}

// A SignedItem is one (key, message, signature) triple for VerifyBatch.
type SignedItem struct {
	Key PublicKey
	Msg []byte
	Sig Signature
}

// VerifyBatch verifies many signatures at once with ed25519consensus's batch
// verifier. It returns nil when all verify; otherwise the index of the first
// bad item (found by checking one at a time) wrapped in an error. Many
// signatures (a block's attestations) are split into batches verified on
// up to GOMAXPROCS goroutines, which it waits for.
func VerifyBatch(items []SignedItem) error {
	if len(items) == 0 {
		return nil
	}
	if len(items) == 1 {
		if !items[0].Key.Verify(items[0].Msg, items[0].Sig) {
			return fmt.Errorf("signature 0 by %s: %w", items[0].Key, ErrBadSignature)
		}
		return nil
	}
	if verifyParallel(items) {
		return nil
	}
	for i, it := range items {
		if !it.Key.Verify(it.Msg, it.Sig) {
			return fmt.Errorf("signature %d by %s: %w", i, it.Key, ErrBadSignature)
		}
	}
	// The batch failed but every single check passed: treat as invalid, the
	// batch equation is the stricter view (it cannot happen under ZIP-215).
	return fmt.Errorf("batch: %w", ErrBadSignature)
}

// minParallelBatch is the fewest signatures a batch verified on a
// goroutine of its own holds.
const minParallelBatch = 256

// verifyParallel reports whether every item verifies, in one batch, or in
// batches of at least minParallelBatch verified in parallel.
func verifyParallel(items []SignedItem) bool {
	parts := min(runtime.GOMAXPROCS(0), len(items)/minParallelBatch)
	if parts <= 1 {
		return verifyBatch(items)
	}
	ok := make([]bool, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok[p] = verifyBatch(items[p*len(items)/parts : (p+1)*len(items)/parts])
		}()
	}
	wg.Wait()
	return !slices.Contains(ok, false)
}

// verifyBatch reports whether every item verifies, in one batch.
func verifyBatch(items []SignedItem) bool {
	bv := ed25519consensus.NewPreallocatedBatchVerifier(len(items))
	for _, it := range items {
		bv.Add(ed25519.PublicKey(it.Key[:]), it.Msg, it.Sig[:])
	}
	return bv.Verify()
}
