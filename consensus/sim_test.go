package consensus

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/ledger/ledgertest"
)

// The simulation runs engines of a whole network in one goroutine against a
// simulated clock and a message network with seeded random loss, delay
// (hence reordering), duplication and partitions, crashes and restarts (from
// the persisted SignState and the store's head, including crashes between
// persisting and sending and between sending and appending), and Byzantine
// validators that sign conflicting votes and proposals and send junk. After
// every event it checks safety (no two blocks committed at one height, by
// any node), that every committed block carries a valid certificate, that
// no correct validator ever signed two conflicting messages, and that no
// evidence names a correct validator; after the network heals (no loss, no
// partition, every crashed node restarted) it checks liveness: every
// correct node commits new heights within a bounded simulated time.
//
// In a quarter of the schedules the validator set changes mid-run: a node
// that starts as a follower is voted in and one of the validators (correct
// or not) is voted out, effective at random early heights, by authority
// changes the proposers put in blocks. Every node follows the set of each
// height from its own store (ledger.Authorities, reloaded at each boot), its
// engine and seal look it up per height, and the checks above hold against
// the set in force at each height.
//
// A failure prints the seed; rerun it alone with its trace:
//
//	go test ./consensus -run 'TestSimulation/n=4' -sim.seed=123 -sim.trace
var (
	simRuns  = flag.Int("sim.runs", 0, "schedules per network size (0: the default, sized for a -race run under a minute)")
	simSeed  = flag.Int64("sim.seed", -1, "run only the schedule with this seed")
	simFirst = flag.Int64("sim.first", 1, "seed of the first schedule")
	simReal  = flag.Bool("sim.realcrypto", false, "sign and verify with ed25519 in every schedule (slow), not only in a few")
	simTrace = flag.Bool("sim.trace", false, "print each schedule's event trace")
)

func TestSimulation(t *testing.T) {
	for _, c := range []struct {
		n, runs, realRuns int
	}{
		{n: 4, runs: 900, realRuns: 2},
		{n: 7, runs: 300, realRuns: 1},
	} {
		t.Run(fmt.Sprintf("n=%d", c.n), func(t *testing.T) {
			runs := c.runs
			if *simRuns > 0 {
				runs = *simRuns
			}
			if testing.Short() {
				runs /= 10
			}
			var total simStats
			first, last := *simFirst, *simFirst+int64(runs)-1
			if *simSeed >= 0 {
				first, last = *simSeed, *simSeed
			}
			for seed := first; seed <= last; seed++ {
				real := *simReal || seed < *simFirst+int64(c.realRuns)
				st := runSim(t, c.n, uint64(seed), real)
				total.add(st)
				if t.Failed() {
					return
				}
			}
			t.Logf("%d schedules: %s", last-first+1, total)
		})
	}
}

// simStats sums what schedules did.
type simStats struct {
	schedules, real, heights, events, messages, crashes, byz, evidence, syncs int
	setChanges, setChanged                                                    int // schedules with changes; changes committed
	maxRound                                                                  uint32
}

func (a *simStats) add(b simStats) {
	a.schedules++
	a.real += b.real
	a.heights += b.heights
	a.events += b.events
	a.messages += b.messages
	a.crashes += b.crashes
	a.byz += b.byz
	a.evidence += b.evidence
	a.syncs += b.syncs
	a.setChanges += b.setChanges
	a.setChanged += b.setChanged
	a.maxRound = max(a.maxRound, b.maxRound)
}

func (a simStats) String() string {
	return fmt.Sprintf("%d with real ed25519, %d heights committed, %d events, %d messages, %d crashes, %d Byzantine validators, %d evidence, %d syncs, highest round %d, %d with set changes (%d changes committed)",
		a.real, a.heights, a.events, a.messages, a.crashes, a.byz, a.evidence, a.syncs, a.maxRound, a.setChanges, a.setChanged)
}

// Simulated time constants.
const (
	simInterval  = 100 * time.Millisecond
	simLiveness  = 60 * time.Second // after healing, every correct node must reach the target by then
	simSyncEvery = time.Second      // the node's block gossip and syncer, in miniature
)

type evKind uint8

const (
	evDeliver evKind = iota
	evTick
	evSync
	evCrash
	evRestart
	evHeal
)

type simEvent struct {
	at   time.Time
	seq  uint64
	kind evKind
	node int
	from int // evDeliver: sender
	junk bool
	msg  *Message
	gen  int // evTick, evSync: incarnation of the node
	tick uint64
}

type eventQueue []*simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// simSigners caches the validators' keys across schedules.
var simSigners = map[int]*ledger.Signer{}

func simSigner(tb testing.TB, i int) ([]byte, *ledger.Signer) {
	seed := make([]byte, ed25519.SeedSize)
	binary.BigEndian.PutUint64(seed, uint64(i)+1)
	seed[31] = 's'
	if s := simSigners[i]; s != nil {
		return seed, s
	}
	s, err := ledger.NewSigner(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		tb.Fatal(err)
	}
	simSigners[i] = s
	return seed, s
}

