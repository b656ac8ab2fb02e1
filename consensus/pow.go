package consensus

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"slices"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// Proof-of-work rules (DESIGN §3 pow, docs/FORMAT.md "Proof of work"). They
// are pure functions of the chain: every node computes the same values from
// the headers alone.

// Constants of the pow rules.
const (
	// MedianSpan is how many of the newest blocks the median-time rule
	// looks at: a block's time is not before the median of the times of
	// its parent and the parent's ancestors, up to MedianSpan blocks.
	MedianSpan = 11
	// MaxRetargetStep is the most the difficulty moves at one retarget,
	// in bits (a factor of 4 in work).
	MaxRetargetStep = 2
	// DefaultMaxDrift is how far into the future of a node's clock a
	// block's time may be before the node refuses it (for now; it may be
	// offered again later).
	DefaultMaxDrift = 2 * time.Minute
)

var (
	// ErrBadWork is wrapped by the errors of a pow header whose hash, bits
	// or time break the chain's rules. Such a block never becomes valid.
	ErrBadWork = errors.New("consensus: invalid proof of work")
	// ErrFuture is wrapped when a block's time is too far ahead of the
	// clock. Unlike ErrBadWork it is not final: the block may be offered
	// again once the clock has caught up.
	ErrFuture = errors.New("consensus: block time in the future")
)

// PoWParams are a pow chain's rules, from its genesis.
type PoWParams struct {
	Chain    string
	Bits     uint32 // difficulty of block 0 and the first blocks
	Retarget uint64 // blocks between difficulty adjustments
	Interval int64  // target block interval, milliseconds
	Attest   int    // attestations each record needs, from any signer
}

// NewPoWParams returns the rules of the pow chain g.
func NewPoWParams(g *ledger.Genesis) (PoWParams, error) {
	if g.Engine != ledger.EnginePoW {
		return PoWParams{}, fmt.Errorf("consensus: pow rules for a %s chain", g.Engine)
	}
	if err := g.Validate(); err != nil {
		return PoWParams{}, fmt.Errorf("consensus: %w", err)
	}
	return PoWParams{Chain: g.Chain, Bits: g.Bits, Retarget: g.Retarget, Interval: g.BlockInterval, Attest: g.AttestationsNeeded()}, nil
}

// An Ancestors finds the blocks before a header on its own branch.
type Ancestors interface {
	// Ancestor returns the header at height on the chain that ends at
	// tip: tip itself when height is tip.Height. It is only asked for
	// heights at or below tip's.
	Ancestor(ctx context.Context, tip *ledger.Header, height uint64) (*ledger.Header, error)
}

// StoreAncestors finds ancestors by height in a store's main chain. It is
// right for a tip on that chain (ledger.Audit, or appending after the
// head), not for side branches: use a Tree for those.
func StoreAncestors(s ledger.Store) Ancestors { return storeAncestors{s} }

type storeAncestors struct{ s ledger.Store }

func (a storeAncestors) Ancestor(ctx context.Context, tip *ledger.Header, height uint64) (*ledger.Header, error) {
	if height == tip.Height {
		h := *tip
		return &h, nil
	}
	if height > tip.Height {
		return nil, fmt.Errorf("consensus: ancestor %d of block %d", height, tip.Height)
	}
	return a.s.Header(ctx, height)
}

