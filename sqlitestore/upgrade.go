package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/vcsledger/vcsledger/ledger"
)

// Files of versions 1 and 2 kept a row per log entry:
//
//	records(idx INTEGER PRIMARY KEY, key TEXT NOT NULL, height INTEGER NOT NULL,
//	        data BLOB NOT NULL, hashes BLOB NOT NULL)
//
// with key UNIQUE (version 1), or beside a keys(key TEXT PRIMARY KEY, idx)
// table and keys_indexed (version 2). Open upgrades them to version 3 in
// one transaction, so that a crash leaves the file as it was.

// upgradeRecords upgrades a file of version from (1 or 2): its records
// become chunks rows, its authority changes are listed in authorities,
// and every key is indexed in the keys table.
func (s *Store) upgradeRecords(ctx context.Context, from int) error {
	what := fmt.Sprintf("upgrade schema %d to %d", from, schemaVersion)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fileErr(what, err)
	}
	defer tx.Rollback()
	pre := ""
	if from == 2 {
		pre = "DROP TABLE keys; DROP TABLE keys_indexed;"
	}
	if _, err := tx.ExecContext(ctx, pre+entriesSchema+"INSERT INTO keys_indexed VALUES (0);"); err != nil {
		return s.fileErr(what, err)
	}
	n, keys, err := convertRecords(ctx, tx)
	if err != nil {
		return s.tailErr(err, "%s", what)
	}
	if err := insertKeyRows(ctx, tx, keys, n); err != nil {
		return s.fileErr(what, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("DROP TABLE records; PRAGMA user_version = %d;", schemaVersion)); err != nil {
		return s.fileErr(what, err)
	}
	if err := tx.Commit(); err != nil {
		return s.fileErr(what, err)
	}
	return nil
}

// convertRecords writes the rows of the records table as chunks rows, a
// block at a time, and the authority changes' indexes in authorities. It
// returns how many entries there are and the keys rows of the key
// records.
func convertRecords(ctx context.Context, tx *sql.Tx) (int64, []tailKey, error) {
	rows, err := tx.QueryContext(ctx, "SELECT idx, height, data, hashes FROM records ORDER BY idx")
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	var keys []tailKey
	var entries [][]byte
	var hashes []byte
	var n, first, height int64 = 0, 0, -1
	flush := func() error {
		err := insertChunks(ctx, tx, height, first, entries, hashes)
		entries, hashes = entries[:0], hashes[:0]
		return err
	}
	for rows.Next() {
		var idx, h int64
		var data, hs []byte
		if err := rows.Scan(&idx, &h, &data, &hs); err != nil {
			return 0, nil, err
		}
		switch {
		case idx != n:
			return 0, nil, corruptRow(fmt.Errorf("where record %d belongs", n), "record %d", idx)
		case int64(len(hs)) != 32*(ledger.StoredHashCount(idx+1)-ledger.StoredHashCount(idx)):
			return 0, nil, corruptRow(fmt.Errorf("%d bytes of stored hashes", len(hs)), "record %d", idx)
		case h < height:
			return 0, nil, corruptRow(fmt.Errorf("of height %d after height %d", h, height), "record %d", idx)
		case h != height && len(entries) > 0:
			if err := flush(); err != nil {
				return 0, nil, err
			}
		}
		if len(entries) == 0 {
			first, height = idx, h
		}
		entries = append(entries, data)
		hashes = append(hashes, hs...)
		if key, ok := ledger.EncodedKey(data); ok {
			keys = append(keys, tailKey{idx, keyHash(key)})
		} else if isAuthority(data) {
			if _, err := tx.ExecContext(ctx, "INSERT INTO authorities (idx) VALUES (?)", idx); err != nil {
				return 0, nil, err
			}
		} else {
			return 0, nil, corruptRow(errors.New("neither a key record nor an authority change"), "record %d", idx)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, nil, err
	}
	if len(entries) > 0 {
		if err := flush(); err != nil {
			return 0, nil, err
		}
	}
	return n, keys, nil
}