type simNode struct {
	id        int
	name      string
	signer    *ledger.Signer // nil for the follower; the joiner's is not in the genesis set
	seed      []byte         // ed25519 seed of signer
	byz       bool
	silent    float64   // Byzantine: share of its messages it withholds
	workFrom  time.Time // its mempool has work from then on
	skew      time.Duration
	store     *ledgertest.MemStore
	top       *ledger.Header      // the store's head
	auth      *ledger.Authorities // the set of each height, from store (loaded at boot)
	seal      ledger.SealChecker  // follows auth
	app       *simApp
	e         *PoA
	up        bool
	gen       int
	tick      uint64     // the live tick event
	tickAt    time.Time  // when it fires; zero: none pending
	persisted *SignState // the durable SignState (formatted and parsed again at each boot)
}

type sim struct {
	tb     testing.TB
	seed   uint64
	rng    *rand.Rand
	real   bool
	crypto *fakeCrypto
	g      *ledger.Genesis
	vals   *ledger.ValidatorSet // the genesis set
	cfg    Config               // template
	nodes  []*simNode
	last   int // the last genesis validator

	// Set changes: the changes every proposer puts in its blocks as soon as
	// the rules accept them (none in most schedules), and the history of
	// the set along the committed blocks.
	changes     []ledger.AuthorityChange
	changesFrom []uint64 // the first height whose blocks may carry each
	ref         *ledger.Authorities

	now    time.Time
	queue  eventQueue
	seq    uint64
	trace  []string
	failed bool

	// The network during chaos; after healAt there is no loss and no
	// partition.
	healAt         time.Time
	loss, dup      float64
	maxDelay       time.Duration
	cutFrom, cutTo time.Time
	group          []int
	crashP         float64 // chance of a crash per action during chaos
	target         uint64  // height every correct node must reach after healing
	deadline       time.Time
	wire           float64 // share of messages sent through Format and ParseMessage

	committed map[uint64]ledger.Hash // first committed block per height
	signed    map[evKey]string       // what correct validators signed
	certs     map[string]bool        // certificates already checked
	stats     simStats
}

// runSim runs one schedule.
func runSim(tb testing.TB, n int, seed uint64, real bool) simStats {
	s := newSim(tb, n, seed, real)
	s.run()
	if s.failed && !*simTrace {
		tb.Logf("rerun: go test ./consensus -run 'TestSimulation/n=%d' -sim.seed=%d -sim.trace", n, seed)
	}
	return s.stats
}

