package api

import (
	"fmt"
	"time"

	"github.com/vcsledger/vcsledger/ledger"
)

// Record statuses.
const (
	StatusPending   = "pending"   // in the mempool, not in a block yet
	StatusCommitted = "committed" // in a committed block (final at once on poa chains)
	StatusFinal     = "final"     // pow: buried under the genesis's confirmations
)

// Limits of the API.
const (
	MaxBodyBytes     = 1 << 20 // request bodies over this are refused (413)
	DefaultPageLimit = 100     // records, blocks, mempool and evidence per page by default
	MaxPageLimit     = 1000    // and at most
)

// A Record is a committed record as the API shows it.
type Record struct {
	Key    string `json:"key"`  // canonical "<repo>@<tag>"
	Repo   string `json:"repo"` // canonical repository
	Tag    string `json:"tag"`
	Commit string `json:"commit"`       // lowercase hex commit id
	Tree   string `json:"tree"`         // t1 hash
	H1     string `json:"h1,omitempty"` // Go h1 hash, for Go modules
	Index  int64  `json:"index"`        // place in the log, from 0
	Height uint64 `json:"height"`       // block that committed it
	Status string `json:"status"`       // StatusCommitted or StatusFinal
	// Confirmations (pow chains): how many blocks bury the record's block,
	// its own included, on the answering node's chain.
	Confirmations uint64 `json:"confirmations,omitempty"`
}

// NewRecord returns the API form of a committed entry.
func NewRecord(e *ledger.Entry, status string) Record {
	r := &e.Record
	return Record{
		Key: r.Key.String(), Repo: r.Key.Repo, Tag: r.Key.Tag,
		Commit: r.Commit, Tree: r.Tree, H1: r.H1,
		Index: e.Index, Height: e.Height, Status: status,
	}
}

// Entry rebuilds the ledger entry that r shows. It checks that the key is
// canonical and agrees with Repo and Tag, and that every field is well
// formed; it does not check that the entry is in any log (VerifyRecord
// does).
func (r *Record) Entry() (*ledger.Entry, error) {
	k, err := ledger.ParseKey(r.Key)
	if err != nil {
		return nil, err
	}
	if k.String() != r.Key {
		return nil, fmt.Errorf("api: key %q is not canonical (%q)", r.Key, k.String())
	}
	if k.Repo != r.Repo || k.Tag != r.Tag {
		return nil, fmt.Errorf("api: key %q disagrees with repo %q and tag %q", r.Key, r.Repo, r.Tag)
	}
	rec := ledger.Record{Key: k, Commit: r.Commit, Tree: r.Tree, H1: r.H1}
	if err := rec.Check(); err != nil {
		return nil, err
	}
	if r.Index < 0 {
		return nil, fmt.Errorf("api: record %s: negative index %d", r.Key, r.Index)
	}
	switch r.Status {
	case StatusCommitted, StatusFinal:
	default:
		return nil, fmt.Errorf("api: record %s: status %q, want %q or %q", r.Key, r.Status, StatusCommitted, StatusFinal)
	}
	return &ledger.Entry{Record: rec, Index: r.Index, Height: r.Height}, nil
}

// A RecordResponse answers GET /v1/records/{key} for a committed key: the
// record, its inclusion proof in the log of the checkpoint's log size, and
// that checkpoint. VerifyRecord checks all three.
type RecordResponse struct {
	Record
	Proof      []ledger.Hash `json:"proof"`
	Checkpoint Checkpoint    `json:"checkpoint"`
}

// A Checkpoint is a committed block header, a signed statement of the log's
// size and root after that block.
type Checkpoint struct {
	Height      uint64      `json:"height"`
	Hash        ledger.Hash `json:"hash"`
	LogSize     uint64      `json:"log_size"`
	LogRoot     ledger.Hash `json:"log_root"`
	Time        int64       `json:"time"`                  // unix milliseconds, from the header
	Header      string      `json:"header"`                // canonical header text
	Certificate string      `json:"certificate,omitempty"` // canonical certificate text; none at genesis and on pow chains
	Note        string      `json:"note,omitempty"`        // in GET /v1/checkpoint: this checkpoint as a signed note, when a quorum of validators co-signed it
}

// NewCheckpoint returns the checkpoint of h sealed by cert (nil for none).
func NewCheckpoint(h *ledger.Header, cert *ledger.Certificate) Checkpoint {
	cp := Checkpoint{
		Height: h.Height, Hash: h.Hash(), LogSize: h.LogSize, LogRoot: h.LogRoot,
		Time: h.Time, Header: string(h.Format()),
	}
	if cert != nil {
		cp.Certificate = string(cert.Format())
	}
	return cp
}

