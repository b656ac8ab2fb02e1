package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vcsledger/vcsledger/api"
)

// TestMempoolSettings: mempool_max_records, mempool_max_mb, submit_rate,
// submit_burst and pending_expiry in config.json, overridden by their
// LEDGERD_* variables, reach the node; a bad value stops 'ledgerd run'
// before it opens anything, naming the setting.
func TestMempoolSettings(t *testing.T) {
	home, cpath, base := testnetHome(t)
	vars := []string{"MEMPOOL_MAX_RECORDS", "MEMPOOL_MAX_MB", "SUBMIT_RATE", "SUBMIT_BURST", "PENDING_EXPIRY"}
	for _, v := range vars {
		t.Setenv("LEDGERD_"+v, "") // restored after the test
		os.Unsetenv("LEDGERD_" + v)
	}
	// Unset: zero, the mempool's defaults.
	cfg, err := homeConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PoolMaxRecords != 0 || cfg.PoolMaxBytes != 0 || cfg.SubmitRate != 0 || cfg.SubmitBurst != 0 || cfg.PendingExpiry != 0 {
		t.Errorf("unset: %d %d %d %d %v, want all zero", cfg.PoolMaxRecords, cfg.PoolMaxBytes, cfg.SubmitRate, cfg.SubmitBurst, cfg.PendingExpiry)
	}
	// From the file, then the environment over it.
	fc := *base
	fc.MempoolMaxRecords, fc.MempoolMaxMB, fc.SubmitRate, fc.SubmitBurst, fc.PendingExpiry = 500, 8, -1, 5, "24h"
	rewriteConfig(t, cpath, &fc)
	if cfg, err = homeConfig(home); err != nil {
		t.Fatal(err)
	}
	if cfg.PoolMaxRecords != 500 || cfg.PoolMaxBytes != 8<<20 || cfg.SubmitRate != -1 || cfg.SubmitBurst != 5 || cfg.PendingExpiry != 24*time.Hour {
		t.Errorf("from config.json: %d %d %d %d %v", cfg.PoolMaxRecords, cfg.PoolMaxBytes, cfg.SubmitRate, cfg.SubmitBurst, cfg.PendingExpiry)
	}
	for v, val := range map[string]string{"MEMPOOL_MAX_RECORDS": "7", "MEMPOOL_MAX_MB": "2", "SUBMIT_RATE": "30", "SUBMIT_BURST": "3", "PENDING_EXPIRY": "10m"} {
		os.Setenv("LEDGERD_"+v, val)
	}
	if cfg, err = homeConfig(home); err != nil {
		t.Fatal(err)
	}
	if cfg.PoolMaxRecords != 7 || cfg.PoolMaxBytes != 2<<20 || cfg.SubmitRate != 30 || cfg.SubmitBurst != 3 || cfg.PendingExpiry != 10*time.Minute {
		t.Errorf("from LEDGERD_*: %d %d %d %d %v", cfg.PoolMaxRecords, cfg.PoolMaxBytes, cfg.SubmitRate, cfg.SubmitBurst, cfg.PendingExpiry)
	}
	for _, v := range vars {
		os.Unsetenv("LEDGERD_" + v)
	}

	// Bad values, in the file and in the environment.
	for _, tc := range []struct {
		setting string
		set     func(*fileConfig)
	}{
		{"mempool_max_records", func(c *fileConfig) { c.MempoolMaxRecords = -1 }},
		{"mempool_max_mb", func(c *fileConfig) { c.MempoolMaxMB = -5 }},
		{"submit_rate", func(c *fileConfig) { c.SubmitRate = -2 }},
		{"submit_burst", func(c *fileConfig) { c.SubmitBurst = -1 }},
		{"pending_expiry", func(c *fileConfig) { c.PendingExpiry = "5s" }},
		{"pending_expiry", func(c *fileConfig) { c.PendingExpiry = "later" }},
	} {
		fc := *base
		tc.set(&fc)
		rewriteConfig(t, cpath, &fc)
		runRefused(t, home, tc.setting, fmt.Sprintf("a bad %s", tc.setting))
	}
	rewriteConfig(t, cpath, base)
	os.Setenv("LEDGERD_SUBMIT_RATE", "many")
	runRefused(t, home, "LEDGERD_SUBMIT_RATE", "LEDGERD_SUBMIT_RATE=many")
	os.Unsetenv("LEDGERD_SUBMIT_RATE")
	noStoreCreated(t, home)
}

// TestSubmitLimitsProcess: a node whose config.json sets submit_rate and
// submit_burst answers a client address over its burst 429 with a
// Retry-After, and still takes another address's submissions; one with
// mempool_max_records answers 503 once that many records are pending.
func TestSubmitLimitsProcess(t *testing.T) {
	repo := killRepo(t, 8)
	submit := func(c *api.Client, tag string) error {
		_, err := c.Submit(context.Background(), api.SubmitRequest{Repo: repo, Tag: tag}, 0)
		return err
	}
	start := func(fc fileConfig) *ledgerdProc {
		home := filepath.Join(t.TempDir(), "node")
		if err := os.MkdirAll(home, 0o700); err != nil {
			t.Fatal(err)
		}
		rewriteConfig(t, filepath.Join(home, configFile), &fc)
		return startLedgerd(t, "dev", "--home", home, "--http", freeAddr(t), "--log-level", "warn")
	}

	p := start(fileConfig{SubmitRate: 1, SubmitBurst: 2})
	one, other := loopbackClient(t, p.url, 2), loopbackClient(t, p.url, 3)
	for i := range 2 {
		if err := submit(one, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatalf("submission %d within the burst: %v", i, err)
		}
	}
	err := submit(one, "t2")
	var ae *api.Error
	if !errors.Is(err, api.ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter <= 0 {
		t.Errorf("submission over the burst: %v; want 429 with a Retry-After", err)
	}
	// Other loopback addresses are other submitters where the system
	// routes them (Linux does; loopbackClient falls back to 127.0.0.1).
	if err := submit(other, "t3"); err != nil && runtime.GOOS == "linux" {
		t.Errorf("another address's submission: %v", err)
	}
	p.stop()

	p = start(fileConfig{SubmitRate: -1, MempoolMaxRecords: 2})
	c := loopbackClient(t, p.url, 2)
	for i := range 2 {
		if err := submit(c, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatalf("submission %d: %v", i, err)
		}
	}
	if err := submit(c, "t2"); !errors.Is(err, api.ErrFull) {
		t.Errorf("submission with 2 pending of mempool_max_records 2: %v; want 503 mempool full", err)
	}
}
