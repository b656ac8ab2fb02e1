package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"

	"github.com/vcsledger/vcsledger/ledger"
)

var _ ledger.BlockScanner = (*Store)(nil)

// scanRecords is about how many records ScanBlocks reads per batch (one
// query for the blocks' rows, one for their records' rows): large enough
// that a query's cost is spread thin, small enough to keep a batch's
// memory to a few MB.
const scanRecords = 8192

// scanMaxBlocks bounds the blocks of a batch whose blocks hold few records.
const scanMaxBlocks = 1024

// A scanBatch is consecutive blocks read in one transaction, each with the
// stored log hashes it added, and the error that ended the batch early:
// it is about the block after the last one in blocks.
type scanBatch struct {
	blocks []*ledger.Block
	hashes [][]ledger.Hash
	err    error
}

// ScanBlocks calls fn with the blocks from height from to height to, in
// order, each with the stored log hashes its records added (see
// ledger.BlockScanner). It reads the blocks in batches of about 8,192
// records, one read transaction per batch, with the next batch read and
// its records parsed (on every CPU) while fn works through the current
// one. Blocks are checked as Block checks them; an error is about the
// block after the last one fn was given. ScanBlocks returns fn's error as
// is.
func (s *Store) ScanBlocks(ctx context.Context, from, to uint64, fn func(b *ledger.Block, hashes []ledger.Hash) error) error {
	if from > to {
		return nil
	}
	if to > uint64(1<<63-1) {
		to = 1<<63 - 1
	}
	pctx, cancel := context.WithCancel(ctx)
	batches := make(chan scanBatch, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		for h := from; h <= to; {
			c := s.readBatch(pctx, h, to)
			select {
			case batches <- c:
			case <-pctx.Done():
				return
			}
			if c.err != nil {
				return
			}
			h += uint64(len(c.blocks))
		}
	}()
	defer func() {
		cancel()
		for range batches {
		}
		wg.Wait()
	}()
	for c := range batches {
		for i, b := range c.blocks {
			if err := fn(b, c.hashes[i]); err != nil {
				return err
			}
		}
		if c.err != nil {
			return c.err
		}
	}
	return ctx.Err()
}

// readBatch reads the blocks from height from on (to at most), in one
// transaction: whole blocks of about scanRecords records.
func (s *Store) readBatch(ctx context.Context, from, to uint64) scanBatch {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return scanBatch{err: readErr(err, "block %d", from)}
	}
	defer tx.Rollback()

	// The blocks' rows, up to about scanRecords records.
	type row struct {
		b     *ledger.Block
		first int64
		atts  []byte
	}
	var rows []row
	var c scanBatch
	q, err := tx.QueryContext(ctx, "SELECT height, header, hash, cert, attestations, first_index FROM blocks WHERE height >= ? AND height <= ? ORDER BY height LIMIT ?",
		int64(from), int64(to), scanMaxBlocks)
	if err != nil {
		return scanBatch{err: readErr(err, "block %d", from)}
	}
	var nrec int64
	for q.Next() {
		var height, first int64
		var hdr, hash, cert, atts []byte
		if err := q.Scan(&height, &hdr, &hash, &cert, &atts, &first); err != nil {
			c.err = readErr(err, "block %d", from+uint64(len(rows)))
			break
		}
		want := from + uint64(len(rows))
		if height != int64(want) {
			c.err = fmt.Errorf("sqlitestore: block %d: %w", want, ledger.ErrNotFound)
			break
		}
		b, err := blockHead(want, hdr, hash, cert, first)
		if err != nil {
			c.err = err
			break
		}
		rows = append(rows, row{b, first, atts})
		if nrec += int64(b.Header.Records); nrec >= scanRecords {
			break
		}
	}
	q.Close()
	if c.err == nil {
		if err := q.Err(); err != nil {
			c.err = readErr(err, "block %d", from+uint64(len(rows)))
		} else if len(rows) == 0 {
			c.err = fmt.Errorf("sqlitestore: block %d: %w", from, ledger.ErrNotFound)
		}
	}
	if len(rows) == 0 {
		return c
	}

	// Their records' rows, in one query, parsed on every CPU.
	lo := rows[0].first
	hi := lo
	for i := range rows {
		if rows[i].first != hi {
			// The header check in blockHead ties first to the log size; a
			// gap here is a header that does not follow its parent, which
			// the caller finds with the block itself.
			rows = rows[:i]
			break
		}
		hi += int64(rows[i].b.Header.Records)
	}
	data, rrows, n, err := readRecordRows(ctx, tx, lo, hi)
	recs := make([]ledger.Record, n)
	auths := make([]*ledger.AuthorityChange, n)
	perr := make([]error, n)
	parseAll(lo, data[:n], recs, auths, perr)
	for i := range perr {
		if perr[i] != nil {
			n, err = int64(i), perr[i]
			break
		}
	}
	// n records from lo on are there and parse; err is about record lo+n.
	// An error found here is about an earlier block than c.err.
	headErr := c.err
	c.err = nil
	for _, r := range rows {
		b, h := r.b, &r.b.Header
		end := r.first + int64(h.Records)
		if end > lo+n {
			if err == nil {
				err = fmt.Errorf("sqlitestore: record %d: %w", lo+n, ledger.ErrNotFound)
			}
			c.err = fmt.Errorf("sqlitestore: block %d: %w", h.Height, err)
			break
		}
		b.Records = recs[r.first-lo : end-lo : end-lo]
		for i := r.first; i < end; i++ {
			if rrows[i-lo].height != int64(h.Height) {
				c.err = corruptRow(fmt.Errorf("record %d of height %d", i, rrows[i-lo].height), "block %d", h.Height)
				break
			}
			if a := auths[i-lo]; a != nil {
				// The block's authority changes follow its key records.
				if len(b.Authority) == 0 {
					b.Records = recs[r.first-lo : i-lo : i-lo]
				}
				b.Authority = append(b.Authority, *a)
			} else if len(b.Authority) > 0 {
				c.err = corruptRow(fmt.Errorf("key record after an authority change"), "block %d: record %d", h.Height, i)
				break
			}
		}
		if c.err != nil {
			break
		}
		atts, aerr := decodeAttestations(r.atts, h, b.Records)
		if aerr != nil {
			c.err = corruptRow(aerr, "block %d: attestations", h.Height)
			break
		}
		b.Attestations = atts
		stored := make([]ledger.Hash, 0, ledger.StoredHashCount(end)-ledger.StoredHashCount(r.first))
		for i := r.first; i < end; i++ {
			hs := rrows[i-lo].hashes
			for j := 0; j < len(hs); j += 32 {
				stored = append(stored, ledger.Hash(hs[j:j+32]))
			}
		}
		c.blocks = append(c.blocks, b)
		c.hashes = append(c.hashes, stored)
	}
	if c.err == nil {
		c.err = headErr
	}
	if c.err == nil && len(c.blocks) < len(rows) {
		c.err = fmt.Errorf("sqlitestore: block %d: %w", from+uint64(len(c.blocks)), ledger.ErrNotFound)
	}
	return c
}

