// Package sqlitestoretest damages sqlitestore files on purpose, for tests
// of what finds the damage (Open, ledger.Audit, the sync protocol).
package sqlitestoretest

import (
	"database/sql"
	"errors"
	"fmt"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver
)

// ReplaceEntryBytes replaces, in the closed store file at path, the bytes
// old of a log entry with new, of the same length, so that the entry's
// row still splits into its entries: old must occur in exactly one chunks
// row (an entry's whole canonical bytes, or its commit line, do).
func ReplaceEntryBytes(path string, old, new []byte) error {
	if len(old) != len(new) || len(old) == 0 {
		return errors.New("sqlitestoretest: replace: old and new must be of one length, not 0")
	}
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Exec("UPDATE chunks SET data = CAST(replace(data, CAST(?1 AS BLOB), CAST(?2 AS BLOB)) AS BLOB) WHERE instr(data, CAST(?1 AS BLOB)) > 0", old, new)
	if err != nil {
		return fmt.Errorf("sqlitestoretest: replace: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("sqlitestoretest: replace: %d rows hold the bytes (%v); want 1", n, err)
	}
	return nil
}

// FlipCommit changes the last hex digit of the commit of the record whose
// commit is commit, in the closed store file at path: the record still
// parses, and no longer hashes to its leaf hash.
func FlipCommit(path, commit string) error {
	if commit == "" {
		return errors.New("sqlitestoretest: flip: empty commit")
	}
	line := "\ncommit " + commit + "\n"
	last := len(line) - 2
	digit := "0"
	if line[last] == '0' {
		digit = "1"
	}
	flipped := line[:last] + digit + "\n"
	return ReplaceEntryBytes(path, []byte(line), []byte(flipped))
}
