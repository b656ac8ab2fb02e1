#!/usr/bin/env bash
# The vcsledger demo: a local network of four validators (separate ledgerd
# processes), a real git repository, a tag recorded through one node and
# verified through others, a validator stopped and restarted (it catches up),
# then the tag moved to other code and caught.
# Run it with 'make demo' (which builds bin/ledgerd and bin/vcsverify first).
set -euo pipefail

BIN=$(cd "${BIN:-bin}" && pwd)
PORT=${DEMO_PORT:-18080}
work=$(mktemp -d "${TMPDIR:-/tmp}/vcsledger-demo.XXXXXX")
declare -a pids=(0 0 0 0)
cleanup() {
  for p in "${pids[@]}"; do
    if [ "$p" != 0 ] && kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
node_url() { echo "http://127.0.0.1:$((PORT + $1))"; }

start_node() { # start_node I: run node I in the background, wait until it serves
  local i=$1 log="$work/node$1.log"
  "$BIN/ledgerd" run --home "$work/net/node$i" --log-level warn >>"$log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 1 300); do
    if "$BIN/vcsverify" lookup -q --timeout 2s --node "$(node_url "$i")" demo.invalid/x@v0 >/dev/null 2>&1 || [ $? -eq 3 ]; then return 0; fi
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then echo "ledgerd node$i exited:"; cat "$log"; exit 2; fi
    sleep 0.1
  done
  echo "node$i did not become ready:"; cat "$log"; exit 2
}

export VCSVERIFY_HOME="$work/client"
export VCSVERIFY_CACHE="$work/cache"

say "1. Four validators on 127.0.0.1 (one ledgerd process each), homes in $work/net"
"$BIN/ledgerd" testnet --nodes 4 --dir "$work/net" --base-port "$PORT" --block-interval 200ms | sed 's/^/  /'
for i in 0 1 2 3; do start_node "$i"; done
echo "all four nodes serve HTTP on $(node_url 0) .. $(node_url 3)"

say "2. Make a real git repository and tag v1.0.0"
repo="$work/repo"
git init -q "$repo"
git -C "$repo" config user.email demo@example.com
git -C "$repo" config user.name demo
printf 'package main\n\nfunc main() { println("hello") }\n' >"$repo/main.go"
git -C "$repo" add main.go
git -C "$repo" commit -qm "first release"
git -C "$repo" tag v1.0.0
echo "repository $repo, tag v1.0.0 -> $(git -C "$repo" rev-parse v1.0.0)"

say "3. First check through node1: the ledger has never seen it, so --append records it"
echo "(two validators fetch the repository and attest its hash; all four agree on the block)"
run "$BIN/vcsverify" check --append --node "$(node_url 1)" "$repo" v1.0.0

say "4. Check through node3 and node0 at once: both answer, both proofs verify, they agree"
run "$BIN/vcsverify" check --node "$(node_url 3)" --node "$(node_url 0)" "$repo" v1.0.0

say "5. Stop validator node2 (kill -9) and keep appending: three of four are a quorum"
kill -9 "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true; pids[2]=0
printf 'package main\n\nfunc main() { println("hello, v1.1") }\n' >"$repo/main.go"
git -C "$repo" commit -qam "second release"
git -C "$repo" tag v1.1.0
run "$BIN/vcsverify" check --append --node "$(node_url 0)" "$repo" v1.1.0

say "6. Restart node2: it catches up from its peers and serves the record it missed"
start_node 2
for _ in $(seq 1 100); do
  if "$BIN/vcsverify" lookup -q --node "$(node_url 2)" "file://$repo@v1.1.0" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
run "$BIN/vcsverify" lookup --node "$(node_url 2)" "file://$repo@v1.1.0"

say "7. An attacker moves tag v1.0.0 to different code"
printf 'package main\n\nfunc main() { println("pwned") }\n' >"$repo/main.go"
git -C "$repo" commit -qam "malicious"
git -C "$repo" tag -f v1.0.0 >/dev/null
echo "tag v1.0.0 now -> $(git -C "$repo" rev-parse v1.0.0)"

say "8. Check through node2: the moved tag is caught (exit code 1 is the expected outcome)"
set +e
"$BIN/vcsverify" check --node "$(node_url 2)" "$repo" v1.0.0
code=$?
set -e
echo "vcsverify exit code: $code"
if [ "$code" -ne 1 ]; then
  echo "demo FAILED: expected exit code 1 (SECURITY ERROR) for the moved tag"
  exit 1
fi

say "9. Audit: the client downloads and verifies the chain; each operator verifies its store"
run "$BIN/vcsverify" audit --node "$(node_url 2)" --mirror "$work/mirror"
for i in 0 1 2 3; do
  "$BIN/ledgerd" audit --db "$work/net/node$i/ledger.db" --genesis "$work/net/node$i/genesis.txt" | sed "s/^/  node$i: /"
done

say "Done"
echo "node homes:  $work/net/node0..3 (ledger.db is each node's SQLite store; logs in $work/node*.log)"
echo "client data: $VCSVERIFY_HOME (pinned genesis and newest verified checkpoint), mirror in $work/mirror"
echo "The nodes are stopped now; remove $work when you are finished with it."
