package p2p

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/vcsledger/vcsledger/ledger"
)

// Defaults for the zero fields of a Config. doc.go explains each choice.
const (
	DefaultListen           = "/ip4/127.0.0.1/tcp/0"
	DefaultVersion          = "vcsledger"
	DefaultMaxMessageBytes  = 16 << 20 // consensus and blocks topics
	DefaultMaxPoolMsgBytes  = 1 << 20  // mempool and attest topics
	DefaultQueueSize        = 8192
	DefaultMaxInvalid       = 10
	DefaultBanDuration      = time.Hour
	DefaultHelloTimeout     = 10 * time.Second
	DefaultReconnectMin     = time.Second
	DefaultReconnectMax     = time.Minute
	DefaultConnLow          = 32
	DefaultConnHigh         = 96
	DefaultMaxConns         = 256
	DefaultMaxMemory        = 1 << 30
	DefaultMaxFDs           = 1024
	DefaultSyncMaxBlocks    = 256
	DefaultSyncMaxBytes     = 32 << 20
	DefaultSyncTimeout      = time.Minute
	DefaultInvalidWindow    = 10 * time.Minute
	maxVersionLen           = 64
	minMessageBytes         = 1 << 10
	maxMessageBytesCeiling  = ledger.MaxBlockBytes
	maxQueueSize            = 1 << 20
	maxSyncBlocksPerRequest = 4096
)

// A Config configures a Host. Fields left zero take the defaults above;
// New calls Validate. Only cmd/ reads flags and files: the node fills this.
type Config struct {
	// Chain is the chain id; it scopes the topics and protocol ids.
	Chain string
	// Genesis is the chain's genesis hash. A peer whose hello reports
	// another genesis (or another chain) is disconnected and banned.
	Genesis ledger.Hash
	// Key is the node's ed25519 key; its public key is the peer id.
	Key ed25519.PrivateKey

	// Listen are the multiaddrs to listen on (TCP, or QUIC as
	// /udp/<port>/quic-v1). Default: DefaultListen.
	Listen []string
	// Bootstrap are peers' multiaddrs ending in /p2p/<peer id>. The host
	// dials them at start and redials them whenever the link drops, with
	// exponential backoff from ReconnectMin to ReconnectMax.
	Bootstrap []string
	// MDNS enables LAN discovery by multicast DNS. Off by default; see
	// doc.go for its state in this build.
	MDNS bool

	// Source serves the sync protocol and the head in hellos. Nil: the
	// host serves no blocks and reports height 0.
	Source BlockSource
	// Handler validates and receives gossip. Nil: every message is
	// accepted and dropped.
	Handler Handler
	// DeliverOwn also hands the host's own publishes to Handler.Deliver.
	DeliverOwn bool
	// Logger receives the host's logs. Nil: slog.Default().
	Logger *slog.Logger
	// Version is sent in hellos and as the libp2p user agent: 1 to 64
	// printable ASCII characters without spaces.
	Version string

	// MaxMessageBytes caps messages on the consensus and blocks topics
	// (and every pubsub RPC); MaxPoolMessageBytes caps the mempool and
	// attest topics. Larger messages are rejected as invalid.
	MaxMessageBytes     int
	MaxPoolMessageBytes int
	// QueueSize is the pubsub per-peer outbound queue, the validation
	// queue and throttle, and each subscription's buffer, in messages.
	QueueSize int

	// MaxInvalid invalid messages or responses from one peer within
	// InvalidWindow get it disconnected and banned for BanDuration.
	MaxInvalid    int
	InvalidWindow time.Duration
	BanDuration   time.Duration
	// HelloTimeout bounds the handshake; a peer that has not completed it
	// by then is disconnected.
	HelloTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the redial backoff.
	ReconnectMin, ReconnectMax time.Duration

	// ConnLow and ConnHigh are the connection manager's water marks:
	// above ConnHigh connections it trims to ConnLow (bootstrap peers
	// are protected).
	ConnLow, ConnHigh int
	// MaxConns, MaxMemory and MaxFDs are the resource manager's system
	// limits; see doc.go for the rest of the limits.
	MaxConns  int
	MaxMemory int64
	MaxFDs    int

	// SyncMaxBlocks and SyncMaxBytes cap one sync response (the first
	// block is sent even when it alone exceeds SyncMaxBytes, as a block
	// may be up to ledger.MaxBlockBytes). SyncTimeout bounds one request.
	SyncMaxBlocks int
	SyncMaxBytes  int
	SyncTimeout   time.Duration
}