func newSim(tb testing.TB, n int, seed uint64, real bool) *sim {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	s := &sim{
		tb: tb, seed: seed, rng: rng, real: real, crypto: &fakeCrypto{seeds: map[ledger.PublicKey][]byte{}},
		now:       genesisTime.Add(time.Second),
		committed: map[uint64]ledger.Hash{}, signed: map[evKey]string{}, certs: map[string]bool{},
	}
	if real {
		s.stats.real = 1
	}
	g := &ledger.Genesis{Chain: "sim", Time: genesisTime.UnixMilli(), Engine: ledger.EnginePoA, BlockInterval: simInterval.Milliseconds(), AttestQuorum: 0}
	f := (n - 1) / 3
	byz := rng.IntN(f + 1) // 0..f Byzantine validators
	s.stats.byz = byz
	// A separate stream decides on set changes, so that the other
	// schedules stay what they were before set changes existed.
	vr := rand.New(rand.NewPCG(seed, 0x5e7))
	setChange := vr.IntN(4) == 0 || (real && seed%2 == 1) // and some with real ed25519
	nodes := n + 1                                        // n validators and a follower
	if setChange {
		nodes++ // and the joiner
	}
	for i := 0; i < nodes; i++ {
		nd := &simNode{id: i, store: ledgertest.NewMemStore(), skew: time.Duration(rng.IntN(201)-100) * time.Millisecond}
		if i > n { // the joiner
			nd.seed, nd.signer = simSigner(tb, i)
			s.crypto.seeds[nd.signer.Public()] = nd.seed
			nd.name = "joiner"
		} else if i < n {
			nd.seed, nd.signer = simSigner(tb, i)
			s.crypto.seeds[nd.signer.Public()] = nd.seed
			nd.byz = i < byz
			g.Validators = append(g.Validators, ledger.Validator{Key: nd.signer.Public(), Name: fmt.Sprintf("v%d", i)})
			nd.name = fmt.Sprintf("v%d", i)
			if nd.byz {
				nd.name += "(byz)"
			}
		} else {
			nd.name = "follower"
		}
		nd.app = &simApp{s: s, n: nd, rng: rand.New(rand.NewPCG(seed, uint64(i))), next: (i + 1) * 10_000_000}
		s.nodes = append(s.nodes, nd)
	}
	var err error
	if s.vals, err = g.ValidatorSet(); err != nil {
		tb.Fatal(err)
	}
	s.g = g
	s.last = n - 1
	if s.ref, err = ledger.NewAuthorities(g); err != nil {
		tb.Fatal(err)
	}
	if setChange {
		// The joiner in, then a validator out (Byzantine or not), each
		// voted by every genesis validator: the quorum of the set in force
		// whenever the block that carries it comes. Proposers put each in
		// their blocks from a random height on (when its votes came in).
		s.stats.setChanges = 1
		joiner := s.nodes[n+1]
		out := s.nodes[vr.IntN(n)]
		from1 := 1 + uint64(vr.IntN(4))
		from2 := from1 + uint64(vr.IntN(4))
		add := ledger.AuthorityChange{Chain: g.Chain, Op: ledger.AuthorityAdd, Validator: joiner.signer.Public(), Name: "joiner",
			Effective: from1 + ledger.AuthorityDelay + uint64(vr.IntN(4))}
		rm := ledger.AuthorityChange{Chain: g.Chain, Op: ledger.AuthorityRemove, Validator: out.signer.Public(),
			Effective: max(add.Effective, from2+ledger.AuthorityDelay) + uint64(vr.IntN(4))}
		for _, nd := range s.nodes[:n] {
			add.AddVote(add.Vote(nd.signer))
			rm.AddVote(rm.Vote(nd.signer))
		}
		s.changes = []ledger.AuthorityChange{add, rm}
		s.changesFrom = []uint64{from1, from2}
		s.tracef("set change: %s, proposed from height %d; %s (%s), from height %d", add.String(), from1, rm.String(), out.name, from2)
	}
	for _, nd := range s.nodes {
		if err := ledger.InitStore(context.Background(), nd.store, g); err != nil {
			tb.Fatal(err)
		}
		nd.top = &g.Block().Header
	}
	s.cfg = Config{Chain: g.Chain, Validators: s.vals, BlockInterval: simInterval,
		TimeoutPropose: 300 * time.Millisecond, TimeoutPrevote: 100 * time.Millisecond,
		TimeoutPrecommit: 100 * time.Millisecond, TimeoutDelta: 50 * time.Millisecond,
		Rebroadcast: 500 * time.Millisecond}

	// The schedule: a chaotic phase, then a healed network.
	chaos := time.Duration(300+rng.IntN(3000)) * time.Millisecond
	s.healAt = s.now.Add(chaos)
	s.deadline = s.healAt.Add(simLiveness)
	s.loss = []float64{0, 0.05, 0.2, 0.4}[rng.IntN(4)]
	s.dup = []float64{0, 0.05, 0.3}[rng.IntN(3)]
	s.maxDelay = time.Duration(5+rng.IntN(300)) * time.Millisecond
	s.wire = 0.2
	if real {
		s.wire = 1
	}
	if rng.IntN(2) == 0 {
		s.group = make([]int, len(s.nodes))
		for i := range s.group {
			s.group[i] = rng.IntN(2)
		}
		s.cutFrom = s.now.Add(time.Duration(rng.Int64N(int64(chaos))))
		s.cutTo = s.cutFrom.Add(time.Duration(rng.Int64N(int64(chaos))))
	}
	s.crashP = []float64{0, 0.002, 0.01}[rng.IntN(3)]
	if rng.IntN(3) == 0 {
		// Mempools get work at different times, some only after healing.
		for _, nd := range s.nodes {
			nd.workFrom = s.now.Add(time.Duration(rng.Int64N(int64(chaos + time.Second))))
		}
	}
	for _, nd := range s.nodes {
		if nd.byz {
			nd.silent = []float64{0, 0, 0.3, 0.9}[rng.IntN(4)]
		}
	}
	s.tracef("schedule: %d validators (%d Byzantine) + follower, chaos %s, loss %.2f, dup %.2f, delay <= %s, partition %v %s-%s, crash chance %.3f, real crypto %v",
		n, byz, chaos, s.loss, s.dup, s.maxDelay, s.group, s.cutFrom.Sub(genesisTime), s.cutTo.Sub(genesisTime), s.crashP, real)

	// A planned crash of a correct node, besides the random ones.
	if rng.IntN(2) == 0 {
		victim := byz + rng.IntN(len(s.nodes)-byz)
		at := s.now.Add(time.Duration(rng.Int64N(int64(chaos))))
		s.push(&simEvent{at: at, kind: evCrash, node: victim})
	}
	s.push(&simEvent{at: s.healAt, kind: evHeal})
	return s
}

func (s *sim) push(ev *simEvent) {
	s.seq++
	ev.seq = s.seq
	heap.Push(&s.queue, ev)
}

func (s *sim) tracef(format string, args ...any) {
	if *simTrace {
		s.trace = append(s.trace, fmt.Sprintf("%9s ", s.now.Sub(genesisTime))+fmt.Sprintf(format, args...))
	}
}

func (s *sim) fail(format string, args ...any) {
	if s.failed {
		return
	}
	s.failed = true
	s.tracef("FAIL: "+format, args...)
	if *simTrace {
		s.tb.Log("trace:\n" + strings.Join(s.trace, "\n"))
	}
	s.tb.Errorf("seed %d (real crypto %v): %s", s.seed, s.real, fmt.Sprintf(format, args...))
}

func (s *sim) chaos() bool { return s.now.Before(s.healAt) }

func (s *sim) cut(i, j int) bool {
	return s.group != nil && !s.now.Before(s.cutFrom) && s.now.Before(s.cutTo) && s.now.Before(s.healAt) && s.group[i] != s.group[j]
}

func (n *simNode) clock(s *sim) time.Time { return s.now.Add(n.skew) }

func (n *simNode) correct() bool { return !n.byz }

