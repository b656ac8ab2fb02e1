package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"

	"github.com/vcsledger/vcsledger/ledger"
)

// ErrUnknownParent is returned by Tree.Add for a header whose parent the
// tree does not hold: fetch the missing ancestors first.
var ErrUnknownParent = errors.New("consensus: unknown parent block")

// A TreeNode is one block of a Tree.
type TreeNode struct {
	Header  ledger.Header
	Hash    ledger.Hash
	Parent  *TreeNode // nil for block 0
	Work    *big.Int  // cumulative: the sum of 2^bits of the blocks above block 0 up to this one
	Invalid bool      // this block or an ancestor failed validation
	kids    []*TreeNode
}

// A Tree is the tree of pow blocks a node holds, main chain and side
// branches, rooted at block 0, with the fork choice over it: the valid tip
// with the most cumulative work (the sum of 2^bits of its blocks above
// block 0), ties broken by the lower block hash (bytewise). It keeps every
// header in memory (a few hundred bytes each). It implements Ancestors for
// the headers it holds.
//
// A Tree is not safe for concurrent use.
type Tree struct {
	p     PoWParams
	nodes map[ledger.Hash]*TreeNode
	root  *TreeNode
	best  *TreeNode
}

var _ Ancestors = (*Tree)(nil)

// NewTree returns a tree holding block 0, genesis.
func NewTree(p PoWParams, genesis *ledger.Header) (*Tree, error) {
	if genesis.Height != 0 || !genesis.Prev.IsZero() || genesis.Chain != p.Chain || genesis.Engine != ledger.EnginePoW {
		return nil, fmt.Errorf("consensus: tree root is not the genesis block of pow chain %q", p.Chain)
	}
	n := &TreeNode{Header: *genesis, Hash: genesis.Hash(), Work: new(big.Int)}
	t := &Tree{p: p, nodes: map[ledger.Hash]*TreeNode{n.Hash: n}, root: n, best: n}
	return t, nil
}

// Len returns the number of blocks in the tree.
func (t *Tree) Len() int { return len(t.nodes) }

// Get returns the block of hash h, or nil.
func (t *Tree) Get(h ledger.Hash) *TreeNode { return t.nodes[h] }

// Best returns the tip the fork choice picks.
func (t *Tree) Best() *TreeNode { return t.best }

// Better reports whether tip a is preferred to tip b: more work, or equal
// work and a lower hash.
func Better(a, b *TreeNode) bool {
	if c := a.Work.Cmp(b.Work); c != 0 {
		return c > 0
	}
	return bytes.Compare(a.Hash[:], b.Hash[:]) < 0
}

// Add checks h against its parent's branch (CheckPoWHeader) and adds it.
// A header already held is returned as it is. A header whose parent is not
// held fails with ErrUnknownParent; one below an invalid block, or that
// fails the rules, with an error wrapping ErrBadWork; neither is added.
func (t *Tree) Add(ctx context.Context, h *ledger.Header) (*TreeNode, error) {
	hash := h.Hash()
	if n := t.nodes[hash]; n != nil {
		return n, nil
	}
	parent := t.nodes[h.Prev]
	if parent == nil {
		return nil, fmt.Errorf("%w: block %d %s after %s", ErrUnknownParent, h.Height, hash, h.Prev)
	}
	if parent.Invalid {
		return nil, fmt.Errorf("%w: block %d %s descends from invalid block %s", ErrBadWork, h.Height, hash, h.Prev)
	}
	if err := CheckPoWHeader(ctx, t.p, t, &parent.Header, h); err != nil {
		return nil, err
	}
	return t.insert(parent, h, hash), nil
}

// Insert adds h, whose parent the tree holds, without checking the rules:
// for headers validated before (loading a store).
func (t *Tree) Insert(h *ledger.Header) (*TreeNode, error) {
	hash := h.Hash()
	if n := t.nodes[hash]; n != nil {
		return n, nil
	}
	parent := t.nodes[h.Prev]
	if parent == nil || h.Height != parent.Header.Height+1 {
		return nil, fmt.Errorf("%w: block %d %s after %s", ErrUnknownParent, h.Height, hash, h.Prev)
	}
	return t.insert(parent, h, hash), nil
}

func (t *Tree) insert(parent *TreeNode, h *ledger.Header, hash ledger.Hash) *TreeNode {
	n := &TreeNode{Header: *h, Hash: hash, Parent: parent, Invalid: parent.Invalid}
	n.Work = new(big.Int).Add(parent.Work, Work(h.Bits))
	parent.kids = append(parent.kids, n)
	t.nodes[hash] = n
	if !n.Invalid && Better(n, t.best) {
		t.best = n
	}
	return n
}

// MarkInvalid marks the block of hash h and every block above it invalid
// (its body failed validation) and moves the best tip off them.
func (t *Tree) MarkInvalid(h ledger.Hash) {
	n := t.nodes[h]
	if n == nil || n == t.root {
		return
	}
	stack := []*TreeNode{n}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x.Invalid = true
		stack = append(stack, x.kids...)
	}
	if t.best.Invalid {
		t.best = t.root
		for _, x := range t.nodes {
			if !x.Invalid && Better(x, t.best) {
				t.best = x
			}
		}
	}
}

// Remove takes the block of hash h and every block above it out of the
// tree (a side branch no longer worth keeping) and returns their hashes.
// The root, and a branch holding the best tip, are not removed (nil).
func (t *Tree) Remove(h ledger.Hash) []ledger.Hash {
	n := t.nodes[h]
	if n == nil || n == t.root {
		return nil
	}
	for x := t.best; x != nil; x = x.Parent {
		if x == n {
			return nil
		}
		if x.Header.Height < n.Header.Height {
			break
		}
	}
	kids := n.Parent.kids
	for i, k := range kids {
		if k == n {
			n.Parent.kids = append(kids[:i:i], kids[i+1:]...)
			break
		}
	}
	var out []ledger.Hash
	stack := []*TreeNode{n}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		delete(t.nodes, x.Hash)
		out = append(out, x.Hash)
		stack = append(stack, x.kids...)
	}
	return out
}

// Fork returns the newest block that a and b both descend from (or are).
func Fork(a, b *TreeNode) *TreeNode {
	for a.Header.Height > b.Header.Height {
		a = a.Parent
	}
	for b.Header.Height > a.Header.Height {
		b = b.Parent
	}
	for a != b {
		a, b = a.Parent, b.Parent
	}
	return a
}

// Branch returns the blocks after from up to and including to, oldest
// first; from must be an ancestor of to (or to itself: none).
func Branch(from, to *TreeNode) []*TreeNode {
	if to.Header.Height < from.Header.Height {
		return nil
	}
	out := make([]*TreeNode, to.Header.Height-from.Header.Height)
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = to
		to = to.Parent
	}
	return out
}

// AncestorNode returns the block at height on n's branch, or nil.
func AncestorNode(n *TreeNode, height uint64) *TreeNode {
	if height > n.Header.Height {
		return nil
	}
	for n.Header.Height > height {
		n = n.Parent
	}
	return n
}

// Ancestor implements Ancestors for tips the tree holds.
func (t *Tree) Ancestor(ctx context.Context, tip *ledger.Header, height uint64) (*ledger.Header, error) {
	n := t.nodes[tip.Hash()]
	if n == nil {
		return nil, fmt.Errorf("%w: block %d %s is not in the tree", ErrUnknownParent, tip.Height, tip.Hash())
	}
	a := AncestorNode(n, height)
	if a == nil {
		return nil, fmt.Errorf("consensus: ancestor %d of block %d", height, tip.Height)
	}
	h := a.Header
	return &h, nil
}
