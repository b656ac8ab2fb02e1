package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// ledgerdCmd runs 'ledgerd args...' as a process to its end and returns
// its exit code, stdout and stderr.
func ledgerdCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), execAsLedgerd+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("ledgerd %v: %v", args, err)
	return 0, "", ""
}

// TestAuthorityProcesses is the operator's path of docs/OPERATORS.md,
// "Changing the validator set", with real processes: 'ledgerd testnet'
// writes four validators' homes, a fifth operator makes a home with
// 'ledgerd keygen', the same genesis and a config.json, and the five run
// as 'ledgerd run' processes. Bad requests through 'ledgerd authority' are
// answered with a reason and exit code 2 and change nothing; then the
// first operator proposes the fifth with 'ledgerd authority propose', two
// others vote with 'ledgerd authority vote', the change commits, the five
// decide blocks that carry records submitted through the new validator,
// 'ledgerd authority list' shows the set of five, and 'ledgerd audit'
// passes on every store.
func TestAuthorityProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five ledgerd processes")
	}
	const n = 5 // four validators and the one they add
	dir := filepath.Join(t.TempDir(), "net")
	base := testnetBasePort(t, n)
	if code, out, stderr := ledgerdCmd(t, "testnet", "--nodes", "4", "--dir", dir, "--base-port", fmt.Sprint(base),
		"--block-interval", "200ms", "--attest-quorum", "0"); code != 0 {
		t.Fatalf("testnet: exit %d\n%s%s", code, out, stderr)
	}
	home := func(i int) string { return filepath.Join(dir, fmt.Sprintf("node%d", i)) }
	url := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", base+i) }

	// The fifth home, as its operator makes it.
	if code, out, stderr := ledgerdCmd(t, "keygen", "--out", filepath.Join(home(4), keyFile)); code != 0 {
		t.Fatalf("keygen: exit %d\n%s%s", code, out, stderr)
	}
	g, err := readGenesis(filepath.Join(home(0), genesisFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home(4), genesisFile), g.Format(), 0o644); err != nil {
		t.Fatal(err)
	}
	var boot []string
	for i := 0; i < 4; i++ {
		k, err := readKey(filepath.Join(home(i), keyFile))
		if err != nil {
			t.Fatal(err)
		}
		id, err := peerID(k)
		if err != nil {
			t.Fatal(err)
		}
		boot = append(boot, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", base+p2pPortOffset+i, id))
	}
	if err := writeFileConfig(filepath.Join(home(4), configFile), &fileConfig{
		HTTP:      fmt.Sprintf("127.0.0.1:%d", base+4),
		P2PListen: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", base+p2pPortOffset+4)},
		Bootstrap: boot,
	}); err != nil {
		t.Fatal(err)
	}
	k4, err := readKey(filepath.Join(home(4), keyFile))
	if err != nil {
		t.Fatal(err)
	}
	fifth := publicOf(k4).String()
	k3, err := readKey(filepath.Join(home(3), keyFile))
	if err != nil {
		t.Fatal(err)
	}

	procs := make([]*ledgerdProc, n)
	clients := make([]*api.Client, n)
	for i := range procs {
		procs[i] = startTestnetNode(t, home(i), url(i))
		clients[i] = loopbackClient(t, url(i), 30+i)
	}
	ctx := context.Background()
	// proposed returns the changes node i holds, collecting votes.
	proposed := func(i int) []api.AuthorityInfo {
		t.Helper()
		vs, err := clients[i].Validators(ctx)
		if err != nil {
			t.Fatalf("node %d: validators: %v", i, err)
		}
		return vs.Proposed
	}

	// Bad requests: a reason on stderr, exit code 2, nothing proposed.
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"a key that is not hex", []string{"propose", "--home", home(0), "--add", "not-a-key", "--name", "x"}, "--add"},
		{"a short key", []string{"propose", "--home", home(0), "--add", fifth[:62], "--name", "x"}, "--add"},
		{"an addition without a name", []string{"propose", "--home", home(0), "--add", fifth}, "--name"},
		{"a bad name", []string{"propose", "--home", home(0), "--add", fifth, "--name", "no spaces"}, "name"},
		{"both --effective and --delay", []string{"propose", "--home", home(0), "--add", fifth, "--name", "x", "--effective", "50", "--delay", "9"}, "exclude"},
		{"a home without a key", []string{"propose", "--home", filepath.Join(dir, "nowhere"), "--add", fifth, "--name", "x"}, "--home"},
		{"a node that does not answer", []string{"propose", "--home", home(0), "--node", "http://" + freeAddr(t), "--add", fifth, "--name", "x"}, "cannot reach the node"},
		{"a node URL that is not one", []string{"list", "--home", home(0), "--node", "ftp://x"}, "url"},
		{"a signer that is not a validator", []string{"propose", "--home", home(4), "--add", fifth, "--name", "node4"}, "is not a validator"},
		{"a voter that is not a validator", []string{"vote", "--home", home(4)}, "is not a validator"},
		{"adding a validator", []string{"propose", "--home", home(0), "--add", publicOf(k3).String(), "--name", "again"}, "already a validator"},
		{"removing below four", []string{"propose", "--home", home(0), "--remove", publicOf(k3).String()}, "fewer than 4"},
		{"removing a stranger", []string{"propose", "--home", home(0), "--remove", fifth}, "not a validator"},
		{"a stale effective height", []string{"propose", "--home", home(0), "--add", fifth, "--name", "node4", "--effective", "1"}, "stale"},
		{"a vote with nothing proposed", []string{"vote", "--home", home(1)}, "no proposed change"},
		{"a vote for an unknown id", []string{"vote", "--home", home(1), "abcdef"}, "no proposed change with an id starting with abcdef"},
	} {
		code, out, stderr := ledgerdCmd(t, append([]string{"authority"}, c.args...)...)
		if code != 2 || !strings.Contains(strings.ToLower(stderr), strings.ToLower(c.want)) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q\n%s", c.name, code, stderr, c.want, out)
		}
		t.Logf("%s: exit %d: %s", c.name, code, strings.TrimSpace(stderr))
		if strings.Contains(stderr, "panic") {
			t.Errorf("%s: %s", c.name, stderr)
		}
	}
	for i := range clients {
		if p := proposed(i); len(p) != 0 {
			t.Fatalf("node %d holds %d proposed changes after refused requests", i, len(p))
		}
	}

	// The first operator proposes the fifth, effective 8 heights on.
	code, out, stderr := ledgerdCmd(t, "authority", "propose", "--home", home(0), "--add", fifth, "--name", "node4", "--delay", "8")
	m := regexp.MustCompile(`^proposed ([0-9a-f]{12}): add ` + fifth + ` \(node4\) from height (\d+), 1 of 3 votes\n`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("propose: exit %d\n%s%s", code, out, stderr)
	}
	id := m[1]
	var effective uint64
	fmt.Sscan(m[2], &effective)
	// Two others vote, each through its own node once it has heard of it.
	for _, i := range []int{1, 2} {
		deadline := time.Now().Add(60 * time.Second)
		for len(proposed(i)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d has not heard of the proposal after 60s", i)
			}
			time.Sleep(100 * time.Millisecond)
		}
		code, out, stderr := ledgerdCmd(t, "authority", "vote", "--home", home(i), id)
		if code != 0 || !strings.HasPrefix(out, "voted "+id+": add "+fifth) {
			t.Fatalf("vote on node %d: exit %d\n%s%s", i, code, out, stderr)
		}
		if i == 1 && !strings.Contains(out, "2 of 3 votes") {
			t.Errorf("vote on node 1: %q, want 2 of 3 votes", out)
		}
	}
	// The change commits and comes into force on every node.
	deadline := time.Now().Add(90 * time.Second)
	for {
		all := true
		for i := range clients {
			vs, err := clients[i].Validators(ctx)
			all = all && err == nil && len(vs.Validators) == 5
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the set of five is not in force on every node after 90s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, out, stderr = ledgerdCmd(t, "authority", "list", "--home", home(4))
	if code != 0 || !strings.Contains(out, "(quorum 4 of 5)") || !strings.Contains(out, fifth+" node4") ||
		!strings.Contains(out, "proposed (collecting votes): 0") {
		t.Fatalf("list on the fifth node: exit %d\n%s%s", code, out, stderr)
	}
	// Once a validator, the fifth votes: a repeat of the change is refused.
	code, _, stderr = ledgerdCmd(t, "authority", "propose", "--home", home(4), "--add", fifth, "--name", "node4", "--delay", "8")
	if code != 2 || !strings.Contains(stderr, "already a validator") {
		t.Errorf("propose the fifth again: exit %d, %s", code, stderr)
	}

	// The five decide blocks: records submitted through the fifth commit,
	// and verify against the set history the genesis proves.
	repo := killRepo(t, 3)
	var resps []*api.RecordResponse
	for i := 0; i < 3; i++ {
		k, err := ledger.NewKey(repo, fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := clients[4].Submit(ctx, api.SubmitRequest{Key: k.String()}, 30*time.Second)
		if err != nil || resp.Record == nil {
			t.Fatalf("submit %s to the fifth: %+v, %v\n%s", k, resp, err, procs[4].logs.String())
		}
		resps = append(resps, resp.Record)
	}
	hist, err := clients[3].Authority(ctx)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := api.VerifyAuthority(g, hist)
	if err != nil || len(auth.Entries()) != 1 {
		t.Fatalf("VerifyAuthority = %v with %d changes, want the addition", err, len(auth.Entries()))
	}
	for _, r := range resps {
		if _, _, err := api.VerifyRecordWith(g, auth, r); err != nil {
			t.Errorf("VerifyRecordWith = %v", err)
		}
	}
	head := waitSameHead(t, clients, 60*time.Second)
	if head.Height < effective {
		t.Fatalf("head %d below the effective height %d", head.Height, effective)
	}
	for i, p := range procs {
		p.stop()
		code, out, stderr := ledgerdCmd(t, "audit", "--db", filepath.Join(home(i), dbFile), "--genesis", filepath.Join(home(i), genesisFile))
		if code != 0 || !strings.HasPrefix(out, "ok: ") {
			t.Errorf("audit of node %d: exit %d\n%s%s", i, code, out, stderr)
		}
	}
}