func (s *sim) run() {
	for _, nd := range s.nodes {
		s.boot(nd)
		s.push(&simEvent{at: s.now.Add(simSyncEvery), kind: evSync, node: nd.id, gen: nd.gen})
	}
	for s.queue.Len() > 0 && !s.failed {
		ev := heap.Pop(&s.queue).(*simEvent)
		if ev.at.After(s.deadline) {
			break
		}
		s.now = ev.at
		s.stats.events++
		var before Status
		nd := s.nodes[ev.node]
		if *simTrace && nd.up {
			before = nd.e.Status()
			if ev.kind == evDeliver {
				s.tracef("%s <- %s: %s", nd.name, s.nodes[ev.from].name, describe(ev.msg))
			}
		}
		s.handle(ev)
		if nd.up && nd.e.round > s.stats.maxRound {
			s.stats.maxRound = nd.e.round
		}
		if *simTrace && nd.up {
			if after := nd.e.Status(); after != before {
				s.tracef("%s now h%d r%d %s locked %d %s valid %d %s", nd.name, after.Height, after.Round, after.Step,
					after.LockedRound, after.LockedBlock.String()[:8], after.ValidRound, after.ValidBlock.String()[:8])
			}
		}
		if s.failed {
			return
		}
		if s.target > 0 && s.live() {
			break
		}
	}
	if !s.failed && !s.live() {
		var hs []string
		for _, nd := range s.nodes {
			st := "down"
			if nd.up {
				st = fmt.Sprintf("%+v", nd.e.Status())
			}
			hs = append(hs, fmt.Sprintf("%s head %d %s", nd.name, s.head(nd).Height, st))
		}
		s.fail("no liveness: %s after healing, correct nodes did not all reach height %d:\n%s", simLiveness, s.target, strings.Join(hs, "\n"))
	}
	for _, nd := range s.nodes {
		if nd.up && nd.e.round > s.stats.maxRound {
			s.stats.maxRound = nd.e.round
		}
	}
	s.stats.heights = len(s.committed)
	if s.changes != nil && !s.failed {
		s.checkSets()
	}
}

// checkSets checks, in a schedule with set changes, that each committed
// block was proposed and certified by the set in force at its height (the
// joiner only once voted in, the removed validator not after its removal).
func (s *sim) checkSets() {
	for h := uint64(1); h <= uint64(len(s.committed)); h++ {
		vals, err := s.ref.At(h)
		if err != nil {
			s.fail("set of committed height %d: %v", h, err)
			return
		}
		var b *ledger.Block
		for _, nd := range s.nodes {
			if got, err := nd.store.Block(context.Background(), h); err == nil {
				b = got
				break
			}
		}
		if b == nil {
			continue // committed by a node that crashed before appending
		}
		if !vals.Contains(b.Header.Proposer) {
			s.fail("block %d proposed by %s, not in the set of its height", h, b.Header.Proposer)
			return
		}
		for _, sg := range b.Certificate.Sigs {
			if !vals.Contains(sg.Validator) {
				s.fail("block %d signed by %s, not in the set of its height", h, sg.Validator)
				return
			}
		}
	}
}

// live reports whether every correct node reached the target.
func (s *sim) live() bool {
	if s.target == 0 {
		return false
	}
	for _, nd := range s.nodes {
		if nd.correct() && (!nd.up || s.head(nd).Height < s.target) {
			return false
		}
	}
	return true
}

func (s *sim) head(nd *simNode) *ledger.Header { return nd.top }

// appendBlock appends b to a node's store, checking it as the node does
// (ValidateNext with the seal, which follows the node's validator set) and
// that it is the committed block.
func (s *sim) appendBlock(nd *simNode, b *ledger.Block) bool {
	if err := ledger.AppendNext(context.Background(), nd.store, b, nd.seal); err != nil {
		s.fail("%s: append block %d: %v", nd.name, b.Header.Height, err)
		return false
	}
	h, err := nd.store.Head(context.Background())
	if err != nil {
		s.tb.Fatal(err)
	}
	nd.top = h
	if s.committed[h.Height] != h.Hash() {
		s.fail("%s's head %d is %s, committed %s", nd.name, h.Height, h.Hash(), s.committed[h.Height])
		return false
	}
	return true
}

func (s *sim) handle(ev *simEvent) {
	nd := s.nodes[ev.node]
	switch ev.kind {
	case evDeliver:
		if !nd.up {
			return
		}
		s.stats.messages++
		// Ignored without an error, junk or not: a message of a height
		// decided already, or of one whose validator set the node does
		// not know yet (as if lost).
		_, unknown := nd.auth.At(ev.msg.height())
		stale := ev.msg.height() < nd.e.h || unknown != nil
		a, err := nd.e.Receive(nd.clock(s), ev.msg)
		if err != nil && !ev.junk && !s.nodes[ev.from].byz {
			s.fail("%s refused a message of correct %s: %v", nd.name, s.nodes[ev.from].name, err)
			return
		}
		if err == nil && ev.junk && !stale {
			s.fail("%s at height %d accepted junk from %s:\n%s", nd.name, nd.e.h, s.nodes[ev.from].name, ev.msg.Format())
			return
		}
		s.do(nd, a)
	case evTick:
		if !nd.up || ev.gen != nd.gen || ev.tick != nd.tick {
			return
		}
		nd.tickAt = time.Time{}
		s.do(nd, nd.e.Tick(nd.clock(s)))
	case evSync:
		if ev.gen != nd.gen {
			return
		}
		s.sync(nd)
		s.push(&simEvent{at: s.now.Add(simSyncEvery), kind: evSync, node: nd.id, gen: nd.gen})
	case evCrash:
		s.crash(nd, "planned")
	case evRestart:
		if !nd.up {
			s.boot(nd)
			s.push(&simEvent{at: s.now.Add(simSyncEvery), kind: evSync, node: nd.id, gen: nd.gen})
		}
	case evHeal:
		for _, n := range s.nodes {
			s.target = max(s.target, s.head(n).Height+2)
		}
		if len(s.changes) > 0 {
			// Past every change's effective height: the changed set
			// decides blocks.
			s.target = max(s.target, s.changes[len(s.changes)-1].Effective+2)
		}
		s.tracef("heal: target height %d", s.target)
		for _, n := range s.nodes {
			if !n.up {
				s.boot(n)
				s.push(&simEvent{at: s.now.Add(simSyncEvery), kind: evSync, node: n.id, gen: n.gen})
			}
		}
	}
}

