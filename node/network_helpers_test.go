package node

// Helpers for the network tests: a cluster of nodes of one chain run in
// this process on 127.0.0.1, each with its own SQLite file, wired the way
// 'ledgerd testnet' wires processes (fixed ports, every node a bootstrap
// peer of every other), so that a node restarted on the same ports is
// found again. Nodes are the shipped Node with nothing replaced; the tests
// reach into the package only to partition (the p2p host's gater) and to
// read the engine's status.

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// netKey is the deterministic key of cluster member i (validators first).
func netKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("node network test key"), uint64(i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

// peerIDOf is the libp2p peer id of a node key.
func peerIDOf(tb testing.TB, k ed25519.PrivateKey) peer.ID {
	tb.Helper()
	pk, err := crypto.UnmarshalEd25519PublicKey(k.Public().(ed25519.PublicKey))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// freePorts returns n TCP ports of 127.0.0.1 that were free a moment ago.
func freePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// testLogger returns a logger for node name: discarded unless
// VCSLEDGER_TEST_LOG is debug, info, warn or error, then text on stderr.
// (Not t.Log: a node killed without grace may log after its test ended.)
func testLogger(name string) *slog.Logger {
	var lvl slog.Level
	switch os.Getenv("VCSLEDGER_TEST_LOG") {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("node", name)
}

// A member is one node of a cluster: its key and fixed address. Node is
// nil while it is down.
type member struct {
	key     ed25519.PrivateKey
	peerKey ed25519.PrivateKey // libp2p identity; nil: key
	id      peer.ID
	addr    string // p2p multiaddr with /p2p/<id>
	url     string // API base URL, fixed at the first start (restarts keep it)
	// running mirrors Node != nil for the load's goroutines, which must
	// not touch testNode.
	running atomic.Bool
	*testNode
}

// up reports whether the member runs.
func (m *member) up() bool { return m.running.Load() }

// A cluster is nodes of one PoA chain run in this process.
type cluster struct {
	tb      testing.TB
	g       *ledger.Genesis
	dir     string
	members []*member
	// tweak, when set, adjusts a member's Config before each start.
	tweak func(i int, c *Config)
}

// clusterOpts shape a cluster's chain.
type clusterOpts struct {
	validators    int // required
	followers     int // non-validating replicas after the validators
	attestQuorum  int // as in the genesis: -1 is f+1, 0 the proposer's word
	blockInterval int // milliseconds; 0: 50
	// genesisAge dates the genesis this far in the past, so that a chain
	// built offline (prebuild) ends before now.
	genesisAge time.Duration
	tweak      func(i int, c *Config)
}

// newCluster creates a chain and the members' configurations; start them
// with startAll or start.
func newCluster(tb testing.TB, o clusterOpts) *cluster {
	tb.Helper()
	n := o.validators + o.followers
	keys := make([]ed25519.PrivateKey, n)
	for i := range keys {
		keys[i] = netKey(i)
	}
	g := newGenesis(tb, "nettest", o.attestQuorum, keys[:o.validators]...)
	if o.blockInterval > 0 {
		g.BlockInterval = int64(o.blockInterval)
	}
	g.Time -= o.genesisAge.Milliseconds()
	if err := g.Validate(); err != nil {
		tb.Fatal(err)
	}
	c := &cluster{tb: tb, g: g, dir: tb.TempDir(), tweak: o.tweak}
	for i, port := range freePorts(tb, n) {
		id := peerIDOf(tb, keys[i])
		c.members = append(c.members, &member{key: keys[i], id: id,
			addr: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id)})
	}
	return c
}

// addMember adds a member with key k (a twin of a validator when k is one)
// and peer identity peerKey (k when nil), and returns its index.
func (c *cluster) addMember(k, peerKey ed25519.PrivateKey) int {
	c.tb.Helper()
	if peerKey == nil {
		peerKey = k
	}
	id := peerIDOf(c.tb, peerKey)
	port := freePorts(c.tb, 1)[0]
	c.members = append(c.members, &member{key: k, peerKey: peerKey, id: id, addr: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id)})
	return len(c.members) - 1
}

func (c *cluster) startAll() {
	c.tb.Helper()
	for i := range c.members {
		c.start(i)
	}
}

// config returns member i's configuration on the database file db.
func (c *cluster) config(i int, db string) Config {
	m := c.members[i]
	listen, _, _ := cutP2P(m.addr)
	var boot []string
	for j, o := range c.members {
		if j != i && o.id != m.id {
			boot = append(boot, o.addr)
		}
	}
	cfg := Config{
		Genesis:      c.g,
		Key:          m.key,
		PeerKey:      m.peerKey,
		DBPath:       filepath.Join(c.dir, fmt.Sprintf("node%d", i), db),
		CacheDir:     filepath.Join(c.dir, fmt.Sprintf("node%d", i), "cache"),
		P2PListen:    []string{listen},
		Bootstrap:    boot,
		FetchTimeout: 30 * time.Second,
		Logger:       testLogger(fmt.Sprintf("n%d", i)),
	}
	if c.tweak != nil {
		c.tweak(i, &cfg)
	}
	return cfg
}

// cutP2P splits ".../p2p/<id>" into the transport address and the id.
func cutP2P(addr string) (string, string, bool) {
	i := len(addr) - 1
	for i >= 0 && addr[i] != '/' {
		i--
	}
	j := i - len("/p2p")
	if j < 0 || addr[j:i] != "/p2p" {
		return addr, "", false
	}
	return addr[:j], addr[i+1:], true
}

// start starts member i on its database (the one it last ran on).
func (c *cluster) start(i int) {
	c.tb.Helper()
	m := c.members[i]
	if m.up() {
		return
	}
	if m.testNode == nil {
		if err := os.MkdirAll(filepath.Join(c.dir, fmt.Sprintf("node%d", i)), 0o755); err != nil {
			c.tb.Fatal(err)
		}
		m.testNode = startNode(c.tb, c.config(i, "ledger.db"))
		m.url = m.URL()
		m.running.Store(true)
		return
	}
	m.open()
	m.running.Store(true)
}

// startEmpty restarts member i on a new, empty database: it has to sync the
// whole chain from its peers.
func (c *cluster) startEmpty(i int) {
	c.tb.Helper()
	m := c.members[i]
	if m.up() {
		c.tb.Fatalf("startEmpty(%d): node is running", i)
	}
	m.Cfg.DBPath = filepath.Join(c.dir, fmt.Sprintf("node%d", i), fmt.Sprintf("ledger-%d.db", time.Now().UnixNano()))
	m.open()
	m.running.Store(true)
}

// stop closes member i cleanly.
func (c *cluster) stop(i int) {
	if m := c.members[i]; m.up() {
		m.running.Store(false)
		m.stop()
	}
}

// kill stops member i without grace: its network goes first, at once, and
// Close does not wait for the goroutines that were running (the store is
// closed under them). What is on disk is what a crash would leave.
func (c *cluster) kill(i int) {
	m := c.members[i]
	if !m.up() {
		return
	}
	m.running.Store(false)
	if m.host != nil {
		m.host.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.Node.Close(ctx) // errors expected: nothing was waited for
	m.Node = nil
}

// live returns the indexes of the running members.
func (c *cluster) live() []int {
	var out []int
	for i, m := range c.members {
		if m.up() {
			out = append(out, i)
		}
	}
	return out
}

// partition cuts every link between members of different sides (each side
// a list of member indexes) with the p2p gater, both ways.
func (c *cluster) partition(sides ...[]int) {
	c.tb.Helper()
	side := map[int]int{}
	for s, ms := range sides {
		for _, i := range ms {
			side[i] = s
		}
	}
	for i, a := range c.members {
		for j, b := range c.members {
			if i != j && a.up() && side[i] != side[j] {
				a.host.Block(b.id)
			}
		}
	}
}

// heal lifts every block partition set.
func (c *cluster) heal() {
	for _, a := range c.members {
		if !a.up() {
			continue
		}
		for _, p := range a.host.Blocked() {
			a.host.Unblock(p)
		}
	}
}

// waitPeers waits until every running member has at least n peers that
// passed the hello and are subscribed to the consensus topic.
func (c *cluster) waitPeers(n int, timeout time.Duration) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, i := range c.live() {
		if err := c.members[i].host.WaitTopicPeers(ctx, topicConsensus, n); err != nil {
			c.tb.Fatalf("node %d: %v", i, err)
		}
	}
}

// heads returns the head of each running member.
func (c *cluster) heads() map[int]*ledger.Header {
	c.tb.Helper()
	out := map[int]*ledger.Header{}
	for _, i := range c.live() {
		h, err := c.members[i].Store().Head(context.Background())
		if err != nil {
			c.tb.Fatalf("node %d: head: %v", i, err)
		}
		out[i] = h
	}
	return out
}

// waitHeight waits until each of members (all running ones when nil) has
// a head at least h, and returns how long it took.
func (c *cluster) waitHeight(members []int, h uint64, timeout time.Duration) time.Duration {
	c.tb.Helper()
	start := time.Now()
	for {
		ms := members
		if ms == nil {
			ms = c.live()
		}
		heads := c.heads()
		ok := true
		for _, i := range ms {
			if hd, found := heads[i]; !found || hd.Height < h {
				ok = false
			}
		}
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			c.tb.Fatalf("heads %s after %v, want %v at least %d", c.describe(heads), timeout, ms, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) describe(heads map[int]*ledger.Header) string {
	var ids []int
	for i := range heads {
		ids = append(ids, i)
	}
	sort.Ints(ids)
	s := ""
	for _, i := range ids {
		s += fmt.Sprintf(" n%d=%d", i, heads[i].Height)
	}
	return "[" + s + " ]"
}

// waitConverged waits until the running members report one head (same
// height and hash) that stays put for a moment, then checks that they hold
// the same block at every height, and returns the head. (audit checks the
// stores themselves.)
func (c *cluster) waitConverged(timeout time.Duration) *ledger.Header {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	var same *ledger.Header
	var since time.Time
	for {
		heads := c.heads()
		var first *ledger.Header
		agree := true
		for _, h := range heads {
			if first == nil {
				first = h
			} else if h.Hash() != first.Hash() {
				agree = false
			}
		}
		switch {
		case !agree:
			same = nil
		case same == nil || same.Hash() != first.Hash():
			same, since = first, time.Now()
		case time.Since(since) > 300*time.Millisecond:
			c.checkIdentical()
			return same
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("no common head after %v: %s", timeout, c.describe(heads))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkIdentical checks that the running members hold the same block hash
// at every height they all have.
func (c *cluster) checkIdentical() {
	c.tb.Helper()
	ctx := context.Background()
	var ref []ledger.Hash
	refNode := -1
	for _, i := range c.live() {
		st := c.members[i].Store()
		var hashes []ledger.Hash
		for from := uint64(0); ; {
			hs, err := st.Headers(ctx, from, 1000)
			if err != nil {
				c.tb.Fatalf("node %d: Headers(%d) = %v", i, from, err)
			}
			for k := range hs {
				hashes = append(hashes, hs[k].Hash())
			}
			if len(hs) < 1000 {
				break
			}
			from += uint64(len(hs))
		}
		if ref == nil {
			ref, refNode = hashes, i
			continue
		}
		for h := 0; h < min(len(ref), len(hashes)); h++ {
			if ref[h] != hashes[h] {
				c.tb.Fatalf("height %d: node %d has block %s, node %d has %s", h, i, hashes[h], refNode, ref[h])
			}
		}
	}
}

// audit checks that the store of every running member passes ledger.Audit
// with the consensus seal: every link, root, certificate and attestation
// from genesis.
func (c *cluster) audit() {
	c.tb.Helper()
	for _, i := range c.live() {
		seal, err := SealChecker(c.g, c.members[i].Store())
		if err != nil {
			c.tb.Fatal(err)
		}
		if _, err := ledger.Audit(context.Background(), c.members[i].Store(), c.g, seal, nil); err != nil {
			c.tb.Fatalf("node %d: Audit = %v", i, err)
		}
	}
}

// checkHave checks that every running member serves each of entries (key
// to the entry a node acknowledged) identically: same record, index and
// height.
func (c *cluster) checkHave(entries map[ledger.Key]ledger.Entry) {
	c.tb.Helper()
	ctx := context.Background()
	for _, i := range c.live() {
		st := c.members[i].Store()
		missing := 0
		for k, want := range entries {
			got, err := st.Lookup(ctx, k)
			if err != nil {
				missing++
				if missing <= 3 {
					c.tb.Errorf("node %d: acknowledged %s: Lookup = %v", i, k, err)
				}
				continue
			}
			if *got != want {
				c.tb.Errorf("node %d: %s is %+v, acknowledged as %+v", i, k, *got, want)
			}
		}
		if missing > 0 {
			c.tb.Fatalf("node %d: %d of %d acknowledged records missing", i, missing, len(entries))
		}
	}
}

// proposer returns the member that proposes round 0 of the height after
// the head of member i, and that height. A twin key maps to its first
// member.
func (c *cluster) proposer(i int) (int, uint64) {
	c.tb.Helper()
	m := c.members[i]
	head, err := m.Store().Head(context.Background())
	if err != nil {
		c.tb.Fatal(err)
	}
	k := m.setFor(head.Height+1).Proposer(c.g.Chain, head.Hash(), head.Height+1, 0)
	for j, o := range c.members {
		if publicKeyOf(o.key) == k {
			return j, head.Height + 1
		}
	}
	c.tb.Fatalf("proposer %s is no member", k)
	return -1, 0
}

// A load submits keys to the running members in turn, each with ?wait,
// from a few goroutines at once, and keeps what was acknowledged.
type load struct {
	c       *cluster
	keys    chan ledger.Key
	wait    time.Duration
	targets func() []int

	mu       sync.Mutex
	acked    map[ledger.Key]ledger.Entry // answered committed
	ackedBy  map[ledger.Key]int
	pending  map[ledger.Key]int // answered pending: by whom
	failed   int                // errors (a node going down mid-request)
	latency  []time.Duration    // submit to committed answer
	lastAck  time.Time
	nextNode int

	stop chan struct{}
	wg   sync.WaitGroup
}

// startLoad submits keys from workers goroutines, each waiting at most
// wait for its record to commit, pacing each worker by every. targets
// picks the members to submit to (nil: every running one).
func (c *cluster) startLoad(keys []ledger.Key, workers int, every, wait time.Duration, targets func() []int) *load {
	l := &load{c: c, keys: make(chan ledger.Key, len(keys)), wait: wait, targets: targets,
		acked: map[ledger.Key]ledger.Entry{}, ackedBy: map[ledger.Key]int{}, pending: map[ledger.Key]int{},
		stop: make(chan struct{})}
	for _, k := range keys {
		l.keys <- k
	}
	close(l.keys)
	for range workers {
		l.wg.Add(1)
		go l.work(every)
	}
	return l
}

func (l *load) target() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ms []int
	if l.targets != nil {
		ms = l.targets()
	} else {
		ms = l.c.live()
	}
	if len(ms) == 0 {
		return -1, ""
	}
	i := ms[l.nextNode%len(ms)]
	l.nextNode++
	return i, l.c.members[i].url
}

func (l *load) work(every time.Duration) {
	defer l.wg.Done()
	for k := range l.keys {
		select {
		case <-l.stop:
			return
		default:
		}
		i, url := l.target()
		if i < 0 {
			l.mu.Lock()
			l.failed++
			l.mu.Unlock()
			continue
		}
		cl, err := api.NewClient(url, nil)
		if err != nil {
			panic(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.wait+10*time.Second)
		start := time.Now()
		resp, err := cl.Submit(ctx, api.SubmitRequest{Key: k.String()}, l.wait)
		cancel()
		took := time.Since(start)
		l.mu.Lock()
		switch {
		case err != nil:
			l.failed++
		case resp.Status == api.StatusCommitted && resp.Record != nil:
			e := ledger.Entry{Record: ledger.Record{Key: k, Commit: resp.Record.Commit, Tree: resp.Record.Tree, H1: resp.Record.H1},
				Index: resp.Record.Index, Height: resp.Record.Height}
			l.acked[k] = e
			l.ackedBy[k] = i
			l.latency = append(l.latency, took)
			l.lastAck = time.Now()
		default:
			l.pending[k] = i
		}
		l.mu.Unlock()
		if every > 0 {
			select {
			case <-l.stop:
				return
			case <-time.After(every + time.Duration(rand.Int64N(int64(every)/2+1))):
			}
		}
	}
}

// halt stops submitting, waits for the requests under way, and returns the
// acknowledged entries.
func (l *load) halt() map[ledger.Key]ledger.Entry {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	return l.snapshot()
}

// drain waits for every key to be submitted and answered.
func (l *load) drain() map[ledger.Key]ledger.Entry {
	l.wg.Wait()
	return l.snapshot()
}

func (l *load) snapshot() map[ledger.Key]ledger.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[ledger.Key]ledger.Entry, len(l.acked))
	for k, e := range l.acked {
		out[k] = e
	}
	return out
}

// stats returns how many records were acknowledged, answered pending and
// failed, and the p50 and p99 of the acknowledged ones' latency.
func (l *load) stats() (acked, pending, failed int, p50, p99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lat := slices.Clone(l.latency)
	slices.Sort(lat)
	if len(lat) > 0 {
		p50 = lat[len(lat)/2]
		p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return len(l.acked), len(l.pending), l.failed, p50, p99
}

// ackedCount returns how many records were acknowledged so far.
func (l *load) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// keysOf returns the keys of repository r at tags.
func keysOf(r *fixtureRepo, tags []string) []ledger.Key {
	out := make([]ledger.Key, len(tags))
	for i, t := range tags {
		out[i] = r.key(t)
	}
	return out
}

// waitAcked waits until at least n records were acknowledged.
func (l *load) waitAcked(n int, timeout time.Duration) {
	l.c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for l.ackedCount() < n {
		if time.Now().After(deadline) {
			a, p, f, _, _ := l.stats()
			l.c.tb.Fatalf("%d records acknowledged after %v, want %d (%d pending, %d failed)", a, timeout, n, p, f)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitProgress waits until n records are acknowledged, failing with the
// engines' state if none is for stall.
func (l *load) waitProgress(n int, stall time.Duration) {
	l.c.tb.Helper()
	last, since := l.ackedCount(), time.Now()
	for last < n {
		if a := l.ackedCount(); a > last {
			last, since = a, time.Now()
		}
		if time.Since(since) > stall {
			a, p, f, _, _ := l.stats()
			l.c.tb.Fatalf("no record acknowledged for %v: %d of %d (%d pending, %d failed); heads %s; engines: %s",
				stall, a, n, p, f, l.c.describe(l.c.heads()), l.c.engines())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// without returns the members other than those given.
func (c *cluster) without(skip ...int) []int {
	var out []int
	for i := range c.members {
		if !slices.Contains(skip, i) {
			out = append(out, i)
		}
	}
	return out
}

// name returns "n<i>" for the member whose key is k (the first, for twins).
func (c *cluster) name(k ledger.PublicKey) string {
	for i, m := range c.members {
		if publicKeyOf(m.key) == k {
			return fmt.Sprintf("n%d", i)
		}
	}
	return k.String()[:8]
}

// maxGap returns the largest difference between the times of consecutive
// blocks from height from to height to in member i's store.
func (c *cluster) maxGap(i int, from, to uint64) time.Duration {
	c.tb.Helper()
	if from > 0 {
		from--
	}
	hs, err := c.members[i].Store().Headers(context.Background(), from, int(to-from+1))
	if err != nil {
		c.tb.Fatal(err)
	}
	var gap int64
	for k := 1; k < len(hs); k++ {
		gap = max(gap, hs[k].Time-hs[k-1].Time)
	}
	return time.Duration(gap) * time.Millisecond
}

// waitAllCommitted waits until every running member has committed every
// key, and returns how long it took; on timeout it fails naming what is
// missing where.
func (c *cluster) waitAllCommitted(keys []ledger.Key, timeout time.Duration) time.Duration {
	c.tb.Helper()
	ctx := context.Background()
	start := time.Now()
	for {
		missing := map[int][]ledger.Key{}
		for _, i := range c.live() {
			for _, k := range keys {
				if _, err := c.members[i].Store().Lookup(ctx, k); err != nil {
					missing[i] = append(missing[i], k)
				}
			}
		}
		if len(missing) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			for i, ks := range missing {
				pend := 0
				for _, k := range ks {
					if _, ok := c.members[i].pool.Get(k); ok {
						pend++
					}
				}
				c.tb.Errorf("node %d: %d of %d keys not committed after %v (%d of them in its mempool), e.g. %s", i, len(ks), len(keys), timeout, pend, ks[0])
			}
			c.tb.Logf("engines: %s", c.engines())
			c.tb.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// submitAll submits keys to member i without waiting, and fails unless
// each is accepted as pending.
func (c *cluster) submitAll(i int, keys []ledger.Key) {
	c.tb.Helper()
	cl := c.members[i].client()
	for _, k := range keys {
		resp, err := cl.Submit(context.Background(), api.SubmitRequest{Key: k.String()}, 0)
		if err != nil {
			c.tb.Fatalf("Submit(%s) via node %d = %v", k, i, err)
		}
		if resp.Status != api.StatusPending {
			c.tb.Fatalf("Submit(%s) via node %d: status %q, want pending", k, i, resp.Status)
		}
	}
}

// engines describes the consensus state of the running members.
func (c *cluster) engines() string {
	s := ""
	for _, i := range c.live() {
		n := c.members[i].Node
		n.mu.Lock()
		st := n.status
		n.mu.Unlock()
		s += fmt.Sprintf("\n  n%d: height %d round %d step %s proposer %s locked %d valid %d peers %d",
			i, st.Height, st.Round, st.Step, c.name(st.Proposer), st.LockedRound, st.ValidRound, len(n.host.Peers()))
	}
	return s
}

// prebuild writes a chain of c's genesis with blocks blocks of perBlock
// records each into a new SQLite file and returns its path. The blocks are
// made offline, not by consensus, but each is certified by every validator
// of the genesis (their keys are the test's), so nodes accept them as they
// accept any block they sync. The genesis must be old enough for the last
// block (blocks * block interval) to be in the past.
func (c *cluster) prebuild(blocks, perBlock int) string {
	c.tb.Helper()
	ctx := context.Background()
	var signers []*ledger.Signer
	for i := range c.members {
		s := c.signer(i)
		if c.vals().Contains(s.Public()) && !slices.ContainsFunc(signers, func(o *ledger.Signer) bool { return o.Public() == s.Public() }) {
			signers = append(signers, s)
		}
	}
	chain := ledgertest.NewChainFrom(c.tb, c.g, signers)
	path := filepath.Join(c.dir, "prebuilt.db")
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer st.Close()
	if err := ledger.InitStore(ctx, st, c.g); err != nil {
		c.tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for h := 1; h <= blocks; h++ {
		b := chain.Next(ledgertest.Records(rng, (h-1)*perBlock, perBlock))
		if err := st.Append(ctx, b, chain.Stored(uint64(h))); err != nil {
			c.tb.Fatalf("prebuild: append %d: %v", h, err)
		}
	}
	if last := chain.Head().Header.Time; last > time.Now().UnixMilli() {
		c.tb.Fatalf("prebuild: the last block is %v in the future; make the genesis older", time.Duration(last-time.Now().UnixMilli())*time.Millisecond)
	}
	return path
}

// signer returns member i's signer.
func (c *cluster) signer(i int) *ledger.Signer {
	c.tb.Helper()
	s, err := ledger.NewSigner(c.members[i].key)
	if err != nil {
		c.tb.Fatal(err)
	}
	return s
}

// vals returns the chain's validator set.
func (c *cluster) vals() *ledger.ValidatorSet {
	c.tb.Helper()
	vs, err := c.g.ValidatorSet()
	if err != nil {
		c.tb.Fatal(err)
	}
	return vs
}

// seed copies the closed SQLite file at path (and its WAL, if any) to be
// member i's database; call it before the member first starts.
func (c *cluster) seed(i int, path string) {
	c.tb.Helper()
	dir := filepath.Join(c.dir, fmt.Sprintf("node%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.tb.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(path+suffix, filepath.Join(dir, "ledger.db"+suffix)); err != nil && !(suffix != "" && os.IsNotExist(err)) {
			c.tb.Fatal(err)
		}
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
