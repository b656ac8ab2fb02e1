package p2p

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestQUIC connects two hosts over QUIC on loopback and gossips.
func TestQUIC(t *testing.T) {
	ra, rb := newRecorder(), newRecorder()
	cfg := testConfig(testGenesis, ra, nil)
	cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	a := startHost(t, cfg)
	if len(a.Addrs()) != 1 || !strings.Contains(a.Addrs()[0], "/quic-v1/p2p/") {
		t.Fatalf("Addrs() = %v, want one QUIC address", a.Addrs())
	}
	cfg = testConfig(testGenesis, rb, nil, a)
	cfg.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	b := startHost(t, cfg)
	eventually(t, 10*time.Second, "hello over QUIC", func() bool { return hasPeers(a, b) && hasPeers(b, a) })
	if pi, _ := b.Peer(a.ID()); !strings.Contains(pi.Addr, "quic-v1") {
		t.Errorf("b reaches a at %q, want QUIC", pi.Addr)
	}
	waitMesh(t, 1, a, b)
	if err := a.Publish(context.Background(), TopicAttest, []byte("over quic")); err != nil {
		t.Fatal(err)
	}
	rb.waitCount(t, TopicAttest, 1, 5*time.Second)
}
