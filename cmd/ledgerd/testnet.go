package main

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/ledger"
)

// p2pPortOffset separates a testnet node's peer-to-peer port from its HTTP
// port: node I serves HTTP on base+I and libp2p on base+p2pPortOffset+I.
const p2pPortOffset = 1000

func newTestnetCmd(stdout io.Writer) *cobra.Command {
	var nodes, basePort int
	var dir, engine, chain string
	var interval time.Duration
	var attestQuorum int
	cmd := &cobra.Command{
		Use:   "testnet --nodes N --dir DIR [--engine poa|pow] [--base-port P]",
		Short: "Write homes for a local network on 127.0.0.1",
		Long: `testnet writes DIR/node0 .. DIR/node<N-1>: each with its own key, the shared
genesis (every node a validator, for poa) and a config.json in which node I
serves HTTP on 127.0.0.1:<P+I> and listens for peers on 127.0.0.1:<P+1000+I>,
with every other node as a bootstrap peer. On a pow chain (difficulty 12
bits, retargeting every 32 blocks toward --block-interval, final after 6
confirmations) every node mines with one worker. Start node I with
'ledgerd run --home DIR/nodeI'.`,
		Example: "  ledgerd testnet --nodes 4 --dir ./net\n  for i in 0 1 2 3; do ledgerd run --home ./net/node$i & done",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if nodes < 1 || nodes > 64 {
				return usageErrorf("--nodes %d: want 1 to 64", nodes)
			}
			if dir == "" {
				return usageErrorf("--dir is required")
			}
			if basePort < 1024 || basePort+p2pPortOffset+nodes > 65535 {
				return usageErrorf("--base-port %d: want 1024 to %d", basePort, 65535-p2pPortOffset-nodes)
			}
			if _, err := os.Stat(dir); err == nil {
				if ents, _ := os.ReadDir(dir); len(ents) > 0 {
					return usageErrorf("%s exists and is not empty; testnet never overwrites homes", dir)
				}
			}
			keys := make([]ed25519.PrivateKey, nodes)
			addrs := make([]string, nodes)
			for i := range keys {
				home := filepath.Join(dir, fmt.Sprintf("node%d", i))
				if err := os.MkdirAll(home, 0o700); err != nil {
					return err
				}
				k, err := writeKey(filepath.Join(home, keyFile))
				if err != nil {
					return err
				}
				keys[i] = k
				id, err := peerID(k)
				if err != nil {
					return err
				}
				addrs[i] = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", basePort+p2pPortOffset+i, id)
			}
			f := initFlags{chain: chain, engine: engine, blockInterval: interval, attestQuorum: attestQuorum,
				bits: 12, retarget: 32, confirmations: 6}
			if engine == ledger.EnginePoA {
				for i, k := range keys {
					f.validators = append(f.validators, fmt.Sprintf("%s=node%d", publicOf(k), i))
				}
			}
			g, err := f.genesis()
			if err != nil {
				return err
			}
			for i := range keys {
				home := filepath.Join(dir, fmt.Sprintf("node%d", i))
				var boot []string
				for j, a := range addrs {
					if j != i {
						boot = append(boot, a)
					}
				}
				fc := &fileConfig{
					HTTP:      fmt.Sprintf("127.0.0.1:%d", basePort+i),
					P2PListen: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", basePort+p2pPortOffset+i)},
					Bootstrap: boot,
				}
				if g.Engine == ledger.EnginePoW {
					// Every node mines, with one worker: N nodes share
					// this machine's cores.
					fc.Mine, fc.MineWorkers = true, 1
				}
				if err := writeFileConfig(filepath.Join(home, configFile), fc); err != nil {
					return err
				}
				if err := writeFileNew(filepath.Join(home, genesisFile), g.Format(), 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(stdout, "wrote %d homes in %s (chain %q, %s, genesis %s)\n", nodes, dir, g.Chain, g.Engine, g.Hash())
			for i := range keys {
				fmt.Fprintf(stdout, "  node%d  http://127.0.0.1:%d  %s\n", i, basePort+i, addrs[i])
			}
			fmt.Fprintf(stdout, "start each node with:  ledgerd run --home %s/nodeI\n", dir)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&nodes, "nodes", 4, "number of nodes (all validators on poa)")
	fl.StringVar(&dir, "dir", "", "directory for the homes (required; must be empty or absent)")
	fl.StringVar(&engine, "engine", ledger.EnginePoA, "consensus engine: poa or pow")
	fl.IntVar(&basePort, "base-port", 8080, "node I serves HTTP on base-port+I and libp2p on base-port+1000+I")
	fl.StringVar(&chain, "chain", "testnet", "chain id")
	fl.DurationVar(&interval, "block-interval", 500*time.Millisecond, "least time between blocks")
	fl.IntVar(&attestQuorum, "attest-quorum", -1, "attestations a record needs (-1: f+1)")
	return cmd
}

// peerID is the libp2p peer id of a node key.
func peerID(k ed25519.PrivateKey) (peer.ID, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(k.Public().(ed25519.PublicKey))
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pk)
}
