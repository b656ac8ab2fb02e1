package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vcsledger/vcsledger/ledger"
	"github.com/vcsledger/vcsledger/node"
)

// A home directory holds one replica:
//
//	DIR/config.json   settings (optional; flags and LEDGERD_* override it)
//	DIR/genesis.txt   the chain's genesis (canonical text)
//	DIR/node.key      the node's ed25519 key
//	DIR/ledger.db     the SQLite store (created on first run)
//	DIR/cache/        fetched repositories
const (
	configFile  = "config.json"
	genesisFile = "genesis.txt"
	keyFile     = "node.key"
	dbFile      = "ledger.db"
)

// fileConfig is config.json. Every field is optional.
type fileConfig struct {
	HTTP          string   `json:"http,omitempty"`
	P2PListen     []string `json:"p2p_listen,omitempty"`
	Bootstrap     []string `json:"bootstrap,omitempty"`
	MDNS          bool     `json:"mdns,omitempty"`
	WriteToken    string   `json:"write_token,omitempty"`
	AttestWorkers int      `json:"attest_workers,omitempty"`
	MaxBlock      int      `json:"max_block_records,omitempty"` // records a block this node proposes may hold
	// Mempool admission (0 or unset: the defaults).
	MempoolMaxRecords int    `json:"mempool_max_records,omitempty"` // pending records held at most (100,000)
	MempoolMaxMB      int64  `json:"mempool_max_mb,omitempty"`      // MiB of pending records at most (64)
	SubmitRate        int    `json:"submit_rate,omitempty"`         // submissions a minute per client address (600); -1: no limit
	SubmitBurst       int    `json:"submit_burst,omitempty"`        // submissions a client address may make at once (60)
	PendingExpiry     string `json:"pending_expiry,omitempty"`      // how long a record may stay pending (1h)
	// ProofCacheMB bounds, in MiB, the in-memory copy of the log's stored
	// hashes that proofs read (default 64; 0: none).
	ProofCacheMB *int64 `json:"proof_cache_mb,omitempty"`
	FetchTimeout string `json:"fetch_timeout,omitempty"`
	// TimeoutPropose is how long a poa validator waits for a round's
	// proposal (the first round; later rounds wait longer).
	TimeoutPropose string `json:"timeout_propose,omitempty"`
	LogFormat      string `json:"log_format,omitempty"` // text or json
	LogLevel       string `json:"log_level,omitempty"`  // debug, info, warn, error
	// Pow chains only.
	Mine        bool  `json:"mine,omitempty"`         // mine blocks
	MineWorkers int   `json:"mine_workers,omitempty"` // mining goroutines; default all cores but one
	Reverify    *bool `json:"reverify,omitempty"`     // fetch and hash others' records before accepting their blocks; default true
}

func readFileConfig(path string) (*fileConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &fileConfig{}, nil
	}
	if err != nil {
		return nil, err
	}
	var c fileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: trailing data after the JSON object", path)
	}
	return &c, nil
}

func writeFileConfig(path string, c *fileConfig) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileNew(path, append(b, '\n'), 0o644)
}

// runFlags are the flags shared by run and dev; they override config.json
// and the environment.
type runFlags struct {
	home       string
	http       string
	p2pListen  []string
	bootstrap  []string
	mdns       bool
	writeToken string
	logFormat  string
	logLevel   string
	mine       bool
	mineWork   int
}

func (f *runFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.home, "home", "", "home directory of the replica (config.json, genesis.txt, node.key, ledger.db)")
	fl.StringVar(&f.http, "http", "", "HTTP API listen address (default "+node.DefaultHTTPAddr+"; env LEDGERD_HTTP)")
	fl.StringSliceVar(&f.p2pListen, "p2p-listen", nil, "libp2p listen multiaddrs (env LEDGERD_P2P_LISTEN, comma-separated)")
	fl.StringSliceVar(&f.bootstrap, "bootstrap", nil, "bootstrap peer multiaddrs with /p2p/<id> (env LEDGERD_BOOTSTRAP)")
	fl.BoolVar(&f.mdns, "mdns", false, "discover peers on the LAN with mDNS (env LEDGERD_MDNS=1)")
	fl.StringVar(&f.writeToken, "write-token", "", "bearer token required for writes (env LEDGERD_WRITE_TOKEN)")
	fl.StringVar(&f.logFormat, "log-format", "", "log format: text or json (env LEDGERD_LOG_FORMAT)")
	fl.StringVar(&f.logLevel, "log-level", "", "log level: debug, info, warn, error (env LEDGERD_LOG_LEVEL)")
	fl.BoolVar(&f.mine, "mine", false, "pow chains: mine blocks (env LEDGERD_MINE=1)")
	fl.IntVar(&f.mineWork, "mine-workers", 0, "pow chains: mining goroutines (default all cores but one)")
}