func (c *Config) setDefaults() {
	if len(c.Listen) == 0 {
		c.Listen = []string{DefaultListen}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	setInt(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	setInt(&c.MaxPoolMessageBytes, DefaultMaxPoolMsgBytes)
	setInt(&c.QueueSize, DefaultQueueSize)
	setInt(&c.MaxInvalid, DefaultMaxInvalid)
	setDur(&c.InvalidWindow, DefaultInvalidWindow)
	setDur(&c.BanDuration, DefaultBanDuration)
	setDur(&c.HelloTimeout, DefaultHelloTimeout)
	setDur(&c.ReconnectMin, DefaultReconnectMin)
	setDur(&c.ReconnectMax, DefaultReconnectMax)
	setInt(&c.ConnLow, DefaultConnLow)
	setInt(&c.ConnHigh, DefaultConnHigh)
	setInt(&c.MaxConns, DefaultMaxConns)
	if c.MaxMemory == 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	setInt(&c.MaxFDs, DefaultMaxFDs)
	setInt(&c.SyncMaxBlocks, DefaultSyncMaxBlocks)
	setInt(&c.SyncMaxBytes, DefaultSyncMaxBytes)
	setDur(&c.SyncTimeout, DefaultSyncTimeout)
}

func setInt(p *int, d int) {
	if *p == 0 {
		*p = d
	}
}

func setDur(p *time.Duration, d time.Duration) {
	if *p == 0 {
		*p = d
	}
}

// Validate reports whether c, with defaults applied, is usable.
func (c *Config) Validate() error {
	d := *c
	d.setDefaults()
	return d.validate()
}

func (c *Config) validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("p2p: config: "+format, args...)
	}
	if err := ledger.CheckChainID(c.Chain); err != nil {
		return fail("%v", err)
	}
	if c.Genesis.IsZero() {
		return fail("genesis hash missing")
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return fail("key is %d bytes, want an ed25519 private key of %d", len(c.Key), ed25519.PrivateKeySize)
	}
	for _, s := range c.Listen {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fail("listen address %q: %v", s, err)
		}
	}
	if _, err := parseBootstrap(c.Bootstrap); err != nil {
		return fail("%v", err)
	}
	if c.MDNS && !mdnsAvailable {
		return fail("%w", ErrNoMDNS)
	}
	if err := checkVersion(c.Version); err != nil {
		return fail("%v", err)
	}
	switch {
	case c.MaxMessageBytes < minMessageBytes || c.MaxMessageBytes > maxMessageBytesCeiling:
		return fail("max message bytes %d: want %d to %d", c.MaxMessageBytes, minMessageBytes, maxMessageBytesCeiling)
	case c.MaxPoolMessageBytes < minMessageBytes || c.MaxPoolMessageBytes > c.MaxMessageBytes:
		return fail("max pool message bytes %d: want %d to max message bytes %d", c.MaxPoolMessageBytes, minMessageBytes, c.MaxMessageBytes)
	case c.QueueSize < 32 || c.QueueSize > maxQueueSize:
		return fail("queue size %d: want 32 to %d", c.QueueSize, maxQueueSize)
	case c.MaxInvalid < 1:
		return fail("max invalid %d: want at least 1", c.MaxInvalid)
	case c.InvalidWindow < 0 || c.BanDuration < 0 || c.HelloTimeout < 0 || c.SyncTimeout < 0:
		return fail("negative duration")
	case c.ReconnectMin < 0 || c.ReconnectMax < c.ReconnectMin:
		return fail("reconnect backoff %v to %v", c.ReconnectMin, c.ReconnectMax)
	case c.ConnLow < 1 || c.ConnHigh < c.ConnLow:
		return fail("connection water marks %d/%d", c.ConnLow, c.ConnHigh)
	case c.MaxConns < c.ConnHigh:
		return fail("max conns %d below the high water mark %d", c.MaxConns, c.ConnHigh)
	case c.MaxMemory < 64<<20:
		return fail("max memory %d: want at least 64 MiB", c.MaxMemory)
	case c.MaxFDs < 64:
		return fail("max fds %d: want at least 64", c.MaxFDs)
	case c.SyncMaxBlocks < 1 || c.SyncMaxBlocks > maxSyncBlocksPerRequest:
		return fail("sync max blocks %d: want 1 to %d", c.SyncMaxBlocks, maxSyncBlocksPerRequest)
	case c.SyncMaxBytes < 1<<20 || c.SyncMaxBytes > 1<<30:
		return fail("sync max bytes %d: want 1 MiB to 1 GiB", c.SyncMaxBytes)
	}
	return nil
}

func checkVersion(v string) error {
	if v == "" || len(v) > maxVersionLen {
		return fmt.Errorf("version %q: want 1 to %d characters", v, maxVersionLen)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return fmt.Errorf("version %q: character %q not allowed", v, v[i])
		}
	}
	return nil
}

// parseBootstrap parses multiaddrs ending in /p2p/<id>, merging the
// addresses of one peer.
func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %v", s, err)
		}
		if _, err := peer.AddrInfoFromP2pAddr(m); err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %v (want .../p2p/<peer id>)", s, err)
		}
		mas = append(mas, m)
	}
	return peer.AddrInfosFromP2pAddrs(mas...)
}

// Errors of this package, for errors.Is.
var (
	// ErrIgnore, wrapped by an error from Handler.Validate, drops a
	// message without counting it against the peer that sent it.
	ErrIgnore = errors.New("p2p: message ignored")
	// ErrRefused: the peer is of another chain or genesis.
	ErrRefused = errors.New("p2p: peer of another chain refused")
	// ErrProtocol: a peer broke the hello or sync protocol (malformed or
	// over-limit data).
	ErrProtocol = errors.New("p2p: protocol violation")
	// ErrUnknownTopic: the topic is none of Topics.
	ErrUnknownTopic = errors.New("p2p: unknown topic")
	// ErrTooLarge: a message is over its topic's size cap.
	ErrTooLarge = errors.New("p2p: message too large")
	// ErrClosed: the host is closed.
	ErrClosed = errors.New("p2p: host closed")
	// ErrNoMDNS: this build has no mDNS discovery.
	ErrNoMDNS = errors.New("p2p: mDNS discovery is not in this build")
)

// A RemoteError is an error a peer reported in a sync response.
type RemoteError struct {
	Peer peer.ID
	Msg  string
}

func (e *RemoteError) Error() string { return fmt.Sprintf("p2p: peer %s: %s", e.Peer, e.Msg) }