// boot starts a node's engine from its store and persisted signing state.
func (s *sim) boot(nd *simNode) {
	var st *SignState
	if nd.persisted != nil {
		var err error
		if st, err = ParseSignState(nd.persisted.Format()); err != nil {
			s.fail("%s: stored signing state: %v", nd.name, err)
			return
		}
	}
	// The validator set of each height, from the store, as a node's Open
	// loads it.
	auth, err := ledger.LoadAuthorities(context.Background(), nd.store, s.g)
	if err != nil {
		s.fail("%s: load the validator set's history: %v", nd.name, err)
		return
	}
	nd.auth = auth
	if s.real {
		if nd.seal, err = NewPoASealAt(s.g, auth); err != nil {
			s.tb.Fatal(err)
		}
	} else {
		nd.seal = &fakeSeal{s: s, auth: auth}
	}
	cfg := s.cfg
	cfg.Sets = auth
	cfg.Signer = nd.signer
	cfg.App = nd.app
	e, err := NewPoA(cfg, s.head(nd), st)
	if err != nil {
		s.fail("%s: NewPoA: %v", nd.name, err)
		return
	}
	if !s.real {
		e.verify = s.crypto.verify
		if nd.signer != nil {
			e.sign = s.crypto.signer(nd.signer.Public())
		}
	}
	nd.e, nd.up = e, true
	nd.gen++
	nd.tickAt = time.Time{}
	s.tracef("%s boots at head %d, state %v", nd.name, s.head(nd).Height, st != nil)
	s.do(nd, e.Start(nd.clock(s)))
}

func (s *sim) crash(nd *simNode, why string) {
	if !nd.up {
		return
	}
	nd.up, nd.e = false, nil
	nd.gen++
	s.stats.crashes++
	s.tracef("%s crashes (%s)", nd.name, why)
	at := s.now.Add(time.Duration(50+s.rng.IntN(2000)) * time.Millisecond)
	if at.After(s.healAt) {
		return // the heal restarts it
	}
	s.push(&simEvent{at: at, kind: evRestart, node: nd.id})
}

// maybeCrash crashes a node at a random point of carrying out its actions,
// during the chaotic phase.
func (s *sim) maybeCrash(nd *simNode, where string) bool {
	if s.crashP == 0 || !s.chaos() || s.rng.Float64() >= s.crashP {
		return false
	}
	s.crash(nd, where)
	return true
}

// do carries out a node's actions as the node does: persist, send,
// evidence, commit, sync, timer.
func (s *sim) do(nd *simNode, a Actions) {
	if a.Persist != nil {
		if !nd.signerMatches(a.Persist) {
			s.fail("%s persisted a signing state of %s", nd.name, a.Persist.Validator)
		}
		nd.persisted = a.Persist
		if s.maybeCrash(nd, "after persist, before send") {
			return
		}
	}
	for i := range a.Send {
		s.send(nd, &a.Send[i])
	}
	for _, ev := range a.Evidence {
		s.stats.evidence++
		if off := s.byKey(ev.Offender()); off == nil || !off.byz {
			s.fail("%s reports evidence against correct %s: %s", nd.name, ev.Offender(), ev.Format())
			return
		}
		if s.real {
			vals, err := s.ref.At(ev.Height())
			if err == nil {
				err = ev.Verify(vals)
			}
			if err != nil {
				s.fail("evidence does not verify: %v", err)
			}
		}
	}
	if a.Commit != nil {
		if s.maybeCrash(nd, "after send, before append") {
			return
		}
		s.commit(nd, a.Commit)
	}
	if a.Behind > 0 {
		s.push(&simEvent{at: s.now.Add(time.Duration(1+s.rng.IntN(50)) * time.Millisecond), kind: evSync, node: nd.id, gen: -1})
	}
	if a.Wake.IsZero() {
		s.fail("%s: Wake is zero", nd.name)
		return
	}
	at := a.Wake.Add(-nd.skew)
	if at.Before(s.now) {
		at = s.now
	}
	// One pending tick per node, the earliest asked for: a Tick earlier
	// than Wake is harmless (the engine returns the next Wake).
	if !nd.tickAt.IsZero() && !at.Before(nd.tickAt) {
		return
	}
	nd.tick++
	nd.tickAt = at
	s.push(&simEvent{at: at, kind: evTick, node: nd.id, gen: nd.gen, tick: nd.tick})
}

