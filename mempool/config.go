package mempool

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// Defaults used when a Config field is zero.
const (
	DefaultMaxEntries      = 100_000
	DefaultMaxBytes        = 64 << 20
	DefaultRate            = 600 // adds per minute per submitter
	DefaultBurst           = 60
	DefaultExpiry          = time.Hour
	DefaultMaxAttestations = 32
)

// Config configures a Pool. Zero fields take the defaults above.
type Config struct {
	// Chain is the chain id; attestations for another chain are refused.
	// Required.
	Chain string

	// Self is this node's validator key, whose attestations are the ones its
	// Attester makes; zero when the node does not attest. Ready(0, ...)
	// ("the proposer's word is enough") returns records Self has attested.
	Self ledger.PublicKey

	// Validators reports whether a key may attest (the chain's validator
	// set). Nil: anyone may (pow chains have open membership).
	Validators func(ledger.PublicKey) bool

	// MaxEntries and MaxBytes bound the pool; an add beyond either is
	// refused with ErrFull. Bytes are counted as the entries' journal
	// encoding (key, claim, attestations), an estimate of their memory.
	// Attestations of entries already pending are admitted past MaxBytes:
	// there is at most one per validator (and MaxAttestations).
	MaxEntries int   // default 100,000
	MaxBytes   int64 // default 64 MiB

	// Rate and Burst are each submitter's token bucket: Rate adds per
	// minute, up to Burst at once. Rate -1 turns rate limiting off. Adds
	// with an empty submitter are never limited.
	Rate  int // default 600 per minute
	Burst int // default 60

	// Expiry is how long a record may stay pending without becoming ready;
	// Expire drops older ones. Default 1 h.
	Expiry time.Duration

	// MaxAttestations bounds the attestations kept per entry when
	// Validators is nil and anyone may attest. Default 32.
	MaxAttestations int

	// Now is the clock. Default time.Now.
	Now func() time.Time

	// Logger reports journal items dropped at load. Default: discard.
	Logger *slog.Logger
}

// Validate fills defaults and reports what is missing or out of range.
func (c *Config) Validate() error {
	if err := ledger.CheckChainID(c.Chain); err != nil {
		return fmt.Errorf("mempool: config: %w", err)
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.Expiry == 0 {
		c.Expiry = DefaultExpiry
	}
	if c.MaxAttestations == 0 {
		c.MaxAttestations = DefaultMaxAttestations
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.MaxEntries < 0:
		return fmt.Errorf("mempool: config: max entries %d", c.MaxEntries)
	case c.MaxBytes < 0:
		return fmt.Errorf("mempool: config: max bytes %d", c.MaxBytes)
	case c.Rate < -1:
		return fmt.Errorf("mempool: config: rate %d (want -1 for no limit, or positive)", c.Rate)
	case c.Burst < 0:
		return fmt.Errorf("mempool: config: burst %d", c.Burst)
	case c.Expiry < 0:
		return fmt.Errorf("mempool: config: expiry %v", c.Expiry)
	case c.MaxAttestations < 0:
		return fmt.Errorf("mempool: config: max attestations %d", c.MaxAttestations)
	}
	return nil
}
