package consensus

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/vcsledger/vcsledger/ledger"
)

// A hasher hashes one pow header template with every nonce it is given.
// The header's canonical bytes end with "nonce <decimal>\n", so the bytes
// before the nonce are hashed once and their SHA-256 state restored for
// each nonce: each try hashes only the last block or two of the header.
type hasher struct {
	d     hash.Hash
	state []byte // SHA-256 state after the bytes before the nonce
	tail  []byte
	sum   []byte
}

func newHasher(h *ledger.Header) (*hasher, error) {
	if h.Engine != ledger.EnginePoW {
		return nil, fmt.Errorf("consensus: mine a %s header", h.Engine)
	}
	c := *h
	c.Nonce = 0
	data := c.Format()
	prefix, ok := bytes.CutSuffix(data, []byte("nonce 0\n"))
	if !ok {
		return nil, errors.New("consensus: header bytes do not end with the nonce")
	}
	prefix = append(prefix, "nonce "...)
	d := sha256.New()
	d.Write(prefix)
	state, err := d.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	return &hasher{d: d, state: state, tail: make([]byte, 0, 24), sum: make([]byte, 0, sha256.Size)}, nil
}

// hash returns the header's hash with nonce; the result is valid until the
// next call.
func (x *hasher) hash(nonce uint64) []byte {
	x.d.(encoding.BinaryUnmarshaler).UnmarshalBinary(x.state)
	x.tail = strconv.AppendUint(x.tail[:0], nonce, 10)
	x.tail = append(x.tail, '\n')
	x.d.Write(x.tail)
	x.sum = x.d.Sum(x.sum[:0])
	return x.sum
}

// meets reports whether sum has at least bits leading zero bits.
func meets(sum []byte, bits uint32) bool {
	i := 0
	for ; bits >= 8; bits -= 8 {
		if sum[i] != 0 {
			return false
		}
		i++
	}
	return bits == 0 || sum[i]>>(8-bits) == 0
}

// Solve searches the nonces start, start+stride, ... (at most tries of
// them; 0 means until stop) for one that gives h a hash of at least h.Bits
// leading zero bits, checking stop every few thousand tries. It returns the
// header with that nonce, or ok false.
func Solve(h *ledger.Header, start, stride, tries uint64, stop func() bool) (ledger.Header, bool, error) {
	x, err := newHasher(h)
	if err != nil {
		return ledger.Header{}, false, err
	}
	if h.Bits == 0 || h.Bits > 255 {
		return ledger.Header{}, false, fmt.Errorf("consensus: mine bits %d", h.Bits)
	}
	if stride == 0 {
		stride = 1
	}
	nonce := start
	for i := uint64(0); tries == 0 || i < tries; i++ {
		if i%4096 == 0 && stop != nil && stop() {
			return ledger.Header{}, false, nil
		}
		if meets(x.hash(nonce), h.Bits) {
			c := *h
			c.Nonce = nonce
			return c, true, nil
		}
		nonce += stride
	}
	return ledger.Header{}, false, nil
}

// DefaultMinerWorkers returns the default number of mining workers: all
// cores but one, at least one.
func DefaultMinerWorkers() int { return max(runtime.NumCPU()-1, 1) }

// A Miner searches nonces for pow header templates on worker goroutines.
// Mine replaces the current template and returns at once; the workers of
// the template it replaces stop within a few thousand hashes. A solution
// stops its template's workers and is delivered on Found. Close stops
// every worker and waits for them.
//
// The Miner only hashes: the node builds templates (the block after its
// best tip, records, log root, time, NextBits) and checks what Found
// delivers against its current tip.
type Miner struct {
	workers int
	found   chan Solution
	hashes  atomic.Uint64

	mu     sync.Mutex
	job    uint64       // the current template's number
	stop   *atomic.Bool // the current template's
	closed bool
	wg     sync.WaitGroup
}

// A Solution is a solved header and the number Mine gave its template.
type Solution struct {
	Job    uint64
	Header ledger.Header
}

// NewMiner returns a Miner with workers goroutines per template (0:
// DefaultMinerWorkers).
func NewMiner(workers int) (*Miner, error) {
	if workers == 0 {
		workers = DefaultMinerWorkers()
	}
	if workers < 0 || workers > 1024 {
		return nil, fmt.Errorf("consensus: %d mining workers: want 1 to 1024", workers)
	}
	return &Miner{workers: workers, found: make(chan Solution, 1)}, nil
}

// Workers returns the number of workers per template.
func (m *Miner) Workers() int { return m.workers }

// Found delivers solved headers. Only the newest solution is kept while
// nobody reads, and only the current template's is delivered; one that was
// waiting when Mine replaced its template may still be read: compare its
// Job with Mine's result.
func (m *Miner) Found() <-chan Solution { return m.found }

// Hashes returns the number of hashes tried so far.
func (m *Miner) Hashes() uint64 { return m.hashes.Load() }

// Mine starts searching nonces for h from start (each worker its own
// residue class), stops the search of the previous template and returns
// the new template's number, which its Solution carries. It never blocks
// on the workers. A header that cannot be mined (not pow, bits out of
// range) is an error and stops nothing.
func (m *Miner) Mine(h ledger.Header, start uint64) (uint64, error) {
	if h.Engine != ledger.EnginePoW || h.Bits == 0 || h.Bits > 255 {
		return 0, fmt.Errorf("consensus: cannot mine block %d (engine %q, bits %d)", h.Height, h.Engine, h.Bits)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, errors.New("consensus: miner closed")
	}
	if m.stop != nil {
		m.stop.Store(true)
	}
	stop := new(atomic.Bool)
	m.stop = stop
	m.job++
	job := m.job
	for i := 0; i < m.workers; i++ {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.work(job, h, start+uint64(i), uint64(m.workers), stop)
		}()
	}
	return job, nil
}

func (m *Miner) work(job uint64, h ledger.Header, start, stride uint64, stop *atomic.Bool) {
	const batch = 1 << 10 // hashes counted per batch; stop is checked at least this often
	for nonce := start; !stop.Load(); nonce += batch * stride {
		sol, ok, err := Solve(&h, nonce, stride, batch, stop.Load)
		m.hashes.Add(batch)
		if err != nil {
			return
		}
		if ok {
			m.deliver(Solution{Job: job, Header: sol}, stop)
			return
		}
	}
}

// deliver hands sol to Found unless its template was replaced meanwhile,
// replacing a solution nobody read.
func (m *Miner) deliver(sol Solution, stop *atomic.Bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if stop.Swap(true) || m.closed {
		return
	}
	select {
	case <-m.found:
	default:
	}
	m.found <- sol
}

// Stop stops the current template's workers (they exit within a few
// thousand hashes) without waiting.
func (m *Miner) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stop != nil {
		m.stop.Store(true)
		m.stop = nil
	}
}

// Close stops every worker and waits for them to exit.
func (m *Miner) Close() {
	m.mu.Lock()
	m.closed = true
	if m.stop != nil {
		m.stop.Store(true)
		m.stop = nil
	}
	m.mu.Unlock()
	m.wg.Wait()
}
