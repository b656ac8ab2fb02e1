package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/vcsledger/vcsledger/api"
	"github.com/vcsledger/vcsledger/ledger"
)

// authority returns the validator-set history node cn proves
// (GET /v1/authority, api.VerifyAuthority), fetched again when it does not
// reach height; nil (the genesis set) when the node's chain has none.
func (lc *ledgerClient) authority(ctx context.Context, cn conn, height uint64) (*ledger.Authorities, error) {
	if lc.auths == nil {
		lc.auths = make(map[string]*ledger.Authorities)
	}
	if a, ok := lc.auths[cn.url]; ok && (a == nil || a.Through()+ledger.AuthorityDelay >= height) {
		return a, nil
	}
	hist, err := cn.c.Authority(ctx)
	if errors.Is(err, api.ErrNotFound) {
		lc.auths[cn.url] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cn.url, err)
	}
	a, err := api.VerifyAuthority(lc.g, hist)
	if err != nil {
		return nil, securityErrorf("node %s serves validator-set changes that fail verification: %v", cn.url, err)
	}
	lc.auths[cn.url] = a
	return a, nil
}

// verifyCheckpoint verifies cp with the validator set in force at its
// height.
func (lc *ledgerClient) verifyCheckpoint(ctx context.Context, cn conn, cp *api.Checkpoint) (*ledger.Header, error) {
	a, err := lc.authority(ctx, cn, cp.Height)
	if err != nil {
		return nil, err
	}
	return api.VerifyCheckpointWith(lc.g, a, cp)
}

// verifyRecord verifies a record answer with the validator set in force at
// its checkpoint's height.
func (lc *ledgerClient) verifyRecord(ctx context.Context, cn conn, resp *api.RecordResponse) (*ledger.Entry, *ledger.Header, error) {
	a, err := lc.authority(ctx, cn, resp.Checkpoint.Height)
	if err != nil {
		return nil, nil, err
	}
	return api.VerifyRecordWith(lc.g, a, resp)
}