// LeadingZeroBits returns the number of leading zero bits of h.
func LeadingZeroBits(h ledger.Hash) int {
	n := 0
	for _, b := range h {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// Work returns the work a block of difficulty bits proves: 2^bits.
func Work(bits uint32) *big.Int { return new(big.Int).Lsh(big.NewInt(1), uint(bits)) }

// CheckWork checks that h's hash has at least h.Bits leading zero bits.
func CheckWork(h *ledger.Header) error {
	if h.Bits == 0 || h.Bits > 255 {
		return fmt.Errorf("%w: block %d: bits %d out of range", ErrBadWork, h.Height, h.Bits)
	}
	if z := LeadingZeroBits(h.Hash()); z < int(h.Bits) {
		return fmt.Errorf("%w: block %d: hash has %d leading zero bits, bits says %d", ErrBadWork, h.Height, z, h.Bits)
	}
	return nil
}

// NextBits returns the difficulty of the block after parent
// (docs/FORMAT.md, "Proof of work"). With N = p.Retarget, T = p.Interval
// and h = parent.Height+1: unless h is a multiple of N, it is parent.Bits.
// At a multiple of N, with k = min(N, h-1) intervals (none: parent.Bits),
// actual = parent.Time - time of the ancestor at height h-1-k and expected
// = k*T, it is parent.Bits
//
//	+2 if 4*actual <= expected,   else +1 if 2*actual <= expected,
//	-2 if actual >= 4*expected,   else -1 if actual >= 2*expected,
//
// and unchanged otherwise, clamped to 1..255.
func NextBits(ctx context.Context, p PoWParams, anc Ancestors, parent *ledger.Header) (uint32, error) {
	h := parent.Height + 1
	if p.Retarget == 0 || h%p.Retarget != 0 {
		return parent.Bits, nil
	}
	k := min(p.Retarget, h-1)
	if k == 0 {
		return parent.Bits, nil
	}
	first, err := anc.Ancestor(ctx, parent, h-1-k)
	if err != nil {
		return 0, fmt.Errorf("consensus: retarget at %d: %w", h, err)
	}
	return retarget(parent.Bits, parent.Time-first.Time, k, p.Interval), nil
}

// retarget applies the bounded step of NextBits.
func retarget(b uint32, actualMS int64, k uint64, interval int64) uint32 {
	actual := big.NewInt(max(actualMS, 0))
	expected := new(big.Int).Mul(new(big.Int).SetUint64(k), big.NewInt(interval))
	times := func(x *big.Int, n int64) *big.Int { return new(big.Int).Mul(x, big.NewInt(n)) }
	step := 0
	switch {
	case times(actual, 4).Cmp(expected) <= 0:
		step = 2
	case times(actual, 2).Cmp(expected) <= 0:
		step = 1
	case actual.Cmp(times(expected, 4)) >= 0:
		step = -2
	case actual.Cmp(times(expected, 2)) >= 0:
		step = -1
	}
	return uint32(min(max(int(b)+step, 1), 255))
}

// MedianTime returns the median of the times of parent and its ancestors,
// up to MedianSpan blocks (fewer near genesis): with the n times sorted,
// the one at index n/2.
func MedianTime(ctx context.Context, anc Ancestors, parent *ledger.Header) (int64, error) {
	n := min(uint64(MedianSpan), parent.Height+1)
	times := make([]int64, 0, n)
	times = append(times, parent.Time)
	cur := parent
	for i := uint64(1); i < n; i++ {
		a, err := anc.Ancestor(ctx, cur, cur.Height-1)
		if err != nil {
			return 0, fmt.Errorf("consensus: median time before %d: %w", parent.Height+1, err)
		}
		times = append(times, a.Time)
		cur = a
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// CheckPoWHeader checks the parts of a pow header that its branch decides:
// chain and engine, the link to parent (height, prev), the work, bits
// equal to NextBits and time not before MedianTime nor before parent's.
// Every failure wraps ErrBadWork. It does not look at the clock (see
// CheckFuture) nor at the body.
func CheckPoWHeader(ctx context.Context, p PoWParams, anc Ancestors, parent, h *ledger.Header) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: block %d: %s", ErrBadWork, h.Height, fmt.Sprintf(format, args...))
	}
	switch {
	case h.Chain != p.Chain:
		return bad("chain %q, want %q", h.Chain, p.Chain)
	case h.Engine != ledger.EnginePoW:
		return bad("engine %q on a pow chain", h.Engine)
	case h.Height != parent.Height+1:
		return bad("height after parent %d", parent.Height)
	case h.Prev != parent.Hash():
		return bad("prev %s is not the parent %s", h.Prev, parent.Hash())
	case h.Time < parent.Time:
		return bad("time %d before parent's %d", h.Time, parent.Time)
	}
	want, err := NextBits(ctx, p, anc, parent)
	if err != nil {
		return err
	}
	if h.Bits != want {
		return bad("bits %d, the retarget rule gives %d", h.Bits, want)
	}
	if err := CheckWork(h); err != nil {
		return err
	}
	mt, err := MedianTime(ctx, anc, parent)
	if err != nil {
		return err
	}
	if h.Time < mt {
		return bad("time %d before the median %d of the last %d blocks", h.Time, mt, MedianSpan)
	}
	return nil
}

// CheckFuture checks that h's time is at most drift after now.
func CheckFuture(h *ledger.Header, now time.Time, drift time.Duration) error {
	if limit := now.Add(drift).UnixMilli(); h.Time > limit {
		return fmt.Errorf("%w: block %d at %d is %s ahead of the clock (limit %s)", ErrFuture, h.Height, h.Time,
			time.Duration(h.Time-now.UnixMilli())*time.Millisecond, drift)
	}
	return nil
}

// A PoWSeal checks the seal of pow blocks: it implements ledger.SealChecker
// for ledger.ValidateNext and ledger.Audit. The seal is the header's work,
// its bits and time by the chain's rules (CheckPoWHeader), no certificate,
// and each record's attestations: PoWParams.Attest from any signers.
type PoWSeal struct {
	p   PoWParams
	anc Ancestors
}

var _ ledger.SealChecker = (*PoWSeal)(nil)

// NewPoWSeal returns the seal checker of the pow chain g, finding
// ancestors with anc.
func NewPoWSeal(g *ledger.Genesis, anc Ancestors) (*PoWSeal, error) {
	p, err := NewPoWParams(g)
	if err != nil {
		return nil, err
	}
	if anc == nil {
		return nil, errors.New("consensus: pow seal without ancestors")
	}
	return &PoWSeal{p: p, anc: anc}, nil
}

// Params returns the chain's rules.
func (s *PoWSeal) Params() PoWParams { return s.p }

// CheckSeal implements ledger.SealChecker.
func (s *PoWSeal) CheckSeal(ctx context.Context, parent *ledger.Header, b *ledger.Block) error {
	if b.Certificate != nil {
		return fmt.Errorf("%w: block %d carries a certificate", ErrBadWork, b.Header.Height)
	}
	if err := CheckPoWHeader(ctx, s.p, s.anc, parent, &b.Header); err != nil {
		return err
	}
	if err := ledger.CheckAttestations(b, nil, s.p.Attest); err != nil {
		return fmt.Errorf("consensus: block %d: %w", b.Header.Height, err)
	}
	return nil
}
