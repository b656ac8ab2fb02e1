package p2p

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// testKey returns a deterministic node key.
func testKey(i int) ed25519.PrivateKey {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], uint64(i)+1000)
	return ed25519.NewKeyFromSeed(seed[:])
}

// testLogger discards logs unless VCSLEDGER_P2P_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("VCSLEDGER_P2P_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var keySeq struct {
	sync.Mutex
	n int
}

func nextKey() ed25519.PrivateKey {
	keySeq.Lock()
	defer keySeq.Unlock()
	keySeq.n++
	return testKey(keySeq.n)
}

// testConfig returns a config for chain "test" with genesis g, listening
// on a free port of 127.0.0.1, with short backoffs.
func testConfig(g ledger.Hash, h Handler, src BlockSource, bootstrap ...*Host) Config {
	cfg := Config{
		Chain:        "test",
		Genesis:      g,
		Key:          nextKey(),
		Listen:       []string{"/ip4/127.0.0.1/tcp/0"},
		Handler:      h,
		Source:       src,
		Logger:       testLogger(),
		HelloTimeout: 5 * time.Second,
		ReconnectMin: 50 * time.Millisecond,
		ReconnectMax: 500 * time.Millisecond,
	}
	for _, b := range bootstrap {
		cfg.Bootstrap = append(cfg.Bootstrap, b.Addrs()...)
	}
	return cfg
}

func startHost(t testing.TB, cfg Config) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

// testGenesis is the genesis hash the gossip tests use.
var testGenesis = ledger.SumSHA256([]byte("p2p test genesis"))

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hasPeers reports whether every host in ps passed h's hello and is connected.
func hasPeers(h *Host, ps ...*Host) bool {
	for _, p := range ps {
		if _, ok := h.Peer(p.ID()); !ok {
			return false
		}
	}
	return true
}

func connected(a, b *Host) bool {
	return a.host.Network().Connectedness(b.ID()) == network.Connected
}

// A recorder is a Handler that rejects messages starting with "bad",
// ignores those starting with "ignore", and records the rest.
type recorder struct {
	mu        sync.Mutex
	delivered map[string][][]byte // by topic
	validated [][]byte            // everything passed to Validate
	from      map[string]bool
	changed   chan struct{}
}

func newRecorder() *recorder {
	return &recorder{delivered: make(map[string][][]byte), from: make(map[string]bool), changed: make(chan struct{}, 1)}
}

func (r *recorder) Validate(topic, from string, data []byte) error {
	r.mu.Lock()
	r.validated = append(r.validated, bytes.Clone(data))
	r.mu.Unlock()
	switch {
	case bytes.HasPrefix(data, []byte("bad")):
		return errors.New("bad message")
	case bytes.HasPrefix(data, []byte("ignore")):
		return fmt.Errorf("not now: %w", ErrIgnore)
	}
	return nil
}

func (r *recorder) Deliver(topic, from string, data []byte) {
	r.mu.Lock()
	r.delivered[topic] = append(r.delivered[topic], bytes.Clone(data))
	r.from[from] = true
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) count(topic string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.delivered[topic])
}

func (r *recorder) has(topic string, data []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.delivered[topic] {
		if bytes.Equal(d, data) {
			return true
		}
	}
	return false
}

func (r *recorder) sawValidate(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, d := range r.validated {
		if bytes.HasPrefix(d, []byte(prefix)) {
			n++
		}
	}
	return n
}

// waitCount waits until r holds n messages on topic.
func (r *recorder) waitCount(t testing.TB, topic string, n int, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for r.count(topic) < n {
		select {
		case <-r.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("after %v: %d messages on %s, want %d", d, r.count(topic), topic, n)
		}
	}
}

// poaSeal is the poa seal check the consensus engine performs, for tests:
// proposer, certificate from the validator set, attestations.
type poaSeal struct {
	g    *ledger.Genesis
	vals *ledger.ValidatorSet
}

func newSeal(t testing.TB, g *ledger.Genesis) poaSeal {
	vs, err := g.ValidatorSet()
	if err != nil {
		t.Fatal(err)
	}
	return poaSeal{g: g, vals: vs}
}

func (s poaSeal) CheckSeal(ctx context.Context, parent *ledger.Header, b *ledger.Block) error {
	h := &b.Header
	if b.Certificate == nil {
		return errors.New("no certificate")
	}
	if want := s.vals.Proposer(h.Chain, h.Prev, h.Height, b.Certificate.Round); h.Proposer != want {
		return fmt.Errorf("proposer %s, want %s", h.Proposer, want)
	}
	if err := b.Certificate.Verify(s.vals, h.Chain, h.Height, b.Hash()); err != nil {
		return err
	}
	return ledger.CheckAttestations(b, s.vals, s.g.AttestationsNeeded())
}

// buildChain returns a chain of n validators with blocks blocks of per
// records each after genesis.
func buildChain(t testing.TB, vals, blocks, per int) *ledgertest.Chain {
	t.Helper()
	c := ledgertest.NewChain(t, vals)
	rng := newRand()
	for i := 0; i < blocks; i++ {
		c.Next(ledgertest.Records(rng, i*per, per))
	}
	return c
}

// freshStore returns a store holding only g's genesis block.
func freshStore(t testing.TB, g *ledger.Genesis) *ledgertest.MemStore {
	t.Helper()
	s := ledgertest.NewMemStore()
	if err := ledger.InitStore(context.Background(), s, g); err != nil {
		t.Fatal(err)
	}
	return s
}

// sameChain fails unless a and b hold the same blocks, byte for byte.
func sameChain(t testing.TB, a, b ledger.Store) {
	t.Helper()
	ctx := context.Background()
	ha, err := a.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := b.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ha.Height != hb.Height {
		t.Fatalf("heads %d and %d differ", ha.Height, hb.Height)
	}
	samePrefix(t, a, b, ha.Height)
}

// samePrefix fails unless a's head is at height and a holds b's blocks up
// to it, byte for byte.
func samePrefix(t testing.TB, a, b ledger.Store, height uint64) {
	t.Helper()
	ctx := context.Background()
	if ha, err := a.Head(ctx); err != nil || ha.Height != height {
		t.Fatalf("head = %v, %v; want height %d", ha, err, height)
	}
	for h := uint64(0); h <= height; h++ {
		ba, err := a.Block(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		bb, err := b.Block(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba.Format(), bb.Format()) {
			t.Fatalf("block %d differs", h)
		}
	}
}

// A limitSource serves a store's blocks up to height max only.
type limitSource struct {
	BlockSource
	max uint64
}

func (s limitSource) Head(ctx context.Context) (*ledger.Header, error) {
	h, err := s.BlockSource.Head(ctx)
	if err != nil || h.Height <= s.max {
		return h, err
	}
	return s.BlockSource.(ledger.Store).Header(ctx, s.max)
}

func (s limitSource) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	if height > s.max {
		return nil, fmt.Errorf("limit: %w", ledger.ErrNotFound)
	}
	return s.BlockSource.Block(ctx, height)
}

// A tamperSource serves a store's blocks with the block at one height
// changed by tamper.
type tamperSource struct {
	BlockSource
	at     uint64
	tamper func(*ledger.Block)
}

func (s tamperSource) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	b, err := s.BlockSource.Block(ctx, height)
	if err == nil && height == s.at {
		s.tamper(b)
	}
	return b, err
}

func peerIDs(hs ...*Host) []peer.ID {
	out := make([]peer.ID, len(hs))
	for i, h := range hs {
		out[i] = h.ID()
	}
	return out
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func ledgerHash(s string) ledger.Hash { return ledger.SumSHA256([]byte(s)) }