func (s *sim) byKey(k ledger.PublicKey) *simNode {
	for _, nd := range s.nodes {
		if nd.signer != nil && nd.signer.Public() == k {
			return nd
		}
	}
	return nil
}

func (nd *simNode) signerMatches(st *SignState) bool {
	return nd.signer != nil && st.Validator == nd.signer.Public()
}

// send broadcasts one of a node's messages, after noting what a correct
// validator signed.
func (s *sim) send(nd *simNode, m *Message) {
	if *simTrace {
		s.tracef("%s sends %s", nd.name, describe(m))
	}
	if nd.correct() && nd.signer != nil {
		s.noteSigned(nd, m)
		if s.failed {
			return
		}
	}
	msg := m
	if s.rng.Float64() < s.wire {
		p, err := ParseMessage(m.Format())
		if err != nil {
			s.fail("%s sent a message that does not parse: %v", nd.name, err)
			return
		}
		msg = p
	}
	if nd.byz {
		s.byzSend(nd, msg)
		return
	}
	s.broadcast(nd, msg, s.peers(nd), false)
}

func (s *sim) peers(nd *simNode) []int {
	var out []int
	for _, o := range s.nodes {
		if o.id != nd.id {
			out = append(out, o.id)
		}
	}
	return out
}

func (s *sim) broadcast(nd *simNode, m *Message, to []int, junk bool) {
	for _, j := range to {
		if s.cut(nd.id, j) || (s.chaos() && s.rng.Float64() < s.loss) {
			continue
		}
		copies := 1
		if s.rng.Float64() < s.dup {
			copies = 2
		}
		for c := 0; c < copies; c++ {
			maxD := s.maxDelay
			if !s.chaos() {
				maxD = 20 * time.Millisecond
			}
			d := time.Millisecond + time.Duration(s.rng.Int64N(int64(maxD)))
			s.push(&simEvent{at: s.now.Add(d), kind: evDeliver, node: j, from: nd.id, msg: m, junk: junk})
		}
	}
}

// noteSigned checks that a correct validator never signs two different
// messages for one slot, across crashes and restarts.
func (s *sim) noteSigned(nd *simNode, m *Message) {
	var k evKey
	var body string
	switch {
	case m.Proposal != nil && m.Proposal.Proposer == nd.signer.Public():
		p := m.Proposal.Signed()
		k = evKey{k: p.Proposer, height: p.Height, round: p.Round, kind: 'p'}
		body = string(p.SignBytes())
	case m.Vote != nil && m.Vote.Validator == nd.signer.Public():
		k = evKey{k: m.Vote.Validator, height: m.Vote.Height, round: m.Vote.Round, kind: voteKind(m.Vote.Type)}
		body = string(m.Vote.Vote.Format())
	default:
		return // relayed
	}
	if old, ok := s.signed[k]; ok && old != body {
		s.fail("correct %s signed two messages for height %d round %d %c:\n%s\n%s", nd.name, k.height, k.round, k.kind, old, body)
		return
	}
	s.signed[k] = body
}

// byzSend is a Byzantine validator's network layer: its engine is correct,
// but it signs conflicting votes and proposals and sends one to some peers
// and the other to the rest, and sends junk.
func (s *sim) byzSend(nd *simNode, m *Message) {
	if s.rng.Float64() < nd.silent {
		return
	}
	peers := s.peers(nd)
	s.rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	half := s.rng.IntN(len(peers) + 1)
	var alt *Message
	switch {
	case m.Vote != nil && m.Vote.Validator == nd.signer.Public() && s.rng.IntN(2) == 0:
		v := *m.Vote
		if v.Block.IsZero() {
			v.Block = nd.app.anyBlock()
		} else if s.rng.IntN(2) == 0 {
			v.Block = ledger.Hash{}
		} else {
			v.Block = nd.app.anyBlock()
		}
		v.Sig = s.signAs(nd, v.Vote.Format())
		alt = &Message{Vote: &v}
	case m.Proposal != nil && m.Proposal.Proposer == nd.signer.Public() && s.rng.IntN(2) == 0:
		p := *m.Proposal
		parent := s.head(nd)
		if parent.Height+1 == p.Height {
			b, err := nd.app.Propose(parent, p.Height, nd.clock(s).Add(time.Millisecond))
			if err == nil && b != nil && s.rng.IntN(3) == 0 {
				b.Header.LogRoot[0] ^= 1 // an invalid block: correct validators must prevote nil
			}
			if err == nil && b != nil {
				p.Block, p.POLRound = b, -1
				p.Sig = s.signAs(nd, p.SignBytes())
				alt = &Message{Proposal: &p}
			}
		}
	}
	if alt != nil {
		s.tracef("%s equivocates: %s to %v, %s to %v", nd.name, describe(m), peers[:half], describe(alt), peers[half:])
		s.broadcast(nd, m, peers[:half], false)
		s.broadcast(nd, alt, peers[half:], false)
	} else {
		s.broadcast(nd, m, peers, false)
	}
	if m.Vote != nil && m.Vote.Validator == nd.signer.Public() && s.rng.IntN(10) == 0 {
		// A vote far ahead (valid, must not cost memory) and junk.
		far := *m.Vote
		far.Round = min(far.Round+1000+uint32(s.rng.IntN(1<<20)), MaxRound)
		far.Sig = s.signAs(nd, far.Vote.Format())
		s.broadcast(nd, &Message{Vote: &far}, peers, false)
		bad := *m.Vote
		bad.Sig[3] ^= 0x40
		s.broadcast(nd, &Message{Vote: &bad}, peers, true)
		forged := *m.Vote
		forged.Validator = s.nodes[s.last].signer.Public() // claims to be the last validator, correct
		s.broadcast(nd, &Message{Vote: &forged}, peers, true)
		chain := *m.Vote
		chain.Chain = "other"
		chain.Sig = s.signAs(nd, chain.Vote.Format())
		s.broadcast(nd, &Message{Vote: &chain}, peers, true)
	}
}

