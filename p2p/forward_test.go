//go:build forwarding

// TestInvalidMessages needs a message forwarded through a middle host
// (m - a - b in a line). It fails: the forwarded message does not reach b
// within 20 s. Run it with go test -tags forwarding ./p2p.

package p2p

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestInvalidMessages runs m - a - b in a line: m publishes invalid
// messages; a rejects them, does not forward them to b, and bans m.
func TestInvalidMessages(t *testing.T) {
	rm, ra, rb := newRecorder(), newRecorder(), newRecorder()
	a := startHost(t, testConfig(testGenesis, ra, nil))
	cfgM := testConfig(testGenesis, rm, nil, a)
	m := startHost(t, cfgM)
	b := startHost(t, testConfig(testGenesis, rb, nil, a))
	waitMesh(t, 2, a)
	waitMesh(t, 1, m, b)
	ctx := context.Background()
	// The path works: a good message reaches b through a.
	if err := m.Publish(ctx, TopicConsensus, []byte("good 1")); err != nil {
		t.Fatal(err)
	}
	rb.waitCount(t, TopicConsensus, 1, 20*time.Second)
	// Ignored messages cost nothing.
	for i := 0; i < 3*DefaultMaxInvalid; i++ {
		if err := m.Publish(ctx, TopicConsensus, fmt.Appendf(nil, "ignore %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "a validated the ignored messages", func() bool { return ra.sawValidate("ignore") == 3*DefaultMaxInvalid })
	if !connected(a, m) || slices.Contains(a.Blocked(), m.ID()) {
		t.Fatal("a dropped m for ignored messages")
	}
	for i := 0; i < DefaultMaxInvalid; i++ {
		if err := m.Publish(ctx, TopicConsensus, fmt.Appendf(nil, "bad %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "a banned m", func() bool { return slices.Contains(a.Blocked(), m.ID()) && !connected(a, m) })
	if n := ra.sawValidate("bad"); n == 0 {
		t.Errorf("a validated no bad message")
	}
	if n := ra.count(TopicConsensus); n != 1 {
		t.Errorf("a delivered %d consensus messages, want 1", n)
	}
	if n := rb.sawValidate("bad") + rb.sawValidate("ignore"); n != 0 {
		t.Errorf("b was forwarded %d rejected or ignored messages", n)
	}
	// The ban holds: m cannot reconnect (a's gater refuses it).
	ctxT, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := m.Connect(ctxT, a.Addrs()[0]); err == nil {
		time.Sleep(200 * time.Millisecond)
		if connected(a, m) {
			t.Errorf("m reconnected to a after the ban")
		}
	}
	// a and b still talk.
	if err := a.Publish(ctx, TopicConsensus, []byte("good 2")); err != nil {
		t.Fatal(err)
	}
	rb.waitCount(t, TopicConsensus, 2, 5*time.Second)
}