// nodeConfig assembles the node configuration for a home: defaults, then
// config.json, then LEDGERD_* environment, then flags.
func (f *runFlags) nodeConfig(cmd *cobra.Command, stderr io.Writer) (*node.Config, error) {
	if f.home == "" {
		return nil, usageErrorf("--home is required")
	}
	fc, err := readFileConfig(filepath.Join(f.home, configFile))
	if err != nil {
		return nil, err
	}
	env := func(name string, dst *string) {
		if v, ok := os.LookupEnv("LEDGERD_" + name); ok {
			*dst = v
		}
	}
	envList := func(name string, dst *[]string) {
		if v, ok := os.LookupEnv("LEDGERD_" + name); ok {
			*dst = splitList(v)
		}
	}
	env("HTTP", &fc.HTTP)
	envList("P2P_LISTEN", &fc.P2PListen)
	envList("BOOTSTRAP", &fc.Bootstrap)
	env("WRITE_TOKEN", &fc.WriteToken)
	env("LOG_FORMAT", &fc.LogFormat)
	env("LOG_LEVEL", &fc.LogLevel)
	env("FETCH_TIMEOUT", &fc.FetchTimeout)
	env("TIMEOUT_PROPOSE", &fc.TimeoutPropose)
	env("PENDING_EXPIRY", &fc.PendingExpiry)
	envNum := func(name string, set func(int64)) error {
		if v, ok := os.LookupEnv("LEDGERD_" + name); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("LEDGERD_%s=%q: want a number", name, v)
			}
			set(n)
		}
		return nil
	}
	for _, err := range []error{
		envNum("PROOF_CACHE_MB", func(n int64) { fc.ProofCacheMB = &n }),
		envNum("MEMPOOL_MAX_RECORDS", func(n int64) { fc.MempoolMaxRecords = int(n) }),
		envNum("MEMPOOL_MAX_MB", func(n int64) { fc.MempoolMaxMB = n }),
		envNum("SUBMIT_RATE", func(n int64) { fc.SubmitRate = int(n) }),
		envNum("SUBMIT_BURST", func(n int64) { fc.SubmitBurst = int(n) }),
	} {
		if err != nil {
			return nil, err
		}
	}
	if v, ok := os.LookupEnv("LEDGERD_MDNS"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("LEDGERD_MDNS=%q: want true or false", v)
		}
		fc.MDNS = b
	}
	if v, ok := os.LookupEnv("LEDGERD_MINE"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("LEDGERD_MINE=%q: want true or false", v)
		}
		fc.Mine = b
	}
	fl := cmd.Flags()
	if fl.Changed("http") {
		fc.HTTP = f.http
	}
	if fl.Changed("p2p-listen") {
		fc.P2PListen = f.p2pListen
	}
	if fl.Changed("bootstrap") {
		fc.Bootstrap = f.bootstrap
	}
	if fl.Changed("mdns") {
		fc.MDNS = f.mdns
	}
	if fl.Changed("write-token") {
		fc.WriteToken = f.writeToken
	}
	if fl.Changed("log-format") {
		fc.LogFormat = f.logFormat
	}
	if fl.Changed("log-level") {
		fc.LogLevel = f.logLevel
	}
	if fl.Changed("mine") {
		fc.Mine = f.mine
	}
	if fl.Changed("mine-workers") {
		fc.MineWorkers = f.mineWork
	}

	logger, err := newLogger(stderr, fc.LogFormat, fc.LogLevel)
	if err != nil {
		return nil, err
	}
	g, err := readGenesis(filepath.Join(f.home, genesisFile))
	if err != nil {
		return nil, err
	}
	key, err := readKey(filepath.Join(f.home, keyFile))
	if err != nil {
		return nil, err
	}
	cfg := &node.Config{
		Genesis:       g,
		Key:           key,
		DBPath:        filepath.Join(f.home, dbFile),
		HTTPAddr:      fc.HTTP,
		WriteToken:    fc.WriteToken,
		P2PListen:     fc.P2PListen,
		Bootstrap:     fc.Bootstrap,
		MDNS:          fc.MDNS,
		AttestWorkers: fc.AttestWorkers,
		CacheDir:      filepath.Join(f.home, "cache"),
		Logger:        logger,
		Mine:          fc.Mine,
		MineWorkers:   fc.MineWorkers,
		NoReverify:    fc.Reverify != nil && !*fc.Reverify,
	}
	cfg.MaxBlockRecords = fc.MaxBlock
	if mb := fc.ProofCacheMB; mb != nil {
		if *mb < 0 || *mb > maxProofCacheMB {
			return nil, fmt.Errorf("proof_cache_mb %d: want 0 (none) to %d MiB", *mb, maxProofCacheMB)
		}
		cfg.ProofCacheBytes = *mb << 20
		if *mb == 0 {
			cfg.ProofCacheBytes = -1 // none
		}
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = node.DefaultHTTPAddr
	}
	if err := parseSetting("fetch_timeout", fc.FetchTimeout, time.Nanosecond, 0, "a positive duration such as 2m", &cfg.FetchTimeout); err != nil {
		return nil, err
	}
	if err := fc.poolLimits(cfg); err != nil {
		return nil, err
	}
	if err := parseSetting("timeout_propose", fc.TimeoutPropose, 100*time.Millisecond, time.Hour, "a duration from 100ms to 1h such as 3s", &cfg.TimeoutPropose); err != nil {
		return nil, err
	}
	return cfg, nil
}