func (s *sim) signAs(nd *simNode, msg []byte) ledger.Signature {
	if s.real {
		return nd.signer.Sign(msg)
	}
	return s.crypto.signer(nd.signer.Public())(msg)
}

// commit appends a block a node's engine committed, after the safety and
// certificate checks.
func (s *sim) commit(nd *simNode, b *ledger.Block) {
	h := b.Header.Height
	if prev, ok := s.committed[h]; ok && prev != b.Hash() {
		s.fail("SAFETY: %s committed %s at height %d, another node committed %s", nd.name, b.Hash(), h, prev)
		return
	}
	if _, ok := s.committed[h]; !ok {
		// The first commit of h: the set's history follows the chain.
		if err := s.ref.Apply(b); err != nil {
			s.fail("%s committed block %d, whose authority changes break the rules: %v", nd.name, h, err)
			return
		}
		for i := range b.Authority {
			s.stats.setChanged++
			s.tracef("height %d commits %s", h, b.Authority[i].String())
		}
	}
	s.committed[h] = b.Hash()
	if len(b.Records) == 0 {
		s.fail("%s committed an empty block at height %d", nd.name, h)
		return
	}
	s.tracef("%s commits height %d %s round %d (%d sigs)", nd.name, h, b.Hash().String()[:8], b.Certificate.Round, len(b.Certificate.Sigs))
	s.appendBlock(nd, b)
}

// sync copies blocks a node lacks from the most advanced peer it can reach.
func (s *sim) sync(nd *simNode) {
	if !nd.up {
		return
	}
	mine := s.head(nd).Height
	var best *simNode
	for _, o := range s.nodes {
		if o != nd && o.up && !s.cut(nd.id, o.id) && s.head(o).Height > mine && (best == nil || s.head(o).Height > s.head(best).Height) {
			best = o
		}
	}
	if best == nil {
		return
	}
	s.stats.syncs++
	top := s.head(best).Height
	for h := mine + 1; h <= top; h++ {
		b, err := best.store.Block(context.Background(), h)
		if err != nil {
			s.fail("sync: %v", err)
			return
		}
		if s.committed[h] != b.Hash() {
			s.fail("SAFETY: %s stores %s at height %d, committed is %s", best.name, b.Hash(), h, s.committed[h])
			return
		}
		if !s.appendBlock(nd, b) {
			return
		}
	}
	s.tracef("%s syncs %d..%d from %s", nd.name, mine+1, top, best.name)
	s.do(nd, nd.e.Advance(nd.clock(s), s.head(nd)))
}

// A simApp is a node's App in miniature: its mempool always has work, its
// blocks carry a few fresh records, and Check is ValidateNext against the
// node's store.
type simApp struct {
	s      *sim
	n      *simNode
	rng    *rand.Rand
	next   int
	recent []ledger.Hash
}

func (a *simApp) Ready() bool { return !a.s.now.Before(a.n.workFrom) }

func (a *simApp) Propose(parent *ledger.Header, height uint64, now time.Time) (*ledger.Block, error) {
	if !a.Ready() {
		return nil, nil
	}
	recs := ledgertest.Records(a.rng, a.next, 1+a.rng.IntN(3))
	a.next += len(recs)
	b := &ledger.Block{Records: recs}
	// Every set change the rules accept at this height, in order.
	for i, c := range a.s.changes {
		if height < a.s.changesFrom[i] {
			continue
		}
		cand := ledger.Block{Header: ledger.Header{Height: height}, Authority: append(slices.Clone(b.Authority), c)}
		if a.n.auth.Check(&cand) == nil {
			b.Authority = cand.Authority
		}
	}
	_, root, err := ledger.AppendLog(ledger.HashReaderOf(context.Background(), a.n.store), int64(parent.LogSize), b.LeafHashes())
	if err != nil {
		return nil, err
	}
	proposer := ledger.PublicKey{}
	if a.n.signer != nil {
		proposer = a.n.signer.Public()
	}
	b.Header = ledger.Header{
		Chain: parent.Chain, Height: height, Prev: parent.Hash(), Time: max(now.UnixMilli(), parent.Time),
		Engine: ledger.EnginePoA, Proposer: proposer,
		Records: uint64(b.Leaves()), LogSize: parent.LogSize + uint64(b.Leaves()), LogRoot: root,
	}
	a.recent = append(a.recent, b.Hash())
	if len(a.recent) > 8 {
		a.recent = a.recent[1:]
	}
	return b, nil
}

