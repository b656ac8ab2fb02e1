package node

import (
	"bytes"
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// TestStallOnAppendFailure: a validator whose store cannot write fails to
// append a block the network committed. It must take no further part in
// consensus, say so (/readyz 503, /v1/status "stalled" and
// append_failures, vcsledger_stalled in /metrics), and once its store
// works again catch up from its peers and take part as before.
//
// The failure is real: a second SQLite connection holds the database's
// write lock (BEGIN IMMEDIATE) for longer than the store's 10 s busy
// timeout, as an operator's sqlite3 shell or a backup tool left in a write
// transaction would, so the node's append fails with "database is locked".
// (A full or read-only filesystem would need a mount, which tests cannot
// count on having the rights for.)
func TestStallOnAppendFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the store's busy timeout")
	}
	repo := newFixtureRepo(t)
	repo.release("v0")
	keys := keysOf(repo, repo.tagMany("stall", 12))
	c := newCluster(t, clusterOpts{validators: 4, attestQuorum: 0})
	c.startAll()
	c.waitPeers(3, 30*time.Second)
	ctx := context.Background()
	acked := map[ledger.Key]ledger.Entry{}
	submit := func(via int, ks []ledger.Key) {
		t.Helper()
		for _, k := range ks {
			resp, err := c.members[via].client().Submit(ctx, api.SubmitRequest{Key: k.String()}, 60*time.Second)
			if err != nil || resp.Status != api.StatusCommitted {
				t.Fatalf("Submit(%s) via node %d = %+v, %v; want committed", k, via, resp, err)
			}
			acked[k] = ledger.Entry{Record: ledger.Record{Key: k, Commit: resp.Record.Commit, Tree: resp.Record.Tree, H1: resp.Record.H1},
				Index: resp.Record.Index, Height: resp.Record.Height}
		}
	}
	submit(0, keys[:2])
	c.waitAllCommitted(keys[:2], 30*time.Second)

	const victim = 3
	m := c.members[victim]
	db, err := sql.Open("sqlite3", "file:"+m.Cfg.DBPath+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			conn.ExecContext(ctx, "ROLLBACK")
			conn.Close()
		}
	}
	defer unlock()

	// The other three commit without it; its append of the first of these
	// blocks fails once the busy timeout runs out. Every write of the node
	// (signing state, pending journal, co-signatures, appends) waits that
	// timeout on its one write connection, one after another, so the
	// append may come to fail only after several of them.
	before := c.heads()[0].Height
	submit(0, keys[2:4])
	cl := m.client()
	var st *api.Status
	const stallWithin = 3 * time.Minute
	deadline := time.Now().Add(stallWithin)
	for {
		if st, err = cl.Status(ctx); err != nil {
			t.Fatal(err)
		}
		if st.Stalled != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d not stalled after %v with its store locked: %+v", victim, stallWithin, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("node %d: %s", victim, st.Stalled)
	if st.AppendFailures == 0 {
		t.Errorf("status append_failures = 0 while stalled")
	}
	if err := cl.Ready(ctx); err == nil {
		t.Errorf("/readyz ready while stalled")
	}
	metrics, err := cl.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(metrics, []byte("\nvcsledger_stalled 1\n")) {
		t.Errorf("/metrics has no vcsledger_stalled 1")
	}
	stalledAt := m.engineHeight()
	if head := m.head(); head.Height > before {
		t.Errorf("node %d stored height %d with its store locked (was %d)", victim, head.Height, before)
	}

	// While stalled its engine is not driven: the others go on and it
	// stays where it was.
	submit(1, keys[4:6])
	if h := m.engineHeight(); h != stalledAt {
		t.Errorf("stalled engine moved from height %d to %d", stalledAt, h)
	}
	if err := cl.Ready(ctx); err == nil {
		t.Errorf("/readyz ready while stalled")
	}

	// The store works again: it resyncs, is ready and takes part.
	unlock()
	deadline = time.Now().Add(60 * time.Second)
	for cl.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			st, _ := cl.Status(ctx)
			t.Fatalf("node %d not ready 60 s after its store was unlocked: %+v", victim, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, err := cl.Status(ctx); err != nil || st.Stalled != "" || st.AppendFailures == 0 {
		t.Errorf("status after recovery = %+v, %v; want not stalled, append_failures kept", st, err)
	}
	submit(victim, keys[6:9])
	// Without it, two validators cannot commit: the network needs it back.
	c.stop(0)
	submit(victim, keys[9:])
	c.start(0)
	c.waitConverged(60 * time.Second)
	c.checkHave(acked)
	c.audit()
}

// engineHeight returns the height the member's consensus engine is
// deciding, as of its last event.
func (m *member) engineHeight() uint64 {
	m.Node.mu.Lock()
	defer m.Node.mu.Unlock()
	return m.Node.status.Height
}