// A Block answers GET /v1/blocks/{height}.
type Block struct {
	Height       uint64      `json:"height"`
	Hash         ledger.Hash `json:"hash"`
	Header       string      `json:"header"`                // canonical header text
	Certificate  string      `json:"certificate,omitempty"` // canonical certificate text
	Records      []Record    `json:"records"`
	Authority    []string    `json:"authority,omitempty"` // canonical authority change texts, after the records in the log
	Attestations []string    `json:"attestations"`        // canonical attestation texts, in record order
}

// A HeaderInfo is one header in GET /v1/blocks.
type HeaderInfo struct {
	Height  uint64      `json:"height"`
	Hash    ledger.Hash `json:"hash"`
	Time    int64       `json:"time"` // unix milliseconds
	Records uint64      `json:"records"`
	LogSize uint64      `json:"log_size"`
	LogRoot ledger.Hash `json:"log_root"`
	Header  string      `json:"header"` // canonical header text
}

// NewHeaderInfo returns the API form of h.
func NewHeaderInfo(h *ledger.Header) HeaderInfo {
	return HeaderInfo{
		Height: h.Height, Hash: h.Hash(), Time: h.Time, Records: h.Records,
		LogSize: h.LogSize, LogRoot: h.LogRoot, Header: string(h.Format()),
	}
}

// A BlocksPage answers GET /v1/blocks.
type BlocksPage struct {
	Blocks []HeaderInfo `json:"blocks"`
	Height uint64       `json:"height"` // the head's height when the page was read
}

// A RecordsPage answers GET /v1/records.
type RecordsPage struct {
	Records []Record `json:"records"`
	LogSize uint64   `json:"log_size"` // the head's log size when the page was read
}

// A SubmitRequest is the body of POST /v1/records: Key, or Repo and Tag,
// and optionally what the client computed (Commit and/or Tree), a claim the
// ledger never trusts but checks against what validators computed.
type SubmitRequest struct {
	Key    string `json:"key,omitempty"`
	Repo   string `json:"repo,omitempty"`
	Tag    string `json:"tag,omitempty"`
	Commit string `json:"commit,omitempty"`
	Tree   string `json:"tree,omitempty"`
}

// A SubmitResponse answers POST /v1/records: Record when the key is
// committed (status 200), Pending otherwise (status 202). Mismatch is set
// when the client's claim disagrees with what the ledger committed or what
// validators attested.
type SubmitResponse struct {
	Status   string          `json:"status"` // StatusPending, StatusCommitted or StatusFinal
	Record   *RecordResponse `json:"record,omitempty"`
	Pending  *PendingInfo    `json:"pending,omitempty"`
	Mismatch *Mismatch       `json:"mismatch,omitempty"`
}

// A Claim is what a client says a key hashes to. Either field may be empty.
type Claim struct {
	Commit string `json:"commit,omitempty"`
	Tree   string `json:"tree,omitempty"`
}

// IsZero reports whether c claims nothing.
func (c Claim) IsZero() bool { return c == Claim{} }

// A Mismatch reports that a client's claim disagrees with the ledger: the
// committed record (Source "committed") or the record most validators
// attested (Source "attested"). The ledger records what validators
// computed, never the claim.
type Mismatch struct {
	Source string   `json:"source"` // "committed" or "attested"
	Fields []string `json:"fields"` // which claimed fields differ: "commit", "tree"
	Claim  Claim    `json:"claim"`
	Commit string   `json:"commit"` // the ledger's
	Tree   string   `json:"tree"`   // the ledger's
}

// An Attested record is what validators computed for a pending key.
type Attested struct {
	Commit string `json:"commit"`
	Tree   string `json:"tree"`
	H1     string `json:"h1,omitempty"`
	Count  int    `json:"count"` // validators that attested exactly this
}

// PendingInfo describes a pending record: GET /v1/records/{key} answers it
// with 202, and GET /v1/mempool lists them. The server fills Repo, Tag,
// Status and Needed from Key and the genesis.
type PendingInfo struct {
	Key          string     `json:"key"`
	Repo         string     `json:"repo"`
	Tag          string     `json:"tag"`
	Status       string     `json:"status"` // StatusPending
	Added        time.Time  `json:"added"`  // when the node's pool accepted it
	Attestations int        `json:"attestations"`
	Needed       int        `json:"attestations_needed"`
	Attested     *Attested  `json:"attested,omitempty"` // the record most validators attested
	Claim        *Claim     `json:"claim,omitempty"`    // what the submitter claimed
	LastError    string     `json:"last_error,omitempty"`
	LastErrorAt  *time.Time `json:"last_error_at,omitempty"`
	Attempts     int        `json:"fetch_attempts,omitempty"` // this node's failed fetches
}

