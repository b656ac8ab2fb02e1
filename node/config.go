package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vcsledger/vcsledger/consensus"
	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/sqlitestore"
)

// Config is everything a replica needs. Only cmd/ledgerd reads files, flags
// and the environment; it fills a Config and calls New.
type Config struct {
	Genesis *ledger.Genesis    // the chain; required
	Key     ed25519.PrivateKey // the node's identity (and validator key when it is in the set); required
	// PeerKey, when set, is the node's libp2p identity instead of Key, so
	// that a validator's signing key need not be its network identity.
	PeerKey ed25519.PrivateKey
	DBPath  string // SQLite file; required

	HTTPAddr   string // API listen address; default 127.0.0.1:8080; "" after defaults means off
	WriteToken string // bearer token required for writes; empty: open

	P2PListen []string // libp2p listen multiaddrs; default /ip4/127.0.0.1/tcp/0
	Bootstrap []string // peers' multiaddrs with /p2p/<id>
	MDNS      bool     // LAN discovery

	AttestWorkers int           // concurrent repository fetches; default 4
	FetchTimeout  time.Duration // per fetch; default 2 min
	CacheDir      string        // vcs cache; default: under the node's data directory

	MaxBlockRecords int // records per block; default 10,000

	// The mempool's admission limits (see mempool.Config); zero fields
	// take its defaults: 100,000 pending records, 64 MiB, 600 adds a
	// minute per submitter address in bursts of up to 60, pending for at
	// most 1 h.
	PoolMaxRecords int
	PoolMaxBytes   int64
	SubmitRate     int // adds per minute per submitter address; -1: no limit
	SubmitBurst    int
	PendingExpiry  time.Duration

	// ProofCacheBytes bounds the memory of the in-memory copy of the log's
	// stored hashes that inclusion and consistency proofs read (see
	// sqlitestore.WithHashCache): 64 bytes per record of the log to hold
	// every level. 0: the default, sqlitestore.DefaultHashCacheBytes
	// (64 MiB, every level up to about 1M records); negative: none.
	ProofCacheBytes int64

	// TimeoutPropose is how long a poa validator waits for the proposal of
	// a round before it prevotes nil (round r waits TimeoutPropose plus r
	// times the engine's delta); default consensus.DefaultTimeoutPropose,
	// 3 s. A crashed proposer costs the network about this much per
	// height it would have proposed.
	TimeoutPropose time.Duration

	// Pow chains only.
	Mine          bool          // mine blocks (and attest records, which a miner includes only when it hashed them itself)
	MineWorkers   int           // mining goroutines; default all cores but one
	NoReverify    bool          // accept others' records on their attestations without fetching and hashing them again
	MaxClockDrift time.Duration // how far ahead of this node's clock a block's time may be; default 2 min

	Logger *slog.Logger // default: discard
	Now    func() time.Time
}

// Defaults used when a Config field is zero.
const (
	DefaultHTTPAddr        = "127.0.0.1:8080"
	DefaultAttestWorkers   = 4
	DefaultFetchTimeout    = 2 * time.Minute
	DefaultMaxBlockRecords = 10_000
)

// Validate fills defaults and reports what is missing or wrong.
func (c *Config) Validate() error {
	if c.Genesis == nil {
		return errors.New("node: config has no genesis")
	}
	if err := c.Genesis.Validate(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return errors.New("node: config has no valid node key")
	}
	if c.PeerKey == nil {
		c.PeerKey = c.Key
	}
	if len(c.PeerKey) != ed25519.PrivateKeySize {
		return errors.New("node: config has an invalid peer key")
	}
	if c.DBPath == "" {
		return errors.New("node: config has no database path")
	}
	if c.AttestWorkers == 0 {
		c.AttestWorkers = DefaultAttestWorkers
	}
	if c.AttestWorkers < 0 || c.AttestWorkers > 256 {
		return fmt.Errorf("node: attest workers %d: want 1 to 256", c.AttestWorkers)
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.MaxBlockRecords == 0 {
		c.MaxBlockRecords = DefaultMaxBlockRecords
	}
	if c.MaxBlockRecords < 0 || c.MaxBlockRecords > ledger.MaxBlockRecords {
		return fmt.Errorf("node: max block records %d: want 1 to %d", c.MaxBlockRecords, ledger.MaxBlockRecords)
	}
	if c.ProofCacheBytes == 0 {
		c.ProofCacheBytes = sqlitestore.DefaultHashCacheBytes
	}
	if c.MineWorkers < 0 || c.MineWorkers > 1024 {
		return fmt.Errorf("node: mine workers %d: want 0 (default) to 1024", c.MineWorkers)
	}
	if c.MaxClockDrift == 0 {
		c.MaxClockDrift = consensus.DefaultMaxDrift
	}
	if c.MaxClockDrift < 0 {
		return fmt.Errorf("node: negative max clock drift")
	}
	if len(c.P2PListen) == 0 {
		c.P2PListen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