// recordRow is what the chunks row of an entry holds of it besides its
// bytes.
type recordRow struct {
	height int64
	hashes []byte
}

// readRecordRows reads log entries lo to hi-1 from their chunks rows. It
// returns the entries' bytes and rows of the first n entries, and, when
// n < hi-lo, the error about the rest (a row missing, out of place, or
// that does not split).
func readRecordRows(ctx context.Context, tx *sql.Tx, lo, hi int64) (data [][]byte, rows []recordRow, n int64, err error) {
	data = make([][]byte, 0, hi-lo)
	rows = make([]recordRow, 0, hi-lo)
	// One buffer for every entry's bytes and hashes: the row's bytes are
	// not copied by Scan.
	arena := make([]byte, 0, (hi-lo)*320)
	err = scanChunks(ctx, tx, lo, hi, func(c *chunkRow) error {
		for i, d := range c.entries {
			idx := c.first + int64(i)
			if idx < lo || idx >= hi {
				continue
			}
			hs := c.hashesOf(idx)
			if len(arena)+len(d)+len(hs) > cap(arena) {
				arena = make([]byte, 0, max(cap(arena), len(d)+len(hs)))
			}
			at := len(arena)
			arena = append(append(arena, d...), hs...)
			data = append(data, arena[at:at+len(d):at+len(d)])
			rows = append(rows, recordRow{c.height, arena[at+len(d) : len(arena) : len(arena)]})
		}
		return nil
	})
	return data, rows, int64(len(data)), err
}

// parseAll parses data[i], the bytes of log entry lo+i, into recs[i], or
// auths[i] for an authority change (or its error into errs[i]), on every
// CPU.
func parseAll(lo int64, data [][]byte, recs []ledger.Record, auths []*ledger.AuthorityChange, errs []error) {
	workers := min(runtime.GOMAXPROCS(0), 1+len(data)/512)
	var wg sync.WaitGroup
	per := (len(data) + workers - 1) / max(workers, 1)
	for w := 0; w < workers; w++ {
		a, b := w*per, min((w+1)*per, len(data))
		if a >= b {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := a; i < b; i++ {
				c, err := parseEntry(data[i], &recs[i])
				if err != nil {
					errs[i] = corruptRow(err, "record %d", lo+int64(i))
				}
				auths[i] = c
			}
		}()
	}
	wg.Wait()
}
