//go:build soak

package node

import "time"

// Under the soak tag (make soak) the network tests run at the full
// scale: partitions held 30 s, a node down while 1,000 blocks are committed
// by consensus, and a 5,000-block chain synced from genesis.
func init() {
	partitionFor = 30 * time.Second
	downBlocks = 1000
	catchUpBlocks = 5000
}