// poolLimits checks the mempool settings and sets them in cfg.
func (fc *fileConfig) poolLimits(cfg *node.Config) error {
	switch {
	case fc.MempoolMaxRecords < 0 || fc.MempoolMaxRecords > 100_000_000:
		return fmt.Errorf("mempool_max_records %d: want 1 to 100000000, or 0 for the default", fc.MempoolMaxRecords)
	case fc.MempoolMaxMB < 0 || fc.MempoolMaxMB > 1<<20:
		return fmt.Errorf("mempool_max_mb %d: want 1 to %d MiB, or 0 for the default", fc.MempoolMaxMB, 1<<20)
	case fc.SubmitRate < -1:
		return fmt.Errorf("submit_rate %d: want submissions a minute per client address, -1 for no limit, or 0 for the default", fc.SubmitRate)
	case fc.SubmitBurst < 0 || fc.SubmitBurst > 1_000_000:
		return fmt.Errorf("submit_burst %d: want 1 to 1000000, or 0 for the default", fc.SubmitBurst)
	}
	cfg.PoolMaxRecords = fc.MempoolMaxRecords
	cfg.PoolMaxBytes = fc.MempoolMaxMB << 20
	cfg.SubmitRate = fc.SubmitRate
	cfg.SubmitBurst = fc.SubmitBurst
	return parseSetting("pending_expiry", fc.PendingExpiry, time.Minute, 0, "a duration of at least 1m such as 24h", &cfg.PendingExpiry)
}

// maxProofCacheMB bounds proof_cache_mb: 1 TiB.
const maxProofCacheMB = 1 << 20

// parseSetting parses the duration setting name when it is set, into dst;
// it must be at least lo and, when hi > 0, at most hi (want says so).
func parseSetting(name, value string, lo, hi time.Duration, want string, dst *time.Duration) error {
	if value == "" {
		return nil
	}
	d, err := time.ParseDuration(value)
	if err != nil || d < lo || (hi > 0 && d > hi) {
		return fmt.Errorf("%s %q: want %s", name, value, want)
	}
	*dst = d
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "", "info":
		lv = slog.LevelInfo
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

func readGenesis(path string) (*ledger.Genesis, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	g, err := ledger.ParseGenesis(b)
	if err != nil {
		return nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	return g, nil
}
