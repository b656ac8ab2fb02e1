#!/usr/bin/env bash
# The vcsledger demo: a local ledger node, a real git repository, a tag
# recorded and verified, then the tag moved to other code and caught.
# Run it with 'make demo' (which builds bin/ledgerd and bin/vcsverify first).
set -euo pipefail

BIN=${BIN:-bin}
PORT=${DEMO_PORT:-18080}
work=$(mktemp -d "${TMPDIR:-/tmp}/vcsledger-demo.XXXXXX")
node_pid=
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

export VCSVERIFY_HOME="$work/client"
export VCSVERIFY_CACHE="$work/cache"
export VCSVERIFY_NODE="http://127.0.0.1:$PORT"

say "1. Start a ledger node (a single-validator dev chain) in $work/node"
"$BIN/ledgerd" dev --home "$work/node" --http "127.0.0.1:$PORT" --log-level warn >"$work/node.log" 2>&1 &
node_pid=$!
ready=
for _ in $(seq 1 300); do
  if grep -q "serving http://" "$work/node.log" 2>/dev/null; then ready=1; break; fi
  if ! kill -0 "$node_pid" 2>/dev/null; then echo "ledgerd exited:"; cat "$work/node.log"; exit 2; fi
  sleep 0.1
done
[ -n "$ready" ] || { echo "ledgerd did not become ready:"; cat "$work/node.log"; exit 2; }
echo "ledgerd is serving $VCSVERIFY_NODE"

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

say "3. First check: the ledger has never seen it, so --append records it"
run "$BIN/vcsverify" check --append "$repo" v1.0.0

say "4. Check again: verified against the ledger (with an inclusion proof)"
run "$BIN/vcsverify" check "$repo" v1.0.0

say "5. An attacker moves the tag to different code and pushes it again"
printf 'package main\n\nfunc main() { println("pwned") }\n' >"$repo/main.go"
git -C "$repo" commit -qam "malicious"
git -C "$repo" tag -f v1.0.0 >/dev/null
echo "tag v1.0.0 now -> $(git -C "$repo" rev-parse v1.0.0)"

say "6. Check again: the moved tag is caught (exit code 1 is the expected outcome)"
set +e
"$BIN/vcsverify" check "$repo" v1.0.0
code=$?
set -e
echo "vcsverify exit code: $code"
if [ "$code" -ne 1 ]; then
  echo "demo FAILED: expected exit code 1 (SECURITY ERROR) for the moved tag"
  exit 1
fi

say "7. Audit the whole chain as a client (every link, signature and root)"
run "$BIN/vcsverify" audit

say "Done"
echo "node data:   $work/node (ledger.db is the SQLite store; ledgerd audit --db $work/node/ledger.db)"
echo "client data: $VCSVERIFY_HOME (pinned genesis and newest verified checkpoint)"
echo "The node is stopped now; remove $work when you are finished with it."