// anyBlock returns the hash of a block this node proposed recently, or a
// random one.
func (a *simApp) anyBlock() ledger.Hash {
	if len(a.recent) > 0 && a.rng.IntN(2) == 0 {
		return a.recent[a.rng.IntN(len(a.recent))]
	}
	var h ledger.Hash
	for i := range h {
		h[i] = byte(a.rng.IntN(256))
	}
	return h
}

func (a *simApp) Check(parent *ledger.Header, b *ledger.Block, now time.Time) error {
	if b.Header.Time > now.Add(10*time.Second).UnixMilli() {
		return errFutureBlock
	}
	if err := a.n.auth.Check(b); err != nil {
		return err
	}
	_, err := ledger.ValidateNext(context.Background(), a.n.store, parent, b, nil)
	return err
}

// fakeCrypto stands in for ed25519 in most schedules: a signature is a
// SHA-512 of the key's secret seed and the message, which only the holder
// of the seed can make, and which costs a thousandth of ed25519 under the
// race detector. The first schedules of each size run real ed25519.
type fakeCrypto struct {
	seeds map[ledger.PublicKey][]byte
}

func (c *fakeCrypto) signer(k ledger.PublicKey) func([]byte) ledger.Signature {
	seed := c.seeds[k]
	return func(msg []byte) ledger.Signature {
		h := sha512.New()
		h.Write(seed)
		h.Write(msg)
		var sig ledger.Signature
		copy(sig[:], h.Sum(nil))
		return sig
	}
}

func (c *fakeCrypto) verify(k ledger.PublicKey, msg []byte, sig ledger.Signature) bool {
	if _, ok := c.seeds[k]; !ok {
		return false
	}
	return c.signer(k)(msg) == sig
}

// fakeSeal is PoASeal with fakeCrypto: the same checks as
// ledger.Certificate.Verify against the set of the block's height, and it
// follows a node's validator set as PoASeal does.
type fakeSeal struct {
	s    *sim
	auth *ledger.Authorities
}

func (f *fakeSeal) CheckSeal(ctx context.Context, parent *ledger.Header, b *ledger.Block) error {
	if err := f.check(b); err != nil {
		return err
	}
	return f.auth.Apply(b)
}

func (f *fakeSeal) check(b *ledger.Block) error {
	s := f.s
	c := b.Certificate
	if c == nil {
		return fmt.Errorf("no certificate")
	}
	key := string(c.Format())
	if s.certs[key] {
		return nil
	}
	if c.Chain != s.g.Chain || c.Height != b.Header.Height || c.Block != b.Hash() {
		return fmt.Errorf("certificate for %q %d %s", c.Chain, c.Height, c.Block)
	}
	vals, err := f.auth.At(b.Header.Height)
	if err != nil {
		return err
	}
	if !vals.Contains(b.Header.Proposer) {
		return fmt.Errorf("proposer %s is not a validator", b.Header.Proposer)
	}
	if len(c.Sigs) < vals.Quorum() {
		return fmt.Errorf("%d signatures, quorum %d", len(c.Sigs), vals.Quorum())
	}
	if !slices.IsSortedFunc(c.Sigs, func(a, b ledger.CertSig) int { return a.Validator.Compare(b.Validator) }) {
		return fmt.Errorf("signatures not sorted")
	}
	for i, sg := range c.Sigs {
		if i > 0 && c.Sigs[i-1].Validator == sg.Validator {
			return fmt.Errorf("signer twice")
		}
		v := c.Vote(sg.Validator)
		if !vals.Contains(sg.Validator) || !s.crypto.verify(sg.Validator, v.Format(), sg.Sig) {
			return fmt.Errorf("bad signature by %s", sg.Validator)
		}
	}
	s.certs[key] = true
	return nil
}

// BenchmarkSimulation4 measures engine throughput: a 4-validator network
// with real ed25519 and a lossless network committing blocks, in engine
// time (the simulated network costs nothing).
func BenchmarkSimulation4(b *testing.B) {
	s := newSim(b, 4, 1, true)
	s.loss, s.dup, s.group, s.crashP = 0, 0, nil, 0
	s.queue = nil
	s.push(&simEvent{at: s.now, kind: evHeal})
	s.healAt = s.now
	s.deadline = s.now.Add(24 * time.Hour)
	b.ResetTimer()
	start := time.Now()
	for _, nd := range s.nodes {
		s.boot(nd)
	}
	for s.queue.Len() > 0 && !s.failed && len(s.committed) < b.N {
		ev := heap.Pop(&s.queue).(*simEvent)
		s.now = ev.at
		s.handle(ev)
	}
	el := time.Since(start)
	b.ReportMetric(float64(len(s.committed))/el.Seconds(), "blocks/s")
	b.ReportMetric(float64(s.stats.messages)/float64(max(len(s.committed), 1)), "msgs/block")
}

func describe(m *Message) string {
	if p := m.Proposal; p != nil {
		return fmt.Sprintf("proposal h%d r%d pol %d %s by %s", p.Height, p.Round, p.POLRound, p.Block.Hash().String()[:8], p.Proposer.String()[:6])
	}
	v := m.Vote
	return fmt.Sprintf("%s h%d r%d %s by %s", v.Type, v.Height, v.Round, hashOrNil(v.Block)[:min(8, len(hashOrNil(v.Block)))], v.Validator.String()[:6])
}
