package consensus

import (
	"errors"
	"fmt"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// App is what an engine asks of the node. The engine calls it synchronously,
// from whichever goroutine drives the engine, never concurrently with
// itself; the node must not call back into the engine from it.
type App interface {
	// Propose returns the block to propose at height after parent at time
	// now (the node fills records from its mempool, the log size and root,
	// proposer = this validator, time >= parent's), or nil when there is
	// nothing to propose: the chain makes no empty blocks. The block has no
	// certificate. An error is treated like nil (the engine tries again
	// later).
	Propose(parent *ledger.Header, height uint64, now time.Time) (*ledger.Block, error)
	// Check validates a proposed block as the next after parent without
	// appending it: ledger.ValidateNext's checks, the attestations, and its
	// time not too far in the future of now. The engine has already checked
	// the chain, height, prev hash, engine, that the header's proposer is a
	// validator, that there is no certificate and that the block is at least
	// BlockInterval after parent.
	Check(parent *ledger.Header, b *ledger.Block, now time.Time) error
	// Ready reports whether there is work: records ready to be proposed.
	// While there is none and no message for the height has arrived, the
	// engine starts no round. It is called often and should be cheap.
	Ready() bool
}

// Config configures a PoA engine. Zero durations take the defaults.
type Config struct {
	Chain string
	// Validators is the validator set of a chain whose set never
	// changes; Sets, when set, replaces it.
	Validators *ledger.ValidatorSet
	// Sets gives the validator set in force at each height (a
	// *ledger.Authorities the node keeps following its chain). The engine
	// asks for the height it decides (head+1) and the next, so Sets must
	// know the chain through at least head-1 (ledger.AuthorityDelay is 2).
	Sets ValidatorSets
	// Signer is this validator's key; nil for a non-validator that follows
	// and verifies but never signs. A Signer whose key is not in the set
	// does not sign either.
	Signer *ledger.Signer
	// BlockInterval: a proposer proposes height h only when now >=
	// parent.Time + BlockInterval, and validators refuse blocks earlier
	// than that. Zero: no minimum.
	BlockInterval time.Duration
	// Round timeouts are base + round*TimeoutDelta (Tendermint's
	// timeoutPropose(r) etc.).
	TimeoutPropose   time.Duration // default 3s
	TimeoutPrevote   time.Duration // default 1s
	TimeoutPrecommit time.Duration // default 1s
	TimeoutDelta     time.Duration // default 500ms
	// Rebroadcast: how often the engine sends its own latest proposal and
	// votes for the current round again (gossip may lose messages), relays
	// the votes that justify its round to validators that seem behind, and
	// polls App.Ready while idle. Default 2s.
	Rebroadcast time.Duration
	App         App
}

// ValidatorSets gives the validator set in force at a height, or an error
// when it is not known yet. *ledger.Authorities implements it.
type ValidatorSets interface {
	At(height uint64) (*ledger.ValidatorSet, error)
}

// Defaults of Config.
const (
	DefaultTimeoutPropose   = 3 * time.Second
	DefaultTimeoutPrevote   = 1 * time.Second
	DefaultTimeoutPrecommit = 1 * time.Second
	DefaultTimeoutDelta     = 500 * time.Millisecond
	DefaultRebroadcast      = 2 * time.Second
)

// Validate fills in defaults and reports whether c is usable. NewPoA calls
// it.
func (c *Config) Validate() error {
	if err := ledger.CheckChainID(c.Chain); err != nil {
		return fmt.Errorf("consensus: config: %w", err)
	}
	if c.Validators == nil && c.Sets == nil {
		return errors.New("consensus: config: no validator set")
	}
	if c.App == nil {
		return errors.New("consensus: config: no App")
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"TimeoutPropose", &c.TimeoutPropose, DefaultTimeoutPropose},
		{"TimeoutPrevote", &c.TimeoutPrevote, DefaultTimeoutPrevote},
		{"TimeoutPrecommit", &c.TimeoutPrecommit, DefaultTimeoutPrecommit},
		{"TimeoutDelta", &c.TimeoutDelta, DefaultTimeoutDelta},
		{"Rebroadcast", &c.Rebroadcast, DefaultRebroadcast},
	} {
		if *d.v < 0 || *d.v > time.Hour {
			return fmt.Errorf("consensus: config: %s %s: want 0 (default) to 1h", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.BlockInterval < 0 || c.BlockInterval > 24*time.Hour {
		return fmt.Errorf("consensus: config: BlockInterval %s: want 0 to 24h", c.BlockInterval)
	}
	return nil
}

// Actions is what the engine asks the node to do after an event, in this
// order: store Persist durably, then broadcast Send, keep Evidence, append
// Commit durably, sync if Behind, and call Tick at Wake.
type Actions struct {
	// Persist, if set, must be stored durably before any message of Send
	// leaves the node; if it cannot be stored, drop Send. Pass the last one
	// stored to NewPoA after a restart.
	Persist *SignState
	// Send are messages to broadcast to the other engines. The engine has
	// already counted its own.
	Send []Message
	// Commit is a block the network committed, with its Certificate set:
	// the node appends it durably (validating it with ValidateNext and
	// PoASeal) before it tells clients, and before it delivers the next
	// event to the engine. The engine signs nothing for the next height
	// until that next event.
	Commit *ledger.Block
	// Evidence are conflicting signed messages seen, to keep and serve.
	Evidence []Evidence
	// Behind, when not zero, says that messages show the network has
	// committed blocks up to at least this height, which this node lacks:
	// sync them from peers and call Advance.
	Behind uint64
	// Wake is when the engine wants Tick called (at or after it). It is
	// never zero: an idle engine polls App.Ready every Rebroadcast.
	Wake time.Time
}

// Status is a snapshot of the engine for /v1/status.
type Status struct {
	Height      uint64           `json:"height"` // the height being decided
	Round       uint32           `json:"round"`
	Step        Step             `json:"step"`
	Proposer    ledger.PublicKey `json:"proposer"` // of the current round
	LockedRound int32            `json:"locked_round"`
	LockedBlock ledger.Hash      `json:"locked_block,omitzero"`
	ValidRound  int32            `json:"valid_round"`
	ValidBlock  ledger.Hash      `json:"valid_block,omitzero"`
	Validator   bool             `json:"validator"` // this node signs at this height
}