// Status answers GET /v1/status. The server fills the chain and head
// fields (Chain to LogSize) from the genesis and the store; the Backend
// fills the rest.
type Status struct {
	Chain    string      `json:"chain"`
	Genesis  ledger.Hash `json:"genesis"`
	Engine   string      `json:"engine"`
	Height   uint64      `json:"height"`
	HeadHash ledger.Hash `json:"head_hash"`
	HeadTime int64       `json:"head_time"` // unix milliseconds
	LogSize  uint64      `json:"log_size"`

	NodeID          string    `json:"node_id,omitempty"`       // the node's peer id
	ValidatorKey    string    `json:"validator_key,omitempty"` // set when the node is a validator
	Version         string    `json:"version,omitempty"`
	Started         time.Time `json:"started,omitzero"`
	Round           uint32    `json:"round"`          // consensus round at Height+1
	Step            string    `json:"step,omitempty"` // consensus step
	Syncing         bool      `json:"syncing"`
	Peers           int       `json:"peers"`
	Mempool         int       `json:"mempool"`       // pending records
	MempoolBytes    int64     `json:"mempool_bytes"` // their size in the pool's journal
	FetchErrors     uint64    `json:"fetch_errors"`  // repository fetches that failed, since start
	InvalidMessages uint64    `json:"invalid_messages"`
	// AppendFailures counts committed blocks the store failed to append,
	// since start; Stalled says why, while the node takes no part in
	// consensus and resyncs from its peers.
	AppendFailures uint64 `json:"append_failures"`
	Stalled        string `json:"stalled,omitempty"`
	// Mining is set on pow chains.
	Mining *Mining `json:"mining,omitempty"`
}

// Mining is a pow node's mining state and block tree (Status.Mining).
type Mining struct {
	Miner       bool    `json:"miner"`        // the node mines (config mine)
	Active      bool    `json:"active"`       // a block is being mined now
	Workers     int     `json:"workers"`      // hashing goroutines (mine_workers)
	HashRate    float64 `json:"hash_rate"`    // hashes per second, over the last few seconds
	Hashes      uint64  `json:"hashes"`       // headers hashed since start
	BlocksMined uint64  `json:"blocks_mined"` // blocks this node mined that it accepted, since start
	Bits        uint32  `json:"bits"`         // difficulty of the next block: leading zero bits of its hash
	ChainWork   string  `json:"chain_work"`   // the main chain's work, sum of 2^bits (decimal)
	SideBlocks  int     `json:"side_blocks"`  // blocks kept off the main chain
}

// A Peer is a connected peer.
type Peer struct {
	ID           string   `json:"id"`
	Addrs        []string `json:"addrs"`
	ValidatorKey string   `json:"validator_key,omitempty"` // when the peer is a validator
	Name         string   `json:"name,omitempty"`          // the validator's name
	Direction    string   `json:"direction,omitempty"`     // "inbound" or "outbound"
	LatencyMS    float64  `json:"latency_ms,omitempty"`
}

// A Validator is a member of the validator set.
type Validator struct {
	Key    ledger.PublicKey `json:"key"`
	Name   string           `json:"name"`
	Self   bool             `json:"self"`   // this node
	Online bool             `json:"online"` // connected to this node (or Self)
	// VerifierKey is the validator's checkpoint-note verifier key
	// (docs/FORMAT.md, "Checkpoints"), as note.NewVerifier reads it.
	VerifierKey string `json:"verifier_key"`
}

// Evidence is a proof of misbehaviour: two conflicting signed statements
// by one validator.
type Evidence struct {
	Kind      string    `json:"kind"` // "vote" or "attestation"
	Validator string    `json:"validator,omitempty"`
	Height    uint64    `json:"height,omitempty"`
	Data      string    `json:"data"` // both canonical signed texts, one after the other
	Added     time.Time `json:"added"`
}

// GenesisInfo answers GET /v1/genesis.
type GenesisInfo struct {
	Chain  string      `json:"chain"`
	Engine string      `json:"engine"`
	Hash   ledger.Hash `json:"hash"`
	Text   string      `json:"genesis"` // canonical genesis text
}

// Parse parses the genesis text and checks that it hashes to Hash. Pin a
// chain by its hash, obtained out of band, not by what a node says.
func (gi *GenesisInfo) Parse() (*ledger.Genesis, error) {
	g, err := ledger.ParseGenesis([]byte(gi.Text))
	if err != nil {
		return nil, err
	}
	if g.Hash() != gi.Hash || g.Chain != gi.Chain || g.Engine != gi.Engine {
		return nil, fmt.Errorf("%w: genesis text hashes to %s (chain %q), response says %s (chain %q)",
			ErrVerification, g.Hash(), g.Chain, gi.Hash, gi.Chain)
	}
	return g, nil
}

// A ConsistencyProof answers GET /v1/proof/consistency: that the log of
// size To extends the log of size From.
type ConsistencyProof struct {
	From  uint64        `json:"from"`
	To    uint64        `json:"to"`
	Proof []ledger.Hash `json:"proof"`
}
